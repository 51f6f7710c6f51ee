"""Reading a user's own file: a CSV table or a NetCDF / Zarr dataset, with errors that say why.

Both chapters read users' files through this module: chapter 1's field table
(:mod:`soilbook.data.real.userfile`) and chapter 2's lab spectra
(:mod:`soilbook.data.labdomain`). Every expected problem is a
:class:`~soilbook.errors.ParameterError` (the path) or a :class:`~soilbook.errors.SchemaError`
(the content) whose message names the file and shows the expected layout:

:func:`check_path`
    a path was given, exists, is a file (a ``.zarr`` store may be a folder) of a supported type;
:func:`read_header` / :func:`read_csv`
    the header row is read with the :mod:`csv` module first, so that an empty file, a file that
    is not UTF-8, a header that names a column twice (pandas would silently rename the copy
    ``target.1`` and use it as a predictor) or a table separated by ``;`` are refused before
    pandas reads the rows;
:func:`require_columns`, :func:`check_numeric`, :func:`check_finite`
    named columns are there, numeric, and hold no ±inf (an ``inf`` is a broken cell, not a
    missing one: it would otherwise pass for a huge reflectance and make :func:`to_unit_reflectance`
    rescale every value); missing values (NaN, empty cells) stay allowed — the readers drop
    those rows with a warning;
:func:`parse_band_columns`
    reflectance columns ``B01``...``B12``, ``B8A`` (Sentinel-2, wavelength = band centre) or
    ``refl_<nm>``, optionally ``@<date>``;
:func:`to_unit_reflectance`, :func:`to_reflectance`
    reflectance stored as percent or as digital numbers (reflectance × 10 000) back to 0-1;
:func:`read_netcdf`, :func:`read_array_file`
    NetCDF / Zarr into memory, with the install command when an engine is missing.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.errors import DependencyNotFoundError, ParameterError, SchemaError, require

#: How reflectance may be stored: percent, 0-1, absorbance log10(1/R), or digital numbers
#: (surface reflectance × 10 000, as Sentinel-2 Level-2A products and LimeSoDa store it).
Scale = Literal["percent", "fraction", "absorbance", "dn"]
#: Largest reflectance a 0-1 table plausibly holds (bright salt crusts and specular pixels
#: reach a little above 1); anything larger is taken to be percent or digital numbers.
MAX_UNIT_REFLECTANCE = 1.5
_DIVISOR = {"percent": 100.0, "dn": 10000.0}

_BAND = re.compile(
    r"^(?P<band>B(?:0[1-9]|1[0-2]|8A)|refl_(?P<nm>\d+(?:\.\d+)?))(?:@(?P<date>.+))?$"
)


# -- the path ----------------------------------------------------------------------------------


def check_path(
    data_path: str | os.PathLike[str] | None,
    *,
    extensions: tuple[str, ...],
    missing_message: str,
    extension_hint: str = "",
) -> Path:
    """Cheap checks of a user's ``data_path``: given, exists, a file, one of ``extensions``.

    A ``.zarr`` store is a folder; any other path must be a file.

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
    if path.is_dir() and suffix != ".zarr":
        raise ParameterError(
            f"data_path={str(data_path)!r} is a folder (resolved to {path.resolve()}); give the "
            f"path of the {suffix} file inside it."
        )
    return path


# -- CSV tables --------------------------------------------------------------------------------


def _where(path: Path) -> str:
    return f"(file: {path})"


def read_header(path: Path, *, layout: str) -> list[str]:
    """The column names of a CSV's header row, stripped of spaces, each named once.

    Raises
    ------
    ParameterError
        ``path`` is a folder.
    SchemaError
        The file is empty, is not UTF-8 text, has a header that names a column twice, or looks
        separated by ``;`` or tabs instead of commas. ``layout`` (the expected layout) ends the
        message.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except IsADirectoryError:
        raise ParameterError(f"{path.name} is a folder, not a CSV file {_where(path)}.") from None
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None
    if not header or not any(c.strip() for c in header):
        raise SchemaError(f"{path.name} is empty: no header row {_where(path)}. Expected: {layout}")
    columns = [c.strip() for c in header]
    if len(columns) == 1 and (";" in columns[0] or "\t" in columns[0]):
        sep = "';'" if ";" in columns[0] else "tabs"
        raise SchemaError(
            f"{path.name} seems to be separated by {sep}, not commas (its header is one column "
            f"{columns[0][:60]!r}) {_where(path)}. Save it as comma-separated values. "
            f"Expected: {layout}"
        )
    _refuse_duplicates(path, columns, layout)
    return columns


def _not_utf8(path: Path, err: UnicodeDecodeError) -> SchemaError:
    byte = err.object[err.start : err.start + 1].hex() if err.object else "?"
    return SchemaError(
        f"{path.name} is not UTF-8 text: the byte 0x{byte} at position {err.start} cannot be "
        f"decoded {_where(path)}. Save the table as UTF-8 (spreadsheet programs call it "
        "'CSV UTF-8') and try again."
    )


def _refuse_duplicates(path: Path, columns: list[str], layout: str) -> None:
    counts = Counter(columns)
    dups = [c for c, k in counts.items() if k > 1]
    if dups:
        where = {c: [i + 1 for i, name in enumerate(columns) if name == c] for c in dups}
        raise SchemaError(
            f"{path.name} names the column(s) {dups} more than once (positions {where}) "
            f"{_where(path)}. A repeated column would be read as a second column (pandas calls "
            "the copy '<name>.1'), so a copy of the target would become a predictor. Rename or "
            f"delete the copies. Expected: {layout}"
        )


def read_csv(path: Path, *, layout: str) -> pd.DataFrame:
    """A user's CSV as a DataFrame whose column names are stripped and unique.

    The header is checked first (:func:`read_header`); the rows are read by pandas. Raises
    :class:`SchemaError` (and :class:`ParameterError` for a folder) as :func:`read_header`
    does, and for rows pandas cannot parse (e.g. more fields than the header).
    """
    columns = read_header(path, layout=layout)
    try:
        df = pd.read_csv(path)
    except UnicodeDecodeError as err:
        raise _not_utf8(Path(path), err) from None
    except pd.errors.ParserError as err:
        raise SchemaError(
            f"{Path(path).name} cannot be read as a CSV table ({err}) {_where(Path(path))}. "
            f"Expected: {layout}"
        ) from None
    df.columns = columns
    return df


def require_columns(
    path: Path, columns: Sequence[str], needed: Sequence[str], *, layout: str
) -> None:
    """Raise :class:`SchemaError` naming the ``needed`` columns that are not in ``columns``."""
    missing = [c for c in needed if c not in columns]
    if missing:
        shown = list(columns[:12])
        more = " ..." if len(columns) > 12 else ""
        raise SchemaError(
            f"{Path(path).name} has no column(s) {missing} (file: {path}; columns: "
            f"{shown}{more}). Expected: {layout}"
        )


def check_numeric(path: Path, df: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`SchemaError` naming the ``columns`` of ``df`` that hold text."""
    text = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if text:
        raise SchemaError(
            f"{Path(path).name}: column(s) {text} are not numeric {_where(Path(path))}; a value "
            "that is not a number (a word, a comma as decimal mark, a unit) makes the whole "
            "column text. Fix those cells, or encode categories as numbers."
        )


def check_finite(
    path: Path, df: pd.DataFrame, columns: Sequence[str], *, rows_are: str = "lines"
) -> None:
    """Raise :class:`SchemaError` naming the cells of ``columns`` that hold ±inf.

    Missing values (NaN, empty cells) are allowed here; the readers drop those rows with a
    warning. With ``rows_are="lines"`` the cells are named by the CSV's line number (the header
    is line 1), so this must run before rows are dropped or reordered (``df`` keeps pandas'
    default index); with ``"samples"`` by the index itself (e.g. a NetCDF's sample positions).
    """
    if not len(columns) or df.empty:
        return
    values = df[list(columns)].to_numpy(dtype=np.float64)
    rows, cols = np.nonzero(np.isinf(values))
    if rows.size:
        first = 2 if rows_are == "lines" else 0
        kind = "line" if rows_are == "lines" else "sample"
        cells = [
            f"{kind} {int(df.index[r]) + first} column {columns[c]!r}"
            for r, c in zip(rows[:5], cols[:5], strict=True)
        ]
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        raise SchemaError(
            f"{Path(path).name}: {rows.size} cell(s) hold an infinite value ({'; '.join(cells)}"
            f"{more}) {_where(Path(path))}. Reflectance, covariates, coordinates and the target "
            "must be finite numbers; fix those cells or leave them empty (rows with empty cells "
            "are dropped with a warning)."
        )


# -- reflectance columns and scale -------------------------------------------------------------


class BandColumns(NamedTuple):
    """The reflectance columns of a header (see :func:`parse_band_columns`)."""

    dates: list[str]  # sorted; "" where the columns have no @<date>
    bands: list[str]  # sorted by wavelength
    wavelengths_nm: list[float]  # one per band
    columns: dict[tuple[str, str], str]  # (date, band) -> column name


def parse_band_columns(columns: Sequence[str]) -> BandColumns:
    """The reflectance columns among ``columns``.

    ``B01``...``B12`` and ``B8A`` are Sentinel-2 bands (wavelength = the band centre of
    :data:`soilbook.data.real.limesoda.S2_CENTRES_NM`), ``refl_<nm>`` a wavelength in nm; both
    may end in ``@<date>`` for several acquisitions. Other columns are ignored.
    """
    from soilbook.data.real.limesoda import S2_CENTRES_NM

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
    return BandColumns(dates, bands, [wl[b] for b in bands], found)


def to_reflectance(spectra: np.ndarray, scale: Scale) -> np.ndarray:
    """Convert spectra stored in ``scale`` to reflectance 0-1 (float64)."""
    x = np.asarray(spectra, float)
    if scale in _DIVISOR:
        return x / _DIVISOR[scale]
    if scale == "fraction":
        return x.copy()
    if scale == "absorbance":
        return 10.0 ** (-x)
    raise ValueError(f"scale={scale!r}; expected 'percent', 'fraction', 'absorbance' or 'dn'")


def to_unit_reflectance(
    values: np.ndarray,
    *,
    name: str,
    large: Literal["percent", "dn"],
    stacklevel: int = 2,
) -> tuple[np.ndarray, str | None]:
    """Reflectance 0-1 from a user's table that may store percent or digital numbers.

    A table whose largest value is above :data:`MAX_UNIT_REFLECTANCE` is taken to store
    ``large`` (``"percent"``: divided by 100; ``"dn"``: reflectance × 10 000, divided by
    10 000), with a warning; otherwise it is returned as it is (float64).

    ``values`` must be finite (no NaN or ±inf: drop missing rows and refuse infinite cells
    first, :func:`check_finite`), since one wrong value would decide the scale of all of them.

    Returns
    -------
    values, note
        The reflectance and, when it was divided, ``"stored value / <divisor>"``.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise SchemaError(
            f"{name}: reflectance holds {int((~np.isfinite(x)).sum())} missing or infinite "
            "value(s); they must be dropped or fixed before the scale (0-1, percent or x 10000) "
            "can be told."
        )
    if not x.size or float(x.max()) <= MAX_UNIT_REFLECTANCE:
        return x, None
    top = float(x.max())
    divisor = _DIVISOR[large]
    what = "percent" if large == "percent" else "reflectance x 10000"
    warnings.warn(
        f"{name}: reflectance values up to {top:g} look like {what}; dividing by {divisor:g}.",
        stacklevel=stacklevel + 1,
    )
    return to_reflectance(x, large), f"stored value / {divisor:g}"


# -- NetCDF and Zarr ---------------------------------------------------------------------------


def read_netcdf(path: Path) -> xr.Dataset:
    """Load a NetCDF file into memory, with a clear message when it cannot be read.

    Raises :class:`~soilbook.errors.DependencyNotFoundError` when no NetCDF-4 engine is
    installed and :class:`SchemaError` when the file is not NetCDF.
    """
    path = Path(path)
    try:
        with xr.open_dataset(path) as opened:
            return opened.load()
    except ImportError as err:
        raise DependencyNotFoundError(
            "h5py",
            needed_for=f"reading {path.name} (NetCDF-4/HDF5) with the h5netcdf engine; the "
            f"netCDF4 package works too (original error: {err})",
        ) from err
    except (ValueError, OSError) as err:
        raise SchemaError(
            f"{path.name} cannot be read as NetCDF ({err}) {_where(path)}. Save the dataset "
            "with xarray's Dataset.to_netcdf, or give a CSV."
        ) from None


def read_array_file(path: Path) -> xr.Dataset:
    """A NetCDF (``.nc``, ``.nc4``) or Zarr (``.zarr``, needs ``zarr``) dataset, in memory."""
    path = Path(path)
    if path.suffix.lower() == ".zarr":
        require("zarr", extra="zarr", needed_for=f"reading {path.name} (or save it as NetCDF, .nc)")
        return xr.open_zarr(path).load()
    return read_netcdf(path)


__all__ = [
    "MAX_UNIT_REFLECTANCE",
    "BandColumns",
    "Scale",
    "check_finite",
    "check_numeric",
    "check_path",
    "parse_band_columns",
    "read_array_file",
    "read_csv",
    "read_header",
    "read_netcdf",
    "require_columns",
    "to_reflectance",
    "to_unit_reflectance",
]
