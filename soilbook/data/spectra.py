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
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

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


#: Sentinel-2A MSI, the ten land bands used for surface-reflectance work (B1 aerosol, B9 water
#: vapour and B10 cirrus are left out). Central wavelengths and bandwidths (nm) as published by
#: ESA for S2A (Sentinel-2 User Handbook / MSI technical guide, spectral response v3.0).
SENTINEL2 = Sensor(
    name="Sentinel-2A MSI",
    bands=("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"),
    centres_nm=(492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 1613.7, 2202.4),
    widths_nm=(66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 91.0, 175.0),
    resolution_m=(10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 10.0, 20.0, 20.0, 20.0),
)
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
