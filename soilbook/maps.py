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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from soilbook.data.schema import validate_scene

__all__ = ["predict_map", "predict_map_naive"]


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
    coords = {d: scene[d] for d in ("y", "x") if d in scene.coords}
    return xr.DataArray(
        values,
        dims=("y", "x"),
        coords=coords,
        name="prediction",
        attrs={
            "units": units,
            "long_name": f"predicted {long_name}",
            "model": type(estimator).__name__,
            "method": method,
            "simulated": bool(scene.attrs.get("simulated", False)),
        },
    )


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
