"""Shared pieces of the Earth Engine tests (``tests/test_earthengine_*.py``), all offline.

Request builders are checked on their serialised Earth Engine computation graph, built under the
earthengine-api wheel's own harness (``ee.apitestcase.ApiTestCase``: ``ee`` initialised against a
static copy of the server's algorithm list, no network). Tests that use the :func:`ee_offline`
fixture skip where earthengine-api is absent. Import the fixture into a test module as
``ee_offline = ee_harness.ee_offline``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

#: Field samples in the Yellow River Delta (UTM zone 50 N).
YRD_POINTS = [
    {"id": "S1", "lat": 37.71, "lon": 118.86, "target": 4.2, "field": "F1"},
    {"id": "S2", "lat": 37.72, "lon": 118.87, "target": 12.5, "field": "F1"},
    {"id": "S3", "lat": 37.80, "lon": 118.95, "target": 1.1, "field": "F2"},
]
DATES = [("2021-04-01", "2021-05-01"), ("2021-09-01", "2021-10-01")]
BOX = (118.8, 37.6, 119.0, 37.9)


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


# -- walking a serialised graph ----------------------------------------------------------------


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
    """Ids of the collections a request loads."""
    return {const(a["id"]) for a in calls(tree, "ImageCollection.load")}


def date_ranges(tree: Any) -> set[tuple[str, str]]:
    """The (start, end) of every date filter in a request."""
    return {(const(a["start"]), const(a["end"])) for a in calls(tree, "DateRange")}


def renames(tree: Any) -> list[list[str]]:
    """Every list of new band names (``rename`` and ``select`` with new names)."""
    out = [const(a["names"]) for a in calls(tree, "Image.rename")]
    out += [const(a["newNames"]) for a in calls(tree, "Image.select") if "newNames" in a]
    return out
