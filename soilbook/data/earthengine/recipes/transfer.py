"""The transfer chapter's recipe (DeepSalt): EO-1 Hyperion spectra at the user's lab sites.

DeepSalt transfers lab spectra to **EnMAP** pixels. EnMAP (and PRISMA) are **not in Earth
Engine**; the only spaceborne imaging spectrometer there is the historic **EO-1 Hyperion**
(``EO1/HYPERION``, 2001 to March 2017, sparse tasked 7.7 km scenes), so this recipe uses it as
EnMAP's stand-in: one Hyperion spectrum (the 30 m pixel under each lab site) per site, in the
layout of the chapter's ``satellite`` sample set (:mod:`soilbook.data.transfer`).

Choices
-------
- **Bands.** Earth Engine holds only the calibrated bands, B008-B057 (VNIR) and B077-B224
  (SWIR). Their centre wavelengths in :data:`HYPERION_WAVELENGTHS_NM` are **nominal**: the
  ~10 nm spacing of the two spectrometers (VNIR band n = 355.59 + 10.18 (n - 1) nm, n 1-70;
  SWIR band n = 851.92 + 10.09 (n - 71) nm, n 71-242), within about 1 nm of the catalogue's
  values. The SWIR bands B077 and B078 (912 and 923 nm) repeat the range of VNIR B056-B057 at
  the noisy short end of the SWIR detector and are dropped, so wavelengths increase. Bands
  in the chapter's water-vapour windows (:data:`soilbook.data.spectra.WATER_VAPOUR_NM`,
  1340-1460 and 1790-1960 nm) are dropped too: :data:`HYPERION_BANDS`.
- **Radiance to reflectance.** Earth Engine's Hyperion is L1 at-sensor radiance, DN / 40
  (VNIR) or DN / 80 (SWIR) in W m-2 sr-1 um-1. It becomes **top-of-atmosphere** reflectance
  ``pi L d^2 / (E_sun cos(sza))`` per scene, with the scene's ``SUN_ELEVATION``, the
  Earth-Sun distance ``d`` (AU) of its day of year and a **nominal** solar irradiance: a
  5778 K black body at 1 AU (:func:`solar_irradiance`, within about 10 % of measured solar
  spectra away from the Fraunhofer lines). No atmospheric correction is made: the pixels are
  TOA, not surface, reflectance; say so when comparing with the simulated EnMAP pixels.
  Pixels with DN <= 0 (outside the narrow swath) are masked.
- **Which scene.** Hyperion in Earth Engine has no cloud-cover property, so the least cloudy
  scene cannot be picked from metadata. The recipe takes the **per-band median of the TOA
  reflectance of every scene** over the sites in the date windows (all windows together):
  with one scene (the usual case) that scene, with several a median robust to a cloud in a
  minority of them. Sites no scene covers come back empty and are dropped, with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from soilbook.data.earthengine.catalogue import (
    COVERAGE,
    FILL_VALUE,
    HYPERION,
    POINT_BATCH,
    collection_attrs,
)
from soilbook.data.earthengine.checks import (
    check_batch_size,
    check_coverage,
    check_crs,
    check_dates,
    check_points,
    check_positive,
    check_targets,
    points_crs,
    precheck_region,
)
from soilbook.data.earthengine.convert import _feature_list, _groups, _number, _samples
from soilbook.data.earthengine.layers import _masked_constant, _region
from soilbook.data.earthengine.request import Request, extract, request_region
from soilbook.data.earthengine.sampling import sample_in_batches
from soilbook.data.earthengine.session import _ee_ready, ensure_initialized
from soilbook.data.regions import location_ids
from soilbook.data.schema import sample_set
from soilbook.data.spectra import WATER_VAPOUR_NM
from soilbook.errors import ParameterError

#: The collections one transfer extraction reads.
TRANSFER_COLLECTIONS = (HYPERION,)
#: What the lab sites' measured value is (DeepSalt: electrical conductivity).
TARGET_NAME = "electrical conductivity"
TARGET_UNITS = "dS/m"
#: Hyperion's pixel size (m): the default sampling scale.
HYPERION_SCALE_M = 30.0
#: Why Hyperion, in one sentence (dataset attribute).
ENMAP_NOTE = (
    "EnMAP and PRISMA are not in Earth Engine; EO-1 Hyperion (2001-2017) is the historic "
    "stand-in for EnMAP here"
)

# -- the band table ----------------------------------------------------------------------------

#: The calibrated Hyperion bands Earth Engine holds: VNIR 8-57 and SWIR 77-224 (1-based).
HYPERION_VNIR = tuple(range(8, 58))
HYPERION_SWIR = tuple(range(77, 225))
#: SWIR bands repeating the VNIR's 912-926 nm at the SWIR detector's noisy edge (dropped).
HYPERION_OVERLAP = (77, 78)
#: DN per radiance unit (W m-2 sr-1 um-1): L = DN / factor.
HYPERION_RADIANCE_SCALE = {"VNIR": 40.0, "SWIR": 80.0}


def hyperion_band_name(n: int) -> str:
    """Earth Engine's name of Hyperion band ``n`` (1-based), e.g. ``B008``."""
    return f"B{int(n):03d}"


def hyperion_nominal_nm(n: int) -> float:
    """**Nominal** centre wavelength (nm) of Hyperion band ``n`` (1-242) from the ~10 nm
    spacing of its spectrometers: VNIR (1-70) 355.59 + 10.18 (n - 1), SWIR (71-242)
    851.92 + 10.09 (n - 71)."""
    if not 1 <= n <= 242:
        raise ParameterError(f"Hyperion band {n} does not exist; bands are numbered 1-242.")
    if n <= 70:
        return round(355.59 + 10.18 * (n - 1), 2)
    return round(851.92 + 10.09 * (n - 71), 2)


def _detector(n: int) -> str:
    """``"VNIR"`` or ``"SWIR"``: the spectrometer of band ``n``."""
    return "VNIR" if n <= 70 else "SWIR"


#: Nominal centre wavelength (nm) of every calibrated band in Earth Engine, by band name.
HYPERION_WAVELENGTHS_NM: dict[str, float] = {
    hyperion_band_name(n): hyperion_nominal_nm(n) for n in HYPERION_VNIR + HYPERION_SWIR
}


def _in_water_vapour(nm: float) -> bool:
    """Whether ``nm`` lies in a water-vapour window of the chapter (edges included)."""
    return any(lo <= nm <= hi for lo, hi in WATER_VAPOUR_NM)


#: The usable bands, in increasing wavelength: calibrated, not the SWIR overlap, outside the
#: water-vapour windows.
HYPERION_BANDS: tuple[str, ...] = tuple(
    hyperion_band_name(n)
    for n in HYPERION_VNIR + HYPERION_SWIR
    if n not in HYPERION_OVERLAP and not _in_water_vapour(hyperion_nominal_nm(n))
)

# -- radiance to top-of-atmosphere reflectance -------------------------------------------------

#: The Sun as a black body (K), its radius and the astronomical unit (m).
SUN_TEMPERATURE_K = 5778.0
SUN_RADIUS_M = 6.957e8
AU_M = 1.495978707e11
#: Earth's orbital eccentricity and day of year of perihelion (Earth-Sun distance in AU).
ORBIT_ECCENTRICITY = 0.01672
PERIHELION_DOY = 4
_PLANCK = 6.62607015e-34
_LIGHT = 2.99792458e8
_BOLTZMANN = 1.380649e-23


def solar_irradiance(wavelength_nm: Any) -> np.ndarray:
    """**Nominal** exo-atmospheric solar irradiance at 1 AU (W m-2 um-1) at ``wavelength_nm``:
    pi B(lambda, 5778 K) (R_sun / 1 AU)^2, a black-body Sun (about 1360 W m-2 in total)."""
    lam = np.asarray(wavelength_nm, dtype=float) * 1e-9
    radiance = (2 * _PLANCK * _LIGHT**2 / lam**5) / np.expm1(
        _PLANCK * _LIGHT / (lam * _BOLTZMANN * SUN_TEMPERATURE_K)
    )  # W m-2 sr-1 m-1
    return math.pi * radiance * (SUN_RADIUS_M / AU_M) ** 2 * 1e-6


def earth_sun_distance_au(doy: Any) -> np.ndarray:
    """Earth-Sun distance (AU) on day of year ``doy`` (1-366): 1 - e cos(2 pi (doy - 4) / 365.25)."""
    angle = 2 * math.pi * (np.asarray(doy, dtype=float) - PERIHELION_DOY) / 365.25
    return 1 - ORBIT_ECCENTRICITY * np.cos(angle)


def reflectance_factors(bands: Sequence[str]) -> list[float]:
    """Per band, pi / (E_sun * DN scale): TOA reflectance = DN * factor * d^2 / sin(sun
    elevation)."""
    out = []
    for name in bands:
        n = int(name[1:])
        esun = float(solar_irradiance(HYPERION_WAVELENGTHS_NM[name]))
        out.append(math.pi / (esun * HYPERION_RADIANCE_SCALE[_detector(n)]))
    return out


def check_hyperion_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """Check Hyperion band names (calibrated bands, each once) and return them as a tuple."""
    if isinstance(bands, str) or not isinstance(bands, Sequence) or not bands:
        raise ParameterError(
            f"bands = {bands!r} is not a non-empty list of Hyperion band names such as "
            "['B008', 'B009']; default HYPERION_BANDS."
        )
    bands = tuple(bands)
    unknown = [b for b in bands if b not in HYPERION_WAVELENGTHS_NM]
    if unknown:
        raise ParameterError(
            f"Unknown or uncalibrated Hyperion band(s) {unknown}. Allowed: B008-B057 and "
            "B077-B224 (three digits, e.g. 'B050'); the others have no valid values in Earth "
            "Engine."
        )
    if len(set(bands)) != len(bands):
        raise ParameterError(f"bands = {list(bands)} names a band twice; list each band once.")
    return bands


# -- the image ---------------------------------------------------------------------------------


def _toa_reflectance(ee: Any, image: Any, bands: tuple[str, ...]) -> Any:
    """One scene's TOA reflectance of ``bands`` (float), DN <= 0 masked."""
    image = ee.Image(image)
    dn = image.select(list(bands)).toFloat()
    doy = ee.Date(image.get("system:time_start")).getRelative("day", "year").add(1)
    distance = (
        ee.Number(1)
        .subtract(
            doy.subtract(PERIHELION_DOY)
            .multiply(2 * math.pi / 365.25)
            .cos()
            .multiply(ORBIT_ECCENTRICITY)
        )
        .pow(2)
    )
    sun = ee.Number(image.get("SUN_ELEVATION")).multiply(math.pi / 180).sin()
    factors = ee.Image.constant(reflectance_factors(bands)).rename(list(bands))
    return dn.updateMask(dn.gt(0)).multiply(factors).multiply(distance.divide(sun)).toFloat()


def hyperion_image(
    dates: Sequence[tuple[str, str]],
    region: Any,
    bands: Sequence[str] = HYPERION_BANDS,
) -> Any:
    """Hyperion TOA reflectance over ``region``: the per-band median of every scene in the
    date windows (all windows together; see the module's Choices).

    Parameters
    ----------
    dates : list of (start, end)
        Half-open ISO windows, between 2001 and March 2017 (Hyperion's life).
    region : ee.Geometry | (west, south, east, north)
        Scenes that intersect it are used (a box in WGS84 degrees).
    bands : sequence of str
        Hyperion bands (default :data:`HYPERION_BANDS`, the usable ones).

    Returns
    -------
    ee.Image with ``bands`` (unitless TOA reflectance, float; masked where no scene covers a
    pixel) and property ``n_scenes``.
    """
    windows = check_dates(dates, first_day=COVERAGE[HYPERION].first_day)
    check_coverage(HYPERION, dates=windows)
    bands = check_hyperion_bands(bands)
    precheck_region(region)
    ee = _ee_ready()
    geometry = _region(ee, region)
    scenes = None
    for start, end in windows:
        part = ee.ImageCollection(HYPERION).filterBounds(geometry).filterDate(start, end)
        scenes = part if scenes is None else scenes.merge(part)
    reflectance = scenes.map(lambda image: _toa_reflectance(ee, image, bands))
    stack = reflectance.merge(ee.ImageCollection([_masked_constant(ee, bands)]))
    return stack.median().select(list(bands)).set("n_scenes", scenes.size())


# -- the request -------------------------------------------------------------------------------


def precheck_transfer(
    points: Sequence[Mapping[str, Any]], dates: Sequence[tuple[str, str]]
) -> None:
    """Refuse, in plain Python, points or date windows Hyperion cannot cover: a window that
    ends before 2001 or starts after March 2017 (EO-1's end) raises
    :class:`~soilbook.errors.ParameterError` with what to do."""
    pts = check_points(points)
    try:
        windows = check_dates(dates, first_day=COVERAGE[HYPERION].first_day)
    except ParameterError as err:
        raise ParameterError(
            f"{err} Hyperion ({HYPERION}) flew from 2001 to March 2017; {ENMAP_NOTE}."
        ) from None
    check_coverage(HYPERION, pts, windows)


@dataclass(frozen=True)
class TransferRequest(Request):
    """A composed transfer request: Hyperion bands at the lab sites, read back by
    :func:`to_transfer_samples` (not the Sentinel-2 converter)."""

    collections: tuple[str, ...] = TRANSFER_COLLECTIONS
    target_name: str = TARGET_NAME
    target_units: str = TARGET_UNITS

    def to_samples(
        self, features: Any, points: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> xr.Dataset:
        """:func:`to_transfer_samples` of this request's ``getInfo()`` results."""
        args: dict[str, Any] = {
            "bands": self.bands,
            "dates": self.dates,
            "target_name": self.target_name,
            "target_units": self.target_units,
            "extra_attrs": {**self.params, "crs": self.crs},
        }
        return to_transfer_samples(features, points, **{**args, **kwargs})


def build_transfer_request(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    *,
    bands: Sequence[str] = HYPERION_BANDS,
    scale: float = HYPERION_SCALE_M,
    crs: str | None = None,
    batch_size: int | None = None,
    tile_scale: float = 1,
) -> TransferRequest:
    """Compose the Hyperion pixel under each lab site into one request (pure: nothing sent).

    The image is :func:`hyperion_image` over the sites' box plus 1 km, masked pixels filled
    with :data:`~..catalogue.FILL_VALUE`, sampled on a ``scale``-metre grid (default 30 m,
    Hyperion's pixel) in ``crs`` (default: the sites' UTM zone), ``batch_size`` sites per
    ``getInfo`` (default 500). Only ``id``, ``lat``, ``lon`` leave this machine.
    """
    precheck_transfer(points, dates)
    pts = check_points(points)
    windows = check_dates(dates, first_day=COVERAGE[HYPERION].first_day)
    bands = check_hyperion_bands(bands)
    scale = check_positive(scale, "scale", "30 (metres)")
    tile_scale = check_positive(tile_scale, "tile_scale", "1")
    size = check_batch_size(batch_size) or POINT_BATCH
    crs = check_crs(crs) or points_crs(pts)
    image = hyperion_image(windows, request_region(pts, None, scale), bands)
    ee = _ee_ready()
    filled = image.unmask(FILL_VALUE, False)
    return TransferRequest(
        image=filled,
        batches=sample_in_batches(ee, filled, pts, size, scale, crs, tile_scale),
        points=tuple(pts),
        dates=windows,
        bands=bands,
        covariates={},
        patch_layers={},
        window=None,
        scale=scale,
        crs=crs,
        batch_size=size,
        params={
            "scale_m": scale,
            "sensor": "EO-1 Hyperion L1 radiance -> TOA reflectance (nominal solar irradiance)",
            "composite": "per-band median of every scene in the date windows",
            "enmap_note": ENMAP_NOTE,
        },
    )


# -- the conversion ----------------------------------------------------------------------------


def _spectra(rows: Sequence[Mapping[str, Any]], bands: Sequence[str]) -> np.ndarray:
    """(sample, 1, band) float32 reflectance of the band properties; fill / None -> NaN."""
    values = [[_number(row.get(b)) for b in bands] for row in rows]
    return np.array(values, dtype=np.float32).reshape(len(rows), 1, len(bands))


def _keep_covered(refl: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Which samples have any band (a scene covered them); warn about the others, refuse
    when none is left."""
    covered = np.isfinite(refl).any(axis=(1, 2))
    if not covered.any():
        raise ParameterError(
            f"no Hyperion scene covers any of the {len(ids)} site(s) in the date windows. "
            "Hyperion scenes are sparse (tasked, 7.7 km wide, 2001-2017). What to do: widen the "
            "date windows, or check the EarthExplorer footprints of EO-1 Hyperion over your sites."
        )
    if not covered.all():
        gone = [str(i) for i, c in zip(ids, covered, strict=True) if not c]
        warnings.warn(
            f"{len(gone)} site(s) have no Hyperion pixel in the date windows and are dropped "
            f"(ids {gone[:10]}).",
            stacklevel=3,
        )
    return covered


def to_transfer_samples(
    features: Any,
    points: Sequence[Mapping[str, Any]],
    *,
    bands: Sequence[str] = HYPERION_BANDS,
    dates: Sequence[tuple[str, str]] = (),
    target_key: str = "target",
    group_key: str | None = None,
    block_size_m: float = 2000.0,
    target_name: str = TARGET_NAME,
    target_units: str = TARGET_UNITS,
    extra_attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """``getInfo()`` answers of a transfer request as the chapter's ``satellite`` set (pure).

    ``features``: a FeatureCollection dict (or its list) whose properties hold ``id`` and one
    reflectance per band; ``points``: the lab sites (``id``, ``lat``, ``lon``, the measured
    ``target_key``, optionally ``group_key``). Returns a validated sample set like
    :attr:`soilbook.data.transfer.TransferData.satellite`: ``reflectance`` (sample, date=1,
    band) with ``wavelength`` (nm, nominal), ``target``, ``group`` (``group_key`` or a
    ``block_size_m`` spatial block), coordinates ``site`` (the point id), ``location``,
    ``lat``, ``lon``; ``attrs["domain"] = "satellite"``. Sites without any pixel are dropped.
    """
    bands = check_hyperion_bands(bands)
    pts, rows, records, target = _samples(_feature_list(features), points, target_key)
    refl = _spectra(rows, bands)
    keep = _keep_covered(refl, [p["id"] for p in pts])
    lat = np.array([p["lat"] for p in pts])[keep]
    lon = np.array([p["lon"] for p in pts])[keep]
    ids = np.array([p["id"] for p in pts], dtype=str)[keep]
    kept_records = [r for r, k in zip(records, keep, strict=True) if k]
    groups = _groups(kept_records, group_key, lat, lon, block_size_m)
    attrs = {
        **collection_attrs(TRANSFER_COLLECTIONS),
        "simulated": False,
        "domain": "satellite",
        "target_name": target_name,
        "enmap_note": ENMAP_NOTE,
        "date_windows": ", ".join(f"{s}/{e}" for s, e in dates),
        "fill_value_replaced": FILL_VALUE,
        **dict(extra_attrs or {}),
    }
    return sample_set(
        target[keep],
        groups=groups,
        group_long_name="cross-validation group"
        + (f" ({group_key})" if group_key else f" (spatial block of {block_size_m:g} m)"),
        target_units=target_units,
        target_long_name=target_name,
        target_attrs={"simulated": False},
        reflectance=refl[keep],
        dates=["satellite"],
        bands=list(bands),
        wavelengths_nm=[HYPERION_WAVELENGTHS_NM[b] for b in bands],
        reflectance_long_name="EO-1 Hyperion top-of-atmosphere reflectance (stand-in for EnMAP)",
        reflectance_attrs={"simulated": False, "level": "top of atmosphere"},
        sample_ids=np.arange(int(keep.sum())),
        lat=lat,
        lon=lon,
        coords={
            "site": ("sample", ids, {"long_name": "lab site id"}),
            "location": (
                "sample",
                location_ids(lat, lon).astype(str),
                {"long_name": "location id: the same for every sample at the same coordinates"},
            ),
        },
        source=attrs.pop("source"),
        licence=attrs.pop("licence"),
        citation=attrs.pop("citation"),
        simulated=attrs.pop("simulated"),
        **attrs,
    )


def extract_transfer_inputs(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    *,
    target_key: str = "target",
    group_key: str | None = None,
    project: str | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    **request_kwargs: Any,
) -> xr.Dataset:
    """Extract the Hyperion spectrum under each lab site (needs a live session and internet)
    as the chapter's ``satellite`` set (:func:`to_transfer_samples`).

    Checks everything first (:func:`precheck_transfer`, every site's ``target_key``), then
    initialises Earth Engine when needed, builds :func:`build_transfer_request`
    (``request_kwargs`` go to it) and sends it batch by batch.
    """
    precheck_transfer(points, dates)
    check_targets(points, target_key)
    ensure_initialized(project)
    request = build_transfer_request(points, dates, **request_kwargs)
    return extract(
        request,
        points,
        target_key=target_key,
        group_key=group_key,
        progress=progress,
        cache_dir=cache_dir,
    )


__all__ = [
    "ENMAP_NOTE",
    "HYPERION_BANDS",
    "HYPERION_WAVELENGTHS_NM",
    "TRANSFER_COLLECTIONS",
    "TransferRequest",
    "build_transfer_request",
    "earth_sun_distance_au",
    "extract_transfer_inputs",
    "hyperion_image",
    "hyperion_nominal_nm",
    "precheck_transfer",
    "solar_irradiance",
    "to_transfer_samples",
]
