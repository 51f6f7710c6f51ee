"""Real spectral libraries (earthlib) and sensor resampling."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from soilbook.data import spectra


@pytest.mark.parametrize(
    ("kind", "n"),
    [("soil", 4168), ("canopy", 2000), ("npv", 104)],
)
def test_library_shapes_and_wavelengths(kind: str, n: int):
    lib = spectra.load_library(kind)
    assert lib.dims == ("spectrum", "wavelength")
    assert lib.shape == (n, 180)
    wl = lib["wavelength"].values
    assert wl[0] == pytest.approx(400.0) and wl[-1] == pytest.approx(2450.0)
    assert np.all(np.diff(wl) > 0)
    # the water-vapour bands are absent from the library
    assert not np.any((wl > 1350) & (wl < 1460))
    assert not np.any((wl > 1790) & (wl < 1960))
    values = lib.values
    assert np.isfinite(values).all()
    assert 0.0 <= values.min() and values.max() < 1.0
    assert lib.attrs["licence"].startswith("MIT")


def test_soil_library_has_coordinates_and_canopy_parameters():
    soil = spectra.load_library("soil")
    lat = soil["lat"].values
    assert np.nanmin(lat) >= -90 and np.nanmax(lat) <= 90
    assert np.isfinite(lat).sum() > 4000
    canopy = spectra.load_library("canopy")
    lai = canopy["lai"].values
    assert np.isfinite(lai).all() and lai.min() > 0.4 and lai.max() >= 10  # '1.1e+01' parsed
    assert canopy["chl"].min() >= 10 and canopy["chl"].max() <= 60
    # dense canopies are greener than sparse ones (NDVI grows with LAI)
    bands = spectra.resample(canopy)
    ndvi = (
        (bands.sel(band="B8") - bands.sel(band="B4"))
        / (bands.sel(band="B8") + bands.sel(band="B4"))
    ).values
    assert ndvi[lai >= 4].mean() > ndvi[lai < 1].mean() + 0.2


def test_library_is_cached_and_read_only():
    a = spectra.load_library("soil")
    b = spectra.load_library("soil")
    assert np.shares_memory(a.values, b.values)
    with pytest.raises(ValueError):
        a.values[0, 0] = 1.0
    with pytest.raises(ValueError):
        a["lat"].values[0] = 1.0  # coordinates are protected too
    c = a.copy(deep=True)
    c.values[0, 0] = 1.0  # a deep copy is writable
    assert spectra.load_library("soil").values[0, 0] != 1.0


def test_unknown_library_kind():
    with pytest.raises(ValueError, match="soil"):
        spectra.load_library("urban")  # type: ignore[arg-type]


def test_gaussian_srf_is_normalised_and_centred():
    grid = spectra.SRF_GRID_NM
    w = spectra.gaussian_srf([500.0, 1600.0], [20.0, 90.0], grid)
    assert w.shape == (2, grid.size)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    centroid = (w * grid).sum(axis=1)
    np.testing.assert_allclose(centroid, [500.0, 1600.0], atol=1e-6)
    # FWHM: the response at centre ± FWHM/2 is half the peak
    half = w[0, np.searchsorted(grid, 510.0)] / w[0].max()
    assert half == pytest.approx(0.5, abs=1e-6)


def test_sentinel2_table_and_sensor_structure():
    table = spectra.SENTINEL2_BANDS
    assert list(table["band"]) == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert table.set_index("band").loc["B4", "centre_nm"] == pytest.approx(664.6)
    sub = spectra.SENTINEL2.select(["B4", "B8"])
    assert sub.bands == ("B4", "B8") and sub.centres_nm == (664.6, 832.8)
    with pytest.raises(ValueError, match="B1"):
        spectra.SENTINEL2.select(["B1"])
    other = spectra.Sensor("toy", ("a", "b"), (500.0, 900.0), (50.0, 50.0), (30.0, 30.0))
    srf = spectra.sensor_srf(other)
    assert list(srf["band"].values) == ["a", "b"]


def test_resampling_a_flat_spectrum_gives_a_flat_band_spectrum():
    lib = spectra.load_library("soil")
    flat = xr.DataArray(
        np.full((3, lib.sizes["wavelength"]), 0.37),
        dims=("spectrum", "wavelength"),
        coords={"wavelength": lib["wavelength"].values},
    )
    out = spectra.resample(flat, spectra.sentinel2_srf("gaussian"))
    assert out.dims == ("spectrum", "band")
    np.testing.assert_allclose(out.values, 0.37, rtol=1e-6)
    np.testing.assert_allclose(out["wavelength"].values, spectra.SENTINEL2.centres_nm)


def test_resampling_interpolates_linearly_across_the_gaps():
    wl = spectra.load_library("soil")["wavelength"].values
    ramp = xr.DataArray(wl / 1000.0, dims=("wavelength",), coords={"wavelength": wl})
    # a narrow band inside the 1360-1450 nm gap sees the straight line between its edges
    sensor = spectra.Sensor("gap", ("g",), (1400.0,), (5.0,), (30.0,))
    out = spectra.resample(ramp, spectra.sensor_srf(sensor))
    assert float(out.values[0]) == pytest.approx(1.4, abs=1e-3)


def test_resample_needs_a_wavelength_dimension():
    with pytest.raises(ValueError, match="wavelength"):
        spectra.resample(xr.DataArray(np.ones(3), dims=("band",)))


def test_esa_srf_agrees_with_gaussian(data_mirror, cache_dir):
    esa = spectra.sentinel2_srf("esa")
    gauss = spectra.sentinel2_srf("gaussian")
    assert list(esa["band"].values) == list(gauss["band"].values)
    np.testing.assert_allclose(esa.sum("srf_wavelength").values, 1.0, atol=1e-9)
    centroid = (esa * esa["srf_wavelength"]).sum("srf_wavelength").values
    np.testing.assert_allclose(centroid, spectra.SENTINEL2.centres_nm, atol=3.0)
    soil = spectra.load_library("soil").isel(spectrum=slice(0, 200))
    diff = np.abs(spectra.resample(soil, esa).values - spectra.resample(soil, gauss).values)
    assert diff.max() < 0.01, "ESA and Gaussian S2 responses differ by more than 0.01 reflectance"


# -- packaged band tables (soilbook/data/sensors): offline, and equal to their sources ----------

#: SENTINEL2 as it was written in spectra.py before the table moved into a packaged CSV.
S2_BEFORE = {
    "centres": (492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 1613.7, 2202.4),
    "widths": (66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 91.0, 175.0),
    "resolution": (10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 10.0, 20.0, 20.0, 20.0),
}


@pytest.fixture
def no_registry(monkeypatch):
    """Any registry fetch fails, and the cached EnMAP-Box archives are forgotten."""
    from soilbook.data import registry

    def refuse(name, **kwargs):
        raise AssertionError(f"the registry was asked for {name!r}")

    spectra._read_enmapbox.cache_clear()
    monkeypatch.setattr(registry, "fetch", refuse)
    yield
    spectra._read_enmapbox.cache_clear()


def test_sentinel2_sensor_is_unchanged():
    s2 = spectra.SENTINEL2
    assert s2.centres_nm == S2_BEFORE["centres"]
    assert s2.widths_nm == S2_BEFORE["widths"]
    assert s2.resolution_m == S2_BEFORE["resolution"]
    assert spectra.sentinel2_centres_nm("A")["B1"] == 442.7
    # the mean of 2A and 2B, half up: the table the Earth Engine loader uses
    assert spectra.sentinel2_centres_nm("mean") == {
        "B1": 442.5, "B2": 492.3, "B3": 559.4, "B4": 664.8, "B5": 704.0, "B6": 739.8,
        "B7": 781.3, "B8": 832.9, "B8A": 864.4, "B9": 944.2, "B10": 1375.2, "B11": 1612.1,
        "B12": 2194.1,
    }  # fmt: skip
    with pytest.raises(ValueError, match="'A', 'B' or 'mean'"):
        spectra.sentinel2_centres_nm("C")  # type: ignore[arg-type]


def test_limesoda_band_centres_come_from_the_same_table():
    from soilbook.data.real.limesoda import S2_CENTRES_NM

    assert list(S2_CENTRES_NM)[:3] == ["B01", "B02", "B03"] and "B8A" in S2_CENTRES_NM
    assert S2_CENTRES_NM["B02"] == spectra.SENTINEL2.centres_nm[0] == 492.4
    assert len(S2_CENTRES_NM) == 13


def test_hyperspectral_defaults_need_no_download(no_registry):
    enmap = spectra.enmap_sensor()
    assert len(enmap.bands) == 224 and enmap.bands[0] == "B001"
    srf = spectra.enmap_srf()  # the default: Gaussian from the packaged centres and FWHM
    assert srf.sizes["band"] == 224 and srf.attrs["kind"] == "gaussian"
    np.testing.assert_array_equal(srf["fwhm"].values, enmap.widths_nm)
    assert srf.isel(band=spectra.usable_bands(srf)).sizes["band"] == 216
    prisma = spectra.prisma_srf()
    assert prisma.sizes["band"] == 233
    with pytest.raises(AssertionError, match="enmap_srf"):
        spectra.enmap_srf("table")  # the exact tables still come from the registry


@pytest.mark.parametrize(
    ("name", "table", "bands"),
    [("enmap_srf", "enmap_l2a", 224), ("prisma_srf", "prisma", 233)],
)
def test_packaged_hyperspectral_tables_equal_the_enmapbox_archives(
    data_mirror, cache_dir, name, table, bands
):
    """Number for number, so the Gaussian responses (and every result) are unchanged."""
    from soilbook.data import registry
    from soilbook.data.sensors import band_table

    packaged = band_table(table)
    with np.load(registry.fetch(name), allow_pickle=False) as z:
        np.testing.assert_array_equal(packaged["centre_nm"], z["sensor_wl"])
        np.testing.assert_array_equal(packaged["fwhm_nm"], z["sensor_fwhm"])
    assert len(packaged.bands) == bands
    assert "GPL-3.0" in packaged.meta["licence"] and "f9e8f486" in packaged.meta["source"]
    # the Gaussian SRF from the packaged table equals the one built from the archive
    z = spectra._read_enmapbox(name)
    from_file = spectra.gaussian_srf(z["sensor_wl"], z["sensor_fwhm"])
    srf = spectra.enmap_srf() if name == "enmap_srf" else spectra.prisma_srf()
    np.testing.assert_array_equal(srf.values, from_file)


@pytest.mark.parametrize("unit", ["A", "B"])
def test_packaged_sentinel2_centres_are_the_esa_centroids(data_mirror, cache_dir, unit):
    import pandas as pd

    from soilbook.data import registry
    from soilbook.data.sensors import band_table

    esa = pd.read_csv(registry.fetch(f"sentinel2_srf_s2{unit.lower()}"))
    grid = esa["SR_WL"].to_numpy(float)
    packaged = spectra.sentinel2_centres_nm(unit)
    assert list(packaged) == [c.rsplit("_", 1)[-1] for c in esa.columns[1:]]
    for column in esa.columns[1:]:
        response = np.clip(esa[column].to_numpy(float), 0.0, None)
        centroid = (grid * response).sum() / response.sum()
        assert abs(packaged[column.rsplit("_", 1)[-1]] - centroid) <= 0.05 + 1e-9, column
    assert "ESA" in band_table("sentinel2_msi").meta["source"]


def test_band_table_errors():
    from soilbook.data.sensors import band_table

    with pytest.raises(ValueError, match="enmap_l2a"):
        band_table("landsat9")
    with pytest.raises(KeyError, match="centre_nm"):
        band_table("enmap_l2a")["centre"]
    with pytest.raises(ValueError):
        band_table("prisma")["fwhm_nm"][0] = 1.0  # read-only
