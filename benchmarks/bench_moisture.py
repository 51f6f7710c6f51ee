"""Benchmark: chapter 4's masked ConvNeXt V2 U-Net — training throughput and dense area maps.

Two measurements of :class:`soilbook.models.convnext_unet.ConvNeXtUNet` with the chapter's four
modalities (:data:`CHANNELS`: SAR 3, optical 6, terrain 2, meteorology 5 channels, each with its
validity mask; the optical mask has cloud gaps, the others are all valid but still passed, so
the masked (partial-convolution) path runs as in the chapter):

1. **Training throughput.** One step = forward, the dense masked loss
   :func:`soilbook.train.masked_mse`, backward and an AdamW step on a batch of ``--batch-size``
   tiles of ``--size`` × ``--size`` pixels, for each encoder preset of ``--presets``. The label
   mask is ``--labels stations`` (about 1 % of pixels labelled: in-situ stations, the
   fine-tuning stage) or ``dense`` (every pixel: the coarse product of the intermediate stage);
   a dense backward pass runs either way, so the two cost about the same. ``--warmup`` untimed
   steps come first; the ``--steps`` timed steps are bracketed by
   :func:`torch.cuda.synchronize` on CUDA. It prints tiles/s and pixels/s. On CUDA it times, in
   the same run on the same device, ``fp32`` (float32, eager, contiguous) and ``bf16-cl``
   (bfloat16 autocast + channels-last tensors; with ``--compile`` also ``bf16-cl-compiled``,
   :func:`torch.compile`) and prints each one's speed-up over ``fp32``. On the CPU: float32
   only (no autocast there in the chapter).
2. **Dense inference of a large area** (``--area`` × ``--area`` pixels; 10,000 on CUDA, 2,000
   on the CPU by default so that it finishes in about a minute on 2 cores) tile by tile with
   :func:`soilbook.maps.predict_area` (cores of ``--tile`` pixels with a ``--halo`` of
   context), the network of preset ``--area-preset`` in evaluation mode (random initial
   weights: speed does not depend on them). The inputs are never held in memory as a whole:
   ``read_window`` computes each window's 16 channels and masks on demand as a deterministic
   function of the pixels' global row and column (smooth waves plus integer-hash noise, cloud
   patches in the optical channels), so overlapping windows read the same values, as from a
   raster file. The map is written into :func:`numpy.lib.format.open_memmap` in a temporary
   folder (deleted afterwards). It prints pixels, windows, seconds (and the share spent making
   the inputs), Mpixel/s, the peak resident memory increase (``ru_maxrss`` of
   :func:`resource.getrusage` before and after; it includes the pages of the memory-mapped
   output the kernel has not yet written back, at most 4 bytes per pixel), on CUDA also
   :func:`torch.cuda.max_memory_allocated`, and what the float32 inputs of the whole area
   would have taken in memory at once. The area runs **before** the training benchmark
   because ``ru_maxrss`` is a high-water mark: after training it would hide the area's peak.
   On CUDA the area runs in bfloat16 autocast with channels-last tensors (``--area-fp32``:
   float32).

All inputs are simulated (random / synthetic values): speed does not depend on the values. Run
on a GPU: ``python benchmarks/bench_moisture.py`` (add ``--compile``); on a CPU the same
command measures float32 throughput and a 2,000 × 2,000 area; a smoke run of a few seconds:
``python benchmarks/bench_moisture.py --tiny``. Needs only torch and numpy (and soilbook from
the checkout).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common beside it
from _common import seconds_per_step

#: The chapter's modalities and their channel counts (the order of the stacked channels).
CHANNELS: dict[str, int] = {"sar": 3, "optical": 6, "terrain": 2, "meteo": 5}
#: The modality with cloud gaps.
CLOUDY = "optical"

#: Defaults of the options that depend on the device or on ``--tiny``:
#: name -> (CUDA, CPU, tiny).
DEFAULTS: dict[str, tuple[Any, Any, Any]] = {
    "presets": ("tiny,atto", "tiny,atto", "tiny"),
    "size": (64, 64, 32),
    "batch_size": (32, 32, 4),
    "steps": (30, 5, 2),
    "warmup": (5, 2, 1),
    "area": (10000, 2000, 256),
    "tile": (512, 512, 64),
    "halo": (32, 32, 16),
    "area_preset": ("atto", "atto", "tiny"),
}


# -- training throughput ---------------------------------------------------------------------------


def cloud_mask(n: int, size: int, cover: float, generator: Any) -> Any:
    """(n, 1, size, size) float 0/1, 0 under clouds: a smooth random field (bilinear upsampling
    of 1/8-resolution noise) thresholded so that about ``cover`` of the pixels are cloudy."""
    import torch
    import torch.nn.functional as F

    coarse = torch.rand(n, 1, max(1, size // 8), max(1, size // 8), generator=generator)
    field = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    cut = torch.quantile(field.flatten(1), cover, dim=1).reshape(n, 1, 1, 1)
    return (field > cut).float()


def make_batch(
    n: int, size: int, *, labels: str = "stations", seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    """A random batch on the CPU: inputs {modality: (n, c, size, size)}, masks {modality:
    (n, 1, size, size)} (optical ~30 % cloudy, zero-filled there; the others all valid), the
    label map (n, size, size) and its mask (n, size, size): ~1 % of pixels (``"stations"``) or
    all (``"dense"``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    xs, ms = {}, {}
    for name, c in CHANNELS.items():
        m = cloud_mask(n, size, 0.3, g) if name == CLOUDY else torch.ones(n, 1, size, size)
        xs[name] = torch.randn(n, c, size, size, generator=g) * m
        ms[name] = m
    label = torch.randn(n, size, size, generator=g)
    if labels == "dense":
        label_mask = torch.ones(n, size, size)
    else:
        label_mask = (torch.rand(n, size, size, generator=g) < 0.01).float()
    return xs, ms, label, label_mask


def time_training(
    preset: str,
    device: Any,
    *,
    size: int,
    batch: int,
    labels: str,
    bf16: bool,
    channels_last: bool,
    compile_model: bool,
    steps: int,
    warmup: int,
    seed: int,
) -> dict[str, float]:
    """Seconds per training step, tiles/s and pixels/s of ``steps`` timed steps after ``warmup``
    (forward + :func:`soilbook.train.masked_mse` + backward + AdamW), inputs on the device."""
    import torch

    from soilbook.models.convnext_unet import ConvNeXtUNet
    from soilbook.train import masked_mse

    torch.manual_seed(seed)
    net = ConvNeXtUNet(CHANNELS, preset=preset).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    step_net = torch.compile(net) if compile_model else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05)
    xs, ms, label, label_mask = make_batch(batch, size, labels=labels, seed=seed)
    xs = {k: v.to(device).contiguous(memory_format=fmt) for k, v in xs.items()}
    ms = {k: v.to(device).contiguous(memory_format=fmt) for k, v in ms.items()}
    label, label_mask = label.to(device), label_mask.to(device)
    use_amp = bf16 and device.type == "cuda"

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred, _ = step_net(xs, ms)
        loss = masked_mse(pred, label, label_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = seconds_per_step(step, steps=steps, warmup=warmup, device=device)
    return {
        "step_s": seconds,
        "tiles_per_s": batch / seconds,
        "pixels_per_s": batch * size * size / seconds,
    }


def settings(device: Any, compile_model: bool) -> list[tuple[str, dict[str, bool]]]:
    """The timed settings on ``device``: (label, keyword arguments of :func:`time_training`)."""
    fp32 = {"bf16": False, "channels_last": False, "compile_model": False}
    if device.type != "cuda":
        return [("fp32", fp32)]
    out = [("fp32", fp32), ("bf16-cl", {**fp32, "bf16": True, "channels_last": True})]
    if compile_model:
        out.append(
            ("bf16-cl-compiled", {"bf16": True, "channels_last": True, "compile_model": True})
        )
    return out


# -- dense inference of a large area ---------------------------------------------------------------


def _offsets() -> list[tuple[str, slice]]:
    """(modality, its channels' slice in the stacked channels)."""
    out, start = [], 0
    for name, c in CHANNELS.items():
        out.append((name, slice(start, start + c)))
        start += c
    return out


def synthetic_reader(seed: int = 0) -> Any:
    """``read_window(rows, cols) -> (inputs (16, h, w) float32, valid (16, h, w) bool)`` for
    :func:`soilbook.maps.predict_area`: every value a deterministic function of the pixel's
    global (row, col) — per channel a sum of a row wave and a column wave plus integer-hash
    noise (shared by the channels, scaled per channel) — and the optical channels invalid in
    cloud patches (about 20 % of the area). Costs O(window), never O(area)."""
    n_channels = sum(CHANNELS.values())
    rng = np.random.default_rng(seed)
    freq_r, freq_c = rng.uniform(0.002, 0.05, (2, n_channels)).astype(np.float32)
    phase_r, phase_c = rng.uniform(0, 2 * np.pi, (2, n_channels)).astype(np.float32)
    noise_scale = rng.uniform(0.1, 0.5, n_channels).astype(np.float32)
    optical = dict(_offsets())[CLOUDY]

    def read_window(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        r = np.arange(rows.start, rows.stop, dtype=np.int64)
        c = np.arange(cols.start, cols.stop, dtype=np.int64)
        rf, cf = r.astype(np.float32), c.astype(np.float32)
        x = (
            np.sin(rf[None, :] * freq_r[:, None] + phase_r[:, None])[:, :, None]
            + np.cos(cf[None, :] * freq_c[:, None] + phase_c[:, None])[:, None, :]
        )
        h = ((r[:, None] * 73856093) ^ (c[None, :] * 19349663) ^ seed) & 0xFFFF
        noise = h.astype(np.float32) * np.float32(2.0 / 0xFFFF) - np.float32(1.0)
        x += noise_scale[:, None, None] * noise[None]
        valid = np.ones(x.shape, dtype=bool)
        cloud = (np.sin(rf / 41.0)[:, None] * np.sin(cf / 67.0 + 1.0)[None, :]) > 0.45
        valid[optical] = ~cloud[None]
        return x, valid

    return read_window


def network_predictor(net: Any, device: Any, *, bf16: bool, channels_last: bool) -> Any:
    """``predict_window(inputs (1, 16, h, w), valid (1, 16, h, w)) -> (1, h, w)`` float32 for
    :func:`soilbook.maps.predict_area` from a ConvNeXtUNet in evaluation mode: the channels are
    split into the modalities; a pixel is valid for a modality when any of its channels is
    (invalid values are zero-filled); NaN where no modality is valid."""
    import torch

    net = net.eval().to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    use_amp = bf16 and device.type == "cuda"
    parts = _offsets()

    @torch.inference_mode()
    def predict_window(inputs: np.ndarray, valid: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(device)
        v = torch.from_numpy(np.ascontiguousarray(valid, dtype=bool)).to(device)
        xs, ms = {}, {}
        for name, sl in parts:
            m = v[:, sl].any(dim=1, keepdim=True).float()
            xs[name] = torch.where(v[:, sl], x[:, sl], 0.0).contiguous(memory_format=fmt)
            ms[name] = m.contiguous(memory_format=fmt)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred, ok = net(xs, ms)
        pred = torch.where(ok > 0, pred.float(), float("nan"))
        return pred.cpu().numpy()

    return predict_window


def _maxrss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (ru_maxrss: KiB on Linux, bytes
    on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def time_area(
    device: Any,
    *,
    area: int,
    tile: int,
    halo: int,
    preset: str,
    bf16: bool,
    seed: int,
) -> dict[str, float]:
    """Predict an ``area`` × ``area`` map with :func:`soilbook.maps.predict_area` into a memory
    map in a temporary folder; seconds, windows, memory figures (bytes) and a finite-share check."""
    import torch

    from soilbook.maps import predict_area, tile_windows
    from soilbook.models.convnext_unet import ConvNeXtUNet

    torch.manual_seed(seed)
    net = ConvNeXtUNet(CHANNELS, preset=preset)
    cuda = device.type == "cuda"
    predict = network_predictor(net, device, bf16=bf16, channels_last=cuda)
    read = synthetic_reader(seed)
    spent = {"read": 0.0}

    def timed_read(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        out = read(rows, cols)
        spent["read"] += time.perf_counter() - t0
        return out

    # one untimed window first: one-off costs (allocator, kernels, lazy initialisation)
    side = min(area, tile + 2 * halo)
    x, v = read(slice(0, side), slice(0, side))
    pad = ((0, 0), (0, (-side) % 32), (0, (-side) % 32))
    predict(np.pad(x, pad)[None], np.pad(v, pad)[None])
    windows = len(tile_windows(area, area, tile, halo))
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base_alloc = torch.cuda.memory_allocated(device)
    with tempfile.TemporaryDirectory(prefix="bench_moisture_") as tmp:
        out = np.lib.format.open_memmap(
            os.path.join(tmp, "prediction.npy"), mode="w+", dtype=np.float32, shape=(area, area)
        )
        rss0 = _maxrss_bytes()
        t0 = time.perf_counter()
        predict_area(predict, timed_read, area, area, tile=tile, halo=halo, out=out)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        rss1 = _maxrss_bytes()
        out.flush()
        step = max(1, area // 500)  # a strided look, not a full read of the map
        finite = float(np.isfinite(np.asarray(out[::step, ::step])).mean())
        del out
    result = {
        "pixels": float(area * area),
        "windows": float(windows),
        "seconds": seconds,
        "read_seconds": spent["read"],
        "rss_increase": float(rss1 - rss0),
        "output_bytes": float(area * area * 4),
        "inputs_bytes": float(area * area * sum(CHANNELS.values()) * 4),
        "finite_share": finite,
    }
    if cuda:
        result["cuda_peak"] = float(torch.cuda.max_memory_allocated(device) - base_alloc)
    return result


# -- the command -----------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--device", default="auto", help="'auto' (default), 'cpu', 'cuda', 'cuda:N'")
    add(
        "--presets",
        default=None,
        help="encoder presets to train, comma-separated (default tiny,atto)",
    )
    add(
        "--size",
        type=int,
        default=None,
        help="training tile side in pixels, a multiple of 32 (default 64)",
    )
    add("--batch-size", type=int, default=None, help="training tiles per step (default 32)")
    add(
        "--labels",
        choices=("stations", "dense"),
        default="stations",
        help="label mask: ~1 %% of pixels (stations, default) or every pixel (dense)",
    )
    add(
        "--steps",
        type=int,
        default=None,
        help="timed training steps per setting (default 30 CUDA, 5 CPU)",
    )
    add("--warmup", type=int, default=None, help="untimed steps first (default 5 CUDA, 2 CPU)")
    add("--compile", action="store_true", help="also time torch.compile (CUDA only)")
    add("--area", type=int, default=None, help="area side in pixels (default 10000 CUDA, 2000 CPU)")
    add("--tile", type=int, default=None, help="core side of each window (default 512)")
    add("--halo", type=int, default=None, help="context around each core (default 32)")
    add("--area-preset", default=None, help="preset of the area network (default atto)")
    add("--area-fp32", action="store_true", help="area in float32 on CUDA too (default bf16)")
    add("--skip-area", action="store_true", help="only the training benchmark")
    add("--skip-train", action="store_true", help="only the area benchmark")
    add("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add("--tiny", action="store_true", help="tiny sizes: a CPU smoke run of a few seconds")
    add("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)

    import torch

    from soilbook.models.convnext_unet import PRESETS, STRIDE
    from soilbook.train import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    column = 2 if args.tiny else (0 if device.type == "cuda" else 1)
    for key, values in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, values[column])
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    unknown = [s for s in [*presets, args.area_preset] if s not in PRESETS]
    if unknown or not presets:
        p.error(f"unknown preset(s) {unknown or presets}; allowed: {', '.join(PRESETS)}")
    if args.size < STRIDE or args.size % STRIDE:
        p.error(f"--size {args.size}: a multiple of {STRIDE} (the encoder downsamples to 1/32)")
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch-size and --steps must be >= 1, --warmup >= 0")
    if args.area < 1 or args.tile < 1 or args.halo < 0:
        p.error("--area and --tile must be >= 1, --halo >= 0")

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    print(
        f"bench_moisture | torch {torch.__version__} | device {device} ({name}) | "
        f"torch threads {torch.get_num_threads()} of {os.cpu_count()} CPUs"
    )
    if hasattr(os, "getloadavg"):
        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes slow the timings)")
    n_in = sum(CHANNELS.values())
    print(
        "network: ConvNeXtUNet (masked ConvNeXt V2 encoder, SE fusion, U-Net decoder), "
        f"modalities {CHANNELS} = {n_in} channels with validity masks, optical cloud gaps; "
        "SIMULATED inputs"
    )

    if not args.skip_area:
        fp = args.area_fp32 or device.type != "cuda"
        how = "float32" if fp else "bf16 autocast, channels-last"
        print(
            f"\n[area] {args.area} x {args.area} px, tile {args.tile}, halo {args.halo}, "
            f"preset {args.area_preset}, eval mode, {how}"
            + (
                ""
                if device.type == "cuda" or args.tiny or args.area >= 10000
                else " (CPU default 2000 so that it ends in about a minute on 2 cores; "
                "--area 10000 for the full area)"
            )
        )
        r = time_area(
            device,
            area=args.area,
            tile=args.tile,
            halo=args.halo,
            preset=args.area_preset,
            bf16=not fp,
            seed=args.seed,
        )
        print(
            f"area: {r['pixels']:,.0f} pixels in {r['windows']:.0f} windows, "
            f"{r['seconds']:.2f} s ({r['read_seconds']:.2f} s of it making the inputs), "
            f"{r['pixels'] / r['seconds'] / 1e6:.3f} Mpixel/s"
        )
        mem = f"area memory: peak RSS increase {_mib(r['rss_increase'])}"
        if "cuda_peak" in r:
            mem += f", CUDA peak allocated {_mib(r['cuda_peak'])}"
        print(
            f"{mem}; output memory map {_mib(r['output_bytes'])} on disk (its dirty pages "
            f"count in RSS until written back); float32 inputs of the whole area at once would take "
            f"{_mib(r['inputs_bytes'])} (+ masks)"
        )
        print(f"area check: {r['finite_share']:.1%} of sampled output pixels finite")
        if device.type == "cuda":
            torch.cuda.empty_cache()

    if not args.skip_train:
        print(
            f"\n[train] tiles {args.size} x {args.size} px, batch {args.batch_size}, labels "
            f"{args.labels} ({'~1 % of pixels' if args.labels == 'stations' else 'every pixel'}), "
            f"masked MSE + AdamW, {args.warmup} warm-up + {args.steps} timed steps"
        )
        for preset in presets:
            results: dict[str, dict[str, float]] = {}
            for label, kw in settings(device, args.compile):
                results[label] = time_training(
                    preset,
                    device,
                    size=args.size,
                    batch=args.batch_size,
                    labels=args.labels,
                    steps=args.steps,
                    warmup=args.warmup,
                    seed=args.seed,
                    **kw,
                )
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            for label, r in results.items():
                ratio = r["tiles_per_s"] / results["fp32"]["tiles_per_s"]
                versus = "" if label == "fp32" else f"  {ratio:.2f}x fp32"
                print(
                    f"train {preset:6s} {label:17s} {r['tiles_per_s']:10.1f} tiles/s  "
                    f"{r['pixels_per_s'] / 1e6:9.3f} Mpixels/s ({r['pixels_per_s']:,.0f} "
                    f"pixels/s)  {r['step_s'] * 1e3:9.1f} ms/step{versus}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
