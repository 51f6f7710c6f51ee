"""The Open Soil Spectral Library (OSSL v1.2): lab vis-NIR spectra with soil lab data and sites.

Three gzip-compressed CSV tables (CC-BY 4.0; Safanelli et al. 2023), registered as
``ossl_visnir``, ``ossl_soillab`` and ``ossl_soilsite`` (about 1 GB together; not mirrored, so
the tests write small files in the same layout):

``ossl_visnir_L0_v1.2.csv.gz``
    one row per scan: ``id.layer_uuid_txt`` and ``scan_visnir.<nm>_ref`` for 350-2500 nm in
    2 nm steps, **reflectance as a fraction (0-1)** (OSSL manual), plus scan metadata.
``ossl_soillab_L1_v1.2.csv.gz``
    one row per soil layer, harmonised (level 1) lab values, e.g. ``ec_usda.a364_ds.m``:
    electrical conductivity of a 1:2 soil:water mixture in dS/m (mostly KSSL).
``ossl_soilsite_L0_v1.2.csv.gz``
    one row per layer: ``longitude.point_wgs84_dd``, ``latitude.point_wgs84_dd`` (WGS84),
    ``dataset.code_ascii_txt`` (e.g. ``KSSL.SSL``) and the layer depths.

:func:`read_ossl` joins them on ``id.layer_uuid_txt``, keeps layers that have both a complete
spectrum and the target, averages repeated scans of a layer, interpolates the spectra linearly
onto a wavelength grid and returns a sample set. The VNIR table is read **in chunks and only
the columns the grid needs** (the grid points, or the two measured wavelengths around each),
so memory stays small even for the full library. :func:`load_ossl` fetches the three files
through the registry first (a large download on first use).

Groups for cross-validation are either the OSSL dataset code (``group="dataset"``) or k-means
regions of the coordinates (``group="cluster"``, :func:`soilbook.geo.geographic_clusters`,
as DeepSalt's three-cluster split, but on the sphere).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.real.limesoda_lab import DEFAULT_GRID_NM
from soilbook.data.schema import sample_set
from soilbook.data.spectra import interpolation_matrix
from soilbook.data.tables import to_reflectance
from soilbook.data.targets import resolve_target
from soilbook.errors import ParameterError
from soilbook.geo import geographic_clusters

ID = "id.layer_uuid_txt"
LON = "longitude.point_wgs84_dd"
LAT = "latitude.point_wgs84_dd"
DATASET = "dataset.code_ascii_txt"
DEPTH_TOP = "layer.upper.depth_usda_cm"
DEPTH_BOTTOM = "layer.lower.depth_usda_cm"
_VNIR = re.compile(r"scan_visnir\.(\d+(?:\.\d+)?)_ref")

#: Short target names → (OSSL level-1 column, units, long name).
OSSL_TARGETS: dict[str, tuple[str, str, str]] = {
    "ec": (
        "ec_usda.a364_ds.m",
        "dS/m",
        "electrical conductivity, 1:2 soil:water (USDA a364)",
    ),
    "soc": ("oc_usda.c729_w.pct", "%", "organic carbon (total C without CaCO3, USDA c729)"),
    "ph": ("ph.h2o_usda.a268_index", "1", "pH, 1:1 soil:water (USDA a268)"),
    "clay": ("clay.tot_usda.a334_w.pct", "%", "total clay (USDA a334)"),
    "sand": ("sand.tot_usda.c60_w.pct", "%", "total sand (USDA c60)"),
    "silt": ("silt.tot_usda.c62_w.pct", "%", "total silt (USDA c62)"),
}
_SUFFIX_UNITS = {
    "ds.m": "dS/m",
    "w.pct": "%",
    "index": "1",
    "mg.kg": "mg/kg",
    "cmolc.kg": "cmol(+)/kg",
}

LICENCE = "CC-BY 4.0"
SOURCE = "Open Soil Spectral Library v1.2 (VisNIR L0, soil lab L1, soil site L0)"

PathLike = str | os.PathLike[str]


def _resolve_target(target: str) -> tuple[str, str, str]:
    """(column, units, long name) of a short name of :data:`OSSL_TARGETS` or a raw column."""
    if "_" in str(target) and "." in str(target):  # a raw OSSL column name
        suffix = str(target).rsplit("_", 1)[-1]
        return str(target), _SUFFIX_UNITS.get(suffix, suffix), str(target)
    key = resolve_target(
        target,
        tuple(OSSL_TARGETS),
        where="OSSL",
        hint="Or give an OSSL soil lab column name such as 'ec_usda.a364_ds.m'.",
    )
    return OSSL_TARGETS[key]


def _header(path: PathLike) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except FileNotFoundError:
        raise FileNotFoundError(f"OSSL file not found: {path}") from None


def _require(columns: list[str], needed: list[str], path: PathLike, what: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(
            f"the OSSL {what} file {Path(path).name} has no column(s) {missing} (file: {path}). "
            f"Expected the OSSL v1.2 layout; check that you passed the {what} table in its place."
        )


def visnir_columns(columns: list[str], grid_nm: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The ``scan_visnir.<nm>_ref`` columns needed to interpolate onto ``grid_nm``.

    For each grid point: the column at that wavelength if there is one, else the measured
    wavelengths just below and above it. Raises if the columns do not cover the grid.

    Returns
    -------
    names, wavelengths
        The column names and their wavelengths (nm), increasing.
    """
    found = [(float(m.group(1)), c) for c in columns if (m := _VNIR.fullmatch(c))]
    if not found:
        raise ValueError("no 'scan_visnir.<nm>_ref' columns")
    found.sort()
    wl = np.array([w for w, _ in found])
    grid = np.asarray(grid_nm, float)
    if grid.min() < wl[0] or grid.max() > wl[-1]:
        raise ValueError(
            f"the spectra cover {wl[0]:g}-{wl[-1]:g} nm but the grid needs "
            f"{grid.min():g}-{grid.max():g} nm"
        )
    hi = np.searchsorted(wl, grid, side="left")
    exact = wl[np.minimum(hi, wl.size - 1)] == grid
    idx = set(hi[exact].tolist())
    idx |= set(hi[~exact].tolist()) | set((hi[~exact] - 1).tolist())
    keep = sorted(idx)
    return [found[i][1] for i in keep], wl[keep]


def _read_spectra(
    path: PathLike, ids: set[str], columns: list[str], chunksize: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Mean spectrum per layer id in ``ids`` from the VNIR table, reading only ``columns``."""
    kept: list[pd.DataFrame] = []
    rows = with_target = incomplete = 0
    reader = pd.read_csv(
        path,
        usecols=[ID, *columns],
        dtype={ID: str, **dict.fromkeys(columns, "float32")},
        chunksize=chunksize,
    )
    for chunk in reader:
        rows += len(chunk)
        chunk = chunk[chunk[ID].isin(ids)]
        with_target += len(chunk)
        complete = chunk[columns].notna().all(axis=1)
        incomplete += int((~complete).sum())
        if complete.any():
            kept.append(chunk.loc[complete, [ID, *columns]])
    if kept:
        scans = pd.concat(kept, ignore_index=True)
    else:
        scans = pd.DataFrame({c: pd.Series(dtype="float32") for c in [ID, *columns]})
    n_scans = len(scans)
    spectra = scans.groupby(ID, sort=False)[columns].mean()
    counts = {
        "visnir_rows_read": rows,
        "visnir_rows_with_target": with_target,
        "visnir_rows_incomplete_spectrum": incomplete,
        "repeated_scans_averaged": n_scans - len(spectra),
    }
    return spectra, counts


def _check_args(wavelengths_nm, group: str, chunksize: int) -> np.ndarray:
    grid = DEFAULT_GRID_NM if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ParameterError("wavelengths_nm must be a 1-D, strictly increasing grid in nm.")
    if group not in ("cluster", "dataset"):
        raise ParameterError(f"group={group!r}; expected 'cluster' or 'dataset'.")
    if chunksize < 1:
        raise ParameterError(f"chunksize={chunksize}; expected a positive number of rows.")
    return grid


def _layouts(
    paths: tuple[PathLike, PathLike, PathLike], column: str, grid: np.ndarray, depth: bool
) -> tuple[list[str], np.ndarray, list[str]]:
    """Check every table's header before reading anything big.

    Returns the VNIR columns the grid needs, their wavelengths, and the site columns to read.
    """
    visnir_path, soillab_path, soilsite_path = paths
    vn_cols = _header(visnir_path)
    _require(vn_cols, [ID], visnir_path, "VisNIR")
    try:
        needed, needed_wl = visnir_columns(vn_cols, grid)
    except ValueError as err:
        raise ValueError(f"the OSSL VisNIR file {Path(visnir_path).name}: {err}") from None
    _require(_header(soillab_path), [ID, column], soillab_path, "soil lab")
    site_cols = _header(soilsite_path)
    site_needed = [ID, LON, LAT, DATASET] + ([DEPTH_TOP] if depth else [])
    _require(site_cols, site_needed, soilsite_path, "soil site")
    site_read = site_needed + [
        c for c in (DEPTH_TOP, DEPTH_BOTTOM) if c in site_cols and c not in site_needed
    ]
    return needed, needed_wl, site_read


def _lab_values(
    soillab_path: PathLike, column: str, extra: tuple[str, ...] = ()
) -> tuple[pd.Series, int, pd.DataFrame]:
    """Mean target per layer id (layers without a value dropped), the table's row count, and
    the mean of each ``extra`` column per layer id (NaN where a layer has none)."""
    lab = pd.read_csv(soillab_path, usecols=[ID, column, *extra], dtype={ID: str})
    for c in (column, *extra):
        lab[c] = pd.to_numeric(lab[c], errors="coerce")
    n_lab = len(lab)
    lab = lab.dropna(subset=[ID, column])
    means = lab.groupby(ID, sort=False)[[column, *extra]].mean()
    return means[column], n_lab, means[list(extra)]


def _located(
    table: pd.DataFrame, max_upper_depth_cm: float | None, require_location: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Keep the layers within the depth (and, if required, with valid coordinates)."""
    n_depth_dropped = 0
    if max_upper_depth_cm is not None:
        top = pd.to_numeric(table[DEPTH_TOP], errors="coerce")
        ok = top <= max_upper_depth_cm
        n_depth_dropped = int((~ok).sum())
        table = table[ok]
    lat = pd.to_numeric(table[LAT], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(table[LON], errors="coerce").to_numpy(float)
    located = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    n_unlocated = int((~located).sum())
    if require_location:
        table, lat, lon, located = table[located], lat[located], lon[located], located[located]
    lat = np.where(located, lat, np.nan)
    lon = np.where(located, lon, np.nan)
    counts = {"layers_outside_depth": n_depth_dropped, "layers_without_location": n_unlocated}
    return table, lat, lon, located, counts


def _groups(
    codes: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    located: np.ndarray,
    group: str,
    n_clusters: int,
    seed: int,
) -> tuple[np.ndarray, str]:
    """CV groups (dataset codes or k-means regions) and their description."""
    if group == "dataset":
        return codes, "OSSL dataset code"
    groups = np.full(codes.size, "unlocated", dtype=object)
    if located.any():
        groups[located] = geographic_clusters(
            lat[located], lon[located], n_clusters=n_clusters, seed=seed
        )
    return (
        groups.astype(str),
        f"k-means region of the coordinates ({n_clusters} clusters, seed {seed})",
    )


def read_ossl(
    visnir_path: PathLike,
    soillab_path: PathLike,
    soilsite_path: PathLike,
    target: str = "ec",
    wavelengths_nm: np.ndarray | list[float] | None = None,
    *,
    group: Literal["cluster", "dataset"] = "cluster",
    n_clusters: int = 3,
    seed: int = 0,
    require_location: bool = True,
    max_upper_depth_cm: float | None = None,
    chunksize: int = 2000,
    ancillary: tuple[str, ...] | list[str] = (),
) -> xr.Dataset:
    """OSSL vis-NIR spectra with a soil lab target as a sample set (see the module docstring).

    Parameters
    ----------
    visnir_path, soillab_path, soilsite_path
        The three OSSL v1.2 tables (``.csv`` or ``.csv.gz``).
    target
        ``"ec"`` (dS/m, default), ``"soc"`` (%), ``"ph"``, ``"clay"`` (%), or any soil lab
        column name (units taken from its suffix, e.g. ``_w.pct`` → %).
    wavelengths_nm
        The grid in nm (increasing); default 400-2450 nm every 10 nm (as the lab sets and
        EnMAP). Linear interpolation, no extrapolation.
    group
        ``"cluster"``: k-means regions of the coordinates (``n_clusters``, ``seed``; labels
        ``region_<k>`` from west to east); ``"dataset"``: the OSSL dataset code.
    require_location
        Drop layers without valid coordinates (default). If False they are kept with NaN
        ``lat``/``lon`` and, with ``group="cluster"``, the group ``"unlocated"``.
    max_upper_depth_cm
        Keep only layers whose top is at most this deep (e.g. 0 for surface layers, which a
        satellite sees); needs the site table's depth column. ``None`` keeps every layer.
    chunksize
        Rows per chunk when reading the VNIR table.
    ancillary
        Further soil lab properties to return beside the target (short names of
        :data:`OSSL_TARGETS` such as ``"clay"``, ``"sand"``, or column names), each as a
        coordinate ``anc_<name>`` (NaN where a layer has no value; a missing ancillary value
        never drops a layer). A property whose column is not in the soil lab table is left
        out and named in ``attrs["ancillary_missing"]``.

    Returns
    -------
    xarray.Dataset
        ``reflectance`` (sample, date=1, band; 0-1) with ``band`` ``wl_<nm>`` and
        ``wavelength`` (nm), ``target`` (sample); coordinates ``group``, ``layer_id``,
        ``dataset_code``, ``lat``/``lon``, ``depth_top_cm``/``depth_bottom_cm`` (when the site
        table has them), ``anc_<name>`` per ``ancillary`` property; attrs with licence,
        citation and the row counts of every filter.
    """
    column, units, long_name = _resolve_target(target)
    grid = _check_args(wavelengths_nm, group, chunksize)
    paths = (visnir_path, soillab_path, soilsite_path)
    needed, needed_wl, site_read = _layouts(paths, column, grid, max_upper_depth_cm is not None)
    lab_header = _header(soillab_path)
    anc = {str(a): _resolve_target(a) for a in ancillary}
    anc_missing = [a for a, (c, _, _) in anc.items() if c not in lab_header]
    anc = {a: v for a, v in anc.items() if a not in anc_missing and v[0] != column}

    # -- target, then spectra of the layers that have one
    lab, n_lab, extra = _lab_values(soillab_path, column, tuple(v[0] for v in anc.values()))
    spectra, counts = _read_spectra(visnir_path, set(lab.index), needed, chunksize)
    n_missing_spectrum = int((~lab.index.isin(spectra.index)).sum())
    site = pd.read_csv(soilsite_path, usecols=site_read, dtype={ID: str, DATASET: str})
    site = site.drop_duplicates(subset=ID).set_index(ID)
    table = spectra.join(lab.rename("target"), how="inner").join(extra, how="left")
    table = table.join(site, how="left")
    table, lat, lon, located, kept = _located(table, max_upper_depth_cm, require_location)
    if len(table) == 0:
        raise ValueError(
            f"no OSSL layer has a complete spectrum over {grid.min():g}-{grid.max():g} nm, a "
            f"'{column}' value{' and a location' if require_location else ''} (counts: "
            f"{counts}, layers with the target: {len(lab)}, without a spectrum: "
            f"{n_missing_spectrum}, unlocated: {kept['layers_without_location']})."
        )

    values = table[needed].to_numpy(float)
    # the OSSL manual: reflectance as a fraction; accept a table in percent, never guess more
    scale = "percent" if np.nanmedian(values) > 1.5 else "fraction"
    refl = to_reflectance(values, scale) @ interpolation_matrix(needed_wl, grid).T
    codes = table[DATASET].fillna("unknown").astype(str).to_numpy()
    groups, group_long = _groups(codes, lat, lon, located, group, n_clusters, seed)

    from soilbook.data.registry import get  # the citation lives with the registered files

    coords: dict[str, object] = {
        "layer_id": ("sample", table.index.to_numpy().astype(str), {"long_name": ID}),
        "dataset_code": ("sample", codes),
    }
    for a, (col, a_units, a_long) in anc.items():
        coords[f"anc_{a.lower()}"] = (
            "sample",
            pd.to_numeric(table[col], errors="coerce").to_numpy(float),
            {"units": a_units, "long_name": f"{a_long} (REAL OSSL measurement, ancillary)"},
        )
    for col, name in ((DEPTH_TOP, "depth_top_cm"), (DEPTH_BOTTOM, "depth_bottom_cm")):
        if col in table.columns:
            coords[name] = (
                "sample",
                pd.to_numeric(table[col], errors="coerce").to_numpy(float),
                {"units": "cm"},
            )
    return sample_set(
        table["target"].to_numpy(float),
        groups=groups,
        group_long_name=group_long,
        target_units=units,
        target_long_name=long_name,
        reflectance=refl.astype(np.float32)[:, None, :],
        dates=["lab"],
        bands=[f"wl_{w:g}" for w in grid],
        wavelengths_nm=grid,
        reflectance_long_name="soil reflectance (OSSL VisNIR, lab)",
        reflectance_attrs={
            "resampling": "linear interpolation onto the grid; repeated scans averaged"
        },
        sample_ids=np.arange(len(table)),
        lat=lat,
        lon=lon,
        coords=coords,
        source=SOURCE,
        licence=LICENCE,
        citation=get("ossl_visnir").citation,
        simulated=False,
        target_name=str(target),
        target_column=column,
        group_kind="geographic cluster" if group == "cluster" else "dataset",
        reflectance_scale=scale,
        grid_nm=f"{grid.min():g}-{grid.max():g} nm, {grid.size} points",
        soillab_rows=n_lab,
        layers_with_target=len(lab),
        layers_with_target_without_spectrum=n_missing_spectrum,
        **kept,
        locations_required=bool(require_location),
        ancillary=[a.lower() for a in anc],
        ancillary_missing=anc_missing,
        **counts,
    )


def load_ossl(
    target: str = "ec",
    wavelengths_nm: np.ndarray | list[float] | None = None,
    *,
    progress: bool = True,
    **kwargs,
) -> xr.Dataset:
    """Fetch the three OSSL tables through the registry (about 1 GB on first use), then
    :func:`read_ossl` them. Keyword arguments go to :func:`read_ossl`."""
    from soilbook.data import registry

    paths = [
        registry.fetch(name, progress=progress)
        for name in ("ossl_visnir", "ossl_soillab", "ossl_soilsite")
    ]
    return read_ossl(*paths, target=target, wavelengths_nm=wavelengths_nm, **kwargs)


__all__ = ["OSSL_TARGETS", "load_ossl", "read_ossl", "visnir_columns"]
