"""Metrics and the cross-validation harness shared by every notebook.

Metrics
-------
All metrics take observed and predicted values in the target's unit (e.g. g/kg of salt):

==========  ===========================================  ==========================
``rmse``    root mean squared error                        target unit
``mae``     mean absolute error                            target unit
``r2``      coefficient of determination, 1 − SSE/SST      unitless (≤ 1, can be < 0)
``bias``    mean(predicted − observed)                     target unit (> 0: over-predicts)
``ccc``     Lin's concordance correlation coefficient      unitless (−1 … 1)
``rpiq``    IQR(observed) / RMSE                           unitless (higher is better)
==========  ===========================================  ==========================

``r2`` is the coefficient of determination (scikit-learn's ``r2_score``), *not* the squared
Pearson correlation; a biased model can have a high correlation and a low ``r2``. ``ccc`` uses the
population (1/n) variances and covariance, as in Lin (1989). ``rpiq`` uses the interquartile range
of the observations (numpy's linear-interpolation quantiles) divided by RMSE (Bellon-Maurel et al.
2010).

Splits
------
A *split* is a list of ``(train_idx, test_idx)`` pairs of positional integer arrays over the
``sample`` dimension. :func:`make_splits` builds the two kinds every notebook reports: ``"random"``
(shuffled k-fold) and ``"spatial"`` (grouped k-fold on the dataset's ``group`` coordinate — a
spatial block, pedon, field or region; the dataset's ``attrs["group_kind"]`` says which).

Cross-validation
----------------
:func:`cross_validate` clones every estimator for every fold, fits it on the training rows only
and scores it on the held-out rows only. Estimators follow the soilbook convention: ``fit(ds)``
and ``predict(ds) -> ndarray (n_sample,)`` on schema Datasets (see :mod:`soilbook.baselines` and
:mod:`soilbook.models`).

Networks can be repeated over seeds (``seeds=[0, 1, 2]``: every estimator with a ``seed``
parameter and a ``training_histories`` method is fitted once per seed; baselines once), and the
fits can run in worker processes (``n_jobs=2``) with the same results. Every fitted network's
learning curves and convergence (best epoch, epochs run, whether validation loss flattened) are
kept in :attr:`CVResult.histories` and :attr:`CVResult.convergence`;
:meth:`CVResult.networks_record` is the ``networks`` entry of a notebook's ``metrics.json``.
A model whose inner stage can score itself on data that stage never saw (``held_out_stage_scores``,
DeepSalt's teacher on the test sites' lab spectra) gets those scores for every fold and seed in
:attr:`CVResult.stage_scores`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin, clone

from soilbook.data.schema import SAMPLE, subset, target_values
from soilbook.errors import ParameterError, SplitError

__all__ = [
    "CONVERGENCE_KEYS",
    "EXTRA_METRICS",
    "METRICS",
    "METRIC_INFO",
    "NETWORK_RECORD_KEYS",
    "NO_SEED",
    "SCALES",
    "CVResult",
    "LabelFraction",
    "Log1pTarget",
    "SplitError",
    "Splits",
    "bias",
    "ccc",
    "check_one_of",
    "cross_validate",
    "group_kfold",
    "label_fraction_split",
    "label_subset",
    "mae",
    "make_splits",
    "metrics_table",
    "paper_comparison",
    "r2",
    "random_kfold",
    "repeats_over_seeds",
    "rmse",
    "rpiq",
    "ubrmse",
    "ubrmse_per_group",
]

# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------

#: The metrics every table reports, in this order.
METRICS: tuple[str, ...] = ("rmse", "mae", "r2", "bias", "ccc", "rpiq")
#: What each metric means and its unit ("target" = the unit of the target, e.g. g/kg).
METRIC_INFO: dict[str, dict[str, Any]] = {
    "rmse": {"long_name": "root mean squared error", "units": "target", "better": "lower"},
    "mae": {"long_name": "mean absolute error", "units": "target", "better": "lower"},
    "r2": {"long_name": "coefficient of determination", "units": "1", "better": "higher"},
    "bias": {"long_name": "mean(predicted - observed)", "units": "target", "better": "closer to 0"},
    "ccc": {
        "long_name": "Lin's concordance correlation coefficient",
        "units": "1",
        "better": "higher",
    },
    "rpiq": {"long_name": "IQR(observed) / RMSE", "units": "1", "better": "higher"},
    "ubrmse": {
        "long_name": "unbiased RMSE, sqrt(RMSE^2 - bias^2), pooled",
        "units": "target",
        "better": "lower",
    },
}
#: Further metrics a chapter may ask for by name (``metrics_table(..., metrics=...)``); not in
#: every table.
EXTRA_METRICS: tuple[str, ...] = ("ubrmse",)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(
            f"observed has {t.size} values but predicted has {p.size}. Expected: two vectors of the "
            "same length. What to do: predict exactly the held-out samples you compare with."
        )
    if t.size == 0:
        raise ValueError("no values to score. What to do: pass at least one observation.")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError(
            "observed or predicted contains NaN/inf. What to do: drop unlabelled samples and check "
            "the model for diverging training (e.g. a too-high learning rate)."
        )
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the target's unit."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error, in the target's unit."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination 1 − SSE/SST (unitless; NaN when the observations are constant)."""
    t, p = _pair(y_true, y_pred)
    sst = float(np.sum((t - t.mean()) ** 2))
    if sst == 0.0:
        return float("nan")
    return float(1.0 - np.sum((t - p) ** 2) / sst)


def bias(y_true: Any, y_pred: Any) -> float:
    """Mean error, mean(predicted − observed), in the target's unit (positive: over-prediction)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(p - t))


def ccc(y_true: Any, y_pred: Any) -> float:
    """Lin's concordance correlation coefficient (unitless).

    ``2·cov(t, p) / (var(t) + var(p) + (mean(t) − mean(p))²)`` with population (1/n) moments;
    1 only when every prediction equals its observation.
    """
    t, p = _pair(y_true, y_pred)
    mt, mp = t.mean(), p.mean()
    cov = np.mean((t - mt) * (p - mp))
    denom = t.var() + p.var() + (mt - mp) ** 2
    if denom == 0.0:
        return float("nan")
    return float(2.0 * cov / denom)


def rpiq(y_true: Any, y_pred: Any) -> float:
    """Ratio of performance to interquartile distance, IQR(observed) / RMSE (unitless)."""
    t, p = _pair(y_true, y_pred)
    q1, q3 = np.percentile(t, [25.0, 75.0])
    e = rmse(t, p)
    if e == 0.0:
        return float("inf")
    return float((q3 - q1) / e)


def ubrmse(y_true: Any, y_pred: Any) -> float:
    """Unbiased RMSE, √(RMSE² − bias²) (Entekhabi et al. 2010), in the target's unit: the
    RMSE left after removing the mean error, i.e. the standard deviation (1/n) of the errors.
    Pooled over all samples given; :func:`ubrmse_per_group` averages it per station."""
    t, p = _pair(y_true, y_pred)
    return float(np.std(p - t))


def ubrmse_per_group(y_true: Any, y_pred: Any, groups: Any, min_samples: int = 2) -> float:
    """The mean over ``groups`` (e.g. stations) of each group's :func:`ubrmse`, in the target's
    unit; groups with fewer than ``min_samples`` samples (whose ubRMSE is 0 or undefined) are
    left out. NaN when no group has enough samples."""
    t, p = _pair(y_true, y_pred)
    g = np.asarray(groups)
    if g.shape != t.shape:
        raise ValueError(f"groups has shape {g.shape}; expected one group per sample, {t.shape}.")
    values = [float(np.std(p[g == k] - t[g == k])) for k in np.unique(g)]
    sizes = [int((g == k).sum()) for k in np.unique(g)]
    kept = [v for v, n in zip(values, sizes, strict=True) if n >= min_samples]
    return float(np.mean(kept)) if kept else float("nan")


_METRIC_FUNCS: dict[str, Callable[[Any, Any], float]] = {
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
    "bias": bias,
    "ccc": ccc,
    "rpiq": rpiq,
    "ubrmse": ubrmse,
}


def metric_function(name: str) -> Callable[[Any, Any], float]:
    """The function behind a metric name in :data:`METRICS` or :data:`EXTRA_METRICS`."""
    try:
        return _METRIC_FUNCS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}. Allowed: {list(METRICS) + list(EXTRA_METRICS)}."
        ) from None


def metrics_table(y_true: Any, y_pred: Any, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Every metric of :data:`METRICS` (or ``metrics``) for one set of predictions.

    Returns ``{"rmse": ..., "mae": ..., "r2": ..., "bias": ..., "ccc": ..., "rpiq": ...}`` plus
    ``"n"`` (the number of samples scored).
    """
    t, p = _pair(y_true, y_pred)
    out = {m: metric_function(m)(t, p) for m in metrics}
    out["n"] = float(t.size)
    return out


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


Split = list[tuple[np.ndarray, np.ndarray]]


class Splits(dict):
    """``{label: [(train_idx, test_idx), ...]}`` plus a human description of each label.

    A plain dict works everywhere a :class:`Splits` does; ``descriptions`` only labels tables
    (e.g. ``{"spatial": "grouped 5-fold CV by spatial block (36 groups)"}``).
    """

    def __init__(self, *args: Any, descriptions: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.descriptions: dict[str, str] = dict(descriptions or {})


def _n_samples(ds: xr.Dataset | int) -> int:
    if isinstance(ds, int | np.integer):
        return int(ds)
    return int(ds.sizes[SAMPLE])


def _check_n_splits(n_splits: int, n_units: int, unit: str, todo: str) -> None:
    if not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise SplitError(f"n_splits = {n_splits!r}. Expected: an int >= 2. What to do: use e.g. 5.")
    if n_units < n_splits:
        raise SplitError(
            f"cannot make {n_splits} folds from {n_units} {unit}. Expected: at least as many "
            f"{unit} as folds. What to do: {todo}"
        )


def random_kfold(ds: xr.Dataset | int, n_splits: int = 5, seed: int = 0) -> Split:
    """Shuffled k-fold over samples.

    Parameters
    ----------
    ds : Dataset (or the number of samples)
    n_splits : number of folds (>= 2)
    seed : shuffling seed (same seed → same folds)

    Returns
    -------
    list of ``(train_idx, test_idx)`` positional int arrays; the test sets partition the samples
    and differ in size by at most one.
    """
    n = _n_samples(ds)
    _check_n_splits(n_splits, n, "samples", "use fewer folds or more samples.")
    perm = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(perm, n_splits)
    out: Split = []
    for k in range(n_splits):
        test = np.sort(folds[k]).astype(int)
        train = np.sort(np.concatenate([folds[j] for j in range(n_splits) if j != k])).astype(int)
        out.append((train, test))
    return out


def group_kfold(
    ds: xr.Dataset | Sequence[Any] | np.ndarray, n_splits: int = 5, seed: int = 0
) -> Split:
    """Grouped k-fold on ``ds.group``: all samples of a group are in the same test fold.

    Groups are shuffled with ``seed``; then, in that random order, each group goes to the fold
    that currently holds the fewest samples. Folds are so balanced in samples while which groups
    share a fold stays random (same seed → same folds; another seed → another assignment).

    Parameters
    ----------
    ds : Dataset with a ``group`` coordinate, or the group labels themselves (one per sample)
    n_splits : number of folds (>= 2, <= number of groups)
    seed : seed of the group shuffle

    Raises
    ------
    SplitError
        When there are fewer groups than folds.
    """
    if isinstance(ds, xr.Dataset):
        if "group" not in ds.coords:
            raise SplitError(
                "the dataset has no 'group' coordinate. What to do: assign one, e.g. "
                "ds.assign_coords(group=('sample', soilbook.geo.spatial_blocks(x_m, y_m, 2000)))."
            )
        labels = np.asarray(ds["group"].values)
    else:
        labels = np.asarray(ds)
    labels = labels.astype(str)
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    _check_n_splits(
        n_splits,
        uniq.size,
        "groups",
        f"use n_splits <= {uniq.size}, or make finer groups (e.g. smaller blocks with "
        "soilbook.geo.spatial_blocks).",
    )
    order = np.random.default_rng(seed).permutation(uniq.size)
    fold_of_group = np.empty(uniq.size, dtype=int)
    load = np.zeros(n_splits, dtype=int)
    for g in order:
        k = int(np.argmin(load))  # ties → lowest fold index
        fold_of_group[g] = k
        load[k] += counts[g]
    fold_of_sample = fold_of_group[inverse]
    out: Split = []
    for k in range(n_splits):
        test = np.flatnonzero(fold_of_sample == k).astype(int)
        train = np.flatnonzero(fold_of_sample != k).astype(int)
        out.append((train, test))
    return out


def make_splits(
    ds: xr.Dataset,
    kinds: Iterable[str] = ("random", "spatial"),
    n_splits: int = 5,
    seed: int = 0,
    buffer_m: float = 0.0,
) -> Splits:
    """The cross-validation splits a notebook reports, by label.

    ``"random"`` is :func:`random_kfold`; ``"spatial"`` (alias ``"group"``, kept under the label
    you asked for) is :func:`group_kfold` on ``ds.group``. The dataset's ``attrs["group_kind"]``
    (e.g. ``"spatial block"``, ``"pedon"``) names what a group is in ``Splits.descriptions``.

    ``buffer_m`` > 0 (metres) drops, in every spatial fold, the training samples closer than that
    to any test sample (:func:`soilbook.geo.buffer_split`; coordinates from ``x_m``/``y_m`` or
    ``lat``/``lon``), so that training data do not sit right next to the held-out blocks. Test
    folds are unchanged; random folds are never buffered.
    """
    buffer_m = float(buffer_m)
    if not np.isfinite(buffer_m) or buffer_m < 0:
        raise ParameterError(
            f"buffer_m={buffer_m!r} must be a distance in metres >= 0 (0 = no buffer)."
        )
    out = Splits()
    group_kind = str(ds.attrs.get("group_kind", "group"))
    for kind in kinds:
        if kind == "random":
            out[kind] = random_kfold(ds, n_splits, seed)
            out.descriptions[kind] = f"random {n_splits}-fold CV"
        elif kind in ("spatial", "group"):
            out[kind] = group_kfold(ds, n_splits, seed)
            n_groups = len(np.unique(np.asarray(ds["group"].values).astype(str)))
            out.descriptions[kind] = (
                f"grouped {n_splits}-fold CV by {group_kind} ({n_groups} groups)"
            )
            if buffer_m > 0:
                out[kind] = _buffered(ds, out[kind], buffer_m)
                out.descriptions[kind] += f", training samples within {buffer_m:g} m dropped"
        else:
            raise SplitError(
                f"unknown split kind {kind!r}. Allowed: 'random', 'spatial' (or 'group'). "
                "What to do: build other splits yourself as a list of (train_idx, test_idx)."
            )
    return out


def label_fraction_split(
    folds: Split, fraction: float, seed: int = 0, min_train: int = 10
) -> Split:
    """The same folds with only ``fraction`` of each fold's training rows: a label-efficiency
    curve's training sets.

    Each fold's training rows are shuffled once (``seed`` and the fold number fix the order)
    and the first ``ceil(fraction * n_train)`` are kept, so the subsets are **nested**: the
    rows at 10 % are among those at 25 %, and so on up to all of them at 1.0. Test rows are
    unchanged, so every fraction is scored on the same held-out samples.

    Parameters
    ----------
    folds : ``[(train_idx, test_idx), ...]`` as :func:`make_splits` gives them.
    fraction : share of the training rows kept, in (0, 1].
    seed : the subsampling seed (the same for every fraction of one curve).
    min_train : fewest training rows a fold may keep.

    Returns a list of ``(train_idx, test_idx)`` positional int arrays (training rows sorted).
    Raises :class:`ParameterError` for a fraction outside (0, 1] and :class:`SplitError` when
    a fold would keep fewer than ``min_train`` rows.
    """
    f = float(fraction)
    if not (np.isfinite(f) and 0.0 < f <= 1.0):
        raise ParameterError(
            f"label fraction {fraction!r} must lie in (0, 1] (e.g. 0.05, 0.1, 0.25, 0.5, 1.0)."
        )
    out: Split = []
    for k, (train, test) in enumerate(folds):
        train = np.asarray(train, dtype=int)
        keep = math.ceil(f * train.size - 1e-9)
        if keep < min_train:
            raise SplitError(
                f"{f:.0%} of fold {k + 1}'s {train.size} training rows is {keep}, fewer than "
                f"{min_train}. What to do: use a larger fraction or more labelled samples."
            )
        order = np.random.default_rng([int(seed), k]).permutation(train.size)
        out.append((np.sort(train[order[:keep]]), np.asarray(test, dtype=int)))
    return out


def _buffered(ds: xr.Dataset, folds: Split, buffer_m: float) -> Split:
    """``folds`` with every training set thinned by :func:`soilbook.geo.buffer_split`."""
    from soilbook.geo import buffer_split, local_xy_m

    if "x_m" in ds.coords or "x_m" in ds:
        x, y = np.asarray(ds["x_m"].values, float), np.asarray(ds["y_m"].values, float)
    elif "lat" in ds.coords or "lat" in ds:
        x, y = local_xy_m(ds["lat"].values, ds["lon"].values)
    else:
        raise SplitError(
            "buffer_m needs sample coordinates (x_m/y_m or lat/lon) and the data have none. "
            "What to do: set buffer_m=0, or give the samples coordinates."
        )
    return [(buffer_split(tr, te, x, y, buffer_m), te) for tr, te in folds]


# --------------------------------------------------------------------------------------------
# log1p target wrapper
# --------------------------------------------------------------------------------------------


def _with_target(ds: xr.Dataset, values: np.ndarray, units: str, long_name: str) -> xr.Dataset:
    out = ds.copy()
    out["target"] = (ds["target"].dims, values, {"units": units, "long_name": long_name})
    return out


class Log1pTarget(RegressorMixin, BaseEstimator):
    """Fit ``estimator`` on log1p(target) and back-transform its predictions with expm1.

    Useful for skewed, non-negative targets (salinity, SOC). The back-transformed prediction
    estimates the *median* of the conditional distribution, not its mean: for log-normal errors
    with variance s² on the log scale the mean is higher by a factor ≈ exp(s²/2), so expect a
    negative ``bias`` (under-prediction) that grows with the noise. No smearing correction is
    applied, so what you see is what the model predicts.

    ``estimator_`` is the fitted inner estimator (its predictions and SHAP values are in
    log1p(target units)).

    Auxiliary labelled data
    -----------------------
    Only the sample set's ``target`` is transformed here. An estimator that also learns from
    other labelled data (DeepSalt's teacher fits lab spectra with their own target values) must
    apply the same transform to them, or its two domains learn different targets. The protocol:
    when the wrapped estimator has a parameter named ``lab_target_transform``
    (``"lab_target_transform" in estimator.get_params(deep=False)``), the clone that
    :meth:`fit` trains gets ``lab_target_transform="log1p"``; the estimator then transforms
    its auxiliary targets with ``log1p`` itself. The wrapped ``estimator`` is never modified.
    """

    def __init__(self, estimator: Any):
        self.estimator = estimator

    def fit(self, ds: xr.Dataset, y: Any = None) -> Log1pTarget:
        t = target_values(ds) if y is None else np.asarray(y, dtype=np.float64)
        if np.any(t <= -1.0):
            raise ValueError(
                f"log1p needs target > -1, but the minimum is {t.min():g}. What to do: use "
                "target_transform='none' or shift the target."
            )
        units = str(ds["target"].attrs.get("units", ""))
        long_name = str(ds["target"].attrs.get("long_name", "target"))
        ds_log = _with_target(ds, np.log1p(t), f"log1p({units})", f"log1p({long_name})")
        inner = clone(self.estimator)
        if "lab_target_transform" in inner.get_params(deep=False):
            inner.set_params(lab_target_transform="log1p")  # one transform for every domain
        self.estimator_ = inner.fit(ds_log)
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        return np.expm1(np.asarray(self.estimator_.predict(ds), dtype=np.float64).ravel())

    def score(self, ds: xr.Dataset, y: Any = None, sample_weight: Any = None) -> float:
        return r2(target_values(ds) if y is None else y, self.predict(ds))


def label_subset(n: int, fraction: float, seed: int = 0, min_train: int = 10) -> np.ndarray:
    """The sorted positions of the ``fraction`` of ``n`` training rows that a label-efficiency
    run keeps: :func:`label_fraction_split` on one fold of ``n`` rows, so the subsets are nested
    (the rows at 10 % are among those at 25 %) and ``fraction=1`` keeps all (n,). The one rule
    behind :class:`LabelFraction` (any estimator) and ``SSLSoilNetRegressor(label_fraction=)``,
    so every model at a fraction learns from the same labelled rows. Raises
    :class:`ParameterError` outside (0, 1] and :class:`SplitError` below ``min_train`` rows."""
    everything = np.arange(int(n))
    folds = [(everything, np.array([], dtype=int))]
    return label_fraction_split(folds, fraction, seed, min_train=min_train)[0][0]


class LabelFraction(RegressorMixin, BaseEstimator):
    """Fit ``estimator`` on only ``fraction`` of the training rows it is given
    (:func:`label_subset` with ``seed``): a point of a label-efficiency curve under the same
    cross-validation folds, scored on the same test rows. ``estimator_`` is the fitted inner
    estimator; ``label_rows_`` the positions kept. A network that must see every training row
    for another reason (SSL-SoilNet's pre-training) takes ``label_fraction`` itself instead,
    with the same rule."""

    def __init__(self, estimator: Any, fraction: float = 1.0, seed: int = 0):
        self.estimator = estimator
        self.fraction = fraction
        self.seed = seed

    def fit(self, ds: xr.Dataset, y: Any = None) -> LabelFraction:
        self.label_rows_ = label_subset(ds.sizes[SAMPLE], self.fraction, self.seed)
        part = subset(ds, self.label_rows_)
        y_part = None if y is None else np.asarray(y)[self.label_rows_]
        self.estimator_ = clone(self.estimator).fit(part, y_part)
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        return np.asarray(self.estimator_.predict(ds), dtype=np.float64).ravel()

    def score(self, ds: xr.Dataset, y: Any = None, sample_weight: Any = None) -> float:
        return r2(target_values(ds) if y is None else y, self.predict(ds))


# --------------------------------------------------------------------------------------------
# cross-validation
# --------------------------------------------------------------------------------------------

#: The ``seed`` column's value for a model fitted once that has no integer ``seed`` parameter.
NO_SEED = -1
#: The scales :meth:`CVResult.summary` can score on (see "Scales" in :class:`CVResult`).
SCALES: tuple[str, ...] = ("original", "log1p")
#: The keys of ``History.convergence()`` (:mod:`soilbook.train`), the columns of
#: :attr:`CVResult.convergence` after ``model, split, seed, fold, stage``.
CONVERGENCE_KEYS: tuple[str, ...] = (
    "best_epoch",
    "epochs_run",
    "final_train_loss",
    "final_val_loss",
    "best_val_loss",
    "flattened",
    "converged",
    "early_stopped",
    "reason",
)
_FIT_KEYS: tuple[str, ...] = ("model", "split", "seed", "fold", "stage")
#: The fields of every :meth:`CVResult.networks_record` entry.
NETWORK_RECORD_KEYS: tuple[str, ...] = (*_FIT_KEYS, *CONVERGENCE_KEYS)


def _empty_convergence() -> pd.DataFrame:
    return pd.DataFrame(columns=list(NETWORK_RECORD_KEYS))


def _empty_stage_scores() -> pd.DataFrame:
    return pd.DataFrame(columns=list(_FIT_KEYS))


@dataclass
class CVResult:
    """Out-of-fold scores and predictions of :func:`cross_validate`.

    Attributes
    ----------
    scores : DataFrame
        Tidy per-fold metrics: columns ``model, split, seed, fold, metric, value`` (``metric``
        also includes ``n``, the test-fold size).
    predictions : DataFrame
        Columns ``model, split, seed, fold, sample`` (position in the dataset), ``group,
        observed, predicted`` — every held-out prediction, in the target's unit. ``seed`` is
        the seed the model was fitted with (:data:`NO_SEED`, −1, for a model without a
        ``seed`` parameter); a model repeated over seeds has one set of rows per seed.
    fitted : dict
        ``{(model, split): estimator}`` fitted on the **last** fold's training rows, with the
        model's **first** seed; the rows it never saw are ``test_index[(model, split)]`` (use
        them for permutation importance).
    timings : dict
        ``{(model, split): seconds}`` — fit + predict time summed over the folds and seeds
        (``pd.Series(result.timings)`` makes a table); :attr:`timing_table` splits it into
        ``fit_s`` and ``predict_s``. With ``n_jobs > 1`` these are the seconds each worker
        spent, summed (CPU-side work, not the wall time of the run).
    meta : dict
        Target name and unit, whether the data are simulated, the split descriptions, the target
        transform, the seeds asked for (``None``: each model's own) and the dataset's source.
    convergence : DataFrame
        One row per fitted network and training stage: ``model, split, seed, fold, stage`` and
        the keys of ``History.convergence()`` (:data:`CONVERGENCE_KEYS`: best epoch, epochs
        run, final losses, whether validation loss had flattened, ``converged``, ``reason``).
        Empty for models without ``training_histories()`` (the baselines).
    histories : dict
        ``{(model, split, seed, fold, stage): History}`` for every fitted network — every fold
        and seed, not only the last (``stage`` is e.g. ``"network"``, or ``"teacher"`` and
        ``"student"`` for DeepSalt). After :meth:`from_json` the values are plain dicts of
        per-epoch lists (``epoch, train_loss, val_loss``), which the learning-curve plot reads
        the same way.
    stage_scores : DataFrame
        One row per fitted model and inner stage that scored itself on data it held out from
        that stage during the fit (an estimator's ``held_out_stage_scores()``, e.g. DeepSalt's
        teacher on the lab spectra of the fold's test sites): ``model, split, seed, fold,
        stage`` and the metrics it returned (``rmse, mae, bias, r2, ccc, rpiq, n`` ...). Every
        fold and seed, computed in the worker that fitted it. Empty when no model has such a
        method.

    Seeds
    -----
    A model repeated over seeds is summarised on the *original* predictions of each seed:
    :meth:`summary` computes every metric per seed and averages the metrics over seeds
    (the same rule as :mod:`soilbook.claims`), so its shape does not change;
    :meth:`summary_seeds` adds the standard deviation over seeds and :meth:`seed_scores` gives
    each seed's metrics. :meth:`oof` returns the predictions as an array (n_seeds, n_sample).

    Scales
    ------
    Metrics are reported on the target's own scale (``scale="original"``, the default). With a
    zero-inflated or skewed target, R² on that scale is dominated by the few largest values —
    two samples can swing it — so :meth:`summary` (and :meth:`summary_text`,
    :meth:`summary_seeds`, :meth:`seed_scores`) also scores on ``scale="log1p"``: the same
    out-of-fold predictions, both observed and predicted transformed with ``log1p`` before
    scoring (rmse, mae and bias then in log1p(target unit)). The scale is a *view* of the one
    predictions table, not extra metric names, so every metric, split and seed is available on
    both scales, the metric names stay those of :data:`METRICS` (which :mod:`soilbook.claims`
    checks), and nothing is stored twice. With ``target_transform="log1p"`` these are the
    scores of the inner model on the scale it was fitted on (``log1p(expm1(z)) = z`` up to
    rounding); :meth:`to_records` then writes both scales.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame
    timing_table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    fitted: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    test_index: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    convergence: pd.DataFrame = field(default_factory=_empty_convergence, repr=False)
    histories: dict[tuple[str, str, int, int, str], Any] = field(default_factory=dict, repr=False)
    stage_scores: pd.DataFrame = field(default_factory=_empty_stage_scores, repr=False)

    def __post_init__(self) -> None:
        # tables written before seeds existed: one run per model, with no seed recorded
        for name in ("scores", "predictions"):
            table = getattr(self, name)
            if "seed" not in table.columns and "split" in table.columns:
                table = table.copy()
                table.insert(int(table.columns.get_loc("split")) + 1, "seed", NO_SEED)
                setattr(self, name, table)

    @property
    def timings(self) -> dict[tuple[str, str], float]:
        """``{(model, split): seconds}``, fit + predict summed over folds (and seeds)."""
        return {
            (str(r.model), str(r.split)): float(r.fit_s + r.predict_s)
            for r in self.timing_table.itertuples(index=False)
        }

    @property
    def units(self) -> str:
        """The target's unit (that of rmse, mae and bias)."""
        return str(self.meta.get("units", ""))

    # -- who was fitted how ---------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The model names, in the order they were cross-validated."""
        return list(dict.fromkeys(self.predictions["model"].astype(str)))

    def _check_model(self, model: str) -> None:
        if model not in self.models:
            raise ParameterError(
                f"no model {model!r} in this cross-validation. Allowed: {self.models}."
            )

    def _check_split(self, split: str) -> None:
        splits = list(dict.fromkeys(self.predictions["split"].astype(str)))
        if split not in splits:
            raise ParameterError(f"no split {split!r} in this cross-validation. Allowed: {splits}.")

    def seeds_of(self, model: str) -> list[int]:
        """The seeds ``model`` was fitted with, in order (one entry for a model fitted once:
        its own ``seed``, or :data:`NO_SEED` when it has none)."""
        self._check_model(model)
        p = self.predictions
        return [int(s) for s in dict.fromkeys(p.loc[p["model"] == model, "seed"])]

    @property
    def n_samples(self) -> int:
        """The number of samples of the cross-validated dataset (positions 0 … n − 1)."""
        n = self.meta.get("n_samples")
        if n is None:
            return int(self.predictions["sample"].max()) + 1
        return int(n)

    def oof(self, model: str, split: str) -> np.ndarray:
        """Out-of-fold predictions of ``model`` under ``split``, in the target's unit.

        Returns
        -------
        ndarray (n_seeds, n_sample), float64
            Row ``i`` holds the predictions of seed ``seeds_of(model)[i]``, column ``j`` the
            prediction for the dataset's sample at position ``j`` by the fold that held it out;
            NaN where ``j`` is in no test fold of ``split``. A model fitted once has one row.

        Raises
        ------
        ParameterError
            Unknown model or split.
        SplitError
            A sample is in more than one test fold of ``split`` (then there is no single
            out-of-fold prediction: use :attr:`predictions`).
        """
        self._check_model(model)
        self._check_split(split)
        seeds = self.seeds_of(model)
        p = self.predictions
        p = p[(p["model"] == model) & (p["split"] == split)]
        out = np.full((len(seeds), self.n_samples), np.nan)
        for i, seed in enumerate(seeds):
            rows = p[p["seed"] == seed]
            samples = rows["sample"].to_numpy(dtype=int)
            if np.unique(samples).size != samples.size:
                raise SplitError(
                    f"split {split!r} tests some samples in more than one fold, so {model!r} has "
                    "several out-of-fold predictions for them. What to do: read "
                    "CVResult.predictions, which keeps every (fold, sample) row."
                )
            out[i, samples] = rows["predicted"].to_numpy(dtype=np.float64)
        return out

    def observed(self) -> np.ndarray:
        """The observed target by sample position, (n_sample,) in the target's unit (NaN for
        samples that no split tested) — the ``y`` that goes with :meth:`oof`."""
        out = np.full(self.n_samples, np.nan)
        p = self.predictions
        out[p["sample"].to_numpy(dtype=int)] = p["observed"].to_numpy(dtype=np.float64)
        return out

    def groups(self) -> np.ndarray:
        """The group label of every sample position, (n_sample,) str ("" for untested samples),
        for the group bootstrap of :mod:`soilbook.claims`."""
        out = np.full(self.n_samples, "", dtype=object)
        p = self.predictions
        out[p["sample"].to_numpy(dtype=int)] = p["group"].astype(str).to_numpy()
        return out.astype(str)

    # -- convergence ----------------------------------------------------------------------------

    def converged(self, model: str, split: str | None = None) -> bool:
        """Whether every fitted network of ``model`` converged: all folds, seeds and stages of
        ``split`` (of every split when ``None``).

        A model without training histories (a baseline) has nothing to converge and counts as
        converged. A row whose ``converged`` is missing counts as *not* converged.
        """
        self._check_model(model)
        if split is not None:
            self._check_split(split)
        c = self.convergence
        if c.empty:
            return True
        rows = c[c["model"] == model]
        if split is not None:
            rows = rows[rows["split"] == split]
        return all(isinstance(v, bool | np.bool_) and bool(v) for v in rows["converged"])

    def networks_record(self) -> list[dict[str, Any]]:
        """The convergence of every fitted network as JSON-ready dicts, for
        ``metrics.json["networks"]``.

        One dict per (model, split, seed, fold, stage) with the keys of
        :data:`NETWORK_RECORD_KEYS`: ``model, split, seed, fold`` (0-based), ``stage``,
        ``best_epoch`` (1-based), ``epochs_run``, ``final_train_loss``, ``final_val_loss``,
        ``best_val_loss`` (losses on the network's training scale, standardised target;
        ``None`` where there was no validation set), ``flattened``, ``converged``,
        ``early_stopped`` and ``reason``; then any further keys ``History.convergence()``
        gave (e.g. ``schedule``, ``inner_split``).
        """
        keys = [*NETWORK_RECORD_KEYS]
        keys += [c for c in self.convergence.columns if c not in NETWORK_RECORD_KEYS]
        return [
            {key: _json_scalar(row.get(key)) for key in keys}
            for row in self.convergence.to_dict(orient="records")
        ]

    # -- summaries --------------------------------------------------------------------------

    def _scaled(self, scale: str) -> pd.DataFrame:
        """The predictions table on ``scale`` (observed and predicted transformed)."""
        _check_scale(scale)
        if scale == "original":
            return self.predictions
        p = self.predictions.copy()
        low = min(float(p["observed"].min()), float(p["predicted"].min()))
        if low <= -1.0:
            raise ParameterError(
                f"scale='log1p' needs observed and predicted values > -1, but the minimum is "
                f"{low:g}. What to do: use scale='original' (a model without a log1p target can "
                "predict values <= -1)."
            )
        p["observed"] = np.log1p(p["observed"].to_numpy(dtype=np.float64))
        p["predicted"] = np.log1p(p["predicted"].to_numpy(dtype=np.float64))
        return p

    def _fold_scores(self, scale: str) -> pd.DataFrame:
        """Per-fold metrics on ``scale`` (the :attr:`scores` table itself on the original)."""
        if _check_scale(scale) == "original":
            return self.scores
        rows = []
        keys = ["model", "split", "seed", "fold"]
        for key, g in self._scaled(scale).groupby(keys, sort=False):
            for metric, value in metrics_table(g["observed"], g["predicted"]).items():
                rows.append({**dict(zip(keys, key, strict=True)), "metric": metric, "value": value})
        return pd.DataFrame(rows)

    def seed_scores(
        self, metrics: Sequence[str] = METRICS, scale: str = "original"
    ) -> pd.DataFrame:
        """Pooled metrics of every seed: index ``model, split, seed``, one column per metric
        plus ``n`` (each computed on all out-of-fold predictions of that seed)."""
        rows = []
        for (m, s, seed), g in self._scaled(scale).groupby(["model", "split", "seed"], sort=False):
            rows.append(
                {
                    "model": m,
                    "split": s,
                    "seed": int(seed),
                    **metrics_table(g["observed"], g["predicted"], metrics),
                }
            )
        out = pd.DataFrame(rows).set_index(["model", "split", "seed"])
        out["n"] = out["n"].astype(int)
        return out

    def summary(
        self, pooled: bool = True, metrics: Sequence[str] = METRICS, scale: str = "original"
    ) -> pd.DataFrame:
        """A wide table, one row per (model, split), one column per metric.

        ``pooled=True`` computes each metric once on all out-of-fold predictions together
        (columns ``rmse, mae, ..., n``). ``pooled=False`` gives the mean and standard deviation
        over folds (columns ``rmse_mean, rmse_sd, ..., n_folds``), which shows how stable a
        model is. For a model repeated over seeds both are computed per seed and then averaged
        over the seeds (see "Seeds" in the class docstring; :meth:`summary_seeds` gives their
        spread). ``scale`` is ``"original"`` (the target's unit) or ``"log1p"`` (see "Scales").
        """
        if pooled:
            return self._over_seeds(metrics, scale)[[*metrics, "n"]]
        sc = self._fold_scores(scale)
        sc = sc[sc["metric"].isin(list(metrics))]
        agg = sc.groupby(["model", "split", "seed", "metric"], sort=False)["value"].agg(
            ["mean", "std"]
        )
        rows = []
        for (m, s), g in agg.groupby(level=[0, 1], sort=False):
            row = {"model": m, "split": s}
            for metric in metrics:
                cell = g.xs(metric, level="metric")
                for stat in ("mean", "std"):
                    values = cell[stat].to_numpy(dtype=np.float64)
                    value = float(values[0]) if values.size == 1 else float(values.mean())
                    row[f"{metric}_{'sd' if stat == 'std' else stat}"] = value
            row["n_folds"] = int(sc[(sc.model == m) & (sc.split == s)]["fold"].nunique())
            rows.append(row)
        return pd.DataFrame(rows).set_index(["model", "split"])

    def summary_seeds(
        self, metrics: Sequence[str] = METRICS, scale: str = "original"
    ) -> pd.DataFrame:
        """Pooled metrics averaged over seeds with their spread: index ``model, split``;
        columns ``<metric>`` (the mean over seeds, as in :meth:`summary`) and
        ``<metric>_seed_sd`` (the standard deviation over seeds, ddof=1; NaN for a model fitted
        once) for every metric, and ``n_seeds``."""
        columns = [c for metric in metrics for c in (metric, f"{metric}_seed_sd")]
        return self._over_seeds(metrics, scale)[[*columns, "n_seeds"]]

    def _over_seeds(self, metrics: Sequence[str], scale: str) -> pd.DataFrame:
        """:meth:`seed_scores` per (model, split) over its seeds: ``<metric>`` (mean),
        ``<metric>_seed_sd`` (ddof=1; NaN for one seed), ``n`` (samples scored, as int) and
        ``n_seeds``."""
        per_seed = self.seed_scores(metrics, scale).reset_index()
        rows = []
        for (m, s), g in per_seed.groupby(["model", "split"], sort=False):
            row: dict[str, Any] = {"model": m, "split": s}
            for metric in metrics:
                values = g[metric].to_numpy(dtype=np.float64)
                row[metric] = float(values[0]) if values.size == 1 else float(values.mean())
                row[f"{metric}_seed_sd"] = (
                    float(values.std(ddof=1)) if values.size > 1 else float("nan")
                )
            row["n"] = int(g["n"].iloc[0])
            row["n_seeds"] = len(g)
            rows.append(row)
        out = pd.DataFrame(rows).set_index(["model", "split"])
        out["n"] = out["n"].astype(int)
        return out

    def summary_text(
        self, digits: int = 2, metrics: Sequence[str] = METRICS, scale: str = "original"
    ) -> pd.DataFrame:
        """``mean ± sd`` over folds as strings, for display."""
        s = self.summary(pooled=False, metrics=metrics, scale=scale)
        return pd.DataFrame(
            {
                m: [
                    f"{a:.{digits}f} ± {b:.{digits}f}"
                    for a, b in zip(s[f"{m}_mean"], s[f"{m}_sd"], strict=True)
                ]
                for m in metrics
            },
            index=s.index,
        )

    def held_out(self, ds: xr.Dataset, model: str, split: str) -> xr.Dataset:
        """The rows of ``ds`` that ``fitted[(model, split)]`` never saw (its last test fold)."""
        return subset(ds, self.test_index[(model, split)])

    # -- serialisation ----------------------------------------------------------------------

    def to_records(self, histories: bool = True) -> dict[str, Any]:
        """Everything but the fitted estimators, as JSON-ready Python objects.

        Keys: ``meta, summary_pooled, summary_folds, summary_seeds, scores, predictions,
        timings, test_index, convergence, stage_scores`` and, with ``histories``, ``histories``
        (one record
        per fitted network and stage with its per-epoch ``epoch, train_loss, val_loss``
        lists). With ``target_transform="log1p"`` also ``summary_pooled_log1p`` (the pooled
        metrics on the log1p scale, see "Scales").
        """
        pooled = self.summary(pooled=True).reset_index()
        folds = self.summary(pooled=False).reset_index()
        out: dict[str, Any] = {
            "meta": _jsonable(self.meta),
            "summary_pooled": _jsonable(pooled.to_dict(orient="records")),
            "summary_folds": _jsonable(folds.to_dict(orient="records")),
            "summary_seeds": _jsonable(self.summary_seeds().reset_index().to_dict("records")),
        }
        if self.meta.get("target_transform") == "log1p":
            log_pooled = self.summary(pooled=True, scale="log1p").reset_index()
            out["summary_pooled_log1p"] = _jsonable(log_pooled.to_dict(orient="records"))
        out.update(
            {
                "scores": _jsonable(self.scores.to_dict(orient="records")),
                "predictions": _jsonable(self.predictions.to_dict(orient="records")),
                "timings": _jsonable(self.timing_table.to_dict(orient="records")),
                "test_index": [
                    {"model": m, "split": s, "index": idx.tolist()}
                    for (m, s), idx in self.test_index.items()
                ],
                "convergence": self.networks_record(),
                "stage_scores": _jsonable(self.stage_scores.to_dict(orient="records")),
            }
        )
        if histories:
            out["histories"] = [
                {
                    **dict(zip(_FIT_KEYS, key, strict=True)),
                    **{col: _jsonable(list(_history_column(h, col))) for col in _HISTORY_COLUMNS},
                }
                for key, h in self.histories.items()
            ]
        return out

    def to_json(
        self, path: str | Path | None = None, indent: int | None = 1, histories: bool = True
    ) -> str:
        """Serialise (without fitted estimators); write to ``path`` when given. Returns the text.

        ``histories=False`` leaves the per-epoch learning curves out (the convergence table
        stays)."""
        text = json.dumps(self.to_records(histories=histories), indent=indent, allow_nan=True)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> CVResult:
        """Read what :meth:`to_json` wrote (a path or the JSON text). ``fitted`` is empty;
        ``histories`` holds dicts of per-epoch lists (when they were written)."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        rec = json.loads(text)
        convergence = pd.DataFrame(rec.get("convergence", []))
        if convergence.empty:
            convergence = _empty_convergence()
        stage_scores = pd.DataFrame(rec.get("stage_scores", []))
        if stage_scores.empty:
            stage_scores = _empty_stage_scores()
        return cls(
            scores=pd.DataFrame(rec["scores"]),
            predictions=pd.DataFrame(rec["predictions"]),
            timing_table=pd.DataFrame(rec["timings"]),
            meta=rec.get("meta", {}),
            test_index={
                (r["model"], r["split"]): np.asarray(r["index"], dtype=int)
                for r in rec.get("test_index", [])
            },
            convergence=convergence,
            histories={
                (r["model"], r["split"], int(r["seed"]), int(r["fold"]), r["stage"]): {
                    col: list(r.get(col, [])) for col in _HISTORY_COLUMNS
                }
                for r in rec.get("histories", [])
            },
            stage_scores=stage_scores,
        )


def check_one_of(value: str, allowed: Sequence[str], said: str, note: str) -> str:
    """``value`` when it is in ``allowed``, else a :class:`ParameterError` reading
    ``"{said} {value!r}. Allowed: [...]{note}"`` (``note``: the rest of the sentence, e.g.
    what the names mean or what to do, starting with its punctuation)."""
    if value not in allowed:
        raise ParameterError(f"{said} {value!r}. Allowed: {list(allowed)}{note}")
    return value


def _check_scale(scale: str) -> str:
    return check_one_of(
        scale,
        SCALES,
        "scale =",
        " (metrics on the target's unit, or on log1p of observed and predicted values).",
    )


#: The per-epoch lists of a History that :meth:`CVResult.to_records` writes.
_HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss")


def _history_column(history: Any, name: str) -> Sequence[Any]:
    """``history[name]`` of a History (attribute) or of a dict; empty when it lacks one."""
    if isinstance(history, Mapping):
        return history.get(name, [])
    return getattr(history, name, [])


def _json_scalar(value: Any) -> Any:
    """One table cell as plain JSON: numpy scalars unwrapped, NaN and NA as ``None``."""
    value = _jsonable(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is not None and not isinstance(value, float | int | str | bool):
        try:
            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from soilbook.progress import progress_bar

    return progress_bar(total=total, desc=desc, leave=False)


def _check_cv_args(estimators: Mapping[str, Any], target_transform: str) -> None:
    if target_transform not in ("none", "log1p"):
        raise ParameterError(f"target_transform = {target_transform!r}. Allowed: 'none', 'log1p'.")
    if not estimators:
        raise ParameterError(
            "no estimators given. What to do: pass e.g. {'RF': RandomForestBaseline()}."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_seeds(seeds: Sequence[int] | None) -> list[int] | None:
    """``seeds`` as a list of distinct ints (None stays None)."""
    if seeds is None:
        return None
    values = list(seeds) if isinstance(seeds, Iterable) and not isinstance(seeds, str) else None
    if not values or not all(_is_int(s) for s in values):
        raise ParameterError(
            f"seeds = {seeds!r}. Expected: None (each model's own seed, one run) or a non-empty "
            "list of ints, e.g. [0, 1, 2]."
        )
    if len(set(values)) != len(values):
        raise ParameterError(
            f"seeds = {values} repeats a seed. What to do: give distinct seeds (a repeated seed "
            "refits the same network and would count it twice)."
        )
    return [int(s) for s in values]


def _check_n_jobs(n_jobs: int) -> int:
    if not _is_int(n_jobs) or not (n_jobs >= 1 or n_jobs == -1):
        raise ParameterError(
            f"n_jobs = {n_jobs!r}. Expected: an int >= 1 (processes fitting folds at once) or "
            "-1 (one per CPU core). What to do: use 1 to fit in this process."
        )
    return int(n_jobs)


def _check_splits(splits: Mapping[str, Sequence[tuple[Any, Any]]], n: int) -> None:
    """Every fold of every split: non-empty, disjoint train/test rows within 0..n-1 (no fitting)."""
    for label, folds in splits.items():
        if len(folds) == 0:
            raise SplitError(f"split {label!r} has no folds.")
        for k, (tr, te) in enumerate(folds):
            tr, te = np.asarray(tr, dtype=int), np.asarray(te, dtype=int)
            if te.size == 0 or tr.size == 0:
                raise SplitError(f"split {label!r} fold {k} has an empty training or test set.")
            if tr.min() < 0 or te.min() < 0 or tr.max() >= n or te.max() >= n:
                raise SplitError(f"split {label!r} fold {k} has indices outside 0..{n - 1}.")
            if np.intersect1d(tr, te).size:
                raise SplitError(
                    f"split {label!r} fold {k}: {np.intersect1d(tr, te).size} samples are in both "
                    "the training and the test set. What to do: make disjoint folds."
                )


def repeats_over_seeds(estimator: Any) -> bool:
    """Whether :func:`cross_validate` fits ``estimator`` once per seed of ``seeds``: it has a
    ``seed`` parameter (``get_params(deep=False)``) *and* a ``training_histories`` method (the
    networks). Baselines, whose seed only fixes a forest or an inner search, run once."""
    try:
        params = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        return False
    return "seed" in params and callable(getattr(estimator, "training_histories", None))


def _own_seed(estimator: Any) -> int:
    """The estimator's own integer ``seed`` parameter, or :data:`NO_SEED`."""
    try:
        seed = estimator.get_params(deep=False).get("seed")
    except (AttributeError, TypeError):
        return NO_SEED
    return int(seed) if _is_int(seed) else NO_SEED


def _inner_model(model: Any) -> Any:
    """The model inside a fitted wrapper: follows ``estimator_`` (:class:`Log1pTarget`) and a
    ``Pipeline``'s last step (the same rule as :func:`soilbook.notebook.unwrap`)."""
    while True:
        steps = getattr(model, "steps", None)
        if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
            model = steps[-1][1]
        elif getattr(model, "estimator_", None) is not None:
            model = model.estimator_
        else:
            return model


def _convergence_row(history: Any) -> dict[str, Any]:
    """``history.convergence()``; a History without that method gives what it can, with
    ``converged=False`` (unknown is not converged)."""
    method = getattr(history, "convergence", None)
    if callable(method):
        return dict(method())
    epochs = list(_history_column(history, "epoch"))
    train = list(_history_column(history, "train_loss"))
    val = list(_history_column(history, "val_loss"))
    return {
        "best_epoch": _history_column(history, "best_epoch") or None,
        "epochs_run": len(epochs),
        "final_train_loss": float(train[-1]) if train else None,
        "final_val_loss": float(val[-1]) if val else None,
        "converged": False,
        "reason": "this history has no convergence() method; convergence unknown",
    }


@dataclass(frozen=True)
class _FoldFit:
    """One fold's fitted model, its held-out predictions (n_test,) and the seconds it took."""

    model: Any
    predicted: np.ndarray
    fit_s: float
    predict_s: float


def _fit_predict_fold(
    name: str,
    est: Any,
    ds: xr.Dataset,
    train: np.ndarray,
    test: np.ndarray,
    target_transform: str,
) -> _FoldFit:
    """Clone ``est`` (wrapped in :class:`Log1pTarget` for ``"log1p"``), fit it on the ``train``
    rows and predict the ``test`` rows, timing both (``time.perf_counter``, seconds)."""
    model = clone(est)
    if target_transform == "log1p":
        model = Log1pTarget(model)
    ds_train = subset(ds, train)
    ds_test = subset(ds, test)
    t0 = time.perf_counter()
    model.fit(ds_train)
    t1 = time.perf_counter()
    pred = np.asarray(model.predict(ds_test), dtype=np.float64).ravel()
    t2 = time.perf_counter()
    if pred.size != test.size:
        raise ValueError(
            f"{name} predicted {pred.size} values for {test.size} test samples. "
            "Expected: one prediction per sample, shape (n_sample,)."
        )
    return _FoldFit(model, pred, t1 - t0, t2 - t1)


@dataclass(frozen=True)
class _Task:
    """One fit of the plan: ``name`` under split ``label``, seed ``seed``, fold ``fold``.

    ``reseed``: the clone gets ``set_params(seed=seed)`` (a model repeated over seeds);
    ``keep_model``: the fitted model comes back (last fold of the first seed).
    """

    name: str
    label: str
    seed: int
    reseed: bool
    fold: int
    n_folds: int
    train: np.ndarray
    test: np.ndarray
    keep_model: bool

    def where(self) -> str:
        seed = "" if self.seed == NO_SEED else f" / seed {self.seed}"
        return f"{self.name} / {self.label}{seed} / fold {self.fold + 1}/{self.n_folds}"


@dataclass
class _TaskResult:
    """What one fit sends back: held-out predictions (n_test,), seconds, the model when kept,
    each stage's History and convergence, or the error it raised."""

    predicted: np.ndarray | None = None
    fit_s: float = 0.0
    predict_s: float = 0.0
    model: Any = None
    histories: dict[str, Any] = field(default_factory=dict)
    convergence: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    error: BaseException | None = None


def _plan(
    estimators: Mapping[str, Any],
    splits: Mapping[str, Sequence[tuple[Any, Any]]],
    seeds: list[int] | None,
) -> list[_Task]:
    """Every fit, in the order of the tables: model, split, seed, fold."""
    tasks = []
    for name, est in estimators.items():
        repeated = seeds is not None and repeats_over_seeds(est)
        model_seeds = seeds if repeated else [_own_seed(est)]
        for label, folds in splits.items():
            for i, seed in enumerate(model_seeds):
                for k, (tr, te) in enumerate(folds):
                    tasks.append(
                        _Task(
                            name=name,
                            label=label,
                            seed=int(seed),
                            reseed=repeated,
                            fold=k,
                            n_folds=len(folds),
                            train=np.asarray(tr, dtype=int),
                            test=np.asarray(te, dtype=int),
                            keep_model=(i == 0 and k == len(folds) - 1),
                        )
                    )
    return tasks


def _run_task(task: _Task, est: Any, ds: xr.Dataset, target_transform: str) -> _TaskResult:
    """Fit and predict one task; read the fitted network's training histories."""
    if task.reseed:
        est = clone(est).set_params(seed=task.seed)
    fold = _fit_predict_fold(task.name, est, ds, task.train, task.test, target_transform)
    inner = _inner_model(fold.model)
    method = getattr(inner, "training_histories", None)
    stages = dict(method()) if callable(method) else {}
    scorer = getattr(inner, "held_out_stage_scores", None)
    return _TaskResult(
        predicted=fold.predicted,
        fit_s=fold.fit_s,
        predict_s=fold.predict_s,
        model=fold.model if task.keep_model else None,
        histories=stages,
        convergence={stage: _convergence_row(h) for stage, h in stages.items()},
        stage_scores=dict(scorer()) if callable(scorer) else {},
    )


def _one_thread() -> Any:
    """A context in which torch and the BLAS/OpenMP pools use one thread (in a worker)."""
    import contextlib
    import sys

    stack = contextlib.ExitStack()
    torch = sys.modules.get("torch")  # imported when the task's estimator was unpickled
    if torch is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        stack.callback(torch.set_num_threads, before)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    else:
        stack.enter_context(threadpool_limits(limits=1))
    return stack


def _worker_task(
    index: int, task: _Task, est: Any, ds: xr.Dataset, target_transform: str
) -> tuple[int, _TaskResult]:
    """:func:`_run_task` in a worker process, on one thread; an error comes back as a value
    (its own type and message, a note saying where) instead of a remote traceback."""
    try:
        with _one_thread():
            return index, _run_task(task, est, ds, target_transform)
    except Exception as exc:  # sent to the parent, which raises it
        return index, _TaskResult(error=_portable_error(exc, task))


def _portable_error(exc: Exception, task: _Task) -> BaseException:
    """``exc`` ready to cross the process boundary, with a note on where it was raised."""
    import pickle
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}"
    note = (
        f"(raised in a cross-validation worker process while fitting {task.where()}"
        f"{at if frames else ''}; run with n_jobs=1 for the full traceback)"
    )
    try:
        out = pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception that cannot be pickled: keep its text
        out = RuntimeError(f"{type(exc).__name__}: {exc}")
    out.__traceback__ = None
    out.add_note(note)
    return out


def _run_tasks(
    tasks: list[_Task],
    estimators: Mapping[str, Any],
    ds: xr.Dataset,
    target_transform: str,
    n_jobs: int,
    bar: Any,
) -> list[_TaskResult]:
    """The tasks' results, in task order: in this process when ``n_jobs`` is 1 (or there is a
    single task), else in ``n_jobs`` loky worker processes (one thread each).

    Workers start with the BLAS/OpenMP thread limits at 1 (``inner_max_num_threads``) and each
    task also sets torch's threads to 1. The first error stops the run and is raised here.
    """
    if n_jobs == 1 or len(tasks) == 1:
        done = []
        for task in tasks:
            if bar is not None:
                bar.set_postfix_str(task.where())
            try:
                done.append(_run_task(task, estimators[task.name], ds, target_transform))
            except Exception as exc:
                exc.add_note(f"(raised while cross-validation was fitting {task.where()})")
                raise
            if bar is not None:
                bar.update(1)
        return done
    from joblib import Parallel, delayed, parallel_config

    results: list[_TaskResult | None] = [None] * len(tasks)
    with parallel_config(backend="loky", inner_max_num_threads=1), warnings.catch_warnings():
        # loky replaces a worker that it judged to leak memory and says so; the task is re-run
        # by another worker, so this is housekeeping, not something for the reader
        warnings.filterwarnings("ignore", message="A worker stopped while", category=UserWarning)
        # max_nbytes=None: every task gets its own copy of the data, never a read-only memmap
        run = Parallel(n_jobs=n_jobs, return_as="generator_unordered", max_nbytes=None)(
            delayed(_worker_task)(i, task, estimators[task.name], ds, target_transform)
            for i, task in enumerate(tasks)
        )
        try:
            for i, result in run:
                if result.error is not None:
                    raise result.error
                results[i] = result
                if bar is not None:
                    bar.set_postfix_str(f"done: {tasks[i].where()}")
                    bar.update(1)
        finally:
            with warnings.catch_warnings():  # "n tasks ... have been cancelled" after an error
                warnings.filterwarnings(
                    "ignore", message=".*have been cancelled", category=UserWarning
                )
                run.close()
    return [r for r in results if r is not None]


@dataclass
class _CVTables:
    """What the fits collect, row by row, into the tables of a :class:`CVResult`.

    ``y`` (n_sample,) is the target in its unit and ``groups`` (n_sample,) the group labels.
    """

    y: np.ndarray
    groups: np.ndarray
    score_rows: list[dict[str, Any]] = field(default_factory=list)
    pred_frames: list[pd.DataFrame] = field(default_factory=list)
    timing_rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fitted: dict[tuple[str, str], Any] = field(default_factory=dict)
    test_index: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    convergence_rows: list[dict[str, Any]] = field(default_factory=list)
    stage_score_rows: list[dict[str, Any]] = field(default_factory=list)
    histories: dict[tuple[str, str, int, int, str], Any] = field(default_factory=dict)

    def add_fold(
        self, name: str, label: str, seed: int, k: int, test: np.ndarray, pred: np.ndarray
    ) -> None:
        """The metrics of fold ``k`` and its held-out predictions."""
        y = self.y
        for metric, value in metrics_table(y[test], pred).items():
            self.score_rows.append(
                {
                    "model": name,
                    "split": label,
                    "seed": seed,
                    "fold": k,
                    "metric": metric,
                    "value": value,
                }
            )
        self.pred_frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "split": label,
                    "seed": seed,
                    "fold": k,
                    "sample": test,
                    "group": self.groups[test],
                    "observed": y[test],
                    "predicted": pred,
                }
            )
        )

    def add(self, task: _Task, result: _TaskResult) -> None:
        """One finished task: scores, predictions, timings, kept model, histories."""
        assert result.predicted is not None
        self.add_fold(task.name, task.label, task.seed, task.fold, task.test, result.predicted)
        key = (task.name, task.label)
        row = self.timing_rows.setdefault(
            key,
            {
                "model": task.name,
                "split": task.label,
                "n_folds": task.n_folds,
                "n_seeds": 0,
                "fit_s": 0.0,
                "predict_s": 0.0,
            },
        )
        row["fit_s"] += result.fit_s
        row["predict_s"] += result.predict_s
        if task.fold == 0:
            row["n_seeds"] += 1
        if task.keep_model:
            self.fitted[key] = result.model
            self.test_index[key] = task.test
        for stage, history in result.histories.items():
            fit_key = (task.name, task.label, task.seed, task.fold, str(stage))
            self.histories[fit_key] = history
            self.convergence_rows.append(
                {**dict(zip(_FIT_KEYS, fit_key, strict=True)), **result.convergence[stage]}
            )
        for stage, scores in result.stage_scores.items():
            fit_key = (task.name, task.label, task.seed, task.fold, str(stage))
            self.stage_score_rows.append(
                {
                    **dict(zip(_FIT_KEYS, fit_key, strict=True)),
                    **{k: float(v) for k, v in scores.items()},
                }
            )

    def to_result(self, meta: dict[str, Any]) -> CVResult:
        if self.convergence_rows:
            convergence = pd.DataFrame(self.convergence_rows)
            extra = [c for c in convergence.columns if c not in NETWORK_RECORD_KEYS]
            convergence = convergence.reindex(columns=[*NETWORK_RECORD_KEYS, *extra])
        else:
            convergence = _empty_convergence()
        return CVResult(
            scores=pd.DataFrame(self.score_rows),
            predictions=pd.concat(self.pred_frames, ignore_index=True),
            timing_table=pd.DataFrame(list(self.timing_rows.values())),
            meta=meta,
            fitted=self.fitted,
            test_index=self.test_index,
            convergence=convergence,
            histories=self.histories,
            stage_scores=(
                pd.DataFrame(self.stage_score_rows)
                if self.stage_score_rows
                else _empty_stage_scores()
            ),
        )


def _cv_meta(
    ds: xr.Dataset,
    estimators: Mapping[str, Any],
    splits: Mapping[str, Sequence[tuple[Any, Any]]],
    target_transform: str,
    seeds: list[int] | None,
) -> dict[str, Any]:
    """Target name and unit, the data's provenance, the split descriptions and the models."""
    descriptions = dict(getattr(splits, "descriptions", {}) or {})
    return {
        "target_name": str(
            ds.attrs.get("target_name", ds["target"].attrs.get("long_name", "target"))
        ),
        "units": str(ds["target"].attrs.get("units", "")),
        "simulated": bool(ds.attrs.get("simulated", False)),
        "source": str(ds.attrs.get("source", "")),
        "group_kind": str(ds.attrs.get("group_kind", "group")),
        "n_samples": int(ds.sizes[SAMPLE]),
        "target_transform": target_transform,
        "split_descriptions": {k: descriptions.get(k, k) for k in splits},
        "models": list(estimators),
        "seeds": seeds,
        "repeated_over_seeds": [
            name
            for name, est in estimators.items()
            if seeds is not None and repeats_over_seeds(est)
        ],
    }


def cross_validate(
    estimators: Mapping[str, Any],
    ds: xr.Dataset,
    splits: Mapping[str, Sequence[tuple[Any, Any]]],
    target_transform: str = "none",
    progress: bool = True,
    seeds: Sequence[int] | None = None,
    n_jobs: int = 1,
) -> CVResult:
    """Fit and score every estimator on every fold of every split, on held-out rows only.

    Parameters
    ----------
    estimators : ``{name: estimator}``; each has ``fit(ds)`` and ``predict(ds)`` on schema
        Datasets and is cloned (``sklearn.base.clone``) for every fold, so it is never modified.
    ds : the sample set (validated with :func:`soilbook.data.schema.validate_samples`).
    splits : ``{label: [(train_idx, test_idx), ...]}``, e.g. from :func:`make_splits`.
    target_transform : ``"none"`` or ``"log1p"`` — with ``"log1p"`` every estimator is wrapped in
        :class:`Log1pTarget` (fit on log1p(target), predictions back-transformed with expm1, so
        scores stay in the target's unit; expect a negative bias, see :class:`Log1pTarget`,
        which also passes the transform to a model's auxiliary labelled data).
    progress : show a progress bar over fits (it advances as each fit finishes).
    seeds : ``None`` (default): every estimator is fitted once per fold with its own
        parameters, as before seeds existed. A list of distinct ints: estimators that have a
        ``seed`` parameter *and* a ``training_histories`` method (the networks, see
        :func:`repeats_over_seeds`) are fitted once per seed, as
        ``clone(est).set_params(seed=s)``; the others (baselines) are fitted once.
    n_jobs : processes that fit at once. ``1`` (default) fits in this process, in order. More
        runs the (model, split, seed, fold) fits in ``n_jobs`` joblib/loky worker processes,
        each limited to one torch and one BLAS thread (``-1``: one process per core). The
        tables are assembled in the same order either way, so the results equal those of
        ``n_jobs=1`` wherever a fit does not depend on its thread count (all baselines; the
        small networks, which train on one thread anyway; any network with
        ``cpu_threads=1``) — larger networks may differ in the last digits, as multithreaded
        sums do. Fitted models come back pickled. An error in a worker is raised here with
        its own type and message and a note naming the fit (rerun with ``n_jobs=1`` for the
        full traceback). Notebooks take ``n_jobs`` from a parameter; on a GPU keep it at 1
        unless the networks are small.

    Returns
    -------
    CVResult
        With ``predictions`` and ``scores`` per seed, ``fitted`` the last fold of the first
        seed, and ``convergence`` / ``histories`` for every fitted network (every fold, seed
        and training stage).
    """
    from soilbook.data.schema import validate_samples

    validate_samples(ds)
    _check_cv_args(estimators, target_transform)
    seed_list = _check_seeds(seeds)
    n_jobs = _check_n_jobs(n_jobs)
    tables = _CVTables(y=target_values(ds), groups=np.asarray(ds["group"].values).astype(str))
    _check_splits(splits, ds.sizes[SAMPLE])  # before any fitting
    tasks = _plan(estimators, splits, seed_list)
    bar = _progress(len(tasks), progress, "cross-validation")
    try:
        results = _run_tasks(tasks, estimators, ds, target_transform, n_jobs, bar)
    finally:
        if bar is not None:
            bar.close()
    for task, result in zip(tasks, results, strict=True):
        tables.add(task, result)
    return tables.to_result(_cv_meta(ds, estimators, splits, target_transform, seed_list))


def paper_comparison(
    summary: pd.DataFrame,
    paper: Mapping[str, float],
    model: str | None = None,
    split: str | None = None,
) -> pd.DataFrame:
    """The paper's headline numbers beside those measured here.

    Parameters
    ----------
    summary : ``CVResult.summary()`` (index ``model, split``; one column per metric).
    paper : ``{"rmse": 3.6, "mae": 1.7, "r2": 0.68}`` — only these metrics are compared.
    model, split : restrict to one model and/or split; by default every row of ``summary``
        becomes a column ``"<model> / <split>"``.

    Returns
    -------
    DataFrame indexed by metric with columns ``paper`` and one per (model, split), plus
    ``difference`` (measured − paper) when exactly one (model, split) is compared.
    """
    s = summary
    if isinstance(s.index, pd.MultiIndex) and {"model", "split"} <= set(s.index.names):
        if model is not None:
            s = s[s.index.get_level_values("model") == model]
        if split is not None:
            s = s[s.index.get_level_values("split") == split]
    if s.empty:
        raise ValueError(f"no summary row for model={model!r}, split={split!r}.")
    unknown = [m for m in paper if m not in s.columns]
    if unknown:
        raise ValueError(
            f"paper metric(s) {unknown} are not in the summary columns {list(s.columns)}. "
            f"Use names from {list(METRICS)}."
        )
    out = pd.DataFrame(index=pd.Index(list(paper), name="metric"))
    out["paper"] = [float(v) for v in paper.values()]
    for idx, row in s.iterrows():
        col = " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        out[col] = [float(row[m]) for m in paper]
    if len(s) == 1:
        out["difference"] = out.iloc[:, 1] - out["paper"]
    out["units"] = [METRIC_INFO.get(m, {}).get("units", "") for m in paper]
    return out
