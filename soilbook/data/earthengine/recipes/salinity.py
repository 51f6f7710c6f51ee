"""The salinity chapter's recipe (SS-SoilNet): Sentinel-2, terrain, crop and index layers.

For each field point: Sentinel-2 reflectance of every date window (``<band>_t<i>``),
covariates at its pixel (terrain ``elevation``, ``slope``, ``tpi``; per window ``Lai``,
``Fpar``, ``NDVI``, ``SI``) and ``window`` x ``window`` patches of those layers. The target is
soil salt content in g/kg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from soilbook.data.earthengine.catalogue import (
    DEFAULT_BANDS,
    GLO30,
    MCD15A3H,
    S2_CLOUD_PROBABILITY,
    S2_SR,
    dated,
    layer_info,
)
from soilbook.data.earthengine.checks import (
    check_bands,
    check_batch_size,
    check_cloud_prob_max,
    check_coverage,
    check_crs,
    check_dates,
    check_points,
    check_positive,
    check_targets,
    check_window,
    points_crs,
)
from soilbook.data.earthengine.layers import (
    crop_layers,
    sentinel2_window_composites,
    spectral_index_layers,
    stack_windows,
    terrain_layers,
)
from soilbook.data.earthengine.request import (
    Request,
    choose_patch_layers,
    extract,
    request_region,
)
from soilbook.data.earthengine.sampling import (
    default_batch_size,
    sample_in_batches,
    sampling_image,
)
from soilbook.data.earthengine.session import _ee_ready, ensure_initialized

#: The collections one salinity extraction reads.
SALINITY_COLLECTIONS = (S2_SR, S2_CLOUD_PROBABILITY, GLO30, MCD15A3H)
#: What the points' measured value is.
TARGET_NAME = "soil salt content"
TARGET_UNITS = "g/kg"
#: Bands the spectral indices need (NDVI: B8, B4; SI: B2, B4).
INDEX_BANDS = ("B2", "B4", "B8")


@dataclass(frozen=True)
class SalinityRequest(Request):
    """A composed salinity-inputs request (:class:`~..request.Request` with the salinity
    chapter's collections and target)."""

    collections: tuple[str, ...] = SALINITY_COLLECTIONS
    target_name: str = TARGET_NAME
    target_units: str = TARGET_UNITS


def salinity_covariates(n_windows: int, bands: Sequence[str]) -> list[str]:
    """Names of the environmental layers, in order: terrain, then ``Lai``/``Fpar`` per window,
    then ``NDVI``/``SI`` per window when ``bands`` hold B2, B4 and B8."""
    names = ["elevation", "slope", "tpi"]
    for i in range(n_windows):
        names += [dated(n, i) for n in ("Lai", "Fpar")]
    if _with_indices(bands):
        for i in range(n_windows):
            names += [dated(n, i) for n in ("NDVI", "SI")]
    return names


def _with_indices(bands: Sequence[str]) -> bool:
    """Whether ``bands`` hold what the spectral indices need (:data:`INDEX_BANDS`)."""
    return all(b in bands for b in INDEX_BANDS)


def _environment(
    box: tuple[float, ...],
    windows: tuple[tuple[str, str], ...],
    images: list[Any],
    tpi_radius_m: float,
    names: list[str],
) -> Any:
    """Terrain, crop and (with the index bands) index layers as one image with bands ``names``."""
    environment = terrain_layers(box, tpi_radius_m).addBands(crop_layers(box, windows))
    if any(n.startswith("NDVI_t") for n in names):
        environment = environment.addBands(spectral_index_layers(images))
    return environment.select(names)


def build_salinity_request(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    window: int | None = 65,
    *,
    scale: float = 10,
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
    crs: str | None = None,
    patch_layers: Sequence[str] | None = None,
    batch_size: int | None = None,
    tpi_radius_m: float = 300.0,
    tile_scale: float = 1,
) -> SalinityRequest:
    """Compose the SS-SoilNet inputs into one request (pure: nothing is sent).

    For each point: Sentinel-2 reflectance of every window (``<band>_t<i>``), covariates at its
    pixel (terrain ``elevation``, ``slope``, ``tpi``; per window ``Lai``, ``Fpar``, ``NDVI``,
    ``SI``), and — unless ``window`` is ``None`` — ``window`` x ``window`` patches of the
    environmental layers (``patch_layers``, default all covariates) as ``patch_<layer>``.

    The region is the points' bounding box widened by half a patch plus 1 km; the sampling grid
    is ``crs`` (default: the points' UTM zone) at ``scale`` metres. Points are split into
    ``batch_size`` chunks (default: 500 without patches, fewer with patches so that one response
    stays near :data:`~..catalogue.PATCH_VALUES_PER_BATCH` values).
    """
    pts = check_points(points)
    windows = check_dates(dates)
    bands = check_bands(bands)
    if window is not None:
        window = check_window(window)
    scale = check_positive(scale, "scale", "10 (metres)")
    cloud = check_cloud_prob_max(cloud_prob_max)
    tile_scale = check_positive(tile_scale, "tile_scale", "1")
    check_positive(tpi_radius_m, "tpi_radius_m", "300")
    check_batch_size(batch_size)
    covariate_names = salinity_covariates(len(windows), bands)
    layers = choose_patch_layers(window, patch_layers, covariate_names)
    size = batch_size or default_batch_size(len(layers), window)
    box = request_region(pts, window, scale)
    crs = check_crs(crs) or points_crs(pts)

    images = sentinel2_window_composites(box, windows, cloud, bands)
    ee = _ee_ready()
    environment = _environment(box, windows, images, tpi_radius_m, covariate_names)
    image = sampling_image(ee, stack_windows(ee, images, bands), environment, layers, window)
    return SalinityRequest(
        image=image,
        batches=sample_in_batches(ee, image, pts, size, scale, crs, tile_scale),
        points=tuple(pts),
        dates=windows,
        bands=bands,
        covariates={n: layer_info(n)[1] for n in covariate_names},
        patch_layers={n: layer_info(n)[1] for n in layers},
        window=window,
        scale=scale,
        crs=crs,
        batch_size=size,
        params={
            "window": window if window is not None else 0,
            "scale_m": scale,
            "cloud_prob_max": cloud,
            "cloud_mask": "s2cloudless probability < cloud_prob_max and SCL != 3 (cloud shadow)",
            "composite": "median per window [start, end)",
            "tpi_radius_m": float(tpi_radius_m),
        },
    )


def precheck_salinity(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    window: int | None = 65,
    target_key: str | None = "target",
) -> list[dict[str, Any]]:
    """Check a salinity extraction in plain Python, before any ``ee`` call, and return the
    checked points: the points (:func:`~..checks.check_points`), the date windows (after
    Sentinel-2 SR began), the patch ``window`` (odd, or ``None``), every point's measured
    ``target_key`` (unless ``None``) and every point and window against the footprint and life
    of each of :data:`SALINITY_COLLECTIONS` (:func:`~..checks.check_coverage`). Raises
    :class:`~soilbook.errors.ParameterError` naming what was wrong and what to do.
    """
    pts = check_points(points)
    windows = check_dates(dates)
    if window is not None:
        check_window(window)
    if target_key is not None:
        check_targets(points, target_key)
    for collection in SALINITY_COLLECTIONS:
        check_coverage(collection, pts, windows)
    return pts


def extract_salinity_inputs(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    window: int | None = 65,
    *,
    target_key: str = "target",
    group_key: str | None = None,
    project: str | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    **request_kwargs: Any,
) -> xr.Dataset:
    """Extract the salinity chapter's inputs at field samples from Earth Engine (needs a live
    session and internet).

    ``points`` are dicts with ``id``, ``lat``, ``lon`` and the measured ``target_key`` (salt
    content in g/kg; it never leaves this machine). Initialises Earth Engine from the
    environment when needed (:func:`~..session.initialize`), composes
    :func:`build_salinity_request` (``request_kwargs`` go to it), calls ``getInfo`` on each
    batch of points and returns :func:`~..convert.to_samples` of the lot.
    """
    precheck_salinity(points, dates, window, target_key)  # fail before any request
    ensure_initialized(project)
    request = build_salinity_request(points, dates, window, **request_kwargs)
    return extract(
        request,
        points,
        target_key=target_key,
        group_key=group_key,
        progress=progress,
        cache_dir=cache_dir,
    )


__all__ = [
    "SALINITY_COLLECTIONS",
    "SalinityRequest",
    "build_salinity_request",
    "extract_salinity_inputs",
    "precheck_salinity",
    "salinity_covariates",
]
