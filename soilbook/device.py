"""Which compute device a run may use, checked before any work starts.

torch is imported only when CUDA is asked for, so parameter validation stays light.
"""

from __future__ import annotations

from soilbook.errors import ParameterError

__all__ = ["check_device"]


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
