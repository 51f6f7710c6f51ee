"""Whole-scene maps: the fast path agrees with the naive per-pixel loop, for networks and baselines."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from factories import RidgeOnTable

from soilbook import maps
from soilbook.data.scene import pixels_as_samples
from soilbook.data.schema import SchemaError
from soilbook.models.ss_soilnet import SSSoilNetRegressor

SIZE, WINDOW = 28, 5
#: Settings of the module-scoped ``scene`` and ``samples`` fixtures (tests/conftest.py).
SCENE = dict(size=SIZE, n_dates=2, seed=3)
SAMPLES = dict(n_samples=120, window=WINDOW, seed=0, block_size_m=70.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def net(samples) -> SSSoilNetRegressor:
    return SSSoilNetRegressor(width=8, heads=2, n_queries=2, epochs=2, device="cpu").fit(samples)


def test_network_map_matches_naive_loop(net, scene):
    dense = maps.predict_map(net, scene)
    assert isinstance(dense, xr.DataArray) and dense.dims == ("y", "x")
    assert dense.shape == (SIZE, SIZE)
    assert dense.attrs["units"] == scene["target"].attrs["units"]
    assert dense.attrs["long_name"].startswith("predicted")
    np.testing.assert_array_equal(dense["x"].values, scene["x"].values)
    rng = np.random.default_rng(0)
    rows = np.r_[0, SIZE - 1, rng.integers(0, SIZE, 10)]  # corners exercise the padding
    cols = np.r_[0, SIZE - 1, rng.integers(0, SIZE, 10)]
    naive = maps.predict_map_naive(net, scene, rows, cols)
    np.testing.assert_allclose(dense.values[rows, cols], naive, atol=1e-4, rtol=1e-5)


def test_tabular_map_in_chunks_matches_predict(scene, samples):
    ridge = RidgeOnTable().fit(samples)
    dense = maps.predict_map(ridge, scene, chunk_pixels=100)  # 8 chunks
    expected = ridge.predict(pixels_as_samples(scene)).reshape(SIZE, SIZE)
    np.testing.assert_allclose(dense.values, expected, rtol=1e-6)
    assert dense.attrs["units"] == "g/kg" and dense.attrs["model"] == "RidgeOnTable"
    naive = maps.predict_map_naive(ridge, scene, [3, 20], [5, 27])
    np.testing.assert_allclose(naive, expected[[3, 20], [5, 27]], rtol=1e-6)


def test_map_checks_its_inputs(net, scene):
    with pytest.raises(SchemaError):
        maps.predict_map(net, scene.drop_vars("layers").drop_dims("layer"))
    with pytest.raises(ValueError, match="same length"):
        maps.predict_map_naive(net, scene, [1, 2], [1])
    with pytest.raises(ValueError, match="chunk_pixels"):
        maps.predict_map(net, scene, chunk_pixels=0)


def test_log_target_wrapper_maps_with_the_inner_network(samples, scene):
    from soilbook.evaluate import Log1pTarget

    wrapped = Log1pTarget(
        SSSoilNetRegressor(width=8, heads=2, n_queries=2, epochs=2, device="cpu")
    ).fit(samples)
    dense = maps.predict_map(wrapped, scene)
    assert dense.attrs["method"].startswith("predict_scene")
    assert dense.attrs["units"] == "g/kg"  # not the inner model's log1p(g/kg)
    rows, cols = np.array([0, 5, 27]), np.array([27, 9, 0])
    naive = maps.predict_map_naive(wrapped, scene, rows, cols)
    np.testing.assert_allclose(dense.values[rows, cols], naive, atol=1e-4, rtol=1e-5)


# -- honest map scores, interval maps and the area of applicability ------------------------------


def _fold(samples):
    from soilbook.evaluate import group_kfold

    return group_kfold(samples, 4, seed=0)[0]


def test_heldout_block_mask_uses_the_samples_blocks(scene, samples):
    train, test = _fold(samples)
    side = samples.attrs["block_size_m"]
    mask = maps.heldout_block_mask(scene, samples, train, side)
    assert mask.dims == ("y", "x") and mask.dtype == bool and mask.shape == (SIZE, SIZE)
    rows, cols = samples["row"].values, samples["col"].values
    groups = samples["group"].values.astype(str)
    # pixels carry the samples' own block labels
    np.testing.assert_array_equal(maps.pixel_blocks(scene, side)[rows, cols], groups)
    assert mask.values[rows[test], cols[test]].all()  # test samples' pixels are held out
    assert not mask.values[rows[train], cols[train]].any()
    held = ~np.isin(maps.pixel_blocks(scene, side), np.unique(groups[train]))
    np.testing.assert_array_equal(mask.values, held)
    assert mask.attrs["n_pixels"] == int(held.sum()) and 0 < mask.attrs["share"] < 1
    # a buffer removes held-out pixels near training samples
    buffered = maps.heldout_block_mask(scene, samples, train, side, buffer_m=25.0)
    assert buffered.attrs["n_pixels"] < mask.attrs["n_pixels"]
    assert not (buffered.values & ~mask.values).any()
    # samples grouped by another rule are refused rather than silently mis-blocked
    shuffled = samples.assign_coords(group=("sample", np.roll(groups, 1)))
    with pytest.raises(SchemaError, match="another rule"):
        maps.heldout_block_mask(scene, shuffled, train, side)


def test_score_map_scores_only_masked_pixels(scene, samples):
    from soilbook.evaluate import metrics_table

    train, _ = _fold(samples)
    truth = scene["target"]
    pred = truth * 1.1 + 0.5
    mask = maps.heldout_block_mask(scene, samples, train, samples.attrs["block_size_m"])
    got = maps.score_map(truth, pred, mask)
    sel = mask.values
    expected = metrics_table(truth.values[sel], pred.values[sel])
    assert got["rmse"] == pytest.approx(expected["rmse"])
    assert got["n_pixels"] == int(sel.sum()) and got["share"] == pytest.approx(sel.mean())
    assert maps.score_map(truth, pred)["n_pixels"] == SIZE * SIZE
    with pytest.raises(ValueError, match="selects no pixel"):
        maps.score_map(truth, pred, np.zeros((SIZE, SIZE), bool))


def test_interval_and_applicability_maps(scene, samples):
    from soilbook.baselines import RandomForestBaseline
    from soilbook.data.schema import subset
    from soilbook.evaluate import group_kfold

    train, _ = _fold(samples)
    ds_train = subset(samples, train)
    rf = RandomForestBaseline(n_estimators=10, seed=0).fit(ds_train)
    q = maps.quantile_map(rf, ds_train, scene, (0.05, 0.5, 0.95))
    assert q.dims == ("quantile", "y", "x") and q.shape == (3, SIZE, SIZE)
    assert bool((q.sel(quantile=0.05) <= q.sel(quantile=0.95)).all())
    assert q.attrs["units"] == "g/kg"
    mask = maps.heldout_block_mask(scene, samples, train, samples.attrs["block_size_m"])
    s = maps.score_interval_map(
        scene["target"], q.sel(quantile=0.05), q.sel(quantile=0.95), mask, level=0.9
    )
    assert 0.0 <= s["coverage"] <= 1.0 and s["n_pixels"] == mask.attrs["n_pixels"]

    pred = maps.predict_map(rf, scene)
    conf = maps.conformal_map(pred, np.linspace(-2, 2, 41), level=0.9)
    np.testing.assert_allclose(conf["high"] - conf["low"], 2 * conf.attrs["halfwidth"])
    assert conf["low"].dims == ("y", "x")

    aoa = maps.applicability_map(
        ds_train, scene, transform=rf.transform, folds=group_kfold(ds_train, 3)
    )
    assert aoa["di"].shape == (SIZE, SIZE) and aoa["inside"].dtype == bool
    rows, cols = ds_train["row"].values, ds_train["col"].values
    assert aoa["inside"].values[rows, cols].all()  # training pixels are inside
    assert 0 < aoa.attrs["share_inside"] <= 1 and aoa.attrs["threshold"] > 0
