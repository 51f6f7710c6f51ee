"""The pixel engine (soilbook.data.earthengine.pixels): grids, request plans, the parallel fetch
with retries and its resumable cache, against a fake computePixels server (offline, no real
sleeping)."""

from __future__ import annotations

import math

import ee_harness
import numpy as np
import pytest
from ee_fakes import FakeTransport, expected
from ee_harness import YRD_POINTS

from soilbook.data.earthengine import FILL_VALUE, utm_crs
from soilbook.data.earthengine import pixels as P
from soilbook.errors import DataUnavailableError, ParameterError

ee_offline = ee_harness.ee_offline

BANDS = ("B2", "B3", "B4", "B8")
#: A UTM 50N grid in the Yellow River Delta, 10 m pixels.
GRID = P.PixelGrid("EPSG:32650", 400_000.0, 4_180_000.0, 10.0, 37, 23)
#: max_bytes that cuts GRID x 4 bands into several pieces (4 bands x 12 x 12 float64 ~ 4.6 kB).
SMALL = 4 * 12 * 12 * 8


def _no_sleep(seconds: float) -> None:
    """A sleep that does not sleep."""


def _fetch(transport, **kwargs):
    """fetch_image of GRID's BANDS through ``transport``, without a bar or real sleeping."""
    args = {"progress": False, "sleep": _no_sleep, "max_bytes": SMALL} | kwargs
    return P.fetch_image({"image": "fake"}, GRID, BANDS, transport=transport, **args)


def _fake(**kwargs) -> FakeTransport:
    return FakeTransport(BANDS, origin=(GRID.x0, GRID.y0), **kwargs)


# -- grids -------------------------------------------------------------------------------------


def test_pixel_grid_to_ee_window_and_centres():
    assert GRID.to_ee() == {
        "dimensions": {"width": 37, "height": 23},
        "affineTransform": {
            "scaleX": 10.0,
            "shearX": 0,
            "translateX": 400_000.0,
            "shearY": 0,
            "scaleY": -10.0,
            "translateY": 4_180_000.0,
        },
        "crsCode": "EPSG:32650",
    }
    sub = GRID.window(3, 2, 5, 4)
    assert (sub.x0, sub.y0, sub.width, sub.height) == (400_030.0, 4_179_980.0, 5, 4)
    np.testing.assert_allclose(GRID.xs()[:2], [400_005.0, 400_015.0])
    np.testing.assert_allclose(GRID.ys()[:2], [4_179_995.0, 4_179_985.0])
    np.testing.assert_allclose(sub.xs(), GRID.xs()[3:8])
    np.testing.assert_allclose(sub.ys(), GRID.ys()[2:6])
    with pytest.raises(ParameterError, match="beyond"):
        GRID.window(35, 0, 5, 4)


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": 0.0}, {"width": 0}, {"height": -3}, {"width": 2.5}, {"crs": ""}, {"x0": math.nan}],
)
def test_pixel_grid_refuses_bad_values(kwargs):
    args = {"crs": "EPSG:32650", "x0": 0.0, "y0": 0.0, "scale": 10.0, "width": 4, "height": 4}
    with pytest.raises(ParameterError):
        P.PixelGrid(**(args | kwargs))


def test_grid_around_centres_the_point_pixel_on_utm():
    from pyproj import Transformer

    lat, lon = 37.7123, 118.8645
    crs = utm_crs(lat, lon)
    assert crs == "EPSG:32650"
    grid = P.grid_around(lat, lon, 65, 10, crs)
    assert (grid.width, grid.height, grid.crs) == (65, 65, crs)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    half = 65 // 2
    left, top = grid.x0 + half * grid.scale, grid.y0 - half * grid.scale
    assert left <= x < left + 10 and top - 10 < y <= top  # the point's pixel is (half, half)
    assert abs(grid.xs()[half] - x) <= 5 and abs(grid.ys()[half] - y) <= 5
    assert grid.x0 % 10 == 0 and grid.y0 % 10 == 0  # on the CRS's 10 m lattice
    with pytest.raises(ParameterError, match="odd"):
        P.grid_around(lat, lon, 64, 10, crs)
    with pytest.raises(ParameterError):
        P.grid_around(lat, lon, 5, 10, "EPSG:not-a-code")
    with pytest.raises(ParameterError, match="lat"):
        P.grid_around(97.0, lon, 5, 10, crs)


def test_grid_for_bbox_covers_the_box_and_refuses_too_many_pixels():
    from pyproj import Transformer

    box = (118.80, 37.70, 118.83, 37.72)
    grid = P.grid_for_bbox(box, 10, "EPSG:32650")
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
    for lon in box[0::2]:
        for lat in box[1::2]:
            x, y = to_utm.transform(lon, lat)
            assert grid.x0 <= x <= grid.x0 + grid.width * 10
            assert grid.y0 - grid.height * 10 <= y <= grid.y0
    assert 250 < grid.width < 300 and 200 < grid.height < 250
    with pytest.raises(ParameterError, match="coarser scale"):
        P.grid_for_bbox(box, 10, "EPSG:32650", max_pixels=1000)


# -- plans -------------------------------------------------------------------------------------


def _covered(pieces, grid, n_bands) -> np.ndarray:
    """How many pieces cover each (band, y, x) of ``grid``."""
    count = np.zeros((n_bands, grid.height, grid.width), dtype=int)
    for p in pieces:
        b0, b1 = p.bands
        count[
            b0:b1, p.row_off : p.row_off + p.grid.height, p.col_off : p.col_off + p.grid.width
        ] += 1
    return count


@pytest.mark.parametrize(
    ("width", "height", "n_bands", "limits"),
    [
        (1, 1, 1, {}),
        (37, 23, 4, {"max_bytes": SMALL}),
        (100, 7, 3, {"max_bytes": 8 * 3 * 50}),
        (5, 300, 2, {"max_bytes": 8 * 2 * 40, "max_side": 30}),
        (5, 300, 1, {"max_side": 30}),
        (200, 90, 1, {"max_side": 16}),
        (64, 64, 10, {"max_bytes": 8 * 64, "max_bands": 3}),
        (10, 10, 50, {"max_bytes": 8 * 7}),
        (3000, 2000, 12, {}),
        (40_000, 500, 1, {}),
    ],
)
def test_plan_pieces_respects_the_limits_and_tiles_exactly(width, height, n_bands, limits):
    grid = P.PixelGrid("EPSG:32650", 0.0, 0.0, 10.0, width, height)
    pieces = P.plan_pieces(grid, n_bands, **limits)
    max_bytes = limits.get("max_bytes", 48 * 2**20)
    max_side = limits.get("max_side", 32768)
    max_bands = limits.get("max_bands", 1024)
    for p in pieces:
        nb = p.bands[1] - p.bands[0]
        assert p.grid.width * p.grid.height * nb * 8 <= max_bytes
        assert p.grid.width <= max_side and p.grid.height <= max_side and 1 <= nb <= max_bands
        assert p.grid == grid.window(p.col_off, p.row_off, p.grid.width, p.grid.height)
    assert (_covered(pieces, grid, n_bands) == 1).all()  # no gap, no overlap
    assert len({p.name for p in pieces}) == len(pieces)


def test_plan_pieces_uses_few_requests():
    grid = P.PixelGrid("EPSG:32650", 0.0, 0.0, 10.0, 3000, 2000)
    pieces = P.plan_pieces(grid, 12)
    needed = math.ceil(3000 * 2000 * 12 * 8 / (48 * 2**20))
    assert needed <= len(pieces) <= 2 * needed
    assert len(P.plan_pieces(GRID, 4)) == 1


@pytest.mark.parametrize(
    ("n_bands", "kwargs", "match"),
    [
        (0, {}, "n_bands"),
        (3, {"bytes_per_value": 0}, "bytes_per_value"),
        (3, {"max_bytes": 4}, "max_bytes"),
        (3, {"max_side": 0}, "max_side"),
    ],
)
def test_plan_pieces_refuses_non_positive_sizes(n_bands, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        P.plan_pieces(GRID, n_bands, **kwargs)


def test_plan_pieces_refuses_absurd_fetches():
    huge = P.PixelGrid("EPSG:4326", -180.0, 90.0, 0.0001, 3_600_000, 1_800_000)
    with pytest.raises(ParameterError, match="coarser scale"):
        P.plan_pieces(huge, 10)
    with pytest.raises(ParameterError, match="PixelGrid"):
        P.plan_pieces((0, 0, 10, 10), 1)


# -- the fetch ---------------------------------------------------------------------------------


def test_fetch_image_assembles_every_piece_in_place():
    fake = _fake()
    da = _fetch(fake)
    assert da.dims == ("band", "y", "x") and da.shape == (4, 23, 37)
    assert da.dtype == np.float64
    np.testing.assert_array_equal(da.values, expected(GRID, BANDS, BANDS))
    assert list(da.band.values) == list(BANDS)
    np.testing.assert_allclose(da.x, GRID.xs())
    np.testing.assert_allclose(da.y, GRID.ys())
    assert da.attrs == {"crs": "EPSG:32650", "scale": 10.0}
    pieces = P.plan_pieces(GRID, 4, max_bytes=SMALL)
    assert len(pieces) > 4 and fake.n_calls == len(pieces)
    assert fake.expressions[0] == {"image": "fake"}


def test_fill_value_becomes_nan():
    fake = _fake(fill={("B3", 5, 7): FILL_VALUE, ("B8", 22, 36): FILL_VALUE})
    da = _fetch(fake)
    assert np.isnan(da.sel(band="B3").values[5, 7]) and np.isnan(da.sel(band="B8").values[22, 36])
    assert int(np.isnan(da.values).sum()) == 2


def test_retries_after_429_then_succeeds():
    waits: list[float] = []
    fake = _fake(retryable={(0, 0): 3})
    da = _fetch(fake, sleep=waits.append, max_rate=None)
    np.testing.assert_array_equal(da.values, expected(GRID, BANDS, BANDS))
    first = [c for c in fake.calls if c[:2] == (0, 0)]
    assert len(first) == 4  # three 429s, then the pixels
    assert len(waits) == 3
    assert all(0 <= w <= 0.5 * 2**k for k, w in enumerate(waits))


def test_backoff_is_exponential_with_full_jitter_and_a_cap():
    top = [P.backoff_delay(k, rng=lambda lo, hi: hi) for k in range(9)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0, 32.0]
    assert all(P.backoff_delay(k, rng=lambda lo, hi: lo) == 0.0 for k in range(9))
    draws = [P.backoff_delay(3) for _ in range(200)]
    assert 0 <= min(draws) and max(draws) <= 4.0 and len(set(draws)) > 100


def test_rate_limiter_spaces_requests():
    clock = [0.0]
    waits: list[float] = []
    limiter = P.RateLimiter(10.0, clock=lambda: clock[0], sleep=waits.append)
    for _ in range(4):
        limiter.acquire()
    np.testing.assert_allclose(waits, [0.1, 0.2, 0.3])
    clock[0] = 5.0  # long after: no wait
    limiter.acquire()
    assert len(waits) == 3


def test_exhausted_retries_raise_data_unavailable():
    fake = _fake(retryable={(0, 0): 10})
    with pytest.raises(DataUnavailableError, match=r"piece 0_0_0_4.*retry after 3 attempts") as e:
        _fetch(fake, retries=2, max_workers=1)
    assert "cache_dir" in str(e.value) and "max_workers" in str(e.value)


def test_permanent_failure_raises_data_unavailable_naming_the_piece(tmp_path):
    pieces = P.plan_pieces(GRID, 4, max_bytes=SMALL)
    bad = pieces[1]
    fake = _fake(permanent={(bad.row_off, bad.col_off)})
    with pytest.raises(DataUnavailableError) as e:
        _fetch(fake, cache_dir=tmp_path, max_workers=1)
    message = str(e.value)
    assert f"piece {bad.name}" in message and "PermanentFakeError" in message
    assert str(tmp_path) in message and "rerun" in message
    assert sum(c[:2] == (bad.row_off, bad.col_off) for c in fake.calls) == 1  # never retried


def test_wrong_shape_from_the_transport_is_a_failure():
    class Flat:
        def compute_pixels(self, expression, grid, bands):
            return np.zeros((grid.height, grid.width))

    with pytest.raises(DataUnavailableError, match="shape"):
        _fetch(Flat())


def test_resume_after_a_kill_fetches_only_the_missing_pieces(tmp_path):
    n = len(P.plan_pieces(GRID, 4, max_bytes=SMALL))
    killed = _fake(fail_calls={3})
    with pytest.raises(DataUnavailableError):
        _fetch(killed, cache_dir=tmp_path, max_workers=1)
    assert killed.n_calls == 3  # no piece is started after the failure
    (folder,) = tmp_path.iterdir()
    assert len(list(folder.glob("*.npy"))) == 2
    assert len(list(folder.glob("*.sha256"))) == 2
    assert not list(folder.glob("*.tmp"))
    second = _fake()
    da = _fetch(second, cache_dir=tmp_path)
    assert second.n_calls == n - 2
    assert {c[:2] for c in second.calls}.isdisjoint({c[:2] for c in killed.successes})
    np.testing.assert_array_equal(da.values, expected(GRID, BANDS, BANDS))


def test_second_identical_call_reads_the_cache_only(tmp_path):
    first = _fake()
    a = _fetch(first, cache_dir=tmp_path)
    again = _fake()
    b = _fetch(again, cache_dir=tmp_path)
    assert first.n_calls > 0 and again.n_calls == 0
    np.testing.assert_array_equal(a.values, b.values)
    other = _fake()  # another image: another key
    P.fetch_image(
        {"image": "other"}, GRID, BANDS, transport=other, cache_dir=tmp_path, progress=False
    )
    assert other.n_calls == 1 and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("damage", ["flip", "sidecar", "pickle"])
def test_a_corrupt_cache_file_is_fetched_again(tmp_path, damage):
    _fetch(_fake(), cache_dir=tmp_path)
    (folder,) = tmp_path.iterdir()
    path = sorted(folder.glob("*.npy"))[0]
    if damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "sidecar":
        path.with_name(path.name + ".sha256").unlink()
    else:  # an object array that only unpickling could read, with a matching checksum
        np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        path.with_name(path.name + ".sha256").write_text(P.sha256_file(path))
    fake = _fake()
    da = _fetch(fake, cache_dir=tmp_path)
    assert fake.n_calls == 1
    np.testing.assert_array_equal(da.values, expected(GRID, BANDS, BANDS))
    np.load(path, allow_pickle=False)  # rewritten as a plain float array


def test_concurrency_never_exceeds_max_workers():
    fake = _fake(delay=0.02)
    da = _fetch(fake, max_workers=3, max_rate=None)
    assert 2 <= fake.max_in_flight <= 3
    np.testing.assert_array_equal(da.values, expected(GRID, BANDS, BANDS))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_workers": 41}, "max_workers"),
        ({"max_workers": 0}, "max_workers"),
        ({"retries": -1}, "retries"),
        ({"max_rate": 0}, "max_rate"),
    ],
)
def test_bad_options_are_refused_before_any_request(kwargs, match):
    fake = _fake()
    with pytest.raises(ParameterError, match=match):
        _fetch(fake, **kwargs)
    assert fake.n_calls == 0


@pytest.mark.parametrize("bands", [(), "B4", ("B4", "B4"), ("B4", "")])
def test_bad_bands_are_refused(bands):
    with pytest.raises(ParameterError, match="bands"):
        P.fetch_image({"image": "fake"}, GRID, bands, transport=_fake(), progress=False)


def test_fetch_patches_places_each_point_at_the_centre(tmp_path):
    fake = FakeTransport(BANDS)  # origin (0, 0): values count the CRS's lattice
    da = P.fetch_patches(
        {"image": "fake"},
        YRD_POINTS,
        window=5,
        scale=10,
        bands=["B4", "B8"],
        transport=fake,
        cache_dir=tmp_path,
        progress=False,
        sleep=_no_sleep,
    )
    assert da.dims == ("sample", "band", "y", "x") and da.shape == (3, 2, 5, 5)
    assert list(da.sample.values) == ["S1", "S2", "S3"]
    assert da.attrs["crs"] == "EPSG:32650" and fake.n_calls == 3
    for i, p in enumerate(YRD_POINTS):
        grid = P.grid_around(p["lat"], p["lon"], 5, 10, "EPSG:32650")
        row, col = round(-grid.y0 / 10), round(grid.x0 / 10)
        want = expected(grid, ["B4", "B8"], BANDS) + row * 1000.0 + col
        np.testing.assert_array_equal(da.values[i], want)
        assert da.x_centre.values[i] == grid.xs()[2] and da.y_centre.values[i] == grid.ys()[2]
    assert list(da.y.values) == [2, 1, 0, -1, -2] and list(da.x.values) == [-2, -1, 0, 1, 2]
    again = FakeTransport(BANDS)
    P.fetch_patches(
        {"image": "fake"}, YRD_POINTS, window=5, scale=10, bands=["B4", "B8"],
        transport=again, cache_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert again.n_calls == 0
    with pytest.raises(ParameterError, match="unknown argument"):
        P.fetch_patches({}, YRD_POINTS, window=5, scale=10, bands=["B4"], max_worker=3)


# -- Earth Engine ------------------------------------------------------------------------------


def _structured(height: int, width: int, bands) -> np.ndarray:
    """A computePixels NUMPY_NDARRAY answer: (y, x) with one float32 field per band."""
    arr = np.zeros((height, width), dtype=[(b, "<f4") for b in bands])
    rows, cols = np.indices((height, width))
    for i, b in enumerate(bands):
        arr[b] = i * 100 + rows * 10 + cols
    return arr


def test_earth_engine_transport_builds_the_compute_pixels_request(ee_offline, monkeypatch):
    ee = ee_offline
    sent: list[dict] = []

    def compute_pixels(params):
        sent.append(params)
        grid = params["grid"]["dimensions"]
        return _structured(grid["height"], grid["width"], params["bandIds"])

    monkeypatch.setattr(ee.data, "computePixels", compute_pixels)
    image = ee.Image.constant([1, 2]).rename(["B4", "B8"])
    grid = GRID.window(0, 0, 6, 4)
    arr = P.EarthEngineTransport().compute_pixels(image, grid, ("B8", "B4"))
    (params,) = sent
    assert params["expression"] is image
    assert params["fileFormat"] == "NUMPY_NDARRAY"
    assert params["grid"] == grid.to_ee() and params["bandIds"] == ["B8", "B4"]
    assert arr.shape == (2, 4, 6) and arr.dtype == np.float64
    rows, cols = np.indices((4, 6))
    np.testing.assert_array_equal(arr[1], 100 + rows * 10 + cols)
    # the default transport of fetch_image is this one
    da = P.fetch_image(image, grid, ["B4", "B8"], progress=False)
    np.testing.assert_array_equal(da.sel(band="B8").values, 100 + rows * 10 + cols)


def test_earth_engine_errors_are_sorted_into_retryable_and_permanent(ee_offline, monkeypatch):
    ee = ee_offline
    answers = iter([ee.EEException("Too many concurrent aggregations."), None])

    def busy(params):
        err = next(answers)
        if err is not None:
            raise err
        return _structured(4, 6, params["bandIds"])

    monkeypatch.setattr(ee.data, "computePixels", busy)
    image = ee.Image.constant(1).rename("B4")
    grid = GRID.window(0, 0, 6, 4)
    transport = P.EarthEngineTransport()
    with pytest.raises(P.RetryableRequestError, match="Too many"):
        transport.compute_pixels(image, grid, ["B4"])
    da = P.fetch_image(image, grid, ["B4"], progress=False, sleep=_no_sleep)
    assert da.shape == (1, 4, 6)

    def refuse(params):
        raise ee.EEException("Image.select: Band 'B99' not found.")

    monkeypatch.setattr(ee.data, "computePixels", refuse)
    with pytest.raises(ee.EEException, match="B99"):
        transport.compute_pixels(image, grid, ["B99"])
    with pytest.raises(DataUnavailableError, match="B99"):
        P.fetch_image(image, grid, ["B99"], progress=False, sleep=_no_sleep)


class _HttpError(Exception):
    """Looks like googleapiclient's HttpError: the status sits on ``resp``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.resp = type("Resp", (), {"status": status})()


@pytest.mark.parametrize(
    ("err", "retryable"),
    [
        (_HttpError(429), True),
        (_HttpError(503), True),
        (_HttpError(400), False),
        (_HttpError(403), False),
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError("read timed out"), True),
        (RuntimeError("Computation timed out."), True),
        (RuntimeError("User memory limit exceeded."), False),
    ],
)
def test_retryable_errors_are_told_apart(err, retryable):
    assert P._is_retryable(err) is retryable


def test_expression_key_is_stable_and_tells_images_apart(ee_offline):
    ee = ee_offline
    a = P.expression_key(ee.Image.constant(1).rename("B4"))
    assert a == P.expression_key(ee.Image.constant(1).rename("B4"))
    assert a != P.expression_key(ee.Image.constant(2).rename("B4"))
    assert P.expression_key({"b": 1, "a": 2}) == P.expression_key({"a": 2, "b": 1})
    with pytest.raises(ParameterError, match="JSON"):
        P.expression_key(object())
