"""Your own data: a CSV table, or a NetCDF / Zarr file already in the soilbook schema.

CSV layout (one row per field sample)
-------------------------------------
::

    sample_id,lat,lon,group,target,B02,B03,B04,terrain:slope,climate:ppt,ndvi
    P1,37.41,118.52,field-1,3.2,0.081,0.104,0.121,1.7,540,0.31
    ...

- ``target`` — the measured soil property (or name the column with ``target="my_column"``).
  Give its unit with ``target_units`` (default ``"unknown"``). Rows without a value are dropped
  (with a warning).
- ``group`` — the unit of grouped / spatial cross-validation (field, pedon, farm...), **or**
  ``lat`` and ``lon`` (WGS84 degrees) from which square spatial blocks are made (the largest of
  :data:`soilbook.data.real.limesoda.BLOCK_SIDES_M` that gives at least 10 blocks, on a local
  equirectangular projection). One of the two is required.
- **Reflectance** columns become the ``reflectance`` (sample, date, band) variable: Sentinel-2
  band names ``B01``...``B12``, ``B8A`` (wavelength = the band centre), or ``refl_<nm>`` (e.g.
  ``refl_665``). Append ``@<date>`` for several acquisitions (``B04@2021-05-03``); every date
  needs the same bands. Values must be reflectance 0-1; a table whose largest value is above 1.5
  is taken to be reflectance × 10 000 and divided (with a warning).
- **Covariates**: every other numeric column. Prefix a column with its feature group and a colon
  to use grouped importance (``terrain:slope``); the groups are
  :data:`soilbook.data.schema.FEATURE_GROUPS`; unprefixed columns go to ``"other"``.
- ``sample_id`` (optional) is kept as a coordinate. Any other text column is an error (encode
  categories as numbers first). Rows with a missing covariate or reflectance are dropped (with a
  warning).

NetCDF (``.nc``) and Zarr (``.zarr``) files must already follow :mod:`soilbook.data.schema`; a
missing ``group`` is made from ``lat``/``lon`` as above, ``simulated`` stored as 0/1 or text is
turned back into a bool, and ``target`` may name another data variable to use as the target.
Zarr needs the optional ``zarr`` package (``pip install zarr``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data.real.limesoda import S2_CENTRES_NM
from soilbook.data.schema import FEATURE_GROUPS, SchemaError, validate_samples
from soilbook.errors import ParameterError

#: File types :func:`load_user_file` reads.
SUPPORTED_EXTENSIONS = (".csv", ".nc", ".nc4", ".zarr")
RESERVED = ("sample_id", "lat", "lon", "group")
UNKNOWN_LICENCE = "unknown (user data; set licence=...)"

EXPECTED_LAYOUT = (
    "a CSV with a 'target' column (or the name given by target=...), a 'group' column or "
    "'lat' and 'lon' columns, and numeric feature columns — reflectance as B01..B12/B8A or "
    "refl_<nm> (optionally '@<date>'), covariates as '<group>:<name>' or plain names; e.g. "
    "'sample_id,lat,lon,target,B04,B08,terrain:slope'. See help(soilbook.data.real.userfile)."
)

_BAND = re.compile(
    r"^(?P<band>B(?:0[1-9]|1[0-2]|8A)|refl_(?P<nm>\d+(?:\.\d+)?))(?:@(?P<date>.+))?$"
)


def read_netcdf(path: Path) -> xr.Dataset:
    """Load a NetCDF file into memory, with a clear message when no NetCDF-4 engine is installed."""
    try:
        with xr.open_dataset(path) as opened:
            return opened.load()
    except ImportError as err:
        raise ImportError(
            f"Reading {path.name} (NetCDF-4/HDF5) needs h5py for the h5netcdf engine (pip "
            f"install h5py) or the netCDF4 package. Original error: {err}"
        ) from err


def check_path(
    data_path: str | os.PathLike[str] | None,
    *,
    extensions: tuple[str, ...],
    missing_message: str,
    extension_hint: str = "",
) -> Path:
    """Cheap checks of a user's ``data_path``: given, exists, one of ``extensions``.

    Raises :class:`ParameterError`: ``missing_message`` when no path is given, otherwise a
    message naming the resolved path or the extension (plus ``extension_hint``).
    """
    if data_path is None or not str(data_path).strip():
        raise ParameterError(missing_message)
    path = Path(data_path).expanduser()
    if not path.exists():
        raise ParameterError(
            f"data_path={str(data_path)!r} does not exist (resolved to {path.resolve()}). Paths "
            "in a notebook are relative to notebooks/; give an absolute path to be safe."
        )
    suffix = path.suffix.lower()
    if suffix not in extensions:
        raise ParameterError(
            f"data_path={str(data_path)!r} has the unsupported extension {suffix or '(none)'!r}; "
            f"supported: {list(extensions)}.{extension_hint}"
        )
    return path


def check_user_path(data_path: str | os.PathLike[str]) -> Path:
    """Cheap checks of ``data_path`` (exists, supported type); raises :class:`ParameterError`."""
    return check_path(
        data_path,
        extensions=SUPPORTED_EXTENSIONS,
        missing_message=(
            "data_source='file' needs data_path: the path of your CSV, NetCDF (.nc) or Zarr "
            "(.zarr) file."
        ),
    )


def _fail(path: Path, what: str) -> None:
    raise SchemaError(f"{path.name}: {what}. Expected: {EXPECTED_LAYOUT}")


def _lonlat_blocks(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, float]:
    """Spatial blocks of lat/lon points: the largest side giving >= 10 blocks, labels, side (m)."""
    x, y = geo.local_xy_m(lat, lon)
    side = geo.choose_block_side(x, y, min_blocks=10)
    return geo.spatial_blocks(x, y, side), side


def _parse_bands(
    columns: list[str],
) -> tuple[list[str], list[str], list[float], dict[tuple[str, str], str]]:
    """(dates, bands, wavelengths, {(date, band): column}) of the reflectance columns."""
    found: dict[tuple[str, str], str] = {}
    wl: dict[str, float] = {}
    for col in columns:
        m = _BAND.match(col)
        if not m:
            continue
        band = m["band"]
        found[(m["date"] or "", band)] = col
        wl[band] = float(m["nm"]) if m["nm"] else S2_CENTRES_NM[band]
    dates = sorted({d for d, _ in found})
    bands = sorted(wl, key=lambda b: wl[b])
    return dates, bands, [wl[b] for b in bands], found


def _load_csv(
    path: Path, target: str, target_units: str, licence: str, citation: str
) -> xr.Dataset:
    df = pd.read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    if target not in df.columns:
        _fail(path, f"no target column {target!r} (columns: {list(df.columns)[:20]})")
    has_group = "group" in df.columns
    has_ll = "lat" in df.columns and "lon" in df.columns
    if not (has_group or has_ll):
        _fail(path, "neither a 'group' column nor 'lat' and 'lon' columns")

    n0 = len(df)
    df = df[df[target].notna()]
    if len(df) < n0:
        warnings.warn(
            f"{path.name}: dropped {n0 - len(df)} rows without a {target!r} value.", stacklevel=3
        )

    dates, bands, wavelengths, band_cols = _parse_bands(list(df.columns))
    used = {target, *RESERVED, *band_cols.values()}
    feat_cols = [c for c in df.columns if c not in used]
    text = [c for c in feat_cols if not pd.api.types.is_numeric_dtype(df[c])]
    if text:
        _fail(path, f"non-numeric column(s) {text}; encode categories as numbers or drop them")
    bad_groups = sorted({c.split(":", 1)[0] for c in feat_cols if ":" in c} - set(FEATURE_GROUPS))
    if bad_groups:
        _fail(
            path,
            f"unknown feature group prefix(es) {bad_groups}; use one of {list(FEATURE_GROUPS)}",
        )
    if dates:
        missing = [(d, b) for d in dates for b in bands if (d, b) not in band_cols]
        if missing:
            _fail(
                path,
                f"reflectance columns missing for (date, band) {missing[:5]}; every date needs the same bands",
            )
    if not band_cols and not feat_cols:
        _fail(path, "no feature columns")

    value_cols = list(band_cols.values()) + feat_cols
    na = df[value_cols].isna().any(axis=1)
    if na.any():
        warnings.warn(
            f"{path.name}: dropped {int(na.sum())} rows with missing feature values.", stacklevel=3
        )
        df = df[~na]
    df = df.reset_index(drop=True)
    if len(df) < 2:
        _fail(path, f"only {len(df)} usable row(s)")

    n = len(df)
    data_vars: dict[str, tuple] = {
        "target": (
            ("sample",),
            df[target].to_numpy(np.float64),
            {"units": target_units, "long_name": target},
        ),
    }
    coords: dict[str, object] = {"sample": np.arange(n)}
    attrs: dict[str, object] = {
        "source": f"user file {path.name}",
        "licence": licence,
        "citation": citation,
        "simulated": False,
        "target_name": target,
    }
    if band_cols:
        cube = np.stack(
            [df[[band_cols[(d, b)] for b in bands]].to_numpy(np.float64) for d in dates], axis=1
        )
        if np.nanmax(cube) > 1.5:
            warnings.warn(
                f"{path.name}: reflectance values up to {np.nanmax(cube):g} look like reflectance "
                "x 10000; dividing by 10000.",
                stacklevel=3,
            )
            cube = cube / 10000.0
            attrs["reflectance_scale"] = "stored value / 10000"
        data_vars["reflectance"] = (
            ("sample", "date", "band"),
            cube.astype(np.float32),
            {"units": "1", "long_name": "surface reflectance"},
        )
        coords.update(
            date=[d or "date-1" for d in dates],
            band=bands,
            wavelength=("band", wavelengths, {"units": "nm"}),
        )
    if feat_cols:
        names = [c.split(":", 1)[1] if ":" in c else c for c in feat_cols]
        groups = [c.split(":", 1)[0] if ":" in c else "other" for c in feat_cols]
        data_vars["covariates"] = (
            ("sample", "feature"),
            df[feat_cols].to_numpy(np.float32),
            {"units": "as in the file", "long_name": "covariates"},
        )
        coords.update(feature=names, feature_group=("feature", groups))
    if has_ll:
        coords["lat"] = ("sample", df["lat"].to_numpy(float), {"units": "degrees_north"})
        coords["lon"] = ("sample", df["lon"].to_numpy(float), {"units": "degrees_east"})
    if has_group:
        coords["group"] = ("sample", df["group"].astype(str).to_numpy())
        attrs["group_kind"] = "from the file's 'group' column"
    else:
        ids, side = _lonlat_blocks(df["lat"].to_numpy(float), df["lon"].to_numpy(float))
        coords["group"] = ("sample", ids, {"long_name": f"spatial block ({side:g} m)"})
        attrs.update(group_kind="spatial block", block_size_m=side)
    if "sample_id" in df.columns:
        coords["sample_id"] = ("sample", df["sample_id"].astype(str).to_numpy())
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _load_array_file(path: Path, target: str) -> xr.Dataset:
    if path.suffix.lower() == ".zarr":
        try:
            import zarr  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"Reading {path.name} needs the optional 'zarr' package: pip install zarr "
                "(or pip install 'soilbook[zarr]'), or save the dataset as NetCDF (.nc)."
            ) from err
        ds = xr.open_zarr(path).load()
    else:
        ds = read_netcdf(path)
    if target != "target":
        if target not in ds.data_vars:
            _fail(path, f"no data variable {target!r} (variables: {list(ds.data_vars)})")
        ds = ds.drop_vars("target", errors="ignore").rename({target: "target"})
        ds.attrs["target_name"] = target
    if "simulated" in ds.attrs:
        ds.attrs["simulated"] = _as_bool(ds.attrs["simulated"])
    if "group" not in ds.coords and "lat" in ds.coords and "lon" in ds.coords:
        ids, side = _lonlat_blocks(ds["lat"].values, ds["lon"].values)
        warnings.warn(
            f"{path.name} has no 'group'; using {side:g} m spatial blocks of lat/lon.", stacklevel=3
        )
        ds = ds.assign_coords(group=("sample", ids))
        ds.attrs.update(group_kind="spatial block", block_size_m=side)
    return ds


def load_user_file(
    path: str | os.PathLike[str],
    target: str | None = None,
    *,
    target_units: str = "unknown",
    licence: str = UNKNOWN_LICENCE,
    citation: str = "",
) -> xr.Dataset:
    """Read your CSV / NetCDF / Zarr file into a validated sample set (layout: module docstring).

    Parameters
    ----------
    path
        ``.csv``, ``.nc`` / ``.nc4`` or ``.zarr``.
    target
        Name of the target column / variable; ``None`` or ``"auto"`` means ``"target"``.
    target_units, licence, citation
        Recorded on the result (CSV only; NetCDF/Zarr carry their own attributes).

    Raises
    ------
    ParameterError
        The path does not exist or has an unsupported extension.
    SchemaError
        A required column / variable is missing; the message shows the expected layout.
    """
    p = check_user_path(path)
    name = "target" if target in (None, "", "auto") else str(target)
    if p.suffix.lower() == ".csv":
        ds = _load_csv(p, name, target_units, licence, citation or f"user data from {p.name}")
    else:
        ds = _load_array_file(p, name)
    try:
        return validate_samples(ds)
    except SchemaError as err:
        raise SchemaError(f"{p.name}: {err}") from None


__all__ = ["EXPECTED_LAYOUT", "SUPPORTED_EXTENSIONS", "check_user_path", "load_user_file"]
