"""Your own data: a CSV table, or a NetCDF / Zarr file already in the soilbook schema.

CSV layout (one row per field sample)
-------------------------------------
::

    sample_id,lat,lon,group,target,B02,B03,B04,terrain:slope,climate:ppt,ndvi
    P1,37.41,118.52,field-1,3.2,0.081,0.104,0.121,1.7,540,0.31
    ...

- ``target`` — the measured soil property (or name the column with ``target="my_column"``).
  Give its unit with ``target_units`` (default ``"unknown"``); it becomes the target's
  ``units`` attribute. Rows without a value are dropped (with a warning).
- ``group`` — the unit of grouped / spatial cross-validation (field, pedon, farm...), **or**
  coordinates from which square spatial blocks are made: ``lat`` and ``lon`` in WGS84 degrees
  (checked: ``|lat| <= 90``, ``|lon| <= 180``, not all at (0, 0) — projected metres in
  lat/lon are refused with a message), or ``x`` and ``y`` in the coordinate reference system
  given by ``crs`` (e.g. ``crs="EPSG:32650"``, transformed to lat/lon with pyproj). The block
  side is ``block_size_m`` when given, else the largest of :data:`soilbook.geo.BLOCK_SIDES_M`
  (5 m to 100 km) that still gives at least 10 occupied blocks, on a local equirectangular
  projection. One of the two (group, or coordinates) is required; with both, ``group`` makes
  the folds and the coordinates are kept. A file without coordinates has no ``lat`` / ``lon``
  (``attrs["coordinate_source"]`` says which case holds; no location is invented).
- **Reflectance** columns become the ``reflectance`` (sample, date, band) variable: Sentinel-2
  band names ``B01``...``B12``, ``B8A`` (wavelength = the band centre), or ``refl_<nm>`` (e.g.
  ``refl_665``); ``abs_<nm>`` columns hold absorbance log10(1/R). Append ``@<date>`` for
  several acquisitions (``B04@2021-05-03``); every date needs the same bands. How the values
  are stored is ``spectra_kind``: ``"auto"`` (default: told from the values and column names by
  :func:`soilbook.data.tables.spectra_to_reflectance` — reflectance 0-1, percent, reflectance
  x 10 000, or absorbance converted to R = 10^-A; an ambiguous table is refused with a request
  to say which), ``"reflectance"``, ``"percent"`` or ``"absorbance"``.
- **Covariates**: every other numeric column, except identifiers. Prefix a column with its
  feature group and a colon to use grouped importance (``terrain:slope``); the groups are
  :data:`soilbook.data.schema.FEATURE_GROUPS`; unprefixed columns go to ``"other"``.
  Identifier columns (``FID``, ``OID_``, ``site_id``, ``pedon_key``, ``SampleID``, a saved
  pandas index, a text column unique per row...) are **not predictors**: they are excluded by
  the rule :data:`soilbook.data.tables.IDENTIFIER_RULE`, with a warning that lists the
  predictors used and the columns excluded (``attrs["excluded_columns"]``).
- ``sample_id`` (optional) is kept as a coordinate. Any other text column is an error (encode
  categories as numbers first). Rows with a missing covariate, reflectance or coordinate are
  dropped (with a warning).
- Refused with a :class:`~soilbook.errors.SchemaError` that names the problem, because each
  would otherwise pass silently: a header that names a column twice (pandas would read the copy
  as ``target.1``, a predictor that leaks the target), two columns that give the same feature
  name (``slope`` and ``terrain:slope``), and an infinite value (``inf``, ``1e999``) in the
  target, a feature or a coordinate — named by line and column, since one of them would make
  the whole table look like reflectance × 10 000. An empty file, a file that is not UTF-8 or a
  folder get a message too (see :mod:`soilbook.data.tables`, which both chapters read
  users' files with).

What each chapter-1 model needs: RF and SVR use any numeric predictor (reflectance and/or
covariates); SS-SoilNet needs spectral inputs — reflectance columns or covariates in the
``spectral`` / ``vegetation`` groups — and its spatial branch uses the other covariates (point
data) or patches (:func:`soilbook.chapters.salinity.models_for`).

Checked before any row is parsed, by :func:`check_user_file` (the path, the bytes, ``crs``
and, for a CSV, the header: :func:`check_csv_header`, :func:`describe_header`):
:func:`load_user_file` runs it first and :func:`soilbook.data.sources.check_source_args` runs
it before a notebook starts, so the messages are the same either way.

NetCDF (``.nc``) and Zarr (``.zarr``) files must already follow :mod:`soilbook.data.schema`; a
missing ``group`` is made from ``lat``/``lon`` as above, ``simulated`` stored as 0/1 or text is
turned back into a bool, ``target`` may name another data variable to use as the target, and a
non-empty ``target_units`` replaces the target's ``units``. Zarr needs the optional ``zarr``
package (``pip install zarr``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data.checks import check_file_content, check_utf8_text
from soilbook.data.schema import FEATURE_GROUPS, SchemaError, sample_set, validate_samples
from soilbook.data.tables import (
    IDENTIFIER_RULE,
    SPECTRA_KINDS,
    BandColumns,
    SpectraKind,
    check_crs,
    check_finite,
    check_lat_lon,
    check_path,
    identifier_columns,
    parse_band_columns,
    read_array_file,
    read_csv,
    read_header,
    read_netcdf,
    require_columns,
    spectra_to_reflectance,
    xy_to_lat_lon,
)
from soilbook.data.targets import column_name
from soilbook.errors import ParameterError

#: File types :func:`load_user_file` reads.
SUPPORTED_EXTENSIONS = (".csv", ".nc", ".nc4", ".zarr")
#: Columns that are never predictors: the sample id, coordinates and the group.
RESERVED = ("sample_id", "lat", "lon", "x", "y", "group")
UNKNOWN_LICENCE = "unknown (user data; set licence=...)"
#: ``target_units`` recorded when none is given.
UNKNOWN_UNITS = "unknown"
#: ``attrs["coordinate_source"]`` of a file without coordinates.
NO_COORDINATES = "none: the file has no coordinates (groups from its 'group' column)"

EXPECTED_LAYOUT = (
    "a CSV with a 'target' column (or the name given by target=...), a 'group' column or "
    "coordinates ('lat' and 'lon' in WGS84 degrees, or 'x' and 'y' with crs=...), and numeric "
    "predictor columns — reflectance as B01..B12/B8A or refl_<nm> (absorbance: abs_<nm>; "
    "optionally '@<date>'), covariates as '<group>:<name>' or plain names (identifier columns "
    "such as FID or site_id are excluded); e.g. 'sample_id,lat,lon,target,B04,B08,"
    "terrain:slope'. See help(soilbook.data.real.userfile)."
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


def check_spectra_kind(spectra_kind: str) -> str:
    """``spectra_kind`` if allowed (:data:`~soilbook.data.tables.SPECTRA_KINDS`), else
    :class:`ParameterError`."""
    if spectra_kind not in SPECTRA_KINDS:
        raise ParameterError(
            f"spectra_kind={spectra_kind!r} is not allowed; allowed: {list(SPECTRA_KINDS)}."
        )
    return spectra_kind


# -- what a header offers (cheap: no rows read) ------------------------------------------------


class HeaderInfo(NamedTuple):
    """What a CSV header offers chapter 1 (:func:`describe_header`)."""

    target: str
    coordinates: str  # "lat/lon", "x/y" (with crs) or "none"
    has_group: bool
    band_columns: list[str]  # reflectance / absorbance columns
    spectral_covariates: list[str]  # covariates in the 'spectral' or 'vegetation' group
    other_covariates: list[str]  # every other predictor
    identifiers: dict[str, str]  # excluded identifier columns (by name) -> why
    columns: tuple[str, ...] = ()  # the header's columns, in file order

    @property
    def has_spectral_inputs(self) -> bool:
        """Whether SS-SoilNet has spectral inputs (reflectance or spectral/vegetation covariates)."""
        return bool(self.band_columns or self.spectral_covariates)

    @property
    def predictors(self) -> list[str]:
        return [*self.band_columns, *self.spectral_covariates, *self.other_covariates]


def _coordinate_kind(columns: list[str], crs: str) -> str:
    if "lat" in columns and "lon" in columns:
        return "lat/lon"
    if "x" in columns and "y" in columns and crs.strip():
        return "x/y"
    return "none"


def describe_header(path: Path, columns: list[str], target: str, *, crs: str = "") -> HeaderInfo:
    """What a CSV header offers (:class:`HeaderInfo`), checked without reading the rows.

    Raises :class:`SchemaError` (with the expected layout) when ``target`` is missing, when
    there are neither a ``group`` column nor coordinates (``lat`` + ``lon``, or ``x`` + ``y``
    with ``crs``; ``x`` / ``y`` without ``crs`` get their own message), or when no predictor
    is left once identifiers (by name, :data:`~soilbook.data.tables.IDENTIFIER_RULE`) are
    excluded. The value rules of the identifier test need the rows and run at load time.
    """
    path = Path(path)
    require_columns(path, columns, [target], layout=EXPECTED_LAYOUT)
    coords = _coordinate_kind(columns, crs)
    has_group = "group" in columns
    if not has_group and coords == "none":
        if "x" in columns and "y" in columns:
            raise SchemaError(
                f"{path.name} has 'x' and 'y' columns but no crs: say which coordinate "
                "reference system they are in with crs='EPSG:<code>' (e.g. 'EPSG:32650' for "
                "UTM zone 50N), so they can be transformed to lat/lon; or give a 'group' column "
                f"(file: {path})."
            )
        raise SchemaError(
            f"{path.name} has neither a 'group' column nor 'lat' and 'lon' columns (nor 'x' and "
            "'y' with crs=...), so no spatial groups can be made for cross-validation "
            f"(file: {path}; columns: {columns[:12]}). Expected: {EXPECTED_LAYOUT}"
        )
    bands = parse_band_columns(columns)
    band_cols = list(bands.columns.values())
    rest = [c for c in columns if c not in {target, *RESERVED, *band_cols}]
    ids = identifier_columns(rest)
    feats = [c for c in rest if c not in ids]
    spectral = [c for c in feats if c.split(":", 1)[0] in ("spectral", "vegetation") and ":" in c]
    other = [c for c in feats if c not in spectral]
    if not band_cols and not feats:
        _fail(
            path,
            "no predictor columns"
            + (f" (identifier columns excluded: {list(ids)})" if ids else ""),
        )
    return HeaderInfo(target, coords, has_group, band_cols, spectral, other, ids, tuple(columns))


def check_csv_header(path: str | os.PathLike[str], target: str, *, crs: str = "") -> HeaderInfo:
    """A chapter-1 CSV's header checked without parsing its rows (:class:`HeaderInfo`).

    What :func:`soilbook.data.tables.read_header` refuses (empty, a column named twice, ``;``
    or tab separated), a byte that is not UTF-8 anywhere in the file
    (:func:`soilbook.data.checks.check_utf8_text`, which streams the bytes), and what
    :func:`describe_header` refuses (no ``target`` column; neither ``group`` nor ``lat`` +
    ``lon`` nor ``x`` + ``y`` with ``crs``; no predictor once identifiers are excluded).
    Raises :class:`SchemaError` (with the expected layout) or :class:`ParameterError` (a
    folder). ``target`` is the column name as is (no ``"auto"``).
    """
    path = Path(path)
    columns = read_header(path, layout=EXPECTED_LAYOUT)
    check_utf8_text(path)
    return describe_header(path, columns, target, crs=crs)


def check_user_file(
    data_path: str | os.PathLike[str], target: str | None = None, *, crs: str = ""
) -> HeaderInfo | None:
    """Every check of a user's file that needs no rows parsed: the one pre-run check.

    The path (:func:`check_user_path`: given, exists, supported extension, not a folder), its
    bytes (:func:`soilbook.data.checks.check_file_content`: readable, not empty), ``crs``
    when given (:func:`soilbook.data.tables.check_crs`), and for a CSV its header
    (:func:`check_csv_header`). :func:`load_user_file` runs it first and
    :func:`soilbook.data.sources.check_source_args` runs it before a notebook starts, so a bad
    file gets the same message either way.

    Parameters
    ----------
    data_path
        ``.csv``, ``.nc`` / ``.nc4`` or ``.zarr``.
    target
        The target column; ``None`` or ``"auto"`` means ``"target"``.
    crs
        The CRS of ``x`` / ``y`` columns (``""``: none).

    Returns
    -------
    HeaderInfo or None
        What the CSV header offers; ``None`` for NetCDF / Zarr (checked when read).

    Raises
    ------
    ParameterError
        Path problems, an unknown ``crs``.
    SchemaError
        An empty file, bytes that are not UTF-8, a header without what chapter 1 needs.
    """
    path = check_file_content(check_user_path(data_path))
    if crs.strip():
        check_crs(crs)
    if path.suffix.lower() != ".csv":
        return None
    return check_csv_header(path, column_name(target), crs=crs)


# -- the rows ----------------------------------------------------------------------------------


def _labelled_rows(path: Path, df: pd.DataFrame, target: str) -> pd.DataFrame:
    """Drop the rows without a target (the header was checked by :func:`check_user_file`)."""
    n0 = len(df)
    df = df[df[target].notna()]
    if len(df) < n0:
        warnings.warn(
            f"{path.name}: dropped {n0 - len(df)} rows without a {target!r} value.", stacklevel=4
        )
    return df


def _feature_columns(
    path: Path, df: pd.DataFrame, target: str, bands: BandColumns
) -> tuple[list[str], dict[str, str]]:
    """The covariate columns (every other column but identifiers), checked: numeric, known
    group, unique name. Identifiers are excluded with a warning listing what is used."""
    used = {target, *RESERVED, *bands.columns.values()}
    candidates = [c for c in df.columns if c not in used]
    ids = identifier_columns(candidates, df)
    feat_cols = [c for c in candidates if c not in ids]
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
        _fail(
            path,
            "no feature columns" + (f" (identifier columns excluded: {list(ids)})" if ids else ""),
        )
    if ids:
        used_cols = [*bands.columns.values(), *feat_cols]
        shown = ", ".join(used_cols[:15]) + (
            f" … ({len(used_cols)} in all)" if len(used_cols) > 15 else ""
        )
        why = "; ".join(f"{c!r}: {r}" for c, r in ids.items())
        warnings.warn(
            f"{path.name}: {len(ids)} identifier column(s) excluded from the predictors ({why}). "
            f"Predictors used: {shown}. Rule: {IDENTIFIER_RULE}",
            stacklevel=4,
        )
    return feat_cols, ids


def _complete_rows(path: Path, df: pd.DataFrame, value_cols: list[str]) -> pd.DataFrame:
    """Drop the rows with a missing value in ``value_cols`` (with a warning); >= 2 must remain."""
    na = df[value_cols].isna().any(axis=1)
    if na.any():
        warnings.warn(
            f"{path.name}: dropped {int(na.sum())} rows with missing feature or coordinate values.",
            stacklevel=4,
        )
        df = df[~na]
    df = df.reset_index(drop=True)
    if len(df) < 2:
        _fail(path, f"only {len(df)} usable row(s)")
    return df


def _reflectance_args(path: Path, df: pd.DataFrame, bands: BandColumns, spectra_kind: str) -> dict:
    """:func:`~soilbook.data.schema.sample_set` arguments for the reflectance columns."""
    if not bands.columns:
        return {}
    kinds = {"abs" if b.startswith("abs_") else "refl" for b in bands.bands}
    if len(kinds) > 1:
        _fail(
            path,
            "both absorbance (abs_<nm>) and reflectance columns; give one kind of spectra",
        )
    absorbance_columns = kinds == {"abs"}
    if absorbance_columns and spectra_kind not in ("auto", "absorbance"):
        _fail(
            path,
            f"columns named abs_<nm> (absorbance) but spectra_kind={spectra_kind!r}; rename them "
            "refl_<nm> or set spectra_kind='absorbance'",
        )
    cube = np.stack(
        [
            df[[bands.columns[(d, b)] for b in bands.bands]].to_numpy(np.float64)
            for d in bands.dates
        ],
        axis=1,
    )
    cube, note = spectra_to_reflectance(
        cube,
        kind=spectra_kind,
        name=path.name,
        wavelengths_nm=bands.wavelengths_nm,
        absorbance_columns=absorbance_columns,
        stacklevel=4,
    )
    return {
        "reflectance": cube.astype(np.float32),
        "dates": [d or "date-1" for d in bands.dates],
        "bands": [b.replace("abs_", "refl_", 1) for b in bands.bands],
        "wavelengths_nm": bands.wavelengths_nm,
        "note": note,
    }


def _coordinates(
    path: Path, df: pd.DataFrame, crs: str
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(lat, lon, description) of the file's rows: WGS84 lat/lon checked, x/y transformed
    from ``crs``, or (None, None, ...) without coordinates (or with placeholders only)."""
    kind = _coordinate_kind(list(df.columns), crs)
    if kind == "none":
        return None, None, NO_COORDINATES
    if kind == "lat/lon":
        if crs.strip():
            warnings.warn(
                f"{path.name}: the file has lat/lon columns, so crs={crs!r} is not used (it is "
                "for x/y columns).",
                stacklevel=4,
            )
        lat, lon = df["lat"].to_numpy(float), df["lon"].to_numpy(float)
        what = "WGS84 lat/lon from the file"
    else:
        lat, lon = xy_to_lat_lon(
            df["x"].to_numpy(float), df["y"].to_numpy(float), crs, name=path.name
        )
        what = f"x/y in {crs} from the file, transformed to WGS84 lat/lon"
    same = lat.size > 1 and np.ptp(lat) == 0 and np.ptp(lon) == 0
    if same and "group" in df.columns:
        warnings.warn(
            f"{path.name}: every sample has the same coordinates ({lat[0]:g}, {lon[0]:g}) — "
            "placeholders, not locations; they are dropped and the 'group' column makes the "
            "folds.",
            stacklevel=4,
        )
        return None, None, NO_COORDINATES.replace("no coordinates", "placeholder coordinates only")
    if same:
        _fail(
            path,
            f"every sample has the same coordinates ({lat[0]:g}, {lon[0]:g}): placeholders, "
            "not locations; give the real ones or a 'group' column",
        )
    check_lat_lon(lat, lon, name=path.name)
    return lat, lon, what


def _load_csv(
    path: Path,
    target: str,
    target_units: str,
    licence: str,
    citation: str,
    *,
    crs: str = "",
    spectra_kind: str = "auto",
    block_size_m: float | None = None,
) -> xr.Dataset:
    df = _labelled_rows(path, read_csv(path, layout=EXPECTED_LAYOUT), target)
    bands = parse_band_columns(list(df.columns))
    feat_cols, excluded = _feature_columns(path, df, target, bands)
    value_cols = list(bands.columns.values()) + feat_cols
    coord_kind = _coordinate_kind(list(df.columns), crs)
    coord_cols = {"lat/lon": ["lat", "lon"], "x/y": ["x", "y"]}.get(coord_kind, [])
    check_finite(path, df, [target, *value_cols, *coord_cols])
    df = _complete_rows(path, df, value_cols + coord_cols)
    lat, lon, coord_text = _coordinates(path, df, crs)

    attrs: dict[str, object] = {"target_name": target, "coordinate_source": coord_text}
    refl = _reflectance_args(path, df, bands, spectra_kind)
    note = refl.pop("note", None)
    if note:
        attrs["reflectance_scale"] = note
    if excluded:
        attrs["excluded_columns"] = ", ".join(excluded)
    coords: dict[str, object] = {}
    if "group" in df.columns:
        groups = df["group"].astype(str).to_numpy()
        group_long_name = None
        attrs["group_kind"] = "the file's 'group' column"
    else:
        assert lat is not None and lon is not None  # check_user_file required coordinates
        groups, side = geo.lat_lon_blocks(lat, lon, block_size_m)
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
            target_units=target_units.strip() or UNKNOWN_UNITS,
            target_long_name=target,
            **refl,
            **covariates,
            sample_ids=np.arange(len(df)),
            lat=lat,
            lon=lon,
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


def _load_array_file(
    path: Path, target: str, target_units: str = "", block_size_m: float | None = None
) -> xr.Dataset:
    ds = read_array_file(path)
    if target != "target":
        if target not in ds.data_vars:
            _fail(path, f"no data variable {target!r} (variables: {list(ds.data_vars)})")
        ds = ds.drop_vars("target", errors="ignore").rename({target: "target"})
        ds.attrs["target_name"] = target
    units = target_units.strip()
    if "target" in ds.data_vars:
        old = str(ds["target"].attrs.get("units", ""))
        if units and units != UNKNOWN_UNITS:
            if old and old not in (units, UNKNOWN_UNITS):
                warnings.warn(
                    f"{path.name}: the target's units {old!r} are replaced by target_units="
                    f"{units!r}.",
                    stacklevel=3,
                )
            ds["target"].attrs["units"] = units
        elif not old:  # the default never replaces the file's own units
            ds["target"].attrs["units"] = UNKNOWN_UNITS
    if "simulated" in ds.attrs:
        ds.attrs["simulated"] = _as_bool(ds.attrs["simulated"])
    located = "lat" in ds.coords and "lon" in ds.coords
    if located:
        check_lat_lon(ds["lat"].values, ds["lon"].values, name=path.name)
        ds.attrs.setdefault("coordinate_source", "WGS84 lat/lon from the file")
    else:
        ds.attrs.setdefault("coordinate_source", NO_COORDINATES)
    if "group" not in ds.coords and located:
        ids, side = geo.lat_lon_blocks(ds["lat"].values, ds["lon"].values, block_size_m)
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
    target_units: str = UNKNOWN_UNITS,
    licence: str = UNKNOWN_LICENCE,
    citation: str = "",
    crs: str = "",
    spectra_kind: SpectraKind | str = "auto",
    block_size_m: float | None = None,
) -> xr.Dataset:
    """Read your CSV / NetCDF / Zarr file into a validated sample set (layout: module docstring).

    Parameters
    ----------
    path
        ``.csv``, ``.nc`` / ``.nc4`` or ``.zarr``.
    target
        Name of the target column / variable; ``None`` or ``"auto"`` means ``"target"``.
    target_units
        The target's unit, recorded as ``target.attrs["units"]`` (``""`` → ``"unknown"``; for
        NetCDF/Zarr a value other than ``""`` / ``"unknown"`` replaces the file's, which the
        default keeps).
    licence, citation
        Recorded on the result (CSV only; NetCDF/Zarr carry their own attributes).
    crs
        The coordinate reference system of ``x`` / ``y`` columns (e.g. ``"EPSG:32650"``);
        unused when the file has ``lat`` / ``lon``.
    spectra_kind
        How reflectance columns are stored: ``"auto"``, ``"reflectance"``, ``"percent"`` or
        ``"absorbance"`` (:func:`soilbook.data.tables.spectra_to_reflectance`).
    block_size_m
        Side (m) of the spatial blocks made from coordinates when there is no ``group``;
        ``None``: the largest of :data:`soilbook.geo.BLOCK_SIDES_M` giving >= 10 blocks.

    Raises
    ------
    ParameterError
        The path does not exist, is a folder or has an unsupported extension; an unknown
        ``spectra_kind`` or ``crs``.
    SchemaError
        An empty file or one that is not UTF-8 (:func:`check_user_file`, the same checks and
        messages as before a notebook runs), a required column / variable is missing,
        coordinates are not degrees, spectra cannot be told apart; the message shows the
        expected layout or what to set.
    """
    check_user_file(path, target, crs=crs)
    p = Path(path).expanduser()  # what check_user_path checked
    name = column_name(target)
    check_spectra_kind(spectra_kind)
    if block_size_m is not None and not (np.isfinite(block_size_m) and block_size_m > 0):
        raise ParameterError(f"block_size_m={block_size_m!r}; expected a positive size in metres.")
    if p.suffix.lower() == ".csv":
        return _load_csv(
            p,
            name,
            target_units,
            licence,
            citation or f"user data from {p.name}",
            crs=crs,
            spectra_kind=spectra_kind,
            block_size_m=block_size_m,
        )
    ds = _load_array_file(p, name, target_units, block_size_m)
    try:
        return validate_samples(ds)
    except SchemaError as err:
        raise SchemaError(f"{p.name}: {err}") from None


__all__ = [
    "EXPECTED_LAYOUT",
    "NO_COORDINATES",
    "SUPPORTED_EXTENSIONS",
    "UNKNOWN_UNITS",
    "HeaderInfo",
    "check_csv_header",
    "check_path",
    "check_spectra_kind",
    "check_user_file",
    "check_user_path",
    "describe_header",
    "load_user_file",
    "read_netcdf",
]
