"""Lazy Earth Engine scenes (soilbook.data.earthengine.scene) and the salinity pixel image: read
block by block from a fake computePixels server, cached, mapped with soilbook.lazymaps (offline)."""

from __future__ import annotations

import pickle

import ee_harness
import numpy as np
import pytest
import xarray as xr
from ee_fakes import FakeTransport, expected
from ee_harness import BOX, DATES, calls, const, graph, renames
from factories import sample_set
from sklearn.linear_model import LinearRegression

from soilbook import lazymaps
from soilbook.data import earthengine as E
from soilbook.data.earthengine import scene as S
from soilbook.errors import ParameterError

ee_offline = ee_harness.ee_offline

BANDS = ("B2", "B4", "B8", "elevation")
#: A UTM 50N grid in the Yellow River Delta, 10 m pixels: 3 x 2 blocks of 16 (the last ones
#: narrower).
GRID = E.PixelGrid("EPSG:32650", 400_000.0, 4_180_000.0, 10.0, 37, 23)
CHUNK = 16
IMAGE = {"image": "fake"}


def _fake(**kwargs) -> FakeTransport:
    return FakeTransport(BANDS, origin=(GRID.x0, GRID.y0), **kwargs)


def _scene(fake: FakeTransport, grid: E.PixelGrid = GRID, **kwargs) -> xr.DataArray:
    return E.lazy_image(IMAGE, BANDS, grid, chunk=CHUNK, transport=fake, **kwargs)


# -- lazy_image --------------------------------------------------------------------------------


def test_lazy_image_is_the_payload_and_sends_nothing_when_built():
    fake = _fake()
    scene = _scene(fake)
    assert fake.n_calls == 0
    assert scene.name == "bands" and scene.dims == ("band", "y", "x")
    assert scene.dtype == np.float32
    assert scene.chunks == ((4,), (16, 7), (16, 16, 5))
    assert list(scene["band"].values) == list(BANDS)
    np.testing.assert_allclose(scene["x"].values, GRID.xs())
    np.testing.assert_allclose(scene["y"].values, GRID.ys())
    assert scene.attrs["crs"] == "EPSG:32650" and scene.attrs["scale"] == 10.0
    assert scene.attrs["simulated"] is False
    np.testing.assert_array_equal(scene.values, expected(GRID, BANDS, BANDS))
    assert fake.n_calls == 6  # one request per block
    assert {(row, col) for row, col, _ in fake.calls} == {
        (r, c) for r in (0, 16) for c in (0, 16, 32)
    }


def test_lazy_image_of_a_window_and_a_part_of_the_scene():
    fake = _fake()
    window = GRID.window(5, 3, 20, 12)  # a grid of its own, off the blocks of GRID
    sub = _scene(fake, window)
    np.testing.assert_array_equal(sub.values, expected(GRID, BANDS, BANDS)[:, 3:15, 5:25])
    np.testing.assert_allclose(sub["x"].values, GRID.xs()[5:25])
    # a part of the whole scene: only the blocks it touches are fetched
    fake = _fake()
    part = _scene(fake).isel(y=slice(2, 9), x=slice(18, 30)).sel(band=["B8", "B2"])
    assert fake.n_calls == 0
    np.testing.assert_array_equal(part.values, expected(GRID, ["B8", "B2"], BANDS)[:, 2:9, 18:30])
    assert [(row, col) for row, col, _ in fake.calls] == [(0, 16)]
    assert fake.calls[0][2] == BANDS  # a block holds every band


def test_computing_one_block_fetches_that_block_only_and_the_cache_serves_a_rerun(tmp_path):
    fake = _fake()
    scene = _scene(fake, cache_dir=tmp_path)
    block = scene.data.blocks[0, 1, 2].compute()
    np.testing.assert_array_equal(block, expected(GRID, BANDS, BANDS)[:, 16:, 32:])
    assert [(row, col) for row, col, _ in fake.calls] == [(16, 32)]
    first = scene.values
    assert fake.n_calls == 6  # the five other blocks
    again = _fake()
    np.testing.assert_array_equal(_scene(again, cache_dir=tmp_path).values, first)
    assert again.n_calls == 0  # every piece comes from the cache
    assert scene.data.name == _scene(again).data.name  # deterministic keys (resumable maps)


def test_lazy_image_shares_the_request_limit_between_blocks():
    fake = _fake(delay=0.02)
    _scene(fake, max_workers=2).compute(scheduler="threads", num_workers=6)
    assert fake.n_calls == 6 and fake.max_in_flight <= 2
    # the gate travels to other processes (dask.distributed) with its limits, fresh locks
    gate = pickle.loads(pickle.dumps(S._Gate(3, 5.0)))
    assert (gate.max_workers, gate.max_rate) == (3, 5.0)
    assert all(gate.slots.acquire(blocking=False) for _ in range(3))
    assert not gate.slots.acquire(blocking=False)


def test_lazy_image_masked_pixels_are_nan():
    fake = _fake(fill={("B4", 20, 33): E.FILL_VALUE})
    scene = _scene(fake)
    assert np.isnan(scene.sel(band="B4").values[20, 33])
    assert np.isfinite(scene.values).sum() == scene.size - 1


def test_lazy_image_refuses_bad_arguments_before_any_request():
    fake = _fake()
    with pytest.raises(ParameterError, match="is not a PixelGrid"):
        E.lazy_image(IMAGE, BANDS, (0, 0, 1, 1), transport=fake)
    with pytest.raises(ParameterError, match="chunk"):
        E.lazy_image(IMAGE, BANDS, GRID, chunk=0, transport=fake)
    with pytest.raises(ParameterError, match="names a band twice"):
        E.lazy_image(IMAGE, ["B2", "B2"], GRID, transport=fake)
    with pytest.raises(ParameterError, match="max_workers = 41"):
        E.lazy_image(IMAGE, BANDS, GRID, transport=fake, max_workers=41)
    with pytest.raises(ParameterError, match="neither an ee object nor JSON"):
        E.lazy_image(object(), BANDS, GRID, transport=fake)
    assert fake.n_calls == 0


# -- area_grid ---------------------------------------------------------------------------------


def test_area_grid_is_the_utm_grid_of_the_box():
    grid = E.area_grid(BOX, 30)
    assert grid == E.grid_for_bbox(BOX, 30, "EPSG:32650")
    assert E.area_grid("118.8,37.6,119.0,37.9", 30, "EPSG:32650") == grid
    south = E.area_grid((-58.5, -34.7, -58.3, -34.5), 100)
    assert south.crs == E.utm_crs(-34.6, -58.4) == "EPSG:32721"


def test_area_grid_refuses_an_oversized_area_first():
    huge = (100.0, 0.0, 110.0, 10.0)
    with pytest.raises(ParameterError, match=r"pixels; at most 2,500,000,000 in one extraction"):
        E.area_grid(huge, 10, crs="not a crs")  # the area is refused before the crs is read
    with pytest.raises(ParameterError, match="in one extraction"):
        E.area_grid(BOX, 30, max_pixels=1000)
    with pytest.raises(ParameterError, match="scale is in metres"):
        E.area_grid(BOX, 30, crs="EPSG:4326")
    with pytest.raises(ParameterError, match="aoi is empty"):
        E.area_grid("", 30)


# -- the salinity pixel image and its features -------------------------------------------------


def test_salinity_pixel_image_is_what_the_point_request_samples(ee_offline):
    image, names = E.salinity_pixel_image(BOX, DATES)
    west, south, east, north = BOX
    corners = [
        {"id": "sw", "lat": south, "lon": west},
        {"id": "ne", "lat": north, "lon": east},
    ]
    request = E.build_salinity_request(corners, DATES, window=None)
    reflectance = [E.dated(b, t) for t in range(len(DATES)) for b in request.bands]
    assert names == reflectance + list(request.covariates)
    assert names == E.salinity_pixel_names(len(DATES))
    # the very image the request samples at points on the same box
    tree = graph(image)
    assert tree == graph(request.image)
    assert tree["functionInvocationValue"]["functionName"] == "Image.unmask"
    assert const(tree["functionInvocationValue"]["arguments"]["value"]) == E.FILL_VALUE
    for t in range(len(DATES)):
        assert [E.dated(b, t) for b in E.DEFAULT_BANDS] in renames(tree)
    selects = [const(a["bandSelectors"]) for a in calls(tree, "Image.select")]
    assert list(request.covariates) in selects


def test_a_real_image_becomes_a_lazy_scene_without_a_request(ee_offline, monkeypatch):
    ee = ee_offline
    monkeypatch.setattr(ee.data, "computePixels", lambda *_: pytest.fail("a request was sent"))
    image, names = E.salinity_pixel_image(BOX, DATES)
    grid = E.area_grid(BOX, 30)
    scene = E.lazy_image(image, names, grid)
    assert scene.shape == (len(names), grid.height, grid.width)
    assert scene.chunks[1] == (1024, grid.height - 1024) and scene.data.npartitions == 2
    assert scene.data.name == E.lazy_image(image, names, grid).data.name
    other, _ = E.salinity_pixel_image(BOX, DATES, cloud_prob_max=20)
    assert E.lazy_image(other, names, grid).data.name != scene.data.name


def test_salinity_pixel_image_without_index_bands_and_its_checks(ee_offline):
    image, names = E.salinity_pixel_image(BOX, DATES[:1], bands=["B3", "B11"], scale=20)
    assert names == ["B3_t0", "B11_t0", "elevation", "slope", "tpi", "Lai_t0", "Fpar_t0"]
    assert not calls(graph(image), "Image.normalizedDifference")
    with pytest.raises(ParameterError, match="in one extraction"):
        E.salinity_pixel_image((100.0, 0.0, 110.0, 10.0), DATES)
    with pytest.raises(ParameterError, match="not a non-empty list of"):
        E.salinity_pixel_image(BOX, [])


def _samples(n: int, bands: list[str], n_dates: int, features: list[str], seed: int = 0):
    rng = np.random.default_rng(seed)
    return sample_set(
        rng.uniform(1, 20, n),
        rng.uniform(0.02, 0.4, (n, n_dates, len(bands))),
        rng.normal(size=(n, len(features))),
        dates=[s for s, _ in DATES[:n_dates]],
        bands=bands,
        features=dict.fromkeys(features, "other"),
        groups=np.arange(n),
    )


def test_pixel_features_orders_the_sample_values_by_name():
    bands = ["B2", "B4", "B8"]
    names = E.salinity_pixel_names(2, bands)
    ds = _samples(5, bands, 2, names[6:])
    table = E.pixel_features(ds, names)
    assert table.shape == (5, len(names))
    np.testing.assert_array_equal(table[:, 4], ds["reflectance"].values[:, 1, 1])  # B4_t1
    np.testing.assert_array_equal(
        table[:, names.index("Lai_t1")], ds["covariates"].sel(feature="Lai_t1").values
    )
    shuffled = ["tpi", "B8_t0", "Fpar_t0"]
    np.testing.assert_array_equal(
        E.pixel_features(ds, shuffled),
        table[:, [names.index(n) for n in shuffled]],
    )
    with pytest.raises(ParameterError, match=r"no feature\(s\) \['B5_t0', 'B2_t2'\]"):
        E.pixel_features(ds, ["B2_t0", "B5_t0", "B2_t2"])
    with pytest.raises(ParameterError, match="non-empty list"):
        E.pixel_features(ds, "B2_t0")


# -- end to end: a fitted model mapped from the lazy scene to Zarr -----------------------------


def test_lazy_scene_to_a_zarr_map_equals_the_eager_prediction(tmp_path):
    names = list(BANDS)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 3e6, (50, len(names)))
    model = LinearRegression().fit(x, x @ [1e-6, -2e-6, 3e-6, 5e-7] + 0.5)
    fake = _fake()
    scene = _scene(fake)
    lazy = lazymaps.predict_lazy(
        lazymaps.estimator_block(model),
        xr.Dataset({"bands": scene}, attrs=scene.attrs),
        chunk=CHUNK,
    )
    assert fake.n_calls == 0
    path = lazymaps.write_map(lazy, tmp_path / "map.zarr")
    written = xr.open_zarr(path)["prediction"]
    payload = expected(GRID, names, BANDS).astype(np.float32)
    eager = model.predict(payload.reshape(len(names), -1).T).reshape(GRID.height, GRID.width)
    np.testing.assert_allclose(written.values, eager, rtol=1e-5)
    np.testing.assert_allclose(written["x"].values, GRID.xs())
    assert written.attrs["crs"] == "EPSG:32650" and written.attrs["simulated"] is False
    assert fake.n_calls == 6  # each block read once
