"""Dissimilarity index and area of applicability (Meyer & Pebesma 2021) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from soilbook import applicability as A
from soilbook.errors import ParameterError


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    X = rng.normal([0, 10, 100], [1, 2, 30], (120, 3))
    folds = np.repeat(np.arange(4), 30)
    return X, folds


def _scaled(X, Xt, w):
    return (X - Xt.mean(0)) / Xt.std(0, ddof=1) * w


def test_di_matches_brute_force_and_chunks(train, monkeypatch):
    X, _ = train
    w = np.array([0.5, 2.0, 1.0])
    new = np.random.default_rng(1).normal([0, 10, 100], [2, 4, 60], (40, 3))
    st, sn = _scaled(X, X, w), _scaled(new, X, w)
    expected = cdist(sn, st).min(axis=1) / pdist(st).mean()
    np.testing.assert_allclose(A.dissimilarity_index(X, new, weights=w), expected, rtol=1e-9)
    monkeypatch.setattr(A, "_CHUNK_BYTES", 100)  # one row per chunk
    np.testing.assert_allclose(A.dissimilarity_index(X, new, weights=w), expected, rtol=1e-9)


def test_threshold_is_the_upper_whisker_of_the_cross_fold_training_di(train):
    X, folds = train
    st = _scaled(X, X, np.ones(3))
    d = cdist(st, st)
    d[folds[:, None] == folds[None, :]] = np.inf
    tdi = d.min(axis=1) / pdist(st).mean()
    np.testing.assert_allclose(A.training_di(X, folds=folds), tdi, rtol=1e-9)
    q1, q3 = np.quantile(tdi, [0.25, 0.75])
    expected = tdi[tdi <= q3 + 1.5 * (q3 - q1)].max()
    assert A.aoa_threshold(X, folds=folds) == pytest.approx(expected)
    # the same folds given as CV splits
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(4)]
    assert A.aoa_threshold(X, folds=splits) == pytest.approx(expected)
    # no folds: leave-one-out (nearest other training point), never larger than cross-fold
    assert np.all(A.training_di(X) <= tdi + 1e-12)
    np.testing.assert_allclose(A.dissimilarity_index(X, None, folds=folds), tdi, rtol=1e-9)


def test_far_points_are_outside_and_training_points_inside(train):
    X, folds = train
    far = np.array([[8.0, 10.0, 100.0], [0.0, 40.0, 500.0]])
    di, inside = A.area_of_applicability(X, np.vstack([X, far]), folds=folds)
    assert np.all(di[:120] < 1e-6) and inside[:120].all()
    assert not inside[120:].any() and np.all(di[120:] > A.aoa_threshold(X, folds=folds))
    # a zero (or negative) weight ignores a predictor: far in it alone is still inside
    _, inside_w = A.area_of_applicability(X, far[:1], weights=[-0.3, 1.0, 1.0], folds=folds)
    assert inside_w.all()
    # NaN rows: DI NaN, not inside; a given threshold is used as is
    di, inside = A.area_of_applicability(X, [[np.nan, 1, 1], [0, 10, 100]], threshold=0.5)
    assert np.isnan(di[0]) and inside.tolist() == [False, True]


def test_applicability_input_errors(train):
    X, _ = train
    with pytest.raises(ParameterError, match="same columns"):
        A.dissimilarity_index(X, X[:, :2])
    with pytest.raises(ParameterError, match=r"one\s+finite importance"):
        A.dissimilarity_index(X, X, weights=[1.0, 2.0])
    with pytest.raises(ParameterError, match="every weight"):
        A.dissimilarity_index(X, X, weights=[0.0, -1.0, 0.0])
    with pytest.raises(ParameterError, match="one fold"):
        A.aoa_threshold(X, folds=np.zeros(120))
    with pytest.raises(ParameterError, match="fold label per training row"):
        A.aoa_threshold(X, folds=np.zeros(7))
    with pytest.raises(ParameterError, match="NaN"):
        A.dissimilarity_index(np.vstack([X, [np.nan, 0, 0]]), X)
    np.testing.assert_allclose(A.importance_weights([2.0, -1.0, 2.0]), [0.5, 0.0, 0.5])
