"""Dense (whole-scene) prediction maps.

:func:`predict_map` predicts every pixel of a scene (the scene schema of
:mod:`soilbook.data.schema`) with any fitted soilbook estimator and returns a labelled
:class:`xarray.DataArray` (y, x) in the target's unit:

* estimators with a ``predict_scene(scene)`` method (the networks, e.g.
  :class:`soilbook.models.ss_soilnet.SSSoilNetRegressor`, also inside
  :class:`soilbook.evaluate.Log1pTarget`) compute the map in one pass over the scene —
  convolutions run once per pixel, not once per window position;
* any other estimator with ``predict(ds)`` on sample sets (the baselines) gets the scene's pixels
  as sample sets (:func:`soilbook.data.scene.pixels_as_samples`) in chunks of ``chunk_pixels``.

:func:`predict_map_naive` is the obvious per-pixel loop (cut the window, build a one-sample
dataset, call ``predict``). It exists only as the reference for ``benchmarks/bench_maps.py``
and the tests: it is orders of magnitude slower.

Scoring a map honestly and putting error bars on it:

:func:`heldout_block_mask`
    the pixels whose spatial block (the rule that gave the samples their ``group``,
    :func:`soilbook.geo.spatial_blocks` on pixel offsets from the scene's north-west corner)
    holds no training sample of a fold — so a map is scored on new places, not next to its
    training data; optionally also a buffer around every training sample;
:func:`score_map`
    metrics of a predicted map against the true map on the masked pixels, with their count;
:func:`quantile_map`, :func:`conformal_map`, :func:`score_interval_map`
    prediction-interval maps (quantile regression forest; conformal from out-of-fold residuals,
    :mod:`soilbook.uncertainty`) and their coverage on the masked pixels;
:func:`applicability_map`
    the dissimilarity index and area of applicability (:mod:`soilbook.applicability`) of every
    pixel;
:func:`scene_table`
    every pixel's feature table (what a tabular model or the dissimilarity index sees).

:func:`predict_area` predicts an area of any size (e.g. 10,000 × 10,000 pixels) window by window
(:func:`tile_windows`: cores with a halo of context), reading each window when it is needed and
writing into a given array (a memory map on disk, if need be), so memory stays bounded by one
window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from soilbook.data.schema import validate_scene

__all__ = [
    "applicability_map",
    "conformal_map",
    "heldout_block_mask",
    "pixel_blocks",
    "predict_area",
    "predict_map",
    "predict_map_naive",
    "quantile_map",
    "scene_table",
    "score_interval_map",
    "score_map",
    "tile_windows",
]


def _window(estimator: Any) -> int | None:
    """The patch window the estimator was trained with (None: no patches)."""
    for obj in (estimator, getattr(estimator, "estimator_", None)):
        if obj is None:
            continue
        window = getattr(obj, "window_", None)
        if window is not None and getattr(obj, "spatial_mode_", "patches") == "patches":
            return int(window)
    return None


def _target_attrs(estimator: Any, scene: xr.Dataset) -> tuple[str, str]:
    """Units and name of what ``estimator.predict`` returns (a wrapper's inner model may differ,
    e.g. a log-target wrapper's inner model predicts log1p units, so it is not consulted)."""
    units = getattr(estimator, "target_units_", None)
    long_name = getattr(estimator, "target_long_name_", None)
    if "target" in scene.data_vars:
        units = units or scene["target"].attrs.get("units")
        long_name = long_name or scene["target"].attrs.get("long_name")
    return str(units or ""), str(long_name or scene.attrs.get("target_name", "target"))


def _scene_predictor(estimator: Any) -> Any:
    """A function scene -> (y, x) array when the estimator can map whole scenes, else None.

    Networks have ``predict_scene``; a :class:`soilbook.evaluate.Log1pTarget` around one maps
    with the inner network and back-transforms with ``expm1``.
    """
    if hasattr(estimator, "predict_scene"):
        return estimator.predict_scene
    from soilbook.evaluate import Log1pTarget

    inner = getattr(estimator, "estimator_", None)
    if isinstance(estimator, Log1pTarget) and hasattr(inner, "predict_scene"):
        return lambda scene, **kw: np.expm1(inner.predict_scene(scene, **kw))
    return None


def _pixels(
    scene: xr.Dataset,
    rows: np.ndarray,
    cols: np.ndarray,
    window: int | None,
    covariates: xr.DataArray,
) -> xr.Dataset:
    """The pixels (rows, cols) of ``scene`` as a sample set (with patches when ``window``)."""
    from soilbook.data.scene import pixels_as_samples

    return pixels_as_samples(scene, rows, cols, window=window, covariates=covariates)


def predict_map(
    estimator: Any, scene: xr.Dataset, chunk_pixels: int = 65536, **scene_kwargs: Any
) -> xr.DataArray:
    """Predict every pixel of ``scene`` with a fitted ``estimator``.

    Parameters
    ----------
    estimator : a fitted soilbook estimator (network or baseline).
    scene : a scene in the soilbook schema (``reflectance``, ``layers``, …).
    chunk_pixels : pixels per ``predict`` call for estimators without ``predict_scene`` (bounds
        the memory of the temporary sample sets; lowered further so that the patches of one
        chunk stay below about 256 MB).
    scene_kwargs : passed to ``estimator.predict_scene`` (e.g. ``batch_pixels``, ``tile``).

    Returns
    -------
    xarray.DataArray (y, x), float64, with the scene's ``y`` / ``x`` coordinates and ``units`` /
    ``long_name`` attributes (``"predicted <target>"``); ``attrs["model"]`` names the estimator.
    """
    validate_scene(scene)
    if chunk_pixels < 1:
        raise ValueError(f"chunk_pixels={chunk_pixels}; expected a positive number of pixels.")
    height, width = int(scene.sizes["y"]), int(scene.sizes["x"])
    scene_predictor = _scene_predictor(estimator)
    if scene_predictor is not None:
        values = np.asarray(scene_predictor(scene, **scene_kwargs), dtype=np.float64)
        method = "predict_scene (whole-scene convolution)"
    else:
        if scene_kwargs:
            raise TypeError(
                f"{type(estimator).__name__} has no predict_scene; unexpected {sorted(scene_kwargs)}."
            )
        from soilbook.data.scene import scene_covariates

        window = _window(estimator)
        covariates = scene_covariates(scene)  # once, not once per chunk
        if window is not None and "layers" in scene.data_vars:  # keep each chunk's patches ≲ 256 MB
            per_pixel = 4 * scene.sizes.get("layer", 1) * window * window
            chunk_pixels = max(1, min(chunk_pixels, 2**28 // per_pixel))
        values = np.empty(height * width, dtype=np.float64)
        flat = np.arange(height * width)
        for start in range(0, flat.size, chunk_pixels):
            idx = flat[start : start + chunk_pixels]
            rows, cols = np.divmod(idx, width)
            ds = _pixels(scene, rows, cols, window, covariates)
            values[idx] = np.asarray(estimator.predict(ds), dtype=np.float64).ravel()
        values = values.reshape(height, width)
        method = f"predict on pixel chunks of {chunk_pixels}"
    if values.shape != (height, width):
        raise ValueError(
            f"the estimator returned a map of shape {values.shape}; expected {(height, width)}."
        )
    units, long_name = _target_attrs(estimator, scene)
    attrs = {
        "units": units,
        "long_name": f"predicted {long_name}",
        "model": type(estimator).__name__,
        "method": method,
    }
    return _map_like(scene, values, "prediction", attrs)


def predict_map_naive(
    estimator: Any,
    scene: xr.Dataset,
    rows: Sequence[int] | np.ndarray,
    cols: Sequence[int] | np.ndarray,
) -> np.ndarray:
    """Predict the pixels (rows[i], cols[i]) one at a time — the slow reference.

    For each pixel: cut its window from the scene, build a one-sample dataset
    (:func:`soilbook.data.scene.pixels_as_samples`) and call ``estimator.predict``. The scene's
    covariates (:func:`soilbook.data.scene.scene_covariates`) are computed once beforehand, so
    the loop is charged only with genuinely per-pixel work. Used by
    ``benchmarks/bench_maps.py`` to show what :func:`predict_map` saves, and by the tests to
    check that both give the same values. Returns ndarray (len(rows),) float64.
    """
    validate_scene(scene)
    rows = np.asarray(rows, dtype=int).ravel()
    cols = np.asarray(cols, dtype=int).ravel()
    if rows.shape != cols.shape:
        raise ValueError(f"rows ({rows.size}) and cols ({cols.size}) must have the same length.")
    from soilbook.data.scene import scene_covariates

    window = _window(estimator)
    covariates = scene_covariates(scene)  # computed once, so the loop times only per-pixel work
    out = np.empty(rows.size, dtype=np.float64)
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        ds = _pixels(scene, np.array([r]), np.array([c]), window, covariates)
        out[i] = float(np.asarray(estimator.predict(ds), dtype=np.float64).ravel()[0])
    return out


# -- honest map scores ----------------------------------------------------------------------------


def pixel_blocks(scene: xr.Dataset, block_side_m: float) -> np.ndarray:
    """Spatial-block label of every pixel, ndarray (y, x) of str.

    The same rule as the samples' ``group`` (:func:`soilbook.data.scene.sample_scene`):
    :func:`soilbook.geo.spatial_blocks` on ``(col · pixel, row · pixel)`` with origin (0, 0), so
    blocks are counted from the scene's north-west pixel and a pixel's label equals the
    ``group`` a sample at that pixel gets with ``block_size_m = block_side_m``.
    """
    from soilbook.data.scene import block_ids

    ny, nx = int(scene.sizes["y"]), int(scene.sizes["x"])
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    return block_ids(scene, rows, cols, float(block_side_m)).reshape(ny, nx)


def _pixel_size(scene: xr.Dataset) -> float:
    return float(scene.attrs.get("pixel_size_m", abs(float(scene["x"][1] - scene["x"][0]))))


def _sample_pixels(scene: xr.Dataset, samples: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in ``scene`` of every sample (``row``/``col``, else nearest ``x_m``/``y_m``)."""
    from soilbook.errors import SchemaError

    if "row" in samples.coords and "col" in samples.coords:
        rows = np.asarray(samples["row"].values, dtype=np.int64)
        cols = np.asarray(samples["col"].values, dtype=np.int64)
    elif "x_m" in samples.coords and "y_m" in samples.coords:
        xs, ys = scene["x"].values.astype(float), scene["y"].values.astype(float)
        sx = np.asarray(samples["x_m"].values, dtype=float)
        sy = np.asarray(samples["y_m"].values, dtype=float)
        cols = np.abs(sx[:, None] - xs[None, :]).argmin(axis=1)
        rows = np.abs(sy[:, None] - ys[None, :]).argmin(axis=1)
    else:
        raise SchemaError(
            "the samples have neither row/col nor x_m/y_m coordinates, so they cannot be placed "
            "on the scene. Expected a sample set from soilbook.data.scene.sample_scene."
        )
    ny, nx = int(scene.sizes["y"]), int(scene.sizes["x"])
    if rows.size and (rows.min() < 0 or rows.max() >= ny or cols.min() < 0 or cols.max() >= nx):
        raise SchemaError(
            f"sample rows/cols fall outside the {ny} x {nx} scene; were the samples drawn from "
            "another scene?"
        )
    return rows, cols


def heldout_block_mask(
    scene: xr.Dataset,
    samples: xr.Dataset,
    train_idx: Sequence[int] | np.ndarray,
    block_side_m: float,
    *,
    buffer_m: float = 0.0,
) -> xr.DataArray:
    """Pixels of ``scene`` in spatial blocks that hold no training sample of a fold.

    Parameters
    ----------
    scene
        The scene the samples were drawn from.
    samples
        The sample set (``row``/``col`` coordinates, as from
        :func:`soilbook.data.scene.sample_scene`; otherwise ``x_m``/``y_m`` are snapped to the
        nearest pixel).
    train_idx
        Positional indices of the samples the mapped model was trained on (e.g. the last fold's
        training set, or every sample for a model fitted on all data).
    block_side_m
        Block side in metres; the blocks are :func:`pixel_blocks`. Use the samples'
        ``attrs["block_size_m"]`` to match their ``group``.
    buffer_m
        Also drop pixels closer than this (m, between pixel centres) to any training sample,
        e.g. at the edge of a held-out block next to a training block. 0: no buffer.

    Returns
    -------
    xarray.DataArray (y, x) of bool, True where the pixel is held out; ``attrs``:
    ``block_side_m``, ``buffer_m``, ``n_pixels`` (True count), ``share`` (of all pixels),
    ``n_train_blocks``, ``description``.
    """
    from soilbook.errors import ParameterError, SchemaError

    validate_scene(scene)
    if not np.isfinite(block_side_m) or block_side_m <= 0:
        raise ParameterError(f"block_side_m={block_side_m!r}; expected a positive size in m.")
    if not np.isfinite(buffer_m) or buffer_m < 0:
        raise ParameterError(f"buffer_m={buffer_m!r}; expected a distance >= 0 in m.")
    train = np.asarray(train_idx, dtype=np.int64).ravel()
    n = int(samples.sizes["sample"])
    if train.size and (train.min() < 0 or train.max() >= n):
        raise ParameterError(f"train_idx holds indices outside 0..{n - 1} (the samples).")
    rows, cols = _sample_pixels(scene, samples)
    blocks = pixel_blocks(scene, block_side_m)
    train_blocks = np.unique(blocks[rows[train], cols[train]])
    if (
        "group" in samples.coords
        and np.isclose(float(samples.attrs.get("block_size_m", np.nan)), block_side_m)
        and not np.array_equal(
            np.asarray(samples["group"].values).astype(str), blocks[rows, cols].astype(str)
        )
    ):
        raise SchemaError(
            "the samples' 'group' labels differ from the scene's blocks of the same side; the "
            "samples were grouped by another rule, so held-out blocks would be wrong."
        )
    mask = ~np.isin(blocks, train_blocks)
    if buffer_m > 0 and train.size:
        from scipy.spatial import cKDTree

        px = _pixel_size(scene)
        ny, nx = blocks.shape
        pr, pc = np.divmod(np.arange(ny * nx), nx)
        tree = cKDTree(np.column_stack([cols[train] * px, rows[train] * px]))
        near, _ = tree.query(np.column_stack([pc * px, pr * px]), k=1)
        mask &= (near >= buffer_m).reshape(ny, nx)
    what = f"pixels in {block_side_m:g} m blocks without training samples"
    if buffer_m > 0:
        what += f", at least {buffer_m:g} m from any training sample"
    attrs = {
        "block_side_m": float(block_side_m),
        "buffer_m": float(buffer_m),
        "n_pixels": int(mask.sum()),
        "share": float(mask.mean()),
        "n_train_blocks": int(train_blocks.size),
        "description": what,
    }
    return _map_like(scene, mask, "heldout", attrs)


def _grid(a: Any, name: str) -> np.ndarray:
    if isinstance(a, xr.DataArray):
        a = a.transpose("y", "x").values if {"y", "x"} <= set(a.dims) else a.values
    return np.asarray(a)


def score_map(
    truth: xr.DataArray | np.ndarray,
    pred: xr.DataArray | np.ndarray,
    mask: xr.DataArray | np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of a predicted map against the true map on the pixels where ``mask`` is True.

    Parameters
    ----------
    truth, pred
        Maps (y, x) in the same unit (e.g. ``scene["target"]`` and :func:`predict_map`).
    mask
        Boolean (y, x), e.g. :func:`heldout_block_mask`; None: every pixel. Pixels where truth
        or prediction is NaN are left out as well.

    Returns
    -------
    dict: :func:`soilbook.evaluate.metrics_table` (``rmse``, ``mae``, ``r2``, ``bias``, ``ccc``,
    ``rpiq``, ``n``) plus ``n_pixels`` (int, pixels scored) and ``share`` (of all pixels).
    """
    from soilbook.errors import ParameterError
    from soilbook.evaluate import metrics_table

    t, p = _grid(truth, "truth").astype(float), _grid(pred, "pred").astype(float)
    m = np.ones(t.shape, bool) if mask is None else _grid(mask, "mask").astype(bool)
    if not t.shape == p.shape == m.shape:
        raise ParameterError(
            f"truth {t.shape}, pred {p.shape} and mask {m.shape} differ; give maps of one grid."
        )
    sel = m & np.isfinite(t) & np.isfinite(p)
    if not sel.any():
        raise ParameterError(
            "the mask selects no pixel with a finite truth and prediction; every block holds "
            "training samples. What to do: map a model that held blocks out (a CV fold), or "
            "use an independently simulated scene."
        )
    out = metrics_table(t[sel], p[sel])
    out["n_pixels"] = int(sel.sum())
    out["share"] = float(sel.sum() / sel.size)
    return out


def scene_table(
    scene: xr.Dataset,
    transform: Callable[[xr.Dataset], np.ndarray] | None = None,
    *,
    chunk_pixels: int = 65536,
) -> np.ndarray:
    """The feature table of every pixel, row by row: ndarray (n_y · n_x, n_feature) float32.

    ``transform`` maps a sample set to its table (e.g. a baseline's ``transform``); default
    :func:`soilbook.data.schema.to_tabular`. Pixels are turned into sample sets in chunks.
    """
    from soilbook.data.scene import scene_covariates
    from soilbook.data.schema import to_tabular

    validate_scene(scene)
    transform = to_tabular if transform is None else transform
    ny, nx = int(scene.sizes["y"]), int(scene.sizes["x"])
    cov = scene_covariates(scene)
    parts = []
    flat = np.arange(ny * nx)
    for start in range(0, flat.size, max(1, int(chunk_pixels))):
        rows, cols = np.divmod(flat[start : start + chunk_pixels], nx)
        parts.append(np.asarray(transform(_pixels(scene, rows, cols, None, cov))))
    return np.concatenate(parts, axis=0)


def _map_like(scene: xr.Dataset, values: np.ndarray, name: str, attrs: dict) -> xr.DataArray:
    """``values`` (one per pixel, any shape of ny * nx) as a (y, x) map on the scene's grid
    named ``name``, with ``attrs`` plus the scene's ``simulated`` flag."""
    coords = {d: scene[d] for d in ("y", "x") if d in scene.coords}
    ny, nx = int(scene.sizes["y"]), int(scene.sizes["x"])
    return xr.DataArray(
        values.reshape(ny, nx),
        dims=("y", "x"),
        coords=coords,
        name=name,
        attrs={**attrs, "simulated": bool(scene.attrs.get("simulated", False))},
    )


def quantile_map(
    model: Any,
    train: xr.Dataset,
    scene: xr.Dataset,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
) -> xr.DataArray:
    """Quantile-regression-forest quantiles of every pixel (Meinshausen 2006).

    ``model`` is a fitted random-forest baseline (duck-typed: ``transform`` and a forest, also
    inside ``Log1pTarget``; see :func:`soilbook.uncertainty.find_forest`), ``train`` the sample
    set it was fitted on. Returns xarray.DataArray (quantile, y, x) in the target's unit.
    """
    from soilbook.uncertainty import QuantileForest

    qf = QuantileForest.from_model(model, train)
    values = qf.predict(scene_table(scene, qf.transform_), quantiles)  # (n_pixels, n_q)
    units = str(train["target"].attrs.get("units", ""))
    ny, nx = int(scene.sizes["y"]), int(scene.sizes["x"])
    coords = {d: scene[d] for d in ("y", "x") if d in scene.coords}
    return xr.DataArray(
        values.T.reshape(-1, ny, nx),
        dims=("quantile", "y", "x"),
        coords={"quantile": np.asarray(quantiles, dtype=float), **coords},
        name="quantile",
        attrs={
            "units": units,
            "long_name": "quantile regression forest quantile",
            "method": "Meinshausen (2006) leaf co-membership weights on all training samples",
            "model": type(model).__name__,
            "simulated": bool(scene.attrs.get("simulated", False)),
        },
    )


def conformal_map(
    pred: xr.DataArray, residuals: Any, level: float = 0.9, *, log1p: bool = False
) -> xr.Dataset:
    """Conformal interval of every pixel of a predicted map: Dataset ``low``, ``high`` (y, x).

    ``residuals`` are the model's out-of-fold residuals (:func:`soilbook.uncertainty.oof_residuals`,
    on the log1p scale when ``log1p``); see :func:`soilbook.uncertainty.conformal_interval`.
    """
    from soilbook.uncertainty import conformal_halfwidth, conformal_interval

    low, high = conformal_interval(pred.values, residuals, level, log1p=log1p)
    attrs = {
        "units": pred.attrs.get("units", ""),
        "level": float(level),
        "halfwidth": conformal_halfwidth(residuals, level),
        "scale": "log1p" if log1p else "target",
        "method": "split conformal from out-of-fold absolute residuals",
        "simulated": bool(pred.attrs.get("simulated", False)),
    }
    return xr.Dataset(
        {
            "low": (pred.dims, low, {**attrs, "long_name": f"{level:.0%} interval, lower"}),
            "high": (pred.dims, high, {**attrs, "long_name": f"{level:.0%} interval, upper"}),
        },
        coords=pred.coords,
        attrs=attrs,
    )


def score_interval_map(
    truth: xr.DataArray | np.ndarray,
    low: xr.DataArray | np.ndarray,
    high: xr.DataArray | np.ndarray,
    mask: xr.DataArray | np.ndarray | None = None,
    *,
    level: float | None = None,
) -> dict[str, float]:
    """Coverage and width of interval maps on the masked pixels.

    Returns :func:`soilbook.uncertainty.interval_summary` (``coverage``, ``mean_width``,
    ``median_width``, ``n``, and with ``level`` also ``nominal`` and ``interval_score``) plus
    ``n_pixels``.
    """
    from soilbook.errors import ParameterError
    from soilbook.uncertainty import interval_summary

    t = _grid(truth, "truth").astype(float)
    lo, hi = _grid(low, "low").astype(float), _grid(high, "high").astype(float)
    m = np.ones(t.shape, bool) if mask is None else _grid(mask, "mask").astype(bool)
    if not t.shape == lo.shape == hi.shape == m.shape:
        raise ParameterError("truth, low, high and mask must be maps of one grid (y, x).")
    out = interval_summary(t[m], lo[m], hi[m], level=level)
    out["n_pixels"] = int(m.sum())
    return out


def applicability_map(
    train: xr.Dataset,
    scene: xr.Dataset,
    *,
    transform: Callable[[xr.Dataset], np.ndarray] | None = None,
    weights: Any = None,
    folds: Any = None,
    threshold: float | None = None,
) -> xr.Dataset:
    """Dissimilarity index and area of applicability of every pixel (Meyer & Pebesma 2021).

    Parameters
    ----------
    train
        The training sample set of the mapped model.
    scene
        The scene.
    transform
        Sample set -> predictor table (default :func:`soilbook.data.schema.to_tabular`; a
        baseline's ``transform`` is the same table).
    weights
        Per-predictor weights, e.g. the model's variable importance
        (:func:`soilbook.applicability.importance_weights`).
    folds
        The CV folds of the training samples (labels or ``[(train_idx, test_idx), ...]``) for
        the threshold; default leave-one-out.
    threshold
        A precomputed :func:`soilbook.applicability.aoa_threshold`.

    Returns
    -------
    xarray.Dataset with ``di`` (y, x) float and ``inside`` (y, x) bool; ``attrs["threshold"]``,
    ``attrs["share_inside"]``.
    """
    from soilbook.applicability import aoa_threshold, area_of_applicability
    from soilbook.data.schema import to_tabular

    transform = to_tabular if transform is None else transform
    X_train = np.asarray(transform(train))
    if threshold is None:
        threshold = aoa_threshold(X_train, weights, folds)
    di, inside = area_of_applicability(
        X_train, scene_table(scene, transform), weights=weights, threshold=threshold
    )
    attrs = {
        "threshold": float(threshold),
        "share_inside": float(inside.mean()),
        "method": "Meyer & Pebesma (2021) dissimilarity index; threshold = upper whisker of "
        "the training DI to other CV folds",
    }
    return xr.Dataset(
        {
            "di": _map_like(scene, di, "di", {"units": "1", "long_name": "dissimilarity index"}),
            "inside": _map_like(
                scene, inside, "inside", {"long_name": "inside the area of applicability"}
            ),
        },
        attrs={**attrs, "simulated": bool(scene.attrs.get("simulated", False))},
    )


def tile_windows(
    height: int, width: int, tile: int, halo: int
) -> list[tuple[slice, slice, slice, slice]]:
    """The windows that cover a ``height`` × ``width`` area tile by tile.

    Each entry is ``(read_y, read_x, keep_y, keep_x)``: the pixel rows / columns to read (a
    ``tile`` × ``tile`` core grown by up to ``halo`` pixels on every side, clipped to the area)
    and, inside that read window, the slices of the core to keep. Cores tile the area without
    overlap, so every pixel is written exactly once, from a window whose context reaches
    ``halo`` pixels beyond it. The halo softens seams at tile edges; it removes them only when
    it covers the network's receptive field and no layer pools over the whole window (chapter
    4's GRN and SE layers do, so their statistics differ slightly from window to window).
    """
    if tile < 1 or halo < 0:
        raise ValueError(f"tile={tile} must be >= 1 and halo={halo} >= 0.")
    out = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            ry0, rx0 = max(0, y0 - halo), max(0, x0 - halo)
            ry1, rx1 = min(height, y1 + halo), min(width, x1 + halo)
            out.append(
                (
                    slice(ry0, ry1),
                    slice(rx0, rx1),
                    slice(y0 - ry0, y1 - ry0),
                    slice(x0 - rx0, x1 - rx0),
                )
            )
    return out


def predict_area(
    predict_window: Callable[[np.ndarray, np.ndarray], np.ndarray],
    read_window: Callable[[slice, slice], tuple[np.ndarray, np.ndarray]],
    height: int,
    width: int,
    *,
    tile: int = 512,
    halo: int = 32,
    multiple: int = 32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Predict a large area tile by tile with bounded memory (chapter 4's dense maps).

    Parameters
    ----------
    predict_window : ``(inputs (1, c, h, w), valid (1, c, h, w)) -> (1, h, w)`` predictions,
        e.g. :meth:`soilbook.models.soil_moisture.SoilMoistureRegressor.predict_array`; ``h``
        and ``w`` are multiples of ``multiple`` (windows are padded with invalid pixels).
    read_window : ``(rows, cols) -> (inputs (c, h, w), valid (c, h, w))`` for slices of the area
        (a reader of a raster file, a memory map, a simulator).
    height, width : the area in pixels.
    tile, halo : the core side and the context around it (:func:`tile_windows`).
    out : a (height, width) float32 array to fill — e.g. :func:`numpy.lib.format.open_memmap`
        on disk, so that not even the result has to fit in memory; a new array when None.

    Returns ``out``. Memory beyond ``out`` is one window of inputs and its prediction: about
    ``(tile + 2·halo)² × (2c + 1) × 4`` bytes plus the network's activations.
    """
    if out is None:
        out = np.empty((height, width), dtype=np.float32)
    if out.shape != (height, width):
        raise ValueError(f"out has shape {out.shape}; expected {(height, width)}.")
    for ry, rx, ky, kx in tile_windows(height, width, tile, halo):
        x, v = read_window(ry, rx)
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)))
            v = np.pad(v, ((0, 0), (0, ph), (0, pw)))
        pred = np.asarray(predict_window(x[None], v[None]))[0, :h, :w]
        out[ry.start + ky.start : ry.start + ky.stop, rx.start + kx.start : rx.start + kx.stop] = (
            pred[ky, kx]
        )
    return out
