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

import os
import platform
import time

from _common import parser, simulated_samples


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, size=400, samples=3000, n_dates=6, epochs=3)
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default 128)")
    p.add_argument("--device", default="auto", help="'auto' (default), 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = p.parse_args(argv)

    import torch

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
        p.error(f"--samples {args.samples} exceeds the scene's {n_pixels} pixels; raise --size")
    t0 = time.perf_counter()
    scene, samples, _ = simulated_samples(args)
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
