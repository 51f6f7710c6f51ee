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


# -- reflectance, percent or absorbance (spectra_kind) -------------------------------------------

WL = [490.0, 560.0, 665.0, 833.0, 1610.0]


def _soil_reflectance(n: int = 30, seed: int = 0) -> np.ndarray:
    """Soil-like reflectance 0-1 rising from the visible to the NIR, (n, band)."""
    rng = np.random.default_rng(seed)
    base = np.array([0.08, 0.11, 0.15, 0.22, 0.30])
    return base * rng.uniform(0.6, 1.6, (n, 1))


def test_spectra_auto_keeps_reflectance_and_scales_percent_and_dn():
    r = _soil_reflectance()
    same, note = tables.spectra_to_reflectance(r, name="f.csv", wavelengths_nm=WL)
    np.testing.assert_array_equal(same, r)
    assert note is None
    with pytest.warns(UserWarning, match="look like percent; dividing by 100"):
        pct, note = tables.spectra_to_reflectance(r * 100, name="f.csv", wavelengths_nm=WL)
    np.testing.assert_allclose(pct, r)
    assert note == "stored value / 100"
    with pytest.warns(UserWarning, match="x 10000; dividing by 10000"):
        dn, _ = tables.spectra_to_reflectance(r * 10000, name="f.csv")
    np.testing.assert_allclose(dn, r)


def test_spectra_auto_detects_absorbance_by_values_and_by_column_names():
    r = _soil_reflectance() / 4  # dark soils: absorbance mostly above 1
    a = np.log10(1 / r)
    assert np.mean(a > 1) > 0.5 and a.max() <= tables.MAX_ABSORBANCE
    with pytest.warns(UserWarning, match=r"look like absorbance log10\(1/R\).*10\^-A"):
        back, note = tables.spectra_to_reflectance(a, name="f.csv", wavelengths_nm=WL)
    np.testing.assert_allclose(back, r, rtol=1e-12)
    assert note.startswith("10^-(stored value)")
    bright = np.log10(1 / _soil_reflectance())  # absorbance < 1: only the names tell
    with pytest.warns(UserWarning, match="named abs_<nm>"):
        back, _ = tables.spectra_to_reflectance(bright, name="f.csv", absorbance_columns=True)
    np.testing.assert_allclose(back, _soil_reflectance(), rtol=1e-12)
    told, _ = tables.spectra_to_reflectance(bright, name="f.csv", kind="absorbance")
    np.testing.assert_allclose(told, _soil_reflectance(), rtol=1e-12)


def test_spectra_that_cannot_be_told_apart_ask_for_spectra_kind():
    bright = np.log10(1 / _soil_reflectance())  # 0-1 values that fall from visible to NIR
    with pytest.raises(SchemaError, match=r"fall from the visible.*spectra_kind='reflectance'"):
        tables.spectra_to_reflectance(bright, name="f.csv", wavelengths_nm=WL)
    kept, _ = tables.spectra_to_reflectance(bright, name="f.csv", kind="reflectance")
    np.testing.assert_array_equal(kept, bright)  # the user said so
    odd = _soil_reflectance()
    odd[0, 0] = 3.0  # one value up to 3, the rest 0-1 and rising
    with pytest.raises(SchemaError, match="too dark for percent"):
        tables.spectra_to_reflectance(odd, name="f.csv", wavelengths_nm=WL)


def test_spectra_kind_told_is_checked_against_the_values():
    r = _soil_reflectance()
    with pytest.raises(SchemaError, match="not percent reflectance"):
        tables.spectra_to_reflectance(r * 10000, name="f.csv", kind="percent")
    with pytest.raises(SchemaError, match="spectra_kind='reflectance' but the values reach"):
        tables.spectra_to_reflectance(r * 100, name="f.csv", kind="reflectance")
    with pytest.raises(SchemaError, match="not absorbance"):
        tables.spectra_to_reflectance(r * 100, name="f.csv", kind="absorbance")
    with pytest.raises(ParameterError, match="spectra_kind='kelvin'"):
        tables.spectra_to_reflectance(r, name="f.csv", kind="kelvin")
    with pytest.raises(SchemaError, match="missing or infinite"):
        tables.spectra_to_reflectance(np.array([[0.1, np.nan]]), name="f.csv")
    assert tables.parse_band_columns(["abs_1400", "abs_900"]).bands == ["abs_900", "abs_1400"]


# -- identifier columns ----------------------------------------------------------------------------


def test_identifier_columns_by_name():
    ids = [
        "FID", "OID_", "objectid", "site_id", "Pedon_Key", "SampleID", "pedonKey", "ID_plot",
        "Unnamed: 0", "soil:profile_id", "lab-uuid",
    ]  # fmt: skip
    predictors = ["ndvi", "acid_sat", "humid", "PAID", "terrain:slope", "monkey", "idx_b4"]
    found = tables.identifier_columns(ids + predictors)
    assert list(found) == ids
    assert "fid" in tables.IDENTIFIER_RULE and "_key" in tables.IDENTIFIER_RULE


def test_identifier_columns_by_values():
    n = 12
    df = pd.DataFrame(
        {
            "name": [f"P{i}" for i in range(n)],  # unique text
            "rownum": np.arange(1, n + 1),  # numbers the rows (in any order)
            "clay": np.linspace(5, 40, n),
            "year": [2020] * 6 + [2021] * 6,
            "texture": ["loam"] * n,
        }
    )
    df["rownum"] = df["rownum"].sample(frac=1, random_state=0).to_numpy()
    found = tables.identifier_columns(list(df.columns), df)
    assert found == {
        "name": "text with a different value in every row",
        "rownum": "whole numbers that number the rows",
    }
    assert tables.identifier_columns(["rownum"], df.head(5)) == {}  # too few rows to tell


# -- coordinates -----------------------------------------------------------------------------------


def test_projected_metres_in_lat_lon_are_refused():
    with pytest.raises(SchemaError, match=r"not WGS84 degrees.*name the columns 'x' and 'y'.*crs="):
        tables.check_lat_lon(np.array([4.1e6, 4.2e6]), np.array([5.1e5, 5.3e5]), name="f.csv")
    with pytest.raises(SchemaError, match="look swapped"):
        tables.check_lat_lon(np.array([118.0, 119.0]), np.array([37.0, 38.0]), name="f.csv")
    with pytest.raises(SchemaError, match="placeholders"):
        tables.check_lat_lon(np.zeros(5), np.zeros(5), name="f.csv")
    with pytest.warns(UserWarning, match="radians"):
        tables.check_lat_lon(np.array([0.6, 0.7]), np.array([2.0, 2.1]), name="f.csv")
    tables.check_lat_lon(np.array([37.0, np.nan]), np.array([118.0, 118.5]), name="f.csv")


def test_xy_in_a_crs_become_lat_lon():
    lat, lon = tables.xy_to_lat_lon(
        np.array([500000.0, 600000.0]), np.array([4100000.0, 4150000.0]), "EPSG:32650", name="f"
    )
    np.testing.assert_allclose(lon[0], 117.0, atol=1e-6)  # the zone's central meridian
    assert 37.0 < lat[0] < 37.1 and 118.0 < lon[1] < 118.2
    with pytest.raises(ParameterError, match="crs='EPSG:99999999' is not a coordinate"):
        tables.xy_to_lat_lon(np.array([1.0]), np.array([1.0]), "EPSG:99999999", name="f")
    with pytest.raises(ParameterError, match="pyproj knows"):
        tables.check_crs("not a crs")
    tables.check_crs("EPSG:3035")
    with pytest.warns(UserWarning, match="degrees?"):
        tables.xy_to_lat_lon(
            np.array([118.0, 118.1]), np.array([37.0, 37.1]), "EPSG:32650", name="f"
        )
