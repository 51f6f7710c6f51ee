"""The lab domain of spectral transfer: where the lab spectra come from, drawn into sites.

:func:`soilbook.data.transfer.load_transfer` needs, for every ``lab_source``, the same thing: a
:class:`LabPool` of lab sites on :data:`LAB_GRID_NM` (spectra, labels, coordinates, regions)
plus spare spectra for off-site unlabelled pixels, and a :class:`LabDomain` that says what
is real and what is simulated. This module makes them:

``library``, ``target="salinity"``
    real ICRAF-ISRIC spectra (earthlib) with a simulated salt crust and simulated EC labels
    (:func:`salinity_pool`);
``library``, ``target="soc"``
    real LimeSoDa vis-NIR spectra and SOC (:func:`soc_pool`);
``file``
    your CSV or NetCDF of lab spectra (:func:`read_lab_file`, through :mod:`soilbook.data.tables`
    like chapter 1's user files), drawn by :func:`table_pool`: reflectance (0-1, percent or
    x 10 000) or absorbance log10(1/R), told by ``spectra_kind`` or detected
    (:func:`soilbook.data.tables.spectra_to_reflectance`) and converted to R = 10^-A;
``ossl``
    the Open Soil Spectral Library (:func:`ossl_table`), drawn by :func:`table_pool`.

Besides the spectra, a pool carries what decides which lab samples may stand for a
satellite pixel and what the student gets beside the spectrum:

- **Regions** (:func:`assign_regions`, :func:`soilbook.data.regions.compact_regions`) where the
  data do not fix them: compact regions of comparable extent with a floor on labelled pixels;
  isolated sites are dropped with a message.
- **Depth.** Where the source records the top depth of a sample (OSSL; a file's
  ``depth_top_cm`` column), only **topsoil** samples (top at most :data:`TOPSOIL_MAX_TOP_CM`
  below the surface) can correspond to a satellite pixel: subsoil samples stay in the lab
  (teacher) set, flagged ``topsoil=False``, and get no pixel. The earthlib copy of the
  ICRAF-ISRIC library and the LimeSoDa package record no depth (ICRAF stores several horizons
  per profile); there every sample is treated as a surface sample, and the data description
  says so.
- **Ancillary inputs** (:class:`Covariates`): sand, clay or climate where the source has
  them (LimeSoDa: clay; OSSL: clay and sand; a file: ``<group>:<name>`` columns such as
  ``soil:sand`` or ``climate:map_mm``); the ICRAF library has none.
- **The lab grid** (:func:`lab_grid_for`): :data:`LAB_GRID_NM` where the spectra cover it.
  A narrower library (e.g. NIR only, 1100-2498 nm) gives a narrower grid, and the satellite
  bands outside it are dropped (:func:`covered_bands`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data import regions as regions_mod
from soilbook.data import spectra as spec
from soilbook.data import tables
from soilbook.data.schema import FEATURE_GROUPS
from soilbook.data.simulate import transfer as tr
from soilbook.errors import ParameterError, SchemaError

#: The lab wavelength grid (nm).
LAB_GRID_NM = np.arange(400.0, 2451.0, 10.0)
#: Regions of ``target="soc"``: the LimeSoDa vis-NIR sets that report SOC in % on the grid.
SOC_REGIONS = ("CV.98", "SC.93", "SSP.460")
#: Off-site unlabelled pixels come from at most ``n_sites * OFFSITE_SHARE`` spare spectra.
OFFSITE_SHARE = 0.25
#: File types ``lab_source="file"`` reads.
LAB_FILE_EXTENSIONS = (".csv", ".nc", ".nc4")
#: ``target`` → OSSL target of :func:`soilbook.data.real.ossl.load_ossl` (``lab_source="ossl"``).
OSSL_TARGET_OF = {"salinity": "ec", "soc": "soc"}
#: Topsoil: a lab sample whose layer starts at most this far below the surface (cm); only
#: such samples (or samples of unknown depth) can stand for what a satellite pixel sees.
TOPSOIL_MAX_TOP_CM = 5.0
#: Fewest lab grid points (10 nm apart) a user's spectra must cover: 200 nm.
MIN_LAB_GRID_POINTS = 20
#: Fewest satellite bands inside the lab coverage (:func:`covered_bands`).
MIN_SATELLITE_BANDS = 20
#: An ancillary input is used when known for at least this share of the drawn samples; the
#: rest are filled with the median of the known values (and counted in the description).
COVARIATE_MIN_KNOWN = 0.9
#: The coverage rule, in words (parameter help, messages and the data description).
COVERAGE_RULE = (
    "lab spectra are used on 400-2450 nm every 10 nm where they cover it (a narrower library, "
    "e.g. NIR-only 1100-2498 nm, gives a narrower lab grid); satellite bands whose "
    "half-maximum range (centre +/- FWHM/2) is not inside the lab coverage are dropped"
)
#: The layout of a user's lab-spectra file, shown in every error about one.
LAB_FILE_LAYOUT = (
    "a CSV with one row per lab sample: spectra as reflectance columns refl_<nm> (0-1, "
    "percent or x 10000) or absorbance columns abs_<nm> (log10(1/R)), not both, covering at "
    "least 200 nm of 400-2450 nm; the target column (target_column=..., default 'target'), "
    "'lat' and 'lon' (WGS84 degrees; optional when a 'group' column gives the regions), "
    "optional 'group' (region), 'site' (unique id), 'depth_top_cm' (top of the sampled layer, "
    "cm) and ancillary inputs as '<group>:<name>' columns (e.g. 'soil:sand', 'climate:map_mm'); "
    "e.g. 'site,lat,lon,target,refl_400,refl_410,...,refl_2450'. How the spectra are stored is "
    "spectra_kind: 'auto' (abs_<nm> columns are absorbance; otherwise told from the values, "
    "and an ambiguous table is refused), 'reflectance', 'percent' or 'absorbance'; absorbance "
    "is converted to R = 10^-A. Or a NetCDF (.nc) sample set with 'reflectance' (or "
    "'absorbance', log10(1/R)) (sample, [date,] band), a wavelength coordinate (nm), the target, "
    "lat/lon (or group) and optionally covariates (sample, feature); a 'spectra_kind' attribute "
    "of the spectra variable says how they are stored."
)
#: Variables a lab NetCDF may hold its spectra in (the second: absorbance log10(1/R)).
NETCDF_SPECTRA_VARIABLES = ("reflectance", "absorbance")
SIMULATED_LICENCE = "CC0-1.0 (simulated parts, generated by soilbook)"


# -- the lab domain ----------------------------------------------------------------------------


@dataclass
class Covariates:
    """Ancillary inputs (sand, clay, climate ...) of lab samples, as the student will see them.

    ``values`` (n, p) float64 (NaN where not known, before :func:`finish_covariates`);
    ``names``, ``groups`` (one of :data:`soilbook.data.schema.FEATURE_GROUPS`) and ``units``
    one per column; ``source`` says where they come from, in words.
    """

    names: list[str]
    groups: list[str]
    units: list[str]
    values: np.ndarray
    source: str

    def take(self, rows: np.ndarray) -> Covariates:
        """The covariates of ``rows``."""
        return Covariates(self.names, self.groups, self.units, self.values[rows], self.source)


@dataclass
class LabPool:
    """Lab sites (and spare spectra) on the lab grid, before pairing.

    ``depth_top_cm`` is NaN where the source records no depth; ``covariates`` /
    ``spare_covariates`` are (n, p) / (n_spare, p) without NaN (see :func:`finish_covariates`),
    or None when the source has no ancillary input; ``messages`` say what was dropped, filled
    or lowered, in words.
    """

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
    grid_nm: np.ndarray = field(default_factory=lambda: LAB_GRID_NM.copy())
    depth_top_cm: np.ndarray | None = None
    covariates: Covariates | None = None
    spare_covariates: np.ndarray | None = None
    messages: list[str] = field(default_factory=list)
    depth_note: str = ""

    def __post_init__(self) -> None:
        if self.depth_top_cm is None:
            self.depth_top_cm = np.full(self.target.size, np.nan)

    @property
    def topsoil(self) -> np.ndarray:
        """(n,) bool: the sample may stand for a satellite pixel (topsoil or depth unknown)."""
        return ~(np.asarray(self.depth_top_cm, float) > TOPSOIL_MAX_TOP_CM)

    @property
    def depth_known(self) -> bool:
        """Whether the source records a depth for any site."""
        return bool(np.isfinite(np.asarray(self.depth_top_cm, float)).any())


def lab_grid_for(wavelengths_nm: np.ndarray) -> np.ndarray:
    """The points of :data:`LAB_GRID_NM` inside the measured range ``wavelengths_nm`` (nm)."""
    wl = np.asarray(wavelengths_nm, float)
    return LAB_GRID_NM[(LAB_GRID_NM >= wl.min()) & (LAB_GRID_NM <= wl.max())]


def covered_bands(centres_nm: np.ndarray, fwhm_nm: np.ndarray, grid_nm: np.ndarray) -> np.ndarray:
    """(band,) bool: the band's half-maximum range, centre +/- FWHM/2, lies inside the lab grid.

    With the full grid (400-2450 nm) every EnMAP band with a centre in 400-2450 nm is
    covered (the last, 2445.5 nm with FWHM 7.2 nm, reaches 2449.1 nm), so nothing changes
    there; a narrower lab grid drops the satellite bands it cannot simulate without
    extrapolating the lab spectra.
    """
    c = np.asarray(centres_nm, float)
    half = np.asarray(fwhm_nm, float) / 2.0
    grid = np.asarray(grid_nm, float)
    return (c - half >= grid.min()) & (c + half <= grid.max())


def coverage_problem(wavelengths_nm: np.ndarray, name: str) -> str | None:
    """Why spectra measured at ``wavelengths_nm`` cannot serve, or None (cheap: no data read).

    Too few lab grid points (:data:`MIN_LAB_GRID_POINTS`) or EnMAP bands inside the coverage
    (:data:`MIN_SATELLITE_BANDS`, after the water-vapour bands).
    """
    wl = np.asarray(wavelengths_nm, float)
    grid = lab_grid_for(wl)
    span = f"{wl.min():g}-{wl.max():g} nm"
    if grid.size < MIN_LAB_GRID_POINTS:
        return (
            f"{name}: the spectra cover {span}, which holds {grid.size} point(s) of the lab grid "
            f"(400-2450 nm every 10 nm); at least {MIN_LAB_GRID_POINTS} (200 nm) are needed."
        )
    sensor = spec.enmap_sensor()
    keep = spec.usable_bands(sensor) & covered_bands(
        np.asarray(sensor.centres_nm), np.asarray(sensor.widths_nm), grid
    )
    if int(keep.sum()) < MIN_SATELLITE_BANDS:
        return (
            f"{name}: the spectra cover {span}; only {int(keep.sum())} usable EnMAP band(s) lie "
            f"inside that range, at least {MIN_SATELLITE_BANDS} are needed ({COVERAGE_RULE})."
        )
    return None


def _region_of_nearest(lat, lon, site_lat, site_lon, site_group) -> np.ndarray:
    """The region of the nearest lab site, for each spare spectrum at ``lat``, ``lon``.

    ``""`` where that site was dropped (its region is ``""``): a spare spectrum near isolated
    sites is isolated too.
    """
    if len(lat) == 0:
        return np.empty(0, dtype=str)
    pairs = geo.pair_nearest(lat, lon, site_lat, site_lon, max_km=2.5e4)
    return np.asarray(site_group)[pairs["index_b"].to_numpy()]


def assign_regions(
    lat: np.ndarray,
    lon: np.ndarray,
    spare_lat: np.ndarray,
    spare_lon: np.ndarray,
    n_regions: int,
    *,
    paired_fraction: float,
    min_pixels: int,
    topsoil: np.ndarray,
    name: str,
) -> tuple[regions_mod.Regions, np.ndarray]:
    """Compact regions of the drawn sites at ``lat``, ``lon`` (degrees, (n,);
    :func:`soilbook.data.regions.compact_regions`) and the region of each spare spectrum's
    nearest site (:func:`_region_of_nearest`: ``""`` near a dropped site), (n_spare,)."""
    regions = regions_mod.compact_regions(
        lat,
        lon,
        int(n_regions),
        paired_fraction=paired_fraction,
        min_pixels=min_pixels,
        eligible=topsoil,
        what=name,
    )
    return regions, _region_of_nearest(spare_lat, spare_lon, lat, lon, regions.group)


def finish_covariates(
    sites: Covariates | None, spare: np.ndarray | None, name: str
) -> tuple[Covariates | None, np.ndarray | None, list[str]]:
    """Keep the ancillary inputs known for enough samples and fill the gaps; say what was done.

    A column known for at least :data:`COVARIATE_MIN_KNOWN` of the sites and spare spectra
    together is kept, its missing values filled with the median of the known ones; the others
    are left out. Returns the covariates of the sites, of the spares, and the messages.
    """
    if sites is None or not sites.names:
        return None, None, []
    spare = np.zeros((0, len(sites.names))) if spare is None else np.asarray(spare, float)
    both = np.concatenate([sites.values, spare])
    keep, messages = [], []
    for j, col in enumerate(sites.names):
        known = np.isfinite(both[:, j])
        share = float(known.mean()) if known.size else 0.0
        if share < COVARIATE_MIN_KNOWN:
            messages.append(
                f"{name}: ancillary input '{col}' is known for {share:.0%} of the samples "
                f"(< {COVARIATE_MIN_KNOWN:.0%}), so it is not used."
            )
            continue
        keep.append(j)
        if not known.all():
            messages.append(
                f"{name}: ancillary input '{col}' is missing for {int((~known).sum())} of "
                f"{known.size} samples; filled with the median of the others "
                f"({float(np.median(both[known, j])):.3g} {sites.units[j]})."
            )
    if not keep:
        return None, None, messages
    med = np.array([np.median(both[np.isfinite(both[:, j]), j]) for j in keep])
    vals = sites.values[:, keep]
    spare_vals = spare[:, keep]
    vals = np.where(np.isfinite(vals), vals, med[None, :])
    spare_vals = np.where(np.isfinite(spare_vals), spare_vals, med[None, :])
    kept = Covariates(
        names=[sites.names[j] for j in keep],
        groups=[sites.groups[j] for j in keep],
        units=[sites.units[j] for j in keep],
        values=vals,
        source=sites.source,
    )
    return kept, spare_vals, messages


def salinity_pool(
    n_sites: int,
    n_regions: int,
    seed: int,
    rngs: list[np.random.Generator],
    params,
    *,
    paired_fraction: float = 0.25,
    min_pixels: int = regions_mod.DEFAULT_MIN_REGION_PIXELS,
) -> LabPool:
    """ICRAF-ISRIC spectra with coordinates plus a simulated salt crust and EC label.

    ``n_sites`` spectra are drawn as sites, a share :data:`OFFSITE_SHARE` of the rest as spare
    spectra; ``rngs`` are the pick, EC and salt generators. Regions: :func:`assign_regions`
    (isolated sites and the spare spectra nearest to them are dropped). ``seed`` is kept for
    the call signature (the regions involve no random draw). The earthlib library records no
    depth, so every sample is treated as a surface sample; it has no ancillary input.
    """
    del seed
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
    regions, spare_group = assign_regions(
        lat,
        lon,
        lat_all[spare],
        lon_all[spare],
        n_regions,
        paired_fraction=paired_fraction,
        min_pixels=min_pixels,
        topsoil=np.ones(n, bool),
        name="the ICRAF-ISRIC library",
    )
    keep, keep_spare = np.flatnonzero(regions.kept), np.flatnonzero(spare_group != "")
    labels = lib["label"].values.astype(str)
    extra = {
        "crust_fraction": salty["crust_fraction"].values[:n],
        "gypsum_share": salty["gypsum_share"].values[:n],
        "library_label": labels[chosen],
    }
    return LabPool(
        values=values[:n][keep],
        target=ec[:n][keep],
        site=np.array([f"icraf:{s}" for s in labels[chosen]])[keep],
        lat=lat[keep],
        lon=lon[keep],
        group=regions.group[keep],
        extra={k: v[keep] for k, v in extra.items()},
        spare_values=values[n:][keep_spare],
        spare_lat=lat_all[spare][keep_spare],
        spare_lon=lon_all[spare][keep_spare],
        spare_group=spare_group[keep_spare],
        gap_filled=gap_filled,
        messages=list(regions.messages),
        depth_note=(
            "the earthlib copy of the ICRAF-ISRIC library records no sampling depth (it holds "
            "several horizons of many profiles: 4,065 spectra with coordinates at 604 "
            "locations), so every lab sample is treated as a surface sample; at most one "
            "sample per location gets a labelled pixel"
        ),
    )


def soc_pool(n_sites: int, rngs: list[np.random.Generator]) -> LabPool:
    """LimeSoDa's SOC sets (:data:`SOC_REGIONS`): ``n_sites`` drawn per dataset, the rest spare.

    Their clay content (%, measured) is the ancillary input; LimeSoDa records no depth.
    """
    from soilbook.data.real.limesoda_lab import load_limesoda_lab

    r_pick = rngs[0]
    ds = load_limesoda_lab(target="SOC", wavelengths_nm=LAB_GRID_NM, ancillary=("Clay",))
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
    clay = ds["anc_clay"].values.astype(float)[:, None]
    anc = Covariates(
        names=["clay"],
        groups=["soil"],
        units=[str(ds["anc_clay"].attrs.get("units", "%"))],
        values=clay[chosen],
        source="clay content measured in the laboratory (LimeSoDa Clay_target, %)",
    )
    covariates, spare_cov, messages = finish_covariates(anc, clay[spare], "LimeSoDa")
    return LabPool(
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
        covariates=covariates,
        spare_covariates=spare_cov,
        messages=messages,
        depth_note=(
            "the LimeSoDa package records no sampling depth (its sets are field-scale "
            "samplings for liming and carbon mapping), so every sample is treated as a "
            "surface sample"
        ),
    )


# -- your own lab spectra ---------------------------------------------------------------------


def check_lab_path(data_path: str | os.PathLike[str] | None) -> Path:
    """Cheap checks of ``data_path`` for ``lab_source="file"`` (:func:`tables.check_path`)."""
    return tables.check_path(
        data_path,
        extensions=LAB_FILE_EXTENSIONS,
        missing_message=(
            "lab_source='file' needs data_path: the path of your lab spectra, a CSV "
            f"(refl_<nm> or abs_<nm> columns, target, lat, lon) or a NetCDF sample set; "
            f"supported: {list(LAB_FILE_EXTENSIONS)}."
        ),
        extension_hint=(
            " Save your table as CSV (refl_<nm> or abs_<nm>, target, lat, lon columns)."
        ),
    )


def csv_columns(path: Path) -> list[str]:
    """The header of a lab CSV, checked (:func:`tables.read_header`: empty, UTF-8, duplicates)."""
    return tables.read_header(path, layout=LAB_FILE_LAYOUT)


class SpectraColumns(NamedTuple):
    """The spectra columns of a lab CSV header (:func:`spectra_columns`)."""

    names: list[str]  # refl_<nm> or abs_<nm>, sorted by wavelength
    wavelengths_nm: np.ndarray  # (band,) nm, one per name
    dates: list[str]  # "@<date>" suffixes found ("" for none)
    absorbance: bool  # the columns are abs_<nm> (absorbance log10(1/R))


def spectra_columns(path: Path, columns: list[str]) -> SpectraColumns:
    """The ``refl_<nm>`` or ``abs_<nm>`` columns of a lab CSV header
    (:func:`soilbook.data.tables.parse_band_columns`; Sentinel-2 ``B01``... are ignored).

    Raises :class:`SchemaError` when the header has both kinds: one file holds one kind of
    spectra.
    """
    found = tables.parse_band_columns(columns)
    keep = [
        (d, w, found.columns[(d, b)])
        for d in found.dates
        for b, w in zip(found.bands, found.wavelengths_nm, strict=True)
        if (d, b) in found.columns
    ]
    refl = [(d, w, c) for d, w, c in keep if c.startswith("refl_")]
    absorb = [(d, w, c) for d, w, c in keep if c.startswith("abs_")]
    if refl and absorb:
        raise SchemaError(
            f"{path.name} has both reflectance (refl_<nm>, {len(refl)}) and absorbance "
            f"(abs_<nm>, {len(absorb)}) columns (file: {path}); give one kind of spectra: drop "
            "one set, or convert it (R = 10^-A) and name all columns refl_<nm>."
        )
    chosen = absorb or refl
    return SpectraColumns(
        names=[c for _, _, c in chosen],
        wavelengths_nm=np.array([w for _, w, _ in chosen], float),
        dates=sorted({d for d, _, _ in chosen}),
        absorbance=bool(absorb),
    )


def check_declared_kind(name: str, declared: str | None, spectra_kind: str, told_by: str) -> str:
    """The ``kind`` to give :func:`soilbook.data.tables.spectra_to_reflectance`.

    ``declared`` is what the file says (``"absorbance"`` for ``abs_<nm>`` columns or an
    ``absorbance`` variable, a NetCDF ``spectra_kind`` attribute, or None), ``told_by`` says
    where it says so. ``spectra_kind`` (:data:`soilbook.data.tables.SPECTRA_KINDS`) wins when
    not ``"auto"``; one that contradicts the file is a :class:`SchemaError`. Under ``"auto"``
    the file's word decides, else the values (the rule of ``spectra_to_reflectance``).
    """
    check_spectra_kind(spectra_kind)
    if declared is None or declared == "auto":
        return spectra_kind
    if spectra_kind not in ("auto", declared):
        raise SchemaError(
            f"{name}: {told_by} says the spectra are {declared!r} but spectra_kind="
            f"{spectra_kind!r}; fix the file or set spectra_kind={declared!r} (or 'auto')."
        )
    return declared


def check_spectra_kind(spectra_kind: str) -> None:
    """A :class:`ParameterError` unless ``spectra_kind`` is one of ``tables.SPECTRA_KINDS``."""
    if spectra_kind not in tables.SPECTRA_KINDS:
        raise ParameterError(
            f"spectra_kind={spectra_kind!r} is not allowed; allowed: {list(tables.SPECTRA_KINDS)} "
            "('auto': told from the names and values; 'reflectance': 0-1 or x 10000; 'percent'; "
            "'absorbance': log10(1/R), converted to R = 10^-A)."
        )


def _prefixed_covariates(columns: list[str]) -> list[str]:
    """The ``<group>:<name>`` columns whose group is one of :data:`FEATURE_GROUPS`."""
    return [c for c in columns if ":" in c and c.split(":", 1)[0] in FEATURE_GROUPS]


def require_lab_columns(
    path: Path, columns: list[str], target_column: str, spectra_kind: str = "auto"
) -> None:
    """The target and ``refl_<nm>`` or ``abs_<nm>`` columns (one kind, one date) must be
    there, and ``lat`` / ``lon`` unless a ``group`` column gives the regions; the spectra must
    cover enough of the lab grid (:func:`coverage_problem`); ``<group>:<name>`` prefixes must
    be known feature groups; ``abs_<nm>`` columns cannot be read as ``spectra_kind``
    ``"reflectance"`` or ``"percent"`` (:func:`check_declared_kind`)."""
    has_group = "group" in columns
    needed = (target_column,) if has_group else (target_column, "lat", "lon")
    tables.require_columns(path, columns, needed, layout=LAB_FILE_LAYOUT)
    if has_group and (("lat" in columns) != ("lon" in columns)):
        missing = "lon" if "lat" in columns else "lat"
        raise SchemaError(
            f"{path.name} has a '{'lat' if missing == 'lon' else 'lon'}' column but no "
            f"'{missing}' (file: {path}). Give both (WGS84 degrees) or neither (the 'group' "
            "column then gives the regions)."
        )
    found = spectra_columns(path, columns)
    if not found.names:
        raise SchemaError(
            f"{path.name} has no spectra columns named refl_<nm> (reflectance, e.g. refl_400) "
            f"or abs_<nm> (absorbance, e.g. abs_400) (file: {path}). Expected: {LAB_FILE_LAYOUT}"
        )
    if any(found.dates):
        raise SchemaError(
            f"{path.name}: lab spectra have one spectrum per row; drop the '@<date>' suffixes "
            f"of the {'abs' if found.absorbance else 'refl'}_<nm> columns (file: {path})."
        )
    check_declared_kind(
        path.name,
        "absorbance" if found.absorbance else None,
        spectra_kind,
        "the column names (abs_<nm>)",
    )
    problem = coverage_problem(found.wavelengths_nm, path.name)
    if problem:
        raise SchemaError(f"{problem} (file: {path}). Expected: {LAB_FILE_LAYOUT}")
    bad = sorted({c.split(":", 1)[0] for c in columns if ":" in c} - set(FEATURE_GROUPS) - {""})
    if bad:
        raise SchemaError(
            f"{path.name}: unknown feature group prefix(es) {bad} in the ancillary columns "
            f"'<group>:<name>'; use one of {list(FEATURE_GROUPS)} (e.g. 'soil:sand', "
            f"'climate:map_mm') (file: {path})."
        )


def _grid_matrix(path: Path, wl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolation matrix onto the lab grid the spectra cover, its ``gap_filled`` flags and
    the grid (:func:`lab_grid_for`: the points of :data:`LAB_GRID_NM` inside the measured
    range)."""
    order = np.argsort(wl)
    wl = wl[order]
    if wl.size < 2 or np.any(np.diff(wl) <= 0):
        raise SchemaError(f"{path.name}: the wavelengths must be distinct (found {wl.tolist()}).")
    problem = coverage_problem(wl, path.name)
    if problem:
        raise SchemaError(f"{problem} (file: {path}).")
    grid = lab_grid_for(wl)
    m = spec.interpolation_matrix(wl, grid)
    step = float(np.median(np.diff(wl)))
    right = np.clip(np.searchsorted(wl, grid, side="left"), 1, wl.size - 1)
    exact = np.isin(grid, wl)
    wide = (wl[right] - wl[right - 1]) > max(20.0, 2.5 * step)
    full = np.zeros((grid.size, order.size))
    full[:, order] = m
    return full, wide & ~exact, grid


@dataclass
class LabTable:
    """Real lab samples (all of them) on the lab grid, before drawing sites.

    ``grid_nm`` is the lab grid the spectra cover; ``depth_top_cm`` (NaN where unknown) or
    None when the source records no depth; ``covariates`` the ancillary inputs, or None;
    ``spectra_note`` how the stored values were converted to reflectance 0-1 (the note of
    :func:`soilbook.data.tables.spectra_to_reflectance`, e.g. ``"10^-(stored value)
    (absorbance log10(1/R))"``), ``""`` when they were kept.
    """

    values: np.ndarray  # (n, grid) float64, reflectance 0-1
    target: np.ndarray
    site: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    group: np.ndarray | None
    extra: dict[str, np.ndarray]
    gap_filled: np.ndarray
    target_units: str
    target_long_name: str
    grid_nm: np.ndarray = field(default_factory=lambda: LAB_GRID_NM.copy())
    depth_top_cm: np.ndarray | None = None
    covariates: Covariates | None = None
    measured_nm: tuple[float, float] = (float(LAB_GRID_NM[0]), float(LAB_GRID_NM[-1]))
    spectra_note: str = ""  # how stored values became reflectance ("" when kept as they are)


def _warn_dropped(path: Path, n: int, what: str, fields: str) -> None:
    """Say how many rows / samples of a lab file were dropped for a missing value."""
    if n:
        warnings.warn(
            f"{path.name}: dropped {n} {what} with a missing {fields} value.",
            stacklevel=6,  # the caller of load_transfer
        )


def _csv_covariates(path: Path, df: pd.DataFrame, columns: list[str]) -> Covariates | None:
    """The ``<group>:<name>`` ancillary columns of a lab CSV (rows already complete)."""
    if not columns:
        return None
    names = [c.split(":", 1)[1] for c in columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaError(
            f"{path.name}: the ancillary inputs {dup} are named twice (with different group "
            "prefixes); give each name once."
        )
    return Covariates(
        names=names,
        groups=[c.split(":", 1)[0] for c in columns],
        units=["" for _ in columns],
        values=df[columns].to_numpy(np.float64),
        source=f"the '<group>:<name>' columns of {path.name}",
    )


def read_lab_csv(
    path: Path, target_column: str, target_units: str, spectra_kind: str = "auto"
) -> LabTable:
    """A CSV of lab spectra (layout :data:`LAB_FILE_LAYOUT`) on the lab grid it covers.

    Rows with a missing target, spectrum value, ancillary value, group (when given) or,
    without a ``group`` column, lat/lon are dropped with a warning; a missing
    ``depth_top_cm`` means "not known". An infinite value is an error naming its cells
    (:func:`tables.check_finite`); lat/lon must be WGS84 degrees (:func:`tables.check_lat_lon`).

    The spectra (``refl_<nm>`` or ``abs_<nm>`` columns) become reflectance 0-1 by
    :func:`tables.spectra_to_reflectance` with ``kind=spectra_kind``
    (:data:`tables.SPECTRA_KINDS`): under ``"auto"``, ``abs_<nm>`` columns are absorbance
    log10(1/R) and ``refl_<nm>`` columns are told from their values (0-1 kept; percent or
    x 10 000 divided; absorbance stored as refl_<nm> converted to R = 10^-A; an ambiguous
    table refused), each conversion with a warning.
    """
    df = tables.read_csv(path, layout=LAB_FILE_LAYOUT)
    columns = list(df.columns)
    require_lab_columns(path, columns, target_column, spectra_kind)
    found = spectra_columns(path, columns)
    names, wl = found.names, found.wavelengths_nm
    m, gap_filled, grid = _grid_matrix(path, wl)
    has_group = "group" in columns
    coord_cols = [c for c in ("lat", "lon") if c in columns]
    cov_cols = _prefixed_covariates(columns)
    depth_cols = ["depth_top_cm"] if "depth_top_cm" in columns else []
    numeric = [target_column, *coord_cols, *names, *cov_cols, *depth_cols]
    tables.check_numeric(path, df, numeric)
    tables.check_finite(path, df, numeric)
    required = [target_column, *names, *cov_cols] + ([] if has_group else coord_cols)
    bad = df[required].isna().any(axis=1)
    if has_group:
        bad |= df["group"].isna()
    fields = "target, spectrum" + (", ancillary" if cov_cols else "")
    fields += ", group" if has_group else ", lat/lon"
    _warn_dropped(path, int(bad.sum()), "row(s)", fields)
    rows = np.flatnonzero(~bad.to_numpy())
    df = df.iloc[rows]
    nan = np.full(len(df), np.nan)
    lat = df["lat"].to_numpy(float) if "lat" in df.columns else nan
    lon = df["lon"].to_numpy(float) if "lon" in df.columns else nan
    tables.check_lat_lon(lat, lon, name=path.name)
    values, note = tables.spectra_to_reflectance(
        df[names].to_numpy(np.float64),
        kind=spectra_kind,
        name=path.name,
        wavelengths_nm=wl,
        absorbance_columns=found.absorbance,
        stacklevel=5,  # the caller of load_transfer
    )
    if "site" in df.columns:
        site = df["site"].astype(str).to_numpy()
    else:
        site = np.array([f"{path.stem}:{i}" for i in rows])
    return LabTable(
        values=values @ m.T,
        target=df[target_column].to_numpy(float),
        site=site,
        lat=lat,
        lon=lon,
        group=df["group"].astype(str).to_numpy() if has_group else None,
        extra={"file_row": rows},
        gap_filled=gap_filled,
        target_units=target_units,
        target_long_name=target_column,
        grid_nm=grid,
        depth_top_cm=df["depth_top_cm"].to_numpy(float) if depth_cols else None,
        covariates=_csv_covariates(path, df, cov_cols),
        measured_nm=(float(wl.min()), float(wl.max())),
        spectra_note=note or "",
    )


def _netcdf_variable(path: Path, ds: xr.Dataset) -> str:
    """The spectra variable of a lab NetCDF (:data:`NETCDF_SPECTRA_VARIABLES`), or
    ``"reflectance"`` when there is none (the missing-variable error names it)."""
    present = [v for v in NETCDF_SPECTRA_VARIABLES if v in ds.data_vars]
    if len(present) > 1:
        raise SchemaError(
            f"{path.name} has both a 'reflectance' and an 'absorbance' variable (file: {path}); "
            "give one kind of spectra."
        )
    return present[0] if present else "reflectance"


def _netcdf_kind(path: Path, spectra: xr.DataArray, spectra_kind: str) -> str:
    """The ``kind`` of a lab NetCDF's spectra: an ``absorbance`` variable is absorbance, a
    ``spectra_kind`` attribute of the variable says what it holds, ``spectra_kind`` (not
    ``"auto"``) must agree (:func:`check_declared_kind`); otherwise the values decide."""
    attr = spectra.attrs.get("spectra_kind")
    if attr is not None:
        attr = str(attr).strip().lower()
        if attr not in tables.SPECTRA_KINDS:
            raise SchemaError(
                f"{path.name}: the '{spectra.name}' variable has spectra_kind={attr!r}; allowed: "
                f"{list(tables.SPECTRA_KINDS)} (file: {path})."
            )
    if spectra.name == "absorbance":
        if attr not in (None, "auto", "absorbance"):
            raise SchemaError(
                f"{path.name}: the variable is named 'absorbance' but its spectra_kind "
                f"attribute says {attr!r} (file: {path}); rename it 'reflectance' or fix the "
                "attribute."
            )
        return check_declared_kind(
            path.name, "absorbance", spectra_kind, "the variable's name ('absorbance')"
        )
    return check_declared_kind(
        path.name, attr, spectra_kind, f"the spectra_kind attribute of '{spectra.name}'"
    )


def _netcdf_spectra(path: Path, ds: xr.Dataset, variable: str = "reflectance") -> xr.DataArray:
    """The spectra (``variable``) of a lab NetCDF as (sample, band), one date at most."""
    refl = ds[variable]
    if "date" in refl.dims:
        if refl.sizes["date"] != 1:
            raise SchemaError(
                f"{path.name}: {variable} has {refl.sizes['date']} dates; lab spectra need one "
                "spectrum per sample (select one date first)."
            )
        refl = refl.isel(date=0)
    return refl.transpose("sample", "band")


def _netcdf_covariates(path: Path, ds: xr.Dataset) -> Covariates | None:
    """The ``covariates`` (sample, feature) of a lab NetCDF, or None."""
    if "covariates" not in ds.data_vars:
        return None
    cov = ds["covariates"].transpose("sample", "feature")
    groups = (
        [str(g) for g in ds["feature_group"].values]
        if "feature_group" in ds.coords
        else ["other"] * cov.sizes["feature"]
    )
    units = (
        [str(u) for u in ds["feature_units"].values]
        if "feature_units" in ds.coords
        else [""] * cov.sizes["feature"]
    )
    return Covariates(
        names=[str(f) for f in cov["feature"].values],
        groups=groups,
        units=units,
        values=cov.values.astype(np.float64),
        source=f"the covariates of {path.name}",
    )


def read_lab_netcdf(
    path: Path, target_column: str, target_units: str, spectra_kind: str = "auto"
) -> LabTable:
    """A NetCDF sample set of lab spectra (layout :data:`LAB_FILE_LAYOUT`) on the lab grid.

    Missing values drop their sample (with a warning); infinite ones are an error.
    ``lat``/``lon`` are optional when the set has a ``group`` variable; ``covariates``
    (sample, feature) become the ancillary inputs and ``depth_top_cm`` the depth, where present.

    The spectra are the ``reflectance`` variable, or an ``absorbance`` variable (log10(1/R));
    not both. They become reflectance 0-1 by :func:`tables.spectra_to_reflectance`: under
    ``spectra_kind="auto"`` an ``absorbance`` variable is absorbance, a ``spectra_kind``
    attribute of the variable (one of :data:`tables.SPECTRA_KINDS`) says how it is stored,
    and otherwise the values decide, as for :func:`read_lab_csv`; a ``spectra_kind`` argument
    other than ``"auto"`` that contradicts the file is a :class:`SchemaError`.
    """
    check_spectra_kind(spectra_kind)
    ds = tables.read_netcdf(path)
    names = list(ds.variables)
    has_group = "group" in names
    variable = _netcdf_variable(path, ds)
    required = [variable, "wavelength", target_column]
    required += [] if has_group else ["lat", "lon"]
    missing = [c for c in required if c not in names]
    if missing:
        raise SchemaError(
            f"{path.name} has no variable(s) {missing} (file: {path}; variables: {names[:12]}). "
            f"Expected: {LAB_FILE_LAYOUT}"
        )
    refl = _netcdf_spectra(path, ds, variable)
    kind = _netcdf_kind(path, ds[variable], spectra_kind)
    m, gap_filled, grid = _grid_matrix(path, ds["wavelength"].values.astype(float))
    wl = ds["wavelength"].values.astype(float)
    values = refl.values.astype(np.float64)
    y = ds[target_column].values.astype(float)
    n = y.size
    nan = np.full(n, np.nan)
    lat = ds["lat"].values.astype(float) if "lat" in names else nan
    lon = ds["lon"].values.astype(float) if "lon" in names else nan
    cov = _netcdf_covariates(path, ds)
    cells = pd.DataFrame(values, columns=[str(b) for b in refl["band"].values])
    cells = cells.assign(**{target_column: y, "lat": lat, "lon": lon})
    if cov is not None:
        cells = cells.assign(**{f"cov:{c}": cov.values[:, j] for j, c in enumerate(cov.names)})
    tables.check_finite(path, cells, list(cells.columns), rows_are="samples")
    check = cells.drop(columns=["lat", "lon"]) if has_group else cells
    ok = ~check.isna().any(axis=1).to_numpy()
    _warn_dropped(path, int((~ok).sum()), "sample(s)", f"target, {variable} or lat/lon")
    tables.check_lat_lon(lat[ok], lon[ok], name=path.name)
    values, note = tables.spectra_to_reflectance(
        values[ok],
        kind=kind,
        name=path.name,
        wavelengths_nm=wl,
        stacklevel=5,  # the caller of load_transfer
    )
    rows = np.flatnonzero(ok)
    for name in ("site", "sample_id"):
        if name in ds.variables:
            site = ds[name].values.astype(str)[ok]
            break
    else:
        site = np.array([f"{path.stem}:{i}" for i in rows])
    units = target_units or str(ds[target_column].attrs.get("units", ""))
    depth = ds["depth_top_cm"].values.astype(float)[ok] if "depth_top_cm" in names else None
    return LabTable(
        values=values @ m.T,
        target=y[ok],
        site=site,
        lat=lat[ok],
        lon=lon[ok],
        group=ds["group"].values.astype(str)[ok] if has_group else None,
        extra={"file_row": rows},
        gap_filled=gap_filled,
        target_units=units,
        target_long_name=str(ds[target_column].attrs.get("long_name", target_column)),
        grid_nm=grid,
        depth_top_cm=depth,
        covariates=None if cov is None else cov.take(rows),
        measured_nm=(float(wl.min()), float(wl.max())),
        spectra_note=note or "",
    )


def read_lab_file(
    path: Path, target_column: str, target_units: str, spectra_kind: str = "auto"
) -> LabTable:
    """Your lab spectra: :func:`read_lab_csv` for ``.csv``, else :func:`read_lab_netcdf`.

    ``spectra_kind`` (:data:`soilbook.data.tables.SPECTRA_KINDS`): how the spectra are stored,
    ``"auto"`` (told from the column / variable names, a NetCDF attribute, or the values),
    ``"reflectance"``, ``"percent"`` or ``"absorbance"`` (log10(1/R), converted to R = 10^-A).
    """
    reader = read_lab_csv if path.suffix.lower() == ".csv" else read_lab_netcdf
    return reader(path, target_column, target_units, spectra_kind)


# -- OSSL and drawing sites from a table -------------------------------------------------------

#: OSSL soil lab properties used as ancillary inputs (:data:`soilbook.data.real.ossl.OSSL_TARGETS`).
OSSL_ANCILLARY = ("clay", "sand")


def ossl_table(target: str) -> tuple[LabTable, xr.Dataset]:
    """OSSL's lab samples for ``target`` (:data:`OSSL_TARGET_OF`) on the lab grid, and the set.

    With their clay and sand (:data:`OSSL_ANCILLARY`, %) as ancillary inputs where the soil
    lab table has them, and the layers' top depth.
    """
    from soilbook.data.real import ossl

    ds = ossl.load_ossl(
        OSSL_TARGET_OF[target],
        wavelengths_nm=LAB_GRID_NM,
        group="dataset",
        ancillary=OSSL_ANCILLARY,
    )
    extra = {"dataset_code": ds["dataset_code"].values.astype(str)}
    depth = None
    if "depth_top_cm" in ds.coords:
        depth = ds["depth_top_cm"].values.astype(float)
    anc = [a for a in OSSL_ANCILLARY if f"anc_{a}" in ds.coords]
    cov = None
    if anc:
        cov = Covariates(
            names=anc,
            groups=["soil"] * len(anc),
            units=[str(ds[f"anc_{a}"].attrs.get("units", "%")) for a in anc],
            values=np.column_stack([ds[f"anc_{a}"].values.astype(float) for a in anc]),
            source=f"{' and '.join(anc)} measured in the laboratory (OSSL soil lab L1, %)",
        )
    table = LabTable(
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
        depth_top_cm=depth,
        covariates=cov,
    )
    return table, ds


def _draw(
    table: LabTable, n_sites: int, r_pick: np.random.Generator, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn as sites, and spare rows (topsoil only: they only become pixels)."""
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
    if table.depth_top_cm is not None:
        rest = rest[~(table.depth_top_cm[rest] > TOPSOIL_MAX_TOP_CM)]
    n_spare = min(rest.size, int(np.ceil(chosen.size * OFFSITE_SHARE)))
    spare = np.sort(r_pick.choice(rest, n_spare, replace=False))
    return chosen, spare


def _depth_note(table: LabTable, name: str) -> str:
    """What the source records about depth, in words."""
    if table.depth_top_cm is None:
        return (
            f"{name} records no sampling depth, so every lab sample is treated as a surface sample"
        )
    d = table.depth_top_cm
    return (
        f"{name} records the top depth of {int(np.isfinite(d).sum())} of {d.size} samples; "
        f"only topsoil samples (top at most {TOPSOIL_MAX_TOP_CM:g} cm below the surface, or "
        "depth not recorded) get a satellite pixel, deeper layers stay in the lab set only "
        "(topsoil=False)"
    )


def table_pool(
    table: LabTable,
    n_sites: int,
    n_regions: int,
    seed: int,
    r_pick: np.random.Generator,
    name: str,
    *,
    paired_fraction: float = 0.25,
    min_pixels: int = regions_mod.DEFAULT_MIN_REGION_PIXELS,
) -> LabPool:
    """Draw ``n_sites`` lab sites (and spare spectra) from a table of real lab samples.

    Regions: the table's ``group`` when it has one, else :func:`assign_regions` of the
    coordinates (isolated sites, and the spare spectra nearest to them, are dropped). ``seed``
    is kept for the call signature (the regions involve no random draw).
    """
    del seed
    chosen, spare = _draw(table, n_sites, r_pick, name)
    lat, lon = table.lat[chosen], table.lon[chosen]
    depth = None if table.depth_top_cm is None else table.depth_top_cm[chosen]
    topsoil = np.ones(chosen.size, bool) if depth is None else ~(depth > TOPSOIL_MAX_TOP_CM)
    messages: list[str] = []
    if table.group is not None:
        group = table.group[chosen].astype(str)
        spare_group = table.group[spare].astype(str)
        keep = np.arange(chosen.size)
    else:
        regions, spare_group = assign_regions(
            lat,
            lon,
            table.lat[spare],
            table.lon[spare],
            n_regions,
            paired_fraction=paired_fraction,
            min_pixels=min_pixels,
            topsoil=topsoil,
            name=name,
        )
        messages += regions.messages
        group = regions.group
        keep = np.flatnonzero(regions.kept)
    keep_spare = np.flatnonzero(spare_group != "")
    sites_cov = None if table.covariates is None else table.covariates.take(chosen[keep])
    spare_cov_raw = None if table.covariates is None else table.covariates.values[spare[keep_spare]]
    covariates, spare_cov, cov_messages = finish_covariates(sites_cov, spare_cov_raw, name)
    rows = chosen[keep]
    return LabPool(
        values=table.values[rows],
        target=table.target[rows],
        site=table.site[rows],
        lat=table.lat[rows],
        lon=table.lon[rows],
        group=np.asarray(group, dtype=str)[keep],
        extra={k: v[rows] for k, v in table.extra.items()},
        spare_values=table.values[spare[keep_spare]],
        spare_lat=table.lat[spare[keep_spare]],
        spare_lon=table.lon[spare[keep_spare]],
        spare_group=np.asarray(spare_group, dtype=str)[keep_spare],
        gap_filled=table.gap_filled,
        grid_nm=table.grid_nm,
        depth_top_cm=None if depth is None else depth[keep],
        covariates=covariates,
        spare_covariates=spare_cov,
        messages=messages + cov_messages,
        depth_note=_depth_note(table, name),
    )


# -- what the lab domain is --------------------------------------------------------------------


@dataclass
class LabDomain:
    """What a lab set is, for its attributes and the description of :func:`load_transfer`.

    ``source`` / ``licence`` / ``citation`` are the lab set's; ``what`` names a real source in
    the description (``""`` for the bundled library); ``region_kind`` says what a region is;
    ``target_attrs`` and ``reflectance_attrs`` are the lab variables' attributes (units,
    long name, and whether they are simulated); ``spectra_note`` says how a file's stored
    values became reflectance (:attr:`LabTable.spectra_note`; ``""`` when kept as they are);
    ``regions_fixed`` whether the data fix the regions (LimeSoDa sets, a file's ``group``
    column) rather than the coordinates.
    """

    source: str
    what: str
    licence: str
    citation: str
    region_kind: str
    target_attrs: dict
    reflectance_attrs: dict
    spectra_note: str = ""
    regions_fixed: bool = False


def library_domain(target: str) -> LabDomain:
    """The bundled library: ICRAF-ISRIC + simulated salt (``"salinity"``) or LimeSoDa (``"soc"``)."""
    if target == "salinity":
        return LabDomain(
            source="ICRAF-ISRIC soil spectra (earthlib) + simulated salt crust (add_salt)",
            what="",
            licence=f"{spec.LIBRARY_LICENCE}; simulated parts {SIMULATED_LICENCE}",
            citation=spec.LIBRARY_CITATION + " Salt: " + tr.CITATION,
            region_kind="compact regions of the ICRAF coordinates, soilbook.data.regions",
            target_attrs={
                "units": "dS/m",
                "long_name": "electrical conductivity (SIMULATED salinity label)",
                "simulated": True,
            },
            reflectance_attrs={
                "units": "1",
                "long_name": "lab reflectance: real ICRAF-ISRIC soil + SIMULATED salt crust",
                "simulated": True,
                "real_part": "the soil spectrum (earthlib library)",
            },
        )
    from soilbook.data.real.limesoda import CITATION, LICENCE

    return LabDomain(
        source=f"LimeSoDa vis-NIR spectra ({', '.join(SOC_REGIONS)})",
        what="",
        licence=LICENCE,
        citation=CITATION,
        region_kind="LimeSoDa dataset",
        regions_fixed=True,
        target_attrs={
            "units": "%",
            "long_name": "soil organic carbon (g per 100 g; REAL LimeSoDa measurement)",
            "simulated": False,
        },
        reflectance_attrs={
            "units": "1",
            "long_name": "lab reflectance (REAL LimeSoDa vis-NIR spectra, resampled)",
            "simulated": False,
        },
    )


def table_domain(
    lab_source: str, source_name: str, table: LabTable, ossl_ds: xr.Dataset | None
) -> LabDomain:
    """Real lab samples from your file (``"file"``) or from OSSL (``"ossl"``)."""
    if lab_source == "file":
        from soilbook.data.real.userfile import UNKNOWN_LICENCE

        what = f"your file {source_name}"
        source, licence = f"user lab spectra ({source_name})", UNKNOWN_LICENCE
        citation = f"user data from {source_name}"
        region_kind = (
            f"the 'group' column of {source_name}"
            if table.group is not None
            else "compact regions of the file's lat/lon, soilbook.data.regions"
        )
    else:
        from soilbook.data.real import ossl

        attrs = {} if ossl_ds is None else ossl_ds.attrs
        what = "the Open Soil Spectral Library (OSSL v1.2)"
        source, licence = ossl.SOURCE, str(attrs.get("licence", ossl.LICENCE))
        citation = str(attrs.get("citation", ""))
        region_kind = "compact regions of the OSSL coordinates, soilbook.data.regions"
    reflectance_attrs: dict = {
        "units": "1",
        "long_name": f"lab reflectance (REAL spectra from {what}, interpolated)",
        "simulated": False,
    }
    if table.spectra_note:
        reflectance_attrs["stored_as"] = table.spectra_note
    return LabDomain(
        source=source,
        what=what,
        licence=licence,
        citation=citation,
        region_kind=region_kind,
        target_attrs={
            "units": table.target_units,
            "long_name": f"{table.target_long_name} (REAL measurement, {what})",
            "simulated": False,
        },
        reflectance_attrs=reflectance_attrs,
        spectra_note=table.spectra_note,
        regions_fixed=table.group is not None,
    )
