"""``data_source="earthengine"`` in every chapter (offline): the checks run in order before
papermill, and a run without credentials stops with the set-up steps and no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import ee_harness
import pytest
import yaml

from soilbook import config
from soilbook.chapters import earthengine as chapter_ee
from soilbook.chapters.common import check_value
from soilbook.data.earthengine.points import read_points
from soilbook.errors import EarthEngineSetupError, ParameterError

REPO = Path(__file__).resolve().parents[1]
ee_offline = ee_harness.ee_offline
#: Each chapter with points its recipe accepts (date windows inside the collections' lives).
CHAPTERS = {
    "01_salinity_ss_soilnet": "2021-05-03",
    "02_spectral_transfer_deepsalt": "2011-05-03",
    "03_soc_ssl_soilnet": "2015-05-03",
    "04_soil_moisture_convnext": "2021-05-03",
}

#: Arguments a chapter needs besides the points (chapter 2: real lab labels, not simulated EC).
EXTRA = {"02_spectral_transfer_deepsalt": ["-p", "target", "soc"]}


def _points(tmp_path: Path, day: str, *, header: str = "id,lat,lon,date,target") -> Path:
    path = tmp_path / "points.csv"
    rows = [f"P{i},{37.70 + i / 100:.2f},118.8{i},{day},{1.5 * i + 1}" for i in range(1, 4)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """No credentials anywhere: a fresh HOME and gcloud folder, no key, no project."""
    from soilbook.data.earthengine.session import PROJECT_ENV

    drop = {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", *PROJECT_ENV}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        CLOUDSDK_CONFIG=str(home / "gcloud"),
        SOILBOOK_CACHE=str(tmp_path / "cache"),
    )
    return env


@pytest.mark.parametrize("nb", sorted(CHAPTERS))
def test_without_credentials_the_run_stops_with_the_set_up_steps(nb: str, tmp_path: Path) -> None:
    points = _points(tmp_path, CHAPTERS[nb])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "soilbook", "run", nb, "-p", "data_source", "earthengine",
         "-p", "points_path", str(points), "-p", "output_dir", str(out), *EXTRA.get(nb, [])],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=_clean_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "No Earth Engine credentials were found" in proc.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in proc.stderr  # the set-up steps
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists(), "papermill started: output_dir was created"


def _params(nb: str, **values: Any) -> dict[str, Any]:
    return {**config.defaults(nb), "data_source": "earthengine", **values}


def _check(nb: str, p: dict[str, Any]) -> None:
    config.chapter(nb).check(p)


def test_missing_points_say_what_to_pass() -> None:
    with pytest.raises(ParameterError, match="points_path"):
        _check("01_salinity_ss_soilnet", _params("01_salinity_ss_soilnet"))


def test_a_table_without_lat_fails_before_the_credentials(tmp_path: Path) -> None:
    points = _points(tmp_path, "2021-05-03", header="id,latitude_wrong,lon,date,target")
    p = _params("01_salinity_ss_soilnet", points_path=str(points))
    with pytest.raises(ParameterError, match="no lat column"):
        _check("01_salinity_ss_soilnet", p)


def test_dates_before_the_mission_fail_before_the_credentials(tmp_path: Path) -> None:
    p = _params("01_salinity_ss_soilnet", points_path=str(_points(tmp_path, "2015-01-10")))
    with pytest.raises(ParameterError, match="dates"):
        _check("01_salinity_ss_soilnet", p)


def test_an_area_too_large_for_the_scale_fails_with_a_scale_that_fits(tmp_path: Path) -> None:
    p = _params(
        "01_salinity_ss_soilnet",
        points_path=str(_points(tmp_path, "2021-05-03")),
        aoi="70,20,130,50",
    )
    with pytest.raises(ParameterError, match="scale"):
        _check("01_salinity_ss_soilnet", p)


def test_the_checks_end_with_the_credentials(tmp_path: Path, monkeypatch) -> None:
    for key, value in _clean_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "EARTHENGINE_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    p = _params("01_salinity_ss_soilnet", points_path=str(_points(tmp_path, "2021-05-03")))
    with pytest.raises(EarthEngineSetupError, match="No Earth Engine credentials"):
        _check("01_salinity_ss_soilnet", p)


def test_soc_points_without_a_label_are_kept_for_pre_training(tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    points.write_text(
        "id,lat,lon,date,target\nA,40.1,-100.2,2015-05-01,12.5\nB,40.2,-100.1,2015-05-01,\n"
    )
    rows = read_points(points, unlabelled_ok=True)
    assert rows[0]["target"] == 12.5 and rows[1]["target"] != rows[1]["target"]  # NaN
    with pytest.raises(ParameterError, match="row 3"):
        read_points(points)


def test_chapter_2_refuses_real_pixels_beside_simulated_lab_labels(tmp_path: Path) -> None:
    nb = "02_spectral_transfer_deepsalt"
    p = _params(nb, points_path=str(_points(tmp_path, "2011-05-03")))
    with pytest.raises(ParameterError, match=r"simulated.*lab_source file"):
        _check(nb, p)


def test_date_windows_parse_or_default_to_the_points_span() -> None:
    points = [{"date": "2021-05-03"}, {"date": "2021-05-10"}]
    assert chapter_ee.date_windows("", points, 30) == [("2021-04-03", "2021-06-10")]
    assert chapter_ee.date_windows("2021-04-01/2021-05-01, 2021-09-01/2021-10-01", points, 0) == [
        ("2021-04-01", "2021-05-01"),
        ("2021-09-01", "2021-10-01"),
    ]
    with pytest.raises(ParameterError, match="start/end"):
        chapter_ee.date_windows("2021-04-01", points, 0)
    with pytest.raises(ParameterError, match="no dates"):
        chapter_ee.date_windows("", [{"date": None}], 0)


@pytest.mark.parametrize("nb", sorted(CHAPTERS))
def test_every_chapter_takes_the_earthengine_parameters(nb: str) -> None:
    spec = {p.name: p for p in config.chapter(nb).params}
    assert {p.name for p in chapter_ee.EARTHENGINE_PARAMS} <= set(spec)
    assert chapter_ee.EARTHENGINE in spec["data_source"].choices


@pytest.mark.parametrize("nb", sorted(CHAPTERS))
def test_the_full_profile_shows_a_real_data_configuration_that_validates(nb: str) -> None:
    text = (REPO / "notebooks" / "params" / nb / "full.yaml").read_text()
    assert "Real data from Earth Engine" in text
    block = text.split("Real data from Earth Engine", 1)[1]
    lines = [m.group(1) for m in re.finditer(r"^# (\w+: .+)$", block, re.M)]
    example = yaml.safe_load("\n".join(lines))
    assert example["data_source"] == "earthengine" and example["points_path"]
    spec = {p.name: p for p in config.chapter(nb).params}
    for name, value in {**yaml.safe_load(text), **example}.items():
        check_value(spec[name], value)  # a known name with an allowed value


def test_chapter_2_pairs_real_pixels_with_their_lab_sites(monkeypatch, tmp_path: Path) -> None:
    """load_data with data_source='earthengine' (extraction faked): the Hyperion pixels replace
    the simulated ones, their lab sites are the paired ones and take the sites' regions."""
    import numpy as np

    from soilbook.chapters import transfer as chapter2
    from soilbook.data.earthengine.recipes import transfer as recipe
    from soilbook.data.schema import validate_samples

    nb = "02_spectral_transfer_deepsalt"
    p = _params(nb, n_sites=200, n_regions=2, min_region_pixels=2, points_path="unused.csv")
    simulated = chapter2.load_data({**p, "data_source": "simulated"})
    lab = simulated.lab
    chosen = [0, 5, 150]
    points = [
        {"id": str(lab["site"].values[i]), "lat": float(lab["lat"].values[i]),
         "lon": float(lab["lon"].values[i]), "target": 3.0 + i}
        for i in chosen
    ]  # fmt: skip
    bands = recipe.HYPERION_BANDS
    features = [{"properties": {"id": pt["id"], **dict.fromkeys(bands, 0.2)}} for pt in points]
    satellite = recipe.to_transfer_samples(features, points)
    inputs = chapter_ee.EarthEngineInputs(
        points, None, [("2010-04-01", "2010-06-01")], tmp_path, "x"
    )
    monkeypatch.setattr(chapter_ee, "earthengine_inputs", lambda *a, **k: inputs)
    monkeypatch.setattr(recipe, "extract_transfer_inputs", lambda *a, **k: satellite)
    data = chapter2.load_data(p)
    assert data.satellite.sizes["sample"] == 3 and data.unlabelled.sizes["sample"] == 0
    assert not data.satellite.attrs["simulated"]
    assert np.flatnonzero(data.lab["paired"].values).tolist() == chosen
    assert data.satellite["group"].values.tolist() == lab["group"].values[chosen].tolist()
    assert "real" in data.description and recipe.HYPERION in data.description
    validate_samples(data.satellite)


def test_chapter_1_maps_the_area_block_by_block(ee_offline, tmp_path: Path) -> None:
    """map_area with a fake computePixels: a forest fitted on the samples' pixel features maps
    the whole area to Zarr, one request per block, and a rerun reads every block from the cache."""
    import numpy as np
    from ee_fakes import FakeTransport, expected
    from factories import sample_set
    from sklearn.ensemble import RandomForestRegressor

    from soilbook import lazymaps, plots
    from soilbook.chapters import salinity
    from soilbook.data.earthengine import (
        DEFAULT_BANDS,
        area_grid,
        pixel_features,
        salinity_pixel_names,
    )

    nb = "01_salinity_ss_soilnet"
    p = _params(nb, aoi="118.80,37.70,118.83,37.72", output_dir=str(tmp_path / "out"), rf_trees=5)
    assert salinity.map_area({**p, "aoi": ""}, None) is None
    dates = [("2021-04-01", "2021-05-01")]
    inputs = chapter_ee.EarthEngineInputs([], (118.80, 37.70, 118.83, 37.72), dates, tmp_path, "x")
    names = salinity_pixel_names(1, DEFAULT_BANDS)
    bands = list(DEFAULT_BANDS)
    rng = np.random.default_rng(0)
    samples = sample_set(
        rng.uniform(1, 20, 40),
        rng.uniform(0, 5e5, (40, 1, len(bands))),
        rng.uniform(0, 5e5, (40, len(names) - len(bands))),
        dates=[dates[0][0]],
        bands=bands,
        features=dict.fromkeys(names[len(bands) :], "other"),
        groups=np.arange(40),
    )
    grid = area_grid(inputs.aoi, salinity.PIXEL_M)
    fake = FakeTransport(names, origin=(grid.x0, grid.y0))
    area = salinity.map_area(p, samples, inputs=inputs, transport=fake, chunk=64)
    assert area.shape == (grid.height, grid.width)
    blocks = -(-grid.height // 64) * -(-grid.width // 64)
    assert fake.n_calls == blocks
    forest = RandomForestRegressor(n_estimators=5, n_jobs=p["n_jobs"], random_state=p["seed"])
    forest.fit(pixel_features(samples, names), samples["target"].values)
    pixels = expected(grid, names, names)[:, :3, :5].reshape(len(names), -1).T
    np.testing.assert_allclose(area.values[:3, :5].ravel(), forest.predict(pixels), rtol=1e-5)
    assert (Path(p["output_dir"]) / salinity.AREA_MAP).is_dir()
    small = lazymaps.overview(area, max_side=100)
    assert max(small.shape) <= 100 and small.attrs["overview_factor"] == 3
    plots.maps({"area": small}, units="g/kg")  # the notebook's figure
    salinity.map_area(p, samples, inputs=inputs, transport=fake, chunk=64)
    assert fake.n_calls == blocks  # every block came from the cache


def test_an_empty_date_cell_names_its_row(tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    points.write_text("id,lat,lon,date,target\nA,37.7,118.8,2021-05-01,2.0\nB,37.8,118.9,,3.0\n")
    with pytest.raises(ParameterError, match=r"row 3: date=.*YYYY-MM-DD"):
        read_points(points)


def test_an_area_outside_the_collections_fails_before_any_request(tmp_path: Path) -> None:
    nb = "01_salinity_ss_soilnet"
    p = _params(nb, points_path=str(_points(tmp_path, "2021-05-03")), aoi="10,-75,10.1,-74.9")
    with pytest.raises(ParameterError, match="aoi south-west corner"):
        _check(nb, p)


@pytest.mark.parametrize("nb", ["03_soc_ssl_soilnet", "04_soil_moisture_convnext"])
def test_a_chapter_that_does_not_map_says_the_aoi_is_unused(nb, tmp_path, monkeypatch) -> None:
    from soilbook.data.earthengine import session

    monkeypatch.setattr(session, "find_credentials", lambda: session.CredentialSource("x", "", "p"))
    p = _params(nb, points_path=str(_points(tmp_path, CHAPTERS[nb])), aoi="-100,40,-99.9,40.1")
    if nb == "04_soil_moisture_convnext":
        p["tile_size"] = 64
    with pytest.warns(UserWarning, match="does not map an area"):
        _check(nb, p)


def test_chapter_2_refuses_points_that_are_no_lab_site_before_any_request(
    monkeypatch, tmp_path: Path
) -> None:
    from soilbook.chapters import transfer as chapter2
    from soilbook.data.earthengine.recipes import transfer as recipe

    nb = "02_spectral_transfer_deepsalt"
    p = _params(nb, n_sites=200, n_regions=2, min_region_pixels=2, points_path="unused.csv")
    points = [{"id": "not-a-site", "lat": 37.7, "lon": 118.8, "target": 1.0}]
    inputs = chapter_ee.EarthEngineInputs(
        points, None, [("2010-04-01", "2010-06-01")], tmp_path, "x"
    )
    monkeypatch.setattr(chapter_ee, "earthengine_inputs", lambda *a, **k: inputs)
    monkeypatch.setattr(recipe, "extract_transfer_inputs", pytest.fail)
    with pytest.raises(ParameterError, match="lab site id"):
        chapter2.load_data(p)
