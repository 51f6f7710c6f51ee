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
"""

from __future__ import annotations

import json
import time
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
    "METRICS",
    "METRIC_INFO",
    "CVResult",
    "Log1pTarget",
    "SplitError",
    "Splits",
    "bias",
    "ccc",
    "cross_validate",
    "group_kfold",
    "mae",
    "make_splits",
    "metrics_table",
    "paper_comparison",
    "r2",
    "random_kfold",
    "rmse",
    "rpiq",
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
}


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


_METRIC_FUNCS: dict[str, Callable[[Any, Any], float]] = {
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
    "bias": bias,
    "ccc": ccc,
    "rpiq": rpiq,
}


def metric_function(name: str) -> Callable[[Any, Any], float]:
    """The function behind a metric name in :data:`METRICS`."""
    try:
        return _METRIC_FUNCS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}. Allowed: {list(METRICS)}.") from None


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
) -> Splits:
    """The cross-validation splits a notebook reports, by label.

    ``"random"`` is :func:`random_kfold`; ``"spatial"`` (alias ``"group"``, kept under the label
    you asked for) is :func:`group_kfold` on ``ds.group``. The dataset's ``attrs["group_kind"]``
    (e.g. ``"spatial block"``, ``"pedon"``) names what a group is in ``Splits.descriptions``.
    """
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
        else:
            raise SplitError(
                f"unknown split kind {kind!r}. Allowed: 'random', 'spatial' (or 'group'). "
                "What to do: build other splits yourself as a list of (train_idx, test_idx)."
            )
    return out


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
        self.estimator_ = clone(self.estimator).fit(ds_log)
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        return np.expm1(np.asarray(self.estimator_.predict(ds), dtype=np.float64).ravel())

    def score(self, ds: xr.Dataset, y: Any = None, sample_weight: Any = None) -> float:
        return r2(target_values(ds) if y is None else y, self.predict(ds))


# --------------------------------------------------------------------------------------------
# cross-validation
# --------------------------------------------------------------------------------------------


@dataclass
class CVResult:
    """Out-of-fold scores and predictions of :func:`cross_validate`.

    Attributes
    ----------
    scores : DataFrame
        Tidy per-fold metrics: columns ``model, split, fold, metric, value`` (``metric`` also
        includes ``n``, the test-fold size).
    predictions : DataFrame
        Columns ``model, split, fold, sample`` (position in the dataset), ``group, observed,
        predicted`` — every held-out prediction, in the target's unit.
    fitted : dict
        ``{(model, split): estimator}`` fitted on the **last** fold's training rows; the rows it
        never saw are ``test_index[(model, split)]`` (use them for permutation importance).
    timings : dict
        ``{(model, split): seconds}`` — fit + predict time summed over the folds
        (``pd.Series(result.timings)`` makes a table); :attr:`timing_table` splits it into
        ``fit_s`` and ``predict_s``.
    meta : dict
        Target name and unit, whether the data are simulated, the split descriptions, the target
        transform, and the dataset's source.
    """

    scores: pd.DataFrame
    predictions: pd.DataFrame
    timing_table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    fitted: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    test_index: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def timings(self) -> dict[tuple[str, str], float]:
        """``{(model, split): seconds}``, fit + predict summed over folds."""
        return {
            (str(r.model), str(r.split)): float(r.fit_s + r.predict_s)
            for r in self.timing_table.itertuples(index=False)
        }

    @property
    def units(self) -> str:
        """The target's unit (that of rmse, mae and bias)."""
        return str(self.meta.get("units", ""))

    def summary(self, pooled: bool = True, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
        """A wide table, one row per (model, split), one column per metric.

        ``pooled=True`` computes each metric once on all out-of-fold predictions together
        (columns ``rmse, mae, ..., n``). ``pooled=False`` gives the mean and standard deviation
        over folds (columns ``rmse_mean, rmse_sd, ...``), which shows how stable a model is.
        """
        rows = []
        if pooled:
            for (m, s), g in self.predictions.groupby(["model", "split"], sort=False):
                row = {"model": m, "split": s}
                row.update(metrics_table(g["observed"], g["predicted"], metrics))
                rows.append(row)
            out = pd.DataFrame(rows).set_index(["model", "split"])
            out["n"] = out["n"].astype(int)
            return out
        sc = self.scores[self.scores["metric"].isin(list(metrics))]
        agg = sc.groupby(["model", "split", "metric"], sort=False)["value"].agg(["mean", "std"])
        for (m, s), g in agg.groupby(level=[0, 1], sort=False):
            row: dict[str, Any] = {"model": m, "split": s}
            for metric in metrics:
                mean, sd = g.loc[(m, s, metric)]
                row[f"{metric}_mean"] = mean
                row[f"{metric}_sd"] = sd
            row["n_folds"] = int(
                self.scores[(self.scores.model == m) & (self.scores.split == s)]["fold"].nunique()
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index(["model", "split"])

    def summary_text(self, digits: int = 2, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
        """``mean ± sd`` over folds as strings, for display."""
        s = self.summary(pooled=False, metrics=metrics)
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

    def to_records(self) -> dict[str, Any]:
        """Everything but the fitted estimators, as JSON-ready Python objects."""
        pooled = self.summary(pooled=True).reset_index()
        folds = self.summary(pooled=False).reset_index()
        return {
            "meta": _jsonable(self.meta),
            "summary_pooled": _jsonable(pooled.to_dict(orient="records")),
            "summary_folds": _jsonable(folds.to_dict(orient="records")),
            "scores": _jsonable(self.scores.to_dict(orient="records")),
            "predictions": _jsonable(self.predictions.to_dict(orient="records")),
            "timings": _jsonable(self.timing_table.to_dict(orient="records")),
            "test_index": [
                {"model": m, "split": s, "index": idx.tolist()}
                for (m, s), idx in self.test_index.items()
            ],
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """Serialise (without fitted estimators); write to ``path`` when given. Returns the text."""
        text = json.dumps(self.to_records(), indent=indent, allow_nan=True)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> CVResult:
        """Read what :meth:`to_json` wrote (a path or the JSON text). ``fitted`` is empty."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        rec = json.loads(text)
        return cls(
            scores=pd.DataFrame(rec["scores"]),
            predictions=pd.DataFrame(rec["predictions"]),
            timing_table=pd.DataFrame(rec["timings"]),
            meta=rec.get("meta", {}),
            test_index={
                (r["model"], r["split"]): np.asarray(r["index"], dtype=int)
                for r in rec.get("test_index", [])
            },
        )


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


@dataclass
class _CVTables:
    """What the fold loop collects, row by row, into the tables of a :class:`CVResult`.

    ``y`` (n_sample,) is the target in its unit and ``groups`` (n_sample,) the group labels.
    """

    y: np.ndarray
    groups: np.ndarray
    score_rows: list[dict[str, Any]] = field(default_factory=list)
    pred_frames: list[pd.DataFrame] = field(default_factory=list)
    timing_rows: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[tuple[str, str], Any] = field(default_factory=dict)
    test_index: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def add_fold(self, name: str, label: str, k: int, test: np.ndarray, pred: np.ndarray) -> None:
        """The metrics of fold ``k`` and its held-out predictions."""
        y = self.y
        for metric, value in metrics_table(y[test], pred).items():
            self.score_rows.append(
                {"model": name, "split": label, "fold": k, "metric": metric, "value": value}
            )
        self.pred_frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "split": label,
                    "fold": k,
                    "sample": test,
                    "group": self.groups[test],
                    "observed": y[test],
                    "predicted": pred,
                }
            )
        )

    def to_result(self, meta: dict[str, Any]) -> CVResult:
        return CVResult(
            scores=pd.DataFrame(self.score_rows),
            predictions=pd.concat(self.pred_frames, ignore_index=True),
            timing_table=pd.DataFrame(self.timing_rows),
            meta=meta,
            fitted=self.fitted,
            test_index=self.test_index,
        )


def _cross_validate_split(
    name: str,
    est: Any,
    label: str,
    folds: Sequence[tuple[Any, Any]],
    ds: xr.Dataset,
    target_transform: str,
    tables: _CVTables,
    bar: Any,
) -> None:
    """Every fold of one split for one estimator; keeps the last fold's model and test rows."""
    fit_s = pred_s = 0.0
    for k, (tr, te) in enumerate(folds):
        tr, te = np.asarray(tr, dtype=int), np.asarray(te, dtype=int)
        if bar is not None:
            bar.set_postfix_str(f"{name} / {label} / fold {k + 1}/{len(folds)}")
        fold = _fit_predict_fold(name, est, ds, tr, te, target_transform)
        fit_s += fold.fit_s
        pred_s += fold.predict_s
        tables.add_fold(name, label, k, te, fold.predicted)
        if k == len(folds) - 1:
            tables.fitted[(name, label)] = fold.model
            tables.test_index[(name, label)] = te
        if bar is not None:
            bar.update(1)
    tables.timing_rows.append(
        {"model": name, "split": label, "n_folds": len(folds), "fit_s": fit_s, "predict_s": pred_s}
    )


def _cv_meta(
    ds: xr.Dataset,
    estimators: Mapping[str, Any],
    splits: Mapping[str, Sequence[tuple[Any, Any]]],
    target_transform: str,
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
    }


def cross_validate(
    estimators: Mapping[str, Any],
    ds: xr.Dataset,
    splits: Mapping[str, Sequence[tuple[Any, Any]]],
    target_transform: str = "none",
    progress: bool = True,
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
        scores stay in the target's unit; expect a negative bias, see :class:`Log1pTarget`).
    progress : show a progress bar over fits.

    Returns
    -------
    CVResult
    """
    from soilbook.data.schema import validate_samples

    validate_samples(ds)
    _check_cv_args(estimators, target_transform)
    tables = _CVTables(y=target_values(ds), groups=np.asarray(ds["group"].values).astype(str))
    _check_splits(splits, ds.sizes[SAMPLE])  # before any fitting
    total = len(estimators) * sum(len(f) for f in splits.values())
    bar = _progress(total, progress, "cross-validation")
    try:
        for name, est in estimators.items():
            for label, folds in splits.items():
                _cross_validate_split(name, est, label, folds, ds, target_transform, tables, bar)
    finally:
        if bar is not None:
            bar.close()
    return tables.to_result(_cv_meta(ds, estimators, splits, target_transform))


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
