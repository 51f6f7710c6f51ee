"""The soil-moisture recipe (soilbook.data.earthengine.recipes.moisture): the golden graph of
moisture_image, the precheck, the site grouping and the extraction end to end against the
fake computePixels server (offline)."""

from __future__ import annotations

import math
from typing import Any

import ee_harness
import numpy as np
import pytest
from ee_fakes import FakeTransport
from ee_harness import calls, const, date_ranges, graph, loaded_ids

from soilbook.data import moisture as mo
from soilbook.data.earthengine import FILL_VALUE
from soilbook.data.earthengine.checks import utm_crs
from soilbook.data.earthengine.recipes import moisture as M
from soilbook.data.schema import validate_samples, validate_tiles
from soilbook.errors import ParameterError

ee_offline = ee_harness.ee_offline

BOX = (118.8, 37.6, 119.0, 37.9)
WINDOW = ("2021-05-01", "2021-05-13")  # 12 days: reference day 2021-05-06
WINDOWS = [WINDOW, ("2021-06-01", "2021-06-13")]
#: Station readings (vol %) in the Yellow River Delta: A and B 100 m apart, C 10 km away.
READINGS = [
    {"id": "r1", "station": "A", "lat": 37.7100, "lon": 118.8600, "date": "2021-05-03", "target": 23.0},
    {"id": "r2", "station": "B", "lat": 37.7109, "lon": 118.8600, "date": "2021-05-05", "target": 25.5},
    {"id": "r3", "station": "A", "lat": 37.7100, "lon": 118.8600, "date": "2021-06-03", "target": 13.0},
    {"id": "r4", "station": "C", "lat": 37.8000, "lon": 118.9500, "date": "2021-06-04", "target": 8.0,
     "landscape": "farmland"},
]  # fmt: skip
TILE = 64  # a multiple of 32, small enough for a quick test
SCALE = 10.0


# -- the golden graph ----------------------------------------------------------------------------


def _filters(tree: Any, name: str) -> list[tuple[Any, Any]]:
    """(leftField, rightValue) of every ``Filter.<name>`` with constant arguments."""
    out = []
    for a in calls(tree, name):
        if "leftField" in a and "rightValue" in a:
            out.append((const(a["leftField"]), const(a["rightValue"])))
    return out


def _constant_operands(tree: Any, name: str) -> list[Any]:
    """The constant right-hand operands of every ``Image.<name>``."""
    out = []
    for a in calls(tree, name):
        try:
            out.append(const(a["image2"]))
        except AssertionError:
            continue
    return out


def _selected(tree: Any) -> list[tuple[list[str], list[str] | None]]:
    return [
        (const(a["bandSelectors"]), const(a["newNames"]) if "newNames" in a else None)
        for a in calls(tree, "Image.select")
    ]


def test_moisture_image_bands_are_the_chapters_channels_then_coarse(ee_offline):
    tree = graph(M.moisture_image(BOX, WINDOW))
    assert M.IMAGE_BANDS == (*mo.CHANNEL_NAMES, "coarse")
    selected = _selected(tree)
    # the outermost select puts the bands in the chapter's order, then the image is unmasked
    ((unmask,),) = [calls(tree, "Image.unmask")]
    assert const(unmask["value"]) == FILL_VALUE and const(unmask["sameFootprint"]) is False
    outer = unmask["input"]["functionInvocationValue"]["arguments"]["value"]
    assert const(outer["functionInvocationValue"]["arguments"]["bandSelectors"]) == list(
        M.IMAGE_BANDS
    )
    assert (list(M.IMAGE_BANDS), None) in selected
    # every collection of the recipe is read, nothing else (no Landsat, no MODIS)
    assert loaded_ids(tree) == set(M.MOISTURE_COLLECTIONS)


def test_moisture_image_sentinel1_filters_and_db(ee_offline):
    tree = graph(M.moisture_image(BOX, WINDOW, orbit_pass="DESCENDING"))
    equals = _filters(tree, "Filter.equals")
    assert ("instrumentMode", "IW") in equals
    assert ("resolution_meters", 10) in equals
    assert ("orbitProperties_pass", "DESCENDING") in equals
    assert set(_filters(tree, "Filter.listContains")) == {
        ("transmitterReceiverPolarisation", "VV"),
        ("transmitterReceiverPolarisation", "VH"),
    }
    # VV / VH stay in dB as Earth Engine stores them (no log10, no power conversion) and the
    # angle band becomes theta
    assert not calls(tree, "Image.log10") and not calls(tree, "Image.exp")
    assert (["VV", "VH", "angle"], ["VV", "VH", "theta"]) in _selected(tree)
    assert calls(tree, "reduce.median")
    # both passes by default
    both = graph(M.moisture_image(BOX, WINDOW))
    assert not [f for f in _filters(both, "Filter.equals") if f[0] == "orbitProperties_pass"]


def test_moisture_image_dates_era5_and_smap_units(ee_offline):
    tree = graph(M.moisture_image(BOX, WINDOW, s2_pad_days=15, api_days=60))
    day = "2021-05-06"  # the middle of [05-01, 05-13)
    assert M.reference_day(WINDOW).isoformat() == day
    assert date_ranges(tree) == {
        WINDOW,  # Sentinel-1
        ("2021-04-16", "2021-05-28"),  # Sentinel-2, widened by 15 days each side
        (day, "2021-05-07"),  # ERA5-Land and SMAP of the reference day
        ("2021-03-08", "2021-05-07"),  # 60 days of precipitation for the API
    }
    selected = [s for s, _ in _selected(tree)]
    assert ["temperature_2m", "total_precipitation_sum"] in selected
    assert ["sm_surface"] in selected
    assert 273.15 in _constant_operands(tree, "Image.subtract")  # K -> degC
    multiplied = _constant_operands(tree, "Image.multiply")
    assert 1000.0 in multiplied  # m -> mm
    assert 100.0 in multiplied  # SMAP m3/m3 -> vol %
    (power,) = calls(tree, "Number.pow")
    assert const(power["left"]) == M.API_DECAY
    # the cyclic day of year of the reference day (doy 125, 0-based)
    angle = 2 * math.pi * (125 + 0.5) / 365.25
    constants = [a["value"].get("constantValue") for a in calls(tree, "Image.constant")]
    assert any(
        isinstance(c, list) and len(c) == 2 and np.allclose(c, [math.sin(angle), math.cos(angle)])
        for c in constants
    )
    # Sentinel-2: the optical bands of the chapter, NDVI from B8 and B4
    assert list(M.OPTICAL_BANDS) in selected
    nd = [const(a["bandNames"]) for a in calls(tree, "Image.normalizedDifference")]
    assert ["B8", "B4"] in nd
    assert (["NDVI_t0"], ["ndvi"]) in _selected(tree)


def test_moisture_image_refuses_what_it_cannot_give(ee_offline, monkeypatch):
    with pytest.raises(ParameterError, match=r"orbit_pass.*What to do"):
        M.moisture_image(BOX, WINDOW, orbit_pass="north")
    with pytest.raises(ParameterError, match="one \\(start, end\\) pair"):
        M.moisture_image(BOX, WINDOWS)
    with pytest.raises(ParameterError, match="COPERNICUS/S1_GRD starts on 2014-10-03"):
        M.moisture_image(BOX, ("2014-01-01", "2014-02-01"))
    with pytest.raises(ParameterError, match="footprint"):
        M.moisture_image((0.0, -75.0, 1.0, -70.0), WINDOW)
    monkeypatch.setattr(mo, "CHANNEL_NAMES", (*mo.CHANNEL_NAMES, "gf3_L_HH"))
    with pytest.raises(ParameterError, match=r"\['gf3_L_HH'\] have no Earth Engine source"):
        M.moisture_image(BOX, WINDOW)


def test_every_channel_has_a_documented_source():
    assert set(M.CHANNEL_SOURCES) == set(mo.CHANNEL_NAMES)
    for name in mo.CHANNEL_NAMES:
        assert name in M.__doc__


# -- the precheck -----------------------------------------------------------------------------------


def _with(i: int, **changes: Any) -> list[dict]:
    points = [dict(p) for p in READINGS]
    points[i].update(changes)
    return points


@pytest.mark.parametrize(
    ("points", "dates", "match"),
    [
        (READINGS, [("2014-06-01", "2014-07-01")], r"before COPERNICUS/S1_GRD starts on 2014-10-03"),
        (READINGS, [("2016-05-01", "2016-06-01")], r"COPERNICUS/S2_SR_HARMONIZED starts on 2017-03-28"),
        (_with(0, lat=-70.0), WINDOWS, r"lat -70.0000 lies outside COPERNICUS/S2_SR_HARMONIZED"),
        (_with(1, date="2021-05-20"), WINDOWS, r"'r2'.*2021-05-20, outside every date window"),
        (READINGS, [("2021-05-01", "2021-05-10"), ("2021-05-04", "2021-06-13")],
         r"'r2'.*lies in the windows.*disjoint"),
        (_with(2, target=31.0 * 10), WINDOWS, r"outside \[0, 100\] vol %.*'r3'"),
        (_with(3, target=None), WINDOWS, r"no finite 'target'"),
        ([{k: v for k, v in READINGS[0].items() if k != "date"}], WINDOWS, r"has no 'date'"),
        (_with(0, date="May 3"), WINDOWS, r"not a date"),
        (_with(0, landscape=""), WINDOWS, r"landscape=''"),
    ],
)  # fmt: skip
def test_precheck_refuses_with_what_to_do(points, dates, match):
    with pytest.raises(ParameterError, match=match) as err:
        M.precheck_moisture(points, dates)
    message = str(err.value)
    assert "What to do" in message or "drop unlabelled points first" in message


def test_precheck_passes_good_readings():
    assert M.precheck_moisture(READINGS, WINDOWS) is None


def test_extract_checks_before_any_request(ee_offline):
    fake = FakeTransport(M.IMAGE_BANDS)
    with pytest.raises(ParameterError, match="multiple of 32"):
        M.extract_moisture_data(READINGS, WINDOWS, tile_size=100, transport=fake, progress=False)
    with pytest.raises(ParameterError, match="outside every date window"):
        M.extract_moisture_data(_with(0, date="2022-01-01"), WINDOWS, transport=fake)
    assert fake.n_calls == 0


# -- sites -----------------------------------------------------------------------------------------


def test_nearby_stations_share_a_site_and_far_ones_do_not():
    readings, _ = M._readings(READINGS, WINDOWS)
    sites, site_of = M.group_sites(readings, TILE, SCALE)
    assert [s.name for s in sites] == ["site A", "site C"]
    assert [site_of[i] for i in range(4)] == [0, 0, 0, 1]
    assert sites[0].crs == sites[1].crs == "EPSG:32650"
    # the site's centre is the middle of its stations (A and B are 100 m apart north-south)
    assert sites[0].lat == pytest.approx(37.71045, abs=1e-5)
    # a smaller tile cannot hold both within its margin: B gets its own site
    sites32, _ = M.group_sites(readings, 32, SCALE)  # reach (16 - 4) * 10 = 120 m > 100 m
    assert len(sites32) == 2
    sites32, _ = M.group_sites(readings, 32, 5.0)  # reach 60 m < 100 m
    assert [s.name for s in sites32] == ["site A", "site B", "site C"]


def test_stations_in_two_utm_zones_never_share_a_site():
    points = [
        {"id": "w", "lat": 40.0, "lon": 119.9995, "date": "2021-05-03", "target": 20.0},
        {"id": "e", "lat": 40.0, "lon": 120.0005, "date": "2021-05-03", "target": 20.0},
    ]
    readings, _ = M._readings(points, [WINDOW])
    sites, _ = M.group_sites(readings, 256, SCALE)
    assert [s.crs for s in sites] == [utm_crs(40.0, 119.9995), utm_crs(40.0, 120.0005)]


# -- extraction end to end against the fake server ---------------------------------------------


def _origin(lat: float, lon: float) -> tuple[float, float]:
    """A fake-server origin a few hundred pixels north-west of (lat, lon), so that the fake's
    values (band * 1e6 + row * 1000 + col) stay exact in float32."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True).transform(lon, lat)
    return (math.floor(x / SCALE) - 300) * SCALE, (math.floor(y / SCALE) + 1000) * SCALE


def _expected_vv(origin: tuple[float, float], lat: float, lon: float) -> float:
    """What the fake answers for VV (band 0) at the pixel that holds (lat, lon)."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True).transform(lon, lat)
    return math.floor((origin[1] - y) / SCALE) * 1000.0 + math.floor((x - origin[0]) / SCALE)


def test_extract_moisture_data_end_to_end(ee_offline, tmp_path):
    origin = _origin(37.71, 118.86)
    fake = FakeTransport(M.IMAGE_BANDS, origin=origin)
    data = M.extract_moisture_data(
        READINGS, WINDOWS, tile_size=TILE, transport=fake, progress=False, cache_dir=tmp_path
    )
    tiles, readings = data.tiles, data.readings
    validate_tiles(tiles)
    validate_samples(readings)
    assert isinstance(data, mo.MoistureData)
    assert data.description.startswith("real, from Earth Engine")
    # tiles: site A in both windows, site C in the second; one request per tile
    assert tiles.sizes["tile"] == 3 and fake.n_calls == 3
    assert tiles.sizes["y"] == tiles.sizes["x"] == TILE and TILE % 32 == 0
    assert list(tiles["location"].values) == ["site A", "site A", "site C"]
    assert [str(d)[:10] for d in tiles["date"].values] == ["2021-05-06", "2021-06-06"] * 1 + [
        "2021-06-06"
    ]
    assert list(tiles["channel"].values) == list(mo.CHANNEL_NAMES)
    assert list(tiles["channel_units"].values) == list(mo.CHANNEL_UNITS)
    assert list(tiles["stations"].values) == [2, 2, 1]
    assert list(tiles["landscape"].values) == ["unknown", "unknown", "farmland"]
    assert data.landscapes == ("farmland", "unknown")
    assert tiles["coarse"].attrs["units"] == "%" and tiles.attrs["simulated"] is False
    assert "COPERNICUS/S1_GRD" in tiles.attrs["collections"]
    # each station reading points at the pixel that holds the station
    assert list(readings["tile"].values) == [0, 0, 1, 2]
    assert readings["target"].attrs["units"] == "%"
    np.testing.assert_allclose(readings["target"].values, [23.0, 25.5, 13.0, 8.0])
    vv = readings["covariates"].sel(feature="VV").values
    expected = [_expected_vv(origin, p["lat"], p["lon"]) for p in READINGS]
    np.testing.assert_array_equal(vv, expected)
    # the covariates are the tile's channels at (tile, row, col)
    t, r, c = (readings[k].values for k in ("tile", "row", "col"))
    np.testing.assert_array_equal(
        readings["covariates"].values[:, : len(mo.CHANNEL_NAMES)],
        tiles["inputs"].values[t, :, r, c],
    )
    # a lone station sits at the centre pixel of its tile
    assert (r[3], c[3]) == (TILE // 2, TILE // 2)
    # A and B share their tile, 100 m = 10 pixels apart north-south
    assert abs(c[0] - c[1]) <= 1 and 9 <= r[0] - r[1] <= 11
    assert list(readings["group"].values) == ["site A", "site A", "site A", "site C"]
    assert [str(d)[:10] for d in readings["date"].values] == [p["date"] for p in READINGS]


def test_masked_pixels_are_invalid_and_the_cache_is_reused(ee_offline, tmp_path):
    origin = _origin(37.71, 118.86)
    first = FakeTransport(M.IMAGE_BANDS, origin=origin)
    base = M.extract_moisture_data(
        READINGS, WINDOWS, tile_size=TILE, transport=first, progress=False, cache_dir=tmp_path
    )
    # the station pixel of C, in the fake's global rows and columns: cloud there, no SMAP
    r, c = int(base.readings["row"].values[3]), int(base.readings["col"].values[3])
    x0, y0 = _tile_corner(base, 2)
    gr = round((origin[1] - y0) / SCALE) + r
    gc = round((x0 - origin[0]) / SCALE) + c
    fill = {("B2", gr, gc): FILL_VALUE, ("coarse", gr, gc): FILL_VALUE}
    masked = FakeTransport(M.IMAGE_BANDS, origin=origin, fill=fill)
    data = M.extract_moisture_data(
        READINGS, WINDOWS, tile_size=TILE, transport=masked, progress=False
    )
    b2 = mo.CHANNEL_NAMES.index("B2")
    assert data.tiles["valid"].values[2, b2, r, c] == 0
    assert data.tiles["inputs"].values[2, b2, r, c] == 0.0  # no NaN left in the inputs
    assert data.tiles["coarse_mask"].values[2, r, c] == 0
    assert int(data.tiles["valid"].values[:, b2].sum()) == 3 * TILE * TILE - 1
    cov = data.readings["covariates"]
    assert np.isnan(cov.sel(feature="B2").values[3])
    assert cov.sel(feature="optical_valid").values.tolist() == [1.0, 1.0, 1.0, 0.0]
    validate_tiles(data.tiles)
    # a rerun with the same cache sends nothing and gives the same data
    again = FakeTransport(M.IMAGE_BANDS, origin=origin)
    cached = M.extract_moisture_data(
        READINGS, WINDOWS, tile_size=TILE, transport=again, progress=False, cache_dir=tmp_path
    )
    assert again.n_calls == 0
    np.testing.assert_array_equal(cached.tiles["inputs"].values, base.tiles["inputs"].values)
    np.testing.assert_array_equal(cached.readings["target"].values, base.readings["target"].values)


def _tile_corner(data: mo.MoistureData, tile: int) -> tuple[float, float]:
    """(x0, y0) in the tile's UTM zone of the upper-left corner of ``tile``."""
    from soilbook.data.earthengine.pixels import grid_around

    t = data.tiles.isel(tile=tile)
    grid = grid_around(float(t["lat"]), float(t["lon"]), TILE + 1, SCALE, str(t["crs"].values))
    return grid.x0, grid.y0


def test_every_window_gives_coarse_only_tiles(ee_offline):
    fake = FakeTransport(M.IMAGE_BANDS, origin=_origin(37.71, 118.86))
    data = M.extract_moisture_data(
        READINGS, WINDOWS, tile_size=32, transport=fake, progress=False, every_window=True
    )
    # 32-pixel tiles: reach 120 m, so A and B still share; 2 sites x 2 windows
    assert data.tiles.sizes["tile"] == 4 and fake.n_calls == 4
    assert list(data.tiles["location"].values) == ["site A", "site C"] * 2
    assert sorted(set(data.readings["tile"].values.tolist())) == [0, 2, 3]
    validate_tiles(data.tiles)
    validate_samples(data.readings)


def test_reading_windows_are_disjoint_and_hold_every_reading():
    windows = M.reading_windows(READINGS, days=7)
    # 05-03 and 05-05 overlap and merge; 06-03 and 06-04 too
    assert windows == [("2021-04-30", "2021-05-09"), ("2021-05-31", "2021-06-08")]
    M.precheck_moisture(READINGS, windows)
    assert M.reading_windows(READINGS, days=1) == [
        ("2021-05-03", "2021-05-04"),
        ("2021-05-05", "2021-05-06"),
        ("2021-06-03", "2021-06-04"),  # adjacent half-open windows do not overlap
        ("2021-06-04", "2021-06-05"),
    ]
    with pytest.raises(ParameterError, match="days"):
        M.reading_windows(READINGS, days=0)
    with pytest.raises(ParameterError, match="has no 'date'"):
        M.reading_windows([{"id": "x"}])
