"""UCRB loader on the real USGS table (through the registry and the local mirror)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real.ucrb import CATEGORICAL, load_ucrb
from soilbook.data.schema import to_tabular, validate_samples
from soilbook.errors import ParameterError


@pytest.fixture
def ucrb_all(data_mirror: Path, cache_dir: Path):
    return load_ucrb(depth="all")


def test_all_horizons(ucrb_all, data_mirror: Path) -> None:
    ds = validate_samples(ucrb_all)
    raw = pd.read_csv(data_mirror / "usgs_ucrb_salinity/cop_ncss17_ec12_2D_covarsc.txt", sep="\t")
    valid = raw[raw["depth_b"] > raw["depth_t"]]
    assert ds.sizes["sample"] == len(valid) == 3034
    np.testing.assert_allclose(ds["target"].values, valid["ec_12pre"].values)
    assert ds["target"].attrs["units"] == "dS/m"
    assert ds.attrs["group_kind"] == "pedon" and ds.attrs["simulated"] is False
    assert "10.5066/P9QSFDJN" in ds.attrs["citation"] and "CC0" in ds.attrs["licence"]
    assert "dropped 33" in ds.attrs["preprocessing"]
    np.testing.assert_array_equal(ds["group"].values, valid["Pedon_key"].values)
    assert "reflectance" not in ds
    # UCRB extent: 34-43 N, 106-116 W
    assert 34 <= ds["lat"].min() and ds["lat"].max() <= 43.5
    assert -116 <= ds["lon"].min() and ds["lon"].max() <= -106
    mid = ds["covariates"].sel(feature="depth_mid_cm").values
    np.testing.assert_allclose(mid, (valid["depth_t"] + valid["depth_b"]).values / 2)


def test_feature_groups(ucrb_all) -> None:
    fg = dict(zip(ucrb_all["feature"].values, ucrb_all["feature_group"].values, strict=True))
    assert fg["redswir1"] == "spectral"
    assert fg["SLOPE"] == "terrain" and fg["RELHT128"] == "terrain"
    assert fg["TWI_TOPMODEL"] == "hydrology" and fg["MRVBF"] == "hydrology"
    assert fg["ppt_ann"] == "climate" and fg["temp_ann"] == "climate"
    assert fg["depth_mid_cm"] == "soil"
    for code in CATEGORICAL:
        assert fg[code] == "other"
        assert ucrb_all["feature_kind"].sel(feature=code).item() == "categorical code"
    for excluded in ("Hzn_depth", "latnchar", "DID", "coords.x1", "LAT_dec"):
        assert excluded not in fg
    assert to_tabular(ucrb_all).shape == (3034, 41)


def test_surface_horizons_as_in_the_study(data_mirror: Path, cache_dir: Path) -> None:
    ds = load_ucrb(depth="surface")
    assert ds.sizes["sample"] == 587
    assert (ds["depth_top_cm"] <= 0).all() and (ds["depth_bottom_cm"] > 0).all()
    assert len(np.unique(ds["group"].values)) == 545


def test_projected_coordinates_match_lat_lon(ucrb_all) -> None:
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", "EPSG:5070", always_xy=True)
    x, y = tr.transform(ucrb_all["lon"].values[:50], ucrb_all["lat"].values[:50])
    np.testing.assert_allclose(x, ucrb_all["x"].values[:50], atol=0.01)
    np.testing.assert_allclose(y, ucrb_all["y"].values[:50], atol=0.01)


def test_bad_arguments() -> None:
    with pytest.raises(ParameterError, match=r"allowed: \['ec'\]"):
        load_ucrb(target="salinity")
    with pytest.raises(ParameterError, match="surface"):
        load_ucrb(depth="deep")


def test_wrong_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="ec_12pre"):
        load_ucrb(path=bad)
