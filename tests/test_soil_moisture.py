"""SoilMoistureRegressor: the chapter-4 estimator on a tiny synthetic tile set."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data.schema import sample_set, tile_set
from soilbook.errors import ParameterError, SchemaError
from soilbook.models.soil_moisture import SoilMoistureRegressor

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

CHANNELS = [("VV", "sar"), ("B4", "spectral"), ("elevation", "terrain"), ("api", "climate")]


def _data(n_places: int = 6, dates: int = 3, side: int = 32, seed: int = 0):
    """Tiles whose soil moisture is 20 + 5·VV (+ noise); 2 stations per place, the last place
    without stations; a coarse label = 8×8 block means + 2 (biased)."""
    rng = np.random.default_rng(seed)
    n = n_places * dates
    x = rng.normal(size=(n, len(CHANNELS), side, side)).astype(np.float32)
    truth = 20 + 5 * x[:, 0] + rng.normal(scale=0.3, size=(n, side, side))
    valid = np.ones_like(x, dtype=bool)
    valid[:, 1, :10, :10] = False  # a cloud over the optical band
    x[:, 1, :10, :10] = np.nan
    blocks = truth.reshape(n, side // 8, 8, side // 8, 8).mean(axis=(2, 4))
    coarse = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2) + 2.0
    places = np.repeat([f"p{i}" for i in range(n_places)], dates)
    stations = np.where(places == f"p{n_places - 1}", 0, 2)
    tiles = tile_set(
        x,
        valid,
        channels=CHANNELS,
        channel_units=["dB", "1", "m", "mm"],
        locations=places,
        source="unit test",
        licence="CC0",
        citation="none",
        simulated=True,
        pixel_size_m=100.0,
        coarse=coarse,
        label_units="%",
        coords={"stations": ("tile", stations)},
    )
    rows, tile_idx, r, c, station = [], [], [], [], []
    for t in range(n):
        if stations[t] == 0:
            continue
        for k, (rr, cc) in enumerate(((5, 20), (25, 12))):
            tile_idx.append(t), r.append(rr), c.append(cc), station.append(f"{places[t]}-{k}")
            rows.append(truth[t, rr, cc])
    readings = sample_set(
        np.asarray(rows),
        groups=[s.split("-")[0] for s in station],
        source="unit test",
        licence="CC0",
        citation="none",
        simulated=True,
        target_units="%",
        target_long_name="soil moisture",
        covariates=x[tile_idx, :, r, c],
        features=CHANNELS,
        coords={
            "tile": ("sample", np.asarray(tile_idx)),
            "row": ("sample", np.asarray(r)),
            "col": ("sample", np.asarray(c)),
            "station": ("sample", station),
        },
        validate=False,
    )
    return tiles, readings, truth


def _net(tiles, **kw):
    args = dict(tiles=tiles, preset="tiny", epochs=6, intermediate_epochs=4, batch_size=8,
                learning_rate=3e-3, min_epochs=2, device="cpu", seed=0)  # fmt: skip
    return SoilMoistureRegressor(**(args | kw))


def test_two_stage_fit_predicts_readings_and_tiles():
    tiles, readings, _ = _data()
    train = readings.isel(sample=np.flatnonzero(readings["group"].values != "p0"))
    test = readings.isel(sample=np.flatnonzero(readings["group"].values == "p0"))
    net = _net(tiles).fit(train)
    # the test place's tiles are never used; the station-less place is (coarse labels)
    places = tiles["location"].values[net.usable_tiles_]
    assert "p0" not in set(places) and "p5" in set(places)
    hist = net.training_histories()
    assert list(hist) == ["intermediate", "finetune"]
    assert hist["intermediate"].task == hist["finetune"].task == "dense_masked"
    pred = net.predict(test)
    assert pred.shape == (test.sizes["sample"],) and np.isfinite(pred).all()
    maps = net.predict_tiles()
    assert maps.shape == (tiles.sizes["tile"], 32, 32)
    t, r, c = (test[k].values for k in ("tile", "row", "col"))
    np.testing.assert_allclose(maps[t, r, c], pred, rtol=1e-5)


def test_stations_only_control_and_input_sets():
    tiles, readings, _ = _data()
    net = _net(tiles, intermediate=False, inputs="sar").fit(readings)
    assert list(net.training_histories()) == ["finetune"]
    assert net.modalities_ == ["sar"] and net.channels_ == {"sar": [0]}
    full = _net(tiles, intermediate=False, inputs="all").fit(readings)
    assert full.modalities_ == ["sar", "optical", "terrain", "meteo"]


def test_bad_settings_and_data_fail_before_training():
    tiles, readings, _ = _data()
    with pytest.raises(ParameterError, match="inputs="):
        _net(tiles, inputs="radar").fit(readings)
    with pytest.raises(ParameterError, match="tiles must be"):
        _net(None).fit(readings)
    with pytest.raises(SchemaError, match="coarse"):
        _net(tiles.drop_vars(["coarse", "coarse_mask"])).fit(readings)
    small, r_small, _ = _data(side=40)
    with pytest.raises(ParameterError, match="multiple of 32"):
        _net(small).fit(r_small)


def test_predict_area_tile_by_tile_matches_the_whole_tile():
    from soilbook.maps import predict_area, tile_windows

    tiles, readings, _ = _data()
    net = _net(tiles, intermediate=False, epochs=2).fit(readings)
    x, v = tiles["inputs"].values[0], tiles["valid"].values[0]
    whole = net.predict_tiles()[0]
    # 4 windows of 16 pixels with a halo reaching the whole 32-pixel tile: each window sees the
    # full tile as context, so the stitched map equals the one-pass map exactly
    area = predict_area(net.predict_array, lambda ry, rx: (x[:, ry, rx], v[:, ry, rx]), 32, 32,
                        tile=16, halo=16)  # fmt: skip
    np.testing.assert_allclose(area, whole, rtol=1e-4, atol=1e-4)
    wins = tile_windows(100, 70, 32, 8)
    covered = np.zeros((100, 70), dtype=int)
    for ry, rx, ky, kx in wins:
        covered[ry, rx][ky, kx] += 1
    assert (covered == 1).all() and len(wins) == 4 * 3


class _VVModel:
    """A fitted-like model whose map is 20 + 5·VV (channel 0), as the test tiles' truth."""

    def __init__(self, tiles):
        self.tiles = tiles

    def predict_tiles(self, tiles):
        return 20 + 5 * tiles["inputs"].values[:, 0]


def test_tile_permutation_importance_exchanges_whole_modalities_between_tiles():
    from soilbook.explain import tile_permutation_importance

    tiles, readings, _ = _data()
    groups = {"sar": [0], "optical": [1], "terrain": [2], "meteo": [3]}
    imp = tile_permutation_importance(_VVModel(tiles), readings, groups, n_repeats=2, seed=0)
    by = imp.set_index("group")
    assert imp.iloc[0]["group"] == "sar" and by.loc["sar", "importance"] > 3.0
    for other in ("optical", "terrain", "meteo"):  # the model ignores them: exactly no change
        assert by.loc[other, "importance"] == 0.0
    assert by.loc["sar", "members"] == "VV" and (imp["baseline"] < 0.5).all()
