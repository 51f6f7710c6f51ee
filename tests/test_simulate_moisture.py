"""The simulated soil-moisture tiles (chapter 4): schema, determinism, physics, labels."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data import moisture as mo
from soilbook.data.schema import label_rasters, validate_samples, validate_tiles
from soilbook.data.simulate import moisture as sim
from soilbook.errors import ParameterError

SMALL = dict(
    locations_per_landscape=2,
    coarse_only_per_landscape=1,
    dates=6,
    tile_size=16,
    stations_per_tile=3,
    coarse_block=8,
)


@pytest.fixture(scope="module")
def data():
    return sim.simulate_moisture(seed=5, return_latent=True, **SMALL)


def _channel(tiles, name):
    return tiles["inputs"].values[:, mo.CHANNEL_NAMES.index(name)]


def test_schema_sizes_and_labels(data):
    tiles, rd = data.tiles, data.readings
    validate_tiles(tiles)
    validate_samples(rd)
    n_loc = 3 * (2 + 1)
    assert tiles.sizes == {"tile": n_loc * 6, "channel": 16, "y": 16, "x": 16}
    assert list(tiles["channel"].values) == list(mo.CHANNEL_NAMES)
    assert list(tiles["channel_group"].values) == list(mo.CHANNEL_GROUPS)
    assert list(tiles["channel_units"].values) == list(mo.CHANNEL_UNITS)
    assert tiles.attrs["simulated"] is True and rd.attrs["simulated"] is True
    assert tiles.attrs["pixel_size_m"] == 250.0 and "sim_looks" in tiles.attrs
    assert tiles["truth"].dims == ("tile", "y", "x") and tiles["truth"].attrs["units"] == "%"
    assert rd["target"].attrs["units"] == mo.SOIL_MOISTURE_UNITS
    assert "SIMULATED" in data.description
    assert data.landscapes == mo.LANDSCAPES
    assert set(tiles["landscape"].values) == set(mo.LANDSCAPES)
    assert np.issubdtype(tiles["date"].dtype, np.datetime64)
    assert list(rd["feature"].values) == [*mo.CHANNEL_NAMES, "optical_valid"]
    # group = location (held-out-tile CV); the readings' dates are their tiles' dates
    np.testing.assert_array_equal(rd["group"].values, rd["location"].values)
    np.testing.assert_array_equal(rd["date"].values, tiles["date"].values[rd["tile"].values])
    # every location's tiles have one date each, 12-day multiples apart
    for loc in np.unique(tiles["location"].values):
        doy = tiles["doy"].values[tiles["location"].values == loc]
        assert len(doy) == 6 and np.all(np.diff(doy) > 0) and np.all(np.diff(doy) % 12 == 0)
    # three separated regions
    lat = tiles["lat"].values
    for a in mo.LANDSCAPES:
        for b in mo.LANDSCAPES:
            if a < b:
                la, lb = lat[tiles["landscape"].values == a], lat[tiles["landscape"].values == b]
                lo_a, lo_b = (tiles["lon"].values[tiles["landscape"].values == s] for s in (a, b))
                assert np.abs(la[:, None] - lb[None]).min() > 1 or (
                    np.abs(lo_a[:, None] - lo_b[None]).min() > 1
                )


def test_determinism_by_seed():
    kw = dict(SMALL, dates=2, locations_per_landscape=1, coarse_only_per_landscape=0)
    a = sim.simulate_moisture(seed=1, **kw)
    b = sim.simulate_moisture(seed=1, **kw)
    c = sim.simulate_moisture(seed=2, **kw)
    np.testing.assert_array_equal(a.tiles["inputs"].values, b.tiles["inputs"].values)
    np.testing.assert_array_equal(a.tiles["coarse"].values, b.tiles["coarse"].values)
    np.testing.assert_array_equal(a.readings["target"].values, b.readings["target"].values)
    assert not np.array_equal(a.tiles["truth"].values, c.tiles["truth"].values)
    # a location does not depend on how many others were asked for
    more = sim.simulate_moisture(seed=1, **dict(kw, locations_per_landscape=2))
    sa = a.tiles["location"].values == "arid_01"
    sm = more.tiles["location"].values == "arid_01"
    np.testing.assert_array_equal(a.tiles["inputs"].values[sa], more.tiles["inputs"].values[sm])


def test_water_balance_stays_in_its_limits(data):
    t = data.tiles
    truth = t["truth"].values
    assert np.all(truth >= t["latent_theta_r"].values - 1e-3)
    assert np.all(truth <= t["latent_theta_s"].values + 1e-3)
    # one bucket under extreme forcing: a cloudburst fills to porosity, a drought empties to θ_r
    kw = dict(theta_r=0.03, theta_fc=0.25, theta_s=0.45, depth_mm=100.0, drainage_rate=0.5)
    th = np.array([0.2])
    for _ in range(3):
        th, flux = sim.bucket_step(th, 500.0, 0.0, return_fluxes=True, **kw)
        assert th[0] <= 0.45 + 1e-12 and flux["runoff"][0] > 0
    for _ in range(200):
        before = th.copy()
        th, flux = sim.bucket_step(th, 0.0, 12.0, return_fluxes=True, **kw)
        assert 0.03 <= th[0] <= before[0]
        # the water balance closes: ΔS = in − runoff − drainage − ET
        closure = (th - before) * 100.0 + flux["runoff"] + flux["drainage"] + flux["et"]
        assert abs(closure[0]) < 1e-9
    assert th[0] < 0.035


def test_vv_rises_with_soil_moisture_on_bare_pixels(data):
    t = data.tiles
    bare = t["latent_cover"].values < 0.15
    vv, sm = _channel(t, "VV")[bare], t["truth"].values[bare]
    assert bare.sum() > 500
    slope = np.polyfit(sm, vv, 1)[0]
    assert slope > 0.1  # dB per %, the bare-soil sensitivity is 0.25 before speckle
    assert np.corrcoef(sm, vv)[0, 1] > 0.2


def test_clouds_only_invalidate_optical_channels(data):
    t = data.tiles
    valid = t["valid"].values.astype(bool)
    optical = [mo.CHANNEL_NAMES.index(c) for c in mo.OPTICAL_CHANNELS]
    others = [i for i in range(len(mo.CHANNELS)) if i not in optical]
    assert valid[:, others].all()
    assert (~valid[:, optical]).any()  # some clouds in 54 tiles
    # every optical channel shares one mask, the cloud
    for i in optical:
        np.testing.assert_array_equal(valid[:, i], valid[:, optical[0]])
    np.testing.assert_array_equal(~valid[:, optical[0]], t["latent_cloud"].values.astype(bool))
    # the modalities see the right channels
    assert [mo.CHANNEL_NAMES[i] for i in mo.modality_channels(t, "optical")] == list(
        mo.OPTICAL_CHANNELS
    )
    assert mo.modality_channels(t, "meteo") == list(range(11, 16))
    with pytest.raises(ParameterError, match="modality"):
        mo.modality_channels(t, "lidar")


def test_readings_point_at_their_pixels(data):
    t, rd = data.tiles, data.readings
    label, mask = label_rasters(rd, t)
    ti, r, c = (rd[k].values for k in ("tile", "row", "col"))
    np.testing.assert_allclose(label[ti, r, c], rd["target"].values, rtol=1e-6)
    assert mask.sum() == rd.sizes["sample"]  # distinct pixels per tile
    # the readings are the truth there plus offset and noise (sd 2 and 1 %)
    err = rd["target"].values - t["truth"].values[ti, r, c]
    assert np.abs(err).max() < 12 and np.sqrt(np.mean(err**2)) < 4
    # stations stay inside the margin, one reading per station and tile
    assert r.min() >= 2 and c.min() >= 2 and r.max() <= 13 and c.max() <= 13
    assert rd.sizes["sample"] == 3 * 2 * 6 * 3
    # the covariates are the pixel features, NaN under clouds
    x = mo.pixel_features(t, ti, r, c)
    got = rd["covariates"].values[:, :-1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(x))
    opt = rd["covariates"].sel(feature="optical_valid").values
    np.testing.assert_array_equal(opt == 0, np.isnan(rd["covariates"].sel(feature="B2").values))


def test_coarse_only_locations_have_no_readings(data):
    t, rd = data.tiles, data.readings
    coarse_only = set(t["location"].values[t["role"].values == "coarse_only"])
    assert len(coarse_only) == 3
    assert coarse_only.isdisjoint(set(rd["location"].values))
    assert set(rd["location"].values) == set(t["location"].values[t["role"].values == "stations"])


def test_coarse_product_is_block_constant_and_near_the_block_mean(data):
    t = data.tiles
    c, truth = t["coarse"].values, t["truth"].values
    assert t["coarse_mask"].values.all()
    blocks = c.reshape(len(c), 2, 8, 2, 8)
    assert np.all(blocks == blocks[:, :, :1, :, :1])
    mean = truth.reshape(len(c), 2, 8, 2, 8).mean(axis=(2, 4))
    # bias + gain x mean + noise (sd 2 and 1.5 %): within ~5 sd of the landscape's line
    p = sim.MoistureParams()
    for li, ls in enumerate(mo.LANDSCAPES):
        s = t["landscape"].values == ls
        expect = p.coarse_bias[li] + p.coarse_gain[li] * mean[s]
        assert np.abs(np.maximum(expect, 0.5) - blocks[s][:, :, 0, :, 0]).max() < 15


def test_landscapes_differ(data):
    t = data.tiles
    sm = {ls: t["truth"].values[t["landscape"].values == ls].mean() for ls in mo.LANDSCAPES}
    assert sm["arid basin"] < sm["alpine grassland"]
    assert sm["arid basin"] < sm["farmland"]
    elev = {ls: _channel(t, "elevation")[t["landscape"].values == ls].mean() for ls in sm}
    assert elev["alpine grassland"] > 3000 > elev["arid basin"] > elev["farmland"]
    slope = {ls: _channel(t, "slope")[t["landscape"].values == ls].mean() for ls in sm}
    assert slope["alpine grassland"] > max(slope["farmland"], slope["arid basin"])


def test_pixel_features_nan_where_invalid(data):
    t = data.tiles
    x = mo.pixel_features(t, [0, 1], [3, 4], [5, 6])
    assert x.shape == (2, 16) and x.dtype == np.float32
    assert np.isfinite(x[:, 0]).all()
    with pytest.raises(ParameterError, match="integer positions"):
        mo.pixel_features(t, [0], [99], [0])


def test_bad_settings_are_refused():
    with pytest.raises(ParameterError, match="unknown simulator setting"):
        sim.simulate_moisture(tile_size=16, no_such_setting=1)
    with pytest.raises(ParameterError, match="coarse_block"):
        sim.simulate_moisture(tile_size=16, coarse_block=32)
    with pytest.raises(ParameterError, match="dates"):
        sim.simulate_moisture(tile_size=16, dates=40)
    with pytest.raises(ParameterError, match="one per landscape"):
        sim.simulate_moisture(tile_size=16, sand=(0.3, 0.4))
    with pytest.raises(ParameterError, match="GB"):
        sim.simulate_moisture(tile_size=16, max_bytes=1000)
