"""Your own chapter-3 table: soil organic carbon with a monthly climate series per location.

``data_source="file"`` in the SSL-SoilNet chapter reads a CSV or a NetCDF file into a
:class:`~soilbook.data.soc.SocData` (a labelled set and, from the rows without a target, an
unlabelled set for self-supervised pre-training).

CSV layout (one row per location)
---------------------------------
::

    site,lat,lon,target,clim_pr@2010-01,clim_pr@2010-02,clim_tmmx@2010-01,clim_tmmx@2010-02
    S1,41.20,-96.10,84.5,21,18,-1.5,2.4
    S2,40.95,-97.40,,35,30,-0.8,3.1
    ...

- **Climate columns** are named ``clim_<variable>@<YYYY-MM>``: the variable (a letter, then
  letters, digits or ``_``) and the month, e.g. ``clim_pr@2010-01``. Any variables and any
  months, but every variable needs the same months (they are sorted in time; ``time`` is the
  first day of each month). Variables named as in TerraClimate
  (:data:`~soilbook.data.soc.CLIMATE_VARIABLES`) come first, in that order, then the others in
  the order of the header. Units: ``climate_units={"pr": "mm", ...}``; a TerraClimate name
  without one is taken to be in :data:`~soilbook.data.soc.CLIMATE_UNITS` (physical units, scale
  factors applied), any other variable gets ``"unknown"``. Leave a missing value empty (that row
  is dropped with a warning) and write a zero as 0: −999 is refused, because a missing-value
  code read as a number is the defect this chapter fixes in the RaCA extraction.
- ``target`` (or the column named by ``target_column``): the soil property, in
  ``target_units``. **Rows with an empty target** form the unlabelled set (pre-training only).
- ``group`` (the unit of grouped / spatial cross-validation) **or** ``lat`` and ``lon`` (WGS84
  degrees, checked by :func:`soilbook.data.tables.check_lat_lon`), from which square spatial
  blocks are made over all rows at once (labelled and unlabelled share one grid): side
  ``block_size_km``, or by default the largest of :data:`soilbook.geo.BLOCK_SIDES_M` that gives
  at least 10 occupied blocks. With both, ``group`` makes the folds and the coordinates are kept.
- ``site`` (optional): a name per row, kept as the ``site_id`` coordinate.
- Any other column is not used: identifiers (:data:`soilbook.data.tables.IDENTIFIER_RULE`) are
  skipped silently, other columns are named in a warning (chapter 3's inputs are the climate
  series; image patches come from a NetCDF file).

NetCDF layout
-------------
A dataset in :mod:`soilbook.data.schema` with ``climate`` (sample, time, variable), a
datetime64 ``time`` coordinate and ``variable_units``; optionally ``patches`` (sample, layer, y,
x) with ``layer_group`` and ``covariates``. The target is the data variable ``target_column``
(NaN = unlabelled); ``group`` is made from ``lat`` / ``lon`` as above when absent.

:func:`check_soc_file` runs every check that needs no rows (path, bytes, header or NetCDF
variables) and is cheap enough to run before a notebook starts; :func:`load_soc_file` runs it
first, so the messages are the same either way.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data.checks import check_file_content, check_utf8_text
from soilbook.data.schema import sample_set, validate_samples
from soilbook.data.soc import CLIMATE_UNITS, CLIMATE_VARIABLES, SocData
from soilbook.data.tables import (
    check_finite,
    check_lat_lon,
    check_numeric,
    check_path,
    identifier_columns,
    read_array_file,
    read_csv,
    read_header,
)
from soilbook.errors import DependencyNotFoundError, ParameterError, SchemaError

#: File types :func:`load_soc_file` reads.
SUPPORTED_EXTENSIONS = (".csv", ".nc", ".nc4")
#: Columns with a fixed meaning besides the target and the climate columns.
RESERVED = ("lat", "lon", "group", "site")
#: The climate column rule: ``clim_<variable>@<YYYY-MM>``.
CLIMATE_COLUMN = re.compile(
    r"^clim_(?P<var>[A-Za-z][A-Za-z0-9_]*)@(?P<month>\d{4}-(?:0[1-9]|1[0-2]))$"
)
#: The value refused in climate columns (a missing-value code, not a measurement).
MISSING_CODE = -999.0
UNKNOWN_UNITS = "unknown"
UNKNOWN_LICENCE = "unknown (user data; set licence=...)"
#: The smallest labelled set :func:`load_soc_file` accepts.
MIN_LABELLED = 2

EXPECTED_LAYOUT = (
    "a CSV with one row per location: the target column (empty = unlabelled, used for "
    "pre-training), 'group' or 'lat' and 'lon' (WGS84 degrees), optionally 'site', and climate "
    "columns named clim_<variable>@<YYYY-MM> with the same months for every variable, e.g. "
    "'site,lat,lon,target,clim_pr@2010-01,clim_pr@2010-02,clim_tmmx@2010-01,clim_tmmx@2010-02'; "
    "or a NetCDF file in the soilbook schema with climate (sample, time, variable) and "
    "variable_units. See help(soilbook.data.real.soc_file)."
)


class ClimateColumns(NamedTuple):
    """The climate columns of a header (:func:`parse_climate_columns`)."""

    variables: list[str]  # TerraClimate names first (CLIMATE_VARIABLES order), then header order
    months: list[str]  # "YYYY-MM", sorted
    columns: dict[tuple[str, str], str]  # (variable, month) -> column name


def _fail(path: Path, what: str, todo: str) -> SchemaError:
    return SchemaError(f"{path.name}: {what} (file: {path}). {todo} Expected: {EXPECTED_LAYOUT}")


def parse_climate_columns(path: Path, columns: list[str]) -> ClimateColumns:
    """The ``clim_<variable>@<YYYY-MM>`` columns of a header, checked.

    Raises :class:`SchemaError` when there are none, when a column starts with ``clim_`` but
    breaks the rule (e.g. ``clim_pr_2010-01``, ``clim_pr@2010-1``), or when the variables do not
    all have the same months.
    """
    path = Path(path)
    found: dict[tuple[str, str], str] = {}
    order: list[str] = []
    bad = []
    for col in columns:
        m = CLIMATE_COLUMN.match(col)
        if m:
            found[(m["var"], m["month"])] = col
            if m["var"] not in order:
                order.append(m["var"])
        elif col.lower().startswith("clim"):
            bad.append(col)
    if bad:
        raise _fail(
            path,
            f"the column(s) {bad[:5]} look like climate columns but do not follow the rule "
            "clim_<variable>@<YYYY-MM> (a letter, then letters, digits or '_'; '@'; a 4-digit "
            "year, '-', a 2-digit month)",
            "Rename them, e.g. 'clim_pr@2010-01'.",
        )
    if not found:
        raise _fail(
            path,
            f"no climate columns (columns: {columns[:12]}{' ...' if len(columns) > 12 else ''})",
            "Name each monthly value clim_<variable>@<YYYY-MM>, e.g. 'clim_pr@2010-01'.",
        )
    months_of = {v: {mo for (var, mo) in found if var == v} for v in order}
    every = sorted(set().union(*months_of.values()))
    uneven = {v: sorted(set(every) - ms) for v, ms in months_of.items() if ms != set(every)}
    if uneven:
        shown = "; ".join(
            f"{v} lacks {ms[:4]}{' ...' if len(ms) > 4 else ''}" for v, ms in uneven.items()
        )
        raise _fail(
            path,
            f"the climate variables do not all have the same months ({shown})",
            "Give every variable a column for every month (empty cells are allowed: those rows "
            "are dropped), or delete the extra months.",
        )
    known = [v for v in CLIMATE_VARIABLES if v in order]
    variables = known + [v for v in order if v not in known]
    return ClimateColumns(variables, every, found)


def _check_header(path: Path, columns: list[str], target: str) -> ClimateColumns:
    """What a CSV header must offer chapter 3 (no rows read)."""
    if target not in columns:
        raise _fail(
            path,
            f"no target column {target!r} (columns: {columns[:12]}"
            f"{' ...' if len(columns) > 12 else ''})",
            "Name the column with target_column=..., or rename it 'target'.",
        )
    if "group" not in columns and not ("lat" in columns and "lon" in columns):
        raise _fail(
            path,
            "neither a 'group' column nor 'lat' and 'lon' columns, so no spatial groups can be "
            "made for cross-validation",
            "Add WGS84 'lat' and 'lon' columns (degrees), or a 'group' column (field, region, "
            "block).",
        )
    return parse_climate_columns(path, columns)


def _check_netcdf_layout(path: Path, ds: xr.Dataset, target: str) -> None:
    """The variables and coordinates chapter 3 needs in a NetCDF (read lazily, no values)."""
    if "climate" not in ds.data_vars:
        raise _fail(
            path,
            f"no 'climate' variable (variables: {list(ds.data_vars)})",
            "Store the monthly series as climate (sample, time, variable), e.g. with "
            "soilbook.data.schema.sample_set(climate=..., climate_times=..., "
            "climate_variables=...).to_netcdf(...).",
        )
    if tuple(ds["climate"].dims) != ("sample", "time", "variable"):
        raise _fail(
            path,
            f"'climate' has dims {tuple(ds['climate'].dims)}",
            "Transpose it to (sample, time, variable).",
        )
    if "variable_units" not in ds.coords or "time" not in ds.coords:
        raise _fail(
            path,
            "'climate' lacks its 'time' or 'variable_units' coordinate",
            "Give time (the first day of each month) and variable_units (one unit per variable).",
        )
    if target not in ds.data_vars:
        raise _fail(
            path,
            f"no data variable {target!r} for the target (variables: {list(ds.data_vars)})",
            "Name it with target_column=..., or call it 'target' (NaN = unlabelled).",
        )
    if "group" not in ds.coords and not ("lat" in ds.coords and "lon" in ds.coords):
        raise _fail(
            path,
            "neither a 'group' coordinate nor 'lat' and 'lon'",
            "Add lat/lon (WGS84, along sample) or a group coordinate.",
        )


def _check_target_column(target_column: str) -> str:
    name = str(target_column).strip()
    if not name:
        raise ParameterError(
            "target_column='' names no column; give the name of the target column (default "
            "'target')."
        )
    return name


def check_soc_file(path: str | os.PathLike[str], target_column: str = "target") -> None:
    """Every check of a chapter-3 file that needs no rows parsed: the one pre-run check.

    The path (given, exists, ``.csv`` / ``.nc`` / ``.nc4``, a file, not empty), and for a CSV
    the header (:func:`soilbook.data.tables.read_header`: not empty, no column named twice,
    comma-separated), every byte UTF-8, the target column, ``group`` or ``lat`` + ``lon``, and
    the climate columns (:func:`parse_climate_columns`); for a NetCDF the variables and
    coordinates (opened lazily: no values are read).

    Raises
    ------
    ParameterError
        Path problems or an empty ``target_column``.
    SchemaError
        The content; the message says what is wrong and shows the expected layout.
    """
    target = _check_target_column(target_column)
    p = check_file_content(
        check_path(
            path,
            extensions=SUPPORTED_EXTENSIONS,
            missing_message=(
                "data_source='file' needs data_path: the path of your CSV or NetCDF (.nc) file "
                "with a climate series per location."
            ),
        )
    )
    if p.suffix.lower() == ".csv":
        columns = read_header(p, layout=EXPECTED_LAYOUT)
        check_utf8_text(p)
        _check_header(p, columns, target)
        return
    try:
        with xr.open_dataset(p) as ds:
            _check_netcdf_layout(p, ds, target)
    except ImportError as err:
        raise DependencyNotFoundError(
            "h5py", needed_for=f"reading {p.name} (NetCDF-4/HDF5) ({err})"
        ) from err
    except (ValueError, OSError) as err:
        if isinstance(err, SchemaError):
            raise
        raise SchemaError(
            f"{p.name} cannot be read as NetCDF ({err}) (file: {p}). Save it with xarray's "
            "Dataset.to_netcdf, or give a CSV."
        ) from None


# -- reading -----------------------------------------------------------------------------------


def _side_m(block_size_km: float | None) -> float | None:
    """The block side in metres (None: chosen from the points)."""
    return None if block_size_km is None else float(block_size_km) * 1000.0


def _climate_units(variables: list[str], climate_units: Mapping[str, str] | None) -> dict[str, str]:
    given = dict(climate_units or {})
    unknown = sorted(set(given) - set(variables))
    if unknown:
        raise ParameterError(
            f"climate_units names variable(s) {unknown} that the file does not have; its "
            f"variables: {variables}."
        )
    return {v: given.get(v) or CLIMATE_UNITS.get(v, UNKNOWN_UNITS) for v in variables}


def _unused_columns(path: Path, df: pd.DataFrame, used: set[str]) -> None:
    rest = [c for c in df.columns if c not in used]
    ids = identifier_columns(rest, df)
    other = [c for c in rest if c not in ids]
    if other:
        warnings.warn(
            f"{path.name}: column(s) {other[:10]}{' ...' if len(other) > 10 else ''} are not "
            "used (chapter 3 reads the target, group / lat / lon, site and the "
            "clim_<variable>@<YYYY-MM> columns).",
            stacklevel=4,
        )


def _split(labelled: np.ndarray, min_unlabelled: int) -> tuple[np.ndarray, np.ndarray | None]:
    lab = np.flatnonzero(labelled)
    unl = np.flatnonzero(~labelled)
    return lab, (unl if unl.size >= max(int(min_unlabelled), 1) else None)


def _load_csv(
    path: Path,
    target: str,
    target_units: str,
    climate_units: Mapping[str, str] | None,
    licence: str,
    citation: str,
    block_size_km: float | None,
    min_unlabelled: int,
) -> SocData:
    df = read_csv(path, layout=EXPECTED_LAYOUT)
    clim = _check_header(path, list(df.columns), target)
    units = _climate_units(clim.variables, climate_units)
    cols = [clim.columns[(v, m)] for v in clim.variables for m in clim.months]
    coord_cols = [c for c in ("lat", "lon") if c in df.columns]
    check_numeric(path, df, [target, *cols, *coord_cols])
    check_finite(path, df, [target, *cols, *coord_cols])
    values = df[cols].to_numpy(np.float64)
    if (values == MISSING_CODE).any():
        r, c = np.argwhere(values == MISSING_CODE)[0]
        raise _fail(
            path,
            f"{int((values == MISSING_CODE).sum())} climate cell(s) hold -999 (first: line "
            f"{r + 2}, column {cols[c]!r}), a missing-value code rather than a climate value",
            "Leave missing cells empty (those rows are dropped) and write real zeros (no snow, "
            "no runoff) as 0.",
        )
    _unused_columns(path, df, {target, *RESERVED, *cols})
    need = cols + coord_cols + (["group"] if "group" in df.columns else [])
    na = df[need].isna().any(axis=1).to_numpy()
    if na.any():
        warnings.warn(
            f"{path.name}: dropped {int(na.sum())} row(s) with a missing climate value, "
            "coordinate or group.",
            stacklevel=3,
        )
    df = df[~na].reset_index(drop=True)
    values = values[~na]
    n = len(df)
    labelled = df[target].notna().to_numpy()
    if labelled.sum() < MIN_LABELLED:
        raise _fail(
            path,
            f"only {int(labelled.sum())} usable row(s) with a target value (of {n})",
            f"At least {MIN_LABELLED} rows need a target and complete climate values.",
        )
    climate = values.reshape(n, len(clim.variables), len(clim.months)).transpose(0, 2, 1)
    lat = lon = None
    attrs: dict[str, object] = {"target_name": target}
    if coord_cols:
        lat, lon = df["lat"].to_numpy(float), df["lon"].to_numpy(float)
        check_lat_lon(lat, lon, name=path.name)
        attrs["coordinate_source"] = "WGS84 lat/lon from the file"
    else:
        attrs["coordinate_source"] = "none: the file has no coordinates (groups from 'group')"
    if "group" in df.columns:
        groups = df["group"].astype(str).to_numpy()
        group_long_name = None
        attrs["group_kind"] = "the file's 'group' column"
    else:
        assert lat is not None and lon is not None  # _check_header required them
        groups, side = geo.lat_lon_blocks(lat, lon, _side_m(block_size_km))
        group_long_name = f"spatial block ({side / 1000:g} km)"
        attrs.update(group_kind="spatial block", block_size_m=side, block_size_km=side / 1000)
    coords = {}
    if "site" in df.columns:
        coords["site_id"] = ("sample", df["site"].astype(str).to_numpy())
    times = np.array([np.datetime64(m, "M") for m in clim.months]).astype("datetime64[D]")
    target_values = df[target].to_numpy(np.float64)
    lab, unl = _split(labelled, min_unlabelled)

    def part(rows: np.ndarray, with_target: bool) -> xr.Dataset:
        sub_coords = {k: ("sample", v[1][rows]) for k, v in coords.items()}
        return sample_set(
            target_values[rows] if with_target else None,
            groups=groups[rows],
            group_long_name=group_long_name,
            target_units=(target_units.strip() or UNKNOWN_UNITS) if with_target else None,
            target_long_name=target if with_target else None,
            climate=climate[rows].astype(np.float32),
            climate_times=times,
            climate_variables=units,
            climate_long_name="monthly climate series from the file",
            lat=None if lat is None else lat[rows],
            lon=None if lon is None else lon[rows],
            sample_ids=np.arange(rows.size),
            coords=sub_coords,
            source=f"user file {path.name}",
            licence=licence,
            citation=citation,
            simulated=False,
            validate=with_target,
            **attrs,
        )

    try:
        labelled_ds = part(lab, True)
        unlabelled_ds = None if unl is None else part(unl, False)
    except SchemaError as err:
        raise SchemaError(f"{path.name}: {err}") from None
    return SocData(labelled_ds, unlabelled_ds, _describe(path, labelled_ds, unlabelled_ds))


def _load_netcdf(
    path: Path,
    target: str,
    target_units: str,
    block_size_km: float | None,
    min_unlabelled: int,
) -> SocData:
    ds = read_array_file(path)
    _check_netcdf_layout(path, ds, target)
    if target != "target":
        ds = ds.drop_vars("target", errors="ignore").rename({target: "target"})
    ds.attrs["target_name"] = target
    if target_units.strip():
        ds["target"].attrs["units"] = target_units.strip()
    ds["target"].attrs.setdefault("units", UNKNOWN_UNITS)
    ds["target"].attrs.setdefault("long_name", target)
    if "simulated" in ds.attrs and not isinstance(ds.attrs["simulated"], bool):
        ds.attrs["simulated"] = str(ds.attrs["simulated"]).strip().lower() in ("true", "1", "yes")
    for key, default in (
        ("source", f"user file {path.name}"),
        ("licence", UNKNOWN_LICENCE),
        ("citation", f"user data from {path.name}"),
        ("simulated", False),
    ):
        ds.attrs.setdefault(key, default)
    located = "lat" in ds.coords and "lon" in ds.coords
    if located:
        check_lat_lon(ds["lat"].values, ds["lon"].values, name=path.name)
    if "group" not in ds.coords:
        groups, side = geo.lat_lon_blocks(
            ds["lat"].values, ds["lon"].values, _side_m(block_size_km)
        )
        ds = ds.assign_coords(group=("sample", groups))
        ds.attrs.update(group_kind="spatial block", block_size_m=side, block_size_km=side / 1000)
    labelled = np.isfinite(ds["target"].values.astype(float))
    if labelled.sum() < MIN_LABELLED:
        raise _fail(
            path,
            f"only {int(labelled.sum())} sample(s) with a finite target (of {labelled.size})",
            f"At least {MIN_LABELLED} samples need a target.",
        )
    lab, unl = _split(labelled, min_unlabelled)
    try:
        labelled_ds = validate_samples(ds.isel(sample=lab))
    except SchemaError as err:
        raise SchemaError(f"{path.name}: {err}") from None
    unlabelled_ds = None if unl is None else ds.isel(sample=unl).drop_vars("target")
    return SocData(labelled_ds, unlabelled_ds, _describe(path, labelled_ds, unlabelled_ds))


def _describe(path: Path, labelled: xr.Dataset, unlabelled: xr.Dataset | None) -> str:
    variables = [str(v) for v in labelled["variable"].values]
    t = labelled["time"].values.astype("datetime64[M]")
    return (
        f"Your file {path.name}: {labelled.sizes['sample']} labelled locations"
        + (
            f" and {unlabelled.sizes['sample']} unlabelled ones for pre-training"
            if unlabelled
            else ""
        )
        + f", with a monthly series of {len(variables)} climate variable(s) ({', '.join(variables)})"
        f" over {t.size} months ({t[0]} … {t[-1]}); target {labelled.attrs['target_name']!r} in "
        f"{labelled['target'].attrs['units']}; groups: {labelled.attrs.get('group_kind', 'group')}"
        + (
            "; with image patches."
            if "patches" in labelled.data_vars
            else "; no image patches, so only the climate branch and climate-only models run."
        )
    )


def load_soc_file(
    path: str | os.PathLike[str],
    target_column: str = "target",
    target_units: str = "",
    *,
    climate_units: Mapping[str, str] | None = None,
    licence: str = UNKNOWN_LICENCE,
    citation: str = "",
    block_size_km: float | None = None,
    min_unlabelled: int = 2,
) -> SocData:
    """Read your chapter-3 CSV or NetCDF file (layout: the module docstring) into a SocData.

    Parameters
    ----------
    path
        ``.csv``, ``.nc`` or ``.nc4``.
    target_column
        The target column (CSV) or data variable (NetCDF); empty / NaN values mark the
        unlabelled rows.
    target_units
        The target's unit (``""`` → ``"unknown"``; for NetCDF, a non-empty value replaces the
        file's).
    climate_units
        CSV only: variable → unit; default :data:`~soilbook.data.soc.CLIMATE_UNITS` for
        TerraClimate names, ``"unknown"`` for others.
    licence, citation
        Recorded on the result (CSV; a NetCDF keeps its own attributes where it has them).
    block_size_km
        Side (km) of the spatial blocks made from lat/lon when there is no ``group``; ``None``:
        the largest of :data:`soilbook.geo.BLOCK_SIDES_M` giving >= 10 blocks.
    min_unlabelled
        The smallest unlabelled set returned; fewer rows without a target give ``None``.

    Returns
    -------
    SocData
        ``labelled`` with ``target`` and ``climate`` (sample, time, variable) float32;
        ``unlabelled`` the rows without a target (no ``target``), or ``None``.

    Raises
    ------
    ParameterError
        Path problems, a bad ``block_size_km`` or ``target_column``, ``climate_units`` for
        variables the file lacks.
    SchemaError
        The content: what is wrong, what is allowed, what to do, and the expected layout.
    """
    check_soc_file(path, target_column)
    if block_size_km is not None and not (np.isfinite(block_size_km) and block_size_km > 0):
        raise ParameterError(
            f"block_size_km={block_size_km!r}; expected a positive side in km, or None to choose "
            "one giving at least 10 blocks."
        )
    p = Path(path).expanduser()
    target = _check_target_column(target_column)
    if p.suffix.lower() == ".csv":
        return _load_csv(
            p,
            target,
            target_units,
            climate_units,
            licence,
            citation or f"user data from {p.name}",
            block_size_km,
            min_unlabelled,
        )
    if climate_units:
        warnings.warn(
            f"{p.name}: climate_units is for CSV files; the NetCDF's variable_units are used.",
            stacklevel=2,
        )
    return _load_netcdf(p, target, target_units, block_size_km, min_unlabelled)


__all__ = [
    "CLIMATE_COLUMN",
    "EXPECTED_LAYOUT",
    "MISSING_CODE",
    "SUPPORTED_EXTENSIONS",
    "ClimateColumns",
    "check_soc_file",
    "load_soc_file",
    "parse_climate_columns",
]
