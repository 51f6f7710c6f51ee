"""cross_validate over seeds and in worker processes; convergence records; scales (evaluate)."""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from factories import random_sample_set
from sklearn.base import BaseEstimator, RegressorMixin, clone

from soilbook.errors import ParameterError, SplitError
from soilbook.evaluate import (
    CONVERGENCE_KEYS,
    METRICS,
    NETWORK_RECORD_KEYS,
    CVResult,
    Log1pTarget,
    cross_validate,
    make_splits,
    metrics_table,
    random_kfold,
    repeats_over_seeds,
)


def make_ds(n: int = 36) -> xr.Dataset:
    return random_sample_set(
        n,
        seed=0,
        dates=["2021-05-01"],
        bands=["B4", "B8"],
        features={"ndvi": "vegetation", "elev": "terrain"},
        target=lambda rng, refl, cov: np.exp(0.5 * cov[:, 0] + refl[:, 0, 1]),
        groups=[f"g{i % 9}" for i in range(n)],
        target_units="g/kg",
    )


@dataclass
class FakeHistory:
    """The parts of soilbook.train.History that cross_validate reads, with convergence()."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    ok: bool = True

    def convergence(self) -> dict:
        best = int(np.argmin(self.val_loss)) + 1
        return {
            "best_epoch": best,
            "epochs_run": len(self.epoch),
            "final_train_loss": self.train_loss[-1],
            "final_val_loss": self.val_loss[-1],
            "best_val_loss": min(self.val_loss),
            "flattened": self.ok,
            "converged": self.ok,
            "early_stopped": False,
            "reason": "validation loss flattened" if self.ok else "still improving",
        }


class FakeNet(RegressorMixin, BaseEstimator):
    """A deterministic stand-in for a network: the training mean plus a seed-dependent offset,
    with one History per stage (``stages``) that converges unless its seed is ``bad_seed``."""

    def __init__(self, seed: int = 0, stages: tuple = ("network",), bad_seed: int = -99):
        self.seed = seed
        self.stages = stages
        self.bad_seed = bad_seed

    def fit(self, ds: xr.Dataset, y=None) -> FakeNet:
        t = ds["target"].values
        rng = np.random.default_rng(self.seed)
        self.mean_ = float(t.mean()) + float(rng.normal(0, 0.1))
        self.slope_ = float(rng.normal(0, 0.05))
        losses = list(1.0 / np.arange(1, 6) + t.size * 1e-3)
        self.history_ = {
            stage: FakeHistory(
                epoch=list(range(1, 6)),
                train_loss=losses,
                val_loss=[v + 0.1 * k for v in losses],
                ok=self.seed != self.bad_seed,
            )
            for k, stage in enumerate(self.stages)
        }
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        x = ds["covariates"].values[:, 0]
        return self.mean_ + self.slope_ * x

    def training_histories(self) -> dict:
        return dict(self.history_)


class SeededBaseline(RegressorMixin, BaseEstimator):
    """Has a ``seed`` but no training histories: fitted once whatever ``seeds`` says."""

    def __init__(self, seed: int = 3):
        self.seed = seed

    def fit(self, ds: xr.Dataset, y=None) -> SeededBaseline:
        self.median_ = float(np.median(ds["target"].values))
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        return np.full(ds.sizes["sample"], self.median_)


class FailingNet(FakeNet):
    """Raises a soilbook error when fitted on fewer than ``min_rows`` rows."""

    def __init__(self, seed: int = 0, min_rows: int = 10**6):
        super().__init__(seed=seed)
        self.min_rows = min_rows

    def fit(self, ds: xr.Dataset, y=None) -> FailingNet:
        if ds.sizes["sample"] < self.min_rows:
            raise ParameterError(f"only {ds.sizes['sample']} rows, min_rows is {self.min_rows}")
        return super().fit(ds)


class LabNet(FakeNet):
    """Has ``lab_target_transform`` (the Log1pTarget protocol) and records what it was given."""

    def __init__(self, seed: int = 0, lab_target_transform: str = "none"):
        super().__init__(seed=seed)
        self.lab_target_transform = lab_target_transform

    def fit(self, ds: xr.Dataset, y=None) -> LabNet:
        self.lab_transform_seen_ = self.lab_target_transform
        return super().fit(ds)


MODELS = {"net": FakeNet(seed=7), "base": SeededBaseline()}


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return make_ds()


@pytest.fixture(scope="module")
def splits(ds):
    return make_splits(ds, ("random", "spatial"), n_splits=3, seed=0)


@pytest.fixture(scope="module")
def repeated(ds, splits) -> CVResult:
    return cross_validate(MODELS, ds, splits, seeds=[0, 1, 2], progress=False)


# -- seeds -----------------------------------------------------------------------------------


def test_only_networks_repeat_over_seeds(ds, splits, repeated):
    assert repeats_over_seeds(FakeNet()) and not repeats_over_seeds(SeededBaseline())
    res, n = repeated, ds.sizes["sample"]
    assert res.seeds_of("net") == [0, 1, 2]
    assert res.seeds_of("base") == [3]  # its own seed, one run
    p = res.predictions
    assert list(p.columns[:5]) == ["model", "split", "seed", "fold", "sample"]
    assert len(p) == n * 2 * (3 + 1)
    assert len(res.scores) == (3 + 1) * 2 * 3 * (len(METRICS) + 1)
    assert res.oof("net", "spatial").shape == (3, n)
    assert res.oof("base", "random").shape == (1, n)
    oof = res.oof("net", "random")
    assert not np.isnan(oof).any()
    assert not np.array_equal(oof[0], oof[1])  # the seeds differ
    # in sample order: row 1 is seed 1's predictions placed by position
    rows = p[(p.model == "net") & (p.split == "random") & (p.seed == 1)]
    assert np.array_equal(oof[1, rows["sample"].to_numpy()], rows["predicted"].to_numpy())
    assert np.allclose(res.observed(), ds["target"].values)
    assert (res.groups() == ds["group"].values.astype(str)).all()

    pooled = res.summary()
    assert list(pooled.columns) == [*METRICS, "n"]
    assert list(pooled.index) == [(m, s) for m in MODELS for s in splits]
    per_seed = res.seed_scores().xs(("net", "spatial"), level=["model", "split"])
    assert list(per_seed.index) == [0, 1, 2]
    assert pooled.loc[("net", "spatial"), "rmse"] == pytest.approx(per_seed["rmse"].mean())
    spread = res.summary_seeds()
    assert spread.loc[("net", "spatial"), "n_seeds"] == 3
    assert spread.loc[("net", "spatial"), "rmse_seed_sd"] == pytest.approx(
        per_seed["rmse"].std(ddof=1)
    )
    assert np.isnan(spread.loc[("base", "spatial"), "rmse_seed_sd"])
    folds = res.summary(pooled=False)
    assert folds.loc[("net", "random"), "n_folds"] == 3
    sc = res.scores[(res.scores.model == "net") & (res.scores.split == "random")]
    rmse = sc[sc.metric == "rmse"].groupby("seed")["value"]
    assert folds.loc[("net", "random"), "rmse_mean"] == pytest.approx(rmse.mean().mean())
    assert folds.loc[("net", "random"), "rmse_sd"] == pytest.approx(rmse.std().mean())
    t = res.timing_table.set_index(["model", "split"])
    assert t.loc[("net", "random"), "n_seeds"] == 3 and t.loc[("base", "random"), "n_seeds"] == 1

    # fitted: last fold of the first seed; test_index as before
    assert res.fitted[("net", "random")].seed == 0
    assert np.array_equal(res.test_index[("net", "random")], splits["random"][-1][1])
    assert res.meta["seeds"] == [0, 1, 2] and res.meta["repeated_over_seeds"] == ["net"]


def test_seeds_none_is_the_single_run_of_before(ds, splits):
    res = cross_validate(MODELS, ds, splits, progress=False)
    assert res.seeds_of("net") == [7]  # the estimator's own seed
    # the same fits by hand, as cross_validate did before seeds existed
    y = ds["target"].values
    for name, est in MODELS.items():
        for label, folds in splits.items():
            got = res.predictions[
                (res.predictions.model == name) & (res.predictions.split == label)
            ]
            expect = []
            for tr, te in folds:
                model = clone(est).fit(ds.isel(sample=tr))
                expect.append(model.predict(ds.isel(sample=te)))
            assert np.array_equal(got["predicted"].to_numpy(), np.concatenate(expect))
            pooled = metrics_table(y[got["sample"]], np.concatenate(expect))
            row = res.summary().loc[(name, label)]
            assert all(row[m] == pooled[m] for m in METRICS)  # bit-identical
    assert res.meta["seeds"] is None
    assert len(res.convergence) == 2 * 3  # one network stage per split and fold


def test_seed_arguments_are_checked(ds, splits):
    for bad in ([], [0, 0], [0.5], "012", [True]):
        with pytest.raises(ParameterError, match="seed"):
            cross_validate(MODELS, ds, splits, seeds=bad, progress=False)
    with pytest.raises(ParameterError, match="n_jobs"):
        cross_validate(MODELS, ds, splits, n_jobs=0, progress=False)


# -- workers ---------------------------------------------------------------------------------


def test_two_workers_give_the_same_result(ds, splits, repeated):
    models = {**MODELS, "two-stage": FakeNet(stages=("teacher", "student"))}
    serial = cross_validate(models, ds, splits, seeds=[0, 1, 2], progress=False)
    parallel = cross_validate(models, ds, splits, seeds=[0, 1, 2], n_jobs=2, progress=True)
    for name in ("predictions", "scores", "convergence"):
        pd.testing.assert_frame_equal(
            getattr(parallel, name), getattr(serial, name), check_exact=True
        )
    pd.testing.assert_frame_equal(parallel.summary(), serial.summary(), check_exact=True)
    pd.testing.assert_frame_equal(
        serial.predictions[: len(repeated.predictions) // 2],
        repeated.predictions[: len(repeated.predictions) // 2],
    )
    assert list(parallel.histories) == list(serial.histories)
    assert parallel.histories == serial.histories
    assert set(parallel.fitted) == set(serial.fitted)
    for key, model in serial.fitted.items():
        assert np.array_equal(model.predict(ds), parallel.fitted[key].predict(ds))
    assert list(parallel.timing_table.columns) == list(serial.timing_table.columns)


def test_an_error_in_a_worker_keeps_its_type_and_message(ds, splits):
    n_train = len(splits["random"][0][0])
    models = {"bad": FailingNet(min_rows=n_train + 1)}
    with pytest.raises(ParameterError, match=r"only \d+ rows, min_rows is") as info:
        cross_validate(models, ds, splits, n_jobs=2, progress=False)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "worker" in notes and "bad / random" in notes and "n_jobs=1" in notes
    assert info.value.__cause__ is None
    assert len(traceback.extract_tb(info.value.__traceback__)) < 8  # no remote traceback
    with pytest.raises(ParameterError, match="min_rows") as serial:
        cross_validate(models, ds, splits, progress=False)
    assert "bad / random / seed 0 / fold 1/3" in " ".join(serial.value.__notes__)


# -- convergence -----------------------------------------------------------------------------


def test_convergence_table_and_networks_record(ds, splits):
    models = {
        "net": FakeNet(bad_seed=1),
        "two-stage": FakeNet(stages=("teacher", "student")),
        "base": SeededBaseline(),
    }
    res = cross_validate(models, ds, splits, seeds=[0, 1], progress=False)
    c = res.convergence
    assert list(c.columns) == list(NETWORK_RECORD_KEYS)
    assert len(c) == 2 * 2 * 3 + 2 * 2 * 3 * 2  # net + two stages, per split, seed and fold
    assert set(c.loc[c.model == "two-stage", "stage"]) == {"teacher", "student"}
    assert len(res.histories) == len(c)
    key = ("two-stage", "spatial", 1, 2, "teacher")
    assert isinstance(res.histories[key], FakeHistory)
    assert c.set_index(["model", "split", "seed", "fold", "stage"]).loc[key, "epochs_run"] == 5
    assert not res.converged("net") and not res.converged("net", "random")
    assert res.converged("two-stage") and res.converged("two-stage", "spatial")
    assert res.converged("base")  # nothing to converge
    with pytest.raises(ParameterError, match="no model 'nope'"):
        res.converged("nope")
    with pytest.raises(ParameterError, match="no split"):
        res.converged("net", "temporal")
    record = res.networks_record()
    assert len(record) == len(c)
    assert all(list(r) == list(NETWORK_RECORD_KEYS) for r in record)
    bad = [r for r in record if r["model"] == "net" and r["seed"] == 1]
    assert bad and all(r["converged"] is False and r["reason"] == "still improving" for r in bad)
    json.dumps(record, allow_nan=False)  # plain JSON, no numpy types
    assert set(CONVERGENCE_KEYS) <= set(record[0])


def test_histories_without_convergence_method_count_as_not_converged(ds):
    class Plain(FakeNet):
        def training_histories(self) -> dict:
            h = self.history_["network"]
            return {"network": {"epoch": h.epoch, "train_loss": h.train_loss, "val_loss": []}}

    res = cross_validate({"plain": Plain()}, ds, {"r": random_kfold(ds, 2)}, progress=False)
    assert not res.converged("plain")
    assert res.networks_record()[0]["epochs_run"] == 5


# -- out-of-fold arrays ----------------------------------------------------------------------


def test_oof_is_nan_where_a_sample_was_not_tested(ds):
    n = ds.sizes["sample"]
    part = {"part": [(np.arange(0, 20), np.arange(20, 30))]}  # samples 30.. never tested
    res = cross_validate({"net": FakeNet()}, ds, part, seeds=[0, 1], progress=False)
    oof = res.oof("net", "part")
    assert oof.shape == (2, n)
    assert np.isnan(oof[:, :20]).all() and np.isnan(oof[:, 30:]).all()
    assert not np.isnan(oof[:, 20:30]).any()
    assert np.isnan(res.observed()[30:]).all()
    twice = {
        "twice": [(np.arange(0, 20), np.arange(20, 30)), (np.arange(0, 10), np.arange(25, 36))]
    }
    res2 = cross_validate({"net": FakeNet()}, ds, twice, progress=False)
    with pytest.raises(SplitError, match="more than one fold"):
        res2.oof("net", "twice")
    with pytest.raises(ParameterError, match="no split"):
        res.oof("net", "random")


# -- log1p: the lab-target protocol and the transformed scale ---------------------------------


def test_log1p_target_passes_the_transform_to_auxiliary_labels(ds):
    net = LabNet()
    wrapped = Log1pTarget(net).fit(ds)
    assert wrapped.estimator_.lab_transform_seen_ == "log1p"
    assert net.lab_target_transform == "none"  # the wrapped estimator is not modified
    splits = {"r": random_kfold(ds, 2)}
    res = cross_validate({"lab": net}, ds, splits, target_transform="log1p", progress=False)
    assert res.fitted[("lab", "r")].estimator_.lab_target_transform == "log1p"
    plain = cross_validate({"lab": net}, ds, splits, progress=False)
    assert plain.fitted[("lab", "r")].lab_transform_seen_ == "none"
    assert Log1pTarget(FakeNet()).fit(ds).estimator_.seed == 0  # no such parameter: untouched


def test_metrics_on_the_log1p_scale(ds, splits):
    res = cross_validate(MODELS, ds, splits, target_transform="log1p", progress=False)
    p = res.predictions
    g = p[(p.model == "net") & (p.split == "spatial")]
    expect = metrics_table(np.log1p(g["observed"]), np.log1p(g["predicted"]))
    log_summary = res.summary(scale="log1p")
    assert list(log_summary.columns) == [*METRICS, "n"]
    for m in METRICS:
        assert log_summary.loc[("net", "spatial"), m] == pytest.approx(expect[m])
    assert (
        log_summary.loc[("net", "spatial"), "rmse"] < res.summary().loc[("net", "spatial"), "rmse"]
    )
    folds = res.summary(pooled=False, scale="log1p")
    assert folds.loc[("net", "spatial"), "n_folds"] == 3
    assert "±" in res.summary_text(scale="log1p").iloc[0, 0]
    assert "summary_pooled_log1p" in res.to_records()
    assert (
        "summary_pooled_log1p"
        not in cross_validate(MODELS, ds, splits, progress=False).to_records()
    )
    with pytest.raises(ParameterError, match="scale"):
        res.summary(scale="sqrt")
    shifted = CVResult(
        scores=res.scores,
        predictions=p.assign(predicted=p["predicted"] - 100),
        timing_table=res.timing_table,
    )
    with pytest.raises(ParameterError, match=r"> -1"):
        shifted.summary(scale="log1p")


# -- JSON ------------------------------------------------------------------------------------


class ScoringNet(FakeNet):
    """A FakeNet whose "teacher" stage scores itself on what it was not trained on: its score
    is the number of training rows, so each fold's row can be checked."""

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed, stages=("teacher", "student"))

    def fit(self, ds: xr.Dataset, y=None) -> ScoringNet:
        super().fit(ds, y)
        self.n_train_ = int(ds.sizes["sample"])
        return self

    def held_out_stage_scores(self) -> dict:
        return {"teacher": {"r2": 0.5 + self.seed, "n": float(self.n_train_)}}


def test_stage_scores_every_fold_and_seed_in_workers_and_json(ds, splits, tmp_path):
    models = {"scoring": ScoringNet(), "net": FakeNet()}
    serial = cross_validate(models, ds, splits, seeds=[0, 1], progress=False)
    t = serial.stage_scores
    assert list(t.columns) == ["model", "split", "seed", "fold", "stage", "r2", "n"]
    assert len(t) == 2 * 2 * 3 and set(t["model"]) == {"scoring"}  # per split, seed and fold
    assert set(t["stage"]) == {"teacher"}
    np.testing.assert_array_equal(t["r2"], t["seed"] + 0.5)
    train_sizes = {
        (label, k): len(tr) for label, folds in splits.items() for k, (tr, _) in enumerate(folds)
    }
    assert all(r.n == train_sizes[(r.split, r.fold)] for r in t.itertuples(index=False))
    parallel = cross_validate(models, ds, splits, seeds=[0, 1], n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(parallel.stage_scores, t, check_exact=True)
    back = CVResult.from_json(serial.to_json(tmp_path / "cv.json"))
    pd.testing.assert_frame_equal(back.stage_scores, t, check_dtype=False)
    none = cross_validate({"net": FakeNet()}, ds, splits, progress=False)
    assert none.stage_scores.empty and "stage" in none.stage_scores.columns


def test_json_round_trip_keeps_seeds_convergence_and_histories(repeated, tmp_path):
    path = tmp_path / "cv.json"
    repeated.to_json(path)
    back = CVResult.from_json(path)
    pd.testing.assert_frame_equal(back.predictions, repeated.predictions)
    pd.testing.assert_frame_equal(back.scores, repeated.scores)
    pd.testing.assert_frame_equal(back.summary(), repeated.summary())
    pd.testing.assert_frame_equal(back.summary_seeds(), repeated.summary_seeds())
    assert back.networks_record() == repeated.networks_record()
    assert back.converged("net") == repeated.converged("net")
    assert np.array_equal(back.oof("net", "spatial"), repeated.oof("net", "spatial"))
    assert back.seeds_of("net") == [0, 1, 2]
    key = ("net", "spatial", 2, 1, "network")
    assert back.histories[key]["train_loss"] == repeated.histories[key].train_loss
    assert back.meta == repeated.meta
    slim = json.loads(repeated.to_json(histories=False))
    assert "histories" not in slim and len(slim["convergence"]) == len(repeated.convergence)


def test_tables_without_a_seed_column_still_load():
    old = {
        "scores": [{"model": "a", "split": "r", "fold": 0, "metric": "rmse", "value": 1.0}],
        "predictions": [
            {
                "model": "a",
                "split": "r",
                "fold": 0,
                "sample": i,
                "group": "g",
                "observed": float(i),
                "predicted": float(i) + 1,
            }
            for i in range(4)
        ],
        "timings": [{"model": "a", "split": "r", "n_folds": 1, "fit_s": 0.0, "predict_s": 0.0}],
    }
    res = CVResult.from_json(json.dumps(old))
    assert res.seeds_of("a") == [-1]
    assert res.oof("a", "r").shape == (1, 4)
    assert res.summary().loc[("a", "r"), "bias"] == pytest.approx(1.0)
    assert res.converged("a") and res.networks_record() == []
