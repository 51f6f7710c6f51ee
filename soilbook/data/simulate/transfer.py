"""From laboratory soil spectra to SIMULATED satellite hyperspectral pixels (DeepSalt chapter).

**The satellite domain made here is simulated.** The *inputs* are real: measured ICRAF-ISRIC
laboratory soil spectra, PROSAIL canopy spectra and non-photosynthetic-vegetation spectra from
earthlib's library (:mod:`soilbook.data.spectra`). What a satellite would add to a lab spectrum
is simulated with documented, physically motivated steps; the whole model, its equations and its
settings are written up in ``book/simulator_transfer.md``. In short:

:func:`add_salt`
    Puts salt into a real soil spectrum for a simulated salinity target EC (dS/m): a patchy
    efflorescent crust covering the fraction $f_s = 1 - e^{-EC/EC_s}$ of the surface is mixed
    linearly with the soil, and the soil matrix brightens slightly. The crust spectrum
    (halite / gypsum-like, :func:`salt_crust_spectrum`) is **built from documented Gaussian
    absorptions** because no salt spectrum ships in the libraries.
:func:`sample_ec`
    A skewed (truncated log-normal) EC distribution, 0.1-60 dS/m.
:func:`lab_to_satellite`
    Per spectrum: (a) field-moisture darkening, (b) linear mixing with green vegetation
    (PROSAIL canopy) and non-photosynthetic vegetation (earthlib NPV), (c) illumination / BRDF
    scaling with a gentle spectral tilt, (d) a small spectral shift, (e) resampling to the
    sensor's bands with Gaussian responses (:func:`soilbook.data.spectra.gaussian_srf`, the same
    weights :func:`soilbook.data.spectra.resample` uses), (f) band-dependent sensor noise, and
    optionally (g) the removal of the water-vapour bands. Returns the latent factors as well.
:func:`simulate_satellite_pixels`
    Several satellite pixels per lab spectrum (unlabelled pixels around a site).

All steps up to the resampling are applied on the response functions' 1 nm grid (the lab
spectrum is first interpolated onto it, bridging the library's water-vapour gaps as
:func:`~soilbook.data.spectra.resample` does), so that narrow features and the water
absorption bands are represented properly. Every function is vectorised and deterministic for
a given :class:`numpy.random.Generator`; nothing uses global random state. With every
perturbation switched off (:meth:`TransferParams.identity`), :func:`lab_to_satellite` is exactly
:func:`~soilbook.data.spectra.resample` of the lab spectra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy import special

from soilbook.data import spectra as spec

CITATION = (
    "soilbook lab-to-satellite transfer simulator (simulated data; see "
    "book/simulator_transfer.md). Spectra: " + spec.LIBRARY_CITATION
)

#: Default truncated log-normal EC distribution (dS/m): median, sd of ln EC, bounds.
EC_MEDIAN_DSM = 2.5
EC_LOG_SD = 1.3
EC_MIN_DSM = 0.1
EC_MAX_DSM = 60.0


@dataclass(frozen=True)
class TransferParams:
    """Every setting of the salt-mixing model and the lab-to-satellite simulator.

    Wavelengths in nm; moisture in m³/m³; reflectance 0-1; EC in dS/m. The defaults describe a
    dry-season EnMAP acquisition over mostly bare, salt-affected cropland. The values are
    documented, physically motivated choices (sources in ``book/simulator_transfer.md``), not
    fitted to data. :meth:`identity` switches every perturbation off.
    """

    # --- salt (add_salt)
    ec_scale_dsm: float = (
        40.0  #: EC_s in f_s = 1 - exp(-EC/EC_s) (crust cover 0.10 at 4, 0.33 at 16 dS/m)
    )
    crust_fraction_sd: float = (
        0.3  #: sd of the log-normal patchiness factor of crust cover (0 = none)
    )
    crust_max: float = 0.95  #: upper bound of the crust cover fraction
    gypsum_share_max: float = 0.5  #: gypsum-like share of the crust drawn U(0, max); rest halite
    brightening_per_log_ec: float = (
        0.02  #: beta in the soil brightening 1 + beta ln(1 + EC / 1 dS/m)
    )
    # --- EC distribution (sample_ec); same defaults as the module constants
    ec_median_dsm: float = EC_MEDIAN_DSM  #: median EC of the simulated salinity target
    ec_log_sd: float = EC_LOG_SD  #: sd of ln EC
    ec_min_dsm: float = EC_MIN_DSM  #: lower truncation of EC
    ec_max_dsm: float = EC_MAX_DSM  #: upper truncation of EC
    # --- (a) field moisture: rho <- rho exp(-c(lambda) theta)
    moisture_max: float = (
        0.30  #: theta = moisture_max * Beta(a, b), m3/m3 above the air-dry lab state
    )
    moisture_beta: tuple[float, float] = (
        1.5,
        4.0,
    )  #: Beta(a, b) of theta / moisture_max (mean 0.27)
    darkening_vis: float = 1.5  #: broadband darkening coefficient c in the visible (per m3/m3)
    darkening_swir: float = 2.5  #: broadband darkening coefficient c in the SWIR (per m3/m3)
    darkening_step_nm: float = 1200.0  #: centre of the logistic VIS -> SWIR transition of c
    darkening_step_width_nm: float = 150.0  #: width of that transition
    water_band_nm: tuple[float, ...] = (970.0, 1200.0, 1450.0, 1940.0)  #: liquid-water bands
    water_band_sd_nm: tuple[float, ...] = (30.0, 40.0, 50.0, 60.0)  #: their Gaussian sd
    water_band_strength: tuple[float, ...] = (
        0.3,
        0.6,
        2.5,
        4.0,
    )  #: added c at band centre (per m3/m3)
    # --- (b) vegetation cover: rho = f_soil rho_soil + f_gv rho_gv + f_npv rho_npv
    gv_max: float = 0.4  #: f_gv = gv_max * Beta(gv_beta)
    gv_beta: tuple[float, float] = (1.0, 4.0)  #: Beta(a, b) of f_gv / gv_max (mean 0.2)
    npv_max: float = 0.3  #: f_npv = npv_max * Beta(npv_beta)
    npv_beta: tuple[float, float] = (1.0, 3.0)  #: Beta(a, b) of f_npv / npv_max (mean 0.25)
    canopy_min_lai: float = 3.0  #: default canopy pool: PROSAIL spectra with LAI >= this (closed)
    npv_classes: tuple[str, ...] = ("litter", "npv")  #: default NPV pool (earthlib level_3)
    # --- (c) illumination / BRDF: rho <- a (1 + t (lambda - lambda_0) / 1000 nm) rho
    illumination_median: float = 0.95  #: median of a (field surfaces darker than sieved lab soil)
    illumination_sd: float = 0.05  #: sd of ln a
    tilt_sd: float = 0.02  #: sd of the spectral tilt t (relative change per 1000 nm)
    tilt_ref_nm: float = 1000.0  #: lambda_0, the pivot of the tilt
    # --- (d) spectral shift: rho(lambda) <- rho(lambda - s)
    shift_sd_nm: float = 1.5  #: sd of s (nm)
    shift_max_nm: float = 4.0  #: |s| is clipped to this (nm)
    # --- (f) sensor noise: rho_b <- rho_b (1 + k eps / SNR_b)
    snr_nodes_nm: tuple[float, ...] = (
        420.0,
        450.0,
        495.0,
        650.0,
        800.0,
        950.0,
        1050.0,
        1250.0,
        1650.0,
        2200.0,
        2350.0,
        2450.0,
    )  #: wavelengths of the SNR curve (linear interpolation, edge values held)
    snr_nodes: tuple[float, ...] = (
        150.0,
        330.0,
        400.0,
        400.0,
        330.0,
        200.0,
        220.0,
        230.0,
        210.0,
        180.0,
        140.0,
        80.0,
    )  #: SNR at those wavelengths outside absorption bands (EnMAP: 400 @ 495 nm, 180 @ 2200 nm)
    absorption_nm: tuple[float, ...] = (
        760.0,
        940.0,
        1130.0,
        1380.0,
        1880.0,
        2010.0,
    )  #: O2, H2O, CO2
    absorption_sd_nm: tuple[float, ...] = (3.0, 25.0, 25.0, 50.0, 60.0, 15.0)  #: their Gaussian sd
    absorption_depth: tuple[float, ...] = (0.6, 0.55, 0.6, 0.98, 0.98, 0.3)  #: 1 - T at band centre
    noise_scale: float = 1.0  #: k: 1 = nominal noise, 0 = no noise
    clip_max: float = 1.2  #: observed reflectance is clipped to [0, clip_max]
    # --- (g) water-vapour bands (removed later in the pipeline)
    water_vapour_windows_nm: tuple[tuple[float, float], ...] = (
        (1330.0, 1480.0),
        (1780.0, 1990.0),
    )  #: band centres inside these windows are flagged not usable
    # --- simulate_satellite_pixels
    site_radius_m: float = 250.0  #: pixels lie uniformly in a disc of this radius around the site
    site_soil_mix_max: float = 0.2  #: share of a neighbouring soil, U(0, max), per pixel

    def __post_init__(self) -> None:
        problems = []
        if self.gv_max < 0.0 or self.npv_max < 0.0:
            problems.append("gv_max and npv_max must be >= 0")
        if self.gv_max + self.npv_max > 1.0:
            problems.append(f"gv_max + npv_max = {self.gv_max + self.npv_max} must be <= 1")
        if self.moisture_max < 0 or self.shift_sd_nm < 0 or self.illumination_sd < 0:
            problems.append("moisture_max, shift_sd_nm and illumination_sd must be >= 0")
        if self.ec_scale_dsm <= 0:
            problems.append("ec_scale_dsm must be > 0")
        if not 0 < self.ec_min_dsm < self.ec_median_dsm < self.ec_max_dsm:
            problems.append("need 0 < ec_min_dsm < ec_median_dsm < ec_max_dsm")
        for names in (
            ("water_band_nm", "water_band_sd_nm", "water_band_strength"),
            ("snr_nodes_nm", "snr_nodes"),
            ("absorption_nm", "absorption_sd_nm", "absorption_depth"),
        ):
            lengths = {len(getattr(self, n)) for n in names}
            if len(lengths) != 1:
                problems.append(f"{', '.join(names)} must have the same length")
        if np.any(np.diff(self.snr_nodes_nm) <= 0) or min(self.snr_nodes) <= 0:
            problems.append("snr_nodes_nm must increase and snr_nodes be positive")
        if not 0.0 <= self.site_soil_mix_max <= 1.0:
            problems.append("site_soil_mix_max must lie in [0, 1]")
        if problems:
            raise ValueError(
                "TransferParams: " + "; ".join(problems) + ". Fix these fields (see "
                "book/simulator_transfer.md for the meaning of each)."
            )

    @classmethod
    def identity(cls, **changes: Any) -> TransferParams:
        """Settings with every perturbation off: lab_to_satellite = plain resampling.

        Moisture 0, no vegetation, illumination 1 without tilt, no shift, no noise. Pass
        ``changes`` to switch single effects back on (``TransferParams.identity(moisture_max=0.3)``).
        """
        base = {
            "moisture_max": 0.0,
            "gv_max": 0.0,
            "npv_max": 0.0,
            "illumination_median": 1.0,
            "illumination_sd": 0.0,
            "tilt_sd": 0.0,
            "shift_sd_nm": 0.0,
            "noise_scale": 0.0,
            "site_radius_m": 0.0,
            "site_soil_mix_max": 0.0,
        }
        base.update(changes)
        return cls(**base)

    def as_attrs(self) -> dict:
        """The parameters as flat netCDF-friendly attributes (prefix ``sim_``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                flat = np.asarray(value, dtype=object).ravel().tolist()
                out[f"sim_{f.name}"] = [v if isinstance(v, str) else float(v) for v in flat]
            else:
                out[f"sim_{f.name}"] = value
        return out


# -- spectral shapes ---------------------------------------------------------------------------


def _gaussians(wl: np.ndarray, centres, sds, heights) -> np.ndarray:
    """Sum of Gaussian bumps ``Σ h_k exp(-½((λ-λ_k)/σ_k)²)`` evaluated at ``wl``."""
    wl = np.asarray(wl, float)[..., None]
    c, s, h = (np.asarray(v, float) for v in (centres, sds, heights))
    if c.size == 0:
        return np.zeros(wl.shape[:-1])
    return np.sum(h * np.exp(-0.5 * ((wl - c) / s) ** 2), axis=-1)


#: Continuum of the halite-like crust (nm, reflectance): bright and flat in the VNIR.
_HALITE_CONTINUUM = (
    (400.0, 500.0, 700.0, 1000.0, 1300.0, 1700.0, 2200.0, 2450.0),
    (0.74, 0.80, 0.84, 0.86, 0.85, 0.82, 0.78, 0.74),
)
#: Halite-like absorptions (centre nm, sd nm, relative depth): water in fluid inclusions.
_HALITE_BANDS = (
    (970.0, 15.0, 0.02),
    (1190.0, 20.0, 0.03),
    (1450.0, 30.0, 0.12),
    (1940.0, 35.0, 0.18),
)
#: Continuum of the gypsum-like crust.
_GYPSUM_CONTINUUM = (
    (400.0, 500.0, 700.0, 1000.0, 1300.0, 1700.0, 2200.0, 2450.0),
    (0.78, 0.84, 0.88, 0.88, 0.86, 0.82, 0.76, 0.66),
)
#: Gypsum-like absorptions (centre nm, sd nm, relative depth): structural water (CaSO4·2H2O).
_GYPSUM_BANDS = (
    (1000.0, 15.0, 0.03),
    (1445.0, 12.0, 0.10),
    (1490.0, 15.0, 0.14),
    (1535.0, 12.0, 0.08),
    (1750.0, 12.0, 0.08),
    (1940.0, 30.0, 0.30),
    (2215.0, 12.0, 0.07),
    (2265.0, 12.0, 0.06),
)


def _crust_component(wl: np.ndarray, continuum, bands) -> np.ndarray:
    cont = np.interp(wl, *continuum)
    depth = np.ones_like(cont)
    for centre, sd, d in bands:
        depth *= 1.0 - d * np.exp(-0.5 * ((wl - centre) / sd) ** 2)
    return cont * depth


def salt_crust_spectrum(
    wavelength_nm: np.ndarray, gypsum_share: float | np.ndarray = 0.0
) -> np.ndarray:
    """Reflectance of an efflorescent salt crust (SIMULATED: not a measured spectrum).

    No salt spectrum ships in earthlib, so the crust is built from a smooth continuum
    $C(\\lambda)$ times Gaussian absorptions:

    $$\\rho_{\\mathrm{crust}}(\\lambda) = (1-g)\\,\\rho_{\\mathrm{hal}}(\\lambda) + g\\,\\rho_{\\mathrm{gyp}}(\\lambda),
    \\qquad \\rho_{x}(\\lambda) = C_x(\\lambda)\\prod_k\\Big(1 - d_k\\,e^{-\\frac12((\\lambda-\\lambda_k)/\\sigma_k)^2}\\Big).$$

    *Halite-like* ($\\rho_{\\mathrm{hal}}$): bright (0.74-0.86) and flat in the VNIR, slightly
    darker in the SWIR, with weak water bands (fluid inclusions, adsorbed water) at 970, 1190,
    1450 and 1940 nm. *Gypsum-like* ($\\rho_{\\mathrm{gyp}}$): similar continuum, falling
    beyond 2200 nm, with the hydration triplet near 1445/1490/1535 nm and bands at 1750,
    1940 and 2215/2265 nm. Depths are weak on purpose (a crust on soil is a thin, dusty
    mixture); the values are documented assumptions (table in ``book/simulator_transfer.md``).

    Parameters
    ----------
    wavelength_nm
        Wavelengths (nm), shape (W,).
    gypsum_share
        $g$ in [0, 1], a scalar or one value per spectrum (shape (n,)).

    Returns
    -------
    ndarray
        Reflectance, shape (W,) for a scalar ``gypsum_share``, else (n, W).
    """
    wl = np.asarray(wavelength_nm, float)
    hal = _crust_component(wl, _HALITE_CONTINUUM, _HALITE_BANDS)
    gyp = _crust_component(wl, _GYPSUM_CONTINUUM, _GYPSUM_BANDS)
    g = np.asarray(gypsum_share, float)
    if np.any((g < 0) | (g > 1)):
        raise ValueError("gypsum_share must lie in [0, 1]")
    if g.ndim == 0:
        return (1.0 - g) * hal + g * gyp
    return (1.0 - g)[:, None] * hal[None, :] + g[:, None] * gyp[None, :]


def moisture_coefficient(
    wavelength_nm: np.ndarray, params: TransferParams | None = None
) -> np.ndarray:
    """The moisture-darkening coefficient $c(\\lambda)$ (per m³/m³).

    $$c(\\lambda) = c_{\\mathrm{VIS}} + \\frac{c_{\\mathrm{SWIR}} - c_{\\mathrm{VIS}}}
    {1 + e^{-(\\lambda - \\lambda_s)/w_s}} + \\sum_k a_k\\,e^{-\\frac12((\\lambda-\\lambda_k)/\\sigma_k)^2},$$

    a broadband part (darkening by water films that lower the refractive-index contrast,
    stronger in the SWIR) plus the liquid-water absorption bands at 970, 1200, 1450 and 1940 nm.
    """
    p = params or TransferParams()
    wl = np.asarray(wavelength_nm, float)
    broad = p.darkening_vis + (p.darkening_swir - p.darkening_vis) / (
        1.0 + np.exp(-(wl - p.darkening_step_nm) / p.darkening_step_width_nm)
    )
    return broad + _gaussians(wl, p.water_band_nm, p.water_band_sd_nm, p.water_band_strength)


def atmospheric_transmittance(
    wavelength_nm: np.ndarray, params: TransferParams | None = None
) -> np.ndarray:
    """An approximate two-way atmospheric transmittance shape $T(\\lambda)$ (0-1).

    $$T(\\lambda) = \\prod_k \\Big(1 - d_k\\,e^{-\\frac12((\\lambda-\\lambda_k)/\\sigma_k)^2}\\Big)$$

    with O₂-A (760 nm), water vapour (940, 1130, 1380, 1880 nm) and CO₂ (2010 nm). Not a
    radiative-transfer calculation: it only shapes the loss of SNR in absorption bands, where
    little light reaches the sensor.
    """
    p = params or TransferParams()
    wl = np.asarray(wavelength_nm, float)
    t = np.ones_like(wl)
    for centre, sd, d in zip(p.absorption_nm, p.absorption_sd_nm, p.absorption_depth, strict=True):
        t *= 1.0 - d * np.exp(-0.5 * ((wl - centre) / sd) ** 2)
    return t


def snr_curve(wavelength_nm: np.ndarray, params: TransferParams | None = None) -> np.ndarray:
    """Sensor signal-to-noise ratio $\\mathrm{SNR}(\\lambda) = \\mathrm{SNR}_0(\\lambda)\\,T(\\lambda)$.

    $\\mathrm{SNR}_0$ is interpolated linearly between ``params.snr_nodes`` (EnMAP-like:
    400 at 495 nm and 180 at 2200 nm, the reference values of Guanter et al. 2015; lower at the
    blue end, at the VNIR detector's red end near 950 nm and toward 2450 nm, where the solar
    irradiance and the detector response fall). $T$ is :func:`atmospheric_transmittance`.
    """
    p = params or TransferParams()
    wl = np.asarray(wavelength_nm, float)
    return np.interp(wl, p.snr_nodes_nm, p.snr_nodes) * atmospheric_transmittance(wl, p)


def water_vapour_mask(
    band_centres_nm: np.ndarray, windows_nm: Sequence[tuple[float, float]] | None = None
) -> np.ndarray:
    """Boolean mask of usable bands: False where the centre lies in a water-vapour window.

    Default windows: :attr:`TransferParams.water_vapour_windows_nm` (1330-1480 and 1780-1990 nm).
    """
    windows = TransferParams().water_vapour_windows_nm if windows_nm is None else windows_nm
    c = np.asarray(band_centres_nm, float)
    bad = np.zeros(c.shape, bool)
    for lo, hi in windows:
        bad |= (c >= lo) & (c <= hi)
    return ~bad


# -- salt --------------------------------------------------------------------------------------


def sample_ec(
    n: int,
    rng: np.random.Generator,
    median_dsm: float = EC_MEDIAN_DSM,
    log_sd: float = EC_LOG_SD,
    low_dsm: float = EC_MIN_DSM,
    high_dsm: float = EC_MAX_DSM,
) -> np.ndarray:
    """Draw ``n`` electrical conductivities (dS/m) from a truncated log-normal distribution.

    $$\\ln EC \\sim N(\\ln m, s^2)\\ \\text{truncated to}\\ [\\ln EC_{\\min}, \\ln EC_{\\max}],$$

    sampled exactly by the inverse CDF, $EC = m\\,\\exp\\big(s\\,\\Phi^{-1}(u)\\big)$ with
    $u \\sim U(\\Phi(z_{\\min}), \\Phi(z_{\\max}))$. The defaults (median 2.5 dS/m, $s = 1.3$,
    0.1-60 dS/m) give a right-skewed target: about half the samples non-saline (< 2.5 dS/m),
    ~7 % very strongly saline (> 16 dS/m).

    Returns
    -------
    ndarray, shape (n,), float64, dS/m
    """
    if not 0 < low_dsm < median_dsm < high_dsm or log_sd <= 0:
        raise ValueError(
            f"sample_ec needs 0 < low_dsm < median_dsm < high_dsm and log_sd > 0; got "
            f"low={low_dsm}, median={median_dsm}, high={high_dsm}, log_sd={log_sd}"
        )
    z_lo = np.log(low_dsm / median_dsm) / log_sd
    z_hi = np.log(high_dsm / median_dsm) / log_sd
    u = rng.uniform(special.ndtr(z_lo), special.ndtr(z_hi), int(n))
    ec = median_dsm * np.exp(log_sd * special.ndtri(u))
    return np.clip(ec, low_dsm, high_dsm)


def _spectrum_dim(da: xr.DataArray, name: str) -> str:
    if "wavelength" not in da.dims or da.ndim != 2:
        raise ValueError(
            f"{name} has dims {da.dims}; expected two dims: (spectrum, wavelength) with "
            "wavelength in nm (e.g. soilbook.data.spectra.load_library('soil'))"
        )
    wl = np.asarray(da["wavelength"].values, float)
    if wl.max() < 100.0:
        raise ValueError(
            f"{name}'s wavelengths run {wl.min()}-{wl.max()}: they look like µm. Expected nm "
            "(multiply the coordinate by 1000)."
        )
    return next(d for d in da.dims if d != "wavelength")


def add_salt(
    soil: xr.DataArray,
    ec_dsm: np.ndarray | float,
    rng: np.random.Generator,
    params: TransferParams | None = None,
) -> xr.DataArray:
    """Salt-affected soil spectra: real soil spectra mixed with a SIMULATED salt crust.

    For each spectrum $i$ with salinity $EC_i$ (dS/m):

    $$f_i = \\min\\!\\Big(\\big(1 - e^{-EC_i/EC_s}\\big)\\,e^{\\sigma_f\\epsilon_i - \\sigma_f^2/2},\\ f_{\\max}\\Big),\\qquad
    B_i = 1 + \\beta\\ln(1 + EC_i / 1\\,\\mathrm{dS\\,m^{-1}}),$$

    $$\\rho_i^{\\mathrm{salt}}(\\lambda) = (1 - f_i)\\,B_i\\,\\rho_i(\\lambda) + f_i\\,\\rho_{\\mathrm{crust}}(\\lambda; g_i),$$

    where $f_i$ is the areal fraction of efflorescent crust ($EC_s$ = ``ec_scale_dsm`` = 40 dS/m,
    patchiness $\\epsilon_i \\sim N(0,1)$ with $\\sigma_f$ = ``crust_fraction_sd``),
    $B_i$ a subtle brightening of the soil matrix by fine salt (β = 0.02: +8 % at 60 dS/m),
    and $\\rho_{\\mathrm{crust}}$ the halite/gypsum-like crust of :func:`salt_crust_spectrum`
    with gypsum share $g_i \\sim U(0, g_{\\max})$.

    Parameters
    ----------
    soil
        Real soil spectra, dims (spectrum, wavelength), wavelength in nm, reflectance 0-1.
    ec_dsm
        Salinity per spectrum (dS/m), shape (n,) or a scalar; e.g. from :func:`sample_ec`.
    rng
        Random generator (crust patchiness and gypsum share).
    params
        Settings; default :class:`TransferParams`.

    Returns
    -------
    xarray.DataArray
        Same dims and coordinates as ``soil`` (float32), plus per-spectrum coordinates ``ec``
        (dS/m), ``crust_fraction`` and ``gypsum_share``; ``attrs['simulated'] = True``.
    """
    p = params or TransferParams()
    dim = _spectrum_dim(soil, "soil")
    soil = soil.transpose(dim, "wavelength")
    n = soil.sizes[dim]
    ec = np.broadcast_to(np.asarray(ec_dsm, float), (n,)).copy()
    if np.any(~np.isfinite(ec)) or np.any(ec < 0):
        raise ValueError("ec_dsm must be finite and >= 0 (dS/m)")
    wl = np.asarray(soil["wavelength"].values, float)
    eps = rng.standard_normal(n)
    gypsum = rng.uniform(0.0, 1.0, n) * p.gypsum_share_max
    patch = np.exp(p.crust_fraction_sd * eps - 0.5 * p.crust_fraction_sd**2)
    frac = np.minimum((1.0 - np.exp(-ec / p.ec_scale_dsm)) * patch, p.crust_max)
    bright = 1.0 + p.brightening_per_log_ec * np.log1p(ec)
    crust = salt_crust_spectrum(wl, gypsum)
    values = soil.values.astype(np.float64)
    out = (1.0 - frac)[:, None] * bright[:, None] * values + frac[:, None] * crust
    result = soil.copy(data=out.astype(np.float32))
    result = result.assign_coords(
        ec=(dim, ec, {"units": "dS/m", "long_name": "electrical conductivity (simulated target)"}),
        crust_fraction=(dim, frac, {"units": "1", "long_name": "salt crust cover (latent)"}),
        gypsum_share=(dim, gypsum, {"units": "1", "long_name": "gypsum share of crust (latent)"}),
    )
    result.attrs = {
        **soil.attrs,
        "long_name": "salt-affected soil reflectance (real soil + SIMULATED salt crust)",
        "simulated": True,
        "salt_model": "soilbook.data.simulate.transfer.add_salt (book/simulator_transfer.md)",
    }
    return result


# -- the satellite domain ----------------------------------------------------------------------


def satellite_srf(
    sensor: spec.Sensor | xr.DataArray | None = None,
    *,
    band_centres_nm: np.ndarray | Sequence[float] | None = None,
    band_fwhm_nm: np.ndarray | Sequence[float] | None = None,
) -> xr.DataArray:
    """Spectral response functions (band, srf_wavelength) from a Sensor, an SRF or band arrays.

    ``sensor`` may be a :class:`soilbook.data.spectra.Sensor` (Gaussian responses from its
    centres and widths, :func:`soilbook.data.spectra.sensor_srf`) or an SRF DataArray as
    returned by :func:`~soilbook.data.spectra.sensor_srf` / ``sentinel2_srf`` (used as is).
    Otherwise give ``band_centres_nm`` and ``band_fwhm_nm`` (arrays, nm): the bands are named
    ``b001``, ``b002``, ... . The grid is :data:`soilbook.data.spectra.SRF_GRID_NM` (1 nm).
    """
    if isinstance(sensor, xr.DataArray):
        if set(sensor.dims) != {"band", "srf_wavelength"}:
            raise ValueError(f"an SRF needs dims (band, srf_wavelength); got {sensor.dims}")
        return sensor.transpose("band", "srf_wavelength")
    if isinstance(sensor, spec.Sensor):
        if band_centres_nm is not None or band_fwhm_nm is not None:
            raise ValueError("give either sensor or band_centres_nm/band_fwhm_nm, not both")
        return spec.sensor_srf(sensor)
    if sensor is not None:
        raise TypeError(f"sensor must be a Sensor or an SRF DataArray, not {type(sensor)}")
    if band_centres_nm is None or band_fwhm_nm is None:
        raise ValueError(
            "no sensor given: pass sensor=<Sensor> (e.g. the EnMAP table) or both "
            "band_centres_nm and band_fwhm_nm (arrays in nm)"
        )
    centres = np.asarray(band_centres_nm, float).ravel()
    fwhm = np.broadcast_to(np.asarray(band_fwhm_nm, float), centres.shape)
    names = tuple(f"b{i + 1:03d}" for i in range(centres.size))
    custom = spec.Sensor(
        name="custom (band arrays)",
        bands=names,
        centres_nm=tuple(centres.tolist()),
        widths_nm=tuple(fwhm.tolist()),
        resolution_m=(30.0,) * centres.size,
    )
    return spec.sensor_srf(custom)


#: Names of the per-spectrum latent factors returned by :func:`lab_to_satellite`.
LATENT_FACTORS = (
    "moisture",
    "f_soil",
    "f_gv",
    "f_npv",
    "canopy_index",
    "npv_index",
    "scale",
    "tilt",
    "shift_nm",
)


def _default_canopy(p: TransferParams) -> xr.DataArray:
    lib = spec.load_library("canopy")
    keep = np.flatnonzero(lib["lai"].values >= p.canopy_min_lai)
    if keep.size == 0:
        raise ValueError(f"no PROSAIL canopy spectrum has LAI >= {p.canopy_min_lai}")
    return lib.isel(spectrum=keep)


def _default_npv(p: TransferParams) -> xr.DataArray:
    lib = spec.load_library("npv")
    keep = np.flatnonzero(np.isin(lib["level_3"].values, list(p.npv_classes)))
    if keep.size == 0:
        raise ValueError(f"no NPV spectrum has level_3 in {p.npv_classes}")
    return lib.isel(spectrum=keep)


def _draw_factors(
    n: int, n_can: int, n_npv: int, rng: np.random.Generator, p: TransferParams, overrides
) -> dict[str, np.ndarray]:
    """All per-spectrum latent factors (each from its own child stream of ``rng``)."""
    r = rng.spawn(6)
    f = {
        "moisture": p.moisture_max * r[0].beta(*p.moisture_beta, n),
        "f_gv": p.gv_max * r[1].beta(*p.gv_beta, n),
        "f_npv": p.npv_max * r[1].beta(*p.npv_beta, n),
        "canopy_index": r[2].integers(0, n_can, n),
        "npv_index": r[2].integers(0, n_npv, n),
        "scale": p.illumination_median * np.exp(p.illumination_sd * r[3].standard_normal(n)),
        "tilt": p.tilt_sd * r[3].standard_normal(n),
        "shift_nm": np.clip(
            p.shift_sd_nm * r[4].standard_normal(n), -p.shift_max_nm, p.shift_max_nm
        ),
    }
    for key, value in (overrides or {}).items():
        if key not in f:
            raise ValueError(
                f"cannot override {key!r}; the factors that can be set are {sorted(f)}"
            )
        dtype = int if key.endswith("_index") else float
        f[key] = np.broadcast_to(np.asarray(value, dtype), (n,)).copy()
    f["f_soil"] = 1.0 - f["f_gv"] - f["f_npv"]
    if np.any(f["f_soil"] < -1e-12) or np.any(f["f_gv"] < 0) or np.any(f["f_npv"] < 0):
        raise ValueError("cover fractions must be >= 0 with f_gv + f_npv <= 1")
    if np.any((f["canopy_index"] < 0) | (f["canopy_index"] >= n_can)) or np.any(
        (f["npv_index"] < 0) | (f["npv_index"] >= n_npv)
    ):
        raise ValueError("canopy_index / npv_index out of range of the endmember pools")
    return {k: f[k] for k in LATENT_FACTORS} | {"_noise_rng": r[5]}


def _shift(values: np.ndarray, grid: np.ndarray, shift_nm: np.ndarray) -> np.ndarray:
    """``rho(λ - s)`` per row by linear interpolation on ``grid`` (edge values held)."""
    if not np.any(shift_nm):
        return values
    step = np.diff(grid)
    if np.allclose(step, step[0]):
        # rho(λ_j - s) = (1 - f) rho_{j+q} + f rho_{j+q+1}, q = floor(-s/Δ), f = -s/Δ - q;
        # rows that share q are slices of the edge-padded array (edge values held)
        u = -np.asarray(shift_nm, float) / step[0]
        q = np.floor(u).astype(np.int64)
        f = u - q
        pad = int(np.abs(q).max()) + 1
        padded = np.pad(values, ((0, 0), (pad, pad)), mode="edge")
        out = np.empty_like(values)
        size = grid.size
        for qq in np.unique(q):
            rows = np.flatnonzero(q == qq)
            block = padded[rows]
            left = block[:, pad + qq : pad + qq + size]
            right = block[:, pad + qq + 1 : pad + qq + 1 + size]
            out[rows] = left + f[rows, None] * (right - left)
        return out
    out = np.empty_like(values)  # irregular grid: one interpolation per row
    for i, s in enumerate(shift_nm):
        out[i] = np.interp(grid - s, grid, values[i]) if s else values[i]
    return out


@dataclass(frozen=True)
class _GridOperators:
    """Everything the per-spectrum steps need on the response functions' grid (g points, nm).

    ``*_interp`` are linear-interpolation matrices (g, W) from a library's wavelengths to the
    grid; ``canopy`` and ``npv`` the endmember pools on their own wavelengths (pool, W).
    """

    grid: np.ndarray  #: (g,) nm, strictly increasing
    lab_interp: np.ndarray  #: (g, W_lab)
    canopy: np.ndarray  #: (n_canopy, W_canopy)
    npv: np.ndarray  #: (n_npv, W_npv)
    canopy_interp: np.ndarray  #: (g, W_canopy)
    npv_interp: np.ndarray  #: (g, W_npv)
    same_grid: bool  #: canopy and NPV share wavelengths (one interpolation for both)
    moisture_coef: np.ndarray  #: (g,) darkening coefficient c(λ), per m³/m³
    tilt_shape: np.ndarray  #: (g,) (λ − λ0) / 1000 nm


def _srf_grid(srf: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """The SRF's wavelength grid (g,) nm and its weights (band, g) float64."""
    grid = np.asarray(srf["srf_wavelength"].values, float)
    weights = srf.values.astype(np.float64)  # (band, grid)
    if np.any(np.diff(grid) <= 0):
        raise ValueError("the SRF grid (srf_wavelength) must increase strictly")
    return grid, weights


def _grid_operators(
    lab: xr.DataArray,
    canopy: xr.DataArray,
    npv: xr.DataArray,
    grid: np.ndarray,
    p: TransferParams,
) -> _GridOperators:
    """Interpolation matrices and per-wavelength curves of the steps, on ``grid``."""
    return _GridOperators(
        grid=grid,
        lab_interp=spec.interpolation_matrix(lab["wavelength"].values, grid),
        canopy=canopy.transpose(..., "wavelength").values.astype(np.float64),
        npv=npv.transpose(..., "wavelength").values.astype(np.float64),
        canopy_interp=spec.interpolation_matrix(canopy["wavelength"].values, grid),
        npv_interp=spec.interpolation_matrix(npv["wavelength"].values, grid),
        same_grid=np.array_equal(canopy["wavelength"].values, npv["wavelength"].values),
        moisture_coef=moisture_coefficient(grid, p),
        tilt_shape=(grid - p.tilt_ref_nm) / 1000.0,
    )


def _darken_by_moisture(rho: np.ndarray, theta: np.ndarray, ops: _GridOperators) -> np.ndarray:
    """Step 1: ``rho · exp(−c(λ) θ)`` (in place) for rows ``rho`` (n, g) and moisture θ (n,)."""
    if np.any(theta):
        rho *= np.exp(-np.outer(theta, ops.moisture_coef))
    return rho


def _mix_cover(
    rho: np.ndarray, factors: Mapping[str, np.ndarray], sl: slice, ops: _GridOperators
) -> np.ndarray:
    """Step 2: soil, green-vegetation and NPV linear mixture of rows ``sl``, (n, g)."""
    fs, fg, fn = factors["f_soil"][sl], factors["f_gv"][sl], factors["f_npv"][sl]
    if not (np.any(fg) or np.any(fn) or np.any(fs != 1.0)):
        return rho
    veg = fg[:, None] * ops.canopy[factors["canopy_index"][sl]]
    npv = fn[:, None] * ops.npv[factors["npv_index"][sl]]
    if ops.same_grid:  # one interpolation for both endmembers
        veg = (veg + npv) @ ops.canopy_interp.T
    else:
        veg = veg @ ops.canopy_interp.T + npv @ ops.npv_interp.T
    return fs[:, None] * rho + veg


def _illuminate(
    rho: np.ndarray, scale: np.ndarray, tilt: np.ndarray, ops: _GridOperators
) -> np.ndarray:
    """Step 3: ``a (1 + t (λ − λ0) / 1000 nm) · rho`` (in place); ``scale``, ``tilt`` (n,)."""
    if np.any(scale != 1.0) or np.any(tilt):
        rho *= scale[:, None] * (1.0 + tilt[:, None] * ops.tilt_shape[None, :])
    return rho


def _surface_in_bands(
    lab_vals: np.ndarray,
    factors: Mapping[str, np.ndarray],
    ops: _GridOperators,
    weights: np.ndarray,
    chunk_size: int,
) -> np.ndarray:
    """Steps 1–5 for every spectrum, ``chunk_size`` rows at a time: reflectance (n, band).

    ``lab_vals`` (n, W_lab) are the lab spectra, ``weights`` (band, g) the response functions.
    """
    n = lab_vals.shape[0]
    out = np.empty((n, weights.shape[0]), np.float64)
    for start in range(0, n, max(int(chunk_size), 1)):
        sl = slice(start, min(start + chunk_size, n))
        rho = lab_vals[sl] @ ops.lab_interp.T
        rho = _darken_by_moisture(rho, factors["moisture"][sl], ops)
        rho = _mix_cover(rho, factors, sl, ops)
        rho = _illuminate(rho, factors["scale"][sl], factors["tilt"][sl], ops)
        rho = _shift(rho, ops.grid, factors["shift_nm"][sl])  # step 4
        out[sl] = rho @ weights.T  # step 5
    return out


def _add_sensor_noise(
    out: np.ndarray, snr: np.ndarray, p: TransferParams, rng: np.random.Generator
) -> np.ndarray:
    """Step 6: ``rho (1 + k ε / SNR_b)`` (in place), then clipped to ``[0, clip_max]``.

    ``out`` (n, band), ``snr`` (band,). ε is drawn even when ``noise_scale`` is 0, so the draws
    do not depend on the setting.
    """
    eps = rng.standard_normal(out.shape)
    if p.noise_scale:
        out *= 1.0 + p.noise_scale * eps / snr[None, :]
    return np.clip(out, 0.0, p.clip_max)


def _usable_bands(
    centres: np.ndarray, band_mask: np.ndarray | None, p: TransferParams
) -> np.ndarray:
    """Step 7: True per band outside the water-vapour windows (or the given ``band_mask``)."""
    usable = (
        water_vapour_mask(centres, p.water_vapour_windows_nm) if band_mask is None else band_mask
    )
    usable = np.asarray(usable, bool)
    if usable.shape != centres.shape:
        raise ValueError(
            f"band_mask has shape {usable.shape}; expected ({centres.size},), one per band"
        )
    return usable


def _satellite_array(
    values: np.ndarray,
    lab: xr.DataArray,
    dim: str,
    srf: xr.DataArray,
    weights: np.ndarray,
    grid: np.ndarray,
    snr: np.ndarray,
    usable: np.ndarray,
    p: TransferParams,
) -> xr.DataArray:
    """The reflectance (spectrum, band) float32 with band coordinates and provenance attributes."""
    centres = np.asarray(srf["wavelength"].values, float)
    fwhm = _srf_fwhm(weights, grid, centres)
    coords: dict[str, Any] = {k: v for k, v in lab.coords.items() if "wavelength" not in v.dims}
    coords["band"] = srf["band"].values
    coords["wavelength"] = ("band", centres, {"units": "nm", "long_name": "band centre"})
    coords["fwhm"] = ("band", fwhm, {"units": "nm", "long_name": "band FWHM (Gaussian equivalent)"})
    coords["snr"] = ("band", snr, {"units": "1", "long_name": "signal-to-noise ratio"})
    coords["usable"] = ("band", usable, {"long_name": "outside the water-vapour windows"})
    return xr.DataArray(
        values.astype(np.float32),
        dims=(dim, "band"),
        coords=coords,
        name="reflectance",
        attrs={
            "units": "1",
            "long_name": "satellite surface reflectance (SIMULATED from lab spectra)",
            "simulated": True,
            "source": "soilbook simulator (lab to satellite)",
            "licence": "CC0-1.0 (generated)",
            "citation": CITATION,
            "sensor": srf.attrs.get("sensor", ""),
            "srf": srf.attrs.get("kind", ""),
            **p.as_attrs(),
        },
    )


def lab_to_satellite(
    lab: xr.DataArray,
    rng: np.random.Generator,
    params: TransferParams | None = None,
    *,
    sensor: spec.Sensor | xr.DataArray | None = None,
    band_centres_nm: np.ndarray | Sequence[float] | None = None,
    band_fwhm_nm: np.ndarray | Sequence[float] | None = None,
    canopy: xr.DataArray | None = None,
    npv: xr.DataArray | None = None,
    band_mask: np.ndarray | None = None,
    drop: bool = False,
    overrides: Mapping[str, Any] | None = None,
    chunk_size: int = 1024,
) -> tuple[xr.DataArray, dict[str, np.ndarray]]:
    """What a hyperspectral satellite would see of the soil behind each lab spectrum (SIMULATED).

    Per spectrum $i$, on the response functions' 1 nm grid ($\\rho_i$ = lab spectrum
    interpolated linearly, bridging the library's water-vapour gaps):

    1. moisture: $\\rho^{(a)} = \\rho_i\\,e^{-c(\\lambda)\\theta_i}$ (:func:`moisture_coefficient`),
       $\\theta_i = \\theta_{\\max}\\,\\mathrm{Beta}(a, b)$ (m³/m³ above air-dry);
    2. cover: $\\rho^{(b)} = f_{s,i}\\rho^{(a)} + f_{gv,i}\\rho_{gv,k(i)} + f_{npv,i}\\rho_{npv,l(i)}$,
       $f_{gv} = f^{\\max}_{gv}\\mathrm{Beta}$, $f_{npv} = f^{\\max}_{npv}\\mathrm{Beta}$,
       $f_s = 1 - f_{gv} - f_{npv}$; endmembers drawn uniformly from the pools;
    3. illumination / BRDF: $\\rho^{(c)} = a_i\\,(1 + t_i(\\lambda - \\lambda_0)/1000\\,\\mathrm{nm})\\,\\rho^{(b)}$,
       $\\ln a_i \\sim N(\\ln a_{50}, \\sigma_a^2)$, $t_i \\sim N(0, \\sigma_t^2)$;
    4. spectral shift: $\\rho^{(d)}(\\lambda) = \\rho^{(c)}(\\lambda - s_i)$, $s_i \\sim N(0, \\sigma_s^2)$
       clipped to $\\pm s_{\\max}$ (features move by $+s_i$ nm);
    5. sensor bands: $\\rho_{ib} = \\sum_\\lambda w_b(\\lambda)\\rho^{(d)}(\\lambda)$, Gaussian
       $w_b$ (:func:`soilbook.data.spectra.gaussian_srf`);
    6. noise: $\\tilde\\rho_{ib} = \\rho_{ib}\\,(1 + k\\,\\epsilon_{ib}/\\mathrm{SNR}_b)$,
       $\\epsilon \\sim N(0,1)$, $\\mathrm{SNR}_b = \\sum_\\lambda w_b\\,\\mathrm{SNR}_0\\,T$
       (:func:`snr_curve`), so the noise sd is $\\rho_{ib}/\\mathrm{SNR}_b$; then clipped to
       $[0, 1.2]$;
    7. water-vapour bands: flagged in the ``usable`` coordinate; removed only with ``drop=True``
       (in the DeepSalt pipeline they are dropped later, after the data are assembled).

    Parameters
    ----------
    lab
        Lab reflectance, dims (spectrum, wavelength) (any name for the first dim), nm, 0-1.
    rng
        Random generator; the same generator state gives the same pixels.
    params
        Settings; default :class:`TransferParams`. :meth:`TransferParams.identity` switches all
        perturbations off (the result is then ``spectra.resample(lab, srf)``).
    sensor, band_centres_nm, band_fwhm_nm
        The sensor: a :class:`~soilbook.data.spectra.Sensor`, an SRF DataArray, or band centres
        and FWHM arrays in nm (see :func:`satellite_srf`).
    canopy, npv
        Green-vegetation and non-photosynthetic-vegetation endmember pools (spectrum,
        wavelength); default earthlib's PROSAIL canopies with LAI >= 3 and NPV litter/npv.
    band_mask
        Boolean per band, True = usable; default :func:`water_vapour_mask` of the band centres.
    drop
        Remove the bands that are not usable.
    overrides
        Fix latent factors instead of drawing them, e.g. ``{"moisture": 0.2, "f_gv": 0.0}``
        (scalar or one value per spectrum; keys as in :data:`LATENT_FACTORS` except ``f_soil``).
        The random draws still happen, so the other factors do not change.
    chunk_size
        Spectra processed at a time (memory: about 5 × chunk_size × 2,251 float64).

    Returns
    -------
    (xarray.DataArray, dict)
        Reflectance with dims (spectrum, band) (float32; coordinates ``band``, ``wavelength``
        (band centre, nm), ``fwhm``, ``snr``, ``usable`` and the lab's per-spectrum coordinates),
        and the latent factors: ``moisture`` (m³/m³), ``f_soil``, ``f_gv``, ``f_npv``,
        ``canopy_index``, ``npv_index`` (rows of the pools), ``scale``, ``tilt`` (per 1000 nm),
        ``shift_nm``; each an array of shape (spectrum,).
    """
    p = params or TransferParams()
    dim = _spectrum_dim(lab, "lab")
    lab = lab.transpose(dim, "wavelength")
    srf = satellite_srf(sensor, band_centres_nm=band_centres_nm, band_fwhm_nm=band_fwhm_nm)
    grid, weights = _srf_grid(srf)
    canopy = _default_canopy(p) if canopy is None else canopy
    npv = _default_npv(p) if npv is None else npv
    _spectrum_dim(canopy, "canopy")
    _spectrum_dim(npv, "npv")

    factors = _draw_factors(lab.sizes[dim], canopy.shape[0], npv.shape[0], rng, p, overrides)
    noise_rng = factors.pop("_noise_rng")
    ops = _grid_operators(lab, canopy, npv, grid, p)
    surface = _surface_in_bands(lab.values.astype(np.float64), factors, ops, weights, chunk_size)
    snr = weights @ snr_curve(grid, p)
    out = _add_sensor_noise(surface, snr, p, noise_rng)
    usable = _usable_bands(np.asarray(srf["wavelength"].values, float), band_mask, p)
    result = _satellite_array(out, lab, dim, srf, weights, grid, snr, usable, p)
    if drop:
        result = result.isel(band=np.flatnonzero(usable))
    return result, factors


def _srf_fwhm(weights: np.ndarray, grid: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The FWHM (nm) of a Gaussian with the same second moment as each response function."""
    var = np.sum(weights * (grid[None, :] - centres[:, None]) ** 2, axis=1)
    return np.sqrt(var) * 2.0 * np.sqrt(2.0 * np.log(2.0))


def simulate_satellite_pixels(
    lab: xr.DataArray,
    n_per_spectrum: int,
    rng: np.random.Generator,
    params: TransferParams | None = None,
    **kwargs: Any,
) -> tuple[xr.DataArray, dict[str, np.ndarray]]:
    """Several SIMULATED satellite pixels per lab spectrum: the unlabelled pixels around a site.

    Each lab spectrum $i$ (a site) gives ``n_per_spectrum`` pixels $j$. The pixel's soil is the
    site's soil mixed with a randomly chosen other lab spectrum $m(j)$ (soil heterogeneity
    within a site),

    $$\\rho_{ij} = (1 - h_{ij})\\,\\rho_i + h_{ij}\\,\\rho_{m(j)},\\qquad h_{ij} \\sim U(0, h_{\\max}),$$

    and then goes through :func:`lab_to_satellite` with its own moisture, cover, illumination,
    shift and noise. Pixel positions are uniform in a disc of radius ``site_radius_m`` around
    the site: $\\Delta\\phi = \\Delta y / 111{,}320$ m, $\\Delta\\lambda = \\Delta x /
    (111{,}320\\cos\\phi)$ m (degrees).

    Parameters
    ----------
    lab
        Lab spectra (spectrum, wavelength).
    n_per_spectrum
        Pixels per lab spectrum.
    rng, params
        As in :func:`lab_to_satellite`.
    **kwargs
        Passed on to :func:`lab_to_satellite` (``sensor`` or ``band_centres_nm`` /
        ``band_fwhm_nm``, ``canopy``, ``npv``, ``band_mask``, ``drop``, ``overrides``, ...).

    Returns
    -------
    (xarray.DataArray, dict)
        Reflectance (spectrum, band) with ``n × n_per_spectrum`` rows in site order, and the
        coordinates ``site`` (row of ``lab``), ``pixel_in_site``, the lab's coordinates repeated
        (site values; ``lat``/``lon`` moved to the pixel's position), ``dx_m``/``dy_m``; the
        latent factors include ``site``, ``neighbour_index`` and ``neighbour_fraction``.
    """
    p = params or TransferParams()
    dim = _spectrum_dim(lab, "lab")
    lab = lab.transpose(dim, "wavelength")
    n, k = lab.sizes[dim], int(n_per_spectrum)
    if k < 1:
        raise ValueError(f"n_per_spectrum must be >= 1, got {n_per_spectrum}")
    r_mix, r_pos, r_sat = rng.spawn(3)
    site = np.repeat(np.arange(n), k)
    neighbour = r_mix.integers(0, n, n * k)
    h = r_mix.uniform(0.0, 1.0, n * k) * p.site_soil_mix_max
    values = lab.values.astype(np.float64)
    mixed = (1.0 - h)[:, None] * values[site] + h[:, None] * values[neighbour]
    radius = p.site_radius_m * np.sqrt(r_pos.uniform(0.0, 1.0, n * k))
    angle = r_pos.uniform(0.0, 2.0 * np.pi, n * k)
    dx, dy = radius * np.cos(angle), radius * np.sin(angle)

    pixels = lab.isel({dim: site}).copy(data=mixed.astype(np.float32))
    pixels = pixels.assign_coords(
        site=(dim, site, {"long_name": "row of the lab spectrum (site)"}),
        pixel_in_site=(dim, np.tile(np.arange(k), n)),
        dx_m=(dim, dx, {"units": "m", "long_name": "easting offset from the site"}),
        dy_m=(dim, dy, {"units": "m", "long_name": "northing offset from the site"}),
    )
    if "lat" in pixels.coords and "lon" in pixels.coords:
        lat = pixels["lat"].values.astype(float)
        lon = pixels["lon"].values.astype(float)
        new_lat = lat + dy / 111_320.0
        new_lon = lon + dx / (111_320.0 * np.cos(np.radians(lat)))
        pixels = pixels.assign_coords(
            lat=(dim, new_lat, dict(lab["lat"].attrs)), lon=(dim, new_lon, dict(lab["lon"].attrs))
        )
    result, factors = lab_to_satellite(pixels, r_sat, p, **kwargs)
    result.attrs["n_per_spectrum"] = k
    factors.update(site=site, neighbour_index=neighbour, neighbour_fraction=h)
    return result, factors
