"""The SOC recipe (soilbook.data.earthengine.recipes.soc): the golden graphs of the Landsat-8
patch image and the TerraClimate series, the prechecks, the conversions and the extraction
against a fake computePixels server and a fake climate download (offline)."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import ee_harness
import numpy as np
import pytest
from ee_fakes import FakeTransport, offsets
from ee_harness import calls, const, date_ranges, graph, loaded_ids, point_ids

from soilbook import geo
from soilbook.data import soc
from soilbook.data.earthengine import pixels
from soilbook.data.earthengine.catalogue import FILL_VALUE, GLO30, LANDSAT8_L2, TERRACLIMATE
from soilbook.data.earthengine.recipes import soc as S
from soilbook.data.schema import validate_samples
from soilbook.errors import ParameterError

ee_offline = ee_harness.ee_offline

#: Sample locations in the Great Plains: UTM zone 14 N, except P4 in zone 15 N.
POINTS = [
    {"id": "P1", "lat": 40.00, "lon": -100.00, "target": 12.0},
    {"id": "P2", "lat": 40.05, "lon": -100.10, "target": 8.5},
    {"id": "P3", "lat": 40.10, "lon": -99.90, "target": 3.2},
    {"id": "P4", "lat": 40.20, "lon": -95.50, "target": 20.0},
]
#: A short window: TerraClimate 2014-11 .. 2015-01 (3 months), Landsat-8 scenes of 2015.
SHORT = [("2014-11-01", "2015-02-01")]


def _nodes(tree: Any):
    """Every dict in a serialised graph, depth first."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _names(tree: Any) -> set[str]:
    """Every Earth Engine function a serialised graph invokes."""
    return {n["functionInvocationValue"]["functionName"] for n in _nodes(tree)
            if "functionInvocationValue" in n}  # fmt: skip


def _constants(tree: Any) -> list[Any]:
    """Every scalar ``constantValue`` in ``tree``."""
    return [n["constantValue"] for n in _nodes(tree)
            if isinstance(n.get("constantValue"), (int, float))]  # fmt: skip


def _image_constants(tree: Any) -> list[Any]:
    """The literal values of every ``Image.constant`` in ``tree``."""
    return [a["value"]["constantValue"] for a in calls(tree, "Image.constant")]


# -- the golden graphs -------------------------------------------------------------------------


def test_landsat_soc_image_graph(ee_offline):
    tree = graph(S.landsat_soc_image(POINTS[0], 2015))
    assert loaded_ids(tree) == {LANDSAT8_L2, GLO30}
    assert date_ranges(tree) == {("2015-01-01", "2016-01-01")}
    # Collection-2 surface reflectance: SR_B1..SR_B7 renamed B1..B7, DN * 2.75e-5 - 0.2
    selects = calls(tree, "Image.select")
    assert any(
        const(a["bandSelectors"]) == [f"SR_B{i}" for i in range(1, 8)]
        and const(a["newNames"]) == [f"B{i}" for i in range(1, 8)]
        for a in selects
        if "newNames" in a
    )
    constants = _image_constants(tree)
    assert 2.75e-5 in constants and -0.2 in constants
    # QA_PIXEL: bits 0-5 masked (63), the scene filter on cloud bits 1-3 and snow bit 5 (46)
    masks = {const(a["image2"]) for a in calls(tree, "Image.bitwiseAnd")}
    assert masks == {0b111111, 0b101110}
    assert all(const(a["bandSelectors"]) == ["QA_PIXEL"] for a in selects if _reads_qa(a))
    filters = {
        (const(a["leftField"]), const(a["rightValue"])) for a in calls(tree, "Filter.lessThan")
    }
    assert filters == {("soc_valid", 0.7), ("soc_cloud_snow", 0.1)}
    assert len(calls(tree, "Filter.not")) >= 1  # soc_valid >= 0.7 is not(soc_valid < 0.7)
    # winter (Dec, Jan, Feb) first, then the least mean NDVI: rank = NDVI + 10 * (not winter)
    assert {const(a["unit"]) for a in calls(tree, "Date.get")} == {"month"}
    assert {const(a["right"]) for a in calls(tree, "Number.lte")} == {2}
    assert {const(a["right"]) for a in calls(tree, "Number.eq")} == {12}
    assert {const(a["right"]) for a in calls(tree, "Number.multiply")} == {S.NOT_WINTER_RANK}
    (limit,) = {json.dumps(a, sort_keys=True) for a in calls(tree, "Collection.limit")}
    limit = json.loads(limit)
    assert const(limit["key"]) == "soc_rank"
    assert const(limit.get("ascending", {"constantValue": True})) is True  # lowest rank first
    ranks = [a["value"] for a in calls(tree, "Element.set") if const(a["key"]) == "soc_rank"]
    assert {r.get("constantValue") for r in ranks} == {S.NO_SCENE_RANK, None}  # stand-in last
    (rank,) = {json.dumps(r, sort_keys=True) for r in ranks if "constantValue" not in r}
    rank = json.loads(rank)["functionInvocationValue"]
    assert rank["functionName"] == "Number.add"  # NDVI + ...
    assert rank["arguments"]["left"]["functionInvocationValue"]["functionName"] == "Number.divide"
    penalty = rank["arguments"]["right"]["functionInvocationValue"]
    assert penalty["functionName"] == "Number.multiply"  # ... (1 - winter) * 10
    assert const(penalty["arguments"]["right"]) == S.NOT_WINTER_RANK
    # the five normalised differences and the 14 layers in IMAGE_LAYERS order
    pairs = {tuple(const(a["bandNames"])) for a in calls(tree, "Image.normalizedDifference")}
    assert pairs == set(soc.ND_INDICES.values())
    assert any(const(a["bandSelectors"]) == list(soc.IMAGE_LAYERS) for a in selects)
    assert len(soc.IMAGE_LAYERS) == 14
    # GLO-30 slope straight from ee.Terrain.slope: degrees, never converted to percent
    assert len(calls(tree, "Terrain.slope")) == 1
    assert not _names(tree) & {"Image.tan", "Image.tan2", "Image.divide"}
    assert any(const(a["value"]) == FILL_VALUE for a in calls(tree, "Image.unmask"))
    # the window statistics are taken on the point's own UTM zone (GLO-30 is WGS84 at 30 m)
    regions = calls(tree, "Image.reduceRegion")
    assert {json.dumps(a["crs"]) for a in regions} == {json.dumps(_projection("EPSG:32614"))}
    assert {const(a["scale"]) for a in regions} == {30}
    assert {const(a["crs"]) for a in calls(tree, "Projection")} == {"EPSG:32614", "EPSG:4326"}


def _projection(crs: str) -> dict:
    """The serialised ``ee.Projection(crs)``."""
    inv = {"functionName": "Projection", "arguments": {"crs": {"constantValue": crs}}}
    return {"functionInvocationValue": inv}


def _reads_qa(select_args: dict) -> bool:
    """Whether an ``Image.select`` picks the QA band."""
    return "QA_PIXEL" in const(select_args["bandSelectors"])


def test_landsat_soc_image_checks_before_building(ee_offline):
    with pytest.raises(ParameterError, match="Landsat-8's life"):
        S.landsat_soc_image(POINTS[0], 2012)
    with pytest.raises(ParameterError, match="multiple of 30"):
        S.landsat_soc_image(POINTS[0], 2015, window_m=1000)
    with pytest.raises(ParameterError, match="footprint"):
        S.landsat_soc_image({"lat": 85.0, "lon": 10.0}, 2015)


def test_terraclimate_series_image_graph(ee_offline):
    tree = graph(S.terraclimate_series_image())
    assert loaded_ids(tree) == {TERRACLIMATE}
    assert date_ranges(tree) == {("2010-01-01", "2015-02-01")}  # 61 months from 2010-01
    variables = list(soc.CLIMATE_VARIABLES)
    renamed = [a for a in calls(tree, "Image.select") if "newNames" in a]
    (picked,) = renamed
    source, names = const(picked["bandSelectors"]), const(picked["newNames"])
    assert len(source) == len(names) == 61 * 13
    assert source[:2] == ["201001_aet", "201001_def"] and source[-1] == "201501_vpd"
    assert names == S.series_names(variables, 61) and names[13] == "aet_t1"
    factors = [c for c in _image_constants(tree) if isinstance(c, list)]
    assert factors == [[soc.CLIMATE_SCALE_FACTORS[v] for v in variables] * 61]
    assert factors[0][variables.index("vap")] == 0.001
    # masked pixels are filled with FILL_VALUE; no If(val, val, -999): a real 0 stays 0
    assert [const(a["value"]) for a in calls(tree, "Image.unmask")] == [FILL_VALUE]
    assert not _names(tree) & {"Algorithms.If", "Image.where", "Image.remap"}
    assert -999 not in _constants(tree) and FILL_VALUE in _constants(tree)


def test_terraclimate_series_request_graph(ee_offline):
    pts = [{"id": f"Q{i}", "lat": 40 + 0.01 * i, "lon": -100.0} for i in range(5)]
    req = S.terraclimate_series_request(pts, "2014-11", 3, ["pr", "swe"], batch_size=2)
    assert [point_ids(graph(b)) for b in req.batches] == [["Q0", "Q1"], ["Q2", "Q3"], ["Q4"]]
    assert req.names() == ["pr_t0", "swe_t0", "pr_t1", "swe_t1", "pr_t2", "swe_t2"]
    tree = graph(req.batches[0])
    assert date_ranges(tree) == {("2014-11-01", "2015-02-01")}
    (sample,) = calls(tree, "Image.sampleRegions")
    assert const(sample["scale"]) == S.CLIMATE_SCALE_M
    assert {const(a["crs"]) for a in calls(tree, "Projection")} == {"EPSG:4326"}
    (picked,) = [a for a in calls(tree, "Image.select") if "newNames" in a]
    assert const(picked["bandSelectors"]) == [
        "201411_pr", "201411_swe", "201412_pr", "201412_swe", "201501_pr", "201501_swe",
    ]  # fmt: skip
    # the default batch keeps a response near PATCH_VALUES_PER_BATCH values (at most 500 points)
    assert S.terraclimate_series_request(pts).batch_size == 500
    with pytest.raises(ParameterError, match="unknown"):
        S.terraclimate_series_request(pts, variables=["tmean"])


# -- the prechecks (pure: no ee) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"year": 2012}, r"outside Landsat-8's life.*2013.*What to do"),
        ({"year": 2999}, r"outside Landsat-8's life"),
        ({"months": 0}, r"months = 0 must be an int between 1 and 480"),
        ({"months": 481}, r"between 1 and 480"),
        ({"months": 2.5}, r"must be an int"),
        ({"start": "2010/01"}, r"not a month 'YYYY-MM'.*What to do"),
        ({"start": "2099-01"}, r"runs into the future.*What to do"),
    ],
)
def test_precheck_soc_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        S.precheck_soc(POINTS, **kwargs)


def test_precheck_soc_refuses_bad_points():
    with pytest.raises(ParameterError, match=r"LANDSAT/LC08/C02/T1_L2's footprint.*What to do"):
        S.precheck_soc([*POINTS, {"id": "arctic", "lat": 84.0, "lon": 10.0}])
    with pytest.raises(ParameterError, match=r"points\[0\] has no \['lat'\].*'lat'"):
        S.precheck_soc([{"id": "no-lat", "lon": -100.0}])
    with pytest.raises(ParameterError, match="repeats the id"):
        S.precheck_soc([POINTS[0], POINTS[0]])
    pts = S.precheck_soc(POINTS, 2015, "2010-01", 61)
    assert [p["id"] for p in pts] == ["P1", "P2", "P3", "P4"] and "target" not in pts[0]


def test_soc_window_args_maps_one_window():
    assert S.soc_window_args([S.PAPER_WINDOW]) == (2015, "2010-01", 61)
    assert S.PAPER_WINDOW == ("2010-01-01", "2015-02-01")
    assert S.soc_window_args(S.PAPER_WINDOW) == (2015, "2010-01", 61)  # a bare pair too
    assert S.soc_window_args(SHORT) == (2015, "2014-11", 3)
    # the series starts in the start's month and ends in the month of the last day inside
    assert S.soc_window_args([("2013-06-15", "2014-01-01")]) == (2013, "2013-06", 7)
    assert S.soc_window_args([("2016-03-01", "2016-03-02")]) == (2016, "2016-03", 1)


@pytest.mark.parametrize(
    ("dates", "match"),
    [
        ([S.PAPER_WINDOW, ("2016-01-01", "2017-01-01")], r"SOC takes one window \(2 given\)"),
        ([], r"SOC takes one window"),
        ([("2008-01-01", "2013-01-01")], r"Landsat-8 year 2012.*What to do.*2010-01-01/2015-02"),
        ([("1970-01-01", "2015-01-01")], r"spans 540 months.*at most 480"),
        ([("2015-02-01", "2010-01-01")], r"not after the start"),
        ([("2015-01-01", "next year")], r"is not a date"),
    ],
)
def test_precheck_soc_windows_refuses_bad_windows(dates, match):
    with pytest.raises(ParameterError, match=match):
        S.precheck_soc_windows(POINTS, dates)


def test_precheck_soc_windows_passes_the_paper_window_and_checks_points():
    assert S.precheck_soc_windows(POINTS, [S.PAPER_WINDOW]) is None
    with pytest.raises(ParameterError, match="footprint"):
        S.precheck_soc_windows([{"id": "x", "lat": -83.0, "lon": 0.0}], [S.PAPER_WINDOW])


# -- the conversions (pure) --------------------------------------------------------------------


def test_fill_to_nan_keeps_zeros():
    out = S.fill_to_nan([[0.0, FILL_VALUE], [-9998.5, 1.5]])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.0, np.nan], [-9998.5, 1.5]])


def test_climate_from_features_keeps_zeros_and_turns_fill_into_nan():
    pts = [{"id": "a", "lat": 40.0, "lon": -100.0}, {"id": "b", "lat": 41.0, "lon": -100.0}]
    props = {"id": "a", "swe_t0": 0.0, "pr_t0": 12.0, "swe_t1": FILL_VALUE, "pr_t1": None}
    payload = {"type": "FeatureCollection", "features": [{"properties": props}]}
    out = S.climate_from_features(payload, pts, ["swe", "pr"], 3)
    assert out.shape == (2, 3, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(out[0, 0], [0.0, 12.0])  # a real zero (no snow) stays 0
    assert np.isnan(out[0, 1]).all()  # FILL_VALUE and None are missing
    assert np.isnan(out[0, 2]).all()  # absent properties are missing
    assert np.isnan(out[1]).all()  # a point that did not come back
    same = S.climate_from_features([{"properties": props}], pts[:1], ["swe", "pr"], 1)
    np.testing.assert_array_equal(same[0, 0], [0.0, 12.0])


# -- extraction against fakes ------------------------------------------------------------------


class _NoSceneTransport(FakeTransport):
    """The fake server, answering FILL_VALUE (no qualifying scene) on grids in ``empty_crs``."""

    empty_crs: str = "EPSG:32615"

    def compute_pixels(self, expression, grid, bands) -> np.ndarray:
        arr = super().compute_pixels(expression, grid, bands)
        return np.full_like(arr, FILL_VALUE) if grid.crs == self.empty_crs else arr


def _fake_download(sent: list[list[str]], missing: tuple[str, ...] = ()):
    """A stand-in for :func:`~soilbook.data.earthengine.sampling.download`: every value of a
    point 0.0 (a real zero) except ``pr`` = 1 + month, FILL_VALUE for the ``missing`` points and
    for ``vap`` in month 1 of every point (one masked cell)."""

    def download(batches, *, progress=True, cache_dir=None):
        features = []
        for batch in batches:
            ids = point_ids(graph(batch))
            sent.append(ids)
            for pid in ids:
                props: dict[str, Any] = {"id": pid}
                names = [n for a in calls(graph(batch), "Image.select") if "newNames" in a
                         for n in const(a["newNames"])]  # fmt: skip
                for name in names:
                    var, month = name.rsplit("_t", 1)
                    value = 1.0 + int(month) if var == "pr" else 0.0
                    if pid in missing or (var == "vap" and month == "1"):
                        value = FILL_VALUE
                    props[name] = value
                features.append({"type": "Feature", "geometry": None, "properties": props})
        return features

    return download


def test_extract_soc_inputs_end_to_end(ee_offline, monkeypatch):
    sent: list[list[str]] = []
    monkeypatch.setattr(S, "download", _fake_download(sent))
    transport = _NoSceneTransport(all_bands=list(soc.IMAGE_LAYERS))
    with pytest.warns(UserWarning, match=r"1 of 4 location\(s\) dropped.*\['P4'\]"):
        ds = S.extract_soc_inputs(
            POINTS, year=2015, start="2014-11", months=3, transport=transport, progress=False
        )
    validate_samples(ds)
    assert sent == [["P1", "P2", "P3", "P4"]]  # one climate batch
    assert transport.n_calls == 4  # one computePixels request per point (65 x 65 x 14)
    assert list(ds["sample"].values) == ["P1", "P2", "P3"]
    np.testing.assert_allclose(ds["target"].values, [12.0, 8.5, 3.2])
    assert ds["patches"].dims == ("sample", "layer", "y", "x")
    assert ds["patches"].shape == (3, 14, 64, 64)
    assert list(ds["layer"].values) == list(soc.IMAGE_LAYERS)
    assert list(ds["layer_units"].values)[-2:] == ["m", "degree"]
    assert ds["y"].values[0] == 32 * 30 and ds["y"].values[-1] == -31 * 30
    # the centre pixel (index 32) is the point's pixel: its covariates are the patch's centre
    for k, p in enumerate(POINTS[:3]):
        grid = pixels.grid_around(p["lat"], p["lon"], 65, 30.0, "EPSG:32614")
        row, col = offsets(grid, transport.origin)
        want = np.arange(14) * 1e6 + (row + 32) * 1000.0 + (col + 32)
        np.testing.assert_allclose(ds["covariates"].values[k], want)
        np.testing.assert_allclose(ds["patches"].values[k, :, 32, 32], want, rtol=1e-6)
    # climate: (sample, time, variable) in CLIMATE_VARIABLES order; zeros kept, FILL -> NaN
    clim = ds["climate"]
    assert clim.dims == ("sample", "time", "variable") and clim.shape == (3, 3, 13)
    assert list(ds["variable"].values) == list(soc.CLIMATE_VARIABLES)
    assert str(ds["time"].values[0])[:7] == "2014-11"
    np.testing.assert_array_equal(clim.sel(variable="pr").values, [[1, 2, 3]] * 3)
    np.testing.assert_array_equal(clim.sel(variable="swe").values, 0.0)
    vap = clim.sel(variable="vap").values
    assert np.isnan(vap[:, 1]).all() and (vap[:, [0, 2]] == 0).all()
    # attributes: what was read and how
    assert ds.attrs["simulated"] is False and ds.attrs["n_dropped"] == 1
    assert ds.attrs["landsat_year"] == 2015 and ds.attrs["slope_units"] == "degree"
    assert ds.attrs["collections"] == ", ".join(S.SOC_COLLECTIONS)
    assert ds.attrs["climate_start"] == "2014-11" and ds.attrs["climate_months"] == 3


def test_extract_soc_inputs_drops_ocean_and_refuses_when_nothing_is_left(ee_offline, monkeypatch):
    monkeypatch.setattr(S, "download", _fake_download([], missing=("P2",)))
    transport = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    with pytest.warns(UserWarning, match=r"\['P2'\]"):
        ds = S.extract_soc_inputs(
            POINTS[:3], start="2014-11", months=3, transport=transport, progress=False
        )
    assert list(ds["sample"].values) == ["P1", "P3"]
    monkeypatch.setattr(S, "download", _fake_download([], missing=("P1", "P2", "P3")))
    with pytest.raises(ParameterError, match="none of the 3 location"):
        S.extract_soc_inputs(
            POINTS[:3], start="2014-11", months=3, transport=transport, progress=False
        )


def test_extract_soc_inputs_reuses_the_cache(ee_offline, monkeypatch, tmp_path):
    monkeypatch.setattr(S, "download", _fake_download([]))
    first = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    kwargs = {"start": "2014-11", "months": 3, "cache_dir": tmp_path, "progress": False}
    a = S.extract_soc_inputs(POINTS[:3], transport=first, **kwargs)
    assert first.n_calls == 3
    second = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    b = S.extract_soc_inputs(POINTS[:3], transport=second, **kwargs)
    assert second.n_calls == 0
    np.testing.assert_array_equal(a["patches"].values, b["patches"].values)
    # another year is another expression: fetched anew
    S.extract_soc_inputs(POINTS[:1], year=2016, transport=second, **kwargs)
    assert second.n_calls == 1


def test_extract_soc_inputs_checks_before_any_request(ee_offline, monkeypatch):
    monkeypatch.setattr(S, "download", lambda *a, **k: pytest.fail("climate was requested"))
    transport = FakeTransport(all_bands=list(soc.IMAGE_LAYERS), permanent=[])
    unlabelled = [dict(POINTS[0]), {"id": "X", "lat": 40.3, "lon": -100.0}]
    with pytest.raises(ParameterError, match="no finite 'target'"):
        S.extract_soc_inputs(unlabelled, transport=transport, progress=False)
    with pytest.raises(ParameterError, match="Landsat-8's life"):
        S.extract_soc_inputs(POINTS, year=2011, transport=transport, progress=False)
    with pytest.raises(ParameterError, match="block_size_km"):
        S.extract_soc_inputs(POINTS, block_size_km=0, transport=transport, progress=False)
    assert transport.n_calls == 0


# -- the chapter's SocData ---------------------------------------------------------------------


def test_extract_soc_data_splits_labelled_and_unlabelled(ee_offline, monkeypatch):
    sent: list[list[str]] = []
    monkeypatch.setattr(S, "download", _fake_download(sent))
    points = [
        *POINTS[:3],
        {"id": "U1", "lat": 40.5, "lon": -100.3, "target": None},
        {"id": "U2", "lat": 41.5, "lon": -99.0, "target": math.nan},
        {"id": "U3", "lat": 39.2, "lon": -101.0},
    ]
    transport = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    year, start, months = S.soc_window_args(SHORT)
    data = S.extract_soc_data(
        points, year=year, start=start, months=months, transport=transport, progress=False
    )
    assert isinstance(data, soc.SocData) and data.has_image
    assert sent == [["P1", "P2", "P3"], ["U1", "U2", "U3"]]
    lab, unl = data.labelled, data.unlabelled
    validate_samples(lab)
    assert list(lab["sample"].values) == ["P1", "P2", "P3"]
    assert list(unl["sample"].values) == ["U1", "U2", "U3"] and "target" not in unl
    assert unl["patches"].shape == (3, 14, 64, 64) and unl["climate"].shape == (3, 3, 13)
    # one block grid for both sets (as RaCA): the blocks of all locations at once
    lat = np.concatenate([lab["lat"].values, unl["lat"].values])
    lon = np.concatenate([lab["lon"].values, unl["lon"].values])
    groups, _ = geo.lat_lon_blocks(lat, lon, 100_000.0)
    assert list(lab["group"].values) + list(unl["group"].values) == list(groups)
    assert lab["group"].attrs["long_name"] == "spatial block (100 km)"
    assert data.description.startswith(
        "Your sample points, real, from Earth Engine (Landsat-8 year 2015, TerraClimate from "
        "2014-11 for 3 months): 3 labelled location(s)"
    )
    assert "3 without a value for pre-training" in data.description


def test_extract_soc_data_paper_window_and_too_few_unlabelled(ee_offline, monkeypatch):
    monkeypatch.setattr(S, "download", _fake_download([]))
    points = [*POINTS[:2], {"id": "U1", "lat": 40.5, "lon": -100.3, "target": ""}]
    transport = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, nothing warned
        data = S.extract_soc_data(points, transport=transport, progress=False)
    assert S.soc_window_args([S.PAPER_WINDOW]) == (2015, soc.FIRST_MONTH, soc.N_MONTHS)
    assert data.unlabelled is None
    assert data.labelled["climate"].shape == (2, 61, 13)
    assert "Landsat-8 year 2015, TerraClimate from 2010-01 for 61 months" in data.description
    assert "1 location(s) without a value were left out" in data.description
    assert transport.n_calls == 2  # the unlabelled point was never requested


def test_extract_soc_data_checks_before_any_request(ee_offline, monkeypatch):
    monkeypatch.setattr(S, "download", lambda *a, **k: pytest.fail("climate was requested"))
    transport = FakeTransport(all_bands=list(soc.IMAGE_LAYERS))
    with pytest.raises(ParameterError, match="Landsat-8's life"):
        S.extract_soc_data(POINTS, year=2012, transport=transport)
    with pytest.raises(ParameterError, match="months = 0"):
        S.extract_soc_data(POINTS, months=0, transport=transport)
    with pytest.raises(ParameterError, match="none of the 2 point"):
        S.extract_soc_data([{**p, "target": None} for p in POINTS[:2]], transport=transport)
    with pytest.raises(ParameterError, match="footprint"):
        S.extract_soc_data([*POINTS, {"id": "N", "lat": 83.0, "lon": 0.0}], transport=transport)
    assert transport.n_calls == 0


def test_public_names():
    assert set(S.__all__) >= {
        "PAPER_WINDOW",
        "extract_soc_data",
        "precheck_soc_windows",
        "soc_window_args",
    }
    assert all(hasattr(S, name) for name in S.__all__)
