"""Prediction intervals next to the point estimate: quantile forests, conformal intervals, coverage.

Two ways to put an interval around a map, and the numbers that check it:

:class:`QuantileForest`, :func:`forest_quantiles`, :func:`model_quantiles`
    quantile regression forests (Meinshausen 2006, *JMLR* 7:983) on top of an already fitted
    scikit-learn random forest: the conditional distribution at ``x`` is the training targets
    weighted by how often they share a leaf with ``x``,
    $w_i(x) = \\frac{1}{T}\\sum_t \\frac{\\mathbb 1[\\ell_t(X_i) = \\ell_t(x)]}
    {\\#\\{j: \\ell_t(X_j) = \\ell_t(x)\\}}$, and the ``q``-quantile is
    $\\inf\\{y: \\sum_i w_i(x)\\,\\mathbb 1[Y_i \\le y] \\ge q\\}$. As in Meinshausen's paper and
    R's quantregForest, every training sample of a leaf counts (not only the tree's bootstrap
    sample). Weights are sparse products computed in chunks of rows, so a 160 × 160 map
    (25,600 pixels) × 300 trees × a few hundred training samples needs some tens of MB.
:func:`conformal_halfwidth`, :func:`conformal_interval`, :func:`oof_residuals`
    split / cross-conformal intervals for **any** model (networks included): the
    ``⌈(n+1)·level⌉``-th smallest absolute out-of-fold residual is the half-width
    (Vovk et al. 2005; Lei et al. 2018, *JASA* 113:1094). With out-of-fold residuals of a
    K-fold cross-validation and a final model refitted on all data this is the simple
    "CV" conformal interval; its coverage guarantee is only approximate (Barber et al. 2021,
    *Ann. Stat.* 49:486, show the jackknife+/CV+ variant guarantees ``1 − 2α``), so **check**
    coverage on held-out data. Under spatial dependence use residuals from spatial-block CV:
    random-CV residuals come from test samples next to training samples and are too small for
    new places.
:func:`coverage`, :func:`interval_width`, :func:`interval_score`, :func:`interval_summary`
    the share of observations inside their interval, the mean width, and the interval score
    of Gneiting & Raftery (2007, *JASA* 102:359) that rewards narrow intervals and penalises
    misses by ``2/α`` times the miss distance.

Intervals are in the target's unit. Quantiles are equivariant under monotone transforms, so a
forest fitted on log1p(target) (inside :class:`soilbook.evaluate.Log1pTarget`) gives the
quantiles of the raw target when its leaves are filled with raw training targets, which is what
:func:`model_quantiles` does.

This module takes **duck-typed** models (it sits below :mod:`soilbook.baselines`): anything with
a ``transform(ds) -> X`` method and a fitted forest (an object with ``apply`` and
``estimators_``) in itself or in ``model_`` / ``estimator_``, e.g.
:class:`soilbook.baselines.RandomForestBaseline`, also inside ``Log1pTarget``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from soilbook.errors import ParameterError

__all__ = [
    "QuantileForest",
    "conformal_halfwidth",
    "conformal_interval",
    "coverage",
    "find_forest",
    "forest_quantiles",
    "interval_score",
    "interval_summary",
    "interval_width",
    "model_quantiles",
    "oof_residuals",
]

#: Bytes of the dense (rows × training samples) weight block of one chunk.
_CHUNK_BYTES = 2**23


def _quantiles(quantiles: Sequence[float] | float) -> np.ndarray:
    q = np.atleast_1d(np.asarray(quantiles, dtype=np.float64)).ravel()
    if q.size == 0 or np.any(~np.isfinite(q)) or np.any((q < 0) | (q > 1)):
        raise ParameterError(
            f"quantiles={quantiles!r}; expected probabilities in [0, 1], e.g. (0.05, 0.5, 0.95)."
        )
    return q


class QuantileForest:
    """Quantile regression forest (Meinshausen 2006) from a fitted scikit-learn forest.

    Parameters
    ----------
    forest
        A fitted ``RandomForestRegressor`` / ``ExtraTreesRegressor`` (anything with
        ``apply(X) -> (n, n_trees)`` leaf ids and ``estimators_``).
    X_train
        The table the forest was fitted on, shape (n_train, n_feature).
    y_train
        The targets whose quantiles are wanted, shape (n_train,): the training targets, on the
        scale you want the quantiles on (any monotone transform of the fitted target works).

    Attributes
    ----------
    n_train_, n_trees_
        Training samples and trees.
    """

    def __init__(self, forest: Any, X_train: Any, y_train: Any):
        from scipy import sparse

        if not (hasattr(forest, "apply") and hasattr(forest, "estimators_")):
            raise ParameterError(
                f"{type(forest).__name__} is not a fitted tree ensemble (needs apply() and "
                "estimators_). What to do: pass a fitted sklearn RandomForestRegressor, or use "
                "model_quantiles(model, train_ds, ds) for a soilbook baseline."
            )
        X_train = np.asarray(X_train, dtype=np.float32)
        y = np.asarray(y_train, dtype=np.float64).ravel()
        if X_train.ndim != 2 or X_train.shape[0] != y.size:
            raise ParameterError(
                f"X_train has shape {X_train.shape} and y_train {y.size} values; expected "
                "(n_train, n_feature) and one target per training row."
            )
        if not np.all(np.isfinite(y)):
            raise ParameterError("y_train contains NaN/inf; drop unlabelled training rows.")
        self.forest = forest
        self.n_train_ = int(y.size)
        leaves = np.asarray(forest.apply(X_train), dtype=np.int64)  # (n_train, T)
        self.n_trees_ = int(leaves.shape[1])
        # one global column per (tree, leaf): offset leaf ids of tree t by the node counts before
        n_nodes = np.array([est.tree_.node_count for est in forest.estimators_], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        n_cols = int(n_nodes.sum())
        cols = (leaves + self._offsets[None, :]).ravel()
        leaf_size = np.bincount(cols, minlength=n_cols).astype(np.float64)
        order = np.argsort(y, kind="stable")
        self._order = order
        self._y_sorted = y[order]
        rows = np.repeat(np.arange(self.n_train_), self.n_trees_)
        vals = 1.0 / (self.n_trees_ * leaf_size[cols])
        # (n_cols, n_train) with training samples in sorted-target order: W = onehot(x) @ this
        rank = np.empty(self.n_train_, dtype=np.int64)
        rank[order] = np.arange(self.n_train_)
        self._leaf_weights = sparse.csr_matrix(
            (vals, (cols, rank[rows])), shape=(n_cols, self.n_train_)
        )
        self._n_cols = n_cols

    def _chunk_rows(self, chunk_rows: int | None) -> int:
        if chunk_rows is None:
            return max(1, _CHUNK_BYTES // (8 * self.n_train_))
        if chunk_rows < 1:
            raise ParameterError(f"chunk_rows={chunk_rows}; expected a positive number of rows.")
        return int(chunk_rows)

    def weights(self, X: Any) -> np.ndarray:
        """Dense weights (n, n_train) of the training samples (in their original order) for X.

        Each row sums to 1. For inspection and tests; :meth:`predict` never builds the full
        matrix.
        """
        w_sorted = self._weights_sorted(np.asarray(X, dtype=np.float32))
        out = np.empty_like(w_sorted)
        out[:, self._order] = w_sorted  # sorted position k is training row _order[k]
        return out

    def _weights_sorted(self, X: np.ndarray) -> np.ndarray:
        from scipy import sparse

        leaves = np.asarray(self.forest.apply(X), dtype=np.int64)
        if leaves.shape[1] != self.n_trees_:
            raise ParameterError("the forest changed since this QuantileForest was built.")
        n = leaves.shape[0]
        onehot = sparse.csr_matrix(
            (
                np.ones(leaves.size),
                (leaves + self._offsets[None, :]).ravel(),
                np.arange(0, leaves.size + 1, self.n_trees_),
            ),
            shape=(n, self._n_cols),
        )
        return (onehot @ self._leaf_weights).toarray()

    def predict(
        self,
        X: Any,
        quantiles: Sequence[float] | float = (0.05, 0.5, 0.95),
        *,
        chunk_rows: int | None = None,
    ) -> np.ndarray:
        """Conditional quantiles at the rows of ``X``.

        Parameters
        ----------
        X
            Feature table (n, n_feature), the same columns as ``X_train``.
        quantiles
            Probabilities in [0, 1].
        chunk_rows
            Rows per chunk (default: a dense chunk × n_train weight block of about 8 MB).

        Returns
        -------
        ndarray, shape (n, n_quantiles), float64, in the unit of ``y_train``; columns in the
        order of ``quantiles``.
        """
        q = _quantiles(quantiles)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ParameterError(f"X has shape {X.shape}; expected (n, n_feature).")
        step = self._chunk_rows(chunk_rows)
        out = np.empty((X.shape[0], q.size), dtype=np.float64)
        for start in range(0, X.shape[0], step):
            w = self._weights_sorted(X[start : start + step])
            cdf = np.cumsum(w, axis=1)
            total = cdf[:, -1:].copy()
            empty = total[:, 0] <= 0  # leaves without any X_train row (X_train not the fit data)
            cdf /= np.where(total > 0, total, 1.0)  # exact 1 at the end despite rounding
            # first sorted target where the weighted CDF reaches q (tolerance for rounding)
            idx = np.stack([(cdf < qq - 1e-12).sum(axis=1) for qq in q], axis=1)
            block = self._y_sorted[np.minimum(idx, self.n_train_ - 1)]
            block[empty] = np.nan
            out[start : start + step] = block
        return out

    @classmethod
    def from_model(cls, model: Any, train: Any, y_train: Any = None) -> QuantileForest:
        """A quantile forest from a fitted soilbook-style model and its training sample set.

        ``model`` needs ``transform(ds) -> X`` and a fitted forest (see :func:`find_forest`);
        ``train`` is the sample set it was fitted on; ``y_train`` defaults to
        ``train["target"]`` (raw units, also for a model fitted on log1p(target)). The result
        keeps ``transform_`` so :meth:`predict_ds` takes sample sets.
        """
        forest, transform = find_forest(model)
        X_train = transform(train)
        if y_train is None:
            from soilbook.data.schema import target_values

            y_train = target_values(train)
        out = cls(forest, X_train, y_train)
        out.transform_ = transform
        return out

    def predict_ds(
        self, ds: Any, quantiles: Sequence[float] | float = (0.05, 0.5, 0.95)
    ) -> np.ndarray:
        """:meth:`predict` on a sample set (needs a quantile forest made by :meth:`from_model`)."""
        transform = getattr(self, "transform_", None)
        if transform is None:
            raise ParameterError(
                "this QuantileForest has no transform; build it with QuantileForest.from_model "
                "or call predict(X) with a feature table."
            )
        return self.predict(transform(ds), quantiles)


def find_forest(model: Any) -> tuple[Any, Any]:
    """``(forest, transform)`` of a duck-typed model (see the module docstring).

    Looks at ``model`` and, recursively, its ``estimator_``, ``model_``, ``best_estimator_`` and
    ``regressor_`` attributes for the first object with ``apply`` and ``estimators_`` (the
    forest) and the first with a callable ``transform`` (the feature table of a sample set).
    """
    forest = transform = None
    stack, seen = [model], set()
    while stack:
        obj = stack.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if forest is None and hasattr(obj, "apply") and hasattr(obj, "estimators_"):
            forest = obj
        elif transform is None and callable(getattr(obj, "transform", None)):
            transform = obj.transform
        for name in ("estimator_", "model_", "best_estimator_", "regressor_"):
            stack.append(getattr(obj, name, None))
    if forest is None or transform is None:
        raise ParameterError(
            f"{type(model).__name__} has no fitted random forest with a transform(ds) method. "
            "Quantile intervals need a fitted RandomForestBaseline (also inside Log1pTarget); "
            "for other models use conformal_interval with out-of-fold residuals."
        )
    return forest, transform


def forest_quantiles(
    forest: Any,
    X_train: Any,
    y_train: Any,
    X: Any,
    quantiles: Sequence[float] | float = (0.05, 0.5, 0.95),
    *,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """Quantile-regression-forest quantiles at ``X``: ndarray (n, n_quantiles).

    Shorthand for ``QuantileForest(forest, X_train, y_train).predict(X, quantiles)``.
    """
    return QuantileForest(forest, X_train, y_train).predict(X, quantiles, chunk_rows=chunk_rows)


def model_quantiles(
    model: Any,
    train: Any,
    ds: Any,
    quantiles: Sequence[float] | float = (0.05, 0.5, 0.95),
    *,
    y_train: Any = None,
) -> np.ndarray:
    """Quantiles of a fitted forest baseline at the samples of ``ds``: ndarray (n, n_quantiles).

    ``model`` is duck-typed (``transform`` + a fitted forest, e.g. ``RandomForestBaseline`` or
    ``Log1pTarget(RandomForestBaseline())``); ``train`` is the sample set it was fitted on.
    """
    return QuantileForest.from_model(model, train, y_train).predict_ds(ds, quantiles)


# -- conformal ----------------------------------------------------------------------------------


def _level(level: float) -> float:
    if not (isinstance(level, float | int | np.floating) and 0.0 < float(level) < 1.0):
        raise ParameterError(f"level={level!r}; expected a coverage in (0, 1), e.g. 0.9.")
    return float(level)


def oof_residuals(y: Any, oof: Any, *, log1p: bool = False) -> np.ndarray:
    """Out-of-fold residuals ``y − ŷ`` of the samples that have an out-of-fold prediction.

    ``oof`` is shape (n,) or (n_seeds, n) (e.g. :meth:`soilbook.evaluate.CVResult.oof`, NaN
    where a sample was in no test fold); several seeds are averaged first (the ensemble the
    notebook reports). ``log1p=True`` gives residuals on the log1p scale (for targets modelled
    as log1p, so that the interval widens with the prediction).

    Returns ndarray (n_scored,) float64.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(oof, dtype=np.float64)
    if p.ndim == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            p = np.nanmean(p, axis=0)
    p = p.ravel()
    if p.size != y.size:
        raise ParameterError(f"oof has {p.size} predictions for {y.size} observations.")
    keep = np.isfinite(p) & np.isfinite(y)
    if log1p:
        if np.any(y[keep] <= -1) or np.any(p[keep] <= -1):
            raise ParameterError("log1p residuals need values > -1 (non-negative targets).")
        return np.log1p(y[keep]) - np.log1p(p[keep])
    return y[keep] - p[keep]


def conformal_halfwidth(residuals: Any, level: float = 0.9) -> float:
    """Half-width of a symmetric conformal interval from calibration residuals.

    The ``⌈(n+1)·level⌉``-th smallest ``|residual|`` (split conformal, Lei et al. 2018); ``inf``
    (with a warning) when there are too few residuals for that level (n < level / (1 − level)).
    Residuals that are NaN are ignored.
    """
    lv = _level(level)
    r = np.abs(np.asarray(residuals, dtype=np.float64).ravel())
    r = np.sort(r[np.isfinite(r)])
    n = r.size
    if n == 0:
        raise ParameterError("no finite residuals; pass out-of-fold residuals (oof_residuals).")
    k = math.ceil((n + 1) * lv)
    if k > n:
        warnings.warn(
            f"{n} residuals are too few for a {lv:.0%} conformal interval (need at least "
            f"{math.ceil(lv / (1 - lv))}); the half-width is infinite.",
            stacklevel=2,
        )
        return float("inf")
    return float(r[k - 1])


def conformal_interval(
    pred: Any, residuals: Any, level: float = 0.9, *, log1p: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` conformal interval around the predictions ``pred`` (any shape).

    ``residuals`` are calibration residuals of the same model (out-of-fold, see
    :func:`oof_residuals`). With ``log1p=True`` they must be log1p-scale residuals and the
    interval is ``expm1(log1p(pred) ± h)``: asymmetric in the target's unit, wider for larger
    predictions (``low`` may fall slightly below 0 when ``pred`` is near 0).
    """
    h = conformal_halfwidth(residuals, level)
    p = np.asarray(pred, dtype=np.float64)
    if log1p:
        lp = np.log1p(p)
        return np.expm1(lp - h), np.expm1(lp + h)
    return p - h, p + h


# -- checking intervals -----------------------------------------------------------------------


def _interval_arrays(y: Any, low: Any, high: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    lo = np.broadcast_to(np.asarray(low, dtype=np.float64), y.shape).ravel()
    hi = np.broadcast_to(np.asarray(high, dtype=np.float64), y.shape).ravel()
    keep = np.isfinite(y) & ~np.isnan(lo) & ~np.isnan(hi)
    if not keep.any():
        raise ParameterError("no observation with an interval to check.")
    return y[keep], lo[keep], hi[keep]


def coverage(y: Any, low: Any, high: Any) -> float:
    """Share of observations with ``low ≤ y ≤ high`` (NaN entries ignored), in [0, 1]."""
    y, lo, hi = _interval_arrays(y, low, high)
    return float(np.mean((y >= lo) & (y <= hi)))


def interval_width(low: Any, high: Any) -> float:
    """Mean width ``high − low`` of finite intervals, in the target's unit."""
    w = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    w = w[np.isfinite(w)]
    if w.size == 0:
        raise ParameterError("no finite interval to measure.")
    return float(np.mean(w))


def interval_score(y: Any, low: Any, high: Any, level: float) -> float:
    """Mean interval score (Gneiting & Raftery 2007), in the target's unit; lower is better.

    ``(high − low) + (2/α)(low − y)·1[y < low] + (2/α)(y − high)·1[y > high]``, α = 1 − level.
    """
    alpha = 1.0 - _level(level)
    y, lo, hi = _interval_arrays(y, low, high)
    s = (hi - lo) + (2 / alpha) * np.maximum(lo - y, 0) + (2 / alpha) * np.maximum(y - hi, 0)
    return float(np.mean(s))


def interval_summary(y: Any, low: Any, high: Any, *, level: float | None = None) -> dict:
    """Coverage and widths of intervals in one record.

    Returns ``{"coverage", "mean_width", "median_width", "n"}`` plus, when the nominal
    ``level`` is given, ``"nominal"`` and ``"interval_score"``.
    """
    yy, lo, hi = _interval_arrays(y, low, high)
    w = hi - lo
    out = {
        "coverage": float(np.mean((yy >= lo) & (yy <= hi))),
        "mean_width": float(np.mean(w)),
        "median_width": float(np.median(w)),
        "n": int(yy.size),
    }
    if level is not None:
        out["nominal"] = _level(level)
        out["interval_score"] = interval_score(yy, lo, hi, level)
    return out
