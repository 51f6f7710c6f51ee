"""Whole-scene maps: the fast path agrees with the naive per-pixel loop, for networks and baselines."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge

from soilbook import maps
from soilbook.data.scene import pixels_as_samples
from soilbook.data.schema import SchemaError, target_values, to_tabular
from soilbook.models.ss_soilnet import SSSoilNetRegressor

SIZE, WINDOW = 28, 5
#: Settings of the module-scoped ``scene`` and ``samples`` fixtures (tests/conftest.py).
SCENE = dict(size=SIZE, n_dates=2, seed=3)
SAMPLES = dict(n_samples=120, window=WINDOW, seed=0, block_size_m=70.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def net(samples) -> SSSoilNetRegressor:
    return SSSoilNetRegressor(width=8, heads=2, n_queries=2, epochs=2, device="cpu").fit(samples)


class RidgeOnTable(RegressorMixin, BaseEstimator):
    """A minimal tabular estimator on schema Datasets (no predict_scene), like the baselines."""

    def fit(self, ds, y=None):
        self.model_ = Ridge().fit(to_tabular(ds), target_values(ds))
        self.target_units_ = ds["target"].attrs["units"]
        return self

    def predict(self, ds):
        return self.model_.predict(to_tabular(ds))


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
