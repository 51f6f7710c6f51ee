"""The salinity recipe (soilbook.data.earthengine.recipes.salinity): the composed request, its
round trip through to_samples and the download loop against a fake server (offline)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import ee_harness
import numpy as np
import pytest
from ee_harness import (
    DATES,
    YRD_POINTS,
    calls,
    const,
    date_ranges,
    graph,
    loaded_ids,
    point_ids,
    renames,
)

from soilbook.data import earthengine as E
from soilbook.data.schema import validate_samples

ee_offline = ee_harness.ee_offline


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
    # the recipe, not the generic converter, says what the target is and what was read
    assert ds["target"].attrs == {"units": "g/kg", "long_name": "soil salt content"}
    assert ds.attrs["target_name"] == "soil salt content"
    assert ds.attrs["collections"] == ", ".join(E.SALINITY_COLLECTIONS)


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
    assert sorted(sent) == [["S1", "S2"], ["S3"]]  # batches are sent in parallel, any order
    assert list(ds["group"].values) == ["F1", "F1", "F2"]
    assert ds["patches"].shape == (3, 11, 3, 3)
    assert ds.attrs["simulated"] is False


def test_extract_salinity_inputs_checks_targets_before_any_request(ee_offline, monkeypatch):
    ee = ee_offline
    monkeypatch.setattr(ee.data, "computeValue", lambda *_: pytest.fail("a request was sent"))
    unlabelled = [dict(YRD_POINTS[0]), {"id": "X", "lat": 37.7, "lon": 118.9}]
    with pytest.raises(ValueError, match="no finite 'target'"):
        E.extract_salinity_inputs(unlabelled, DATES, window=3, progress=False)


# -- the generic request: what every recipe returns --------------------------------------------


class _FakeBatch:
    """Stands in for an ee.FeatureCollection request: getInfo() answers from a list."""

    def __init__(self, features: list[dict]) -> None:
        self.features = features

    def getInfo(self) -> dict:
        return {"type": "FeatureCollection", "features": self.features}


def test_a_new_recipe_needs_only_a_request():
    """Another chapter's recipe: a Request with its own target and collections, sent by the
    generic extract() (no ee needed, the batches answer locally)."""
    points = [dict(p, soc=1.5 + k) for k, p in enumerate(YRD_POINTS)]
    answers = [{"properties": {"id": p["id"], "elevation": 10.0 + k}} for k, p in enumerate(points)]
    request = E.Request(
        image=None,
        batches=(_FakeBatch(answers[:2]), _FakeBatch(answers[2:])),
        points=tuple({"id": p["id"], "lat": p["lat"], "lon": p["lon"]} for p in points),
        dates=(),
        bands=(),
        covariates={"elevation": "terrain"},
        patch_layers={},
        window=None,
        scale=30.0,
        crs="EPSG:32650",
        batch_size=2,
        collections=(E.GLO30,),
        target_name="soil organic carbon",
        target_units="%",
        params={"recipe": "test"},
    )
    ds = E.extract(request, points, target_key="soc", group_key="field", progress=False)
    np.testing.assert_allclose(ds["target"].values, [1.5, 2.5, 3.5])
    np.testing.assert_allclose(ds["covariates"].sel(feature="elevation").values, [10, 11, 12])
    assert ds["target"].attrs["long_name"] == "soil organic carbon"
    assert ds.attrs["recipe"] == "test" and ds.attrs["crs"] == "EPSG:32650"
    assert ds.attrs["source"] == "Earth Engine: COPERNICUS/DEM/GLO30"
    assert list(ds["group"].values) == ["F1", "F1", "F2"]


def test_salinity_request_carries_the_recipe_defaults():
    from soilbook.data.earthengine.recipes import salinity

    assert E.SalinityRequest is salinity.SalinityRequest
    assert issubclass(E.SalinityRequest, E.Request)
    fields = {f.name: f.default for f in dataclasses.fields(E.SalinityRequest)}
    assert fields["collections"] == E.SALINITY_COLLECTIONS
    assert (fields["target_name"], fields["target_units"]) == ("soil salt content", "g/kg")
    assert salinity.salinity_covariates(1, ["B3"]) == [
        "elevation",
        "slope",
        "tpi",
        "Lai_t0",
        "Fpar_t0",
    ]
