"""The SSL-SoilNet pre-training benchmark runs (tiny, CPU) and prints its figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_ssl_pretrain as bench

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_run_prints_both_settings_and_the_ratio(capsys) -> None:
    argv = ["--tiny", "--device", "cpu", "--steps", "1", "--warmup", "0"]
    assert bench.main([*argv, "--batch-size", "8", "--official-batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "model FLOPs per sample" in out and "speed-up soilbook / official" in out
    assert out.count("samples/s") >= 2 and "peak unknown" in out  # no peak for a CPU


def test_flops_are_counted_from_the_architecture() -> None:
    small = bench.flops_per_sample(bench.TINY)
    wider = bench.flops_per_sample(
        bench.Config(**{**bench.TINY.__dict__, "image_width": 64, "image_heads": 2})
    )
    assert 0 < small < wider  # a wider ViT costs more FLOPs per sample


def test_peak_from_the_table_or_the_argument() -> None:
    import torch

    assert bench.peak_tflops(torch.device("cpu"), None) is None
    assert bench.peak_tflops(torch.device("cpu"), 100.0) == 100.0
    assert bench.PEAK_BF16_TFLOPS["H100"] == 989.0
