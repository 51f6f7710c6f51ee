"""Argument checks and grid helpers of soilbook.data.earthengine (pure Python, no ``ee``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ee_harness import BOX, DATES, YRD_POINTS

from soilbook.data import earthengine as E
from soilbook.data.earthengine import checks
from soilbook.errors import ParameterError

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


def test_checks_raise_parameter_errors():
    """Every check raises the project's ParameterError (a ValueError) with what to do."""
    with pytest.raises(ParameterError, match="choose a later window"):
        E.check_dates([("2016-01-01", "2016-06-01")])
    with pytest.raises(ParameterError, match="0 < value <= 100"):
        E.check_cloud_prob_max(101)
    with pytest.raises(ParameterError, match="west < east"):
        E.check_bbox((1, 0, 0, 1))
    with pytest.raises(ParameterError, match=r"ee\.Geometry"):
        E.check_bbox("box")


@pytest.mark.parametrize("batch_size", [0, 5001, True, 2.0, "10"])
def test_check_batch_size_rejects(batch_size):
    with pytest.raises(ParameterError, match="between 1 and 5000"):
        checks.check_batch_size(batch_size)


def test_check_batch_size_crs_and_targets_accept():
    assert checks.check_batch_size(None) is None
    assert checks.check_batch_size(5000) == 5000
    assert checks.check_crs(None) is None and checks.check_crs("EPSG:4479") == "EPSG:4479"
    with pytest.raises(ParameterError, match="CRS string"):
        checks.check_crs("  ")
    np.testing.assert_allclose(checks.check_targets(YRD_POINTS, "target"), [4.2, 12.5, 1.1])
    with pytest.raises(ParameterError, match="no finite 'salt'"):
        checks.check_targets([{"id": "a", "salt": "n/a"}, {"id": "b", "salt": math.inf}], "salt")
