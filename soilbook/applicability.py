"""Area of applicability: where in predictor space a model has seen enough data to be trusted.

Meyer & Pebesma (2021), *Methods Ecol. Evol.* 12:1620, as in R's CAST (``trainDI``, ``aoa``):

1. Standardise every predictor by the **training** mean and standard deviation (a constant
   training column keeps scale 1, as scikit-learn's ``StandardScaler`` does) and, optionally,
   multiply it by a weight, usually its importance to the model (negative importances, which
   permutation importance can give, count as 0).
2. The dissimilarity index of a point ``x`` is its distance to the nearest training point,
   divided by the mean distance between training points:
   $\\mathrm{DI}(x) = \\min_i \\lVert x - x_i \\rVert / \\bar d$.
3. The threshold comes from the training data themselves: each training point's DI to the
   nearest training point **in another cross-validation fold** (the situation the CV scores
   were measured in; without folds, to the nearest other training point), and the threshold
   is the upper whisker of those values — the largest training DI not above
   ``Q3 + 1.5·IQR`` (``boxplot.stats``, as CAST does; quantiles here are numpy's linear ones,
   not Tukey's hinges, a difference only in small samples).
4. A new point is inside the area of applicability when ``DI ≤ threshold``. A training point
   has DI 0 to itself and is always inside.

The cross-validation error is a fair estimate of the map error only inside the area of
applicability. Distances are Euclidean on all predictors; everything is chunked with numpy
(no n × n matrix): 25,600 pixels × 300 training points need a few MB at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from soilbook.errors import ParameterError

__all__ = [
    "aoa_threshold",
    "area_of_applicability",
    "dissimilarity_index",
    "importance_weights",
    "training_di",
]

#: Bytes of the temporary (chunk × n_train) distance block.
_CHUNK_BYTES = 2**24


def _table(X: Any, name: str) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ParameterError(f"{name} has shape {arr.shape}; expected (n_sample, n_feature).")
    return arr


class _Space:
    """The standardised, weighted predictor space of a training table."""

    def __init__(self, X_train: Any, weights: Any = None):
        X = _table(X_train, "X_train")
        if X.shape[0] < 2:
            raise ParameterError(
                f"X_train has {X.shape[0]} rows; the dissimilarity index needs at least 2."
            )
        if not np.all(np.isfinite(X)):
            raise ParameterError(
                "X_train contains NaN/inf; drop or impute those training rows first."
            )
        self.mean = X.mean(axis=0)
        sd = X.std(axis=0, ddof=1)
        self.sd = np.where(sd > 0, sd, 1.0)
        if weights is None:
            w = np.ones(X.shape[1])
        else:
            w = np.asarray(weights, dtype=np.float64).ravel()
            if w.size != X.shape[1] or not np.all(np.isfinite(w)):
                raise ParameterError(
                    f"weights has {w.size} values for {X.shape[1]} predictors (or NaN); give one "
                    "finite importance per column of X_train."
                )
            w = np.maximum(w, 0.0)
            if not np.any(w > 0):
                raise ParameterError(
                    "every weight is <= 0: no predictor would count. What to do: pass None "
                    "(equal weights) or importances with at least one positive value."
                )
        self.weights = w
        self.train = self.scale(X)
        self.train_sq = np.einsum("ij,ij->i", self.train, self.train)
        self.mean_distance = self._mean_pairwise()
        if not self.mean_distance > 0:
            raise ParameterError(
                "all training rows are identical in the (weighted) predictors; the "
                "dissimilarity index is undefined."
            )

    def scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.sd * self.weights

    def _step(self) -> int:
        return max(1, _CHUNK_BYTES // (8 * self.train.shape[0]))

    def _sq_dist(self, A: np.ndarray) -> np.ndarray:
        """Squared distances (len(A), n_train) of scaled rows A to the training rows."""
        a_sq = np.einsum("ij,ij->i", A, A)
        d2 = a_sq[:, None] + self.train_sq[None, :] - 2.0 * (A @ self.train.T)
        return np.maximum(d2, 0.0)

    def _mean_pairwise(self) -> float:
        n = self.train.shape[0]
        total = 0.0
        step = self._step()
        for start in range(0, n, step):
            d = np.sqrt(self._sq_dist(self.train[start : start + step]))
            total += float(d.sum())  # the diagonal is 0
        return total / (n * (n - 1))

    def nearest(self, A: np.ndarray, labels_a=None, labels_train=None) -> np.ndarray:
        """Distance of each scaled row of A to its nearest training row (other label only)."""
        out = np.empty(A.shape[0])
        step = self._step()
        for start in range(0, A.shape[0], step):
            d2 = self._sq_dist(A[start : start + step])
            if labels_a is not None:
                same = labels_a[start : start + step, None] == labels_train[None, :]
                d2[same] = np.inf
            out[start : start + step] = np.sqrt(d2.min(axis=1))
        return out


def _fold_labels(folds: Any, n: int) -> np.ndarray:
    """Per-sample fold labels from labels or from ``[(train_idx, test_idx), ...]``."""
    if isinstance(folds, np.ndarray) and folds.ndim == 1 and folds.size == n:
        labels = folds
    else:
        seq = list(folds)
        is_splits = len(seq) > 0 and all(
            isinstance(s, tuple | list) and len(s) == 2 and np.ndim(s[1]) == 1 for s in seq
        )
        if is_splits:
            labels = np.arange(n, dtype=np.int64) + len(seq)  # not in any test fold: own fold
            for k, (_, test) in enumerate(seq):
                test = np.asarray(test, dtype=np.int64)
                if test.size and (test.min() < 0 or test.max() >= n):
                    raise ParameterError(
                        f"fold {k} has test indices outside 0..{n - 1}; the splits must index "
                        "the rows of X_train."
                    )
                labels[test] = k
        else:
            try:
                labels = np.asarray(seq)
            except ValueError:  # ragged: e.g. one (train_idx, test_idx) pair instead of a list
                labels = np.empty(0)
    if labels.shape != (n,):
        raise ParameterError(
            f"folds has shape {np.shape(labels)}; expected one fold label per training row ({n}) "
            "or a list of (train_idx, test_idx) splits over the training rows."
        )
    return np.unique(labels.astype(str), return_inverse=True)[1]


def _di_new(space: _Space, X_new: Any) -> np.ndarray:
    X = _table(X_new, "X_new")
    if X.shape[1] != space.train.shape[1]:
        raise ParameterError(
            f"X_new has {X.shape[1]} predictors but X_train {space.train.shape[1]}; use the "
            "same columns in the same order."
        )
    ok = np.all(np.isfinite(X), axis=1)
    di = np.full(X.shape[0], np.nan)
    if ok.any():
        di[ok] = space.nearest(space.scale(X[ok])) / space.mean_distance
    return di


def _di_train(space: _Space, folds: Any) -> np.ndarray:
    n = space.train.shape[0]
    labels = np.arange(n) if folds is None else _fold_labels(folds, n)
    if np.unique(labels).size < 2:
        raise ParameterError("folds put every training row in one fold; give at least 2 folds.")
    return space.nearest(space.train, labels, labels) / space.mean_distance


def dissimilarity_index(
    X_train: Any,
    X_new: Any | None,
    *,
    weights: Any = None,
    folds: Any = None,
) -> np.ndarray:
    """Dissimilarity index (Meyer & Pebesma 2021) of new points, or of the training points.

    Parameters
    ----------
    X_train
        Training predictors, shape (n_train, n_feature).
    X_new
        Points to assess, shape (n_new, n_feature); rows with NaN get DI NaN. ``None``: the
        training DI of :func:`training_di` (each training row to the nearest training row in
        another fold).
    weights
        Per-predictor weights (e.g. variable importance), shape (n_feature,); default equal.
    folds
        Only used when ``X_new`` is None: per-row fold labels (n_train,) or the CV splits
        ``[(train_idx, test_idx), ...]`` over the training rows; default leave-one-out.

    Returns
    -------
    ndarray (n_new,) or (n_train,), float64, unitless (≥ 0; 0 at a training point).
    """
    space = _Space(X_train, weights)
    if X_new is None:
        return _di_train(space, folds)
    return _di_new(space, X_new)


def training_di(X_train: Any, *, weights: Any = None, folds: Any = None) -> np.ndarray:
    """DI of each training row to the nearest training row in another CV fold, (n_train,)."""
    return _di_train(_Space(X_train, weights), folds)


def _upper_whisker(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    q1, q3 = np.quantile(v, [0.25, 0.75])
    fence = q3 + 1.5 * (q3 - q1)
    return float(v[v <= fence].max())


def aoa_threshold(X_train: Any, weights: Any = None, folds: Any = None) -> float:
    """The AOA threshold: upper whisker of the training DI (largest value ≤ Q3 + 1.5 IQR).

    ``folds`` as in :func:`dissimilarity_index` (labels or splits; default leave-one-out).
    """
    return _upper_whisker(training_di(X_train, weights=weights, folds=folds))


def area_of_applicability(
    X_train: Any,
    X_new: Any,
    *,
    weights: Any = None,
    folds: Any = None,
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(di, inside)`` for the rows of ``X_new``.

    ``di`` is :func:`dissimilarity_index` (n_new,) float; ``inside`` (n_new,) bool is
    ``di ≤ threshold`` (False where ``di`` is NaN). ``threshold`` defaults to
    :func:`aoa_threshold` with the same ``weights`` and ``folds`` (pass it to reuse one).
    """
    space = _Space(X_train, weights)
    if threshold is None:
        threshold = _upper_whisker(_di_train(space, folds))
    elif not np.isfinite(threshold) or threshold < 0:
        raise ParameterError(f"threshold={threshold!r}; expected a DI >= 0.")
    di = _di_new(space, X_new)
    with np.errstate(invalid="ignore"):
        inside = di <= float(threshold)
    return di, inside


def importance_weights(importances: Sequence[float] | np.ndarray) -> np.ndarray:
    """Importances as DI weights: negatives set to 0, scaled to sum to 1 (the DI is unchanged
    by the scale; this only makes the weights readable)."""
    w = np.maximum(np.asarray(importances, dtype=np.float64).ravel(), 0.0)
    if not np.any(w > 0):
        raise ParameterError("no positive importance; use equal weights (weights=None).")
    return w / w.sum()
