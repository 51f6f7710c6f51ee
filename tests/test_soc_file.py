"""A user's own chapter-3 file (data_source="file"): CSV with clim_<var>@<YYYY-MM>, or NetCDF."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real.soc_file import check_soc_file, load_soc_file
from soilbook.data.schema import sample_set, validate_samples
from soilbook.errors import ParameterError, SchemaError

MONTHS = ["2010-03", "2010-01", "2010-02"]  # deliberately not in time order


def _table(n: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "site": [f"S{i}" for i in range(n)],
            "lat": 40.0 + rng.uniform(0, 2, n),
            "lon": -100.0 + rng.uniform(0, 3, n),
            "target": rng.uniform(10, 90, n),
        }
    )
    df.loc[[3, 7], "target"] = np.nan  # unlabelled rows
    for m in MONTHS:
        df[f"clim_tmmx@{m}"] = rng.normal(5, 3, n)
        df[f"clim_pr@{m}"] = rng.uniform(0, 80, n)
    return df


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "soc.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_csv_loads_labelled_and_unlabelled(tmp_path: Path) -> None:
    df = _table()
    data = load_soc_file(_write(tmp_path, df), target_units="g/kg", block_size_km=50)
    lab, unl = validate_samples(data.labelled), data.unlabelled
    assert lab.sizes == {"sample": 8, "time": 3, "variable": 2}
    assert unl.sizes["sample"] == 2 and "target" not in unl
    assert list(lab["variable"].values) == ["pr", "tmmx"]  # TerraClimate order
    assert list(lab["variable_units"].values) == ["mm", "degC"]
    assert [str(t)[:7] for t in lab["time"].values] == ["2010-01", "2010-02", "2010-03"]
    rows = df[df["target"].notna()].reset_index(drop=True)
    np.testing.assert_allclose(
        lab["climate"].sel(variable="pr").values, rows[[f"clim_pr@2010-0{i}" for i in (1, 2, 3)]]
    )
    assert lab["climate"].dtype == np.float32 and lab["target"].attrs["units"] == "g/kg"
    assert list(lab["site_id"].values) == list(rows["site"])
    assert list(unl["site_id"].values) == ["S3", "S7"]
    assert lab.attrs["block_size_km"] == 50 and lab.attrs["simulated"] is False
    assert "2 unlabelled" in data.description and "no image patches" in data.description


def test_other_variables_units_and_group_column(tmp_path: Path) -> None:
    df = _table()
    for m in MONTHS:
        df[f"clim_ndvi_max@{m}"] = 0.5
    df = df.drop(columns=["lat", "lon"]).assign(group=["a", "b"] * 5, FID=range(10), note=1.0)
    path = _write(tmp_path, df)
    with pytest.warns(UserWarning, match=r"\['note'\] are not used"):
        data = load_soc_file(path, climate_units={"ndvi_max": "1"})
    lab = data.labelled
    assert list(lab["variable"].values) == ["pr", "tmmx", "ndvi_max"]
    assert list(lab["variable_units"].values) == ["mm", "degC", "1"]
    assert set(lab["group"].values) == {"a", "b"} and "lat" not in lab.coords
    with pytest.warns(UserWarning, match="not used"):
        assert load_soc_file(path).labelled["variable_units"].values[-1] == "unknown"
    with pytest.raises(ParameterError, match="does not have"):
        load_soc_file(path, climate_units={"swe": "mm"})


def test_rows_with_missing_climate_are_dropped(tmp_path: Path) -> None:
    df = _table()
    df.loc[0, "clim_pr@2010-02"] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 row"):
        data = load_soc_file(_write(tmp_path, df))
    assert data.labelled.sizes["sample"] == 7


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns=["target"]), "no target column 'target'"),
        (lambda d: d.drop(columns=["lat"]), "neither a 'group' column nor 'lat' and 'lon'"),
        (lambda d: d.drop(columns=[c for c in d if c.startswith("clim")]), "no climate columns"),
        (lambda d: d.rename(columns={"clim_pr@2010-01": "clim_pr_2010-01"}), "do not follow"),
        (lambda d: d.rename(columns={"clim_pr@2010-01": "clim_pr@2010-1"}), "do not follow"),
        (lambda d: d.drop(columns=["clim_tmmx@2010-02"]), r"tmmx lacks \['2010-02'\]"),
    ],
)
def test_header_problems_are_refused_before_loading(tmp_path: Path, change, match) -> None:
    path = _write(tmp_path, change(_table()))
    with pytest.raises(SchemaError, match=match) as pre:
        check_soc_file(path)
    with pytest.raises(SchemaError, match=match) as at_load:
        load_soc_file(path)
    assert str(pre.value) == str(at_load.value)
    assert "clim_<variable>@<YYYY-MM>" in str(pre.value)  # the expected layout is shown


def test_cell_problems_are_named(tmp_path: Path) -> None:
    df = _table()
    df.loc[4, "clim_pr@2010-03"] = -999
    with pytest.raises(SchemaError, match=r"hold -999 \(first: line 6"):
        load_soc_file(_write(tmp_path, df, "a.csv"))
    df = _table()
    df.loc[2, "clim_tmmx@2010-01"] = np.inf
    with pytest.raises(SchemaError, match="infinite"):
        load_soc_file(_write(tmp_path, df, "b.csv"))
    df = _table().astype({"clim_pr@2010-01": str})
    df.loc[1, "clim_pr@2010-01"] = "12 mm"
    with pytest.raises(SchemaError, match="not numeric"):
        load_soc_file(_write(tmp_path, df, "c.csv"))
    df = _table()
    df["target"] = np.nan
    df.loc[0, "target"] = 1.0
    with pytest.raises(SchemaError, match="only 1 usable row"):
        load_soc_file(_write(tmp_path, df, "d.csv"))


def test_path_and_argument_problems(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="needs data_path"):
        check_soc_file("")
    with pytest.raises(ParameterError, match="does not exist"):
        check_soc_file(tmp_path / "nope.csv")
    odd = tmp_path / "x.xlsx"
    odd.write_text("x")
    with pytest.raises(ParameterError, match="unsupported extension"):
        check_soc_file(odd)
    path = _write(tmp_path, _table())
    with pytest.raises(ParameterError, match="names no column"):
        check_soc_file(path, target_column=" ")
    with pytest.raises(ParameterError, match="positive side in km"):
        load_soc_file(path, block_size_km=-1)
    check_soc_file(path)  # a good file passes


def _to_netcdf(ds, path: Path) -> None:
    try:
        import h5py  # noqa: F401

        ds.to_netcdf(path, engine="h5netcdf")
    except ImportError:
        ds.to_netcdf(path, engine="scipy")


def test_netcdf_in_the_schema(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 12
    soc = rng.uniform(5, 60, n)
    soc[:3] = np.nan
    ds = sample_set(
        soc,
        groups=np.zeros(n, int),
        target_units="g/kg",
        target_long_name="SOC",
        climate=rng.normal(size=(n, 4, 2)).astype(np.float32),
        climate_times=pd.date_range("2012-01-01", periods=4, freq="MS"),
        climate_variables={"pr": "mm", "tmmn": "degC"},
        lat=40 + rng.uniform(0, 1, n),
        lon=-90 + rng.uniform(0, 1, n),
        source="test",
        licence="CC0",
        citation="none",
        simulated=False,
        validate=False,
    ).drop_vars("group")
    ds = ds.rename({"target": "soc"})
    ds.attrs["simulated"] = 0  # NetCDF has no booleans; the loader turns it back into one
    path = tmp_path / "soc.nc"
    _to_netcdf(ds, path)
    check_soc_file(path, "soc")
    with pytest.raises(SchemaError, match="no data variable 'target'"):
        check_soc_file(path)
    data = load_soc_file(path, "soc", block_size_km=20)
    assert data.labelled.sizes["sample"] == 9 and data.unlabelled.sizes["sample"] == 3
    assert data.labelled["target"].attrs["units"] == "g/kg"
    assert data.labelled.attrs["target_name"] == "soc" and data.labelled.attrs["licence"] == "CC0"
    assert data.labelled.attrs["simulated"] is False
    assert str(data.labelled["group"].values[0]).startswith("b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bare = tmp_path / "bare.nc"
        _to_netcdf(ds.drop_vars("climate"), bare)
        with pytest.raises(SchemaError, match="no 'climate' variable"):
            check_soc_file(bare, "soc")
