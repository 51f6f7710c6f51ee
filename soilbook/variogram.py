"""Empirical and model variograms, and the spatial-block size they justify.

The semivariance of a variable ``z`` at lag ``h`` is half the mean squared difference between
values ``h`` apart. Its shape says how far spatial dependence reaches:

:func:`empirical_variogram`
    the classic (Matheron 1962) estimator on distance classes,
    $\\hat\\gamma(h_k) = \\frac{1}{2N_k}\\sum_{(i,j):\\,d_{ij}\\in k}(z_i - z_j)^2$,
    in pure numpy, chunked so that ~2000 points (2 million pairs) need only a few MB;
:func:`fit_variogram`
    a spherical or exponential model with nugget, fitted by weighted least squares
    (``scipy.optimize.curve_fit``; weights ``N_k / h_k²``, Cressie 1985, gstat's default);
:func:`block_side_from_variogram`
    the block side for spatial cross-validation read off the fitted model.

The block rule
--------------
Spatial (block) cross-validation is meant to estimate how well a model predicts *new places*.
That holds when the residuals in a held-out block are nearly independent of those in the
training blocks, i.e. when blocks are at least about as large as the range of the residuals'
spatial autocorrelation (Roberts et al. 2017, *Ecography* 40:913; Valavi et al. 2019, *Methods
Ecol. Evol.* 10:225). For a second-order stationary variable the correlation at lag ``h`` is
$\\rho(h) = 1 - \\gamma(h)/\\text{sill}$, so "the model reaches 85 % of its (total) sill" means
"residuals that far apart correlate at most 0.15". :func:`block_side_from_variogram` returns the
smallest candidate block side (default :data:`soilbook.geo.BLOCK_SIDES_M`) at which the fitted
model reaches ``sill_share`` of its sill. Fit the variogram to the **residuals** of a model
(e.g. out-of-fold residuals), not only to the target: the target's trend is what the
covariates explain, and it is the residual dependence that makes neighbouring test samples
easy.

All distances are in metres on projected coordinates (use :func:`soilbook.geo.local_xy_m` for
lat/lon); semivariances are in the squared unit of ``values``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from soilbook.errors import ParameterError
from soilbook.geo import BLOCK_SIDES_M

__all__ = [
    "BlockDesign",
    "VariogramFit",
    "block_design",
    "block_side_from_variogram",
    "empirical_variogram",
    "fit_variogram",
    "variogram_model",
]

#: Models :func:`fit_variogram` knows.
MODELS = ("spherical", "exponential")

#: Bytes of temporary distance arrays per chunk of :func:`empirical_variogram`.
_CHUNK_BYTES = 2**24


def _points(x_m, y_m, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x_m, dtype=np.float64).ravel()
    y = np.asarray(y_m, dtype=np.float64).ravel()
    z = np.asarray(values, dtype=np.float64).ravel()
    if not x.size == y.size == z.size:
        raise ParameterError(
            f"x_m, y_m and values have {x.size}, {y.size} and {z.size} entries; give one x, y "
            "and value per sample."
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ParameterError(
            "x_m / y_m contain NaN or inf. What to do: drop samples without a location first."
        )
    keep = np.isfinite(z)  # unlabelled samples (NaN) carry no semivariance
    x, y, z = x[keep], y[keep], z[keep]
    if z.size < 3:
        raise ParameterError(
            f"only {z.size} samples with a finite value; a variogram needs at least 3 "
            "(in practice 50 or more)."
        )
    return x, y, z


def empirical_variogram(
    x_m, y_m, values, *, n_lags: int = 15, max_lag_m: float | None = None
) -> pd.DataFrame:
    """The classic (Matheron) empirical semivariogram of ``values`` on equal distance classes.

    Parameters
    ----------
    x_m, y_m
        Projected coordinates in metres, shape (n,).
    values
        The variable (target or residuals), shape (n,); samples with NaN are ignored.
    n_lags
        Number of equal-width distance classes between 0 and ``max_lag_m``.
    max_lag_m
        Largest distance considered (m); default half the diagonal of the samples' bounding box
        (pairs farther apart are few and unreliable, the usual rule of thumb).

    Returns
    -------
    pandas.DataFrame, one row per distance class (classes without pairs are dropped), columns
        ``lag_m`` (class centre, m), ``mean_distance_m`` (mean pair distance in the class, m),
        ``semivariance`` (squared unit of ``values``), ``n_pairs`` (int).
        ``attrs``: ``max_lag_m``, ``lag_width_m``, ``n_points``, ``variance`` (sample variance of
        ``values``, ddof=1: the sill a variable without trend would reach), ``estimator``.

    Memory is bounded: distances are computed for blocks of rows against the rest
    (about 16 MB at a time), so 2000 points need no 2000 × 2000 matrix.
    """
    x, y, z = _points(x_m, y_m, values)
    if not isinstance(n_lags, int | np.integer) or n_lags < 1:
        raise ParameterError(f"n_lags={n_lags!r}; expected a positive integer (e.g. 15).")
    if max_lag_m is None:
        max_lag_m = 0.5 * float(np.hypot(np.ptp(x), np.ptp(y)))
    if not np.isfinite(max_lag_m) or max_lag_m <= 0:
        raise ParameterError(
            f"max_lag_m={max_lag_m!r}; expected a positive distance in metres (are all samples "
            "at the same place?)."
        )
    width = float(max_lag_m) / int(n_lags)
    n = z.size
    sums = np.zeros(n_lags)
    dist_sums = np.zeros(n_lags)
    counts = np.zeros(n_lags, dtype=np.int64)
    rows_per_chunk = max(1, _CHUNK_BYTES // (8 * 4 * n))
    for start in range(0, n - 1, rows_per_chunk):
        stop = min(n - 1, start + rows_per_chunk)
        i = np.arange(start, stop)
        # pairs (i, j) with j > i: compare row i with all later points, flattened
        dx = x[None, :] - x[i, None]
        dy = y[None, :] - y[i, None]
        d = np.hypot(dx, dy)
        upper = np.arange(n)[None, :] > i[:, None]
        sel = upper & (d <= max_lag_m)
        dd = d[sel]
        sq = (z[None, :] - z[i, None])[sel] ** 2
        k = np.minimum((dd / width).astype(np.int64), n_lags - 1)
        sums += np.bincount(k, weights=sq, minlength=n_lags)
        dist_sums += np.bincount(k, weights=dd, minlength=n_lags)
        counts += np.bincount(k, minlength=n_lags)
    has = counts > 0
    out = pd.DataFrame(
        {
            "lag_m": ((np.arange(n_lags) + 0.5) * width)[has],
            "mean_distance_m": dist_sums[has] / counts[has],
            "semivariance": sums[has] / (2.0 * counts[has]),
            "n_pairs": counts[has],
        }
    )
    out.attrs.update(
        max_lag_m=float(max_lag_m),
        lag_width_m=width,
        n_points=int(n),
        variance=float(np.var(z, ddof=1)),
        estimator="Matheron (classic) method-of-moments",
    )
    return out


def variogram_model(
    h_m, model: str, nugget: float, partial_sill: float, range_m: float
) -> np.ndarray:
    """Semivariance of a model at distances ``h_m`` (m); ``γ(0) = 0``.

    * spherical: ``c0 + c (1.5 h/a − 0.5 (h/a)³)`` for ``0 < h < a``, ``c0 + c`` beyond
      (``a`` = ``range_m``, reached exactly);
    * exponential: ``c0 + c (1 − exp(−h/a))`` (``a`` = ``range_m`` is the distance parameter;
      the model reaches 95 % of its partial sill at the *effective* range ``3a``).
    """
    h = np.asarray(h_m, dtype=np.float64)
    a = max(float(range_m), 1e-12)
    if model == "spherical":
        r = np.minimum(h / a, 1.0)
        g = nugget + partial_sill * (1.5 * r - 0.5 * r**3)
    elif model == "exponential":
        g = nugget + partial_sill * (1.0 - np.exp(-h / a))
    else:
        raise ParameterError(f"model={model!r}; allowed: {list(MODELS)}.")
    return np.where(h > 0, g, 0.0)


@dataclass(frozen=True)
class VariogramFit:
    """A fitted variogram model (distances in m, semivariances in the squared unit).

    ``sill`` is the total sill ``nugget + partial_sill``; ``range_m`` the model's distance
    parameter; ``effective_range_m`` where the model reaches 95 % of its partial sill
    (= ``range_m`` for the spherical model, ``3 · range_m`` for the exponential one).
    """

    model: str
    nugget: float
    partial_sill: float
    range_m: float
    n_points: int
    max_lag_m: float

    @property
    def sill(self) -> float:
        """Total sill, nugget + partial sill."""
        return self.nugget + self.partial_sill

    @property
    def effective_range_m(self) -> float:
        """Distance (m) at which the model reaches 95 % of its partial sill."""
        return self.range_m if self.model == "spherical" else 3.0 * self.range_m

    @property
    def nugget_share(self) -> float:
        """Nugget / sill: the share of variance without spatial structure at the sampled scale."""
        return self.nugget / self.sill if self.sill > 0 else float("nan")

    def __call__(self, h_m) -> np.ndarray:
        """Model semivariance at distances ``h_m`` (m)."""
        return variogram_model(h_m, self.model, self.nugget, self.partial_sill, self.range_m)

    def share_of_sill(self, h_m) -> np.ndarray:
        """γ(h) / sill at distances ``h_m`` (m); 1 − this is the model correlation at ``h``."""
        return self(h_m) / self.sill if self.sill > 0 else np.ones_like(np.asarray(h_m, float))

    def to_dict(self) -> dict[str, float | str | int]:
        """JSON-able record (parameters plus sill, effective range and nugget share)."""
        return asdict(self) | {
            "sill": self.sill,
            "effective_range_m": self.effective_range_m,
            "nugget_share": self.nugget_share,
        }


def fit_variogram(
    empirical: pd.DataFrame,
    model: Literal["spherical", "exponential"] = "spherical",
) -> VariogramFit:
    """Fit a nugget + spherical/exponential model to an :func:`empirical_variogram`.

    Weighted least squares on the distance classes with weights ``N_k / h_k²`` (Cressie 1985;
    more pairs and short lags count more), via ``scipy.optimize.curve_fit`` with bounds
    ``nugget, partial sill ≥ 0`` and ``range`` between a tenth of the first lag and twice the
    largest lag. Start: nugget = the first class's semivariance / 2, partial sill = the rest of
    the largest semivariance, range = a third of the largest lag.

    Returns
    -------
    VariogramFit
    """
    from scipy.optimize import curve_fit

    if model not in MODELS:
        raise ParameterError(f"model={model!r}; allowed: {list(MODELS)}.")
    needed = {"semivariance", "n_pairs"}
    if not needed <= set(empirical.columns):
        raise ParameterError(
            f"empirical has columns {list(empirical.columns)}; expected the output of "
            "soilbook.variogram.empirical_variogram (semivariance, n_pairs, mean_distance_m)."
        )
    h = np.asarray(
        empirical["mean_distance_m" if "mean_distance_m" in empirical else "lag_m"], dtype=float
    )
    g = np.asarray(empirical["semivariance"], dtype=float)
    n = np.asarray(empirical["n_pairs"], dtype=float)
    ok = (n > 0) & np.isfinite(g) & (h > 0)
    h, g, n = h[ok], g[ok], n[ok]
    if h.size < 3:
        raise ParameterError(
            f"only {h.size} distance classes with pairs; a model needs at least 3. What to do: "
            "use more lags (n_lags) or a larger max_lag_m."
        )
    gmax = float(g.max())
    if gmax <= 0:
        raise ParameterError("every semivariance is 0: the values are constant; nothing to fit.")
    hmax = float(h.max())
    sigma = h / np.sqrt(n)  # weights 1/sigma² = N/h²

    def f(hh, c0, c, a):
        return variogram_model(hh, model, c0, c, a)

    p0 = [0.5 * float(g[0]), max(gmax - 0.5 * float(g[0]), 1e-12 * gmax), hmax / 3.0]
    lower = [0.0, 0.0, 0.1 * float(h.min())]
    upper = [gmax, 2.0 * gmax, 2.0 * hmax]
    p0 = [float(np.clip(p, lo, hi)) for p, lo, hi in zip(p0, lower, upper, strict=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OptimizeWarning on poorly determined covariance
        params, _ = curve_fit(f, h, g, p0=p0, sigma=sigma, bounds=(lower, upper), maxfev=20000)
    return VariogramFit(
        model=model,
        nugget=float(params[0]),
        partial_sill=float(params[1]),
        range_m=float(params[2]),
        n_points=int(empirical.attrs.get("n_points", 0)),
        max_lag_m=float(empirical.attrs.get("max_lag_m", hmax)),
    )


def block_side_from_variogram(
    fit: VariogramFit,
    *,
    sill_share: float = 0.85,
    candidates: Sequence[float] = BLOCK_SIDES_M,
) -> float:
    """The smallest candidate block side (m) at which ``fit`` reaches ``sill_share`` of its sill.

    Rule (module docstring): blocks at least as large as the residual autocorrelation range make
    held-out blocks nearly independent of the training blocks (Roberts et al. 2017; Valavi et
    al. 2019). ``sill_share`` 0.85 means a model correlation of at most 0.15 at one block side.
    With a nugget share at or above ``sill_share`` the smallest candidate already qualifies
    (the residuals have little spatial structure). When no candidate reaches the share, the
    largest candidate is returned with a warning (the range exceeds the candidates; the scene
    may be too small for independent blocks).

    Parameters
    ----------
    fit
        A :class:`VariogramFit` (usually of model residuals).
    sill_share
        Required γ(side) / sill, in (0, 1).
    candidates
        Block sides in metres, in any order (default :data:`soilbook.geo.BLOCK_SIDES_M`).
    """
    if not 0.0 < float(sill_share) < 1.0:
        raise ParameterError(f"sill_share={sill_share!r}; expected a share in (0, 1), e.g. 0.85.")
    sides = np.sort(np.asarray(list(candidates), dtype=float))
    if sides.size == 0 or np.any(~np.isfinite(sides)) or np.any(sides <= 0):
        raise ParameterError(f"candidates={list(candidates)!r}; expected positive sides in m.")
    share = fit.share_of_sill(sides)
    reached = np.flatnonzero(share >= sill_share - 1e-12)
    if reached.size:
        return float(sides[reached[0]])
    warnings.warn(
        f"the {fit.model} variogram (range {fit.range_m:.0f} m) reaches only "
        f"{float(share[-1]):.2f} of its sill at the largest candidate block side "
        f"{sides[-1]:.0f} m (wanted {sill_share}); using {sides[-1]:.0f} m. Blocks this size "
        "are not independent: say so, or use a larger study area.",
        stacklevel=2,
    )
    return float(sides[-1])


# --------------------------------------------------------------------------------------------
# the block design of a sample set
# --------------------------------------------------------------------------------------------


@dataclass
class BlockDesign:
    """The spatial-block side chosen for a sample set, and the evidence for it.

    ``target`` / ``residual`` are :func:`empirical_variogram` tables of the (transformed)
    target and of out-of-fold residuals of a Random Forest on the tabular predictors (random
    5-fold CV, so that neighbours are in training); ``target_fit`` / ``residual_fit`` their
    :class:`VariogramFit` (None when a fit failed). ``side_target_m`` / ``side_residual_m`` are
    :func:`block_side_from_variogram` of each fit, ``block_side_m`` the side used and ``rule``
    one sentence saying how it was chosen.
    """

    block_side_m: float
    rule: str
    target: pd.DataFrame
    residual: pd.DataFrame
    target_fit: VariogramFit | None
    residual_fit: VariogramFit | None
    side_target_m: float | None
    side_residual_m: float | None

    def table(self) -> pd.DataFrame:
        """One row per variogram: nugget share, range, share of the sill at the chosen side."""
        rows = {}
        for name, fit, side in (
            ("target", self.target_fit, self.side_target_m),
            ("residual (RF, out-of-fold)", self.residual_fit, self.side_residual_m),
        ):
            if fit is None:
                continue
            rows[name] = {
                "model": fit.model,
                "nugget share": fit.nugget_share,
                "effective range (m)": fit.effective_range_m,
                f"share of sill at {self.block_side_m:g} m": float(
                    fit.share_of_sill(self.block_side_m)
                ),
                "block side it implies (m)": side,
            }
        return pd.DataFrame(rows).T

    def to_dict(self) -> dict:
        """JSON-able record for ``metrics.json``."""
        return {
            "block_side_m": self.block_side_m,
            "rule": self.rule,
            "target_fit": None if self.target_fit is None else self.target_fit.to_dict(),
            "residual_fit": None if self.residual_fit is None else self.residual_fit.to_dict(),
            "side_target_m": self.side_target_m,
            "side_residual_m": self.side_residual_m,
        }


def _residuals(ds, z: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold residuals (n,) of a 100-tree Random Forest on the tabular predictors."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold, cross_val_predict

    from soilbook.data.schema import to_tabular

    X = to_tabular(ds)
    X = np.where(np.isfinite(X), X, np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0))
    rf = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
    folds = KFold(5, shuffle=True, random_state=seed)
    return z - cross_val_predict(rf, np.nan_to_num(X), z, cv=folds)


def _fit_or_none(empirical: pd.DataFrame, model: str) -> VariogramFit | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit_variogram(empirical, model)  # type: ignore[arg-type]
    except Exception:  # a failed fit only removes one line of evidence
        return None


def _side_or_none(fit: VariogramFit | None, sill_share: float) -> float | None:
    if fit is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return block_side_from_variogram(fit, sill_share=sill_share)


def block_design(
    x_m,
    y_m,
    ds,
    z,
    *,
    block_size: float | None = None,
    model: Literal["spherical", "exponential"] = "exponential",
    sill_share: float = 0.85,
    min_blocks: int = 10,
    seed: int = 0,
) -> BlockDesign:
    """Variograms of the target and of RF residuals, and the block side they justify.

    Parameters
    ----------
    x_m, y_m : sample coordinates (m), shape (n,).
    ds : the schema sample set (its tabular predictors feed the residual model).
    z : the target on the scale the models fit (e.g. log1p(EC)), shape (n,).
    block_size : a side in metres chosen by the user (recorded, not changed), or None for
        ``"auto"``.
    model, sill_share : the variogram model and the share of the sill a block must reach
        (:func:`block_side_from_variogram`).
    min_blocks : fewest occupied blocks an ``"auto"`` side may leave (enough for the folds);
        a longer range is capped at the largest side that keeps this many, and the rule says so.
    seed : seeds the residual model's forest and folds.

    Rule for ``"auto"``: the **larger** of the sides implied by the target's and the residuals'
    variograms. The residual range is what decides whether held-out blocks are independent
    (module docstring), but these residuals come from one model; the target's range bounds it
    from above, and taking the larger side errs on the side of harder, more honest tests. When
    neither fit succeeds, the largest candidate side with at least 10 occupied blocks
    (:func:`soilbook.geo.choose_block_side`) is used and the rule says so.
    """
    from soilbook.geo import choose_block_side

    x = np.asarray(x_m, dtype=float)
    y = np.asarray(y_m, dtype=float)
    z = np.asarray(z, dtype=float)
    target = empirical_variogram(x, y, z)
    residual = empirical_variogram(x, y, _residuals(ds, z, seed))
    tfit, rfit = _fit_or_none(target, model), _fit_or_none(residual, model)
    s_t, s_r = _side_or_none(tfit, sill_share), _side_or_none(rfit, sill_share)
    if block_size is not None:
        side, rule = float(block_size), f"block side {float(block_size):g} m set by the user"
    elif s_t is None and s_r is None:
        side = choose_block_side(x, y, min_blocks=min_blocks)
        rule = (
            f"no variogram could be fitted; {side:g} m is the largest side with at least 10 "
            "occupied blocks"
        )
    else:
        side = max(s for s in (s_t, s_r) if s is not None)
        rule = (
            f"the larger of the sides at which the target's ({_fmt_side(s_t)}) and the RF "
            f"residuals' ({_fmt_side(s_r)}) {model} variograms reach {sill_share:.0%} of "
            "their sill"
        )
        from soilbook.geo import spatial_blocks

        if np.unique(spatial_blocks(x, y, side)).size < min_blocks:
            capped = choose_block_side(x, y, min_blocks=min_blocks)
            rule += (
                f"; {side:g} m would leave fewer than {min_blocks} blocks, so the largest side "
                f"that leaves {min_blocks} ({capped:g} m) is used and held-out blocks are not "
                "fully independent"
            )
            side = capped
    return BlockDesign(side, rule, target, residual, tfit, rfit, s_t, s_r)


def _fmt_side(side: float | None) -> str:
    return "no fit" if side is None else f"{side:g} m"
