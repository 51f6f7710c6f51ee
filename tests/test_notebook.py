"""soilbook.notebook: the set-up, the run record and the unwrapping every chapter shares."""

from __future__ import annotations

import json

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from factories import random_sample_set
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from soilbook import __version__, config, plots
from soilbook.baselines import RandomForestBaseline
from soilbook.errors import OutputDirError, ParameterError
from soilbook.evaluate import Log1pTarget, cross_validate, random_kfold
from soilbook.models.ss_soilnet import SSSoilNetRegressor
from soilbook.notebook import (
    NotebookRun,
    histories,
    parameters_from,
    start,
    timings_record,
    unwrap,
)
from soilbook.train import History

NB = "01_salinity_ss_soilnet"

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _samples(n: int = 40):
    """Point samples with a positive target (Log1pTarget needs target > -1)."""
    return random_sample_set(
        n,
        seed=0,
        dates=["2021-05-01"],
        bands=["B4", "B8"],
        features={"ndvi": "vegetation", "elev": "terrain"},
        target=lambda rng, refl, cov: 2.0 + refl[:, 0, 1] + np.abs(cov[:, 0]),
        groups=np.arange(n) // 4,
        target_units="g/kg",
    )


def _params(tmp_path, **changes):
    params = config.defaults(NB) | {"output_dir": str(tmp_path / "out" / "nested"), "device": "cpu"}
    return config.validate_params(NB, params | changes)


# -- parameters_from -------------------------------------------------------------------------


def test_parameters_from_takes_exactly_the_notebooks_parameters():
    namespace = dict(config.defaults(NB)) | {"samples": object(), "np": np, "_": 3}
    values = parameters_from(NB, namespace)
    assert values == config.defaults(NB)
    assert list(values) == list(config.defaults(NB))
    assert config.validate_params(NB, values) == config.defaults(NB)


def test_parameters_from_names_what_the_namespace_lacks():
    namespace = dict(config.defaults(NB))
    del namespace["epochs"], namespace["seed"]
    with pytest.raises(ParameterError, match=r"\['seed', 'epochs'\].*parameters' cell"):
        parameters_from(NB, namespace)


# -- start -----------------------------------------------------------------------------------


def test_start_creates_the_output_folder_styles_and_reports(tmp_path, capsys):
    mpl.rcParams["font.size"] = 17.0
    params = _params(tmp_path)
    run = start(NB, params)
    assert isinstance(run, NotebookRun)
    assert run.output_dir.is_dir() and run.output_dir == tmp_path / "out" / "nested"
    assert run.device == torch.device("cpu")
    assert run.params == params and run.params is not params
    assert run.notebook == NB
    assert mpl.rcParams["font.size"] == plots.STYLE["font.size"]
    assert 0 <= run.elapsed_s < 60
    line = capsys.readouterr().out.strip()
    assert line == f"soilbook {__version__} | profile quick | training device: cpu"


def test_start_stops_when_the_output_folder_cannot_be_made(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    params = _params(tmp_path) | {"output_dir": str(blocker / "out")}  # as if not re-validated
    with pytest.raises(OutputDirError, match=r"output_dir .*a_file/out: a file is in the way"):
        start(NB, params)


# -- the run record --------------------------------------------------------------------------


def test_write_record_writes_metrics_json_and_summary_csv(tmp_path, capsys):
    run = start(NB, _params(tmp_path))
    summary = pd.DataFrame(
        {"rmse": [1.5, 2.0], "n": [10, 10]},
        index=pd.MultiIndex.from_tuples(
            [("RF", "random"), ("RF", "spatial")], names=["model", "split"]
        ),
    )
    claims = pd.DataFrame({"claim": ["beats RF"], "verdict": ["reproduced"]})
    map_scores = pd.DataFrame({"rmse": [0.5]}, index=["RF"])
    record = run.write_record(
        data="simulated",
        source="unit test",
        summary=summary,
        timings={("RF", "random"): 1.25, ("RF", "spatial"): np.float64(2.5)},
        map=map_scores,
        nothing=None,
        claims=claims,
    )
    written = json.loads((run.output_dir / "metrics.json").read_text())
    assert written == json.loads(json.dumps(record, default=str))
    assert list(written)[:6] == ["notebook", "data", "device", "parameters", "summary", "timings_s"]
    assert list(written)[-2:] == ["claims", "wall_time_s"]
    assert written["notebook"] == NB and written["device"] == "cpu"
    assert written["parameters"]["output_dir"] == str(run.output_dir)
    assert written["summary"][1] == {"model": "RF", "split": "spatial", "rmse": 2.0, "n": 10}
    assert written["timings_s"] == {"RF / random": 1.25, "RF / spatial": 2.5}
    assert written["map"] == [{"index": "RF", "rmse": 0.5}]
    assert written["source"] == "unit test" and written["nothing"] is None
    assert written["claims"] == [{"claim": "beats RF", "verdict": "reproduced"}]
    assert written["wall_time_s"] >= 0
    back = pd.read_csv(run.output_dir / "summary.csv", index_col=["model", "split"])
    pd.testing.assert_frame_equal(back, summary)
    printed = capsys.readouterr().out.splitlines()[-1]
    assert printed.startswith("wrote metrics.json and summary.csv to output_dir (")
    assert str(run.output_dir) not in printed  # no machine paths in a built book


def test_timings_record_flattens_model_split_keys():
    assert timings_record({("a", "b"): 1, "c": 2.5}) == {"a / b": 1.0, "c": 2.5}


# -- unwrapping fitted estimators ------------------------------------------------------------


def test_unwrap_reaches_the_model_inside_log1p_and_pipelines():
    ds = _samples()
    rf = RandomForestBaseline(n_estimators=5, seed=0)
    assert unwrap(rf) is rf
    wrapped = Log1pTarget(rf).fit(ds)
    assert isinstance(unwrap(wrapped), RandomForestBaseline)
    assert unwrap(wrapped) is wrapped.estimator_
    pipe = Pipeline([("same", FunctionTransformer()), ("model", wrapped)])
    assert unwrap(pipe) is wrapped.estimator_
    unfitted = Log1pTarget(rf)
    assert unwrap(unfitted) is unfitted  # nothing fitted inside yet


def test_histories_reads_the_networks_inside_their_wrappers():
    ds = _samples()
    net = SSSoilNetRegressor(width=8, heads=2, epochs=2, batch_size=16, device="cpu", seed=0)
    models = {"RF": RandomForestBaseline(n_estimators=5, seed=0), "net": net}
    splits = {"random": random_kfold(ds, n_splits=2, seed=0)}
    cv = cross_validate(models, ds, splits, target_transform="log1p", progress=False)
    assert isinstance(cv.fitted[("net", "random")], Log1pTarget)
    found = histories(cv.fitted)
    assert list(found) == ["net / random"]
    assert isinstance(found["net / random"], History)
    assert found["net / random"] is cv.fitted[("net", "random")].estimator_.history_
    assert histories(cv.fitted, split="random") == found
    assert histories(cv.fitted, split="spatial") == {}


def test_histories_reads_a_cv_result_over_seeds_and_stages():
    ds = _samples()
    net = SSSoilNetRegressor(width=8, heads=2, epochs=2, batch_size=16, device="cpu", seed=0)
    models = {"RF": RandomForestBaseline(n_estimators=5, seed=0), "net": net}
    splits = {"random": random_kfold(ds, n_splits=2, seed=0)}
    cv = cross_validate(models, ds, splits, seeds=[3, 4], progress=False)
    found = histories(cv)
    assert list(found) == ["net / random"]
    assert found["net / random"] is cv.histories[("net", "random", 3, 1, "network")]
    assert found["net / random"] is histories(cv.fitted)["net / random"]  # the same fit
    assert histories(cv, seed=4)["net / random"] is cv.histories[("net", "random", 4, 1, "network")]
    assert histories(cv, fold=0)["net / random"] is cv.histories[("net", "random", 3, 0, "network")]
    assert histories(cv, split="spatial") == {}
    with pytest.raises(ParameterError, match="Expected: a CVResult"):
        histories(42)

    class TwoStages:
        def training_histories(self):
            return {"teacher": History(), "student": History()}

    keys = histories({("ds", "region"): TwoStages()})
    assert list(keys) == ["ds / region / teacher", "ds / region / student"]


def test_write_record_is_strict_json_with_nan_as_null(tmp_path):
    run = start(NB, _params(tmp_path))
    summary = pd.DataFrame({"rmse": [np.nan], "r2": [np.float64(np.inf)]}, index=["RF"])
    run.write_record(
        data="simulated",
        summary=summary,
        timings={},
        claims=[],
        spread=[{"sd": float("nan"), "n": 1}],
    )
    text = (run.output_dir / "metrics.json").read_text()

    def refuse(name):
        raise AssertionError(f"not strict JSON: {name}")

    written = json.loads(text, parse_constant=refuse)
    assert written["summary"] == [{"index": "RF", "rmse": None, "r2": None}]
    assert written["spread"] == [{"sd": None, "n": 1}]
    assert not list(run.output_dir.glob(".*.tmp"))
