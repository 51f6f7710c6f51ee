"""The pixel engine: whole pixel grids from Earth Engine's ``computePixels``, piece by piece.

A :class:`PixelGrid` is a north-up grid in a CRS (upper-left corner, pixel size, size in
pixels). :func:`plan_pieces` cuts a grid and its bands into requests that Earth Engine accepts;
:func:`fetch_image` sends them in parallel and puts the answers back together as an
:class:`xarray.DataArray` ``(band, y, x)``; :func:`fetch_patches` does the same for a
``window`` x ``window`` patch around each sample point, ``(sample, band, y, x)``.

Choices
-------
- **Request limits**: one ``computePixels`` answer holds at most 48 MiB uncompressed, 32768
  pixels per side and 1024 bands (Earth Engine's limits); pieces tile the grid exactly, with
  sizes as even as these limits allow.
- **Grids snap to the CRS's lattice**: pixel edges lie on multiples of ``scale`` (as Earth
  Engine's own grids in that CRS), so patches of nearby points share pixels.
- **Throughput**: at most 40 requests at a time (Earth Engine's concurrent-request limit per
  project), spaced by a thread-safe rate limiter (``max_rate`` requests per second).
- **Failures**: a :class:`RetryableRequestError` (429 too many requests, 5xx, deadline) is
  retried with exponential back-off and full jitter (0.5 s doubling, at most 32 s); anything
  else, or retries exhausted, stops the run with a
  :class:`~soilbook.errors.DataUnavailableError` that names the piece.
- **Resumable cache**: with ``cache_dir`` every piece is written atomically as
  ``<key>/<row>_<col>_<b0>_<b1>.npy`` with a sha256 sidecar; a rerun reads the pieces whose
  checksum verifies (``np.load(allow_pickle=False)``: nothing is ever unpickled) and fetches
  only the others. ``key`` is the sha256 of the expression, the grid and the band names.
- **Masked pixels**: recipes unmask with :data:`~.catalogue.FILL_VALUE` before fetching; that
  value becomes NaN here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xarray as xr

from soilbook.data.earthengine.catalogue import FILL_VALUE
from soilbook.data.earthengine.checks import (
    check_crs,
    check_int,
    check_points,
    check_positive,
    check_window,
    points_crs,
)
from soilbook.data.earthengine.session import _ee_ready
from soilbook.errors import DataUnavailableError, OutputDirError, ParameterError
from soilbook.hashing import sha256_file

__all__ = [
    "MAX_BANDS",
    "MAX_BYTES",
    "MAX_SIDE",
    "MAX_TOTAL_VALUES",
    "MAX_WORKERS",
    "EarthEngineTransport",
    "Piece",
    "PixelGrid",
    "RateLimiter",
    "RetryableRequestError",
    "Transport",
    "backoff_delay",
    "check_workers",
    "expression_key",
    "fetch_image",
    "fetch_patches",
    "grid_around",
    "grid_for_bbox",
    "plan_pieces",
]

#: Most bytes (uncompressed) in one ``computePixels`` answer.
MAX_BYTES = 48 * 2**20
#: Most pixels per side of one ``computePixels`` answer.
MAX_SIDE = 32768
#: Most bands in one ``computePixels`` answer.
MAX_BANDS = 1024
#: Most values (pixels x bands) of one fetch: beyond it no plan is sensible.
MAX_TOTAL_VALUES = 10**11
#: Most concurrent requests (Earth Engine's limit per project).
MAX_WORKERS = 40
#: Back-off of retried requests: the first wait is drawn in [0, BASE], doubling up to CAP (s).
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 32.0


class RetryableRequestError(ConnectionError):
    """A request that may succeed if sent again (429 too many requests, 5xx, deadline)."""


# -- grids -------------------------------------------------------------------------------------


def _check_finite(value: Any, name: str) -> float:
    """``value`` as a finite float, else :class:`ParameterError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not math.isfinite(value)
    ):
        raise ParameterError(f"{name} = {value!r} must be a finite number (a coordinate).")
    return float(value)


@dataclass(frozen=True)
class PixelGrid:
    """A north-up pixel grid: ``width`` x ``height`` pixels of ``scale`` (metres or degrees of
    ``crs``) whose upper-left corner is (``x0``, ``y0``); y decreases downwards (row 0 is the
    northernmost)."""

    crs: str
    x0: float
    y0: float
    scale: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not isinstance(self.crs, str) or not self.crs.strip():
            raise ParameterError(f"crs = {self.crs!r} must be a CRS string such as 'EPSG:32650'.")
        values = {
            "x0": _check_finite(self.x0, "x0"),
            "y0": _check_finite(self.y0, "y0"),
            "scale": check_positive(self.scale, "scale", "10 (metres)"),
            "width": check_int(self.width, "width", "256 (pixels)"),
            "height": check_int(self.height, "height", "256 (pixels)"),
        }
        for name, value in values.items():  # plain Python numbers: the grid travels as JSON
            object.__setattr__(self, name, value)

    def to_ee(self) -> dict[str, Any]:
        """The ``grid`` of a ``computePixels`` request (a Cloud API ``PixelGrid``)."""
        return {
            "dimensions": {"width": self.width, "height": self.height},
            "affineTransform": {
                "scaleX": self.scale,
                "shearX": 0,
                "translateX": self.x0,
                "shearY": 0,
                "scaleY": -self.scale,
                "translateY": self.y0,
            },
            "crsCode": self.crs,
        }

    def window(self, col_off: int, row_off: int, width: int, height: int) -> PixelGrid:
        """The sub-grid of ``width`` x ``height`` pixels whose upper-left pixel is (``row_off``,
        ``col_off``) of this grid; it must lie inside this grid."""
        col_off = check_int(col_off, "col_off", "0", minimum=0)
        row_off = check_int(row_off, "row_off", "0", minimum=0)
        width = check_int(width, "width", "256 (pixels)")
        height = check_int(height, "height", "256 (pixels)")
        if col_off + width > self.width or row_off + height > self.height:
            raise ParameterError(
                f"window(col_off={col_off}, row_off={row_off}, width={width}, height={height}) "
                f"reaches beyond the {self.width} x {self.height} grid. Keep col_off + width <= "
                f"{self.width} and row_off + height <= {self.height}."
            )
        return PixelGrid(
            self.crs,
            self.x0 + col_off * self.scale,
            self.y0 - row_off * self.scale,
            self.scale,
            width,
            height,
        )

    def xs(self) -> np.ndarray:
        """Pixel-centre x coordinates (units of ``crs``), shape (width,), increasing."""
        return self.x0 + (np.arange(self.width) + 0.5) * self.scale

    def ys(self) -> np.ndarray:
        """Pixel-centre y coordinates (units of ``crs``), shape (height,), decreasing."""
        return self.y0 - (np.arange(self.height) + 0.5) * self.scale


def _transformer(crs: str) -> Any:
    """A pyproj transformer from WGS84 (lon, lat) to ``crs`` (x, y); a ``crs`` pyproj does not
    know is a :class:`ParameterError`."""
    from pyproj import Transformer

    from soilbook.data.tables import check_crs as check_known_crs

    check_known_crs(crs)
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def grid_around(lat: float, lon: float, window: int, scale: float, crs: str) -> PixelGrid:
    """``window`` x ``window`` pixels of ``scale`` in ``crs`` centred on the pixel that holds
    (``lat``, ``lon``) (WGS84 degrees): that pixel is at row and column ``window // 2``.

    Pixel edges lie on multiples of ``scale`` in ``crs``. ``window`` is a positive odd int.
    """
    (point,) = check_points([{"id": "point", "lat": lat, "lon": lon}])
    window = check_window(window)
    scale = check_positive(scale, "scale", "10 (metres)")
    if check_crs(crs) is None:
        raise ParameterError("crs is None; give the grid's CRS, e.g. 'EPSG:32650' (UTM 50N).")
    x, y = _transformer(crs).transform(point["lon"], point["lat"])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ParameterError(
            f"the point (lat {lat}, lon {lon}) cannot be projected to {crs}; choose a CRS whose "
            "area holds it (e.g. its UTM zone, soilbook.data.earthengine.utm_crs(lat, lon))."
        )
    col, row = math.floor(x / scale), math.floor(y / scale)  # lattice indices (row up)
    half = window // 2
    return PixelGrid(crs, (col - half) * scale, (row + 1 + half) * scale, scale, window, window)


def grid_for_bbox(
    bbox: Sequence[float], scale: float, crs: str, max_pixels: int | None = None
) -> PixelGrid:
    """The grid of ``scale`` pixels in ``crs`` that covers ``bbox`` = (west, south, east,
    north) in WGS84 degrees, snapped outwards to multiples of ``scale``.

    ``max_pixels`` (optional) refuses grids with more pixels, before any request.
    """
    from soilbook.data.earthengine.checks import check_bbox

    west, south, east, north = check_bbox(bbox)
    scale = check_positive(scale, "scale", "10 (metres)")
    if check_crs(crs) is None:
        raise ParameterError("crs is None; give the grid's CRS, e.g. 'EPSG:32650' (UTM 50N).")
    xmin, ymin, xmax, ymax = _transformer(crs).transform_bounds(
        west, south, east, north, densify_pts=21
    )
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
        raise ParameterError(
            f"the box {(west, south, east, north)} cannot be projected to {crs}; choose a CRS "
            "whose area holds it."
        )
    c0, c1 = math.floor(xmin / scale), math.ceil(xmax / scale)
    r0, r1 = math.floor(ymin / scale), math.ceil(ymax / scale)
    width, height = max(c1 - c0, 1), max(r1 - r0, 1)
    if max_pixels is not None:
        max_pixels = check_int(max_pixels, "max_pixels", "10_000_000")
        if width * height > max_pixels:
            coarser = scale * math.sqrt(width * height / max_pixels)
            raise ParameterError(
                f"the box {(west, south, east, north)} at scale {scale:g} in {crs} is "
                f"{width} x {height} = {width * height:,} pixels, more than max_pixels = "
                f"{max_pixels:,}. What to do: use a coarser scale (about {coarser:.3g} or more), "
                "a smaller area, or raise max_pixels."
            )
    return PixelGrid(crs, c0 * scale, r1 * scale, scale, width, height)


# -- planning the requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One request: the sub-grid ``grid`` whose upper-left pixel is (``row_off``, ``col_off``)
    of the whole grid, and the bands ``bands = (start, stop)`` (indices, stop excluded)."""

    grid: PixelGrid
    row_off: int
    col_off: int
    bands: tuple[int, int]

    @property
    def name(self) -> str:
        """``<row>_<col>_<b0>_<b1>``: the piece's cache file name without ``.npy``."""
        return f"{self.row_off}_{self.col_off}_{self.bands[0]}_{self.bands[1]}"


def _even_splits(total: int, most: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(total)`` in as few parts of at most ``most``
    as possible, their sizes differing by at most one."""
    parts = -(-total // most)
    edges = [total * i // parts for i in range(parts + 1)]
    return list(pairwise(edges))


def plan_pieces(
    grid: PixelGrid,
    n_bands: int,
    *,
    bytes_per_value: int = 8,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    max_bands: int = MAX_BANDS,
) -> list[Piece]:
    """The requests that fetch ``n_bands`` bands of ``grid``: pieces that tile the grid and its
    bands exactly (no gap, no overlap), each within ``max_bytes`` (width x height x bands x
    ``bytes_per_value``), ``max_side`` pixels per side and ``max_bands`` bands.

    Pieces are as square and as even as the limits allow, ordered by row, column, bands.
    Raises :class:`ParameterError` for a non-positive size or a fetch above
    :data:`MAX_TOTAL_VALUES` values.
    """
    if not isinstance(grid, PixelGrid):
        raise ParameterError(f"grid = {grid!r} is not a PixelGrid (see grid_for_bbox).")
    n_bands = check_int(n_bands, "n_bands", "10")
    bytes_per_value = check_int(bytes_per_value, "bytes_per_value", "8 (float64)")
    max_bytes = check_int(max_bytes, "max_bytes", f"{MAX_BYTES}", minimum=bytes_per_value)
    max_side = check_int(max_side, "max_side", f"{MAX_SIDE}")
    max_bands = check_int(max_bands, "max_bands", f"{MAX_BANDS}")
    total = grid.width * grid.height * n_bands
    if total > MAX_TOTAL_VALUES:
        raise ParameterError(
            f"the grid is {grid.width} x {grid.height} pixels x {n_bands} bands = {total:.3g} "
            f"values, more than {MAX_TOTAL_VALUES:.0e}: far too much to fetch pixel by pixel. "
            "What to do: use a coarser scale, a smaller area or fewer bands (or an Earth Engine "
            "export to Cloud Storage for whole-region rasters)."
        )
    values = max_bytes // bytes_per_value
    nb = min(n_bands, max_bands, values)
    pixels = values // nb
    side = max(1, min(max_side, math.isqrt(pixels)))
    tile_w = min(grid.width, side)
    tile_h = min(grid.height, max_side, pixels // tile_w)
    return [
        Piece(grid.window(c0, r0, c1 - c0, r1 - r0), r0, c0, bands)
        for r0, r1 in _even_splits(grid.height, tile_h)
        for c0, c1 in _even_splits(grid.width, tile_w)
        for bands in _even_splits(n_bands, nb)
    ]


# -- transports --------------------------------------------------------------------------------


class Transport(Protocol):
    """What sends one request: the pixels of ``bands`` of ``expression`` on ``grid``."""

    def compute_pixels(self, expression: Any, grid: PixelGrid, bands: Sequence[str]) -> np.ndarray:
        """A float array (len(bands), grid.height, grid.width); raises
        :class:`RetryableRequestError` for 429 / 5xx / deadline, any other exception for a
        permanent failure."""
        ...


#: Words of Earth Engine error messages that mean "try again later".
_RETRYABLE_WORDS = (
    "too many",
    "rate limit",
    "quota exceeded",
    "429",
    "http 500",
    "http 502",
    "http 503",
    "http 504",
    "deadline",
    "timed out",
    "timeout",
    "unavailable",
    "internal error",
    "backend error",
    "connection reset",
)


def _is_retryable(err: BaseException) -> bool:
    """Whether a failed ``computePixels`` call may succeed if sent again."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    status = getattr(getattr(err, "resp", None), "status", None)  # googleapiclient HttpError
    if status is not None:
        return int(status) == 429 or int(status) >= 500
    message = str(err).lower()
    return any(word in message for word in _RETRYABLE_WORDS)


def _to_band_array(data: Any, bands: Sequence[str]) -> np.ndarray:
    """A ``computePixels`` NUMPY_NDARRAY answer (a structured array (y, x) with one field per
    band) as float64 (band, y, x)."""
    arr = np.asarray(data)
    if arr.dtype.names is not None:
        missing = [b for b in bands if b not in arr.dtype.names]
        if missing:
            raise ValueError(f"the answer has no band(s) {missing} (it has {arr.dtype.names})")
        return np.stack([np.asarray(arr[b], dtype=np.float64) for b in bands])
    if arr.ndim == 3 and arr.shape[-1] == len(bands):
        return np.moveaxis(arr, -1, 0).astype(np.float64)
    if arr.ndim == 2 and len(bands) == 1:
        return arr[np.newaxis].astype(np.float64)
    raise ValueError(f"unexpected computePixels answer of shape {arr.shape}, dtype {arr.dtype}")


class EarthEngineTransport:
    """Sends requests with ``ee.data.computePixels`` (needs an initialised session; use
    :func:`~.session.initialize`, with ``high_volume=True`` for bulk reads)."""

    def __init__(self) -> None:
        self._ee = _ee_ready()

    def compute_pixels(self, expression: Any, grid: PixelGrid, bands: Sequence[str]) -> np.ndarray:
        """The pixels of ``bands`` of the image ``expression`` on ``grid``, float64 (band, y,
        x); an answer to retry later becomes a :class:`RetryableRequestError`."""
        request = {
            "expression": expression,
            "fileFormat": "NUMPY_NDARRAY",
            "grid": grid.to_ee(),
            "bandIds": list(bands),
        }
        try:
            data = self._ee.data.computePixels(request)
        except Exception as err:
            if _is_retryable(err):
                raise RetryableRequestError(f"{type(err).__name__}: {err}") from err
            raise
        return _to_band_array(data, bands)


def expression_key(expression: Any) -> str:
    """sha256 (hex) of ``expression``: of ``expression.serialize()`` for ``ee`` objects, else
    of its JSON with sorted keys."""
    serialize = getattr(expression, "serialize", None)
    if callable(serialize):
        text = serialize()
    else:
        try:
            text = json.dumps(expression, sort_keys=True)
        except (TypeError, ValueError):
            raise ParameterError(
                f"the image {type(expression).__name__} is neither an ee object nor JSON; pass "
                "an ee.Image (or, with a custom transport, a JSON-serialisable description)."
            ) from None
    return hashlib.sha256(text.encode()).hexdigest()


# -- pacing and retries ------------------------------------------------------------------------


class RateLimiter:
    """Spaces calls of :meth:`acquire` at least ``1 / rate`` seconds apart (thread-safe);
    ``rate`` in requests per second, ``None`` for no limit."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for the next free slot."""
        if self._interval == 0.0:
            return
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry ``attempt`` (0 = the first retry): full jitter, drawn in
    ``[0, min(cap, base * 2**attempt)]``."""
    return rng(0.0, min(cap, base * 2.0**attempt))


@dataclass(frozen=True)
class _Options:
    """Checked options of a fetch."""

    max_workers: int
    max_rate: float | None
    retries: int
    progress: bool
    sleep: Callable[[float], None]


def check_workers(value: Any, name: str = "max_workers") -> int:
    """Requests in flight at once: an int from 1 to :data:`MAX_WORKERS` (Earth Engine's
    concurrent requests per project), else :class:`ParameterError`."""
    workers = check_int(value, name, "8")
    if workers > MAX_WORKERS:
        raise ParameterError(
            f"{name} = {workers} is above {MAX_WORKERS}, Earth Engine's limit of concurrent "
            f"requests per project; use at most {MAX_WORKERS}."
        )
    return workers


def _check_options(
    max_workers: Any, max_rate: Any, retries: Any, progress: Any, sleep: Any
) -> _Options:
    """The fetch options, checked (before any request)."""
    workers = check_workers(max_workers)
    rate = None if max_rate is None else check_positive(max_rate, "max_rate", "100 (per second)")
    retries = check_int(retries, "retries", "6", minimum=0)
    if not callable(sleep):
        raise ParameterError(f"sleep = {sleep!r} must be a function of seconds (time.sleep).")
    return _Options(workers, rate, retries, bool(progress), sleep)


def _check_band_names(bands: Any) -> tuple[str, ...]:
    """Band names: a non-empty sequence of distinct non-empty strings."""
    if isinstance(bands, str) or not isinstance(bands, Sequence) or not bands:
        raise ParameterError(f"bands = {bands!r} must be a non-empty list of band names.")
    names = tuple(bands)
    if not all(isinstance(b, str) and b for b in names):
        raise ParameterError(f"bands = {list(names)} must all be non-empty strings.")
    if len(set(names)) != len(names):
        raise ParameterError(f"bands = {list(names)} names a band twice; list each band once.")
    return names


# -- the resumable cache -----------------------------------------------------------------------


def _cache_folder(cache_dir: Any, expression: str, grid: PixelGrid, bands: Sequence[str]) -> Path:
    """``cache_dir / <key>``, created; ``key`` = sha256 of expression key, grid and bands."""
    text = "\n".join(
        [expression, json.dumps(grid.to_ee(), sort_keys=True), json.dumps(list(bands))]
    )
    folder = Path(cache_dir) / hashlib.sha256(text.encode()).hexdigest()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirError(
            f"cache_dir {cache_dir} cannot hold the pixel cache ({err}). What to do: pass a "
            "writable folder as cache_dir (or cache_dir=None to keep nothing)."
        ) from None
    return folder


def _sidecar(path: Path) -> Path:
    """The sha256 sidecar of cache file ``path``."""
    return path.with_name(path.name + ".sha256")


def _write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through a temporary file beside it and :func:`os.replace`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_checked(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` with ``write(fh)``, then its sha256 sidecar, both atomically."""
    _write_atomic(path, write)
    digest = sha256_file(path)
    _write_atomic(_sidecar(path), lambda fh: fh.write(digest.encode()))


def _verified(path: Path) -> bool:
    """Whether ``path`` and its sha256 sidecar exist and agree (a cache entry to trust)."""
    sidecar = _sidecar(path)
    return path.is_file() and sidecar.is_file() and sha256_file(path) == sidecar.read_text().strip()


def _store(path: Path, arr: np.ndarray) -> None:
    """Keep ``arr`` at ``path`` (.npy, no pickle) with its checksum (:func:`_write_checked`)."""
    _write_checked(path, lambda fh: np.save(fh, arr, allow_pickle=False))


def _load(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached piece at ``path`` if its checksum verifies and it has ``shape``, else
    ``None`` (missing, partial or corrupt: fetch it again)."""
    if not _verified(path):
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None
    if arr.shape != shape or arr.dtype != np.float64:
        return None
    return arr


# -- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One piece to place into ``out[slot]``, with its band names, cache file and label."""

    piece: Piece
    names: tuple[str, ...]
    path: Path | None
    slot: int
    label: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape (bands, y, x) of the piece's pixels."""
        return (len(self.names), self.piece.grid.height, self.piece.grid.width)


class _PieceFailed(Exception):
    """A piece could not be fetched (permanent error, or retries exhausted)."""

    def __init__(self, job: _Job, err: BaseException, attempts: int, exhausted: bool) -> None:
        super().__init__(str(err))
        self.job, self.err, self.attempts, self.exhausted = job, err, attempts, exhausted


def _jobs(
    pieces: Sequence[Piece], bands: Sequence[str], folder: Path | None, slot: int, what: str
) -> list[_Job]:
    """The jobs of ``pieces`` of one grid (``what`` names it in messages)."""
    jobs = []
    for p in pieces:
        names = tuple(bands[p.bands[0] : p.bands[1]])
        g = p.grid
        label = (
            f"piece {p.name} of {what} (rows {p.row_off}:{p.row_off + g.height}, columns "
            f"{p.col_off}:{p.col_off + g.width}, bands {names[0]}..{names[-1]})"
        )
        path = None if folder is None else folder / f"{p.name}.npy"
        jobs.append(_Job(p, names, path, slot, label))
    return jobs


def _fetch_one(
    job: _Job,
    expression: Any,
    transport: Transport,
    limiter: RateLimiter,
    options: _Options,
) -> np.ndarray:
    """The pixels of ``job``, retried on :class:`RetryableRequestError`; raises
    :class:`_PieceFailed` on a permanent error or when the retries are spent."""
    for attempt in range(options.retries + 1):
        limiter.acquire()
        try:
            data = transport.compute_pixels(expression, job.piece.grid, job.names)
            arr = np.asarray(data, dtype=np.float64)
            if arr.shape != job.shape:
                raise ValueError(f"the answer has shape {arr.shape}, expected {job.shape}")
            return arr
        except RetryableRequestError as err:
            if attempt == options.retries:
                raise _PieceFailed(job, err, attempt + 1, exhausted=True) from err
            options.sleep(backoff_delay(attempt))
        except Exception as err:
            raise _PieceFailed(job, err, attempt + 1, exhausted=False) from err
    raise AssertionError("unreachable")  # pragma: no cover


def _unavailable(failed: _PieceFailed, cache_dir: Any) -> DataUnavailableError:
    """The error that stops a fetch: which piece, why, and what to do."""
    err = failed.err
    first = (str(err).strip().splitlines() or [""])[0][:300]
    if failed.exhausted:
        why = f"Earth Engine still asked to retry after {failed.attempts} attempts"
        todo = "wait a few minutes, or lower max_workers / max_rate, then rerun"
    else:
        why = "Earth Engine refused the request"
        todo = (
            "check the image and its bands (does every band exist on this grid?) and the "
            "session, then rerun"
        )
    keep = (
        f"Pieces already fetched are kept in {cache_dir}: a rerun of the same call requests "
        "only the missing ones."
        if cache_dir is not None
        else "Pass cache_dir=<folder> so that a rerun keeps the pieces already fetched."
    )
    return DataUnavailableError(
        f"The pixels of {failed.job.label} could not be fetched: {why} "
        f"({type(err).__name__}: {first}). What to do: {todo}. {keep}"
    )


def _fetch_and_keep(
    job: _Job,
    expression: Any,
    transport: Transport,
    limiter: RateLimiter,
    options: _Options,
    stop: threading.Event,
) -> np.ndarray | None:
    """Fetch ``job`` unless the run is stopping (then ``None``), and keep it in the cache."""
    if stop.is_set():
        return None
    try:
        arr = _fetch_one(job, expression, transport, limiter, options)
    except BaseException:
        stop.set()  # start no further piece: the failure is likely systematic
        raise
    if job.path is not None:
        _store(job.path, arr)
    return arr


def _place(out: np.ndarray, job: _Job, arr: np.ndarray) -> None:
    """Put the pixels of ``job`` into ``out`` (slot, band, y, x)."""
    p = job.piece
    out[
        job.slot,
        p.bands[0] : p.bands[1],
        p.row_off : p.row_off + p.grid.height,
        p.col_off : p.col_off + p.grid.width,
    ] = arr


def _run(
    expression: Any,
    jobs: Sequence[_Job],
    out: np.ndarray,
    transport: Transport | None,
    options: _Options,
    cache_dir: Any,
) -> None:
    """Fill ``out`` with every job: cached pieces are read, the others fetched in parallel."""
    from soilbook.progress import progress_bar

    todo = []
    for job in jobs:
        arr = None if job.path is None else _load(job.path, job.shape)
        if arr is None:
            todo.append(job)
        else:
            _place(out, job, arr)
    with progress_bar(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        disable=not options.progress,
        desc="Earth Engine pixels",
        unit="piece",
    ) as bar:
        if todo:
            _run_parallel(expression, todo, out, transport, options, cache_dir, bar)


def _run_parallel(
    expression: Any,
    todo: Sequence[_Job],
    out: np.ndarray,
    transport: Transport | None,
    options: _Options,
    cache_dir: Any,
    bar: Any,
) -> None:
    """Fetch ``todo`` with at most ``options.max_workers`` requests at a time; the first
    failure stops the run (pieces in flight finish and are kept) as a DataUnavailableError."""
    transport = EarthEngineTransport() if transport is None else transport
    limiter = RateLimiter(options.max_rate, sleep=options.sleep)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(options.max_workers, len(todo)))
    try:
        pending: dict[Future, _Job] = {
            pool.submit(_fetch_and_keep, job, expression, transport, limiter, options, stop): job
            for job in todo
        }
        failure: _PieceFailed | None = None
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    arr = future.result()
                except _PieceFailed as err:
                    failure = failure or err
                    continue
                if arr is not None:
                    _place(out, job, arr)
                    bar.update(1)
        if failure is not None:
            raise _unavailable(failure, cache_dir) from failure.err
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


# -- the public fetches ------------------------------------------------------------------------


def fetch_image(
    image: Any,
    grid: PixelGrid,
    bands: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    transport: Transport | None = None,
    max_workers: int = MAX_WORKERS,
    max_rate: float | None = 100.0,
    retries: int = 6,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int = MAX_BYTES,
) -> xr.DataArray:
    """The pixels of ``bands`` of ``image`` on ``grid``, as float64 ``(band, y, x)``.

    ``image`` is an ``ee.Image`` (unmasked with :data:`~.catalogue.FILL_VALUE`; that value
    becomes NaN); ``transport`` sends the requests (default :class:`EarthEngineTransport`,
    which needs an initialised session). Requests follow :func:`plan_pieces`, at most
    ``max_workers`` at a time and ``max_rate`` per second, each retried ``retries`` times on
    :class:`RetryableRequestError` (``sleep`` waits; tests pass a fake); ``max_bytes`` bounds
    one answer (smaller pieces lose less work to a failure). With ``cache_dir``
    each piece is kept, so a rerun after a failure fetches only the missing ones.

    Returns a DataArray with coords ``band`` (names), ``x`` / ``y`` (pixel centres in the
    grid's CRS) and attrs ``crs``, ``scale``. Raises :class:`ParameterError` for bad arguments
    (before any request) and :class:`~soilbook.errors.DataUnavailableError` naming the piece
    that could not be fetched.
    """
    bands = _check_band_names(bands)
    options = _check_options(max_workers, max_rate, retries, progress, sleep)
    pieces = plan_pieces(grid, len(bands), max_bytes=max_bytes)
    folder = None
    if cache_dir is not None:
        folder = _cache_folder(cache_dir, expression_key(image), grid, bands)
    out = np.full((1, len(bands), grid.height, grid.width), np.nan)
    jobs = _jobs(pieces, bands, folder, 0, f"the {grid.width} x {grid.height} grid")
    _run(image, jobs, out, transport, options, cache_dir)
    out[out == FILL_VALUE] = np.nan
    return xr.DataArray(
        out[0],
        dims=("band", "y", "x"),
        coords={"band": list(bands), "y": grid.ys(), "x": grid.xs()},
        attrs={"crs": grid.crs, "scale": grid.scale},
    )


def fetch_patches(
    image: Any,
    points: Sequence[Mapping[str, Any]],
    *,
    window: int,
    scale: float,
    crs: str | None = None,
    bands: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    transport: Transport | None = None,
    **fetch_kwargs: Any,
) -> xr.DataArray:
    """A ``window`` x ``window`` patch of ``bands`` of ``image`` around each point, float64
    ``(sample, band, y, x)``.

    Each patch is :func:`grid_around` the point (``scale`` in units of ``crs``; default
    ``crs``: the points' UTM zone, :func:`~.checks.points_crs`), its centre pixel at
    ``window // 2``. All patches are fetched in one parallel run (``fetch_kwargs``:
    ``max_workers``, ``max_rate``, ``retries``, ``progress``, ``sleep``, ``max_bytes`` as in
    :func:`fetch_image`), each cached under its own key.

    Coords: ``sample`` (point ids, str), ``band``, ``y`` / ``x`` (pixels north / east of the
    centre pixel: ``y`` runs from ``window // 2`` down to ``-(window // 2)``, ``x`` the other
    way), ``lat`` / ``lon`` of each point and ``x_centre`` / ``y_centre`` (the centre pixel's
    centre in ``crs``); attrs ``crs``, ``scale``, ``window``.
    """
    pts = check_points(points)
    window = check_window(window)
    scale = check_positive(scale, "scale", "10 (metres)")
    crs = check_crs(crs) or points_crs(pts)
    bands = _check_band_names(bands)
    allowed = {"max_workers", "max_rate", "retries", "progress", "sleep", "max_bytes"}
    unknown = set(fetch_kwargs) - allowed
    if unknown:
        raise ParameterError(
            f"fetch_patches got unknown argument(s) {sorted(unknown)}; allowed: {sorted(allowed)}."
        )
    options = _check_options(
        fetch_kwargs.get("max_workers", MAX_WORKERS),
        fetch_kwargs.get("max_rate", 100.0),
        fetch_kwargs.get("retries", 6),
        fetch_kwargs.get("progress", True),
        fetch_kwargs.get("sleep", time.sleep),
    )
    grids = [grid_around(p["lat"], p["lon"], window, scale, crs) for p in pts]
    key = expression_key(image) if cache_dir is not None else ""
    jobs: list[_Job] = []
    for i, (p, grid) in enumerate(zip(pts, grids, strict=True)):
        folder = None if cache_dir is None else _cache_folder(cache_dir, key, grid, bands)
        pieces = plan_pieces(grid, len(bands), max_bytes=fetch_kwargs.get("max_bytes", MAX_BYTES))
        jobs += _jobs(pieces, bands, folder, i, f"point {p['id']!r}")
    out = np.full((len(pts), len(bands), window, window), np.nan)
    _run(image, jobs, out, transport, options, cache_dir)
    out[out == FILL_VALUE] = np.nan
    half = window // 2
    offsets = np.arange(window) - half
    return xr.DataArray(
        out,
        dims=("sample", "band", "y", "x"),
        coords={
            "sample": [p["id"] for p in pts],
            "band": list(bands),
            "y": -offsets,
            "x": offsets,
            "lat": ("sample", [p["lat"] for p in pts]),
            "lon": ("sample", [p["lon"] for p in pts]),
            "x_centre": ("sample", [g.xs()[half] for g in grids]),
            "y_centre": ("sample", [g.ys()[half] for g in grids]),
        },
        attrs={"crs": crs, "scale": scale, "window": window},
    )
