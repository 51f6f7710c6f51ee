"""Real spectral libraries and sensor resampling.

The simulators build their reflectance from **measured and modelled spectra**, not from invented
curves. The spectra come from the spectral library bundled with the ``earthlib`` package
(C. Anderson, MIT licence, https://github.com/earth-chris/earthlib):

``soil``
    4,168 laboratory reflectance spectra of the ICRAF-ISRIC world soil spectral library
    (Shepherd & Walsh 2002; ICRAF-ISRIC 2010), with the latitude/longitude of the profile.
``canopy``
    2,000 canopy reflectance spectra modelled with PROSAIL (PROSPECT + SAIL; Jacquemoud et al.
    2009); leaf area index, leaf mass per area, chlorophyll and the leaf structure parameter are
    encoded in each spectrum's name (``v-LAI-3.9-LMA-0.011-CHL-11.5-N-2.0``) and parsed into
    coordinates.
``npv``
    104 non-photosynthetic vegetation spectra (litter, bark, wood, crop residue).

The library is read directly with numpy (an ENVI spectral library: float32, little endian,
7,261 spectra × 180 wavelengths), so importing ``earthlib`` itself (which pulls in ``loguru`` and
``spectral``) is not needed. The wavelengths run from 400 to 2450 nm in 10 nm steps, **except the
atmospheric water-vapour bands 1360–1450 nm and 1800–1950 nm, which the library leaves out**.
:func:`resample` interpolates linearly across these gaps (and holds the edge value beyond
400/2450 nm); no Sentinel-2 band lies inside a gap, so the effect on Sentinel-2 bands is nil.

Sensors are described by a small :class:`Sensor` record (band names, centres, widths, pixel
sizes), so that other sensors (EnMAP, Landsat) plug into the same :func:`gaussian_srf` /
:func:`resample` code. :data:`SENTINEL2` is the Sentinel-2A MSI table.

Hyperspectral sensors: :func:`enmap_sensor` (224 bands) and :func:`prisma_sensor` (233) read
their band centres and FWHM from tables **packaged with soilbook**
(:mod:`soilbook.data.sensors`, copied from the EnMAP-Box response files), so the default
Gaussian responses need no download; :func:`enmap_srf` / :func:`prisma_srf` give those Gaussian
or the exact tabulated (:func:`srf_from_enmapbox`, fetched through the registry) response
functions for :func:`resample`, and :func:`usable_bands` drops the water-vapour bands
(:data:`WATER_VAPOUR_NM`) and bands outside the lab spectra's range. The Sentinel-2 centres and
bandwidths come from a packaged table too (:func:`sentinel2_centres_nm`).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.sensors import band_table

LibraryKind = Literal["soil", "canopy", "npv"]

#: Where the library comes from, for ``attrs`` of everything built from it.
LIBRARY_CITATION = (
    "Anderson, C. earthlib: a global spectral library for satellite land cover mapping "
    "(MIT licence), https://github.com/earth-chris/earthlib. Soil spectra: ICRAF-ISRIC (2010) "
    "A globally distributed soil spectral library visible near infrared diffuse reflectance "
    "spectra; Shepherd & Walsh (2002) Soil Sci. Soc. Am. J. 66:988-998. Canopy spectra: "
    "PROSAIL, Jacquemoud et al. (2009) Remote Sens. Environ. 113:S56-S66."
)
LIBRARY_LICENCE = "MIT (earthlib)"

_N_SPECTRA = 7261
_N_WAVELENGTHS = 180


# -- the library -------------------------------------------------------------------------------


def _earthlib_data_dir() -> Path:
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The earthlib package (its bundled spectral library) is not installed. "
            "Expected: `pip install earthlib` (MIT licence; it is a soilbook dependency). "
            "What to do: run `make install` or `pip install earthlib>=1.1`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _parse_hdr_list(text: str, key: str) -> list[str]:
    match = re.search(rf"^{re.escape(key)}\s*=\s*\{{(.*?)\}}", text, re.S | re.M)
    if match is None:
        raise ValueError(f"the ENVI header has no '{key}' list")
    return [item.strip() for item in match.group(1).split(",")]


@functools.lru_cache(maxsize=1)
def _read_library() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """All 7,261 spectra (read-only float32), wavelengths in nm and the metadata table."""
    root = _earthlib_data_dir()
    header = (root / "spectra.sli.hdr").read_text()
    wavelengths_um = np.array([float(v) for v in _parse_hdr_list(header, "wavelength")])
    names = _parse_hdr_list(header, "spectra names")
    n_samples = int(re.search(r"^samples\s*=\s*(\d+)", header, re.M).group(1))
    n_lines = int(re.search(r"^lines\s*=\s*(\d+)", header, re.M).group(1))
    data = np.fromfile(root / "spectra.sli", dtype="<f4")
    if data.size != n_samples * n_lines or n_samples != wavelengths_um.size:
        raise ValueError(
            f"earthlib's spectra.sli has {data.size} values; expected {n_lines} spectra × "
            f"{n_samples} wavelengths. Reinstall earthlib (pip install --force-reinstall earthlib)."
        )
    data = data.reshape(n_lines, n_samples)
    meta = pd.read_csv(root / "spectra.csv")
    # The header and the table agree row by row (one name differs in spelling in earthlib
    # 1.1.0: 'burncham' vs 'burnedcham'); refuse anything that looks like a different order.
    same = np.mean([a == str(b) for a, b in zip(names, meta["NAME"], strict=False)])
    if len(meta) != n_lines or len(names) != n_lines or same < 0.99:
        raise ValueError(
            "earthlib's spectra.csv does not match spectra.sli.hdr (row count or names differ). "
            "Reinstall earthlib (pip install --force-reinstall earthlib>=1.1)."
        )
    data.flags.writeable = False
    wavelengths = np.round(wavelengths_um * 1000.0, 3)
    wavelengths.flags.writeable = False
    return data, wavelengths, meta


_PROSAIL_NAME = re.compile(
    r"LAI-(?P<lai>[\d.]+(?:e[+-]?\d+)?)-LMA-(?P<lma>[\d.]+)-CHL-(?P<chl>[\d.]+)-N-(?P<n>[\d.]+)"
)


@functools.lru_cache(maxsize=3)
def _load_library_cached(kind: str) -> xr.DataArray:
    data, wavelengths, meta = _read_library()
    if kind == "soil":
        mask = (meta["SOURCE"] == "icraf-isric-soil-database").to_numpy()
    elif kind == "canopy":
        mask = (meta["SOURCE"] == "prosail").to_numpy()
    elif kind == "npv":
        mask = (meta["LEVEL_2"] == "npv").to_numpy()
    else:
        raise ValueError(f"kind={kind!r} is not a library; expected one of 'soil', 'canopy', 'npv'")
    sub = meta.loc[mask].reset_index(drop=True)
    coords: dict[str, tuple] = {
        "label": ("spectrum", sub["NAME"].astype(str).to_numpy()),
        "wavelength": ("wavelength", np.array(wavelengths), {"units": "nm"}),
        "level_3": ("spectrum", sub["LEVEL_3"].astype(str).to_numpy()),
    }
    if kind == "soil":
        coords["lat"] = ("spectrum", sub["LAT"].to_numpy(float), {"units": "degrees_north"})
        coords["lon"] = ("spectrum", sub["LON"].to_numpy(float), {"units": "degrees_east"})
    if kind == "canopy":
        parsed = sub["NAME"].str.extract(_PROSAIL_NAME).astype(float)
        coords["lai"] = ("spectrum", parsed["lai"].to_numpy(), {"units": "m2/m2"})
        coords["lma"] = ("spectrum", parsed["lma"].to_numpy(), {"units": "g/cm2"})
        coords["chl"] = ("spectrum", parsed["chl"].to_numpy(), {"units": "ug/cm2"})
        coords["leaf_n"] = ("spectrum", parsed["n"].to_numpy(), {"units": "1"})
    values = np.array(data[mask])
    values.flags.writeable = False
    da = xr.DataArray(
        values,
        dims=("spectrum", "wavelength"),
        coords=coords,
        name="reflectance",
        attrs={
            "units": "1",
            "long_name": f"{kind} reflectance (earthlib library)",
            "source": "earthlib spectral library",
            "licence": LIBRARY_LICENCE,
            "citation": LIBRARY_CITATION,
            "note": "water-vapour bands 1360-1450 nm and 1800-1950 nm are absent",
        },
    )
    # the cache hands out shallow copies: make every array read-only so no caller can alter it
    da.variable.values.flags.writeable = False
    for name in da.coords:
        if name != "wavelength":
            da.coords[name].variable.values.flags.writeable = False
    return da


def load_library(kind: LibraryKind) -> xr.DataArray:
    """Real reflectance spectra from earthlib's bundled library.

    Parameters
    ----------
    kind
        ``"soil"`` (4,168 measured ICRAF-ISRIC soil spectra, with ``lat``/``lon`` coordinates,
        NaN for the 103 spectra without a location),
        ``"canopy"`` (2,000 PROSAIL canopy spectra, with ``lai``, ``lma``, ``chl``, ``leaf_n``
        coordinates parsed from their names) or ``"npv"`` (104 non-photosynthetic vegetation
        spectra).

    Returns
    -------
    xarray.DataArray, dims ``(spectrum, wavelength)``
        Reflectance (0-1, float32); ``wavelength`` in nm (400-2450 nm, 10 nm steps, without
        1360-1450 and 1800-1950 nm). The values are read-only (cached); ``.copy()`` to edit.
    """
    return _load_library_cached(kind).copy(deep=False)


# -- sensors and spectral response functions ---------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    """A multispectral sensor as a band table.

    Attributes
    ----------
    name
        Sensor name, e.g. ``"Sentinel-2A MSI"``.
    bands
        Band names in order.
    centres_nm
        Band centre wavelengths (nm).
    widths_nm
        Band widths (nm); used as the full width at half maximum of a Gaussian response.
    resolution_m
        Native pixel size of each band (m).
    """

    name: str
    bands: tuple[str, ...]
    centres_nm: tuple[float, ...]
    widths_nm: tuple[float, ...]
    resolution_m: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.bands)
        if not (len(self.centres_nm) == len(self.widths_nm) == len(self.resolution_m) == n):
            raise ValueError(
                f"{self.name}: band, centre, width and resolution lists differ in length"
            )

    def table(self) -> pd.DataFrame:
        """The band table as a DataFrame (one row per band)."""
        return pd.DataFrame(
            {
                "band": self.bands,
                "centre_nm": self.centres_nm,
                "width_nm": self.widths_nm,
                "resolution_m": self.resolution_m,
            }
        )

    def select(self, bands: list[str] | tuple[str, ...]) -> Sensor:
        """The same sensor restricted to ``bands`` (in the order given)."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ValueError(f"{self.name} has no band(s) {missing}; it has {list(self.bands)}")
        idx = [self.bands.index(b) for b in bands]
        return Sensor(
            self.name,
            tuple(self.bands[i] for i in idx),
            tuple(self.centres_nm[i] for i in idx),
            tuple(self.widths_nm[i] for i in idx),
            tuple(self.resolution_m[i] for i in idx),
        )


def sentinel2_centres_nm(unit: Literal["A", "B", "mean"] = "A") -> dict[str, float]:
    """Central wavelengths (nm) of the 13 Sentinel-2 MSI bands, ``{"B1": 442.7, ...}``.

    From the packaged table ``sentinel2_msi`` (:mod:`soilbook.data.sensors`): the
    response-weighted centroid of ESA's spectral response functions v3.0, rounded to 0.1 nm,
    for Sentinel-2A (``"A"``) or 2B (``"B"``); ``"mean"`` is the mean of the two, rounded half
    up to 0.1 nm (for products that mix both satellites).
    """
    if unit not in ("A", "B", "mean"):
        raise ValueError(f"unit={unit!r}; expected 'A', 'B' or 'mean'")
    table = band_table("sentinel2_msi")
    if unit == "mean":
        a, b = sentinel2_centres_nm("A"), sentinel2_centres_nm("B")
        tenth = Decimal("0.1")
        return {
            k: float(
                ((Decimal(repr(a[k])) + Decimal(repr(b[k]))) / 2).quantize(tenth, ROUND_HALF_UP)
            )
            for k in a
        }
    column = table[f"centre_s2{unit.lower()}_nm"]
    return {band: float(v) for band, v in zip(table.bands, column, strict=True)}


def _sentinel2_sensor(bands: tuple[str, ...]) -> Sensor:
    table = band_table("sentinel2_msi")
    idx = [table.bands.index(b) for b in bands]
    return Sensor(
        name="Sentinel-2A MSI",
        bands=bands,
        centres_nm=tuple(float(table["centre_s2a_nm"][i]) for i in idx),
        widths_nm=tuple(float(table["bandwidth_s2a_nm"][i]) for i in idx),
        resolution_m=tuple(float(table["resolution_m"][i]) for i in idx),
    )


#: Sentinel-2A MSI, the ten land bands used for surface-reflectance work (B1 aerosol, B9 water
#: vapour and B10 cirrus are left out). Central wavelengths (the centroids of ESA's S2A
#: response functions v3.0) and bandwidths (nm) as published by ESA for S2A, from the packaged
#: table ``sentinel2_msi`` (:mod:`soilbook.data.sensors`).
SENTINEL2 = _sentinel2_sensor(("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"))
#: The Sentinel-2 band table as a DataFrame (band, centre_nm, width_nm, resolution_m).
SENTINEL2_BANDS = SENTINEL2.table()

#: The wavelength grid (nm, 1 nm steps) on which response functions are tabulated.
SRF_GRID_NM = np.arange(350.0, 2601.0, 1.0)


def gaussian_srf(
    centres_nm: np.ndarray | list[float] | tuple[float, ...],
    fwhm_nm: np.ndarray | list[float] | tuple[float, ...],
    wavelengths_nm: np.ndarray | None = None,
) -> np.ndarray:
    """Gaussian spectral response functions, each normalised to sum to one.

    $$w_b(\\lambda) \\propto \\exp\\left(-\\frac{(\\lambda-c_b)^2}{2\\sigma_b^2}\\right),\\quad
    \\sigma_b = \\frac{\\mathrm{FWHM}_b}{2\\sqrt{2\\ln 2}},\\quad \\sum_\\lambda w_b(\\lambda) = 1.$$

    Parameters
    ----------
    centres_nm, fwhm_nm
        Band centres and full widths at half maximum (nm), one per band.
    wavelengths_nm
        The grid (nm); default :data:`SRF_GRID_NM` (350-2600 nm, 1 nm).

    Returns
    -------
    ndarray, shape (band, wavelength)
        Weights; each row sums to 1 (a weighted mean over the grid).
    """
    grid = SRF_GRID_NM if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
    centres = np.asarray(centres_nm, float)[:, None]
    sigma = np.asarray(fwhm_nm, float)[:, None] / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    if np.any(sigma <= 0):
        raise ValueError("every FWHM must be positive")
    w = np.exp(-0.5 * ((grid[None, :] - centres) / sigma) ** 2)
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("a band lies outside the wavelength grid; widen wavelengths_nm")
    return w / total


def _srf_array(weights: np.ndarray, grid: np.ndarray, sensor: Sensor, kind: str) -> xr.DataArray:
    return xr.DataArray(
        weights,
        dims=("band", "srf_wavelength"),
        coords={
            "band": list(sensor.bands),
            "wavelength": (
                "band",
                np.array(sensor.centres_nm),
                {"units": "nm", "long_name": "band centre"},
            ),
            "srf_wavelength": ("srf_wavelength", grid, {"units": "nm"}),
        },
        name="srf",
        attrs={
            "units": "1/nm",
            "long_name": f"{sensor.name} spectral response ({kind})",
            "sensor": sensor.name,
            "kind": kind,
        },
    )


def sensor_srf(sensor: Sensor, wavelengths_nm: np.ndarray | None = None) -> xr.DataArray:
    """Gaussian response functions of any :class:`Sensor` as a DataArray (band, srf_wavelength)."""
    grid = SRF_GRID_NM if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
    return _srf_array(
        gaussian_srf(sensor.centres_nm, sensor.widths_nm, grid), grid, sensor, "gaussian"
    )


@functools.lru_cache(maxsize=2)
def _esa_srf(name: str) -> tuple[np.ndarray, np.ndarray]:
    from soilbook.data.registry import fetch  # lazy: the registry may download

    table = pd.read_csv(fetch(name))
    grid = table["SR_WL"].to_numpy(float)
    columns = []
    for band in SENTINEL2.bands:
        col = [c for c in table.columns if c.endswith(f"_{band}")]
        if len(col) != 1:
            raise ValueError(
                f"the ESA SRF table has no single column for {band}: {list(table.columns)}"
            )
        columns.append(table[col[0]].to_numpy(float))
    weights = np.clip(np.stack(columns), 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.flags.writeable = False
    return weights, grid


def sentinel2_srf(source: Literal["gaussian", "esa"] = "gaussian") -> xr.DataArray:
    """Sentinel-2A spectral response functions of the ten land bands.

    Parameters
    ----------
    source
        ``"gaussian"``: Gaussian curves from the published centres and bandwidths of
        :data:`SENTINEL2` (offline, the default). ``"esa"``: ESA's official S2A response
        functions (document COPE-GSEG-EOPG-TN-15-0007, v3.0; 1 nm steps from 300 nm), fetched
        through :func:`soilbook.data.registry.fetch` (entry ``sentinel2_srf_s2a``).

    Returns
    -------
    xarray.DataArray, dims ``(band, srf_wavelength)``
        Weights (each band sums to 1) with ``band`` names, ``wavelength`` (band centre, nm)
        and ``srf_wavelength`` (the 1 nm grid) coordinates.
    """
    if source == "gaussian":
        return sensor_srf(SENTINEL2)
    if source == "esa":
        weights, grid = _esa_srf("sentinel2_srf_s2a")
        return _srf_array(np.array(weights), np.array(grid), SENTINEL2, "esa")
    raise ValueError(f"source={source!r}; expected 'gaussian' or 'esa'")


def interpolation_matrix(source_nm: np.ndarray, target_nm: np.ndarray) -> np.ndarray:
    """The matrix ``M`` (target, source) of piecewise-linear interpolation: ``y_t = M @ y_s``.

    Beyond the ends of ``source_nm`` the edge value is held (as :func:`numpy.interp` does),
    and gaps in ``source_nm`` (the library's water-vapour bands) are bridged linearly.
    """
    src = np.asarray(source_nm, float)
    tgt = np.asarray(target_nm, float)
    if np.any(np.diff(src) <= 0):
        raise ValueError("source wavelengths must increase strictly")
    t = np.clip(tgt, src[0], src[-1])
    hi = np.clip(np.searchsorted(src, t, side="right"), 1, src.size - 1)
    lo = hi - 1
    frac = (t - src[lo]) / (src[hi] - src[lo])
    m = np.zeros((tgt.size, src.size))
    rows = np.arange(tgt.size)
    m[rows, lo] += 1.0 - frac
    m[rows, hi] += frac
    return m


def resampling_matrix(wavelengths_nm: np.ndarray, srf: xr.DataArray) -> np.ndarray:
    """``R`` (band, wavelength) such that band reflectance = ``spectrum @ R.T``.

    Combines linear interpolation of the spectrum onto the SRF grid with the SRF weights.
    """
    grid = srf["srf_wavelength"].values
    weights = srf.transpose("band", "srf_wavelength").values
    return weights @ interpolation_matrix(wavelengths_nm, grid)


def resample(spectra: xr.DataArray, srf: xr.DataArray | None = None) -> xr.DataArray:
    """Band reflectance of ``spectra`` as a sensor with response functions ``srf`` sees it.

    $$\\rho_b = \\sum_\\lambda w_b(\\lambda)\\, \\rho(\\lambda)$$ on the SRF's 1 nm grid, where
    $\\rho(\\lambda)$ is linearly interpolated from the spectrum's wavelengths (bridging the
    library's water-vapour gaps, holding the edge values outside 400-2450 nm).

    Parameters
    ----------
    spectra
        DataArray with a ``wavelength`` dimension (nm) and any other dimensions.
    srf
        Response functions from :func:`sentinel2_srf` / :func:`sensor_srf`; default the
        Gaussian Sentinel-2 set.

    Returns
    -------
    xarray.DataArray, dims ``(..., band)``
        Band reflectance (float32) with ``band`` and ``wavelength`` (band centre, nm) coordinates.
    """
    if "wavelength" not in spectra.dims:
        raise ValueError(
            f"spectra has dims {spectra.dims}; expected a 'wavelength' dimension in nm"
        )
    srf = sentinel2_srf() if srf is None else srf
    matrix = resampling_matrix(spectra["wavelength"].values, srf)
    other = [d for d in spectra.dims if d != "wavelength"]
    values = spectra.transpose(*other, "wavelength").values.astype(np.float64)
    out = (values @ matrix.T).astype(np.float32)
    coords = {k: v for k, v in spectra.coords.items() if "wavelength" not in v.dims}
    coords["band"] = srf["band"].values
    coords["wavelength"] = (
        "band",
        srf["wavelength"].values,
        {"units": "nm", "long_name": "band centre"},
    )
    attrs = dict(spectra.attrs)
    attrs["sensor"] = srf.attrs.get("sensor", "")
    attrs["srf"] = srf.attrs.get("kind", "")
    return xr.DataArray(out, dims=(*other, "band"), coords=coords, name=spectra.name, attrs=attrs)


# -- hyperspectral sensors: EnMAP and PRISMA ---------------------------------------------------
#
# The band centres and FWHM ship with the package (:mod:`soilbook.data.sensors`: ``enmap_l2a``,
# ``prisma``, copied number for number from the EnMAP-Box archives' ``sensor_wl`` and
# ``sensor_fwhm``), so the Gaussian responses need no download. The exact response functions
# come from the EnMAP-Box's Spec2Sensor resources
# (registry entries ``enmap_srf``, ``prisma_srf``, ``landsat8_srf``): numpy ``.npz`` archives
# with ``sensor_wl`` (band centres, nm), ``sensor_fwhm`` (nm; absent for Landsat-8),
# ``srf`` (points, band, 2) holding (wavelength in µm, relative response) padded with -999,
# and ``srf_nbands`` (the number of valid points of each band). The responses are tabulated
# at whole nanometres.

#: Atmospheric water-vapour absorption windows (nm). Satellite bands whose centre lies inside
#: them carry almost no surface signal (strong H2O absorption near 1.4 µm and 1.9 µm). The
#: edges are a common, physically motivated choice, not a standard; see :func:`usable_bands`.
WATER_VAPOUR_NM: tuple[tuple[float, float], ...] = ((1340.0, 1460.0), (1790.0, 1960.0))

#: EnMAP bands (1-based numbers in the EnMAP-Box table, which lists the bands by increasing
#: wavelength) that the official DeepSalt code drops (``excluded_bands = range(130, 136)``,
#: 1331-1391 nm), leaving the paper's 218 "usable" bands of 224. From band 102 (1004 nm) on,
#: these numbers coincide with the EnMAP L2A product's band numbers (91 VNIR + 133 SWIR).
ENMAP_DEEPSALT_EXCLUDED_BANDS: tuple[int, ...] = tuple(range(130, 136))

#: Ground sampling distance of EnMAP and PRISMA hyperspectral bands (m).
HYPERSPECTRAL_GSD_M = 30.0

_ENMAPBOX_SENSORS = {
    "enmap_srf": "EnMAP L2A",
    "prisma_srf": "PRISMA",
    "landsat8_srf": "Landsat-8 OLI",
}
#: Registry response archive -> packaged band table with the same centres and FWHM.
_PACKAGED_TABLES = {"enmap_srf": "enmap_l2a", "prisma_srf": "prisma"}


@functools.lru_cache(maxsize=4)
def _read_enmapbox(name: str) -> dict[str, np.ndarray]:
    """The arrays of a registered EnMAP-Box ``.srf`` archive (read-only)."""
    if name not in _ENMAPBOX_SENSORS:
        raise ValueError(
            f"{name!r} is not an EnMAP-Box response table; expected one of "
            f"{sorted(_ENMAPBOX_SENSORS)} (registry names)"
        )
    from soilbook.data.registry import fetch  # lazy: the registry may download

    path = fetch(name)
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("srf", "srf_nbands", "sensor_wl") if k not in z.files]
        if missing:
            raise ValueError(
                f"{path} has no {missing} array(s); expected an EnMAP-Box .srf archive with "
                f"'srf', 'srf_nbands', 'sensor_wl'. Run `soilbook data verify {name}`."
            )
        out = {k: np.array(z[k]) for k in z.files}
    n_bands = out["sensor_wl"].size
    if out["srf"].shape[1] != n_bands or out["srf_nbands"].size != n_bands:
        raise ValueError(
            f"{path}: srf has {out['srf'].shape[1]} bands, srf_nbands {out['srf_nbands'].size}, "
            f"sensor_wl {n_bands}; the archive is inconsistent"
        )
    for arr in out.values():
        arr.flags.writeable = False
    return out


def _band_names(n: int) -> tuple[str, ...]:
    return tuple(f"B{i:03d}" for i in range(1, n + 1))


def _packaged_sensor(name: str) -> Sensor:
    """The :class:`Sensor` of registry archive ``name`` from its packaged band table (offline)."""
    table = band_table(_PACKAGED_TABLES[name])
    n = len(table.bands)
    return Sensor(
        name=_ENMAPBOX_SENSORS[name],
        bands=table.bands,
        centres_nm=tuple(float(v) for v in table["centre_nm"]),
        widths_nm=tuple(float(v) for v in table["fwhm_nm"]),
        resolution_m=(HYPERSPECTRAL_GSD_M,) * n,
    )


def enmap_sensor() -> Sensor:
    """EnMAP's 224 hyperspectral bands (L2A) as a :class:`Sensor`.

    Band centres and FWHM (nm) come from the EnMAP-Box generic EnMAP L2A table (``sensor_wl``,
    ``sensor_fwhm`` of registry entry ``enmap_srf``), packaged with soilbook as the band table
    ``enmap_l2a`` (no download): 418-2446 nm, FWHM 5.8-11.4 nm, 30 m pixels. The table
    lists the bands by **increasing wavelength**, so the VNIR and SWIR detectors' overlap at
    902-994 nm appears interleaved; bands are named ``B001`` ... ``B224`` in that order. The
    L2A product has no bands in 1391-1461 nm and 1760-1939 nm (strongest water vapour).
    Pair it with :func:`enmap_srf` for resampling and :func:`usable_bands` to drop the
    remaining water-vapour bands.
    """
    return _packaged_sensor("enmap_srf")


def prisma_sensor() -> Sensor:
    """PRISMA's 233 hyperspectral bands as a :class:`Sensor` (centres and FWHM in nm).

    From the EnMAP-Box generic PRISMA table (registry entry ``prisma_srf``; packaged with soilbook
    as the band table ``prisma``, no download): 402-2497 nm, FWHM
    8.8-15.1 nm, 30 m pixels. The bands are in the table's order, VNIR (``B001``-``B063``,
    402-972 nm) then SWIR (``B064``-``B233``, 951-2497 nm), so centres are **not** monotonic
    across the detector overlap. (The EnMAP-Box's ``prisma.csv``, registry ``prisma_bands``,
    lists 234 bands whose centres differ by up to ~0.3 nm; the ``.srf`` table is used here so
    that centres and response functions agree.)
    """
    return _packaged_sensor("prisma_srf")


def srf_from_enmapbox(name: str, wavelengths_nm: np.ndarray | None = None) -> xr.DataArray:
    """Tabulated spectral response functions of an EnMAP-Box ``.srf`` archive.

    Parameters
    ----------
    name
        Registry name: ``"enmap_srf"`` (224 bands), ``"prisma_srf"`` (233) or
        ``"landsat8_srf"`` (8). Fetched through :func:`soilbook.data.registry.fetch`.
    wavelengths_nm
        Grid (nm) to tabulate on; default :data:`SRF_GRID_NM` (350-2600 nm, 1 nm). The tables
        are linearly interpolated onto it (exact on whole nanometres) and are zero outside the
        tabulated points.

    Returns
    -------
    xarray.DataArray, dims ``(band, srf_wavelength)``
        Weights, each band summing to 1, in the same layout as :func:`sentinel2_srf` so that
        :func:`resample` takes it directly; coordinates ``band`` (``B001`` ...),
        ``wavelength`` (band centre from the table's ``sensor_wl``, nm), ``fwhm`` (nm, where the
        table has it) and ``srf_wavelength``. Edge bands that the table truncates (PRISMA's
        first band has only 401-404 nm) are renormalised over the points they have.
    """
    z = _read_enmapbox(name)
    grid = SRF_GRID_NM if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
    table, counts = z["srf"], z["srf_nbands"]
    n = counts.size
    weights = np.zeros((n, grid.size))
    for b in range(n):
        k = int(counts[b])
        wl = table[:k, b, 0] * 1000.0
        resp = np.clip(table[:k, b, 1], 0.0, None)
        if k == 0 or resp.sum() <= 0:
            raise ValueError(f"{name}: band {b + 1} has no positive response in the table")
        weights[b] = np.interp(grid, wl, resp, left=0.0, right=0.0)
        total = weights[b].sum()
        if total <= 0:
            raise ValueError(
                f"{name}: band {b + 1} ({wl.min():.0f}-{wl.max():.0f} nm) lies outside the grid "
                f"{grid.min():.0f}-{grid.max():.0f} nm; widen wavelengths_nm"
            )
        weights[b] /= total
    sensor = Sensor(
        name=_ENMAPBOX_SENSORS[name],
        bands=_band_names(n),
        centres_nm=tuple(float(v) for v in z["sensor_wl"]),
        widths_nm=tuple(float(v) for v in z.get("sensor_fwhm", np.ones(n))),
        resolution_m=(30.0,) * n,  # EnMAP, PRISMA and Landsat-8 multispectral bands
    )
    da = _srf_array(weights, grid, sensor, "table")
    if "sensor_fwhm" in z:
        da = da.assign_coords(fwhm=("band", np.array(z["sensor_fwhm"], float), {"units": "nm"}))
    da.attrs["source"] = f"EnMAP-Box Spec2Sensor table (registry '{name}')"
    return da


def _hyperspectral_srf(name: str, source: str) -> xr.DataArray:
    if source == "gaussian":
        sensor = _packaged_sensor(name)
        srf = sensor_srf(sensor)
        return srf.assign_coords(fwhm=("band", np.array(sensor.widths_nm, float), {"units": "nm"}))
    if source == "table":
        return srf_from_enmapbox(name)
    raise ValueError(f"source={source!r}; expected 'gaussian' or 'table'")


def enmap_srf(source: Literal["gaussian", "table"] = "gaussian") -> xr.DataArray:
    """EnMAP's 224 response functions for :func:`resample` (dims ``band``, ``srf_wavelength``).

    ``"gaussian"`` (the default): Gaussian curves from the centres and FWHM of
    :func:`enmap_sensor` (packaged with soilbook; works offline). ``"table"``: the tabulated
    responses of the EnMAP-Box (:func:`srf_from_enmapbox`), which need the registry's
    ``enmap_srf`` file (a 113 kB download, or the local mirror).
    """
    return _hyperspectral_srf("enmap_srf", source)


def prisma_srf(source: Literal["gaussian", "table"] = "gaussian") -> xr.DataArray:
    """PRISMA's 233 response functions for :func:`resample`; see :func:`enmap_srf`."""
    return _hyperspectral_srf("prisma_srf", source)


def usable_bands(
    sensor_or_wavelengths: Sensor | xr.DataArray | xr.Dataset | np.ndarray | list[float],
    drop_water: bool = True,
    min_nm: float = 400.0,
    max_nm: float = 2450.0,
    water_nm: tuple[tuple[float, float], ...] = WATER_VAPOUR_NM,
) -> np.ndarray:
    """Which bands to keep: inside ``[min_nm, max_nm]`` and outside the water-vapour windows.

    A band is judged by its **centre**: it is dropped when the centre lies outside
    ``[min_nm, max_nm]`` (default 400-2450 nm, the range of the lab spectra we transfer from)
    or, with ``drop_water``, inside any window of ``water_nm`` (default
    :data:`WATER_VAPOUR_NM`, 1340-1460 and 1790-1960 nm, edges included).

    For EnMAP this keeps **216 of 224** bands: all centres lie in 418-2446 nm, the L2A product
    already has no bands in 1391-1461 and 1760-1939 nm, and the windows remove the five bands
    at 1343-1391 nm and the three at 1939-1959 nm. The DeepSalt paper's "~218 usable" comes
    from its code dropping only bands 130-135 (1331-1391 nm; see
    :data:`ENMAP_DEEPSALT_EXCLUDED_BANDS`) and keeping 1939-1959 nm.

    Parameters
    ----------
    sensor_or_wavelengths
        A :class:`Sensor`, a DataArray/Dataset with a ``wavelength`` coordinate along ``band``
        (e.g. :func:`enmap_srf` or a sample set), or band centres in nm.

    Returns
    -------
    ndarray of bool, shape (band,)
        ``True`` for usable bands; use ``srf.isel(band=mask)`` or
        ``sensor.select([b for b, k in zip(sensor.bands, mask) if k])``.
    """
    if isinstance(sensor_or_wavelengths, Sensor):
        centres = np.asarray(sensor_or_wavelengths.centres_nm, float)
    elif isinstance(sensor_or_wavelengths, xr.DataArray | xr.Dataset):
        if "wavelength" not in sensor_or_wavelengths.coords:
            raise ValueError(
                "the xarray object has no 'wavelength' coordinate (band centres in nm); "
                "pass the centres directly or a Sensor"
            )
        centres = np.asarray(sensor_or_wavelengths["wavelength"].values, float)
    else:
        centres = np.asarray(sensor_or_wavelengths, float)
    if centres.ndim != 1 or not np.all(np.isfinite(centres)):
        raise ValueError("band centres must be a 1-D array of finite wavelengths in nm")
    if min_nm >= max_nm:
        raise ValueError(f"min_nm={min_nm} must be below max_nm={max_nm}")
    keep = (centres >= min_nm) & (centres <= max_nm)
    if drop_water:
        for lo, hi in water_nm:
            keep &= ~((centres >= lo) & (centres <= hi))
    return keep
