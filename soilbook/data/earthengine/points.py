"""A user's sample points and area of interest, read and checked before any Earth Engine request.

Every chapter's ``data_source="earthengine"`` takes a CSV of sample points — one row per sample
with ``lat`` and ``lon`` (WGS84 degrees), the sampling ``date`` (ISO ``YYYY-MM-DD``) and the
measured ``target`` (in the chapter's units), ``id`` optional — and/or an area of interest
``"west,south,east,north"`` in degrees. :func:`read_points` and :func:`parse_aoi` turn them into
the point dicts and the box the recipes take, or raise a :class:`~soilbook.errors.ParameterError`
that names the file, the row and what to do. Pure Python (pandas), no ``ee``.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from soilbook.data.earthengine.checks import check_bbox, check_points
from soilbook.errors import ParameterError

#: Column names accepted for latitude and longitude (case-insensitive), first choice first.
LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "long", "lng", "longitude", "x")

_EXAMPLE = "id,lat,lon,date,target\nS001,37.71,118.86,2021-04-12,4.2"


def _find_column(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first column whose lower-cased name is in ``names`` (in ``names``' order)."""
    lower = {c.strip().lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _read_table(path: Path) -> pd.DataFrame:
    """The CSV at ``path`` as strings; a missing, non-CSV or empty file is a ParameterError."""
    if not path.is_file():
        raise ParameterError(
            f"points_path={str(path)!r} is not a file. What to do: pass the path of a CSV of your "
            f"sample points, e.g.\n{_EXAMPLE}"
        )
    if path.suffix.lower() not in (".csv", ".txt"):
        raise ParameterError(
            f"points_path={str(path)!r} is not a .csv file. What to do: save your points as CSV "
            f"with columns lat, lon, date, target (id optional), e.g.\n{_EXAMPLE}"
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ParameterError(
            f"{path} could not be read as CSV ({type(err).__name__}: {str(err)[:120]}). What to "
            f"do: save it as comma-separated UTF-8 text, e.g.\n{_EXAMPLE}"
        ) from None
    if table.empty:
        raise ParameterError(f"{path} holds no rows. What to do: add one row per sample point.")
    return table


def _numbers(
    table: pd.DataFrame, column: str, path: Path, *, empty_ok: bool = False
) -> list[float]:
    """``table[column]`` as floats; the first unreadable cell is a ParameterError with its row
    (with ``empty_ok`` an empty cell is NaN: an unlabelled point)."""
    out = []
    for row, text in enumerate(table[column], start=2):  # row 1 is the header
        if empty_ok and (text is None or not str(text).strip() or str(text).lower() == "nan"):
            out.append(math.nan)
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ParameterError(
                f"{path} row {row}: {column}={text!r} is not a number. What to do: fill it in "
                "or drop the row (decimal point, not comma)."
            )
        out.append(value)
    return out


def _dates(table: pd.DataFrame, column: str, path: Path) -> list[str]:
    """``table[column]`` as ISO dates; the first unreadable cell is a ParameterError."""
    out = []
    for row, text in enumerate(table[column], start=2):
        try:
            stamp = pd.Timestamp(str(text).strip())
            if pd.isna(stamp):
                raise ValueError("empty")
            out.append(stamp.date().isoformat())
        except (ValueError, TypeError):
            raise ParameterError(
                f"{path} row {row}: {column}={text!r} is not a date. What to do: write dates "
                "as YYYY-MM-DD."
            ) from None
    return out


def read_points(
    path: str | Path,
    *,
    target_column: str = "target",
    need_target: bool = True,
    need_date: bool = True,
    unlabelled_ok: bool = False,
) -> list[dict[str, Any]]:
    """A user's sample points from a CSV, checked: ``[{'id', 'lat', 'lon', 'date', 'target',
    ...}, ...]`` (one dict per row, other columns kept as strings).

    ``lat`` / ``lon`` may also be called latitude / longitude (or y / x), any case; ``id``
    defaults to the row number (``"row2"`` for the first data row). ``date`` becomes an ISO
    string and ``target`` (the column ``target_column``) a float; with ``unlabelled_ok`` an
    empty target cell is NaN (a point without a label, e.g. for pre-training). Raises
    :class:`~soilbook.errors.ParameterError` before any request for a missing file, a
    table without lat/lon, a cell that is not a number or a date, a coordinate out of range or a
    repeated id — naming the row and what to do.
    """
    path = Path(path)
    table = _read_table(path)
    columns = list(table.columns)
    lat_col, lon_col = _find_column(columns, LAT_NAMES), _find_column(columns, LON_NAMES)
    if lat_col is None or lon_col is None:
        raise ParameterError(
            f"{path} has no {'lat' if lat_col is None else 'lon'} column (columns: {columns}). "
            f"What to do: name the coordinate columns lat and lon (WGS84 degrees), e.g.\n{_EXAMPLE}"
        )
    rows = table.to_dict("records")
    for row, lat, lon in zip(
        rows, _numbers(table, lat_col, path), _numbers(table, lon_col, path), strict=True
    ):
        row.pop(lat_col), row.pop(lon_col)
        row["lat"], row["lon"] = lat, lon
    id_col = _find_column(columns, ("id",))
    for i, row in enumerate(rows, start=2):
        row["id"] = str(row.pop(id_col)).strip() if id_col else f"row{i}"
    for name, needed, parse in (
        ("date", need_date, _dates),
        (target_column, need_target, partial(_numbers, empty_ok=unlabelled_ok)),
    ):
        column = _find_column(columns, (name.lower(),))
        if column is None:
            if needed:
                raise ParameterError(
                    f"{path} has no {name!r} column (columns: {columns}). What to do: add it "
                    f"(date as YYYY-MM-DD, {target_column} as the measured value), e.g.\n"
                    f"{_EXAMPLE}"
                )
            continue
        for row, value in zip(rows, parse(table, column, path), strict=True):
            row.pop(column, None)
            row["date" if name == "date" else "target"] = value
    try:
        check_points(rows)
    except ParameterError as err:
        raise ParameterError(f"{path}: {err} (points[i] is data row i + 2)") from None
    return rows


def parse_aoi(text: str) -> tuple[float, float, float, float] | None:
    """An area of interest ``"west,south,east,north"`` (degrees) as a checked box; ``""`` is
    ``None`` (no area)."""
    if not text.strip():
        return None
    parts = [t.strip() for t in text.split(",")]
    try:
        values = [float(t) for t in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ParameterError(
            f"aoi={text!r} is not 'west,south,east,north' in degrees. What to do: pass four "
            "numbers, e.g. aoi='118.8,37.6,119.0,37.9'."
        )
    return check_bbox(values)
