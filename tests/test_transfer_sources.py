"""load_transfer on your own lab spectra (lab_source="file") and on OSSL (lab_source="ossl")."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilbook.data import labdomain, spectra
from soilbook.data.schema import SchemaError, validate_samples
from soilbook.data.transfer import (
    LAB_GRID_NM,
    PAIRING_WITHOUT_COORDINATES,
    check_transfer_args,
    load_transfer,
)
from soilbook.errors import ParameterError

N_ROWS = 120
GRID_10 = np.arange(400, 2451, 10)
QUICK = {
    "n_sites": 800,
    "paired_fraction": 0.25,
    "unlabelled_per_site": 1,
    "n_regions": 2,
    "min_region_pixels": 5,
}
#: check_transfer_args settings of the quick profile, and of a small file.
QUICK_ARGS = {"n_sites": 800, "paired_fraction": 0.25, "unlabelled_per_site": 2, "n_regions": 5}
SMALL_FILE_ARGS = {
    "n_sites": 30,
    "paired_fraction": 0.9,
    "unlabelled_per_site": 1,
    "n_regions": 2,
    "min_region_pixels": 5,
}


@pytest.fixture(scope="module")
def mirror(module_mirror):
    """The registry reads EnMAP's band table from the local mirror into a fresh cache."""
    return module_mirror


def _soil_table(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """Real earthlib soil spectra at 10 nm as refl_<nm>, a target and lat/lon in two areas."""
    rng = np.random.default_rng(seed)
    lib = spectra.load_library("soil")
    pick = rng.choice(lib.sizes["spectrum"], n, replace=False)
    wl = lib["wavelength"].values.astype(float)
    values = lib.values[pick].astype(float) @ spectra.interpolation_matrix(wl, GRID_10).T
    east = np.arange(n) >= n // 2
    df = pd.DataFrame(
        {
            "site": [f"s{i:03d}" for i in range(n)],
            "lat": np.where(east, 10.0, 45.0) + rng.normal(0, 0.3, n),
            "lon": np.where(east, 30.0, -100.0) + rng.normal(0, 0.3, n),
            "ec": rng.lognormal(0.5, 0.8, n),
        }
    )
    refl = pd.DataFrame(values, columns=[f"refl_{w}" for w in GRID_10])
    return pd.concat([df, refl], axis=1)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lab") / "my_lab.csv"
    _soil_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def from_file(mirror, csv_path):
    return load_transfer(
        "salinity",
        seed=3,
        lab_source="file",
        data_path=csv_path,
        target_column="ec",
        target_units="dS/m",
        **QUICK,
    )


def test_file_source_gives_valid_sets_with_real_labels(from_file, csv_path):
    sat, lab, unl = from_file.satellite, from_file.lab, from_file.unlabelled
    validate_samples(lab)
    validate_samples(sat)
    assert lab.sizes["sample"] == N_ROWS  # n_sites above the file's rows: all of them
    np.testing.assert_array_equal(lab["wavelength"].values, LAB_GRID_NM)
    assert sat.sizes["band"] == 216 and "target" not in unl.data_vars
    assert unl.sizes["sample"] == N_ROWS - sat.sizes["sample"] + sat.sizes["sample"] // 2
    # the labels and spectra are the file's, unchanged
    df = pd.read_csv(csv_path).set_index("site")
    np.testing.assert_allclose(lab["target"].values, df.loc[lab["site"].values, "ec"])
    cols = [f"refl_{w}" for w in GRID_10]
    np.testing.assert_allclose(
        lab["reflectance"].values[:, 0], df.loc[lab["site"].values, cols], atol=1e-6
    )
    for ds in (lab, sat):
        assert ds["target"].attrs["simulated"] is False
        assert ds["target"].attrs["units"] == "dS/m"
        assert ds.attrs["labels_simulated"] is False and ds.attrs["lab_source"] == "file"
    assert lab.attrs["simulated"] is False and sat["reflectance"].attrs["simulated"] is True
    assert "my_lab.csv" in from_file.description and "SIMULATED EnMAP" in from_file.description
    # two separated areas -> two regions, each with paired sites, pixels linked by site id
    assert sorted(set(lab["group"].values)) == ["region_0", "region_1"]
    for g in ("region_0", "region_1"):
        assert (sat["group"].values == g).sum() >= 2
    paired = set(lab["site"].values[lab["paired"].values])
    assert set(sat["site"].values) == paired
    assert not lab["gap_filled"].values.any()


def test_file_source_is_deterministic(from_file, csv_path):
    again = load_transfer(
        "salinity",
        seed=3,
        lab_source="file",
        data_path=csv_path,
        target_column="ec",
        target_units="dS/m",
        **QUICK,
    )
    for name in ("satellite", "lab", "unlabelled"):
        xr.testing.assert_identical(getattr(from_file, name), getattr(again, name))


def test_file_groups_percent_and_netcdf(mirror, tmp_path):
    df = _soil_table(n=80, seed=1).rename(columns={"ec": "target"})
    df["group"] = np.where(df["lon"] > 0, "east", "west")
    cols = [c for c in df.columns if c.startswith("refl_")]
    df[cols] = df[cols] * 100.0  # percent
    path = tmp_path / "pct.csv"
    df.drop(columns="site").to_csv(path, index=False)
    with pytest.warns(UserWarning, match="percent"):
        data = load_transfer(
            "clay",
            lab_source="file",
            data_path=path,
            n_sites=80,
            paired_fraction=0.3,
            n_regions=None,
        )
    lab = data.lab
    assert set(lab["group"].values) == {"east", "west"}
    assert lab["reflectance"].values.max() < 1.0
    assert lab["site"].values[0] == "pct:0"
    # the same lab set saved as NetCDF reads back to the same lab spectra
    nc = tmp_path / "lab.nc"
    small = lab.drop_vars(["paired", "file_row", "gap_filled"])
    small.attrs = {}  # bool attrs are not NetCDF
    for var in small.variables.values():
        var.attrs = {}
    small.to_netcdf(nc)
    back = load_transfer(
        "clay", lab_source="file", data_path=nc, n_sites=80, paired_fraction=0.3, n_regions=None
    )
    np.testing.assert_allclose(back.lab["reflectance"].values, lab["reflectance"].values, atol=1e-6)
    assert set(back.lab["group"].values) == {"east", "west"}


def test_file_missing_columns_and_range(tmp_path):
    df = _soil_table(n=30)
    for drop, name in (("ec", "ec"), ("lat", "lat"), ("lon", "lon")):
        path = tmp_path / f"no_{name}.csv"
        df.drop(columns=drop).to_csv(path, index=False)
        with pytest.raises(SchemaError, match=rf"no_{name}\.csv has no column\(s\) \['{name}'\]"):
            check_transfer_args(
                "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
            )
        with pytest.raises(SchemaError, match=name):
            load_transfer("salinity", lab_source="file", data_path=path, target_column="ec")
    tiny = tmp_path / "tiny.csv"
    df.drop(columns=[f"refl_{w}" for w in GRID_10 if not 1000 <= w <= 1150]).to_csv(tiny)
    with pytest.raises(SchemaError, match=r"cover 1000-1150 nm.*at least 20 \(200 nm\)"):
        check_transfer_args(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=tiny, target_column="ec"
        )


def test_nir_only_library_gives_a_narrower_grid_and_drops_satellite_bands(mirror, tmp_path):
    """A NIR-only library (1100-2498 nm) is used on 1100-2450 nm; bands outside are dropped."""
    df = _soil_table(n=60, seed=2)
    nir = np.arange(1100, 2499, 2)
    lab_wl = np.arange(400, 2451, 10)
    refl = df[[f"refl_{w}" for w in lab_wl]].to_numpy()
    values = np.stack([np.interp(nir, lab_wl, r) for r in refl])
    table = pd.concat(
        [
            df[["site", "lat", "lon", "ec"]],
            pd.DataFrame(values, columns=[f"refl_{w}" for w in nir]),
        ],
        axis=1,
    )
    path = tmp_path / "nir.csv"
    table.to_csv(path, index=False)
    check_transfer_args(
        "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
    )
    with pytest.warns(UserWarning, match=r"lab grid is 1100-2450 nm.*satellite bands outside"):
        data = load_transfer(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )
    lab, sat = data.lab, data.satellite
    np.testing.assert_array_equal(lab["wavelength"].values, np.arange(1100, 2451, 10.0))
    half = sat["fwhm"].values / 2
    assert (sat["wavelength"].values - half >= 1100).all()
    assert (sat["wavelength"].values + half <= 2450).all()
    assert 100 < sat.sizes["band"] < 216
    assert "1100-2450 nm" in data.description and "half-maximum" in data.description
    np.testing.assert_array_equal(data.unlabelled["band"].values, sat["band"].values)


def test_group_column_makes_coordinates_optional(mirror, tmp_path):
    df = _soil_table(n=60, seed=4)
    df["group"] = np.where(df["lon"] > 0, "east", "west")
    path = tmp_path / "no_coords.csv"
    df.drop(columns=["lat", "lon"]).to_csv(path, index=False)
    kwargs = {**SMALL_FILE_ARGS, "n_regions": None}
    check_transfer_args("salinity", **kwargs, lab_source="file", data_path=path, target_column="ec")
    data = load_transfer(
        "salinity", **kwargs, lab_source="file", data_path=path, target_column="ec"
    )
    assert set(data.lab["group"].values) == {"east", "west"}
    assert np.isnan(data.lab["lat"].values).all()
    validate_samples(data.satellite)
    # no coordinates: the description claims no place, extent, distance or shared location
    text = data.description
    assert "the source gives no coordinates, so no region has a known extent" in text
    assert "the pixels have no location" in text and "the source gives no locations" in text
    for claim in ("site's coordinates", "km across", "surround", "at 15 locations", "nearest"):
        assert claim not in text, claim
    assert data.satellite.attrs["pairing"] == PAIRING_WITHOUT_COORDINATES
    one = tmp_path / "only_lat.csv"
    df.drop(columns=["lon"]).to_csv(one, index=False)
    with pytest.raises(SchemaError, match="has a 'lat' column but no 'lon'"):
        check_transfer_args(
            "salinity", **kwargs, lab_source="file", data_path=one, target_column="ec"
        )


def test_depth_and_ancillary_columns_of_a_file(mirror, tmp_path):
    df = _soil_table(n=80, seed=5)
    rng = np.random.default_rng(5)
    df["depth_top_cm"] = np.where(np.arange(80) % 4 == 0, 30.0, 0.0)  # every 4th: subsoil
    df.loc[3, "depth_top_cm"] = np.nan  # not recorded: treated as topsoil
    df["soil:sand"] = rng.uniform(10, 80, 80)
    df["climate:map_mm"] = rng.uniform(200, 900, 80)
    path = tmp_path / "depth.csv"
    df.to_csv(path, index=False)
    kwargs = {**SMALL_FILE_ARGS, "n_sites": 80, "paired_fraction": 0.4}
    data = load_transfer(
        "salinity", **kwargs, lab_source="file", data_path=path, target_column="ec"
    )
    lab, sat, unl = data.lab, data.satellite, data.unlabelled
    subsoil = lab["depth_top_cm"].values > 5
    np.testing.assert_array_equal(lab["topsoil"].values, ~subsoil)
    assert subsoil.sum() == 20 and not lab["paired"].values[subsoil].any()
    deep = set(lab["site"].values[subsoil])
    assert not deep & set(sat["site"].values) and not deep & set(unl["site"].values)
    for ds in (sat, unl):
        assert list(ds["feature"].values) == ["sand", "map_mm"]
        assert list(ds["feature_group"].values) == ["soil", "climate"]
    sand = dict(zip(df["site"], df["soil:sand"], strict=True))
    np.testing.assert_allclose(
        sat["covariates"].values[:, 0], [sand[s] for s in sat["site"].values], rtol=1e-6
    )
    assert "records the top depth of 79 of" in data.description
    assert "sand (soil), map_mm (climate)" in data.description
    bad = tmp_path / "bad_prefix.csv"
    df.rename(columns={"soil:sand": "soils:sand"}).to_csv(bad, index=False)
    with pytest.raises(SchemaError, match=r"unknown feature group prefix\(es\) \['soils'\]"):
        check_transfer_args(
            "salinity", **kwargs, lab_source="file", data_path=bad, target_column="ec"
        )


def test_projected_coordinates_in_a_lab_file_are_refused(mirror, tmp_path):
    df = _soil_table(n=30)
    df["lat"] = df["lat"] * 1e5  # metres, not degrees
    path = tmp_path / "utm.csv"
    df.to_csv(path, index=False)
    with pytest.raises(SchemaError, match="not WGS84 degrees"):
        load_transfer(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"lab_source": "lucas"}, "lab_source='lucas' is not known"),
        ({"lab_source": "file"}, "needs data_path"),
        ({"lab_source": "file", "data_path": "/nowhere/lab.csv"}, "does not exist"),
        ({"lab_source": "ossl", "target": "ph"}, "not available with lab_source='ossl'"),
        ({"lab_source": "library", "target": "clay"}, "not known"),
    ],
)
def test_check_transfer_args_sources(changes, match):
    kwargs = {"target": "salinity", **QUICK_ARGS, **changes}
    with pytest.raises(ParameterError, match=match):
        check_transfer_args(kwargs.pop("target"), **kwargs)


def test_check_transfer_args_extension_and_ossl_soc(tmp_path):
    xlsx = tmp_path / "lab.xlsx"
    xlsx.write_text("x")
    with pytest.raises(ParameterError, match=r"unsupported extension '\.xlsx'"):
        check_transfer_args("salinity", **QUICK_ARGS, lab_source="file", data_path=xlsx)
    # OSSL SOC: geographic regions, so n_regions is free (not the three LimeSoDa sets)
    check_transfer_args(
        "soc",
        n_sites=800,
        paired_fraction=0.25,
        unlabelled_per_site=2,
        n_regions=5,
        holdout_region="region_4",
        lab_source="ossl",
    )


def test_lab_csv_with_the_target_twice_is_refused(tmp_path):
    """A second target column would be renamed 'ec.1' by pandas; the header is read first."""
    df = _soil_table(n=30)
    path = tmp_path / "twice.csv"
    pd.concat([df, df[["ec"]]], axis=1).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"twice\.csv names the column\(s\) \['ec'\] more"):
        check_transfer_args(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )


def test_one_infinite_lab_reflectance_is_named_not_rescaled(tmp_path):
    """One inf used to make the reader take the whole table for percent and divide by 100."""
    df = _soil_table(n=30)
    df.loc[2, "refl_700"] = np.inf
    path = tmp_path / "inf.csv"
    df.to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"inf\.csv: 1 cell\(s\).*line 4 column 'refl_700'"):
        load_transfer(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (b"", SchemaError, "is empty"),
        ("ec,caf\xe9\n1,2\n".encode("latin-1"), SchemaError, "not UTF-8"),
        (None, ParameterError, "is a folder"),
    ],
)
def test_unreadable_lab_file_is_refused_by_the_check(tmp_path, content, error, match):
    path = tmp_path / "lab.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        check_transfer_args(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )


def test_infinite_value_in_a_lab_netcdf_is_named(mirror, tmp_path):
    df = _soil_table(n=30)
    cols = [f"refl_{w}" for w in GRID_10]
    refl = df[cols].to_numpy()[:, None, :].copy()
    refl[5, 0, 10] = np.inf
    ds = xr.Dataset(
        {"reflectance": (("sample", "date", "band"), refl), "ec": ("sample", df["ec"].to_numpy())},
        coords={
            "band": cols,
            "wavelength": ("band", GRID_10.astype(float)),
            "lat": ("sample", df["lat"].to_numpy()),
            "lon": ("sample", df["lon"].to_numpy()),
        },
    )
    path = tmp_path / "lab.nc"
    ds.to_netcdf(path)
    with pytest.raises(SchemaError, match=r"lab\.nc: 1 cell\(s\).*sample 5 column 'refl_500'"):
        load_transfer(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )


# -- OSSL, on tiny files in the OSSL v1.2 layout (never downloads) --------------------------------

OSSL_WL = np.arange(350, 2501, 2)
ID = "id.layer_uuid_txt"


def _write_ossl(tmp_path: Path, n: int = 60) -> list[Path]:
    rng = np.random.default_rng(7)
    ids = [f"L{i:03d}" for i in range(n)]
    x = (OSSL_WL - 350) / 2150
    spec = 0.15 + rng.uniform(0, 0.2, (n, 1)) + rng.uniform(0.05, 0.25, (n, 1)) * x
    visnir = pd.DataFrame(spec, columns=[f"scan_visnir.{w}_ref" for w in OSSL_WL])
    visnir.insert(0, ID, ids)
    east = np.arange(n) >= n // 2
    lab = pd.DataFrame(
        {
            ID: ids,
            "ec_usda.a364_ds.m": rng.lognormal(0, 1, n),
            "oc_usda.c729_w.pct": 2.0,
            "clay.tot_usda.a334_w.pct": rng.uniform(5, 50, n),
            "sand.tot_usda.c60_w.pct": np.where(np.arange(n) == 7, np.nan, rng.uniform(5, 80, n)),
        }
    )
    site = pd.DataFrame(
        {
            ID: ids,
            "longitude.point_wgs84_dd": np.where(east, 36.0, -105.0) + rng.normal(0, 0.2, n),
            "latitude.point_wgs84_dd": np.where(east, -1.0, 40.0) + rng.normal(0, 0.2, n),
            "dataset.code_ascii_txt": np.where(east, "AFSIS1.SSL", "KSSL.SSL"),
            "layer.upper.depth_usda_cm": np.where(np.arange(n) % 5 == 4, 30.0, 0.0),
        }
    )
    paths = [tmp_path / f"ossl_{k}.csv.gz" for k in ("visnir", "soillab", "soilsite")]
    for table, path in zip((visnir, lab, site), paths, strict=True):
        table.to_csv(path, index=False)
    return paths


def test_ossl_source_through_monkeypatched_loader(mirror, tmp_path, monkeypatch):
    from soilbook.data.real import ossl

    paths = _write_ossl(tmp_path)
    asked = []

    def fake_load_ossl(target="ec", wavelengths_nm=None, **kwargs):
        asked.append(target)
        return ossl.read_ossl(*paths, target=target, wavelengths_nm=wavelengths_nm, **kwargs)

    monkeypatch.setattr(ossl, "load_ossl", fake_load_ossl)
    data = load_transfer(
        "salinity",
        lab_source="ossl",
        n_sites=50,
        paired_fraction=0.5,
        unlabelled_per_site=1,
        n_regions=2,
        seed=0,
        min_region_pixels=5,
    )
    assert asked == ["ec"]
    lab, sat = data.lab, data.satellite
    validate_samples(lab)
    validate_samples(sat)
    assert lab.sizes["sample"] == 50  # drawn from the 60 layers; the rest are spare spectra
    assert (data.unlabelled["origin"].values == "off_site").sum() > 0
    assert lab["target"].attrs["units"] == "dS/m" and lab["target"].attrs["simulated"] is False
    assert sat.attrs["labels_simulated"] is False and sat["reflectance"].attrs["simulated"] is True
    assert lab.attrs["licence"] == "CC-BY 4.0" and lab.attrs["lab_source"] == "ossl"
    assert all(s.startswith("ossl:L") for s in lab["site"].values)
    assert set(lab["group"].values) == {"region_0", "region_1"}
    # regions follow the coordinates: west (KSSL) and east (AfSIS) never mix
    by_group = pd.Series(lab["dataset_code"].values).groupby(lab["group"].values).nunique()
    assert (by_group == 1).all()
    assert "Open Soil Spectral Library" in data.description
    # clay and sand are the student's ancillary inputs; the one missing sand value is filled
    for ds in (sat, data.unlabelled):
        assert list(ds["feature"].values) == ["clay", "sand"]
        assert np.isfinite(ds["covariates"].values).all()
    # subsoil layers (top 30 cm) stay in the lab set but get no pixel
    deep = lab["depth_top_cm"].values > 5
    assert deep.any() and not lab["paired"].values[deep].any()
    assert not set(lab["site"].values[deep]) & set(data.unlabelled["site"].values)
    assert "only topsoil samples" in data.description
    load_transfer(
        "soc",
        lab_source="ossl",
        n_sites=60,
        paired_fraction=0.4,
        unlabelled_per_site=0,
        n_regions=2,
        min_region_pixels=5,
    )
    assert asked == ["ec", "soc"]


# -- absorbance spectra (abs_<nm> columns, or absorbance stored as refl_<nm>) ---------------------


def _absorbance_table(
    n: int = 40, seed: int = 8, prefix: str = "abs_", dark: float = 1.0, floor: float = 0.0
):
    """(table with absorbance A = -log10(R) in ``prefix<nm>`` columns, R = max(dark * R0,
    floor) for the real soil reflectance R0)."""
    df = _soil_table(n=n, seed=seed)
    refl_cols = [f"refl_{w}" for w in GRID_10]
    r = np.maximum(df[refl_cols].to_numpy() * dark, floor)
    absorb = pd.DataFrame(-np.log10(r), columns=[f"{prefix}{w}" for w in GRID_10])
    return pd.concat([df.drop(columns=refl_cols), absorb], axis=1), r


def test_absorbance_columns_are_converted_to_reflectance(mirror, tmp_path):
    table, r = _absorbance_table(n=30)
    path = tmp_path / "abs.csv"
    table.to_csv(path, index=False)
    check_transfer_args(
        "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
    )
    with pytest.warns(UserWarning, match=r"abs\.csv: the spectra look like absorbance.*abs_<nm>"):
        data = load_transfer(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )
    lab = data.lab
    rows = [int(s[1:]) for s in lab["site"].values]  # site ids s000...
    np.testing.assert_allclose(lab["reflectance"].values[:, 0], r[rows], rtol=1e-5, atol=1e-7)
    assert "stores absorbance log10(1/R); it was converted to reflectance" in data.description
    assert lab.attrs["spectra_stored_as"].startswith("10^-(stored value)")
    assert lab["reflectance"].attrs["stored_as"].startswith("10^-(stored value)")
    # told, not detected: the same result without a warning about the guess
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = labdomain.read_lab_file(path, "ec", "dS/m", "absorbance")
    np.testing.assert_allclose(again.values, r, rtol=1e-5, atol=1e-7)


def test_absorbance_stored_as_refl_columns_is_detected(tmp_path):
    """refl_<nm> columns holding absorbance (values mostly above 1) are told by 'auto'."""
    table, r = _absorbance_table(n=30, prefix="refl_", dark=0.08)  # A = 1.1 ... 2.6
    path = tmp_path / "refl_but_abs.csv"
    table.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="look like absorbance"):
        lab = labdomain.read_lab_file(path, "ec", "dS/m")
    np.testing.assert_allclose(lab.values, r, rtol=1e-5, atol=1e-9)
    assert "absorbance" in lab.spectra_note
    # spectra_kind='percent' is honoured: the same values divided by 100, no guess
    pct = labdomain.read_lab_file(path, "ec", "dS/m", "percent")
    np.testing.assert_allclose(pct.values, table[[f"refl_{w}" for w in GRID_10]] / 100.0)
    assert pct.spectra_note == "stored value / 100"


def test_ambiguous_absorbance_is_refused_and_can_be_told(tmp_path):
    """Bright soils' absorbance (0.2-1) fits 0-1 but falls from visible to NIR: 'auto' asks."""
    table, r = _absorbance_table(n=30, prefix="refl_", floor=0.05)  # A <= 1.3
    path = tmp_path / "ambiguous.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"cannot tell how the spectra are stored.*spectra_kind"):
        labdomain.read_lab_file(path, "ec", "dS/m")
    told = labdomain.read_lab_file(path, "ec", "dS/m", "absorbance")
    np.testing.assert_allclose(told.values, r, rtol=1e-5, atol=1e-9)


def test_abs_and_refl_columns_together_are_refused(tmp_path):
    df = _soil_table(n=30)
    df["abs_2000"] = 0.5
    path = tmp_path / "both.csv"
    df.to_csv(path, index=False)
    match = r"both\.csv has both reflectance \(refl_<nm>, 206\) and absorbance \(abs_<nm>, 1\)"
    with pytest.raises(SchemaError, match=match + ".*give one kind of spectra"):
        check_transfer_args(
            "salinity", **SMALL_FILE_ARGS, lab_source="file", data_path=path, target_column="ec"
        )
    with pytest.raises(SchemaError, match=match):
        labdomain.read_lab_file(path, "ec", "dS/m")


def test_abs_columns_contradicting_spectra_kind_and_narrow_abs_coverage(tmp_path):
    table, _ = _absorbance_table(n=30)
    path = tmp_path / "abs.csv"
    table.to_csv(path, index=False)
    args = {**SMALL_FILE_ARGS, "lab_source": "file", "data_path": path, "target_column": "ec"}
    with pytest.raises(SchemaError, match=r"the column names \(abs_<nm>\) says.*'absorbance'"):
        check_transfer_args("salinity", **args, spectra_kind="percent")
    with pytest.raises(ParameterError, match=r"spectra_kind='dn' is not allowed; allowed: \["):
        check_transfer_args("salinity", **args, spectra_kind="dn")
    narrow = tmp_path / "narrow_abs.csv"
    table.drop(columns=[f"abs_{w}" for w in GRID_10 if not 1000 <= w <= 1150]).to_csv(narrow)
    with pytest.raises(SchemaError, match=r"cover 1000-1150 nm.*at least 20 \(200 nm\)"):
        check_transfer_args("salinity", **{**args, "data_path": narrow})


def _lab_netcdf(path: Path, values: np.ndarray, variable: str, attrs: dict | None = None) -> Path:
    n = values.shape[0]
    ds = xr.Dataset(
        {
            variable: (("sample", "band"), values, attrs or {}),
            "ec": ("sample", np.linspace(0.5, 5.0, n)),
        },
        coords={
            "band": [f"b{w}" for w in GRID_10],
            "wavelength": ("band", GRID_10.astype(float)),
            "group": ("sample", np.where(np.arange(n) % 2, "a", "b")),
        },
    )
    ds.to_netcdf(path)
    return path


def test_lab_netcdf_absorbance_variable_and_attribute(tmp_path):
    _, r = _absorbance_table(n=20, floor=0.05)  # A <= 1.3: ambiguous from the values alone
    a = -np.log10(r)
    # an 'absorbance' variable is absorbance (told by the file: no guess, no warning)
    nc = _lab_netcdf(tmp_path / "abs.nc", a, "absorbance")
    lab = labdomain.read_lab_file(nc, "ec", "dS/m")
    np.testing.assert_allclose(lab.values, r, rtol=1e-5, atol=1e-9)
    with pytest.raises(SchemaError, match=r"the variable's name \('absorbance'\) says"):
        labdomain.read_lab_file(nc, "ec", "dS/m", "reflectance")
    # a spectra_kind attribute of 'reflectance' decides under 'auto' (these values would be
    # refused as ambiguous without it)
    attr = _lab_netcdf(tmp_path / "attr.nc", a, "reflectance", {"spectra_kind": "absorbance"})
    np.testing.assert_allclose(labdomain.read_lab_file(attr, "ec", "").values, r, rtol=1e-5)
    plain = _lab_netcdf(tmp_path / "plain.nc", a, "reflectance")
    with pytest.raises(SchemaError, match="cannot tell how the spectra are stored"):
        labdomain.read_lab_file(plain, "ec", "")
    np.testing.assert_allclose(
        labdomain.read_lab_file(plain, "ec", "", "absorbance").values, r, rtol=1e-5
    )
    bad = _lab_netcdf(tmp_path / "bad.nc", a, "reflectance", {"spectra_kind": "log"})
    with pytest.raises(SchemaError, match=r"spectra_kind='log'; allowed: \['auto'"):
        labdomain.read_lab_file(bad, "ec", "")
