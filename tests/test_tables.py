"""Reading a user's file (soilbook.data.tables): every bad file gets a message, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data import tables
from soilbook.errors import ParameterError, SchemaError, SoilbookError

LAYOUT = "a CSV with target, lat, lon"


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_header_is_stripped_and_a_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text(" target ,lat,lon\n1,2,3\n", encoding="utf-8-sig")
    assert tables.read_header(path, layout=LAYOUT) == ["target", "lat", "lon"]
    df = tables.read_csv(path, layout=LAYOUT)
    assert list(df.columns) == ["target", "lat", "lon"] and df["target"].tolist() == [1]


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("empty.csv", "", SchemaError, r"empty\.csv is empty"),
        ("blank.csv", "\n\n", SchemaError, "is empty"),
        ("latin1.csv", "target,caf\xe9\n1,2\n".encode("latin-1"), SchemaError, "not UTF-8"),
        ("semi.csv", "target;lat;lon\n1;2;3\n", SchemaError, "separated by ';'"),
        ("twice.csv", "target,a,target\n1,2,3\n", SchemaError, r"\['target'\] more than once"),
        ("spaced.csv", "target,a, target\n1,2,3\n", SchemaError, r"positions \{'target': \[1, 3\]"),
    ],
)
def test_bad_headers_are_named(tmp_path, name, content, error, match):
    path = _write(tmp_path, name, content)
    with pytest.raises(error, match=match) as err:
        tables.read_csv(path, layout=LAYOUT)
    assert isinstance(err.value, SoilbookError) and name in str(err.value)


def test_non_utf8_bytes_after_the_header_are_named(tmp_path):
    path = _write(tmp_path, "late.csv", b"target,site\n1,ok\n" + "2,M\xfcnchen\n".encode("latin-1"))
    with pytest.raises(SchemaError, match=r"late\.csv is not UTF-8.*CSV UTF-8"):
        tables.read_csv(path, layout=LAYOUT)


def test_ragged_rows_are_a_schema_error(tmp_path):
    path = _write(tmp_path, "ragged.csv", "a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(SchemaError, match=r"ragged\.csv cannot be read as a CSV table"):
        tables.read_csv(path, layout=LAYOUT)


def test_a_folder_is_refused(tmp_path):
    folder = tmp_path / "lab.csv"
    folder.mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        tables.read_header(folder, layout=LAYOUT)
    with pytest.raises(ParameterError, match="is a folder"):
        tables.check_path(folder, extensions=(".csv",), missing_message="give a path")
    store = tmp_path / "set.zarr"
    store.mkdir()  # a Zarr store is a folder
    assert tables.check_path(store, extensions=(".zarr",), missing_message="x") == store


def test_require_columns_and_numeric(tmp_path):
    path = _write(tmp_path, "t.csv", "target,lat\n1,x\n")
    df = tables.read_csv(path, layout=LAYOUT)
    with pytest.raises(SchemaError, match=r"t\.csv has no column\(s\) \['lon'\].*Expected: a CSV"):
        tables.require_columns(path, list(df.columns), ["target", "lon"], layout=LAYOUT)
    with pytest.raises(SchemaError, match=r"\['lat'\] are not numeric"):
        tables.check_numeric(path, df, ["target", "lat"])


def test_infinite_cells_are_named_by_line_and_column(tmp_path):
    path = _write(tmp_path, "inf.csv", "target,B04,B08\n1,0.1,0.2\n2,inf,0.3\n3,,-inf\n")
    df = tables.read_csv(path, layout=LAYOUT)
    with pytest.raises(SchemaError, match=r"2 cell\(s\).*line 3 column 'B04'; line 4 column 'B08'"):
        tables.check_finite(path, df, ["target", "B04", "B08"])
    tables.check_finite(path, df.drop(index=[1, 2]), ["B04", "B08"])  # NaN alone is fine
    frame = pd.DataFrame({"wl_400": [0.1, np.inf]})
    with pytest.raises(SchemaError, match="sample 1 column 'wl_400'"):
        tables.check_finite(path, frame, ["wl_400"], rows_are="samples")


def test_unit_reflectance_scales_and_refuses_non_finite_values():
    unit = np.array([[0.1, 0.4]])
    same, note = tables.to_unit_reflectance(unit, name="f.csv", large="dn")
    np.testing.assert_array_equal(same, unit)
    assert note is None
    with pytest.warns(
        UserWarning, match=r"f\.csv: reflectance values up to 4000 look like reflectance x 10000"
    ):
        dn, note = tables.to_unit_reflectance(unit * 10000, name="f.csv", large="dn")
    np.testing.assert_allclose(dn, unit)
    assert note == "stored value / 10000"
    with pytest.warns(UserWarning, match="look like percent; dividing by 100"):
        pct, _ = tables.to_unit_reflectance(unit * 100, name="f.csv", large="percent")
    np.testing.assert_allclose(pct, unit)
    # one inf would otherwise decide the scale of every value
    with pytest.raises(SchemaError, match="missing or infinite"):
        tables.to_unit_reflectance(np.array([[0.1, np.inf]]), name="f.csv", large="dn")
    np.testing.assert_allclose(tables.to_reflectance(np.array([2500.0]), "dn"), [0.25])
    with pytest.raises(ValueError, match="scale='kelvin'"):
        tables.to_reflectance(unit, "kelvin")


def test_band_columns():
    found = tables.parse_band_columns(["id", "refl_1610@d1", "B04@d1", "B04@d2", "B08@d1", "x"])
    assert found.dates == ["d1", "d2"] and found.bands == ["B04", "B08", "refl_1610"]
    assert found.wavelengths_nm[2] == 1610.0 and 600 < found.wavelengths_nm[0] < 700
    assert found.columns[("d2", "B04")] == "B04@d2" and ("d2", "B08") not in found.columns
    assert tables.parse_band_columns(["B8A", "refl_400"]).dates == [""]


def test_netcdf_that_is_not_netcdf(tmp_path):
    path = _write(tmp_path, "fake.nc", "<html>404 Not Found</html>")
    with pytest.raises(SchemaError, match=r"fake\.nc cannot be read as NetCDF"):
        tables.read_netcdf(path)
