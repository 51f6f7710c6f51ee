"""The network-as-estimator base class shared by the four papers' networks.

:class:`NetworkRegressor` turns a PyTorch module into a scikit-learn regressor that takes a
schema :class:`xarray.Dataset` (see :mod:`soilbook.data.schema`), like the baselines do::

    net = SSSoilNetRegressor(width=32, epochs=40).fit(ds_train)
    pred = net.predict(ds_test)        # ndarray (n_sample,) float64, in the target's unit

What :meth:`NetworkRegressor.fit` does, in order:

1. validate the dataset (:func:`soilbook.data.schema.validate_samples`) and the settings;
2. let the subclass choose its inputs (:meth:`~NetworkRegressor._setup_inputs`) and turn the
   dataset into named float32 arrays (:meth:`~NetworkRegressor._arrays`);
3. standardise every array with statistics of the training samples only (per channel: per
   feature, per (date, band), per raster layer — :meth:`~NetworkRegressor._stat_axes`); missing
   values (NaN) are then replaced by 0, the training mean, with a warning;
4. standardise the target (``target_mean_``, ``target_scale_``);
5. split off an inner validation set **from the training data only**, by whole ``group`` values
   (so no spatial block or pedon is on both sides), about ``val_fraction`` of the samples, seeded;
6. seed everything, build the module (:meth:`~NetworkRegressor._build_module`) and train it with
   :func:`soilbook.train.fit` (early stopping on the inner validation loss), checkpointing under
   ``checkpoint_dir / checkpoint_key(ds, y)`` when ``checkpoint_dir`` is set.

Writing a network for another paper means subclassing and implementing three hooks::

    class MyNet(NetworkRegressor):
        def __init__(self, *, width=32, **kwargs):      # training settings go to the base
            super().__init__(**kwargs)
            self.width = width
        def _setup_inputs(self, ds): ...                # remember bands / features / window
        def _arrays(self, ds): return {"spectra": ...}  # raw float32 arrays, sample axis first
        def _build_module(self, ds, arrays): return MyModule(...)  # forward(*arrays) -> (n,)

``get_params`` lists the subclass's own arguments **and** the base's training settings, so
:func:`sklearn.base.clone`, grid searches and :func:`soilbook.evaluate.cross_validate` work.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from soilbook.data.schema import SAMPLE, SchemaError, target_values, validate_samples
from soilbook.device import check_device
from soilbook.errors import OutputDirError, ParameterError
from soilbook.train import History, TrainConfig, resolve_device, set_seed
from soilbook.train import fit as train_fit

__all__ = ["NetworkRegressor", "dataset_digest", "inner_group_split"]


def inner_group_split(
    groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample positions into (train, validation) by whole groups.

    Groups are shuffled with ``seed`` and moved to the validation side until it holds at least
    ``fraction`` of the samples, skipping groups that would make it larger than 1.5 × that (one
    huge field never becomes the whole validation set). Returns an empty validation set when
    ``fraction`` is 0, when there are fewer than 10 samples or fewer than 2 groups, or when no
    group is small enough; training then runs the full number of epochs.
    """
    groups = np.asarray(groups)
    n = groups.shape[0]
    all_idx = np.arange(n)
    if fraction <= 0 or n < 10:
        return all_idx, np.array([], dtype=int)
    uniq, inverse, counts = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    if uniq.size < 2:
        return all_idx, np.array([], dtype=int)
    target = fraction * n
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    count = 0
    for g in rng.permutation(uniq.size):
        if count >= target:
            break
        if count + counts[g] <= max(1.5 * target, 1) and count + counts[g] < n:
            chosen.append(int(g))
            count += int(counts[g])
    is_val = np.isin(inverse, chosen)
    return all_idx[~is_val], all_idx[is_val]


#: Parameters that change where or how visibly a fit runs, not its result.
_NOT_IN_KEY = ("checkpoint_dir", "progress", "cpu_threads")


def _array_digest(values: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and content (object arrays through ``str``)."""
    arr = np.asarray(values)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype == object:
        h.update("\x1f".join(map(str, arr.ravel().tolist())).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def dataset_digest(ds: xr.Dataset | xr.DataArray) -> str:
    """sha256 of every variable and coordinate of ``ds`` (name, dims, dtype, shape, values).

    Attributes are left out (they do not change what a model learns); two data sets with the
    same arrays have the same digest, whatever made them.
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=str(ds.name or "values"))
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"{name}|{','.join(map(str, var.dims))}|".encode())
        h.update(_array_digest(var.values).encode())
    return h.hexdigest()


def _token(value: Any) -> Any:
    """A parameter value as it enters :meth:`NetworkRegressor.checkpoint_key`."""
    if isinstance(value, xr.Dataset | xr.DataArray):
        return {"dataset": dataset_digest(value)}
    if isinstance(value, np.ndarray):
        return {"array": _array_digest(value)}
    return repr(value)


def _training_code_digest(cls: type) -> str:
    """sha256 of the source files that define and train ``cls`` (its module and its bases'
    modules in soilbook, :mod:`soilbook.train` and :mod:`soilbook.checkpoint`)."""
    import soilbook.checkpoint
    import soilbook.train

    modules = {inspect.getmodule(c) for c in cls.__mro__ if c.__module__.startswith("soilbook.")}
    modules |= {soilbook.train, soilbook.checkpoint}
    digest = hashlib.sha256()
    for path in sorted(str(inspect.getsourcefile(m)) for m in modules if m is not None):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


class NetworkRegressor(RegressorMixin, BaseEstimator):
    """Base class: a PyTorch network fitted and applied on schema Datasets.

    Parameters
    ----------
    (the training settings shared by every network)

    epochs : maximum training epochs.
    batch_size : mini-batch size.
    learning_rate : AdamW learning rate.
    weight_decay : AdamW weight decay.
    patience : early-stopping patience in epochs (on the inner validation loss).
    loss : ``"mse"`` or ``"huber"`` (on the standardised target).
    val_fraction : share of the *training* samples held out, by group, for early stopping
        (0 disables early stopping: all ``epochs`` run and the best training-loss epoch is kept).
    max_grad_norm : gradient-norm clip (``None`` disables it).
    seed : seeds weight initialisation, the inner split, shuffling and dropout.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    checkpoint_dir : a folder for resumable checkpoints; ``None`` trains without them. Each fit
        writes under its own sub-folder ``checkpoint_dir / checkpoint_key(ds, y)`` (a hash of
        the estimator, its parameters, the training data and the seed; see
        :meth:`checkpoint_key`), so every cross-validation fold and every variant keeps its own
        checkpoint, and re-running the same fit resumes from it — or, when that training had
        finished, restores its best weights without training (:mod:`soilbook.train`,
        :mod:`soilbook.checkpoint`).
    progress : show a tqdm progress bar over epochs.
    cpu_threads : CPU threads while training; ``None`` = automatic (one thread for small
        mini-batches, see :class:`soilbook.train.TrainConfig`).

    Attributes
    ----------
    (set by :meth:`fit`)

    module_ : the trained :class:`torch.nn.Module` (eval mode, on ``device_``); it maps
        :meth:`to_tensors` to the *standardised* target, i.e.
        ``prediction = module_(*to_tensors(ds)) * target_scale_ + target_mean_``.
    history_ : :class:`soilbook.train.History` (losses on the standardised target).
    device_ : the :class:`torch.device` used.
    target_mean_, target_scale_ : the target's standardisation (target units).
    target_units_, target_long_name_ : the target's attributes, for maps and tables.
    input_names_ : the names of the model inputs, in the order of :meth:`to_tensors`.
    input_stats_ : ``{name: (mean, std)}`` arrays used to standardise each input.
    n_train_, n_val_ : samples used for training and for early stopping.
    checkpoint_path_ : this fit's checkpoint folder (a :class:`~pathlib.Path`), or ``None``.
    """

    def __init__(
        self,
        *,
        epochs: int = 40,
        batch_size: int = 64,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 8,
        loss: str = "mse",
        val_fraction: float = 0.15,
        max_grad_norm: float | None = 1.0,
        seed: int = 0,
        device: str = "auto",
        checkpoint_dir: str | Path | None = None,
        progress: bool = False,
        cpu_threads: int | None = None,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.loss = loss
        self.val_fraction = val_fraction
        self.max_grad_norm = max_grad_norm
        self.seed = seed
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.cpu_threads = cpu_threads

    # -- scikit-learn plumbing -------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a subclass's ``__init__(self, *, own..., **kwargs)`` the full signature.

        The merged signature (own arguments, then the base's training settings) is what
        ``inspect.signature`` — and so scikit-learn's ``get_params``, ``clone`` and ``repr`` —
        sees, and what notebook users see in ``help(...)``.
        """
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        own = [
            p
            for p in inspect.signature(init).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        names = {p.name for p in own}
        inherited = []
        for klass in cls.__mro__[1:]:
            base_init = klass.__dict__.get("__init__")
            if base_init is None or not issubclass(klass, NetworkRegressor):
                continue
            for p in inspect.signature(base_init).parameters.values():
                if p.name not in names and p.name != "self" and p.kind == p.KEYWORD_ONLY:
                    inherited.append(p)
                    names.add(p.name)
        params = own + [p.replace(kind=p.KEYWORD_ONLY) for p in inherited]
        init.__signature__ = inspect.Signature(params)

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The subclass's own ``__init__`` arguments plus every base class's ones.

        Subclasses pass the training settings through ``**kwargs``; scikit-learn's default
        introspection would miss them, so collect the named arguments along the MRO.
        """
        names: set[str] = set()
        for klass in cls.__mro__:
            if not issubclass(klass, NetworkRegressor):
                continue
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    names.add(p.name)
        return sorted(names)

    # -- hooks for subclasses --------------------------------------------------------------------

    def _setup_inputs(self, ds: xr.Dataset) -> None:
        """Decide, from the training set, which inputs to use (store them as ``*_`` attributes)."""

    def _arrays(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        """Raw (unstandardised) float32 arrays, sample axis first, in the module's input order."""
        raise NotImplementedError

    def _build_module(self, ds: xr.Dataset, arrays: dict[str, np.ndarray]) -> nn.Module:
        """The untrained module; ``arrays`` are the standardised training arrays (for shapes)."""
        raise NotImplementedError

    def _stat_axes(self, name: str, ndim: int) -> tuple[int, ...]:
        """Axes over which an input's mean/std are computed (the others keep one value each).

        Default: over samples for 2-D and 3-D inputs (one statistic per feature or per
        (date, band)); over samples and pixels for 4-D images (one per channel / layer).
        """
        return (0, 2, 3) if ndim == 4 else (0,)

    def _input_groups(self) -> dict[str, str | Sequence[str]]:
        """Per input name: its feature group, or one group per index along axis 1."""
        return {}

    def _check_params(self) -> None:
        """Validate the settings (subclasses extend this); raise ParameterError."""
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ParameterError(
                    f"{type(self).__name__}: {name}={value!r} must be an int >= 1."
                )
        if not 0 <= float(self.val_fraction) < 0.9:
            raise ParameterError(
                f"{type(self).__name__}: val_fraction={self.val_fraction!r} must be in [0, 0.9)."
            )
        check_device(str(self.device))
        cdir = self.checkpoint_dir
        if cdir is not None and (not isinstance(cdir, str | os.PathLike) or not str(cdir).strip()):
            raise ParameterError(
                f"{type(self).__name__}: checkpoint_dir={cdir!r} must be a folder path (str or "
                "Path, not empty) or None (no checkpoints)."
            )

    # -- fitting ---------------------------------------------------------------------------------

    def _train_config(self, checkpoint_dir: Path | None = None) -> TrainConfig:
        """The :class:`TrainConfig` of this estimator's settings; ``checkpoint_dir`` is the
        per-fit folder (:meth:`_fit_checkpoint_dir`), not the ``checkpoint_dir`` parameter."""
        return TrainConfig(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            patience=int(self.patience),
            loss=self.loss,
            seed=int(self.seed),
            device=str(self.device),
            checkpoint_dir=checkpoint_dir,
            progress=bool(self.progress),
            max_grad_norm=self.max_grad_norm,
            cpu_threads=self.cpu_threads,
        )

    def _start_fit(self, ds: xr.Dataset, y: Any) -> tuple[TrainConfig, np.ndarray]:
        """Checks shared by every network's ``fit``: data, settings, device and target; and the
        per-fit checkpoint folder (``checkpoint_path_``, created here so that an unwritable
        folder fails before training).

        Returns the training configuration and the raw target, shape (n_sample,), float64.
        """
        validate_samples(ds)
        self._check_params()
        self._train_config()  # validates the training settings before the data are hashed
        self.device_ = resolve_device(self.device)
        y_raw = target_values(ds) if y is None else np.asarray(y, dtype=np.float64).ravel()
        if y_raw.shape[0] != ds.sizes[SAMPLE]:
            raise ValueError(
                f"y has {y_raw.shape[0]} values but ds has {ds.sizes[SAMPLE]} samples."
            )
        if not np.isfinite(y_raw).all():
            raise ValueError("the target holds NaN/inf values; drop unlabelled samples first.")
        target = ds["target"]
        self.target_units_ = str(target.attrs.get("units", ""))
        self.target_long_name_ = str(target.attrs.get("long_name", "target"))
        self.checkpoint_path_ = self._fit_checkpoint_dir(ds, y_raw)
        return self._train_config(self.checkpoint_path_), y_raw

    def checkpoint_key(self, ds: xr.Dataset, y: Any = None) -> str:
        """The name of the folder under ``checkpoint_dir`` that a fit on ``ds`` (and ``y``) uses.

        ``<class name>-<16 hex digits>``: a sha256 of the estimator's class, its parameters
        (:meth:`get_params` without ``checkpoint_dir``, ``progress`` and ``cpu_threads``, which
        do not change the result; data sets among them by content), the content of ``ds``
        (every variable and coordinate, so every cross-validation fold and every variant gets
        its own folder), the target, the seed and the source code that trains it (the
        estimator's module, this module, the training loop and the checkpoint format), so a
        checkpoint written by other code is never resumed. A re-run with the same inputs finds
        the same folder and resumes (or, when that training had finished, restores its best
        weights).
        """
        y_raw = target_values(ds) if y is None else np.asarray(y, dtype=np.float64).ravel()
        params = self.get_params(deep=False)
        for name in _NOT_IN_KEY:
            params.pop(name, None)
        payload = {
            "estimator": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": {k: _token(v) for k, v in sorted(params.items())},
            "data": dataset_digest(ds),
            "y": _array_digest(np.asarray(y_raw, dtype=np.float64)),
            "seed": int(self.seed),
            "code": _training_code_digest(type(self)),
        }
        text = json.dumps(payload, sort_keys=True)
        return f"{type(self).__name__}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def _fit_checkpoint_dir(self, ds: xr.Dataset, y_raw: np.ndarray) -> Path | None:
        """``checkpoint_dir / checkpoint_key(ds, y)``, created (None without checkpoints)."""
        if self.checkpoint_dir is None:
            return None
        path = Path(self.checkpoint_dir) / self.checkpoint_key(ds, y_raw)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(
                f"{type(self).__name__}: the checkpoint folder {path} cannot be created ({exc}). "
                "What to do: pass a writable checkpoint_dir, or checkpoint_dir=None to train "
                "without checkpoints."
            ) from exc
        if not os.access(path, os.W_OK):
            raise OutputDirError(
                f"{type(self).__name__}: the checkpoint folder {path} is not writable. What to "
                "do: pass a writable checkpoint_dir, or checkpoint_dir=None to train without "
                "checkpoints."
            )
        return path

    def _fit_input_stats(self, raw: dict[str, np.ndarray]) -> None:
        """``input_names_`` and ``input_stats_`` (per-channel mean/std, NaN-aware, float32; std 1
        where constant) from the raw training arrays."""
        self.input_names_ = list(raw)
        self.input_stats_ = {}
        for name, arr in raw.items():
            axes = self._stat_axes(name, arr.ndim)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels
                mean = np.nanmean(arr.astype(np.float64), axis=axes, keepdims=True)
                std = np.nanstd(arr.astype(np.float64), axis=axes, keepdims=True)
            mean = np.where(np.isfinite(mean), mean, 0.0)
            std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
            self.input_stats_[name] = (mean.astype(np.float32), std.astype(np.float32))

    def _fit_target_scale(self, y_raw: np.ndarray) -> np.ndarray:
        """Set ``target_mean_`` / ``target_scale_`` and return the standardised target
        (n_sample,) float32."""
        self.target_mean_ = float(np.mean(y_raw))
        scale = float(np.std(y_raw))
        self.target_scale_ = scale if scale > 1e-12 else 1.0
        return ((y_raw - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _inner_split(self, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """The (train, validation) positions of the inner, grouped early-stopping split."""
        groups = ds["group"].values if "group" in ds.coords else np.arange(ds.sizes[SAMPLE])
        train_idx, val_idx = inner_group_split(groups, float(self.val_fraction), int(self.seed))
        self.n_train_, self.n_val_ = int(train_idx.size), int(val_idx.size)
        return train_idx, val_idx

    def _train(
        self,
        module: nn.Module,
        tensors: Sequence[Tensor],
        y: Tensor,
        split: tuple[np.ndarray, np.ndarray],
        config: TrainConfig,
        run_key: dict[str, Any],
        train_loss_fn: Any = None,
    ) -> History:
        """Train ``module`` with :func:`soilbook.train.fit` on the rows ``split[0]`` of
        ``tensors``/``y``, early-stopping on the rows ``split[1]`` (none when empty)."""
        tr, va = (torch.from_numpy(np.asarray(i)) for i in split)
        has_val = split[1].size > 0
        return train_fit(
            module,
            [t[tr] for t in tensors],
            y[tr],
            [t[va] for t in tensors] if has_val else None,
            y[va] if has_val else None,
            config,
            run_key=run_key,
            train_loss_fn=train_loss_fn,
        )

    def fit(self, ds: xr.Dataset, y: Any = None) -> NetworkRegressor:
        """Fit on the samples of ``ds`` (a schema sample set); ``y`` overrides ``ds['target']``.

        With ``checkpoint_dir`` set, training checkpoints go to
        ``checkpoint_dir / checkpoint_key(ds, y)`` and a repeated fit resumes from them.
        """
        config, y_raw = self._start_fit(ds, y)
        self._setup_inputs(ds)
        raw = self._arrays(ds)
        self._fit_input_stats(raw)
        arrays = self._standardise(raw, warn=True)
        y_std = self._fit_target_scale(y_raw)
        split = self._inner_split(ds)
        set_seed(int(self.seed))
        self.module_ = self._build_module(ds, arrays)
        tensors = [torch.from_numpy(a) for a in arrays.values()]
        self.history_: History = self._train(
            self.module_, tensors, torch.from_numpy(y_std), split, config, self._run_key()
        )
        self.module_.eval()
        return self

    def _run_key(self) -> dict[str, Any]:
        """What identifies this fit beyond the data and TrainConfig (for checkpoint names)."""
        params = self.get_params(deep=False)
        for name in _NOT_IN_KEY:
            params.pop(name, None)
        return {
            "estimator": type(self).__qualname__,
            "params": {k: repr(v) for k, v in sorted(params.items())},
            "inputs": self.input_names_,
        }

    # -- inputs ----------------------------------------------------------------------------------

    def _standardise(self, raw: dict[str, np.ndarray], warn: bool = False) -> dict[str, np.ndarray]:
        out = {}
        for name, arr in raw.items():
            mean, std = self.input_stats_[name]
            z = ((np.asarray(arr, dtype=np.float32) - mean) / std).astype(np.float32)
            bad = ~np.isfinite(z)
            if bad.any():
                if warn:
                    warnings.warn(
                        f"{type(self).__name__}: input '{name}' has {int(bad.sum())} missing or "
                        "infinite value(s); they are replaced by the training mean.",
                        stacklevel=3,
                    )
                z[bad] = 0.0
            out[name] = np.ascontiguousarray(z)
        return out

    def _check_predict_ds(self, ds: xr.Dataset) -> None:
        check_is_fitted(self, "module_")
        if not isinstance(ds, xr.Dataset) or SAMPLE not in ds.dims:
            raise SchemaError(
                f"{type(self).__name__}.predict needs a sample set (an xarray.Dataset with a "
                f"'{SAMPLE}' dimension); got {type(ds).__name__}. What to do: pass samples in the "
                "soilbook schema (soilbook.data.schema)."
            )

    def to_tensors(self, ds: xr.Dataset) -> list[Tensor]:
        """The standardised model inputs of ``ds`` as float32 CPU tensors (order: ``input_names_``)."""
        self._check_predict_ds(ds)
        arrays = self._standardise(self._arrays(ds))
        return [torch.from_numpy(arrays[name]) for name in self.input_names_]

    def input_groups(self, ds: xr.Dataset | None = None) -> dict[str, str | list[str]]:
        """The feature group of every part of :meth:`to_tensors`, one entry per input tensor.

        Returns ``{input_name: labels}`` in the order of :meth:`to_tensors`, where ``labels`` is
        one group name for the whole input (e.g. all reflectance is ``"spectral"``) or a list with
        one group per position along the input's channel axis (axis 1 of the tensor: a covariate,
        a raster layer). Groups are those of :data:`soilbook.data.schema.FEATURE_GROUPS`; grouped
        SHAP (:func:`soilbook.explain.gradient_shap`) sums over them. ``ds`` is accepted for API
        symmetry; the grouping is fixed at fit time.
        """
        check_is_fitted(self, "module_")
        spec = self._input_groups()
        out: dict[str, str | list[str]] = {}
        for name in self.input_names_:
            groups = spec.get(name, "other")
            out[name] = groups if isinstance(groups, str) else [str(g) for g in groups]
        return out

    # -- prediction ------------------------------------------------------------------------------

    def _predict_batch_size(self) -> int:
        return max(256, int(self.batch_size) * 4)

    @torch.no_grad()
    def predict_tensors(
        self, tensors: Sequence[Tensor], batch_size: int | None = None
    ) -> np.ndarray:
        """Predictions (target units, float64) for already standardised input tensors."""
        check_is_fitted(self, "module_")
        module = self.module_.to(self.device_).eval()
        n = tensors[0].shape[0]
        bs = batch_size or self._predict_batch_size()
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, bs):
            batch = [t[start : start + bs].to(self.device_) for t in tensors]
            pred = module(*batch).float().reshape(-1)
            out[start : start + bs] = pred.cpu().numpy().astype(np.float64)
        return out * self.target_scale_ + self.target_mean_

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        """Predicted target for every sample of ``ds``: ndarray (n_sample,) float64, target units."""
        tensors = self.to_tensors(ds)
        if tensors[0].shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        return self.predict_tensors(tensors)

    def score(self, ds: xr.Dataset, y: Any = None, sample_weight: Any = None) -> float:
        """R² of the predictions against ``ds['target']`` (or ``y``)."""
        from sklearn.metrics import r2_score

        truth = target_values(ds) if y is None else np.asarray(y, dtype=np.float64).ravel()
        return float(r2_score(truth, self.predict(ds), sample_weight=sample_weight))


# -- helpers for subclasses: select named inputs and fail clearly ------------------------------


def select_names(da: xr.DataArray, dim: str, names: Sequence[str], what: str) -> xr.DataArray:
    """``da`` restricted to the coordinate values ``names`` along ``dim``, in that order."""
    have = [str(v) for v in da[dim].values]
    missing = [n for n in names if n not in have]
    if missing:
        raise SchemaError(
            f"{what} lacks the {dim}(s) {missing[:8]}{' …' if len(missing) > 8 else ''} the model "
            f"was trained on. Expected: the same {dim} names as the training samples. What to do: "
            "build the inputs with the same data source and settings."
        )
    pos = [have.index(n) for n in names]
    return da.isel({dim: pos})
