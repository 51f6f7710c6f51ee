"""The large-map benchmark runs at a tiny size and prints its figures, labelled simulated."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_large_map as bench

from soilbook import lazymaps


@pytest.mark.parametrize("estimator", ["ridge", "forest"])
def test_tiny_run_prints_speed_memory_and_the_bound(capsys, estimator) -> None:
    argv = ["--size", "200", "--chunk", "64", "--bands", "3", "--train-pixels", "500"]
    assert bench.main([*argv, "--estimator", estimator, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED scene 200 x 200 px x 3 bands, chunk 64 (4 x 4 chunks)" in out
    assert re.search(r"-> [\d,]+ pixels/s", out)
    assert "peak RSS increase over the baseline" in out
    # (64 + 0)^2 x (3 + 1) x 8 B = 128 KiB: rounds to 0 MiB per thread, x 1 thread
    assert "x 8 B = 0 MiB per thread x 1 threads" in out
    assert "100.0% of sampled map pixels finite" in out
    assert "on SIMULATED data" in out


def test_training_windows_stay_inside_one_chunk() -> None:
    scene = lazymaps.lazy_scene(150, 100, 2, chunk=40, seed=0)
    rng = np.random.default_rng(0)
    for length in (150, 100, 40, 20):
        for _ in range(50):
            start = bench._inside_a_chunk(rng, length, 40, min(32, length))
            stop = start + min(32, length)
            assert 0 <= start and stop <= length
            assert start // 40 == (stop - 1) // 40  # one chunk
    X = bench.training_pixels(scene, 100, 40, seed=1)
    assert X.shape == (100, 2) and np.isfinite(X).all()
