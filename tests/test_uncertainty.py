"""Quantile regression forests against their definition, conformal intervals, coverage checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from soilbook import uncertainty as U
from soilbook.errors import ParameterError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (300, 3)).astype(np.float32)
    y = 2 * X[:, 0] + rng.normal(0, 0.2 + 0.8 * (X[:, 1] > 0), 300)  # noise depends on X1
    forest = RandomForestRegressor(40, min_samples_leaf=5, random_state=0).fit(X, y)
    return X, y, forest


def _brute_weights(forest, X_train, X):
    lt, ln = forest.apply(X_train), forest.apply(X)
    w = np.zeros((X.shape[0], X_train.shape[0]))
    for t in range(lt.shape[1]):
        same = ln[:, t, None] == lt[None, :, t]
        w += same / same.sum(axis=1, keepdims=True)
    return w / lt.shape[1]


def test_weights_and_quantiles_follow_meinshausen(data):
    X, y, forest = data
    Xn = np.random.default_rng(1).uniform(-1, 1, (50, 3)).astype(np.float32)
    qf = U.QuantileForest(forest, X, y)
    w = qf.weights(Xn)
    np.testing.assert_allclose(w, _brute_weights(forest, X, Xn), atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    q = qf.predict(Xn, (0.1, 0.5, 0.9))
    order = np.argsort(y)
    cdf = np.cumsum(w[:, order], axis=1)
    for j, qq in enumerate((0.1, 0.5, 0.9)):
        expected = y[order][np.argmax(cdf >= qq - 1e-12, axis=1)]
        np.testing.assert_array_equal(q[:, j], expected)
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
    # chunking does not change the result; the function form gives the same
    np.testing.assert_array_equal(qf.predict(Xn, (0.1, 0.5, 0.9), chunk_rows=7), q)
    np.testing.assert_array_equal(U.forest_quantiles(forest, X, y, Xn, (0.1, 0.5, 0.9)), q)


def test_quantile_forest_intervals_adapt_and_cover(data):
    X, y, forest = data
    rng = np.random.default_rng(5)
    Xt = rng.uniform(-1, 1, (400, 3)).astype(np.float32)
    yt = 2 * Xt[:, 0] + rng.normal(0, 0.2 + 0.8 * (Xt[:, 1] > 0), 400)
    q = U.forest_quantiles(forest, X, y, Xt, (0.05, 0.95))
    assert 0.8 <= U.coverage(yt, q[:, 0], q[:, 1]) <= 0.99
    width = q[:, 1] - q[:, 0]
    assert width[Xt[:, 1] > 0].mean() > 1.25 * width[Xt[:, 1] <= 0].mean()  # heteroscedastic


def test_quantiles_are_equivariant_under_log1p():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (120, 2)).astype(np.float32)
    y = np.expm1(X[:, 0] * 2 + rng.normal(0, 0.3, 120)).clip(0)
    forest = RandomForestRegressor(20, min_samples_leaf=3, random_state=0).fit(X, np.log1p(y))
    raw = U.forest_quantiles(forest, X, y, X[:10], (0.1, 0.5, 0.9))
    logq = U.forest_quantiles(forest, X, np.log1p(y), X[:10], (0.1, 0.5, 0.9))
    np.testing.assert_allclose(raw, np.expm1(logq), rtol=1e-10)


class _Baseline:
    """Duck-typed stand-in for RandomForestBaseline: transform(ds) and a forest in model_."""

    def __init__(self, forest):
        self.model_ = forest

    def transform(self, ds):
        return np.asarray(ds["X"], dtype=np.float32)


class _Wrapper:  # like Log1pTarget: the baseline in estimator_
    def __init__(self, inner):
        self.estimator_ = inner


def test_model_quantiles_with_duck_typed_models(data):
    X, y, forest = data
    train = {"X": X, "target": y}
    expected = U.forest_quantiles(forest, X, y, X[:5])
    got = U.model_quantiles(_Wrapper(_Baseline(forest)), train, {"X": X[:5]}, y_train=y)
    np.testing.assert_array_equal(got, expected)
    assert U.find_forest(_Baseline(forest))[0] is forest
    with pytest.raises(ParameterError, match="no fitted random forest"):
        U.find_forest(object())
    with pytest.raises(ParameterError, match="not a fitted tree ensemble"):
        U.QuantileForest(object(), X, y)


def test_model_quantiles_with_the_rf_baseline():
    from soilbook.baselines import RandomForestBaseline
    from tests.factories import random_sample_set

    ds = random_sample_set(
        60,
        seed=0,
        dates=["2021-05-01"],
        bands=["B4", "B8"],
        features={"elev": "terrain"},
        target=lambda rng, refl, cov: 2 + cov[:, 0] + rng.normal(0, 0.3, len(cov)),
        groups=[f"g{i % 6}" for i in range(60)],
    )
    rf = RandomForestBaseline(n_estimators=15, seed=0).fit(ds)
    q = U.model_quantiles(rf, ds, ds.isel(sample=slice(0, 8)), (0.05, 0.5, 0.95))
    assert q.shape == (8, 3) and np.all(q[:, 0] <= q[:, 2])
    assert np.all(np.isin(q, ds["target"].values))  # quantiles are observed training targets


def test_conformal_halfwidth_is_the_conformal_order_statistic():
    r = np.arange(1.0, 20.0) * np.where(np.arange(19) % 2, -1, 1)  # |r| = 1..19
    # n = 19, level 0.9: ceil(20 * 0.9) = 18th smallest |r|
    assert U.conformal_halfwidth(r, 0.9) == 18.0
    assert U.conformal_halfwidth(np.r_[r, np.nan], 0.5) == 10.0  # NaN ignored
    with pytest.warns(UserWarning, match="too few"):
        assert math.isinf(U.conformal_halfwidth(r[:5], 0.9))
    with pytest.raises(ParameterError, match="level"):
        U.conformal_halfwidth(r, 1.2)
    low, high = U.conformal_interval(np.array([1.0, 2.0]), r, 0.9)
    np.testing.assert_array_equal(low, [-17.0, -16.0])
    np.testing.assert_array_equal(high, [19.0, 20.0])


def test_conformal_interval_covers_exchangeable_data():
    rng = np.random.default_rng(0)
    residuals = rng.normal(0, 1, 3000)  # calibration set large enough for a tight test
    pred = rng.uniform(0, 10, 3000)
    y = pred + rng.normal(0, 1, 3000)
    low, high = U.conformal_interval(pred, residuals, 0.9)
    assert abs(U.coverage(y, low, high) - 0.9) < 0.03
    # log1p scale: asymmetric, widening with the prediction
    y_pos = np.expm1(np.log1p(pred) + rng.normal(0, 0.2, 3000))
    y_cal = np.expm1(np.log1p(pred) + rng.normal(0, 0.2, 3000))  # another draw at the same preds
    lr = U.oof_residuals(y_cal, pred, log1p=True)
    lo, hi = U.conformal_interval(pred, lr, 0.9, log1p=True)
    assert abs(U.coverage(y_pos, lo, hi) - 0.9) < 0.03
    w = hi - lo
    assert w[pred > 8].mean() > 2 * w[pred < 2].mean()


def test_oof_residuals_average_seeds_and_skip_unscored():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    oof = np.array([[1.5, np.nan, 2.0, 4.0], [0.5, np.nan, 4.0, 4.0]])
    np.testing.assert_allclose(U.oof_residuals(y, oof), [0.0, 0.0, 0.0])
    with pytest.raises(ParameterError, match="predictions"):
        U.oof_residuals(y, oof[:, :3])


def test_interval_checks():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    low, high = np.array([-1.0, 1.5, 1.0, 2.0]), np.array([1.0, 2.5, 3.0, 4.0])
    assert U.coverage(y, low, high) == 0.75
    assert U.interval_width(low, high) == 1.75
    # level 0.8 -> alpha 0.2: the miss of 0.5 below costs 2/0.2 * 0.5 = 5
    assert U.interval_score(y, low, high, 0.8) == pytest.approx((2 + 1 + 2 + 2 + 5) / 4)
    s = U.interval_summary(y, low, high, level=0.8)
    assert s["coverage"] == 0.75 and s["n"] == 4 and s["nominal"] == 0.8
    assert set(U.interval_summary(y, low, high)) == {"coverage", "mean_width", "median_width", "n"}
    assert U.coverage(np.r_[y, np.nan], np.r_[low, 0], np.r_[high, 1]) == 0.75
