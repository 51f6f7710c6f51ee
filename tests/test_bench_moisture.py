"""The chapter-4 benchmark runs (tiny, CPU) and prints its throughput and area figures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_moisture as bench

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_run_prints_training_throughput_and_area_figures(capsys) -> None:
    argv = ["--tiny", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "2"]
    assert bench.main([*argv, "--area", "96", "--tile", "64", "--halo", "8"]) == 0
    out = capsys.readouterr().out
    train = [line for line in out.splitlines() if line.startswith("train tiny")]
    assert len(train) == 1 and "tiles/s" in train[0] and "pixels/s" in train[0]  # fp32 on CPU
    assert "9,216 pixels in 4 windows" in out and "Mpixel/s" in out
    assert "peak RSS increase" in out and "inputs of the whole area at once" in out
    assert "100.0% of sampled output pixels finite" in out


def test_the_reader_is_a_function_of_global_pixel_positions() -> None:
    read = bench.synthetic_reader(seed=3)
    x, v = read(slice(10, 50), slice(20, 60))
    x2, v2 = read(slice(30, 70), slice(40, 80))  # overlaps rows 30..49, cols 40..59
    assert x.shape == v.shape == (sum(bench.CHANNELS.values()), 40, 40) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 20:, 20:], x2[:, :20, :20])
    np.testing.assert_array_equal(v[:, 20:, 20:], v2[:, :20, :20])
    x, v = read(slice(0, 400), slice(0, 400))
    optical = dict(bench._offsets())[bench.CLOUDY]
    assert v[:3].all() and 0.05 < 1 - v[optical].mean() < 0.5  # clouds in the optical only


def test_the_window_predictor_writes_nan_where_nothing_is_valid() -> None:
    import torch

    from soilbook.models.convnext_unet import ConvNeXtUNet

    net = ConvNeXtUNet(bench.CHANNELS, preset="tiny")
    predict = bench.network_predictor(net, torch.device("cpu"), bf16=False, channels_last=False)
    x, v = bench.synthetic_reader()(slice(0, 32), slice(0, 64))
    v[:, :, :8] = False  # no modality valid in the first 8 columns
    pred = predict(x[None], v[None])
    assert pred.shape == (1, 32, 64) and pred.dtype == np.float32
    assert np.isnan(pred[..., :8]).all() and np.isfinite(pred[..., 8:]).all()
