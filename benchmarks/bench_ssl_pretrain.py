"""Benchmark: SSL-SoilNet contrastive pre-training throughput and model FLOPs utilisation.

Times the cross-modal pre-training step (image ViT + climate Transformer → two 128-d
embeddings → InfoNCE, backward, optimiser step) of the **full** configuration — ViT-B on a
14 × 64 × 64 patch (patch 8, width 768, 12 layers, 12 heads) and the climate Transformer on
61 months × 13 variables (width 512, 6 layers, 8 heads) — in two settings measured in the same
run on the same device:

``soilbook``
    bfloat16 autocast on CUDA, a large batch (``--batch-size``, default 256), AdamW, the inputs
    already on the device (the chapter keeps a pre-training set that fits on the GPU there),
    optionally ``torch.compile`` (``--compile``);
``official``
    the official code's settings: float32, batch 32, eager, Adam, each batch copied from host
    memory to the device.

It prints samples per second of each, their ratio, and the model FLOPs utilisation (MFU):
achieved model FLOP/s over the device's peak dense bfloat16 rate. Model FLOPs per sample are
counted from the architecture — :class:`torch.utils.flop_counter.FlopCounterMode` over one
forward and backward pass (matrix products and attention; elementwise work is not counted, as
usual for MFU) — so they do not depend on how fast the step runs. The peak comes from
``--peak-tflops`` or, for known GPUs, :data:`PEAK_BF16_TFLOPS` (dense, no sparsity).

Inputs are random tensors of the right shapes: speed does not depend on the values (the data
are simulated in any case). Run on a GPU: ``python benchmarks/bench_ssl_pretrain.py``; a quick
CPU smoke run with a tiny configuration: ``python benchmarks/bench_ssl_pretrain.py --tiny``.
Needs only torch and numpy (and soilbook from the checkout).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common beside it
from _common import seconds_per_step

#: Dense bfloat16 peak (TFLOP/s) of GPUs the book is run on, from their vendors' data sheets
#: (SXM parts; without structured sparsity). Matched against the CUDA device name.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
}


@dataclass(frozen=True)
class Config:
    """The two encoders' sizes and the input shapes."""

    channels: int = 14
    size: int = 64
    patch: int = 8
    image_width: int = 768
    image_depth: int = 12
    image_heads: int = 12
    months: int = 61
    variables: int = 13
    climate_width: int = 512
    climate_depth: int = 6
    climate_heads: int = 8
    embed_dim: int = 128


FULL = Config()
TINY = Config(
    size=16,
    image_width=32,
    image_depth=1,
    image_heads=2,
    climate_width=16,
    climate_depth=1,
    climate_heads=2,
)


def build(config: Config) -> Any:
    """The pre-training network of :mod:`soilbook.models.ssl_soilnet` at ``config``."""
    from soilbook.models.ssl_soilnet import ClimateTransformer, PatchViT, SSLPretrainNet

    image = PatchViT(
        config.channels,
        config.size,
        patch_size=config.patch,
        width=config.image_width,
        depth=config.image_depth,
        heads=config.image_heads,
        embed_dim=config.embed_dim,
    )
    climate = ClimateTransformer(
        config.variables,
        config.months,
        width=config.climate_width,
        depth=config.climate_depth,
        heads=config.climate_heads,
        embed_dim=config.embed_dim,
    )
    return SSLPretrainNet(image, climate)


def inputs(config: Config, n: int, device: Any, seed: int = 0) -> tuple[Any, Any]:
    """Random standardised inputs: patches (n, C, S, S) and climate (n, months, variables)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    patches = torch.randn(n, config.channels, config.size, config.size, generator=g)
    climate = torch.randn(n, config.months, config.variables, generator=g)
    return patches.to(device), climate.to(device)


def flops_per_sample(config: Config, batch: int = 2) -> float:
    """Model FLOPs of one training step per sample (forward + backward), counted on the CPU."""
    from torch.utils.flop_counter import FlopCounterMode

    from soilbook.train import info_nce

    net = build(config)
    patches, climate = inputs(config, batch, "cpu")
    counter = FlopCounterMode(display=False)
    with counter:
        za, zb = net(patches, climate)
        info_nce(za, zb, 0.5).backward()
    return counter.get_total_flops() / batch


def time_setting(
    config: Config,
    device: Any,
    *,
    batch: int,
    bf16: bool,
    compile_model: bool,
    on_device: bool,
    optimiser: str,
    steps: int,
    warmup: int,
    seed: int,
) -> dict[str, float]:
    """Seconds per step and samples/s of ``steps`` timed pre-training steps after ``warmup``."""
    import torch

    from soilbook.train import info_nce

    torch.manual_seed(seed)
    net = build(config).to(device).train()
    step_net = torch.compile(net) if compile_model else net
    opt_class = torch.optim.AdamW if optimiser == "adamw" else torch.optim.Adam
    opt = opt_class(net.parameters(), lr=1e-4)
    host = inputs(config, batch, "cpu", seed)
    pinned = tuple(t.pin_memory() for t in host) if device.type == "cuda" else host
    resident = tuple(t.to(device) for t in host)
    use_amp = bf16 and device.type == "cuda"

    def step() -> None:
        patches, climate = (
            resident if on_device else tuple(t.to(device, non_blocking=True) for t in pinned)
        )
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            za, zb = step_net(patches, climate)
            loss = info_nce(za.float(), zb.float(), 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = seconds_per_step(step, steps=steps, warmup=warmup, device=device)
    return {"step_s": seconds, "samples_per_s": batch / seconds, "batch": float(batch)}


def peak_tflops(device: Any, given: float | None) -> float | None:
    """The peak dense bf16 TFLOP/s: ``given``, else the table entry for the GPU's name."""
    if given:
        return float(given)
    if device.type != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="'auto' (default), 'cpu', 'cuda', 'cuda:N'")
    p.add_argument("--batch-size", type=int, default=256, help="soilbook batch (default 256)")
    p.add_argument("--official-batch", type=int, default=32, help="official batch (default 32)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per setting (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--compile", action="store_true", help="torch.compile the soilbook setting")
    p.add_argument("--tiny", action="store_true", help="tiny encoders (a CPU smoke run)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if min(args.batch_size, args.official_batch) < 2 or args.steps < 1 or args.warmup < 0:
        p.error("batch sizes must be >= 2 (contrastive pairs), --steps >= 1, --warmup >= 0")

    import torch

    from soilbook.train import resolve_device

    device = resolve_device(args.device)
    config = TINY if args.tiny else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"bench_ssl_pretrain | torch {torch.__version__} | device {device} ({name})")
    print(
        f"model: ViT {config.image_width}x{config.image_depth} layers/{config.image_heads} heads on "
        f"{config.channels}x{config.size}x{config.size} (patch {config.patch}) + climate "
        f"Transformer {config.climate_width}x{config.climate_depth}/{config.climate_heads} on "
        f"{config.months}x{config.variables}; random inputs"
    )
    flops = flops_per_sample(config)
    print(f"model FLOPs per sample (forward + backward, counted): {flops / 1e9:.4g} GFLOP")
    common = {"steps": args.steps, "warmup": args.warmup, "seed": args.seed}
    ours = time_setting(
        config,
        device,
        batch=args.batch_size,
        bf16=True,
        compile_model=args.compile,
        on_device=True,
        optimiser="adamw",
        **common,
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the first setting's model and optimiser are gone
    official = time_setting(
        config,
        device,
        batch=args.official_batch,
        bf16=False,
        compile_model=False,
        on_device=False,
        optimiser="adam",
        **common,
    )
    peak = peak_tflops(device, args.peak_tflops)
    amp = "bf16 autocast" if device.type == "cuda" else "fp32 (no autocast on CPU)"
    for label, r, how in (
        ("soilbook", ours, f"{amp}, batch {args.batch_size}, inputs on device"
         + (", compiled" if args.compile else ", eager")),
        ("official", official, f"fp32, batch {args.official_batch}, eager, host-to-device copies"),
    ):  # fmt: skip
        achieved = r["samples_per_s"] * flops / 1e12
        mfu = f"{achieved / peak:.1%} of {peak:g} TFLOP/s" if peak else "peak unknown"
        print(
            f"{label:9s} {r['samples_per_s']:10.1f} samples/s  {r['step_s'] * 1e3:8.2f} ms/step  "
            f"{achieved:8.4g} model TFLOP/s  MFU {mfu}  ({how})"
        )
    print(f"speed-up soilbook / official: {ours['samples_per_s'] / official['samples_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
