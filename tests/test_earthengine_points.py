"""A user's points CSV, area of interest and the coverage checks: every bad input fails before
any request with what to do (pure Python, no ``ee``)."""

from __future__ import annotations

import pytest

from soilbook.data import earthengine as E
from soilbook.data.earthengine.checks import area_pixels, check_area
from soilbook.data.earthengine.points import parse_aoi, read_points
from soilbook.errors import ParameterError


def _csv(tmp_path, text: str, name: str = "points.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_points_reads_ids_dates_targets_and_keeps_other_columns(tmp_path):
    path = _csv(
        tmp_path,
        "ID,Latitude,Longitude,Date,target,field\n"
        "S1, 37.71,118.86,2021-04-12,4.2,F1\n"
        "S2,37.72,118.87,2021/09/03,12.5,F2\n",
    )
    points = read_points(path)
    assert points == [
        {"id": "S1", "lat": 37.71, "lon": 118.86, "date": "2021-04-12", "target": 4.2, "field": "F1"},
        {"id": "S2", "lat": 37.72, "lon": 118.87, "date": "2021-09-03", "target": 12.5, "field": "F2"},
    ]  # fmt: skip


def test_read_points_without_id_numbers_rows_and_target_is_optional(tmp_path):
    path = _csv(tmp_path, "lat,lon\n10,20\n11,21\n")
    points = read_points(path, need_target=False, need_date=False)
    assert [p["id"] for p in points] == ["row2", "row3"]
    assert "target" not in points[0]
    soc = read_points(_csv(tmp_path, "lat,lon,date,soc\n1,2,2015-01-01,30\n"), target_column="soc")
    assert soc[0]["target"] == 30.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x_coord,lat_coord\n1,2\n", "no lat column"),
        ("lat,date,target\n1,2020-01-01,3\n", "no lon column"),
        ("lat,lon,target\n1,2,3\n", "no 'date' column"),
        ("lat,lon,date\n1,2,2020-01-01\n", "no 'target' column"),
        ("lat,lon,date,target\n1,2,2020-01-01,3\n1,abc,2020-01-01,3\n", "row 3: lon='abc'"),
        ("lat,lon,date,target\n1,2,2020-01-01,\n", "row 2: target=''"),
        ("lat,lon,date,target\n1,2,spring,3\n", "row 2: date='spring'"),
        ("lat,lon,date,target\n95,2,2020-01-01,3\n", "lat=95.0"),
        ("id,lat,lon,date,target\na,1,2,2020-01-01,3\na,1,2,2020-01-01,3\n", "repeats the id"),
        ("lat,lon,date,target\n", "holds no rows"),
    ],
)
def test_read_points_refuses_bad_tables_with_what_to_do(tmp_path, text, message):
    with pytest.raises(
        ParameterError, match=r"What to do|ids must be unique|expected WGS84"
    ) as err:
        read_points(_csv(tmp_path, text))
    assert message in str(err.value)


def test_read_points_refuses_missing_and_non_csv_files(tmp_path):
    with pytest.raises(ParameterError, match="is not a file"):
        read_points(tmp_path / "nope.csv")
    with pytest.raises(ParameterError, match=r"is not a \.csv file"):
        read_points(_csv(tmp_path, "{}", "points.json"))


def test_parse_aoi():
    assert parse_aoi("") is None
    assert parse_aoi(" 118.8, 37.6,119.0,37.9") == (118.8, 37.6, 119.0, 37.9)
    with pytest.raises(ParameterError, match="west,south,east,north"):
        parse_aoi("118.8,37.6,119.0")
    with pytest.raises(ParameterError, match="west < east"):
        parse_aoi("119.0,37.6,118.8,37.9")


def test_check_area_refuses_an_area_too_large_for_the_scale():
    box = (118.0, 37.0, 119.0, 38.0)  # about 88 km x 111 km
    width, height = area_pixels(box, 10.0)
    assert 8_700 <= width <= 8_900 and 11_000 <= height <= 11_100
    assert check_area(box, 10.0) == width * height
    with pytest.raises(ParameterError, match=r"coarser scale \(>= \d+ m\)") as err:
        check_area(box, 10.0, max_pixels=10**6)
    assert "split the area" in str(err.value)
    with pytest.raises(ParameterError, match="scale"):
        check_area(box, 0.0)


def test_check_coverage_footprints_and_missions():
    E.check_coverage(E.S2_SR, [{"id": "a", "lat": 37.7}], [("2021-04-01", "2021-05-01")])
    with pytest.raises(ParameterError, match="outside COPERNICUS/S2_SR_HARMONIZED's footprint"):
        E.check_coverage(E.S2_SR, [{"id": "pole", "lat": -70.0}])
    with pytest.raises(ParameterError, match="ends before COPERNICUS/S1_GRD starts on 2014-10-03"):
        E.check_coverage(E.S1_GRD, dates=[("2014-01-01", "2014-06-01")])
    with pytest.raises(ParameterError, match="starts after EO1/HYPERION ended"):
        E.check_coverage(E.HYPERION, dates=[("2019-01-01", "2019-02-01")])
    E.check_coverage(E.GLO30, [{"id": "a", "lat": 0.0}], [("1900-01-01", "1900-02-01")])  # static
    with pytest.raises(ParameterError, match="no coverage entry"):
        E.check_coverage("NOT/A/COLLECTION")
    assert set(E.COVERAGE) == set(E.COLLECTIONS)  # a collection added once has both
