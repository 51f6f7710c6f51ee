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
- Refused with a :class:`~soilbook.errors.SchemaError` that names the problem, because each
  would otherwise pass silently: a header that names a column twice (pandas would read the copy
  as ``target.1``, a predictor that leaks the target), two columns that give the same feature
  name (``slope`` and ``terrain:slope``), and an infinite value (``inf``, ``1e999``) in the
  target, a feature or lat/lon — named by line and column, since one of them would make the
  whole table look like reflectance × 10 000. An empty file, a file that is not UTF-8 or a
  folder get a message too (see :mod:`soilbook.data.tables`, which both chapters read
  users' files with).

NetCDF (``.nc``) and Zarr (``.zarr``) files must already follow :mod:`soilbook.data.schema`; a
missing ``group`` is made from ``lat``/``lon`` as above, ``simulated`` stored as 0/1 or text is
turned back into a bool, and ``target`` may name another data variable to use as the target.
Zarr needs the optional ``zarr`` package (``pip install zarr``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data.schema import FEATURE_GROUPS, SchemaError, sample_set, validate_samples
from soilbook.data.tables import (
    BandColumns,
    check_finite,
    check_path,
    parse_band_columns,
    read_array_file,
    read_csv,
    read_netcdf,
    to_unit_reflectance,
)
from soilbook.data.targets import column_name

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


def _labelled_rows(path: Path, df: pd.DataFrame, target: str) -> pd.DataFrame:
    """Check the target and group columns; drop the rows without a target (with a warning)."""
    if target not in df.columns:
        _fail(path, f"no target column {target!r} (columns: {list(df.columns)[:20]})")
    if "group" not in df.columns and not ("lat" in df.columns and "lon" in df.columns):
        _fail(path, "neither a 'group' column nor 'lat' and 'lon' columns")
    n0 = len(df)
    df = df[df[target].notna()]
    if len(df) < n0:
        warnings.warn(
            f"{path.name}: dropped {n0 - len(df)} rows without a {target!r} value.", stacklevel=4
        )
    return df


def _feature_columns(path: Path, df: pd.DataFrame, target: str, bands: BandColumns) -> list[str]:
    """The covariate columns (every other column), checked: numeric, known group, unique name."""
    used = {target, *RESERVED, *bands.columns.values()}
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
    names = [c.split(":", 1)[-1] for c in feat_cols]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        _fail(
            path,
            f"the feature name(s) {twice} come from more than one column (a '<group>:' prefix "
            "is not part of the name); rename one of each",
        )
    if bands.dates:
        missing = [(d, b) for d in bands.dates for b in bands.bands if (d, b) not in bands.columns]
        if missing:
            _fail(
                path,
                f"reflectance columns missing for (date, band) {missing[:5]}; every date needs "
                "the same bands",
            )
    if not bands.columns and not feat_cols:
        _fail(path, "no feature columns")
    return feat_cols


def _complete_rows(path: Path, df: pd.DataFrame, value_cols: list[str]) -> pd.DataFrame:
    """Drop the rows with a missing feature value (with a warning); at least two must remain."""
    na = df[value_cols].isna().any(axis=1)
    if na.any():
        warnings.warn(
            f"{path.name}: dropped {int(na.sum())} rows with missing feature values.", stacklevel=4
        )
        df = df[~na]
    df = df.reset_index(drop=True)
    if len(df) < 2:
        _fail(path, f"only {len(df)} usable row(s)")
    return df


def _reflectance_args(path: Path, df: pd.DataFrame, bands: BandColumns) -> dict:
    """:func:`~soilbook.data.schema.sample_set` arguments for the reflectance columns."""
    if not bands.columns:
        return {}
    cube = np.stack(
        [
            df[[bands.columns[(d, b)] for b in bands.bands]].to_numpy(np.float64)
            for d in bands.dates
        ],
        axis=1,
    )
    cube, note = to_unit_reflectance(cube, name=path.name, large="dn", stacklevel=4)
    return {
        "reflectance": cube.astype(np.float32),
        "dates": [d or "date-1" for d in bands.dates],
        "bands": bands.bands,
        "wavelengths_nm": bands.wavelengths_nm,
        "note": note,
    }


def _load_csv(
    path: Path, target: str, target_units: str, licence: str, citation: str
) -> xr.Dataset:
    df = _labelled_rows(path, read_csv(path, layout=EXPECTED_LAYOUT), target)
    bands = parse_band_columns(list(df.columns))
    feat_cols = _feature_columns(path, df, target, bands)
    value_cols = list(bands.columns.values()) + feat_cols
    has_ll = "lat" in df.columns and "lon" in df.columns
    check_finite(path, df, [target, *value_cols, *(["lat", "lon"] if has_ll else [])])
    df = _complete_rows(path, df, value_cols)

    attrs: dict[str, object] = {"target_name": target}
    refl = _reflectance_args(path, df, bands)
    if refl.pop("note", None):
        attrs["reflectance_scale"] = "stored value / 10000"
    coords: dict[str, object] = {}
    if "group" in df.columns:
        groups = df["group"].astype(str).to_numpy()
        group_long_name = None
        attrs["group_kind"] = "from the file's 'group' column"
    else:
        groups, side = _lonlat_blocks(df["lat"].to_numpy(float), df["lon"].to_numpy(float))
        group_long_name = f"spatial block ({side:g} m)"
        attrs.update(group_kind="spatial block", block_size_m=side)
    if "sample_id" in df.columns:
        coords["sample_id"] = ("sample", df["sample_id"].astype(str).to_numpy())
    covariates = {}
    if feat_cols:
        covariates = {
            "covariates": df[feat_cols].to_numpy(np.float32),
            "features": [
                (c.split(":", 1)[1], c.split(":", 1)[0]) if ":" in c else (c, "other")
                for c in feat_cols
            ],
            "covariate_units": "as in the file",
        }
    try:
        return sample_set(
            df[target].to_numpy(np.float64),
            groups=groups,
            group_long_name=group_long_name,
            target_units=target_units,
            target_long_name=target,
            **refl,
            **covariates,
            sample_ids=np.arange(len(df)),
            lat=df["lat"].to_numpy(float) if has_ll else None,
            lon=df["lon"].to_numpy(float) if has_ll else None,
            coords=coords,
            source=f"user file {path.name}",
            licence=licence,
            citation=citation,
            simulated=False,
            **attrs,
        )
    except SchemaError as err:
        raise SchemaError(f"{path.name}: {err}") from None


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _load_array_file(path: Path, target: str) -> xr.Dataset:
    ds = read_array_file(path)
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
    name = column_name(target)
    if p.suffix.lower() == ".csv":
        return _load_csv(p, name, target_units, licence, citation or f"user data from {p.name}")
    ds = _load_array_file(p, name)
    try:
        return validate_samples(ds)
    except SchemaError as err:
        raise SchemaError(f"{p.name}: {err}") from None


__all__ = [
    "EXPECTED_LAYOUT",
    "SUPPORTED_EXTENSIONS",
    "check_path",
    "check_user_path",
    "load_user_file",
    "read_netcdf",
]
