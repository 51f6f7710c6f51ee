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
5. split off an inner validation set **from the training data only**
   (:func:`inner_validation_split`, below), or decide on a fixed schedule when the data are
   too few for one;
6. seed everything, build the module (:meth:`~NetworkRegressor._build_module`) and train it with
   :func:`soilbook.train.fit` (early stopping on the inner validation loss after at least
   ``min_epochs`` epochs), checkpointing under ``checkpoint_dir / checkpoint_key(ds, y)`` when
   ``checkpoint_dir`` is set. :meth:`~NetworkRegressor.training_histories` then returns the
   run's :class:`~soilbook.train.History`, whose :meth:`~soilbook.train.History.convergence`
   says whether it converged.

Inner validation (early stopping on small data)
-----------------------------------------------
The validation set that early stopping watches must be big enough for its loss to mean
something, and must not share places with the training side (or it rewards memorising them).
Splitting by whole ``group`` values alone fails on small data: when the groups are regions, a
training fold of four regions gives one region of a dozen samples, and networks stopped at
epochs 1–6 without learning. The rule, :func:`inner_validation_split`:

* **floor and cap** — the validation side holds at least ``target = max(20, ceil(val_fraction
  × n))`` samples (``INNER_MIN_VAL_SAMPLES``) in at least 3 units (``INNER_MIN_UNITS``), and at
  most ``min(2 × target, max(val_fraction, 1/3) × n)`` samples;
* **units, coarsest first** — the first of these that meets the floor within the cap is used:
  whole ``group`` values (the most independent validation); else square **spatial blocks
  inside each group** (from ``x_m``/``y_m``, or ``lat``/``lon`` via
  :func:`soilbook.geo.local_xy_m`; the largest side of :data:`soilbook.geo.BLOCK_SIDES_M`
  that works, so the block side is chosen for the data); else whole ``site`` values inside
  each group (or single samples when there is no ``site``). Units sharing a ``site`` are
  merged, so no site, block, group — or sample — is ever on both sides;
* **fixed schedule** — with ``val_fraction = 0``, fewer than 60 training samples (the floor
  would take more than a third), or no unit meeting the floor, there is no validation set: all
  ``epochs`` run and the epoch with the lowest training loss is kept. The history records it
  (``History.monitor == "train_loss"``, ``History.inner_split``), so the convergence record
  says "fixed schedule";
* **minimum epochs** — early stopping may not trigger before ``min_epochs`` (default 10,
  clipped to ``epochs``), so a noisy first epochs cannot end training.

The units are shuffled with ``seed``: the split is deterministic for a seed and differs
between seeds. ``inner_split_.description`` says what was used.

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

Starting from pre-trained weights
---------------------------------
``init_weights`` (a state dict made in the same process, e.g. another fit's
``module_.state_dict()`` or an encoder's, or the path of a file) is loaded into the freshly built
module before training (:func:`load_weights`): every tensor of it must name a parameter or
buffer of the module with the same shape (else :class:`~soilbook.errors.ParameterError` lists
the mismatches); the module's other tensors keep their random initialisation, so a pre-trained
encoder can start a network with a new head. Files are read with
``torch.load(weights_only=True)`` (:func:`read_weights`; a soilbook checkpoint is verified
against its sha256 side-car first and its best weights are used), so nothing in them is ever
executed. The weights (by content) join :meth:`NetworkRegressor.checkpoint_key`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
from soilbook.errors import CheckpointError, OutputDirError, ParameterError
from soilbook.geo import BLOCK_SIDES_M, local_xy_m, spatial_blocks
from soilbook.train import History, Task, TrainConfig, resolve_device, set_seed
from soilbook.train import fit as train_fit

__all__ = [
    "INNER_MIN_UNITS",
    "INNER_MIN_VAL_SAMPLES",
    "InnerSplit",
    "NetworkRegressor",
    "dataset_digest",
    "file_lock",
    "inner_group_split",
    "inner_validation_split",
    "load_weights",
    "read_weights",
    "weights_digest",
]


#: Smallest inner validation set, in samples (besides ``val_fraction`` of the training samples).
INNER_MIN_VAL_SAMPLES = 20
#: Smallest number of units (groups, blocks, sites or samples) on the validation side.
INNER_MIN_UNITS = 3
#: Largest share of the training samples the validation set may take (unless ``val_fraction``
#: asks for more); with fewer samples than ``INNER_MIN_VAL_SAMPLES / INNER_MAX_SHARE`` (60) the
#: fit follows a fixed schedule.
INNER_MAX_SHARE = 1 / 3


@dataclass(frozen=True, eq=False)
class InnerSplit:
    """An inner (early-stopping) split of the training samples; see :func:`inner_validation_split`.

    ``train`` / ``val`` are sample positions (int arrays; ``val`` empty for a fixed schedule).
    ``unit`` is what was kept whole on one side: ``"group"``, ``"block"`` (spatial blocks inside
    the groups), ``"site"``, ``"sample"``, or ``"none"`` (no validation set). ``n_units`` is the
    number of such units in the training data and ``n_val_units`` how many went to validation;
    ``block_side_m`` the block side in metres (``unit == "block"`` only). ``description`` is one
    sentence for tables and the convergence record. It unpacks like the old tuple:
    ``train, val = split`` and ``split[0]``, ``split[1]``.
    """

    train: np.ndarray
    val: np.ndarray
    unit: str
    n_units: int
    n_val_units: int
    description: str
    block_side_m: float | None = None

    @property
    def fixed_schedule(self) -> bool:
        """True when there is no validation set (train all epochs, no early stopping)."""
        return self.val.size == 0

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.train
        yield self.val

    def __getitem__(self, i: int) -> np.ndarray:
        return (self.train, self.val)[i]

    def __len__(self) -> int:
        return 2


def _size_bounds(n: int, fraction: float, min_val: int) -> tuple[int, int]:
    """(target, cap): the validation set must hold at least ``target`` and at most ``cap``
    samples; ``target > cap`` means the data are too few for one."""
    target = max(int(min_val), math.ceil(fraction * n))
    cap = min(2 * target, math.floor(max(fraction, INNER_MAX_SHARE) * n))
    return target, cap


def _codes(labels: np.ndarray) -> np.ndarray:
    """Integer codes 0..k-1 of ``labels`` (sorted order, so the same labels give the same codes)."""
    return np.unique(np.asarray(labels).astype(str), return_inverse=True)[1].ravel()


def _keep_sites_whole(codes: np.ndarray, sites: np.ndarray | None) -> np.ndarray:
    """Merge units that share a site (connected components of units and sites), so that no
    site is ever on both sides."""
    if sites is None:
        return codes
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    site_codes = _codes(sites)
    n_u, n_s = int(codes.max()) + 1, int(site_codes.max()) + 1
    graph = coo_matrix(
        (np.ones(codes.size), (codes, n_u + site_codes)), shape=(n_u + n_s, n_u + n_s)
    )
    _, comp = connected_components(graph, directed=False)
    return _codes(comp[codes])


def _choose_units(
    codes: np.ndarray, target: int, cap: int, min_units: int, seed: int
) -> np.ndarray | None:
    """Shuffle the units (seeded) and move them to validation, skipping any that would take it
    past ``cap``, until it holds ``target`` samples in ``min_units`` units; None if impossible
    (at least one unit must stay for training)."""
    counts = np.bincount(codes)
    if counts.size <= min_units:
        return None
    chosen: list[int] = []
    total = 0
    for u in np.random.default_rng(seed).permutation(counts.size):
        if total >= target and len(chosen) >= min_units:
            break
        if total + counts[u] <= cap:
            chosen.append(int(u))
            total += int(counts[u])
    if total < target or len(chosen) < min_units or total >= codes.size:
        return None
    return np.asarray(chosen, dtype=int)


def _split_from(codes: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_val = np.isin(codes, chosen)
    idx = np.arange(codes.size)
    return idx[~is_val], idx[is_val]


def _fixed(n: int, why: str) -> InnerSplit:
    return InnerSplit(
        np.arange(n), np.array([], dtype=int), "none", 0, 0, f"no inner validation set: {why}"
    )


def _site_labels(ds: xr.Dataset) -> np.ndarray | None:
    """The ``site`` coordinate as text, a missing site (NaN, None, empty) counting as a site of
    its own; None without a ``site`` coordinate."""
    if "site" not in ds.coords:
        return None
    raw = ds["site"].values
    text = raw.astype(str)
    missing = np.isin(np.char.lower(text), ["", "nan", "none", "<na>", "nat"])
    if missing.any():
        text = text.astype(object)
        text[missing] = [f"<no site: sample {i}>" for i in np.flatnonzero(missing)]
        text = text.astype(str)
    return text


def _projected_xy(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """Sample positions in metres: the ``x_m``/``y_m`` coordinates, else ``lat``/``lon``
    through :func:`soilbook.geo.local_xy_m`; None when neither is usable."""
    if "x_m" in ds.coords and "y_m" in ds.coords:
        x = np.asarray(ds["x_m"].values, dtype=np.float64)
        y = np.asarray(ds["y_m"].values, dtype=np.float64)
        if x.ndim == 1 and np.isfinite(x).all() and np.isfinite(y).all():
            return x, y
    if "lat" in ds.coords and "lon" in ds.coords:
        try:
            return local_xy_m(ds["lat"].values, ds["lon"].values)
        except (TypeError, ValueError):
            return None
    return None


def inner_validation_split(
    ds: xr.Dataset,
    fraction: float,
    seed: int,
    *,
    min_val_samples: int = INNER_MIN_VAL_SAMPLES,
    min_units: int = INNER_MIN_UNITS,
) -> InnerSplit:
    """The inner early-stopping split of the training samples ``ds`` (see the module docstring).

    Candidate units, coarsest first; the first that yields a validation set of the required
    size wins:

    1. ``"group"`` — whole ``group`` values;
    2. ``"block"`` — square spatial blocks **inside** each group, from ``x_m``/``y_m`` or from
       ``lat``/``lon`` (:func:`soilbook.geo.local_xy_m`, :func:`soilbook.geo.spatial_blocks`),
       trying the sides of :data:`soilbook.geo.BLOCK_SIDES_M` from 100 km down and keeping the
       largest that works;
    3. ``"site"`` — whole ``site`` values inside each group (when ``ds`` has a ``site``
       coordinate), else ``"sample"`` — single samples.

    Units that share a ``site`` are merged first, so no site (and never a sample) is on both
    sides. The required size: at least ``target = max(min_val_samples, ceil(fraction * n))``
    samples in at least ``min_units`` units, and at most ``cap = min(2 * target,
    floor(max(fraction, 1/3) * n))`` samples. Units are shuffled with ``seed`` and added,
    skipping any that would pass ``cap``, until both minima are met.

    When no candidate works — ``fraction`` is 0, or too few samples (``target > cap``, i.e.
    fewer than 60 with the defaults), or units too large — the split is empty: a **fixed
    schedule** (all epochs, no early stopping; :func:`soilbook.train.fit`).
    """
    n = int(ds.sizes[SAMPLE])
    fraction = float(fraction)
    if fraction <= 0:
        return _fixed(n, "val_fraction is 0 (fixed schedule: all epochs, no early stopping).")
    target, cap = _size_bounds(n, fraction, min_val_samples)
    if target > cap:
        return _fixed(
            n,
            f"{n} training samples are too few, a validation set of at least {target} would "
            f"take more than {cap} of them (fixed schedule: all epochs, no early stopping).",
        )
    groups = ds["group"].values.astype(str) if "group" in ds.coords else np.full(n, "")
    sites = _site_labels(ds)

    def attempt(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        codes = _keep_sites_whole(_codes(labels), sites)
        return codes, _choose_units(codes, target, cap, min_units, seed)

    def done(codes, chosen, unit, words, side=None) -> InnerSplit:
        train, val = _split_from(codes, chosen)
        n_units = int(codes.max()) + 1
        text = (
            f"{val.size} of {n} training samples in {chosen.size} of {n_units} {words} "
            f"(early stopping on them; seed {seed})."
        )
        return InnerSplit(train, val, unit, n_units, int(chosen.size), text, side)

    tried: list[str] = []
    if "group" in ds.coords:
        codes, chosen = attempt(groups)
        if chosen is not None:
            return done(codes, chosen, "group", "'group' values")
        tried.append(f"{int(codes.max()) + 1} group(s)")
    xy = _projected_xy(ds)
    if xy is not None:
        for side in BLOCK_SIDES_M:
            blocks = spatial_blocks(xy[0], xy[1], side)
            codes, chosen = attempt(np.char.add(np.char.add(groups, "|"), blocks))
            if chosen is not None:
                words = f"spatial blocks of {_side_text(side)} inside the groups"
                return done(codes, chosen, "block", words, float(side))
            if int(codes.max()) + 1 == n:  # every sample its own block: smaller cannot help
                break
        tried.append("spatial blocks")
    unit, words = ("site", "sites") if sites is not None else ("sample", "samples")
    codes, chosen = attempt(np.char.add(np.char.add(groups, "|"), np.arange(n).astype(str)))
    if chosen is not None:
        return done(codes, chosen, unit, words)
    tried.append(words)
    return _fixed(
        n,
        f"no split of {', '.join(tried)} gives {target}-{cap} samples in >= {min_units} units "
        "(fixed schedule: all epochs, no early stopping).",
    )


def _side_text(side_m: float) -> str:
    return f"{side_m / 1000:g} km" if side_m >= 1000 else f"{side_m:g} m"


def inner_group_split(
    groups: np.ndarray,
    fraction: float,
    seed: int,
    *,
    min_val_samples: int = INNER_MIN_VAL_SAMPLES,
    min_units: int = INNER_MIN_UNITS,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) sample positions from ``groups`` alone (no coordinates, no sites).

    The rule of :func:`inner_validation_split` restricted to its first and last candidates:
    whole groups when they give at least ``max(min_val_samples, ceil(fraction * n))`` samples
    in ``min_units`` groups (at most twice that and a third of the samples), else single
    samples, else an empty validation set (a fixed schedule: ``fraction`` 0, or fewer than 60
    samples with the defaults). Prefer :func:`inner_validation_split` when a data set is at
    hand: it also tries spatial blocks and keeps sites whole.
    """
    groups = np.asarray(groups)
    ds = xr.Dataset(coords={"group": (SAMPLE, groups.astype(str))})
    split = inner_validation_split(
        ds, fraction, seed, min_val_samples=min_val_samples, min_units=min_units
    )
    return split.train, split.val


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


def _folder_name(prefix: str, payload: Mapping[str, Any]) -> str:
    """``<prefix>-<16 hex digits>``: a checkpoint folder name, the sha256 of ``payload`` as
    sorted JSON (every value must be JSON-serialisable)."""
    text = json.dumps(payload, sort_keys=True)
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


# -- pre-trained weights --------------------------------------------------------------------------


def read_weights(weights: Mapping[str, Tensor] | str | os.PathLike) -> dict[str, Tensor]:
    """A state dict (name → CPU tensor) from a mapping or a file.

    ``weights`` is a mapping of names to tensors (e.g. ``module.state_dict()`` of a network fitted
    in this process), or the path of a file written with :func:`torch.save`: a plain state dict,
    a dict holding one under ``"state_dict"``, or a soilbook training checkpoint
    (:mod:`soilbook.checkpoint`), whose best weights (``"best_state"``) are used after its sha256
    side-car has been verified. Files are read with ``torch.load(weights_only=True)``: only
    tensors and plain values are accepted, nothing is executed.

    Raises :class:`~soilbook.errors.ParameterError` for a missing file or a mapping whose values
    are not all tensors, and :class:`~soilbook.errors.CheckpointError` /
    :class:`~soilbook.errors.ChecksumError` for a file that cannot be read safely or fails its
    side-car.
    """
    if isinstance(weights, str | os.PathLike):
        path = Path(weights)
        if not path.is_file():
            raise ParameterError(
                f"init_weights={str(path)!r}: no such file. What to do: pass the path of a "
                "state dict saved with torch.save, a soilbook checkpoint, or a state dict."
            )
        from soilbook.checkpoint import load_checkpoint, sidecar_path

        if sidecar_path(path).exists():
            payload, _ = load_checkpoint(path)
            data: Any = payload.get("best_state", payload.get("model"))
        else:
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # UnpicklingError, RuntimeError (bad zip), EOFError …
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise CheckpointError(
                    f"the weights file {path} cannot be loaded safely ({type(exc).__name__}: "
                    f"{first[:200]}). It is read with torch.load(weights_only=True), which "
                    "refuses anything but tensors and plain values. What to do: save the weights "
                    "with torch.save(module.state_dict(), path)."
                ) from exc
            if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
                data = data["state_dict"]
        weights = data
    if not isinstance(weights, Mapping) or not weights:
        raise ParameterError(
            f"init_weights must be a non-empty state dict (name -> tensor) or a file path; got "
            f"{type(weights).__name__}."
        )
    bad = [str(k) for k, v in weights.items() if not isinstance(v, Tensor)]
    if bad:
        raise ParameterError(
            f"init_weights holds non-tensor values under {bad[:5]}. What to do: pass "
            "module.state_dict() (names -> tensors)."
        )
    return {str(k): v.detach().to("cpu") for k, v in weights.items()}


def load_weights(
    module: nn.Module, weights: Mapping[str, Tensor] | str | os.PathLike, what: str = "init_weights"
) -> list[str]:
    """Copy ``weights`` (see :func:`read_weights`) into ``module`` and return the names loaded.

    Every tensor of ``weights`` must name a parameter or buffer of ``module`` with the same
    shape; the module's other tensors are left as they are (a partial load: e.g. pre-trained
    encoders into a network with a new head). Raises :class:`~soilbook.errors.ParameterError`
    naming the unknown names and the shape mismatches (``what`` says whose weights they are).
    """
    state = read_weights(weights)
    own = module.state_dict()
    unknown = [k for k in state if k not in own]
    wrong = [
        f"{k}: given {tuple(v.shape)}, the module has {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if unknown or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es) ({'; '.join(wrong[:4])})")
        if unknown:
            parts.append(f"{len(unknown)} name(s) the module lacks ({unknown[:4]})")
        raise ParameterError(
            f"{what} does not fit the {type(module).__name__} built for these data: "
            f"{' and '.join(parts)}. What to do: build the network with the same architecture "
            "settings (widths, depths, heads, patch size, inputs) as the one the weights come "
            "from."
        )
    merged = dict(own)
    merged.update({k: v.to(dtype=own[k].dtype) for k, v in state.items()})
    module.load_state_dict(merged)
    return sorted(state)


def weights_digest(weights: Mapping[str, Tensor] | str | os.PathLike | None) -> str | None:
    """sha256 of a state dict's names, shapes and values (a file by its content); None for None."""
    if weights is None:
        return None
    if isinstance(weights, str | os.PathLike) and Path(weights).is_file():
        from soilbook.hashing import sha256_file

        return sha256_file(Path(weights))
    h = hashlib.sha256()
    for name, value in sorted(read_weights(weights).items()):
        h.update(f"{name}|{tuple(value.shape)}|{value.dtype}|".encode())
        h.update(value.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(folder: Path | None) -> Iterator[None]:
    """Hold an exclusive POSIX lock on ``folder / "train.lock"`` while training a shared stage
    (nothing without a folder or where :mod:`fcntl` is missing), so a concurrent second fit
    waits and then restores the finished checkpoint instead of training it twice."""
    if folder is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(Path(folder) / "train.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
    min_epochs : epochs that always run before early stopping may trigger (clipped to
        ``epochs``).
    loss : ``"mse"`` or ``"huber"`` (on the standardised target).
    val_fraction : share of the *training* samples held out for early stopping (at least
        ``INNER_MIN_VAL_SAMPLES`` = 20 samples in ``INNER_MIN_UNITS`` = 3 groups, blocks or
        sites; see "Inner validation" in the module docstring). 0, or data too few for that
        floor, give a fixed schedule: all ``epochs`` run and the best training-loss epoch is
        kept.
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
    init_weights : pre-trained weights to start from (a state dict, or a file path; see
        "Starting from pre-trained weights" in the module docstring); ``None`` = random
        initialisation. Networks that override :meth:`fit` without applying them refuse the
        parameter (:class:`~soilbook.errors.ParameterError`).

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
    inner_split_ : the :class:`InnerSplit` of the last fit (its ``unit`` and ``description``
        say how the validation set was drawn, or why there was none).
    checkpoint_path_ : this fit's checkpoint folder (a :class:`~pathlib.Path`), or ``None``.
    init_weights_loaded_ : the names of the tensors taken from ``init_weights`` ([] without).
    """

    #: Whether this class's :meth:`fit` applies ``init_weights`` (subclasses that override
    #: :meth:`fit` set it True once they call :meth:`_apply_init_weights`).
    _applies_init_weights: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Mark subclasses that override :meth:`fit` as not applying ``init_weights`` (unless
        they say they do) and give them the merged signature (:meth:`_merge_signature`)."""
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__ and "_applies_init_weights" not in cls.__dict__:
            cls._applies_init_weights = False
        cls._merge_signature()

    def __init__(
        self,
        *,
        epochs: int = 40,
        batch_size: int = 64,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 8,
        min_epochs: int = 10,
        loss: str = "mse",
        val_fraction: float = 0.15,
        max_grad_norm: float | None = 1.0,
        seed: int = 0,
        device: str = "auto",
        checkpoint_dir: str | Path | None = None,
        progress: bool = False,
        cpu_threads: int | None = None,
        init_weights: Mapping[str, Tensor] | str | Path | None = None,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.min_epochs = min_epochs
        self.loss = loss
        self.val_fraction = val_fraction
        self.max_grad_norm = max_grad_norm
        self.seed = seed
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.cpu_threads = cpu_threads
        self.init_weights = init_weights

    # -- scikit-learn plumbing -------------------------------------------------------------------

    @classmethod
    def _merge_signature(cls) -> None:
        """Give a subclass's ``__init__(self, *, own..., **kwargs)`` the full signature.

        The merged signature (own arguments, then the base's training settings) is what
        ``inspect.signature`` — and so scikit-learn's ``get_params``, ``clone`` and ``repr`` —
        sees, and what notebook users see in ``help(...)``.
        """
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
        for name in ("epochs", "batch_size", "patience", "min_epochs"):
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
        weights = self.init_weights
        if weights is not None:
            if not isinstance(weights, Mapping | str | os.PathLike):
                raise ParameterError(
                    f"{type(self).__name__}: init_weights={type(weights).__name__} must be a "
                    "state dict (name -> tensor), the path of a weights file, or None."
                )
            if not type(self)._applies_init_weights:
                raise ParameterError(
                    f"{type(self).__name__} does not start from init_weights (its fit trains "
                    "in its own stages). What to do: leave init_weights=None."
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
            min_epochs=int(self.min_epochs),
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
        tokens = {k: _token(v) for k, v in sorted(params.items()) if k != "init_weights"}
        tokens["init_weights"] = repr(weights_digest(params.get("init_weights")))
        payload = {
            "estimator": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": tokens,
            "data": dataset_digest(ds),
            "y": _array_digest(np.asarray(y_raw, dtype=np.float64)),
            "seed": int(self.seed),
            "code": _training_code_digest(type(self)),
        }
        return _folder_name(type(self).__name__, payload)

    def _fit_checkpoint_dir(self, ds: xr.Dataset, y_raw: np.ndarray) -> Path | None:
        """``checkpoint_dir / checkpoint_key(ds, y)``, created (None without checkpoints)."""
        if self.checkpoint_dir is None:
            return None
        return self._stage_folder(self.checkpoint_key(ds, y_raw), "checkpoint folder")

    # -- stages with their own checkpoint (DeepSalt's teacher, SSL-SoilNet's pre-training) ------

    def _stage_key(self, prefix: str, stage: str, params: Mapping[str, Any], **fields: Any) -> str:
        """The checkpoint folder name of a training stage that several fits may share:
        ``<prefix>-<16 hex digits>``, a sha256 of the estimator and ``stage``, the stage's
        ``params`` (by ``repr``), the JSON-serialisable ``fields`` that identify its data, and
        the training code (:func:`_training_code_digest`)."""
        payload = {
            "estimator": f"{type(self).__module__}.{type(self).__qualname__}.{stage}",
            "params": {k: repr(v) for k, v in sorted(params.items())},
            **fields,
            "code": _training_code_digest(type(self)),
        }
        return _folder_name(prefix, payload)

    def _stage_folder(self, key: str, what: str) -> Path | None:
        """``checkpoint_dir / key`` created and checked writable (:meth:`_make_checkpoint_folder`;
        ``what`` names it in errors), or None without ``checkpoint_dir``."""
        if self.checkpoint_dir is None:
            return None
        return self._make_checkpoint_folder(Path(self.checkpoint_dir) / key, what)

    def _make_checkpoint_folder(self, path: Path, what: str) -> Path:
        """``path`` created (with its parents) and checked writable; ``what`` names the folder in
        the :class:`OutputDirError` raised otherwise (e.g. ``"checkpoint folder"``)."""
        todo = (
            "What to do: pass a writable checkpoint_dir, or checkpoint_dir=None to train without "
            "checkpoints."
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(
                f"{type(self).__name__}: the {what} {path} cannot be created ({exc}). {todo}"
            ) from exc
        if not os.access(path, os.W_OK):
            raise OutputDirError(
                f"{type(self).__name__}: the {what} {path} is not writable. {todo}"
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

    def _inner_split(self, ds: xr.Dataset) -> InnerSplit:
        """The inner early-stopping split of the training samples ``ds``
        (:func:`inner_validation_split` with ``val_fraction`` and ``seed``); sets
        ``inner_split_``, ``n_train_`` and ``n_val_``. Unpacks as ``train, val``."""
        split = inner_validation_split(ds, float(self.val_fraction), int(self.seed))
        self.inner_split_ = split
        self.n_train_, self.n_val_ = int(split.train.size), int(split.val.size)
        return split

    def _train(
        self,
        module: nn.Module,
        tensors: Sequence[Tensor],
        y: Tensor,
        split: InnerSplit | tuple[np.ndarray, np.ndarray],
        config: TrainConfig,
        run_key: dict[str, Any],
        train_loss_fn: Any = None,
        task: Task | None = None,
    ) -> History:
        """Train ``module`` with :func:`soilbook.train.fit` on the rows ``split[0]`` of
        ``tensors``/``y``, early-stopping on the rows ``split[1]`` (a fixed schedule when
        empty). An :class:`InnerSplit`'s description goes to ``History.inner_split``.
        ``task`` (e.g. :class:`soilbook.train.ContrastiveTask`) changes the objective; ``y`` may
        then be ``None`` (a task without labels)."""
        tr, va = (torch.from_numpy(np.asarray(split[i])) for i in (0, 1))
        has_val = np.asarray(split[1]).size > 0
        extra = {} if task is None else {"task": task}
        history = train_fit(
            module,
            [t[tr] for t in tensors],
            None if y is None else y[tr],
            [t[va] for t in tensors] if has_val else None,
            None if y is None or not has_val else y[va],
            config,
            run_key=run_key,
            train_loss_fn=train_loss_fn,
            **extra,
        )
        if isinstance(split, InnerSplit):
            history.inner_split = split.description
        elif not has_val:
            history.inner_split = "no inner validation set (fixed schedule: all epochs)."
        return history

    def _train_stage(
        self,
        stage: str,
        params: Mapping[str, Any],
        module: nn.Module,
        tensors: Sequence[Tensor],
        y: Tensor | None,
        split: InnerSplit | tuple[np.ndarray, np.ndarray],
        config: TrainConfig,
        *,
        task: Task | None = None,
        **key_fields: Any,
    ) -> History:
        """Train (or restore) a shared stage with :meth:`_train` under :func:`file_lock` on its
        checkpoint folder ``config.checkpoint_dir``, so a concurrent fit that needs the same
        stage waits and restores it. The run key names the estimator and ``stage``, the stage's
        ``params`` (by ``repr``) and any ``key_fields``."""
        run_key = {
            "estimator": f"{type(self).__qualname__}.{stage}",
            "params": {k: repr(v) for k, v in sorted(params.items())},
            **key_fields,
            "stage": stage,
        }
        with file_lock(config.checkpoint_dir):
            return self._train(module, tensors, y, split, config, run_key, task=task)

    def training_histories(self) -> dict[str, History]:
        """Every training run of the last fit, by stage: ``{"network": history_}`` here.

        Networks trained in several stages override it (DeepSalt: ``{"teacher": ...,
        "student": ...}``). Each :class:`~soilbook.train.History` gives its learning curve
        (:meth:`~soilbook.train.History.to_frame`) and its convergence record
        (:meth:`~soilbook.train.History.convergence`). Raises
        :class:`sklearn.exceptions.NotFittedError` before :meth:`fit`.
        """
        check_is_fitted(self, "history_")
        return {"network": self.history_}

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
        self._apply_init_weights(self.module_)
        tensors = [torch.from_numpy(a) for a in arrays.values()]
        self.history_: History = self._train(
            self.module_, tensors, torch.from_numpy(y_std), split, config, self._run_key()
        )
        self.module_.eval()
        return self

    def _apply_init_weights(self, module: nn.Module) -> None:
        """Load ``init_weights`` into the freshly built ``module`` (:func:`load_weights`) and
        set ``init_weights_loaded_`` (the names taken from it; [] without)."""
        self.init_weights_loaded_: list[str] = []
        if self.init_weights is not None:
            self.init_weights_loaded_ = load_weights(module, self.init_weights)

    def _run_key(self) -> dict[str, Any]:
        """What identifies this fit beyond the data and TrainConfig (for checkpoint names)."""
        params = self.get_params(deep=False)
        for name in _NOT_IN_KEY:
            params.pop(name, None)
        weights = params.pop("init_weights", None)
        out = {
            "estimator": type(self).__qualname__,
            "params": {k: repr(v) for k, v in sorted(params.items())},
            "inputs": self.input_names_,
        }
        if weights is not None:  # by content; absent otherwise (run keys as before)
            out["init_weights"] = weights_digest(weights)
        return out

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
