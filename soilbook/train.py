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
* **early stopping** on the validation loss with ``patience`` epochs, never before ``min_epochs``
  (clipped to ``epochs``); the best weights are restored at the end. Epochs before
  ``min_epochs`` are a warm-up: the best epoch is chosen from ``min_epochs`` on, so a noisy small
  validation set cannot keep the weights of a network that has barely trained. Without a validation set
  the run follows a **fixed schedule**: all ``epochs`` run, and the epoch with the lowest
  training loss is kept (``History.monitor == "train_loss"``);
* **a convergence record** :meth:`History.convergence` (best epoch, epochs run, final losses,
  whether the monitored loss had flattened, converged or not, and why);
* **checkpoints** written atomically (temporary file + :func:`os.replace`) after every epoch when
  ``checkpoint_dir`` is set. A checkpoint holds the model, optimiser, scheduler and random-number
  states, the epoch, the best weights and the history, and is named after a fingerprint of the
  configuration, the module's parameter shapes and the data (shapes plus a checksum). Calling
  :func:`fit` again with the same run **resumes** from it, so that an interrupted-then-resumed CPU
  run ends with exactly the same weights and history as an uninterrupted one; calling it after the
  run finished returns the stored result without training. Checkpoints are safe to load
  (:mod:`soilbook.checkpoint`): only tensors and plain values, read with
  ``torch.load(weights_only=True)``, and verified against a sha256 side-car first; a file that
  fails either check raises :class:`~soilbook.errors.ChecksumError` /
  :class:`~soilbook.errors.CheckpointError` (delete it to retrain) instead of being resumed;
* **progress** one tqdm bar over epochs with the losses as postfix (``progress=False`` hides it);
* **divergence guard** a NaN or infinite loss raises :class:`TrainingDivergedError` naming the
  epoch and batch and what to try.

Mini-batches are shuffled with a :class:`torch.Generator` seeded from ``seed``; its state is part
of the checkpoint. Dropout draws from torch's global generator, which :func:`fit` seeds from
``seed`` at the start of a fresh run and restores from the checkpoint on resume.

Tasks: what a run optimises
---------------------------
Like torchgeo's task-shaped trainers (a regression task, a SimCLR/MoCo task, each owning its
loss and its logged metrics), the loop is the same for every objective and a :class:`Task`
says what one mini-batch costs:

* :class:`RegressionTask` (the default, used when ``task`` is not given) — supervised:
  ``config.loss(module(*batch), target)``, or the ``train_loss_fn`` extension point; the
  validation loss is ``config.loss`` on the validation rows. Runs without a task are exactly
  the runs of the loop before tasks existed (same losses, same checkpoint fingerprints);
* :class:`ContrastiveTask` — self-supervised, **no labels**: ``module(*batch)`` returns two
  embeddings ``(za, zb)`` of the same samples (two modalities, or two augmented views) and the
  loss is InfoNCE with in-batch negatives (:func:`info_nce`); its validation loss is the same
  contrastive loss on the validation rows (in fixed batches of ``batch_size``), so early
  stopping and the convergence record work unchanged. It also records the retrieval accuracy
  of the positive (:func:`retrieval_accuracy`: top-1 / top-5 among the batch) per epoch in
  :attr:`History.metrics` (``train_top1``, ``val_top1``, …), which checkpoints keep.

A task's extra per-epoch numbers go to ``History.metrics`` (name → one value per epoch).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from soilbook.checkpoint import (
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    sidecar_path,
)
from soilbook.device import check_device
from soilbook.errors import CheckpointError, ParameterError, TrainingDivergedError

__all__ = [
    "CONTRASTIVE_FORMS",
    "ContrastiveTask",
    "DenseMaskedTask",
    "History",
    "RegressionTask",
    "Task",
    "TrainConfig",
    "TrainingDivergedError",
    "fit",
    "info_nce",
    "masked_mse",
    "resolve_device",
    "retrieval_accuracy",
    "set_seed",
]

#: Bump when the checkpoint layout changes, so old checkpoints are not resumed.
_CHECKPOINT_VERSION = 3
#: Inputs larger than this (bytes) stay on the CPU and are moved to the device batch by batch,
#: unless the device has room for them (see :data:`_DEVICE_MEMORY_SHARE`).
_MAX_DEVICE_BYTES = 4 * 1024**3
#: Inputs up to this share of the device's free memory are moved to it once (a large GPU keeps
#: a whole pre-training set resident, so batches are index operations and the GPU stays fed).
_DEVICE_MEMORY_SHARE = 0.4


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
    epochs without a better validation loss before stopping; ``min_epochs`` the warm-up epochs
    that always run before early stopping may trigger and before the best epoch is tracked
    (clipped to ``epochs`` on construction, so
    ``TrainConfig(epochs=4).min_epochs == 4``); ``loss`` is ``"mse"`` or
    ``"huber"``; ``scheduler`` ``"cosine"`` or ``"none"``; ``device`` as for
    :func:`resolve_device`; ``checkpoint_dir`` enables checkpoints and resume; ``max_grad_norm``
    ``None`` disables clipping; ``amp`` enables bfloat16 autocast on CUDA (never used on the CPU).
    ``compile`` wraps the module's forward in :func:`torch.compile` on CUDA (where torch has
    it; ignored on the CPU, whose results stay those of eager mode); the weights, checkpoints
    and results are those of the module itself.
    ``cpu_threads`` sets torch's intra-op CPU threads for the duration of the fit (restored
    afterwards); ``None`` = automatic: **1 thread** when one mini-batch of inputs holds fewer than
    2**20 values (small networks such as the quick profile's, where a second thread gains ~15 %
    but an oversubscribed CPU — a CI runner, a notebook beside other jobs — makes OpenMP threads
    wait on each other, measured up to 40× slower), otherwise torch's own setting.
    ``progress``, ``checkpoint_dir``, ``cpu_threads`` and ``compile`` are not part of the run's
    fingerprint.
    """

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8
    min_epochs: int = 10
    loss: str = "mse"
    scheduler: str = "cosine"
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: Path | None = None
    progress: bool = True
    max_grad_norm: float | None = 1.0
    amp: bool = True
    cpu_threads: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
        for name in ("epochs", "batch_size", "patience", "min_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ParameterError(f"TrainConfig.{name}={value!r} must be an int >= 1.")
        self.min_epochs = min(int(self.min_epochs), int(self.epochs))
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
        """The settings that define the run (all but progress, checkpoint_dir, cpu_threads,
        compile)."""
        out = asdict(self)
        for name in ("progress", "checkpoint_dir", "cpu_threads", "compile"):
            out.pop(name)
        return out


#: Share of the epochs at the end of a run over which :meth:`History.convergence` measures the
#: last improvement of the monitored loss (at least 2 epochs).
CONVERGENCE_WINDOW = 0.25
#: The monitored loss has flattened when that window improved its best value by less than this
#: share of the best value before the window ...
CONVERGENCE_REL_TOL = 0.01
#: ... or by less than this share of the improvement made since the first window (best of the
#: first window to best of the run), which keeps a loss that sinks towards a near-zero floor
#: from looking unfinished forever; an exponential approach to a plateau passes it after about
#: four time constants, a linear descent never (its share is 1/3).
CONVERGENCE_SHARE_TOL = 0.10
#: Fewer epochs than this cannot show a plateau (unless early stopping saw one).
CONVERGENCE_MIN_EPOCHS = 4


@dataclass
class History:
    """What happened during :func:`fit`, one entry per completed epoch.

    Losses are on the scale the target was given in (standardised units for
    :class:`soilbook.models.base.NetworkRegressor`). ``best_epoch`` is 1-based; the returned
    module holds that epoch's weights. ``resumed_from`` is the number of epochs read from a
    checkpoint (0 for a fresh run); ``seconds`` are wall-clock seconds per epoch of this process
    (epochs read from a checkpoint keep the times recorded when they ran).

    ``monitor`` is ``"val_loss"`` for an early-stopping run and ``"train_loss"`` for a
    **fixed-schedule** run (no validation set: every epoch runs, ``val_loss`` holds NaN).
    ``max_epochs``, ``patience`` and ``min_epochs`` are the run's settings (0 in histories
    written before they were recorded; :meth:`convergence` then relies on ``stopped_early``).
    ``inner_split`` is a sentence on the validation set, filled in by
    :class:`~soilbook.models.base.NetworkRegressor` (empty otherwise).
    ``task`` names the :class:`Task` (``"regression"``, ``"contrastive"``; empty in histories
    written before tasks existed) and ``metrics`` holds the task's extra per-epoch numbers,
    name → one float per epoch (e.g. ``val_top1`` for a contrastive run; empty for regression).
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
    max_epochs: int = 0
    patience: int = 0
    min_epochs: int = 0
    inner_split: str = ""
    task: str = ""
    metrics: dict[str, list[float]] = field(default_factory=dict)

    @property
    def fixed_schedule(self) -> bool:
        """True when the run had no validation set (all epochs, best training-loss epoch kept)."""
        return self.monitor == "train_loss"

    @property
    def samples_per_second(self) -> float:
        """Training samples processed per second, averaged over the recorded epochs."""
        total = sum(self.seconds)
        return float(self.n_train * len(self.seconds) / total) if total > 0 else float("nan")

    def convergence(self) -> dict[str, Any]:
        """Whether this run converged, and the numbers behind the verdict.

        Returns a dict with ``best_epoch`` (int, 1-based), ``epochs_run`` (int),
        ``final_train_loss`` (float, last epoch), ``final_val_loss`` and ``best_val_loss``
        (float, ``None`` for a fixed schedule), ``flattened`` (bool), ``converged`` (bool),
        ``early_stopped`` (bool), ``schedule`` (``"early stopping"`` or ``"fixed"``),
        ``inner_split`` (str, as recorded) and ``reason`` (a sentence).

        The rule (the monitored loss is the validation loss, or the training loss for a fixed
        schedule; the window is the last ``max(2, ceil(CONVERGENCE_WINDOW * epochs_run))``
        epochs, ``CONVERGENCE_WINDOW`` = 25 %; the window's gain is the best monitored loss
        before it minus the best inside it):

        * **flattened** — the window's gain is below ``CONVERGENCE_REL_TOL`` (1 %) of the best
          loss before it, **or** below ``CONVERGENCE_SHARE_TOL`` (10 %) of the improvement made
          since the first window of the same length (best of the first ``k`` epochs to the best
          of the run; a worse loss counts as no gain), **or** — early
          stopping only — the best validation loss was reached at least ``patience`` epochs
          before the end (always so when the run stopped early). The window test needs at
          least ``CONVERGENCE_MIN_EPOCHS`` (4) epochs;
        * **converged** — every recorded loss is finite, the loss **flattened**, and the best
          epoch is later than epoch 1 (a network whose first epoch was its best did not learn
          from training; a 1-epoch run is never converged).

        So 2 epochs of a learnable problem are not converged (too few epochs to see a
        plateau), nor is a run whose loss still falls steeply at its last epoch (more epochs
        needed). Convergence here is about the optimisation, not about skill: a network can
        converge to a poor fit. Works on histories restored from checkpoints, including ones
        without the settings fields (their ``patience`` is 0: only ``stopped_early`` then
        stands for the patience test).
        """
        n = len(self.epoch)
        fixed = self.fixed_schedule
        train = [float(v) for v in self.train_loss]
        val = [float(v) for v in self.val_loss]
        monitored = train if fixed else val
        out: dict[str, Any] = {
            "best_epoch": int(self.best_epoch),
            "epochs_run": n,
            "final_train_loss": train[-1] if train else float("nan"),
            "final_val_loss": None if fixed or not val else val[-1],
            "best_val_loss": None if fixed or not val else min(val),
            "flattened": False,
            "converged": False,
            "early_stopped": bool(self.stopped_early),
            "schedule": "fixed" if fixed else "early stopping",
            "inner_split": self.inner_split,
            "reason": "",
        }
        what = "training loss (fixed schedule, no validation set)" if fixed else "validation loss"
        if n == 0:
            out["reason"] = "no epoch ran."
            return out
        if not all(math.isfinite(v) for v in [*train, *([] if fixed else val)]):
            out["reason"] = "a loss is NaN or infinite: the training diverged."
            return out
        best = int(self.best_epoch)
        since_best = n - best
        by_patience = bool(self.stopped_early) or (
            self.patience > 0 and since_best >= self.patience
        )
        k = max(2, math.ceil(CONVERGENCE_WINDOW * n))
        by_window, gain_text = False, ""
        if n >= CONVERGENCE_MIN_EPOCHS and n > k:
            before, inside = min(monitored[:-k]), min(monitored[-k:])
            gain = before - inside
            total = min(monitored[:k]) - min(monitored)
            rel = gain / abs(before) if before != 0 else 0.0
            share = gain / total if total > 0 else 0.0
            by_window = gain <= 0 or rel < CONVERGENCE_REL_TOL or share < CONVERGENCE_SHARE_TOL
            gain_text = (
                f"the last {k} epochs improved it by {100 * max(rel, 0):.1f} % "
                f"({100 * max(share, 0):.0f} % of the improvement since epoch {k})"
            )
        out["flattened"] = flattened = (by_patience and not fixed) or by_window
        if not flattened:
            if not gain_text:
                out["reason"] = (
                    f"only {n} epoch(s) ran: too few to see the {what} flatten (best epoch {best})."
                )
            else:
                out["reason"] = (
                    f"the {what} was still falling at the end ({gain_text}; best epoch {best} "
                    f"of {n}): more epochs are needed."
                )
            return out
        if best <= 1:
            out["reason"] = (
                f"the best {what} was at epoch 1 of {n}: the network did not improve after its "
                "first epoch."
            )
            return out
        out["converged"] = True
        if self.stopped_early:
            how = f"early-stopped at epoch {n} with the best epoch {best}"
            how += f" (patience {self.patience})" if self.patience else ""
        elif by_patience and not fixed:
            how = f"best epoch {best}, {since_best} epochs without improvement before the end"
        else:
            how = f"best epoch {best} of {n}, {gain_text}"
        out["reason"] = f"converged: the {what} flattened ({how})."
        return out

    def to_frame(self):  # -> pandas.DataFrame
        """The per-epoch record as a DataFrame (index ``epoch``) for learning-curve plots: the
        losses, learning rate and seconds, then one column per task metric (``metrics``)."""
        import pandas as pd

        columns: dict[str, list[float]] = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "lr": self.lr,
            "seconds": self.seconds,
        }
        n = len(self.epoch)
        for name, values in self.metrics.items():
            values = [float(v) for v in values][:n]
            columns.setdefault(name, values + [float("nan")] * (n - len(values)))
        return pd.DataFrame(columns, index=pd.Index(self.epoch, name="epoch"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """A History from :meth:`to_dict` output (a checkpoint's ``history``); unknown keys
        are ignored and missing ones take their defaults, so older records still load."""
        known = {k: v for k, v in dict(data).items() if k in cls.__dataclass_fields__}
        if "metrics" in known:
            known["metrics"] = {
                str(k): [float(v) for v in vals] for k, vals in dict(known["metrics"]).items()
            }
        return cls(**known)

    # Mapping-style access, so plotting code can take ``history["train_loss"]``.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    def keys(self) -> list[str]:
        return list(self.__dataclass_fields__)


# -- inputs --------------------------------------------------------------------------------------


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


def _as_target(y: Tensor | np.ndarray) -> Tensor:
    """A target as a float32 tensor of shape (n,)."""
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
    return y.float().reshape(-1)


@dataclass
class _TrainData:
    """The checked tensors of one fit: training inputs ``xs`` and target ``y`` (n,), and the
    validation inputs ``vxs`` and target ``vy`` (empty list and ``None`` without validation)."""

    xs: list[Tensor]
    y: Tensor
    vxs: list[Tensor]
    vy: Tensor | None

    @property
    def n(self) -> int:
        """Training samples."""
        return int(self.y.shape[0])

    @property
    def has_val(self) -> bool:
        return self.vy is not None

    def to(self, device: torch.device) -> _TrainData:
        """The same data with the targets on ``device``, and the inputs too unless they are
        larger than ``_MAX_DEVICE_BYTES`` (they then move batch by batch)."""
        xs, vxs = self.xs, self.vxs
        data_bytes = sum(t.numel() * t.element_size() for t in [*xs, *vxs])
        if device.type != "cpu" and data_bytes <= _device_budget(device):
            xs = [t.to(device) for t in xs]
            vxs = [t.to(device) for t in vxs]
        vy = None if self.vy is None else self.vy.to(device)
        return _TrainData(xs, self.y.to(device), vxs, vy)


def _device_budget(device: torch.device) -> int:
    """Bytes of inputs that may be moved to ``device`` at once: ``_MAX_DEVICE_BYTES``, or
    ``_DEVICE_MEMORY_SHARE`` of the CUDA device's free memory when that is more."""
    budget = _MAX_DEVICE_BYTES
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):  # no CUDA context: keep the fixed budget
            return budget
        budget = max(budget, int(_DEVICE_MEMORY_SHARE * free))
    return budget


def _placeholder_target(tensors: Sequence[Tensor] | Tensor | None) -> Tensor | None:
    """Zeros (n,) standing in for the target of an unsupervised task (None without tensors)."""
    if tensors is None:
        return None
    first = tensors if isinstance(tensors, Tensor) else next(iter(tensors), None)
    if first is None:
        return None
    return torch.zeros(int(first.shape[0]), dtype=torch.float32)


def _prepare_data(
    train_tensors: Sequence[Tensor] | Tensor,
    y_train: Tensor | np.ndarray | None,
    val_tensors: Sequence[Tensor] | Tensor | None,
    y_val: Tensor | np.ndarray | None,
    supervised: bool = True,
) -> _TrainData:
    """Check and convert :func:`fit`'s inputs (an empty validation set counts as none). For
    an unsupervised task (``supervised=False``) a missing target becomes zeros (never read)."""
    if not supervised:
        if y_train is None:
            y_train = _placeholder_target(train_tensors)
        if y_val is None:
            y_val = _placeholder_target(val_tensors)
    if y_train is None:
        raise ValueError(
            "y_train is None: a supervised task needs a target. What to do: pass the target, "
            "or a task without labels (e.g. task=ContrastiveTask())."
        )
    xs = _as_tensor_list(train_tensors, "training")
    y = _as_target(y_train)
    _check_inputs(xs, y, "training")
    vxs: list[Tensor] = []
    vy: Tensor | None = None
    if val_tensors is not None and y_val is not None:
        vxs = _as_tensor_list(val_tensors, "validation")
        vy = _as_target(y_val)
        _check_inputs(vxs, vy, "validation")
        if len(vxs) != len(xs):
            raise ValueError(f"{len(xs)} training inputs but {len(vxs)} validation inputs.")
        if vy.shape[0] == 0:
            vxs, vy = [], None
    if y.shape[0] == 0:
        raise ValueError("no training samples; the training set is empty.")
    return _TrainData(xs, y, vxs, vy)


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
    module: nn.Module,
    config: TrainConfig,
    data: _TrainData,
    device: torch.device,
    run_key: Any,
    task: Task | None = None,
) -> str:
    """16 hex digits that identify a run: module, settings, device type, data, ``run_key`` and
    the task (left out for the default regression task, so those runs keep the fingerprints
    they had before tasks existed)."""
    payload = {
        "version": _CHECKPOINT_VERSION,
        "module": type(module).__qualname__,
        "structure": repr(module),
        "run_key": run_key,
        "parameters": [[k, list(v.shape)] for k, v in module.state_dict().items()],
        "config": config.fingerprint_fields(),
        "device_type": device.type,
        "train": _data_fingerprint(data.xs, data.y),
        "val": _data_fingerprint(data.vxs, data.vy) if data.vy is not None else None,
    }
    task_print = None if task is None else task.fingerprint()
    if task_print is not None:
        payload["task"] = task_print
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- tasks: what one mini-batch costs -----------------------------------------------------------

#: The forms of :func:`info_nce`: ``"clip"`` (cross-modal, symmetric) and ``"ntxent"``
#: (SimCLR's NT-Xent over all 2N embeddings).
CONTRASTIVE_FORMS = ("clip", "ntxent")


def info_nce(za: Tensor, zb: Tensor, temperature: float = 0.5, form: str = "clip") -> Tensor:
    """InfoNCE with cosine similarity and in-batch negatives; a scalar (mean over anchors).

    ``za``, ``zb`` : (n, d) embeddings of the same n samples (row i of each is a positive pair:
    two modalities or two views of sample i); every other sample of the batch is a negative.
    Both are L2-normalised, so similarities are cosines, then divided by ``temperature`` (> 0).

    ``form="clip"`` (CLIP-style, cross-modal): logits ``S = a bᵀ / τ`` (n × n) and the mean of
    the cross-entropies of the rows (a→b) and of the columns (b→a), target = the diagonal;
    negatives are the other samples *of the other modality* only.
    ``form="ntxent"`` (SimCLR's NT-Xent): the 2n stacked embeddings ``z = [a; b]``, logits
    ``z zᵀ / τ`` with the self-similarity removed, and for anchor i the positive is its partner
    (i ± n) among the other 2n − 1; negatives include same-modality pairs.

    Computed in float32 whatever the inputs' dtype. Raises ValueError for shapes that do not
    match, fewer than 2 samples, ``temperature <= 0`` or an unknown ``form``.
    """
    if form not in CONTRASTIVE_FORMS:
        raise ValueError(f"form={form!r}; allowed: {list(CONTRASTIVE_FORMS)}.")
    if not float(temperature) > 0:
        raise ValueError(f"temperature={temperature!r} must be > 0.")
    if za.ndim != 2 or za.shape != zb.shape:
        raise ValueError(
            f"info_nce needs two (n, d) embeddings of the same shape; got {tuple(za.shape)} and "
            f"{tuple(zb.shape)}."
        )
    n = int(za.shape[0])
    if n < 2:
        raise ValueError(f"info_nce needs at least 2 samples (in-batch negatives); got {n}.")
    a = nn.functional.normalize(za.float(), dim=1)
    b = nn.functional.normalize(zb.float(), dim=1)
    target = torch.arange(n, device=a.device)
    if form == "clip":
        logits = a @ b.T / float(temperature)
        return 0.5 * (
            nn.functional.cross_entropy(logits, target)
            + nn.functional.cross_entropy(logits.T, target)
        )
    z = torch.cat([a, b], dim=0)
    logits = z @ z.T / float(temperature)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=a.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    return nn.functional.cross_entropy(logits, torch.cat([target + n, target]))


def retrieval_accuracy(za: Tensor, zb: Tensor, top_k: Sequence[int] = (1, 5)) -> dict[str, Tensor]:
    """How often the positive is among the ``k`` most similar candidates, for each ``k``.

    For every row i of ``za`` the candidates are the n rows of ``zb`` (and for every row of
    ``zb`` those of ``za``), ranked by cosine similarity; the rank of the positive is the
    number of *other* candidates at least as similar (ties count against it, so collapsed
    embeddings score 0, not 1). Returns ``{"top<k>": share}`` — float32 scalars in [0, 1], the
    mean over both directions (a→b and b→a) — for every ``k`` in ``top_k``. With n ≤ k the
    top-k share is 1 by construction: read it against chance, ``k / n``.
    """
    a = nn.functional.normalize(za.detach().float(), dim=1)
    b = nn.functional.normalize(zb.detach().float(), dim=1)
    sim = a @ b.T
    pos = torch.diagonal(sim)
    off = ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    rank_ab = ((sim >= pos[:, None]) & off).sum(dim=1)  # candidates b_j for anchor a_i
    rank_ba = ((sim >= pos[None, :]) & off).sum(dim=0)  # candidates a_i for anchor b_j
    return {
        f"top{int(k)}": 0.5 * ((rank_ab < k).float().mean() + (rank_ba < k).float().mean())
        for k in top_k
    }


class Task:
    """What :func:`fit` optimises, in the manner of torchgeo's task-shaped trainers.

    The loop owns everything that is the same for every objective (optimiser, schedule,
    shuffling, early stopping, checkpoints, resume, progress); a task owns the objective:

    * :meth:`training_step` ``(module, batch, target) -> (loss, metrics)`` — the scalar loss of
      one training mini-batch (``batch``: the mini-batch of every training tensor, on the
      device; called inside the autocast context) and a dict of extra numbers (floats or
      scalar tensors) averaged over the epoch, weighted by the batch rows, into
      ``History.metrics["train_<name>"]``;
    * :meth:`validation_step` — the same on a validation batch (no gradients); its loss is
      the monitored validation loss, its metrics go to ``History.metrics["val_<name>"]``;
    * :meth:`validation_batches` — how the validation rows are cut into batches;
    * :meth:`steps_per_epoch` — mini-batches per epoch (:attr:`drop_last` drops an incomplete
      last one, as contrastive learning needs full batches of negatives);
    * :meth:`fingerprint` — what identifies the task in the checkpoint fingerprint
      (JSON-serialisable; ``None`` only for the default regression task);
    * :attr:`supervised` — False: the target may be ``None`` (labels are never read).
    """

    name: str = "task"
    supervised: bool = True
    drop_last: bool = False

    def setup(self, config: TrainConfig) -> None:
        """Called once by the loop with the run's configuration, before any step."""

    def fingerprint(self) -> Any:
        return {"task": type(self).__qualname__}

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        if self.drop_last:
            return max(1, n // batch_size)
        return math.ceil(n / batch_size)

    def validation_batches(self, n: int, batch_size: int) -> list[tuple[int, int]]:
        """``(start, stop)`` row ranges of the validation batches (default: ``4 × batch_size``
        rows each, for speed; the loss is averaged over rows, so the size does not matter)."""
        size = batch_size * 4
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def training_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        raise NotImplementedError

    def validation_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        return self.training_step(module, batch, target)


class RegressionTask(Task):
    """Supervised regression, the loop's original objective: ``loss(module(*batch), target)``
    with ``loss`` ``"mse"`` or ``"huber"`` (``None``: ``config.loss``), or the scalar returned by
    ``train_loss_fn(module, batch, target)`` (a multi-term objective such as DeepSalt's); the
    validation loss is always ``loss(module(*val_batch), val_target)``. No extra metrics."""

    name = "regression"

    def __init__(
        self,
        loss: str | None = None,
        train_loss_fn: Callable[[nn.Module, list[Tensor], Tensor], Tensor] | None = None,
    ):
        if loss is not None and loss not in ("mse", "huber"):
            raise ParameterError(f"RegressionTask(loss={loss!r}); allowed: 'mse', 'huber'.")
        self.loss = loss
        self.train_loss_fn = train_loss_fn
        self._loss_fn = _loss_fn(loss or "mse")

    def setup(self, config: TrainConfig) -> None:
        self._loss_fn = _loss_fn(self.loss or config.loss)

    def fingerprint(self) -> Any:
        # config.loss is in the config; train_loss_fn is identified by the caller's run_key
        return None if self.loss is None else {"task": "regression", "loss": self.loss}

    def training_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        if self.train_loss_fn is not None:
            return self.train_loss_fn(module, batch, target).float(), {}
        pred = module(*batch)
        return self._loss_fn(pred.float().reshape(-1), target), {}

    def validation_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        pred = module(*batch).float().reshape(-1)
        return self._loss_fn(pred, target), {}


class ContrastiveTask(Task):
    """Self-supervised contrastive pre-training without labels.

    ``module(*batch)`` must return two (n, d) embeddings ``(za, zb)`` whose row i belongs to the
    same sample (two modalities, or two augmented views); the loss is :func:`info_nce` with
    ``temperature`` and ``form`` (``"clip"`` or ``"ntxent"``) over the mini-batch (in-batch
    negatives). Training drops an incomplete last mini-batch (a batch of 2 would be an easy
    task), so an epoch has ``max(1, n // batch_size)`` steps. The validation loss is the same
    loss on the validation rows, cut into fixed batches of ``batch_size`` rows in their order
    (the remainder joins the last batch), so it is comparable from epoch to epoch and with the
    training loss. Metrics (per epoch, in ``History.metrics``): ``train_top<k>`` and
    ``val_top<k>``, the :func:`retrieval_accuracy` of the positive among the batch for every
    ``k`` in ``top_k``.
    """

    name = "contrastive"
    supervised = False
    drop_last = True

    def __init__(self, temperature: float = 0.5, form: str = "clip", top_k: Sequence[int] = (1, 5)):
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float | np.integer | np.floating)
            or not math.isfinite(float(temperature))
            or float(temperature) <= 0
        ):
            raise ParameterError(
                f"ContrastiveTask(temperature={temperature!r}) must be a finite number > 0 "
                "(the paper's is 0.5)."
            )
        if form not in CONTRASTIVE_FORMS:
            raise ParameterError(
                f"ContrastiveTask(form={form!r}); allowed: {list(CONTRASTIVE_FORMS)}."
            )
        ks = tuple(int(k) for k in top_k)
        if not ks or any(k < 1 for k in ks):
            raise ParameterError(f"ContrastiveTask(top_k={top_k!r}) must be ints >= 1.")
        self.temperature = float(temperature)
        self.form = form
        self.top_k = ks

    def fingerprint(self) -> Any:
        return {
            "task": "contrastive",
            "temperature": self.temperature,
            "form": self.form,
            "top_k": list(self.top_k),
        }

    def validation_batches(self, n: int, batch_size: int) -> list[tuple[int, int]]:
        if n <= batch_size:
            return [(0, n)]
        bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(n // batch_size)]
        bounds[-1] = (bounds[-1][0], n)
        return bounds

    def training_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        out = module(*batch)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise TypeError(
                "ContrastiveTask needs module(*batch) to return two embeddings (za, zb); got "
                f"{type(out).__name__}."
            )
        za, zb = out
        loss = info_nce(za, zb, self.temperature, self.form)
        return loss, retrieval_accuracy(za, zb, self.top_k)


def masked_mse(pred: Tensor, label: Tensor, mask: Tensor) -> Tensor:
    """The dense masked loss Σ m (ŷ − y)² / Σ m over every pixel of the batch.

    ``pred``, ``label``, ``mask``: (n, H, W) (or any equal shapes); ``mask`` 1 at labelled pixels,
    0 elsewhere (weights in between are allowed). Labels under a 0 are ignored, even NaN. A batch
    with no labelled pixel gives 0 with a gradient of 0 (nothing to learn from), not NaN.
    """
    m = mask.float()
    err = torch.where(m > 0, pred.float() - torch.nan_to_num(label.float()), 0.0)
    return (m * err.square()).sum() / m.sum().clamp_min(1.0)


class DenseMaskedTask(Task):
    """Dense regression on images with sparse or partial labels (chapter 4's soil moisture).

    The last two tensors of every batch are the label raster and its mask, both (n, H, W), and
    ``module(*inputs)`` — the other tensors — returns the prediction map (n, H, W) (or
    (n, 1, H, W)). The loss is :func:`masked_mse`, so a pixel with mask 0 never contributes:
    stage 1 of a two-stage fit passes a dense coarse label with its mask, stage 2 the station
    pixels only. The task reads no per-row target (:attr:`supervised` False: pass
    ``y_train=None``). Metrics: ``labelled_px`` — labelled pixels per tile in the epoch.

    The validation loss is :func:`masked_mse` per validation batch, averaged over batches by
    their tiles (as every task's); with one batch (the default up to ``4 × batch_size`` tiles)
    it is exactly Σ m (ŷ − y)² / Σ m over the validation set.
    """

    name = "dense_masked"
    supervised = False

    def training_step(
        self, module: nn.Module, batch: list[Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        if len(batch) < 3:
            raise TypeError(
                "DenseMaskedTask needs the batch [*inputs, label, mask]; got "
                f"{len(batch)} tensor(s). What to do: append the label raster and its mask, "
                "both (n, H, W), to the training tensors."
            )
        *inputs, label, mask = batch
        pred = module(*inputs)
        if pred.dim() == label.dim() + 1:
            pred = pred.squeeze(1)
        if pred.shape != label.shape:
            raise ValueError(
                f"DenseMaskedTask: the module returned {tuple(pred.shape)} for labels of shape "
                f"{tuple(label.shape)}. Expected one value per pixel, (n, H, W)."
            )
        labelled = mask.float().sum() / max(1, mask.shape[0])
        return masked_mse(pred, label, mask), {"labelled_px": labelled.detach()}


# -- one run's parts: optimiser, epoch, validation, early stopping, checkpoint -------------------


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _loss_fn(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    if name == "mse":
        return nn.functional.mse_loss
    return lambda p, t: nn.functional.huber_loss(p, t, delta=1.0)


def _batches(xs: list[Tensor], idx: Tensor, device: torch.device) -> list[Tensor]:
    return [t[idx.to(t.device)].to(device, non_blocking=True) for t in xs]


def _optimiser(
    module: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW and its schedule (cosine to 1 % of the rate at ``config.epochs``, stepped per
    mini-batch, or constant)."""
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
    return optimizer, scheduler


def _forward_module(module: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """What the task calls: ``torch.compile(module)`` when ``config.compile`` is set on CUDA
    (sharing the module's parameters), else the module itself."""
    if not config.compile or device.type != "cuda" or not hasattr(torch, "compile"):
        return module
    return torch.compile(module)


class _Loop:
    """The moving parts of one run: module, data, optimiser, schedule, loss and shuffling.

    :meth:`train_epoch` runs one epoch of mini-batch updates, :meth:`validate` computes the
    validation loss; both raise :class:`TrainingDivergedError` on a NaN/inf loss.
    """

    def __init__(
        self,
        module: nn.Module,
        data: _TrainData,
        config: TrainConfig,
        device: torch.device,
        task: Task,
    ):
        self.module = module
        self.data = data
        self.config = config
        self.device = device
        self.task = task
        task.setup(config)
        self.steps_per_epoch = task.steps_per_epoch(data.n, config.batch_size)
        self.optimizer, self.scheduler = _optimiser(module, config, self.steps_per_epoch)
        self.use_amp = device.type == "cuda" and config.amp
        self.generator = torch.Generator()
        self.forward_module = _forward_module(module, config, device)
        self.train_metrics: dict[str, float] = {}
        self.val_metrics: dict[str, float] = {}

    def autocast(self):
        """bfloat16 autocast on CUDA when ``amp`` is set; a no-op context otherwise."""
        return torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp
        )

    def seed(self, seed: int) -> None:
        """Seed the shuffling generator and torch's global one (dropout) for a fresh run."""
        self.generator.manual_seed(int(seed))
        torch.manual_seed(int(seed))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _batch_loss(self, batch: list[Tensor], target: Tensor) -> tuple[Tensor, dict[str, Any]]:
        with self.autocast():
            loss, metrics = self.task.training_step(self.forward_module, batch, target)
        return loss.float(), metrics

    def _diverged(self, value: float, epoch: int, b: int) -> TrainingDivergedError:
        return TrainingDivergedError(
            f"the training loss became {value} at epoch {epoch}, batch {b + 1} of "
            f"{self.steps_per_epoch} (learning rate {self.scheduler.get_last_lr()[0]:.3g}). "
            "What to try: lower learning_rate (e.g. by 10x), keep max_grad_norm set, "
            "check the inputs and target for NaN/inf or extreme values, standardise "
            "the target, or use loss='huber'."
        )

    def train_epoch(self, epoch: int) -> float:
        """One pass over the shuffled training set; returns the mean training loss (and keeps
        the task's metrics of the epoch in ``train_metrics``)."""
        module, data, config = self.module, self.data, self.config
        module.train()
        order = torch.randperm(data.n, generator=self.generator)
        total, seen = 0.0, 0
        sums: dict[str, float] = {}
        for b in range(self.steps_per_epoch):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            loss, metrics = self._batch_loss(
                _batches(data.xs, idx, self.device), data.y[idx.to(data.y.device)]
            )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise self._diverged(value, epoch, b)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            total += value * len(idx)
            seen += len(idx)
            for name, v in metrics.items():
                sums[name] = sums.get(name, 0.0) + float(v) * len(idx)
        self.train_metrics = {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}
        return total / seen

    @torch.no_grad()
    def validate(self, epoch: int) -> float:
        """The task's mean validation loss on the validation set (NaN without one); its
        metrics go to ``val_metrics``."""
        data = self.data
        self.val_metrics = {}
        if data.vy is None:
            return float("nan")
        self.module.eval()
        total, n = 0.0, data.vy.shape[0]
        sums: dict[str, float] = {}
        for start, stop in self.task.validation_batches(n, self.config.batch_size):
            idx = torch.arange(start, stop)
            batch = _batches(data.vxs, idx, self.device)
            with self.autocast():
                loss, metrics = self.task.validation_step(
                    self.forward_module, batch, data.vy[idx.to(data.vy.device)]
                )
            total += float(loss.float()) * len(idx)
            for name, v in metrics.items():
                sums[name] = sums.get(name, 0.0) + float(v) * len(idx)
        self.val_metrics = {f"val_{k}": v / max(n, 1) for k, v in sums.items()}
        value = total / max(n, 1)
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"the validation loss became {value} at epoch {epoch}. What to try: "
                "lower learning_rate, check the validation inputs for NaN/inf values."
            )
        return value


@dataclass
class _RunState:
    """What changes from epoch to epoch: the history, the best weights (CPU) and the
    early-stopping counter. ``epoch`` is the last completed epoch (0 before the first)."""

    history: History
    best_state: dict[str, Tensor]
    bad_epochs: int = 0
    epoch: int = 0

    def record(
        self,
        epoch: int,
        train_loss: float,
        val_loss: float,
        lr: float,
        seconds: float,
        module: nn.Module,
        config: TrainConfig,
        metrics: dict[str, float] | None = None,
    ) -> bool:
        """Log an epoch, keep the weights when the monitored loss improved, and return whether
        training stops: ``patience`` epochs without a better validation loss once ``min_epochs``
        have run (early stopping; never on the training loss of a fixed schedule), or the last
        epoch. Monitoring starts at epoch ``min_epochs``: the kept (best) weights are those of
        the best epoch from then on."""
        h = self.history
        monitored = val_loss if h.monitor == "val_loss" else train_loss
        h.epoch.append(epoch)
        h.train_loss.append(train_loss)
        h.val_loss.append(val_loss)
        h.lr.append(lr)
        h.seconds.append(seconds)
        for name, value in (metrics or {}).items():
            h.metrics.setdefault(name, []).append(float(value))
        # warm-up: epochs before min_epochs are neither candidates for the kept weights nor
        # counted against patience (as Keras' ``start_from_epoch``), so a noisy small validation
        # set cannot pick a barely trained network from the first epochs
        monitoring = epoch >= config.min_epochs
        if monitoring and monitored < h.best_loss:
            h.best_loss = monitored
            h.best_epoch = epoch
            self.best_state = _cpu_state(module)
            self.bad_epochs = 0
        elif monitoring:
            self.bad_epochs += 1
        self.epoch = epoch
        # early stopping: on the validation loss only, and never before min_epochs
        stop = (
            h.monitor == "val_loss"
            and self.bad_epochs >= config.patience
            and epoch >= config.min_epochs
        )
        h.stopped_early = stop and epoch < config.epochs
        h.finished = stop or epoch == config.epochs
        return stop or epoch == config.epochs


class _Checkpoint:
    """The checkpoint of one run, ``checkpoint_dir/checkpoint-<fingerprint>.pt`` with its
    side-car (:mod:`soilbook.checkpoint`): saved after every epoch, restored on resume."""

    def __init__(self, directory: Path, fingerprint: str):
        self.path = Path(directory) / f"checkpoint-{fingerprint}.pt"
        self.fingerprint = fingerprint
        self.sha256: str | None = None  # of the file on disk, once read or written

    def restore(self, loop: _Loop) -> _RunState | None:
        """Load the verified checkpoint into ``loop`` and return its state (None when there is
        no checkpoint). Raises CheckpointError/ChecksumError for a file that cannot be trusted."""
        if not self.path.exists():
            return None
        ckpt, self.sha256 = load_checkpoint(self.path)
        if (
            ckpt.get("version") != _CHECKPOINT_VERSION
            or ckpt.get("fingerprint") != self.fingerprint
        ):
            raise CheckpointError(
                f"the checkpoint {self.path} belongs to another run (version "
                f"{ckpt.get('version')!r}, fingerprint {ckpt.get('fingerprint')!r}; this run is "
                f"version {_CHECKPOINT_VERSION}, fingerprint {self.fingerprint!r}). What to do: "
                f"delete it and {sidecar_path(self.path).name} and run again to retrain."
            )
        try:
            loop.module.load_state_dict(ckpt["model"])
            loop.optimizer.load_state_dict(ckpt["optimizer"])
            loop.scheduler.load_state_dict(ckpt["scheduler"])
            restore_rng(ckpt["rng"], loop.generator)
            history = History.from_dict(ckpt["history"])
            state = _RunState(
                history, ckpt["best_state"], int(ckpt["bad_epochs"]), int(ckpt["epoch"])
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"the checkpoint {self.path} does not fit this run ({type(exc).__name__}: "
                f"{str(exc)[:200]}). What to do: delete it and {sidecar_path(self.path).name} "
                "and run again to retrain."
            ) from exc
        history.resumed_from = state.epoch
        return state

    def save(self, loop: _Loop, state: _RunState) -> None:
        """Write the state after an epoch (atomically, with its sha256 side-car)."""
        payload = {
            "version": _CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "model": _cpu_state(loop.module),
            "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(),
            "rng": capture_rng(loop.generator),
            "best_state": state.best_state,
            "bad_epochs": state.bad_epochs,
            "history": state.history.to_dict(),
        }
        summary = {
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "finished": state.history.finished,
            "best_epoch": state.history.best_epoch,
        }
        self.sha256 = save_checkpoint(
            payload, self.path, previous_sha256=self.sha256, summary=summary
        )


# -- the loop ------------------------------------------------------------------------------------


def fit(
    module: nn.Module,
    train_tensors: Sequence[Tensor] | Tensor,
    y_train: Tensor | np.ndarray | None,
    val_tensors: Sequence[Tensor] | Tensor | None = None,
    y_val: Tensor | np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    callback: Callable[[int, History], Any] | None = None,
    run_key: Any = None,
    train_loss_fn: Callable[[nn.Module, list[Tensor], Tensor], Tensor] | None = None,
    task: Task | None = None,
) -> History:
    """Train ``module`` in place and return its :class:`History`.

    Parameters
    ----------
    module : ``forward(*inputs) -> Tensor (n,)`` or ``(n, 1)`` (regression), or the pair of
        embeddings a :class:`ContrastiveTask` reads; moved to the configured device.
    train_tensors : one tensor per model input, each with the sample as first axis.
    y_train : target, shape (n,), on the scale the loss should see (standardise it first);
        ``None`` for a task without labels (:attr:`Task.supervised` False).
    val_tensors, y_val : the same for the validation set used for early stopping; ``None`` (or
        an empty set) is a fixed schedule: all ``config.epochs`` epochs run and the weights with
        the lowest training loss are kept. For a task without labels ``val_tensors`` alone
        defines the validation set.
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
        checkpoint fingerprint: identify it through ``run_key``. Shorthand for
        ``task=RegressionTask(train_loss_fn=...)``; not together with ``task``.
    task : the objective (:class:`Task`); ``None`` = :class:`RegressionTask` with
        ``config.loss`` (the loop's behaviour before tasks existed, bit for bit).
        :class:`ContrastiveTask` pre-trains without labels. A task other than the default
        joins the checkpoint fingerprint (:meth:`Task.fingerprint`).

    Returns
    -------
    History
        The module holds the best epoch's weights when this returns.

    Raises
    ------
    TrainingDivergedError
        The loss became NaN or infinite.
    soilbook.errors.ChecksumError, soilbook.errors.CheckpointError
        The run's checkpoint was changed since it was written, cannot be read safely, or does
        not fit this run; the message names the file and says to delete it to retrain.
    """
    config = config or TrainConfig()
    if task is not None and train_loss_fn is not None:
        raise ParameterError(
            "fit got both task and train_loss_fn. What to do: pass "
            "task=RegressionTask(train_loss_fn=...) alone."
        )
    if task is None:
        task = RegressionTask(train_loss_fn=train_loss_fn)
    if not isinstance(task, Task):
        raise ParameterError(f"task={task!r} must be a soilbook.train.Task (or None).")
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
            task,
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
    y_train: Tensor | np.ndarray | None,
    val_tensors: Sequence[Tensor] | Tensor | None,
    y_val: Tensor | np.ndarray | None,
    config: TrainConfig,
    callback: Callable[[int, History], Any] | None,
    run_key: Any,
    task: Task,
) -> History:
    """:func:`fit` in steps: prepare the data, build the loop, resume or seed, run the epochs,
    restore the best weights."""
    device = resolve_device(config.device)
    data = _prepare_data(train_tensors, y_train, val_tensors, y_val, task.supervised)
    fingerprint = _run_fingerprint(module, config, data, device, run_key, task)
    module.to(device)
    data = data.to(device)  # batches then are plain index operations
    loop = _Loop(module, data, config, device, task)
    checkpoint = None
    if config.checkpoint_dir is not None:
        checkpoint = _Checkpoint(config.checkpoint_dir, fingerprint)
    state = checkpoint.restore(loop) if checkpoint is not None else None
    if state is None:
        history = History(
            monitor="val_loss" if data.has_val else "train_loss",
            device=str(device),
            n_train=data.n,
            n_val=0 if data.vy is None else int(data.vy.shape[0]),
            max_epochs=int(config.epochs),
            patience=int(config.patience),
            min_epochs=int(config.min_epochs),
            task=task.name,
        )
        state = _RunState(history, _cpu_state(module))
    if state.history.finished:  # a finished run: its best weights, without training
        module.load_state_dict(state.best_state)
        module.to(device)
        return state.history
    if state.epoch == 0:
        loop.seed(config.seed)
    _run_epochs(loop, state, checkpoint, callback)
    module.load_state_dict(state.best_state)
    return state.history


def _run_epochs(
    loop: _Loop,
    state: _RunState,
    checkpoint: _Checkpoint | None,
    callback: Callable[[int, History], Any] | None,
) -> None:
    """Epochs ``state.epoch + 1 …`` until early stopping or ``epochs``: train, validate,
    record, checkpoint, report progress, call back."""
    config = loop.config
    bar = _progress_bar(config, state.epoch)
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            t0 = time.perf_counter()
            train_loss = loop.train_epoch(epoch)
            val_loss = loop.validate(epoch)
            stop = state.record(
                epoch,
                train_loss,
                val_loss,
                loop.lr,
                time.perf_counter() - t0,
                loop.module,
                config,
                {**loop.train_metrics, **loop.val_metrics},
            )
            if checkpoint is not None:
                checkpoint.save(loop, state)
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", refresh=False)
            if callback is not None:
                callback(epoch, state.history)
            if stop:
                break
    finally:
        bar.close()


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
