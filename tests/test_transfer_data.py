"""Lab / satellite / unlabelled sample sets for the DeepSalt chapter (soilbook.data.transfer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilbook.data import spectra
from soilbook.data.schema import validate_samples
from soilbook.data.transfer import (
    LAB_GRID_NM,
    MIN_PAIRED_PER_REGION,
    PAIRING,
    PAIRING_FIXED_REGIONS,
    SOC_REGIONS,
    TransferData,
    _stratified_pairs,
    check_transfer_args,
    load_transfer,
    region_table,
)
from soilbook.errors import ParameterError

QUICK = {
    "n_sites": 300,
    "paired_fraction": 0.25,
    "unlabelled_per_site": 2,
    "n_regions": 4,
    "min_region_pixels": 10,
}


@pytest.fixture(scope="module")
def mirror(module_mirror):
    """The registry reads EnMAP's band table from the local mirror into a fresh cache."""
    return module_mirror


@pytest.fixture(scope="module")
def salinity(mirror) -> TransferData:
    return load_transfer("salinity", seed=1, **QUICK)


@pytest.fixture(scope="module")
def soc(mirror) -> TransferData:
    return load_transfer("soc", n_sites=800, paired_fraction=0.25, unlabelled_per_site=1)


# -- shapes and schema -------------------------------------------------------------------------


def test_salinity_shapes_and_schema(salinity):
    sat, lab, unl = salinity.satellite, salinity.lab, salinity.unlabelled
    validate_samples(sat)
    validate_samples(lab)
    enmap = spectra.enmap_srf()
    usable = spectra.usable_bands(enmap)
    assert sat.sizes["band"] == int(usable.sum()) == 216
    assert sat["reflectance"].dims == ("sample", "date", "band") and sat.sizes["date"] == 1
    np.testing.assert_allclose(sat["wavelength"].values, enmap["wavelength"].values[usable])
    # no band inside the water-vapour windows
    wl = sat["wavelength"].values
    for lo, hi in spectra.WATER_VAPOUR_NM:
        assert not np.any((wl >= lo) & (wl <= hi))
    np.testing.assert_array_equal(lab["wavelength"].values, LAB_GRID_NM)
    # isolated sites (oceanic islands) are dropped by the region rule, and the description says so
    assert lab.sizes["sample"] <= QUICK["n_sites"] and lab.sizes["date"] == 1
    if lab.sizes["sample"] < QUICK["n_sites"]:
        n_gone = QUICK["n_sites"] - lab.sizes["sample"]
        assert f"Dropped {n_gone} isolated site(s)" in salinity.description
    # the library's water-vapour gaps are interpolated and flagged, never NaN
    assert lab["gap_filled"].values.sum() == 26
    assert not np.isnan(lab["reflectance"].values).any()
    assert not np.isnan(sat["reflectance"].values).any()
    for ds in (sat, lab, unl):
        for c in ("site", "lat", "lon", "group"):
            assert c in ds.coords
        assert ds["site"].dtype.kind == "U" and ds["group"].dtype.kind == "U"
    assert sat.attrs["domain"] == "satellite" and lab.attrs["domain"] == "lab"
    assert "SIMULATED" in salinity.description and "REAL" in salinity.description


def test_unlabelled_has_no_target_and_matches_satellite_bands(salinity):
    unl, sat = salinity.unlabelled, salinity.satellite
    assert "target" not in unl.data_vars
    assert unl["reflectance"].dims == ("sample", "date", "band")
    np.testing.assert_array_equal(unl["band"].values, sat["band"].values)
    n_lab_only = int((~salinity.lab["paired"].values).sum())
    counts = unl["origin"].to_series().value_counts()
    assert counts["lab_only_site"] == 2 * n_lab_only
    assert counts["paired_site_neighbour"] == 2 * (sat.sizes["sample"] // 2)
    assert counts["off_site"] > 0
    off = unl["origin"].values == "off_site"
    assert np.all(unl["site"].values[off] == "")
    assert np.all(unl["site"].values[~off] != "")
    assert set(unl["group"].values) <= set(salinity.lab["group"].values)
    assert unl.attrs["simulated"] is True


def test_site_ids_link_satellite_to_paired_lab_rows(salinity):
    sat, lab = salinity.satellite, salinity.lab
    assert lab["site"].to_index().is_unique and sat["site"].to_index().is_unique
    paired_sites = set(lab["site"].values[lab["paired"].values])
    assert set(sat["site"].values) == paired_sites
    row = {s: i for i, s in enumerate(lab["site"].values)}
    idx = np.array([row[s] for s in sat["site"].values])
    np.testing.assert_array_equal(idx, sat["lab_index"].values)
    np.testing.assert_array_equal(sat["target"].values, lab["target"].values[idx])
    np.testing.assert_array_equal(sat["group"].values, lab["group"].values[idx])
    np.testing.assert_allclose(sat["lat"].values, lab["lat"].values[idx])
    # the pixel is the lab sample as a satellite sees it: correlated, not identical
    lab_at_sat = spectra.resample(
        xr.DataArray(
            lab["reflectance"].values[idx, 0],
            dims=("s", "wavelength"),
            coords={"wavelength": lab["wavelength"].values},
        ),
        spectra.enmap_srf(),
    ).values[:, spectra.usable_bands(spectra.enmap_srf())]
    r = np.corrcoef(lab_at_sat.mean(1), sat["reflectance"].values[:, 0].mean(1))[0, 1]
    assert r > 0.7


def test_every_region_has_paired_sites(salinity):
    table = region_table(salinity)
    assert list(table.index) == [f"region_{i}" for i in range(QUICK["n_regions"])]
    assert (table["paired_sites"] >= MIN_PAIRED_PER_REGION).all()
    assert table["lab_sites"].sum() == salinity.lab.sizes["sample"]
    assert (table["satellite_pixels"] >= QUICK["min_region_pixels"]).all()  # the floor
    assert (table["paired_sites"] == table["satellite_pixels"]).all()
    assert (table["lab_only_sites"] == table["lab_sites"] - table["paired_sites"]).all()
    assert table["unlabelled_pixels"].sum() == salinity.unlabelled.sizes["sample"]
    # stratified: each region's paired share is near paired_fraction
    share = table["paired_sites"] / table["lab_sites"]
    assert np.all(np.abs(share - QUICK["paired_fraction"]) < 0.1)
    assert np.all(table["target_mean"] > 0) and np.all(table["target_sd"] > 0)


def test_regions_are_compact_with_a_floor_on_labelled_pixels(salinity):
    table = region_table(salinity)
    assert {"locations", "extent_km", "radius_km"} <= set(table.columns)
    assert (table["satellite_pixels"] >= QUICK["min_region_pixels"]).all()
    # k-means once joined Hawaii, Samoa and eastern Australia into one region (9,256 km, 13
    # labelled pixels); isolated island groups are now dropped and no region spans an ocean
    assert (table["extent_km"] < 9000).all()
    assert not ((salinity.lab["lon"].values < -150) & (salinity.lab["lat"].values > 15)).any()
    assert "Regions: region_0: " in salinity.description and "km across" in salinity.description


def test_one_labelled_pixel_per_location_and_location_ids(salinity):
    sat, lab, unl = salinity.satellite, salinity.lab, salinity.unlabelled
    assert sat["location"].to_index().is_unique  # a pixel is a place
    np.testing.assert_array_equal(
        sat["location"].values, lab["location"].values[sat["lab_index"].values]
    )
    # lab samples at the same coordinates (horizons of one profile) share a location id
    where = pd.DataFrame(
        {
            "loc": lab["location"].values,
            "lat": lab["lat"].values.round(6),
            "lon": lab["lon"].values.round(6),
        }
    )
    assert (where.groupby(["lat", "lon"])["loc"].nunique() == 1).all()
    assert where.groupby(["lat", "lon"]).ngroups == where["loc"].nunique()
    # unlabelled pixels keep the location of the sample they were made from
    site_loc = dict(zip(lab["site"].values, lab["location"].values, strict=True))
    at_site = unl["site"].values != ""
    np.testing.assert_array_equal(
        unl["location"].values[at_site], [site_loc[s] for s in unl["site"].values[at_site]]
    )


def test_description_states_pairing_depth_and_ancillary_inputs(salinity):
    text = salinity.description
    assert "Pairing: pairs come from the site id" in text and "distance 0 km" in text
    assert salinity.satellite.attrs["pairing"] == PAIRING
    assert "records no sampling depth" in text
    assert np.isnan(salinity.lab["depth_top_cm"].values).all()
    assert salinity.lab["topsoil"].values.all()
    assert "Ancillary inputs: none" in text and "sand, clay and climate" in text
    assert "covariates" not in salinity.satellite.data_vars


def test_pairs_one_per_location_and_topsoil_only():
    rng = np.random.default_rng(0)
    group = np.array(["a"] * 40 + ["b"] * 40)
    location = np.repeat(np.arange(40), 2)  # two horizons per place
    eligible = np.tile([True, False], 40)  # only the upper one is topsoil
    paired = _stratified_pairs(group, 0.75, rng, "soc", location=location, eligible=eligible)
    assert not paired[~eligible].any()
    assert np.bincount(location[paired]).max() == 1
    assert paired[:40].sum() == paired[40:].sum() == 20  # capped by the 20 topsoil places


def test_salinity_labels_are_simulated_and_said_so(salinity):
    lab, sat = salinity.lab, salinity.satellite
    for ds in (lab, sat):
        assert ds["target"].attrs["simulated"] is True
        assert ds["target"].attrs["units"] == "dS/m"
        assert ds.attrs["simulated"] is True and ds.attrs["labels_simulated"] is True
    y = lab["target"].values
    assert y.min() >= 0.1 and y.max() <= 60.0
    # the salt crust brightens: crust cover grows with EC
    assert np.corrcoef(np.log(y), lab["crust_fraction"].values)[0, 1] > 0.5


def test_deterministic_per_seed(salinity, mirror):
    again = load_transfer("salinity", seed=1, **QUICK)
    for name in ("satellite", "lab", "unlabelled"):
        xr.testing.assert_identical(getattr(salinity, name), getattr(again, name))
    other = load_transfer("salinity", seed=2, **QUICK)
    assert not np.array_equal(other.lab["site"].values, salinity.lab["site"].values)


# -- SOC: real LimeSoDa labels ------------------------------------------------------------------


def test_soc_uses_real_limesoda_labels(soc, mirror):
    from soilbook.data.real.limesoda_lab import load_limesoda_lab

    lab, sat = soc.lab, soc.satellite
    validate_samples(lab)
    validate_samples(sat)
    assert lab["target"].attrs["simulated"] is False
    assert sat["target"].attrs["simulated"] is False
    assert lab.attrs["simulated"] is False
    assert sat["reflectance"].attrs["simulated"] is True  # the pixels are simulated
    assert set(lab["group"].values) == set(SOC_REGIONS) == set(sat["group"].values)
    real = load_limesoda_lab(target="SOC")
    assert lab.sizes["sample"] == real.sizes["sample"]  # n_sites=800 >= 651: all of them
    ref = dict(zip(real["sample_id"].values, real["target"].values, strict=True))
    np.testing.assert_array_equal(lab["target"].values, [ref[s] for s in lab["site"].values])
    np.testing.assert_allclose(
        lab["reflectance"].values, real["reflectance"].values, rtol=0, atol=1e-7
    )
    assert set(sat["site"].values) == set(lab["site"].values[lab["paired"].values])
    assert "target" not in soc.unlabelled.data_vars
    assert (region_table(soc)["paired_sites"] >= MIN_PAIRED_PER_REGION).all()
    # fixed regions: no nearest-site rule; sites without coordinates get no extent or places
    assert soc.satellite.attrs["pairing"] == PAIRING_FIXED_REGIONS
    assert "CV.98: no coordinates, " in soc.description
    assert "have no coordinates: no extent or place is known for them" in soc.description


def test_soc_student_gets_the_measured_clay(soc, mirror):
    from soilbook.data.real.limesoda_lab import load_limesoda_lab

    real = load_limesoda_lab(target="SOC", ancillary=("Clay",))
    clay = dict(zip(real["sample_id"].values, real["anc_clay"].values, strict=True))
    sat, unl = soc.satellite, soc.unlabelled
    for ds in (sat, unl):
        assert list(ds["feature"].values) == ["clay"]
        assert list(ds["feature_group"].values) == ["soil"]
        assert list(ds["feature_units"].values) == ["%"]
        assert np.isfinite(ds["covariates"].values).all()
    np.testing.assert_allclose(
        sat["covariates"].values[:, 0], [clay[s] for s in sat["site"].values], rtol=1e-6
    )
    validate_samples(sat)
    assert "Ancillary inputs" in soc.description and "clay (soil, %)" in soc.description
    assert "Not available here: sand, climate" in soc.description


# -- argument checks -----------------------------------------------------------------------------

GOOD = {"n_sites": 800, "paired_fraction": 0.25, "unlabelled_per_site": 2, "n_regions": 5}


def test_check_accepts_defaults():
    check_transfer_args("salinity", **GOOD)
    check_transfer_args("salinity", **GOOD, holdout_region="region_4")
    check_transfer_args("soc", **{**GOOD, "n_regions": None}, holdout_region="SC.93")


@pytest.mark.parametrize(
    ("target", "changes", "match"),
    [
        ("ph", {}, "not known"),
        ("salinity", {"paired_fraction": 0.0}, r"\(0, 1\]"),
        ("salinity", {"paired_fraction": 1.5}, r"\(0, 1\]"),
        ("salinity", {"n_sites": 40, "paired_fraction": 0.1}, "too few paired"),
        ("salinity", {"holdout_region": "region_9"}, "not a region"),
        ("soc", {"holdout_region": "region_0"}, "not a region"),
        ("soc", {}, "fixed by the data"),
        ("salinity", {"n_regions": 1}, ">= 2"),
        ("salinity", {"unlabelled_per_site": -1}, "unlabelled_per_site"),
        ("salinity", {"min_region_pixels": 50}, "below min_region_pixels=50"),
        ("salinity", {"min_region_pixels": 1}, "min_region_pixels=1"),
    ],
)
def test_check_errors(target, changes, match):
    kwargs = {**GOOD, **changes}
    if target == "soc" and "n_regions" not in changes and match != "fixed by the data":
        kwargs["n_regions"] = None
    with pytest.raises(ParameterError, match=match):
        check_transfer_args(target, **kwargs)


def test_loader_rechecks_the_drawn_pairs():
    """The cheap check estimates; the loader counts the paired sites it really drew."""
    rng = np.random.default_rng(0)
    lonely = np.array(["a"] + ["b"] * 50)  # region 'a' has a single site
    with pytest.raises(ParameterError, match="fewer than 2 paired"):
        _stratified_pairs(lonely, 0.25, rng, "salinity")
    small = np.array(["a"] * 5 + ["b"] * 5)  # 2 + 2 paired: 2 left for training
    with pytest.raises(ParameterError, match="too few paired sites for distillation"):
        _stratified_pairs(small, 0.2, rng, "salinity")
    ok = _stratified_pairs(np.array(["a"] * 40 + ["b"] * 40), 0.25, rng, "salinity")
    assert ok[:40].sum() == ok[40:].sum() == 10


def test_load_refuses_bad_srf_and_soc_regions(mirror):
    with pytest.raises(ParameterError, match="srf"):
        load_transfer("salinity", n_sites=100, srf="boxcar", min_region_pixels=2)
    with pytest.raises(ParameterError, match="fixed by the data"):
        load_transfer("soc", n_regions=5)
    with pytest.raises(ParameterError, match="only 4065"):
        load_transfer("salinity", n_sites=5000)
