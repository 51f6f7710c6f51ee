"""Consistent figures: opaque white background, colour-blind-safe colours, units on every axis.

Every function returns the :class:`matplotlib.figure.Figure` it drew, so notebooks can show it and
save it. Pass ``simulated=True`` wherever the data are simulated: the figure then carries a
visible "SIMULATED DATA" label, as the book promises for every result on simulated data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

#: Okabe & Ito's colour-blind-safe palette.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#CC79A7",  # purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",
)
SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=OKABE_ITO),
    "font.size": 9,
    "axes.titlesize": 10,
}


def use_style() -> None:
    """Apply the book's figure style to matplotlib globally (call once per notebook)."""
    mpl.rcParams.update(STYLE)


def label_simulated(fig: Figure, simulated: bool) -> Figure:
    """Stamp ``fig`` with "SIMULATED DATA" in its top-right corner when ``simulated``."""
    if simulated:
        fig.text(
            0.995,
            0.995,
            "SIMULATED DATA",
            ha="right",
            va="top",
            fontsize=8,
            color="#D55E00",
            fontweight="bold",
            bbox={"facecolor": "white", "edgecolor": "#D55E00", "boxstyle": "round,pad=0.2"},
        )
    return fig


def _finish(
    fig: Figure, ax: plt.Axes, title: str | None, simulated: bool, *, legend: bool = False
) -> Figure:
    """The common end of a one-panel figure: its title (if any), legend, layout and label."""
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return label_simulated(fig, simulated)


def _grouped_barh(ax: plt.Axes, wide: pd.DataFrame) -> None:
    """Horizontal bars: one row per index entry of ``wide``, one coloured bar per column."""
    height = 0.8 / max(wide.shape[1], 1)
    for k, model in enumerate(wide.columns):
        ax.barh(
            np.arange(len(wide)) + k * height,
            wide[model],
            height=height,
            color=OKABE_ITO[k % 8],
            label=model,
        )
    ax.set_yticks(np.arange(len(wide)) + 0.4 - height / 2, wide.index)


def _units(units: str) -> str:
    return f" ({units})" if units else ""


def observed_vs_predicted(
    predictions: pd.DataFrame,
    *,
    units: str,
    target_name: str = "target",
    simulated: bool = False,
    models: Sequence[str] | None = None,
) -> Figure:
    """Observed against out-of-fold predicted values, one panel per model (rows) and split (columns).

    ``predictions`` has columns model, split, observed, predicted (as
    :attr:`soilbook.evaluate.CVResult.predictions`).
    """
    models = list(models or predictions["model"].unique())
    splits = list(predictions["split"].unique())
    fig, axes = plt.subplots(
        len(splits),
        len(models),
        figsize=(2.3 * len(models) + 0.6, 2.3 * len(splits) + 0.5),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    lo = float(min(predictions["observed"].min(), predictions["predicted"].min()))
    hi = float(max(predictions["observed"].max(), predictions["predicted"].max()))
    for i, split in enumerate(splits):
        for j, model in enumerate(models):
            ax = axes[i, j]
            d = predictions[(predictions["model"] == model) & (predictions["split"] == split)]
            ax.scatter(d["observed"], d["predicted"], s=6, alpha=0.5, color=OKABE_ITO[j % 8], lw=0)
            ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
            if len(d):
                rmse = float(np.sqrt(np.mean((d["predicted"] - d["observed"]) ** 2)))
                ss = float(np.sum((d["observed"] - d["observed"].mean()) ** 2))
                r2 = 1 - float(np.sum((d["predicted"] - d["observed"]) ** 2)) / ss if ss else np.nan
                ax.text(
                    0.03,
                    0.97,
                    f"RMSE {rmse:.2f}\nR² {r2:.2f}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
                )
            if i == 0:
                ax.set_title(model)
            if i == len(splits) - 1:
                ax.set_xlabel(f"observed{_units(units)}")
            if j == 0:
                ax.set_ylabel(f"{split} CV\npredicted{_units(units)}")
    fig.suptitle(f"{target_name}: observed vs out-of-fold predicted", y=1.0)
    fig.tight_layout()
    return label_simulated(fig, simulated)


def learning_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]], *, loss_units: str = "standardised"
) -> Figure:
    """Training and validation loss per epoch for each named run (``{"name": history}``)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for k, (name, hist) in enumerate(histories.items()):
        colour = OKABE_ITO[k % 8]
        ax.plot(hist["train_loss"], color=colour, lw=1, label=f"{name} train")
        if hist.get("val_loss"):
            ax.plot(hist["val_loss"], color=colour, lw=1.5, ls="--", label=f"{name} validation")
    ax.set_xlabel("epoch (count)")
    ax.set_ylabel(f"loss ({loss_units} target, MSE)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def metric_table_style(summary: pd.DataFrame, *, simulated: bool) -> pd.DataFrame:
    """Add a ``data`` column saying "simulated" or "real" so tables carry the label too."""
    out = summary.copy()
    out.insert(0, "data", "simulated" if simulated else "real")
    return out


def _scale_bar(ax: plt.Axes) -> None:
    """Draw a scale bar of a round length in the lower-left corner (axes in metres)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    target = abs(x1 - x0) / 4
    length = 10 ** np.floor(np.log10(target))
    for step in (5, 2, 1):
        if step * length <= target:
            length *= step
            break
    xs = min(x0, x1) + 0.05 * abs(x1 - x0)
    ys = min(y0, y1) + 0.06 * abs(y1 - y0)
    ax.plot([xs, xs + length], [ys, ys], color="black", lw=3, solid_capstyle="butt")
    ax.plot([xs, xs + length], [ys, ys], color="white", lw=1.2, solid_capstyle="butt")
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(
        xs + length / 2,
        ys + 0.02 * abs(y1 - y0),
        label,
        ha="center",
        va="bottom",
        fontsize=7,
        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1},
    )


def maps(
    panels: Mapping[str, xr.DataArray],
    *,
    units: str | Mapping[str, str],
    simulated: bool = False,
    shared_scale: bool = True,
    diverging: Sequence[str] = (),
    suptitle: str | None = None,
) -> Figure:
    """Side-by-side raster maps with colour bars and a scale bar.

    Each panel is a 2-D DataArray with dims (y, x) whose coordinates are in metres. ``units`` is
    one string for all panels or one per panel name. Panels named in ``diverging`` (e.g. an error
    map) use a symmetric diverging colour map centred on zero; the others share one colour scale
    when ``shared_scale``.
    """
    if isinstance(units, str):
        units = dict.fromkeys(panels, units)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    seq = [v for k, v in panels.items() if k not in diverging]
    vmin = min(float(np.nanpercentile(v, 1)) for v in seq) if seq and shared_scale else None
    vmax = max(float(np.nanpercentile(v, 99)) for v in seq) if seq and shared_scale else None
    for ax, (name, da) in zip(axes[0], panels.items(), strict=True):
        if name in diverging:
            lim = float(np.nanpercentile(np.abs(da), 99)) or 1.0
            kw = {"cmap": DIVERGING, "vmin": -lim, "vmax": lim}
        else:
            kw = {"cmap": SEQUENTIAL, "vmin": vmin, "vmax": vmax}
        x = da["x"].values
        y = da["y"].values
        im = ax.imshow(
            da.values,
            extent=(x.min(), x.max(), y.min(), y.max()),
            origin="lower" if y[0] < y[-1] else "upper",
            interpolation="nearest",
            **kw,
        )
        ax.set_title(name)
        ax.set_xlabel("easting (m)")
        ax.set_ylabel("northing (m)")
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(3))
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
        ax.set_aspect("equal")
        ax.grid(False)
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label(units[name])
        _scale_bar(ax)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return label_simulated(fig, simulated)


def spectra(
    wavelength_nm: np.ndarray,
    curves: Mapping[str, np.ndarray],
    *,
    ylabel: str = "reflectance (unitless, 0–1)",
    simulated: bool = False,
    title: str | None = None,
    bands: pd.DataFrame | None = None,
) -> Figure:
    """Spectra against wavelength (nm); 2-D arrays draw their median and a 10–90 % band.

    ``bands`` (optional) has columns centre_nm and name, drawn as ticks (e.g. Sentinel-2 bands).
    """
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, (name, values) in enumerate(curves.items()):
        colour = OKABE_ITO[k % 8]
        values = np.asarray(values, dtype=float)
        if values.ndim == 2:
            q10, q50, q90 = np.nanpercentile(values, [10, 50, 90], axis=0)
            ax.fill_between(wavelength_nm, q10, q90, color=colour, alpha=0.2, lw=0)
            ax.plot(wavelength_nm, q50, color=colour, label=f"{name} (median, 10–90 %)")
        else:
            ax.plot(
                wavelength_nm,
                values,
                color=colour,
                marker="o" if len(values) < 20 else None,
                ms=3,
                label=name,
            )
    if bands is not None:
        for _, row in bands.iterrows():
            ax.axvline(row["centre_nm"], color="0.8", lw=0.6, zorder=0)
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title, simulated, legend=True)


def group_bars(
    table: pd.DataFrame,
    *,
    value: str,
    label: str,
    simulated: bool = False,
    title: str | None = None,
) -> Figure:
    """Horizontal bars of ``value`` per feature group (rows) and model (columns of a pivot).

    ``table`` has columns model, group and ``value``.
    """
    wide = table.pivot_table(index="group", columns="model", values=value, aggfunc="sum").fillna(0)
    wide = wide.loc[wide.sum(axis=1).sort_values().index]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(wide) + 1.2))
    _grouped_barh(ax, wide)
    ax.set_xlabel(label)
    return _finish(fig, ax, title, simulated, legend=True)


def attention_heatmap(
    weights: pd.DataFrame, *, simulated: bool = False, title: str | None = None
) -> Figure:
    """A (query × token) table of mean attention weights (unitless, rows sum to 1) as a heatmap."""
    fig, ax = plt.subplots(
        figsize=(min(0.32 * weights.shape[1] + 2, 11), 0.4 * weights.shape[0] + 1.6)
    )
    im = ax.imshow(weights.values, aspect="auto", cmap="magma")
    ax.set_xticks(range(weights.shape[1]), weights.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(weights.shape[0]), weights.index, fontsize=7)
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("attention weight (unitless)")
    return _finish(fig, ax, title, simulated)


def spatial_attention_maps(attention: xr.DataArray, *, simulated: bool = False) -> Figure:
    """The spatial-attention weights of one sample, one panel per query.

    ``attention`` has dims (query, y, x) with pixel offsets from the sample as coordinates; weights
    are unitless and each query's map sums to 1.
    """
    n = attention.sizes["query"]
    fig, axes = plt.subplots(
        1, n, figsize=(2.4 * n + 1.0, 2.6), squeeze=False, layout="constrained"
    )
    vmin, vmax = float(attention.min()), float(attention.max())
    for q, ax in enumerate(axes[0]):
        da = attention.isel(query=q)
        im = ax.imshow(
            da.values,
            cmap="magma",
            vmin=vmin,
            vmax=vmax,
            origin="upper",
            extent=(
                float(da["x"].min()) - 0.5,
                float(da["x"].max()) + 0.5,
                float(da["y"].max()) + 0.5,
                float(da["y"].min()) - 0.5,
            ),
        )
        ax.set_title(f"query {q}")
        ax.set_xlabel("x offset (px)")
        if q == 0:
            ax.set_ylabel("y offset (px)")
        ax.grid(False)
    cb = fig.colorbar(im, ax=axes[0].tolist())
    cb.set_label("attention weight (unitless)")
    return label_simulated(fig, simulated)


#: Soil absorption features worth marking on spectra (nm, label), after Clark (1999) and
#: Ben-Dor et al. (1999): water/OH near 1400 and 1900 nm, clay (Al-OH) near 2200 nm,
#: carbonate near 2340 nm, and the organic-matter-darkened visible.
ABSORPTION_FEATURES: tuple[tuple[float, str], ...] = (
    (550.0, "organic matter (visible)"),
    (1400.0, "water / OH"),
    (1900.0, "water"),
    (2200.0, "clay Al-OH"),
    (2340.0, "carbonate"),
)


def band_importance(
    wavelength_nm: np.ndarray | Mapping[str, np.ndarray],
    importance: Mapping[str, np.ndarray],
    *,
    mean_spectrum: np.ndarray | None = None,
    spectrum_wavelength_nm: np.ndarray | None = None,
    ylabel: str = "mean |attribution| (target units)",
    simulated: bool = False,
    title: str | None = None,
) -> Figure:
    """Attribution per wavelength for several models, over the mean spectrum (grey, right axis),
    with the known soil absorption features marked.

    ``wavelength_nm`` is one grid for all curves or one per name (lab and satellite grids differ);
    each curve is scaled to its own maximum so that shapes, not magnitudes, are compared.
    """
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for k, (name, values) in enumerate(importance.items()):
        wl = np.asarray(
            wavelength_nm[name] if isinstance(wavelength_nm, Mapping) else wavelength_nm
        )
        values = np.asarray(values, dtype=float)
        ax.plot(
            wl,
            values / (np.nanmax(values) or 1.0),
            color=OKABE_ITO[k % 8],
            lw=1.2,
            label=f"{name} (scaled to its maximum)",
        )
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel(f"{ylabel}, relative")
    if mean_spectrum is not None:
        twin = ax.twinx()
        twin.plot(spectrum_wavelength_nm, mean_spectrum, color="0.6", lw=1, ls=":")
        twin.set_ylabel("mean reflectance (unitless, dotted)")
        twin.grid(False)
    for nm, label in ABSORPTION_FEATURES:
        ax.axvline(nm, color="0.5", lw=0.6, ls="--")
        ax.text(
            nm,
            1.02,
            label,
            rotation=90,
            fontsize=6,
            va="bottom",
            ha="center",
            transform=ax.get_xaxis_transform(),
        )
    return _finish(fig, ax, title, simulated, legend=True)


def domain_pca(
    features: Mapping[str, np.ndarray], *, simulated: bool = False, title: str | None = None
) -> Figure:
    """Two principal components of feature sets from different domains, fitted on all of them.

    ``features`` maps a label (e.g. "lab (teacher)") to an (n, d) array; a small gap between the
    clouds means the domains look alike to the model.
    """
    stacked = np.concatenate([np.asarray(v, dtype=float) for v in features.values()])
    centred = stacked - stacked.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    explained = s**2 / np.sum(s**2)
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    for k, (name, values) in enumerate(features.items()):
        pcs = (np.asarray(values, dtype=float) - stacked.mean(axis=0)) @ vt[:2].T
        ax.scatter(pcs[:, 0], pcs[:, 1], s=6, alpha=0.5, color=OKABE_ITO[k % 8], label=name, lw=0)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of variance; unitless)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} %; unitless)")
    return _finish(fig, ax, title, simulated, legend=True)


def error_by_group(
    predictions: pd.DataFrame, *, units: str, simulated: bool = False, title: str | None = None
) -> Figure:
    """RMSE per held-out group (rows of ``predictions`` with columns model, group, observed,
    predicted), one bar per model."""
    err = predictions.assign(se=(predictions["predicted"] - predictions["observed"]) ** 2)
    table = err.groupby(["group", "model"])["se"].mean().pow(0.5).rename("rmse").reset_index()
    wide = table.pivot(index="group", columns="model", values="rmse")
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(wide) * max(1, wide.shape[1] / 3) + 1.4))
    _grouped_barh(ax, wide)
    ax.set_xlabel(f"RMSE on the held-out group ({units})")
    return _finish(fig, ax, title, simulated, legend=True)
