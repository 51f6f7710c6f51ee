"""Layer builders and sampling requests of soilbook.data.earthengine, on their serialised
Earth Engine graphs (offline harness: :mod:`ee_harness`; skipped without earthengine-api)."""

from __future__ import annotations

import json

import ee_harness
import pytest
from ee_harness import (
    BOX,
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

ee_offline = ee_harness.ee_offline


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
