"""RaCA soil-carbon stocks with their 61-month TerraClimate series, as a chapter-3 :class:`SocData`.

The files (registry names ``raca_rapidcarbon`` and ``raca_climate_<var>``; public URLs pinned to
commits of the SSL-SoilNet repository, github.com/moienr/SoilNet) are

``RapidCarbon.csv``
    USDA-NRCS Rapid Carbon Assessment sites: ``rcasiteid``, ``Gen_lat`` / ``Gen_long`` (WGS84,
    **generalised to 0.01°** by NRCS, i.e. up to ~0.7 km from the real site) and ``SOCstock100``;
``RaCA_<var>.csv``, one per TerraClimate variable (:data:`~soilbook.data.soc.CLIMATE_VARIABLES`)
    one row per site, one column per month ``YYYYMMDD`` (2010-01-01 … 2015-01-01, **not in time
    order** — sorted here), plus ``system:index``, ``SOCstock100`` and ``rcasiteid``; extracted
    from Earth Engine's ``IDAHO_EPSCOR/TERRACLIMATE`` by the SSL-SoilNet authors. The climate
    files list the sites in another order than ``RapidCarbon.csv``: they are joined on
    ``rcasiteid`` (never by row), and each file's ``SOCstock100`` is checked against
    ``RapidCarbon.csv``.

Choices, checked against the files
----------------------------------
- **Target** ``SOCstock100``: the soil organic carbon **stock** to 100 cm in **Mg C/ha** (a
  stock, not a concentration in g/kg as the official SSL-SoilNet code labels it). 5,943 of
  6,215 rows have one; 0.18–4,114 Mg C/ha, median 86: right-skewed (organic soils), so fit on
  log (``attrs["target_transform_hint"]``). The loader returns the stock itself.
- **Scale factors**: the files hold TerraClimate's stored integers. The Earth Engine catalogue
  (``IDAHO_EPSCOR_TERRACLIMATE``, ``gee:scale``) gives 0.1 for aet, def, pet, soil (mm), srad
  (W/m²), tmmn, tmmx (°C); 0.01 for pdsi (unitless) and vpd (kPa); 0.001 for vap (kPa); none
  (1) for pr, ro and swe (mm). The magnitudes agree (tmmx −144 … 550 → −14.4 … 55.0 °C, vap
  15 … 3265 → 0.015 … 3.3 kPa). :data:`SCALE_FACTORS` are applied, so ``climate`` is in the
  units of :data:`~soilbook.data.soc.CLIMATE_UNITS`.
- **The −999 defect** (SSL-SoilNet defect 1): the extraction wrote ``If(val, val, -999)``, so
  every real **zero** became −999, and so did every masked (no-data) pixel. In the mirrored
  files no variable is ever 0, and −999 is 78 % of the swe cells (no snow), 44 % of def, 23 %
  of ro, 11 % of aet and pet, 1.6 % of pr, 0.4 % of tmmn (0.0 °C), 0.2 % of tmmx, 0.07 % of
  pdsi (their neighbouring months are near 0, never near −9.99, which −999 would also encode).
  The rule (:func:`fix_missing`): srad and vap are never 0 at these latitudes (their smallest
  stored values are 179 and 15), so a site where either is −999 in any month lies on a masked
  pixel and has **no data**: it is dropped with a warning (:data:`NO_DATA_RULE`). In the files
  these are exactly the 4 sites (2 with a stock) where all 13 variables are −999 in all 61
  months — coastal sites on ocean pixels. Every other −999 is a real zero and becomes 0.
- **Duplicates**: two ``rcasiteid`` appear twice. Records of one id with the same
  ``SOCstock100`` and the same climate rows are one site (the first record's coordinates are
  kept; C1507C09's two records lie 0.02° apart); an id whose records disagree is dropped.
- **Labelled / unlabelled**: sites with a stock are the labelled set; the sites without one
  (270 with climate data) are the unlabelled set for climate-only self-supervised pre-training
  (``None`` if fewer than :data:`MIN_UNLABELLED`). 270 is few: pre-training on RaCA should
  also use the climate of the labelled *training* locations (never of the test blocks).
- **Groups**: square spatial blocks (``block_size_km``, default 100 km) on
  :func:`soilbook.geo.local_xy_m` of all kept sites at once, so both sets share one grid. That
  projection scales longitude by the cosine of the mean latitude (≈ 39 °N), so a block's
  east–west side is ~0.84× the nominal side at 49 °N and ~1.16× at 25 °N — enough for block
  labels, not for areas.
- **No image**: there are no Landsat patches in these files (the Earth Engine issue fills
  them), so ``patches`` and ``covariates`` are absent; only climate-based models run on RaCA.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from soilbook import geo
from soilbook.data.schema import sample_set
from soilbook.data.soc import (
    CLIMATE_SCALE_FACTORS,
    CLIMATE_UNITS,
    CLIMATE_VARIABLES,
    SocData,
    months,
)
from soilbook.errors import ParameterError, SchemaError

log = logging.getLogger(__name__)

#: The value the extraction wrote for a zero and for a masked pixel alike.
MISSING_VALUE = -999.0
#: TerraClimate's scale factors, stored x factor = unit
#: (:data:`soilbook.data.soc.CLIMATE_SCALE_FACTORS`).
SCALE_FACTORS: dict[str, float] = CLIMATE_SCALE_FACTORS
#: Variables that are never 0 at the RaCA sites, so a −999 in them marks a masked pixel.
NEVER_ZERO: tuple[str, ...] = ("srad", "vap")
NO_DATA_RULE = (
    "a site has no data when srad or vap (never 0 at these latitudes) is -999 in any month: "
    "its TerraClimate pixel is masked (ocean); such sites are dropped. Every other -999 is a "
    "real zero written as -999 by the extraction's If(val, val, -999) and becomes 0."
)
#: The smallest unlabelled set returned; below it ``SocData.unlabelled`` is None.
MIN_UNLABELLED = 2
#: ``attrs["target_name"]`` and the target's units.
TARGET_NAME = "soc_stock"
TARGET_UNITS = "Mg C/ha"
RAPIDCARBON = "RapidCarbon.csv"

LICENCE = (
    "RaCA: public domain (USDA-NRCS); TerraClimate: CC0 1.0 (Earth Engine catalogue: 'in the "
    "public domain as licensed under the Creative Commons Public Domain (CC0) license'); the "
    "SoilNet repository states no licence for its extraction"
)
CITATION = (
    "Soil Survey Staff (2013). Rapid Carbon Assessment (RaCA) project. USDA Natural Resources "
    "Conservation Service; Wills, S. et al. (2014). Overview of the U.S. Rapid Carbon Assessment "
    "Project: sampling design, initial summary and uncertainty estimates. In Hartemink & "
    "McSweeney (eds), Soil Carbon, Springer, 95-104; Abatzoglou, J. T., Dobrowski, S. Z., Parks, "
    "S. A. & Hegewisch, K. C. (2018). TerraClimate, a high-resolution global dataset of monthly "
    "climate and climatic water balance from 1958-2015. Scientific Data 5, 170191; extracted "
    "with Earth Engine by Kakhani et al. (2024), SSL-SoilNet, github.com/moienr/SoilNet"
)


def registry_name(variable: str | None = None) -> str:
    """The registry name of ``RapidCarbon.csv`` (``None``) or of ``RaCA_<variable>.csv``."""
    return "raca_rapidcarbon" if variable is None else f"raca_climate_{variable}"


def file_name(variable: str | None = None) -> str:
    """``RapidCarbon.csv`` (``None``) or ``RaCA_<variable>.csv``."""
    return RAPIDCARBON if variable is None else f"RaCA_{variable}.csv"


class RawRaca(NamedTuple):
    """The joined files before any fix (:func:`read_raw`).

    Attributes
    ----------
    sites
        One row per site in ``RapidCarbon.csv`` order: ``rcasiteid``, ``lat``, ``lon`` (WGS84,
        0.01°), ``soc_stock`` (Mg C/ha, NaN where unmeasured).
    values
        (site, time, variable) float64, the stored values (scaled integers, −999 as written),
        variables in :data:`~soilbook.data.soc.CLIMATE_VARIABLES` order.
    times
        (61,) datetime64[ns], the first day of each month, sorted.
    notes
        What the join did (duplicates), in sentences.
    """

    sites: pd.DataFrame
    values: np.ndarray
    times: np.ndarray
    notes: list[str]


class MissingFix(NamedTuple):
    """What :func:`fix_missing` returns."""

    values: np.ndarray  # (site, time, variable) stored values with −999 → 0 (no-data sites kept)
    no_data: np.ndarray  # (site,) bool: the site's pixel is masked (NO_DATA_RULE)
    share_missing: dict[str, float]  # per variable: share of −999 cells before the fix
    n_zeros_restored: int  # −999 cells set to 0 at sites with data


def _paths(path: str | os.PathLike[str] | None) -> dict[str | None, Path]:
    """The 14 files: from a folder, or fetched and verified through the registry."""
    keys: list[str | None] = [None, *CLIMATE_VARIABLES]
    if path is None:
        from soilbook.data.registry import fetch

        return {k: fetch(registry_name(k)) for k in keys}
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ParameterError(
            f"path={str(path)!r} is not a folder; give the folder that holds {RAPIDCARBON} and "
            "RaCA_<var>.csv (e.g. a copy of raca_terraclimate/), or None to use the registry."
        )
    missing = [file_name(k) for k in keys if not (folder / file_name(k)).is_file()]
    if missing:
        raise ParameterError(
            f"{folder} lacks {missing}; it must hold {RAPIDCARBON} and RaCA_<var>.csv for "
            f"{list(CLIMATE_VARIABLES)}. Give that folder, or path=None to fetch the files."
        )
    return {k: folder / file_name(k) for k in keys}


def _month_columns(path: Path, columns: list[str]) -> tuple[list[str], np.ndarray]:
    """The ``YYYYMMDD`` columns in time order and their months; they must be the 61 expected."""
    cols = [c for c in columns if len(c) == 8 and c.isdigit()]
    times = pd.to_datetime(cols, format="%Y%m%d").to_numpy()
    order = np.argsort(times)
    cols, times = [cols[i] for i in order], times[order]
    expected = months()
    if len(times) != len(expected) or not np.array_equal(times, expected):
        raise SchemaError(
            f"{path.name}: month columns {cols[:2]}…{cols[-2:]} ({len(cols)} of them) are not "
            f"the 61 months 20100101 … 20150101 (file: {path}). Is it a RaCA_<var>.csv of the "
            "SoilNet repository? Re-fetch it with path=None."
        )
    return cols, times


def _sites(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """RapidCarbon.csv, one row per rcasiteid (duplicates resolved as the module says)."""
    df = pd.read_csv(path)
    need = ["rcasiteid", "Gen_lat", "Gen_long", "SOCstock100"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{path.name} has no column(s) {missing} (file: {path}; columns: {list(df.columns)}). "
            f"Expected the RaCA site table with {need}; re-fetch it with path=None."
        )
    df = df[need].rename(columns={"Gen_lat": "lat", "Gen_long": "lon", "SOCstock100": "soc_stock"})
    df["rcasiteid"] = df["rcasiteid"].astype(str)
    notes = []
    dup = df["rcasiteid"].duplicated(keep=False)
    if dup.any():
        ids = sorted(df.loc[dup, "rcasiteid"].unique())
        notes.append(
            f"{len(ids)} rcasiteid listed more than once in {path.name} ({', '.join(ids)}): "
            "records with the same SOCstock100 and climate are one site (first coordinates kept)"
        )
    return df, notes


def _climate_table(path: Path, variable: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One RaCA_<var>.csv: rcasiteid, SOCstock100 and the months in time order."""
    df = pd.read_csv(path)
    for col in ("rcasiteid", "SOCstock100"):
        if col not in df.columns:
            raise SchemaError(
                f"{path.name} has no {col!r} column (file: {path}). Expected the SoilNet "
                f"extraction of TerraClimate '{variable}'; re-fetch it with path=None."
            )
    cols, times = _month_columns(path, list(df.columns))
    out = df[["rcasiteid", "SOCstock100", *cols]].copy()
    out["rcasiteid"] = out["rcasiteid"].astype(str)
    return out.rename(columns=dict(zip(cols, range(len(cols)), strict=True))), times


def read_raw(path: str | os.PathLike[str] | None = None) -> RawRaca:
    """The 14 files joined on ``rcasiteid``, values as stored (no scale, −999 kept).

    Parameters
    ----------
    path
        A folder holding ``RapidCarbon.csv`` and ``RaCA_<var>.csv``; ``None``: fetched and
        verified through :mod:`soilbook.data.registry` (the cache, ``$SOILBOOK_DATA_MIRROR`` or
        the pinned URLs).

    Raises
    ------
    ParameterError
        ``path`` is not a folder with the 14 files.
    SchemaError
        A file lacks its columns or months, lists a site twice with different values, lacks a
        site of ``RapidCarbon.csv`` or gives it another ``SOCstock100``.
    """
    paths = _paths(path)
    sites, notes = _sites(paths[None])
    first = ~sites["rcasiteid"].duplicated()
    conflict: set[str] = set()
    cubes = []
    times = months()
    for var in CLIMATE_VARIABLES:
        p = paths[var]
        table, times = _climate_table(p, var)
        unique = table.drop_duplicates()
        twice = unique["rcasiteid"].duplicated(keep=False)
        conflict |= set(unique.loc[twice, "rcasiteid"])
        unique = unique[~unique["rcasiteid"].duplicated()].set_index("rcasiteid")
        absent = sorted(set(sites["rcasiteid"]) - set(unique.index))
        if absent:
            raise SchemaError(
                f"{p.name} has no row for {len(absent)} site(s) of {RAPIDCARBON} (e.g. "
                f"{absent[:3]}) (file: {p}). The files must be the registered set; re-fetch "
                "them with path=None."
            )
        rows = unique.loc[sites["rcasiteid"]]
        a = rows["SOCstock100"].to_numpy(float)
        b = sites["soc_stock"].to_numpy(float)
        same = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            bad = sites["rcasiteid"].to_numpy()[~same]
            raise SchemaError(
                f"{p.name} gives another SOCstock100 than {RAPIDCARBON} for {bad.size} site(s) "
                f"(e.g. {list(bad[:3])}) (file: {p}): the rows do not belong together. Re-fetch "
                "the registered files with path=None."
            )
        cubes.append(rows[list(range(len(times)))].to_numpy(np.float64))
    values = np.stack(cubes, axis=-1)  # (site, time, variable), RapidCarbon order
    # SOC or coordinates of duplicated ids: same SOC → one site; different SOC → conflict
    soc_twice = sites[sites["rcasiteid"].duplicated(keep=False)].groupby("rcasiteid")
    conflict |= {i for i, g in soc_twice if g["soc_stock"].nunique(dropna=False) > 1}
    keep = first.to_numpy() & ~sites["rcasiteid"].isin(conflict).to_numpy()
    if conflict:
        msg = (
            f"dropped {len(conflict)} rcasiteid whose records disagree "
            f"({', '.join(sorted(conflict))})"
        )
        notes.append(msg)
        warnings.warn(f"RaCA: {msg}.", stacklevel=2)
    sites = sites[keep].reset_index(drop=True)
    return RawRaca(sites, values[keep], np.asarray(times, dtype="datetime64[ns]"), notes)


def fix_missing(values: np.ndarray, variables: tuple[str, ...] = CLIMATE_VARIABLES) -> MissingFix:
    """Undo the −999 defect on stored values (site, time, variable) by :data:`NO_DATA_RULE`.

    Returns the values with every −999 of a site with data set to 0 (sites without data keep
    their −999 and are flagged in ``no_data``), the share of −999 cells per variable before the
    fix, and how many cells were set to 0. Scale factors are not applied here.
    """
    x = np.array(values, dtype=np.float64)
    missing = x == MISSING_VALUE
    share = {v: float(missing[..., j].mean()) for j, v in enumerate(variables)}
    idx = [variables.index(v) for v in NEVER_ZERO if v in variables]
    no_data = missing[..., idx].any(axis=(1, 2)) if idx else missing.all(axis=(1, 2))
    restore = missing & ~no_data[:, None, None]
    x[restore] = 0.0
    return MissingFix(x, no_data, share, int(restore.sum()))


def to_physical(values: np.ndarray, variables: tuple[str, ...] = CLIMATE_VARIABLES) -> np.ndarray:
    """Stored TerraClimate values (…, variable) times :data:`SCALE_FACTORS` (float64)."""
    factors = np.array([SCALE_FACTORS[v] for v in variables], dtype=np.float64)
    return np.asarray(values, dtype=np.float64) * factors


def load_raca(
    path: str | os.PathLike[str] | None = None,
    *,
    block_size_km: float = 100.0,
    min_unlabelled: int = MIN_UNLABELLED,
) -> SocData:
    """RaCA SOC stocks with their TerraClimate series (every choice: the module docstring).

    Parameters
    ----------
    path
        A folder with the 14 files; ``None`` (default): fetched through the registry.
    block_size_km
        Side of the square spatial blocks that make ``group`` (km, > 0).
    min_unlabelled
        The smallest unlabelled set returned; fewer sites without a stock give ``None``.

    Returns
    -------
    SocData
        ``labelled``: ``target`` (sample) = SOCstock100 in Mg C/ha; ``climate`` (sample, time=61,
        variable=13) float32 in :data:`~soilbook.data.soc.CLIMATE_UNITS`; coords ``group``
        (spatial block), ``lat`` / ``lon`` (0.01°), ``site_id`` (rcasiteid). ``unlabelled``: the
        same without ``target``. No ``patches`` / ``covariates``.

    Raises
    ------
    ParameterError
        A bad ``block_size_km`` or ``path``.
    SchemaError
        Files that do not fit together (:func:`read_raw`).
    """
    if not (np.isfinite(block_size_km) and block_size_km > 0):
        raise ParameterError(
            f"block_size_km={block_size_km!r}; expected a positive side in km (e.g. 100)."
        )
    t0 = time.perf_counter()
    raw = read_raw(path)
    fix = fix_missing(raw.values)
    n_sites = len(raw.sites)
    n_no_data = int(fix.no_data.sum())
    if n_no_data:
        ids = raw.sites["rcasiteid"].to_numpy()[fix.no_data]
        n_lab = int(raw.sites["soc_stock"].notna().to_numpy()[fix.no_data].sum())
        warnings.warn(
            f"RaCA: dropped {n_no_data} of {n_sites} sites without TerraClimate data (masked "
            f"pixels; {n_lab} of them with a stock): {', '.join(ids[:10])}"
            f"{' …' if n_no_data > 10 else ''}. Rule: {NO_DATA_RULE}",
            stacklevel=2,
        )
    keep = ~fix.no_data
    sites = raw.sites[keep].reset_index(drop=True)
    climate = to_physical(fix.values[keep]).astype(np.float32)
    lat, lon = sites["lat"].to_numpy(float), sites["lon"].to_numpy(float)
    groups, _ = geo.lat_lon_blocks(lat, lon, float(block_size_km) * 1000.0)
    labelled = sites["soc_stock"].notna().to_numpy()
    soc = sites["soc_stock"].to_numpy(float)

    share = ", ".join(f"{v} {s:.1%}" for v, s in fix.share_missing.items())
    notes = [
        *raw.notes,
        f"{n_sites} sites; dropped {n_no_data} without data ({NO_DATA_RULE})",
        f"-999 cells before the fix: {share}; {fix.n_zeros_restored} set to 0",
        "scale factors applied: " + ", ".join(f"{v} x{f:g}" for v, f in SCALE_FACTORS.items()),
        f"{int(labelled.sum())} labelled, {int((~labelled).sum())} unlabelled sites",
    ]
    preprocessing = "; ".join(notes)
    common = {
        "climate_times": raw.times,
        "climate_variables": {v: CLIMATE_UNITS[v] for v in CLIMATE_VARIABLES},
        "climate_long_name": "TerraClimate monthly series 2010-01 … 2015-01",
        "climate_attrs": {
            "scale_factors": ", ".join(f"{v}: {f:g}" for v, f in SCALE_FACTORS.items()),
            "missing_value_fix": NO_DATA_RULE,
        },
        "group_long_name": f"spatial block ({block_size_km:g} km)",
        "source": "USDA-NRCS Rapid Carbon Assessment (RapidCarbon.csv) with TerraClimate "
        "(IDAHO_EPSCOR/TERRACLIMATE) series from the SSL-SoilNet repository",
        "licence": LICENCE,
        "citation": CITATION,
        "simulated": False,
        "target_name": TARGET_NAME,
        "group_kind": "spatial block",
        "block_size_km": float(block_size_km),
        "block_size_m": float(block_size_km) * 1000.0,
        "coordinate_source": "RaCA Gen_lat/Gen_long, WGS84, generalised to 0.01 deg by NRCS",
        "preprocessing": preprocessing,
    }

    def part(mask: np.ndarray, with_target: bool):
        return sample_set(
            soc[mask] if with_target else None,
            groups=groups[mask],
            target_units=TARGET_UNITS if with_target else None,
            target_long_name="soil organic carbon stock to 100 cm (RaCA SOCstock100)"
            if with_target
            else None,
            target_attrs={"transform_hint": "log"} if with_target else None,
            climate=climate[mask],
            lat=lat[mask],
            lon=lon[mask],
            sample_ids=np.arange(int(mask.sum())),
            coords={"site_id": ("sample", sites["rcasiteid"].to_numpy(str)[mask])},
            validate=with_target,
            target_transform_hint="fit on log(stock): right-skewed, 0.18-4,114 Mg C/ha, median 86",
            **common,
        )

    lab = part(labelled, True)
    unl = part(~labelled, False) if int((~labelled).sum()) >= int(min_unlabelled) else None
    stock = soc[labelled]
    description = (
        f"Real data: {int(labelled.sum())} USDA-NRCS Rapid Carbon Assessment (RaCA) sites across "
        f"the conterminous USA with their soil organic carbon stock to 100 cm (SOCstock100, "
        f"Mg C/ha — a stock, not a concentration: median {np.median(stock):.0f}, max "
        f"{stock.max():.0f}) and their 61-month TerraClimate series (2010-01 … 2015-01, 13 "
        "variables in physical units after TerraClimate's scale factors)"
        + (f", plus {unl.sizes['sample']} sites without a stock for pre-training" if unl else "")
        + ". The extraction wrote every real zero (no snow, no runoff, 0 °C) as -999; those are "
        f"set back to 0, and the {n_no_data} sites on masked (ocean) pixels are dropped. "
        "Coordinates are generalised to 0.01°; groups are "
        f"{block_size_km:g} km spatial blocks. There are no image patches for RaCA here (the "
        "Earth Engine issue fills them), so only the climate branch and climate-only models run."
    )
    log.info("RaCA loaded in %.2f s: %s", time.perf_counter() - t0, preprocessing)
    return SocData(labelled=lab, unlabelled=unl, description=description)


__all__ = [
    "CITATION",
    "LICENCE",
    "MIN_UNLABELLED",
    "MISSING_VALUE",
    "NEVER_ZERO",
    "NO_DATA_RULE",
    "SCALE_FACTORS",
    "TARGET_NAME",
    "TARGET_UNITS",
    "MissingFix",
    "RawRaca",
    "file_name",
    "fix_missing",
    "load_raca",
    "read_raw",
    "registry_name",
    "to_physical",
]
