"""Figures: opaque background, units on axes, the simulated-data label."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import plots


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in ("RF", "net"):
        for split in ("random", "spatial"):
            obs = rng.gamma(2, 3, 50)
            rows.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "split": split,
                        "observed": obs,
                        "predicted": obs + rng.normal(0, 1, 50),
                    }
                )
            )
    return pd.concat(rows)


def test_observed_vs_predicted_has_units_and_simulated_label():
    plots.use_style()
    fig = plots.observed_vs_predicted(_predictions(), units="g/kg", simulated=True)
    texts = _texts(fig)
    assert "SIMULATED DATA" in texts
    assert any("observed (g/kg)" in t for t in texts)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert len(fig.axes) == 4


def test_real_data_figures_carry_no_simulated_label():
    fig = plots.observed_vs_predicted(_predictions(), units="%", simulated=False)
    assert "SIMULATED DATA" not in _texts(fig)


def test_maps_have_colour_bars_and_scale_bar():
    y = np.arange(40) * 10.0
    x = np.arange(50) * 10.0
    da = xr.DataArray(
        np.random.default_rng(1).random((40, 50)), coords={"y": y, "x": x}, dims=("y", "x")
    )
    fig = plots.maps({"truth": da, "error": da - 0.5}, units="g/kg", diverging=("error",))
    texts = _texts(fig)
    assert sum(1 for ax in fig.axes if ax.get_ylabel() == "g/kg") == 2  # one colour bar per panel
    assert any(t.endswith(" m") or t.endswith(" km") for t in texts)  # scale bar label
    assert fig.axes[0].get_xlabel() == "easting (m)"


def test_group_bars_and_attention_heatmap():
    table = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "group": ["terrain", "spectral"] * 2,
            "share": [60.0, 40.0, 30.0, 70.0],
        }
    )
    fig = plots.group_bars(table, value="share", label="share (%)")
    assert fig.axes[0].get_xlabel() == "share (%)"
    weights = pd.DataFrame(np.full((2, 3), 1 / 3), index=["q0", "q1"], columns=["B2", "B3", "NDVI"])
    fig = plots.attention_heatmap(weights)
    assert "attention weight (unitless)" in [ax.get_ylabel() for ax in fig.axes]


def test_transfer_figures_label_axes_with_units():
    rng = np.random.default_rng(2)
    wl = np.arange(400.0, 2451.0, 10.0)
    fig = plots.band_importance(
        {"teacher": wl, "student": wl[::2]},
        {"teacher": rng.random(wl.size), "student": rng.random(wl[::2].size)},
        mean_spectrum=rng.random(wl.size),
        spectrum_wavelength_nm=wl,
        simulated=True,
    )
    texts = _texts(fig)
    assert "SIMULATED DATA" in texts and "clay Al-OH" in texts
    assert fig.axes[0].get_xlabel() == "wavelength (nm)"
    fig = plots.domain_pca({"lab": rng.normal(size=(30, 4)), "sat": rng.normal(1, 1, (20, 4))})
    assert fig.axes[0].get_xlabel().startswith("PC 1 (")
    preds = _predictions().assign(group=lambda d: np.where(d.index % 2 == 0, "a", "b"))
    fig = plots.error_by_group(preds, units="dS/m")
    assert fig.axes[0].get_xlabel() == "RMSE on the held-out group (dS/m)"
