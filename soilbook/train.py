"""One training loop for every network in the book.

:func:`fit` trains any :class:`torch.nn.Module` whose ``forward(*inputs)`` returns one value per
sample, on in-memory tensors, with the same recipe for all four papers:

* **optimiser** AdamW (``learning_rate``, ``weight_decay``), gradient-norm clipping
  (``max_grad_norm``), a cosine learning-rate schedule stepped once per mini-batch down to 1 % of
  the initial rate at ``epochs``;
* **loss** mean squared error or Huber (δ = 1, on whatever scale the caller standardised the
  target to);
* **mixed precision** bfloat16 autocast on CUDA only (CPU trains in float32, so CPU results are
  exactly reproducible);
* **early stopping** on the validation loss with ``patience`` epochs; the best weights are restored
  at the end (without a validation set the training loss is monitored instead);
* **checkpoints** written atomically (temporary file + :func:`os.replace`) after every epoch when
  ``checkpoint_dir`` is set. A checkpoint holds the model, optimiser, scheduler and random-number
  states, the epoch, the best weights and the history, and is named after a fingerprint of the
  configuration, the module's parameter shapes and the data (shapes plus a checksum). Calling
  :func:`fit` again with the same run **resumes** from it, so that an interrupted-then-resumed CPU
  run ends with exactly the same weights and history as an uninterrupted one; calling it after the
  run finished returns the stored result without training;
* **progress** one tqdm bar over epochs with the losses as postfix (``progress=False`` hides it);
* **divergence guard** a NaN or infinite loss raises :class:`TrainingDivergedError` naming the
  epoch and batch and what to try.

Mini-batches are shuffled with a :class:`torch.Generator` seeded from ``seed``; its state is part
of the checkpoint. Dropout draws from torch's global generator, which :func:`fit` seeds from
``seed`` at the start of a fresh run and restores from the checkpoint on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from soilbook.device import check_device
from soilbook.errors import ParameterError, TrainingDivergedError

__all__ = [
    "History",
    "TrainConfig",
    "TrainingDivergedError",
    "fit",
    "resolve_device",
    "set_seed",
]

#: Bump when the checkpoint layout changes, so old checkpoints are not resumed.
_CHECKPOINT_VERSION = 1
#: Inputs larger than this (bytes) stay on the CPU and are moved to the device batch by batch.
_MAX_DEVICE_BYTES = 4 * 1024**3


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` for ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.

    Raises :class:`soilbook.errors.ParameterError` when CUDA is asked for but absent, or when the
    index ``N`` does not exist.
    """
    if isinstance(device, torch.device):
        device = str(device)
    check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParameterError(
            f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist "
            f"(indices 0..{torch.cuda.device_count() - 1}). Use 'cuda' or 'auto'."
        )
    return dev


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators.

    Also makes cuDNN pick deterministic kernels (cheap for the small convolutions used here). On
    the CPU the same seed then gives bit-identical training; on a GPU results agree to rounding.
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a non-negative int.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code using the legacy API
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@dataclass
class TrainConfig:
    """Settings of one training run (see the module docstring for the recipe).

    ``epochs`` is the maximum number of epochs (the cosine schedule spans it); ``patience`` the
    epochs without a better validation loss before stopping; ``loss`` is ``"mse"`` or
    ``"huber"``; ``scheduler`` ``"cosine"`` or ``"none"``; ``device`` as for
    :func:`resolve_device`; ``checkpoint_dir`` enables checkpoints and resume; ``max_grad_norm``
    ``None`` disables clipping; ``amp`` enables bfloat16 autocast on CUDA (never used on the CPU).
    ``cpu_threads`` sets torch's intra-op CPU threads for the duration of the fit (restored
    afterwards); ``None`` = automatic: **1 thread** when one mini-batch of inputs holds fewer than
    2**20 values (small networks such as the quick profile's, where a second thread gains ~15 %
    but an oversubscribed CPU — a CI runner, a notebook beside other jobs — makes OpenMP threads
    wait on each other, measured up to 40× slower), otherwise torch's own setting.
    ``progress``, ``checkpoint_dir`` and ``cpu_threads`` are not part of the run's fingerprint.
    """

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8
    loss: str = "mse"
    scheduler: str = "cosine"
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: Path | None = None
    progress: bool = True
    max_grad_norm: float | None = 1.0
    amp: bool = True
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"TrainConfig.{name}={value!r} must be an int >= 1.")
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ParameterError(f"TrainConfig.{name}={value!r} must be a finite number >= 0.")
        if self.loss not in ("mse", "huber"):
            raise ParameterError(f"TrainConfig.loss={self.loss!r}; allowed: 'mse', 'huber'.")
        if self.scheduler not in ("cosine", "none"):
            raise ParameterError(
                f"TrainConfig.scheduler={self.scheduler!r}; allowed: 'cosine', 'none'."
            )
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ParameterError(
                f"TrainConfig.max_grad_norm={self.max_grad_norm!r} must be > 0 or None."
            )
        if self.cpu_threads is not None and (
            isinstance(self.cpu_threads, bool)
            or not isinstance(self.cpu_threads, int | np.integer)
            or self.cpu_threads < 1
        ):
            raise ParameterError(
                f"TrainConfig.cpu_threads={self.cpu_threads!r} must be None (automatic) or an int >= 1."
            )
        check_device(str(self.device))

    def fingerprint_fields(self) -> dict[str, Any]:
        """The settings that define the run (all but progress, checkpoint_dir, cpu_threads)."""
        out = asdict(self)
        for name in ("progress", "checkpoint_dir", "cpu_threads"):
            out.pop(name)
        return out


@dataclass
class History:
    """What happened during :func:`fit`, one entry per completed epoch.

    Losses are on the scale the target was given in (standardised units for
    :class:`soilbook.models.base.NetworkRegressor`). ``best_epoch`` is 1-based; the returned
    module holds that epoch's weights. ``resumed_from`` is the number of epochs read from a
    checkpoint (0 for a fresh run); ``seconds`` are wall-clock seconds per epoch of this process
    (epochs read from a checkpoint keep the times recorded when they ran).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = float("inf")
    monitor: str = "val_loss"
    stopped_early: bool = False
    finished: bool = False
    resumed_from: int = 0
    device: str = "cpu"
    n_train: int = 0
    n_val: int = 0

    @property
    def samples_per_second(self) -> float:
        """Training samples processed per second, averaged over the recorded epochs."""
        total = sum(self.seconds)
        return float(self.n_train * len(self.seconds) / total) if total > 0 else float("nan")

    def to_frame(self):  # -> pandas.DataFrame
        """The per-epoch record as a DataFrame (index ``epoch``) for learning-curve plots."""
        import pandas as pd

        return pd.DataFrame(
            {
                "train_loss": self.train_loss,
                "val_loss": self.val_loss,
                "lr": self.lr,
                "seconds": self.seconds,
            },
            index=pd.Index(self.epoch, name="epoch"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # Mapping-style access, so plotting code can take ``history["train_loss"]``.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    def keys(self) -> list[str]:
        return list(self.__dataclass_fields__)


# -- helpers -------------------------------------------------------------------------------------


def _as_tensor_list(tensors: Sequence[Tensor] | Tensor, what: str) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    out = []
    for t in tensors:
        if not isinstance(t, Tensor):
            t = torch.as_tensor(np.asarray(t))
        if t.is_floating_point():
            t = t.float()
        out.append(t)
    if not out:
        raise ValueError(f"{what}: no input tensors given; pass a list with at least one tensor.")
    return out


def _check_inputs(xs: list[Tensor], y: Tensor, what: str) -> None:
    n = y.shape[0]
    for i, t in enumerate(xs):
        if t.shape[0] != n:
            raise ValueError(
                f"{what} input {i} has {t.shape[0]} rows but the target has {n}; "
                "every input tensor needs one row per sample."
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"{what} input {i} (shape {tuple(t.shape)}) holds {bad} NaN/inf value(s). "
                "Impute or drop them before training (NetworkRegressor imputes with the mean)."
            )
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{what} target holds NaN/inf values; drop unlabelled samples first.")


def _data_fingerprint(xs: list[Tensor], y: Tensor) -> list[Any]:
    """Shapes, dtypes and a cheap checksum (a strided subsample of every tensor)."""
    out: list[Any] = []
    for t in [*xs, y]:
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // 200_000)
        sample = flat[::step].to("cpu", torch.float64).numpy()
        digest = hashlib.blake2b(np.ascontiguousarray(sample).tobytes(), digest_size=8).hexdigest()
        out.append([list(t.shape), str(t.dtype), digest])
    return out


def _run_fingerprint(
    module: nn.Module, config: TrainConfig, xs, y, vxs, vy, device, run_key: Any = None
) -> str:
    payload = {
        "version": _CHECKPOINT_VERSION,
        "module": type(module).__qualname__,
        "structure": repr(module),
        "run_key": run_key,
        "parameters": [[k, list(v.shape)] for k, v in module.state_dict().items()],
        "config": config.fingerprint_fields(),
        "device_type": device.type,
        "train": _data_fingerprint(xs, y),
        "val": _data_fingerprint(vxs, vy) if vy is not None else None,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _rng_states(generator: torch.Generator) -> dict[str, Any]:
    return {
        "shuffle": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),  # noqa: NPY002
        "python": random.getstate(),
    }


def _set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(states["shuffle"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])  # noqa: NPY002
    random.setstate(states["python"])


def _loss_fn(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    if name == "mse":
        return nn.functional.mse_loss
    return lambda p, t: nn.functional.huber_loss(p, t, delta=1.0)


def _batches(xs: list[Tensor], idx: Tensor, device: torch.device) -> list[Tensor]:
    return [t[idx.to(t.device)].to(device, non_blocking=True) for t in xs]


@torch.no_grad()
def _evaluate(module, xs, y, batch_size, device, autocast, loss_fn) -> float:
    module.eval()
    total, n = 0.0, y.shape[0]
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        with autocast():
            pred = module(*_batches(xs, idx, device))
        pred = pred.float().reshape(-1)
        total += float(loss_fn(pred, y[idx.to(y.device)])) * len(idx)
    return total / max(n, 1)


# -- the loop ------------------------------------------------------------------------------------


def fit(
    module: nn.Module,
    train_tensors: Sequence[Tensor] | Tensor,
    y_train: Tensor | np.ndarray,
    val_tensors: Sequence[Tensor] | Tensor | None = None,
    y_val: Tensor | np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    callback: Callable[[int, History], Any] | None = None,
    run_key: Any = None,
    train_loss_fn: Callable[[nn.Module, list[Tensor], Tensor], Tensor] | None = None,
) -> History:
    """Train ``module`` in place and return its :class:`History`.

    Parameters
    ----------
    module : ``forward(*inputs) -> Tensor (n,)`` or ``(n, 1)``; moved to the configured device.
    train_tensors : one tensor per model input, each with the sample as first axis.
    y_train : target, shape (n,), on the scale the loss should see (standardise it first).
    val_tensors, y_val : the same for the validation set used for early stopping; ``None`` trains
        for ``config.epochs`` epochs and keeps the weights with the lowest training loss.
    config : :class:`TrainConfig` (defaults when ``None``).
    callback : called as ``callback(epoch, history)`` after every completed epoch, after the
        checkpoint is written; if it raises, training stops there and can be resumed later from the
        checkpoint (this is how the tests simulate an interruption).
    run_key : anything JSON-serialisable (via ``str`` otherwise) that also identifies the run,
        e.g. an estimator's hyperparameters; it joins the checkpoint fingerprint (besides the
        config, the module's class, structure and parameter shapes, and the data) so that runs
        differing only in, say, dropout never resume each other's checkpoints.
    train_loss_fn : the extension point for multi-term objectives (e.g. DeepSalt's supervised +
        feature-distillation loss): called as ``train_loss_fn(module, batch, target)`` on every
        training mini-batch (``batch`` = the mini-batch of every training tensor, on the device;
        inside the autocast context) and must return the scalar loss to minimise, instead of
        ``config.loss(module(*batch), target)``. The validation loss (early stopping) stays
        ``config.loss(module(*val_batch), val_target)``, so ``module.forward`` must accept the
        same tensors (it may ignore trailing auxiliary ones). The callable is not part of the
        checkpoint fingerprint: identify it through ``run_key``.

    Returns
    -------
    History
        The module holds the best epoch's weights when this returns.
    """
    config = config or TrainConfig()
    threads = _cpu_threads(config, train_tensors)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit(
            module,
            train_tensors,
            y_train,
            val_tensors,
            y_val,
            config,
            callback,
            run_key,
            train_loss_fn,
        )
    finally:
        if threads is not None:
            torch.set_num_threads(before)


#: Mini-batches with fewer input values than this train on one CPU thread (cpu_threads=None).
_SMALL_BATCH_VALUES = 2**20


def _cpu_threads(config: TrainConfig, tensors: Sequence[Tensor] | Tensor) -> int | None:
    """The CPU thread count to use for this fit (None: leave torch's setting)."""
    if resolve_device(config.device).type != "cpu":
        return None
    if config.cpu_threads is not None:
        return int(config.cpu_threads)
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    per_sample = sum(int(np.prod(tuple(t.shape)[1:])) for t in tensors)
    return 1 if per_sample * config.batch_size < _SMALL_BATCH_VALUES else None


def _fit(
    module: nn.Module,
    train_tensors: Sequence[Tensor] | Tensor,
    y_train: Tensor | np.ndarray,
    val_tensors: Sequence[Tensor] | Tensor | None,
    y_val: Tensor | np.ndarray | None,
    config: TrainConfig,
    callback: Callable[[int, History], Any] | None,
    run_key: Any = None,
    train_loss_fn: Callable[[nn.Module, list[Tensor], Tensor], Tensor] | None = None,
) -> History:
    device = resolve_device(config.device)
    xs = _as_tensor_list(train_tensors, "training")
    y = torch.as_tensor(np.asarray(y_train) if not isinstance(y_train, Tensor) else y_train)
    y = y.float().reshape(-1)
    _check_inputs(xs, y, "training")
    has_val = val_tensors is not None and y_val is not None
    vxs: list[Tensor] = []
    vy: Tensor | None = None
    if has_val:
        vxs = _as_tensor_list(val_tensors, "validation")
        vy = torch.as_tensor(np.asarray(y_val) if not isinstance(y_val, Tensor) else y_val)
        vy = vy.float().reshape(-1)
        _check_inputs(vxs, vy, "validation")
        if len(vxs) != len(xs):
            raise ValueError(f"{len(xs)} training inputs but {len(vxs)} validation inputs.")
        if vy.shape[0] == 0:
            has_val, vxs, vy = False, [], None

    n = y.shape[0]
    if n == 0:
        raise ValueError("no training samples; the training set is empty.")
    fingerprint = _run_fingerprint(module, config, xs, y, vxs, vy, device, run_key)
    module.to(device)
    # Keep the data where the module is when it fits, so batches are plain index operations.
    data_bytes = sum(t.numel() * t.element_size() for t in [*xs, *vxs])
    if device.type != "cpu" and data_bytes <= _MAX_DEVICE_BYTES:
        xs = [t.to(device) for t in xs]
        vxs = [t.to(device) for t in vxs]
    y = y.to(device)
    if vy is not None:
        vy = vy.to(device)

    steps_per_epoch = math.ceil(n / config.batch_size)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    if config.scheduler == "cosine":
        scheduler: torch.optim.lr_scheduler.LRScheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer,
                T_max=config.epochs * steps_per_epoch,
                eta_min=config.learning_rate * 0.01,
            )
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loss_fn = _loss_fn(config.loss)
    use_amp = device.type == "cuda" and config.amp

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp)

    generator = torch.Generator()
    history = History(
        monitor="val_loss" if has_val else "train_loss",
        device=str(device),
        n_train=n,
        n_val=0 if vy is None else int(vy.shape[0]),
    )
    best_state = _cpu_state(module)
    bad_epochs = 0
    start_epoch = 0

    path = None
    if config.checkpoint_dir is not None:
        path = Path(config.checkpoint_dir) / f"checkpoint-{fingerprint}.pt"
    if path is not None and path.exists():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a corrupt file cannot come from _atomic_save; be safe anyway
            warnings.warn(
                f"could not read checkpoint {path} ({exc}); training from scratch.", stacklevel=2
            )
            ckpt = None
        if ckpt is not None and ckpt.get("fingerprint") == fingerprint:
            module.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            _set_rng_states(ckpt["rng"], generator)
            best_state = ckpt["best_state"]
            bad_epochs = ckpt["bad_epochs"]
            start_epoch = ckpt["epoch"]
            history = History(**ckpt["history"])
            history.resumed_from = start_epoch
            if history.finished:
                module.load_state_dict(best_state)
                module.to(device)
                return history
    if start_epoch == 0:
        generator.manual_seed(int(config.seed))
        torch.manual_seed(int(config.seed))

    bar = _progress_bar(config, start_epoch)
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            t0 = time.perf_counter()
            module.train()
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for b in range(steps_per_epoch):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                batch = _batches(xs, idx, device)
                target = y[idx.to(y.device)]
                if train_loss_fn is None:
                    with autocast():
                        pred = module(*batch)
                    loss = loss_fn(pred.float().reshape(-1), target)
                else:
                    with autocast():
                        loss = train_loss_fn(module, batch, target).float()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"the training loss became {value} at epoch {epoch}, batch {b + 1} of "
                        f"{steps_per_epoch} (learning rate {scheduler.get_last_lr()[0]:.3g}). "
                        "What to try: lower learning_rate (e.g. by 10x), keep max_grad_norm set, "
                        "check the inputs and target for NaN/inf or extreme values, standardise "
                        "the target, or use loss='huber'."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                total += value * len(idx)
            train_loss = total / n
            if has_val:
                val_loss = _evaluate(
                    module, vxs, vy, config.batch_size * 4, device, autocast, loss_fn
                )
                if not math.isfinite(val_loss):
                    raise TrainingDivergedError(
                        f"the validation loss became {val_loss} at epoch {epoch}. What to try: "
                        "lower learning_rate, check the validation inputs for NaN/inf values."
                    )
            else:
                val_loss = float("nan")
            monitored = val_loss if has_val else train_loss
            history.epoch.append(epoch)
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            history.lr.append(float(optimizer.param_groups[0]["lr"]))
            history.seconds.append(time.perf_counter() - t0)
            if monitored < history.best_loss:
                history.best_loss = monitored
                history.best_epoch = epoch
                best_state = _cpu_state(module)
                bad_epochs = 0
            else:
                bad_epochs += 1
            stop = bad_epochs >= config.patience
            history.stopped_early = stop and epoch < config.epochs
            history.finished = stop or epoch == config.epochs
            if path is not None:
                _atomic_save(
                    {
                        "version": _CHECKPOINT_VERSION,
                        "fingerprint": fingerprint,
                        "epoch": epoch,
                        "model": _cpu_state(module),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": _rng_states(generator),
                        "best_state": best_state,
                        "bad_epochs": bad_epochs,
                        "history": history.to_dict(),
                    },
                    path,
                )
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", refresh=False)
            if callback is not None:
                callback(epoch, history)
            if stop:
                break
    finally:
        bar.close()
    module.load_state_dict(best_state)
    return history


def _progress_bar(config: TrainConfig, start_epoch: int):
    from soilbook.progress import progress_bar

    return progress_bar(
        total=config.epochs,
        initial=start_epoch,
        desc="epochs",
        unit="epoch",
        disable=not config.progress,
        leave=False,
    )
