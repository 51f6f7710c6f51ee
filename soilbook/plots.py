"""Consistent figures: opaque white background, colour-blind-safe colours, units on every axis.

Every function returns the :class:`matplotlib.figure.Figure` it drew, so notebooks can show it and
save it. Pass ``simulated=True`` wherever the data are simulated: the figure then carries a
visible "SIMULATED DATA" label, as the book promises for every result on simulated data, and
:func:`table_style` does the same for tables ("SIMULATED data" caption).

Rules every figure of this module keeps (see :func:`finish_figure`):

* the simulated label never sits on a colour bar, a title or a panel: when it would, the figure's
  content is moved down to make room for it (:func:`label_simulated`);
* titles are wrapped to the width they have, never cut off;
* no file-system path is printed in a figure (a path in a title or label is reduced to its file
  name).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.layout_engine
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from soilbook.errors import ParameterError

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
#: Colour of warnings inside figures (the simulated label, points off the axes, runs that did
#: not converge).
WARN = "#D55E00"

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

#: Text of the label on figures built from simulated data, and the caption prefix of tables.
SIMULATED_LABEL = "SIMULATED DATA"
SIMULATED_CAPTION = "SIMULATED data"
_STAMP_GID = "soilbook-simulated-label"


def use_style() -> None:
    """Apply the book's figure style to matplotlib globally (call once per notebook)."""
    mpl.rcParams.update(STYLE)


# -- the common end of every figure --------------------------------------------------------------


def _renderer(fig: Figure, *, layout: bool = True) -> Any:
    """A renderer for measuring text; ``layout``: after the layout engine has run (a draw)."""
    if layout:
        fig.draw_without_rendering()
    return fig._get_renderer()


_PATH = re.compile(
    r"(?<![\w/])(?:~|\.{1,2})?/(?:[\w.\-]+/)+([\w.\-]*)"  # /a/b/c, ./a/b, ../a/b, ~/a/b
    r"|(?<![\w])[A-Za-z]:\\(?:[^\\\s]+\\)+([^\\\s]*)"  # C:\a\b
)


def strip_paths(text: str) -> str:
    """``text`` with every file-system path (``/a/b/c``, ``../a/b``, ``~/a``, ``C:\\a\\b``)
    reduced to its last part, so that no build or home directory reaches a reader.

    Units such as ``dS/m`` or ``g/kg`` and fractions such as ``1/n`` are left alone.
    """
    return _PATH.sub(lambda m: m.group(1) or m.group(2) or "…", text)


def _wrap_to(artist: Text, allowed_px: float, renderer: Any, *, vertical: bool = False) -> None:
    """Re-wrap ``artist``'s text (at word boundaries) until it fits ``allowed_px``."""
    text = artist.get_text()
    if not text or allowed_px <= 0:
        return
    for _ in range(6):
        box = artist.get_window_extent(renderer)
        size = box.height if vertical else box.width
        if size <= allowed_px:
            return
        lines = artist.get_text().split("\n")
        longest = max(len(line) for line in lines)
        chars = max(8, int(longest * allowed_px / size * 0.95))
        if chars >= longest:
            chars = longest - 1
        if chars < 8:
            return
        wrapped = "\n".join(
            textwrap.fill(line, width=chars, break_long_words=False) or line
            for line in text.split("\n")
        )
        if wrapped == artist.get_text():
            return
        artist.set_text(wrapped)


def _axes_titles(ax: plt.Axes) -> list[Text]:
    return [
        t
        for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None))
        if t is not None
    ]


def _strip_figure_paths(fig: Figure) -> None:
    """Apply :func:`strip_paths` to every text of ``fig``."""
    for text in fig.findobj(Text):
        raw = text.get_text()
        if raw and ("/" in raw or "\\" in raw):
            cleaned = strip_paths(raw)
            if cleaned != raw:
                text.set_text(cleaned)


def _tidy_texts(fig: Figure) -> None:
    """Strip paths from every text and wrap titles that are wider than their room."""
    _strip_figure_paths(fig)
    renderer = _renderer(fig, layout=False)  # text sizes need no layout; widths are close
    fig_w = fig.bbox.width
    for ax in fig.axes:
        room = max(ax.get_position().width * fig_w * 1.15, 0.3 * fig_w)
        for title in _axes_titles(ax):
            _wrap_to(title, min(room, 0.98 * fig_w), renderer)
        _wrap_to(ax.xaxis.label, 0.95 * fig_w, renderer)
    for text in fig.texts:
        if text.get_gid() != _STAMP_GID:
            _wrap_to(text, 0.8 * fig_w, renderer)


def finish_figure(fig: Figure, simulated: bool, *, layout: bool = True) -> Figure:
    """The common end of every figure: paths stripped, titles wrapped, layout, simulated label.

    ``layout`` runs ``tight_layout`` on a figure without a layout engine of its own (a
    figure made with ``layout="constrained"`` keeps it). Use it on figures drawn by hand in a
    notebook, too.
    """
    _tidy_texts(fig)
    engine = fig.get_layout_engine()
    if layout and (engine is None or isinstance(engine, mpl.layout_engine.TightLayoutEngine)):
        fig.tight_layout()
    return label_simulated(fig, simulated)


def _make_room_at_top(fig: Figure, stamp: Text) -> None:
    """Move the figure's content down so nothing overlaps ``stamp`` (in the top-right corner).

    Runs the layout once, measures the label against every axes (with its titles, tick labels
    and colour bars) and every figure text (the suptitle); when something overlaps, every axes
    and figure text is scaled towards the bottom so the content ends below the label, and the
    layout is frozen there (a later ``tight_layout`` call would undo it).
    """
    renderer = _renderer(fig)
    box = stamp.get_window_extent(renderer).padded(2)
    height = fig.bbox.height
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_axes_locator() is None]
    texts = [t for t in fig.texts if t is not stamp and t.get_visible() and t.get_text()]
    tight = {id(ax): ax.get_tightbbox(renderer) for ax in axes}
    extents = {id(t): t.get_window_extent(renderer) for t in texts}
    obstacles = [b for b in (*tight.values(), *extents.values()) if b is not None]
    obstacles += [leg.get_window_extent(renderer) for leg in fig.legends]
    if not any(box.overlaps(b) for b in obstacles):
        return
    limit = 1.0 - (box.height + 4) / height  # figure fraction the content must stay below
    factor = 1.0
    for ax in axes:
        pos = ax.get_position()
        bb = tight[id(ax)]
        if bb is None or pos.y1 <= 0:
            continue
        above = bb.y1 / height - pos.y1  # titles and tick labels above the axes box
        factor = min(factor, (limit - above) / pos.y1)
    for t in texts:
        x, y = t.get_position()
        if t.get_transform() != fig.transFigure or y <= 0:
            continue
        above = extents[id(t)].y1 / height - y
        factor = min(factor, (limit - above) / y)
    factor = float(np.clip(factor, 0.5, 1.0))
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")  # keep the positions just computed
    for ax in axes:
        pos = ax.get_position(original=True)
        ax.set_position([pos.x0, pos.y0 * factor, pos.width, pos.height * factor])
    for t in texts:
        if t.get_transform() == fig.transFigure:
            x, y = t.get_position()
            t.set_position((x, y * factor))


def label_simulated(fig: Figure, simulated: bool) -> Figure:
    """Stamp ``fig`` with "SIMULATED DATA" in its top-right corner when ``simulated``.

    Call it after the figure is laid out (``tight_layout`` or ``layout="constrained"``). When
    the label would cover a colour bar, a title or a panel, the content is moved down to make
    room for it. Calling it twice adds one label only. File-system paths in the figure's texts
    are reduced to file names (simulated or not).
    """
    _strip_figure_paths(fig)
    if not simulated:
        return fig
    if any(t.get_gid() == _STAMP_GID for t in fig.texts):
        return fig
    inset = mpl.transforms.ScaledTranslation(-3 / 72, -3 / 72, fig.dpi_scale_trans)
    stamp = fig.text(
        1.0,
        1.0,
        SIMULATED_LABEL,
        transform=fig.transFigure + inset,
        ha="right",
        va="top",
        fontsize=8,
        color=WARN,
        fontweight="bold",
        bbox={"facecolor": "white", "edgecolor": WARN, "boxstyle": "round,pad=0.2"},
        gid=_STAMP_GID,
    )
    _make_room_at_top(fig, stamp)
    return fig


def _finish(
    fig: Figure, ax: plt.Axes, title: str | None, simulated: bool, *, legend: bool = False
) -> Figure:
    """The common end of a one-panel figure: its title (if any), legend, layout and label.

    The legend sits outside the axes, on the right, so it never covers the data.
    """
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return finish_figure(fig, simulated)


# -- tables --------------------------------------------------------------------------------------


def metric_table_style(summary: pd.DataFrame | pd.Series, *, simulated: bool) -> pd.DataFrame:
    """A copy of any table with a first column ``data`` saying "simulated" or "real".

    Works for every table the book shows (metrics, claims, stability, SHAP, map scores): a
    Series becomes a one-column table, a column already named ``data`` is overwritten, and with
    MultiIndex columns the new column is ``("data", "", …)``. The result is a plain DataFrame
    (``.round(3)`` etc. still work); :func:`table_style` adds a caption as well.
    """
    if isinstance(summary, pd.Series):
        out = summary.to_frame()
    elif isinstance(summary, pd.DataFrame):
        out = summary.copy()
    else:
        raise ParameterError(
            f"metric_table_style needs a pandas DataFrame or Series, got {type(summary).__name__}; "
            "convert it first (pd.DataFrame(...))."
        )
    label = "simulated" if simulated else "real"
    key: Any = "data"
    if isinstance(out.columns, pd.MultiIndex):
        key = ("data",) + ("",) * (out.columns.nlevels - 1)
    if key in out.columns:
        out = out.drop(columns=[key])
    out.insert(0, key, label)
    out.attrs["simulated"] = bool(simulated)
    return out


def table_style(
    table: pd.DataFrame | pd.Series,
    *,
    simulated: bool,
    caption: str | None = None,
    precision: int = 3,
) -> Any:
    """A pandas ``Styler`` of any table, labelled: a ``data`` column (see
    :func:`metric_table_style`) and, when ``simulated``, a caption starting "SIMULATED data".

    Text cells are never truncated (long claim sentences wrap); numbers are shown with
    ``precision`` decimals. Display the result as the last expression of a notebook cell.
    """
    out = metric_table_style(table, simulated=simulated)
    parts = [SIMULATED_CAPTION] if simulated else []
    if caption:
        parts.append(strip_paths(caption))
    styler = out.style.format(precision=precision, na_rep="–")
    if parts:
        styler = styler.set_caption(" — ".join(parts))
    caption_css = [("caption-side", "top"), ("text-align", "left"), ("font-weight", "bold")]
    if simulated:
        caption_css.append(("color", WARN))
    styler = styler.set_table_styles([{"selector": "caption", "props": caption_css}])
    return styler.set_properties(**{"white-space": "pre-wrap", "text-overflow": "clip"})


# -- shared pieces -------------------------------------------------------------------------------


def _grouped_barh(
    ax: plt.Axes, wide: pd.DataFrame, err: pd.DataFrame | None = None, hatch_negative: bool = False
) -> None:
    """Horizontal bars: one row per index entry of ``wide``, one coloured bar per column."""
    height = 0.8 / max(wide.shape[1], 1)
    for k, model in enumerate(wide.columns):
        values = wide[model].to_numpy(dtype=float)
        bars = ax.barh(
            np.arange(len(wide)) + k * height,
            values,
            height=height,
            color=OKABE_ITO[k % 8],
            label=model,
            xerr=None if err is None else err[model].to_numpy(dtype=float),
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"},
        )
        if hatch_negative:
            for bar, v in zip(bars, values, strict=True):
                if v < 0:
                    bar.set_hatch("////")
                    bar.set_edgecolor("white")
    ax.set_yticks(np.arange(len(wide)) + 0.4 - height / 2, wide.index)


def _units(units: str) -> str:
    return f" ({units})" if units else ""


# -- observed vs predicted -----------------------------------------------------------------------


def robust_limits(
    observed: np.ndarray,
    predicted: np.ndarray,
    quantiles: tuple[float, float] = (0.01, 0.99),
    pad: float = 0.04,
) -> tuple[float, float]:
    """Axis limits (one pair for both axes) that a few wild predictions cannot stretch.

    The observed values set the scale: their ``quantiles``, widened to the observed extremes
    by at most a quarter of that quantile range on each side (ordinary points all stay
    inside). Predictions may stretch the axes by at most half the observed quantile range
    beyond that, so a model that predicts 200 dS/m for soils measured at 0–20 dS/m does not
    squash its panel. Then ``pad`` of the span is added. Units: those of the values. Points
    outside are for the caller to mark. Without observed values the predictions' quantiles
    play their part.
    """
    obs = np.asarray(observed, dtype=float)
    pred = np.asarray(predicted, dtype=float)
    obs, pred = obs[np.isfinite(obs)], pred[np.isfinite(pred)]
    ref = obs if obs.size else pred
    if ref.size == 0:
        return 0.0, 1.0
    qlo, qhi = (float(v) for v in np.quantile(ref, quantiles))
    span = qhi - qlo
    lo = max(float(ref.min()), qlo - 0.25 * span)
    hi = min(float(ref.max()), qhi + 0.25 * span)
    if pred.size:
        lo = min(lo, max(float(pred.min()), lo - 0.5 * span))
        hi = max(hi, min(float(pred.max()), hi + 0.5 * span))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    margin = pad * (hi - lo)
    return lo - margin, hi + margin


def _first_seed(predictions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[Any, int]]]:
    """Rows of each model's first seed, and {model: (seed, n_seeds)} for models with several."""
    if "seed" not in predictions.columns:
        return predictions, {}
    keep = []
    notes: dict[str, tuple[Any, int]] = {}
    for model, rows in predictions.groupby("model", sort=False):
        seeds = list(dict.fromkeys(rows["seed"]))
        keep.append(rows[rows["seed"] == seeds[0]])
        if len(seeds) > 1:
            notes[str(model)] = (seeds[0], len(seeds))
    return pd.concat(keep) if keep else predictions, notes


def observed_vs_predicted(
    predictions: pd.DataFrame,
    *,
    units: str,
    target_name: str = "target",
    simulated: bool = False,
    models: Sequence[str] | None = None,
    quantiles: tuple[float, float] = (0.01, 0.99),
    seed: Any = None,
) -> Figure:
    """Observed against out-of-fold predicted values, one panel per split (rows) and model
    (columns).

    ``predictions`` has columns model, split, observed, predicted and optionally seed (as
    :attr:`soilbook.evaluate.CVResult.predictions`). Each panel has its own limits, the same on
    both axes, from :func:`robust_limits` (``quantiles`` of observed ∪ predicted): one model's
    blow-ups cannot squash the other panels. Points beyond the limits are drawn as triangles on
    the edge (pointing the way they lie) and counted in the panel ("n beyond the axes"); RMSE
    and R² in the panel use **all** points.

    ``seed``: with several seeds per model, the panels show one seed — each model's first
    (``None``, the seed of ``CVResult.fitted``), the given seed, or ``"all"`` for every row.
    """
    if seed is None:
        predictions, seed_notes = _first_seed(predictions)
    elif seed == "all" or "seed" not in predictions.columns:
        seed_notes = {}
    else:
        predictions = predictions[predictions["seed"] == seed]
        seed_notes = {}
    models = list(models or predictions["model"].unique())
    splits = list(predictions["split"].unique())
    fig, axes = plt.subplots(
        len(splits),
        len(models),
        figsize=(2.4 * len(models) + 0.6, 2.4 * len(splits) + 0.6),
        squeeze=False,
    )
    for i, split in enumerate(splits):
        for j, model in enumerate(models):
            ax = axes[i, j]
            d = predictions[(predictions["model"] == model) & (predictions["split"] == split)]
            obs = d["observed"].to_numpy(dtype=float)
            pred = d["predicted"].to_numpy(dtype=float)
            lo, hi = robust_limits(obs, pred, quantiles)
            outside = (obs < lo) | (obs > hi) | (pred < lo) | (pred > hi)
            colour = OKABE_ITO[j % 8]
            ax.scatter(obs[~outside], pred[~outside], s=6, alpha=0.5, color=colour, lw=0)
            if outside.any():
                _edge_markers(ax, obs[outside], pred[outside], lo, hi)
            ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal", adjustable="box")
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
            ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
            if len(d):
                ok = np.isfinite(obs) & np.isfinite(pred)
                rmse = float(np.sqrt(np.mean((pred[ok] - obs[ok]) ** 2)))
                ss = float(np.sum((obs[ok] - obs[ok].mean()) ** 2))
                r2 = 1 - float(np.sum((pred[ok] - obs[ok]) ** 2)) / ss if ss else np.nan
                ax.text(
                    0.03,
                    0.97,
                    f"RMSE {rmse:.2f}\nR² {r2:.2f}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
                )
            if outside.any():
                ax.text(
                    0.97,
                    0.03,
                    f"{int(outside.sum())} beyond the axes (▲▼ at the edge)",
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize=6.5,
                    color=WARN,
                    bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
                )
            if i == 0:
                note = seed_notes.get(str(model))
                ax.set_title(model if note is None else f"{model}\n(seed {note[0]} of {note[1]})")
            if i == len(splits) - 1:
                ax.set_xlabel(f"observed{_units(units)}")
            if j == 0:
                ax.set_ylabel(f"{split} CV\npredicted{_units(units)}")
    fig.suptitle(f"{target_name}: observed vs out-of-fold predicted (own axes per panel)")
    return finish_figure(fig, simulated)


def _edge_markers(ax: plt.Axes, x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> None:
    """Points beyond [lo, hi] drawn on the edge as triangles pointing the way they lie."""
    xc, yc = np.clip(x, lo, hi), np.clip(y, lo, hi)
    kinds = (
        (y > hi, "^"),
        ((y < lo) & ~(y > hi), "v"),
        ((x > hi) & (y >= lo) & (y <= hi), ">"),
        ((x < lo) & (y >= lo) & (y <= hi), "<"),
    )
    for mask, marker in kinds:
        if mask.any():
            ax.scatter(
                xc[mask], yc[mask], marker=marker, s=22, color=WARN, edgecolor="black",
                lw=0.4, clip_on=False, zorder=5,
            )  # fmt: skip


# -- learning curves -----------------------------------------------------------------------------

_RUN_KEYS = ("model", "split", "seed", "fold", "stage")


def _hist_field(hist: Any, key: str) -> Any:
    if isinstance(hist, Mapping) or hasattr(hist, "get"):
        try:
            return hist.get(key)
        except (TypeError, AttributeError):
            pass
    return getattr(hist, key, None)


def _curve(hist: Any, key: str) -> np.ndarray:
    values = _hist_field(hist, key)
    if values is None:
        return np.array([], dtype=float)
    return np.asarray(list(values), dtype=float)


def _runs(
    histories: Any, convergence: pd.DataFrame | None
) -> tuple[list[dict[str, Any]], pd.DataFrame | None]:
    """Normalise the accepted inputs to a list of runs {model, split, seed, fold, stage, hist}."""
    if hasattr(histories, "histories") and not isinstance(histories, Mapping):
        if convergence is None:
            convergence = getattr(histories, "convergence", None)
        histories = histories.histories
    if not isinstance(histories, Mapping):
        raise ParameterError(
            "learning_curves needs {label: History}, CVResult.histories "
            "({(model, split, seed, fold, stage): History}) or a CVResult; "
            f"got {type(histories).__name__}."
        )
    runs = []
    for key, hist in histories.items():
        if isinstance(key, tuple) and len(key) == len(_RUN_KEYS):
            run = dict(zip(_RUN_KEYS, key, strict=True))
        elif isinstance(key, tuple):
            run = {"model": " / ".join(map(str, key)), "split": None, "seed": None,
                   "fold": None, "stage": None}  # fmt: skip
        else:
            run = {"model": str(key), "split": None, "seed": None, "fold": None, "stage": None}
        run["hist"] = hist
        runs.append(run)
    return runs, convergence


def _run_convergence(run: dict[str, Any], table: pd.DataFrame | None) -> dict[str, Any] | None:
    """``History.convergence()`` of a run, else its row of a convergence table, else None."""
    method = getattr(run["hist"], "convergence", None)
    if callable(method):
        out = method()
        if isinstance(out, Mapping):
            return dict(out)
    if table is not None and len(table) and all(k in table.columns for k in _RUN_KEYS):
        mask = np.ones(len(table), dtype=bool)
        for k in _RUN_KEYS:
            if run[k] is not None:
                mask &= (table[k].astype(str) == str(run[k])).to_numpy()
        if mask.sum() == 1:
            return table[mask].iloc[0].to_dict()
    return None


class _PlainLogFormatter(mpl.ticker.LogFormatter):
    """Log-axis tick labels as plain numbers (0.3, 1, 20) where LogFormatter puts a label."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def learning_curves(
    histories: Any,
    *,
    loss_units: str = "standardised",
    simulated: bool = False,
    convergence: pd.DataFrame | None = None,
    split: str | None = None,
    title: str | None = None,
) -> Figure:
    """Training and validation loss per epoch of every network run, one panel per network.

    ``histories`` is one of

    * ``{label: History}`` (e.g. :func:`soilbook.notebook.histories`): one panel per label;
    * ``CVResult.histories``, ``{(model, split, seed, fold, stage): History}``: one panel per
      (model, stage) — a row each — and split — a column each — with one thin line per fold
      and seed (``split`` keeps one split only);
    * a :class:`~soilbook.evaluate.CVResult` (its ``histories`` and ``convergence``).

    A History may be a plain mapping of per-epoch lists (``epoch``, ``train_loss``,
    ``val_loss``, as after ``CVResult.from_json``). Training loss is solid, validation loss
    dashed, the best epoch a black dot. Runs that did not converge (``History.convergence()
    ["converged"]``, or the ``converged`` column of ``convergence``) are drawn in vermillion
    and counted in their panel; a run whose convergence is unknown is counted as such.
    Losses are in ``loss_units`` of the target (MSE unless the network says otherwise); the
    y axis is logarithmic when every loss is positive.
    """
    runs, table = _runs(histories, convergence)
    if split is not None:
        runs = [r for r in runs if r["split"] in (None, split)]
    if not runs:
        raise ParameterError(
            "learning_curves got no training history"
            + (f" for split {split!r}" if split is not None else "")
            + "; only networks record one (the baselines have none)."
        )
    rows = list(dict.fromkeys((r["model"], r["stage"]) for r in runs))
    cols = list(dict.fromkeys(r["split"] for r in runs))
    grid = len(cols) > 1 or cols != [None]
    if not grid:  # one panel per label, wrapped into up to three columns
        ncols = min(3, len(rows))
        cells = {row: divmod(k, ncols) for k, row in enumerate(rows)}
        nrows = math.ceil(len(rows) / ncols)
    else:
        ncols, nrows = len(cols), len(rows)
        cells = {(row, c): (i, j) for i, row in enumerate(rows) for j, c in enumerate(cols)}
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(max(3.2 * ncols + 0.4, 5.6), 2.2 * nrows + 1.2), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    used: set[tuple[int, int]] = set()
    panel_runs: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for run in runs:
        row = (run["model"], run["stage"])
        cell = cells[row] if not grid else cells[(row, run["split"])]
        panel_runs.setdefault(cell, []).append(run)
    positive = True
    for (i, j), members in panel_runs.items():
        ax = axes[i, j]
        used.add((i, j))
        n_bad = n_unknown = 0
        for run in members:
            hist = run["hist"]
            train = _curve(hist, "train_loss")
            val = _curve(hist, "val_loss")
            epoch = _curve(hist, "epoch")
            if epoch.size != train.size:
                epoch = np.arange(1, train.size + 1, dtype=float)
            conv = _run_convergence(run, table)
            bad = conv is not None and not bool(conv.get("converged", True))
            n_bad += bad
            n_unknown += conv is None
            c_train, c_val = (WARN, WARN) if bad else (OKABE_ITO[0], OKABE_ITO[1])
            lw = 1.2 if bad else 0.8
            ax.plot(epoch, train, color=c_train, lw=lw, alpha=0.8, zorder=3 if bad else 2)
            has_val = val.size == train.size and np.isfinite(val).any()
            if has_val:
                ax.plot(epoch, val, color=c_val, lw=lw, ls="--", alpha=0.9, zorder=3 if bad else 2)
            finite = np.concatenate([train[np.isfinite(train)], val[np.isfinite(val)]])
            positive &= bool(finite.size == 0 or (finite > 0).all())
            best = None if conv is None else conv.get("best_epoch")
            if not best:
                best = _hist_field(hist, "best_epoch")
            if not best and has_val:
                best = int(np.nanargmin(val)) + 1
            monitored = val if has_val else train
            if best and 1 <= int(best) <= monitored.size:
                k = int(best) - 1
                ax.plot(epoch[k], monitored[k], "o", ms=3.5, color="black", zorder=4)
        r_model, r_stage = members[0]["model"], members[0]["stage"]
        head = str(r_model) if r_stage in (None, "network") else f"{r_model} — {r_stage}"
        if grid and members[0]["split"] is not None:
            head += f"\n{members[0]['split']} split"
        ax.set_title(head, fontsize=8.5)
        note = f"{len(members)} run{'s' if len(members) != 1 else ''}"
        colour = "0.3"
        if n_bad:
            note += f"; {n_bad} NOT converged"
            colour = WARN
        if n_unknown:
            note += f"; {n_unknown} convergence unknown"
        ax.text(
            0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
            color=colour, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )  # fmt: skip
        ax.set_xlabel("epoch (count)")
        ax.set_ylabel(f"loss ({loss_units})")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    for i in range(nrows):
        for j in range(ncols):
            if (i, j) not in used:
                axes[i, j].set_visible(False)
    if positive:
        for i, j in used:
            axes[i, j].set_yscale("log")
            axes[i, j].yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
            axes[i, j].yaxis.set_minor_formatter(
                _PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6))
            )
    handles = [
        Line2D([], [], color=OKABE_ITO[0], lw=1, label="training loss"),
        Line2D([], [], color=OKABE_ITO[1], lw=1, ls="--", label="validation loss"),
        Line2D([], [], color="black", marker="o", ms=3.5, ls="", label="best epoch (kept)"),
        Line2D([], [], color=WARN, lw=1.2, label="run not converged"),
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=4 if ncols > 1 else 2, fontsize=7,
        frameon=False,
    )  # fmt: skip
    per = "one thin line per fold and seed" if grid else "one panel per run"
    fig.suptitle(title or f"learning curves: {per}")
    return finish_figure(fig, simulated)


# -- maps ----------------------------------------------------------------------------------------


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
    when ``shared_scale``. Colour bars sit beside their panel, below the title and the label.
    """
    if isinstance(units, str):
        units = dict.fromkeys(panels, units)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
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
    return finish_figure(fig, simulated)


# -- spectra and bars ----------------------------------------------------------------------------


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
    Lines break where the wavelength step jumps (removed bands).
    """
    fig, ax = plt.subplots(figsize=(6.6, 3.2))
    for k, (name, values) in enumerate(curves.items()):
        colour = OKABE_ITO[k % 8]
        values = np.asarray(values, dtype=float)
        wl = np.asarray(wavelength_nm, dtype=float)
        if values.ndim == 2:
            q10, q50, q90 = np.nanpercentile(values, [10, 50, 90], axis=0)
            x, (q10, q50, q90), _ = _break_gaps(wl, [q10, q50, q90])
            ax.fill_between(x, q10, q90, color=colour, alpha=0.2, lw=0)
            ax.plot(x, q50, color=colour, label=f"{name} (median, 10–90 %)")
        else:
            x, (v,), _ = _break_gaps(wl, [values])
            ax.plot(x, v, color=colour, marker="o" if len(values) < 20 else None, ms=3, label=name)
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

    ``table`` has columns model, group and ``value``. For permutation importance with its
    spread over repeats use :func:`permutation_bars`.
    """
    wide = table.pivot_table(index="group", columns="model", values=value, aggfunc="sum").fillna(0)
    wide = wide.loc[wide.sum(axis=1).sort_values().index]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(wide) + 1.2))
    _grouped_barh(ax, wide)
    ax.set_xlabel(label)
    return _finish(fig, ax, title, simulated, legend=True)


def permutation_bars(
    table: pd.DataFrame,
    value: str = "importance",
    err: str | None = "importance_sd",
    *,
    label: str | None = None,
    group: str = "group",
    model: str = "model",
    simulated: bool = False,
    title: str | None = None,
) -> Figure:
    """Permutation importance as bars with error bars: mean ± sd over the permutation repeats.

    ``table`` has one row per (``model``, ``group``) with the mean ``value`` and its sd ``err``
    (:func:`soilbook.explain.grouped_permutation_importance` gives ``importance`` and
    ``importance_sd``, or ``rmse_increase`` and ``rmse_increase_sd``; stack several models
    with a ``model`` column). ``label`` is the x-axis label with units (e.g. "RMSE increase
    when shuffled (g/kg)"). A vertical line marks 0; bars below 0 are hatched: permuting that
    group *improved* the score, i.e. the model draws no usable signal from it (the value is
    noise around 0), which the axis note says in words. The number of repeats is read from an
    ``n_repeats`` column when there is one.
    """
    for col in (group, value, *([err] if err else [])):
        if col not in table.columns:
            raise ParameterError(
                f"permutation_bars: the table has no column {col!r} (columns: "
                f"{list(table.columns)}); pass value=, err= and group= naming its columns."
            )
    data = table if model in table.columns else table.assign(**{model: value})
    wide = data.pivot_table(index=group, columns=model, values=value, aggfunc="mean", sort=False)
    spread = (
        data.pivot_table(index=group, columns=model, values=err, aggfunc="mean", sort=False)
        .reindex_like(wide)
        .fillna(0.0)
        if err
        else None
    )
    order = wide.mean(axis=1).sort_values().index
    wide = wide.loc[order]
    spread = None if spread is None else spread.loc[order]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(wide) * max(1, wide.shape[1] / 2) + 1.6))
    _grouped_barh(ax, wide.fillna(0.0), spread, hatch_negative=True)
    ax.axvline(0.0, color="black", lw=0.9)
    repeats = ""
    if "n_repeats" in table.columns:
        ns = sorted({int(v) for v in table["n_repeats"].dropna()})
        repeats = f" over {'/'.join(map(str, ns))} repeats" if ns else ""
    spread_text = f"mean ± sd{repeats}" if err else f"mean{repeats}"
    ax.set_xlabel(
        f"{label or value}\nbars: {spread_text}; below 0 (hatched): shuffling the group\n"
        "improved the score, i.e. the model draws no usable signal from it"
    )
    return _finish(fig, ax, title, simulated, legend=wide.shape[1] > 1)


def error_by_group(
    predictions: pd.DataFrame, *, units: str, simulated: bool = False, title: str | None = None
) -> Figure:
    """RMSE per held-out group (rows of ``predictions`` with columns model, group, observed,
    predicted), one bar per model."""
    err = predictions.assign(se=(predictions["predicted"] - predictions["observed"]) ** 2)
    table = err.groupby(["group", "model"])["se"].mean().pow(0.5).rename("rmse").reset_index()
    wide = table.pivot(index="group", columns="model", values="rmse")
    fig, ax = plt.subplots(figsize=(6.6, 0.4 * len(wide) * max(1, wide.shape[1] / 3) + 1.4))
    _grouped_barh(ax, wide)
    ax.set_xlabel(f"RMSE on the held-out group ({units})")
    return _finish(fig, ax, title, simulated, legend=True)


# -- attention -----------------------------------------------------------------------------------


def _symmetric_limit(diff: np.ndarray, uniform: float) -> float:
    lim = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
    return lim if lim > 0 else max(abs(uniform) * 1e-3, 1e-9)


def attention_heatmap(
    weights: pd.DataFrame,
    *,
    simulated: bool = False,
    title: str | None = None,
    uniform: float | None = None,
) -> Figure:
    """A (query × token) table of mean attention weights (unitless, rows sum to 1) as a heatmap
    of **attention − uniform**.

    ``uniform`` is the weight every token would get from an attention that picks nothing out,
    ``1 / n_tokens`` by default (tokens are the columns). The diverging colour scale is centred
    on it (white = uniform), so weights of 0.051–0.054 around a uniform 0.053 read as the
    near-uniform attention they are; the x-axis label gives the observed range.
    """
    n = weights.shape[1]
    u = float(uniform) if uniform is not None else 1.0 / max(n, 1)
    values = weights.to_numpy(dtype=float)
    diff = values - u
    lim = _symmetric_limit(diff, u)
    fig, ax = plt.subplots(figsize=(min(0.32 * n + 2.6, 11.5), 0.4 * weights.shape[0] + 2.0))
    im = ax.imshow(diff, aspect="auto", cmap=DIVERGING, vmin=-lim, vmax=lim)
    ax.set_xticks(range(n), weights.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(weights.shape[0]), weights.index, fontsize=7)
    ax.grid(False)
    ax.set_xlabel(
        f"token (weights {np.nanmin(values):.3f}–{np.nanmax(values):.3f}; uniform {u:.3f})"
    )
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"attention − uniform\n(uniform = {_uniform_text(u, n)}; unitless)")
    cb.formatter = mpl.ticker.FormatStrFormatter("%+.3f")
    cb.update_ticks()
    return _finish(fig, ax, title, simulated)


def _uniform_text(u: float, n: int) -> str:
    return f"1/{n} = {u:.3g}" if n and math.isclose(u, 1.0 / n) else f"{u:.3g}"


def spatial_attention_maps(
    attention: xr.DataArray, *, simulated: bool = False, title: str | None = None
) -> Figure:
    """The spatial-attention weights of one sample, one panel per query, as weight − uniform.

    ``attention`` has dims (query, y, x) with pixel offsets from the sample as coordinates;
    weights are unitless and each query's map sums to 1, so the uniform weight is
    ``1 / (n_y n_x)``. A diverging scale centred on it (white = uniform) keeps near-uniform
    maps from looking like structure; one colour bar on the right serves all panels.
    """
    n = attention.sizes["query"]
    ny, nx = attention.sizes["y"], attention.sizes["x"]
    u = 1.0 / (ny * nx)
    diff = attention.values - u
    lim = _symmetric_limit(diff, u)
    fig, axes = plt.subplots(
        1, n, figsize=(2.4 * n + 1.4, 3.0), squeeze=False, layout="constrained"
    )
    im = None
    for q, ax in enumerate(axes[0]):
        da = attention.isel(query=q)
        im = ax.imshow(
            da.values - u,
            cmap=DIVERGING,
            vmin=-lim,
            vmax=lim,
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
    cb.set_label(f"weight − uniform\n(uniform = {_uniform_text(u, ny * nx)}; unitless)")
    cb.formatter = mpl.ticker.FormatStrFormatter("%+.4f")
    cb.update_ticks()
    fig.suptitle(
        title
        or (
            f"spatial attention of one sample (weights {float(attention.min()):.4f}–"
            f"{float(attention.max()):.4f})"
        )
    )
    return finish_figure(fig, simulated)


# -- spectral attributions -----------------------------------------------------------------------

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


def _break_gaps(
    wavelength_nm: np.ndarray,
    curves: Sequence[np.ndarray],
    mask: np.ndarray | None = None,
    factor: float = 1.8,
) -> tuple[np.ndarray, list[np.ndarray], list[tuple[float, float]]]:
    """Curves with NaN where bands were removed, so lines break there instead of bridging.

    A gap is a wavelength step larger than ``factor`` times the median of the (up to six)
    neighbouring steps — how removed water-vapour bands show on a satellite grid — or a run of
    bands where ``mask`` (True = keep) is False, e.g. bands interpolated across a library's
    gap. Returns the wavelengths with one NaN-valued point inserted per step gap, the curves
    to match, and the (start, end) in nm of every gap, for shading.
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    order = np.argsort(wl, kind="stable")
    wl = wl[order]
    ys = [np.asarray(c, dtype=float)[order].copy() for c in curves]
    gaps: list[tuple[float, float]] = []
    if mask is not None:
        keep = np.asarray(mask, dtype=bool)[order]
        for y in ys:
            y[~keep] = np.nan
        edges = np.flatnonzero(np.diff(np.r_[0, (~keep).astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            lo = wl[a - 1] if a > 0 else wl[a]
            hi = wl[b] if b < wl.size else wl[b - 1]
            gaps.append((float(lo), float(hi)))
    steps = np.diff(wl)
    cut = []
    for i, step in enumerate(steps):
        around = np.r_[steps[max(0, i - 3) : i], steps[i + 1 : i + 4]]
        if around.size and step > factor * float(np.median(around)):
            cut.append(i)
            gaps.append((float(wl[i]), float(wl[i + 1])))
    if cut:
        at = np.asarray(cut) + 1
        mid = (wl[at - 1] + wl[at]) / 2
        wl = np.insert(wl, at, mid)
        ys = [np.insert(y, at, np.nan) for y in ys]
    return wl, ys, sorted(gaps)


def band_importance(
    wavelength_nm: np.ndarray | Mapping[str, np.ndarray],
    importance: Mapping[str, np.ndarray],
    *,
    mean_spectrum: np.ndarray | None = None,
    spectrum_wavelength_nm: np.ndarray | None = None,
    ylabel: str | Mapping[str, str] = "mean |attribution| (target units)",
    simulated: bool = False,
    title: str | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    gap_factor: float = 1.8,
) -> Figure:
    """Attribution per wavelength, one panel per model **in its own units**, over a shared
    wavelength axis, with the mean spectrum in a panel below and the soil absorption features
    named in a strip above.

    ``wavelength_nm`` is one grid for all curves or one per name (lab and satellite grids
    differ). ``ylabel`` is one y label for every panel or one per name — say what and in
    which unit, e.g. ``"mean |SHAP| (log1p dS/m)"`` or ``"mean |integrated gradients|
    (log1p dS/m)"``; nothing is rescaled, so magnitudes compare within a panel and units
    across panels. Lines break at removed bands (see :func:`_break_gaps`: a jump in the
    wavelength step, or ``masks[name]`` False — True marks a band to keep; a DataArray curve
    with a ``gap_filled`` band coordinate is masked by it automatically), and removed bands are
    shaded grey. ``masks["mean spectrum"]`` masks the spectrum panel. No legend: each panel is
    titled with its curve's name, and the feature names sit in their own strip, clear of the
    curves and of the title.
    """
    names = list(importance)
    labels = {n: ylabel[n] if isinstance(ylabel, Mapping) else ylabel for n in names}
    missing = [n for n in names if n not in labels or labels[n] is None]
    if missing:
        raise ParameterError(f"band_importance: no ylabel for {missing}; give one per name.")
    masks = dict(masks or {})
    has_spectrum = mean_spectrum is not None
    ratios = [0.55] + [1.3] * len(names) + ([1.0] if has_spectrum else [])
    fig, axes = plt.subplots(
        len(ratios), 1, figsize=(7.4, sum(ratios) + 1.2), sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )  # fmt: skip
    axes = np.atleast_1d(axes)
    strip, panels = axes[0], axes[1:]
    for k, name in enumerate(names):
        ax = panels[k]
        raw = importance[name]
        wl = wavelength_nm[name] if isinstance(wavelength_nm, Mapping) else wavelength_nm
        mask = masks.get(name)
        if isinstance(raw, xr.DataArray) and "gap_filled" in raw.coords:
            filled = ~np.asarray(raw["gap_filled"].values, dtype=bool)
            mask = filled if mask is None else np.asarray(mask, dtype=bool) & filled
        x, (y,), gaps = _break_gaps(np.asarray(wl), [np.asarray(raw)], mask, gap_factor)
        for lo, hi in gaps:
            ax.axvspan(lo, hi, color="0.9", lw=0, zorder=0)
        ax.plot(x, y, color=OKABE_ITO[k % 8], lw=1.1)
        ax.set_title(name, loc="left", fontsize=8, pad=2)
        ax.set_ylabel(textwrap.fill(labels[name], 24), fontsize=7.5)
        ax.set_ylim(bottom=0 if np.nanmin(y) >= 0 else None)
    if has_spectrum:
        ax = panels[-1]
        swl = spectrum_wavelength_nm
        if swl is None:
            swl = wavelength_nm if not isinstance(wavelength_nm, Mapping) else None
        if swl is None:
            raise ParameterError(
                "band_importance: pass spectrum_wavelength_nm (nm) with mean_spectrum when "
                "wavelength_nm is given per curve."
            )
        x, (y,), gaps = _break_gaps(
            np.asarray(swl), [np.asarray(mean_spectrum)], masks.get("mean spectrum"), gap_factor
        )
        for lo, hi in gaps:
            ax.axvspan(lo, hi, color="0.9", lw=0, zorder=0)
        ax.plot(x, y, color="0.45", lw=1)
        ax.set_title("mean spectrum", loc="left", fontsize=8, pad=2)
        ax.set_ylabel("reflectance\n(unitless, 0–1)", fontsize=7.5)
    for ax in panels:
        for nm, _ in ABSORPTION_FEATURES:
            ax.axvline(nm, color="0.55", lw=0.6, ls="--", zorder=1)
    panels[-1].set_xlabel("wavelength (nm); grey: removed bands (no data)")
    strip.set_axis_off()
    strip.set_ylim(0, 1)
    for nm, text in ABSORPTION_FEATURES:
        strip.plot([nm, nm], [0, 0.25], color="0.55", lw=0.6, ls="--")
        strip.text(nm, 0.3, text, rotation=35, ha="left", va="bottom", fontsize=6.5,
                   rotation_mode="anchor")  # fmt: skip
    if title:
        fig.suptitle(title)
    return finish_figure(fig, simulated)


# -- domain gap ----------------------------------------------------------------------------------


def _feature_set(panel: str, label: str, value: Any) -> tuple[str | None, np.ndarray]:
    network = None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        network, value = value
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ParameterError(
            f"domain_pca panel {panel!r}, set {label!r}: features must be an (n, d) array, got "
            f"shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ParameterError(
            f"domain_pca panel {panel!r}, set {label!r}: features hold NaN or inf; drop those "
            "samples first."
        )
    return network, arr


def domain_pca(
    features: Mapping[str, Any],
    *,
    simulated: bool = False,
    title: str | None = None,
) -> Figure:
    """Two principal components of feature sets from different domains, one PCA per panel.

    ``features`` is either ``{label: (n, d) array}`` — one panel, titled ``title`` — or
    ``{panel title: {label: (n, d) array}}`` — one panel per entry, titled as given, with
    ``title`` above them all (e.g. ``{"before adaptation": {...}, "after adaptation":
    {...}}``). Each panel's PCA is fitted on the sets of that panel together; a small gap
    between the clouds means the domains look alike to the network.

    **Compare like with like.** Every set in one panel must come from the same network (and
    layer): features of different networks live in different spaces, and one PCA over them
    shows their difference, not a domain gap. To make the plot check it, give each set as
    ``(network name, array)``: a panel whose sets name different networks, or that mixes
    named and unnamed sets, raises :class:`~soilbook.errors.ParameterError`, and the network
    is printed under the panel title. Sets with different feature widths ``d`` always raise.
    The same label keeps its colour in every panel.
    """
    if not features:
        raise ParameterError("domain_pca got no feature sets; pass {label: (n, d) array}.")
    nested = all(isinstance(v, Mapping) for v in features.values())
    if not nested and any(isinstance(v, Mapping) for v in features.values()):
        raise ParameterError(
            "domain_pca: give either {label: array} (one panel) or {panel: {label: array}} "
            "(several panels), not a mixture of both."
        )
    panels: dict[str, Mapping[str, Any]] = dict(features) if nested else {title or "": features}
    labels = list(dict.fromkeys(label for sets in panels.values() for label in sets))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 1.8, 4.0), squeeze=False)
    for ax, (panel, sets) in zip(axes[0], panels.items(), strict=True):
        parsed = {label: _feature_set(panel, label, v) for label, v in sets.items()}
        nets = [net for net, _ in parsed.values()]
        named = {net for net in nets if net is not None}
        if named and None in nets:
            raise ParameterError(
                f"domain_pca panel {panel!r}: some sets name their network and some do not; "
                "name all of them (label: (network, array)) so the panel cannot mix networks."
            )
        if len(named) > 1:
            raise ParameterError(
                f"domain_pca panel {panel!r} mixes features of networks {sorted(named)}: one "
                "PCA over different networks' features shows the networks' difference, not a "
                "domain gap. Put each network's lab and satellite features in its own panel."
            )
        widths = {label: arr.shape[1] for label, (_, arr) in parsed.items()}
        if len(set(widths.values())) > 1:
            raise ParameterError(
                f"domain_pca panel {panel!r}: feature widths differ ({widths}); the sets come "
                "from different networks or layers and cannot share one PCA."
            )
        stacked = np.concatenate([arr for _, arr in parsed.values()])
        centre = stacked.mean(axis=0)
        _, s, vt = np.linalg.svd(stacked - centre, full_matrices=False)
        total = float(np.sum(s**2))
        explained = s**2 / total if total > 0 else np.zeros_like(s)
        explained = np.r_[explained, 0.0, 0.0]
        basis = vt[:2].T if vt.shape[0] >= 2 else np.c_[vt.T, np.zeros((vt.shape[1], 1))]
        for label, (_, arr) in parsed.items():
            pcs = (arr - centre) @ basis
            k = labels.index(label)
            ax.scatter(pcs[:, 0], pcs[:, 1], s=6, alpha=0.5, color=OKABE_ITO[k % 8], lw=0,
                       label=label)  # fmt: skip
        ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of variance; unitless)")
        ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} %; unitless)")
        head = panel
        if named:
            head = f"{panel}\n(features of {next(iter(named))})" if panel else next(iter(named))
        if head:
            ax.set_title(head)
    handles = [
        Line2D([], [], color=OKABE_ITO[labels.index(lb) % 8], marker="o", ls="", label=lb)
        for lb in labels
    ]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1),
                       borderaxespad=0)  # fmt: skip
    if nested and title:
        fig.suptitle(title)
    return finish_figure(fig, simulated)


def variograms(
    curves: Mapping[str, tuple[pd.DataFrame, Any]],
    *,
    block_side_m: float,
    units: str = "",
    simulated: bool = False,
    title: str | None = None,
) -> Figure:
    """Empirical variograms with their fitted models and the chosen block side, one panel each.

    ``curves`` maps a panel title to ``(empirical, fit)``: an
    :func:`soilbook.variogram.empirical_variogram` table (``lag_m``/``mean_distance_m``,
    ``semivariance``, ``n_pairs``) and a fitted model (a callable on distances in m with a
    ``sill`` attribute, e.g. :class:`soilbook.variogram.VariogramFit`) or None. Semivariance is
    in the squared unit of the variable (``units``); the vertical line marks ``block_side_m``.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2), squeeze=False)
    for ax, (name, (emp, fit)) in zip(axes[0], curves.items(), strict=True):
        h = emp["mean_distance_m"] if "mean_distance_m" in emp else emp["lag_m"]
        ax.scatter(h, emp["semivariance"], s=14, color=OKABE_ITO[0], label="empirical")
        if fit is not None:
            grid = np.linspace(0.0, float(np.nanmax(h)), 200)
            ax.plot(grid, fit(grid), color=OKABE_ITO[1], label="fitted model")
            ax.axhline(fit.sill, color="0.6", lw=0.8, ls=":", label="sill")
        ax.axvline(block_side_m, color=OKABE_ITO[2], ls="--", label=f"block {block_side_m:g} m")
        ax.set_xlabel("distance (m)")
        ax.set_ylabel(f"semivariance (({units})²)" if units else "semivariance")
        ax.set_title(name)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    return finish_figure(fig, simulated)
