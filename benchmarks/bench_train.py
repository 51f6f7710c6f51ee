"""Benchmark: SS-SoilNet training speed (seconds per epoch, samples per second).

Trains the full-profile network (paper window 65 × 65, width 64) on a few thousand samples
from a simulated scene, on the device found (``--device auto``: CUDA when available, else CPU;
bfloat16 autocast on CUDA), and prints the time per epoch and the training throughput. Epoch 1
includes one-off warm-up (CUDA kernels, allocator) and is reported separately.

Run: ``python benchmarks/bench_train.py`` or, for a quick look on a laptop CPU,
``python benchmarks/bench_train.py --samples 500 --epochs 2 --window 33``. Needs only torch,
numpy, xarray, scipy, scikit-learn and pandas.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000, help="training samples (default 3000)")
    parser.add_argument(
        "--window", type=int, default=65, help="patch window in pixels (odd; default 65)"
    )
    parser.add_argument("--width", type=int, default=64, help="network width (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time (default 3)")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default 128)")
    parser.add_argument(
        "--size", type=int, default=400, help="simulated scene side in pixels (default 400)"
    )
    parser.add_argument(
        "--n-dates", type=int, default=6, help="acquisition dates (default 6, the full profile)"
    )
    parser.add_argument(
        "--device", default="auto", help="'auto' (default), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from soilbook.data.scene import sample_scene
    from soilbook.data.simulate.salinity import simulate_scene
    from soilbook.models.ss_soilnet import SSSoilNetRegressor
    from soilbook.train import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    print(
        f"bench_train | torch {torch.__version__} | device {device} ({name}) | "
        f"torch threads {torch.get_num_threads()} of {os.cpu_count()} CPUs"
    )

    n_pixels = args.size * args.size
    if args.samples > n_pixels:
        parser.error(
            f"--samples {args.samples} exceeds the scene's {n_pixels} pixels; raise --size"
        )
    t0 = time.perf_counter()
    scene = simulate_scene(size=args.size, n_dates=args.n_dates, seed=args.seed)
    samples = sample_scene(scene, n_samples=args.samples, window=args.window, seed=args.seed)
    print(
        f"data: {args.samples} samples from a simulated {args.size} x {args.size} scene, "
        f"{args.n_dates} dates, {scene.sizes['layer']} layers, window {args.window} "
        f"({time.perf_counter() - t0:.1f} s to simulate; SIMULATED data)"
    )

    net = SSSoilNetRegressor(
        width=args.width,
        heads=args.heads,
        epochs=args.epochs,
        patience=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        progress=False,
        val_fraction=0.15,
    )
    t0 = time.perf_counter()
    net.fit(samples)
    total = time.perf_counter() - t0
    h = net.history_
    n_params = sum(p.numel() for p in net.module_.parameters())
    print(
        f"model: SS-SoilNet (cross-attention), width {args.width}, {args.heads} heads, "
        f"{n_params:,} parameters; batch {args.batch_size}; "
        f"{h.n_train} training + {h.n_val} validation samples"
    )
    for e, (sec, tl, vl) in enumerate(
        zip(h.seconds, h.train_loss, h.val_loss, strict=True), start=1
    ):
        print(
            f"  epoch {e}: {sec:7.2f} s  ({h.n_train / sec:9.1f} samples/s)  train {tl:.3f}  val {vl:.3f}"
        )
    steady = h.seconds[1:] or h.seconds
    per_epoch = sum(steady) / len(steady)
    label = "epochs 2+" if len(h.seconds) > 1 else "epoch 1 (incl. warm-up)"
    print(
        f"time per epoch ({label}): {per_epoch:.2f} s | training throughput "
        f"{h.n_train / per_epoch:,.1f} samples/s (incl. validation pass) | whole fit {total:.1f} s "
        f"on {device}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
