"""Tests of soilbook.data.earthengine, all offline and without credentials.

Request builders are checked on their serialised Earth Engine computation graph, built under the
earthengine-api wheel's own harness (``ee.apitestcase.ApiTestCase``: ``ee`` initialised against a
static copy of the server's algorithm list, no network). Those tests skip where earthengine-api is
absent. Argument checks and the pure ``to_samples`` converter need no ``ee`` and always run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from soilbook.data import earthengine as E
from soilbook.data.schema import validate_samples

REPO = Path(__file__).resolve().parents[1]
#: Field samples in the Yellow River Delta (UTM zone 50 N).
YRD_POINTS = [
    {"id": "S1", "lat": 37.71, "lon": 118.86, "target": 4.2, "field": "F1"},
    {"id": "S2", "lat": 37.72, "lon": 118.87, "target": 12.5, "field": "F1"},
    {"id": "S3", "lat": 37.80, "lon": 118.95, "target": 1.1, "field": "F2"},
]
DATES = [("2021-04-01", "2021-05-01"), ("2021-09-01", "2021-10-01")]
BOX = (118.8, 37.6, 119.0, 37.9)


# -- helpers: the offline harness and walking a serialised graph -------------------------------


@pytest.fixture
def ee_offline():
    """``ee`` initialised by the wheel's ApiTestCase (static algorithm list, no network)."""
    ee = pytest.importorskip("ee")
    apitestcase = pytest.importorskip("ee.apitestcase")
    case = apitestcase.ApiTestCase()  # 'runTest' placeholder: used only for setUp / tearDown
    case.setUp()
    try:
        yield ee
    finally:
        case.tearDown()


def graph(obj: Any) -> dict:
    """The fully expanded (no shared references) Cloud API expression of ``obj``."""
    import ee

    return ee.serializer.encode(obj, is_compound=False, for_cloud_api=True)


def calls(tree: Any, name: str) -> list[dict]:
    """Arguments of every invocation of the Earth Engine function ``name`` in ``tree``."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            inv = node.get("functionInvocationValue")
            if inv is not None and inv.get("functionName") == name:
                found.append(inv.get("arguments", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def const(arg: dict) -> Any:
    """The constant behind an argument: ``constantValue`` or an ``Image.constant`` of one."""
    if "constantValue" in arg:
        return arg["constantValue"]
    inv = arg.get("functionInvocationValue", {})
    if inv.get("functionName") == "Image.constant":
        return const(inv["arguments"]["value"])
    raise AssertionError(f"not a constant: {json.dumps(arg)[:200]}")


def point_ids(tree: Any) -> list[str]:
    """Ids of the sample points in a request (filterBounds also wraps geometries in Features)."""
    return [const(f["metadata"])["id"] for f in calls(tree, "Feature") if "metadata" in f]


def loaded_ids(tree: Any) -> set[str]:
    return {const(a["id"]) for a in calls(tree, "ImageCollection.load")}


def date_ranges(tree: Any) -> set[tuple[str, str]]:
    return {(const(a["start"]), const(a["end"])) for a in calls(tree, "DateRange")}


def renames(tree: Any) -> list[list[str]]:
    out = [const(a["names"]) for a in calls(tree, "Image.rename")]
    out += [const(a["newNames"]) for a in calls(tree, "Image.select") if "newNames" in a]
    return out


# -- Sentinel-2 --------------------------------------------------------------------------------


def test_sentinel2_composites_graph(ee_offline):
    ee = ee_offline
    col = E.sentinel2_composites(BOX, DATES)
    assert isinstance(col, ee.ImageCollection)
    tree = graph(col)
    # one median composite per window, in order
    top = tree["functionInvocationValue"]
    assert top["functionName"] == "ImageCollection.fromImages"
    assert len(top["arguments"]["images"]["arrayValue"]["values"]) == 2
    assert len(calls(tree, "reduce.median")) == 2
    assert loaded_ids(tree) == {E.S2_SR, E.S2_CLOUD_PROBABILITY}
    assert date_ranges(tree) == set(DATES)
    # s2cloudless joined on system:index, saved as 'cloud_probability'
    (save_first,) = {json.dumps(a, sort_keys=True) for a in calls(tree, "Join.saveFirst")}
    assert json.loads(save_first)["matchKey"]["constantValue"] == "cloud_probability"
    equals = calls(tree, "Filter.equals")
    assert equals and all(
        const(a["leftField"]) == const(a["rightField"]) == "system:index" for a in equals
    )
    # mask: probability < 40 and SCL != 3 (cloud shadow)
    assert {const(a["image2"]) for a in calls(tree, "Image.lt")} == {40.0}
    assert {const(a["image2"]) for a in calls(tree, "Image.neq")} == {E.SCL_CLOUD_SHADOW}
    selectors = [const(a["bandSelectors"]) for a in calls(tree, "Image.select")]
    assert ["probability"] in selectors and ["SCL"] in selectors
    assert list(E.DEFAULT_BANDS) in selectors
    # reflectance: DN / 10000 as float, bilinear resampling (20 m -> 10 m)
    assert {const(a["image2"]) for a in calls(tree, "Image.divide")} == {10000}
    assert {const(a["mode"]) for a in calls(tree, "Image.resample")} == {"bilinear"}
    assert calls(tree, "Image.toFloat")
    # window metadata
    sets = {const(a["key"]) for a in calls(tree, "Element.set")}
    assert {"window_start", "window_end", "system:time_start", "n_scenes"} <= sets


def test_sentinel2_composites_options_reach_the_graph(ee_offline):
    ee = ee_offline
    region = ee.Geometry.Point([118.86, 37.71]).buffer(500)
    tree = graph(E.sentinel2_composites(region, DATES[:1], cloud_prob_max=25, bands=["B4", "B8"]))
    assert {const(a["image2"]) for a in calls(tree, "Image.lt")} == {25.0}
    assert ["B4", "B8"] in [const(a["bandSelectors"]) for a in calls(tree, "Image.select")]
    assert calls(tree, "Geometry.buffer")  # the given geometry is used as is
    assert not calls(tree, "GeometryConstructors.Rectangle")


def test_sentinel2_stack_names_bands_per_window(ee_offline):
    tree = graph(E.sentinel2_stack(BOX, DATES, bands=["B2", "B4"]))
    assert ["B2_t0", "B4_t0"] in renames(tree)
    assert ["B2_t1", "B4_t1"] in renames(tree)
    assert calls(tree, "Image.addBands")


# -- terrain and crop layers -------------------------------------------------------------------


def test_terrain_layers_graph(ee_offline):
    tree = graph(E.terrain_layers(BOX, tpi_radius_m=250))
    assert loaded_ids(tree) == {E.GLO30}
    assert any(
        const(a["bandSelectors"]) == ["DEM"]
        and const(a.get("newNames", {"constantValue": None})) == ["elevation"]
        for a in calls(tree, "Image.select")
    )
    assert calls(tree, "ImageCollection.mosaic")
    assert calls(tree, "Image.setDefaultProjection")
    assert calls(tree, "Terrain.slope")
    (focal,) = {json.dumps(a, sort_keys=True) for a in calls(tree, "Image.focalMean")}
    focal = json.loads(focal)
    assert const(focal["radius"]) == 250
    assert const(focal["units"]) == "meters"
    assert const(focal["kernelType"]) == "circle"
    assert calls(tree, "Image.subtract")  # tpi = elevation - focal mean
    assert {"elevation"} <= {n for names in renames(tree) for n in names}
    assert ["slope"] in renames(tree) and ["tpi"] in renames(tree)
    assert {const(a["mode"]) for a in calls(tree, "Image.resample")} == {"bilinear"}


def test_crop_layers_graph(ee_offline):
    tree = graph(E.crop_layers(BOX, DATES))
    assert loaded_ids(tree) == {E.MCD15A3H}
    assert date_ranges(tree) == set(DATES)
    assert len(calls(tree, "reduce.mean")) == 2
    assert {const(a["image2"]) for a in calls(tree, "Image.multiply")} == {0.1, 0.01}
    assert {const(a["image2"]) for a in calls(tree, "Image.lte")} == {100}
    assert {const(a["image2"]) for a in calls(tree, "Image.bitwiseAnd")} == {1}
    assert ["FparLai_QC"] in [const(a["bandSelectors"]) for a in calls(tree, "Image.select")]
    assert ["Lai_t0", "Fpar_t0"] in renames(tree) and ["Lai_t1", "Fpar_t1"] in renames(tree)
    # without the QC filter the bit test disappears
    assert not calls(graph(E.crop_layers(BOX, DATES, good_quality_only=False)), "Image.bitwiseAnd")


def test_spectral_index_layers_graph(ee_offline):
    images = E.sentinel2_window_composites(BOX, DATES)
    tree = graph(E.spectral_index_layers(images))
    assert len(calls(tree, "Image.normalizedDifference")) == 2
    assert {
        json.dumps(const(a["bandNames"])) for a in calls(tree, "Image.normalizedDifference")
    } == {json.dumps(["B8", "B4"])}
    assert len(calls(tree, "Image.sqrt")) == 2
    assert ["NDVI_t1", "SI_t1"] in renames(tree)
    with pytest.raises(ValueError, match="list of composite images"):
        E.spectral_index_layers(E.sentinel2_composites(BOX, DATES))


# -- sampling ----------------------------------------------------------------------------------


def test_point_values_request_graph(ee_offline):
    ee = ee_offline
    image = ee.Image.constant([1, 2]).rename(["a", "b"])
    fc = E.point_values_request(image, YRD_POINTS, scale=10)
    assert isinstance(fc, ee.FeatureCollection)
    tree = graph(fc)
    (sample,) = calls(tree, "Image.sampleRegions")
    assert const(sample["scale"]) == 10
    assert const(sample["properties"]) == ["id", "lat", "lon"]
    assert const(sample["geometries"]) is False
    assert calls(sample["projection"], "Projection")[0]["crs"]["constantValue"] == "EPSG:32650"
    (unmask,) = calls(tree, "Image.unmask")
    assert const(unmask["value"]) == E.FILL_VALUE
    assert const(unmask["sameFootprint"]) is False
    features = [f for f in calls(tree, "Feature") if "metadata" in f]
    assert point_ids(tree) == ["S1", "S2", "S3"]
    # only id / lat / lon travel: targets and field names stay local
    assert all(set(const(f["metadata"])) == {"id", "lat", "lon"} for f in features)
    points = [const(p["coordinates"]) for p in calls(tree, "GeometryConstructors.Point")]
    assert points[0] == [118.86, 37.71]  # (lon, lat)
    assert not calls(tree, "Image.neighborhoodToArray")


def test_patch_request_graph(ee_offline):
    ee = ee_offline
    image = ee.Image.constant(1).rename(["elevation"])
    tree = graph(E.patch_request(image, YRD_POINTS, window=65, scale=10, crs="EPSG:4479"))
    (kernel,) = calls(tree, "Kernel.square")
    assert const(kernel["radius"]) == 32
    assert const(kernel["units"]) == "pixels"
    (arrays,) = calls(tree, "Image.neighborhoodToArray")
    assert const(arrays["defaultValue"]) == E.FILL_VALUE
    (sample,) = calls(tree, "Image.sampleRegions")
    assert calls(sample["projection"], "Projection")[0]["crs"]["constantValue"] == "EPSG:4479"


# -- the composed salinity request -------------------------------------------------------------


def _fake_properties(request: E.SalinityRequest, pid: str, seed: int) -> dict:
    """What getInfo() would give for one point of ``request`` (made-up numbers)."""
    rng = np.random.default_rng(seed)
    props: dict[str, Any] = {"id": pid}
    for t in range(len(request.dates)):
        for band in request.bands:
            props[E.dated(band, t)] = float(rng.uniform(0.02, 0.4))
    for name in request.covariates:
        props[name] = float(rng.normal())
    side = request.window or 0
    for name in request.patch_layers:
        props[E.patch_name(name)] = rng.normal(size=(side, side)).round(3).tolist()
    return props


def test_build_salinity_request_composition(ee_offline):
    ee = ee_offline
    points = [{"id": i, "lat": 37.70 + 0.003 * i, "lon": 118.80 + 0.004 * i} for i in range(7)]
    req = E.build_salinity_request(points, DATES, window=15, batch_size=3)
    assert len(req.batches) == 3 and req.batch_size == 3
    assert req.crs == "EPSG:32650"
    assert all(isinstance(b, ee.FeatureCollection) for b in req.batches)
    ids = [point_ids(graph(b)) for b in req.batches]
    assert ids == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    tree = graph(req.batches[0])
    assert loaded_ids(tree) == set(E.SALINITY_COLLECTIONS)
    assert date_ranges(tree) == set(DATES)
    (sample,) = calls(tree, "Image.sampleRegions")
    assert const(sample["scale"]) == 10
    (kernel,) = calls(tree, "Kernel.square")
    assert const(kernel["radius"]) == 7
    # the band layout to_samples reads back
    names = renames(tree)
    assert [E.dated(b, 1) for b in E.DEFAULT_BANDS] in names
    assert [E.patch_name(n) for n in req.patch_layers] in names
    assert list(req.covariates) == [
        "elevation", "slope", "tpi", "Lai_t0", "Fpar_t0", "Lai_t1", "Fpar_t1",
        "NDVI_t0", "SI_t0", "NDVI_t1", "SI_t1",
    ]  # fmt: skip
    assert req.covariates["tpi"] == "hydrology" and req.covariates["Lai_t1"] == "vegetation"
    assert list(req.patch_layers) == list(req.covariates)
    # the region is the points' box widened by half a patch plus 1 km
    boxes = {tuple(const(a["coordinates"])) for a in calls(tree, "GeometryConstructors.Rectangle")}
    ((west, south, east, north),) = boxes
    margin = (7 * 10 + 1000) / 111_320  # degrees of latitude
    assert math.isclose(37.70 - south, margin, rel_tol=1e-6)
    assert math.isclose(north - 37.718, margin, rel_tol=1e-6)
    assert west < 118.80 - margin and east > 118.824 + margin  # wider in longitude at 37.7 N


def test_build_salinity_request_options(ee_offline):
    req = E.build_salinity_request(YRD_POINTS, DATES[:1], window=None, bands=["B3", "B11"])
    assert req.patch_layers == {} and req.batch_size == E.POINT_BATCH
    tree = graph(req.batches[0])
    assert not calls(tree, "Image.neighborhoodToArray")
    assert not calls(tree, "Image.normalizedDifference")  # no B4/B8: no indices
    assert "NDVI_t0" not in req.covariates
    req = E.build_salinity_request(
        YRD_POINTS, DATES, window=65, patch_layers=["elevation", "Lai_t1"]
    )
    assert list(req.patch_layers) == ["elevation", "Lai_t1"]
    assert req.batch_size == E.PATCH_VALUES_PER_BATCH // (2 * 65 * 65)
    with pytest.raises(ValueError, match="not among the environmental layers"):
        E.build_salinity_request(YRD_POINTS, DATES, window=5, patch_layers=["B2"])


def test_salinity_request_round_trip_through_to_samples(ee_offline):
    req = E.build_salinity_request(YRD_POINTS, DATES, window=5)
    features = [
        {
            "type": "Feature",
            "geometry": None,
            "id": f"{i}_0",
            "properties": _fake_properties(req, p["id"], i),
        }
        for i, p in enumerate(YRD_POINTS)
    ]
    ds = req.to_samples({"type": "FeatureCollection", "features": features}, YRD_POINTS)
    validate_samples(ds)
    assert ds.sizes == {
        "sample": 3,
        "date": 2,
        "band": 10,
        "feature": 11,
        "layer": 11,
        "y": 5,
        "x": 5,
    }
    assert ds.attrs["crs"] == "EPSG:32650" and ds.attrs["window"] == 5
    assert list(ds["layer_group"].values) == list(req.patch_layers.values())
    np.testing.assert_allclose(ds["target"].values, [4.2, 12.5, 1.1])


def test_extract_salinity_inputs_batches_against_a_fake_server(ee_offline, monkeypatch):
    """The download loop, with ee.data.computeValue answering from made-up values."""
    ee = ee_offline
    sent: list[list[str]] = []

    def fake_compute_value(obj: Any) -> dict:
        # ee.data.computeValue receives the ee object whose getInfo() was called
        ids = point_ids(graph(obj))
        sent.append(ids)
        req = E.build_salinity_request(YRD_POINTS, DATES, window=3)
        return {
            "type": "FeatureCollection",
            "features": [
                {"properties": _fake_properties(req, pid, k)} for k, pid in enumerate(ids)
            ],
        }

    monkeypatch.setattr(ee.data, "computeValue", fake_compute_value)
    ds = E.extract_salinity_inputs(
        YRD_POINTS, DATES, window=3, batch_size=2, group_key="field", progress=False
    )
    assert sent == [["S1", "S2"], ["S3"]]
    assert list(ds["group"].values) == ["F1", "F1", "F2"]
    assert ds["patches"].shape == (3, 11, 3, 3)
    assert ds.attrs["simulated"] is False


def test_extract_salinity_inputs_checks_targets_before_any_request(ee_offline, monkeypatch):
    ee = ee_offline
    monkeypatch.setattr(ee.data, "computeValue", lambda *_: pytest.fail("a request was sent"))
    unlabelled = [dict(YRD_POINTS[0]), {"id": "X", "lat": 37.7, "lon": 118.9}]
    with pytest.raises(ValueError, match="no finite 'target'"):
        E.extract_salinity_inputs(unlabelled, DATES, window=3, progress=False)


# -- initialize: credentials only from the environment -----------------------------------------


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No Earth Engine / Google credentials or project in the environment; HOME is empty."""
    pytest.importorskip("ee")
    for var in (*E.PROJECT_ENV, "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    return tmp_path


@pytest.fixture
def recorded_initialize(monkeypatch):
    import ee

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ee, "Initialize", lambda **kwargs: seen.update(kwargs))
    return seen


def test_initialize_without_credentials_says_what_to_set(clean_env, recorded_initialize):
    with pytest.raises(E.EarthEngineSetupError) as err:
        E.initialize()
    message = str(err.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "EARTHENGINE_PROJECT" in message
    assert "earthengine authenticate" in message
    assert recorded_initialize == {}


def test_initialize_with_a_service_account_key(clean_env, recorded_initialize, monkeypatch):
    import ee

    key = clean_env / "key.json"
    key.write_text(
        json.dumps(
            {"type": "service_account", "client_email": "sb@proj-x.iam.gserviceaccount.com",
             "project_id": "proj-x", "private_key": "not a real key"}
        )
    )  # fmt: skip
    made: list[tuple] = []
    monkeypatch.setattr(
        ee,
        "ServiceAccountCredentials",
        lambda email, key_file: made.append((email, key_file)) or "SA",
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert E.initialize() == "proj-x"
    assert made == [("sb@proj-x.iam.gserviceaccount.com", str(key))]
    assert recorded_initialize == {"credentials": "SA", "project": "proj-x"}
    # an explicit project (or EARTHENGINE_PROJECT) wins over the key's project
    monkeypatch.setenv("EARTHENGINE_PROJECT", "proj-env")
    assert E.initialize() == "proj-env"
    assert E.initialize(project="proj-arg") == "proj-arg"


def test_initialize_with_an_earthengine_token(clean_env, recorded_initialize, monkeypatch):
    import ee

    token = Path(ee.oauth.get_credentials_path())
    token.parent.mkdir(parents=True)
    token.write_text(json.dumps({"refresh_token": "x"}))
    with pytest.raises(E.EarthEngineSetupError, match="EARTHENGINE_PROJECT"):
        E.initialize()  # a token but no project anywhere
    monkeypatch.setenv("EARTHENGINE_PROJECT", "my-ee-project")
    assert E.initialize() == "my-ee-project"
    assert recorded_initialize == {"credentials": "persistent", "project": "my-ee-project"}
    monkeypatch.delenv("EARTHENGINE_PROJECT")
    token.write_text(json.dumps({"refresh_token": "x", "project": "stored-project"}))
    assert E.initialize() == "stored-project"


def test_initialize_with_a_missing_key_file(clean_env, recorded_initialize, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(clean_env / "nope.json"))
    with pytest.raises(E.EarthEngineSetupError, match="not a file"):
        E.initialize(project="p")


def test_builders_need_an_initialised_ee():
    ee = pytest.importorskip("ee")
    ee.Reset()
    with pytest.raises(E.EarthEngineSetupError, match="initialize"):
        E.terrain_layers(BOX)


# -- argument checks (no ee needed) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "match"),
    [
        ([], "non-empty list"),
        ("2021-04-01", "non-empty list"),
        ([("2021-05-01", "2021-04-01")], "end is not after the start"),
        ([("2021-04-01", "2021-04-01")], "end is not after the start"),
        ([("2021/04/01", "2021-05-01")], "not a date"),
        ([("2021-04-01",)], "not a \\(start, end\\) pair"),
        ([("2016-01-01", "2016-06-01")], "before the collection starts"),
        ([("2021-09-01", "2021-10-01"), ("2021-04-01", "2021-05-01")], "chronological order"),
        ([("2021-04-01", "2021-05-01"), ("2021-04-01", "2021-05-01")], "chronological order"),
        ([("2999-01-01", "2999-02-01")], "future"),
    ],
)
def test_check_dates_rejects(dates, match):
    with pytest.raises(ValueError, match=match):
        E.check_dates(dates)


def test_check_dates_normalises():
    import datetime as dt

    assert E.check_dates([(dt.date(2021, 4, 1), "2021-05-01")]) == (("2021-04-01", "2021-05-01"),)


@pytest.mark.parametrize(
    ("window", "match"),
    [(64, "even"), (0, "positive"), (-3, "positive"), (True, "int"), (15.0, "int")],
)
def test_check_window_rejects(window, match):
    with pytest.raises(ValueError, match=match):
        E.check_window(window)


@pytest.mark.parametrize(
    ("bands", "match"),
    [
        (["B2", "B10"], "Unknown"),
        (["b2"], "Unknown"),
        ([], "empty"),
        (["B2", "B2"], "twice"),
        ("B2", "list"),
    ],
)
def test_check_bands_rejects(bands, match):
    with pytest.raises(ValueError, match=match):
        E.check_bands(bands)


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([], "empty"),
        ([{"id": 1, "lat": 37.7}], "'lon'"),
        ([{"id": 1, "lat": 118.8, "lon": 37.7}], "lat=118.8"),
        ([{"id": 1, "lat": 37.7, "lon": 200}], "swapped"),
        ([{"id": 1, "lat": "x", "lon": 1}], "expected numbers"),
        ([{"id": 1, "lat": 1, "lon": 1}, {"id": "1", "lat": 2, "lon": 2}], "repeats the id"),
    ],
)
def test_check_points_rejects(points, match):
    with pytest.raises(ValueError, match=match):
        E.check_points(points)


def test_builders_validate_before_touching_ee():
    """Bad arguments fail with ValueError even where ee is missing or not initialised."""
    with pytest.raises(ValueError, match="end is not after"):
        E.sentinel2_composites(BOX, [("2021-05-01", "2021-04-01")])
    with pytest.raises(ValueError, match="cloud_prob_max"):
        E.sentinel2_composites(BOX, DATES, cloud_prob_max=0)
    with pytest.raises(ValueError, match="Unknown"):
        E.sentinel2_composites(BOX, DATES, bands=["B10"])
    with pytest.raises(ValueError, match="west < east"):
        E.terrain_layers((119.0, 37.6, 118.8, 37.9))
    with pytest.raises(ValueError, match="even"):
        E.patch_request(None, YRD_POINTS, window=64)
    with pytest.raises(ValueError, match="empty"):
        E.point_values_request(None, [])
    with pytest.raises(ValueError, match="scale"):
        E.point_values_request(None, YRD_POINTS, scale=-10)
    with pytest.raises(ValueError, match="batch_size"):
        E.build_salinity_request(YRD_POINTS, DATES, window=5, batch_size=0)
    with pytest.raises(ValueError, match="even"):
        E.build_salinity_request(YRD_POINTS, DATES, window=4)


def test_utm_and_bbox():
    assert E.utm_crs(37.71, 118.86) == "EPSG:32650"
    assert E.utm_crs(-33.9, 18.4) == "EPSG:32734"
    assert E.utm_crs(0.0, 180.0) == "EPSG:32660"
    assert E.points_crs(YRD_POINTS) == "EPSG:32650"
    west, south, east, north = E.points_bbox(YRD_POINTS, margin_m=1000)
    assert west < 118.86 and east > 118.95 and south < 37.71 and north > 37.80
    assert math.isclose(37.71 - south, 1000 / 111_320, rel_tol=1e-6)


def test_spatial_blocks():
    groups = E.spatial_block_groups(
        np.array([37.7100, 37.7101, 37.80]), np.array([118.8600, 118.8601, 118.95]), 2000
    )
    assert groups[0] == groups[1] != groups[2]
    assert str(groups[0]).startswith("b")  # the one label format of soilbook.geo.spatial_blocks


# -- to_samples: a hand-written getInfo() payload ----------------------------------------------

BANDS = ["B4", "B8", "B11"]


def _payload() -> dict:
    def patch(base: float) -> list[list[float]]:
        return [[base + 3 * r + c for c in range(3)] for r in range(3)]

    features = []
    values = {
        "S1": (0.05, 1.2, 2.5),
        "S2": (0.07, 3.4, E.FILL_VALUE),  # elevation fine, tpi masked -> FILL
        "S3": (None, 0.5, -1.0),  # a band with no value at all
    }
    for k, (pid, (b4, elev, tpi)) in enumerate(values.items()):
        props: dict[str, Any] = {
            "id": pid,
            "lat": YRD_POINTS[k]["lat"],
            "lon": YRD_POINTS[k]["lon"],
        }
        props.update({"B4_t0": b4, "B8_t0": 0.30, "B11_t0": 0.25})
        props.update({"B4_t1": 0.06, "B8_t1": 0.35, "B11_t1": 0.28})
        props.update({"elevation": elev, "tpi": tpi, "Lai_t0": 1.5})
        props.update({"patch_elevation": patch(elev), "patch_tpi": patch(0.0)})
        features.append({"type": "Feature", "geometry": None, "id": f"{k}_0", "properties": props})
    # Earth Engine does not promise the order of features: shuffle it
    features = [features[2], features[0], features[1]]
    return {"type": "FeatureCollection", "columns": {}, "features": features}


def _convert(**kwargs: Any):
    args = {
        "dates": DATES,
        "covariates": {"elevation": "terrain", "tpi": "hydrology", "Lai_t0": "vegetation"},
        "patch_layers": {"elevation": "terrain", "tpi": "hydrology"},
        "points": YRD_POINTS,
    }
    args.update(kwargs)
    with pytest.warns(UserWarning, match="missing values"):
        return E.to_samples(_payload(), BANDS, **args)


def test_to_samples_builds_a_valid_sample_set():
    ds = _convert()
    assert validate_samples(ds) is ds
    assert ds.sizes == {"sample": 3, "date": 2, "band": 3, "feature": 3, "layer": 2, "y": 3, "x": 3}
    assert list(ds["sample"].values) == ["S1", "S2", "S3"]  # the points' order, not the payload's
    np.testing.assert_allclose(ds["target"].values, [4.2, 12.5, 1.1])
    assert ds["target"].attrs["units"] == "g/kg"
    # reflectance (sample, date, band) with wavelengths
    assert ds["reflectance"].dims == ("sample", "date", "band")
    assert ds["reflectance"].dtype == np.float32
    np.testing.assert_allclose(ds["reflectance"].sel(sample="S1", band="B4").values, [0.05, 0.06])
    assert math.isnan(float(ds["reflectance"].sel(sample="S3", band="B4", date="2021-04-01")))
    np.testing.assert_allclose(ds["wavelength"].values, [664.8, 832.9, 1612.1])
    assert list(ds["date_end"].values) == ["2021-05-01", "2021-10-01"]
    # covariates with groups and units; FILL_VALUE became NaN
    assert list(ds["feature_group"].values) == ["terrain", "hydrology", "vegetation"]
    assert list(ds["feature_units"].values) == ["m", "m", "m2 m-2"]
    assert math.isnan(float(ds["covariates"].sel(sample="S2", feature="tpi")))
    np.testing.assert_allclose(ds["covariates"].sel(feature="elevation").values, [1.2, 3.4, 0.5])
    # patches (sample, layer, y, x), centre pixel = the covariate, y north-up offsets in metres
    assert ds["patches"].dims == ("sample", "layer", "y", "x")
    assert list(ds["layer_group"].values) == ["terrain", "hydrology"]
    np.testing.assert_allclose(ds["y"].values, [10, 0, -10])
    np.testing.assert_allclose(ds["x"].values, [-10, 0, 10])
    centre = ds["patches"].sel(layer="elevation", y=0, x=0).values
    np.testing.assert_allclose(centre, ds["covariates"].sel(feature="elevation").values + 4)
    # provenance
    assert ds.attrs["simulated"] is False
    assert ds.attrs["source"].startswith("Earth Engine: COPERNICUS/S2_SR_HARMONIZED")
    licence = ds.attrs["licence"]
    assert "Copernicus Sentinel data" in licence and "public domain" in licence
    assert "Copernicus DEM licence" in licence
    assert "10.1016/j.rse.2017.06.031" in ds.attrs["citation"]
    # groups: spatial blocks (S1, S2 ~1.4 km apart may share a block; S3 is ~12 km away)
    assert ds["group"].values[2] != ds["group"].values[0]


def test_to_samples_group_key_and_without_points():
    ds = _convert(group_key="field")
    assert list(ds["group"].values) == ["F1", "F1", "F2"]
    # without points: order, lat/lon and target come from the features themselves
    payload = _payload()
    for f in payload["features"]:
        f["properties"]["salt"] = 2.0
    with pytest.warns(UserWarning):
        ds = E.to_samples(payload, BANDS, dates=DATES, target_key="salt")
    assert list(ds["sample"].values) == ["S3", "S1", "S2"]
    assert "covariates" not in ds and "patches" not in ds
    np.testing.assert_allclose(ds["lat"].values, [37.80, 37.71, 37.72])


def test_to_samples_covariates_only():
    payload = _payload()
    ds = E.to_samples(
        payload["features"], [], covariates={"elevation": "terrain", "Lai_t0": "vegetation"},
        points=YRD_POINTS, collections=[E.GLO30, E.MCD15A3H],
    )  # fmt: skip
    assert "reflectance" not in ds and "band" not in ds.dims
    assert ds.attrs["source"] == "Earth Engine: COPERNICUS/DEM/GLO30, MODIS/061/MCD15A3H"
    assert "Sentinel" not in ds.attrs["licence"]


def test_to_samples_errors():
    payload = _payload()
    unlabelled = [dict(p) for p in YRD_POINTS]
    del unlabelled[1]["target"]
    with pytest.raises(ValueError, match="no finite 'target'"):
        E.to_samples(payload, BANDS, dates=DATES, points=unlabelled)
    with pytest.raises(ValueError, match="repeat the id"):
        E.to_samples(payload["features"] * 2, BANDS, dates=DATES, points=YRD_POINTS)
    with pytest.raises(ValueError, match="without 'features'"):
        E.to_samples({"type": "FeatureCollection"}, BANDS, dates=DATES, points=YRD_POINTS)
    with pytest.raises(ValueError, match="dates is required"):
        E.to_samples(payload, BANDS, points=YRD_POINTS)
    with pytest.raises(ValueError, match="unknown group"):
        E.to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, covariates={"tpi": "wetness"})
    bad = _payload()
    bad["features"][0]["properties"]["patch_tpi"] = [[1.0, 2.0]]
    with pytest.raises(ValueError, match="odd"):
        E.to_samples(bad, BANDS, dates=DATES, points=YRD_POINTS, patch_layers={"tpi": "hydrology"})
    with pytest.raises(ValueError, match="no feature carries a patch"):
        E.to_samples(
            payload, BANDS, dates=DATES, points=YRD_POINTS, patch_layers={"slope": "terrain"}
        )
    with pytest.raises(ValueError, match="group_key 'plot'"):
        E.to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, group_key="plot")


def test_to_samples_warns_about_points_that_did_not_come_back():
    payload = _payload()
    payload["features"] = payload["features"][1:]  # S3 missing
    with pytest.warns(UserWarning) as record:
        ds = E.to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS)
    assert any("without values" in str(w.message) for w in record)
    assert np.isnan(ds["reflectance"].sel(sample="S3").values).all()


# -- the module without earthengine-api --------------------------------------------------------


def test_module_imports_and_converts_without_earthengine_api():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ee"] = None  # make `import ee` fail
        from soilbook.data import earthengine as E
        payload = [{"properties": {"id": "a", "lat": 37.7, "lon": 118.8, "target": 3.0,
                                   "elevation": 2.0}}]
        ds = E.to_samples(payload, [], covariates={"elevation": "terrain"},
                          collections=[E.GLO30])
        assert ds.sizes["sample"] == 1
        try:
            E.terrain_layers((118.8, 37.6, 119.0, 37.9))
        except E.EarthEngineSetupError as err:
            assert "pip install earthengine-api" in str(err), err
        else:
            raise AssertionError("no error without ee")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
