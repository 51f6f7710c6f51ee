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

import numpy as np
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
    check_area,
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
from soilbook.data.earthengine.scene import check_aoi
from soilbook.data.earthengine.session import _ee_ready, ensure_initialized
from soilbook.errors import ParameterError

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


def _salinity_layers(
    box: tuple[float, ...],
    windows: tuple[tuple[str, str], ...],
    cloud_prob_max: float,
    bands: tuple[str, ...],
    tpi_radius_m: float,
    covariate_names: list[str],
) -> tuple[Any, Any, Any]:
    """``ee``, the Sentinel-2 stack (bands ``<band>_t<i>``) and the environment (bands
    ``covariate_names``) read over ``box``: what both the point request and the pixel image
    are made of (checked arguments)."""
    images = sentinel2_window_composites(box, windows, cloud_prob_max, bands)
    ee = _ee_ready()
    environment = _environment(box, windows, images, tpi_radius_m, covariate_names)
    return ee, stack_windows(ee, images, bands), environment


def salinity_pixel_names(n_windows: int, bands: Sequence[str] = DEFAULT_BANDS) -> list[str]:
    """The bands of the salinity pixel image (and the features of :func:`pixel_features`), in
    order: reflectance ``<band>_t<i>`` window by window, then :func:`salinity_covariates`."""
    if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
        raise ParameterError(f"n_windows = {n_windows!r} must be an int >= 1 (date windows).")
    bands = check_bands(bands)
    reflectance = [dated(b, i) for i in range(n_windows) for b in bands]
    return reflectance + salinity_covariates(n_windows, bands)


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

    ee, reflectance, environment = _salinity_layers(
        box, windows, cloud, bands, tpi_radius_m, covariate_names
    )
    image = sampling_image(ee, reflectance, environment, layers, window)
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


def _aoi_corners(box: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    """The south-west and north-east corners of ``box`` as points (for the point checks)."""
    west, south, east, north = box
    return [
        {"id": "aoi south-west corner", "lat": south, "lon": west},
        {"id": "aoi north-east corner", "lat": north, "lon": east},
    ]


def precheck_area(aoi: Any, dates: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Check an area of interest to map (``(west, south, east, north)`` or ``"w,s,e,n"``) and
    the date windows against every collection the salinity image reads, before any ``ee``
    call; return the area's corners as checked points."""
    return precheck_salinity(_aoi_corners(check_aoi(aoi)), dates, window=None, target_key=None)


def salinity_pixel_image(
    aoi: Any,
    dates: Sequence[tuple[str, str]],
    *,
    scale: float = 10,
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
    tpi_radius_m: float = 300.0,
) -> tuple[Any, list[str]]:
    """The per-pixel image that :func:`build_salinity_request` samples at points, over an area
    of interest, for mapping it (pure: nothing is sent).

    ``aoi`` is ``(west, south, east, north)`` in WGS84 degrees (or ``"west,south,east,north"``);
    the layers are read over it widened by :data:`~..request.REGION_MARGIN_M` (as the point
    request widens the points' box), so that the terrain filter and bilinear resampling see data
    at its edges. ``scale`` (m) is the grid it will be read on: an area of more than
    :data:`~..checks.MAX_AREA_PIXELS` pixels at it is refused first. The dates, bands and the
    area's corners are checked against :data:`SALINITY_COLLECTIONS`, all before any ``ee`` call.

    Returns ``(image, names)``: the ``ee.Image`` with bands ``names`` =
    :func:`salinity_pixel_names` (Sentinel-2 ``<band>_t<i>``, then the covariates in
    :func:`salinity_covariates` order), masked pixels filled with
    :data:`~..catalogue.FILL_VALUE`; read it with
    :func:`~..scene.lazy_image` ``(image, names, area_grid(aoi, scale))``.
    """
    box = check_aoi(aoi)
    check_area(box, scale)
    windows = check_dates(dates)
    bands = check_bands(bands)
    cloud = check_cloud_prob_max(cloud_prob_max)
    check_positive(tpi_radius_m, "tpi_radius_m", "300")
    corners = precheck_area(box, windows)
    region = request_region(corners, None, scale)
    ee, reflectance, environment = _salinity_layers(
        region, windows, cloud, bands, tpi_radius_m, salinity_covariates(len(windows), bands)
    )
    image = sampling_image(ee, reflectance, environment, [], None)
    return image, salinity_pixel_names(len(windows), bands)


def pixel_features(samples: xr.Dataset, names: Sequence[str]) -> np.ndarray:
    """The values of the salinity sample set ``samples`` as a table (n_sample, len(names)),
    column ``j`` the feature ``names[j]``.

    A name ``<band>_t<i>`` is ``reflectance`` (sample, date, band) of that band at date index
    ``i``; any other name is a ``covariates`` (sample, feature) column. With ``names`` from
    :func:`salinity_pixel_image` a scikit-learn model fitted on this table predicts the pixels of
    :func:`~..scene.lazy_image` ``(image, names, grid)`` (its band axis is in the same order).
    Missing values stay NaN. Raises :class:`~soilbook.errors.ParameterError` naming every name
    the samples lack.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ParameterError(
            f"names = {names!r} must be a non-empty list of feature names, e.g. the names "
            "salinity_pixel_image returns."
        )
    if not isinstance(samples, xr.Dataset):
        raise ParameterError(
            f"samples is a {type(samples).__name__}; expected a sample set (xarray.Dataset "
            "with reflectance (sample, date, band) and/or covariates (sample, feature))."
        )
    columns = _feature_columns(samples)
    missing = [n for n in names if n not in columns]
    if missing:
        raise ParameterError(
            f"the samples have no feature(s) {missing}; they have {sorted(columns)}. What to "
            "do: extract the samples with the same dates, bands and covariates as the image "
            "(build_salinity_request / extract_salinity_inputs with the same arguments)."
        )
    return np.stack([columns[n] for n in names], axis=1).astype(np.float64)


def _feature_columns(samples: xr.Dataset) -> dict[str, np.ndarray]:
    """Every feature of ``samples`` by name: its column (n_sample,) (views, no copies)."""
    columns: dict[str, np.ndarray] = {}
    if "reflectance" in samples.data_vars:
        refl = samples["reflectance"].transpose("sample", "date", "band")
        values = refl.values
        for t in range(refl.sizes["date"]):
            for b, band in enumerate(map(str, refl["band"].values)):
                columns[dated(band, t)] = values[:, t, b]
    if "covariates" in samples.data_vars:
        cov = samples["covariates"].transpose("sample", "feature")
        values = cov.values
        for f, name in enumerate(map(str, cov["feature"].values)):
            columns[name] = values[:, f]
    return columns


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
    "pixel_features",
    "precheck_area",
    "precheck_salinity",
    "salinity_covariates",
    "salinity_pixel_image",
    "salinity_pixel_names",
]
