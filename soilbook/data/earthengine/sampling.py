"""Sampling requests at points, and the loop that downloads them.

Everything but :func:`download` is pure: it returns ``ee.FeatureCollection`` computations and
sends nothing. Only ``id``, ``lat`` and ``lon`` of a point travel to Earth Engine; targets and
other field data stay on this machine.

Choices
-------
- **Sampling grid**: the UTM zone of the points' centroid at ``scale`` metres (10 m by default),
  unless ``crs`` is given, so that a patch of ``window`` pixels is ``window * scale`` metres wide.
- **Downloads** (:func:`download`) are retried on 429 and transient errors (jittered
  exponential back-off, as :mod:`.pixels`) and, with a cache folder, kept batch by batch as
  checksummed JSON keyed by the request's hash: an interrupted extraction resumes.
- **Masked pixels** are filled with :data:`~.catalogue.FILL_VALUE` before sampling (otherwise
  ``sampleRegions`` silently drops a point when any band is masked) and turned back into NaN by
  :func:`~.convert.to_samples`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from soilbook.data.earthengine.catalogue import (
    FILL_VALUE,
    PATCH_VALUES_PER_BATCH,
    POINT_BATCH,
    patch_name,
)
from soilbook.data.earthengine.checks import (
    check_crs,
    check_points,
    check_positive,
    check_window,
    points_crs,
)
from soilbook.data.earthengine.pixels import (
    RateLimiter,
    _is_retryable,
    _verified,
    _write_checked,
    backoff_delay,
    check_workers,
    expression_key,
)
from soilbook.data.earthengine.session import _ee_ready
from soilbook.errors import DataUnavailableError

#: getInfo batches asked at once by :func:`download` (each is a heavier request than one pixel
#: piece, so fewer than Earth Engine's 40 concurrent requests by default).
DOWNLOAD_WORKERS = 8


def points_to_features(points: Sequence[Mapping[str, Any]]) -> Any:
    """An ``ee.FeatureCollection`` of the points, with properties ``id`` (str), ``lat``, ``lon``.

    Only these three travel to Earth Engine: targets and other field data stay local.
    """
    pts = check_points(points)
    ee = _ee_ready()
    return ee.FeatureCollection(
        [ee.Feature(ee.Geometry.Point([p["lon"], p["lat"]]), dict(p)) for p in pts]
    )


def sampling_args(
    points: Sequence[Mapping[str, Any]], scale: float, crs: str | None
) -> tuple[list[dict[str, Any]], float, str]:
    """Checked points, ``scale`` (m) and ``crs`` (default: the points' UTM zone)."""
    pts = check_points(points)
    scale = check_positive(scale, "scale", "10 (metres)")
    crs = check_crs(crs)
    return pts, scale, crs or points_crs(pts)


def sample_points(
    ee: Any, image: Any, pts: list[dict], scale: float, crs: str, tile_scale: float
) -> Any:
    """``image.sampleRegions`` at the checked points ``pts`` on a ``scale``-metre grid in
    ``crs``: one feature per point with ``id``, ``lat``, ``lon`` and one property per band."""
    return image.sampleRegions(
        collection=points_to_features(pts),
        properties=["id", "lat", "lon"],
        scale=scale,
        projection=ee.Projection(crs),
        tileScale=tile_scale,
        geometries=False,
    )


def point_values_request(
    image: Any,
    points: Sequence[Mapping[str, Any]],
    scale: float = 10,
    crs: str | None = None,
    tile_scale: float = 1,
) -> Any:
    """Values of every band of ``image`` at each point: one feature per point.

    Masked pixels are filled with :data:`~.catalogue.FILL_VALUE` first, so no point is dropped;
    sampling is on a ``scale``-metre grid in ``crs`` (default: the UTM zone of the points'
    centroid).

    Returns
    -------
    ee.FeatureCollection whose features carry ``id``, ``lat``, ``lon`` and one property per band.
    """
    pts, scale, crs = sampling_args(points, scale, crs)
    tile_scale = check_positive(tile_scale, "tile_scale", "1")
    ee = _ee_ready()
    return sample_points(ee, ee.Image(image).unmask(FILL_VALUE, False), pts, scale, crs, tile_scale)


def patch_arrays(ee: Any, image: Any, window: int) -> Any:
    """Every band of ``image`` as a (``window``, ``window``) array per pixel, masked pixels
    filled with :data:`~.catalogue.FILL_VALUE`."""
    kernel = ee.Kernel.square(radius=window // 2, units="pixels")
    return ee.Image(image).unmask(FILL_VALUE, False).neighborhoodToArray(kernel, FILL_VALUE)


def patch_request(
    image: Any,
    points: Sequence[Mapping[str, Any]],
    window: int = 65,
    scale: float = 10,
    crs: str | None = None,
    tile_scale: float = 1,
) -> Any:
    """``window`` x ``window`` pixel patches of every band of ``image`` centred on each point.

    Built with ``image.neighborhoodToArray(ee.Kernel.square(window // 2, 'pixels'))`` and
    ``sampleRegions`` on a ``scale``-metre grid in ``crs`` (default: the points' UTM zone), so a
    patch covers ``window * scale`` metres. Masked pixels read :data:`~.catalogue.FILL_VALUE`.
    Each band of a feature holds a nested list of shape (window, window): axis 0 is the image's
    y axis (row 0 is the northern edge), axis 1 its x axis (column 0 is the western edge).

    Returns
    -------
    ee.FeatureCollection with ``id``, ``lat``, ``lon`` and one array property per band.
    """
    window = check_window(window)
    pts, scale, crs = sampling_args(points, scale, crs)
    tile_scale = check_positive(tile_scale, "tile_scale", "1")
    ee = _ee_ready()
    return sample_points(ee, patch_arrays(ee, image, window), pts, scale, crs, tile_scale)


# -- composed requests: one image, sampled batch by batch --------------------------------------


def default_batch_size(n_patch_layers: int, window: int | None) -> int:
    """Points per ``getInfo`` call: :data:`~.catalogue.POINT_BATCH` without patches, fewer with
    patches so that one response stays near :data:`~.catalogue.PATCH_VALUES_PER_BATCH` values."""
    if not n_patch_layers or window is None:
        return POINT_BATCH
    return int(
        max(1, min(POINT_BATCH, PATCH_VALUES_PER_BATCH // (n_patch_layers * window * window)))
    )


def sampling_image(
    ee: Any,
    reflectance: Any,
    environment: Any,
    patch_layers: Sequence[str],
    window: int | None,
) -> Any:
    """The one image a composed request samples.

    Bands: those of ``reflectance`` and ``environment`` at the pixel (masked pixels filled with
    :data:`~.catalogue.FILL_VALUE`), and, for each of ``patch_layers`` (bands of
    ``environment``), a ``window`` x ``window`` array named ``patch_<layer>``.
    """
    image = reflectance.addBands(environment).unmask(FILL_VALUE, False)
    layers = list(patch_layers)
    if layers:
        arrays = patch_arrays(ee, environment.select(layers), window)
        image = image.addBands(arrays.select(layers, [patch_name(n) for n in layers]))
    return image


def sample_in_batches(
    ee: Any,
    image: Any,
    pts: list[dict],
    batch_size: int,
    scale: float,
    crs: str,
    tile_scale: float,
) -> tuple[Any, ...]:
    """One :func:`sample_points` request per chunk of ``batch_size`` checked points ``pts``."""
    return tuple(
        sample_points(ee, image, pts[i : i + batch_size], scale, crs, tile_scale)
        for i in range(0, len(pts), batch_size)
    )


def _batch_file(cache_dir: Path, batch: Any) -> Path:
    """``cache_dir / <sha256 of the batch's serialised request>.json``."""
    return cache_dir / f"{expression_key(batch)}.json"


def _cached_features(path: Path) -> list[dict] | None:
    """The features kept at ``path`` if its sha256 sidecar verifies, else ``None`` (missing,
    partial or damaged: ask again). JSON only: nothing is unpickled."""
    if not _verified(path):
        return None
    try:
        features = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return features if isinstance(features, list) else None


def _keep_features(path: Path, features: list[dict]) -> None:
    """Write ``features`` to ``path`` as JSON with its checksum (atomically)."""
    _write_checked(path, lambda fh: fh.write(json.dumps(features).encode()))


def _get_info(
    batch: Any, retries: int, sleep: Callable[[float], None], limiter: RateLimiter
) -> list[dict]:
    """The features of one ``getInfo()``, paced by ``limiter`` and retried with jittered
    exponential back-off on 429 and transient errors; raises
    :class:`~soilbook.errors.DataUnavailableError` when Earth Engine refuses it or still asks to
    retry after ``retries`` retries."""
    for attempt in range(retries + 1):
        limiter.acquire()
        try:
            info = batch.getInfo()
        except Exception as err:
            if not _is_retryable(err) or attempt == retries:
                first = (str(err).strip().splitlines() or [""])[0][:300]
                why = "still asked to retry" if _is_retryable(err) else "refused the request"
                raise DataUnavailableError(
                    f"Earth Engine {why} after {attempt + 1} attempt(s) ({type(err).__name__}: "
                    f"{first}). What to do: check the session and the request, wait a few "
                    "minutes, then rerun: with a cache folder the batches already answered are "
                    "kept and only the others are asked again."
                ) from None
            sleep(backoff_delay(attempt))
            continue
        return list(info.get("features", []) if isinstance(info, dict) else info)
    raise AssertionError("unreachable")  # pragma: no cover


def _answer(
    batch: Any,
    folder: Path | None,
    retries: int,
    sleep: Callable[[float], None],
    limiter: RateLimiter,
) -> list[dict]:
    """One batch's features: from the cache when a verified copy exists, else asked (and kept)."""
    path = None if folder is None else _batch_file(folder, batch)
    answer = None if path is None else _cached_features(path)
    if answer is None:
        answer = _get_info(batch, retries, sleep, limiter)
        if path is not None:
            _keep_features(path, answer)
    return answer


def download(
    batches: Iterable[Any],
    *,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    retries: int = 6,
    max_workers: int = DOWNLOAD_WORKERS,
    max_rate: float | None = 100.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """``getInfo()`` of each request in ``batches`` (talks to the server), the features of all
    batches concatenated in the batches' order; ``progress`` shows a bar, one step per batch.

    Batches are asked ``max_workers`` at a time (at most :data:`~.pixels.MAX_WORKERS`, Earth
    Engine's concurrent requests per project), at most ``max_rate`` per second. With
    ``cache_dir`` each batch's answer is kept as JSON (atomic write, sha256 sidecar) under the
    hash of its serialised request, so a rerun after an interruption asks only for the batches
    not yet answered, and a repeated extraction asks for none. Each ``getInfo`` is retried
    ``retries`` times on 429 and transient errors, with jittered exponential back-off; the
    first failure stops the download (batches answered so far stay cached).
    """
    from soilbook.progress import progress_bar

    workers = check_workers(max_workers)
    rate = None if max_rate is None else check_positive(max_rate, "max_rate", "100 (per second)")
    folder = None if cache_dir is None else Path(cache_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    batches = list(batches)
    limiter = RateLimiter(rate, sleep=sleep)
    answers: list[list[dict]] = []
    with (
        progress_bar(
            total=len(batches), disable=not progress, desc="Earth Engine batches", unit="batch"
        ) as bar,
        ThreadPoolExecutor(max_workers=min(workers, max(1, len(batches)))) as pool,
    ):
        futures = [
            pool.submit(_answer, batch, folder, retries, sleep, limiter) for batch in batches
        ]
        try:
            for future in futures:
                answers.append(future.result())
                bar.update(1)
        finally:
            for future in futures:
                future.cancel()
    return [feature for answer in answers for feature in answer]
