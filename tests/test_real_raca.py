"""RaCA + TerraClimate on the mirrored files (through the registry), and the −999 fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook import geo
from soilbook.data import registry
from soilbook.data.real.raca import (
    MISSING_VALUE,
    SCALE_FACTORS,
    file_name,
    fix_missing,
    load_raca,
    read_raw,
    registry_name,
    to_physical,
)
from soilbook.data.schema import validate_samples
from soilbook.data.soc import CLIMATE_UNITS, CLIMATE_VARIABLES, months
from soilbook.errors import ParameterError, SchemaError

FOLDER = "raca_terraclimate"


@pytest.fixture(scope="module")
def loaded(module_mirror: Path):
    """One load per module (14 files of ~2.5 MB): the data and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_raca()
    return data, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def raw(module_mirror: Path):
    return read_raw()


@pytest.fixture(scope="module")
def sites(module_mirror: Path) -> pd.DataFrame:
    return pd.read_csv(module_mirror / FOLDER / "RapidCarbon.csv")


def test_every_file_is_registered_with_url_sha_and_mirror() -> None:
    for var in (None, *CLIMATE_VARIABLES):
        remote = registry.get(registry_name(var))
        assert remote.mirror_path == f"{FOLDER}/{file_name(var)}"
        assert remote.url.startswith("https://raw.githubusercontent.com/moienr/SoilNet/")
        assert remote.url.endswith(file_name(var)) and len(remote.sha256) == 64
        assert "public domain" in remote.licence


def test_join_counts_and_target(loaded, sites: pd.DataFrame) -> None:
    data, _ = loaded
    lab, unl = validate_samples(data.labelled), data.unlabelled
    # 6,215 rows, 6,213 ids (two listed twice), 4 without climate data (2 with a stock)
    assert lab.sizes["sample"] == 5939 and unl.sizes["sample"] == 270
    assert "target" not in unl and "patches" not in lab and "covariates" not in lab
    assert not data.has_image
    soc = sites.drop_duplicates("rcasiteid").set_index("rcasiteid")["SOCstock100"]
    np.testing.assert_allclose(lab["target"].values, soc.loc[lab["site_id"].values].values)
    assert soc.loc[unl["site_id"].values].isna().all()
    assert lab["target"].attrs["units"] == "Mg C/ha"
    assert np.median(lab["target"]) == pytest.approx(86.4, abs=0.5)
    assert float(lab["target"].max()) == pytest.approx(4114.18, abs=0.01)
    a = lab.attrs
    assert a["simulated"] is False and a["target_name"] == "soc_stock"
    assert "CC0" in a["licence"] and "public domain" in a["licence"]
    assert "170191" in a["citation"] and "Rapid Carbon Assessment" in a["citation"]
    assert "0.01" in a["coordinate_source"] and "image patches" in data.description


def test_no_minus_999_left_and_real_zeros(loaded) -> None:
    data, _ = loaded
    for ds in (data.labelled, data.unlabelled):
        c = ds["climate"].values
        assert c.dtype == np.float32 and np.isfinite(c).all()
        assert not (c == MISSING_VALUE).any() and not (c < -100).any()
    swe = data.labelled["climate"].sel(variable="swe").values
    assert 0.7 < float((swe == 0).mean()) < 0.85  # most sites and months have no snow
    for var in ("ro", "def", "pr", "tmmn"):
        assert (data.labelled["climate"].sel(variable=var).values == 0).any()
    assert (data.labelled["climate"].sel(variable="srad").values > 0).all()


def test_no_data_sites_are_dropped_with_a_warning(loaded, raw) -> None:
    _, caught = loaded
    (msg,) = [m for m in caught if "without TerraClimate data" in m]
    assert "dropped 4 of 6213 sites" in msg and "2 of them with a stock" in msg
    fix = fix_missing(raw.values)
    all_missing = (raw.values == MISSING_VALUE).all(axis=(1, 2))
    np.testing.assert_array_equal(fix.no_data, all_missing)  # the rule = "nothing at all"
    assert int(fix.no_data.sum()) == 4
    assert fix.share_missing["swe"] == pytest.approx(0.777, abs=0.002)
    assert fix.share_missing["def"] == pytest.approx(0.444, abs=0.002)
    assert (raw.values[~all_missing] != 0).all()  # the files never hold a real 0


def test_units_scale_and_time_order(loaded, module_mirror: Path) -> None:
    lab = loaded[0].labelled
    assert list(lab["variable"].values) == list(CLIMATE_VARIABLES)
    assert dict(zip(lab["variable"].values, lab["variable_units"].values, strict=True)) == (
        CLIMATE_UNITS
    )
    np.testing.assert_array_equal(lab["time"].values, months())
    assert lab.sizes["time"] == 61
    c = lab["climate"]
    assert -30 < float(c.sel(variable="tmmn").min()) and float(c.sel(variable="tmmx").max()) < 57
    assert float(c.sel(variable="vap").max()) < 5 and float(c.sel(variable="vpd").max()) < 8
    assert 10 < float(c.sel(variable="srad").min()) and float(c.sel(variable="srad").max()) < 400
    assert abs(float(c.sel(variable="pdsi").min())) < 15
    # one cell traced back to the file: column 20100701 of RaCA_tmmx.csv for the first site
    table = pd.read_csv(module_mirror / FOLDER / "RaCA_tmmx.csv").set_index("rcasiteid")
    site = str(lab["site_id"].values[0])
    got = c.sel(variable="tmmx", time="2010-07-01").values[0]
    assert got == pytest.approx(table.loc[site, "20100701"] * SCALE_FACTORS["tmmx"], rel=1e-6)


def test_groups_are_spatial_blocks_on_one_grid(loaded) -> None:
    data, _ = loaded
    lab, unl = data.labelled, data.unlabelled
    lat = np.concatenate([lab["lat"].values, unl["lat"].values])
    lon = np.concatenate([lab["lon"].values, unl["lon"].values])
    assert 24 < lat.min() and lat.max() < 50 and -125 < lon.min() and lon.max() < -66
    order = np.argsort(np.concatenate([lab["site_id"].values, unl["site_id"].values]))
    x, y = geo.local_xy_m(lat[order], lon[order])
    blocks = geo.spatial_blocks(x, y, 100_000.0)
    expect = dict(zip(np.concatenate([lab["site_id"], unl["site_id"]])[order], blocks, strict=True))
    assert [expect[s] for s in lab["site_id"].values] == list(lab["group"].values)
    assert [expect[s] for s in unl["site_id"].values] == list(unl["group"].values)
    assert lab.attrs["block_size_km"] == 100.0 and 200 < np.unique(lab["group"]).size < 2000


def test_fix_missing_rule_on_a_small_array() -> None:
    stored = np.ones((3, 4, len(CLIMATE_VARIABLES)))
    j = CLIMATE_VARIABLES.index
    stored[0, :, j("swe")] = MISSING_VALUE  # no snow: real zeros
    stored[1, 2, j("srad")] = MISSING_VALUE  # srad is never 0: a masked pixel
    stored[1, 0, j("pr")] = MISSING_VALUE
    stored[2, 1, j("vap")] = MISSING_VALUE
    fix = fix_missing(stored)
    np.testing.assert_array_equal(fix.no_data, [False, True, True])
    assert (fix.values[0, :, j("swe")] == 0).all() and fix.n_zeros_restored == 4
    assert fix.values[1, 0, j("pr")] == MISSING_VALUE  # a no-data site is left as it was
    phys = to_physical(np.full((1, len(CLIMATE_VARIABLES)), 100.0))[0]
    assert phys[j("tmmx")] == pytest.approx(10.0) and phys[j("vap")] == pytest.approx(0.1)
    assert phys[j("pr")] == 100.0 and phys[j("pdsi")] == pytest.approx(1.0)


def _tiny_folder(tmp_path: Path, *, n_months: int = 61, soc_shift: float = 0.0) -> Path:
    folder = tmp_path / "raca"
    folder.mkdir(parents=True)
    ids = ["S1", "S2", "S3"]
    pd.DataFrame(
        {"rcasiteid": ids, "Gen_lat": [40.0, 40.5, 41.0], "Gen_long": [-100.0] * 3,
         "SOCstock100": [50.0, np.nan, 80.0]}
    ).to_csv(folder / "RapidCarbon.csv", index=False)  # fmt: skip
    cols = [str(t)[:10].replace("-", "") for t in months()[:n_months]][::-1]
    for var in CLIMATE_VARIABLES:
        table = pd.DataFrame(np.repeat([[1.0], [2.0], [3.0]], len(cols), axis=1), columns=cols)
        table["system:index"] = ["0", "1", "2"]
        table["SOCstock100"] = [50.0 + soc_shift, np.nan, 80.0]
        table["rcasiteid"] = ids
        if var == "pr":  # another row order than RapidCarbon.csv: joined on rcasiteid
            table = table.iloc[::-1]
        table.to_csv(folder / f"RaCA_{var}.csv", index=False)
    return folder


def test_a_local_folder_loads_and_bad_files_are_named(tmp_path: Path) -> None:
    data = load_raca(_tiny_folder(tmp_path / "ok"), block_size_km=50, min_unlabelled=1)
    assert data.labelled.sizes["sample"] == 2 and data.unlabelled.sizes["sample"] == 1
    assert data.labelled.attrs["block_size_m"] == 50_000.0
    pr = data.labelled["climate"].sel(variable="pr").values
    np.testing.assert_array_equal(pr, [[1.0] * 61, [3.0] * 61])  # S1 and S3, joined by id
    assert load_raca(_tiny_folder(tmp_path / "few")).unlabelled is None
    with pytest.raises(SchemaError, match="not the 61 months"):
        read_raw(_tiny_folder(tmp_path / "short", n_months=60))
    with pytest.raises(SchemaError, match="another SOCstock100"):
        read_raw(_tiny_folder(tmp_path / "shift", soc_shift=1.0))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="positive side in km"):
        load_raca(tmp_path, block_size_km=0)
    with pytest.raises(ParameterError, match="lacks"):
        load_raca(tmp_path)
    with pytest.raises(ParameterError, match="not a folder"):
        load_raca(tmp_path / "nowhere")
