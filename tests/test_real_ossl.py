"""OSSL reader on small gzip CSV files written here in the OSSL v1.2 layout (never downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real import ossl
from soilbook.data.real.ossl import load_ossl, read_ossl, visnir_columns
from soilbook.data.schema import validate_samples
from soilbook.errors import ParameterError

WL = np.arange(350, 2501, 2)  # OSSL VisNIR: 350-2500 nm every 2 nm
COLS = [f"scan_visnir.{w}_ref" for w in WL]


def _spectrum(offset: float) -> np.ndarray:
    """A smooth, linear-in-wavelength reflectance (fraction) so interpolation is exact."""
    return 0.1 + offset + 0.2 * (WL - 350) / 2150


# layer -> (offset of its spectrum or None, EC in dS/m or None, lat, lon, dataset, top depth)
LAYERS = {
    "us1": (0.00, 0.5, 40.0, -105.0, "KSSL.SSL", 0.0),
    "us2": (0.02, 2.0, 41.0, -104.0, "KSSL.SSL", 0.0),
    "us3": (0.04, 8.0, 40.5, -104.5, "KSSL.SSL", 30.0),  # subsoil
    "no_target": (0.06, None, 40.2, -105.2, "KSSL.SSL", 0.0),
    "no_spectrum": (None, 1.0, 40.3, -105.3, "KSSL.SSL", 0.0),
    "gappy": ("gap", 1.5, 40.4, -105.4, "KSSL.SSL", 0.0),
    "nowhere": (0.08, 3.0, np.nan, np.nan, "LUCAS.SSL", 0.0),
    "ke1": (0.10, 0.2, -1.0, 36.0, "AFSIS1.SSL", 0.0),
    "ke2": (0.12, 0.3, -1.2, 36.3, "AFSIS1.SSL", 0.0),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_ossl_files(tmp_path_factory.mktemp("ossl"))


def write_ossl_files(tmp_path: Path) -> dict[str, Path]:
    """The three OSSL tables for :data:`LAYERS`, as .csv.gz in the OSSL v1.2 layout."""
    rows = []
    for layer, (offset, *_rest) in LAYERS.items():
        if offset is None:
            continue
        if offset == "gap":
            spec = _spectrum(0.0)
            spec[WL == 1000] = np.nan  # a hole inside the range: incomplete spectrum
        else:
            spec = _spectrum(offset)
        rows.append(
            {ID: layer, "id.scan_local_c": f"scan-{layer}", **dict(zip(COLS, spec, strict=True))}
        )
    # a repeated scan of us1, brighter by 0.02: the reader averages repeats
    rows.append(
        {
            ID: "us1",
            "id.scan_local_c": "scan-us1-b",
            **dict(zip(COLS, _spectrum(0.02), strict=True)),
        }
    )
    visnir = pd.DataFrame(rows)
    visnir.insert(2, "scan.visnir.model.name_utf8_txt", "ASD Labspec 2500 with Muglight accessory")
    lab = pd.DataFrame(
        {
            "dataset.code_ascii_txt": [v[4] for v in LAYERS.values()],
            ID: list(LAYERS),
            "ec_usda.a364_ds.m": [v[1] for v in LAYERS.values()],
            "oc_usda.c729_w.pct": np.linspace(0.5, 4.0, len(LAYERS)),
        }
    )
    site = pd.DataFrame(
        {
            "dataset.code_ascii_txt": [v[4] for v in LAYERS.values()],
            ID: list(LAYERS),
            "id.layer_local_c": [f"local-{k}" for k in LAYERS],
            "longitude.point_wgs84_dd": [v[3] for v in LAYERS.values()],
            "latitude.point_wgs84_dd": [v[2] for v in LAYERS.values()],
            "layer.upper.depth_usda_cm": [v[5] for v in LAYERS.values()],
            "layer.lower.depth_usda_cm": [v[5] + 10 for v in LAYERS.values()],
        }
    )
    out = {
        "visnir": tmp_path / "ossl_visnir_L0_v1.2.csv.gz",
        "soillab": tmp_path / "ossl_soillab_L1_v1.2.csv.gz",
        "soilsite": tmp_path / "ossl_soilsite_L0_v1.2.csv.gz",
    }
    visnir.to_csv(out["visnir"], index=False)
    lab.to_csv(out["soillab"], index=False)
    site.to_csv(out["soilsite"], index=False)
    return out


ID = "id.layer_uuid_txt"


def _read(files, **kw):
    return read_ossl(files["visnir"], files["soillab"], files["soilsite"], **kw)


def test_read_ossl_joins_filters_and_resamples(files):
    ds = validate_samples(_read(files, group="dataset"))
    # kept: spectrum + target + location; us1's two scans are one sample
    assert sorted(ds["layer_id"].values) == ["ke1", "ke2", "us1", "us2", "us3"]
    assert ds.sizes == {"sample": 5, "date": 1, "band": 206}
    assert (
        ds["target"].attrs["units"] == "dS/m" and ds.attrs["target_column"] == "ec_usda.a364_ds.m"
    )
    by_id = dict(zip(ds["layer_id"].values, range(5), strict=True))
    assert ds["target"].values[by_id["us2"]] == 2.0
    # the grid points are measured wavelengths: values are the file's, us1 is the mean of two scans
    grid = ds["wavelength"].values
    np.testing.assert_allclose(
        ds["reflectance"].values[by_id["us2"], 0], 0.12 + 0.2 * (grid - 350) / 2150, rtol=1e-5
    )
    np.testing.assert_allclose(
        ds["reflectance"].values[by_id["us1"], 0], 0.11 + 0.2 * (grid - 350) / 2150, rtol=1e-5
    )
    assert ds.attrs["repeated_scans_averaged"] == 1
    assert ds.attrs["layers_with_target_without_spectrum"] == 2  # no_spectrum, gappy
    assert ds.attrs["visnir_rows_incomplete_spectrum"] == 1
    assert ds.attrs["layers_without_location"] == 1  # nowhere
    assert ds.attrs["reflectance_scale"] == "fraction"
    assert sorted(set(ds["group"].values)) == ["AFSIS1.SSL", "KSSL.SSL"]
    assert ds.attrs["licence"] == "CC-BY 4.0" and "Safanelli" in ds.attrs["citation"]
    assert ds.attrs["simulated"] is False and ds.attrs["group_kind"] == "dataset"
    np.testing.assert_allclose(ds["lat"].values[by_id["ke1"]], -1.0)
    np.testing.assert_allclose(ds["depth_top_cm"].values[by_id["us3"]], 30.0)


def test_clusters_depth_and_unlocated(files):
    ds = _read(files, group="cluster", n_clusters=2)
    groups = dict(zip(ds["layer_id"].values, ds["group"].values, strict=True))
    assert groups["us1"] == groups["us2"] == groups["us3"] == "region_0"  # west
    assert groups["ke1"] == groups["ke2"] == "region_1"
    assert ds.attrs["group_kind"] == "geographic cluster"
    top = _read(files, group="cluster", n_clusters=2, max_upper_depth_cm=0)
    assert "us3" not in top["layer_id"].values and top.attrs["layers_outside_depth"] == 1
    kept = _read(files, group="cluster", n_clusters=2, require_location=False)
    i = list(kept["layer_id"].values).index("nowhere")
    assert kept["group"].values[i] == "unlocated" and np.isnan(kept["lat"].values[i])


def test_chunked_reading_and_other_grids(files):
    a = _read(files, chunksize=2)
    b = _read(files, chunksize=10_000)
    np.testing.assert_array_equal(a["reflectance"].values, b["reflectance"].values)
    # an off-grid grid needs the two neighbours of each point; linear spectra stay exact
    odd = np.arange(401.0, 2442.0, 10.0)
    names, wl = visnir_columns(COLS, odd)
    assert len(names) == 2 * odd.size and wl[0] == 400 and wl[1] == 402
    assert visnir_columns(COLS, np.arange(400.0, 2451.0, 10.0))[0][:2] == [
        "scan_visnir.400_ref",
        "scan_visnir.410_ref",
    ]
    ds = _read(files, wavelengths_nm=odd, group="dataset")
    i = list(ds["layer_id"].values).index("ke2")
    np.testing.assert_allclose(
        ds["reflectance"].values[i, 0], 0.22 + 0.2 * (odd - 350) / 2150, rtol=1e-5
    )
    with pytest.raises(ValueError, match=r"cover 350-2500 nm but the grid needs 300-"):
        _read(files, wavelengths_nm=np.arange(300.0, 2000.0, 10.0))


def test_other_targets(files):
    soc = _read(files, target="soc", group="dataset")
    assert soc["target"].attrs["units"] == "%"
    # every layer with a complete spectrum and a location has SOC, incl. 'no_target'
    assert "no_target" in soc["layer_id"].values and soc.sizes["sample"] == 6
    raw = _read(files, target="oc_usda.c729_w.pct", group="dataset")
    np.testing.assert_array_equal(raw["target"].values, soc["target"].values)
    with pytest.raises(ParameterError, match="not known"):
        _read(files, target="salinity")


def test_missing_columns_are_named_with_the_file(files, tmp_path):
    lab = pd.read_csv(files["soillab"]).drop(columns="ec_usda.a364_ds.m")
    bad = tmp_path / "lab_without_ec.csv.gz"
    lab.to_csv(bad, index=False)
    with pytest.raises(
        ValueError, match=r"lab_without_ec\.csv\.gz has no column\(s\) \['ec_usda\.a364_ds\.m'\]"
    ):
        read_ossl(files["visnir"], bad, files["soilsite"])
    site = pd.read_csv(files["soilsite"]).drop(columns="latitude.point_wgs84_dd")
    bad_site = tmp_path / "site.csv.gz"
    site.to_csv(bad_site, index=False)
    with pytest.raises(
        ValueError, match=r"soil site file site\.csv\.gz has no column.*latitude\.point_wgs84_dd"
    ):
        read_ossl(files["visnir"], files["soillab"], bad_site)
    # the tables passed in the wrong order
    with pytest.raises(ValueError, match=r"soil lab file ossl_visnir_L0_v1\.2\.csv\.gz"):
        read_ossl(files["visnir"], files["visnir"], files["soilsite"])
    with pytest.raises(ValueError, match="scan_visnir"):
        read_ossl(files["soillab"], files["soillab"], files["soilsite"])
    with pytest.raises(ValueError, match=r"layer\.upper\.depth_usda_cm"):
        read_ossl(
            files["visnir"],
            files["soillab"],
            _without(files["soilsite"], "layer.upper.depth_usda_cm", tmp_path),
            max_upper_depth_cm=0,
        )


def _without(path: Path, column: str, tmp_path: Path) -> Path:
    out = tmp_path / f"no_{column}.csv.gz"
    pd.read_csv(path).drop(columns=column).to_csv(out, index=False)
    return out


def test_load_ossl_goes_through_the_registry(files, monkeypatch):
    asked = []

    def fake_fetch(name, *, progress=False):
        asked.append(name)
        return files[name.removeprefix("ossl_")]

    monkeypatch.setattr("soilbook.data.registry.fetch", fake_fetch)
    ds = load_ossl(target="ec", group="dataset", progress=False)
    assert asked == ["ossl_visnir", "ossl_soillab", "ossl_soilsite"]
    assert ds.sizes["sample"] == 5
    assert ossl.OSSL_TARGETS["ec"][0] == "ec_usda.a364_ds.m"


# -- first use of the unpinned OSSL files: only plausible content is recorded ------------------

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head></html>\n"


@pytest.fixture
def ossl_server(files, cache_dir, monkeypatch):
    """The three OSSL registry entries served by a local HTTP server (routes editable)."""
    import dataclasses

    from local_http import serve

    from soilbook.data import registry

    monkeypatch.delenv("SOILBOOK_DATA_MIRROR", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    routes = {
        f"/{files[t].name}": (200, files[t].read_bytes(), "application/gzip")
        for t in ("visnir", "soillab", "soilsite")
    }
    with serve(routes) as base:
        for table in ("visnir", "soillab", "soilsite"):
            remote = registry.get(f"ossl_{table}")
            assert remote.sha256 is None  # trust on first use: the case under test
            url = f"{base}/{files[table].name}"
            monkeypatch.setitem(
                registry.DATASETS, remote.name, dataclasses.replace(remote, url=url)
            )
        yield routes


def test_an_html_page_is_never_recorded_as_an_ossl_file(files, ossl_server, cache_dir):
    from soilbook.data import registry
    from soilbook.errors import DataUnavailableError

    # a captive portal (or a proxy's error page) answers 200 with HTML instead of the file
    ossl_server["/" + files["soillab"].name] = (200, HTML_PAGE, "text/html")
    with pytest.raises(DataUnavailableError, match=r"ossl_soillab.*web page.*<!DOCTYPE html"):
        load_ossl(target="ec", group="dataset", progress=False)
    dest = registry.cached_path("ossl_soillab")
    assert not dest.exists() and not dest.with_name(dest.name + ".sha256").exists()
    assert not registry.verify("ossl_soillab")
    assert not dest.parent.exists() or not any(dest.parent.iterdir())  # no temporaries
    # once the server answers with the real file, it is fetched and its sha256 recorded
    ossl_server["/" + files["soillab"].name] = (200, files["soillab"].read_bytes(), "x/gzip")
    ds = load_ossl(target="ec", group="dataset", progress=False)
    assert ds.sizes["sample"] == 5
    assert registry.verify("ossl_soillab")
    assert dest.with_name(dest.name + ".sha256").read_text().split()[0] == registry.sha256sum(
        files["soillab"]
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"", "empty"), (b"id,ec\nus1,0.5\n", "not gzip data"), (b"  <html>oops</html>", "web page")],
)
def test_implausible_first_downloads_are_refused(files, ossl_server, cache_dir, body, why):
    from soilbook.data import registry
    from soilbook.errors import DataUnavailableError

    ossl_server["/" + files["soilsite"].name] = (200, body, "text/plain")
    with pytest.raises(DataUnavailableError, match=why):
        registry.fetch("ossl_soilsite")
    assert not registry.cached_path("ossl_soilsite").exists()


def test_an_html_page_already_in_the_cache_is_replaced(files, ossl_server, cache_dir):
    """A page cached before any hash was recorded (e.g. by an older version) is not trusted."""
    from soilbook.data import registry

    dest = registry.cached_path("ossl_visnir")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(HTML_PAGE)
    with pytest.warns(UserWarning, match="web page"):
        path = registry.fetch("ossl_visnir")
    assert path.read_bytes() == files["visnir"].read_bytes() and registry.verify("ossl_visnir")


def test_ancillary_properties_come_as_coordinates(files, tmp_path):
    lab = pd.read_csv(files["soillab"])
    lab["clay.tot_usda.a334_w.pct"] = np.linspace(5.0, 45.0, len(lab))
    lab.loc[lab[ID] == "us2", "clay.tot_usda.a334_w.pct"] = np.nan  # a gap never drops a layer
    soillab = tmp_path / "soillab.csv.gz"
    lab.to_csv(soillab, index=False)
    ds = read_ossl(files["visnir"], soillab, files["soilsite"], ancillary=("clay", "sand"))
    plain = read_ossl(files["visnir"], files["soillab"], files["soilsite"])
    assert ds.sizes["sample"] == plain.sizes["sample"]
    assert ds["anc_clay"].attrs["units"] == "%" and "sand" not in ds.attrs["ancillary"]
    assert ds.attrs["ancillary_missing"] == ["sand"]  # no sand column in this table
    clay = dict(zip(ds["layer_id"].values, ds["anc_clay"].values, strict=True))
    assert np.isnan(clay["us2"]) and clay["us1"] == pytest.approx(5.0)
