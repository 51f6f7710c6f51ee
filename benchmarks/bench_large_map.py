"""Benchmark: a map larger than memory, predicted lazily chunk by chunk and written to Zarr.

A synthetic scene of ``--size`` × ``--size`` pixels and ``--bands`` bands
(:func:`soilbook.lazymaps.lazy_scene`: every chunk computed on demand from its pixels' global
row and column, never the whole scene in memory) is mapped by a cheap fitted estimator through
:func:`soilbook.lazymaps.estimator_block` and :func:`soilbook.lazymaps.predict_lazy`
(``--chunk`` px blocks, no halo: a pixel-wise model) and written with
:func:`soilbook.lazymaps.write_map` to a Zarr store in a temporary folder (deleted afterwards),
on dask's local threaded scheduler (``--threads`` workers; default: dask's, one per core).

The estimator (``--estimator``): ``ridge`` (default; scikit-learn ``Ridge(alpha=1)``, the
cheapest honest model: one dot product per pixel) or ``forest`` (``RandomForestRegressor``,
20 trees of depth 8), fitted on ``--train-pixels`` pixels read from random windows of the same
scene, with a simulated target ``2·b1 − b2 + b3² + noise``. Simulating the scene's chunks is
part of the timed run (it stands in for reading a raster from disk).

It prints the wall time, pixels/s, the peak resident memory (``ru_maxrss`` of
:func:`resource.getrusage`) and its increase over the baseline taken just before the run, the
bound of :mod:`soilbook.lazymaps`'s docstring (``(chunk + 2·halo)² × (bands + k) × 8`` bytes
per worker thread, plus what the per-block function allocates) and what the scene and the map
would take in memory at once; then it checks a few chunks of the written map against the
estimator's ``predict`` on the same pixels. All data are SIMULATED: speed does not depend on the
values; accuracy figures would mean nothing.

Run: ``python benchmarks/bench_large_map.py`` (20,000 × 20,000 px, 8 bands, chunk 1024) or
e.g. ``python benchmarks/bench_large_map.py --size 4000`` for a look of a minute or so. Needs
numpy, xarray, dask, zarr and scikit-learn (and soilbook from the checkout).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

ESTIMATORS = ("ridge", "forest")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--size", type=int, default=20000, help="scene side in pixels (default 20000)")
    add("--chunk", type=int, default=1024, help="block side in pixels (default 1024)")
    add("--bands", type=int, default=8, help="bands of the scene (default 8)")
    add("--estimator", choices=ESTIMATORS, default="ridge", help="default ridge")
    add("--train-pixels", type=int, default=4096, help="training pixels (default 4096)")
    add("--threads", type=int, default=None, help="dask worker threads (default: dask's)")
    add("--progress", action="store_true", help="a progress bar over rows of chunks")
    add("--seed", type=int, default=0)
    return p.parse_args(argv)


def maxrss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (ru_maxrss: KiB on Linux, bytes
    on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def training_pixels(scene: Any, n: int, chunk: int, seed: int) -> np.ndarray:
    """About ``n`` pixels (n, bands) of ``scene`` from random 32 × 32 windows, each inside one
    ``chunk`` of the lazy scene (one chunk computed per window: the whole scene never is, and
    the memory baseline stays that of one chunk)."""
    rng = np.random.default_rng(seed)
    ny, nx = scene.sizes["y"], scene.sizes["x"]
    side = min(32, ny, nx, chunk)
    windows = []
    for _ in range(max(1, -(-n // side**2))):
        r, c = (_inside_a_chunk(rng, length, chunk, side) for length in (ny, nx))
        block = scene["bands"][:, r : r + side, c : c + side].values
        windows.append(block.reshape(block.shape[0], -1).T)
    return np.concatenate(windows)[:n]


def _inside_a_chunk(rng: np.random.Generator, length: int, chunk: int, side: int) -> int:
    """A random start of ``side`` (<= ``chunk``, <= ``length``) pixels inside one chunk of a
    side of ``length`` pixels: a random chunk among those at least ``side`` wide."""
    widths = [min(chunk, length - start) for start in range(0, length, chunk)]
    wide = [i for i, w in enumerate(widths) if w >= side]
    i = wide[int(rng.integers(0, len(wide)))]
    return i * chunk + int(rng.integers(0, widths[i] - side + 1))


def simulated_target(X: np.ndarray, seed: int) -> np.ndarray:
    """A simulated target of the bands (n, bands) -> (n,)."""
    noise = np.random.default_rng(seed + 1).normal(0.0, 0.05, len(X))
    return 2 * X[:, 0] - X[:, 1 % X.shape[1]] + X[:, 2 % X.shape[1]] ** 2 + noise


def fit_estimator(kind: str, X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    if kind == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0).fit(X, y)
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=20, max_depth=8, n_jobs=1, random_state=seed)
    return forest.fit(X, y)


def check_map(store: Path, scene: Any, model: Any, chunk: int) -> tuple[float, float]:
    """Max |written − predict| on the first and last chunk (diagonal corners), and the share of
    finite pixels on a strided sample of the written map."""
    import xarray as xr

    written = xr.open_zarr(store)["prediction"]
    ny, nx = written.shape
    diff = 0.0
    for r, c in ((0, 0), (max(0, ny - chunk), max(0, nx - chunk))):
        rows, cols = slice(r, min(ny, r + chunk)), slice(c, min(nx, c + chunk))
        x = scene["bands"][:, rows, cols].values
        expected = model.predict(x.reshape(x.shape[0], -1).T).reshape(x.shape[1:])
        diff = max(diff, float(np.abs(written[rows, cols].values - expected).max()))
    step = max(1, ny // 200)
    finite = float(np.isfinite(written[::step, ::step].values).mean())
    return diff, finite


def store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    import dask
    import sklearn

    from soilbook import lazymaps

    threads = args.threads or dask.system.CPU_COUNT
    print(
        f"bench_large_map | dask {dask.__version__} | scikit-learn {sklearn.__version__} | "
        f"{platform.processor() or platform.machine()} | {os.cpu_count()} CPUs visible, "
        f"{threads} dask worker threads (local threaded scheduler)"
    )
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes slow the timings)")

    scene = lazymaps.lazy_scene(args.size, args.size, args.bands, chunk=args.chunk, seed=args.seed)
    t0 = time.perf_counter()
    X = training_pixels(scene, args.train_pixels, args.chunk, args.seed)
    model = fit_estimator(args.estimator, X, simulated_target(X, args.seed), args.seed)
    print(
        f"fitted {model!r} on {len(X):,} SIMULATED pixels x {args.bands} bands "
        f"in {time.perf_counter() - t0:.1f} s"
    )

    block = lazymaps.estimator_block(model)
    lazy = lazymaps.predict_lazy(block, scene, chunk=args.chunk)
    n_pixels = args.size * args.size
    k, halo = len(block.outputs), 0
    with dask.config.set(scheduler="threads", num_workers=threads):
        with tempfile.TemporaryDirectory(prefix="bench_large_map_") as tmp:
            store = Path(tmp) / "map.zarr"
            rss0 = maxrss_bytes()
            t0, c0 = time.perf_counter(), time.process_time()
            lazymaps.write_map(lazy, store, progress=args.progress)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - c0
            rss1 = maxrss_bytes()
            on_disk = store_bytes(store)
            diff, finite = check_map(store, scene, model, args.chunk)

    per_thread = (args.chunk + 2 * halo) ** 2 * (args.bands + k) * 8
    mib = 2.0**20
    rows = -(-args.size // args.chunk)
    print()
    print(
        f"SIMULATED scene {args.size:,} x {args.size:,} px x {args.bands} bands, chunk "
        f"{args.chunk} ({rows} x {rows} chunks), halo {halo}, {k} output map"
    )
    print(
        f"predict_lazy + write_map (Zarr): {seconds:,.1f} s wall ({seconds / 60:.1f} min), "
        f"process CPU {cpu:,.1f} s -> {n_pixels / seconds:,.0f} pixels/s "
        f"({n_pixels / seconds / 1e6:.2f} Mpixel/s)"
    )
    print(
        f"peak RSS {rss1 / mib:,.0f} MiB; peak RSS increase over the baseline before the run "
        f"({rss0 / mib:,.0f} MiB): {(rss1 - rss0) / mib:,.0f} MiB"
    )
    print(
        f"bound of the lazymaps docstring: (chunk + 2*halo)^2 x (bands + k) x 8 B = "
        f"{per_thread / mib:,.0f} MiB per thread x {threads} threads = "
        f"{threads * per_thread / mib:,.0f} MiB, plus what the per-block function allocates"
    )
    print(
        f"in memory at once instead: scene {n_pixels * args.bands * 4 / 2**30:,.1f} GiB "
        f"(float32) + map {n_pixels * 4 / 2**30:,.1f} GiB; Zarr store on disk "
        f"{on_disk / mib:,.0f} MiB"
    )
    print(
        f"check: max |written - predict| on two chunks {diff:.2e}; "
        f"{100 * finite:.1f}% of sampled map pixels finite"
    )
    print("All figures are on SIMULATED data (lazy_scene): speed, not accuracy.")
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if diff < 1e-4 and finite == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
