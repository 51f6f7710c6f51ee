"""User files: CSV tables and NetCDF/Zarr files in the schema, written by the tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real.userfile import load_user_file
from soilbook.data.schema import SchemaError, tabular_feature_names, to_tabular
from soilbook.errors import ParameterError


def _table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sample_id": [f"P{i}" for i in range(n)],
            "lat": 37.0 + rng.uniform(0, 0.5, n),
            "lon": 118.0 + rng.uniform(0, 0.5, n),
            "target": rng.gamma(2.0, 2.0, n),
            "B04": rng.uniform(0.05, 0.3, n),
            "B08": rng.uniform(0.2, 0.5, n),
            "refl_1610": rng.uniform(0.2, 0.4, n),
            "terrain:slope": rng.uniform(0, 5, n),
            "climate:ppt": rng.uniform(300, 700, n),
            "ndvi": rng.uniform(0, 0.8, n),
        }
    )


def test_csv_with_lat_lon_blocks(tmp_path: Path) -> None:
    path = tmp_path / "fields.csv"
    _table().to_csv(path, index=False)
    ds = load_user_file(path, None, target_units="g/kg")
    assert ds.sizes["sample"] == 40 and ds["target"].attrs["units"] == "g/kg"
    assert list(ds["band"].values) == ["B04", "B08", "refl_1610"]
    np.testing.assert_allclose(ds["wavelength"].values, [664.6, 832.8, 1610.0])
    assert ds["reflectance"].shape == (40, 1, 3)
    assert dict(zip(ds["feature"].values, ds["feature_group"].values, strict=True)) == {
        "slope": "terrain",
        "ppt": "climate",
        "ndvi": "other",
    }
    assert ds.attrs["group_kind"] == "spatial block" and len(np.unique(ds["group"])) >= 10
    assert ds.attrs["simulated"] is False and "fields.csv" in ds.attrs["source"]
    names, _ = tabular_feature_names(ds)
    assert names == ["B04", "B08", "refl_1610", "slope", "ppt", "ndvi"]
    assert to_tabular(ds).shape == (40, 6)


def test_csv_named_target_group_and_dates(tmp_path: Path) -> None:
    df = _table(30).drop(columns=["lat", "lon", "refl_1610"])
    df = df.rename(columns={"target": "ec_dsm", "B04": "B04@2021-05", "B08": "B08@2021-05"})
    df["B04@2021-08"] = df["B04@2021-05"] * 1.1
    df["B08@2021-08"] = df["B08@2021-05"] * 0.9
    df["group"] = np.repeat(["f1", "f2", "f3"], 10)
    path = tmp_path / "named.csv"
    df.to_csv(path, index=False)
    ds = load_user_file(path, "ec_dsm")
    assert ds.attrs["target_name"] == "ec_dsm"
    assert list(ds["date"].values) == ["2021-05", "2021-08"]
    assert ds["reflectance"].shape == (30, 2, 2)
    np.testing.assert_allclose(ds["reflectance"].values[:, 1, 0], df["B04@2021-08"], rtol=1e-6)
    assert set(ds["group"].values) == {"f1", "f2", "f3"}


def test_csv_scaled_reflectance_and_missing_rows(tmp_path: Path) -> None:
    df = _table(25)
    df[["B04", "B08", "refl_1610"]] *= 10000
    df.loc[3, "target"] = np.nan
    df.loc[5, "ndvi"] = np.nan
    path = tmp_path / "scaled.csv"
    df.to_csv(path, index=False)
    with pytest.warns(UserWarning) as rec:
        ds = load_user_file(path)
    text = " ".join(str(w.message) for w in rec)
    assert "x 10000" in text and "without a 'target'" in text and "missing feature" in text
    assert ds.sizes["sample"] == 23 and float(ds["reflectance"].max()) < 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns=["target"]), r"no column\(s\) \['target'\]"),
        (lambda d: d.drop(columns=["lat", "lon"]), "neither a 'group' column nor 'lat' and 'lon'"),
        (lambda d: d.assign(soil_type="clay"), r"non-numeric column\(s\) \['soil_type'\]"),
        (lambda d: d.rename(columns={"ndvi": "vegetaion:ndvi"}), "unknown feature group prefix"),
    ],
)
def test_csv_errors_name_the_problem_and_show_the_layout(tmp_path: Path, change, message) -> None:
    path = tmp_path / "bad.csv"
    change(_table()).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=message) as err:
        load_user_file(path)
    assert "Expected:" in str(err.value) and "bad.csv" in str(err.value)


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="does not exist"):
        load_user_file(tmp_path / "nope.csv")
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(ParameterError, match="unsupported extension"):
        load_user_file(odd)
    with pytest.raises(ParameterError, match="needs data_path"):
        load_user_file("")


def _to_netcdf(ds, path: Path) -> None:
    """NetCDF-4 where h5py is installed, else NetCDF-3 (scipy) — the reader handles both."""
    try:
        import h5py  # noqa: F401

        ds.to_netcdf(path, engine="h5netcdf")
    except ImportError:
        ds.to_netcdf(path, engine="scipy")


def _schema_dataset(tmp_path: Path):
    csv = tmp_path / "src.csv"
    _table().to_csv(csv, index=False)
    ds = load_user_file(csv)
    ds.attrs["simulated"] = 0  # NetCDF cannot store bools
    return ds


def test_netcdf_roundtrip(tmp_path: Path) -> None:
    ds = _schema_dataset(tmp_path)
    path = tmp_path / "set.nc"
    _to_netcdf(ds, path)
    back = load_user_file(path)
    assert back.attrs["simulated"] is False
    np.testing.assert_allclose(back["target"].values, ds["target"].values)
    np.testing.assert_allclose(back["reflectance"].values, ds["reflectance"].values)


def test_netcdf_without_group_and_other_target(tmp_path: Path) -> None:
    ds = _schema_dataset(tmp_path).drop_vars("group")
    ds["salt"] = ds["target"] * 2
    path = tmp_path / "nogroup.nc"
    _to_netcdf(ds, path)
    with pytest.warns(UserWarning, match="no 'group'"):
        back = load_user_file(path, "salt")
    np.testing.assert_allclose(back["target"].values, ds["target"].values * 2)
    assert "group" in back.coords


def test_netcdf_not_in_schema_is_explained(tmp_path: Path) -> None:
    import xarray as xr

    path = tmp_path / "raw.nc"
    _to_netcdf(xr.Dataset({"x": ("sample", np.arange(5.0))}), path)
    with pytest.raises(SchemaError, match=r"raw\.nc: .*no 'target'"):
        load_user_file(path)


def test_zarr_roundtrip(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    ds = _schema_dataset(tmp_path)
    path = tmp_path / "set.zarr"
    with warnings.catch_warnings():  # zarr v3 notes about string dtypes are not ours
        warnings.simplefilter("ignore")
        ds.to_zarr(path)
    back = load_user_file(path)
    np.testing.assert_allclose(back["covariates"].values, ds["covariates"].values)


# -- silent data problems become errors ----------------------------------------------------------


def test_target_column_twice_is_refused_not_a_predictor(tmp_path: Path) -> None:
    """pandas would rename the copy 'target.1' and the loader would use it as a covariate."""
    df = _table()
    path = tmp_path / "twice.csv"
    df.assign(copy=df["target"]).rename(columns={"copy": "target"}).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"twice\.csv names the column\(s\) \['target'\] more"):
        load_user_file(path)


def test_one_infinite_reflectance_is_named_not_rescaled(tmp_path: Path) -> None:
    """One inf used to make the loader divide every reflectance by 10,000."""
    df = _table()
    df.loc[6, "B04"] = np.inf
    path = tmp_path / "inf.csv"
    df.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "dividing by 10000" warning either
        with pytest.raises(SchemaError, match=r"inf\.csv: 1 cell\(s\).*line 8 column 'B04'"):
            load_user_file(path)


def test_a_feature_named_by_two_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "slope.csv"
    _table().assign(slope=1.0).to_csv(path, index=False)  # 'slope' and 'terrain:slope'
    with pytest.raises(SchemaError, match=r"feature name\(s\) \['slope'\] come from more"):
        load_user_file(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "is empty"), ("target,caf\xe9\n1,2\n".encode("latin-1"), "not UTF-8")],
)
def test_unreadable_csv_is_a_schema_error(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SchemaError, match=match):
        load_user_file(path)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fields.csv").mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        load_user_file(tmp_path / "fields.csv")


# -- issue 7 §6: coordinates, identifiers, absorbance, units, descriptions -------------------------


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "t.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_projected_metres_in_lat_lon_are_refused(tmp_path: Path) -> None:
    df = _table()
    df["lat"], df["lon"] = 4.1e6 + df["lat"] * 1e4, 5.0e5 + df["lon"] * 1e4
    with pytest.raises(SchemaError, match=r"not WGS84 degrees.*'x' and 'y'.*crs="):
        load_user_file(_write(tmp_path, df))


def test_xy_with_a_crs_become_lat_lon_and_blocks(tmp_path: Path) -> None:
    from soilbook.data.tables import xy_to_lat_lon

    rng = np.random.default_rng(1)
    df = _table().drop(columns=["lat", "lon"])
    df["x"] = 500000 + rng.uniform(0, 20000, len(df))
    df["y"] = 4100000 + rng.uniform(0, 20000, len(df))
    path = _write(tmp_path, df)
    with pytest.raises(SchemaError, match="'x' and 'y' columns but no crs"):
        load_user_file(path)
    ds = load_user_file(path, crs="EPSG:32650", block_size_m=5000)
    lat, lon = xy_to_lat_lon(df["x"].to_numpy(), df["y"].to_numpy(), "EPSG:32650", name="t")
    np.testing.assert_allclose(ds["lat"].values, lat)
    np.testing.assert_allclose(ds["lon"].values, lon)
    assert "EPSG:32650" in ds.attrs["coordinate_source"] and ds.attrs["block_size_m"] == 5000
    assert "x" not in list(ds["feature"].values) and "y" not in list(ds["feature"].values)


def test_identifier_columns_are_not_predictors(tmp_path: Path) -> None:
    df = _table().assign(FID=np.arange(40), site_key=[f"s{i}" for i in range(40)])
    df["OID_"] = np.arange(100, 140)
    with pytest.warns(
        UserWarning, match=r"3 identifier column\(s\) excluded.*Predictors used: B04"
    ):
        ds = load_user_file(_write(tmp_path, df))
    assert list(ds["feature"].values) == ["slope", "ppt", "ndvi"]
    assert ds.attrs["excluded_columns"] == "FID, site_key, OID_"


def test_lab_properties_only_table_loads_without_spectra(tmp_path: Path) -> None:
    from soilbook.data.real.userfile import describe_header

    df = _table().drop(columns=["B04", "B08", "refl_1610", "ndvi"])
    df["soil:clay"] = np.linspace(5, 40, len(df))
    path = _write(tmp_path, df)
    info = describe_header(path, list(df.columns), "target")
    assert not info.has_spectral_inputs and info.other_covariates == [
        "terrain:slope",
        "climate:ppt",
        "soil:clay",
    ]
    ds = load_user_file(path)
    assert "reflectance" not in ds and ds.sizes["feature"] == 3


def test_absorbance_columns_become_reflectance(tmp_path: Path) -> None:
    df = _table().drop(columns=["B04", "B08"]).rename(columns={"refl_1610": "abs_1610"})
    df["abs_500"] = np.log10(1 / np.linspace(0.05, 0.2, len(df)))
    df["abs_1610"] = np.log10(1 / df["abs_1610"])
    with pytest.warns(UserWarning, match="absorbance"):
        ds = load_user_file(_write(tmp_path, df))
    assert list(ds["band"].values) == ["refl_500", "refl_1610"]
    np.testing.assert_allclose(
        ds["reflectance"].values[:, 0, 0], np.linspace(0.05, 0.2, len(df)), rtol=1e-6
    )
    assert ds.attrs["reflectance_scale"].startswith("10^-")
    with pytest.raises(SchemaError, match="spectra_kind='percent'"):
        load_user_file(_write(tmp_path, df, "p.csv"), spectra_kind="percent")
    with pytest.raises(ParameterError, match="spectra_kind"):
        load_user_file(_write(tmp_path, df, "k.csv"), spectra_kind="kelvin")


def test_units_groups_and_files_without_coordinates(tmp_path: Path) -> None:
    from soilbook.data.real.userfile import NO_COORDINATES
    from soilbook.evaluate import make_splits

    df = _table(30).drop(columns=["lat", "lon"])
    df["group"] = np.repeat(["f1", "f2", "f3", "f4", "f5"], 6)
    path = _write(tmp_path, df)
    ds = load_user_file(path, target_units="")
    assert ds["target"].attrs["units"] == "unknown"
    assert load_user_file(path, target_units="dS/m")["target"].attrs["units"] == "dS/m"
    assert "lat" not in ds.coords and ds.attrs["coordinate_source"] == NO_COORDINATES
    desc = make_splits(ds, ("spatial",), n_splits=5).descriptions["spatial"]
    assert desc == "grouped 5-fold CV by the file's 'group' column (5 groups)"
    placeholder = df.assign(lat=0.5, lon=0.5)
    with pytest.warns(UserWarning, match="placeholders, not locations"):
        ds = load_user_file(_write(tmp_path, placeholder, "same.csv"))
    assert "lat" not in ds.coords and "placeholder" in ds.attrs["coordinate_source"]


def test_netcdf_target_units_replace_the_files(tmp_path: Path) -> None:
    ds = _schema_dataset(tmp_path)
    path = tmp_path / "set.nc"
    _to_netcdf(ds, path)
    back = load_user_file(path, target_units="g/kg")
    assert back["target"].attrs["units"] == "g/kg"
    assert back.attrs["coordinate_source"].startswith("WGS84")


def test_netcdf_keeps_its_units_by_default(tmp_path: Path) -> None:
    csv = tmp_path / "src.csv"
    _table().to_csv(csv, index=False)
    ds = load_user_file(csv, target_units="dS/m")
    ds.attrs["simulated"] = 0
    path = tmp_path / "set.nc"
    _to_netcdf(ds, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "units replaced by 'unknown'" warning
        back = load_user_file(path)
    assert back["target"].attrs["units"] == "dS/m"


def test_check_user_file_is_the_pre_run_check(tmp_path: Path) -> None:
    from soilbook.data.real.userfile import check_user_file

    path = _write(tmp_path, _table().assign(FID=np.arange(40)))
    info = check_user_file(path, "auto")
    assert info is not None and info.columns[:4] == ("sample_id", "lat", "lon", "target")
    assert info.identifiers == {"FID": info.identifiers["FID"]} and info.has_spectral_inputs
    with pytest.raises(ParameterError, match="not a coordinate reference system"):
        check_user_file(path, crs="EPSG:nope")
    nc = tmp_path / "empty.nc"
    nc.write_bytes(b"")
    with pytest.raises(SchemaError, match=r"is empty \(0 bytes\)"):
        load_user_file(nc)
