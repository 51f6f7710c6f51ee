"""Empirical variograms against brute force, model fits with a known range, the block rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist

from soilbook import variogram as v
from soilbook.errors import ParameterError


def _brute(x, y, z, n_lags, max_lag):
    d = pdist(np.column_stack([x, y]))
    sq = pdist(z[:, None], "sqeuclidean")
    keep = d <= max_lag
    k = np.minimum((d[keep] / (max_lag / n_lags)).astype(int), n_lags - 1)
    n = np.bincount(k, minlength=n_lags)
    g = np.bincount(k, weights=sq[keep], minlength=n_lags) / (2 * np.maximum(n, 1))
    return n, g


def test_empirical_matches_brute_force_in_chunks(monkeypatch):
    rng = np.random.default_rng(1)
    x, y, z = rng.uniform(0, 500, 80), rng.uniform(0, 300, 80), rng.normal(size=80)
    z[5] = np.nan  # ignored
    monkeypatch.setattr(v, "_CHUNK_BYTES", 2000)  # several rows per chunk, many chunks
    e = v.empirical_variogram(x, y, z, n_lags=8, max_lag_m=250.0)
    ok = np.isfinite(z)
    n, g = _brute(x[ok], y[ok], z[ok], 8, 250.0)
    assert list(e.columns) == ["lag_m", "mean_distance_m", "semivariance", "n_pairs"]
    np.testing.assert_array_equal(e["n_pairs"], n[n > 0])
    np.testing.assert_allclose(e["semivariance"], g[n > 0], rtol=1e-12)
    np.testing.assert_allclose(e["lag_m"], ((np.arange(8) + 0.5) * 250 / 8)[n > 0])
    assert e.attrs["n_points"] == 79 and e.attrs["max_lag_m"] == 250.0
    # default max lag: half the bounding-box diagonal
    d = v.empirical_variogram(x, y, z)
    assert d.attrs["max_lag_m"] == pytest.approx(0.5 * np.hypot(np.ptp(x), np.ptp(y)))


@pytest.mark.parametrize("model", ["spherical", "exponential"])
def test_fit_recovers_noise_free_model(model):
    h = np.linspace(20, 1000, 25)
    g = v.variogram_model(h, model, 0.2, 1.0, 250.0)
    emp = pd.DataFrame({"mean_distance_m": h, "semivariance": g, "n_pairs": np.full(25, 100)})
    fit = v.fit_variogram(emp, model)
    assert fit.nugget == pytest.approx(0.2, abs=1e-3)
    assert fit.partial_sill == pytest.approx(1.0, rel=1e-3)
    assert fit.range_m == pytest.approx(250.0, rel=1e-3)
    assert fit.sill == pytest.approx(1.2, rel=1e-3)
    assert fit.effective_range_m == pytest.approx(
        250.0 if model == "spherical" else 750.0, rel=1e-3
    )
    assert set(fit.to_dict()) >= {"model", "nugget", "sill", "range_m", "effective_range_m"}


def test_known_range_is_recovered_from_a_simulated_field():
    """A Gaussian field with exponential covariance (range parameter 100 m) plus nugget 0.2."""
    rng = np.random.default_rng(0)
    n = 600
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 2000, n)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    chol = np.linalg.cholesky(np.exp(-d / 100.0) + 1e-8 * np.eye(n))
    z = chol @ rng.standard_normal(n) + rng.normal(0, np.sqrt(0.2), n)
    emp = v.empirical_variogram(x, y, z, n_lags=20, max_lag_m=1000.0)
    fit = v.fit_variogram(emp, "exponential")
    assert 70 < fit.range_m < 140
    assert 0.7 < fit.sill < 1.6
    # true model: share(h) = (0.2 + 1 - exp(-h/100)) / 1.2 >= 0.85 from h = 171 m -> 200 m
    assert v.block_side_from_variogram(fit) in (150.0, 200.0, 250.0)


def test_block_rule():
    fit = v.VariogramFit("spherical", 0.0, 1.0, 400.0, 100, 1000.0)
    # 1.5 r - 0.5 r^3 = 0.85 at r = 0.648, i.e. 259 m: the smallest candidate above is 300 m
    assert v.block_side_from_variogram(fit, candidates=(100, 200, 300, 500)) == 300.0
    assert v.block_side_from_variogram(fit) == 300.0  # soilbook.geo.BLOCK_SIDES_M
    assert v.block_side_from_variogram(fit, sill_share=0.99, candidates=(500, 100)) == 500.0
    # mostly nugget: the smallest candidate already decorrelates
    nug = v.VariogramFit("exponential", 0.9, 0.1, 300.0, 100, 1000.0)
    assert nug.nugget_share == pytest.approx(0.9)
    assert v.block_side_from_variogram(nug, candidates=(50, 100)) == 50.0
    with pytest.warns(UserWarning, match="reaches only"):
        assert v.block_side_from_variogram(fit, candidates=(50, 100)) == 100.0
    with pytest.raises(ParameterError, match="sill_share"):
        v.block_side_from_variogram(fit, sill_share=1.5)


def test_variogram_input_errors():
    with pytest.raises(ParameterError, match="one x, y"):
        v.empirical_variogram([0, 1], [0, 1, 2], [1, 2, 3])
    with pytest.raises(ParameterError, match="at least 3"):
        v.empirical_variogram([0, 1], [0, 1], [1, 2])
    with pytest.raises(ParameterError, match="n_lags"):
        v.empirical_variogram([0, 1, 2], [0, 1, 2], [1, 2, 3], n_lags=0)
    with pytest.raises(ParameterError, match="max_lag_m"):
        v.empirical_variogram([0, 0, 0], [0, 0, 0], [1, 2, 3])
    emp = pd.DataFrame({"mean_distance_m": [1.0, 2.0, 3.0], "semivariance": [1, 2, 3],
                        "n_pairs": [5, 5, 5]})  # fmt: skip
    with pytest.raises(ParameterError, match="allowed"):
        v.fit_variogram(emp, "gaussian")
    with pytest.raises(ParameterError, match="at least 3"):
        v.fit_variogram(emp.iloc[:2], "spherical")


def test_block_design_takes_the_larger_side_and_respects_the_user():
    from factories import random_sample_set

    from soilbook.variogram import block_design

    rng = np.random.default_rng(0)
    n = 300
    x, y = rng.uniform(0, 3000, n), rng.uniform(0, 3000, n)
    field = np.sin(x / 500.0) + np.cos(y / 500.0)  # structure on a ~1 km scale
    ds = random_sample_set(
        n,
        seed=1,
        dates=["2020-01-01"],
        bands=["B4", "B8"],
        features={"a": "terrain"},
        target=lambda r, refl, cov: field + r.normal(0, 0.1, n),
        groups=[f"g{i % 10}" for i in range(n)],
    )
    z = ds["target"].values
    auto = block_design(x, y, ds, z, seed=0)
    sides = [s for s in (auto.side_target_m, auto.side_residual_m) if s is not None]
    assert sides and auto.block_side_m <= max(sides)
    assert auto.block_side_m >= 100
    assert "larger of the sides" in auto.rule
    assert set(auto.table().columns) >= {"nugget share", "effective range (m)"}
    user = block_design(x, y, ds, z, block_size=250.0)
    assert user.block_side_m == 250.0 and "set by the user" in user.rule
    assert user.to_dict()["block_side_m"] == 250.0
