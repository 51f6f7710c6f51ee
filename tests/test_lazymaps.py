"""Lazy maps beyond memory: equal to eager references, seamless with a halo, lazy until written,
written atomically and resumably to Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from factories import RidgeOnTable
from scipy.ndimage import uniform_filter
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from soilbook import lazymaps, maps
from soilbook.errors import DependencyNotFoundError, ParameterError

H, W, BANDS, CHUNK = 256, 300, 3, 64  # 4 x 5 chunks, the last ones narrower
#: Settings of the module-scoped ``scene`` and ``samples`` fixtures (tests/conftest.py).
SCENE = dict(size=40, n_dates=2, seed=3)
SAMPLES = dict(n_samples=80, window=5, seed=0, block_size_m=70.0)


@pytest.fixture(scope="module")
def synthetic() -> xr.Dataset:
    return lazymaps.lazy_scene(H, W, BANDS, chunk=CHUNK, seed=1)


@pytest.fixture(scope="module")
def eager(synthetic) -> np.ndarray:
    """The synthetic scene's values, computed in one piece (one chunk)."""
    return lazymaps.lazy_scene(H, W, BANDS, chunk=max(H, W), seed=1)["bands"].values


class Counting:
    """A per-block function that counts its calls and the largest block it saw."""

    def __init__(self, fn, fail_on: int | None = None):
        self.fn, self.fail_on, self.calls, self.largest = fn, fail_on, 0, (0, 0)

    def __call__(self, block):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash in the middle of a write")
        self.largest = max(self.largest, block.shape[-2:])
        return self.fn(block)


def mean3(block: np.ndarray) -> np.ndarray:
    """A 3 x 3 mean filter of band 0 (needs one pixel of context)."""
    return uniform_filter(block[0].astype(np.float64), size=3, mode="nearest")


def test_lazy_scene_is_independent_of_chunking_and_labelled(synthetic, eager):
    assert synthetic["bands"].chunks == ((BANDS,), (64,) * 4, (64,) * 4 + (44,))
    np.testing.assert_array_equal(synthetic["bands"].values, eager)
    assert synthetic.attrs["simulated"] is True and synthetic.attrs["crs"] == "EPSG:32633"
    other = lazymaps.lazy_scene(H, W, BANDS, chunk=CHUNK, seed=2)["bands"][:, :8, :8].values
    assert not np.allclose(other, eager[:, :8, :8])  # the seed matters
    assert 0.0 < eager.min() and eager.max() < 1.0


@pytest.mark.parametrize("boundary, pad", [("reflect", "symmetric"), ("nearest", "edge")])
def test_halo_filter_has_no_seams(synthetic, eager, boundary, pad):
    lazy = lazymaps.predict_lazy(mean3, synthetic, halo=1, chunk=CHUNK, boundary=boundary)
    padded = np.pad(eager[0].astype(np.float64), 1, mode=pad)
    expected = uniform_filter(padded, size=3)[1:-1, 1:-1]
    np.testing.assert_allclose(lazy.values, expected, rtol=1e-6, atol=1e-7)
    # the seams in particular (rows/cols 63|64, 127|128, ...)
    seams = np.r_[63, 64, 127, 128, 191, 192]
    np.testing.assert_allclose(lazy.values[seams], expected[seams], rtol=1e-6)
    # without the halo the same filter is wrong exactly at the seams
    seamy = lazymaps.predict_lazy(mean3, synthetic, halo=0, chunk=CHUNK).values
    assert np.abs(seamy[seams] - expected[seams]).max() > 1e-3
    np.testing.assert_allclose(seamy[10:50, 10:50], expected[10:50, 10:50], rtol=1e-6)


def test_nan_boundary_fills_beyond_the_edges(synthetic, eager):
    nanmean = lambda b: np.nan_to_num(uniform_filter(np.isnan(b[0]).astype(float), 3))  # noqa: E731
    lazy = lazymaps.predict_lazy(nanmean, synthetic, halo=1, chunk=CHUNK, boundary="nan").values
    # share of NaN neighbours: 3/9 on the edges, 5/9 at the corners, 0 inside (and at seams)
    assert lazy[0, 5] == pytest.approx(3 / 9) and lazy[0, 0] == pytest.approx(5 / 9)
    assert np.all(lazy[1:-1, 1:-1] == 0)


def test_matches_maps_predict_area(synthetic, eager):
    """The same 3 x 3 filter through soilbook.maps.predict_area (the in-memory tiled path)."""

    def predict_window(x, v):
        return uniform_filter(x[:, 0].astype(np.float64), size=(1, 3, 3), mode="nearest")

    def read_window(rows, cols):
        x = eager[:, rows, cols]
        return x, np.ones_like(x)

    area = maps.predict_area(predict_window, read_window, H, W, tile=64, halo=8, multiple=1)
    lazy = lazymaps.predict_lazy(mean3, synthetic, halo=1, chunk=CHUNK, boundary="nearest")
    np.testing.assert_allclose(lazy.values, area, rtol=1e-6)


def test_several_outputs_and_estimator_adapter(synthetic, eager):
    X = eager.reshape(BANDS, -1).T[::37]
    y = 2 * X[:, 0] - X[:, 1] + X[:, 2] ** 2
    ridge = Ridge(alpha=1e-3).fit(X, y)
    lazy = lazymaps.predict_lazy(lazymaps.estimator_block(ridge), synthetic, chunk=CHUNK)
    expected = ridge.predict(eager.reshape(BANDS, -1).T).reshape(H, W)
    assert lazy.dims == ("y", "x") and lazy.dtype == np.float32
    np.testing.assert_allclose(lazy.values, expected, rtol=1e-5)

    forest = RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    block = lazymaps.estimator_block(forest, spread=True)
    both = lazymaps.predict_lazy(block, synthetic, chunk=CHUNK)
    assert both.dims == ("output", "y", "x") and list(both["output"].values) == ["mean", "spread"]
    sub = eager[:, :20, :30].reshape(BANDS, -1).T
    trees = np.stack([t.predict(sub) for t in forest.estimators_])
    np.testing.assert_allclose(both.values[0, :20, :30].ravel(), forest.predict(sub), rtol=1e-5)
    np.testing.assert_allclose(both.values[1, :20, :30].ravel(), trees.std(0), rtol=1e-4)


def test_nan_pixels_are_not_predicted(synthetic):
    ridge = Ridge().fit(np.random.default_rng(0).random((50, BANDS)), np.arange(50.0))
    holes = synthetic.where(synthetic["x"] < synthetic["x"][10])  # NaN beyond column 10
    lazy = lazymaps.predict_lazy(lazymaps.estimator_block(ridge), holes, chunk=CHUNK).values
    assert np.isfinite(lazy[:, :10]).all() and np.isnan(lazy[:, 10:]).all()


def test_adapter_maps_schema_scenes_like_predict_map(scene, samples):
    model = RidgeOnTable().fit(samples)
    lazy_scene = scene.chunk({"y": 16, "x": 16})
    block = lazymaps.estimator_block(model, lazy_scene)
    lazy = lazymaps.predict_lazy(block, lazy_scene, chunk=16)
    expected = maps.predict_map(model, scene)
    np.testing.assert_allclose(lazy.values, expected.values, rtol=1e-5, atol=1e-6)
    assert lazy.attrs["units"] == expected.attrs["units"] == "g/kg"
    assert lazy.attrs["simulated"] is True
    np.testing.assert_array_equal(lazy["x"].values, scene["x"].values)


def test_nothing_is_computed_before_the_write(synthetic, tmp_path):
    fn = Counting(mean3)
    lazy = lazymaps.predict_lazy(fn, synthetic, halo=1, chunk=CHUNK, outputs=["mean"])
    assert fn.calls == 0 and hasattr(lazy.data, "dask")
    lazymaps.predict_lazy(fn, synthetic, halo=1, chunk=CHUNK)  # outputs unknown: one probe
    assert fn.calls == 1 and fn.largest == (6, 6)
    fn.calls = 0
    lazymaps.write_map(lazy, tmp_path / "m.zarr")
    assert fn.calls == 4 * 5  # each chunk exactly once ...
    assert fn.largest <= (CHUNK + 2, CHUNK + 2)  # ... and never more than a chunk and its halo


def test_zarr_round_trip_is_atomic(synthetic, tmp_path):
    lazy = lazymaps.predict_lazy(mean3, synthetic, halo=1, chunk=CHUNK)
    path = lazymaps.write_map(lazy, tmp_path / "map.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.zarr"]  # no .partial left
    back = xr.open_zarr(path)["prediction"]
    assert back.chunks == ((64,) * 4, (64,) * 4 + (44,))
    np.testing.assert_array_equal(back.values, lazy.values)
    np.testing.assert_array_equal(back["y"].values, synthetic["y"].values)
    assert back.attrs["crs"] == "EPSG:32633" and back.attrs["simulated"] is True
    with pytest.raises(ParameterError, match="exists"):
        lazymaps.write_map(lazy, path)
    lazymaps.write_map(lazy * 2, path, overwrite=True)
    np.testing.assert_allclose(xr.open_zarr(path)["prediction"].values, 2 * lazy.values)


def test_failure_leaves_no_final_path_and_resumes(synthetic, tmp_path):
    fn = Counting(mean3, fail_on=12)  # row 0 (5 chunks) and row 1 are written, then a crash
    lazy = lazymaps.predict_lazy(fn, synthetic, halo=1, chunk=CHUNK, outputs=["mean"])
    path = tmp_path / "map.zarr"
    with pytest.raises(RuntimeError, match="simulated crash"):
        lazymaps.write_map(lazy, path)
    assert not path.exists() and (tmp_path / "map.zarr.partial").is_dir()
    fn.fail_on, fn.calls = None, 0
    lazymaps.write_map(lazy, path)  # the same map: resumes after the recorded rows
    assert fn.calls == 2 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.zarr"]
    expected = lazymaps.predict_lazy(mean3, synthetic, halo=1, chunk=CHUNK).values
    np.testing.assert_allclose(xr.open_zarr(path)["prediction"].values, expected, rtol=1e-6)
    fn.calls = 0
    lazymaps.write_map(lazy, tmp_path / "fresh.zarr", resume=False)
    assert fn.calls == 4 * 5


def _ridge_map(seed: int = 1) -> xr.DataArray:
    """A Ridge map of a freshly built scene: the same map, rebuilt from scratch at every call."""
    scene = lazymaps.lazy_scene(H, W, BANDS, chunk=CHUNK, seed=seed)
    X = np.random.default_rng(0).random((60, BANDS))
    ridge = Ridge().fit(X, X @ np.arange(1.0, BANDS + 1))
    return lazymaps.predict_lazy(lazymaps.estimator_block(ridge), scene, chunk=CHUNK)


_WRITE_LOG = lazymaps._write_log


def _crash_at_log(monkeypatch, call: int) -> list[list[int]]:
    """Make the row log fail at its ``call``-th write (after that row is stored); returns the
    rows each successful log write recorded (``call=0``: never fails)."""
    logged, real = [], _WRITE_LOG

    def write_log(log, fingerprint, rows):
        if len(logged) + 1 == call:
            raise RuntimeError("simulated crash after a row")
        logged.append(sorted(rows))
        real(log, fingerprint, rows)

    monkeypatch.setattr(lazymaps, "_write_log", write_log)
    return logged


def test_a_rebuilt_map_resumes(tmp_path, monkeypatch):
    """A map rebuilt from the same inputs (as after a restart) resumes; other coords do not."""
    path = tmp_path / "map.zarr"
    _crash_at_log(monkeypatch, call=3)  # rows 0 and 1 logged, row 2 stored but not logged
    with pytest.raises(RuntimeError, match="simulated crash"):
        lazymaps.write_map(_ridge_map(), path)
    logged = _crash_at_log(monkeypatch, call=0)
    lazymaps.write_map(_ridge_map(), path)
    assert logged == [[0, 1, 2], [0, 1, 2, 3]]  # only rows 2 and 3 were written again
    back = xr.open_zarr(path)["prediction"].values
    np.testing.assert_allclose(back, _ridge_map().values, rtol=1e-6)

    _crash_at_log(monkeypatch, call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        lazymaps.write_map(_ridge_map(), tmp_path / "other.zarr")
    logged = _crash_at_log(monkeypatch, call=0)
    shifted = _ridge_map().assign_coords(x=_ridge_map()["x"] + 10.0)  # same data, other place
    lazymaps.write_map(shifted, tmp_path / "other.zarr")
    assert logged[0] == [0]  # started afresh
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "other.zarr")["x"], shifted["x"])


def test_a_stale_log_never_meets_a_new_store(synthetic, tmp_path, monkeypatch):
    """Map A is interrupted, map B re-creates the partial store and is interrupted before its
    first row: a rerun of A must not trust A's old log over B's empty store."""
    path = tmp_path / "map.zarr"
    a = lazymaps.predict_lazy(mean3, synthetic, halo=1, chunk=CHUNK, outputs=["m"])
    _crash_at_log(monkeypatch, call=3)
    with pytest.raises(RuntimeError):
        lazymaps.write_map(a, path)
    real_init = lazymaps._zarr_init

    def init_then_crash(da, partial):
        real_init(da, partial)
        raise RuntimeError("simulated crash after creating the store")

    monkeypatch.setattr(lazymaps, "_zarr_init", init_then_crash)
    with pytest.raises(RuntimeError, match="after creating"):
        lazymaps.write_map(a * 2, path)
    monkeypatch.undo()
    lazymaps.write_map(a, path)
    np.testing.assert_allclose(xr.open_zarr(path)["prediction"].values, a.values, rtol=1e-6)


def test_a_wrong_number_of_outputs_is_a_parameter_error(synthetic):
    lazy = lazymaps.predict_lazy(mean3, synthetic, chunk=CHUNK, outputs=["a", "b"])
    with pytest.raises(ParameterError, match="returned 1 maps for a block; expected 2"):
        lazy.compute()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(halo=40, chunk=64), "chunk=64 with halo=40"),
        (dict(halo=-1), "halo=-1"),
        (dict(chunk=0), "chunk=0"),
        (dict(boundary="wrap"), "boundary='wrap'"),
        (dict(variables=["nope"]), "not data variables"),
    ],
)
def test_bad_arguments(synthetic, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        lazymaps.predict_lazy(mean3, synthetic, **kwargs)


def test_bad_scenes_and_maps(synthetic, tmp_path):
    with pytest.raises(ParameterError, match="no 'x' dimension"):
        lazymaps.predict_lazy(mean3, synthetic.rename(x="lon"), chunk=CHUNK)
    with pytest.raises(ParameterError, match=r"expected an xarray\.Dataset"):
        lazymaps.predict_lazy(mean3, synthetic["bands"], chunk=CHUNK)
    mixed = synthetic.assign(profile=("band", np.arange(BANDS)))
    with pytest.raises(ParameterError, match="'profile' has dims"):
        lazymaps.predict_lazy(mean3, mixed, chunk=CHUNK)
    with pytest.raises(ParameterError, match="shape"):
        lazymaps.predict_lazy(lambda b: b[0, :2], synthetic, chunk=CHUNK)
    with pytest.raises(ParameterError, match=r"expected an xarray\.DataArray"):
        lazymaps.write_map(synthetic, tmp_path / "x.zarr")
    lazy = lazymaps.predict_lazy(mean3, synthetic, chunk=CHUNK, outputs=["m"])
    with pytest.raises(ParameterError, match="format='png'"):
        lazymaps.write_map(lazy, tmp_path / "x.png", format="png")
    with pytest.raises(ParameterError, match="neither predict"):
        lazymaps.estimator_block(object())


def test_cog_needs_rioxarray(synthetic, tmp_path):
    lazy = lazymaps.predict_lazy(mean3, synthetic, chunk=CHUNK, outputs=["m"])
    try:
        import rioxarray
    except ModuleNotFoundError:
        with pytest.raises(DependencyNotFoundError, match="rioxarray"):
            lazymaps.write_map(lazy, tmp_path / "map.tif", format="cog")
        assert not (tmp_path / "map.tif").exists()
    else:
        path = lazymaps.write_map(lazy, tmp_path / "map.tif", format="cog")
        back = rioxarray.open_rasterio(path).squeeze(drop=True)
        np.testing.assert_allclose(back.values, lazy.values, rtol=1e-6)
