"""What the benchmarks share: running from a checkout, their common options, the simulated data.

Imported by ``benchmarks/bench_*.py`` as ``from _common import ...`` (their folder is on
``sys.path`` when they run as scripts); importing it puts the checkout on ``sys.path`` too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def parser(
    doc: str,
    *,
    size: int,
    samples: int,
    n_dates: int,
    epochs: int,
    window: int = 65,
    width: int = 64,
) -> argparse.ArgumentParser:
    """A parser (described by the first paragraph of ``doc``) with the options every benchmark
    takes, at these defaults: the simulated scene and its samples, the network, the seed."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add = p.add_argument
    add("--size", type=int, default=size, help=f"simulated scene side in pixels (default {size})")
    add(
        "--window", type=int, default=window, help=f"patch window in pixels (odd; default {window})"
    )
    add("--samples", type=int, default=samples, help=f"training samples (default {samples})")
    add("--n-dates", type=int, default=n_dates, help=f"acquisition dates (default {n_dates})")
    add("--width", type=int, default=width, help=f"network width (default {width})")
    add("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    add("--seed", type=int, default=0)
    return p


def simulated_samples(args: argparse.Namespace) -> tuple[Any, Any, float]:
    """The simulated scene of ``args`` (size, n_dates, seed), its training samples (samples,
    window, seed) and the seconds the scene took to simulate."""
    from soilbook.data.scene import sample_scene
    from soilbook.data.simulate.salinity import simulate_scene

    t0 = time.perf_counter()
    scene = simulate_scene(size=args.size, n_dates=args.n_dates, seed=args.seed)
    seconds = time.perf_counter() - t0
    samples = sample_scene(scene, n_samples=args.samples, window=args.window, seed=args.seed)
    return scene, samples, seconds


def seconds_per_step(step: Any, *, steps: int, warmup: int, device: Any) -> float:
    """Wall-clock seconds of one call of ``step()`` (a training step), averaged over ``steps``
    calls after ``warmup`` untimed ones; on CUDA the device is synchronised before the clock
    starts and stops, so queued kernels are counted."""

    def sync() -> None:
        if getattr(device, "type", str(device)) == "cuda":
            import torch

            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps
