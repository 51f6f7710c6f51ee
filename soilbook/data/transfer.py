"""Lab and satellite domains for the DeepSalt chapter (lab-to-satellite spectral transfer).

:func:`load_transfer` assembles the three sample sets a teacher-student transfer model needs
(the lab spectra themselves come from :mod:`soilbook.data.labdomain`; every set is built by
:func:`soilbook.data.schema.sample_set`):

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
    are simulated**; the soils and their locations are real. No ancillary input, no depth.
``target="soc"``
    Lab spectra and SOC labels are **real** (LimeSoDa vis-NIR sets, :func:`~soilbook.data.real.limesoda_lab.load_limesoda_lab`);
    regions are the LimeSoDa datasets (CV.98, SC.93, SSP.460), so their number is fixed. The
    measured clay content (%) is the ancillary input.

``lab_source="file"`` (any ``target`` name)
    Lab spectra and labels are **real**: your own CSV or NetCDF sample set (``data_path``;
    layout :data:`~soilbook.data.labdomain.LAB_FILE_LAYOUT`), interpolated onto the part of
    :data:`LAB_GRID_NM` the spectra cover. Reflectance (``refl_<nm>``: 0-1, percent or
    x 10 000) or absorbance (``abs_<nm>``, log10(1/R), converted to R = 10^-A), as
    ``spectra_kind`` says or as detected (:func:`soilbook.data.tables.spectra_to_reflectance`).
    Regions come from ``lat``/``lon`` unless the file has a ``group`` column (then
    coordinates are optional, and without them the pixels have no location).
    ``<group>:<name>`` columns are ancillary inputs, ``depth_top_cm`` the sampled layer's top.
``lab_source="ossl"``
    Lab spectra and labels are **real**: Open Soil Spectral Library vis-NIR spectra with the
    measured EC (``target="salinity"``, dS/m, 1:2 soil:water) or organic carbon
    (``target="soc"``, %), :func:`soilbook.data.real.ossl.load_ossl` (about 1 GB downloaded on
    first use), with the layers' clay and sand (%) as ancillary inputs and their top depth.

In every case every **satellite pixel is simulated** from a lab spectrum with
:func:`~soilbook.data.simulate.transfer.lab_to_satellite` (moisture, vegetation cover,
illumination, spectral shift, EnMAP response functions, sensor noise) and only the usable
EnMAP bands are kept (:func:`soilbook.data.spectra.usable_bands`: 216 of 224, water-vapour
bands removed; with a narrower lab grid also the bands outside it,
:func:`~soilbook.data.labdomain.covered_bands`). Every variable carries
``attrs["simulated"]``. Every set's ``attrs["description"]`` (= :attr:`TransferData.description`)
says all of this for the data at hand, with a table of the regions.

Choices
-------
- **Lab grid.** 400-2450 nm every 10 nm (206 points, :data:`LAB_GRID_NM`), or the part of it
  a user's library covers (:data:`~soilbook.data.labdomain.COVERAGE_RULE`). earthlib leaves
  out 1360-1450 and 1800-1950 nm; those 26 points are **linearly interpolated** (the same
  bridging :func:`soilbook.data.spectra.resample` does) and flagged by the band coordinate
  ``gap_filled``, so the reflectance has no NaN. The salt crust is then added on the full
  grid, so its 1450/1940 nm absorptions do show in the gap-filled lab spectra.
- **Regions** (:mod:`soilbook.data.regions`): compact regions of comparable extent with at
  least ``min_region_pixels`` labelled pixels each, built from the coordinates (land groups
  split along their longest axis); isolated sites are dropped with a warning. The LimeSoDa
  sets and a file's ``group`` column are kept as given.
- **A site is one lab sample.** ICRAF stores several depths per profile (4,065 spectra with
  coordinates at 604 locations), so several sites may share a location; they always share
  the region, and the ``location`` coordinate (every set) names the place.
- **Pairing by site id** (:data:`PAIRING`): each paired site's pixel is simulated from that
  sample's own spectrum at its coordinates, so no distance matching is needed; at most one
  labelled pixel per location; where depth is known, only topsoil samples
  (:data:`~soilbook.data.labdomain.TOPSOIL_MAX_TOP_CM`) get pixels.
- **Stratified pairing.** Within every region ``max(2, round(paired_fraction * n))`` sites
  are paired (fewer where the region has fewer eligible locations), so each region can be
  held out with paired test sites; :data:`MIN_PAIRED_TRAIN` paired sites must remain when
  any region is held out.
- **Unlabelled pixels.** ``unlabelled_per_site`` pixels
  (:func:`~soilbook.data.simulate.transfer.simulate_satellite_pixels`, within 250 m) around
  every topsoil lab-only site and around a random half of the paired sites (``site`` = that
  site), plus around spare spectra that are not lab sites (``site`` = ``''``, region of the
  nearest lab site; salinity only, or SOC with ``n_sites`` below the 651 samples). Their
  labels are withheld: ``unlabelled`` has no ``target``. A spare spectrum may come from the
  same location as a lab site (another horizon of the profile): filter unlabelled pixels by
  ``location``, not only by ``site``, to keep them away from test sites.
- **Ancillary inputs** (``covariates`` of ``satellite`` and ``unlabelled``): the lab site's
  measured values where the source has them; the description names them and those missing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data import labdomain as lab_domain
from soilbook.data import regions as regions_mod
from soilbook.data import spectra as spec
from soilbook.data.labdomain import (
    COVERAGE_RULE,
    LAB_FILE_EXTENSIONS,
    LAB_GRID_NM,
    OFFSITE_SHARE,
    OSSL_TARGET_OF,
    SOC_REGIONS,
    TOPSOIL_MAX_TOP_CM,
    LabDomain,
    LabPool,
)
from soilbook.data.labdomain import SIMULATED_LICENCE as _SIMULATED_LICENCE
from soilbook.data.labdomain import check_lab_path as _check_lab_path
from soilbook.data.labdomain import csv_columns as _csv_columns
from soilbook.data.labdomain import require_lab_columns as _require_lab_columns
from soilbook.data.regions import (
    DEFAULT_MIN_REGION_PIXELS,
    MIN_PAIRED_PER_REGION,
    expected_pixels,
    location_ids,
)
from soilbook.data.schema import sample_set
from soilbook.data.simulate import transfer as tr
from soilbook.errors import ParameterError

#: Targets :func:`load_transfer` knows.
TARGETS = ("salinity", "soc")
#: Default number of geographic regions for ``target="salinity"``.
DEFAULT_N_REGIONS = 5
#: Fewest paired sites that must remain for training when any one region is held out.
MIN_PAIRED_TRAIN = 10
_SRF_KINDS = ("gaussian", "table")
#: Where the lab spectra come from (``lab_source``): the bundled libraries, your own file, OSSL.
LAB_SOURCES = ("library", "file", "ossl")
_PAIRING_BY_SITE = (
    "pairs come from the site id, not from a distance search: each labelled pixel is "
    "simulated from the lab spectrum of its own site at that site's coordinates, so every "
    "pair is exact (distance 0 km); at most one labelled pixel per location (a pixel is a "
    "place). "
)
_NO_DISTANCE_MATCHING = (
    "matching real, separately located lab samples and pixels by distance is not needed and "
    "not implemented here"
)
#: How a labelled pixel is paired with its lab sample, in words (description and attributes),
#: where the regions are built from the coordinates.
PAIRING = (
    _PAIRING_BY_SITE + "Great-circle distance (soilbook.geo) only gives each spare spectrum the "
    "region of its nearest lab site; " + _NO_DISTANCE_MATCHING
)
#: :data:`PAIRING` where the data fix the regions (LimeSoDa sets, a file's ``group`` column).
PAIRING_FIXED_REGIONS = (
    _PAIRING_BY_SITE + "The regions are fixed by the data, so each spare spectrum keeps its "
    "own region and no distance is computed; " + _NO_DISTANCE_MATCHING
)
#: :data:`PAIRING` for lab samples without coordinates (a file with a ``group`` column only).
PAIRING_WITHOUT_COORDINATES = (
    "pairs come from the site id, not from a distance search: each labelled pixel is "
    "simulated from the lab spectrum of its own site, so every pair is exact; the lab file "
    "gives no coordinates, so the pixels have no location (lat/lon NaN), nothing is known "
    "about which samples share a place (each sample counts as its own location), and the "
    "regions are the file's 'group' values (spare spectra keep their own group). No distance "
    "is computed anywhere"
)


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
    min_region_pixels: int = DEFAULT_MIN_REGION_PIXELS,
    spectra_kind: str = "auto",
) -> None:
    """Check :func:`load_transfer`'s arguments cheaply (no data read).

    Raises :class:`~soilbook.errors.ParameterError` saying what is wrong and what to do. The
    number of paired sites is estimated here as ``paired_fraction * n_sites``;
    :func:`load_transfer` repeats the check on the sites it actually draws.

    ``n_regions`` may be None (5 for salinity; for SOC from the library the regions are the
    three LimeSoDa sets, so only None or 3 are accepted).

    ``lab_source`` is ``"library"`` (bundled ICRAF / LimeSoDa), ``"file"`` (``data_path``: your
    CSV or NetCDF; ``target`` then only names the property) or ``"ossl"`` (``target``
    ``"salinity"`` or ``"soc"``). A file must be non-empty; for a CSV the header is read to
    check the required columns and its bytes are scanned for text that is not UTF-8
    (:mod:`soilbook.data.checks`), and its ``refl_<nm>`` or ``abs_<nm>`` columns (one kind)
    must cover enough of the lab grid (:data:`~soilbook.data.labdomain.COVERAGE_RULE`) and
    agree with ``spectra_kind`` (``abs_<nm>`` cannot be ``"reflectance"`` or ``"percent"``);
    such problems raise :class:`~soilbook.errors.SchemaError`.

    ``spectra_kind`` must be one of :data:`soilbook.data.tables.SPECTRA_KINDS` (checked for
    every ``lab_source``; only a file's spectra use it).

    ``min_region_pixels`` (>= 2) is the floor on a region's labelled pixels: where the regions
    are built from coordinates, ``paired_fraction * n_sites / n_regions`` must reach it.
    """
    if lab_source not in LAB_SOURCES:
        raise ParameterError(
            f"lab_source={lab_source!r} is not known; allowed: {list(LAB_SOURCES)} ('library': "
            "the bundled ICRAF / LimeSoDa spectra; 'file': your own lab spectra in data_path; "
            "'ossl': the Open Soil Spectral Library, downloaded on first use)."
        )
    lab_domain.check_spectra_kind(spectra_kind)
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
        from soilbook.data.checks import check_file_content, check_utf8_text

        path = check_file_content(_check_lab_path(data_path))
        file_groups = True  # a NetCDF's regions are only known once it is read
        if path.suffix.lower() == ".csv":
            columns = _csv_columns(path)
            check_utf8_text(path)
            _require_lab_columns(path, columns, target_column, spectra_kind)
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
    if (
        isinstance(min_region_pixels, bool)
        or not isinstance(min_region_pixels, int | np.integer)
        or min_region_pixels < MIN_PAIRED_PER_REGION
    ):
        raise ParameterError(
            f"min_region_pixels={min_region_pixels!r}; expected an int >= "
            f"{MIN_PAIRED_PER_REGION}: the fewest labelled satellite pixels a region must hold "
            f"(its test set when it is held out; default {DEFAULT_MIN_REGION_PIXELS})."
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
    fixed = (target == "soc" and lab_source == "library") or file_groups
    if not fixed and n_paired / k < min_region_pixels:
        raise ParameterError(
            f"about {n_paired} paired sites (paired_fraction={paired_fraction} x "
            f"n_sites={n_sites}) give about {n_paired / k:.0f} labelled pixels per region over "
            f"{k} regions, below min_region_pixels={min_region_pixels}. Use fewer regions, "
            "more sites or a larger paired_fraction, or lower min_region_pixels."
        )
    if holdout_region is not None and not file_groups:
        ids = region_ids(target, k, lab_source)
        if holdout_region not in ids:
            raise ParameterError(
                f"holdout_region={holdout_region!r} is not a region of target={target!r}; "
                f"allowed: {list(ids)} (or None for no hold-out)."
            )


def _stratified_pairs(
    group: np.ndarray,
    paired_fraction: float,
    rng: np.random.Generator,
    target: str,
    *,
    location: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of paired sites, then the checks.

    Per region :func:`~soilbook.data.regions.expected_pixels` sites: ``max(2, round(f n))``
    of the region's ``n`` sites, at most one per ``location`` (a pixel is a place) and only
    among the ``eligible`` (topsoil) sites; a location is drawn first, then one of its eligible
    sites. Default: every site its own location, every site eligible.
    """
    n = group.size
    location = np.arange(n) if location is None else np.asarray(location)
    eligible = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    paired = np.zeros(n, bool)
    regions = sorted(set(group.tolist()))
    for g in regions:
        idx = np.flatnonzero((group == g) & eligible)
        places = np.unique(location[idx])
        k = expected_pixels(int((group == g).sum()), places.size, paired_fraction)
        for place in rng.choice(places, k, replace=False):
            paired[rng.choice(idx[location[idx] == place])] = True
    counts = {g: int(paired[group == g].sum()) for g in regions}
    thin = {g: c for g, c in counts.items() if c < MIN_PAIRED_PER_REGION}
    if thin:
        raise ParameterError(
            f"target={target!r}: region(s) {thin} have fewer than {MIN_PAIRED_PER_REGION} paired "
            "sites (too few sites, or topsoil sites at distinct locations, in the region), so "
            "they cannot be held out with paired test sites. Use fewer regions or more sites "
            "(n_sites)."
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


def _thin_regions(group: np.ndarray, paired: np.ndarray, floor: int) -> dict[str, int]:
    """Regions with fewer than ``floor`` labelled pixels (fixed regions are not rebuilt)."""
    counts = {g: int(paired[group == g].sum()) for g in sorted(set(group.tolist()))}
    return {g: c for g, c in counts.items() if c < floor}


# -- assembling --------------------------------------------------------------------------------


def _lab_array(values, site, lat, lon, group, grid, location) -> xr.DataArray:
    """Lab spectra (spectrum, wavelength) with the site coordinates lab_to_satellite carries."""
    return xr.DataArray(
        values,
        dims=("spectrum", "wavelength"),
        coords={
            "wavelength": np.asarray(grid, float),
            "site_id": ("spectrum", np.asarray(site, dtype=str)),
            "lat": ("spectrum", np.asarray(lat, float), {"units": "degrees_north"}),
            "lon": ("spectrum", np.asarray(lon, float), {"units": "degrees_east"}),
            "region": ("spectrum", np.asarray(group, dtype=str)),
            "location_id": ("spectrum", np.asarray(location, dtype=str)),
            "row": ("spectrum", np.arange(len(site))),
        },
    )


@dataclass
class _Ancillary:
    """Covariates of the pixels' source rows: names, groups, units and the (n, p) values."""

    names: list[str]
    groups: list[str]
    units: list[str]
    values: np.ndarray

    def sample_set_kwargs(self, rows: np.ndarray) -> dict:
        """The ``sample_set`` arguments of ``covariates`` for the pixels made from ``rows``."""
        return {
            "covariates": self.values[rows].astype(np.float32),
            "features": list(zip(self.names, self.groups, strict=True)),
            "feature_units": self.units,
            "covariate_long_name": "ancillary inputs (the lab site's measured values)",
            "covariate_attrs": {"simulated": False},
        }


def _pixels_dataset(
    pixels: xr.DataArray,
    factors: dict[str, np.ndarray],
    attrs: dict,
    *,
    target: np.ndarray | None = None,
    target_attrs: dict | None = None,
    origin: np.ndarray | None = None,
    coords: dict | None = None,
    ancillary: _Ancillary | None = None,
) -> xr.Dataset:
    """Satellite pixels (a lab_to_satellite result, spectrum × band) as a sample set.

    Labelled (and validated) when ``target`` is given; without it the set has no ``target``.
    With ``ancillary``, each pixel carries the covariates of its source row (``row``).
    """
    n = pixels.sizes["spectrum"]
    extra = {
        "fwhm": ("band", pixels["fwhm"].values.astype(float), {"units": "nm"}),
        "snr": ("band", pixels["snr"].values.astype(float), {"units": "1"}),
        "site": ("sample", pixels["site_id"].values.astype(str), {"long_name": "lab site id"}),
        "location": (
            "sample",
            pixels["location_id"].values.astype(str),
            {"long_name": "location id: the same for every sample at the same coordinates"},
        ),
    }
    if origin is not None:
        extra["origin"] = ("sample", np.asarray(origin, dtype=str))
    for k in ("moisture", "f_soil", "f_gv", "f_npv", "scale", "tilt", "shift_nm"):
        if k in factors:
            extra[f"latent_{k}"] = (
                "sample",
                np.asarray(factors[k], float),
                {"long_name": f"simulated latent factor '{k}' (lab_to_satellite)"},
            )
    target_attrs = dict(target_attrs or {})
    cov = {} if ancillary is None else ancillary.sample_set_kwargs(pixels["row"].values)
    return sample_set(
        target,
        groups=pixels["region"].values.astype(str),
        group_long_name="region (leave-one-region-out)",
        target_units=target_attrs.get("units"),
        target_long_name=target_attrs.get("long_name"),
        target_attrs=target_attrs,
        reflectance=pixels.values.astype(np.float32)[:, None, :],
        dates=["satellite"],
        bands=pixels["band"].values.astype(str),
        wavelengths_nm=pixels["wavelength"].values.astype(float),
        reflectance_long_name="EnMAP surface reflectance (SIMULATED from lab spectra)",
        reflectance_attrs={"simulated": True},
        sample_ids=np.arange(n),
        lat=pixels["lat"].values,
        lon=pixels["lon"].values,
        coords=extra | dict(coords or {}),
        validate=target is not None,
        **cov,
        **attrs,
    )


def _empty_unlabelled(sat: xr.Dataset, attrs: dict) -> xr.Dataset:
    """An unlabelled set with no sample, shaped like ``sat`` (``unlabelled_per_site=0``)."""
    ds = sat.drop_vars("target").isel(sample=slice(0, 0))
    ds = ds.drop_vars([c for c in ds.coords if str(c).startswith("latent_")])
    ds = ds.drop_vars([c for c in ("lab_index",) if c in ds.coords])
    ds = ds.assign_coords(origin=("sample", np.empty(0, dtype=str)))
    ds.attrs = attrs
    return ds


@dataclass
class _Sources:
    """Every spectrum a pixel can be made from: the lab sites, then the spare spectra."""

    values: np.ndarray  # (n + n_spare, grid)
    site: np.ndarray  # '' for spares
    lat: np.ndarray
    lon: np.ndarray
    group: np.ndarray
    location: np.ndarray  # str ids, shared by samples at the same coordinates
    grid: np.ndarray
    n_sites: int
    ancillary: _Ancillary | None

    @classmethod
    def of(cls, pool: LabPool) -> _Sources:
        n_spare = pool.spare_values.shape[0]
        lat = np.r_[pool.lat, pool.spare_lat]
        lon = np.r_[pool.lon, pool.spare_lon]
        loc = np.array([f"loc{i:05d}" for i in location_ids(lat, lon)])
        anc = None
        if pool.covariates is not None:
            spare = (
                pool.spare_covariates
                if pool.spare_covariates is not None
                else np.zeros((n_spare, len(pool.covariates.names)))
            )
            anc = _Ancillary(
                names=list(pool.covariates.names),
                groups=list(pool.covariates.groups),
                units=list(pool.covariates.units),
                values=np.concatenate([pool.covariates.values, spare]),
            )
        return cls(
            values=np.concatenate([pool.values, pool.spare_values]),
            site=np.r_[pool.site.astype(str), np.full(n_spare, "", dtype=object)].astype(str),
            lat=lat,
            lon=lon,
            group=np.r_[pool.group.astype(str), pool.spare_group.astype(str)].astype(str),
            location=loc,
            grid=pool.grid_nm,
            n_sites=pool.site.size,
            ancillary=anc,
        )

    def array(self, rows: np.ndarray) -> xr.DataArray:
        """The lab spectra of ``rows`` with the coordinates the pixels carry."""
        da = _lab_array(
            self.values,
            self.site,
            self.lat,
            self.lon,
            self.group,
            self.grid,
            self.location,
        )
        return da.isel(spectrum=np.asarray(rows, int))


def _satellite_set(
    pool: LabPool,
    paired: np.ndarray,
    domain: LabDomain,
    rng,
    p,
    sat_kwargs: dict,
    attrs: dict,
    sources: _Sources,
) -> xr.Dataset:
    """One labelled pixel at every paired site, simulated from that site's lab spectrum."""
    ip = np.flatnonzero(paired)
    pix, factors = tr.lab_to_satellite(sources.array(ip), rng, p, **sat_kwargs)
    return _pixels_dataset(
        pix,
        factors,
        attrs,
        target=pool.target[ip],
        target_attrs=domain.target_attrs,
        coords={"lab_index": ("sample", ip, {"long_name": "row of `lab`"})},
        ancillary=sources.ancillary,
    )


def _unlabelled_set(
    pool: LabPool,
    paired: np.ndarray,
    per_site: int,
    rngs: tuple,
    p,
    sat_kwargs: dict,
    attrs: dict,
    satellite: xr.Dataset,
    sources: _Sources,
) -> xr.Dataset:
    """Unlabelled pixels around topsoil lab-only sites, half of the paired sites and spare
    spectra (spares of known depth are topsoil already)."""
    r_half, r_unl = rngs
    ip = np.flatnonzero(paired)
    lab_only = np.flatnonzero(~paired & pool.topsoil)
    half = np.sort(r_half.choice(ip, ip.size // 2, replace=False)) if ip.size else ip
    spare = np.arange(pool.spare_values.shape[0]) + sources.n_sites
    src = np.r_[lab_only, half, spare].astype(int)
    if per_site <= 0 or src.size == 0:
        return _empty_unlabelled(satellite, attrs)
    origin = np.r_[
        np.full(lab_only.size, "lab_only_site", dtype=object),
        np.full(half.size, "paired_site_neighbour", dtype=object),
        np.full(spare.size, "off_site", dtype=object),
    ].astype(str)
    unl_lab = sources.array(src).assign_coords(origin=("spectrum", origin))
    upix, ufac = tr.simulate_satellite_pixels(unl_lab, int(per_site), r_unl, p, **sat_kwargs)
    return _pixels_dataset(
        upix, ufac, attrs, origin=upix["origin"].values, ancillary=sources.ancillary
    )


def _lab_set(
    pool: LabPool, paired: np.ndarray, domain: LabDomain, attrs: dict, sources: _Sources
) -> xr.Dataset:
    """The labelled lab sample set on the lab grid (paired and lab-only sites)."""
    coords = {
        "gap_filled": (
            "band",
            pool.gap_filled,
            {"long_name": "linearly interpolated across the library's water-vapour gap"},
        ),
        "site": ("sample", pool.site.astype(str), {"long_name": "lab site id"}),
        "paired": (
            "sample",
            paired,
            {"long_name": "this site also has a labelled pixel in `satellite` (same site id)"},
        ),
        "location": (
            "sample",
            sources.location[: sources.n_sites],
            {"long_name": "location id: the same for every sample at the same coordinates"},
        ),
        "depth_top_cm": (
            "sample",
            np.asarray(pool.depth_top_cm, float),
            {"units": "cm", "long_name": "top of the sampled layer (NaN: not recorded)"},
        ),
        "topsoil": (
            "sample",
            pool.topsoil,
            {
                "long_name": (
                    f"may stand for a satellite pixel: top at most {TOPSOIL_MAX_TOP_CM:g} cm "
                    "below the surface, or depth not recorded"
                )
            },
        ),
    }
    for name, values in pool.extra.items():
        coords[name] = ("sample", values)
    grid = pool.grid_nm
    return sample_set(
        pool.target,
        groups=pool.group.astype(str),
        group_long_name=f"region ({domain.region_kind})",
        target_units=domain.target_attrs["units"],
        target_long_name=domain.target_attrs["long_name"],
        target_attrs=domain.target_attrs,
        reflectance=pool.values.astype(np.float32)[:, None, :],
        dates=["lab"],
        bands=[f"wl_{w:g}" for w in grid],
        wavelengths_nm=grid,
        reflectance_long_name=domain.reflectance_attrs["long_name"],
        reflectance_attrs=domain.reflectance_attrs,
        sample_ids=np.arange(pool.site.size),
        lat=pool.lat,
        lon=pool.lon,
        coords=coords,
        **attrs,
    )


def _grid_text(grid: np.ndarray) -> str:
    return f"{grid.min():g}-{grid.max():g} nm, 10 nm steps ({grid.size} points)"


def _set_attrs(
    target: str,
    lab_source: str,
    domain: LabDomain,
    srf_da: xr.DataArray,
    srf: str,
    seed: int,
    p: tr.TransferParams,
    grid: np.ndarray,
    pairing: str = PAIRING,
) -> tuple[dict[str, dict], dict]:
    """The dataset attributes of the satellite and unlabelled sets, and of the lab set."""
    sim_attrs = {
        "source": "soilbook transfer simulator (lab_to_satellite, EnMAP bands)",
        "licence": _SIMULATED_LICENCE,
        "citation": tr.CITATION,
        "simulated": True,
        "sensor": srf_da.attrs.get("sensor", "EnMAP"),
        "srf": srf,
        "bands_dropped": (
            "water vapour and outside 400-2450 nm (spectra.usable_bands), and outside the lab "
            f"coverage {grid.min():g}-{grid.max():g} nm (labdomain.covered_bands)"
        ),
        "seed": int(seed),
        **p.as_attrs(),
        "lab_source": lab_source,
        "domain": "satellite",
        "target_name": target,
        "pairing": pairing,
    }
    labels_simulated = bool(domain.target_attrs["simulated"])
    satellite = {**sim_attrs, "labels_simulated": labels_simulated}
    unlabelled = {**sim_attrs, "labelled": False}
    for attrs in (satellite, unlabelled):
        attrs["region_kind"] = domain.region_kind
    unlabelled["note"] = "labels withheld: no target variable"
    lab = {
        "source": domain.source,
        "licence": domain.licence,
        "citation": domain.citation,
        "simulated": bool(lab_source == "library" and target == "salinity"),
        "domain": "lab",
        "lab_source": lab_source,
        "target_name": target,
        "labels_simulated": labels_simulated,
        "region_kind": domain.region_kind,
        "grid_nm": _grid_text(grid),
        "seed": int(seed),
    }
    if domain.spectra_note:
        lab["spectra_stored_as"] = domain.spectra_note
    return {"satellite": satellite, "unlabelled": unlabelled}, lab


def _lab_pool(
    target: str,
    lab_source: str,
    *,
    n_sites: int,
    n_regions: int | None,
    seed: int,
    rngs: list[np.random.Generator],
    params: tr.TransferParams,
    data_path: str | os.PathLike[str] | None,
    target_column: str,
    target_units: str,
    paired_fraction: float,
    min_region_pixels: int,
    spectra_kind: str = "auto",
) -> tuple[LabPool, LabDomain]:
    """The lab sites of ``lab_source`` and what they are."""
    library = lab_source == "library"
    k_regions = n_regions or DEFAULT_N_REGIONS
    floor = {"paired_fraction": paired_fraction, "min_pixels": min_region_pixels}
    if library and target == "salinity":
        pool = lab_domain.salinity_pool(n_sites, k_regions, seed, rngs, params, **floor)
        return pool, lab_domain.library_domain(target)
    if library:
        return lab_domain.soc_pool(n_sites, rngs[:1]), lab_domain.library_domain(target)
    ossl_ds = None
    if lab_source == "file":
        path = _check_lab_path(data_path)
        table = lab_domain.read_lab_file(path, target_column, target_units, spectra_kind)
        source_name = path.name
    else:
        table, ossl_ds = lab_domain.ossl_table(target)
        source_name = "OSSL"
    pool = lab_domain.table_pool(table, n_sites, k_regions, seed, rngs[0], source_name, **floor)
    if table.group is not None:
        n_file = len(set(pool.group.tolist()))
        if n_regions is not None and n_regions != n_file:
            warnings.warn(
                f"{source_name} has a 'group' column with {n_file} regions; they are used "
                f"and n_regions={n_regions} is ignored.",
                stacklevel=3,
            )
    if pool.grid_nm.size < LAB_GRID_NM.size:
        lo, hi = table.measured_nm
        pool.messages.append(
            f"{source_name}: the lab spectra cover {lo:g}-{hi:g} nm, so the lab grid is "
            f"{_grid_text(pool.grid_nm)} instead of 400-2450 nm, and the satellite bands "
            f"outside it are dropped ({COVERAGE_RULE})."
        )
    return pool, lab_domain.table_domain(lab_source, source_name, table, ossl_ds)


def _real_what(target: str, lab_source: str, what: str) -> str:
    """The first sentence of the description: what the lab domain is."""
    if lab_source != "library":
        return (
            f"Lab domain: REAL laboratory soil spectra from {what} with REAL '{target}' labels "
            "(measured)."
        )
    if target == "salinity":
        return (
            "Lab domain: REAL ICRAF-ISRIC laboratory soil spectra (earthlib library, real "
            "coordinates; the library's water-vapour gaps linearly interpolated) with a "
            "SIMULATED salt crust added for a SIMULATED salinity label (EC, dS/m, truncated "
            "log-normal; add_salt)."
        )
    return (
        "Lab domain: REAL LimeSoDa vis-NIR soil spectra with REAL soil organic carbon labels "
        f"(%, datasets {', '.join(SOC_REGIONS)}, which are the regions; CV.98 was scanned in "
        "situ from an auger, the others in the laboratory; coordinates are known for SC.93 "
        "only)."
    )


def _real_simulated(target: str, lab_source: str, located: int = 1) -> str:
    """The last sentence of the description: what is real, what is simulated.

    ``located`` is the number of lab sites with coordinates (0: the source gives none).
    """
    if lab_source == "library" and target == "salinity":
        return (
            "Real: the soil spectra and their locations. Simulated: the EC labels, the salt "
            "signal and every satellite pixel."
        )
    real = (
        "lab spectra, labels, locations and ancillary inputs (where given)"
        if located
        else "lab spectra, labels and ancillary inputs (where given); the source gives no locations"
    )
    return (
        f"Real: {real}. Simulated: every satellite pixel (moisture, vegetation, illumination, "
        "sensor)."
    )


def _pairing_text(pool: LabPool, domain: LabDomain) -> str:
    """:data:`PAIRING`; :data:`PAIRING_FIXED_REGIONS` where the data fix the regions;
    :data:`PAIRING_WITHOUT_COORDINATES` where no lab site has coordinates."""
    if not _located(pool):
        return PAIRING_WITHOUT_COORDINATES
    return PAIRING_FIXED_REGIONS if domain.regions_fixed else PAIRING


def _located(pool: LabPool) -> int:
    """The number of lab sites with coordinates (lat and lon finite)."""
    return int((np.isfinite(pool.lat) & np.isfinite(pool.lon)).sum())


def _regions_text(pool: LabPool, summary: pd.DataFrame, region_kind: str) -> str:
    """The regions sentence: :func:`soilbook.data.regions.describe_regions`, or, for sites
    without coordinates, one that claims no extent and no shared locations."""
    n = pool.site.size
    located = _located(pool)
    if located == n:
        return regions_mod.describe_regions(summary)
    parts = []
    for g, row in summary.iterrows():
        counts = f"{int(row['sites'])} sites, {int(row['labelled_pixels'])} labelled pixels"
        if located and np.isfinite(row["extent_km"]):
            counts = (
                f"{row['extent_km']:,.0f} km across, {int(row['sites'])} sites at "
                f"{int(row['locations'])} locations, {int(row['labelled_pixels'])} labelled pixels"
            )
        elif located:
            counts = "no coordinates, " + counts
        parts.append(f"{g}: {counts}")
    if located:
        return (
            "Regions: " + "; ".join(parts) + f". {n - located} of {n} lab sites have no "
            "coordinates: no extent or place is known for them, and each counts as its own "
            "location."
        )
    return (
        f"Regions ({region_kind}; the source gives no coordinates, so no region has a known "
        "extent and no sample a known place): " + "; ".join(parts) + "."
    )


def _spectra_text(domain: LabDomain) -> str:
    """How a file's stored spectra became reflectance, or ``""`` when they were kept."""
    if not domain.spectra_note:
        return ""
    if "absorbance" in domain.spectra_note:
        return (
            "The lab file stores absorbance log10(1/R); it was converted to reflectance "
            "R = 10^-A before anything else."
        )
    return f"The lab file's spectra were scaled to reflectance 0-1 ({domain.spectra_note})."


def _covariate_text(pool: LabPool) -> str:
    """What the student (and the baselines) get beside the spectrum."""
    cov = pool.covariates
    if cov is None:
        return (
            "Ancillary inputs: none. The paper's student also used sand, clay and climate; "
            "this source has none of them (a file may add '<group>:<name>' columns such as "
            "'soil:sand' or 'climate:map_mm')."
        )
    named = ", ".join(
        f"{n} ({g}{', ' + u if u else ''})"
        for n, g, u in zip(cov.names, cov.groups, cov.units, strict=True)
    )
    missing = [x for x in ("sand", "clay") if x not in cov.names]
    climate = "climate" in cov.groups
    lacking = missing + ([] if climate else ["climate"])
    return (
        f"Ancillary inputs (covariates of every satellite and unlabelled pixel, used by the "
        f"DeepSalt student and the baselines): {named}, from {cov.source}; each pixel carries "
        "the value measured at its lab site, which is more precise than the mapped values "
        "(e.g. SoilGrids, WorldClim) a real application would use."
        + (f" Not available here: {', '.join(lacking)}." if lacking else "")
    )


def _description(
    target: str,
    n: dict[str, int],
    lab_source: str,
    domain: LabDomain,
    pool: LabPool,
    summary: pd.DataFrame,
) -> str:
    """The data description: what is real and what is simulated, the regions, the pairing,
    the depth, the ancillary inputs and what was dropped or filled."""
    grid = pool.grid_nm
    located = _located(pool)
    unlabelled = (
        "pixels surround lab-only sites, half of the paired sites and spare spectra"
        if located
        else "pixels are simulated from lab-only sites, half of the paired sites and spare "
        "spectra (variants of their spectra, with no location)"
    )
    parts = [
        _real_what(target, lab_source, domain.what),
        f"{n['lab']} lab sites on {_grid_text(grid)}.",
        _spectra_text(domain),
        f"Satellite domain: SIMULATED EnMAP pixels ({n['bands']} usable bands) made from those "
        f"lab spectra by lab_to_satellite; {n['paired']} paired sites, drawn within each of "
        f"{len(summary)} regions ({domain.region_kind}), have a "
        f"labelled pixel carrying the label of the site, and {n['unlabelled']} unlabelled "
        f"{unlabelled}.",
        "Pairing: " + _pairing_text(pool, domain) + ".",
        "Depth: " + pool.depth_note + ".",
        _covariate_text(pool),
        _regions_text(pool, summary, domain.region_kind),
        *(m[:1].upper() + m[1:] for m in pool.messages),
        _real_simulated(target, lab_source, located),
    ]
    return " ".join(p.strip() for p in parts if p)


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
    min_region_pixels: int = DEFAULT_MIN_REGION_PIXELS,
    spectra_kind: str = "auto",
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
        drawn proportionally per dataset. Isolated sites dropped by the region rule do not
        count (the description says how many).
    paired_fraction
        Share of the lab sites, per region, that also get a labelled satellite pixel, in (0, 1]
        (at least :data:`~soilbook.data.regions.MIN_PAIRED_PER_REGION` per region, at most one
        per location, topsoil samples only).
    unlabelled_per_site
        Unlabelled pixels around each topsoil lab-only site, each of a random half of the
        paired sites and each spare spectrum (0 = no unlabelled pixels).
    n_regions
        Regions built from the coordinates (default 5; :mod:`soilbook.data.regions`: compact,
        comparable extent, at least ``min_region_pixels`` labelled pixels each; lowered with a
        warning when the sites cannot hold that many). SOC from the library: fixed by the data
        (the three datasets), so None or 3.
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
        for ``"soc"``, with clay and sand as ancillary inputs; about 1 GB downloaded on first
        use). With ``"file"`` and ``"ossl"`` the labels are real and ``n_sites`` rows are
        drawn (all when there are fewer); regions are built from lat/lon (``n_regions``,
        default 5) unless the file has a ``group`` column.
    data_path
        ``lab_source="file"``: a CSV (:data:`~soilbook.data.labdomain.LAB_FILE_LAYOUT`) with
        ``refl_<nm>`` (reflectance) or ``abs_<nm>`` (absorbance log10(1/R)) columns, not both
        (how they are stored: ``spectra_kind``), the target column, ``lat`` and ``lon``
        (optional with a ``group`` column), optional ``group``, ``site``, ``depth_top_cm`` and
        ancillary ``<group>:<name>`` columns; or a NetCDF sample set (``reflectance`` or
        ``absorbance`` (sample, [date,] band) with ``wavelength``, the target, ``lat``/``lon``
        or ``group``, optional ``covariates``). Coverage:
        :data:`~soilbook.data.labdomain.COVERAGE_RULE`. Rows with a
        missing value are dropped (with a warning); an infinite value or a column named twice
        is a :class:`~soilbook.errors.SchemaError` naming it (read by
        :mod:`soilbook.data.labdomain` through :mod:`soilbook.data.tables`).
    target_column, target_units
        ``lab_source="file"``: the target's column / variable and its units.
    min_region_pixels
        Floor on the labelled pixels of a region built from coordinates (default
        :data:`~soilbook.data.regions.DEFAULT_MIN_REGION_PIXELS`, 20). Regions fixed by the
        data (LimeSoDa sets, a ``group`` column) are kept; one below the floor is named in a
        warning and the description.
    spectra_kind
        ``lab_source="file"``: how the file's spectra are stored
        (:data:`soilbook.data.tables.SPECTRA_KINDS`): ``"auto"`` (default: ``abs_<nm>``
        columns, an ``absorbance`` NetCDF variable or its ``spectra_kind`` attribute decide,
        else the values by the rule of :func:`soilbook.data.tables.spectra_to_reflectance`;
        an ambiguous table is refused with a request to say which), ``"reflectance"`` (0-1, or
        x 10 000), ``"percent"`` or ``"absorbance"`` (log10(1/R), converted to R = 10^-A).
        Every conversion is warned about and named in the description.

    Returns
    -------
    TransferData
        See the module docstring for what is real and what is simulated; ``description``
        lists the regions (extent in km, sites, labelled pixels), the pairing rule, the depth
        rule, the ancillary inputs and whatever was dropped or filled.

    Warns
    -----
    UserWarning
        For every message of the description about dropped sites, lowered regions, filled
        covariates, a narrower lab grid or fixed regions below the floor.
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
        min_region_pixels=min_region_pixels,
        spectra_kind=spectra_kind,
    )
    if srf not in _SRF_KINDS:
        raise ParameterError(f"srf={srf!r}; allowed: {list(_SRF_KINDS)}.")
    p = params or tr.TransferParams()
    r_pick, r_ec, r_salt, r_pair, r_sat, r_half, r_unl = np.random.default_rng(seed).spawn(7)
    pool, domain = _lab_pool(
        target,
        lab_source,
        n_sites=n_sites,
        n_regions=n_regions,
        seed=seed,
        rngs=[r_pick, r_ec, r_salt],
        params=p,
        data_path=data_path,
        target_column=target_column,
        target_units=target_units,
        paired_fraction=float(paired_fraction),
        min_region_pixels=int(min_region_pixels),
        spectra_kind=spectra_kind,
    )
    sources = _Sources.of(pool)
    paired = _stratified_pairs(
        pool.group,
        float(paired_fraction),
        r_pair,
        target,
        location=sources.location[: sources.n_sites],
        eligible=pool.topsoil,
    )
    thin = _thin_regions(pool.group, paired, int(min_region_pixels))
    if thin:
        pool.messages.append(
            f"the regions are fixed by the data ({domain.region_kind}); region(s) {thin} hold "
            f"fewer than min_region_pixels={min_region_pixels} labelled pixels, so their "
            "held-out scores rest on few pixels."
        )

    srf_da = spec.enmap_srf(srf)
    band_mask = spec.usable_bands(srf_da) & lab_domain.covered_bands(
        srf_da["wavelength"].values, srf_da["fwhm"].values, pool.grid_nm
    )
    sat_kwargs = {"sensor": srf_da, "band_mask": band_mask, "drop": True}
    sim, lab_attrs = _set_attrs(
        target, lab_source, domain, srf_da, srf, seed, p, pool.grid_nm, _pairing_text(pool, domain)
    )
    satellite = _satellite_set(
        pool, paired, domain, r_sat, p, sat_kwargs, sim["satellite"], sources
    )
    unlabelled = _unlabelled_set(
        pool,
        paired,
        unlabelled_per_site,
        (r_half, r_unl),
        p,
        sat_kwargs,
        sim["unlabelled"],
        satellite,
        sources,
    )
    lab = _lab_set(pool, paired, domain, lab_attrs, sources)
    counts = {
        "lab": lab.sizes["sample"],
        "paired": int(paired.sum()),
        "unlabelled": unlabelled.sizes["sample"],
        "bands": satellite.sizes["band"],
    }
    summary = regions_mod.region_summary(pool.group, pool.lat, pool.lon, paired)
    for message in pool.messages:
        warnings.warn(message, stacklevel=2)
    text = _description(target, counts, lab_source, domain, pool, summary)
    for ds in (lab, satellite, unlabelled):
        ds.attrs["description"] = text
    return TransferData(satellite=satellite, lab=lab, unlabelled=unlabelled, description=text)


def check_site_ids(data: TransferData, site_ids: Iterable[str]) -> np.ndarray:
    """Which lab sites of ``data`` are among ``site_ids`` (bool per lab sample); raises
    :class:`~soilbook.errors.ParameterError` when none is (cheap: call it before extracting
    pixels at ``site_ids``)."""
    lab_sites = data.lab["site"].values.astype(str)
    ids = np.asarray(list(site_ids), dtype=str)
    paired = np.isin(lab_sites, ids)
    if not paired.any():
        raise ParameterError(
            f"none of the {ids.size} point id(s) (e.g. {list(ids[:3])}) is a lab site id (e.g. "
            f"{list(lab_sites[:3])}). What to do: give each point the 'site' id of its lab "
            "sample in the points' id column."
        )
    return paired


def with_satellite(data: TransferData, satellite: xr.Dataset) -> TransferData:
    """``data`` with its simulated satellite pixels replaced by real ones (``satellite``, a
    labelled set with ``reflectance``, ``wavelength``, ``site``, ``group``, ``lat`` / ``lon``,
    e.g. :func:`soilbook.data.earthengine.recipes.transfer.extract_transfer_inputs`).

    A lab site is *paired* when a satellite pixel carries its ``site`` id; each pixel at a lab
    site takes that site's region (``group``), so holding a region out holds out its lab
    sites and its pixels together. The unlabelled set becomes empty (no simulated pixel is
    kept). Raises :class:`~soilbook.errors.ParameterError` when no pixel is at a lab site.
    """
    lab_sites = data.lab["site"].values.astype(str)
    sat_sites = satellite["site"].values.astype(str)
    paired = check_site_ids(data, sat_sites)
    region = dict(zip(lab_sites, data.lab["group"].values.astype(str), strict=True))
    groups = np.array(
        [
            region.get(s, g)
            for s, g in zip(sat_sites, satellite["group"].values.astype(str), strict=True)
        ]
    )
    satellite = satellite.assign_coords(group=("sample", groups, data.lab["group"].attrs))
    lab = data.lab.assign_coords(paired=("sample", paired, data.lab["paired"].attrs))
    text = (
        f"Satellite pixels: real, {sat_sites.size} pixel(s) of {satellite.attrs.get('source', '')} "
        f"at {int(paired.sum())} of {lab_sites.size} lab sites, with their measured labels; they "
        "replace the simulated pixels, and there is no unlabelled pixel. The lab side as loaded "
        f"(what it says of simulated satellite pixels no longer applies): {data.description}"
    )
    unlabelled = _empty_unlabelled(satellite, {**satellite.attrs, "labelled": False})
    for ds in (lab, satellite, unlabelled):
        ds.attrs["description"] = text
    satellite.attrs.setdefault("labels_simulated", False)
    return TransferData(satellite=satellite, lab=lab, unlabelled=unlabelled, description=text)


def region_table(data: TransferData) -> pd.DataFrame:
    """Per region: lab sites, paired sites, lab-only sites, pixels, extent, target mean/sd.

    Columns: ``lab_sites``, ``paired_sites``, ``lab_only_sites``, ``satellite_pixels``
    (labelled), ``unlabelled_pixels``, ``locations`` (distinct coordinates of the lab sites),
    ``extent_km`` (largest great-circle distance between two lab sites of the region; NaN
    without coordinates), ``radius_km`` (median distance of the sites from the region's
    centre), ``target_mean``, ``target_sd`` (over the region's lab sites, all labelled).
    """
    lab = data.lab
    groups = lab["group"].values.astype(str)
    paired = lab["paired"].values.astype(bool)
    y = lab["target"].values.astype(float)
    unl = data.unlabelled["group"].values.astype(str)
    sat = data.satellite["group"].values.astype(str)
    geo_summary = regions_mod.region_summary(
        groups, lab["lat"].values.astype(float), lab["lon"].values.astype(float), paired
    )
    rows = []
    for g in sorted(set(groups.tolist()) | set(unl.tolist())):
        m = groups == g
        shape = geo_summary.loc[g] if g in geo_summary.index else None
        rows.append(
            {
                "region": g,
                "lab_sites": int(m.sum()),
                "paired_sites": int((m & paired).sum()),
                "lab_only_sites": int((m & ~paired).sum()),
                "satellite_pixels": int((sat == g).sum()),
                "unlabelled_pixels": int((unl == g).sum()),
                "locations": int(shape["locations"]) if shape is not None else 0,
                "extent_km": float(shape["extent_km"]) if shape is not None else np.nan,
                "radius_km": float(shape["radius_km"]) if shape is not None else np.nan,
                "target_mean": float(y[m].mean()) if m.any() else np.nan,
                "target_sd": float(y[m].std(ddof=1)) if m.sum() > 1 else np.nan,
            }
        )
    table = pd.DataFrame(rows).set_index("region")
    table.attrs["target_units"] = lab["target"].attrs.get("units", "")
    return table


__all__ = [
    "DEFAULT_MIN_REGION_PIXELS",
    "DEFAULT_N_REGIONS",
    "LAB_FILE_EXTENSIONS",
    "LAB_GRID_NM",
    "LAB_SOURCES",
    "MIN_PAIRED_PER_REGION",
    "MIN_PAIRED_TRAIN",
    "OFFSITE_SHARE",
    "OSSL_TARGET_OF",
    "PAIRING",
    "PAIRING_FIXED_REGIONS",
    "PAIRING_WITHOUT_COORDINATES",
    "SOC_REGIONS",
    "TARGETS",
    "TransferData",
    "check_site_ids",
    "check_transfer_args",
    "load_transfer",
    "region_ids",
    "region_table",
    "with_satellite",
]
