"""Argument checks, in plain Python, run before anything touches ``ee``.

Each check returns the value normalised (ISO date strings, tuples, floats) or raises
:class:`~soilbook.errors.ParameterError` (a ``ValueError``) that says what was wrong, what is
allowed and what to do. The grid helpers (:func:`utm_crs`, :func:`points_crs`,
:func:`points_bbox`) live here too: they are pure arithmetic on checked points.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from soilbook.data.earthengine.catalogue import (
    COVERAGE,
    MAX_FEATURES_PER_REQUEST,
    S2_SR_FIRST_DAY,
    S2_WAVELENGTHS_NM,
)
from soilbook.errors import ParameterError

# -- dates, bands, windows, numbers ------------------------------------------------------------


def _as_date(value: Any, what: str) -> _dt.date:
    """``value`` (a date, datetime or ISO string) as a :class:`datetime.date`."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ParameterError(
        f"{what} = {value!r} is not a date. Expected an ISO date string 'YYYY-MM-DD' or a "
        "datetime.date. What to do: write dates like '2021-04-01'."
    )


def _is_sequence(value: Any) -> bool:
    """A list-like value that is not a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _check_window_dates(
    i: int, window: Any, first_day: _dt.date, today: _dt.date
) -> tuple[_dt.date, _dt.date]:
    """One date window ``dates[i]`` as (start, end) dates, checked on its own."""
    if not _is_sequence(window) or len(window) != 2:
        raise ParameterError(
            f"dates[{i}] = {window!r} is not a (start, end) pair. Expected e.g. "
            "('2021-04-01', '2021-05-01')."
        )
    start = _as_date(window[0], f"dates[{i}][0]")
    end = _as_date(window[1], f"dates[{i}][1]")
    if end <= start:
        raise ParameterError(
            f"dates[{i}] = ({start}, {end}): the end is not after the start. Windows are "
            "half-open [start, end); swap the two dates or widen the window."
        )
    if end <= first_day:
        raise ParameterError(
            f"dates[{i}] = ({start}, {end}) ends before the collection starts on {first_day}. "
            "What to do: choose a later window."
        )
    if start > today:
        raise ParameterError(f"dates[{i}] starts in the future ({start}); choose a past window.")
    return start, end


def check_dates(
    dates: Sequence[tuple[Any, Any]], first_day: _dt.date = S2_SR_FIRST_DAY
) -> tuple[tuple[str, str], ...]:
    """Check date windows ``[(start, end), ...]`` and return them as ISO strings.

    Each window is half-open, ``[start, end)`` (Earth Engine's ``filterDate``). Windows must be
    in chronological order of their start, each start before its end, none entirely before
    ``first_day`` (the collection's first acquisition) and none starting in the future.
    """
    if not _is_sequence(dates) or len(dates) == 0:
        raise ParameterError(
            f"dates = {dates!r} is not a non-empty list of (start, end) windows. Expected e.g. "
            "[('2021-04-01', '2021-05-01'), ('2021-09-01', '2021-10-01')]."
        )
    out: list[tuple[str, str]] = []
    today = _dt.date.today()
    previous: _dt.date | None = None
    for i, window in enumerate(dates):
        start, end = _check_window_dates(i, window, first_day, today)
        if previous is not None and start <= previous:
            raise ParameterError(
                f"dates[{i}] starts on {start}, not after the previous window's start "
                f"{previous}. Expected windows in chronological order, each starting later than "
                "the one before; sort them (and remove duplicates)."
            )
        previous = start
        out.append((start.isoformat(), end.isoformat()))
    return tuple(out)


def check_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """Check Sentinel-2 L2A band names and return them as a tuple."""
    if isinstance(bands, str) or not isinstance(bands, Iterable):
        raise ParameterError(f"bands = {bands!r} is not a list of band names, e.g. ['B2', 'B3'].")
    bands = tuple(bands)
    if not bands:
        raise ParameterError(f"bands is empty. Expected some of {list(S2_WAVELENGTHS_NM)}.")
    unknown = [b for b in bands if b not in S2_WAVELENGTHS_NM]
    if unknown:
        raise ParameterError(
            f"Unknown Sentinel-2 L2A band(s) {unknown}. Allowed: {list(S2_WAVELENGTHS_NM)} "
            "(B10 is not in L2A; band names are case-sensitive, e.g. 'B8A')."
        )
    if len(set(bands)) != len(bands):
        raise ParameterError(f"bands = {list(bands)} names a band twice; list each band once.")
    return bands


def check_window(window: int) -> int:
    """Check a patch side in pixels: a positive odd integer (the patch is centred on the pixel)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise ParameterError(f"window = {window!r} must be an int (pixels), e.g. 65.")
    if window < 1:
        raise ParameterError(f"window = {window} must be positive (a side in pixels), e.g. 65.")
    if window % 2 == 0:
        raise ParameterError(
            f"window = {window} is even; the patch must be centred on the sample's pixel, so use "
            f"an odd side such as {window + 1} or {window - 1}."
        )
    return int(window)


def check_int(value: Any, name: str, example: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (not a bool), else :class:`ParameterError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} = {value!r} must be an int >= {minimum}, e.g. {example}.")
    return int(value)


def check_positive(value: Any, name: str, example: str) -> float:
    """Check that ``value`` is a finite number > 0 (not a bool) and return it as a float."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ParameterError(f"{name} = {value!r} must be a positive number, e.g. {example}.")
    return float(value)


def check_cloud_prob_max(value: Any) -> float:
    """Check an s2cloudless threshold in percent, 0 < value <= 100."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (0 < value <= 100)
    ):
        raise ParameterError(
            f"cloud_prob_max = {value!r} must be a cloud probability in percent, "
            "0 < value <= 100 (e.g. 40)."
        )
    return float(value)


def check_batch_size(batch_size: Any) -> int | None:
    """Check points per ``getInfo`` call: an int in [1, 5000], or ``None`` for the default."""
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_FEATURES_PER_REQUEST
    ):
        raise ParameterError(
            f"batch_size = {batch_size!r} must be an int between 1 and "
            f"{MAX_FEATURES_PER_REQUEST} (Earth Engine returns at most "
            f"{MAX_FEATURES_PER_REQUEST} features per request), or None for the default."
        )
    return batch_size


def check_crs(crs: Any) -> str | None:
    """Check a CRS string such as ``'EPSG:32650'`` (or ``None``: the points' UTM zone)."""
    if crs is not None and (not isinstance(crs, str) or not crs.strip()):
        raise ParameterError(f"crs = {crs!r} must be a CRS string such as 'EPSG:32650', or None.")
    return crs


# -- points and regions ------------------------------------------------------------------------


def _check_point(i: int, p: Any) -> dict[str, Any]:
    """Point ``points[i]`` as ``{'id': str, 'lat': float, 'lon': float}``."""
    if not isinstance(p, Mapping):
        raise ParameterError(f"points[{i}] = {p!r} is not a dict with 'id', 'lat' and 'lon'.")
    missing = [k for k in ("id", "lat", "lon") if k not in p]
    if missing:
        raise ParameterError(f"points[{i}] has no {missing}; every point needs 'id', 'lat', 'lon'.")
    try:
        lat, lon = float(p["lat"]), float(p["lon"])
    except (TypeError, ValueError):
        raise ParameterError(
            f"points[{i}] has lat={p['lat']!r}, lon={p['lon']!r}; expected numbers in degrees."
        ) from None
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise ParameterError(f"points[{i}] has lat={lat}; expected WGS84 degrees in [-90, 90].")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise ParameterError(
            f"points[{i}] has lon={lon}; expected WGS84 degrees in [-180, 180] "
            "(were lat and lon swapped?)."
        )
    return {"id": str(p["id"]), "lat": lat, "lon": lon}


def check_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check sample points and return ``[{'id': str, 'lat': float, 'lon': float}, ...]``.

    Each point is a mapping with ``lat`` and ``lon`` (WGS84 degrees) and an ``id`` that is unique
    once written as a string (ids travel to Earth Engine as strings, so that ``1`` and ``1.0``
    cannot be confused on the way back).
    """
    if isinstance(points, Mapping) or not isinstance(points, Sequence) or len(points) == 0:
        raise ParameterError(
            "points is empty or not a list. Expected a non-empty list of dicts such as "
            "[{'id': 'S001', 'lat': 37.71, 'lon': 118.86}, ...]."
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, p in enumerate(points):
        point = _check_point(i, p)
        if point["id"] in seen:
            raise ParameterError(f"points[{i}] repeats the id {point['id']!r}; ids must be unique.")
        seen.add(point["id"])
        out.append(point)
    return out


def check_targets(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """The measured value ``points[i][key]`` of every point, float64 of shape (n,).

    Raises :class:`ParameterError` naming the points without a finite value, so that a
    missing target stops an extraction before any request is sent.
    """
    values = []
    missing = []
    for p in points:
        v = p.get(key)
        try:
            f = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            f = math.nan
        if not math.isfinite(f):
            missing.append(str(p.get("id")))
        values.append(f)
    if missing:
        raise ParameterError(
            f"{len(missing)} point(s) have no finite '{key}' (ids {missing[:10]}). Every sample "
            f"needs its measured value under '{key}'; drop unlabelled points first (use "
            "point_values_request for inputs at unlabelled points)."
        )
    return np.asarray(values, dtype=np.float64)


def check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """Check a ``(west, south, east, north)`` box in WGS84 degrees."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ParameterError(
            f"region = {bbox!r} is not an ee.Geometry nor a (west, south, east, north) box in "
            "degrees."
        ) from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ParameterError(
            f"region box {(west, south, east, north)} is not (west, south, east, north) with "
            "west < east in [-180, 180] and south < north in [-90, 90]."
        )
    return west, south, east, north


def precheck_region(region: Any) -> None:
    """Check a box region before ``ee`` is touched (ee objects are checked when they are used)."""
    if region is None:
        raise ParameterError(
            "region is None. Expected an ee.Geometry / ee.FeatureCollection or a "
            "(west, south, east, north) box in degrees."
        )
    if isinstance(region, (tuple, list)):
        check_bbox(region)


def utm_crs(lat: float, lon: float) -> str:
    """EPSG code of the WGS84 / UTM zone that contains (``lat``, ``lon``), e.g. ``EPSG:32650``."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def points_crs(points: Sequence[Mapping[str, Any]]) -> str:
    """The UTM zone of the points' centroid (their sampling grid unless a ``crs`` is given)."""
    pts = check_points(points)
    return utm_crs(float(np.mean([p["lat"] for p in pts])), float(np.mean([p["lon"] for p in pts])))


def points_bbox(
    points: Sequence[Mapping[str, Any]], margin_m: float = 1000.0
) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` around the points, widened by ``margin_m`` metres."""
    pts = check_points(points)
    lats = np.array([p["lat"] for p in pts])
    lons = np.array([p["lon"] for p in pts])
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * max(math.cos(math.radians(float(np.abs(lats).max()))), 0.01))
    return (
        max(float(lons.min()) - dlon, -180.0),
        max(float(lats.min()) - dlat, -90.0),
        min(float(lons.max()) + dlon, 180.0),
        min(float(lats.max()) + dlat, 90.0),
    )


# -- coverage of a collection --------------------------------------------------------------------


def check_coverage(
    collection: str,
    points: Sequence[Mapping[str, Any]] | None = None,
    dates: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Refuse points or date windows that ``collection`` cannot cover (before any request).

    ``points`` are checked points (``lat`` in degrees) and ``dates`` checked ISO windows
    ``[(start, end), ...]`` (half-open). Uses :data:`~.catalogue.COVERAGE`; raises
    :class:`ParameterError` naming the first offending point or window, the collection's span
    and what to do.
    """
    if collection not in COVERAGE:
        raise ParameterError(
            f"collection {collection!r} has no coverage entry; known: {sorted(COVERAGE)}. "
            "What to do: add it to soilbook.data.earthengine.catalogue.COVERAGE."
        )
    cov = COVERAGE[collection]
    for p in points or ():
        lat = float(p["lat"])
        if not cov.lat_min <= lat <= cov.lat_max:
            raise ParameterError(
                f"point {p.get('id', '?')!r} at lat {lat:.4f} lies outside {collection}'s "
                f"footprint (lat {cov.lat_min:g} to {cov.lat_max:g}{'; ' + cov.note if cov.note else ''}). "
                "What to do: drop points outside it or use a collection that covers them."
            )
    if cov.first_day is None:
        return
    for i, (start, end) in enumerate(dates or ()):
        start_d, end_d = _as_date(start, f"dates[{i}][0]"), _as_date(end, f"dates[{i}][1]")
        if end_d <= cov.first_day:
            raise ParameterError(
                f"dates[{i}] = ({start_d}, {end_d}) ends before {collection} starts on "
                f"{cov.first_day}. What to do: choose a window after {cov.first_day}."
            )
        if cov.last_day is not None and start_d > cov.last_day:
            raise ParameterError(
                f"dates[{i}] = ({start_d}, {end_d}) starts after {collection} ended on "
                f"{cov.last_day}. What to do: choose a window before {cov.last_day}."
            )


#: The most pixels one area-of-interest extraction reads (50,000 x 50,000: a 500 km square at
#: 10 m); beyond it, map in parts or at a coarser scale.
MAX_AREA_PIXELS = 2_500_000_000


def area_pixels(bbox: Sequence[float], scale: float) -> tuple[int, int]:
    """(width, height) in pixels of ``bbox`` (west, south, east, north degrees) at ``scale``
    metres, from its extent on the WGS84 ellipsoid at the box's mid-latitude (within a few % of
    any projected grid the box is read in)."""
    west, south, east, north = check_bbox(bbox)
    mid = math.radians((south + north) / 2)
    width_m = (east - west) * 111_320.0 * math.cos(mid)
    height_m = (north - south) * 110_574.0
    return max(1, math.ceil(width_m / scale)), max(1, math.ceil(height_m / scale))


def check_area(bbox: Sequence[float], scale: float, max_pixels: int = MAX_AREA_PIXELS) -> int:
    """The pixel count of ``bbox`` at ``scale`` (m); more than ``max_pixels`` is a
    :class:`ParameterError` that gives the area's size and a scale that would fit."""
    scale = check_positive(scale, "scale", "10 (metres)")
    width, height = area_pixels(bbox, scale)
    if width * height > max_pixels:
        fits = scale * math.sqrt(width * height / max_pixels)
        raise ParameterError(
            f"the area {tuple(bbox)} is {width:,} x {height:,} pixels at {scale:g} m "
            f"({width * height:,} pixels; at most {max_pixels:,} in one extraction). What to do: "
            f"use a coarser scale (>= {math.ceil(fits)} m), split the area into parts, or a "
            "smaller area of interest."
        )
    return width * height
