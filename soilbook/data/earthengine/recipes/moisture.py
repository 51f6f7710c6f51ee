"""The soil-moisture chapter's recipe (chapter 4): multimodal tiles and station readings.

:func:`moisture_image` composes, for one date window, one ``ee.Image`` whose first bands are
exactly the chapter's :data:`soilbook.data.moisture.CHANNELS`, in order, and whose last band is
the coarse SMAP product (``coarse``); :func:`extract_moisture_data` cuts tiles of it around the
user's in-situ stations with the pixel engine (:func:`~..pixels.fetch_patches`) and returns a
:class:`soilbook.data.moisture.MoistureData` — the layout the simulator and the file loaders
return, so the chapter runs on it unchanged. :func:`precheck_moisture` refuses, before any
request, what could only come back empty or wrong.

Stations
--------
``points`` are in-situ readings: dicts with ``id`` (unique per reading), ``lat`` / ``lon``
(WGS84 degrees), ``date`` (ISO day of the reading), ``target`` (0-5 cm volumetric soil moisture
in **vol %**, 100 x m³/m³) and optionally ``station`` (the sensor's name; default the ``id``,
so that one station read on several days is several points with one ``station``) and
``landscape`` (e.g. "farmland"; default ``"unknown"`` — Earth Engine does not know the
paper's three landscape types, and guessing them from land cover would be a claim we cannot
check).

Channels (each from its collection)
-----------------------------------
==============  ====================================================  ===============================
channel         source and processing                                 units
==============  ====================================================  ===============================
VV, VH          ``COPERNICUS/S1_GRD``: IW mode, 10 m GRD, dual pol    dB (Earth Engine's GRD are
                VV+VH (``transmitterReceiverPolarisation`` contains   already 10·log10 σ⁰)
                both), scenes of the window, **median** per pixel
theta           the GRD ``angle`` band (incidence from the            degrees
                ellipsoid), median of the same scenes
B2 B3 B4 B8     ``COPERNICUS/S2_SR_HARMONIZED`` cloud-masked median   1 (reflectance)
B11             (:func:`~..layers.sentinel2_window_composites`:
                s2cloudless < ``cloud_prob_max`` and not SCL shadow,
                DN/10000, bilinear) over the window **widened by
                ``s2_pad_days`` on both sides**
ndvi            (B8 - B4) / (B8 + B4) of that composite               1
                (:func:`~..layers.spectral_index_layers`)
elevation       ``COPERNICUS/DEM/GLO30``, bilinear                    m
slope           ``ee.Terrain.slope`` of it                            degrees
                (:func:`~..layers.terrain_layers`)
t2m             ``ECMWF/ERA5_LAND/DAILY_AGGR`` ``temperature_2m`` of  °C (K - 273.15)
                the reference day, bilinear
precip          ``total_precipitation_sum`` of the reference day      mm/day (m x 1000)
api             antecedent precipitation index on the reference day:  mm
                Σ_{i=0}^{api_days-1} k^i · P(day - i), k = 0.9 (the
                simulator's ``api_decay``), P as ``precip``
doy_sin,        sin / cos(2π (doy + 0.5) / 365.25) of the reference   1
doy_cos         day, doy = 0 on 1 January (the simulator's encoding)
coarse          ``NASA/SMAP/SPL4SMGP/008`` ``sm_surface`` (0-5 cm),   vol % (m³/m³ x 100)
                mean of the reference day's 3-hourly fields,
                **nearest** resampling (the 9 km cells stay blocks,
                as the simulator's block-mean product)
==============  ====================================================  ===============================

Choices
-------
- **Windows and the reference day.** A tile belongs to one half-open date window
  ``[start, end)``. Its reference day — the tile's ``date`` — is the window's middle day
  (``start + (days - 1) // 2``; a one-day window is its own reference day). SAR is the median
  of the window's scenes (the median is an order statistic, so the median of dB is the dB of
  the median of σ⁰; a mean of dB would not be); meteorology, day of year and the coarse label
  are of the reference day. Keep windows short — one Sentinel-1 revisit (6-12 days) or less —
  since soil moisture changes within days; a station reading keeps its own ``date`` in the
  readings (``tile_date`` is the tile's).
- **Orbits.** Both passes are mixed unless ``orbit_pass`` is ``"ASCENDING"`` or
  ``"DESCENDING"``; the incidence angle (``theta``) is an input, so the network can tell them
  apart where one pass dominates.
- **Meteorology** is ERA5-Land at 0.1° (about 9-11 km), interpolated bilinearly, with no
  lapse-rate downscaling of ``t2m`` (the simulator's tiles have one). ERA5-Land reaches the
  present with a lag of about a week: a reference day in that week comes back masked
  (``valid = 0``), as does SMAP L4 in its few days of latency.
- **No speckle filter**, no terrain flattening: the median over the window's scenes is the
  only smoothing. *Inferred departure*: the paper does not publish its SAR pre-processing.
- **Masked pixels** (no scene, cloud, sea in ERA5-Land) are unmasked with
  :data:`~..catalogue.FILL_VALUE`; they come back as NaN and get ``valid = 0`` (their value is
  set to 0). A window with no scene at all composites to an all-masked band (never an error).
- **Tile grid.** Tiles are cut in the UTM zone of their site at ``scale`` metres (10 m, the
  Sentinel-1/2 grid; pixel edges on multiples of ``scale``). The chapter's network halves the
  tile side five times, so ``tile_size`` must be a multiple of 32; the pixel engine's
  :func:`~..pixels.grid_around` wants an odd side centred on a pixel, so each tile is fetched as
  ``tile_size + 1`` pixels around the site's centre pixel and its last row and column are
  dropped: the centre pixel sits at row and column ``tile_size // 2``.
- **Sites.** Stations are grouped into sites so that nearby stations share a tile: in each UTM
  zone, greedily in input order, a station joins the first site whose first station lies within
  ``tile_size // 2 - margin`` pixels of it in both axes (``margin = max(2, tile_size // 8)``
  pixels from the tile's edge), else it starts a new site; the site's tile is centred on the
  middle of its stations' extent. A site is the tile set's ``location`` (all dates of a site go
  to the same side of a held-out-tile split), named ``site <first station>``; its ``stations``
  coordinate counts the distinct stations there.
- **Tiles** are made for each (site, window) with at least one reading, or — with
  ``every_window=True`` — for every site in every window (tiles without a reading still carry
  the coarse label, for the intermediate task).

Departures from the paper (Liu et al. 2025)
-------------------------------------------
The paper also reads Gaofen-3 L-band SAR (not in Earth Engine), Landsat-8, MODIS LAI/FPAR and
location metadata. The chapter's :data:`~soilbook.data.moisture.CHANNELS` have none of them, so
they are **not read** (``LANDSAT/LC08/C02/T1_L2``, ``LANDSAT/LC09/C02/T1_L2`` and
``MODIS/061/MCD15A3H`` are in the catalogue for a user who adds channels). Any channel of
``CHANNELS`` without a source here is refused with a :class:`~soilbook.errors.ParameterError`
naming it, never filled with a stand-in. The speckle filter and compositing rules are ours
(above).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soilbook.data import moisture as mo
from soilbook.data.earthengine.catalogue import (
    COVERAGE,
    ERA5_LAND_DAILY,
    FILL_VALUE,
    GLO30,
    S1_GRD,
    S2_CLOUD_PROBABILITY,
    S2_SR,
    SMAP_L4,
    collection_attrs,
)
from soilbook.data.earthengine.checks import (
    _as_date,
    check_cloud_prob_max,
    check_coverage,
    check_dates,
    check_int,
    check_points,
    check_positive,
    check_targets,
    utm_crs,
)
from soilbook.data.earthengine.layers import (
    _masked_constant,
    _region,
    sentinel2_window_composites,
    spectral_index_layers,
    terrain_layers,
)
from soilbook.data.earthengine.request import request_region
from soilbook.data.earthengine.session import _ee_ready, ensure_initialized
from soilbook.data.schema import sample_set, tile_set
from soilbook.errors import ParameterError

__all__ = [
    "CHANNEL_SOURCES",
    "IMAGE_BANDS",
    "MOISTURE_COLLECTIONS",
    "check_tile_size",
    "extract_moisture_data",
    "group_sites",
    "moisture_image",
    "precheck_moisture",
    "reading_windows",
    "reference_day",
    "site_margin",
]

#: The collections one soil-moisture extraction reads (Sentinel-1 first: the oldest constraint).
MOISTURE_COLLECTIONS = (S1_GRD, S2_SR, S2_CLOUD_PROBABILITY, GLO30, ERA5_LAND_DAILY, SMAP_L4)
#: Where each channel of :data:`soilbook.data.moisture.CHANNELS` comes from (module docstring).
CHANNEL_SOURCES: dict[str, str] = {
    "VV": f"{S1_GRD} VV, median of the window (dB)",
    "VH": f"{S1_GRD} VH, median of the window (dB)",
    "theta": f"{S1_GRD} angle, median of the window (degrees)",
    **{b: f"{S2_SR} {b}, cloud-masked median (reflectance)" for b in ("B2", "B3", "B4", "B8")},
    "B11": f"{S2_SR} B11, cloud-masked median (reflectance)",
    "ndvi": f"{S2_SR} (B8 - B4) / (B8 + B4) of the composite",
    "elevation": f"{GLO30} DEM (m)",
    "slope": f"ee.Terrain.slope of {GLO30} (degrees)",
    "t2m": f"{ERA5_LAND_DAILY} temperature_2m of the reference day (degC)",
    "precip": f"{ERA5_LAND_DAILY} total_precipitation_sum of the reference day (mm/day)",
    "api": f"antecedent precipitation index from {ERA5_LAND_DAILY} (mm)",
    "doy_sin": "sin(2 pi (doy + 0.5) / 365.25) of the reference day",
    "doy_cos": "cos(2 pi (doy + 0.5) / 365.25) of the reference day",
}
#: The bands of :func:`moisture_image`: the chapter's channels in order, then ``coarse``.
IMAGE_BANDS: tuple[str, ...] = (*mo.CHANNEL_NAMES, "coarse")
#: Sentinel-2 bands read (the optical channels but NDVI).
OPTICAL_BANDS = ("B2", "B3", "B4", "B8", "B11")
#: Sentinel-1 GRD bands read, and the names they get.
SAR_BANDS = ("VV", "VH", "angle")
SAR_NAMES = ("VV", "VH", "theta")
ORBIT_PASSES = ("ASCENDING", "DESCENDING")
#: ERA5-Land daily bands: 2 m air temperature (K) and the day's total precipitation (m).
ERA5_T2M = "temperature_2m"
ERA5_PRECIP = "total_precipitation_sum"
KELVIN = 273.15
M_TO_MM = 1000.0
#: SMAP L4 0-5 cm soil moisture (m³/m³) and the factor to vol %.
SMAP_BAND = "sm_surface"
M3_TO_PERCENT = 100.0
#: The antecedent precipitation index: daily decay and the days summed (0.9^60 < 0.2 %).
API_DECAY = 0.9
API_DAYS = 60
#: Days the Sentinel-2 window is widened by on each side, by default (clouds).
S2_PAD_DAYS = 15
#: Tile sides: multiples of 32 (five halvings of the network) up to 1024 pixels.
TILE_MULTIPLE = 32
MAX_TILE_SIZE = 1024
TARGET_KEY = "target"
UNKNOWN_LANDSCAPE = "unknown"


# -- windows and days ----------------------------------------------------------------------------


def reference_day(window: tuple[str, str]) -> _dt.date:
    """The reference day of a half-open window ``[start, end)``: its middle day,
    ``start + (days - 1) // 2`` (module docstring)."""
    start = _as_date(window[0], "window start")
    end = _as_date(window[1], "window end")
    return start + _dt.timedelta(days=((end - start).days - 1) // 2)


def _day_angle(day: _dt.date) -> float:
    """:func:`soilbook.data.moisture.day_angle` of ``day`` (the simulator's encoding)."""
    return float(mo.day_angle(day.timetuple().tm_yday - 1))


def _iso(day: _dt.date, days: int = 0) -> str:
    return (day + _dt.timedelta(days=days)).isoformat()


def _earliest_first_day() -> _dt.date:
    """The earliest first day of the collections read (windows are checked against each
    collection by :func:`~..checks.check_coverage`, which names it)."""
    return min(COVERAGE[c].first_day for c in MOISTURE_COLLECTIONS if COVERAGE[c].first_day)


def _check_window(window: Any) -> tuple[str, str]:
    """One checked window ``(start, end)`` as ISO strings, inside every collection's life."""
    if not (
        isinstance(window, (list, tuple))
        and len(window) == 2
        and all(isinstance(v, (str, _dt.date)) for v in window)
    ):
        raise ParameterError(
            f"date_window = {window!r} is not one (start, end) pair. Expected e.g. "
            "('2021-05-01', '2021-05-13'). What to do: pass one window (extract_moisture_data "
            "takes a list of them)."
        )
    (checked,) = check_dates([tuple(window)], first_day=_earliest_first_day())
    for collection in MOISTURE_COLLECTIONS:
        check_coverage(collection, None, [checked])
    return checked


def reading_windows(points: Sequence[Mapping[str, Any]], days: int = 7) -> list[tuple[str, str]]:
    """Date windows for station readings: ``days`` days centred on each reading's day
    (``[day - days // 2, day - days // 2 + days)``), overlapping ones merged, in order — so
    that windows are disjoint and each reading falls in exactly one (what
    :func:`precheck_moisture` asks). A merged window is longer than ``days``; its reference day
    is its middle. Raises :class:`ParameterError` for a point without a date or a bad ``days``.
    """
    days = check_int(days, "days", "7 (about one Sentinel-1 revisit)")
    spans: list[list[_dt.date]] = []
    starts = []
    for i, p in enumerate(points):
        if not isinstance(p, Mapping) or "date" not in p:
            raise ParameterError(
                f"points[{i}] has no 'date'. What to do: give every reading its ISO day."
            )
        starts.append(_as_date(p["date"], f"points[{i}]['date']") - _dt.timedelta(days // 2))
    for start in sorted(set(starts)):
        end = start + _dt.timedelta(days=days)
        if spans and start < spans[-1][1]:  # half-open: adjacent windows stay apart
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(a.isoformat(), b.isoformat()) for a, b in spans]


def _check_orbit_pass(orbit_pass: Any) -> str | None:
    if orbit_pass is not None and orbit_pass not in ORBIT_PASSES:
        raise ParameterError(
            f"orbit_pass = {orbit_pass!r} is not allowed. Allowed: None (both passes), "
            f"{', '.join(repr(p) for p in ORBIT_PASSES)}. What to do: pick one of those."
        )
    return orbit_pass


def _check_sources(names: Sequence[str]) -> None:
    """Every channel must have an Earth Engine source here (never a stand-in)."""
    missing = [n for n in names if n not in CHANNEL_SOURCES]
    if missing:
        raise ParameterError(
            f"the chapter's channel(s) {missing} have no Earth Engine source in this recipe "
            f"(it provides {list(CHANNEL_SOURCES)}). Earth Engine cannot give them as they are "
            "(e.g. Gaofen-3 L-band SAR is not in its catalogue). What to do: drop those "
            "channels, or add a builder for them to soilbook.data.earthengine.recipes.moisture."
        )


# -- the channel builders (pure) --------------------------------------------------------------


def _sar(ee: Any, geometry: Any, window: tuple[str, str], orbit_pass: str | None) -> Any:
    """Median VV, VH (dB) and incidence angle of the window's IW dual-pol GRD scenes."""
    scenes = (
        ee.ImageCollection(S1_GRD)
        .filterBounds(geometry)
        .filterDate(window[0], window[1])
        .filter(ee.Filter.eq("instrumentMode", "IW"))
        .filter(ee.Filter.eq("resolution_meters", 10))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
    )
    if orbit_pass is not None:
        scenes = scenes.filter(ee.Filter.eq("orbitProperties_pass", orbit_pass))
    stack = scenes.select(list(SAR_BANDS)).map(lambda image: ee.Image(image).toFloat())
    stack = stack.merge(ee.ImageCollection([_masked_constant(ee, SAR_BANDS)]))
    return stack.median().select(list(SAR_BANDS), list(SAR_NAMES))


def _optical(
    ee: Any, region: Any, window: tuple[str, str], cloud_prob_max: float, pad_days: int
) -> Any:
    """Cloud-masked Sentinel-2 median of the widened window, with NDVI as ``ndvi``."""
    start = _as_date(window[0], "window start") - _dt.timedelta(days=pad_days)
    end = _as_date(window[1], "window end") + _dt.timedelta(days=pad_days)
    (composite,) = sentinel2_window_composites(
        region, [(start.isoformat(), end.isoformat())], cloud_prob_max, OPTICAL_BANDS
    )
    ndvi = spectral_index_layers([composite]).select(["NDVI_t0"], ["ndvi"])
    return ee.Image(composite).select(list(OPTICAL_BANDS)).addBands(ndvi)


def _era5_days(ee: Any, geometry: Any, first: str, end: str, bands: Sequence[str]) -> Any:
    """ERA5-Land daily images of ``[first, end)``, ``bands`` as float, bilinear."""
    return (
        ee.ImageCollection(ERA5_LAND_DAILY)
        .filterBounds(geometry)
        .filterDate(first, end)
        .select(list(bands))
        .map(lambda image: ee.Image(image).resample("bilinear").toFloat())
    )


def _meteo(ee: Any, geometry: Any, day: _dt.date, api_days: int, api_decay: float) -> Any:
    """``t2m`` (°C) and ``precip`` (mm/day) of ``day`` and ``api`` (mm) up to ``day``."""
    bands = (ERA5_T2M, ERA5_PRECIP)
    of_day = (
        _era5_days(ee, geometry, _iso(day), _iso(day, 1), bands)
        .merge(ee.ImageCollection([_masked_constant(ee, bands)]))
        .mean()
    )
    t2m = of_day.select([ERA5_T2M]).subtract(KELVIN).rename(["t2m"])
    precip = of_day.select([ERA5_PRECIP]).multiply(M_TO_MM).rename(["precip"])
    reference = ee.Date(_iso(day))

    def weighted(image: Any) -> Any:
        image = ee.Image(image)
        lag = reference.difference(image.date(), "day").round()
        return image.multiply(M_TO_MM).multiply(ee.Number(api_decay).pow(lag)).toFloat()

    api = (
        _era5_days(ee, geometry, _iso(day, 1 - api_days), _iso(day, 1), [ERA5_PRECIP])
        .map(weighted)
        .merge(ee.ImageCollection([_masked_constant(ee, [ERA5_PRECIP])]))
        .sum()
        .rename(["api"])
    )
    return t2m.addBands(precip).addBands(api)


def _time(ee: Any, day: _dt.date) -> Any:
    """The cyclic day of year of ``day`` as two constant bands."""
    angle = _day_angle(day)
    return ee.Image.constant([math.sin(angle), math.cos(angle)]).rename(["doy_sin", "doy_cos"])


def _coarse(ee: Any, geometry: Any, day: _dt.date) -> Any:
    """SMAP L4 surface soil moisture of ``day`` (mean of its 3-hourly fields), in vol %."""
    return (
        ee.ImageCollection(SMAP_L4)
        .filterBounds(geometry)
        .filterDate(_iso(day), _iso(day, 1))
        .select([SMAP_BAND])
        .map(lambda image: ee.Image(image).toFloat())
        .merge(ee.ImageCollection([_masked_constant(ee, [SMAP_BAND])]))
        .mean()
        .multiply(M3_TO_PERCENT)
        .rename(["coarse"])
    )


def _check_region(region: Any) -> None:
    """A box region is checked, and against every collection's footprint (its south and north
    edges as points); an ``ee`` geometry is checked when it is used."""
    if isinstance(region, (tuple, list)):
        from soilbook.data.earthengine.checks import check_bbox

        west, south, east, north = check_bbox(region)
        edges = [
            {"id": "region south edge", "lat": south, "lon": west},
            {"id": "region north edge", "lat": north, "lon": east},
        ]
        for collection in MOISTURE_COLLECTIONS:
            check_coverage(collection, edges)
    elif region is None:
        raise ParameterError(
            "region is None. Expected an ee.Geometry or a (west, south, east, north) box in "
            "degrees. What to do: pass the area the tiles lie in."
        )


def moisture_image(
    region: Any,
    date_window: tuple[str, str],
    *,
    orbit_pass: str | None = None,
    cloud_prob_max: float = 40,
    s2_pad_days: int = S2_PAD_DAYS,
    api_days: int = API_DAYS,
    api_decay: float = API_DECAY,
) -> Any:
    """The chapter-4 inputs of one date window as one ``ee.Image`` (pure: nothing is sent).

    Parameters
    ----------
    region : ee.Geometry | (west, south, east, north)
        Scenes that intersect it are used (a box in WGS84 degrees).
    date_window : (start, end)
        One half-open window ``[start, end)`` of ISO dates; its middle day is the reference
        day (:func:`reference_day`) of the meteorology, the day of year and ``coarse``.
    orbit_pass : None (both), ``"ASCENDING"`` or ``"DESCENDING"`` (Sentinel-1 scenes kept).
    cloud_prob_max : s2cloudless probability (percent) at or above which a pixel is cloud.
    s2_pad_days : days (>= 0) the Sentinel-2 window is widened by on each side.
    api_days, api_decay : the antecedent precipitation index sums ``api_days`` (>= 1) days
        with weights ``api_decay ** lag`` (0 < decay <= 1).

    Returns
    -------
    ee.Image, float, with the bands :data:`IMAGE_BANDS`: the
    :data:`soilbook.data.moisture.CHANNELS` in order, in their units (module docstring), then
    ``coarse`` (SMAP L4 ``sm_surface`` in vol %); masked pixels are
    :data:`~..catalogue.FILL_VALUE`. Properties ``window_start``, ``window_end``,
    ``reference_day``.

    Raises :class:`ParameterError` for a bad argument, a window outside a collection's life, a
    box outside a footprint, or a channel of ``CHANNELS`` that Earth Engine cannot give.
    """
    _check_sources(mo.CHANNEL_NAMES)
    window = _check_window(date_window)
    _check_region(region)
    orbit_pass = _check_orbit_pass(orbit_pass)
    cloud = check_cloud_prob_max(cloud_prob_max)
    pad = check_int(s2_pad_days, "s2_pad_days", "15", minimum=0)
    api_days = check_int(api_days, "api_days", "60")
    decay = check_positive(api_decay, "api_decay", "0.9")
    if decay > 1:
        raise ParameterError(
            f"api_decay = {decay:g} is not allowed: a daily decay lies in (0, 1]. What to do: "
            "pass e.g. 0.9."
        )
    ee = _ee_ready()
    geometry = _region(ee, region)
    day = reference_day(window)
    parts = (
        _sar(ee, geometry, window, orbit_pass)
        .addBands(_optical(ee, region, window, cloud, pad))
        .addBands(terrain_layers(region).select(["elevation", "slope"]))
        .addBands(_meteo(ee, geometry, day, api_days, decay))
        .addBands(_time(ee, day))
        .addBands(_coarse(ee, geometry, day))
    )
    return (
        parts.select(list(IMAGE_BANDS))
        .toFloat()
        .unmask(FILL_VALUE, False)
        .set({"window_start": window[0], "window_end": window[1], "reference_day": _iso(day)})
    )


# -- stations and the precheck ------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    """One checked station reading and the window it falls in."""

    id: str
    station: str
    lat: float
    lon: float
    day: _dt.date
    target: float
    landscape: str
    window: int


def _window_of(i: int, pid: str, day: _dt.date, windows: Sequence[tuple[str, str]]) -> int:
    """The one window that holds ``day``; none or two is a :class:`ParameterError`."""
    inside = [
        k for k, (s, e) in enumerate(windows) if _as_date(s, "start") <= day < _as_date(e, "end")
    ]
    if len(inside) == 1:
        return inside[0]
    if not inside:
        raise ParameterError(
            f"points[{i}] (id {pid!r}) was read on {day}, outside every date window "
            f"{list(windows)} (half-open [start, end)). What to do: add a window that holds "
            "that day, or drop the reading."
        )
    raise ParameterError(
        f"points[{i}] (id {pid!r}) was read on {day}, which lies in the windows "
        f"{[windows[k] for k in inside]}: a reading must belong to one tile. What to do: make "
        "the windows disjoint."
    )


def _check_target_range(points: Sequence[Mapping[str, Any]], values: np.ndarray) -> None:
    bad = np.flatnonzero((values < 0) | (values > 100))
    if bad.size:
        first = int(bad[0])
        raise ParameterError(
            f"{bad.size} point(s) have a soil moisture outside [0, 100] vol % (the first: "
            f"points[{first}], id {points[first].get('id')!r}, target {values[first]:g}). What "
            "to do: give volumetric soil moisture in % (100 x m³/m³)."
        )


def _landscape(i: int, p: Mapping[str, Any]) -> str:
    value = p.get("landscape", UNKNOWN_LANDSCAPE)
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(
            f"points[{i}] has landscape={value!r}; expected a non-empty name. What to do: give "
            "e.g. 'farmland', or leave the 'landscape' key out (then 'unknown')."
        )
    return value


def _readings(
    points: Sequence[Mapping[str, Any]], dates: Sequence[tuple[str, str]]
) -> tuple[list[_Reading], tuple[tuple[str, str], ...]]:
    """The checked readings and windows (:func:`precheck_moisture`)."""
    pts = check_points(points)
    windows = check_dates(dates, first_day=_earliest_first_day())
    targets = check_targets(points, TARGET_KEY)
    _check_target_range(points, targets)
    for collection in MOISTURE_COLLECTIONS:
        check_coverage(collection, pts, windows)
    out = []
    for i, (p, raw) in enumerate(zip(pts, points, strict=True)):
        if "date" not in raw:
            raise ParameterError(
                f"points[{i}] (id {p['id']!r}) has no 'date'. Every station reading needs the "
                "ISO day it was taken. What to do: add e.g. 'date': '2021-05-04'."
            )
        day = _as_date(raw["date"], f"points[{i}]['date']")
        out.append(
            _Reading(
                id=p["id"],
                station=str(raw.get("station", p["id"])),
                lat=p["lat"],
                lon=p["lon"],
                day=day,
                target=float(targets[i]),
                landscape=_landscape(i, raw),
                window=_window_of(i, p["id"], day, windows),
            )
        )
    return out, windows


def precheck_moisture(points: list[dict], dates: list[tuple[str, str]]) -> None:
    """Check a soil-moisture extraction in plain Python, before any ``ee`` call.

    ``points`` are station readings (module docstring: ``id``, ``lat``, ``lon``, ``date``,
    ``target`` in vol %, optional ``station`` / ``landscape``); ``dates`` the half-open date
    windows, in order. Checks the points (:func:`~..checks.check_points`), the windows, every
    target (a number in [0, 100] %), every point and window against the footprint and life of
    each of :data:`MOISTURE_COLLECTIONS` (:func:`~..checks.check_coverage`: no window before
    Sentinel-1 began on 2014-10-03 or Sentinel-2 SR on 2017-03-28), and that each reading's day
    falls in exactly one window. Raises :class:`~soilbook.errors.ParameterError` saying what was
    wrong and what to do.
    """
    _readings(points, dates)


# -- sites and tiles ------------------------------------------------------------------------------


@dataclass
class _Site:
    """Stations that share a tile: their readings, the UTM zone, the tile's centre."""

    name: str
    crs: str
    anchor: tuple[float, float]
    members: list[int] = field(default_factory=list)
    lat: float = math.nan
    lon: float = math.nan


def check_tile_size(tile_size: Any) -> int:
    if (
        isinstance(tile_size, bool)
        or not isinstance(tile_size, (int, np.integer))
        or not TILE_MULTIPLE <= tile_size <= MAX_TILE_SIZE
        or tile_size % TILE_MULTIPLE
    ):
        raise ParameterError(
            f"tile_size = {tile_size!r} is not allowed. Allowed: a multiple of {TILE_MULTIPLE} "
            f"from {TILE_MULTIPLE} to {MAX_TILE_SIZE} pixels (the chapter's network halves the "
            "tile five times). What to do: pass e.g. 256 (2.56 km at 10 m)."
        )
    return int(tile_size)


def site_margin(tile_size: int) -> int:
    """Pixels kept between a site's stations and its tile's edge: ``max(2, tile_size // 8)``."""
    return max(2, tile_size // 8)


def _projector(crs: str, inverse: bool = False) -> Any:
    from pyproj import Transformer

    from soilbook.data.earthengine.pixels import _transformer

    if not inverse:
        return _transformer(crs)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _site_near(
    sites: Sequence[_Site], crs: str, xy: tuple[float, float], reach: float
) -> int | None:
    """The first site in ``crs`` whose first station is within ``reach`` metres of ``xy`` in
    both axes, or ``None``."""
    for k, site in enumerate(sites):
        if (
            site.crs == crs
            and max(abs(xy[0] - site.anchor[0]), abs(xy[1] - site.anchor[1])) <= reach
        ):
            return k
    return None


def group_sites(
    readings: Sequence[Any], tile_size: int, scale: float
) -> tuple[list[_Site], dict[int, int]]:
    """Group readings (with ``station``, ``lat``, ``lon``) into sites (module docstring).

    Returns the sites (each with its UTM ``crs``, centre ``lat`` / ``lon`` and ``members``,
    positions into ``readings``) and reading position → site position.
    """
    reach = (tile_size // 2 - site_margin(tile_size)) * scale
    sites: list[_Site] = []
    site_of: dict[int, int] = {}
    xy: dict[int, tuple[float, float]] = {}
    for i, r in enumerate(readings):
        crs = utm_crs(r.lat, r.lon)
        xy[i] = _projector(crs).transform(r.lon, r.lat)
        k = _site_near(sites, crs, xy[i], reach)
        if k is None:
            name = f"site {r.station}"
            if any(s.name == name for s in sites):
                name = f"{name} #{len(sites) + 1}"
            sites.append(_Site(name, crs, xy[i]))
            k = len(sites) - 1
        sites[k].members.append(i)
        site_of[i] = k
    for site in sites:
        xs = [xy[i][0] for i in site.members]
        ys = [xy[i][1] for i in site.members]
        cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        site.lon, site.lat = _projector(site.crs, inverse=True).transform(cx, cy)
    return sites, site_of


def _pixel_of(grid: Any, crs: str, lat: float, lon: float) -> tuple[int, int]:
    """(row, col) of the pixel of ``grid`` that holds (lat, lon)."""
    x, y = _projector(crs).transform(lon, lat)
    return math.floor((grid.y0 - y) / grid.scale), math.floor((x - grid.x0) / grid.scale)


@dataclass(frozen=True)
class _Tile:
    """One tile to fetch: a site in a window."""

    site: int
    window: int


def _plan(
    readings: Sequence[_Reading], sites: Sequence[_Site], site_of: Mapping[int, int], n_windows: int
) -> list[_Tile]:
    """Tiles (window-major) of every (site, window) with a reading."""
    wanted = {(site_of[i], r.window) for i, r in enumerate(readings)}
    return [_Tile(s, w) for w in range(n_windows) for s in range(len(sites)) if (s, w) in wanted]


def _fetch_group(
    tiles: Sequence[_Tile],
    sites: Sequence[_Site],
    window: tuple[str, str],
    tile_size: int,
    scale: float,
    image_kwargs: Mapping[str, Any],
    fetch_kwargs: Mapping[str, Any],
) -> np.ndarray:
    """The pixels (tile, band, y, x) of ``tiles`` of one window and one UTM zone, cropped to
    ``tile_size`` (NaN where masked)."""
    from soilbook.data.earthengine import pixels

    pts = [
        {"id": sites[t.site].name, "lat": sites[t.site].lat, "lon": sites[t.site].lon}
        for t in tiles
    ]
    crs = sites[tiles[0].site].crs
    image = moisture_image(request_region(pts, tile_size + 1, scale), window, **image_kwargs)
    patches = pixels.fetch_patches(
        image,
        pts,
        window=tile_size + 1,
        scale=scale,
        crs=crs,
        bands=list(IMAGE_BANDS),
        **fetch_kwargs,
    )
    return np.asarray(patches.values)[:, :, :tile_size, :tile_size]


def _fetch_all(
    plan: Sequence[_Tile],
    sites: Sequence[_Site],
    windows: Sequence[tuple[str, str]],
    tile_size: int,
    scale: float,
    image_kwargs: Mapping[str, Any],
    fetch_kwargs: Mapping[str, Any],
) -> np.ndarray:
    """The pixels of every planned tile, in plan order: one fetch per (window, UTM zone)."""
    out = np.full((len(plan), len(IMAGE_BANDS), tile_size, tile_size), np.nan)
    groups: dict[tuple[int, str], list[int]] = {}
    for j, t in enumerate(plan):
        groups.setdefault((t.window, sites[t.site].crs), []).append(j)
    for (w, _), rows in groups.items():
        out[rows] = _fetch_group(
            [plan[j] for j in rows], sites, windows[w], tile_size, scale, image_kwargs, fetch_kwargs
        )
    return out


# -- the data set ---------------------------------------------------------------------------------


def _site_landscape(site: _Site, readings: Sequence[_Reading]) -> str:
    """The landscape of a site's readings; ``"mixed"`` when they disagree."""
    names = {readings[i].landscape for i in site.members}
    return names.pop() if len(names) == 1 else "mixed"


def _tiles(
    pixels_: np.ndarray,
    plan: Sequence[_Tile],
    sites: Sequence[_Site],
    readings: Sequence[_Reading],
    windows: Sequence[tuple[str, str]],
    scale: float,
    attrs: Mapping[str, Any],
) -> Any:
    """The tile set of the fetched pixels (tile, band, y, x), NaN where masked."""
    n_channels = len(mo.CHANNEL_NAMES)
    inputs, coarse = pixels_[:, :n_channels], pixels_[:, n_channels]
    valid, labelled = np.isfinite(inputs), np.isfinite(coarse)
    site_rows = [sites[t.site] for t in plan]
    n_stations = [len({readings[i].station for i in s.members}) for s in site_rows]
    return tile_set(
        np.where(valid, inputs, 0.0),
        valid,
        channels=[(name, group) for name, group, _ in mo.CHANNELS],
        channel_units=list(mo.CHANNEL_UNITS),
        locations=[s.name for s in site_rows],
        simulated=False,
        pixel_size_m=scale,
        coarse=np.where(labelled, coarse, 0.0),
        coarse_mask=labelled,
        label_units=mo.SOIL_MOISTURE_UNITS,
        coarse_long_name="SMAP L4 surface soil moisture (sm_surface x 100), day mean, 9 km",
        dates=[np.datetime64(reference_day(windows[t.window])) for t in plan],
        coords={
            "landscape": ("tile", [_site_landscape(s, readings) for s in site_rows]),
            "lat": ("tile", [s.lat for s in site_rows], {"units": "degrees_north"}),
            "lon": ("tile", [s.lon for s in site_rows], {"units": "degrees_east"}),
            "stations": ("tile", np.asarray(n_stations, dtype=np.int64)),
            "window_start": ("tile", [windows[t.window][0] for t in plan]),
            "window_end": ("tile", [windows[t.window][1] for t in plan]),
            "crs": ("tile", [s.crs for s in site_rows]),
        },
        **attrs,
    )


def _positions(
    plan: Sequence[_Tile],
    sites: Sequence[_Site],
    site_of: Mapping[int, int],
    readings: Sequence[_Reading],
    tile_size: int,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile, row, col) of every reading in the tiles of ``plan``."""
    from soilbook.data.earthengine.pixels import grid_around

    index = {(t.site, t.window): j for j, t in enumerate(plan)}
    grids = {k: grid_around(s.lat, s.lon, tile_size + 1, scale, s.crs) for k, s in enumerate(sites)}
    t, r, c = [], [], []
    for i, reading in enumerate(readings):
        k = site_of[i]
        row, col = _pixel_of(grids[k], sites[k].crs, reading.lat, reading.lon)
        if not (0 <= row < tile_size and 0 <= col < tile_size):  # pragma: no cover - by design
            raise AssertionError(f"reading {reading.id} fell outside its site's tile")
        t.append(index[(k, reading.window)])
        r.append(row)
        c.append(col)
    return tuple(np.asarray(a, dtype=np.int64) for a in (t, r, c))


def _readings_set(
    tiles: Any,
    readings: Sequence[_Reading],
    positions: tuple[np.ndarray, np.ndarray, np.ndarray],
    attrs: Mapping[str, Any],
) -> Any:
    """The readings sample set: target in %, the channels at the station pixel (NaN where not
    observed) and ``optical_valid``, as the simulator lays them out."""
    t, r, c = positions
    x = mo.pixel_features(tiles, t, r, c)
    optical = tiles["valid"].values[t, mo.CHANNEL_NAMES.index("B2"), r, c].astype(np.float32)
    locations = np.asarray(tiles["location"].values).astype(str)[t]
    return sample_set(
        np.asarray([rd.target for rd in readings], dtype=np.float64),
        groups=locations,
        group_long_name="site (held-out-tile cross-validation)",
        simulated=False,
        target_units=mo.SOIL_MOISTURE_UNITS,
        target_long_name="volumetric soil moisture 0-5 cm at the station (in situ)",
        covariates=np.concatenate([x, optical[:, None]], axis=1),
        features=[(name, group) for name, group, _ in mo.CHANNELS]
        + [("optical_valid", "spectral")],
        feature_units=[*mo.CHANNEL_UNITS, "1"],
        covariate_long_name="input channels at the station pixel (NaN where not observed)",
        lat=[rd.lat for rd in readings],
        lon=[rd.lon for rd in readings],
        sample_ids=np.asarray([rd.id for rd in readings]),
        coords={
            "station": ("sample", np.asarray([rd.station for rd in readings])),
            "tile": ("sample", t),
            "row": ("sample", r),
            "col": ("sample", c),
            "location": ("sample", locations),
            "landscape": ("sample", np.asarray(tiles["landscape"].values).astype(str)[t]),
            "date": ("sample", np.asarray([rd.day for rd in readings], dtype="datetime64[ns]")),
            "tile_date": ("sample", np.asarray(tiles["date"].values)[t]),
        },
        **attrs,
    )


def _description(tiles: Any, readings: Any, n_sites: int, n_windows: int, scale: float) -> str:
    n = tiles.sizes["tile"]
    side = tiles.sizes["y"]
    optical = 1.0 - float(tiles["valid"].values[:, mo.CHANNEL_NAMES.index("B2")].mean())
    coarse = float(tiles["coarse_mask"].values.mean())
    return (
        f"real, from Earth Engine: {n} tiles of {side} x {side} pixels of {scale:g} m "
        f"({n_sites} station sites x {n_windows} date windows; Sentinel-1 GRD VV/VH and "
        "incidence angle, cloud-masked Sentinel-2 SR and NDVI, Copernicus GLO-30 elevation and "
        "slope, ERA5-Land daily meteorology and day of year; coarse label: SMAP L4 surface soil "
        f"moisture) and {readings.sizes['sample']} in-situ station readings (vol %). "
        f"{100 * optical:.0f} % of optical pixels are masked (cloud or no scene), "
        f"{100 * coarse:.0f} % of pixels have the coarse label. Landscape types are "
        f"{sorted(set(map(str, tiles['landscape'].values)))} (Earth Engine does not know them)."
    )


def extract_moisture_data(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    *,
    tile_size: int = 256,
    scale: float = 10.0,
    cache_dir: Any = None,
    transport: Any = None,
    project: str | None = None,
    progress: bool = True,
    orbit_pass: str | None = None,
    cloud_prob_max: float = 40,
    every_window: bool = False,
) -> mo.MoistureData:
    """The chapter-4 tiles and station readings from Earth Engine (needs a live session unless
    ``transport`` answers the pixel requests and ``ee`` is initialised otherwise).

    Parameters
    ----------
    points : station readings (module docstring; checked by :func:`precheck_moisture` before
        anything is sent; the targets never leave this machine)
    dates : half-open date windows ``[(start, end), ...]`` in order; each reading's day must
        fall in exactly one
    tile_size : tile side in pixels, a multiple of 32 (default 256: 2.56 km at 10 m)
    scale : pixel side in metres (default 10, the Sentinel-1/2 grid)
    cache_dir, transport : the pixel engine's resumable cache and request sender
        (:func:`~..pixels.fetch_patches`)
    project : the Earth Engine project, when the session is not initialised yet
    progress : show progress bars
    orbit_pass, cloud_prob_max : as in :func:`moisture_image`
    every_window : a tile for every site in every window (tiles without a reading carry the
        coarse label only), instead of only (site, window) pairs with a reading

    Returns
    -------
    MoistureData
        ``tiles``: a tile set (tile = site x window, window-major) with ``inputs`` / ``valid``
        of the 16 :data:`soilbook.data.moisture.CHANNELS`, ``coarse`` / ``coarse_mask`` (SMAP
        L4, vol %), coordinates ``location`` (the site), ``date`` (the reference day),
        ``landscape``, ``lat`` / ``lon`` (the tile's centre), ``stations`` (stations at the
        site), ``window_start`` / ``window_end``, ``crs``; ``readings``: one row per point,
        ``target`` in vol %, ``group`` = site, ``covariates`` = the channels at the station
        pixel and ``optical_valid``, integer ``tile`` / ``row`` / ``col``, ``station``,
        ``date`` (the reading's day), ``tile_date``.
    """
    readings, windows = _readings(points, dates)
    tile_size = check_tile_size(tile_size)
    scale = check_positive(scale, "scale", "10 (metres)")
    image_kwargs = {
        "orbit_pass": _check_orbit_pass(orbit_pass),
        "cloud_prob_max": check_cloud_prob_max(cloud_prob_max),
    }
    ensure_initialized(project)
    sites, site_of = group_sites(readings, tile_size, scale)
    plan = (
        [_Tile(s, w) for w in range(len(windows)) for s in range(len(sites))]
        if every_window
        else _plan(readings, sites, site_of, len(windows))
    )
    fetch_kwargs = {"cache_dir": cache_dir, "transport": transport, "progress": progress}
    pixels_ = _fetch_all(plan, sites, windows, tile_size, scale, image_kwargs, fetch_kwargs)
    attrs = {
        **collection_attrs(MOISTURE_COLLECTIONS),
        "title": "Multimodal tiles for surface soil moisture from Earth Engine (real data)",
        "target_name": "volumetric soil moisture 0-5 cm",
        "tile_size": tile_size,
        "scale_m": scale,
        "crs": "the UTM zone of each site (coordinate 'crs')",
        "windows": "; ".join(f"[{s}, {e})" for s, e in windows),
        "reference_day": "middle day of each window (meteorology, day of year, coarse label)",
        "orbit_pass": orbit_pass or "both",
        "cloud_prob_max": float(image_kwargs["cloud_prob_max"]),
        "s2_pad_days": S2_PAD_DAYS,
        "api": f"sum over {API_DAYS} days of {API_DECAY} ** lag x daily precipitation",
        "site_margin_px": site_margin(tile_size),
    }
    tiles = _tiles(pixels_, plan, sites, readings, windows, scale, attrs)
    positions = _positions(plan, sites, site_of, readings, tile_size, scale)
    sample_attrs = {k: v for k, v in attrs.items() if k not in ("title",)}
    table = _readings_set(tiles, readings, positions, sample_attrs)
    return mo.MoistureData(
        tiles=tiles,
        readings=table,
        description=_description(tiles, table, len(sites), len(windows), scale),
    )
