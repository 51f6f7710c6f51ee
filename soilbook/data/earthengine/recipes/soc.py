"""The SOC chapter's recipe (SSL-SoilNet): a 14-channel Landsat-8 patch and a TerraClimate series.

For each sample location: a 64 x 64 patch (1,920 m at 30 m) of the :data:`~soilbook.data.soc.
IMAGE_LAYERS` — Landsat-8 surface reflectance B1..B7, the five normalised differences of
:data:`~soilbook.data.soc.ND_INDICES` (clay B6/B7, ferrous B6/B5, carbonate B4/B3, rock outcrop
B6/B3, NDVI B5/B4), elevation and slope — and the monthly series of the 13 TerraClimate
:data:`~soilbook.data.soc.CLIMATE_VARIABLES` (2010-01 ... 2015-01 by default, 61 months), in the
layout of :mod:`soilbook.data.soc` (what chapter 3 reads).

The chapter calls :func:`extract_soc_data` (a :class:`~soilbook.data.soc.SocData`) after its
shared check ran :func:`precheck_soc_windows`. Both take the chapter's **one** date window
(:data:`PAPER_WINDOW` = ``[2010-01-01, 2015-02-01)``): the climate series runs from the
window's first month to the last month inside it, and the Landsat-8 year is that last month's
year (:func:`soc_window_args`; the paper: 2010-01 ... 2015-01 and Landsat 2015). As RaCA
(:mod:`soilbook.data.real.raca`), points with a measured value are the labelled set and points
without one the unlabelled set for pre-training (``None`` below
:data:`~soilbook.data.real.raca.MIN_UNLABELLED`), both on one grid of spatial blocks; without
unlabelled points the chapter runs only its supervised control. Slope is in **degrees** here
(``layer_units``), where the simulated region of :mod:`soilbook.data.soc` stores percent.

Choices (and where they depart from the official code, moienr/SoilNet v2.0.0)
---------------------------------------------------------------------------
- **Scenes.** ``LANDSAT/LC08/C02/T1_L2`` scenes of the year over the window, Collection-2
  reflectance ``SR_B<i> * 2.75e-5 - 0.2`` (unitless), pixels flagged in ``QA_PIXEL`` bits 0-5
  (fill, dilated cloud, cirrus, cloud, cloud shadow, snow) masked. A scene is kept when at least
  70 % of the window is clear and less than 10 % is cloud (bits 1-3) or snow (bit 5); of those,
  a **winter** scene (January, February or December of the year) comes first, else the scene
  with the **least mean NDVI** over the window's clear pixels (winter and low NDVI both mean the
  bare soil shows). Among winter scenes the least-NDVI one is taken too. This is done without
  ``If``: each scene's rank is ``NDVI + 10 * (not winter)``, and the lowest rank wins. A
  location without any qualifying scene gets an all-masked patch (NaN after the download).
- **Grid.** The patch is cut on the native 30 m grid in the location's own UTM zone
  (:func:`~..checks.utm_crs`), 64 x 64 pixels = 1,920 m. *Departure*: the official code asked
  for the window in EPSG:3857 at "scale 30" (pixels of 30 m only at the equator; ~23 m at 40 N)
  and resized the result to 64 x 64, which resamples every pixel.
- **Terrain.** Copernicus **GLO-30** (:func:`~..layers.terrain_layers`) instead of the paper's
  SRTM: it is global (SRTM stops at 60 N / 56 S) and already in :data:`~..catalogue.COVERAGE`.
  **Slope is in degrees.** *Fix*: the official code exported slope in percent and then normalised
  it as if it were degrees.
- **Climate.** TerraClimate's native grid is 1/24 degree (about 4.6 km); it is sampled at
  1,000 m as in the official code (nearest 4.6 km cell). The stored integers are multiplied by
  TerraClimate's scale factors (:data:`~soilbook.data.soc.CLIMATE_SCALE_FACTORS`, the Earth
  Engine catalogue's ``scale`` column: aet, def, pet, soil, srad, tmmn, tmmx x 0.1; pdsi, vpd
  x 0.01; vap x 0.001; pr, ro, swe x 1), so values are in :data:`~soilbook.data.soc.CLIMATE_UNITS`.
  Masked pixels (ocean) are filled with :data:`~..catalogue.FILL_VALUE` and come back as NaN;
  a real **zero** (no snow, no runoff) stays zero. *Fix* of the official code's defect 1, which
  wrote ``If(val, val, -999)`` and so turned every zero into "missing".
- Masked patch pixels are filled with :data:`~..catalogue.FILL_VALUE` before fetching
  (:mod:`..pixels` turns them back into NaN).
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from soilbook import geo
from soilbook.data import soc
from soilbook.data.earthengine.catalogue import (
    COVERAGE,
    FILL_VALUE,
    GLO30,
    LANDSAT8_L2,
    PATCH_VALUES_PER_BATCH,
    POINT_BATCH,
    TERRACLIMATE,
    collection_attrs,
    dated,
)
from soilbook.data.earthengine.checks import (
    check_batch_size,
    check_coverage,
    check_dates,
    check_points,
    check_positive,
    check_targets,
    utm_crs,
)
from soilbook.data.earthengine.convert import _by_id, _feature_list, _number
from soilbook.data.earthengine.layers import _masked_constant, terrain_layers
from soilbook.data.earthengine.pixels import check_workers
from soilbook.data.earthengine.sampling import download, sample_in_batches
from soilbook.data.earthengine.session import _ee_ready, ensure_initialized
from soilbook.data.real.raca import MIN_UNLABELLED
from soilbook.data.schema import SAMPLE, sample_set, validate_samples
from soilbook.errors import ParameterError

#: The collections one SOC extraction reads.
SOC_COLLECTIONS = (LANDSAT8_L2, GLO30, TERRACLIMATE)
#: Landsat Collection-2 Level-2 surface reflectance: reflectance = DN * scale + offset.
SR_SCALE = 2.75e-5
SR_OFFSET = -0.2
#: The surface-reflectance bands read, and the names they get (:data:`soilbook.data.soc.IMAGE_LAYERS`).
SR_BANDS = tuple(f"SR_B{i}" for i in range(1, 8))
BANDS = tuple(f"B{i}" for i in range(1, 8))
#: ``QA_PIXEL`` bits 0-5: fill, dilated cloud, cirrus, cloud, cloud shadow, snow (masked).
QA_MASKED_BITS = 0b111111
#: ``QA_PIXEL`` bits of cloud (1 dilated, 2 cirrus, 3 cloud) and snow (5): the scene filter.
QA_CLOUD_SNOW_BITS = 0b101110
#: Scene filter: clear share of the window at least, cloud-or-snow share below.
MIN_VALID_FRACTION = 0.70
MAX_CLOUD_SNOW_FRACTION = 0.10
#: Months that count as winter (the scene picked first).
WINTER_MONTHS = (12, 1, 2)
#: Rank added to a non-winter scene (NDVI is within [-1, 1], so any winter scene ranks first).
NOT_WINTER_RANK = 10.0
#: Rank of the all-masked stand-in taken when no scene qualifies.
NO_SCENE_RANK = 99.0
#: Landsat's pixel (m) and the paper's window (m): 64 pixels.
LANDSAT_SCALE_M = 30.0
WINDOW_M = 1920.0
#: TerraClimate sampling scale (m; the official code's 1,000 m, native grid ~4.6 km).
CLIMATE_SCALE_M = 1000.0
#: The most months one series may have (40 years).
MAX_MONTHS = 480
#: Units of the 14 patch channels, in :data:`soilbook.data.soc.IMAGE_LAYERS` order.
LAYER_UNITS = ("1",) * (len(BANDS) + len(soc.ND_INDICES)) + ("m", "degree")
TARGET_NAME = "soil organic carbon"


# -- checks ---------------------------------------------------------------------------------


def _check_year(year: Any) -> int:
    """A calendar year of Landsat-8 (2013 .. this year) as an int."""
    this_year = _dt.date.today().year
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)):
        raise ParameterError(f"year = {year!r} must be an int, e.g. 2015.")
    first = COVERAGE[LANDSAT8_L2].first_day
    if not first.year <= year <= this_year:
        raise ParameterError(
            f"year = {year} lies outside Landsat-8's life: its scenes run from {first} to today, "
            f"so the year must be {first.year} to {this_year}. What to do: choose one of those "
            "years (the paper: 2015)."
        )
    return int(year)


def _check_start(start: Any) -> _dt.date:
    """The first month of a series, ``'YYYY-MM'``, as the date of its first day."""
    try:
        year, month = (int(s) for s in str(start).split("-"))
        if len(str(start)) != 7:
            raise ValueError
        return _dt.date(year, month, 1)
    except ValueError:
        raise ParameterError(
            f"start = {start!r} is not a month 'YYYY-MM'. What to do: write e.g. '2010-01'."
        ) from None


def _check_months(months: Any) -> int:
    """The length of a series in months, an int in 1 .. :data:`MAX_MONTHS`."""
    if (
        isinstance(months, bool)
        or not isinstance(months, (int, np.integer))
        or not 1 <= months <= MAX_MONTHS
    ):
        raise ParameterError(
            f"months = {months!r} must be an int between 1 and {MAX_MONTHS} (the paper: 61, "
            "2010-01 ... 2015-01)."
        )
    return int(months)


def _check_variables(variables: Sequence[str]) -> tuple[str, ...]:
    """TerraClimate variable names, each one of :data:`soilbook.data.soc.CLIMATE_VARIABLES`."""
    if isinstance(variables, str) or not isinstance(variables, Sequence) or not variables:
        raise ParameterError(
            f"variables = {variables!r} must be a non-empty list of TerraClimate variables, "
            f"some of {list(soc.CLIMATE_VARIABLES)}."
        )
    unknown = [v for v in variables if v not in soc.CLIMATE_VARIABLES]
    if unknown or len(set(variables)) != len(variables):
        raise ParameterError(
            f"variables {list(variables)}: unknown {unknown} or repeated names. Allowed, each "
            f"once: {list(soc.CLIMATE_VARIABLES)}."
        )
    return tuple(variables)


def _check_window_m(window_m: Any, scale: float) -> int:
    """The patch side in pixels: ``window_m`` (m) must be a positive multiple of ``scale``."""
    window_m = check_positive(window_m, "window_m", "1920 (metres)")
    pixels = window_m / scale
    if abs(pixels - round(pixels)) > 1e-6:
        raise ParameterError(
            f"window_m = {window_m:g} is not a whole number of {scale:g} m pixels. What to do: "
            f"use a multiple of {scale:g}, e.g. {WINDOW_M:g} (64 pixels)."
        )
    return round(pixels)


def month_starts(start: _dt.date, months: int) -> list[_dt.date]:
    """The first day of ``months + 1`` consecutive months from ``start`` (the last is the end of
    the series, exclusive)."""
    out = []
    for i in range(months + 1):
        total = start.year * 12 + start.month - 1 + i
        out.append(_dt.date(total // 12, total % 12 + 1, 1))
    return out


def landsat_window(year: int) -> tuple[str, str]:
    """The half-open date window ``[year-01-01, year+1-01-01)`` scenes are taken from."""
    return f"{year}-01-01", f"{year + 1}-01-01"


def precheck_soc(
    points: Sequence[Mapping[str, Any]],
    year: int = 2015,
    start: str = soc.FIRST_MONTH,
    months: int = soc.N_MONTHS,
) -> list[dict[str, Any]]:
    """Check a SOC extraction before any ``ee`` call and return the checked points.

    Points need ``id``, ``lat``, ``lon`` (:func:`~..checks.check_points`); ``year`` must fall in
    Landsat-8's life and every point in its footprint (:data:`~..catalogue.COVERAGE`); the
    series ``start`` ('YYYY-MM') + ``months`` (1 .. 480) must lie in TerraClimate's; GLO-30 is
    global. Raises :class:`~soilbook.errors.ParameterError` naming what was wrong.
    """
    pts = check_points(points)
    year = _check_year(year)
    first = _check_start(start)
    months = _check_months(months)
    check_coverage(LANDSAT8_L2, pts, [landsat_window(year)])
    series_end = month_starts(first, months)[-1]
    if series_end > _dt.date.today():
        raise ParameterError(
            f"the climate series {first:%Y-%m} + {months} months runs into the future (up to "
            f"{series_end:%Y-%m}, exclusive). What to do: start earlier or take fewer months; "
            "TerraClimate is published about a year after the fact."
        )
    check_coverage(TERRACLIMATE, pts, [(first.isoformat(), series_end.isoformat())])
    check_coverage(GLO30, pts)
    return pts


#: The paper's climate window, ``[2010-01-01, 2015-02-01)``: TerraClimate 2010-01 ... 2015-01
#: (61 months) and Landsat-8 scenes of 2015.
PAPER_WINDOW = ("2010-01-01", "2015-02-01")


def _one_window(dates: Any) -> list[Any]:
    """``dates`` as a list of exactly one window; a bare ``(start, end)`` pair is wrapped."""
    if (
        isinstance(dates, Sequence)
        and len(dates) == 2
        and all(isinstance(d, (str, _dt.date)) for d in dates)
    ):
        return [tuple(dates)]
    if isinstance(dates, (str, bytes)) or not isinstance(dates, Sequence) or len(dates) != 1:
        n = len(dates) if isinstance(dates, Sequence) and not isinstance(dates, str) else "no"
        raise ParameterError(
            f"dates = {dates!r}: SOC takes one window ({n} given), the span of the climate "
            "series; the Landsat-8 year is that of its last month. What to do: pass one "
            "'start/end' window, e.g. ee_dates='2010-01-01/2015-02-01' (the paper's 61 months "
            "and Landsat 2015)."
        )
    return list(dates)


def soc_window_args(dates: Sequence[Any]) -> tuple[int, str, int]:
    """The ``(year, start, months)`` of :func:`precheck_soc` for one date window.

    ``dates`` is ``[(start, end)]`` (ISO dates, end exclusive; a bare pair is accepted): the
    climate series starts in the month of ``start`` and runs to the last month inside the
    window (the month of ``end`` minus one day); the Landsat-8 year is the year of that last
    month. :data:`PAPER_WINDOW` gives ``(2015, '2010-01', 61)``. Raises
    :class:`~soilbook.errors.ParameterError` for more than one window, a bad window, a last
    month before Landsat-8 or a series longer than :data:`MAX_MONTHS`.
    """
    windows = _one_window(dates)
    ((start, end),) = check_dates(windows, first_day=COVERAGE[TERRACLIMATE].first_day)
    first = _dt.date.fromisoformat(start)
    last = _dt.date.fromisoformat(end) - _dt.timedelta(days=1)
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    landsat_first = COVERAGE[LANDSAT8_L2].first_day
    if last.year < landsat_first.year:
        raise ParameterError(
            f"the window {start}/{end} ends in {last:%Y-%m}, which makes the Landsat-8 year "
            f"{last.year}, before Landsat-8's first scenes ({landsat_first}). What to do: end "
            f"the window in {landsat_first.year} or later, e.g. the paper's "
            f"{PAPER_WINDOW[0]}/{PAPER_WINDOW[1]}."
        )
    if months > MAX_MONTHS:
        raise ParameterError(
            f"the window {start}/{end} spans {months} months; a climate series has at most "
            f"{MAX_MONTHS}. What to do: shorten the window (the paper: 61 months)."
        )
    return last.year, f"{first:%Y-%m}", months


def precheck_soc_windows(points: list[dict], dates: list[tuple[str, str]]) -> None:
    """The chapter's shared precheck (:func:`soilbook.chapters.earthengine.check_earthengine`):
    ``dates`` is one window, mapped by :func:`soc_window_args`, then :func:`precheck_soc`.
    Raises :class:`~soilbook.errors.ParameterError`; sends nothing."""
    year, start, months = soc_window_args(dates)
    precheck_soc(points, year, start, months)


# -- the Landsat-8 patch --------------------------------------------------------------------


def _window_region(ee: Any, lat: float, lon: float, window_m: float, crs: str) -> Any:
    """The ``window_m`` square around (lat, lon), axis-aligned in ``crs`` (metres)."""
    return ee.Geometry.Point([lon, lat]).buffer(window_m / 2, 1).bounds(1, ee.Projection(crs))


def _scene_rank(ee: Any, region: Any, crs: str, scale: float) -> Any:
    """The function mapped over the scenes: scaled, masked B1..B7 with the window statistics
    ``soc_valid``, ``soc_cloud_snow``, ``soc_ndvi``, ``soc_winter`` and ``soc_rank``."""

    def annotate(image: Any) -> Any:
        image = ee.Image(image)
        qa = image.select("QA_PIXEL")
        clear = qa.bitwiseAnd(QA_MASKED_BITS).eq(0)
        cloud_snow = qa.bitwiseAnd(QA_CLOUD_SNOW_BITS).neq(0)
        sr = image.select(list(SR_BANDS), list(BANDS)).multiply(SR_SCALE).add(SR_OFFSET)
        ndvi = sr.normalizedDifference(["B5", "B4"])
        stats = (
            clear.unmask(0, False)
            .rename(["valid"])
            .addBands(cloud_snow.unmask(0, False).rename(["cloud_snow"]))
            .addBands(ndvi.updateMask(clear).unmask(0, False).rename(["ndvi_x_valid"]))
            .reduceRegion(
                reducer=ee.Reducer.mean(),
                geometry=region,
                scale=scale,
                crs=crs,
                maxPixels=10_000_000,
            )
        )
        valid = ee.Number(stats.get("valid"))
        # mean NDVI of the clear pixels (a scene with no clear pixel is filtered out anyway)
        ndvi_mean = ee.Number(stats.get("ndvi_x_valid")).divide(valid.max(1e-6))
        month = ee.Date(image.get("system:time_start")).get("month")
        winter = month.lte(2).Or(month.eq(12))
        rank = ndvi_mean.add(ee.Number(1).subtract(winter).multiply(NOT_WINTER_RANK))
        return (
            sr.updateMask(clear)
            .toFloat()
            .copyProperties(image, ["system:index", "system:time_start"])
            .set(
                {
                    "soc_valid": valid,
                    "soc_cloud_snow": stats.get("cloud_snow"),
                    "soc_ndvi": ndvi_mean,
                    "soc_winter": winter,
                    "soc_rank": rank,
                }
            )
        )

    return annotate


def _best_scene(ee: Any, region: Any, year: int, crs: str, scale: float) -> Any:
    """The qualifying scene of ``year`` with the lowest rank (winter first, then least NDVI),
    or an all-masked image with bands B1..B7 when none qualifies."""
    start, end = landsat_window(year)
    scenes = (
        ee.ImageCollection(LANDSAT8_L2)
        .filterBounds(region)
        .filterDate(start, end)
        .map(_scene_rank(ee, region, crs, scale))
        .filter(ee.Filter.gte("soc_valid", MIN_VALID_FRACTION))
        .filter(ee.Filter.lt("soc_cloud_snow", MAX_CLOUD_SNOW_FRACTION))
    )
    none = _masked_constant(ee, BANDS).set("soc_rank", NO_SCENE_RANK)
    return ee.Image(scenes.merge(ee.ImageCollection([none])).sort("soc_rank").first())


def _index_bands(ee: Any, sr: Any) -> list[Any]:
    """The five normalised differences of :data:`soilbook.data.soc.ND_INDICES`, in order."""
    return [
        sr.normalizedDifference([a, b]).rename([name]) for name, (a, b) in soc.ND_INDICES.items()
    ]


def landsat_soc_image(
    point: Mapping[str, Any],
    year: int = 2015,
    window_m: float = WINDOW_M,
    *,
    scale: float = LANDSAT_SCALE_M,
    crs: str | None = None,
) -> Any:
    """The 14-channel SSL-SoilNet image around one location (pure: nothing is sent).

    ``point`` is a mapping with ``lat`` / ``lon`` (WGS84 degrees; ``id`` optional). The scene
    is the best of ``year`` over the ``window_m`` square (side in metres, a multiple of
    ``scale``) in ``crs`` (default: the point's UTM zone): see the module's *Choices*.

    Returns
    -------
    ee.Image with bands :data:`soilbook.data.soc.IMAGE_LAYERS` in order — B1..B7 (unitless
    surface reflectance), clay, ferrous, carbonate, rock_outcrop, ndvi (normalised differences,
    -1..1), elevation (m, GLO-30), slope (degrees) — float, masked pixels filled with
    :data:`~..catalogue.FILL_VALUE`. Properties: ``soc_rank`` etc. of the chosen scene.
    """
    (pt,) = check_points([{"id": "point", **dict(point)}])
    year = _check_year(year)
    check_coverage(LANDSAT8_L2, [pt], [landsat_window(year)])
    scale = check_positive(scale, "scale", "30 (metres)")
    _check_window_m(window_m, scale)
    crs = crs or utm_crs(pt["lat"], pt["lon"])
    ee = _ee_ready()
    region = _window_region(ee, pt["lat"], pt["lon"], float(window_m), crs)
    scene = _best_scene(ee, region, year, crs, scale)
    sr = scene.select(list(BANDS))
    terrain = terrain_layers(region).select(["elevation", "slope"])
    image = sr
    for band in _index_bands(ee, sr):
        image = image.addBands(band)
    return (
        image.addBands(terrain)
        .select(list(soc.IMAGE_LAYERS))
        .toFloat()
        .unmask(FILL_VALUE, False)
        .copyProperties(scene, ["system:index", "soc_rank", "soc_ndvi", "soc_winter"])
    )


# -- the TerraClimate series ----------------------------------------------------------------


@dataclass(frozen=True)
class ClimateSeriesRequest:
    """A TerraClimate series request: ``image`` has the bands :meth:`names` (``<var>_t<i>``,
    physical units, masked pixels = :data:`~..catalogue.FILL_VALUE`); ``batches`` are the
    ``ee.FeatureCollection`` requests, one per chunk of ``points``."""

    image: Any
    batches: tuple[Any, ...]
    points: tuple[dict[str, Any], ...]
    start: str
    months: int
    variables: tuple[str, ...]
    scale: float
    crs: str
    batch_size: int

    def names(self) -> list[str]:
        """Property names, month-major: ``aet_t0, def_t0, ..., vpd_t<months-1>``."""
        return series_names(self.variables, self.months)


def series_names(variables: Sequence[str], months: int) -> list[str]:
    """``<var>_t<i>`` for every month ``i`` and variable, month-major."""
    return [dated(v, i) for i in range(months) for v in variables]


def terraclimate_series_image(
    start: str = soc.FIRST_MONTH,
    months: int = soc.N_MONTHS,
    variables: Sequence[str] = soc.CLIMATE_VARIABLES,
) -> Any:
    """TerraClimate ``months`` months from ``start`` as one image (pure).

    The collection's images of the months are stacked (``toBands``) and their bands picked by
    name, ``<YYYYMM>_<var>`` (TerraClimate's ``system:index`` is the month), so a missing month
    is an error rather than a silent shift; renamed ``<var>_t<i>``, multiplied by the scale
    factors and unmasked with :data:`~..catalogue.FILL_VALUE` (never ``If(v, v, -999)``).
    """
    first = _check_start(start)
    months = _check_months(months)
    variables = _check_variables(variables)
    starts = month_starts(first, months)
    ee = _ee_ready()
    stacked = (
        ee.ImageCollection(TERRACLIMATE)
        .filterDate(starts[0].isoformat(), starts[-1].isoformat())
        .select(list(variables))
        .toBands()
    )
    source = [f"{m:%Y%m}_{v}" for m in starts[:-1] for v in variables]
    factors = [soc.CLIMATE_SCALE_FACTORS[v] for _ in starts[:-1] for v in variables]
    return (
        stacked.select(source, series_names(variables, months))
        .toFloat()
        .multiply(ee.Image.constant(factors))
        .toFloat()
        .unmask(FILL_VALUE, False)
    )


def terraclimate_series_request(
    points: Sequence[Mapping[str, Any]],
    start: str = soc.FIRST_MONTH,
    months: int = soc.N_MONTHS,
    variables: Sequence[str] = soc.CLIMATE_VARIABLES,
    *,
    scale: float = CLIMATE_SCALE_M,
    crs: str = "EPSG:4326",
    batch_size: int | None = None,
    tile_scale: float = 1,
) -> ClimateSeriesRequest:
    """The monthly TerraClimate values at each point (pure: nothing is sent).

    :func:`terraclimate_series_image` sampled with ``sampleRegions`` at ``scale`` metres in
    ``crs`` (1,000 m in WGS84 by default: the nearest ~4.6 km cell), in chunks of
    ``batch_size`` points (default: as many as keep a response near
    :data:`~..catalogue.PATCH_VALUES_PER_BATCH` values, at most 500). Each feature carries
    ``id``, ``lat``, ``lon`` and ``<var>_t<i>`` in :data:`soilbook.data.soc.CLIMATE_UNITS`.
    """
    pts = check_points(points)
    scale = check_positive(scale, "scale", "1000 (metres)")
    tile_scale = check_positive(tile_scale, "tile_scale", "1")
    check_batch_size(batch_size)
    image = terraclimate_series_image(start, months, variables)
    variables, months = _check_variables(variables), _check_months(months)
    per_point = len(variables) * months
    size = batch_size or max(1, min(POINT_BATCH, PATCH_VALUES_PER_BATCH // per_point))
    ee = _ee_ready()
    return ClimateSeriesRequest(
        image=image,
        batches=sample_in_batches(ee, image, pts, size, scale, crs, tile_scale),
        points=tuple(pts),
        start=_check_start(start).strftime("%Y-%m"),
        months=months,
        variables=variables,
        scale=scale,
        crs=crs,
        batch_size=size,
    )


# -- conversion back (pure) -----------------------------------------------------------------


def climate_from_features(
    features: Any,
    points: Sequence[Mapping[str, Any]],
    variables: Sequence[str],
    months: int,
) -> np.ndarray:
    """The ``getInfo()`` answers of a series request as an array (point, month, variable).

    ``features`` is a FeatureCollection payload or its list of features; each point of
    ``points`` is matched by ``id``. :data:`~..catalogue.FILL_VALUE`, ``None`` and absent values
    (and points that did not come back) become NaN; every other value, **zero included**, is
    kept as it is. Returns float64 of shape (len(points), months, len(variables)).
    """
    by_id = _by_id(_feature_list(features))
    pts = check_points(points)
    out = np.full((len(pts), months, len(variables)), np.nan)
    for k, p in enumerate(pts):
        row = by_id.get(p["id"], {})
        for i in range(months):
            for j, v in enumerate(variables):
                out[k, i, j] = _number(row.get(dated(v, i)))
    return out


def fill_to_nan(values: Any) -> np.ndarray:
    """``values`` as float64 with :data:`~..catalogue.FILL_VALUE` replaced by NaN (zeros kept)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(array == FILL_VALUE, np.nan, array)


# -- extraction -----------------------------------------------------------------------------


def _fetch_patch(image: Any, pt: dict, window: int, scale: float, kwargs: dict) -> np.ndarray:
    """One point's (layer, y, x) patch of side ``window`` through
    :func:`~..pixels.fetch_patches`, its centre pixel (the point's) at ``window // 2``.

    An even ``window`` (the paper's 64) is cut from the odd ``window + 1`` patch centred on the
    point's pixel by dropping its last row and column: 32 pixels north / west of the point's
    pixel, 31 south / east."""
    from soilbook.data.earthengine import pixels

    odd = window if window % 2 else window + 1
    patch = pixels.fetch_patches(
        image,
        [pt],
        window=odd,
        scale=scale,
        crs=utm_crs(pt["lat"], pt["lon"]),
        bands=list(soc.IMAGE_LAYERS),
        **kwargs,
    )
    return fill_to_nan(patch.values[0, :, :window, :window])


def fetch_soc_patches(
    pts: Sequence[dict],
    year: int,
    *,
    window_m: float = WINDOW_M,
    scale: float = LANDSAT_SCALE_M,
    cache_dir: Any = None,
    transport: Any = None,
    point_workers: int = 8,
    progress: bool = True,
) -> np.ndarray:
    """The 14-channel patch of every checked point, float64 (point, layer, y, x), NaN where
    masked. Each point has its own scene (:func:`landsat_soc_image`) and UTM grid, so points are
    fetched one by one, ``point_workers`` at a time."""
    window = _check_window_m(window_m, scale)
    workers = check_workers(point_workers, "point_workers")
    images = [landsat_soc_image(p, year, window_m, scale=scale) for p in pts]
    kwargs = {"cache_dir": cache_dir, "transport": transport, "progress": False}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = pool.map(
            lambda ip: _fetch_patch(ip[0], ip[1], window, scale, kwargs),
            zip(images, pts, strict=True),
        )
        if progress:
            from soilbook.progress import progress_bar

            jobs = progress_bar(iterable=jobs, desc="Landsat patches", unit="point", total=len(pts))
        return np.stack(list(jobs)).astype(np.float64)


def _drop_empty(
    pts: list[dict], patches: np.ndarray, climate: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Which points to keep (a patch with a valid pixel and a climate value) and the ids of
    those dropped."""
    has_scene = ~np.isnan(patches[:, : len(BANDS)]).all(axis=(1, 2, 3))
    has_climate = ~np.isnan(climate).all(axis=(1, 2))
    keep = has_scene & has_climate
    return keep, [p["id"] for p, k in zip(pts, keep, strict=True) if not k]


def _dataset(
    pts: list[dict],
    target: np.ndarray | None,
    patches: np.ndarray,
    climate: np.ndarray,
    target_units: str,
    block_size_km: float,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """The chapter-3 sample set of the extracted arrays (validated when labelled)."""
    lat = np.array([p["lat"] for p in pts], dtype=float)
    lon = np.array([p["lon"] for p in pts], dtype=float)
    groups, _ = geo.lat_lon_blocks(lat, lon, float(block_size_km) * 1000.0)
    window = patches.shape[-1]
    offsets = (np.arange(window) - window // 2) * LANDSAT_SCALE_M
    layers = [(n, soc.IMAGE_LAYER_GROUPS[n]) for n in soc.IMAGE_LAYERS]
    variables = attrs["terraclimate_variables"].split(", ")
    return sample_set(
        target,
        groups=groups,
        group_long_name=f"spatial block ({block_size_km:g} km)",
        target_units=target_units if target is not None else None,
        target_long_name="soil organic carbon" if target is not None else None,
        patches=patches.astype(np.float32),
        layers=layers,
        patch_units="mixed, see layer_units",
        patch_long_name="Landsat-8 image patch (winter first, else least NDVI) with GLO-30 terrain",
        covariates=np.ascontiguousarray(patches[:, :, window // 2, window // 2]),
        features=layers,
        feature_units=list(LAYER_UNITS),
        covariate_long_name="centre pixel of each patch layer",
        climate=climate.astype(np.float32),
        climate_times=soc.months(attrs["climate_start"], climate.shape[1]),
        climate_variables={v: soc.CLIMATE_UNITS[v] for v in variables},
        climate_long_name="TerraClimate monthly series",
        climate_attrs={
            "scale_factors": ", ".join(f"{v}: {soc.CLIMATE_SCALE_FACTORS[v]:g}" for v in variables)
        },
        lat=lat,
        lon=lon,
        sample_ids=np.array([p["id"] for p in pts]),
        coords={
            "layer_units": ("layer", np.array(LAYER_UNITS)),
            "y": ("y", -offsets, {"units": "m", "long_name": "metres north of the centre pixel"}),
            "x": ("x", offsets, {"units": "m", "long_name": "metres east of the centre pixel"}),
        },
        validate=target is not None,
        simulated=False,
        **collection_attrs(SOC_COLLECTIONS),
        **attrs,
    )


class _NoLocationLeft(ParameterError):
    """No location of an extraction has both a scene and climate data."""


def extract_soc_inputs(
    points: Sequence[Mapping[str, Any]],
    *,
    year: int = 2015,
    start: str = soc.FIRST_MONTH,
    months: int = soc.N_MONTHS,
    cache_dir: Any = None,
    transport: Any = None,
    target_key: str | None = "target",
    target_units: str = "g/kg",
    block_size_km: float = 100.0,
    point_workers: int = 8,
    project: str | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Extract the chapter-3 inputs at sample locations from Earth Engine (needs a live session
    unless ``transport`` answers the pixel requests and ``ee`` is initialised otherwise).

    ``points`` are dicts with ``id``, ``lat``, ``lon`` and, unless ``target_key`` is None (an
    unlabelled set for pre-training), the measured SOC under ``target_key`` in
    ``target_units`` (it never leaves this machine). Patches come through
    :func:`~..pixels.fetch_patches` (``cache_dir``, ``transport``), the climate series through
    ``getInfo`` of :func:`terraclimate_series_request`. Locations without any qualifying
    Landsat scene or without TerraClimate data (ocean) are dropped, with a warning.

    Returns
    -------
    xr.Dataset in the :mod:`soilbook.data.soc` layout: ``patches`` (sample, layer, y, x) of the
    14 :data:`~soilbook.data.soc.IMAGE_LAYERS`, their centre pixel as ``covariates``,
    ``climate`` (sample, time, variable), ``target`` (when labelled), ``group`` (spatial
    blocks of ``block_size_km``), ``lat`` / ``lon``; ``sample`` = the point ids.
    """
    pts = precheck_soc(points, year, start, months)
    check_workers(point_workers, "point_workers")
    check_positive(block_size_km, "block_size_km", "100")
    target = check_targets(points, target_key) if target_key is not None else None
    ensure_initialized(project)
    request = terraclimate_series_request(pts, start, months)
    patches = fetch_soc_patches(
        pts,
        year,
        cache_dir=cache_dir,
        transport=transport,
        point_workers=point_workers,
        progress=progress,
    )
    features = download(
        request.batches,
        progress=progress,
        cache_dir=None if cache_dir is None else Path(cache_dir) / "climate",
    )
    climate = climate_from_features(features, pts, request.variables, request.months)
    keep, dropped = _drop_empty(pts, patches, climate)
    if not keep.any():
        raise _NoLocationLeft(
            f"none of the {len(pts)} location(s) has both a Landsat-8 scene of {year} that "
            "passes the filter and TerraClimate data (ocean?). What to do: check the points lie "
            "on land, or choose another year (a window ending in another year)."
        )
    if dropped:
        warnings.warn(
            f"{len(dropped)} of {len(pts)} location(s) dropped: no Landsat-8 scene of {year} "
            f"passed the filter or no TerraClimate data (ids {dropped[:10]}"
            f"{' ...' if len(dropped) > 10 else ''}).",
            stacklevel=2,
        )
    attrs = {
        "target_name": TARGET_NAME,
        "landsat_year": int(year),
        "scene_rule": f"winter ({'/'.join(map(str, WINTER_MONTHS))}) first, else least NDVI; "
        f">= {MIN_VALID_FRACTION:.0%} clear, < {MAX_CLOUD_SNOW_FRACTION:.0%} cloud or snow",
        "window": int(patches.shape[-1]),
        "scale_m": LANDSAT_SCALE_M,
        "crs": "the UTM zone of each location",
        "slope_units": "degree",
        "climate_start": request.start,
        "climate_months": int(request.months),
        "terraclimate_variables": ", ".join(request.variables),
        "climate_scale_m": float(request.scale),
        "block_size_km": float(block_size_km),
        "n_dropped": len(dropped),
    }
    kept = [p for p, k in zip(pts, keep, strict=True) if k]
    return _dataset(
        kept,
        None if target is None else target[keep],
        patches[keep],
        climate[keep],
        target_units,
        float(block_size_km),
        attrs,
    )


def _has_target(point: Mapping[str, Any], key: str) -> bool:
    """Whether ``point[key]`` is a finite number (a labelled location)."""
    try:
        return math.isfinite(float(point.get(key)))
    except (TypeError, ValueError):
        return False


def _share_blocks(
    labelled: xr.Dataset, unlabelled: xr.Dataset, block_size_km: float
) -> tuple[xr.Dataset, xr.Dataset]:
    """Both sets with ``group`` laid on one block grid of all their locations (as RaCA does):
    :func:`soilbook.geo.lat_lon_blocks` depends on the mean latitude of the points given."""
    lat = np.concatenate([labelled["lat"].values, unlabelled["lat"].values])
    lon = np.concatenate([labelled["lon"].values, unlabelled["lon"].values])
    groups, _ = geo.lat_lon_blocks(lat, lon, float(block_size_km) * 1000.0)
    n = labelled.sizes[SAMPLE]
    out = []
    for ds, part in ((labelled, groups[:n]), (unlabelled, groups[n:])):
        out.append(ds.assign_coords(group=(SAMPLE, part, dict(ds["group"].attrs))))
    return validate_samples(out[0]), out[1]


def _description(lab: xr.Dataset, unl: xr.Dataset | None, n_ignored: int) -> str:
    """The sentences of :attr:`SocData.description` for an Earth Engine extraction."""
    a = lab.attrs
    n_dropped = int(a["n_dropped"]) + (0 if unl is None else int(unl.attrs["n_dropped"]))
    text = (
        f"Your sample points, real, from Earth Engine (Landsat-8 year {a['landsat_year']}, "
        f"TerraClimate from {a['climate_start']} for {a['climate_months']} months): "
        f"{lab.sizes[SAMPLE]} labelled location(s) with your measured {a['target_name']} in "
        f"{lab['target'].attrs['units']}"
    )
    if unl is not None:
        text += f" and {unl.sizes[SAMPLE]} without a value for pre-training"
    text += (
        f". Each has a {a['window']} x {a['window']} patch "
        f"({a['window'] * a['scale_m']:,.0f} m) of the 14 layers on its UTM zone's "
        f"{a['scale_m']:g} m grid: "
        "Landsat-8 surface reflectance B1-B7 of the year's clearest scene (winter first, else "
        "least NDVI), five normalised differences, GLO-30 elevation (m) and slope (degrees); "
        "and the monthly series of 13 TerraClimate variables in physical units (real zeros "
        f"kept). Groups are {a['block_size_km']:g} km spatial blocks."
    )
    if n_dropped:
        text += f" {n_dropped} location(s) without a qualifying scene or climate were dropped."
    if n_ignored:
        text += (
            f" {n_ignored} location(s) without a value were left out (fewer than "
            f"{MIN_UNLABELLED}, too few for pre-training)."
        )
    return text


def extract_soc_data(
    points: Sequence[Mapping[str, Any]],
    *,
    year: int = 2015,
    start: str = soc.FIRST_MONTH,
    months: int = soc.N_MONTHS,
    cache_dir: Any = None,
    transport: Any = None,
    target_key: str = "target",
    target_units: str = "g/kg",
    block_size_km: float = 100.0,
    min_unlabelled: int = MIN_UNLABELLED,
    point_workers: int = 8,
    project: str | None = None,
    progress: bool = True,
) -> soc.SocData:
    """Chapter 3's :class:`~soilbook.data.soc.SocData` from Earth Engine at the user's points.

    ``year`` (Landsat-8 scenes), ``start`` ('YYYY-MM') and ``months`` (the TerraClimate
    series) as :func:`precheck_soc` takes them; the chapter gets them from its one date window
    with :func:`soc_window_args` (default: :data:`PAPER_WINDOW`, the paper's). As RaCA does (:func:`soilbook.data.real.raca.load_raca`), points with a finite ``target_key``
    (in ``target_units``) are the **labelled** set and points without one the **unlabelled**
    set for pre-training (``None`` when fewer than ``min_unlabelled``); without unlabelled
    locations the chapter cannot pre-train and runs only the supervised control. Both sets are
    extracted by :func:`extract_soc_inputs` (``cache_dir``, ``transport``, ``point_workers``,
    ``project``, ``progress`` as there) and share one block grid of ``block_size_km``.
    Everything is checked before any request; raises
    :class:`~soilbook.errors.ParameterError` when no point is labelled.
    """
    precheck_soc(points, year, start, months)
    check_positive(block_size_km, "block_size_km", "100")
    labelled = [p for p in points if _has_target(p, target_key)]
    unlabelled = [p for p in points if not _has_target(p, target_key)]
    if not labelled:
        raise ParameterError(
            f"none of the {len(points)} point(s) has a finite {target_key!r}. What to do: give "
            f"the measured SOC under {target_key!r} (points without one are only used for "
            "pre-training)."
        )
    common = {
        "year": year,
        "start": start,
        "months": months,
        "cache_dir": cache_dir,
        "transport": transport,
        "target_units": target_units,
        "block_size_km": block_size_km,
        "point_workers": point_workers,
        "project": project,
        "progress": progress,
    }
    lab = extract_soc_inputs(labelled, target_key=target_key, **common)
    unl = None
    if len(unlabelled) >= int(min_unlabelled):
        try:
            unl = extract_soc_inputs(unlabelled, target_key=None, **common)
        except _NoLocationLeft as err:
            warnings.warn(f"no unlabelled set: {err}", stacklevel=2)
        else:
            lab, unl = _share_blocks(lab, unl, block_size_km)
    ignored = len(unlabelled) if len(unlabelled) < int(min_unlabelled) else 0
    return soc.SocData(labelled=lab, unlabelled=unl, description=_description(lab, unl, ignored))


__all__ = [
    "PAPER_WINDOW",
    "SOC_COLLECTIONS",
    "ClimateSeriesRequest",
    "climate_from_features",
    "extract_soc_data",
    "extract_soc_inputs",
    "fetch_soc_patches",
    "fill_to_nan",
    "landsat_soc_image",
    "precheck_soc",
    "precheck_soc_windows",
    "soc_window_args",
    "terraclimate_series_image",
    "terraclimate_series_request",
]
