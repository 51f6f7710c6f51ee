"""Lab and satellite domains for the DeepSalt chapter (lab-to-satellite spectral transfer).

:func:`load_transfer` assembles the three sample sets a teacher-student transfer model needs:

``lab``
    laboratory spectra at many sites, with labels: the **teacher's** domain;
``satellite``
    one labelled EnMAP pixel at each of a small subset of the lab sites (the **paired** sites,
    same ``site`` id): the **student's** labelled data;
``unlabelled``
    many EnMAP pixels without labels (around lab-only sites, next to paired sites and, where
    spare spectra exist, away from any lab site): for domain adaptation.

What is real and what is simulated
----------------------------------
``target="salinity"``
    Lab spectra: **real** ICRAF-ISRIC soil spectra (earthlib library, with the profile's
    latitude/longitude) **plus a simulated salt crust** (:func:`~soilbook.data.simulate.transfer.add_salt`)
    for an EC drawn from :func:`~soilbook.data.simulate.transfer.sample_ec`. The **EC labels
    are simulated**; the soils and their locations are real. Regions are k-means clusters of
    the real coordinates (:func:`soilbook.geo.geographic_clusters`).
``target="soc"``
    Lab spectra and SOC labels are **real** (LimeSoDa vis-NIR sets, :func:`~soilbook.data.real.limesoda_lab.load_limesoda_lab`);
    regions are the LimeSoDa datasets (CV.98, SC.93, SSP.460), so their number is fixed.

``lab_source="file"`` (any ``target`` name)
    Lab spectra and labels are **real**: your own CSV (``refl_<nm>`` columns, a target column,
    ``lat``/``lon``, optional ``group`` and ``site``) or NetCDF sample set (``data_path``),
    interpolated onto :data:`LAB_GRID_NM`. Regions are k-means clusters of ``lat``/``lon``
    unless the file has a ``group`` column.
``lab_source="ossl"``
    Lab spectra and labels are **real**: Open Soil Spectral Library vis-NIR spectra with the
    measured EC (``target="salinity"``, dS/m, 1:2 soil:water) or organic carbon
    (``target="soc"``, %), :func:`soilbook.data.real.ossl.load_ossl` (about 1 GB downloaded on
    first use). Regions are k-means clusters of the coordinates.

In every case every **satellite pixel is simulated** from a lab spectrum with
:func:`~soilbook.data.simulate.transfer.lab_to_satellite` (moisture, vegetation cover,
illumination, spectral shift, EnMAP response functions, sensor noise) and only the usable
EnMAP bands are kept (:func:`soilbook.data.spectra.usable_bands`: 216 of 224, water-vapour
bands removed). Every variable carries ``attrs["simulated"]``.

Choices
-------
- **Lab grid.** 400-2450 nm every 10 nm (206 points, :data:`LAB_GRID_NM`). earthlib leaves
  out 1360-1450 and 1800-1950 nm; those 26 points are **linearly interpolated** (the same
  bridging :func:`soilbook.data.spectra.resample` does) and flagged by the band coordinate
  ``gap_filled``, so the reflectance has no NaN. The salt crust is then added on the full
  grid, so its 1450/1940 nm absorptions do show in the gap-filled lab spectra.
- **A site is one lab sample.** ICRAF stores several depths per profile (4,065 spectra with
  coordinates at 604 locations), so several sites may share a location; they always share
  the region. Each paired site's pixel is simulated from that sample's own spectrum.
- **Stratified pairing.** Within every region ``max(2, round(paired_fraction * n))`` sites
  are paired, so each region can be held out with paired test sites;
  :data:`MIN_PAIRED_TRAIN` paired sites must remain when any region is held out.
- **Unlabelled pixels.** ``unlabelled_per_site`` pixels
  (:func:`~soilbook.data.simulate.transfer.simulate_satellite_pixels`, within 250 m) around
  every lab-only site and around a random half of the paired sites (``site`` = that site),
  plus around spare spectra that are not lab sites (``site`` = ``''``, region of the nearest
  lab site; salinity only, or SOC with ``n_sites`` below the 651 samples). Their labels are
  withheld: ``unlabelled`` has no ``target``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data import spectra as spec
from soilbook.data.schema import SchemaError, validate_samples
from soilbook.data.simulate import transfer as tr
from soilbook.errors import ParameterError

#: Targets :func:`load_transfer` knows.
TARGETS = ("salinity", "soc")
#: The lab wavelength grid (nm).
LAB_GRID_NM = np.arange(400.0, 2451.0, 10.0)
#: Regions of ``target="soc"``: the LimeSoDa vis-NIR sets that report SOC in % on the grid.
SOC_REGIONS = ("CV.98", "SC.93", "SSP.460")
#: Default number of geographic regions for ``target="salinity"``.
DEFAULT_N_REGIONS = 5
#: Fewest paired sites drawn in every region (the test sites when it is held out).
MIN_PAIRED_PER_REGION = 2
#: Fewest paired sites that must remain for training when any one region is held out.
MIN_PAIRED_TRAIN = 10
#: Off-site unlabelled pixels come from at most ``n_sites * OFFSITE_SHARE`` spare spectra.
OFFSITE_SHARE = 0.25
_SRF_KINDS = ("gaussian", "table")
#: Where the lab spectra come from (``lab_source``): the bundled libraries, your own file, OSSL.
LAB_SOURCES = ("library", "file", "ossl")
#: File types ``lab_source="file"`` reads.
LAB_FILE_EXTENSIONS = (".csv", ".nc", ".nc4")
#: ``target`` → OSSL target of :func:`soilbook.data.real.ossl.load_ossl` (``lab_source="ossl"``).
OSSL_TARGET_OF = {"salinity": "ec", "soc": "soc"}
_LAB_FILE_LAYOUT = (
    "a CSV with one row per lab sample: reflectance columns refl_<nm> (0-1, or percent) "
    "covering 400-2450 nm, the target column (target_column=..., default 'target'), 'lat' and "
    "'lon' (WGS84 degrees), optional 'group' (region) and 'site' (unique id); e.g. "
    "'site,lat,lon,target,refl_400,refl_410,...,refl_2450'. Or a NetCDF (.nc) sample set with "
    "reflectance (sample, [date,] band), a wavelength coordinate (nm), the target and lat/lon."
)
_SIMULATED_LICENCE = "CC0-1.0 (simulated parts, generated by soilbook)"


@dataclass
class TransferData:
    """The lab, satellite and unlabelled sample sets of :func:`load_transfer`.

    Attributes
    ----------
    satellite
        Labelled satellite pixels at the paired sites (a valid sample set): ``reflectance``
        (sample, date=1, band) at the usable EnMAP bands (``wavelength`` nm), ``target``,
        ``group`` (region), coordinates ``site``, ``lat``, ``lon``; ``attrs["domain"]`` "satellite".
    lab
        Labelled lab spectra on :data:`LAB_GRID_NM` (a valid sample set): paired and lab-only
        sites; coordinate ``paired`` (bool) says which sites also have a pixel in ``satellite``
        (same ``site`` id); ``attrs["domain"]`` "lab".
    unlabelled
        Satellite pixels without labels: ``reflectance`` as in ``satellite``, ``group``,
        ``site`` (``''`` when not at a lab site), ``lat``, ``lon``, ``origin``; no ``target``.
    description
        One paragraph saying what is real and what is simulated.
    """

    satellite: xr.Dataset
    lab: xr.Dataset
    unlabelled: xr.Dataset
    description: str


def region_ids(
    target: str, n_regions: int | None = None, lab_source: str = "library"
) -> tuple[str, ...]:
    """The region ids :func:`load_transfer` will use for ``target`` (no data are read).

    With ``lab_source="file"`` and a ``group`` column in the file, the regions are that
    column's values instead.
    """
    if target == "soc" and lab_source == "library":
        return SOC_REGIONS
    n = DEFAULT_N_REGIONS if n_regions is None else int(n_regions)
    return tuple(f"region_{i}" for i in range(n))


def check_transfer_args(
    target: str,
    *,
    n_sites: int,
    paired_fraction: float,
    unlabelled_per_site: int,
    n_regions: int | None,
    holdout_region: str | None = None,
    lab_source: str = "library",
    data_path: str | os.PathLike[str] | None = None,
    target_column: str = "target",
) -> None:
    """Check :func:`load_transfer`'s arguments cheaply (no data read).

    Raises :class:`~soilbook.errors.ParameterError` saying what is wrong and what to do. The
    number of paired sites is estimated here as ``paired_fraction * n_sites``;
    :func:`load_transfer` repeats the check on the sites it actually draws.

    ``n_regions`` may be None (5 for salinity; for SOC from the library the regions are the
    three LimeSoDa sets, so only None or 3 are accepted).

    ``lab_source`` is ``"library"`` (bundled ICRAF / LimeSoDa), ``"file"`` (``data_path``: your
    CSV or NetCDF; ``target`` then only names the property) or ``"ossl"`` (``target``
    ``"salinity"`` or ``"soc"``). For a CSV the header is read to check the required columns.
    """
    if lab_source not in LAB_SOURCES:
        raise ParameterError(
            f"lab_source={lab_source!r} is not known; allowed: {list(LAB_SOURCES)} ('library': "
            "the bundled ICRAF / LimeSoDa spectra; 'file': your own lab spectra in data_path; "
            "'ossl': the Open Soil Spectral Library, downloaded on first use)."
        )
    file_groups = False
    if lab_source == "library" and target not in TARGETS:
        raise ParameterError(
            f"target={target!r} is not known; allowed: {list(TARGETS)} ('salinity': simulated "
            "EC on real ICRAF-ISRIC spectra; 'soc': real LimeSoDa SOC)."
        )
    if lab_source == "ossl" and target not in OSSL_TARGET_OF:
        raise ParameterError(
            f"target={target!r} is not available with lab_source='ossl'; allowed: "
            f"{list(OSSL_TARGET_OF)} ('salinity': measured EC in dS/m; 'soc': organic carbon, %)."
        )
    if lab_source == "file":
        if not isinstance(target, str) or not target.strip():
            raise ParameterError(
                f"target={target!r}; with lab_source='file' give the property's name (e.g. "
                "'salinity'); the column is named by target_column."
            )
        path = _check_lab_path(data_path)
        file_groups = True  # a NetCDF's regions are only known once it is read
        if path.suffix.lower() == ".csv":
            columns = _csv_columns(path)
            _require_lab_columns(path, columns, target_column)
            file_groups = "group" in columns
    if isinstance(n_sites, bool) or not isinstance(n_sites, int | np.integer) or n_sites < 1:
        raise ParameterError(f"n_sites={n_sites!r}; expected a positive int (e.g. 800).")
    if (
        isinstance(paired_fraction, bool)
        or not isinstance(paired_fraction, int | float | np.floating)
        or not 0.0 < float(paired_fraction) <= 1.0
    ):
        raise ParameterError(
            f"paired_fraction={paired_fraction!r} must lie in (0, 1]: the share of lab sites "
            "that also get a labelled satellite pixel (e.g. 0.25)."
        )
    if (
        isinstance(unlabelled_per_site, bool)
        or not isinstance(unlabelled_per_site, int | np.integer)
        or unlabelled_per_site < 0
    ):
        raise ParameterError(
            f"unlabelled_per_site={unlabelled_per_site!r}; expected an int >= 0 (unlabelled "
            "satellite pixels simulated around a site; 0 = none)."
        )
    if target == "soc" and lab_source == "library":
        if n_regions is not None and n_regions != len(SOC_REGIONS):
            raise ParameterError(
                f"n_regions={n_regions!r} cannot be used with target='soc': its regions are the "
                f"{len(SOC_REGIONS)} LimeSoDa datasets {list(SOC_REGIONS)}, fixed by the data. "
                f"Pass n_regions=None (or {len(SOC_REGIONS)})."
            )
        k = len(SOC_REGIONS)
    else:
        k = DEFAULT_N_REGIONS if n_regions is None else n_regions
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
            raise ParameterError(
                f"n_regions={n_regions!r}; expected an int >= 2 (leave-one-region-out needs at "
                "least two geographic regions)."
            )
        if k > n_sites:
            raise ParameterError(f"n_regions={k} exceeds n_sites={n_sites}; ask for fewer regions.")
    n_paired = max(round(float(paired_fraction) * n_sites), MIN_PAIRED_PER_REGION * k)
    n_train = n_paired * (k - 1) / k
    if n_paired > n_sites or n_train < MIN_PAIRED_TRAIN:
        raise ParameterError(
            f"too few paired sites for distillation: about {n_paired} paired sites "
            f"(paired_fraction={paired_fraction} x n_sites={n_sites}) leave about {n_train:.0f} "
            f"for training when one of {k} regions is held out; at least {MIN_PAIRED_TRAIN} are "
            "needed. Increase n_sites or paired_fraction, or use fewer regions."
        )
    if holdout_region is not None and not file_groups:
        ids = region_ids(target, k, lab_source)
        if holdout_region not in ids:
            raise ParameterError(
                f"holdout_region={holdout_region!r} is not a region of target={target!r}; "
                f"allowed: {list(ids)} (or None for no hold-out)."
            )


# -- the lab domain ----------------------------------------------------------------------------


@dataclass
class _Pool:
    """Lab sites (and spare spectra) on the lab grid, before pairing."""

    values: np.ndarray  # (n, grid) float64, the lab spectra (with salt for salinity)
    target: np.ndarray
    site: np.ndarray  # str ids
    lat: np.ndarray
    lon: np.ndarray
    group: np.ndarray
    extra: dict[str, np.ndarray]  # per-site extra coordinates
    spare_values: np.ndarray
    spare_lat: np.ndarray
    spare_lon: np.ndarray
    spare_group: np.ndarray
    gap_filled: np.ndarray  # (grid,) bool


def _region_of_nearest(lat, lon, site_lat, site_lon, site_group) -> np.ndarray:
    if len(lat) == 0:
        return np.empty(0, dtype=str)
    pairs = geo.pair_nearest(lat, lon, site_lat, site_lon, max_km=2.5e4)
    return np.asarray(site_group)[pairs["index_b"].to_numpy()]


def _salinity_pool(
    n_sites: int, n_regions: int, seed: int, rngs: list[np.random.Generator], params
) -> _Pool:
    r_pick, r_ec, r_salt = rngs
    lib = spec.load_library("soil")
    lat_all = lib["lat"].values.astype(float)
    lon_all = lib["lon"].values.astype(float)
    pool = np.flatnonzero(np.isfinite(lat_all) & np.isfinite(lon_all))
    if n_sites > pool.size:
        raise ParameterError(
            f"n_sites={n_sites} but only {pool.size} ICRAF-ISRIC spectra have coordinates; "
            f"ask for at most {pool.size}."
        )
    chosen = np.sort(r_pick.choice(pool, n_sites, replace=False))
    rest = np.setdiff1d(pool, chosen)
    n_spare = min(rest.size, int(np.ceil(n_sites * OFFSITE_SHARE)))
    spare = np.sort(r_pick.choice(rest, n_spare, replace=False))

    wl = lib["wavelength"].values.astype(float)
    m = spec.interpolation_matrix(wl, LAB_GRID_NM)
    gap_filled = ~np.isin(LAB_GRID_NM, wl)
    idx = np.r_[chosen, spare]
    soil = xr.DataArray(
        lib.values[idx].astype(np.float64) @ m.T,
        dims=("spectrum", "wavelength"),
        coords={"wavelength": LAB_GRID_NM},
    )
    ec = tr.sample_ec(
        idx.size, r_ec, params.ec_median_dsm, params.ec_log_sd, params.ec_min_dsm, params.ec_max_dsm
    )
    salty = tr.add_salt(soil, ec, r_salt, params)
    values = salty.values.astype(np.float64)
    n = chosen.size
    lat, lon = lat_all[chosen], lon_all[chosen]
    group = geo.geographic_clusters(lat, lon, int(n_regions), seed=seed)
    labels = lib["label"].values.astype(str)
    return _Pool(
        values=values[:n],
        target=ec[:n],
        site=np.array([f"icraf:{s}" for s in labels[chosen]]),
        lat=lat,
        lon=lon,
        group=group,
        extra={
            "crust_fraction": salty["crust_fraction"].values[:n],
            "gypsum_share": salty["gypsum_share"].values[:n],
            "library_label": labels[chosen],
        },
        spare_values=values[n:],
        spare_lat=lat_all[spare],
        spare_lon=lon_all[spare],
        spare_group=_region_of_nearest(lat_all[spare], lon_all[spare], lat, lon, group),
        gap_filled=gap_filled,
    )


def _soc_pool(n_sites: int, rngs: list[np.random.Generator]) -> _Pool:
    from soilbook.data.real.limesoda_lab import load_limesoda_lab

    r_pick = rngs[0]
    ds = load_limesoda_lab(target="SOC", wavelengths_nm=LAB_GRID_NM)
    found = tuple(ds.attrs["dataset_ids"])
    if found != SOC_REGIONS:
        raise ParameterError(
            f"load_limesoda_lab(target='SOC') returned the sets {list(found)}, expected "
            f"{list(SOC_REGIONS)}; update soilbook.data.transfer.SOC_REGIONS."
        )
    groups = ds["group"].values.astype(str)
    n_all = groups.size
    if n_sites >= n_all:
        chosen = np.arange(n_all)
    else:  # proportional, stratified by dataset
        chosen_parts = []
        for g in SOC_REGIONS:
            idx = np.flatnonzero(groups == g)
            k = max(1, round(n_sites * idx.size / n_all))
            chosen_parts.append(r_pick.choice(idx, min(k, idx.size), replace=False))
        chosen = np.sort(np.concatenate(chosen_parts))
    rest = np.setdiff1d(np.arange(n_all), chosen)
    n_spare = min(rest.size, int(np.ceil(min(n_sites, n_all) * OFFSITE_SHARE)))
    spare = np.sort(r_pick.choice(rest, n_spare, replace=False))
    values = ds["reflectance"].isel(date=0).values.astype(np.float64)
    lat = ds["lat"].values.astype(float)
    lon = ds["lon"].values.astype(float)
    return _Pool(
        values=values[chosen],
        target=ds["target"].values.astype(float)[chosen],
        site=ds["sample_id"].values.astype(str)[chosen],
        lat=lat[chosen],
        lon=lon[chosen],
        group=groups[chosen],
        extra={
            "dataset_id": groups[chosen],
            "measurement": ds["measurement"].values.astype(str)[chosen],
            "target_method": ds["target_method"].values.astype(str)[chosen],
        },
        spare_values=values[spare],
        spare_lat=lat[spare],
        spare_lon=lon[spare],
        spare_group=groups[spare],
        gap_filled=np.zeros(LAB_GRID_NM.size, bool),
    )


# -- your own lab spectra and OSSL ------------------------------------------------------------


def _check_lab_path(data_path: str | os.PathLike[str] | None) -> Path:
    """Cheap checks of ``data_path`` for ``lab_source="file"``."""
    from soilbook.data.real.userfile import check_path

    return check_path(
        data_path,
        extensions=LAB_FILE_EXTENSIONS,
        missing_message=(
            "lab_source='file' needs data_path: the path of your lab spectra, a CSV "
            f"(refl_<nm> columns, target, lat, lon) or a NetCDF sample set; "
            f"supported: {list(LAB_FILE_EXTENSIONS)}."
        ),
        extension_hint=" Save your table as CSV (refl_<nm>, target, lat, lon columns).",
    )


def _csv_columns(path: Path) -> list[str]:
    return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]


def _refl_columns(columns: list[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """(refl_<nm> column names, their wavelengths sorted, dates found) of a CSV header."""
    from soilbook.data.real.userfile import _parse_bands

    dates, bands, wavelengths, found = _parse_bands(columns)
    keep = [(w, found[(d, b)]) for d in dates for b, w in zip(bands, wavelengths, strict=True)]
    keep = [(w, c) for w, c in keep if c.startswith("refl_")]
    return [c for _, c in keep], np.array([w for w, _ in keep], float), dates


def _require_lab_columns(path: Path, columns: list[str], target_column: str) -> None:
    missing = [c for c in (target_column, "lat", "lon") if c not in columns]
    if missing:
        raise SchemaError(
            f"{path.name} has no column(s) {missing} (file: {path}; columns: {columns[:12]}"
            f"{' ...' if len(columns) > 12 else ''}). Expected: {_LAB_FILE_LAYOUT}"
        )
    names, _, dates = _refl_columns(columns)
    if not names:
        raise SchemaError(
            f"{path.name} has no reflectance columns named refl_<nm> (e.g. refl_400) (file: "
            f"{path}). Expected: {_LAB_FILE_LAYOUT}"
        )
    if any(dates):
        raise SchemaError(
            f"{path.name}: lab spectra have one spectrum per row; drop the '@<date>' suffixes "
            f"of the refl_<nm> columns (file: {path})."
        )


def _grid_matrix(path: Path, wl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation matrix onto :data:`LAB_GRID_NM` and the ``gap_filled`` flags."""
    order = np.argsort(wl)
    wl = wl[order]
    if wl.size < 2 or np.any(np.diff(wl) <= 0):
        raise SchemaError(f"{path.name}: the wavelengths must be distinct (found {wl.tolist()}).")
    lo, hi = LAB_GRID_NM[0], LAB_GRID_NM[-1]
    if wl[0] > lo or wl[-1] < hi:
        gaps = []
        if wl[0] > lo:
            gaps.append(f"{lo:g}-{wl[0]:g} nm")
        if wl[-1] < hi:
            gaps.append(f"{wl[-1]:g}-{hi:g} nm")
        raise SchemaError(
            f"{path.name}: the spectra cover {wl[0]:g}-{wl[-1]:g} nm but the lab grid needs "
            f"{lo:g}-{hi:g} nm; missing {' and '.join(gaps)}. Supply spectra over the whole "
            "range (passing a narrower grid is not supported yet)."
        )
    m = spec.interpolation_matrix(wl, LAB_GRID_NM)
    step = float(np.median(np.diff(wl)))
    right = np.clip(np.searchsorted(wl, LAB_GRID_NM, side="left"), 1, wl.size - 1)
    exact = np.isin(LAB_GRID_NM, wl)
    wide = (wl[right] - wl[right - 1]) > max(20.0, 2.5 * step)
    full = np.zeros((LAB_GRID_NM.size, order.size))
    full[:, order] = m
    return full, wide & ~exact


@dataclass
class _LabTable:
    """Real lab samples (all of them) on the lab grid, before drawing sites."""

    values: np.ndarray
    target: np.ndarray
    site: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    group: np.ndarray | None
    extra: dict[str, np.ndarray]
    gap_filled: np.ndarray
    target_units: str
    target_long_name: str


def _read_lab_csv(path: Path, target_column: str, target_units: str) -> _LabTable:
    from soilbook.data.real.limesoda_lab import to_reflectance

    df = pd.read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    columns = list(df.columns)
    _require_lab_columns(path, columns, target_column)
    names, wl, _ = _refl_columns(columns)
    m, gap_filled = _grid_matrix(path, wl)
    for c in (target_column, "lat", "lon", *names):
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise SchemaError(f"{path.name}: column {c!r} is not numeric (file: {path}).")
    needed = [target_column, "lat", "lon", *names]
    bad = df[needed].isna().any(axis=1)
    if bad.any():
        warnings.warn(
            f"{path.name}: dropped {int(bad.sum())} row(s) with a missing target, lat/lon or "
            "reflectance value.",
            stacklevel=4,
        )
    rows = np.flatnonzero(~bad.to_numpy())
    df = df.iloc[rows]
    values = df[names].to_numpy(np.float64)
    if values.size and np.max(values) > 1.5:
        warnings.warn(
            f"{path.name}: reflectance values up to {np.max(values):g} look like percent; "
            "dividing by 100.",
            stacklevel=4,
        )
        values = to_reflectance(values, "percent")
    if "site" in df.columns:
        site = df["site"].astype(str).to_numpy()
    else:
        site = np.array([f"{path.stem}:{i}" for i in rows])
    extra: dict[str, np.ndarray] = {"file_row": rows}
    return _LabTable(
        values=values @ m.T,
        target=df[target_column].to_numpy(float),
        site=site,
        lat=df["lat"].to_numpy(float),
        lon=df["lon"].to_numpy(float),
        group=df["group"].astype(str).to_numpy() if "group" in df.columns else None,
        extra=extra,
        gap_filled=gap_filled,
        target_units=target_units,
        target_long_name=target_column,
    )


def _read_lab_netcdf(path: Path, target_column: str, target_units: str) -> _LabTable:
    from soilbook.data.real.userfile import read_netcdf

    ds = read_netcdf(path)
    names = list(ds.variables)
    missing = [
        c for c in ("reflectance", "wavelength", target_column, "lat", "lon") if c not in names
    ]
    if missing:
        raise SchemaError(
            f"{path.name} has no variable(s) {missing} (file: {path}; variables: {names[:12]}). "
            f"Expected: {_LAB_FILE_LAYOUT}"
        )
    refl = ds["reflectance"]
    if "date" in refl.dims:
        if refl.sizes["date"] != 1:
            raise SchemaError(
                f"{path.name}: reflectance has {refl.sizes['date']} dates; lab spectra need one "
                "spectrum per sample (select one date first)."
            )
        refl = refl.isel(date=0)
    refl = refl.transpose("sample", "band")
    m, gap_filled = _grid_matrix(path, ds["wavelength"].values.astype(float))
    values = refl.values.astype(np.float64)
    y = ds[target_column].values.astype(float)
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)
    ok = np.isfinite(values).all(axis=1) & np.isfinite(y) & np.isfinite(lat) & np.isfinite(lon)
    if not ok.all():
        warnings.warn(
            f"{path.name}: dropped {int((~ok).sum())} sample(s) with a missing target, lat/lon "
            "or reflectance value.",
            stacklevel=4,
        )
    values = values[ok]
    if values.size and np.max(values) > 1.5:
        from soilbook.data.real.limesoda_lab import to_reflectance

        warnings.warn(
            f"{path.name}: reflectance values up to {np.max(values):g} look like percent; "
            "dividing by 100.",
            stacklevel=4,
        )
        values = to_reflectance(values, "percent")
    rows = np.flatnonzero(ok)
    for name in ("site", "sample_id"):
        if name in ds.variables:
            site = ds[name].values.astype(str)[ok]
            break
    else:
        site = np.array([f"{path.stem}:{i}" for i in rows])
    units = target_units or str(ds[target_column].attrs.get("units", ""))
    return _LabTable(
        values=values @ m.T,
        target=y[ok],
        site=site,
        lat=lat[ok],
        lon=lon[ok],
        group=ds["group"].values.astype(str)[ok] if "group" in ds.variables else None,
        extra={"file_row": rows},
        gap_filled=gap_filled,
        target_units=units,
        target_long_name=str(ds[target_column].attrs.get("long_name", target_column)),
    )


def _ossl_table(target: str) -> tuple[_LabTable, xr.Dataset]:
    from soilbook.data.real import ossl

    ds = ossl.load_ossl(OSSL_TARGET_OF[target], wavelengths_nm=LAB_GRID_NM, group="dataset")
    extra = {"dataset_code": ds["dataset_code"].values.astype(str)}
    if "depth_top_cm" in ds.coords:
        extra["depth_top_cm"] = ds["depth_top_cm"].values.astype(float)
    table = _LabTable(
        values=ds["reflectance"].isel(date=0).values.astype(np.float64),
        target=ds["target"].values.astype(float),
        site=np.array([f"ossl:{s}" for s in ds["layer_id"].values.astype(str)]),
        lat=ds["lat"].values.astype(float),
        lon=ds["lon"].values.astype(float),
        group=None,
        extra=extra,
        gap_filled=np.zeros(LAB_GRID_NM.size, bool),
        target_units=str(ds["target"].attrs.get("units", "")),
        target_long_name=str(ds["target"].attrs.get("long_name", target)),
    )
    return table, ds


def _table_pool(
    table: _LabTable,
    n_sites: int,
    n_regions: int,
    seed: int,
    r_pick: np.random.Generator,
    name: str,
) -> _Pool:
    """Draw ``n_sites`` lab sites (and spare spectra) from a table of real lab samples."""
    n_all = table.target.size
    if n_all == 0:
        raise SchemaError(f"{name}: no usable lab sample (every row lacks a value).")
    if len(set(table.site.tolist())) != n_all:
        dup = pd.Series(table.site).value_counts()
        raise SchemaError(
            f"{name}: site ids must be unique (one row per lab sample); repeated: "
            f"{dup[dup > 1].index.tolist()[:5]}. Fix the 'site' column or drop it."
        )
    if n_sites >= n_all:
        chosen = np.arange(n_all)
    else:
        chosen = np.sort(r_pick.choice(n_all, n_sites, replace=False))
    rest = np.setdiff1d(np.arange(n_all), chosen)
    n_spare = min(rest.size, int(np.ceil(chosen.size * OFFSITE_SHARE)))
    spare = np.sort(r_pick.choice(rest, n_spare, replace=False))
    lat, lon = table.lat[chosen], table.lon[chosen]
    if table.group is not None:
        group = table.group[chosen]
        spare_group = table.group[spare]
    else:
        try:
            group = geo.geographic_clusters(lat, lon, int(n_regions), seed=seed)
        except ValueError as err:
            raise ParameterError(
                f"{name}: cannot make {n_regions} geographic regions from the lab sites' "
                f"coordinates ({err}); ask for fewer regions (n_regions)."
            ) from None
        spare_group = _region_of_nearest(table.lat[spare], table.lon[spare], lat, lon, group)
    return _Pool(
        values=table.values[chosen],
        target=table.target[chosen],
        site=table.site[chosen],
        lat=lat,
        lon=lon,
        group=np.asarray(group, dtype=str),
        extra={k: v[chosen] for k, v in table.extra.items()},
        spare_values=table.values[spare],
        spare_lat=table.lat[spare],
        spare_lon=table.lon[spare],
        spare_group=np.asarray(spare_group, dtype=str),
        gap_filled=table.gap_filled,
    )


def _stratified_pairs(
    group: np.ndarray, paired_fraction: float, rng: np.random.Generator, target: str
) -> np.ndarray:
    """Boolean mask of paired sites: ``max(2, round(f n))`` per region, then the checks."""
    paired = np.zeros(group.size, bool)
    regions = sorted(set(group.tolist()))
    for g in regions:
        idx = np.flatnonzero(group == g)
        k = min(idx.size, max(MIN_PAIRED_PER_REGION, round(paired_fraction * idx.size)))
        paired[rng.choice(idx, k, replace=False)] = True
    counts = {g: int(paired[group == g].sum()) for g in regions}
    thin = {g: c for g, c in counts.items() if c < MIN_PAIRED_PER_REGION}
    if thin:
        raise ParameterError(
            f"target={target!r}: region(s) {thin} have fewer than {MIN_PAIRED_PER_REGION} paired "
            "sites (too few sites in the region), so they cannot be held out with paired test "
            "sites. Use fewer regions or more sites (n_sites)."
        )
    total = int(paired.sum())
    short = {g: total - c for g, c in counts.items() if total - c < MIN_PAIRED_TRAIN}
    if short:
        raise ParameterError(
            f"too few paired sites for distillation: holding out region(s) {list(short)} leaves "
            f"{min(short.values())} paired training sites (< {MIN_PAIRED_TRAIN}). Increase "
            "n_sites or paired_fraction, or use fewer regions."
        )
    return paired


# -- assembling --------------------------------------------------------------------------------


def _lab_array(values, site, lat, lon, group) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims=("spectrum", "wavelength"),
        coords={
            "wavelength": LAB_GRID_NM,
            "site_id": ("spectrum", np.asarray(site, dtype=str)),
            "lat": ("spectrum", np.asarray(lat, float), {"units": "degrees_north"}),
            "lon": ("spectrum", np.asarray(lon, float), {"units": "degrees_east"}),
            "region": ("spectrum", np.asarray(group, dtype=str)),
        },
    )


def _pixels_dataset(
    pixels: xr.DataArray, factors: dict[str, np.ndarray], attrs: dict, origin=None
) -> xr.Dataset:
    """A sample set (without target) from a lab_to_satellite result (spectrum, band)."""
    n = pixels.sizes["spectrum"]
    coords = {
        "sample": np.arange(n),
        "date": ["satellite"],
        "band": pixels["band"].values.astype(str),
        "wavelength": ("band", pixels["wavelength"].values.astype(float), {"units": "nm"}),
        "fwhm": ("band", pixels["fwhm"].values.astype(float), {"units": "nm"}),
        "snr": ("band", pixels["snr"].values.astype(float), {"units": "1"}),
        "group": (
            "sample",
            pixels["region"].values.astype(str),
            {"long_name": "region (leave-one-region-out)"},
        ),
        "site": ("sample", pixels["site_id"].values.astype(str), {"long_name": "lab site id"}),
        "lat": ("sample", pixels["lat"].values.astype(float), {"units": "degrees_north"}),
        "lon": ("sample", pixels["lon"].values.astype(float), {"units": "degrees_east"}),
    }
    if origin is not None:
        coords["origin"] = ("sample", np.asarray(origin, dtype=str))
    for k in ("moisture", "f_soil", "f_gv", "f_npv", "scale", "tilt", "shift_nm"):
        if k in factors:
            coords[f"latent_{k}"] = (
                "sample",
                np.asarray(factors[k], float),
                {"long_name": f"simulated latent factor '{k}' (lab_to_satellite)"},
            )
    return xr.Dataset(
        {
            "reflectance": (
                ("sample", "date", "band"),
                pixels.values.astype(np.float32)[:, None, :],
                {
                    "units": "1",
                    "long_name": "EnMAP surface reflectance (SIMULATED from lab spectra)",
                    "simulated": True,
                },
            )
        },
        coords=coords,
        attrs=attrs,
    )


def _empty_unlabelled(sat: xr.Dataset, attrs: dict) -> xr.Dataset:
    ds = sat.drop_vars("target").isel(sample=slice(0, 0))
    ds = ds.drop_vars([c for c in ds.coords if str(c).startswith("latent_")])
    ds = ds.assign_coords(origin=("sample", np.empty(0, dtype=str)))
    ds.attrs = attrs
    return ds


def _description(
    target: str, n: dict[str, int], n_regions: int, lab_source: str = "library", what: str = ""
) -> str:
    if lab_source != "library":
        return (
            f"Lab domain: {n['lab']} REAL laboratory soil spectra from {what} with REAL "
            f"'{target}' labels (measured; spectra interpolated onto 400-2450 nm every 10 nm). "
            "Satellite domain: SIMULATED EnMAP pixels (216 usable bands) made from those real "
            f"lab spectra by lab_to_satellite; {n['paired']} paired sites (drawn within each of "
            f"{n_regions} regions) have a labelled pixel carrying the real label of the site, "
            f"and {n['unlabelled']} unlabelled pixels surround the lab-only sites, half of the "
            "paired sites and any spare samples. Real: lab spectra, labels and locations. "
            "Simulated: every satellite pixel (moisture, vegetation, illumination, sensor)."
        )
    if target == "salinity":
        return (
            f"Lab domain: {n['lab']} REAL ICRAF-ISRIC laboratory soil spectra (earthlib library, "
            "real coordinates; the library's water-vapour gaps linearly interpolated) with a "
            "SIMULATED salt crust added for a SIMULATED salinity label (EC, dS/m, truncated "
            "log-normal; add_salt). Satellite domain: SIMULATED EnMAP pixels (216 usable bands) "
            f"made from those lab spectra by lab_to_satellite; {n['paired']} paired sites (drawn "
            f"within each of {n_regions} regions, k-means clusters of the real coordinates) have "
            f"a labelled pixel, and {n['unlabelled']} unlabelled pixels surround lab-only sites, "
            "paired sites and spare library spectra. Real: the soil spectra and their locations. "
            "Simulated: the EC labels, the salt signal and every satellite pixel."
        )
    return (
        f"Lab domain: {n['lab']} REAL LimeSoDa vis-NIR soil spectra with REAL soil organic carbon "
        f"labels (%, datasets {', '.join(SOC_REGIONS)}, which are the {n_regions} regions; "
        "CV.98 was scanned in situ from an auger, the others in the laboratory). "
        "Satellite domain: SIMULATED EnMAP pixels (216 usable bands) made from those real lab "
        f"spectra by lab_to_satellite; {n['paired']} paired sites (drawn within each dataset) "
        f"have a labelled pixel carrying the real SOC of the site, and {n['unlabelled']} "
        "unlabelled pixels surround the lab-only sites, half of the paired sites and any spare "
        "samples. Real: lab "
        "spectra and SOC labels. "
        "Simulated: every satellite pixel. Coordinates are known for SC.93 only (NaN elsewhere)."
    )


def load_transfer(
    target: str = "salinity",
    *,
    n_sites: int = 800,
    paired_fraction: float = 0.25,
    unlabelled_per_site: int = 2,
    n_regions: int | None = None,
    seed: int = 0,
    srf: str = "gaussian",
    params: tr.TransferParams | None = None,
    lab_source: str = "library",
    data_path: str | os.PathLike[str] | None = None,
    target_column: str = "target",
    target_units: str = "",
) -> TransferData:
    """Lab, paired-satellite and unlabelled-satellite sample sets for spectral transfer.

    Parameters
    ----------
    target
        ``"salinity"`` (simulated EC, dS/m, on real ICRAF-ISRIC spectra) or ``"soc"`` (real
        LimeSoDa SOC, %).
    n_sites
        Lab sites. Salinity: ICRAF spectra drawn (at most 4,065, those with coordinates). SOC:
        at most this many of the 651 LimeSoDa samples (all of them when ``n_sites >= 651``),
        drawn proportionally per dataset.
    paired_fraction
        Share of the lab sites, per region, that also get a labelled satellite pixel, in (0, 1]
        (at least :data:`MIN_PAIRED_PER_REGION` per region).
    unlabelled_per_site
        Unlabelled pixels around each lab-only site, each of a random half of the paired sites
        and each spare spectrum (0 = no unlabelled pixels).
    n_regions
        Salinity: geographic k-means regions (default 5). SOC: fixed by the data (the three
        datasets), so None or 3.
    seed
        Everything is deterministic for a seed.
    srf
        EnMAP response functions: ``"gaussian"`` or ``"table"`` (:func:`soilbook.data.spectra.enmap_srf`).
    params
        Salt and lab-to-satellite settings (default :class:`~soilbook.data.simulate.transfer.TransferParams`).
    lab_source
        ``"library"`` (default: ICRAF-ISRIC for salinity, LimeSoDa for SOC), ``"file"`` (your
        own lab spectra in ``data_path``; ``target`` then only names the property) or
        ``"ossl"`` (Open Soil Spectral Library: measured EC for ``"salinity"``, organic carbon
        for ``"soc"``; about 1 GB downloaded on first use). With ``"file"`` and ``"ossl"`` the
        labels are real and ``n_sites`` rows are drawn (all when there are fewer); regions
        are k-means clusters of lat/lon (``n_regions``, default 5) unless the file has a
        ``group`` column.
    data_path
        ``lab_source="file"``: a CSV with ``refl_<nm>`` columns (reflectance 0-1; a table with
        values above 1.5 is taken as percent, with a warning), the target column, ``lat``,
        ``lon`` and optional ``group`` and ``site``; or a NetCDF sample set (``reflectance``
        (sample, [date,] band) with ``wavelength``, the target, ``lat``/``lon``). The spectra
        must cover 400-2450 nm; they are interpolated onto :data:`LAB_GRID_NM`.
    target_column, target_units
        ``lab_source="file"``: the target's column / variable and its units.

    Returns
    -------
    TransferData
        See the module docstring for what is real and what is simulated.
    """
    check_transfer_args(
        target,
        n_sites=n_sites,
        paired_fraction=paired_fraction,
        unlabelled_per_site=unlabelled_per_site,
        n_regions=n_regions,
        lab_source=lab_source,
        data_path=data_path,
        target_column=target_column,
    )
    if srf not in _SRF_KINDS:
        raise ParameterError(f"srf={srf!r}; allowed: {list(_SRF_KINDS)}.")
    p = params or tr.TransferParams()
    library = lab_source == "library"
    if library and target == "soc":
        k_regions = len(SOC_REGIONS)
    else:
        k_regions = n_regions or DEFAULT_N_REGIONS
    rngs = np.random.default_rng(seed).spawn(7)
    r_pick, r_ec, r_salt, r_pair, r_sat, r_half, r_unl = rngs

    table: _LabTable | None = None
    source_name = what = ""
    ossl_ds = None
    if library and target == "salinity":
        pool = _salinity_pool(n_sites, k_regions, seed, [r_pick, r_ec, r_salt], p)
    elif library:
        pool = _soc_pool(n_sites, [r_pick])
    else:
        if lab_source == "file":
            path = _check_lab_path(data_path)
            reader = _read_lab_csv if path.suffix.lower() == ".csv" else _read_lab_netcdf
            table = reader(path, target_column, target_units)
            source_name = path.name
        else:
            table, ossl_ds = _ossl_table(target)
            source_name = "OSSL"
        pool = _table_pool(table, n_sites, k_regions, seed, r_pick, source_name)
        if table.group is not None:
            n_file = len(set(pool.group.tolist()))
            if n_regions is not None and n_regions != n_file:
                warnings.warn(
                    f"{source_name} has a 'group' column with {n_file} regions; they are used "
                    f"and n_regions={n_regions} is ignored.",
                    stacklevel=2,
                )
            k_regions = n_file
    paired = _stratified_pairs(pool.group, float(paired_fraction), r_pair, target)

    srf_da = spec.enmap_srf(srf)
    usable = spec.usable_bands(srf_da)
    sat_kwargs = {"sensor": srf_da, "band_mask": usable, "drop": True}

    sim_attrs = {
        "source": "soilbook transfer simulator (lab_to_satellite, EnMAP bands)",
        "licence": _SIMULATED_LICENCE,
        "citation": tr.CITATION,
        "simulated": True,
        "sensor": srf_da.attrs.get("sensor", "EnMAP"),
        "srf": srf,
        "bands_dropped": "water vapour and outside 400-2450 nm (spectra.usable_bands)",
        "seed": int(seed),
        **p.as_attrs(),
    }
    if table is not None:
        from soilbook.data.real import ossl

        if lab_source == "file":
            from soilbook.data.real.userfile import UNKNOWN_LICENCE

            lab_text = f"user lab spectra ({source_name})"
            what = f"your file {source_name}"
            lab_licence, lab_citation = UNKNOWN_LICENCE, f"user data from {source_name}"
            region_kind = (
                f"the 'group' column of {source_name}"
                if table.group is not None
                else "k-means cluster of the file's lat/lon (geo.geographic_clusters)"
            )
        else:
            lab_text = ossl.SOURCE
            what = "the Open Soil Spectral Library (OSSL v1.2)"
            lab_licence = str(ossl_ds.attrs.get("licence", ossl.LICENCE))
            lab_citation = str(ossl_ds.attrs.get("citation", ""))
            region_kind = "k-means cluster of the OSSL coordinates (geo.geographic_clusters)"
        target_attrs = {
            "units": table.target_units,
            "long_name": f"{table.target_long_name} (REAL measurement, {what})",
            "simulated": False,
        }
        lab_refl_attrs = {
            "units": "1",
            "long_name": f"lab reflectance (REAL spectra from {what}, interpolated)",
            "simulated": False,
        }
    elif target == "salinity":
        lab_text = "ICRAF-ISRIC soil spectra (earthlib) + simulated salt crust (add_salt)"
        lab_licence = f"{spec.LIBRARY_LICENCE}; simulated parts {_SIMULATED_LICENCE}"
        lab_citation = spec.LIBRARY_CITATION + " Salt: " + tr.CITATION
        target_attrs = {
            "units": "dS/m",
            "long_name": "electrical conductivity (SIMULATED salinity label)",
            "simulated": True,
        }
        lab_refl_attrs = {
            "units": "1",
            "long_name": "lab reflectance: real ICRAF-ISRIC soil + SIMULATED salt crust",
            "simulated": True,
            "real_part": "the soil spectrum (earthlib library)",
        }
        region_kind = "k-means cluster of the ICRAF coordinates (geo.geographic_clusters)"
    else:
        from soilbook.data.real.limesoda import CITATION as LS_CITATION
        from soilbook.data.real.limesoda import LICENCE as LS_LICENCE

        lab_text = f"LimeSoDa vis-NIR spectra ({', '.join(SOC_REGIONS)})"
        lab_licence, lab_citation = LS_LICENCE, LS_CITATION
        target_attrs = {
            "units": "%",
            "long_name": "soil organic carbon (g per 100 g; REAL LimeSoDa measurement)",
            "simulated": False,
        }
        lab_refl_attrs = {
            "units": "1",
            "long_name": "lab reflectance (REAL LimeSoDa vis-NIR spectra, resampled)",
            "simulated": False,
        }
        region_kind = "LimeSoDa dataset"

    # -- satellite pixels at the paired sites
    ip = np.flatnonzero(paired)
    lab_da = _lab_array(pool.values, pool.site, pool.lat, pool.lon, pool.group)
    pix, factors = tr.lab_to_satellite(lab_da.isel(spectrum=ip), r_sat, p, **sat_kwargs)
    satellite = _pixels_dataset(pix, factors, dict(sim_attrs))
    satellite["target"] = ("sample", pool.target[ip], dict(target_attrs))
    satellite.attrs.update(
        lab_source=lab_source,
        domain="satellite",
        target_name=target,
        labels_simulated=bool(target_attrs["simulated"]),
        region_kind=region_kind,
    )
    satellite = satellite.assign_coords(
        sample=np.arange(ip.size), lab_index=("sample", ip, {"long_name": "row of `lab`"})
    )

    # -- unlabelled pixels
    lab_only = np.flatnonzero(~paired)
    half = np.sort(r_half.choice(ip, ip.size // 2, replace=False)) if ip.size else ip
    src = np.r_[lab_only, half]
    n_spare = pool.spare_values.shape[0]
    unl_values = np.concatenate([pool.values[src], pool.spare_values])
    origin = np.r_[
        np.full(lab_only.size, "lab_only_site", dtype=object),
        np.full(half.size, "paired_site_neighbour", dtype=object),
        np.full(n_spare, "off_site", dtype=object),
    ].astype(str)
    unl_attrs = dict(sim_attrs)
    unl_attrs.update(
        lab_source=lab_source,
        domain="satellite",
        target_name=target,
        labelled=False,
        region_kind=region_kind,
        note="labels withheld: no target variable",
    )
    if unlabelled_per_site > 0 and unl_values.shape[0] > 0:
        unl_lab = _lab_array(
            unl_values,
            np.r_[pool.site[src], np.full(n_spare, "", dtype=object)].astype(str),
            np.r_[pool.lat[src], pool.spare_lat],
            np.r_[pool.lon[src], pool.spare_lon],
            np.r_[pool.group[src], pool.spare_group].astype(str),
        ).assign_coords(origin=("spectrum", origin))
        upix, ufac = tr.simulate_satellite_pixels(
            unl_lab, int(unlabelled_per_site), r_unl, p, **sat_kwargs
        )
        unlabelled = _pixels_dataset(upix, ufac, unl_attrs, origin=upix["origin"].values)
    else:
        unlabelled = _empty_unlabelled(satellite, unl_attrs)

    # -- the lab sample set
    band_names = [f"wl_{w:g}" for w in LAB_GRID_NM]
    lab_coords = {
        "sample": np.arange(pool.site.size),
        "date": ["lab"],
        "band": band_names,
        "wavelength": ("band", LAB_GRID_NM, {"units": "nm"}),
        "gap_filled": (
            "band",
            pool.gap_filled,
            {"long_name": "linearly interpolated across the library's water-vapour gap"},
        ),
        "group": ("sample", pool.group.astype(str), {"long_name": f"region ({region_kind})"}),
        "site": ("sample", pool.site.astype(str), {"long_name": "lab site id"}),
        "lat": ("sample", pool.lat, {"units": "degrees_north"}),
        "lon": ("sample", pool.lon, {"units": "degrees_east"}),
        "paired": (
            "sample",
            paired,
            {"long_name": "this site also has a labelled pixel in `satellite` (same site id)"},
        ),
    }
    for name, values in pool.extra.items():
        lab_coords[name] = ("sample", values)
    lab = xr.Dataset(
        {
            "reflectance": (
                ("sample", "date", "band"),
                pool.values.astype(np.float32)[:, None, :],
                lab_refl_attrs,
            ),
            "target": ("sample", pool.target, dict(target_attrs)),
        },
        coords=lab_coords,
        attrs={
            "source": lab_text,
            "licence": lab_licence,
            "citation": lab_citation,
            "simulated": bool(library and target == "salinity"),
            "domain": "lab",
            "lab_source": lab_source,
            "target_name": target,
            "labels_simulated": bool(target_attrs["simulated"]),
            "region_kind": region_kind,
            "grid_nm": "400-2450 nm, 10 nm steps",
            "seed": int(seed),
        },
    )
    counts = {
        "lab": lab.sizes["sample"],
        "paired": ip.size,
        "unlabelled": unlabelled.sizes["sample"],
    }
    text = _description(target, counts, k_regions, lab_source, what)
    for ds in (lab, satellite, unlabelled):
        ds.attrs["description"] = text
    validate_samples(lab)
    validate_samples(satellite)
    return TransferData(satellite=satellite, lab=lab, unlabelled=unlabelled, description=text)


def region_table(data: TransferData) -> pd.DataFrame:
    """Per region: lab sites, paired sites, lab-only sites, unlabelled pixels, target mean/sd.

    The target statistics are over the region's lab sites (all labelled sites).
    """
    lab = data.lab
    groups = lab["group"].values.astype(str)
    paired = lab["paired"].values.astype(bool)
    y = lab["target"].values.astype(float)
    unl = data.unlabelled["group"].values.astype(str)
    sat = data.satellite["group"].values.astype(str)
    rows = []
    for g in sorted(set(groups.tolist()) | set(unl.tolist())):
        m = groups == g
        rows.append(
            {
                "region": g,
                "lab_sites": int(m.sum()),
                "paired_sites": int((m & paired).sum()),
                "lab_only_sites": int((m & ~paired).sum()),
                "satellite_pixels": int((sat == g).sum()),
                "unlabelled_pixels": int((unl == g).sum()),
                "target_mean": float(y[m].mean()) if m.any() else np.nan,
                "target_sd": float(y[m].std(ddof=1)) if m.sum() > 1 else np.nan,
            }
        )
    table = pd.DataFrame(rows).set_index("region")
    table.attrs["target_units"] = lab["target"].attrs.get("units", "")
    return table


__all__ = [
    "DEFAULT_N_REGIONS",
    "LAB_FILE_EXTENSIONS",
    "LAB_GRID_NM",
    "LAB_SOURCES",
    "MIN_PAIRED_PER_REGION",
    "MIN_PAIRED_TRAIN",
    "OSSL_TARGET_OF",
    "SOC_REGIONS",
    "TARGETS",
    "TransferData",
    "check_transfer_args",
    "load_transfer",
    "region_ids",
    "region_table",
]
