"""The source dispatcher: cheap argument checks and loading every source."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.config import validate_params
from soilbook.data import sources
from soilbook.data.schema import validate_samples
from soilbook.errors import ParameterError, SchemaError

NB = "01_salinity_ss_soilnet"


def test_source_targets_contract() -> None:
    assert sources.SOURCE_TARGETS["simulated"] == ("salinity",)
    assert sources.SOURCE_TARGETS["limesoda"] == ("SOC", "pH", "Clay")
    assert sources.SOURCE_TARGETS["ucrb"] == ("ec",)
    assert set(sources.SOURCES) == {"simulated", "limesoda", "ucrb", "file"}
    assert sources.resolve_target("limesoda", "auto") == "SOC"
    assert sources.resolve_target("limesoda", "clay") == "Clay"
    assert sources.resolve_target("file", "my_col") == "my_col"
    assert sources.resolve_target("file", "auto") == "target"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"data_source": "sentinel"},
            r"not known; allowed: \['simulated', 'limesoda', 'ucrb', 'file'\]",
        ),
        ({"data_source": "limesoda", "dataset_id": "SSP.460"}, r"no Sentinel-2.*BB\.250"),
        ({"data_source": "limesoda", "dataset_id": "nope"}, r"Allowed.*MGS\.101"),
        ({"data_source": "limesoda", "target": "salinity"}, r"allowed: \['SOC', 'pH', 'Clay'\]"),
        ({"data_source": "simulated", "target": "SOC"}, r"allowed: \['salinity'\]"),
        ({"data_source": "ucrb", "target": "SOC"}, r"allowed: \['ec'\]"),
        ({"data_source": "file", "data_path": ""}, "needs data_path"),
        ({"data_source": "file", "data_path": "/no/such/file.csv"}, "does not exist"),
    ],
)
def test_check_source_args_errors(kwargs: dict, message: str) -> None:
    args = {"dataset_id": "BB.250", "target": "auto", "data_path": ""} | kwargs
    source = args.pop("data_source")
    with pytest.raises(ParameterError, match=message):
        sources.check_source_args(source, **args)


def test_check_source_args_accepts_good_values(tmp_path: Path) -> None:
    sources.check_source_args("simulated", dataset_id="BB.250", target="auto", data_path="")
    sources.check_source_args("limesoda", dataset_id="G.150", target="ph", data_path="")
    sources.check_source_args("ucrb", dataset_id="", target="EC", data_path="")
    f = tmp_path / "x.csv"
    f.write_text("target,group,a\n1,1,2\n")
    sources.check_source_args("file", dataset_id="", target="a", data_path=str(f))


def test_validate_params_runs_the_source_checks(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="Sentinel-2"):
        validate_params(NB, {"data_source": "limesoda", "dataset_id": "CV.98"}, partial=True)
    with pytest.raises(ParameterError, match="needs data_path"):
        validate_params(NB, {"data_source": "file"}, partial=True)
    ok = validate_params(
        NB, {"data_source": "limesoda", "target": "Clay"}, partial=True, workdir=tmp_path
    )
    assert ok["target"] == "Clay"


def _csv(path: Path, text: str | bytes) -> str:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


@pytest.mark.parametrize(
    ("content", "target", "error", "message"),
    [
        ("group,salt,B04\n1,2.5,0.1\n", "auto", SchemaError, r"no column\(s\) \['target'\]"),
        ("group,salt,B04\n1,2.5,0.1\n", "salinity", SchemaError, r"\['salinity'\]"),
        ("target,B04\n2.5,0.1\n", "auto", SchemaError, "neither a 'group' column nor 'lat'"),
        ("", "auto", SchemaError, "is empty"),
        (
            b"group,target,B04\n" + b"1,2.5,0.1\n" * 3000 + b"caf\xe9,1,0.2\n",
            "auto",
            SchemaError,
            r"not UTF-8 text: the byte 0xe9 .*\(line 3002\)",
        ),
        ("target;group;B04\n1;2;3\n", "auto", SchemaError, "separated by ';'"),
    ],
)
def test_user_csv_is_refused_before_the_notebook_runs(
    tmp_path: Path, content: str | bytes, target: str, error: type, message: str
) -> None:
    path = _csv(tmp_path / "mine.csv", content)
    with pytest.raises(error, match=message):
        validate_params(
            NB, {"data_source": "file", "data_path": path, "target": target}, partial=True
        )


def test_user_file_folder_and_empty_netcdf_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "table.csv"
    folder.mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        sources.check_source_args("file", data_path=str(folder))
    empty = tmp_path / "set.nc"
    empty.write_bytes(b"")
    with pytest.raises(SchemaError, match=r"is empty \(0 bytes\)"):
        sources.check_source_args("file", data_path=str(empty))


def test_user_csv_header_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = _csv(tmp_path / "ok.csv", "\ufefflat,lon,EC,B04\n37.1,118.2,2.5,0.1\n")
    assert sources.check_user_csv(path, "EC") == ["lat", "lon", "EC", "B04"]


def test_load_limesoda() -> None:
    data = sources.load("limesoda", target="auto", dataset_id="BB.72")
    assert data.scene is None
    assert data.samples.attrs["target_name"] == "SOC" and data.samples.sizes["sample"] == 72


def test_load_ucrb(data_mirror: Path, cache_dir: Path) -> None:
    data = sources.load("ucrb")
    assert data.scene is None
    assert data.samples.attrs["depth"] == "surface" and data.samples.sizes["sample"] == 587
    assert sources.load("ucrb", ucrb_depth="all").samples.sizes["sample"] == 3034


def test_load_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {"group": np.arange(20) % 4, "salt": rng.uniform(0, 5, 20), "B04": rng.uniform(0, 0.3, 20)}
    )
    path = tmp_path / "mine.csv"
    df.to_csv(path, index=False)
    data = sources.load("file", target="salt", data_path=str(path))
    np.testing.assert_allclose(data.samples["target"].values, df["salt"].values)


def test_load_simulated() -> None:
    pytest.importorskip("soilbook.data.scene")
    data = sources.load("simulated", seed=0, scene_size=48, n_samples=40, n_dates=2, window=5)
    validate_samples(data.samples)
    assert data.scene is not None and data.samples.attrs["simulated"] in (True, 1)
    assert data.samples.sizes["sample"] == 40


# -- a user's file: the pre-run check and the loader are one code path (userfile) ---------------


def _fields(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "lat": 37.0 + rng.uniform(0, 0.5, n),
            "lon": 118.0 + rng.uniform(0, 0.5, n),
            "target": rng.gamma(2.0, 2.0, n),
            "B04": rng.uniform(0.05, 0.3, n),
            "terrain:slope": rng.uniform(0, 5, n),
        }
    )


def _message(call) -> str:
    with pytest.raises(SchemaError) as err:
        call()
    return str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (  # x/y without crs: userfile's newer coordinate rule, before the notebook runs too
            lambda d: d.rename(columns={"lat": "y", "lon": "x"}),
            "'x' and 'y' columns but no crs",
        ),
        (  # only identifiers left as predictors
            lambda d: d.drop(columns=["B04", "terrain:slope"]).assign(FID=np.arange(len(d))),
            r"no predictor columns \(identifier columns excluded: \['FID'\]\)",
        ),
        (lambda d: d.drop(columns=["lat", "lon"]), "neither a 'group' column nor 'lat'"),
    ],
)
def test_bad_header_same_message_from_check_and_load(tmp_path: Path, change, message: str) -> None:
    from soilbook.data.real.userfile import load_user_file

    path = tmp_path / "bad.csv"
    change(_fields()).to_csv(path, index=False)
    texts = {
        _message(lambda: sources.check_source_args("file", data_path=str(path))),
        _message(lambda: sources.check_user_csv(path, "target")),
        _message(lambda: sources.load("file", data_path=str(path))),
        _message(lambda: load_user_file(path)),
    }
    assert len(texts) == 1, texts
    assert re.search(message, texts.pop())


def test_projected_lat_lon_and_identifiers_same_from_sources_and_userfile(tmp_path: Path) -> None:
    from soilbook.data.real.userfile import load_user_file

    df = _fields().assign(site_key=[f"s{i}" for i in range(40)])
    path = tmp_path / "ids.csv"
    df.to_csv(path, index=False)
    with pytest.warns(UserWarning) as via_sources:
        a = sources.load("file", data_path=str(path), target_units="dS/m").samples
    with pytest.warns(UserWarning) as via_userfile:
        b = load_user_file(path, target_units="dS/m")
    said = [str(w.message) for w in via_sources]
    assert said == [str(w.message) for w in via_userfile]
    assert any("identifier column(s) excluded" in s and "'site_key'" in s for s in said)
    assert a.identical(b) and a["target"].attrs["units"] == "dS/m"
    assert list(a["feature"].values) == ["slope"]

    metres = _fields()
    metres["lat"], metres["lon"] = 4.1e6 + metres["lat"] * 1e4, 5.0e5 + metres["lon"] * 1e4
    metres.to_csv(path, index=False)
    sources.check_source_args("file", data_path=str(path))  # the header is fine; rows are not
    texts = {
        _message(lambda: sources.load("file", data_path=str(path))),
        _message(lambda: load_user_file(path)),
    }
    assert len(texts) == 1 and re.search(r"not WGS84 degrees.*'x' and 'y'.*crs=", texts.pop())


def test_xy_with_crs_through_sources(tmp_path: Path) -> None:
    df = _fields().rename(columns={"lat": "y", "lon": "x"})
    df["x"], df["y"] = 500000 + df["x"] * 1e3, 4100000 + df["y"] * 1e3
    path = tmp_path / "xy.csv"
    df.to_csv(path, index=False)
    sources.check_source_args("file", data_path=str(path), crs="EPSG:32650")
    with pytest.raises(ParameterError, match="not a coordinate reference system"):
        sources.check_source_args("file", data_path=str(path), crs="EPSG:nope")
    assert "x" in sources.check_user_csv(path, "target", crs="EPSG:32650")
    ds = sources.load("file", data_path=str(path), crs="EPSG:32650", block_size_m=2000).samples
    assert "EPSG:32650" in ds.attrs["coordinate_source"] and ds.attrs["block_size_m"] == 2000
