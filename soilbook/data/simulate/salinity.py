"""A simulated Yellow-River-Delta-like coastal cropland scene for soil-salinity mapping.

**This is simulated teaching data.** The landscape (coast, terrain, groundwater, fields, crops,
salt) is generated from documented equations; the *reflectance* is built from **real spectra**:
measured ICRAF-ISRIC soil spectra and PROSAIL canopy spectra from earthlib's library (see
:mod:`soilbook.data.spectra`), mixed per pixel and resampled to Sentinel-2 bands with the
sensor's spectral response functions. The full model, its equations and its calibration are
written up in the book page ``book/simulator_salinity.md``; the short version:

1. *Coast.* The sea lies beyond the east edge behind an irregular coastline; ``d`` is the
   distance to it (km).
2. *Terrain.* True elevation ``z`` = base + gentle inland rise + meso-relief (Matérn random field,
   ~400 m) + a palaeochannel levee + micro-relief (~30 m, a few cm). The *observed* DEM is what a
   30 m global DEM would show: ``z`` smoothed to 30 m plus correlated and white DEM error.
   Slope and a topographic wetness index are computed from the observed DEM.
3. *Groundwater.* A smooth water table rising gently inland; depth ``D = z − h_w`` (shallow near
   the coast and in depressions). Latent: not among the layers (a user would not have it).
4. *Soil units* (Voronoi cells with a texture index) carry real soil spectra; *field parcels*
   (rectangular strips) carry a crop, a management level and a leaching intensity.
5. *Salt.* ``ln S`` adds a coastal term, capillary rise from shallow saline groundwater, salt
   accumulation on micro-highs, soil texture, parcel leaching and spatially correlated residuals.
6. *Crops.* Farmers choose crops by salinity (tolerant cotton, halophyte fallow on the worst
   land); LAI follows a double-logistic phenology scaled by a Maas–Hoffman salt response.
7. *Reflectance.* Linear mixture of a PROSAIL canopy spectrum (fractional cover
   ``1 − exp(−k LAI)``) and the soil spectrum with salt crust brightening, a filled 2.2 µm clay
   absorption feature and moisture darkening, plus crop residue; resampled to Sentinel-2, 20 m
   bands aggregated to 20 m and back to 10 m, sensor noise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, NamedTuple

import numpy as np
import xarray as xr
from scipy import ndimage

from soilbook.data import spectra as spec
from soilbook.data.simulate._attrs import params_attrs
from soilbook.errors import ParameterError

#: Crops, in the order of the integer codes of the ``crop`` variable.
CROPS = ("wheat_maize", "cotton", "fallow")
#: Layers of the simulated scene and their feature groups.
LAYER_GROUPS = {
    "elevation": "terrain",
    "slope": "terrain",
    "twi": "hydrology",
    "distance_to_coast": "hydrology",
    "lai_peak": "vegetation",
    "ndvi_max": "vegetation",
    "ndvi_amplitude": "vegetation",
}
_LAYER_META = {
    "elevation": ("m", "elevation above sea level (30 m DEM, with DEM error)"),
    "slope": ("degree", "slope from the DEM"),
    "twi": ("1", "topographic wetness index ln(a / tan(slope)) (flow-area proxy)"),
    "distance_to_coast": ("km", "distance to the coastline"),
    "lai_peak": ("m2/m2", "peak leaf area index retrieved from NDVI"),
    "ndvi_max": ("1", "maximum NDVI over the dates"),
    "ndvi_amplitude": ("1", "NDVI max - min over the dates"),
}
CITATION = (
    "soilbook salinity simulator (simulated data; see book/simulator_salinity.md). Spectra: "
    + spec.LIBRARY_CITATION
)


@dataclass(frozen=True)
class Crop:
    """Phenology and salt tolerance of one crop (or crop season).

    LAI follows a double logistic in day of year ``t``:
    ``LAI_max * (σ((t − up)/rate_up) − σ((t − down)/rate_down))``; salt tolerance after
    Maas & Hoffman (1977): relative vigour ``1 − slope·(ECe − threshold)`` (ECe in dS/m,
    slope in 1/(dS/m)).
    """

    name: str
    lai_max: float
    up_doy: float
    down_doy: float
    rate_up: float
    rate_down: float
    ece_threshold: float
    ece_slope: float


#: Crop seasons: winter wheat and summer maize share a field (one rotation); cotton; fallow land
#: with halophytes (*Suaeda salsa*-like, salt tolerant). Thresholds and slopes: Maas & Hoffman
#: (1977) / FAO 48 (wheat 6.0 dS/m, 7.1 %; maize 1.7, 12 %; cotton 7.7, 5.2 %).
SEASONS: dict[str, tuple[Crop, ...]] = {
    "wheat_maize": (
        Crop("winter wheat", 4.0, 70.0, 150.0, 9.0, 6.0, 6.0, 0.071),
        Crop("summer maize", 4.5, 185.0, 255.0, 6.0, 7.0, 1.7, 0.12),
    ),
    "cotton": (Crop("cotton", 3.5, 160.0, 258.0, 9.0, 7.0, 7.7, 0.052),),
    "fallow": (Crop("halophytes", 0.7, 130.0, 285.0, 12.0, 8.0, 40.0, 0.01),),
}


@dataclass(frozen=True)
class SalinityParams:
    """Every physical setting of the simulator (the defaults are the calibrated ones).

    Lengths in metres unless the name says otherwise; ``S`` is salt content in g/kg.
    """

    # --- place and time
    lat0: float = 37.70  #: scene centre latitude (Yellow River Delta, near Dongying)
    lon0: float = 118.90  #: scene centre longitude
    year: int = 2021  #: acquisition year
    first_doy: float = 105.0  #: first acquisition day of year (mid-April)
    last_doy: float = 285.0  #: last acquisition day of year (mid-October)
    # --- coast
    coast_offset_km: float = 0.4  #: mean distance of the coastline beyond the east edge
    coast_wiggle_m: float = 200.0  #: sd of the coastline's irregularity
    coast_wiggle_length_m: float = 800.0  #: correlation length of the irregularity
    # --- terrain (true)
    base_elevation_m: float = 1.5  #: elevation at the coast
    inland_rise_m_per_km: float = 0.35  #: gentle rise inland
    meso_relief_m: float = 0.30  #: sd of meso-relief (depressions, swales)
    meso_length_m: float = 400.0  #: its correlation length
    levee_height_m: float = 0.5  #: palaeochannel levee height
    levee_width_m: float = 120.0  #: its half width (Gaussian)
    micro_relief_m: float = 0.05  #: sd of micro-relief
    micro_length_m: float = 30.0  #: its correlation length
    # --- observed DEM (a 30 m global DEM)
    dem_resolution_m: float = 30.0  #: smoothing of the true surface
    dem_error_m: float = 0.25  #: sd of correlated DEM error
    dem_error_length_m: float = 150.0  #: its correlation length
    dem_noise_m: float = 0.08  #: sd of DEM noise at the DEM's own resolution (30 m)
    twi_scale_m: float = 150.0  #: neighbourhood (Gaussian sd) of the flow-area proxy
    twi_relief_m: float = 0.15  #: relief that multiplies the flow-area proxy by e
    # --- groundwater (latent)
    water_table_m: float = 0.6  #: water-table elevation at the coast
    water_table_rise_m_per_km: float = 0.25  #: its inland rise
    water_table_var_m: float = 0.15  #: sd of its smooth variation
    water_table_length_m: float = 1500.0  #: correlation length of that variation
    min_depth_m: float = 0.3  #: shallowest groundwater depth
    # --- soil units
    soil_unit_size_m: float = 600.0  #: typical size of a soil unit (Voronoi cell)
    soil_mix_length_m: float = 120.0  #: correlation length of within-unit spectral mixing
    soil_pool_b4: tuple[float, float] = (0.25, 0.45)  #: B4 reflectance range of the soil pool
    soil_pool_redness_max: float = 1.45  #: max B4/B3 ratio (excludes iron-rich red soils)
    # --- parcels
    parcel_width_m: tuple[float, float] = (120.0, 260.0)  #: east-west field size range
    parcel_length_m: tuple[float, float] = (60.0, 140.0)  #: north-south field size range
    # --- salt: ln S = mu + terms + residuals
    log_salt_mean: float = -0.90  #: intercept of ln S (S in g/kg)
    coast_effect: float = 2.4  #: ln S added at the coastline
    coast_decay_km: float = 2.0  #: e-folding distance of the coastal effect
    capillary_effect: float = 2.4  #: ln S added where groundwater is at the surface
    critical_depth_m: float = 0.8  #: e-folding depth of capillary salt supply
    micro_high_effect: float = 0.25  #: ln S per sd of micro-relief (salt on micro-highs)
    texture_effect: float = 0.25  #: ln S per sd of soil-unit texture (finer: saltier)
    levee_effect: float = -0.35  #: ln S on the (sandy, well drained) levee crest
    leaching: dict = field(
        default_factory=lambda: {"wheat_maize": -0.25, "cotton": -0.10, "fallow": 0.0}
    )  #: ln S change by crop irrigation
    management_sd: float = 0.20  #: sd of parcel leaching/management in ln S
    residual_sd: float = 0.60  #: sd of the correlated residual of ln S (unexplained)
    residual_length_m: float = 150.0  #: its correlation length
    fine_residual_sd: float = 0.35  #: sd of the short-range residual of ln S
    fine_residual_length_m: float = 20.0  #: its correlation length
    salt_range: tuple[float, float] = (0.3, 45.0)  #: soft floor and ceiling of S (g/kg)
    # --- crops
    crop_logit_salt: tuple[float, float, float] = (
        -2.0,
        0.5,
        2.5,
    )  #: crop logits per unit of parcel ln(S / 3 g/kg)
    crop_logit_base: tuple[float, float, float] = (0.5, 0.0, -2.0)  #: crop logits at 3 g/kg
    ece_per_gkg: float = 2.0  #: ECe (dS/m) per g/kg salt (approximate for chloride coastal soils)
    management_vigour_sd: float = 0.30  #: sd of ln parcel vigour (fertiliser, variety, water)
    within_field_vigour_sd: float = 0.20  #: sd of ln within-field vigour (correlated, ~40 m)
    sowing_jitter_days: float = 6.0  #: sd of parcel phenology shift
    extinction_k: float = 0.5  #: fc = 1 - exp(-k LAI)
    stress_chl_weight: float = 0.8  #: weight of the low-chlorophyll canopy at full stress
    residue_max: float = 0.35  #: maximum crop residue cover of the soil
    # --- surface salt and soil reflectance
    surface_salt_sd: float = 0.35  #: sd of ln(surface / root-zone salt) per date (~50 m)
    surface_salt_length_m: float = 50.0  #: its correlation length
    spring_salt_shift: float = 0.3  #: ln surface-salt shift in the dry spring
    rain_leach_shift: float = -0.8  #: ln surface-salt shift at the height of the rainy season
    rain_peak_doy: float = 205.0  #: centre of the rainy season
    rain_width_days: float = 40.0  #: its width
    crust_per_log_salt: float = 0.07  #: salt-crust cover per unit ln(S_surface / 1 g/kg)
    crust_max: float = 0.45  #: maximum crust cover
    feature_fill_per_log_salt: float = 0.15  #: fill of the 2.2 µm feature per unit ln S_surface
    moisture_dry: float = 0.06  #: surface moisture (m3/m3) of a dry spring day
    moisture_rain: float = 0.14  #: added at the height of the rainy season
    moisture_capillary: float = 0.12  #: added where groundwater is at the surface
    moisture_salt: float = 0.02  #: added per unit ln S_surface (hygroscopic salts)
    moisture_sd: float = 0.02  #: sd of correlated surface-moisture variation
    darkening_vis: float = 1.5  #: Lobell-Asner darkening coefficient (visible), per m3/m3
    darkening_swir: float = 2.5  #: same in the short-wave infrared
    # --- sensor
    noise_additive: float = 0.004  #: sd of additive per-pixel noise (reflectance)
    noise_relative: float = 0.015  #: sd of multiplicative per-pixel noise
    gain_sd: float = 0.02  #: sd of per-date, per-band calibration gain
    haze_sd: float = 0.004  #: sd of smooth residual-atmosphere reflectance at 490 nm
    aggregate_20m: bool = True  #: 20 m bands observed at 20 m, resampled to 10 m

    def as_attrs(self) -> dict:
        """The parameters as flat netCDF-friendly attributes (prefix ``sim_``)."""
        return params_attrs(self)


# -- random fields -----------------------------------------------------------------------------


def random_field(
    shape: tuple[int, int], length_px: float, rng: np.random.Generator, nu: float = 1.5
) -> np.ndarray:
    """A stationary Gaussian random field with unit variance and Matérn-like covariance.

    White noise is filtered in the Fourier domain by $H(f) = (1 + (2\\pi \\ell f)^2)^{-(\\nu+1)/2}$,
    the square root of the 2-D Matérn spectral density (``nu=0.5``: exponential covariance,
    rough; larger ``nu``: smoother). The grid is padded by up to three correlation lengths so
    that opposite edges are not correlated, and the field is scaled by its theoretical
    standard deviation (not the sample one, so a small scene keeps its large-scale trend).

    Parameters
    ----------
    shape
        (rows, cols).
    length_px
        Correlation length ``ℓ`` in pixels.
    rng
        Random generator.
    nu
        Smoothness.

    Returns
    -------
    ndarray, float32, shape ``shape``
    """
    ny, nx = shape
    pad = int(min(3.0 * length_px, 512))
    n_y, n_x = ny + pad, nx + pad
    white = rng.standard_normal((n_y, n_x))
    fy = np.fft.fftfreq(n_y)[:, None]
    fx = np.fft.rfftfreq(n_x)[None, :]
    h = (1.0 + (2.0 * np.pi * length_px) ** 2 * (fx**2 + fy**2)) ** (-(nu + 1.0) / 2.0)
    out = np.fft.irfft2(np.fft.rfft2(white) * h, s=(n_y, n_x))[:ny, :nx]
    # theoretical variance of the filtered unit white noise (Parseval over the full spectrum)
    fx_full = np.fft.fftfreq(n_x)[None, :]
    h_full = (1.0 + (2.0 * np.pi * length_px) ** 2 * (fx_full**2 + fy**2)) ** (-(nu + 1.0) / 2.0)
    std = np.sqrt(np.mean(h_full**2))
    return (out / std).astype(np.float32)


def _random_curve(n: int, length_px: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth 1-D Gaussian random series with unit variance (Gaussian filter of white noise)."""
    pad = int(min(4 * length_px, 2048))
    white = rng.standard_normal(n + 2 * pad)
    out = ndimage.gaussian_filter1d(white, sigma=max(length_px, 0.5), mode="wrap")
    kernel_var = 1.0 / (2.0 * np.sqrt(np.pi) * max(length_px, 0.5))
    return out[pad : pad + n] / np.sqrt(kernel_var)


def _smooth(a: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing (FFT based for wide kernels, reflecting edges)."""
    if sigma_px < 0.3:
        return a
    if sigma_px < 8:
        return ndimage.gaussian_filter(a, sigma_px, mode="reflect")
    pad = int(min(3 * sigma_px, max(a.shape)))
    p = np.pad(a, pad, mode="reflect")
    fy = np.fft.fftfreq(p.shape[0])[:, None]
    fx = np.fft.rfftfreq(p.shape[1])[None, :]
    h = np.exp(-2.0 * np.pi**2 * sigma_px**2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(p) * h, s=p.shape)
    return out[pad : pad + a.shape[0], pad : pad + a.shape[1]].astype(a.dtype)


# -- pieces of the landscape -------------------------------------------------------------------


def _coordinates(size: int, pixel: float, p: SalinityParams) -> dict:
    """UTM zone 50N (EPSG:32650) pixel-centre coordinates around (lat0, lon0), and lat/lon."""
    try:
        from pyproj import Transformer

        fwd = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
        inv = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True)
        e0, n0 = fwd.transform(p.lon0, p.lat0)
        crs = "EPSG:32650"
    except ImportError:  # pragma: no cover - pyproj is a dependency; keep a fallback
        inv = None
        e0, n0 = 0.0, 0.0
        crs = "local (metres from the scene centre)"
    half = size * pixel / 2.0
    x0 = np.round((e0 - half) / pixel) * pixel
    y1 = np.round((n0 + half) / pixel) * pixel
    x = x0 + (np.arange(size) + 0.5) * pixel
    y = y1 - (np.arange(size) + 0.5) * pixel  # north up: row 0 is the northern edge
    if inv is not None:
        xx, yy = np.meshgrid(x, y)
        lon, lat = inv.transform(xx, yy)
    else:  # pragma: no cover
        xx, yy = np.meshgrid(x, y)
        lat = p.lat0 + yy / 111_320.0
        lon = p.lon0 + xx / (111_320.0 * np.cos(np.radians(p.lat0)))
    return {"x": x, "y": y, "lat": lat, "lon": lon, "crs": crs}


def _distance_to_coast(
    size: int, pixel: float, p: SalinityParams, rng: np.random.Generator
) -> np.ndarray:
    """Distance (km) to an irregular coastline beyond the east edge.

    The coastline is ``x_c(y) = x_east + offset + wiggle(y)``; the Euclidean distance is computed
    on a coarse grid extended beyond the scene (so the nearest coast point may lie outside it)
    and interpolated back.
    """
    f = max(1, round(40.0 / pixel))  # ~40 m working grid
    cp = pixel * f
    n = int(np.ceil(size / f))
    margin = n  # rows above and below the scene
    east = int(np.ceil((p.coast_offset_km * 1000 + 4 * p.coast_wiggle_m) / cp)) + 2
    rows = n + 2 * margin
    curve = _random_curve(rows, p.coast_wiggle_length_m / cp, rng) * p.coast_wiggle_m
    coast_x = n * cp + p.coast_offset_km * 1000.0 + curve  # metres from the west edge
    xs = (np.arange(n + east) + 0.5) * cp
    land = xs[None, :] < coast_x[:, None]
    dist = ndimage.distance_transform_edt(land, sampling=cp)  # metres to the nearest sea cell
    dist = dist - cp / 2.0
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    coords = np.stack([(yy + 0.5) / f - 0.5 + margin, (xx + 0.5) / f - 0.5])
    out = ndimage.map_coordinates(dist, coords, order=1, mode="nearest")
    return (np.maximum(out, 0.0) / 1000.0).astype(np.float32)


def _levee(size: int, pixel: float, p: SalinityParams, rng: np.random.Generator) -> np.ndarray:
    """A sinuous palaeochannel levee running roughly west-east (0-1 profile)."""
    n = size
    centre_row = rng.uniform(0.25, 0.75) * n
    meander = _random_curve(n, 400.0 / pixel, rng) * (150.0 / pixel)
    tilt = rng.uniform(-0.3, 0.3) * (np.arange(n) - n / 2)
    path = centre_row + meander + tilt  # row of the levee crest per column
    rows = np.arange(n)[:, None]
    dist_m = (rows - path[None, :]) * pixel
    return np.exp(-0.5 * (dist_m / p.levee_width_m) ** 2).astype(np.float32)


def _soil_units(size: int, pixel: float, p: SalinityParams, rng: np.random.Generator) -> np.ndarray:
    """Voronoi soil units (int ids) from jittered seed points, distorted by a smooth warp."""
    extent = size * pixel
    n_side = max(2, round(extent / p.soil_unit_size_m))
    g = (np.arange(n_side) + 0.5) / n_side * size
    sy, sx = np.meshgrid(g, g, indexing="ij")
    jitter = size / n_side * 0.35
    seeds = np.stack([sy.ravel(), sx.ravel()], axis=1) + rng.uniform(
        -jitter, jitter, (n_side**2, 2)
    )
    warp_y = random_field((size, size), p.soil_unit_size_m / pixel / 3, rng) * (
        p.soil_unit_size_m / pixel / 6
    )
    warp_x = random_field((size, size), p.soil_unit_size_m / pixel / 3, rng) * (
        p.soil_unit_size_m / pixel / 6
    )
    yy, xx = np.meshgrid(
        np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij"
    )
    from scipy.spatial import cKDTree

    pts = np.stack([(yy + warp_y).ravel(), (xx + warp_x).ravel()], axis=1)
    _, idx = cKDTree(seeds).query(pts)
    return idx.reshape(size, size).astype(np.int32)


def _parcels(size: int, pixel: float, p: SalinityParams, rng: np.random.Generator) -> np.ndarray:
    """Rectangular field parcels: columns of random width split into strips of random length."""
    parcel = np.empty((size, size), dtype=np.int32)
    edges_x = [0]
    while edges_x[-1] < size:
        edges_x.append(edges_x[-1] + max(1, round(rng.uniform(*p.parcel_width_m) / pixel)))
    next_id = 0
    for c0, c1 in itertools.pairwise(edges_x):
        r = 0
        while r < size:
            h = max(1, round(rng.uniform(*p.parcel_length_m) / pixel))
            parcel[r : r + h, c0:c1] = next_id
            next_id += 1
            r += h
    return parcel


def _acquisition_doys(n_dates: int, p: SalinityParams) -> np.ndarray:
    """Days of year of the acquisitions, (date,) float64: evenly from first_doy to last_doy."""
    if n_dates == 1:
        return np.array([p.first_doy + 5.0])
    return np.round(np.linspace(p.first_doy, p.last_doy, n_dates))


def _season_lai(
    crop: str, doy: np.ndarray | float, shift: np.ndarray | float, ece: np.ndarray
) -> np.ndarray:
    """LAI of crop ``crop`` at day ``doy`` for parcel shift and root-zone ECe (before vigour)."""
    total = 0.0
    for season in SEASONS[crop]:
        t = doy - shift
        phen = 1.0 / (1.0 + np.exp(-(t - season.up_doy) / season.rate_up)) - 1.0 / (
            1.0 + np.exp(-(t - season.down_doy) / season.rate_down)
        )
        phen = np.clip(phen, 0.0, None)
        vigour = np.clip(1.0 - season.ece_slope * (ece - season.ece_threshold), 0.03, 1.0)
        total = total + season.lai_max * phen * vigour
    return total


def _relative_vigour(crop_idx: np.ndarray, doy: float, ece: np.ndarray) -> np.ndarray:
    """Maas–Hoffman relative vigour of the season growing at ``doy`` (the one with most LAI)."""
    out = np.ones_like(ece)
    for k, crop in enumerate(CROPS):
        m = crop_idx == k
        if not m.any():
            continue
        seasons = SEASONS[crop]
        phen = [
            1.0 / (1.0 + np.exp(-(doy - s.up_doy) / s.rate_up))
            - 1.0 / (1.0 + np.exp(-(doy - s.down_doy) / s.rate_down))
            for s in seasons
        ]
        s = seasons[int(np.argmax(phen))]
        out[m] = np.clip(1.0 - s.ece_slope * (ece[m] - s.ece_threshold), 0.03, 1.0)
    return out


def _salt_crust_spectrum(wavelength_nm: np.ndarray) -> np.ndarray:
    """A bright, nearly flat efflorescent salt crust (the only non-library spectrum; assumed).

    0.78 at 400 nm rising to 0.85 at 1000 nm and falling to 0.70 at 2450 nm (halite/thenardite
    crusts are bright and spectrally flat in VNIR, slightly darker in SWIR from included water).
    """
    wl = np.asarray(wavelength_nm, float)
    return np.interp(wl, [400.0, 1000.0, 2450.0], [0.78, 0.85, 0.70])


def _feature_depth(spectra: np.ndarray, wavelength_nm: np.ndarray) -> np.ndarray:
    """Depth below a straight continuum of the 2.2 µm (Al-OH / clay) absorption feature.

    The continuum joins the reflectance at 2100 and 2300 nm; the depth is ``max(C − R, 0)``
    between them and 0 elsewhere. Adding ``φ × depth`` fills the feature by a fraction ``φ``.
    """
    wl = wavelength_nm
    i0 = int(np.argmin(np.abs(wl - 2100.0)))
    i1 = int(np.argmin(np.abs(wl - 2300.0)))
    out = np.zeros_like(spectra)
    frac = (wl[i0 : i1 + 1] - wl[i0]) / (wl[i1] - wl[i0])
    cont = spectra[:, i0 : i1 + 1][:, :1] * (1 - frac) + spectra[:, i1 : i1 + 1] * frac
    out[:, i0 : i1 + 1] = np.maximum(cont - spectra[:, i0 : i1 + 1], 0.0)
    return out


def _soft_range(s: np.ndarray, low: float, high: float) -> np.ndarray:
    """Smooth floor and ceiling: ``sqrt(s² + low²)``, then above ``2/3·high`` a tanh knee to ``high``."""
    out = np.sqrt(s**2 + low**2)
    knee = 2.0 * high / 3.0
    width = high - knee
    return np.where(out > knee, knee + width * np.tanh((out - knee) / width), out)


def _ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    return (nir - red) / np.maximum(nir + red, 1e-6)


def _lai_from_ndvi(ndvi: np.ndarray) -> np.ndarray:
    """Semi-empirical LAI retrieval: NDVI = NDVI_inf − (NDVI_inf − NDVI_soil)·exp(−0.6·LAI).

    NDVI_inf = 0.88, NDVI_soil = 0.15 (Baret & Guyot 1991 form); the retrieval a user would run.
    """
    ratio = np.clip((0.88 - ndvi) / (0.88 - 0.15), 0.02, 1.0)
    return (-np.log(ratio) / 0.6).astype(np.float32)


# -- the scene: intermediate fields ------------------------------------------------------------


class _Streams(NamedTuple):
    """The scene's independent random streams, one per part of the model.

    They are the children of ``np.random.SeedSequence(seed).spawn(16)`` in this field order (the
    last two children are spare), so every step draws from its own stream and a step's draws do
    not depend on how much any other step drew.
    """

    coast: np.random.Generator
    terrain: np.random.Generator
    dem: np.random.Generator
    water: np.random.Generator
    soil: np.random.Generator
    parcel: np.random.Generator
    salt: np.random.Generator
    crop: np.random.Generator
    vigour: np.random.Generator
    surface: np.random.Generator
    moisture: np.random.Generator
    sensor: np.random.Generator
    levee: np.random.Generator
    endmembers: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> _Streams:
        children = np.random.SeedSequence(seed).spawn(16)
        return cls(*(np.random.default_rng(s) for s in children[: len(cls._fields)]))


class _Terrain(NamedTuple):
    """Step 2: the true surface and the observed DEM; every array (y, x) float32."""

    levee: np.ndarray  #: levee profile, 0 (off the levee) to 1 (on its crest)
    micro: np.ndarray  #: micro-relief, unit standard deviation (m = micro_relief_m × this)
    elevation_true: np.ndarray  #: true elevation incl. micro-relief (m)
    dem: np.ndarray  #: observed 30 m DEM with its error (m)
    slope: np.ndarray  #: slope of the DEM (degree)
    twi: np.ndarray  #: topographic wetness index ln(a / tan β) (1)


class _Bands(NamedTuple):
    """Step 4: the Sentinel-2 bands and how library spectra are resampled to them."""

    srf: xr.DataArray  #: response functions (band, srf_wavelength)
    rmat: np.ndarray  #: resampling matrix (band, library wavelength); spectrum @ rmat.T = bands
    wavelength_nm: np.ndarray  #: the spectral library's wavelengths (nm)
    names: list[str]  #: band names, e.g. "B2" … "B12"


class _SoilOptics(NamedTuple):
    """Step 4: soil units and their band reflectances (float32; 'unit' = soil-unit id)."""

    unit: np.ndarray  #: soil-unit id per pixel (y, x) int32
    texture: np.ndarray  #: texture index per unit (unit,) float64, unit sd; finer: larger
    mix: np.ndarray  #: weight of each unit's second spectrum per pixel (y, x), 0–0.6
    soil_a: np.ndarray  #: first soil spectrum of each unit (unit, band)
    soil_b: np.ndarray  #: second soil spectrum of each unit (unit, band)
    feature_a: np.ndarray  #: 2.2 µm feature depth of soil_a (unit, band)
    feature_b: np.ndarray  #: 2.2 µm feature depth of soil_b (unit, band)
    crust: np.ndarray  #: salt-crust reflectance (band,)
    darkening: np.ndarray  #: band-averaged moisture-darkening coefficient (band,), per m³/m³


class _Fields(NamedTuple):
    """Step 5: field parcels, their crops, and the root-zone salt."""

    parcel: np.ndarray  #: parcel id per pixel (y, x) int32
    crop_of_parcel: np.ndarray  #: crop code per parcel (parcel,) int8, index into CROPS
    crop: np.ndarray  #: crop code per pixel (y, x) int8
    salt: np.ndarray  #: salt content of the 0–20 cm layer (y, x) float32, g/kg
    ece: np.ndarray  #: saturated-paste EC (y, x) float32, dS/m

    @property
    def n_parcels(self) -> int:
        return int(self.crop_of_parcel.size)


class _Endmembers(NamedTuple):
    """Step 6: the vegetation spectra each parcel is drawn from (band values float32)."""

    canopy: np.ndarray  #: PROSAIL canopy library in bands (spectrum, band)
    healthy: np.ndarray  #: per parcel, row of canopy of its healthy canopy (parcel,)
    stressed: np.ndarray  #: per parcel, row of canopy of its stressed canopy (parcel,)
    residue: np.ndarray  #: NPV library in bands (spectrum, band)
    residue_index: np.ndarray  #: per parcel, row of residue of its crop residue (parcel,)
    residue_cover: np.ndarray  #: per parcel, maximum residue cover of the soil (parcel,), 0–1


class _Imagery(NamedTuple):
    """Step 7: what the satellite saw and the surface state behind it (float32)."""

    reflectance: np.ndarray  #: (date, band, y, x), 0–1
    soil_moisture: np.ndarray  #: surface soil moisture (date, y, x), m³/m³
    surface_salt: np.ndarray  #: salt content of the surface layer (date, y, x), g/kg


# -- the scene: steps --------------------------------------------------------------------------


def _check_scene_args(size: int, n_dates: int, pixel_size_m: float) -> None:
    if size < 8:
        raise ParameterError(f"size={size} is too small; use at least 8 pixels (e.g. 48 for tests)")
    if n_dates < 1:
        raise ParameterError(f"n_dates={n_dates}; expected at least 1")
    if pixel_size_m <= 0:
        raise ParameterError(f"pixel_size_m={pixel_size_m}; expected a positive size in metres")


def _terrain(
    dist_km: np.ndarray,
    size: int,
    px: float,
    p: SalinityParams,
    r_levee: np.random.Generator,
    r_terrain: np.random.Generator,
    r_dem: np.random.Generator,
) -> _Terrain:
    """Step 2: true elevation (coast rise, meso-relief, levee, micro-relief) and the 30 m DEM.

    ``dist_km`` is the distance to the coast (y, x), km. The DEM is the true surface smoothed
    to ``dem_resolution_m`` plus correlated and white DEM error; slope and a topographic wetness
    index (flow-area proxy from the relief below a ``twi_scale_m`` neighbourhood) follow from it.
    """
    shape = (size, size)
    levee = _levee(size, px, p, r_levee)
    meso = random_field(shape, p.meso_length_m / px, r_terrain, nu=1.5)
    micro = random_field(shape, p.micro_length_m / px, r_terrain, nu=1.0)
    z_true = (
        p.base_elevation_m
        + p.inland_rise_m_per_km * dist_km
        + p.meso_relief_m * meso
        + p.levee_height_m * levee
        + p.micro_relief_m * micro
    ).astype(np.float32)
    dem = _smooth(z_true, p.dem_resolution_m / px / 2.0)
    dem = dem + p.dem_error_m * random_field(shape, p.dem_error_length_m / px, r_dem, nu=1.0)
    dem = dem + p.dem_noise_m * random_field(shape, p.dem_resolution_m / px / 2.0, r_dem, nu=1.0)
    dem = dem.astype(np.float32)
    gy, gx = np.gradient(dem, px)
    tan_b = np.hypot(gx, gy)
    slope = np.degrees(np.arctan(tan_b)).astype(np.float32)
    relief = dem - _smooth(dem, p.twi_scale_m / px)
    area = px * np.exp(np.clip(-relief / p.twi_relief_m, -3.0, 9.0))
    twi = np.log(area / np.maximum(tan_b, 1e-3)).astype(np.float32)
    return _Terrain(levee, micro, z_true, dem, slope, twi)


def _groundwater_depth(
    z_true: np.ndarray, dist_km: np.ndarray, px: float, p: SalinityParams, rng: np.random.Generator
) -> np.ndarray:
    """Step 3: depth (m) of a smooth water table rising inland below the true surface, (y, x)."""
    water_table = (
        p.water_table_m
        + p.water_table_rise_m_per_km * dist_km
        + p.water_table_var_m * random_field(z_true.shape, p.water_table_length_m / px, rng, nu=2.0)
    )
    return np.maximum(z_true - water_table, p.min_depth_m).astype(np.float32)


def _band_model(wavelength_nm: np.ndarray, srf: str) -> _Bands:
    """Step 4: Sentinel-2 response functions (``srf`` kind) and the library → band matrix."""
    srf_da = spec.sentinel2_srf(srf)
    rmat = spec.resampling_matrix(wavelength_nm, srf_da)  # (band, wavelength)
    return _Bands(srf_da, rmat, wavelength_nm, [str(b) for b in srf_da["band"].values])


def _soil_pool(soil_all: np.ndarray, bands: _Bands, p: SalinityParams) -> np.ndarray:
    """Rows of the soil library whose B4 reflectance and B4/B3 redness suit the delta, dark → bright."""
    soil_b4 = soil_all @ bands.rmat[bands.names.index("B4")]
    redness = soil_b4 / (soil_all @ bands.rmat[bands.names.index("B3")])
    pool = np.flatnonzero(
        (soil_b4 >= p.soil_pool_b4[0])
        & (soil_b4 <= p.soil_pool_b4[1])
        & (redness <= p.soil_pool_redness_max)
    )
    return pool[np.argsort(soil_b4[pool])]


def _soil_optics(
    soil_lib: xr.DataArray,
    bands: _Bands,
    size: int,
    px: float,
    p: SalinityParams,
    rng: np.random.Generator,
) -> _SoilOptics:
    """Step 4: Voronoi soil units, each with two real soil spectra mixed in a smooth field.

    A unit's first spectrum is chosen by its texture (finer: darker and, in step 5, saltier),
    its second at random from the pool; the salt-crust spectrum and the moisture-darkening
    coefficient (visible → SWIR) are resampled to the bands too.
    """
    soil_all = soil_lib.values.astype(np.float64)
    wl = bands.wavelength_nm
    rmat = bands.rmat
    pool = _soil_pool(soil_all, bands, p)
    unit = _soil_units(size, px, p, rng)
    n_units = int(unit.max()) + 1
    texture = rng.standard_normal(n_units)  # finer texture: saltier, darker
    q = np.clip(0.5 - 0.25 * texture + rng.normal(0, 0.2, n_units), 0.0, 0.999)
    spec_a = pool[(q * pool.size).astype(int)]
    spec_b = pool[rng.integers(0, pool.size, n_units)]
    mix = (0.5 + 0.5 * np.tanh(random_field((size, size), p.soil_mix_length_m / px, rng))).astype(
        np.float32
    ) * 0.6
    depth_all = _feature_depth(soil_all, wl)
    dark_coef = p.darkening_vis + (p.darkening_swir - p.darkening_vis) / (
        1 + np.exp(-(wl - 1200.0) / 150.0)
    )
    return _SoilOptics(
        unit=unit,
        texture=texture,
        mix=mix,
        soil_a=(soil_all[spec_a] @ rmat.T).astype(np.float32),
        soil_b=(soil_all[spec_b] @ rmat.T).astype(np.float32),
        feature_a=(depth_all[spec_a] @ rmat.T).astype(np.float32),
        feature_b=(depth_all[spec_b] @ rmat.T).astype(np.float32),
        crust=(rmat @ _salt_crust_spectrum(wl)).astype(np.float32),
        darkening=(rmat @ dark_coef).astype(np.float32),
    )


def _potential_log_salt(
    dist_km: np.ndarray,
    gw_depth: np.ndarray,
    terrain: _Terrain,
    soil: _SoilOptics,
    px: float,
    p: SalinityParams,
    r_salt: np.random.Generator,
) -> np.ndarray:
    """Step 5: ln S (S in g/kg) before management, (y, x) float64.

    Coastal term + capillary rise from shallow groundwater + salt on micro-highs + texture +
    the drained levee + a correlated residual (``residual_length_m``).
    """
    return (
        p.log_salt_mean
        + p.coast_effect * np.exp(-dist_km / p.coast_decay_km)
        + p.capillary_effect * np.exp(-gw_depth / p.critical_depth_m)
        + p.micro_high_effect * terrain.micro
        + p.texture_effect * soil.texture[soil.unit]
        + p.levee_effect * terrain.levee
        + p.residual_sd * random_field(gw_depth.shape, p.residual_length_m / px, r_salt, nu=0.5)
    )


def _choose_crops(
    parcel: np.ndarray, log_s_pot: np.ndarray, p: SalinityParams, r_crop: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: each parcel's crop and leaching, ((parcel,) int8 crop codes, (parcel,) ln S).

    Farmers choose by the parcel's mean potential salinity: a multinomial logit (Gumbel-max
    draw) with ``crop_logit_base`` at 3 g/kg and ``crop_logit_salt`` per unit ln(S / 3 g/kg);
    leaching is the crop's irrigation effect plus a management residual.
    """
    n_parcels = int(parcel.max()) + 1
    counts = np.bincount(parcel.ravel(), minlength=n_parcels)
    parcel_mean = np.bincount(
        parcel.ravel(), weights=log_s_pot.ravel(), minlength=n_parcels
    ) / np.maximum(counts, 1)
    z_parcel = parcel_mean - np.log(3.0)  # farmers see absolute salinity
    logits = (
        np.array(p.crop_logit_base)[None, :]
        + z_parcel[:, None] * np.array(p.crop_logit_salt)[None, :]
    )
    gumbel = -np.log(-np.log(r_crop.uniform(1e-12, 1.0, logits.shape)))
    crop_of_parcel = np.argmax(logits + gumbel, axis=1).astype(np.int8)
    leach = np.array([p.leaching[c] for c in CROPS])[crop_of_parcel] + r_crop.normal(
        0.0, p.management_sd, n_parcels
    )
    return crop_of_parcel, leach


def _salt_and_crops(
    dist_km: np.ndarray,
    gw_depth: np.ndarray,
    terrain: _Terrain,
    soil: _SoilOptics,
    size: int,
    px: float,
    p: SalinityParams,
    r_parcel: np.random.Generator,
    r_salt: np.random.Generator,
    r_crop: np.random.Generator,
) -> _Fields:
    """Step 5: parcels, crops chosen by salinity, and the root-zone salt after leaching.

    ln S = potential ln S + the parcel's leaching + a short-range residual
    (``fine_residual_length_m``); S is kept in ``salt_range`` by a soft floor and ceiling.
    """
    parcel = _parcels(size, px, p, r_parcel)
    log_s_pot = _potential_log_salt(dist_km, gw_depth, terrain, soil, px, p, r_salt)
    crop_of_parcel, leach = _choose_crops(parcel, log_s_pot, p, r_crop)
    log_s = (
        log_s_pot
        + leach[parcel]
        + p.fine_residual_sd
        * random_field((size, size), p.fine_residual_length_m / px, r_salt, nu=0.5)
    )
    salt = _soft_range(np.exp(log_s), *p.salt_range).astype(np.float32)
    return _Fields(
        parcel=parcel,
        crop_of_parcel=crop_of_parcel,
        crop=crop_of_parcel[parcel],
        salt=salt,
        ece=salt * p.ece_per_gkg,
    )


def _iso_dates(doys: np.ndarray, year: int) -> list[str]:
    """ISO dates (``YYYY-MM-DD``) of days of year ``doys`` in ``year``."""
    return [(date(year, 1, 1) + timedelta(days=int(d) - 1)).isoformat() for d in doys]


def _crop_lai(
    doys: np.ndarray,
    fields: _Fields,
    px: float,
    p: SalinityParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Step 6: true LAI (date, y, x) float32, m²/m².

    Each crop's double-logistic phenology (shifted per parcel by ``sowing_jitter_days``) and
    Maas–Hoffman salt response, times a vigour that varies between parcels (management) and
    within them (~40 m).
    """
    parcel = fields.parcel
    n_parcels = fields.n_parcels
    shift_parcel = rng.normal(0.0, p.sowing_jitter_days, n_parcels)
    vigour = np.exp(
        rng.normal(0.0, p.management_vigour_sd, n_parcels)[parcel]
        + p.within_field_vigour_sd * random_field(parcel.shape, 40.0 / px, rng, nu=1.0)
    ).astype(np.float32)
    lai = np.zeros((doys.size, *parcel.shape), np.float32)
    for k, cname in enumerate(CROPS):
        m = fields.crop == k
        if m.any():
            for t, d in enumerate(doys):
                lai[t][m] = (
                    _season_lai(cname, d, shift_parcel[parcel][m], fields.ece[m]) * vigour[m]
                )
    return lai


def _vegetation_endmembers(
    bands: _Bands, n_parcels: int, p: SalinityParams, rng: np.random.Generator
) -> _Endmembers:
    """Step 6: per parcel a healthy and a stressed canopy spectrum and a crop-residue spectrum.

    Canopies are real PROSAIL spectra with LAI >= 3 (closed canopy), healthy with chlorophyll
    >= 40 µg/cm², stressed with <= 25 µg/cm²; residue is earthlib's NPV litter.
    """
    lib_can = spec.load_library("canopy")
    can_b = (lib_can.values.astype(np.float64) @ bands.rmat.T).astype(np.float32)
    lai_lib, chl_lib = lib_can["lai"].values, lib_can["chl"].values
    healthy = np.flatnonzero((lai_lib >= 3.0) & (chl_lib >= 40.0))
    stressed = np.flatnonzero((lai_lib >= 3.0) & (chl_lib <= 25.0))
    h_idx = healthy[rng.integers(0, healthy.size, n_parcels)]
    s_idx = stressed[rng.integers(0, stressed.size, n_parcels)]
    lib_npv = spec.load_library("npv")
    litter = np.flatnonzero(lib_npv["level_3"].values == "litter")
    npv_b = (lib_npv.values.astype(np.float64) @ bands.rmat.T).astype(np.float32)
    n_idx = litter[rng.integers(0, litter.size, n_parcels)]
    residue_parcel = rng.uniform(0.0, p.residue_max, n_parcels).astype(np.float32)
    return _Endmembers(can_b, h_idx, s_idx, npv_b, n_idx, residue_parcel)


def _bare_soil(
    salt: np.ndarray,
    rain: float,
    capillary: np.ndarray,
    soil0: np.ndarray,
    feat0: np.ndarray,
    soil: _SoilOptics,
    px: float,
    p: SalinityParams,
    r_surface: np.random.Generator,
    r_moist: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 7, one date: surface salt (g/kg), moisture (m³/m³) and bare-soil reflectance.

    ``rain`` is the date's rainy-season weight (0–1), ``capillary`` the capillary-supply factor
    exp(−D / critical depth) (y, x), ``soil0``/``feat0`` the pixels' mixed soil spectra and
    2.2 µm feature depths (band, y, x). Surface salt brightens the soil with a crust and fills
    the clay feature; moisture darkens it (Lobell & Asner). Returns ``(surface_salt (y, x)
    float64, moisture (y, x) float32, soil reflectance (band, y, x))``.
    """
    shape = salt.shape
    shift = p.spring_salt_shift * (1 - rain) + p.rain_leach_shift * rain
    s_surf = salt * np.exp(
        shift
        + p.surface_salt_sd * random_field(shape, p.surface_salt_length_m / px, r_surface, nu=1.0)
    )
    ls = np.log(np.maximum(s_surf, 1.0))  # ln(S_surface / 1 g/kg), 0 below 1 g/kg
    crust = np.minimum(p.crust_per_log_salt * ls, p.crust_max)
    fill = np.minimum(p.feature_fill_per_log_salt * ls, 1.0)
    theta = (
        p.moisture_dry
        + p.moisture_rain * rain
        + p.moisture_capillary * capillary
        + p.moisture_salt * ls
        + p.moisture_sd * random_field(shape, 60.0 / px, r_moist, nu=1.0)
    )
    theta = np.clip(theta, 0.02, 0.45).astype(np.float32)
    reflectance = (1 - crust)[None] * (soil0 + fill[None] * feat0) + crust[None] * soil.crust[
        :, None, None
    ]
    reflectance *= np.exp(-soil.darkening[:, None, None] * theta[None])
    return s_surf, theta, reflectance


def _with_cover(
    soil_r: np.ndarray,
    doy: float,
    lai: np.ndarray,
    fields: _Fields,
    endmembers: _Endmembers,
    p: SalinityParams,
) -> np.ndarray:
    """Step 7, one date: bare soil → ground (crop residue) → pixel (canopy), (band, y, x).

    Residue covers more of the soil after the wheat harvest (day 165); the canopy mixes the
    healthy and stressed spectra by the salt stress of the season growing at ``doy`` and
    covers the fraction ``1 − exp(−k LAI)`` (``lai`` (y, x)).
    """
    parcel = fields.parcel
    e = endmembers
    res_frac = e.residue_cover[parcel] * (0.4 + 0.6 * (doy > 165))
    ground = (1 - res_frac)[None] * soil_r + res_frac[None] * e.residue[e.residue_index].T[
        :, parcel
    ]
    stress = p.stress_chl_weight * (1.0 - _relative_vigour(fields.crop, doy, fields.ece))
    canopy = (1 - stress)[None] * e.canopy[e.healthy].T[:, parcel] + stress[None] * e.canopy[
        e.stressed
    ].T[:, parcel]
    fc = 1.0 - np.exp(-p.extinction_k * lai)
    return fc[None] * canopy + (1 - fc)[None] * ground


def _observe(
    r: np.ndarray,
    gain: np.ndarray,
    haze_shape: np.ndarray,
    bands: _Bands,
    px: float,
    p: SalinityParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Step 7, one date: the sensor's view of surface reflectance ``r`` (band, y, x).

    Smooth residual haze (``haze_shape`` per band × a 2 km field), the date's calibration
    ``gain`` (band,), the 20 m bands observed at 20 m, multiplicative and additive noise;
    clipped to 0–1.
    """
    haze = p.haze_sd * random_field(r.shape[1:], 2000.0 / px, rng, nu=2.0)
    r = r * gain[:, None, None] + haze_shape[:, None, None] * haze[None]
    if p.aggregate_20m:
        r = _aggregate_20m(r, bands.names, px)
    r *= 1 + np.float32(p.noise_relative) * rng.standard_normal(r.shape, dtype=np.float32)
    r += np.float32(p.noise_additive) * rng.standard_normal(r.shape, dtype=np.float32)
    return np.clip(r, 0.0, 1.0)


def _reflectance(
    doys: np.ndarray,
    soil: _SoilOptics,
    fields: _Fields,
    gw_depth: np.ndarray,
    lai: np.ndarray,
    endmembers: _Endmembers,
    bands: _Bands,
    px: float,
    p: SalinityParams,
    rng: _Streams,
) -> _Imagery:
    """Step 7: Sentinel-2 reflectance of every date, with the surface salt and moisture behind it.

    Per date: :func:`_bare_soil` → :func:`_with_cover` → :func:`_observe`. Draws from the
    streams ``rng.surface`` (surface salt), ``rng.moisture`` and ``rng.sensor`` only: the
    per-date, per-band calibration gains first, then each date's haze and noise.
    """
    n_dates, nb = doys.size, len(bands.names)
    shape = fields.salt.shape
    rain = np.exp(-(((doys - p.rain_peak_doy) / p.rain_width_days) ** 2))
    gains = (1.0 + p.gain_sd * rng.sensor.standard_normal((n_dates, nb))).astype(np.float32)
    haze_shape = ((np.asarray(bands.srf["wavelength"].values) / 490.0) ** -1.5).astype(np.float32)
    refl = np.empty((n_dates, nb, *shape), np.float32)
    soil_moist = np.empty((n_dates, *shape), np.float32)
    surface_salt = np.empty((n_dates, *shape), np.float32)
    mix3 = soil.mix[None]
    soil0 = (1 - mix3) * soil.soil_a.T[:, soil.unit] + mix3 * soil.soil_b.T[:, soil.unit]
    feat0 = (1 - mix3) * soil.feature_a.T[:, soil.unit] + mix3 * soil.feature_b.T[:, soil.unit]
    capillary = np.exp(-gw_depth / p.critical_depth_m)
    for t in range(n_dates):
        surface_salt[t], soil_moist[t], soil_r = _bare_soil(
            fields.salt, rain[t], capillary, soil0, feat0, soil, px, p, rng.surface, rng.moisture
        )
        r = _with_cover(soil_r, doys[t], lai[t], fields, endmembers, p)
        refl[t] = _observe(r, gains[t], haze_shape, bands, px, p, rng.sensor)
    return _Imagery(refl, soil_moist, surface_salt)


def _observed_layers(
    terrain: _Terrain, dist_km: np.ndarray, refl: np.ndarray, bands: _Bands
) -> dict[str, np.ndarray]:
    """Step 8: the layers a user would have, in LAYER_GROUPS order, each (y, x).

    Terrain from the DEM, the distance to the coast, and vegetation layers derived from the
    imagery (NDVI maximum and amplitude over the dates, peak LAI retrieved from NDVI).
    """
    red, nir = refl[:, bands.names.index("B4")], refl[:, bands.names.index("B8")]
    ndvi = _ndvi(red, nir)
    return {
        "elevation": terrain.dem,
        "slope": terrain.slope,
        "twi": terrain.twi,
        "distance_to_coast": dist_km,
        "lai_peak": _lai_from_ndvi(ndvi.max(axis=0)),
        "ndvi_max": ndvi.max(axis=0),
        "ndvi_amplitude": ndvi.max(axis=0) - ndvi.min(axis=0),
    }


def _latent_truth(
    terrain: _Terrain,
    gw_depth: np.ndarray,
    lai: np.ndarray,
    imagery: _Imagery,
    fields: _Fields,
    soil: _SoilOptics,
) -> dict[str, tuple]:
    """The truth a user would not have: ``{name: (dims, values, units, long_name)}``."""
    return {
        "groundwater_depth": (
            ("y", "x"),
            gw_depth,
            "m",
            "groundwater depth (latent: not observable)",
        ),
        "elevation_true": (
            ("y", "x"),
            terrain.elevation_true,
            "m",
            "true elevation incl. micro-relief (latent)",
        ),
        "lai": (("date", "y", "x"), lai, "m2/m2", "true leaf area index (latent)"),
        "surface_salt": (
            ("date", "y", "x"),
            imagery.surface_salt,
            "g/kg",
            "salt content of the surface crust layer (latent)",
        ),
        "soil_moisture": (
            ("date", "y", "x"),
            imagery.soil_moisture,
            "m3/m3",
            "surface soil moisture (latent)",
        ),
        "parcel": (("y", "x"), fields.parcel, "1", "field parcel id"),
        "crop": (
            ("y", "x"),
            fields.crop.astype(np.int8),
            "1",
            "crop: " + ", ".join(f"{i}={c}" for i, c in enumerate(CROPS)),
        ),
        "soil_unit": (("y", "x"), soil.unit, "1", "soil unit id"),
    }


# -- the scene ---------------------------------------------------------------------------------


def simulate_scene(
    size: int = 160,
    n_dates: int = 3,
    seed: int = 0,
    pixel_size_m: float = 10.0,
    srf: Literal["gaussian", "esa"] = "gaussian",
    *,
    params: SalinityParams | None = None,
) -> xr.Dataset:
    """Simulate a coastal cropland scene with soil salt content and Sentinel-2 reflectance.

    Parameters
    ----------
    size
        Scene side in pixels (square scene).
    n_dates
        Number of Sentinel-2 acquisitions, evenly spread from mid-April to mid-October.
    seed
        Random seed; the same seed and settings give an identical scene.
    pixel_size_m
        Pixel size (m); all lengths in :class:`SalinityParams` are in metres, so the landscape
        keeps its physical scales.
    srf
        Sentinel-2 response functions: ``"gaussian"`` (offline) or ``"esa"`` (the official
        tables through the data registry).
    params
        Physical settings; default :class:`SalinityParams` (the calibrated values).

    Returns
    -------
    xarray.Dataset
        In the soilbook SCENE schema: ``reflectance`` (date, band, y, x), ``layers``
        (layer, y, x) with ``layer_group``, ``target`` (y, x) = salt content (g/kg) of the
        0-20 cm layer, plus latent truth that a user would not have (``groundwater_depth``,
        ``lai``, ``surface_salt``, ``soil_moisture``, ``parcel``, ``crop``, ``soil_unit``,
        ``elevation_true``). ``x``/``y`` are UTM 50N metres; ``lat``/``lon`` 2-D.
    """
    _check_scene_args(size, n_dates, pixel_size_m)
    p = params or SalinityParams()
    px = float(pixel_size_m)
    rng = _Streams.from_seed(seed)
    coords = _coordinates(size, px, p)

    # 1. coast; 2. terrain and the observed DEM; 3. groundwater (latent)
    dist_km = _distance_to_coast(size, px, p, rng.coast)
    terrain = _terrain(dist_km, size, px, p, rng.levee, rng.terrain, rng.dem)
    gw_depth = _groundwater_depth(terrain.elevation_true, dist_km, px, p, rng.water)
    # 4. soil units with real soil spectra, in Sentinel-2 bands
    soil_lib = spec.load_library("soil")
    bands = _band_model(soil_lib["wavelength"].values, srf)
    soil = _soil_optics(soil_lib, bands, size, px, p, rng.soil)
    # 5. parcels, salt and crops
    fields = _salt_and_crops(
        dist_km, gw_depth, terrain, soil, size, px, p, rng.parcel, rng.salt, rng.crop
    )
    # 6. crop growth per date, and the vegetation spectra of every parcel
    doys = _acquisition_doys(n_dates, p)
    lai = _crop_lai(doys, fields, px, p, rng.vigour)
    endmembers = _vegetation_endmembers(bands, fields.n_parcels, p, rng.endmembers)
    # 7. reflectance per date
    imagery = _reflectance(doys, soil, fields, gw_depth, lai, endmembers, bands, px, p, rng)
    # 8. the layers a user would derive from the DEM and the imagery
    return _assemble(
        size=size,
        px=px,
        seed=seed,
        srf=srf,
        p=p,
        coords=coords,
        dates=_iso_dates(doys, p.year),
        doys=doys,
        bands=bands.names,
        srf_da=bands.srf,
        refl=imagery.reflectance,
        layers_np=_observed_layers(terrain, dist_km, imagery.reflectance, bands),
        salt=fields.salt,
        latent=_latent_truth(terrain, gw_depth, lai, imagery, fields, soil),
    )


def _aggregate_20m(r: np.ndarray, bands: list[str], px: float) -> np.ndarray:
    """Observe the 20 m bands at 20 m (2×2 block means) and resample them back to the grid."""
    factor = round(20.0 / px)
    if factor < 2:
        return r
    res = dict(zip(spec.SENTINEL2.bands, spec.SENTINEL2.resolution_m, strict=True))
    idx = [i for i, b in enumerate(bands) if res.get(b, 10.0) >= 20.0]
    if not idx:
        return r
    ny, nx = r.shape[1:]
    py, pxx = (-ny) % factor, (-nx) % factor
    sub = np.pad(r[idx], ((0, 0), (0, py), (0, pxx)), mode="edge")
    b, hy, hx = sub.shape
    coarse = sub.reshape(b, hy // factor, factor, hx // factor, factor).mean(axis=(2, 4))
    fine = np.repeat(np.repeat(coarse, factor, axis=1), factor, axis=2)[:, :ny, :nx]
    r = r.copy()
    r[idx] = fine
    return r


def _assemble(
    *, size, px, seed, srf, p, coords, dates, doys, bands, srf_da, refl, layers_np, salt, latent
) -> xr.Dataset:
    names = list(layers_np)
    layers = np.stack([layers_np[n].astype(np.float32) for n in names])
    ds = xr.Dataset(
        {
            "reflectance": (
                ("date", "band", "y", "x"),
                refl,
                {"units": "1", "long_name": "Sentinel-2 surface reflectance (simulated)"},
            ),
            "layers": (
                ("layer", "y", "x"),
                layers,
                {
                    "units": "see layer_units",
                    "long_name": "environmental layers",
                    "layer_units": [_LAYER_META[n][0] for n in names],
                    "layer_long_names": [_LAYER_META[n][1] for n in names],
                },
            ),
            "target": (
                ("y", "x"),
                salt,
                {"units": "g/kg", "long_name": "soil salt content (0-20 cm)"},
            ),
        },
        coords={
            "y": ("y", coords["y"], {"units": "m", "long_name": "northing", "crs": coords["crs"]}),
            "x": ("x", coords["x"], {"units": "m", "long_name": "easting", "crs": coords["crs"]}),
            "lat": (("y", "x"), coords["lat"].astype(np.float64), {"units": "degrees_north"}),
            "lon": (("y", "x"), coords["lon"].astype(np.float64), {"units": "degrees_east"}),
            "date": ("date", np.array(dates)),
            "doy": ("date", doys.astype(np.int16), {"units": "day of year"}),
            "band": ("band", np.array(bands)),
            "wavelength": ("band", srf_da["wavelength"].values.astype(np.float64), {"units": "nm"}),
            "layer": ("layer", np.array(names)),
            "layer_group": ("layer", np.array([LAYER_GROUPS[n] for n in names])),
            "layer_units": ("layer", np.array([_LAYER_META[n][0] for n in names])),
        },
    )
    for name, (dims, values, units, long_name) in latent.items():
        ds[name] = (dims, values, {"units": units, "long_name": long_name, "latent": 1})
    ds.attrs = {
        "source": "soilbook simulator (salinity)",
        "licence": "CC0-1.0 (generated)",
        "citation": CITATION,
        "simulated": True,
        "target_name": "salt content",
        "title": "Simulated Yellow-River-Delta-like coastal cropland (teaching data)",
        "size": size,
        "n_dates": len(dates),
        "seed": seed,
        "pixel_size_m": px,
        "srf": srf,
        "sensor": spec.SENTINEL2.name,
        "crs": coords["crs"],
        "spectra": "soil: earthlib ICRAF-ISRIC; canopy: earthlib PROSAIL; residue: earthlib npv litter",
        **p.as_attrs(),
    }
    return ds


# -- calibration -------------------------------------------------------------------------------


def calibration_check(
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5),
    size: int = 160,
    n_samples: int = 400,
    n_trees: int = 300,
    n_jobs: int = 1,
    params: SalinityParams | None = None,
) -> list[dict]:
    """Random-Forest R² on sampled scenes: the check that fixed the simulator's settings.

    For each seed: simulate a scene, draw ``n_samples`` field samples
    (:func:`soilbook.data.scene.sample_scene`, default lab noise), and cross-validate a Random
    Forest (``n_trees`` trees, ``min_samples_leaf=2``) on the tabular features (every band of
    every date + covariates) with 5-fold random CV and 5-fold spatial-block CV (the samples'
    ``group``). Returns one dict per seed with ``r2_random``, ``r2_spatial``,
    ``r2_spectral_only`` (random CV, reflectance only) and ``r2_lab_ceiling`` (R² of the lab
    values against the true pixel values), plus the target's mean and sd.

    Run it with ``python -m soilbook.data.simulate.salinity``.
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold, KFold, cross_val_predict

    from soilbook.data.scene import sample_scene
    from soilbook.data.schema import tabular_feature_names, to_tabular

    rows = []
    for seed in seeds:
        scene = simulate_scene(size=size, n_dates=3, seed=seed, params=params)
        ds = sample_scene(scene, n_samples=n_samples, window=None, seed=seed)
        x = to_tabular(ds)
        y = ds["target"].values
        rf = RandomForestRegressor(n_trees, min_samples_leaf=2, random_state=0, n_jobs=n_jobs)
        random_cv = KFold(5, shuffle=True, random_state=0)
        pred_random = cross_val_predict(rf, x, y, cv=random_cv)
        pred_spatial = cross_val_predict(rf, x, y, cv=GroupKFold(5), groups=ds["group"].values)
        _, groups = tabular_feature_names(ds)
        spectral = [i for i, g in enumerate(groups) if g == "spectral"][: ds["reflectance"][0].size]
        pred_spec = cross_val_predict(rf, x[:, spectral], y, cv=random_cv)
        rows.append(
            {
                "seed": seed,
                "r2_random": float(r2_score(y, pred_random)),
                "r2_spatial": float(r2_score(y, pred_spatial)),
                "r2_spectral_only": float(r2_score(y, pred_spec)),
                "r2_lab_ceiling": float(r2_score(y, ds["target_true"].values)),
                "target_mean": float(y.mean()),
                "target_sd": float(y.std()),
                "n_groups": len(np.unique(ds["group"].values)),
            }
        )
    return rows


if __name__ == "__main__":  # pragma: no cover - the calibration report
    import time

    import pandas as pd

    t0 = time.perf_counter()
    table = pd.DataFrame(calibration_check(n_jobs=-1))
    print(table.round(3).to_string(index=False))
    print("mean:", table.drop(columns="seed").mean().round(3).to_dict())
    print(f"({time.perf_counter() - t0:.0f} s)")
