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
    ``refl_<nm>``, absorbance columns ``abs_<nm>``, optionally ``@<date>``;
:func:`to_unit_reflectance`, :func:`to_reflectance`
    reflectance stored as percent or as digital numbers (reflectance × 10 000) back to 0-1;
:func:`spectra_to_reflectance`
    the same, and absorbance log10(1/R) told or detected (:data:`SPECTRA_KINDS`, the rule in
    its docstring) and converted to R = 10^-A, or a question to the user when it is ambiguous;
:func:`identifier_columns`
    the columns that are identifiers, not predictors (:data:`IDENTIFIER_RULE`);
:func:`check_lat_lon`, :func:`xy_to_lat_lon`
    degrees that are really projected metres are refused; ``x`` / ``y`` in a CRS become WGS84
    lat/lon (pyproj);
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
    r"^(?P<band>B(?:0[1-9]|1[0-2]|8A)|(?:refl|abs)_(?P<nm>\d+(?:\.\d+)?))(?:@(?P<date>.+))?$"
)

#: How a user's spectra are stored (the ``spectra_kind`` parameter): ``"auto"`` (told from the
#: values and the column names, see :func:`spectra_to_reflectance`), ``"reflectance"`` (0-1,
#: or reflectance × 10 000 when values exceed :data:`MAX_PERCENT`), ``"percent"`` (0-100) or
#: ``"absorbance"`` (log10(1/R), converted to R = 10^-A).
SpectraKind = Literal["auto", "reflectance", "percent", "absorbance"]
SPECTRA_KINDS: tuple[str, ...] = ("auto", "reflectance", "percent", "absorbance")
#: Largest absorbance log10(1/R) taken as plausible (R = 0.01 %); a table whose values stay
#: below it but mostly above 1 cannot be reflectance 0-1 and is too dark to be percent.
MAX_ABSORBANCE = 4.0
#: Largest value read as percent reflectance; above it values are reflectance × 10 000.
MAX_PERCENT = 150.0
#: Visible and near-infrared windows (nm) of the shape test: soils, crops and dry vegetation
#: reflect more in the NIR than in the visible, so reflectance rises and absorbance falls.
_VIS_NM, _NIR_NM = (450.0, 600.0), (750.0, 900.0)


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
    :data:`soilbook.data.real.limesoda.S2_CENTRES_NM`), ``refl_<nm>`` a wavelength in nm
    (``abs_<nm>``: the same, stored as absorbance log10(1/R)); all may end in ``@<date>`` for
    several acquisitions. Other columns are ignored.
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


def _shape_falls(x: np.ndarray, wavelengths_nm: Sequence[float] | None) -> float | None:
    """Share of spectra whose mean in the NIR window is below the visible window's, or None.

    ``x`` is (..., band); None where the wavelengths do not reach both windows.
    """
    if wavelengths_nm is None:
        return None
    w = np.asarray(wavelengths_nm, dtype=np.float64)
    if w.size != x.shape[-1]:
        return None
    vis = (w >= _VIS_NM[0]) & (w <= _VIS_NM[1])
    nir = (w >= _NIR_NM[0]) & (w <= _NIR_NM[1])
    if not (vis.any() and nir.any()):
        return None
    rows = x.reshape(-1, w.size)
    return float(np.mean(rows[:, nir].mean(axis=1) < rows[:, vis].mean(axis=1)))


def _ask_kind(name: str, what: str) -> SchemaError:
    return SchemaError(
        f"{name}: cannot tell how the spectra are stored: {what}. Say which with "
        "spectra_kind='reflectance' (0-1, or reflectance x 10000), 'percent' (0-100) or "
        "'absorbance' (log10(1/R), converted to R = 10^-A)."
    )


def _detect_kind(
    x: np.ndarray, *, name: str, wavelengths_nm: Sequence[float] | None, absorbance_columns: bool
) -> tuple[str, str]:
    """(``"absorbance"`` or ``"reflectance"``, why) for ``spectra_kind="auto"`` (the rule of
    :func:`spectra_to_reflectance`)."""
    if absorbance_columns:
        return "absorbance", "the columns are named abs_<nm>"
    top = float(x.max())
    above_one = float(np.mean(x > 1.0))
    falls = _shape_falls(x, wavelengths_nm)
    shape = "" if falls is None else f"; {falls:.0%} of the spectra fall from visible to NIR"
    if top <= MAX_UNIT_REFLECTANCE:
        if above_one > 0.5:
            return "absorbance", (
                f"{above_one:.0%} of the values are above 1, which reflectance 0-1 cannot be"
            )
        if falls is not None and falls > 0.5:
            raise _ask_kind(
                name,
                f"the values (up to {top:.3g}) fit reflectance 0-1, but {falls:.0%} of the "
                "spectra fall from the visible (450-600 nm) to the NIR (750-900 nm), as "
                "absorbance does and soil or crop reflectance does not",
            )
        return "reflectance", "values 0-1"
    if top <= MAX_ABSORBANCE:
        if above_one > 0.5 or (falls is not None and falls > 0.5):
            return "absorbance", (
                f"values up to {top:.3g}, {above_one:.0%} above 1: too large for reflectance "
                f"0-1, too dark for percent{shape}"
            )
        raise _ask_kind(
            name,
            f"the values reach {top:.3g} (too large for reflectance 0-1) while "
            f"{1 - above_one:.0%} stay below 1 (too dark for percent; absorbance?){shape}",
        )
    return "reflectance", f"values up to {top:.3g}"


def spectra_to_reflectance(
    values: np.ndarray,
    *,
    kind: SpectraKind | str = "auto",
    name: str,
    wavelengths_nm: Sequence[float] | None = None,
    absorbance_columns: bool = False,
    stacklevel: int = 2,
) -> tuple[np.ndarray, str | None]:
    """Reflectance 0-1 (float64) from a user's spectra stored as ``kind``.

    ``values`` is (..., band) with ``wavelengths_nm`` (nm, one per band) along the last axis;
    it must be finite (drop missing rows and refuse infinite cells first).

    ``kind`` (:data:`SPECTRA_KINDS`):

    ``"reflectance"``
        largest value <= :data:`MAX_UNIT_REFLECTANCE` (1.5): reflectance 0-1, kept; above
        :data:`MAX_PERCENT` (150): reflectance x 10 000 (digital numbers), divided (with a
        warning); in between: refused (say ``"percent"``).
    ``"percent"``
        divided by 100; refused when values exceed :data:`MAX_PERCENT`.
    ``"absorbance"``
        A = log10(1/R) → R = 10^-A; refused when values exceed 10 (R = 1e-10).
    ``"auto"`` (the rule, in order)
        1. columns named ``abs_<nm>`` (``absorbance_columns=True``) → absorbance;
        2. largest value <= 1.5: more than half of the values above 1 → absorbance
           (reflectance 0-1 cannot be); else, when the bands reach both 450-600 nm and
           750-900 nm and more than half of the spectra *fall* from the visible to the NIR
           (absorbance does; soil, crop and dry-vegetation reflectance rise) → refused, asking
           for ``kind``; else reflectance 0-1;
        3. largest value in (1.5, :data:`MAX_ABSORBANCE` = 4]: absorbance when more than half
           of the values are above 1 or the spectra fall from visible to NIR (too large for
           0-1, too dark for percent: R < 0.04 %); else refused, asking for ``kind``;
        4. largest value in (4, 150]: percent; above 150: reflectance x 10 000.

    Conversions other than "kept" warn, saying which rule decided and how to override.

    Returns
    -------
    reflectance, note
        The reflectance and, when converted, ``"stored value / 100"``, ``"stored value /
        10000"`` or ``"10^-(stored value) (absorbance log10(1/R))"``.

    Raises
    ------
    SchemaError
        Non-finite values, values that do not fit ``kind``, or an ambiguous table (``"auto"``).
    ParameterError
        An unknown ``kind``.
    """
    if kind not in SPECTRA_KINDS:
        raise ParameterError(
            f"spectra_kind={kind!r} is not allowed; allowed: {list(SPECTRA_KINDS)}."
        )
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise SchemaError(
            f"{name}: the spectra hold {int((~np.isfinite(x)).sum())} missing or infinite "
            "value(s); they must be dropped or fixed before their scale can be told."
        )
    if not x.size:
        return x, None
    top = float(x.max())
    told = kind != "auto"
    why = f"spectra_kind={kind!r}"
    if not told:
        kind, why = _detect_kind(
            x, name=name, wavelengths_nm=wavelengths_nm, absorbance_columns=absorbance_columns
        )
    if kind == "absorbance":
        if top > 10.0:
            raise SchemaError(
                f"{name}: values up to {top:g} are not absorbance log10(1/R) (that would be "
                "R < 1e-10); they look like percent or reflectance x 10000. Set "
                "spectra_kind='auto', 'percent' or 'reflectance'."
            )
        if not told:
            warnings.warn(
                f"{name}: the spectra look like absorbance log10(1/R) ({why}); converting to "
                "reflectance R = 10^-A. If they are reflectance, set spectra_kind='reflectance' "
                "(or 'percent').",
                stacklevel=stacklevel + 1,
            )
        return 10.0 ** (-x), "10^-(stored value) (absorbance log10(1/R))"
    if kind == "percent":
        if top > MAX_PERCENT:
            raise SchemaError(
                f"{name}: values up to {top:g} are not percent reflectance (at most "
                f"{MAX_PERCENT:g}); reflectance x 10000? Set spectra_kind='reflectance' or 'auto'."
            )
        return x / 100.0, "stored value / 100"
    # reflectance: 0-1, percent (auto only) or x 10000
    if top <= MAX_UNIT_REFLECTANCE:
        return x.copy(), None
    if top <= MAX_PERCENT:
        if told:
            raise SchemaError(
                f"{name}: spectra_kind='reflectance' but the values reach {top:g}: neither 0-1 "
                "nor reflectance x 10000. Percent? Set spectra_kind='percent' (or 'auto')."
            )
        scale: Literal["percent", "dn"] = "percent"
    else:
        scale = "dn"
    divisor = _DIVISOR[scale]
    what = "percent" if scale == "percent" else "reflectance x 10000"
    warnings.warn(
        f"{name}: reflectance values up to {top:g} look like {what}; dividing by {divisor:g}. "
        "If that is wrong, say how they are stored with spectra_kind=...",
        stacklevel=stacklevel + 1,
    )
    return x / divisor, f"stored value / {divisor:g}"


# -- identifier columns ------------------------------------------------------------------------

_ID_NAMES = (
    "id", "fid", "oid", "gid", "uid", "uuid", "guid", "objectid", "object_id", "key", "pk",
    "index", "rowid", "row_id", "unnamed: 0",
)  # fmt: skip
_ID_WORDS = ("id", "key", "fid", "oid", "uid", "uuid", "guid", "objectid")
_ID_SUFFIX = re.compile(r"[_\-. ](?:" + "|".join(_ID_WORDS) + r")$", re.IGNORECASE)
_ID_PREFIX = re.compile(r"^(?:id|fid|oid|objectid)[_\-. ]", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z](?:ID|Id|Key)$")
_UNNAMED = re.compile(r"^unnamed: \d+$", re.IGNORECASE)

#: The rule :func:`identifier_columns` applies (also shown to users).
IDENTIFIER_RULE = (
    "a column is an identifier, not a predictor, when its name (ignoring case and a "
    "'<group>:' prefix) is one of " + ", ".join(_ID_NAMES) + "; or ends in _id, _key, _fid, "
    "_oid, _uid, _uuid, _guid or _objectid (also with '-', '.' or a space before it); or starts "
    "with id_, fid_, oid_ or objectid_; or is camelCase ending in ID, Id or Key (SiteID, "
    "pedonKey); or pandas' 'Unnamed: <n>' (a saved row index); or, by its values, it is text "
    "with a different value in every row, or whole numbers that number the rows (a run of "
    "consecutive integers, one per row, at least 10 rows). Rename a column that is a real "
    "predictor."
)


def _id_reason(column: str, values: pd.Series | None) -> str | None:
    if _UNNAMED.match(column.strip()):
        return "pandas' name for an unnamed column (a saved row index)"
    base = column.split(":", 1)[-1].strip()
    low = base.lower()
    if low in _ID_NAMES:
        return "its name is an identifier's"
    if _ID_SUFFIX.search(base) or _ID_PREFIX.match(base) or _ID_CAMEL.search(base):
        return "its name marks an identifier"
    if values is None:
        return None
    v = values.dropna()
    if len(v) < 2:
        return None
    if not pd.api.types.is_numeric_dtype(v):
        if v.nunique() == len(v):
            return "text with a different value in every row"
        return None
    if pd.api.types.is_bool_dtype(v) or len(v) < 10:
        return None
    arr = v.to_numpy(dtype=np.float64)
    if np.all(arr == np.round(arr)):
        ordered = np.sort(arr)
        if np.all(np.diff(ordered) == 1):
            return "whole numbers that number the rows"
    return None


def identifier_columns(columns: Sequence[str], df: pd.DataFrame | None = None) -> dict[str, str]:
    """The identifier columns among ``columns``, each with why (:data:`IDENTIFIER_RULE`).

    Names alone are tested when ``df`` is None; with ``df`` the value rules apply too (text
    unique per row, integers numbering the rows). Returns ``{column: reason}`` in the order of
    ``columns``.
    """
    out: dict[str, str] = {}
    for col in columns:
        reason = _id_reason(col, None if df is None or col not in df.columns else df[col])
        if reason:
            out[col] = reason
    return out


# -- coordinates -------------------------------------------------------------------------------


def check_lat_lon(lat: np.ndarray, lon: np.ndarray, *, name: str) -> None:
    """Raise :class:`SchemaError` unless ``lat`` / ``lon`` look like WGS84 degrees.

    Refused: ``|lat| > 90`` or ``|lon| > 180`` (projected metres or feet read as degrees; the
    message says to name the columns ``x`` / ``y`` and give ``crs``, or that lat and lon look
    swapped), and every sample at (0, 0) (placeholders). A warning when every value fits
    radians (``|lat| <= π/2``, ``|lon| <= π``) with some spread. NaN is ignored here.
    """
    la = np.asarray(lat, dtype=np.float64)
    lo = np.asarray(lon, dtype=np.float64)
    ok = np.isfinite(la) & np.isfinite(lo)
    la, lo = la[ok], lo[ok]
    if not la.size:
        return
    bad_lat, bad_lon = np.abs(la) > 90, np.abs(lo) > 180
    if bad_lat.any() or bad_lon.any():
        swapped = bool(bad_lat.any() and np.all(np.abs(la) <= 180) and np.all(np.abs(lo) <= 90))
        hint = (
            "They look swapped: rename lat to lon and lon to lat."
            if swapped
            else "Values like these are projected coordinates (metres or feet, e.g. UTM), not "
            "degrees: name the columns 'x' and 'y' and give their CRS with crs='EPSG:<code>' "
            "(e.g. 'EPSG:32650' for UTM zone 50N), or convert them to degrees."
        )
        raise SchemaError(
            f"{name}: lat/lon are not WGS84 degrees: {int(bad_lat.sum())} lat value(s) outside "
            f"-90..90 (range {la.min():.6g}..{la.max():.6g}) and {int(bad_lon.sum())} lon "
            f"value(s) outside -180..180 (range {lo.min():.6g}..{lo.max():.6g}). {hint}"
        )
    if la.size > 1 and np.all(np.abs(la) < 1e-9) and np.all(np.abs(lo) < 1e-9):
        raise SchemaError(
            f"{name}: every sample has lat = lon = 0 — placeholders, not locations. Give the "
            "real coordinates, or drop the lat/lon columns and give a 'group' column."
        )
    spread = max(float(np.ptp(la)), float(np.ptp(lo)))
    if np.all(np.abs(la) <= np.pi / 2) and np.all(np.abs(lo) <= np.pi) and spread > 1e-3:
        warnings.warn(
            f"{name}: every lat/lon lies within ±π/2 / ±π: radians? They are read as degrees "
            "(multiply radians by 180/π first).",
            stacklevel=3,
        )


def check_crs(crs: str) -> None:
    """Raise :class:`ParameterError` unless pyproj knows the coordinate reference system ``crs``."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError as err:
        raise ParameterError(
            f"crs={crs!r} is not a coordinate reference system pyproj knows ({err}). Give an "
            "EPSG code such as 'EPSG:32650' (UTM zone 50N) or 'EPSG:3035' (Europe LAEA)."
        ) from None


def xy_to_lat_lon(
    x: np.ndarray, y: np.ndarray, crs: str, *, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 ``(lat, lon)`` in degrees of points ``x``, ``y`` given in ``crs`` (pyproj).

    ``crs`` is anything :meth:`pyproj.CRS.from_user_input` reads (``"EPSG:32650"``, a WKT or
    PROJ string); ``x`` is the easting (or longitude), ``y`` the northing (or latitude),
    whatever the CRS's axis order. Raises :class:`ParameterError` for a ``crs`` pyproj does not
    know and :class:`SchemaError` for points that cannot be transformed (outside the CRS's
    area) or land outside WGS84's range.
    """
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        source = CRS.from_user_input(crs)
    except CRSError as err:
        raise ParameterError(
            f"crs={crs!r} is not a coordinate reference system pyproj knows ({err}). Give an "
            "EPSG code such as 'EPSG:32650' (UTM zone 50N) or 'EPSG:3035' (Europe LAEA)."
        ) from None
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if source.is_projected and xs.size and np.all(np.abs(xs) <= 180) and np.all(np.abs(ys) <= 90):
        warnings.warn(
            f"{name}: x/y all lie within ±180 / ±90 although crs={crs!r} is projected: degrees? "
            "Then name them lat and lon instead (no crs needed).",
            stacklevel=3,
        )
    transformer = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    with np.errstate(all="ignore"):
        lon, lat = transformer.transform(xs, ys)
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    bad = ~(np.isfinite(lat) & np.isfinite(lon)) & np.isfinite(xs) & np.isfinite(ys)
    if bad.any():
        raise SchemaError(
            f"{name}: {int(bad.sum())} point(s) cannot be transformed from {crs!r} to WGS84 "
            f"(first at x={xs[bad][0]:.6g}, y={ys[bad][0]:.6g}): outside the CRS's area? Check "
            "crs=... and the x/y columns."
        )
    check_lat_lon(lat, lon, name=f"{name} (x/y transformed from {crs})")
    return lat, lon


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
    "IDENTIFIER_RULE",
    "MAX_ABSORBANCE",
    "MAX_PERCENT",
    "MAX_UNIT_REFLECTANCE",
    "SPECTRA_KINDS",
    "BandColumns",
    "Scale",
    "SpectraKind",
    "check_crs",
    "check_finite",
    "check_lat_lon",
    "check_numeric",
    "check_path",
    "identifier_columns",
    "parse_band_columns",
    "read_array_file",
    "read_csv",
    "read_header",
    "read_netcdf",
    "require_columns",
    "spectra_to_reflectance",
    "to_reflectance",
    "to_unit_reflectance",
    "xy_to_lat_lon",
]
