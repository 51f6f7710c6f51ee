"""Figures: opaque background, units on axes, the simulated-data label, honest scales."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_hex

from soilbook import plots
from soilbook.errors import ParameterError
from soilbook.train import History


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _assert_stamp_clear(fig) -> None:
    """The simulated label is inside the figure and covers no axes, colour bar or title."""
    r = _renderer(fig)
    stamps = [t for t in fig.texts if t.get_text() == plots.SIMULATED_LABEL]
    assert len(stamps) == 1
    box = stamps[0].get_window_extent(r)
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 + 0.5
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1 + 0.5
    for ax in fig.axes:
        if ax.get_visible():
            assert not box.overlaps(ax.get_tightbbox(r)), ax
    for t in fig.texts:
        if t is not stamps[0] and t.get_text():
            assert not box.overlaps(t.get_window_extent(r)), t.get_text()


def _assert_texts_inside(fig) -> None:
    """Titles (figure and axes) lie inside the figure: nothing is cut off."""
    r = _renderer(fig)
    titles = list(fig.texts) + [a.title for a in fig.axes] + [a._left_title for a in fig.axes]
    for t in titles:
        if t.get_text() and t.get_visible():
            b = t.get_window_extent(r)
            assert b.x0 >= fig.bbox.x0 - 1 and b.x1 <= fig.bbox.x1 + 1, t.get_text()
            assert b.y1 <= fig.bbox.y1 + 1, t.get_text()


def _predictions(seeds=(0,)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in ("RF", "net"):
        for split in ("random", "spatial"):
            for seed in seeds:
                obs = rng.gamma(2, 3, 50)
                rows.append(
                    pd.DataFrame(
                        {
                            "model": model,
                            "split": split,
                            "seed": seed,
                            "observed": obs,
                            "predicted": obs + rng.normal(0, 1, 50),
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


# -- observed vs predicted -----------------------------------------------------------------------


def test_observed_vs_predicted_has_units_and_simulated_label():
    plots.use_style()
    fig = plots.observed_vs_predicted(_predictions(), units="g/kg", simulated=True)
    texts = _texts(fig)
    assert "SIMULATED DATA" in texts
    assert any("observed (g/kg)" in t for t in texts)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert len(fig.axes) == 4
    _assert_stamp_clear(fig)
    _assert_texts_inside(fig)


def test_real_data_figures_carry_no_simulated_label():
    fig = plots.observed_vs_predicted(_predictions(), units="%", simulated=False)
    assert "SIMULATED DATA" not in _texts(fig)


def test_one_blow_up_does_not_squash_the_other_panels():
    preds = _predictions()
    blown = preds.index[(preds["model"] == "net") & (preds["split"] == "spatial")][:2]
    preds.loc[blown, "predicted"] = [200.0, -90.0]
    fig = plots.observed_vs_predicted(preds, units="dS/m")
    ok_ax = fig.axes[0]  # RF, random
    assert ok_ax.get_ylim()[1] < 60 and ok_ax.get_xlim() == ok_ax.get_ylim()
    blown_ax = fig.axes[3]  # net, spatial
    assert blown_ax.get_ylim()[1] < 100 and blown_ax.get_ylim()[0] > -50
    panel = [t.get_text() for t in blown_ax.texts]
    assert any(t.startswith("2 beyond the axes") for t in panel)
    assert not any("beyond" in t.get_text() for t in ok_ax.texts)
    lo, hi = plots.robust_limits(np.arange(11.0), np.r_[np.arange(10.0), 1e4])
    assert lo < 0 and 10 < hi < 16  # all observed inside, the blow-up outside


def test_observed_vs_predicted_shows_one_seed_and_says_so():
    fig = plots.observed_vs_predicted(_predictions(seeds=(0, 1, 2)), units="g/kg")
    assert "(seed 0 of 3)" in fig.axes[0].get_title()
    n_points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert n_points == 50


# -- maps and the label --------------------------------------------------------------------------


def _field(seed=1) -> xr.DataArray:
    y = np.arange(40) * 10.0
    x = np.arange(50) * 10.0
    data = np.random.default_rng(seed).random((40, 50))
    return xr.DataArray(data, coords={"y": y, "x": x}, dims=("y", "x"))


def test_maps_have_colour_bars_and_scale_bar():
    da = _field()
    fig = plots.maps({"truth": da, "error": da - 0.5}, units="g/kg", diverging=("error",))
    texts = _texts(fig)
    assert sum(1 for ax in fig.axes if ax.get_ylabel() == "g/kg") == 2  # one colour bar per panel
    assert any(t.endswith(" m") or t.endswith(" km") for t in texts)  # scale bar label
    assert fig.axes[0].get_xlabel() == "easting (m)"


@pytest.mark.parametrize("n", [1, 3])
def test_simulated_label_clears_colour_bars_and_titles(n):
    panels = {f"panel {k}": _field(k) for k in range(n)}
    fig = plots.maps(panels, units="g/kg", simulated=True, suptitle="a map title")
    _assert_stamp_clear(fig)
    plots.label_simulated(fig, True)  # a second call adds nothing
    assert _texts(fig).count(plots.SIMULATED_LABEL) == 1


def test_label_simulated_on_a_hand_made_figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("a title that reaches the right edge of this small figure")
    ax.plot([0, 1], [0, 1])
    plots.finish_figure(fig, True)
    _assert_stamp_clear(fig)
    _assert_texts_inside(fig)


def test_long_titles_wrap_and_paths_are_stripped():
    assert plots.strip_paths("saved to /srv/project/_build/out/fig.png") == "saved to fig.png"
    assert plots.strip_paths("see ../_build/outputs/01/metrics.json") == "see metrics.json"
    assert plots.strip_paths("EC (dS/m), 1/n, g/kg") == "EC (dS/m), 1/n, g/kg"
    fig = plots.spectra(
        np.arange(400.0, 500.0, 10.0),
        {"a": np.ones(10)},
        title="a very long title " * 8 + "from /home/someone/project/data/file.csv",
    )
    texts = " ".join(_texts(fig))
    assert "/home/" not in texts and "file.csv" in texts
    assert "\n" in fig.axes[0].get_title()
    _assert_texts_inside(fig)


# -- bars ----------------------------------------------------------------------------------------


def test_group_bars_and_error_by_group():
    table = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "group": ["terrain", "spectral"] * 2,
            "share": [60.0, 40.0, 30.0, 70.0],
        }
    )
    fig = plots.group_bars(table, value="share", label="share (%)", simulated=True)
    assert fig.axes[0].get_xlabel() == "share (%)"
    _assert_stamp_clear(fig)
    preds = _predictions().assign(group=lambda d: np.where(d.index % 2 == 0, "a", "b"))
    fig = plots.error_by_group(preds, units="dS/m")
    assert fig.axes[0].get_xlabel() == "RMSE on the held-out group (dS/m)"


def test_permutation_bars_show_spread_zero_line_and_negative_note():
    perm = pd.DataFrame(
        {
            "model": ["RF", "RF", "net", "net"],
            "group": ["terrain", "spectral"] * 2,
            "rmse_increase": [0.4, -0.03, 0.2, 0.05],
            "rmse_increase_sd": [0.1, 0.02, 0.05, 0.04],
            "n_repeats": 5,
        }
    )
    fig = plots.permutation_bars(
        perm,
        "rmse_increase",
        "rmse_increase_sd",
        label="RMSE increase when shuffled (g/kg)",
        simulated=True,
    )
    ax = fig.axes[0]
    xlabel = ax.get_xlabel()
    assert xlabel.startswith("RMSE increase when shuffled (g/kg)")
    assert "mean ± sd over 5 repeats" in xlabel and "no usable signal" in xlabel
    assert any(np.allclose(line.get_xdata(), 0) for line in ax.lines)  # the zero line
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bars) == 2 and all(c.errorbar is not None for c in bars)
    assert sum(1 for p in ax.patches if p.get_hatch()) == 1  # the one negative bar
    _assert_stamp_clear(fig)
    with pytest.raises(ParameterError, match="no column"):
        plots.permutation_bars(perm, "importance")


# -- attention -----------------------------------------------------------------------------------


def test_attention_heatmap_is_centred_on_the_uniform_weight():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.full(19, 3000.0), 3)
    weights = pd.DataFrame(w, index=["q0", "q1", "q2"], columns=[f"B{k}" for k in range(19)])
    fig = plots.attention_heatmap(weights, simulated=True, title="cross-attention")
    image = fig.axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), w - 1 / 19)
    vmin, vmax = image.get_clim()
    assert vmin == pytest.approx(-vmax) and vmax < 0.01
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("attention − uniform" in t and "1/19" in t for t in labels)
    assert "uniform 0.053" in fig.axes[0].get_xlabel()
    _assert_stamp_clear(fig)


def test_spatial_attention_maps_centre_and_clear_the_label():
    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.full(9, 500.0), 2).reshape(2, 3, 3)
    att = xr.DataArray(w, dims=("query", "y", "x"), coords={"y": [-1, 0, 1], "x": [-1, 0, 1]})
    fig = plots.spatial_attention_maps(att, simulated=True)
    image = fig.axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), w[0] - 1 / 9)
    assert any("uniform = 1/9" in ax.get_ylabel() for ax in fig.axes)
    _assert_stamp_clear(fig)


# -- spectra -------------------------------------------------------------------------------------


def _satellite_grid() -> np.ndarray:
    return np.r_[np.arange(420.0, 1340.0, 10.0), np.arange(1460.0, 2450.0, 10.0)]


def test_band_importance_breaks_at_removed_bands_and_keeps_units():
    rng = np.random.default_rng(2)
    lab = np.arange(400.0, 2451.0, 10.0)
    sat = _satellite_grid()
    gap_filled = (lab > 1790) & (lab < 1960)
    fig = plots.band_importance(
        {"teacher": lab, "student": sat},
        {"teacher": rng.random(lab.size) * 0.01, "student": rng.random(sat.size) * 3},
        ylabel={"teacher": "mean |IG| (log1p dS/m)", "student": "mean |SHAP| (dS/m)"},
        masks={"teacher": ~gap_filled},
        mean_spectrum=rng.random(lab.size),
        spectrum_wavelength_nm=lab,
        simulated=True,
        title="what drives the predictions",
    )
    texts = _texts(fig)
    assert "SIMULATED DATA" in texts and "clay Al-OH" in texts
    assert not any("scaled" in t or "relative" in t for t in texts)
    strip, teacher, student, spectrum = fig.axes
    assert spectrum.get_xlabel().startswith("wavelength (nm)")
    assert teacher.get_ylabel().replace("\n", " ") == "mean |IG| (log1p dS/m)"
    assert student.get_ylabel().replace("\n", " ") == "mean |SHAP| (dS/m)"
    (t_line,) = [ln for ln in teacher.lines if ln.get_linestyle() == "-"]
    (s_line,) = [ln for ln in student.lines if ln.get_linestyle() == "-"]
    assert np.isnan(t_line.get_ydata()).sum() == gap_filled.sum()  # masked bands blank
    s_x, s_y = s_line.get_xdata(), s_line.get_ydata()
    assert np.isnan(s_y).sum() == 1 and 1340 < s_x[np.isnan(s_y)][0] < 1460  # the step gap
    assert np.nanmax(s_y) > 1.0  # own units, not scaled to 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    r = _renderer(fig)
    title = fig.texts[0]
    assert title.get_text() == "what drives the predictions"
    feature_boxes = [t.get_window_extent(r) for t in strip.texts]
    for box in feature_boxes:
        assert not box.overlaps(title.get_window_extent(r))
        assert not any(box.overlaps(ax.get_window_extent(r)) for ax in (teacher, student))
    _assert_stamp_clear(fig)


def test_band_importance_reads_a_gap_filled_coordinate():
    lab = np.arange(400.0, 2451.0, 10.0)
    filled = (lab > 1350) & (lab < 1460)
    curve = xr.DataArray(np.ones(lab.size), dims="band", coords={"gap_filled": ("band", filled)})
    fig = plots.band_importance(lab, {"teacher": curve})
    line = next(ln for ln in fig.axes[1].lines if ln.get_linestyle() == "-")
    assert np.isnan(line.get_ydata()).sum() == filled.sum()


def test_spectra_still_draw_quantile_bands():
    wl = np.arange(400.0, 2451.0, 10.0)
    fig = plots.spectra(wl, {"a": np.random.default_rng(0).random((5, wl.size))}, simulated=True)
    assert fig.axes[0].get_xlabel() == "wavelength (nm)"
    _assert_stamp_clear(fig)


# -- domain gap ----------------------------------------------------------------------------------


def test_domain_pca_single_panel_still_works():
    rng = np.random.default_rng(2)
    fig = plots.domain_pca({"lab": rng.normal(size=(30, 4)), "sat": rng.normal(1, 1, (20, 4))})
    assert fig.axes[0].get_xlabel().startswith("PC 1 (")


def test_domain_pca_panels_are_titled_as_given_and_cannot_mix_networks():
    rng = np.random.default_rng(3)
    lab = rng.normal(size=(30, 6))
    before = {"lab": ("DeepSalt", lab), "satellite": ("DeepSalt", rng.normal(2, 1, (20, 6)))}
    after = {"lab": ("DeepSalt", lab), "satellite": ("DeepSalt", rng.normal(0.2, 1, (20, 6)))}
    fig = plots.domain_pca(
        {"before adaptation": before, "after adaptation": after},
        simulated=True,
        title="domain gap",
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("before adaptation") and "features of DeepSalt" in titles[0]
    assert titles[1].startswith("after adaptation")
    colours = [to_hex(ax.collections[1].get_facecolor()[0]) for ax in fig.axes]
    assert colours[0] == colours[1]  # the same label keeps its colour
    _assert_stamp_clear(fig)
    mixed = {"lab": ("DeepSalt", lab), "satellite": ("satellite-only net", lab)}
    with pytest.raises(ParameterError, match="mixes features of networks"):
        plots.domain_pca({"before": mixed})
    with pytest.raises(ParameterError, match="name all of them"):
        plots.domain_pca({"before": {"lab": ("DeepSalt", lab), "satellite": lab}})
    with pytest.raises(ParameterError, match="feature widths differ"):
        plots.domain_pca({"lab": lab, "satellite": rng.normal(size=(5, 4))})


# -- learning curves -----------------------------------------------------------------------------


def _history(n: int, falling: bool = False) -> History:
    epochs = np.arange(1, n + 1)
    train = 1.0 / epochs + 0.1
    if falling:  # still improving at the end: not converged
        val = 1.2 / epochs + 0.2
    else:  # best at epoch 4, then flat: converged
        val = np.r_[1.2 / epochs[:4] + 0.2, np.full(n - 4, 0.52)]
    return History(
        epoch=list(epochs),
        train_loss=list(train),
        val_loss=list(val),
        best_epoch=int(np.argmin(val)) + 1,
        patience=3,
        max_epochs=n,
    )


def _cv_histories() -> dict:
    out = {}
    for model, stages in (("DeepSalt", ("teacher", "student")), ("net", ("network",))):
        for stage in stages:
            for split in ("random", "region"):
                for fold in (0, 1):
                    falling = model == "net" and split == "region" and fold == 1
                    out[(model, split, 0, fold, stage)] = _history(12, falling)
    return out


def test_learning_curves_one_panel_per_model_stage_and_split():
    hist = _cv_histories()
    assert not hist[("net", "region", 0, 1, "network")].convergence()["converged"]
    assert len(hist) == 12
    assert hist[("net", "region", 0, 0, "network")].convergence()["converged"]
    fig = plots.learning_curves(hist, simulated=True)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6  # (DeepSalt teacher, DeepSalt student, net) × 2 splits
    titles = [ax.get_title() for ax in panels]
    assert "DeepSalt — teacher\nrandom split" in titles and "net\nregion split" in titles
    net_region = panels[titles.index("net\nregion split")]
    assert any("1 NOT converged" in t.get_text() for t in net_region.texts)
    warn = [ln for ln in net_region.lines if to_hex(ln.get_color()) == to_hex(plots.WARN)]
    assert len(warn) == 2  # train + validation of the non-converged run
    best = [ln for ln in net_region.lines if ln.get_marker() == "o"]
    assert sorted(float(b.get_xdata()[0]) for b in best) == [4.0, 12.0]
    ok_panel = panels[titles.index("net\nrandom split")]
    assert not any("NOT" in t.get_text() for t in ok_panel.texts)
    assert ok_panel.get_yscale() == "log"
    assert "SIMULATED DATA" in _texts(fig)
    _assert_stamp_clear(fig)


def test_learning_curves_accept_labels_plain_dicts_and_a_cv_result():
    fig = plots.learning_curves({"net / spatial": _history(8)})
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["net / spatial"]
    assert "SIMULATED DATA" not in _texts(fig)
    plain = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7]}
    fig = plots.learning_curves({("m", "random", 0, 0, "network"): plain})
    assert any("convergence unknown" in t.get_text() for t in fig.axes[0].texts)
    row = {"model": "m", "split": "random", "seed": 0, "fold": 0, "stage": "network"}
    table = pd.DataFrame([{**row, "converged": False, "best_epoch": 2}])

    class Result:  # the two attributes of CVResult the plot reads
        def __init__(self):
            self.histories = {("m", "random", 0, 0, "network"): plain}
            self.convergence = table

    fig = plots.learning_curves(Result(), split="random", simulated=True)
    assert any("1 NOT converged" in t.get_text() for t in fig.axes[0].texts)
    with pytest.raises(ParameterError, match="no training history"):
        plots.learning_curves(Result(), split="spatial")


# -- tables --------------------------------------------------------------------------------------


def test_table_labels_work_for_any_table():
    summary = pd.DataFrame({"rmse": [1.23456, 2.0]}, index=["RF", "net"])
    out = plots.metric_table_style(summary, simulated=True)
    assert list(out.columns) == ["data", "rmse"] and set(out["data"]) == {"simulated"}
    assert list(plots.metric_table_style(out, simulated=False)["data"]) == ["real", "real"]
    series = plots.metric_table_style(pd.Series([0.5], index=["x"], name="share"), simulated=True)
    assert list(series.columns) == ["data", "share"]
    wide = pd.DataFrame(
        [[1.0, 2.0]], columns=pd.MultiIndex.from_tuples([("r2", "mean"), ("r2", "sd")])
    )
    assert plots.metric_table_style(wide, simulated=True).columns[0] == ("data", "")
    claims = pd.DataFrame({"claim": ["multimodal input beats spectral-only " * 4], "x": [1.0]})
    html = plots.table_style(claims, simulated=True, caption="claims check").to_html()
    assert "SIMULATED data — claims check" in html
    assert "multimodal input beats spectral-only " * 4 in html  # not truncated
    real = plots.table_style(summary, simulated=False).to_html()
    assert "SIMULATED" not in real and "1.235" in real
    with pytest.raises(ParameterError):
        plots.metric_table_style([1, 2], simulated=True)


def test_variograms_panels_with_fit_and_block_line():
    from soilbook.variogram import empirical_variogram, fit_variogram

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 2000, 200), rng.uniform(0, 2000, 200)
    z = np.sin(x / 300) + rng.normal(0, 0.1, 200)
    emp = empirical_variogram(x, y, z)
    fig = plots.variograms(
        {"target": (emp, fit_variogram(emp)), "residual": (emp, None)},
        block_side_m=400,
        units="g/kg",
        simulated=True,
    )
    assert len(fig.axes) == 2
    assert any("400 m" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    plt.close(fig)
