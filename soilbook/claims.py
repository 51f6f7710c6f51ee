"""Claims checks: a paper's claim beside what the code measured, with an interval and a verdict.

Every chapter ends with a table of the paper's claims. This module computes each row from
out-of-fold predictions, so the rule that turns numbers into a verdict is written (and tested)
once, not in notebook cells.

Verdicts
--------
Exactly one of :data:`VERDICTS`: ``"reproduced"``, ``"not reproduced"``, ``"inconclusive"``,
``"not testable here"``.

Orientation
-----------
Comparisons are expressed as the *improvement of A over B* in the metric's own unit, so a
positive number always means that A is better, whatever the metric:

==============  ==========================  ====================================
metric          better                      improvement of A over B
==============  ==========================  ====================================
``rmse, mae``   lower                       metric(B) − metric(A)   (target unit)
``r2, ccc``     higher                      metric(A) − metric(B)   (unitless)
``rpiq``        higher                      metric(A) − metric(B)   (unitless)
``bias``        closer to 0                 |bias(B)| − |bias(A)|   (target unit)
==============  ==========================  ====================================

Intervals
---------
:func:`paired_bootstrap` resamples the *units* of the out-of-fold predictions with replacement
— whole groups (spatial blocks, regions, pedons) when ``groups`` is given, single samples
otherwise — and recomputes the improvement on the same resampled rows for both models (a
paired bootstrap). The interval is the percentile interval of the replicates at ``level``.
Resample groups whenever the cross-validation was grouped: errors of neighbouring samples are
correlated, and a sample bootstrap then gives intervals that are too narrow.

:func:`seed_bootstrap` adds the training randomness of networks repeated over seeds: a
two-stage bootstrap that resamples the units as above *and*, independently, the seeds (see its
docstring for the exact estimator).

Verdict rules
-------------
"A beats B" (:func:`beats_verdict`, :func:`claim_beats`), checked in this order:

1. a network involved did not converge → ``inconclusive`` (the numbers describe a training
   failure, not the method);
2. A has no skill — R² on the original scale ≤ ``skill_threshold`` (default 0: no better than
   predicting the mean) → ``not reproduced`` (a comparison between models without skill is never
   "reproduced");
3. the interval contains 0 (bounds included) → ``inconclusive``;
4. the interval lies wholly below 0 (B's side) → ``not reproduced``;
5. the interval lies wholly above 0 → ``reproduced``.

Threshold claims (:func:`claim_threshold`) and paper-number claims (:func:`claim_paper_number`)
follow the same logic; their docstrings give the rules.

Records
-------
Every check returns a :class:`Claim` — one record shape for all chapters, written to
``metrics.json`` with :meth:`Claim.to_dict` and shown with :func:`claims_table`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from soilbook.errors import ParameterError
from soilbook.evaluate import EXTRA_METRICS, METRIC_INFO, METRICS, check_one_of, metric_function

__all__ = [
    "INCONCLUSIVE",
    "NOT_REPRODUCED",
    "NOT_TESTABLE",
    "REPRODUCED",
    "VERDICTS",
    "Claim",
    "Improvement",
    "beats_verdict",
    "claim_beats",
    "claim_not_testable",
    "claim_paper_number",
    "claim_threshold",
    "claims_table",
    "data_label",
    "improvement",
    "paired_bootstrap",
    "seed_bootstrap",
    "skill",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable here"
#: The only verdicts a claims table may show.
VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)

#: Fewest seeds :func:`seed_bootstrap` accepts.
MIN_SEEDS = 3
#: Fewest bootstrap replicates accepted (percentile intervals need a few hundred to be stable).
MIN_BOOT = 100

ArrayLike = Any  # anything np.asarray turns into a float array

# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def _check_metric(metric: str) -> str:
    return check_one_of(
        metric,
        (*METRICS, *EXTRA_METRICS),
        "unknown metric",
        ". What to do: pass one of these names (e.g. metric='rmse').",
    )


def _check_level(level: float) -> float:
    try:
        ok = 0.0 < float(level) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(
            f"confidence level {level!r} is outside (0, 1). What to do: pass a fraction such as "
            "0.95 for a 95 % interval."
        )
    return float(level)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < MIN_BOOT:
        raise ParameterError(
            f"n_boot={n_boot!r}: the number of bootstrap replicates must be an integer ≥ "
            f"{MIN_BOOT}. What to do: use the default (2000) or at least {MIN_BOOT}."
        )
    return int(n_boot)


def _finite(x: float, name: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be a finite number, got {x!r}.")
    return v


def _observed(y: ArrayLike) -> np.ndarray:
    t = np.asarray(y, dtype=np.float64)
    if t.ndim != 1:
        raise ParameterError(
            f"observations must be one vector (n_samples,), got shape {t.shape}. What to do: pass "
            "the observed target of the out-of-fold predictions."
        )
    if t.size < 2:
        raise ParameterError("at least 2 observations are needed to compare models.")
    if not np.all(np.isfinite(t)):
        raise ParameterError(
            f"observations contain {int(np.sum(~np.isfinite(t)))} NaN/inf value(s). What to do: "
            "drop unlabelled samples before scoring."
        )
    return t


def _predictions(pred: ArrayLike, n: int, name: str) -> np.ndarray:
    """``pred`` as a 2-D array (n_seeds, n_samples); a vector counts as one seed."""
    p = np.asarray(pred, dtype=np.float64)
    if p.ndim == 1:
        p = p[np.newaxis, :]
    if p.ndim != 2 or p.shape[1] != n:
        raise ParameterError(
            f"predictions of {name} have shape {np.asarray(pred).shape} but there are {n} "
            f"observations. Expected: ({n},) for one run or (n_seeds, {n}) for runs repeated over "
            "seeds. What to do: pass the out-of-fold predictions of exactly the observed samples, "
            "in the same order."
        )
    bad = int(np.sum(~np.isfinite(p)))
    if bad:
        raise ParameterError(
            f"predictions of {name} contain {bad} NaN/inf value(s). What to do: check that every "
            "sample was predicted in some fold and that training did not diverge."
        )
    return p


def _groups(groups: ArrayLike | None, n: int) -> np.ndarray | None:
    """Integer group codes 0..G-1 of length n (or None to resample samples)."""
    if groups is None:
        return None
    g = pd.Series(np.asarray(groups).ravel())
    if len(g) != n:
        raise ParameterError(
            f"groups has {len(g)} labels but there are {n} observations. What to do: pass one "
            "group label (spatial block, region, pedon) per out-of-fold prediction."
        )
    if g.isna().any():
        raise ParameterError(
            f"groups contains {int(g.isna().sum())} missing label(s). What to do: give every "
            "sample its spatial block or region."
        )
    codes, uniques = pd.factorize(g, sort=True)
    if len(uniques) < 2:
        raise ParameterError(
            f"groups has {len(uniques)} distinct label(s); a group bootstrap needs at least 2 "
            "(and gives useful intervals from about 10). What to do: pass the spatial blocks of "
            "the cross-validation, or groups=None to resample single samples."
        )
    return codes.astype(np.int64)


def _seed_count(p: np.ndarray, name: str) -> None:
    if p.shape[0] < MIN_SEEDS:
        raise ParameterError(
            f"{name} has predictions from {p.shape[0]} seed(s); repeats over seeds need at least "
            f"{MIN_SEEDS}. What to do: fit the network with {MIN_SEEDS} or more seeds (shape "
            "(n_seeds, n_samples)), or pass one run's predictions to paired_bootstrap."
        )


# --------------------------------------------------------------------------------------------
# orientation
# --------------------------------------------------------------------------------------------


def _score(metric: str, value: float) -> float:
    """``value`` turned into a score where higher is always better (same unit)."""
    better = METRIC_INFO[metric]["better"]
    if better == "higher":
        return value
    if better == "lower":
        return -value
    return -abs(value)  # "closer to 0" (bias)


def improvement(metric: str, y: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike) -> float:
    """Improvement of model A over model B in ``metric`` (> 0: A is better), in the metric's unit.

    ``metric(B) − metric(A)`` for RMSE and MAE, ``metric(A) − metric(B)`` for R², CCC and RPIQ,
    ``|bias(B)| − |bias(A)|`` for bias. ``y``: (n_samples,); ``pred_a``, ``pred_b``: (n_samples,)
    or per-seed (n_seeds, n_samples), whose scores are averaged over seeds.
    """
    f = metric_function(_check_metric(metric))
    t = _observed(y)
    a = _predictions(pred_a, t.size, "A")
    b = _predictions(pred_b, t.size, "B")
    return _mean_score(metric, f, t, a) - _mean_score(metric, f, t, b)


def _mean_score(metric: str, f: Callable[[Any, Any], float], y: np.ndarray, p: np.ndarray) -> float:
    """The oriented score of the metric averaged over the rows (seeds) of ``p`` (n_seeds, n)."""
    return float(np.mean([_score(metric, f(y, row)) for row in p]))


def skill(y: ArrayLike, pred: ArrayLike) -> float:
    """R² of ``pred`` (vector (n,) or per-seed (n_seeds, n), averaged over seeds), unitless.

    Compute it on the target's original scale (not log1p): ≤ 0 means the model is no better
    than predicting the mean of the observations.
    """
    t = _observed(y)
    p = _predictions(pred, t.size, "the model")
    r2 = metric_function("r2")
    return float(np.mean([r2(t, row) for row in p]))


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Improvement:
    """The improvement of A over B in one metric, with a bootstrap interval.

    Attributes
    ----------
    metric : a name from :data:`soilbook.evaluate.METRICS` or ``EXTRA_METRICS``.
    estimate : improvement of A over B on all samples (mean over seeds), in the metric's unit;
        > 0 means A is better (see the module docstring for the orientation).
    low, high : the percentile bootstrap interval of the improvement at ``level``.
    level : confidence level, e.g. 0.95.
    metric_a, metric_b : the metric of A and of B on all samples (mean over seeds), not oriented.
    n_boot : bootstrap replicates drawn; ``n_valid`` of them gave a finite value (a resample
        with constant observations has no R²) and make the interval.
    resampled : ``"groups"`` or ``"samples"``, the unit resampled; ``n_units`` of them.
    n_seeds : seeds per model (1 for :func:`paired_bootstrap`).
    """

    metric: str
    estimate: float
    low: float
    high: float
    level: float
    metric_a: float
    metric_b: float
    n_boot: int
    n_valid: int
    resampled: str
    n_units: int
    n_seeds: int

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)

    @property
    def side(self) -> str:
        """``"A"`` when the whole interval is > 0, ``"B"`` when it is < 0, else ``"neither"``."""
        if self.low > 0.0:
            return "A"
        if self.high < 0.0:
            return "B"
        return "neither"

    def describe(self) -> str:
        """How the interval was made, e.g. ``"95% paired bootstrap over 40 groups, 3 seeds"``."""
        seeds = f", {self.n_seeds} seeds" if self.n_seeds > 1 else ""
        return f"{self.level:.0%} paired bootstrap over {self.n_units} {self.resampled}{seeds}"


def _unit_sampler(
    codes: np.ndarray | None, n: int
) -> tuple[Callable[[np.random.Generator], np.ndarray], str, int]:
    """A function drawing one bootstrap resample (row indices), the unit name and unit count."""
    if codes is None:
        return (lambda rng: rng.integers(0, n, n)), "samples", n
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_groups = counts.size

    def draw(rng: np.random.Generator) -> np.ndarray:
        pick = rng.integers(0, n_groups, n_groups)
        c = counts[pick]
        # each drawn group's rows, concatenated: position k of group j maps to starts[j] + k
        offset = np.repeat(starts[pick] - (np.cumsum(c) - c), c)
        return order[offset + np.arange(c.sum())]

    return draw, "groups", n_groups


def _replicates(
    per_seed: Callable[[np.ndarray], np.ndarray],
    n_seeds: int,
    codes: np.ndarray | None,
    n: int,
    metric: str,
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[float, float, str, int, int]:
    """Percentile interval ``(low, high)`` of the seed-averaged ``per_seed`` statistic, with the
    unit resampled, the unit count and the number of finite replicates.

    ``per_seed(rows) -> (n_seeds,)`` evaluates the statistic of every seed on the given rows.
    Units and seeds are drawn from two independent streams of ``seed`` (so that one seed draws
    the same units whatever the number of seeds); see :func:`seed_bootstrap` for the estimator.
    """
    draw, unit, n_units = _unit_sampler(codes, n)
    unit_ss, seed_ss = np.random.SeedSequence(int(seed)).spawn(2)
    rng_units, rng_seeds = np.random.default_rng(unit_ss), np.random.default_rng(seed_ss)
    inflate = math.sqrt(n_seeds / (n_seeds - 1)) if n_seeds > 1 else 0.0
    reps = np.empty(n_boot)
    for b in range(n_boot):
        values = per_seed(draw(rng_units))
        if n_seeds == 1:
            reps[b] = values[0]
            continue
        centre = values.mean()
        picked = values[rng_seeds.integers(0, n_seeds, n_seeds)].mean()
        reps[b] = centre + inflate * (picked - centre)
    valid = reps[np.isfinite(reps)]
    if valid.size < n_boot / 2:
        raise ParameterError(
            f"only {valid.size} of {n_boot} bootstrap resamples gave a finite {metric} "
            "(resamples with constant observations have no R² or CCC). What to do: use more "
            "groups, groups=None, or an error metric such as 'rmse'."
        )
    low, high = np.quantile(valid, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high), unit, n_units, int(valid.size)


def _improvement_interval(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    metric: str,
    codes: np.ndarray | None,
    n_boot: int,
    level: float,
    seed: int,
) -> Improvement:
    """The shared engine: ``a`` and ``b`` are (n_seeds or 1, n); a single row is broadcast."""
    f = metric_function(metric)
    n_seeds = max(a.shape[0], b.shape[0])
    rows_a = np.broadcast_to(a, (n_seeds, y.size))
    rows_b = np.broadcast_to(b, (n_seeds, y.size))

    def per_seed(idx: np.ndarray) -> np.ndarray:
        t = y[idx]
        return np.array(
            [
                _score(metric, f(t, pa[idx])) - _score(metric, f(t, pb[idx]))
                for pa, pb in zip(rows_a, rows_b, strict=True)
            ]
        )

    low, high, unit, n_units, n_valid = _replicates(
        per_seed, n_seeds, codes, y.size, metric, n_boot, level, seed
    )
    return Improvement(
        metric=metric,
        estimate=float(per_seed(np.arange(y.size)).mean()),
        low=low,
        high=high,
        level=level,
        metric_a=float(np.mean([f(y, p) for p in a])),
        metric_b=float(np.mean([f(y, p) for p in b])),
        n_boot=n_boot,
        n_valid=n_valid,
        resampled=unit,
        n_units=n_units,
        n_seeds=n_seeds,
    )


def paired_bootstrap(
    y: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    metric: str = "rmse",
    groups: ArrayLike | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Improvement:
    """Paired bootstrap of the improvement of model A over model B on the same predictions.

    Parameters
    ----------
    y : observed target, (n_samples,), in the target's unit.
    pred_a, pred_b : out-of-fold predictions of A and B for the same samples, (n_samples,) each.
    metric : a name from :data:`soilbook.evaluate.METRICS`; the improvement is oriented so that
        > 0 means A is better (module docstring).
    groups : one label per sample (spatial block, region …), (n_samples,). When given, whole
        groups are resampled with replacement (at least 2 groups); otherwise single samples.
    n_boot : bootstrap replicates (≥ 100).
    level : confidence level of the percentile interval, in (0, 1).
    seed : seeds the resampling; the same seed gives the same interval.

    Returns
    -------
    :class:`Improvement` with the point improvement on all samples and ``[low, high]``.

    Raises
    ------
    ParameterError : mismatched lengths, NaN/inf values, fewer than 2 groups, unknown metric,
        ``level`` outside (0, 1), ``n_boot`` < 100, or 2-D (per-seed) predictions (use
        :func:`seed_bootstrap`).
    """
    metric, level, n_boot = _check_metric(metric), _check_level(level), _check_n_boot(n_boot)
    t = _observed(y)
    a = _predictions(pred_a, t.size, "A")
    b = _predictions(pred_b, t.size, "B")
    if a.shape[0] > 1 or b.shape[0] > 1:
        raise ParameterError(
            "paired_bootstrap takes one run per model (vectors (n_samples,)); got per-seed "
            "predictions. What to do: use seed_bootstrap for runs repeated over seeds."
        )
    return _improvement_interval(t, a, b, metric, _groups(groups, t.size), n_boot, level, seed)


def seed_bootstrap(
    y: ArrayLike,
    preds_a: ArrayLike,
    preds_b: ArrayLike,
    *,
    metric: str = "rmse",
    groups: ArrayLike | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Improvement:
    """Improvement of A over B for runs repeated over seeds, with seed-to-seed variation included.

    Estimator (a two-stage bootstrap). Let ``d_s(rows)`` be the improvement of A's seed-``s`` run
    over B's seed-``s`` run on the given rows (runs are paired by seed index: same seed, same
    folds). The point estimate is the mean of ``d_s`` over seeds on all samples. Each replicate

    1. resamples the units (whole groups when ``groups`` is given, samples otherwise) exactly as
       :func:`paired_bootstrap` does (the same ``seed`` draws the same units), and
    2. resamples the ``S`` seeds with replacement, independently of the units, and takes
       ``m + sqrt(S/(S−1)) · (mean of d_s over the drawn seeds − m)``, where ``m`` is the mean
       of ``d_s`` over all seeds on the resampled units. The factor undoes the bootstrap's
       shrinkage of the between-seed variance by (S−1)/S, which matters with 3–5 seeds.

    The percentile interval of the replicates therefore covers both the sampling of the data
    and the training randomness of the seed average: runs that disagree more between seeds give
    a wider interval, and identical runs give exactly the :func:`paired_bootstrap` interval.
    The interval is for the *seed-averaged* improvement (the method), not for one run.

    Parameters
    ----------
    y : observed target, (n_samples,).
    preds_a, preds_b : out-of-fold predictions, (n_seeds, n_samples) with n_seeds ≥ 3, paired
        by row. One of them may be a vector (n_samples,) — a deterministic model such as a
        baseline fitted once — and is then used for every seed. Both 2-D: same n_seeds.
    metric, groups, n_boot, level, seed : as in :func:`paired_bootstrap`.

    Returns
    -------
    :class:`Improvement` with ``n_seeds`` set.

    Raises
    ------
    ParameterError : as :func:`paired_bootstrap`, plus fewer than 3 seeds, both models given as
        single runs, or different seed counts.
    """
    metric, level, n_boot = _check_metric(metric), _check_level(level), _check_n_boot(n_boot)
    t = _observed(y)
    raw_a, raw_b = np.asarray(preds_a), np.asarray(preds_b)
    a = _predictions(preds_a, t.size, "A")
    b = _predictions(preds_b, t.size, "B")
    if raw_a.ndim == 1 and raw_b.ndim == 1:
        raise ParameterError(
            "seed_bootstrap needs per-seed predictions (n_seeds, n_samples) with at least "
            f"{MIN_SEEDS} seeds for at least one model; both are single runs. What to do: repeat "
            "the network over seeds, or use paired_bootstrap for single runs."
        )
    for raw, p, name in ((raw_a, a, "A"), (raw_b, b, "B")):
        if raw.ndim == 2:
            _seed_count(p, name)
    if raw_a.ndim == 2 and raw_b.ndim == 2 and a.shape[0] != b.shape[0]:
        raise ParameterError(
            f"A has {a.shape[0]} seeds but B has {b.shape[0]}; runs are paired by seed. What to "
            "do: pass the same seeds for both models."
        )
    return _improvement_interval(t, a, b, metric, _groups(groups, t.size), n_boot, level, seed)


def _interval(
    y: np.ndarray,
    a: ArrayLike,
    b: ArrayLike,
    metric: str,
    groups: ArrayLike | None,
    n_boot: int,
    level: float,
    seed: int,
) -> Improvement:
    """paired_bootstrap for single runs, seed_bootstrap as soon as either model has seeds."""
    if np.ndim(a) == 2 or np.ndim(b) == 2:
        return seed_bootstrap(
            y, a, b, metric=metric, groups=groups, n_boot=n_boot, level=level, seed=seed
        )
    return paired_bootstrap(
        y, a, b, metric=metric, groups=groups, n_boot=n_boot, level=level, seed=seed
    )


@dataclass(frozen=True)
class _Spread:
    """One model's metric on all samples (mean over seeds) with its bootstrap interval."""

    value: float
    low: float
    high: float
    how: str

    def margin(self, metric: str, ref: float) -> tuple[float, float]:
        """Interval of the oriented margin ``score(metric) − score(ref)`` (> 0: better than
        ``ref``): the image of ``[low, high]`` under the orientation (module docstring)."""
        if METRIC_INFO[metric]["better"] == "closer to 0":
            far = max(abs(self.low), abs(self.high))
            near = 0.0 if self.low <= 0.0 <= self.high else min(abs(self.low), abs(self.high))
            ends = (-far, -near)
        else:
            ends = tuple(sorted((_score(metric, self.low), _score(metric, self.high))))
        return (ends[0] - _score(metric, ref), ends[1] - _score(metric, ref))


def _metric_interval(
    y: np.ndarray,
    pred: ArrayLike,
    metric: str,
    groups: ArrayLike | None,
    n_boot: int,
    level: float,
    seed: int,
) -> _Spread:
    """The bootstrap interval of one model's metric (resampling as in :func:`seed_bootstrap`)."""
    metric, level, n_boot = _check_metric(metric), _check_level(level), _check_n_boot(n_boot)
    p = _predictions(pred, y.size, "the model")
    if np.ndim(pred) == 2:
        _seed_count(p, "the model")
    f = metric_function(metric)

    def per_seed(idx: np.ndarray) -> np.ndarray:
        return np.array([f(y[idx], row[idx]) for row in p])

    low, high, unit, n_units, _ = _replicates(
        per_seed, p.shape[0], _groups(groups, y.size), y.size, metric, n_boot, level, seed
    )
    seeds = f", {p.shape[0]} seeds" if p.shape[0] > 1 else ""
    how = f"{level:.0%} bootstrap over {n_units} {unit}{seeds}"
    return _Spread(float(per_seed(np.arange(y.size)).mean()), low, high, how)


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


def data_label(source: str | None) -> str:
    """The ``data`` field of a :class:`Claim`: ``"simulated"`` for None, else ``"real: <source>"``."""
    if source is None:
        return "simulated"
    if not str(source).strip():
        raise ParameterError("a real data source needs a name, e.g. data_label('LimeSoDa').")
    return f"real: {str(source).strip()}"


def _check_data(data: str) -> str:
    if data == "simulated" or (data.startswith("real: ") and data[len("real: ") :].strip()):
        return data
    raise ParameterError(
        f"data={data!r}. Allowed: 'simulated' or 'real: <source>' (e.g. 'real: LimeSoDa'). "
        "What to do: build it with soilbook.claims.data_label(source)."
    )


@dataclass(frozen=True)
class Claim:
    """One row of a claims table — the same shape in every chapter.

    Attributes
    ----------
    claim : what is claimed, e.g. ``"SS-SoilNet beats RF"``.
    paper : what the paper reports or states.
    measured : what this run measured, with numbers and units.
    interval : ``(low, high)`` of the compared difference (the improvement, > 0 in favour of the
        claim, in the metric's unit), or None where nothing was compared.
    verdict : one of :data:`VERDICTS`.
    data : ``"simulated"`` or ``"real: <source>"`` (see :func:`data_label`).
    reason : why this verdict, in one sentence.
    """

    claim: str
    paper: str
    measured: str
    interval: tuple[float, float] | None
    verdict: str
    data: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ParameterError(
                f"verdict {self.verdict!r} is not one of {list(VERDICTS)}. What to do: use "
                "soilbook.claims.REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE or NOT_TESTABLE."
            )
        _check_data(self.data)
        if self.interval is not None:
            values = tuple(float(v) for v in self.interval)
            if len(values) != 2 or not all(map(math.isfinite, values)) or values[0] > values[1]:
                raise ParameterError(
                    f"interval {self.interval!r} must be two finite numbers [low, high] with "
                    "low ≤ high, or None."
                )
            object.__setattr__(self, "interval", values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (interval as ``[low, high]`` or None) for ``metrics.json``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["interval"] = None if self.interval is None else list(self.interval)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Claim:
        """The inverse of :meth:`to_dict` (e.g. after reading ``metrics.json``)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in record]
        if missing:
            raise ParameterError(f"claim record lacks field(s) {missing}; expected {names}.")
        interval = record["interval"]
        return cls(**{n: record[n] for n in names if n != "interval"}, interval=interval)


def claims_table(claims: Iterable[Claim]) -> pd.DataFrame:
    """A DataFrame for display: one row per claim, the columns of :class:`Claim` in order.

    The interval is shown as text ``"[low, high]"`` (``"—"`` where None); no text is shortened.
    """
    rows = []
    for c in claims:
        row = c.to_dict()
        row["interval"] = "—" if c.interval is None else _fmt_interval(c.interval)
        rows.append(row)
    return pd.DataFrame(rows, columns=[f.name for f in fields(Claim)])


# --------------------------------------------------------------------------------------------
# verdict rules and claim builders
# --------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _fmt_interval(iv: tuple[float, float]) -> str:
    """``[low, high]`` with one number of decimals: 3 significant digits on the larger bound."""
    big = max(abs(iv[0]), abs(iv[1]))
    if not math.isfinite(big):
        return f"[{iv[0]}, {iv[1]}]"
    decimals = 3 if big == 0.0 else min(4, max(0, 2 - math.floor(math.log10(big))))
    return f"[{iv[0]:.{decimals}f}, {iv[1]:.{decimals}f}]"


def _label(metric: str) -> str:
    return {"r2": "R²", "ccc": "CCC", "rpiq": "RPIQ"}.get(metric, metric.upper())


def _units(metric: str, units: str) -> str:
    return f" {units}" if units and METRIC_INFO[metric]["units"] == "target" else ""


def _check_threshold(skill_threshold: float) -> float:
    v = _finite(skill_threshold, "skill_threshold")
    if v >= 1.0:
        raise ParameterError(f"skill_threshold={v} must be below 1 (the R² of a perfect model).")
    return v


def _guards(
    name: str, skill_value: float, converged: bool, skill_threshold: float, unconverged: str
) -> tuple[str, str] | None:
    """The verdict when convergence or skill already decides it (rules 1–2), else None.

    ``unconverged`` names the network(s) that did not converge, for the reason.
    """
    thr = _check_threshold(skill_threshold)
    if not converged:
        return INCONCLUSIVE, (
            f"{unconverged} did not converge, so the numbers describe the training, not the method"
        )
    if not skill_value > thr:
        return NOT_REPRODUCED, (
            f"no skill: {name} has R² {_fmt(skill_value)} ≤ {_fmt(thr)} on the original scale "
            "(no better than predicting the mean)"
        )
    return None


def beats_verdict(
    result: Improvement,
    *,
    skill_a: float,
    converged: bool = True,
    skill_threshold: float = 0.0,
    name_a: str = "A",
    name_b: str = "B",
    unconverged: Sequence[str] = (),
) -> tuple[str, str]:
    """The verdict and reason for "A beats B" (rules in the module docstring, in that order).

    Parameters
    ----------
    result : the improvement of A over B with its interval.
    skill_a : A's R² on the target's original scale (see :func:`skill`).
    converged : False when any network in the comparison did not converge.
    skill_threshold : A needs R² > this to count as having skill (default 0).
    name_a, name_b : model names used in the reason.
    unconverged : the names of the networks that did not converge, for the reason (empty:
        "a network in the comparison").
    """
    who = (
        " and ".join(unconverged)
        if unconverged
        else f"a network in the comparison of {name_a} with {name_b}"
    )
    guard = _guards(name_a, skill_a, converged, skill_threshold, who)
    if guard is not None:
        return guard
    iv = f"{result.level:.0%} interval {_fmt_interval(result.interval)}"
    if result.side == "neither":
        return INCONCLUSIVE, f"the {iv} of the improvement contains 0"
    if result.side == "B":
        return NOT_REPRODUCED, f"the {iv} lies wholly below 0: {name_b} is better"
    return REPRODUCED, f"the whole {iv} is above 0 and {name_a} has skill (R² {_fmt(skill_a)})"


def claim_beats(
    claim: str,
    paper: str,
    y: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    name_a: str,
    name_b: str,
    metric: str = "rmse",
    groups: ArrayLike | None = None,
    converged_a: bool = True,
    converged_b: bool = True,
    skill_threshold: float = 0.0,
    data: str = "simulated",
    units: str = "",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Claim:
    """Check "A beats B" on out-of-fold predictions and return its :class:`Claim`.

    Parameters
    ----------
    claim, paper : the claim and what the paper says.
    y : observed target (n_samples,) on the original scale (R² for the skill guard is
        computed on it).
    pred_a, pred_b : predictions (n_samples,) for one run, or (n_seeds, n_samples) with ≥ 3
        seeds; as soon as either is 2-D, :func:`seed_bootstrap` makes the interval, otherwise
        :func:`paired_bootstrap`.
    name_a, name_b : model names, for the text.
    metric : the compared metric (default RMSE); the interval is of the improvement of A over B.
    groups : spatial blocks / regions to resample (n_samples,), or None for samples.
    converged_a, converged_b : False for a network that did not converge (non-networks: True).
    skill_threshold : R² A must exceed to have skill (default 0).
    data : ``"simulated"`` or ``"real: <source>"``.
    units : the target's unit (e.g. ``"g/kg"``), printed after RMSE/MAE/bias.
    n_boot, level, seed : bootstrap settings.
    """
    data = _check_data(data)
    t = _observed(y)
    result = _interval(t, pred_a, pred_b, metric, groups, n_boot, level, seed)
    skill_a = skill(t, pred_a)
    verdict, reason = beats_verdict(
        result,
        skill_a=skill_a,
        converged=bool(converged_a and converged_b),
        skill_threshold=skill_threshold,
        name_a=name_a,
        name_b=name_b,
        unconverged=[n for n, ok in ((name_a, converged_a), (name_b, converged_b)) if not ok],
    )
    u = _units(metric, units)
    measured = (
        f"{_label(metric)} {_fmt(result.metric_a)}{u} ({name_a}) vs {_fmt(result.metric_b)}{u} "
        f"({name_b}); improvement {_fmt(result.estimate)}{u} {_fmt_interval(result.interval)} "
        f"({result.describe()}); R² of {name_a} {_fmt(skill_a)}"
    )
    return Claim(claim, paper, measured, result.interval, verdict, data, reason)


def _condition(low: float, high: float) -> bool | None:
    """True when the interval of a margin lies wholly ≥ 0, False when wholly < 0, else None."""
    if low >= 0.0:
        return True
    if high < 0.0:
        return False
    return None


def claim_threshold(
    claim: str,
    paper: str,
    y: ArrayLike,
    pred: ArrayLike,
    *,
    name: str,
    threshold: float,
    baselines: Mapping[str, ArrayLike],
    metric: str = "r2",
    margin: float = 0.0,
    groups: ArrayLike | None = None,
    converged: bool = True,
    skill_threshold: float = 0.0,
    data: str = "simulated",
    units: str = "",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Claim:
    """Check "the model reaches ``threshold`` and is not worse than the best baseline".

    E.g. "generalises to unseen regions": R² ≥ 0.5 on held-out regions and not worse than the
    best of RF / PLSR. Two conditions, each decided by an interval (same settings as
    :func:`paired_bootstrap`; per-seed predictions use :func:`seed_bootstrap`):

    * *threshold*: the interval of the model's metric lies wholly on the good side of
      ``threshold`` (≥ for R²/CCC/RPIQ, ≤ for RMSE/MAE) → true; wholly on the bad side → false;
      otherwise undecided;
    * *baseline*: the best baseline is the one with the best metric on all samples; the
      interval of the improvement over it, plus ``margin``, lies wholly ≥ 0 → true; wholly < 0
      → false; otherwise undecided. With ``margin=0`` "not worse" is only established when the
      model is at least as good over the whole interval; a margin (e.g. 0.05 R²) allows a
      non-inferiority reading. Without baselines only the threshold counts.

    Verdict: a network did not converge → ``inconclusive``; no skill (R² ≤ ``skill_threshold``)
    → ``not reproduced``; any condition false → ``not reproduced``; all true → ``reproduced``;
    otherwise ``inconclusive``. The record's ``interval`` is that of the improvement over the
    best baseline (without baselines: of the margin over the threshold, oriented, > 0 good).

    Parameters
    ----------
    y : observed target (n_samples,), original scale.
    pred : the model's predictions (n_samples,) or (n_seeds, n_samples).
    name : the model's name.
    threshold : the stated threshold in the metric's unit.
    baselines : ``{name: predictions (n_samples,) or (n_seeds, n_samples)}``, possibly empty.
    margin : tolerated shortfall against the best baseline, ≥ 0, in the metric's unit.
    converged : False when the model is a network that did not converge.
    Other parameters as in :func:`claim_beats`.
    """
    data = _check_data(data)
    metric = _check_metric(metric)
    thr = _finite(threshold, "threshold")
    margin = _finite(margin, "margin")
    if margin < 0.0:
        raise ParameterError(f"margin={margin} must be ≥ 0 (a tolerated shortfall).")
    t = _observed(y)
    f = metric_function(metric)
    own = _metric_interval(t, pred, metric, groups, n_boot, level, seed)
    over_thr = own.margin(metric, thr)
    conditions = [_condition(*over_thr)]
    u = _units(metric, units)
    lab = _label(metric)
    measured = (
        f"{lab} {_fmt(own.value)}{u} {_fmt_interval((own.low, own.high))} ({name}, {own.how}; "
        f"threshold {_fmt(thr)}{u})"
    )
    interval: tuple[float, float] = over_thr
    best = ""
    if baselines:
        scores = {
            k: _mean_score(metric, f, t, _predictions(v, t.size, k)) for k, v in baselines.items()
        }
        best = max(scores, key=lambda k: scores[k])
        vs = _interval(t, pred, baselines[best], metric, groups, n_boot, level, seed)
        conditions.append(_condition(vs.low + margin, vs.high + margin))
        interval = vs.interval
        measured += (
            f"; best baseline {best} {lab} {_fmt(vs.metric_b)}{u}, improvement "
            f"{_fmt(vs.estimate)}{u} {_fmt_interval(vs.interval)}"
        )
    against = f" and is not worse than {best}" if baselines else ""
    guard = _guards(name, skill(t, pred), converged, skill_threshold, name)
    if guard is not None:
        verdict, reason = guard
    elif False in conditions:
        failed = []
        if conditions[0] is False:
            failed.append(f"the interval of {lab} lies wholly on the wrong side of {_fmt(thr)}")
        if len(conditions) > 1 and conditions[1] is False:
            failed.append(f"{name} is worse than {best} over the whole interval")
        verdict, reason = NOT_REPRODUCED, "; ".join(failed)
    elif all(c is True for c in conditions):
        verdict = REPRODUCED
        reason = f"the whole {level:.0%} interval shows that {name} meets {_fmt(thr)}{against}"
    else:
        verdict = INCONCLUSIVE
        reason = (
            f"the {level:.0%} intervals do not decide whether {name} meets {_fmt(thr)}{against}"
        )
    return Claim(claim, paper, measured, interval, verdict, data, reason)


def claim_paper_number(
    claim: str,
    paper: str,
    y: ArrayLike,
    pred: ArrayLike,
    *,
    paper_values: Mapping[str, float],
    same_data: bool,
    name: str,
    groups: ArrayLike | None = None,
    converged: bool = True,
    skill_threshold: float = 0.0,
    data: str = "simulated",
    units: str = "",
    not_testable_reason: str | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Claim:
    """Check the paper's headline numbers (e.g. ``{"rmse": 3.6, "mae": 1.7, "r2": 0.68}``).

    A paper's number only tests a re-implementation on the paper's own data, so with
    ``same_data=False`` (the caller says whether these are the paper's data) the verdict is
    ``not testable here`` and ``measured`` lists our numbers for reference (interval None).

    With ``same_data=True``, each metric gets the interval of our margin over the paper's value,
    oriented (> 0: ours is better); the verdict is ``inconclusive`` for a network that did not
    converge, ``not reproduced`` without skill or when any margin's interval lies wholly below 0
    (clearly worse than the paper), else ``reproduced`` (matches or beats the paper within the
    interval). The record's ``interval`` is that of the first metric in ``paper_values``.

    Parameters as in :func:`claim_threshold`; ``paper_values`` maps metric names to the paper's
    values in the metric's unit; ``not_testable_reason`` replaces the default reason when
    ``same_data`` is False (e.g. "the paper's field data are not public").
    """
    data = _check_data(data)
    if not paper_values:
        raise ParameterError("paper_values is empty; pass e.g. {'rmse': 3.6}.")
    for m in paper_values:
        _check_metric(m)
    t = _observed(y)
    p = _predictions(pred, t.size, name)
    parts: list[str] = []
    margins: dict[str, tuple[float, float]] = {}
    how = ""
    for m, pv in paper_values.items():
        u = _units(m, units)
        if same_data:
            own = _metric_interval(t, pred, m, groups, n_boot, level, seed)
            margins[m] = own.margin(m, _finite(pv, f"paper value of {m}"))
            how = own.how
            parts.append(
                f"{_label(m)} {_fmt(own.value)}{u} {_fmt_interval((own.low, own.high))} vs "
                f"paper {_fmt(float(pv))}{u}"
            )
        else:
            ours = float(np.mean([metric_function(m)(t, row) for row in p]))
            parts.append(f"{_label(m)} {_fmt(ours)}{u} (paper {_fmt(float(pv))}{u})")
    measured = f"{name}: " + ", ".join(parts) + (f" ({how})" if how else "")
    if not same_data:
        why = not_testable_reason or (
            "the paper's numbers come from its own data, which are not the data used here"
        )
        return Claim(claim, paper, measured, None, NOT_TESTABLE, data, why)
    first = margins[next(iter(paper_values))]
    worse = [m for m, (lo, hi) in margins.items() if _condition(lo, hi) is False]
    guard = _guards(name, skill(t, pred), converged, skill_threshold, name)
    if guard is not None:
        verdict, reason = guard
    elif worse:
        verdict = NOT_REPRODUCED
        reason = (
            f"{', '.join(map(_label, worse))} clearly worse than the paper over the whole "
            f"{level:.0%} interval"
        )
    else:
        verdict = REPRODUCED
        reason = f"every metric matches or beats the paper within its {level:.0%} interval"
    return Claim(claim, paper, measured, first, verdict, data, reason)


def claim_not_testable(
    claim: str, paper: str, *, reason: str, data: str = "simulated", measured: str = "—"
) -> Claim:
    """A claim this chapter cannot test (e.g. a property built into the simulator)."""
    return Claim(claim, paper, measured, None, NOT_TESTABLE, _check_data(data), reason)
