"""Golden tests: the serialised request graph of every Earth Engine builder, compared with a
stored copy (``tests/golden/<name>.json``), offline.

The other Earth Engine tests check chosen parts of each graph (collections, bands, filters); this
one catches *any* change — a reducer, a resampling method, a scale factor — so that a change to
what is requested is a reviewed change to a golden file. The graphs are built under the
earthengine-api wheel's own harness (``ee.apitestcase``, pinned version) and serialised in
Earth Engine's Cloud API form. After an intended change, rewrite the files with
``SOILBOOK_UPDATE_GOLDEN=1 python -m pytest tests/test_earthengine_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ee_harness
import pytest
from ee_harness import BOX, DATES, YRD_POINTS

ee_offline = ee_harness.ee_offline
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SOILBOOK_UPDATE_GOLDEN") == "1"


def _salinity_point_request() -> Any:
    from soilbook.data.earthengine.recipes.salinity import build_salinity_request

    request = build_salinity_request(YRD_POINTS, DATES, window=5)
    return [request.image, *request.batches]


def _salinity_area_image() -> Any:
    from soilbook.data.earthengine.recipes.salinity import salinity_pixel_image

    return salinity_pixel_image(BOX, DATES)[0]


def _transfer_request() -> Any:
    from soilbook.data.earthengine.recipes.transfer import build_transfer_request

    windows = [("2010-04-01", "2010-06-01"), ("2011-04-01", "2011-06-01")]
    request = build_transfer_request(YRD_POINTS, windows)
    return [request.image, *request.batches]


def _soc_landsat_patch() -> Any:
    from soilbook.data.earthengine.recipes.soc import landsat_soc_image

    return landsat_soc_image(YRD_POINTS[0], 2015)


def _soc_climate_request() -> Any:
    from soilbook.data.earthengine.recipes.soc import terraclimate_series_request

    return list(terraclimate_series_request(YRD_POINTS).batches)


def _moisture_image() -> Any:
    from soilbook.data.earthengine.recipes.moisture import moisture_image

    return moisture_image(BOX, ("2021-05-01", "2021-05-13"))


BUILDERS: dict[str, Callable[[], Any]] = {
    "salinity_point_request": _salinity_point_request,
    "salinity_area_image": _salinity_area_image,
    "transfer_request": _transfer_request,
    "soc_landsat_patch": _soc_landsat_patch,
    "soc_climate_request": _soc_climate_request,
    "moisture_image": _moisture_image,
}


def _serialised(obj: Any) -> str:
    """Earth Engine's compact Cloud API form (shared sub-graphs once, as references)."""
    import ee

    parts = obj if isinstance(obj, list) else [obj]
    graphs = [ee.serializer.encode(part, for_cloud_api=True) for part in parts]
    return json.dumps(graphs, indent=0, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_request_graph_is_the_golden_one(ee_offline, name: str) -> None:
    text = _serialised(BUILDERS[name]())
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; write it with SOILBOOK_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"the request graph of {name} changed. If the change is intended, rewrite the golden "
        "files with SOILBOOK_UPDATE_GOLDEN=1 and review the diff."
    )


def test_the_graphs_are_built_the_same_way_twice(ee_offline) -> None:
    """Serialisation is deterministic, so a golden file can only differ by a real change."""
    for build in BUILDERS.values():
        assert _serialised(build()) == _serialised(build())
