"""A fake ``computePixels`` server for the pixel engine's tests (soilbook.data.earthengine.pixels).

:class:`FakeTransport` answers every request with deterministic pixels computed from the grid it
is asked for (:func:`payload`): the value of band ``b`` at the pixel of global row ``r`` and
column ``c`` (counted from ``origin``, the upper-left corner of the whole grid) is
``b * 1e6 + r * 1000 + c``, so a test can check that every piece landed in its place. It can be
scripted to answer 429 (a :class:`RetryableRequestError`) a number of times, or fail for good,
for given pieces or given call numbers; it counts calls and the most requests in flight at once,
and is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from soilbook.data.earthengine.pixels import PixelGrid, RetryableRequestError


class PermanentFakeError(RuntimeError):
    """What the fake raises for a permanent failure (an error that is not retryable)."""


def expected(grid: PixelGrid, bands: Sequence[str], all_bands: Sequence[str]) -> np.ndarray:
    """The whole ``grid``'s payload (band, y, x) for ``bands`` (positions in ``all_bands``)."""
    rows, cols = np.indices((grid.height, grid.width))
    index = np.array([list(all_bands).index(b) for b in bands], dtype=np.float64)
    return index[:, None, None] * 1e6 + rows * 1000.0 + cols


def offsets(grid: PixelGrid, origin: tuple[float, float]) -> tuple[int, int]:
    """(row, column) of ``grid``'s upper-left pixel, counted from ``origin`` = (x0, y0)."""
    col = round((grid.x0 - origin[0]) / grid.scale)
    row = round((origin[1] - grid.y0) / grid.scale)
    return row, col


@dataclass
class FakeTransport:
    """A thread-safe fake of :class:`~soilbook.data.earthengine.pixels.Transport`.

    ``all_bands`` fixes band indices; ``origin`` = (x0, y0) of the whole grid. ``retryable``
    maps a piece's (row, col) offsets to how many 429s it answers before the pixels;
    ``permanent`` holds offsets that always fail; ``fail_calls`` holds 1-based call numbers
    that fail for good (a "kill" at the n-th request). ``delay`` (s) keeps each request in
    flight a while (for the concurrency test). ``fill`` = {(band, row, col): value} overrides
    single pixels (global offsets).
    """

    all_bands: Sequence[str]
    origin: tuple[float, float] = (0.0, 0.0)
    retryable: Mapping[tuple[int, int], int] = field(default_factory=dict)
    permanent: Iterable[tuple[int, int]] = ()
    fail_calls: Iterable[int] = ()
    delay: float = 0.0
    fill: Mapping[tuple[str, int, int], float] = field(default_factory=dict)
    calls: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    successes: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    expressions: list[object] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._left = dict(self.retryable)
        self.permanent = set(self.permanent)
        self.fail_calls = set(self.fail_calls)

    @property
    def n_calls(self) -> int:
        """How many requests were sent (failed ones included)."""
        return len(self.calls)

    def _record(self, key: tuple[int, int], bands: tuple[str, ...], expression: object) -> int:
        """Count the call; return its 1-based number."""
        with self._lock:
            self.calls.append((*key, bands))
            self.expressions.append(expression)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return len(self.calls)

    def _outcome(self, key: tuple[int, int], number: int) -> Exception | None:
        """The error this call raises, if any."""
        with self._lock:
            if number in self.fail_calls or key in self.permanent:
                return PermanentFakeError(f"permanent failure of piece {key} (call {number})")
            if self._left.get(key, 0) > 0:
                self._left[key] -= 1
                return RetryableRequestError("429 Too Many Requests")
        return None

    def compute_pixels(self, expression, grid: PixelGrid, bands) -> np.ndarray:
        """The payload of ``grid`` (band, y, x), or the scripted error."""
        bands = tuple(bands)
        key = offsets(grid, self.origin)
        number = self._record(key, bands, expression)
        try:
            if self.delay:
                time.sleep(self.delay)
            error = self._outcome(key, number)
            if error is not None:
                raise error
            arr = expected(grid, bands, self.all_bands)
            arr += key[0] * 1000.0 + key[1]
            for (band, row, col), value in self.fill.items():
                r, c = row - key[0], col - key[1]
                if band in bands and 0 <= r < grid.height and 0 <= c < grid.width:
                    arr[bands.index(band), r, c] = value
            with self._lock:
                self.successes.append((*key, bands))
            return arr
        finally:
            with self._lock:
                self.in_flight -= 1
