"""Benchmark: whole-scene SS-SoilNet maps vs the naive per-pixel loop.

Simulates a scene (``--size`` px square), samples it, trains SS-SoilNet briefly with the
paper's 65 × 65 window, then times

* ``soilbook.maps.predict_map`` over the **whole** scene (one pass of the convolutions, the
  spatial-attention pooling of every pixel as ratios of FFT correlations), and
* ``soilbook.maps.predict_map_naive`` — for each pixel: cut its window, build a one-sample
  dataset, call ``predict`` — on ``--naive-pixels`` random pixels only, **extrapolated** to the
  whole scene (running it on a million pixels would take hours);

and checks that both agree on those pixels. Targets: at least 20× faster than the naive loop and
a 1000 × 1000 scene in at most 2 minutes on 2 CPU cores.

Run: ``python benchmarks/bench_maps.py`` (defaults: 1000 × 1000, window 65, 2 threads) or e.g.
``python benchmarks/bench_maps.py --size 300 --naive-pixels 100`` for a quick look. Needs only
torch, numpy, xarray, scipy, scikit-learn and pandas.
"""

from __future__ import annotations

import os
import platform
import time

from _common import parser, simulated_samples


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, size=1000, samples=600, n_dates=3, epochs=2)
    p.add_argument(
        "--naive-pixels",
        type=int,
        default=300,
        help="pixels timed with the naive loop (default 300)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="'cpu' (default), 'auto' or 'cuda'")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from soilbook import maps
    from soilbook.models.ss_soilnet import SSSoilNetRegressor

    torch.set_num_threads(args.threads)
    print(
        f"bench_maps | torch {torch.__version__} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs visible, torch threads {torch.get_num_threads()} | device {args.device}"
    )
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes slow the timings)")

    scene, samples, t_sim = simulated_samples(args)
    print(
        f"simulated scene {args.size} x {args.size} px, {args.n_dates} dates, "
        f"{scene.sizes['layer']} layers in {t_sim:.1f} s (SIMULATED data)"
    )

    t0 = time.perf_counter()
    net = SSSoilNetRegressor(
        width=args.width,
        heads=4,
        epochs=args.epochs,
        batch_size=64,
        device=args.device,
        seed=args.seed,
        progress=False,
    ).fit(samples)
    print(
        f"trained SS-SoilNet (width {args.width}, window {args.window}) on {args.samples} "
        f"samples for {len(net.history_.epoch)} epoch(s) in {time.perf_counter() - t0:.1f} s"
    )

    n_pixels = args.size * args.size
    t0 = time.perf_counter()
    c0 = time.process_time()
    dense = maps.predict_map(net, scene)
    t_fast = time.perf_counter() - t0
    cpu_fast = time.process_time() - c0

    rng = np.random.default_rng(args.seed)
    flat = rng.choice(n_pixels, size=min(args.naive_pixels, n_pixels), replace=False)
    rows, cols = np.divmod(flat, args.size)
    maps.predict_map_naive(net, scene, rows[:3], cols[:3])  # warm-up
    t0 = time.perf_counter()
    naive = maps.predict_map_naive(net, scene, rows, cols)
    t_naive = time.perf_counter() - t0
    diff = float(np.max(np.abs(dense.values[rows, cols] - naive)))

    fast_rate = n_pixels / t_fast
    naive_rate = flat.size / t_naive
    naive_whole = n_pixels / naive_rate
    speedup = fast_rate / naive_rate
    print()
    print(
        f"predict_map (whole scene, {n_pixels:,} px): {t_fast:8.1f} s  -> {fast_rate:12,.0f} pixels/s "
        f"(process CPU time {cpu_fast:.1f} s)"
    )
    print(
        f"naive loop (timed on {flat.size} random px):  {t_naive:8.1f} s  -> {naive_rate:12,.1f} pixels/s"
    )
    print(
        f"naive loop, whole scene EXTRAPOLATED from {flat.size} px: {naive_whole:,.0f} s "
        f"({naive_whole / 3600:.1f} h)"
    )
    print(
        f"speed-up: {speedup:,.0f}x | max |map - naive| on the timed pixels: {diff:.2e} "
        f"{dense.attrs.get('units', '')}"
    )
    ok_speed = speedup >= 20
    ok_time = t_fast <= 120 or args.size != 1000
    print(
        f"target >= 20x faster: {'met' if ok_speed else 'NOT met'}; "
        + (
            f"target whole 1000 x 1000 scene <= 120 s: {'met' if t_fast <= 120 else 'NOT met'} "
            f"({t_fast:.1f} s on {torch.get_num_threads()} threads)"
            if args.size == 1000
            else f"(the 120 s target is for --size 1000; this run: {args.size} x {args.size})"
        )
    )
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if ok_speed and ok_time and diff < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
