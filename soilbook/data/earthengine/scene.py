"""Lazy scenes from Earth Engine: an image over a user's area, read block by block by dask.

:func:`lazy_image` gives an ``ee.Image`` on a :class:`~.pixels.PixelGrid` as a dask-backed
:class:`xarray.DataArray` ``(band, y, x)``: nothing is requested when it is built; when dask
computes a block, that block's sub-grid alone is fetched with :func:`~.pixels.fetch_image`
(pieces under Earth Engine's limits, retried with back-off, cached piece by piece and resumable
with ``cache_dir``). Wrapped as a Dataset it is the scene :func:`soilbook.lazymaps.predict_lazy`
maps and :func:`soilbook.lazymaps.write_map` writes, so a map of an area larger than memory
streams from Earth Engine to disk::

    grid = area_grid(aoi, scale=10)
    scene = lazy_image(image, names, grid, cache_dir="ee-cache")
    lazy = predict_lazy(estimator_block(model), xr.Dataset({"bands": scene}, attrs=scene.attrs))
    write_map(lazy, "map.zarr")

:func:`area_grid` makes the grid of an area of interest (its UTM zone by default) and refuses an
area too large for one extraction before anything else.

Choices
-------
- **One block, one fetch**: a block of ``chunk`` x ``chunk`` pixels holds every band; its
  fetch splits it further if one answer would pass Earth Engine's limits.
- **Shared limits**: the requests of all blocks of one scene share one gate of at most
  ``max_workers`` requests in flight and ``max_rate`` per second, however many blocks dask
  computes at once (per process: each process of a ``dask.distributed`` cluster has its own
  gate, and needs its own initialised ``ee`` session).
- **Deterministic keys**: the dask name is the sha256 of the image's expression, the grid, the
  bands and the chunk, so the same scene rebuilt in a new process has the same graph (and
  :func:`~soilbook.lazymaps.write_map` can resume it).
- **float32**: values as float32 (Sentinel-2 reflectance and the covariates need no more);
  masked pixels (:data:`~.catalogue.FILL_VALUE`) are NaN.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from soilbook.data.earthengine.checks import (
    MAX_AREA_PIXELS,
    check_area,
    check_bbox,
    check_crs,
    check_int,
    utm_crs,
)
from soilbook.data.earthengine.pixels import (
    MAX_WORKERS,
    EarthEngineTransport,
    PixelGrid,
    RateLimiter,
    Transport,
    _check_band_names,
    _check_options,
    expression_key,
    fetch_image,
    grid_for_bbox,
)
from soilbook.data.earthengine.points import parse_aoi
from soilbook.errors import ParameterError

__all__ = ["DEFAULT_MAX_RATE", "area_grid", "check_aoi", "lazy_image"]

#: Requests per second of a lazy scene unless ``max_rate`` is given (as :func:`~.pixels.fetch_image`).
DEFAULT_MAX_RATE = 100.0


# -- the grid of an area of interest -----------------------------------------------------------


def check_aoi(aoi: Any) -> tuple[float, float, float, float]:
    """An area of interest as a checked ``(west, south, east, north)`` box in WGS84 degrees:
    a sequence of four numbers or a ``"west,south,east,north"`` string (:func:`~.points.parse_aoi`)."""
    if isinstance(aoi, str):
        box = parse_aoi(aoi)
        if box is None:
            raise ParameterError(
                "aoi is empty; give 'west,south,east,north' in degrees, e.g. "
                "'118.8,37.6,119.0,37.9'."
            )
        return box
    return check_bbox(aoi)


def _check_metres(crs: str) -> None:
    """Refuse a CRS whose x axis is not in metres (``scale`` is in metres)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        units = {axis.unit_name for axis in CRS.from_user_input(crs).axis_info}
    except CRSError:
        raise ParameterError(
            f"crs = {crs!r} is not a CRS pyproj knows; give e.g. 'EPSG:32650' (UTM 50N)."
        ) from None
    if not units <= {"metre", "meter"}:
        raise ParameterError(
            f"crs = {crs!r} has axes in {sorted(units)}, but scale is in metres; give a "
            "projected CRS in metres (e.g. the area's UTM zone, the default with crs=None)."
        )


def area_grid(
    aoi: Any, scale: float, crs: str | None = None, *, max_pixels: int = MAX_AREA_PIXELS
) -> PixelGrid:
    """The pixel grid of ``scale`` metres that covers the area of interest ``aoi``.

    ``aoi`` is ``(west, south, east, north)`` in WGS84 degrees (or ``"west,south,east,north"``).
    First of all, an area of more than ``max_pixels`` pixels at ``scale`` is refused
    (:func:`~.checks.check_area`: the message gives a scale that fits). ``crs`` is a projected
    CRS in metres, by default the UTM zone of the area's centre (:func:`~.checks.utm_crs`).
    The grid is :func:`~.pixels.grid_for_bbox` of the box: its edges snapped outwards to
    multiples of ``scale``.
    """
    box = check_aoi(aoi)
    max_pixels = check_int(max_pixels, "max_pixels", f"{MAX_AREA_PIXELS}")
    check_area(box, scale, max_pixels)
    west, south, east, north = box
    crs = check_crs(crs) or utm_crs((south + north) / 2, (west + east) / 2)
    _check_metres(crs)
    return grid_for_bbox(box, scale, crs, max_pixels)


# -- sharing Earth Engine's limits between blocks ----------------------------------------------


class _Gate:
    """At most ``max_workers`` requests in flight and ``max_rate`` per second (``None``: no
    pacing), shared by every block of one scene in this process. Pickled, it keeps its limits
    and gets fresh locks."""

    def __init__(self, max_workers: int, max_rate: float | None) -> None:
        self.max_workers, self.max_rate = max_workers, max_rate
        self._open()

    def _open(self) -> None:
        self.slots = threading.BoundedSemaphore(self.max_workers)
        self.limiter = RateLimiter(self.max_rate)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_workers": self.max_workers, "max_rate": self.max_rate}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()


class _GatedTransport:
    """``transport`` whose requests pass through ``gate`` (a :class:`~.pixels.Transport`)."""

    def __init__(self, transport: Transport, gate: _Gate) -> None:
        self.transport, self.gate = transport, gate

    def compute_pixels(self, expression: Any, grid: PixelGrid, bands: Sequence[str]) -> np.ndarray:
        """The inner transport's answer, sent when the gate has a free slot and its turn."""
        with self.gate.slots:
            self.gate.limiter.acquire()
            return self.transport.compute_pixels(expression, grid, bands)


# -- the lazy scene ----------------------------------------------------------------------------


class _BlockReader:
    """The per-block function of a lazy scene: the pixels of one block, float32 (band, y, x)."""

    def __init__(
        self,
        image: Any,
        bands: tuple[str, ...],
        grid: PixelGrid,
        cache_dir: str | os.PathLike[str] | None,
        transport: Transport | None,
        gate: _Gate,
        key: str,
    ) -> None:
        self.image, self.bands, self.grid = image, bands, grid
        self.cache_dir, self.transport, self.gate, self.key = cache_dir, transport, gate, key

    def __dask_tokenize__(self) -> str:
        return self.key

    def __call__(self, block_info: Any = None) -> np.ndarray:
        (_, _), (r0, r1), (c0, c1) = block_info[None]["array-location"]
        window = self.grid.window(c0, r0, c1 - c0, r1 - r0)
        # the default transport needs an initialised session: made where the block runs
        inner = EarthEngineTransport() if self.transport is None else self.transport
        pixels = fetch_image(
            self.image,
            window,
            self.bands,
            cache_dir=self.cache_dir,
            transport=_GatedTransport(inner, self.gate),
            max_workers=self.gate.max_workers,
            max_rate=None,  # paced by the gate, across blocks
            progress=False,
        )
        return pixels.values.astype(np.float32)


def _scene_key(image: Any, grid: PixelGrid, bands: Sequence[str], chunk: int) -> str:
    """The dask name of a scene: sha256 of the expression, the grid, the bands and the chunk."""
    text = json.dumps([expression_key(image), grid.to_ee(), list(bands), chunk], sort_keys=True)
    return "earthengine-scene-" + hashlib.sha256(text.encode()).hexdigest()


def _gate(max_workers: Any, max_rate: Any) -> _Gate:
    """The checked limits of a scene (defaults for ``None``) as its gate."""
    options = _check_options(
        MAX_WORKERS if max_workers is None else max_workers,
        DEFAULT_MAX_RATE if max_rate is None else max_rate,
        0,  # retries and sleeping stay fetch_image's own
        False,
        time.sleep,
    )
    return _Gate(options.max_workers, options.max_rate)


def _check_chunk(chunk: Any) -> int:
    """The block side in pixels: an int >= 1."""
    return check_int(chunk, "chunk", "1024 (pixels)")


def lazy_image(
    image: Any,
    bands: Sequence[str],
    grid: PixelGrid,
    *,
    chunk: int = 1024,
    cache_dir: str | os.PathLike[str] | None = None,
    transport: Transport | None = None,
    max_workers: int | None = None,
    max_rate: float | None = None,
) -> xr.DataArray:
    """The ``bands`` of ``image`` on ``grid`` as a lazy (dask) DataArray, read block by block.

    Parameters
    ----------
    image
        An ``ee.Image`` (masked pixels unmasked with :data:`~.catalogue.FILL_VALUE`, e.g. a
        recipe's pixel image such as
        :func:`~.recipes.salinity.salinity_pixel_image`), or, with a custom ``transport``, a
        JSON-serialisable description of one.
    bands
        Band names, in the order of the ``band`` axis (a model's feature order).
    grid
        The pixels to read, e.g. :func:`area_grid` of the area of interest.
    chunk
        Block side in pixels: every ``chunk`` x ``chunk`` block (all bands) is one fetch when
        computed. Memory per block ≈ ``chunk² × bands × 12`` bytes while it is read.
    cache_dir
        Keep every fetched piece here (:func:`~.pixels.fetch_image`): a second computation, or
        a rerun after a failure, requests only what is not kept yet.
    transport
        What sends ``computePixels`` requests (default :class:`~.pixels.EarthEngineTransport`,
        made when a block is computed: it needs an initialised session then, not before).
    max_workers
        Most requests in flight at once over all blocks (default and most
        :data:`~.pixels.MAX_WORKERS`, Earth Engine's limit per project).
    max_rate
        Most requests per second over all blocks (default :data:`DEFAULT_MAX_RATE`).

    Returns
    -------
    xarray.DataArray named ``bands``, ``(band, y, x)``, float32, dask chunks ``(len(bands),
    chunk, chunk)`` (the last ones narrower); coords ``band`` (names), ``y`` / ``x`` (pixel centres in the
    grid's CRS, metres for a UTM grid; ``y`` decreasing); attrs ``crs``, ``scale``,
    ``simulated`` (False) and ``source``. Building it sends nothing; computing a part of it
    (``.isel(...)``, a map's rows) fetches only the blocks that part touches. Bad arguments are
    a :class:`~soilbook.errors.ParameterError` here; a block that cannot be fetched raises
    :class:`~soilbook.errors.DataUnavailableError` when it is computed.
    """
    import dask.array as da

    names = _check_band_names(bands)
    if not isinstance(grid, PixelGrid):
        raise ParameterError(
            f"grid = {grid!r} is not a PixelGrid; make one with area_grid(aoi, scale)."
        )
    chunk = _check_chunk(chunk)
    gate = _gate(max_workers, max_rate)
    key = _scene_key(image, grid, names, chunk)  # also refuses an image that cannot be keyed
    reader = _BlockReader(image, names, grid, cache_dir, transport, gate, key)
    shape = (len(names), grid.height, grid.width)
    data = da.map_blocks(
        reader,
        name=key,
        chunks=da.core.normalize_chunks((len(names), chunk, chunk), shape),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
    )
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": list(names), "y": grid.ys(), "x": grid.xs()},
        name="bands",
        attrs={
            "crs": grid.crs,
            "scale": grid.scale,
            "simulated": False,
            "source": "Earth Engine computePixels (soilbook.data.earthengine.scene.lazy_image)",
        },
    )
