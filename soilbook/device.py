"""Which compute device a run may use, and how much memory is free, checked before any work
starts.

torch is imported only when CUDA is asked for, so parameter validation stays light. The memory
probe (:func:`available_memory_bytes`) lives here, low in the package layers, so both the data
simulators and the chapters' pre-run checks use one rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from soilbook.errors import ParameterError

__all__ = ["available_memory_bytes", "check_device"]


def check_device(device: str) -> str:
    """Check that ``device`` ("auto", "cpu", "cuda", "cuda:N") can be used here.

    Returns the name unchanged. ``"cuda"`` without a CUDA device is an error rather than a
    silent fall-back, so a GPU run never quietly trains on the CPU.
    """
    if device in ("auto", "cpu"):
        return device
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise ParameterError(
                f"device={device!r} but PyTorch sees no CUDA device here "
                f"(torch {torch.__version__}). Use device='auto' (GPU when present, else CPU) "
                "or device='cpu', or install a CUDA build of PyTorch on a GPU machine."
            )
        return device
    raise ParameterError(
        f"device={device!r} is not allowed; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'."
    )


def _cgroup_free_bytes(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory left under a cgroup v2 limit (containers), or None where there is none.

    The page cache the kernel can drop (``inactive_file`` of ``memory.stat``) counts as free,
    as it does in ``MemAvailable``.
    """
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text().strip())
        stat = dict(
            line.split(maxsplit=1) for line in (root / "memory.stat").read_text().splitlines()
        )
        reclaimable = int(stat.get("inactive_file", 0))
        return max(0, int(limit) - used + reclaimable)
    except (OSError, ValueError):
        return None


def available_memory_bytes() -> int | None:
    """Memory a new process can use now, in bytes, or None where it cannot be told.

    psutil's ``available`` where psutil is installed, else ``MemAvailable`` of
    ``/proc/meminfo``, else the free physical pages of :func:`os.sysconf`; lowered to what a
    container's cgroup limit leaves.
    """
    found: int | None = None
    try:
        import psutil

        found = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            found = None
        if found is None:
            try:
                found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):
                found = None
    cgroup = _cgroup_free_bytes()
    if cgroup is not None:
        found = cgroup if found is None else min(found, cgroup)
    return found
