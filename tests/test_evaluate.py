"""Metrics, splitters and the cross-validation harness (soilbook.evaluate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from factories import random_sample_set
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.metrics import mean_absolute_error, r2_score

from soilbook.errors import ParameterError
from soilbook.evaluate import (
    METRICS,
    NO_SEED,
    CVResult,
    LabelFraction,
    Log1pTarget,
    SplitError,
    bias,
    ccc,
    cross_validate,
    group_kfold,
    label_fraction_split,
    label_subset,
    mae,
    make_splits,
    metrics_table,
    paper_comparison,
    r2,
    random_kfold,
    rmse,
    rpiq,
)
from soilbook.geo import spatial_blocks


def make_ds(n: int = 60, n_groups: int = 12, seed: int = 0) -> xr.Dataset:
    """A small schema-valid sample set: 2 dates × 3 bands + 3 covariates, positive target."""
    return random_sample_set(
        n,
        seed=seed,
        target=lambda rng, refl, cov: np.exp(
            0.5 * cov[:, 0] + 2 * refl[:, 0, 1] + rng.normal(0, 0.2, n)
        ),
        sample_ids=np.arange(n) * 10,  # ids that differ from positions on purpose
        dates=["2020-05-01", "2020-08-01"],
        bands=["B4", "B8", "B11"],
        features={"elevation": "terrain", "ndvi": "vegetation", "noise": "other"},
        groups=[f"blk{i % n_groups:02d}" for i in range(n)],
        target_name="salt",
        group_kind="spatial block",
    )


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def test_perfect_prediction() -> None:
    y = np.array([1.0, 2.0, 4.0, 8.0, 9.0])
    m = metrics_table(y, y)
    assert m["rmse"] == 0.0 and m["mae"] == 0.0 and m["bias"] == 0.0
    assert m["r2"] == 1.0 and m["ccc"] == pytest.approx(1.0)
    assert m["rpiq"] == np.inf
    assert m["n"] == 5
    assert tuple(k for k in m if k != "n") == METRICS


def test_constant_bias_by_hand() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, population var 2, SST 10, Q1 2, Q3 4
    p = y + 2.0
    assert rmse(y, p) == pytest.approx(2.0)
    assert mae(y, p) == pytest.approx(2.0)
    assert bias(y, p) == pytest.approx(2.0)
    assert bias(y, y - 1.0) == pytest.approx(-1.0)
    assert r2(y, p) == pytest.approx(1 - 5 * 4 / 10)  # -1
    assert ccc(y, p) == pytest.approx(2 * 2 / (2 + 2 + 2**2))  # 0.5
    assert rpiq(y, p) == pytest.approx((4 - 2) / 2.0)  # 1.0


def test_ccc_and_rpiq_known_values() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert ccc(y, np.array([2.0, 2.0, 2.0])) == pytest.approx(0.0)  # no covariance
    assert ccc(y, -y + 4) == pytest.approx(-1.0)  # perfect discordance, same mean and var
    # scaled predictions: correlation 1 but CCC < 1
    assert ccc(y, 2 * y - 2) == pytest.approx(2 * (4 / 3) / (2 / 3 + 8 / 3 + 0))
    y9 = np.arange(1.0, 10.0)  # Q1 3, Q3 7
    assert rpiq(y9, y9 + 0.5) == pytest.approx(4 / 0.5)


def test_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 3.0, 200)
    p = y + rng.normal(0, 2, 200)
    assert r2(y, p) == pytest.approx(r2_score(y, p))
    assert mae(y, p) == pytest.approx(mean_absolute_error(y, p))
    assert rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))


def test_metric_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        rmse([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        rmse([1, 2, np.nan], [1, 2, 3])
    assert np.isnan(r2([2, 2, 2], [1, 2, 3]))


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


def _check_partition(folds: list, n: int) -> None:
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(n))  # every sample tested exactly once
    for tr, te in folds:
        assert np.intersect1d(tr, te).size == 0
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))
        assert tr.dtype.kind == "i" and te.dtype.kind == "i"


def _seeded_folds(splitter, ds, n_splits: int, seed: int) -> list:
    """``splitter(ds, n_splits, seed=seed)``, checked: a partition of the samples, the same folds
    again for the same seed and other folds for ``seed + 1``."""
    folds = splitter(ds, n_splits, seed=seed)
    _check_partition(folds, ds.sizes["sample"])
    again = splitter(ds, n_splits, seed=seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = splitter(ds, n_splits, seed=seed + 1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    return folds


def _size_spread(folds: list) -> int:
    sizes = [te.size for _, te in folds]
    return max(sizes) - min(sizes)


def test_random_kfold_partitions_and_is_seeded() -> None:
    folds = _seeded_folds(random_kfold, make_ds(n=53), 5, seed=3)
    assert len(folds) == 5
    assert _size_spread(folds) <= 1


def test_group_kfold_never_shares_a_group() -> None:
    ds = make_ds(n=97, n_groups=13)
    groups = ds["group"].values
    folds = _seeded_folds(group_kfold, ds, 4, seed=0)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    # balanced in samples: 13 groups of 7-8 samples over 4 folds
    assert _size_spread(folds) <= 8


def test_group_kfold_error_when_too_few_groups() -> None:
    ds = make_ds(n=30, n_groups=3)
    with pytest.raises(SplitError, match=r"3 groups.*What to do: use n_splits <= 3"):
        group_kfold(ds, 5)
    with pytest.raises(SplitError, match="n_splits"):
        random_kfold(ds, 1)


def test_group_kfold_on_spatial_blocks() -> None:
    x = np.array([0.0, 999.0, 1000.0, 2500.0, 100.0])
    y = np.array([0.0, 0.0, 0.0, 0.0, 1500.0])
    labels = spatial_blocks(x, y, 1000.0)
    assert labels.tolist() == ["b000_000", "b000_000", "b001_000", "b002_000", "b000_001"]
    folds = group_kfold(labels, 2, seed=0)
    _check_partition(folds, 5)


def test_make_splits_labels() -> None:
    ds = make_ds()
    splits = make_splits(ds, ("random", "spatial"), n_splits=4, seed=0)
    assert list(splits) == ["random", "spatial"]
    assert "spatial block" in splits.descriptions["spatial"]
    assert "12 groups" in splits.descriptions["spatial"]
    assert len(splits["spatial"]) == 4
    assert list(make_splits(ds, ("group",), 3)) == ["group"]
    with pytest.raises(SplitError, match="unknown split kind"):
        make_splits(ds, ("temporal",))


# --------------------------------------------------------------------------------------------
# cross-validation
# --------------------------------------------------------------------------------------------

#: What each spy saw, by tag (clone() deep-copies parameters, so the log lives outside).
SPY_LOG: dict[str, list[dict]] = {}


class SpyRegressor(RegressorMixin, BaseEstimator):
    """Predicts the mean training target and records the rows it was fitted on / asked about."""

    def __init__(self, tag: str = "spy", offset: float = 0.0):
        self.tag = tag
        self.offset = offset

    def fit(self, ds: xr.Dataset, y=None) -> SpyRegressor:
        self.mean_ = float(ds["target"].values.mean()) + self.offset
        SPY_LOG.setdefault(self.tag, []).append(
            {
                "event": "fit",
                "ids": ds["sample"].values.copy(),
                "target": ds["target"].values.copy(),
            }
        )
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        SPY_LOG.setdefault(self.tag, []).append(
            {"event": "predict", "ids": ds["sample"].values.copy()}
        )
        return np.full(ds.sizes["sample"], self.mean_)


def test_cross_validate_never_fits_on_test_rows() -> None:
    ds = make_ds(n=60)
    SPY_LOG.clear()
    splits = make_splits(ds, ("random", "spatial"), n_splits=5, seed=0)
    spy = SpyRegressor(tag="a")
    res = cross_validate(
        {"spy": spy, "spy+1": SpyRegressor(tag="b", offset=1.0)}, ds, splits, progress=False
    )
    ids = ds["sample"].values
    log = SPY_LOG["a"]
    fits = [e for e in log if e["event"] == "fit"]
    preds = [e for e in log if e["event"] == "predict"]
    folds = splits["random"] + splits["spatial"]
    assert len(fits) == len(preds) == len(folds) == 10
    for fit, pred, (tr, te) in zip(fits, preds, folds, strict=True):
        assert np.array_equal(fit["ids"], ids[tr])
        assert np.array_equal(pred["ids"], ids[te])
        assert not set(fit["ids"]) & set(pred["ids"])
    assert not hasattr(spy, "mean_")  # the original estimator is never fitted

    p = res.predictions
    assert set(p.columns) >= {"model", "split", "fold", "sample", "group", "observed", "predicted"}
    one = p[(p.model == "spy") & (p.split == "spatial")]
    assert np.array_equal(np.sort(one["sample"].to_numpy()), np.arange(60))
    assert np.allclose(one["observed"], ds["target"].values[one["sample"]])
    assert (one["group"].to_numpy() == ds["group"].values[one["sample"]]).all()
    for k, (tr, _) in enumerate(splits["spatial"]):
        assert np.allclose(one[one.fold == k]["predicted"], ds["target"].values[tr].mean())

    # fitted estimator of the last fold and its held-out rows
    last_tr, last_te = splits["random"][-1]
    assert res.fitted[("spy", "random")].mean_ == pytest.approx(ds["target"].values[last_tr].mean())
    assert np.array_equal(res.test_index[("spy", "random")], last_te)
    assert res.held_out(ds, "spy", "random").sizes["sample"] == last_te.size


def test_cv_scores_and_summaries() -> None:
    ds = make_ds(n=60)
    splits = make_splits(ds, ("random", "spatial"), n_splits=3, seed=1)
    res = cross_validate(
        {"spy": SpyRegressor(tag="c"), "spy+1": SpyRegressor(tag="d", offset=1.0)},
        ds,
        splits,
        progress=False,
    )
    sc = res.scores
    assert list(sc.columns) == ["model", "split", "seed", "fold", "metric", "value"]
    assert (sc["seed"] == NO_SEED).all()  # SpyRegressor has no seed parameter
    assert len(sc) == 2 * 2 * 3 * (len(METRICS) + 1)
    pooled = res.summary()
    assert list(pooled.index.names) == ["model", "split"]
    assert list(pooled.columns) == [*METRICS, "n"]
    g = res.predictions[(res.predictions.model == "spy+1") & (res.predictions.split == "random")]
    assert pooled.loc[("spy+1", "random"), "rmse"] == pytest.approx(rmse(g.observed, g.predicted))
    assert pooled.loc[("spy+1", "random"), "n"] == 60
    # the offset model is biased by exactly +1 relative to the plain one
    assert pooled.loc[("spy+1", "random"), "bias"] - pooled.loc[
        ("spy", "random"), "bias"
    ] == pytest.approx(1.0)
    folds = res.summary(pooled=False)
    per_fold = sc[(sc.model == "spy") & (sc.split == "spatial") & (sc.metric == "rmse")]["value"]
    assert folds.loc[("spy", "spatial"), "rmse_mean"] == pytest.approx(per_fold.mean())
    assert folds.loc[("spy", "spatial"), "rmse_sd"] == pytest.approx(per_fold.std())
    assert "±" in res.summary_text().iloc[0, 0]
    assert set(res.timing_table.columns) >= {"model", "split", "n_folds", "fit_s", "predict_s"}
    assert set(res.timings) == {(m, s) for m in ("spy", "spy+1") for s in ("random", "spatial")}
    assert all(t >= 0 for t in res.timings.values())
    assert pd.Series(res.timings).index.nlevels == 2
    assert res.meta["units"] == "g/kg" and res.meta["simulated"] is True
    assert "spatial block" in res.meta["split_descriptions"]["spatial"]


def test_cv_json_round_trip(tmp_path) -> None:
    ds = make_ds(n=40)
    res = cross_validate(
        {"spy": SpyRegressor(tag="e")}, ds, make_splits(ds, n_splits=4), progress=False
    )
    path = tmp_path / "metrics.json"
    text = res.to_json(path)
    assert path.read_text() == text
    back = CVResult.from_json(path)
    pd.testing.assert_frame_equal(back.summary(), res.summary())
    pd.testing.assert_frame_equal(back.summary(pooled=False), res.summary(pooled=False))
    assert back.meta == res.meta
    assert np.array_equal(back.test_index[("spy", "spatial")], res.test_index[("spy", "spatial")])
    assert CVResult.from_json(text).scores.shape == res.scores.shape


def test_log1p_round_trip() -> None:
    ds = make_ds(n=40)
    SPY_LOG.clear()
    splits = {"random": random_kfold(ds, 4, seed=0)}
    res = cross_validate(
        {"spy": SpyRegressor(tag="log")}, ds, splits, target_transform="log1p", progress=False
    )
    y = ds["target"].values
    fits = [e for e in SPY_LOG["log"] if e["event"] == "fit"]
    for fit, (tr, _) in zip(fits, splits["random"], strict=True):
        assert np.allclose(fit["target"], np.log1p(y[tr]))  # the model saw log1p(target)
    p = res.predictions
    for k, (tr, _) in enumerate(splits["random"]):
        expect = np.expm1(np.log1p(y[tr]).mean())  # back-transformed, in g/kg
        assert np.allclose(p[p.fold == k]["predicted"], expect)
    assert np.allclose(p["observed"], y[p["sample"]])  # scored against the untransformed target
    assert res.meta["target_transform"] == "log1p"
    wrapped = res.fitted[("spy", "random")]
    assert isinstance(wrapped, Log1pTarget)
    bad = ds.copy()
    bad["target"] = ("sample", np.full(40, -2.0), ds["target"].attrs)
    with pytest.raises(ValueError, match="log1p needs target > -1"):
        Log1pTarget(SpyRegressor()).fit(bad)
    assert clone(Log1pTarget(SpyRegressor(tag="z"))).estimator.tag == "z"
    with pytest.raises(ParameterError, match="target_transform"):
        cross_validate({"spy": SpyRegressor()}, ds, splits, target_transform="sqrt")
    with pytest.raises(ParameterError, match="no estimators given"):
        cross_validate({}, ds, splits, progress=False)


def test_cross_validate_rejects_leaky_splits() -> None:
    ds = make_ds(n=20)
    leaky = {"bad": [(np.arange(0, 15), np.arange(10, 20))]}
    with pytest.raises(SplitError, match="both the training and the test set"):
        cross_validate({"spy": SpyRegressor()}, ds, leaky, progress=False)
    with pytest.raises(SplitError, match="outside"):
        cross_validate(
            {"spy": SpyRegressor()}, ds, {"bad": [(np.arange(5), np.arange(5, 25))]}, progress=False
        )


def test_paper_comparison() -> None:
    ds = make_ds(n=40)
    res = cross_validate(
        {"spy": SpyRegressor(tag="f")}, ds, make_splits(ds, n_splits=4), progress=False
    )
    table = paper_comparison(
        res.summary(), {"rmse": 3.6, "mae": 1.7, "r2": 0.68}, model="spy", split="spatial"
    )
    assert list(table.index) == ["rmse", "mae", "r2"]
    assert list(table.columns) == ["paper", "spy / spatial", "difference", "units"]
    assert table.loc["rmse", "difference"] == pytest.approx(
        res.summary().loc[("spy", "spatial"), "rmse"] - 3.6
    )
    both = paper_comparison(res.summary(), {"r2": 0.68})
    assert {"spy / random", "spy / spatial"} <= set(both.columns)
    with pytest.raises(ValueError, match="not in the summary"):
        paper_comparison(res.summary(), {"nse": 0.5})


def test_make_splits_buffer_drops_training_samples_near_test_blocks():
    ds = make_ds(n=120, n_groups=12)
    block = np.array([int(g[3:]) for g in ds["group"].values])
    ds = ds.assign_coords(  # blocks 1 km apart along x, samples within 400 m of their centre
        x_m=("sample", block * 1000.0 + np.linspace(-400, 400, 120)),
        y_m=("sample", np.zeros(120)),
    )
    plain = make_splits(ds, kinds=("spatial",), n_splits=4, seed=0)
    buffered = make_splits(ds, kinds=("spatial",), n_splits=4, seed=0, buffer_m=700.0)
    for (tr0, te0), (tr1, te1) in zip(plain["spatial"], buffered["spatial"], strict=True):
        np.testing.assert_array_equal(te0, te1)
        assert set(tr1) <= set(tr0) and len(tr1) < len(tr0)
    assert "700 m" in buffered.descriptions["spatial"]
    with pytest.raises(ParameterError, match="buffer_m"):
        make_splits(ds, kinds=("spatial",), buffer_m=-1)


def test_label_fraction_split_is_nested_and_keeps_the_test_folds():
    folds = random_kfold(200, 5, seed=1)
    previous = None
    for f in (0.05, 0.1, 0.25, 0.5, 1.0):
        sub = label_fraction_split(folds, f, seed=3, min_train=5)
        for k, ((tr, te), (full_tr, full_te)) in enumerate(zip(sub, folds, strict=True)):
            np.testing.assert_array_equal(te, full_te)  # scored on the same rows
            assert len(tr) == int(np.ceil(f * len(full_tr))) and set(tr) <= set(full_tr)
            if previous is not None:
                assert set(previous[k][0]) <= set(tr)  # nested: 5 % inside 10 % ...
        previous = sub
    np.testing.assert_array_equal(previous[0][0], folds[0][0])  # 100 % = all rows
    other = label_fraction_split(folds, 0.25, seed=4, min_train=5)
    assert not np.array_equal(other[0][0], label_fraction_split(folds, 0.25, seed=3)[0][0])
    for bad in (0.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ParameterError, match=r"\(0, 1\]"):
            label_fraction_split(folds, bad)
    with pytest.raises(SplitError, match="fewer than 10"):
        label_fraction_split(folds, 0.05)


def test_label_subset_and_label_fraction_use_the_same_rows():
    small, large = label_subset(200, 0.1, 3), label_subset(200, 0.5, 3)
    assert small.size == 20 and large.size == 100 and np.isin(small, large).all()
    np.testing.assert_array_equal(label_subset(50, 1.0, 0), np.arange(50))
    with pytest.raises(ParameterError):
        label_subset(50, 0.0, 0)
    ds = make_ds(n=60)
    from soilbook.baselines import RandomForestBaseline

    est = LabelFraction(RandomForestBaseline(n_estimators=20), fraction=0.5, seed=2).fit(ds)
    np.testing.assert_array_equal(est.label_rows_, label_subset(60, 0.5, 2))
    alone = RandomForestBaseline(n_estimators=20).fit(ds.isel(sample=est.label_rows_))
    np.testing.assert_allclose(est.predict(ds), alone.predict(ds))
    res = cross_validate({"rf half": est}, ds, {"random": random_kfold(ds, 3)}, progress=False)
    assert res.summary().loc[("rf half", "random"), "n"] == 60  # scored on every test row


def test_ubrmse_removes_the_bias_pooled_and_per_station():
    from soilbook.evaluate import metrics_table, ubrmse, ubrmse_per_group

    t = np.array([10.0, 20.0, 30.0, 40.0])
    assert ubrmse(t, t + 5.0) == pytest.approx(0.0)  # a pure offset is all bias
    p = t + np.array([1.0, -1.0, 3.0, 5.0])
    rmse_, bias_ = np.sqrt(np.mean((p - t) ** 2)), np.mean(p - t)
    assert ubrmse(t, p) == pytest.approx(np.sqrt(rmse_**2 - bias_**2))
    # per station: station a has errors (1, -1) -> 1, station b (3, 5) -> 1; pooled is larger
    assert ubrmse_per_group(t, p, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert ubrmse(t, p) > 1.0
    assert np.isnan(ubrmse_per_group(t, p, ["a", "b", "c", "d"]))  # one reading each: none kept
    assert metrics_table(t, p, metrics=("rmse", "ubrmse"))["ubrmse"] == pytest.approx(ubrmse(t, p))
