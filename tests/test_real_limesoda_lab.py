"""LimeSoDa vis-NIR spectra on a common grid, and the EnMAP / PRISMA sensors they are sent to.

The EnMAP/PRISMA tests (soilbook.data.spectra additions) live here because this file owns the
lab side of the lab-to-satellite transfer; they read the real EnMAP-Box tables from the mirror.
"""

from __future__ import annotations

import LimeSoDa
import numpy as np
import pytest
import xarray as xr

from soilbook.data import spectra
from soilbook.data.real.limesoda_lab import (
    IN_SITU_DATASETS,
    LAB_VNIR_DATASETS,
    detect_scale,
    load_limesoda_lab,
    to_reflectance,
)
from soilbook.data.schema import to_tabular, validate_samples
from soilbook.errors import ParameterError


@pytest.fixture(scope="module")
def soc() -> xr.Dataset:
    return load_limesoda_lab()


def _raw_spectra(dataset_id: str) -> tuple[np.ndarray, np.ndarray, object]:
    d = LimeSoDa.load_dataset(dataset_id)
    cols = [c for c in d["Dataset"].columns if str(c).startswith("wl_")]
    return np.array([float(c[3:]) for c in cols]), d["Dataset"][cols].to_numpy(float), d


# -- LimeSoDa lab spectra ----------------------------------------------------------------------


def test_lab_list_is_every_visnir_set_in_nm():
    found = []
    for name in LimeSoDa.list_datasets():
        if name == "Overview_Datasets":
            continue
        cols = [c for c in LimeSoDa.load_dataset(name)["Dataset"].columns if c.startswith("wl_")]
        # vis-NIR: starts in the visible (RP.62 / SA.112 are field NIR from 1000 nm)
        if cols and min(float(c[3:]) for c in cols) < 700:
            found.append(name)
    assert sorted(found) == sorted(LAB_VNIR_DATASETS)
    assert set(IN_SITU_DATASETS) < set(LAB_VNIR_DATASETS)


def test_every_set_stores_percent_reflectance():
    for d in LAB_VNIR_DATASETS:
        wl, x, _ = _raw_spectra(d)
        assert detect_scale(wl, x) == "percent", d


def test_scale_detection_and_conversion_on_known_inputs():
    wl, x, _ = _raw_spectra("SC.93")
    r = x / 100.0
    assert detect_scale(wl, r) == "fraction"
    absorbance = np.log10(1.0 / r)
    assert detect_scale(wl, absorbance) == "absorbance"
    np.testing.assert_allclose(to_reflectance(absorbance, "absorbance"), r, rtol=1e-12)
    np.testing.assert_allclose(to_reflectance(x, "percent"), r)
    # NIR-only spectra (no 500-800 nm) are ambiguous unless in percent: no guessing
    nir = wl >= 1000
    assert detect_scale(wl[nir], x[:, nir]) == "percent"
    with pytest.raises(ValueError, match="cannot tell reflectance"):
        detect_scale(wl[nir], r[:, nir])
    with pytest.raises(ValueError, match="scale"):
        to_reflectance(x, "kelvin")


def test_default_soc_pool(soc):
    ds = validate_samples(soc)
    assert ds.attrs["dataset_ids"] == ["CV.98", "SC.93", "SSP.460"]
    assert ds.sizes == {"sample": 651, "date": 1, "band": 206}
    assert ds.attrs["group_kind"] == "dataset" and ds.attrs["simulated"] is False
    assert ds.attrs["licence"] == "CC BY-SA 4.0" and "117337" in ds.attrs["citation"]
    assert ds["target"].attrs["units"] == "%"
    counts = dict(zip(*np.unique(ds["group"].values, return_counts=True), strict=True))
    assert counts == {"CV.98": 98, "SC.93": 93, "SSP.460": 460}
    # every left-out set is there with its reason
    skipped = dict(item.split(": ", 1) for item in ds.attrs["skipped"].split("; "))
    assert set(skipped) == {"SP.231", "MG.44", "SSP.58", "SL.125", "UL.120"}
    assert "mmolc dm-3" in skipped["MG.44"] and "not SOC" in skipped["SL.125"]
    # values: LimeSoDa's SOC, and the % spectrum / 100 interpolated onto the grid
    wl, x, raw = _raw_spectra("SC.93")
    sc = ds.isel(sample=ds["group"].values == "SC.93")
    np.testing.assert_allclose(sc["target"].values, raw["Dataset"]["SOC_target"].values)
    for i in (0, 50):
        expected = np.interp(ds["wavelength"].values, wl, x[i] / 100.0)
        np.testing.assert_allclose(sc["reflectance"].values[i, 0], expected, rtol=1e-5)
    r = ds["reflectance"].values
    assert 0.0 < r.min() and r.max() < 1.0 and 0.15 < np.median(r) < 0.3
    assert to_tabular(ds).shape == (651, 206)
    # coordinates: Santa Catarina (UTM 22S) converted; CV.98 / SSP.460 have none
    assert -28.5 < np.nanmean(sc["lat"]) < -27.0 and -51.5 < np.nanmean(sc["lon"]) < -50.0
    assert np.isnan(ds["lat"].values[ds["group"].values != "SC.93"]).all()
    country = dict(zip(ds["group"].values, ds["country"].values, strict=True))
    assert country == {"CV.98": "Switzerland", "SC.93": "Brazil", "SSP.460": "Brazil"}
    assert set(ds["measurement"].values[ds["group"].values == "CV.98"]) == {
        "in situ (Edelman auger), PSR+3500"
    }
    assert set(ds["reflectance_scale"].values) == {"percent"}


def test_named_sets_that_cannot_serve_are_refused():
    with pytest.raises(ParameterError, match=r"MG\.44.*mmolc dm-3"):
        load_limesoda_lab(["MG.44"], target="soc")
    with pytest.raises(ParameterError, match=r"SL\.125.*reports Clay/SOM, not SOC"):
        load_limesoda_lab(["SL.125"], target="SOC")
    with pytest.raises(ParameterError, match=r"350-1700 nm.*truncate=True"):
        load_limesoda_lab(["SP.231"], target="SOM")
    with pytest.raises(ParameterError, match="not LimeSoDa vis-NIR sets"):
        load_limesoda_lab(["H.138"])
    with pytest.raises(ParameterError, match="allowed"):
        load_limesoda_lab(target="EC")
    with pytest.raises(ParameterError, match="increasing"):
        load_limesoda_lab(wavelengths_nm=[500.0, 400.0])


def test_truncation_and_som():
    som = load_limesoda_lab(target="SOM", wavelengths_nm=np.arange(420.0, 2451.0, 10.0))
    assert som.attrs["dataset_ids"] == ["SL.125", "UL.120"] and som.sizes["sample"] == 245
    assert np.isnan(som["lat"].values).all()  # dummy (privacy) coordinates are not used
    ph = load_limesoda_lab(["MG.44", "SSP.58"], target="pH", truncate=True)
    assert ph.attrs["grid_truncated"] is True
    assert ph["wavelength"].values.min() == 440.0 and ph["wavelength"].values.max() == 2150.0
    assert ph.sizes["sample"] == 102
    mg = ph.isel(sample=ph["group"].values == "MG.44")
    assert -15 < np.nanmean(mg["lat"]) < -13 and -59 < np.nanmean(mg["lon"]) < -56
    assert set(ph["target_method"].values) == {"CaCl2 2.5:1"}


def test_ancillary_clay_beside_the_target():
    ph = load_limesoda_lab(["MG.44", "SC.93"], target="pH", ancillary=("clay",), truncate=True)
    clay = ph["anc_clay"]
    assert clay.attrs["units"] == "%" and "ancillary" in clay.attrs["long_name"]
    mg = ph["group"].values == "MG.44"
    assert np.isnan(clay.values[mg]).all()  # MG.44 reports clay in g dm-3: not poolable in %
    raw = LimeSoDa.load_dataset("SC.93")["Dataset"]["Clay_target"].to_numpy(float)
    np.testing.assert_allclose(clay.values[~mg], raw)
    with pytest.raises(ParameterError, match="names the target"):
        load_limesoda_lab(target="SOC", ancillary=("soc",))


# -- EnMAP / PRISMA sensors (soilbook.data.spectra) -------------------------------------------


def test_enmap_band_table_and_usable_bands(data_mirror, cache_dir):
    enmap = spectra.enmap_sensor()
    assert len(enmap.bands) == 224 and enmap.bands[0] == "B001" and enmap.bands[-1] == "B224"
    c = np.array(enmap.centres_nm)
    assert c[0] == pytest.approx(418.24) and c[-1] == pytest.approx(2445.53)
    assert np.all(np.diff(c) > 0) and 5.5 < min(enmap.widths_nm) < max(enmap.widths_nm) < 12
    mask = spectra.usable_bands(enmap)
    assert mask.sum() == 216
    dropped = c[~mask]
    assert np.all((dropped > 1340) & (dropped < 1400) | (dropped > 1930) & (dropped < 1960))
    assert (dropped < 1400).sum() == 5 and (dropped > 1900).sum() == 3
    # the paper's 218: the official code drops bands 130-135 (1331-1391 nm) only
    deepsalt = np.ones(224, bool)
    deepsalt[np.array(spectra.ENMAP_DEEPSALT_EXCLUDED_BANDS) - 1] = False
    assert deepsalt.sum() == 218
    np.testing.assert_allclose(c[~deepsalt], [1331.22, 1343.18, 1355.13, 1367.06, 1378.96, 1390.84])
    # the range limits act on band centres; water windows can be switched off
    assert spectra.usable_bands(enmap, drop_water=False).sum() == 224
    assert spectra.usable_bands(enmap, drop_water=False, min_nm=500).sum() == int((c >= 500).sum())
    srf = spectra.enmap_srf("table")
    assert srf.isel(band=spectra.usable_bands(srf)).sizes["band"] == 216


def test_usable_bands_inputs():
    assert spectra.usable_bands([350.0, 500.0, 1400.0, 1850.0, 2460.0]).tolist() == [
        False,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="wavelength"):
        spectra.usable_bands(xr.DataArray(np.zeros(3), dims="band"))
    with pytest.raises(ValueError, match="below"):
        spectra.usable_bands([500.0], min_nm=900, max_nm=800)


def test_enmap_table_srf_agrees_with_gaussian(data_mirror, cache_dir):
    table = spectra.enmap_srf("table")
    gauss = spectra.enmap_srf("gaussian")
    assert table.dims == gauss.dims == ("band", "srf_wavelength")
    assert table.attrs["kind"] == "table" and gauss.attrs["kind"] == "gaussian"
    np.testing.assert_allclose(table.sum("srf_wavelength").values, 1.0, atol=1e-12)
    np.testing.assert_allclose(table["wavelength"].values, gauss["wavelength"].values)
    centroid = (table * table["srf_wavelength"]).sum("srf_wavelength").values
    assert np.abs(centroid - table["wavelength"].values).max() < 0.6  # nm
    # FWHM of the tabulated curve ~ the table's sensor_fwhm
    w = table.isel(band=100).values
    above = table["srf_wavelength"].values[w >= w.max() / 2]
    assert above.max() - above.min() == pytest.approx(float(table["fwhm"][100]), abs=2.0)
    # a real ICRAF soil spectrum as EnMAP sees it: the two SRFs differ, but only slightly
    soil = spectra.load_library("soil").isel(spectrum=[0, 1000, 3000])
    a = spectra.resample(soil, table)
    b = spectra.resample(soil, gauss)
    assert a.shape == (3, 224) and a.attrs["srf"] == "table"
    diff = np.abs(a.values - b.values)
    assert 0 < diff.mean() < 5e-4 and diff.max() < 0.01
    np.testing.assert_allclose(a.values, b.values, atol=0.01)


def test_prisma_sensor_and_srf(data_mirror, cache_dir):
    prisma = spectra.prisma_sensor()
    c = np.array(prisma.centres_nm)
    assert len(prisma.bands) == 233 and prisma.name == "PRISMA"
    assert c[62] > c[63]  # VNIR ends at 972 nm, SWIR starts again at 951 nm
    assert 400 < c.min() < 405 and 2495 < c.max() < 2500
    assert spectra.usable_bands(prisma).sum() == 196
    table = spectra.prisma_srf("table")
    np.testing.assert_allclose(table.sum("srf_wavelength").values, 1.0, atol=1e-12)
    # the first band is truncated in the EnMAP-Box table (401-404 nm only)
    first = table["srf_wavelength"].values[table.isel(band=0).values > 0]
    assert first.min() == 401 and first.max() == 404
    with pytest.raises(ValueError, match="source"):
        spectra.prisma_srf("esa")
    with pytest.raises(ValueError, match="not an EnMAP-Box response table"):
        spectra.srf_from_enmapbox("sentinel2_srf_s2a")


def test_lab_spectra_resampled_to_enmap(data_mirror, cache_dir, soc):
    # the idiom: a sample set's reflectance as spectra along 'wavelength' (nm)
    lab = soc["reflectance"].isel(date=0).swap_dims(band="wavelength")
    srf = spectra.enmap_srf("table")
    srf = srf.isel(band=spectra.usable_bands(srf))
    sat = spectra.resample(lab, srf)
    assert sat.shape == (651, 216) and sat.dims == ("sample", "band")
    assert np.isfinite(sat.values).all() and 0 < float(sat.min()) and float(sat.max()) < 1
    # band reflectance near 1000 nm ~ the lab spectrum there
    k = int(np.argmin(np.abs(sat["wavelength"].values - 1000)))
    np.testing.assert_allclose(
        sat.values[:, k], lab.interp(wavelength=float(sat["wavelength"][k])).values, atol=0.01
    )
