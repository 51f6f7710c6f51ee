"""The simulated coastal salinity scene: determinism, schema, physics, ranges."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data.schema import validate_scene
from soilbook.data.simulate.salinity import SalinityParams, random_field, simulate_scene
from soilbook.errors import ParameterError

SIZE = 64


@pytest.fixture(scope="module")
def scene():
    return simulate_scene(size=SIZE, n_dates=3, seed=3)


def test_scene_is_valid_and_labelled(scene):
    validate_scene(scene)
    assert scene["reflectance"].dims == ("date", "band", "y", "x")
    assert scene.sizes["date"] == 3 and scene.sizes["band"] == 10
    assert scene["layers"].dims == ("layer", "y", "x")
    assert scene.attrs["simulated"] is True
    assert scene.attrs["licence"] == "CC0-1.0 (generated)"
    assert scene.attrs["source"] == "soilbook simulator (salinity)"
    assert scene.attrs["pixel_size_m"] == 10.0
    assert "sim_coast_effect" in scene.attrs  # every parameter is recorded
    assert scene["target"].attrs["units"] == "g/kg"
    groups = dict(zip(scene["layer"].values, scene["layer_group"].values, strict=True))
    assert groups["elevation"] == "terrain" and groups["twi"] == "hydrology"
    assert groups["lai_peak"] == "vegetation"
    assert "groundwater_depth" not in groups  # latent: a user would not have it
    assert scene["groundwater_depth"].attrs["latent"] == 1


def test_coordinates(scene):
    x, y = scene["x"].values, scene["y"].values
    np.testing.assert_allclose(np.diff(x), 10.0)
    np.testing.assert_allclose(np.diff(y), -10.0)  # north up
    lat, lon = scene["lat"].values, scene["lon"].values
    assert lat.shape == (SIZE, SIZE)
    assert abs(lat.mean() - 37.7) < 0.01 and abs(lon.mean() - 118.9) < 0.01
    assert lat[0, 0] > lat[-1, 0]  # row 0 is the northern edge
    assert list(scene["date"].values) == ["2021-04-15", "2021-07-14", "2021-10-12"]


def test_determinism():
    a = simulate_scene(size=32, n_dates=2, seed=5)
    b = simulate_scene(size=32, n_dates=2, seed=5)
    c = simulate_scene(size=32, n_dates=2, seed=6)
    for name in ("target", "reflectance", "layers"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
        assert not np.array_equal(a[name].values, c[name].values)


def test_value_ranges(scene):
    s = scene["target"].values
    assert np.isfinite(s).all()
    assert 0.3 <= s.min() and s.max() <= 45.0
    assert np.mean(s) > np.median(s)  # right-skewed
    r = scene["reflectance"].values
    assert 0.0 <= r.min() and r.max() <= 1.0
    assert 0.02 < r.mean() < 0.5
    layers = scene["layers"]
    assert 0.0 < float(layers.sel(layer="distance_to_coast").min())
    assert float(layers.sel(layer="slope").max()) < 10.0  # a flat delta
    gw = scene["groundwater_depth"].values
    assert 0.3 <= gw.min() and gw.max() < 5.0
    lai = scene["lai"].values
    assert lai.min() >= 0 and lai.max() < 9


def test_physics_is_monotonic():
    scene = simulate_scene(size=160, n_dates=3, seed=0)
    s = scene["target"].values
    d = scene["layers"].sel(layer="distance_to_coast").values
    # mean salt content falls with distance from the coast
    near, far = d < np.quantile(d, 0.25), d > np.quantile(d, 0.75)
    assert s[near].mean() > s[far].mean()
    # shallow groundwater: more salt
    gw = scene["groundwater_depth"].values
    assert s[gw < np.quantile(gw, 0.25)].mean() > s[gw > np.quantile(gw, 0.75)].mean()
    # crops (not the halophyte fallow) grow less where salt is high, within each crop
    lai = scene["lai"].max("date").values
    crop = scene["crop"].values
    for k in (0, 1):
        m = crop == k
        hi = m & (s > np.quantile(s[m], 0.75))
        lo = m & (s < np.quantile(s[m], 0.25))
        assert lai[hi].mean() < lai[lo].mean()
    # salt crusts brighten bare soil: on the April date, among nearly bare pixels, the visible
    # reflectance rises with salt
    bare = scene["lai"].isel(date=0).values < 0.05
    b2 = scene["reflectance"].isel(date=0).sel(band="B2").values
    assert np.corrcoef(np.log(s[bare]), b2[bare])[0, 1] > 0.1


def test_scene_size_pixel_size_and_srf_choices():
    ds = simulate_scene(size=24, n_dates=1, seed=1, pixel_size_m=20.0)
    assert ds.sizes["x"] == 24 and ds.sizes["date"] == 1
    np.testing.assert_allclose(np.diff(ds["x"].values), 20.0)
    with pytest.raises(ValueError, match="size"):
        simulate_scene(size=4)
    with pytest.raises(ValueError, match="n_dates"):
        simulate_scene(size=24, n_dates=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 4}, "size=4"), ({"n_dates": 0}, "n_dates=0"), ({"pixel_size_m": 0.0}, "positive")],
)
def test_bad_arguments_raise_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        simulate_scene(**{"size": 24, "n_dates": 1, **kwargs})


def test_fingerprint_of_a_small_scene():
    """Pins the scene a seed gives (values of the simulator before its steps were split out).

    A change that reorders the random draws, or draws from another step's stream, changes these;
    the tolerance only absorbs floating-point differences between machines.
    """
    ds = simulate_scene(size=32, n_dates=2, seed=5)
    got = [
        float(ds["target"].mean()),
        float(ds["target"][3, 7]),
        float(ds["reflectance"][1, :, 20, 11].sum()),
        float(ds["layers"].sel(layer="lai_peak").mean()),
        float(ds["layers"].sel(layer="twi")[5, 5]),
        float(ds["soil_moisture"][0].mean()),
    ]
    expected = [4.152655601501465, 1.633409857749939, 2.7600882053375244, 0.7288919687271118]
    expected += [9.160802841186523, 0.13254724442958832]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert int(ds["crop"].sum()) == 798 and int(ds["parcel"].max()) == 6


def test_params_change_the_scene():
    base = simulate_scene(size=32, n_dates=1, seed=2)
    salty = simulate_scene(size=32, n_dates=1, seed=2, params=SalinityParams(log_salt_mean=0.0))
    assert salty["target"].mean() > base["target"].mean()
    assert salty.attrs["sim_log_salt_mean"] == 0.0


def test_random_field_has_unit_variance_and_correlation():
    rng = np.random.default_rng(0)
    f = random_field((256, 256), 8.0, rng)
    assert f.dtype == np.float32
    assert 0.6 < f.std() < 1.4
    lag1 = np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1]
    lag40 = np.corrcoef(f[:, :-40].ravel(), f[:, 40:].ravel())[0, 1]
    assert lag1 > 0.9 and abs(lag40) < 0.3


def test_esa_srf_scene(data_mirror, cache_dir):
    ds = simulate_scene(size=24, n_dates=1, seed=0, srf="esa")
    assert ds.attrs["srf"] == "esa"
    validate_scene(ds)
