"""Same seed on the CPU → identical cross-validated metrics, end to end."""

from __future__ import annotations

import pandas as pd

from soilbook import baselines, evaluate
from soilbook.data import sources
from soilbook.models.ss_soilnet import SSSoilNetRegressor


def _run(seed: int) -> pd.DataFrame:
    data = sources.load("simulated", seed=seed, scene_size=48, n_samples=90, n_dates=2, window=7)
    models = {
        "RF": baselines.RandomForestBaseline(n_estimators=20, seed=seed),
        "net": SSSoilNetRegressor(
            width=8, heads=2, epochs=3, batch_size=32, device="cpu", seed=seed, progress=False
        ),
    }
    splits = evaluate.make_splits(data.samples, kinds=("random", "spatial"), n_splits=3, seed=seed)
    return evaluate.cross_validate(models, data.samples, splits, progress=False).scores


def test_same_seed_gives_identical_metrics():
    first, second = _run(0), _run(0)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_another_seed_gives_other_metrics():
    first, other = _run(0), _run(1)
    assert not first["value"].equals(other["value"])
