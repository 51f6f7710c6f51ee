"""Interpretability: SHAP for baselines and networks, grouped permutation importance, attention.

Every SHAP function returns an :class:`Attribution` in the **target's unit** (e.g. g/kg): SHAP
values of a sample plus the base value add up to the model's prediction for it (exactly for
trees, approximately for Kernel and Gradient SHAP, which are sampling estimates).

=====================================  ====================================================
:func:`tree_shap`                      Random Forest / gradient boosting (TreeExplainer, exact)
:func:`kernel_shap`                    any tabular baseline, e.g. SVR (KernelExplainer, sampled)
:func:`gradient_shap`                  a network (GradientExplainer = expected gradients)
:func:`group_contributions`            mean |SHAP| per feature group and its share (%)
:func:`grouped_permutation_importance` RMSE increase when a whole group of inputs is shuffled
:func:`attention_summary`              mean attention weight per token / token group
=====================================  ====================================================

SHAP values explain a *model*, not the soil: correlated inputs share credit in ways that depend
on the explainer, so read group totals rather than single bands, and compare with the grouped
permutation importance, which asks a different question (how much worse the predictions get).

``shap`` is imported inside the functions that need it, so the rest of soilbook runs without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.schema import FEATURE_GROUPS, SAMPLE, target_values
from soilbook.progress import import_quietly

__all__ = [
    "Attribution",
    "attention_matrix",
    "attention_summary",
    "default_input_groups",
    "gradient_shap",
    "group_contributions",
    "grouped_permutation_importance",
    "kernel_shap",
    "tile_permutation_importance",
    "tree_shap",
]


@dataclass
class Attribution:
    """SHAP values with the names, groups and unit needed to read them.

    Attributes
    ----------
    values : ndarray (n, f) for tabular models, or a list with one array (n, *input_shape) per
        network input; in ``units``.
    feature_names : the f column names (tabular) or one name per network input.
    feature_groups : the f column groups (tabular), or per network input an array of group
        labels shaped like the input without its sample axis.
    base_value : the expected model output over the background (``units``); base_value +
        Σ values ≈ the prediction.
    units : unit of values and base_value (the target's unit; ``log1p(...)`` for a model fitted
        on a log1p target).
    method : "tree", "kernel" or "gradient".
    data : the explained inputs, same layout as ``values`` (for beeswarm plots).
    """

    values: np.ndarray | list[np.ndarray]
    feature_names: list[str]
    feature_groups: list[str] | list[np.ndarray]
    base_value: float
    units: str
    method: str
    data: np.ndarray | list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def is_tabular(self) -> bool:
        return isinstance(self.values, np.ndarray)

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[0] if self.is_tabular else self.values[0].shape[0])

    def total(self) -> np.ndarray:
        """Σ of every SHAP value per sample, shape (n,): prediction − base value (approx.)."""
        if self.is_tabular:
            return np.asarray(self.values).sum(axis=1)
        return np.sum([v.reshape(v.shape[0], -1).sum(axis=1) for v in self.values], axis=0)

    def to_frame(self) -> pd.DataFrame:
        """Per feature (tabular) or per input element group (network): mean |SHAP|, sorted.

        Columns ``feature, group, mean_abs_shap`` (in ``units``).
        """
        if self.is_tabular:
            df = pd.DataFrame(
                {
                    "feature": self.feature_names,
                    "group": list(self.feature_groups),
                    "mean_abs_shap": np.abs(np.asarray(self.values)).mean(axis=0),
                }
            )
        else:
            rows = []
            for name, vals, groups in zip(
                self.feature_names, self.values, self.feature_groups, strict=True
            ):
                mean_abs = np.abs(vals).mean(axis=0)
                for g in np.unique(groups):
                    rows.append(
                        {
                            "feature": f"{name}[{g}]",
                            "group": g,
                            "mean_abs_shap": float(mean_abs[groups == g].sum()),
                        }
                    )
            df = pd.DataFrame(rows)
        df = df.sort_values("mean_abs_shap", ascending=False, ignore_index=True)
        df.attrs["units"] = self.units
        return df


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _unwrap(estimator: Any, units: str) -> tuple[Any, str]:
    """A :class:`soilbook.evaluate.Log1pTarget` explains its inner model in log1p units."""
    from soilbook.evaluate import Log1pTarget

    if isinstance(estimator, Log1pTarget):
        return estimator.estimator_, f"log1p({units})" if units else "log1p(target)"
    return estimator, units


def _units_of(ds: xr.Dataset) -> str:
    return str(ds["target"].attrs.get("units", "")) if "target" in ds else ""


def _need_tabular(est: Any, what: str) -> None:
    if not (
        hasattr(est, "model_") and hasattr(est, "transform") and hasattr(est, "feature_names_")
    ):
        raise TypeError(
            f"{what} needs a fitted soilbook.baselines estimator (with model_, transform and "
            f"feature_names_), got {type(est).__name__}. What to do: fit a baseline first, or use "
            "gradient_shap for networks."
        )


def _sample_rows(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def _import_shap() -> Any:
    try:
        shap = import_quietly("shap")
    except ImportError as err:  # pragma: no cover - shap is in the environment
        raise ImportError(
            "SHAP explanations need the 'shap' package. What to do: pip install shap"
        ) from err
    return shap


# --------------------------------------------------------------------------------------------
# SHAP for tabular baselines
# --------------------------------------------------------------------------------------------


def tree_shap(
    rf_baseline: Any, ds: xr.Dataset, max_samples: int | None = None, seed: int = 0
) -> Attribution:
    """Exact (path-dependent) Tree SHAP of a fitted tree-ensemble baseline.

    Parameters
    ----------
    rf_baseline : fitted :class:`~soilbook.baselines.RandomForestBaseline` (or gradient boosting;
        a :class:`~soilbook.evaluate.Log1pTarget` around one explains it in log1p units).
    ds : samples to explain (ideally held-out ones).
    max_samples : explain a random subset of at most this many samples (seeded).

    Returns
    -------
    Attribution with values (n, f) in the target's unit; base_value + Σ values = prediction.
    """
    shap = _import_shap()
    est, units = _unwrap(rf_baseline, _units_of(ds))
    _need_tabular(est, "tree_shap")
    rows = _sample_rows(ds.sizes[SAMPLE], max_samples, seed)
    X = est.transform(ds)[rows].astype(np.float64)
    explainer = shap.TreeExplainer(est.model_)
    values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=np.float64)
    base = float(np.ravel(explainer.expected_value)[0])
    return Attribution(
        values=values.reshape(X.shape[0], X.shape[1]),
        feature_names=list(est.feature_names_),
        feature_groups=list(est.feature_groups_),
        base_value=base,
        units=units,
        method="tree",
        data=X,
    )


def kernel_shap(
    svr_baseline: Any,
    ds_background: xr.Dataset,
    ds_explain: xr.Dataset,
    n_background_clusters: int = 10,
    nsamples: int | str | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Attribution:
    """Kernel SHAP of any fitted tabular baseline (e.g. SVR), model-agnostic.

    The background is summarised by ``shap.kmeans`` into ``n_background_clusters`` weighted
    centres (k-means with a fixed seed; cluster centres rounded to observed values). Every
    feature gets a value: the L1 feature selection that ``shap`` applies by default (only the
    10 largest features non-zero) is switched off.

    Parameters
    ----------
    svr_baseline : fitted :class:`~soilbook.baselines.TabularRegressor`.
    ds_background : the reference samples (usually the training rows).
    ds_explain : the samples to explain (usually held-out rows).
    nsamples : coalitions per explained sample; default ``2·f + 512`` (f features); "auto" is
        shap's ``2·f + 2048``. On 80 samples × 40 features the default took a third of the time
        of "auto" and gave the same values (r = 0.9999, group shares within 0.1 %).
    max_samples : explain a random subset of at most this many samples (seeded).

    Cost: ≈ n_explain × nsamples × n_background_clusters model evaluations.

    Returns
    -------
    Attribution with values (n, f) in the target's unit.
    """
    shap = _import_shap()
    est, units = _unwrap(svr_baseline, _units_of(ds_explain))
    _need_tabular(est, "kernel_shap")
    X_bg = est.transform(ds_background).astype(np.float64)
    rows = _sample_rows(ds_explain.sizes[SAMPLE], max_samples, seed)
    X = est.transform(ds_explain)[rows].astype(np.float64)
    k = int(min(n_background_clusters, X_bg.shape[0]))
    background = shap.kmeans(X_bg, k)
    explainer = shap.KernelExplainer(est.predict_array, background)
    if nsamples is None:
        nsamples = 2 * X.shape[1] + 512
    state = np.random.get_state()  # noqa: NPY002 - shap samples with the global generator
    np.random.seed(seed)  # noqa: NPY002 - seeds KernelExplainer's coalition sampling
    try:
        values = explainer.shap_values(X, nsamples=nsamples, l1_reg=False, silent=not progress)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    values = np.asarray(values, dtype=np.float64).reshape(X.shape[0], X.shape[1])
    return Attribution(
        values=values,
        feature_names=list(est.feature_names_),
        feature_groups=list(est.feature_groups_),
        base_value=float(np.ravel(explainer.expected_value)[0]),
        units=units,
        method="kernel",
        data=X,
    )


# --------------------------------------------------------------------------------------------
# SHAP for networks
# --------------------------------------------------------------------------------------------


def _as_input_list(tensors: Any) -> tuple[list[Any], list[str] | None]:
    if isinstance(tensors, Mapping):
        return list(tensors.values()), [str(k) for k in tensors]
    if isinstance(tensors, list | tuple):
        return list(tensors), None
    return [tensors], None


def _expand_groups(labels: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Broadcast an input's group labels to its per-sample shape.

    ``labels`` is one string (the whole input), an array of that shape, or a 1-D sequence along
    one axis (the first axis of matching length, e.g. one label per layer of a patch).
    """
    if isinstance(labels, str):
        return np.full(shape, labels, dtype=object)
    arr = np.asarray(labels, dtype=object)
    if arr.shape == shape:
        return arr
    if arr.ndim == 1:
        for ax, size in enumerate(shape):
            if size == arr.size:
                view = [1] * len(shape)
                view[ax] = size
                return np.broadcast_to(arr.reshape(view), shape).copy()
    if arr.size == 1:
        return np.full(shape, arr.ravel()[0], dtype=object)
    raise ValueError(
        f"input_groups for input {name!r} has shape {arr.shape}, which does not fit the input's "
        f"per-sample shape {shape}. Expected: one label, one label per element, or one label per "
        "position along one axis (e.g. per layer)."
    )


def _column_output(module: Any) -> Any:
    """Wrap a module so its output is (n, 1) — what shap's GradientExplainer expects.

    A tuple/list output (e.g. prediction and attention weights) is reduced to its first item, a
    dict to its "prediction" entry.
    """
    import torch

    class ColumnOutput(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            out = self.inner(*xs)
            if isinstance(out, tuple | list):
                out = out[0]
            elif isinstance(out, dict):
                out = out["prediction"] if "prediction" in out else next(iter(out.values()))
            if out.ndim == 1:
                out = out[:, None]
            return out.reshape(out.shape[0], -1)[:, :1]

    return ColumnOutput(module)


def _target_standardisation(network: Any) -> tuple[float, float]:
    """(scale, shift) with prediction = module output × scale + shift, in target units.

    Reads ``target_scale_`` (a std, or a (mean, std) pair) and ``target_mean_`` (or
    ``target_shift_``); a network without them is taken to predict target units directly.
    """
    raw_scale = np.ravel(np.asarray(getattr(network, "target_scale_", 1.0), dtype=np.float64))
    if raw_scale.size == 2:  # (mean, std)
        return float(raw_scale[1]), float(raw_scale[0])
    shift = getattr(network, "target_mean_", getattr(network, "target_shift_", 0.0))
    return float(raw_scale[0]), float(np.ravel(np.asarray(shift, dtype=np.float64))[0])


def _check_network(network: Any) -> None:
    for attr in ("module_", "to_tensors", "input_groups"):
        if not hasattr(network, attr):
            raise TypeError(
                f"gradient_shap needs a fitted soilbook network with '{attr}', got "
                f"{type(network).__name__}. What to do: fit the network first; for baselines use "
                "tree_shap or kernel_shap."
            )


def _module_device(module: Any) -> Any:
    """The torch device of the module's parameters (CPU for a module without any)."""
    import torch

    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _network_inputs(
    network: Any, ds: xr.Dataset, device: Any
) -> tuple[list[Any], list[str] | None]:
    """``network.to_tensors(ds)`` as float32 tensors on ``device``.

    Returns the tensors (one per network input, samples first) and their names when
    ``to_tensors`` returned a dict (else None).
    """
    import torch

    tensors, names = _as_input_list(network.to_tensors(ds))
    return [torch.as_tensor(t).float().to(device) for t in tensors], names


def _input_names(network: Any, names: list[str] | None, n_inputs: int) -> list[str]:
    """The names of the inputs: from ``to_tensors``, else ``network.input_names_``, else inputN."""
    if names is not None:
        return names
    given = list(getattr(network, "input_names_", []) or [])
    return given if len(given) == n_inputs else [f"input{i}" for i in range(n_inputs)]


def _input_group_labels(
    network: Any, ds_ex: xr.Dataset, ex: list[Any], names: list[str]
) -> list[np.ndarray]:
    """``network.input_groups(ds_ex)`` broadcast to each input's per-sample shape (object arrays).

    A dict is matched to the inputs by name when it has every name, otherwise taken in order.
    """
    raw_groups = network.input_groups(ds_ex)
    if isinstance(raw_groups, Mapping):
        raw_groups = (
            [raw_groups[k] for k in names]
            if set(names) <= set(raw_groups)
            else list(raw_groups.values())
        )
    if raw_groups is None or len(raw_groups) != len(ex):
        raise ValueError(
            f"network.input_groups returned {raw_groups!r} for {len(ex)} inputs. Expected: one "
            "entry per input tensor."
        )
    return [
        _expand_groups(g, tuple(t.shape[1:]), n)
        for g, t, n in zip(raw_groups, ex, names, strict=True)
    ]


def _expected_gradients(
    shap: Any,
    wrapped: Any,
    module: Any,
    bg: list[Any],
    ex: list[Any],
    nsamples: int,
    seed: int,
    batch_size: int,
) -> list[Any]:
    """Raw shap.GradientExplainer values, one array per input (in standardised units).

    shap reseeds numpy's global generator (``rseed``): its state is restored afterwards, and the
    parameter gradients shap leaves on ``module`` are dropped.
    """
    explainer = shap.GradientExplainer(wrapped, bg if len(bg) > 1 else bg[0], batch_size=batch_size)
    state = np.random.get_state()  # noqa: NPY002 - shap reseeds numpy's global generator
    try:
        raw = explainer.shap_values(ex if len(ex) > 1 else ex[0], nsamples=nsamples, rseed=seed)
    finally:
        np.random.set_state(state)  # noqa: NPY002
        module.zero_grad(set_to_none=True)  # drop the parameter gradients shap left behind
    return raw if isinstance(raw, list) else [raw]


def _in_target_units(raw: list[Any], ex: list[Any], scale: float) -> list[np.ndarray]:
    """Each input's values reshaped to the input's shape (n, *input_shape), × ``scale``."""
    values = []
    for v, t in zip(raw, ex, strict=True):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim == t.ndim + 1 and v.shape[-1] == 1:
            v = v[..., 0]
        values.append(v.reshape(tuple(t.shape)) * scale)
    return values


def gradient_shap(
    network: Any,
    ds_background: xr.Dataset,
    ds_explain: xr.Dataset,
    n_background: int = 100,
    nsamples: int = 200,
    max_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 50,
) -> Attribution:
    """Expected-gradients SHAP (shap.GradientExplainer) of a fitted network.

    Uses ``network.module_`` (a torch module, put in eval mode) on ``network.to_tensors(ds)``
    (one tensor per input; a list, tuple or dict, named by ``network.input_names_``) and labels
    every element of every input with ``network.input_groups(ds)`` (``{input_name: labels}`` or
    a list; per input one group for all of it, one per position along its channel axis — a
    covariate, a raster layer — or one per element). The module predicts the standardised
    target; values are multiplied by ``network.target_scale_`` (the target's standard
    deviation), so they are in the **target's unit**, and the base value is
    ``target_mean_ + target_scale_ · mean(module output on the background)``.

    Parameters
    ----------
    n_background : at most this many background samples (seeded random subset).
    nsamples : gradient samples per explained sample (more → less noise, slower).
    max_samples : explain a random subset of at most this many samples (seeded).
    batch_size : samples per forward/backward pass (raise it on a GPU).

    Cost: n_explain × nsamples forward + backward passes. On 2 CPU cores, 80 samples of a small
    CNN with 8 × 65 × 65 patches took 180 s at nsamples=50 and 470 s at 200: use a GPU, fewer
    samples (``max_samples``) or fewer gradient samples in quick runs. The estimates are
    noisy: base value + Σ SHAP matches the prediction only approximately (more ``nsamples``,
    closer).

    Returns
    -------
    Attribution with one values array (n, *input_shape) per input.
    """
    import torch

    shap = _import_shap()
    _check_network(network)
    module = network.module_
    module.eval()
    device = _module_device(module)
    bg_rows = _sample_rows(ds_background.sizes[SAMPLE], n_background, seed)
    ex_rows = _sample_rows(ds_explain.sizes[SAMPLE], max_samples, seed + 1)
    ds_bg = ds_background.isel({SAMPLE: bg_rows})
    ds_ex = ds_explain.isel({SAMPLE: ex_rows})
    bg, names = _network_inputs(network, ds_bg, device)
    ex, _ = _network_inputs(network, ds_ex, device)
    names = _input_names(network, names, len(ex))
    groups = _input_group_labels(network, ds_ex, ex, names)

    wrapped = _column_output(module).to(device).eval()
    scale, shift = _target_standardisation(network)
    raw = _expected_gradients(shap, wrapped, module, bg, ex, nsamples, seed, batch_size)
    with torch.no_grad():
        base = float(wrapped(*bg).mean().cpu()) * scale + shift
    return Attribution(
        values=_in_target_units(raw, ex, scale),
        feature_names=names,
        feature_groups=groups,
        base_value=base,
        units=_units_of(ds_explain),
        method="gradient",
        data=[t.detach().cpu().numpy() for t in ex],
    )


# --------------------------------------------------------------------------------------------
# group summaries
# --------------------------------------------------------------------------------------------


def group_contributions(attribution: Attribution, how: str = "abs_sum") -> pd.DataFrame:
    """Mean |SHAP| per feature group and its share of the total (%).

    Two aggregates are reported; ``how`` picks the one the ``share`` column (%) uses:

    ``abs_sum`` (default; column ``mean_abs_group_shap``)
        mean over samples of |Σ SHAP over the group's members| — the group's contribution to
        each prediction (SHAP values are additive: the group sums add up to prediction − base
        value), then its mean magnitude. Members pushing in opposite directions cancel, so the
        number of members does not inflate a group.
    ``sum_abs`` (column ``mean_abs_shap``)
        Σ over the group's features (or input elements) of the mean |SHAP| over samples — the
        members' importances added up. Fine for a handful of tabular features, but it grows with
        the number of members: for a network, the sampling noise of thousands of patch pixels
        adds up in absolute value. (On an untrained CNN with 8 × 65 × 65 patch pixels and 40
        spectral values, ``sum_abs`` gave the patch groups 75 % of the credit; ``abs_sum`` ≈ 8 %.)

    For a network, every element of every input tensor counts under its ``input_groups`` label
    (e.g. all pixels of a terrain layer of the patch → "terrain").

    Returns
    -------
    DataFrame sorted by share with columns ``group, n_inputs``, ``mean_abs`` (the aggregate
    ``how`` picks), ``mean_abs_shap, mean_abs_group_shap`` (both aggregates) and ``share`` (% of
    the total of ``mean_abs``, summing to 100); ``attrs["units"]`` is the unit of the SHAP
    columns (the target's).
    """
    if how not in ("sum_abs", "abs_sum"):
        raise ValueError(f"how = {how!r}. Allowed: 'sum_abs', 'abs_sum'.")
    if attribution.is_tabular:
        flat = [np.asarray(attribution.values)]
        labels = [np.asarray(attribution.feature_groups, dtype=object)]
    else:
        flat = [v.reshape(v.shape[0], -1) for v in attribution.values]
        labels = [np.asarray(g, dtype=object).reshape(-1) for g in attribution.feature_groups]
    n = flat[0].shape[0]
    all_groups = sorted({str(g) for lab in labels for g in lab}, key=_group_order)
    rows = []
    for g in all_groups:
        sum_abs = 0.0
        signed = np.zeros(n)
        count = 0
        for vals, lab in zip(flat, labels, strict=True):
            mask = lab.astype(str) == g
            if mask.any():
                sum_abs += float(np.abs(vals[:, mask]).mean(axis=0).sum())
                signed += vals[:, mask].sum(axis=1)
                count += int(mask.sum())
        rows.append(
            {
                "group": g,
                "n_inputs": count,
                "mean_abs_shap": sum_abs,
                "mean_abs_group_shap": float(np.abs(signed).mean()),
            }
        )
    df = pd.DataFrame(rows)
    col = "mean_abs_shap" if how == "sum_abs" else "mean_abs_group_shap"
    df.insert(2, "mean_abs", df[col])
    total = df[col].sum()
    df["share"] = 100.0 * df[col] / total if total > 0 else np.nan
    df = df.sort_values("share", ascending=False, ignore_index=True)
    df.attrs["units"] = attribution.units
    df.attrs["how"] = how
    return df


def _group_order(g: str) -> tuple[int, str]:
    return (FEATURE_GROUPS.index(g) if g in FEATURE_GROUPS else len(FEATURE_GROUPS), g)


# --------------------------------------------------------------------------------------------
# grouped permutation importance
# --------------------------------------------------------------------------------------------

_INPUT_SLICES = {"reflectance": "band", "covariates": "feature", "patches": "layer"}
_GROUP_COORDS = {"covariates": "feature_group", "patches": "layer_group"}


def default_input_groups(ds: xr.Dataset) -> dict[str, list[str]]:
    """Every input of ``ds`` by feature group: reflectance → "spectral", covariates by their
    ``feature_group``, patch layers by their ``layer_group``.

    Members are written ``"variable:name"`` (``"reflectance"`` alone = the whole variable), the
    form :func:`grouped_permutation_importance` accepts.
    """
    groups: dict[str, list[str]] = {}
    if "reflectance" in ds.data_vars:
        groups.setdefault("spectral", []).append("reflectance")
    for var, coord in _GROUP_COORDS.items():
        if var in ds.data_vars:
            dim = _INPUT_SLICES[var]
            for name, g in zip(ds[dim].values, ds[coord].values, strict=True):
                groups.setdefault(str(g), []).append(f"{var}:{name}")
    return dict(sorted(groups.items(), key=lambda kv: _group_order(kv[0])))


def _resolve(ds: xr.Dataset, member: str) -> list[tuple[str, str | None, str | None]]:
    """(variable, dim, label) slices that ``member`` names; label None = the whole variable."""
    if ":" in member:
        var, label = member.split(":", 1)
        if var not in ds.data_vars or var not in _INPUT_SLICES:
            raise KeyError(f"{member!r}: no input variable {var!r} in the dataset.")
        dim = _INPUT_SLICES[var]
        if label not in set(map(str, ds[dim].values)):
            raise KeyError(f"{member!r}: {var} has no {dim} {label!r}.")
        return [(var, dim, label)]
    if member in _INPUT_SLICES and member in ds.data_vars:
        return [(member, None, None)]
    found = []
    for var, dim in _INPUT_SLICES.items():
        if var in ds.data_vars and member in set(map(str, ds[dim].values)):
            found.append((var, dim, member))
    if not found:
        raise KeyError(
            f"{member!r} names no input variable, band, covariate feature or patch layer of the "
            "dataset. What to do: use names from default_input_groups(ds)."
        )
    return found


def _permute(
    ds: xr.Dataset, slices: Sequence[tuple[str, str | None, str | None]], perm: np.ndarray
) -> xr.Dataset:
    out = ds.copy()
    by_var: dict[str, list[tuple[str | None, str | None]]] = {}
    for var, dim, label in slices:
        by_var.setdefault(var, []).append((dim, label))
    for var, items in by_var.items():
        da = ds[var]
        vals = np.array(da.values, copy=True)
        ax_sample = da.dims.index(SAMPLE)
        vals = np.moveaxis(vals, ax_sample, 0)
        if any(dim is None for dim, _ in items):
            vals = vals[perm]
        else:
            dim = items[0][0]
            labels = {lab for _, lab in items}
            axis = list(da.dims).index(dim)
            axis = axis if axis > ax_sample else axis + 1  # after moving sample to the front
            mask = np.isin(ds[dim].values.astype(str), list(labels))
            index: list[Any] = [slice(None)] * vals.ndim
            index[axis] = mask
            vals[tuple(index)] = vals[tuple(index)][perm]
        vals = np.moveaxis(vals, 0, ax_sample)
        out[var] = (da.dims, vals, da.attrs)
    return out


_LOWER_IS_BETTER = {"rmse", "mae"}
_HIGHER_IS_BETTER = {"r2", "ccc", "rpiq"}


def grouped_permutation_importance(
    estimator: Any,
    ds: xr.Dataset,
    groups: Mapping[str, Sequence[str]] | None = None,
    n_repeats: int = 5,
    seed: int = 0,
    metric: str = "rmse",
) -> pd.DataFrame:
    """How much worse a fitted model predicts ``ds`` when a whole group of inputs is shuffled.

    For each group, one random permutation of the samples is applied jointly to every variable
    slice of the group (reflectance, covariate columns, patch layers): each sample receives
    another sample's values for the whole group, so relations *within* the group are kept and
    only the link with the target and the other groups is broken. Works for any estimator with
    ``predict(ds)`` (baselines and networks). Pass **held-out** data (e.g.
    ``CVResult.held_out(ds, model, split)`` with ``CVResult.fitted[(model, split)]``).

    Parameters
    ----------
    groups : ``{group: [members]}``; a member is an input variable (``"reflectance"``), a
        qualified slice (``"covariates:elevation"``, ``"patches:dem"``, ``"reflectance:B4"``) or
        a bare band / feature / layer name (all inputs of that name). Default:
        :func:`default_input_groups`.
    n_repeats : permutations per group.
    metric : one of rmse, mae (importance = increase) or r2, ccc, rpiq (importance = decrease).

    Returns
    -------
    DataFrame sorted by importance: ``group``, ``importance`` and ``importance_sd`` (mean and
    sd over repeats; in the metric's unit — the target's for rmse/mae), the same under a
    metric-specific name (``rmse_increase``, ``rmse_increase_sd``; ``r2_decrease``, ...),
    ``baseline`` (metric on unpermuted data), ``permuted_mean``, ``n_repeats``, ``members``;
    ``attrs`` hold the metric and unit.
    """
    from soilbook.evaluate import metric_function

    if metric not in _LOWER_IS_BETTER | _HIGHER_IS_BETTER:
        raise ValueError(
            f"metric = {metric!r}. Allowed: {sorted(_LOWER_IS_BETTER | _HIGHER_IS_BETTER)}."
        )
    if n_repeats < 1:
        raise ValueError("n_repeats must be >= 1.")
    score = metric_function(metric)
    groups = dict(groups) if groups is not None else default_input_groups(ds)
    if not groups:
        raise ValueError("no input groups to permute. What to do: pass groups={name: [members]}.")
    resolved = {g: [s for m in members for s in _resolve(ds, m)] for g, members in groups.items()}
    y = target_values(ds)
    n = ds.sizes[SAMPLE]
    baseline = score(y, np.asarray(estimator.predict(ds), dtype=np.float64).ravel())
    rng = np.random.default_rng(seed)
    alias = f"{metric}_increase" if metric in _LOWER_IS_BETTER else f"{metric}_decrease"
    rows = []
    for g, slices in resolved.items():
        permuted = []
        for _ in range(n_repeats):
            perm = rng.permutation(n)
            pred = np.asarray(
                estimator.predict(_permute(ds, slices, perm)), dtype=np.float64
            ).ravel()
            permuted.append(score(y, pred))
        permuted_arr = np.asarray(permuted)
        delta = permuted_arr - baseline if metric in _LOWER_IS_BETTER else baseline - permuted_arr
        sd = float(delta.std(ddof=1)) if n_repeats > 1 else float("nan")
        rows.append(
            {
                "group": g,
                "importance": float(delta.mean()),
                "importance_sd": sd,
                alias: float(delta.mean()),
                f"{alias}_sd": sd,
                "baseline": float(baseline),
                "permuted_mean": float(permuted_arr.mean()),
                "n_repeats": n_repeats,
                "members": ", ".join(groups[g]),
            }
        )
    df = pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)
    units = _units_of(ds) if metric in _LOWER_IS_BETTER else "1"
    df.attrs.update({"metric": metric, "units": units})
    return df


def tile_permutation_importance(
    estimator: Any,
    readings: xr.Dataset,
    groups: Mapping[str, Sequence[int]],
    n_repeats: int = 5,
    seed: int = 0,
    metric: str = "rmse",
) -> pd.DataFrame:
    """:func:`grouped_permutation_importance` for a network that reads **image tiles**.

    ``estimator`` has ``tiles`` (the tile set its ``readings`` point into, integer ``tile`` /
    ``row`` / ``col`` coordinates) and ``predict_tiles(tiles) -> (n_tile, H, W)`` (chapter 4's
    :class:`~soilbook.models.soil_moisture.SoilMoistureRegressor`). For each group of channel
    positions (``{"sar": [0, 1, 2], ...}``) each tile that holds a reading takes those channels —
    values **and** validity masks — from a random tile of **another place** (``location``; a
    random permutation of the tiles when the tile set has no places), so it reads another
    place's modality while keeping its own other inputs; the readings are predicted at their
    pixels and scored, ``n_repeats`` times. Pass **held-out** readings.

    Returns the same columns as :func:`grouped_permutation_importance` (``group``,
    ``importance``, ``importance_sd``, ``baseline``, ``permuted_mean``, ``n_repeats``,
    ``members``), sorted by importance, in the metric's unit.
    """
    from soilbook.evaluate import metric_function

    if metric not in _LOWER_IS_BETTER | _HIGHER_IS_BETTER:
        raise ValueError(
            f"metric = {metric!r}. Allowed: {sorted(_LOWER_IS_BETTER | _HIGHER_IS_BETTER)}."
        )
    if n_repeats < 1:
        raise ValueError("n_repeats must be >= 1.")
    score = metric_function(metric)
    tile_of = np.asarray(readings["tile"].values, dtype=int)
    used = np.unique(tile_of)
    sub = estimator.tiles.isel(tile=used)
    t = np.searchsorted(used, tile_of)
    r = np.asarray(readings["row"].values, dtype=int)
    c = np.asarray(readings["col"].values, dtype=int)
    y = target_values(readings)

    def predicted(tiles: xr.Dataset) -> np.ndarray:
        return np.asarray(estimator.predict_tiles(tiles), dtype=np.float64)[t, r, c]

    baseline = score(y, predicted(sub))
    rng = np.random.default_rng(seed)
    names = [str(n) for n in sub["channel"].values]
    rows = []
    places = np.asarray(sub["location"].values).astype(str) if "location" in sub.coords else None

    def draw() -> np.ndarray:
        # a source tile for every tile: from another place when places are known (tiles of one
        # place share static inputs such as terrain, so a swap within a place changes nothing)
        if places is None or np.unique(places).size < 2:
            return rng.permutation(used.size)
        return np.array([rng.choice(np.flatnonzero(places != p)) for p in places])

    for g, channels in groups.items():
        idx = list(channels)
        permuted = []
        for _ in range(n_repeats):
            perm = draw()
            x = np.array(sub["inputs"].values, copy=True)
            v = np.array(sub["valid"].values, copy=True)
            x[:, idx] = x[perm][:, idx]
            v[:, idx] = v[perm][:, idx]
            shuffled = sub.copy()
            shuffled["inputs"] = (sub["inputs"].dims, x, sub["inputs"].attrs)
            shuffled["valid"] = (sub["valid"].dims, v, sub["valid"].attrs)
            permuted.append(score(y, predicted(shuffled)))
        arr = np.asarray(permuted)
        delta = arr - baseline if metric in _LOWER_IS_BETTER else baseline - arr
        rows.append(
            {
                "group": g,
                "importance": float(delta.mean()),
                "importance_sd": float(delta.std(ddof=1)) if n_repeats > 1 else float("nan"),
                "baseline": float(baseline),
                "permuted_mean": float(arr.mean()),
                "n_repeats": n_repeats,
                "members": ", ".join(names[i] for i in idx),
            }
        )
    df = pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)
    df.attrs.update(
        {"metric": metric, "units": _units_of(readings) if metric in _LOWER_IS_BETTER else "1"}
    )
    return df


# --------------------------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------------------------


def _token_dim(attn: xr.DataArray) -> str:
    if "token" in attn.dims:
        return "token"
    raise ValueError(
        f"attention has dims {attn.dims}; expected ('sample', 'query', 'token'[, ...])."
    )


def _token_group_coord(attn: xr.DataArray, dim: str, group_coord: str | None) -> str | None:
    if group_coord is not None:
        if group_coord not in attn.coords:
            raise KeyError(f"attention has no coordinate {group_coord!r}.")
        return group_coord
    for name in ("token_group", "group", "layer_group", "feature_group"):
        if name in attn.coords and attn[name].dims == (dim,):
            return name
    return None


def attention_summary(
    attn: xr.DataArray, by: str = "token", group_coord: str | None = None
) -> pd.DataFrame:
    """Mean attention weight per token (``by="token"``) or per token group (``by="group"``).

    Parameters
    ----------
    attn : weights with dims (sample, query, token) and possibly more (e.g. head); unitless, each
        query's weights summing to 1 over tokens.
    by : "token", or "group" (needs a coordinate along ``token`` such as ``token_group``).

    Returns
    -------
    DataFrame, sorted by weight: ``token`` [and ``group``] (or ``group`` and ``n_tokens``),
    ``mean_weight`` (averaged over samples, queries and any other dim), ``sd_weight`` (over
    samples of the per-sample mean), ``share`` (% of the total weight).
    """
    if by not in ("token", "group"):
        raise ValueError(f"by = {by!r}. Allowed: 'token', 'group'.")
    tok = _token_dim(attn)
    other = [d for d in attn.dims if d not in (SAMPLE, tok)]
    per_sample = attn.mean(dim=other) if other else attn  # (sample, token) or (token,)
    if SAMPLE not in per_sample.dims:
        per_sample = per_sample.expand_dims(SAMPLE)
    per_sample = per_sample.transpose(SAMPLE, tok)
    gcoord = _token_group_coord(attn, tok, group_coord)
    tokens = (
        [str(t) for t in attn[tok].values]
        if tok in attn.coords
        else [str(i) for i in range(attn.sizes[tok])]
    )
    vals = np.asarray(per_sample.values, dtype=np.float64)
    if by == "token":
        df = pd.DataFrame({"token": tokens})
        if gcoord is not None:
            df["group"] = [str(g) for g in attn[gcoord].values]
        df["mean_weight"] = vals.mean(axis=0)
        df["sd_weight"] = vals.std(axis=0, ddof=1) if vals.shape[0] > 1 else np.nan
    else:
        if gcoord is None:
            raise ValueError(
                "by='group' needs a coordinate along 'token' naming each token's group (e.g. "
                "'token_group'). What to do: attn.assign_coords(token_group=('token', [...]))."
            )
        labels = np.asarray(attn[gcoord].values).astype(str)
        names = sorted(set(labels), key=_group_order)
        summed = np.stack([vals[:, labels == g].sum(axis=1) for g in names], axis=1)
        df = pd.DataFrame(
            {
                "group": names,
                "n_tokens": [int((labels == g).sum()) for g in names],
                "mean_weight": summed.mean(axis=0),
                "sd_weight": summed.std(axis=0, ddof=1) if summed.shape[0] > 1 else np.nan,
            }
        )
    total = df["mean_weight"].sum()
    df["share"] = 100.0 * df["mean_weight"] / total if total > 0 else np.nan
    return df.sort_values("mean_weight", ascending=False, ignore_index=True)


def attention_matrix(attn: xr.DataArray) -> pd.DataFrame:
    """Mean weight per (query, token) over samples and any other dim — for plots.attention_heatmap."""
    tok = _token_dim(attn)
    if "query" not in attn.dims:
        raise ValueError(f"attention has dims {attn.dims}; expected a 'query' dim.")
    other = [d for d in attn.dims if d not in ("query", tok)]
    m = attn.mean(dim=other).transpose("query", tok)
    index = (
        [str(q) for q in attn["query"].values]
        if "query" in attn.coords
        else [str(i) for i in range(attn.sizes["query"])]
    )
    cols = (
        [str(t) for t in attn[tok].values]
        if tok in attn.coords
        else [str(i) for i in range(attn.sizes[tok])]
    )
    return pd.DataFrame(
        np.asarray(m.values),
        index=pd.Index(index, name="query"),
        columns=pd.Index(cols, name="token"),
    )
