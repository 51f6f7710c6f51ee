"""Training checkpoints that are safe to load and checked before they are trusted.

A checkpoint is two files side by side:

``checkpoint-<run>.pt``
    written with :func:`torch.save` and read back with ``torch.load(..., weights_only=True)``,
    which refuses anything but tensors and plain Python values (dict, list, tuple, str, int,
    float, bool, None). A crafted file that would run code when unpickled is rejected instead.
    To keep it that way, :func:`save_checkpoint` converts the payload with :func:`plain`
    (NumPy scalars and arrays become Python numbers and tensors) and refuses any other object;
    the random-number states are stored as tensors and numbers (:func:`capture_rng`).
``checkpoint-<run>.json``
    the side-car: the sha256 of the ``.pt`` file, its size and a short summary (epoch,
    fingerprint). :func:`load_checkpoint` recomputes the sha256 and refuses a file that does not
    match, so one flipped byte is reported (:class:`~soilbook.errors.ChecksumError`) instead of
    being resumed silently.

Both files are written atomically (a temporary file renamed into place). The side-car is
committed *before* the new ``.pt`` replaces the old one and lists the sha256 of both, so a run
killed between the two renames still finds a pair that verifies (the previous epoch's file, or
the new one). The checksum guards against damage, not against someone who can rewrite both
files: that is what ``weights_only=True`` is for.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soilbook.errors import CheckpointError, ChecksumError
from soilbook.hashing import sha256_file

__all__ = [
    "FORMAT",
    "capture_rng",
    "load_checkpoint",
    "plain",
    "restore_rng",
    "save_checkpoint",
    "sha256_file",
    "sidecar_path",
]

#: The ``format`` entry of every checkpoint payload and side-car.
FORMAT = "soilbook-checkpoint"


def sidecar_path(path: Path) -> Path:
    """The side-car of checkpoint ``path``: the same name with ``.json`` instead of ``.pt``."""
    return Path(path).with_suffix(".json")


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with only values that ``torch.load(weights_only=True)`` accepts.

    Tensors are detached and moved to the CPU; NumPy scalars become Python numbers and NumPy
    arrays tensors; dicts, lists and tuples are converted item by item. Anything else raises
    :class:`CheckpointError` naming where it was found (a programming error: the checkpoint
    could not be read back safely).
    """
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, dict):
        return {plain(k, where): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    for base in (bool, int, float, str):  # subclasses (e.g. an IntEnum): the plain value
        if isinstance(obj, base):
            return base(obj)
    raise CheckpointError(
        f"{where} holds a {type(obj).__qualname__}, which a safe checkpoint cannot store "
        "(allowed: tensors, NumPy arrays and numbers, dict, list, tuple, str, int, float, bool, "
        "None). What to do: convert it to one of these before saving."
    )


def capture_rng(generator: torch.Generator) -> dict[str, Any]:
    """The states of ``generator`` and of torch's (CPU, CUDA), NumPy's and Python's global
    generators, as tensors and numbers only (see :func:`restore_rng`)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, state, gauss_next = random.getstate()
    return {
        "shuffle": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {
            "version": int(version),
            "state": torch.tensor(state, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
    }


def restore_rng(states: dict[str, Any], generator: torch.Generator) -> None:
    """Set ``generator`` and the global generators to states from :func:`capture_rng`."""
    generator.set_state(states["shuffle"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    npy = states["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = states["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_json_atomic(data: dict[str, Any], path: Path) -> None:
    tmp = _temporary(path)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(
    payload: dict[str, Any],
    path: Path,
    *,
    previous_sha256: str | None = None,
    summary: dict[str, Any] | None = None,
) -> str:
    """Write ``payload`` (converted by :func:`plain`) to ``path`` and its side-car; return the
    file's sha256.

    Order: the payload goes to a temporary file and is hashed; the side-car (listing that
    sha256 and ``previous_sha256``, the file being replaced) is committed; then the temporary
    file replaces ``path``. ``summary`` (JSON-serialisable) is copied into the side-car for
    people reading it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        torch.save({"format": FORMAT, **plain(payload)}, tmp)
        digest = sha256_file(tmp)
        sidecar = {
            "format": FORMAT,
            "file": path.name,
            "sha256": digest,
            "previous_sha256": previous_sha256,
            "bytes": tmp.stat().st_size,
            "summary": summary or {},
        }
        _write_json_atomic(sidecar, sidecar_path(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def _retrain_hint(path: Path) -> str:
    return (
        f"What to do: delete {path.name} and {sidecar_path(path).name} in {path.parent} (or that "
        "whole folder) and run again; the model is then trained from scratch."
    )


def _recorded_digests(path: Path) -> set[str]:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise CheckpointError(
            f"the checkpoint {path} has no checksum file {sidecar.name} beside it, so it cannot "
            "be verified and is not loaded (soilbook writes both; this file may come from "
            f"elsewhere or the side-car was deleted). {_retrain_hint(path)}"
        )
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"the checksum file {sidecar} cannot be read ({exc}); the checkpoint {path.name} is "
            f"not loaded. {_retrain_hint(path)}"
        ) from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(
            f"{sidecar} is not a soilbook checkpoint side-car (no format={FORMAT!r}); the "
            f"checkpoint {path.name} is not loaded. {_retrain_hint(path)}"
        )
    return {d for d in (info.get("sha256"), info.get("previous_sha256")) if isinstance(d, str)}


def load_checkpoint(path: Path) -> tuple[dict[str, Any], str]:
    """Verify and read the checkpoint at ``path``; return ``(payload, sha256)``.

    Raises :class:`~soilbook.errors.ChecksumError` when the file's sha256 is not the one its
    side-car records (changed or damaged since it was written), and
    :class:`~soilbook.errors.CheckpointError` when the side-car is missing or unreadable, or
    when ``torch.load(weights_only=True)`` refuses the file (it holds objects other than
    tensors and plain values, e.g. a pickle that would run code). Nothing is executed from the
    file in any case. Each message names the file and says to delete it to retrain.
    """
    path = Path(path)
    expected = _recorded_digests(path)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise CheckpointError(
            f"the checkpoint {path} cannot be read ({exc}). {_retrain_hint(path)}"
        ) from exc
    if digest not in expected:
        raise ChecksumError(
            f"the checkpoint {path} does not match the sha256 recorded in "
            f"{sidecar_path(path).name} (found {digest[:16]}…, recorded "
            f"{', '.join(sorted(d[:16] + '…' for d in expected)) or 'none'}): it was changed or "
            f"damaged after it was written, so it is not resumed. {_retrain_hint(path)}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (bad zip), EOFError …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"the checkpoint {path} cannot be loaded safely ({type(exc).__name__}: {first[:200]}). "
            "Checkpoints are read with torch.load(weights_only=True), which refuses anything but "
            f"tensors and plain values, so nothing in it was run. {_retrain_hint(path)}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"the checkpoint {path} is not a soilbook checkpoint (no format={FORMAT!r}). "
            f"{_retrain_hint(path)}"
        )
    return payload, digest
