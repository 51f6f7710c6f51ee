"""The lab-to-satellite transfer simulator and the salt-mixing model: physics, exactness, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from soilbook.data import spectra as spec
from soilbook.data.simulate import transfer as tr

# EnMAP-like bands (until spectra.py has the EnMAP table): 91 VNIR bands 420-993 nm (FWHM
# 6.5-10 nm) and 133 SWIR bands 902-2450 nm (FWHM 10 nm), overlapping at 900-1000 nm as EnMAP's do.
CENTRES = np.r_[np.linspace(420.0, 993.0, 91), np.linspace(902.0, 2450.0, 133)]
FWHM = np.r_[np.linspace(6.5, 10.0, 91), np.full(133, 10.0)]
BANDS = {"band_centres_nm": CENTRES, "band_fwhm_nm": FWHM}


@pytest.fixture(scope="module")
def soils() -> xr.DataArray:
    lib = spec.load_library("soil")
    idx = np.random.default_rng(0).choice(lib.sizes["spectrum"], 40, replace=False)
    return lib.isel(spectrum=idx)


def _band(da: xr.DataArray, nm: float) -> int:
    return int(np.argmin(np.abs(da["wavelength"].values - nm)))


# -- exactness and determinism -----------------------------------------------------------------


def test_identity_settings_reduce_to_plain_resampling(soils):
    """No moisture, no cover, scale 1, no shift, no noise: exactly spectra.resample."""
    params = tr.TransferParams.identity()
    sat, factors = tr.lab_to_satellite(soils, np.random.default_rng(3), params, **BANDS)
    ref = spec.resample(soils, tr.satellite_srf(**BANDS))
    assert sat.dims == ("spectrum", "band") and sat.shape == (40, 224)
    np.testing.assert_allclose(sat.values, ref.values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(factors["f_soil"], 1.0)
    np.testing.assert_array_equal(factors["shift_nm"], 0.0)
    # the same through a Sensor record and through a ready SRF, in several chunks
    s2 = spec.SENTINEL2
    sat2, _ = tr.lab_to_satellite(soils, np.random.default_rng(0), params, sensor=s2, chunk_size=7)
    np.testing.assert_allclose(
        sat2.values, spec.resample(soils, spec.sensor_srf(s2)).values, atol=1e-6
    )
    sat3, _ = tr.lab_to_satellite(
        soils, np.random.default_rng(0), params, sensor=spec.sentinel2_srf()
    )
    np.testing.assert_allclose(sat3.values, sat2.values, atol=1e-6)


def test_determinism_per_seed(soils):
    a, fa = tr.lab_to_satellite(soils, np.random.default_rng(5), **BANDS)
    b, fb = tr.lab_to_satellite(soils, np.random.default_rng(5), **BANDS, chunk_size=9)
    c, _ = tr.lab_to_satellite(soils, np.random.default_rng(6), **BANDS)
    np.testing.assert_array_equal(a.values, b.values)  # chunking does not change the draws
    for key in tr.LATENT_FACTORS:
        np.testing.assert_array_equal(fa[key], fb[key])
    assert not np.array_equal(a.values, c.values)
    ec = tr.sample_ec(40, np.random.default_rng(1))
    np.testing.assert_array_equal(ec, tr.sample_ec(40, np.random.default_rng(1)))
    s1 = tr.add_salt(soils, ec, np.random.default_rng(2))
    s2 = tr.add_salt(soils, ec, np.random.default_rng(2))
    np.testing.assert_array_equal(s1.values, s2.values)
    p1, _ = tr.simulate_satellite_pixels(soils[:5], 3, np.random.default_rng(4), **BANDS)
    p2, _ = tr.simulate_satellite_pixels(soils[:5], 3, np.random.default_rng(4), **BANDS)
    np.testing.assert_array_equal(p1.values, p2.values)


def test_changing_one_setting_keeps_the_other_draws(soils):
    """Each factor has its own random stream: switching moisture off leaves cover unchanged."""
    _, f1 = tr.lab_to_satellite(soils, np.random.default_rng(8), **BANDS)
    _, f2 = tr.lab_to_satellite(
        soils, np.random.default_rng(8), tr.TransferParams(moisture_max=0.0), **BANDS
    )
    np.testing.assert_array_equal(f2["moisture"], 0.0)
    for key in ("f_gv", "f_npv", "scale", "shift_nm", "canopy_index"):
        np.testing.assert_array_equal(f1[key], f2[key])


# -- shapes, ranges, labels ------------------------------------------------------------------


def test_shapes_ranges_and_labels(soils):
    sat, factors = tr.lab_to_satellite(soils, np.random.default_rng(0), **BANDS)
    assert sat.shape == (40, 224)
    v = sat.values
    assert v.dtype == np.float32 and np.isfinite(v).all()
    assert v.min() >= 0.0 and v.max() <= 1.2
    assert sat.attrs["simulated"] is True and "SIMULATED" in sat.attrs["long_name"]
    assert "sim_moisture_max" in sat.attrs
    assert set(factors) == set(tr.LATENT_FACTORS)
    for key, value in factors.items():
        assert value.shape == (40,), key
    assert (factors["moisture"] >= 0).all() and (factors["moisture"] <= 0.30).all()
    assert (factors["f_gv"] <= 0.4).all() and (factors["f_npv"] <= 0.3).all()
    np.testing.assert_allclose(factors["f_soil"] + factors["f_gv"] + factors["f_npv"], 1.0)
    assert (np.abs(factors["shift_nm"]) <= 4.0).all()
    np.testing.assert_allclose(sat["fwhm"].values, FWHM, rtol=0.02)
    # lab coordinates travel along; band coordinates are there
    np.testing.assert_array_equal(sat["label"].values, soils["label"].values)
    assert {"wavelength", "fwhm", "snr", "usable"} <= set(sat["band"].coords)
    # water-vapour bands are flagged, and dropped on request
    usable = sat["usable"].values
    wl = sat["wavelength"].values
    assert (
        not usable[(wl > 1360) & (wl < 1450)].any() and not usable[(wl > 1820) & (wl < 1950)].any()
    )
    assert usable[(wl < 1300) | ((wl > 1500) & (wl < 1750)) | (wl > 2000)].all()
    dropped, _ = tr.lab_to_satellite(soils, np.random.default_rng(0), **BANDS, drop=True)
    assert dropped.sizes["band"] == usable.sum()
    np.testing.assert_array_equal(dropped.values, v[:, usable])
    mask = np.ones(224, bool)
    mask[:10] = False
    own, _ = tr.lab_to_satellite(
        soils, np.random.default_rng(0), **BANDS, band_mask=mask, drop=True
    )
    assert own.sizes["band"] == 214


# -- the physics of each step -----------------------------------------------------------------


def test_moisture_darkens_most_in_the_water_bands(soils):
    params = tr.TransferParams.identity()
    dry, _ = tr.lab_to_satellite(soils, np.random.default_rng(0), params, **BANDS)
    wet, _ = tr.lab_to_satellite(
        soils, np.random.default_rng(0), params, **BANDS, overrides={"moisture": 0.25}
    )
    ratio = (wet / dry).mean("spectrum").values
    wl = dry["wavelength"].values
    assert (ratio < 1).all()
    darkest = wl[np.argmin(ratio)]
    assert min(abs(darkest - 1450), abs(darkest - 1940)) < 40, darkest
    near_1450 = ratio[np.abs(wl - 1450) < 30].min()
    near_1940 = ratio[np.abs(wl - 1940) < 30].min()
    visible, swir = ratio[(wl > 450) & (wl < 700)].mean(), ratio[(wl > 1550) & (wl < 1750)].mean()
    assert near_1940 < near_1450 < swir < visible
    # the exponential law: ln ratio = -c theta, band by band
    c_band = tr.satellite_srf(**BANDS).values @ tr.moisture_coefficient(spec.SRF_GRID_NM)
    np.testing.assert_allclose(np.log(ratio), -0.25 * c_band, rtol=0.05, atol=0.01)


def test_vegetation_cover_raises_nir_red_ratio(soils):
    params = tr.TransferParams.identity()
    rng = np.random.default_rng
    bare, _ = tr.lab_to_satellite(soils, rng(1), params, **BANDS)
    green, fg = tr.lab_to_satellite(soils, rng(1), params, **BANDS, overrides={"f_gv": 0.5})
    red, nir = _band(bare, 670.0), _band(bare, 860.0)
    r_bare = bare.values[:, nir] / bare.values[:, red]
    r_green = green.values[:, nir] / green.values[:, red]
    assert (r_green > r_bare).all() and np.median(r_green) > 1.5 * np.median(r_bare)
    np.testing.assert_allclose(fg["f_soil"], 0.5)
    # litter (NPV) instead: a different, weaker change, and mixing is linear in the fractions
    half, _ = tr.lab_to_satellite(soils, rng(1), params, **BANDS, overrides={"f_gv": 0.25})
    np.testing.assert_allclose(half.values, 0.5 * (bare.values + green.values), atol=2e-6)


def test_illumination_scales_and_tilts(soils):
    params = tr.TransferParams.identity()
    base, _ = tr.lab_to_satellite(soils, np.random.default_rng(0), params, **BANDS)
    scaled, _ = tr.lab_to_satellite(
        soils, np.random.default_rng(0), params, **BANDS, overrides={"scale": 0.9}
    )
    np.testing.assert_allclose(scaled.values, 0.9 * base.values, rtol=1e-5)
    tilted, _ = tr.lab_to_satellite(
        soils, np.random.default_rng(0), params, **BANDS, overrides={"tilt": 0.05}
    )
    ratio = (tilted / base).mean("spectrum").values
    wl = base["wavelength"].values
    np.testing.assert_allclose(ratio, 1 + 0.05 * (wl - 1000.0) / 1000.0, atol=1e-3)


def _absorption_spectrum(centre_nm: float) -> xr.DataArray:
    wl = np.arange(400.0, 2451.0, 1.0)
    values = 0.5 - 0.3 * np.exp(-0.5 * ((wl - centre_nm) / 15.0) ** 2)
    return xr.DataArray(values[None, :], dims=("spectrum", "wavelength"), coords={"wavelength": wl})


def _feature_centre(sat: xr.DataArray) -> float:
    """Depth-weighted centroid of the absorption feature in band space."""
    wl = sat["wavelength"].values
    depth = 0.5 - sat.values[0]
    depth = np.where(depth > 0.02, depth, 0.0)
    return float(np.sum(wl * depth) / np.sum(depth))


@pytest.mark.parametrize("shift", [3.0, -2.5, 0.7])
def test_spectral_shift_moves_a_feature_by_the_shift(shift):
    lab = _absorption_spectrum(1000.0)
    fine = {"band_centres_nm": np.arange(900.0, 1101.0, 2.0), "band_fwhm_nm": 6.0}
    params = tr.TransferParams.identity()
    at_rest, _ = tr.lab_to_satellite(lab, np.random.default_rng(0), params, **fine)
    moved, f = tr.lab_to_satellite(
        lab, np.random.default_rng(0), params, **fine, overrides={"shift_nm": shift}
    )
    assert f["shift_nm"][0] == shift
    assert abs(_feature_centre(at_rest) - 1000.0) < 0.1
    assert abs(_feature_centre(moved) - _feature_centre(at_rest) - shift) < 0.1
    # the shift is a translation: the shifted spectrum equals an unshifted one at 1000 + s
    target, _ = tr.lab_to_satellite(
        _absorption_spectrum(1000.0 + shift), np.random.default_rng(0), params, **fine
    )
    np.testing.assert_allclose(moved.values, target.values, atol=2e-3)


def test_noise_sd_is_signal_over_snr():
    lib = spec.load_library("soil")
    one = lib.isel(spectrum=[7] * 4000)
    params = tr.TransferParams.identity(noise_scale=1.0)
    clean, _ = tr.lab_to_satellite(
        one[:1], np.random.default_rng(0), tr.TransferParams.identity(), **BANDS
    )
    noisy, _ = tr.lab_to_satellite(one, np.random.default_rng(0), params, **BANDS)
    signal = clean.values[0].astype(float)
    sd = noisy.values.std(axis=0)
    snr = noisy["snr"].values
    np.testing.assert_allclose(noisy.values.mean(axis=0), signal, rtol=0.02)
    usable = noisy["usable"].values
    np.testing.assert_allclose(sd[usable], signal[usable] / snr[usable], rtol=0.12)
    # the documented SNR curve: EnMAP-like reference values, lower at the edges and in SWIR
    assert snr[_band(noisy, 495.0)] > 380 and 150 < snr[_band(noisy, 2200.0)] < 200
    assert snr[0] < snr[_band(noisy, 495.0)] and snr[-1] < snr[_band(noisy, 2200.0)]
    assert snr[_band(noisy, 1380.0)] < 20  # a water-vapour band: little light reaches the sensor


# -- salt --------------------------------------------------------------------------------------


def test_sample_ec_is_a_skewed_distribution_in_range():
    ec = tr.sample_ec(20_000, np.random.default_rng(0))
    assert ec.min() >= 0.1 and ec.max() <= 60.0
    assert abs(np.median(ec) - 2.5) < 0.15
    assert ec.mean() > 1.5 * np.median(ec)  # right-skewed
    assert 0.03 < np.mean(ec > 16) < 0.12 and ec.max() > 40
    with pytest.raises(ValueError, match="median"):
        tr.sample_ec(5, np.random.default_rng(0), median_dsm=100.0)


def test_add_salt_brightens_vis_nir_monotonically(soils):
    vis_nir = (soils["wavelength"] >= 400) & (soils["wavelength"] <= 1000)
    dark = soils.isel(spectrum=np.flatnonzero(soils.where(vis_nir).max("wavelength") < 0.6)[:10])
    levels = np.array([0.0, 0.5, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0])
    params = tr.TransferParams(crust_fraction_sd=0.0)
    stacked = dark.isel(spectrum=np.repeat(np.arange(dark.sizes["spectrum"]), levels.size))
    ec = np.tile(levels, dark.sizes["spectrum"])
    salted = tr.add_salt(stacked, ec, np.random.default_rng(0), params)
    mean = salted.where(vis_nir).mean("wavelength").values.reshape(-1, levels.size)
    assert (np.diff(mean, axis=1) > 0).all()
    # EC 0 leaves the real spectrum untouched; the crust fraction follows 1 - exp(-EC / 40)
    np.testing.assert_allclose(salted.values[::8], stacked.values[::8], atol=1e-7)
    np.testing.assert_allclose(salted["crust_fraction"].values, 1 - np.exp(-ec / 40.0))
    assert salted.attrs["simulated"] is True and salted["ec"].attrs["units"] == "dS/m"
    # with crust patchiness (the default) brightening still rises with EC, on average
    many = dark.isel(spectrum=np.repeat(np.arange(dark.sizes["spectrum"]), 50))
    ec_many = tr.sample_ec(many.sizes["spectrum"], np.random.default_rng(1))
    gain = tr.add_salt(many, ec_many, np.random.default_rng(2)).where(vis_nir).mean("wavelength")
    gain = gain.values - many.where(vis_nir).mean("wavelength").values
    rank = np.corrcoef(np.argsort(np.argsort(ec_many)), np.argsort(np.argsort(gain)))[0, 1]
    assert rank > 0.8


def test_salt_crust_spectrum_shape():
    wl = np.arange(400.0, 2451.0, 1.0)
    halite = tr.salt_crust_spectrum(wl, 0.0)
    gypsum = tr.salt_crust_spectrum(wl, 1.0)
    vnir = (wl >= 500) & (wl <= 1300)
    assert halite[vnir].min() > 0.75 and np.ptp(halite[vnir]) < 0.1  # bright and flat
    i = {nm: int(np.argmin(np.abs(wl - nm))) for nm in (1450, 1650, 1750, 1940, 2100)}
    assert halite[i[1940]] < halite[i[2100]] and halite[i[1450]] < halite[i[1650]]
    shoulders = 0.5 * (gypsum[wl == 1700.0] + gypsum[wl == 1800.0])
    assert gypsum[i[1750]] < 0.95 * shoulders[0]  # the gypsum-like 1750 nm band
    assert halite[i[1750]] > 0.99 * 0.5 * (halite[wl == 1700.0] + halite[wl == 1800.0])[0]
    assert tr.salt_crust_spectrum(wl, np.array([0.0, 1.0])).shape == (2, wl.size)


# -- several pixels per site -------------------------------------------------------------------


def test_simulate_satellite_pixels(soils):
    located = soils.isel(spectrum=np.flatnonzero(np.isfinite(soils["lat"].values))[:6])
    pix, factors = tr.simulate_satellite_pixels(located, 4, np.random.default_rng(0), **BANDS)
    assert pix.shape == (24, 224)
    np.testing.assert_array_equal(pix["site"].values, np.repeat(np.arange(6), 4))
    np.testing.assert_array_equal(pix["label"].values, np.repeat(located["label"].values, 4))
    assert factors["neighbour_fraction"].max() <= 0.2 and factors["moisture"].shape == (24,)
    # positions within 250 m of the site (great-circle, small-distance approximation)
    lat0 = np.repeat(located["lat"].values, 4)
    lon0 = np.repeat(located["lon"].values, 4)
    dy = (pix["lat"].values - lat0) * 111_320.0
    dx = (pix["lon"].values - lon0) * 111_320.0 * np.cos(np.radians(lat0))
    assert np.hypot(dx, dy).max() <= 250.0 + 1e-6 and np.hypot(dx, dy).max() > 0
    # off: the pixels of a site are all the plain resampled lab spectrum
    off, _ = tr.simulate_satellite_pixels(
        located, 3, np.random.default_rng(0), tr.TransferParams.identity(), **BANDS
    )
    ref = spec.resample(located, tr.satellite_srf(**BANDS)).values
    np.testing.assert_allclose(off.values, np.repeat(ref, 3, axis=0), atol=1e-6)


# -- errors that say what to do ----------------------------------------------------------------


def test_clear_errors(soils):
    with pytest.raises(ValueError, match="band_centres_nm"):
        tr.lab_to_satellite(soils, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cannot override"):
        tr.lab_to_satellite(soils, np.random.default_rng(0), **BANDS, overrides={"wind": 1})
    with pytest.raises(ValueError, match="µm"):
        micro = soils.assign_coords(wavelength=soils["wavelength"].values / 1000.0)
        tr.lab_to_satellite(micro, np.random.default_rng(0), **BANDS)
    with pytest.raises(ValueError, match="gv_max"):
        tr.TransferParams(gv_max=0.8, npv_max=0.5)
    with pytest.raises(ValueError, match="band_mask"):
        tr.lab_to_satellite(soils, np.random.default_rng(0), **BANDS, band_mask=np.ones(3, bool))


def test_shift_on_regular_and_irregular_grids_agree():
    """The fast (regular 1 nm grid) and the general (irregular grid) shift give the same result."""
    regular = np.arange(900.0, 1101.0, 1.0)
    irregular = np.unique(np.r_[regular, np.linspace(900.3, 1099.7, 57)])
    shifts = np.array([0.0, 2.4, -3.7, 1.0])

    def feature(wl):
        return 0.5 - 0.3 * np.exp(-0.5 * ((wl - 1000.0) / 15.0) ** 2)

    for grid in (regular, irregular):
        values = np.tile(feature(grid), (shifts.size, 1))
        moved = tr._shift(values, grid, shifts)
        inner = (grid > 910) & (grid < 1090)
        for row, s in zip(moved, shifts, strict=True):
            np.testing.assert_allclose(row[inner], feature(grid[inner] - s), atol=1e-3)
        np.testing.assert_array_equal(moved[0], values[0])  # no shift: untouched
