"""Layer builders: ``ee.Image`` computations of reflectance, terrain, crop and index layers.

Each builder is pure: it checks its arguments in plain Python first (:mod:`.checks`), then
returns an ``ee`` object and never talks to the server. It needs an *initialised* ``ee`` (a live
session from :func:`~.session.initialize`, or the offline ``ee.apitestcase.ApiTestCase`` harness
the tests use), because ``ee`` checks its function signatures at build time.

Choices
-------
- **Cloud mask: s2cloudless** (``COPERNICUS/S2_CLOUD_PROBABILITY``, band ``probability``),
  joined to ``COPERNICUS/S2_SR_HARMONIZED`` on ``system:index``; a pixel is kept when its cloud
  probability is below ``cloud_prob_max`` (percent) and the scene classification (``SCL``) does
  not call it a cloud shadow (class 3). The SCL cloud and snow classes are deliberately *not*
  used: bright salt crusts — the very thing the salinity chapter maps — are often labelled as
  cloud or snow there. (Cloud Score+ would be the other choice; s2cloudless was picked because its
  single probability threshold matches ``cloud_prob_max`` directly and the harness can test it.)
- **Reflectance** = DN / 10000 (the harmonised collection already removed the +1000 offset of
  processing baseline 04.00); all bands are resampled **bilinearly** before compositing, so the
  20 m (and 60 m) bands are interpolated onto the 10 m sampling grid.
- **Wetness proxy**: a true topographic wetness index needs flow accumulation, which GLO-30 does
  not provide in Earth Engine (MERIT Hydro's ``upa`` would, under a non-commercial / ODbL
  licence). We use the topographic position index ``tpi = elevation - mean elevation within
  tpi_radius_m`` instead: negative values are local depressions, where water and salt collect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from soilbook.data.earthengine.catalogue import (
    DEFAULT_BANDS,
    GLO30,
    MCD15A3H,
    MCD15A3H_FIRST_DAY,
    S2_CLOUD_PROBABILITY,
    S2_SR,
    SCL_CLOUD_SHADOW,
    dated,
)
from soilbook.data.earthengine.checks import (
    check_bands,
    check_bbox,
    check_cloud_prob_max,
    check_dates,
    check_positive,
    precheck_region,
)
from soilbook.data.earthengine.session import _ee_ready
from soilbook.errors import ParameterError


def _region(ee: Any, region: Any) -> Any:
    """An ee.Geometry (or collection / feature) from ``region``; a box is checked first."""
    if isinstance(region, ee.ComputedObject):  # ee.Geometry, ee.Feature(Collection), ...
        return region
    return ee.Geometry.Rectangle(list(check_bbox(region)), None, False)


def _masked_constant(ee: Any, names: Sequence[str]) -> Any:
    """A fully masked float image with bands ``names``: merged into a collection so that a
    window without any image still composites to the right bands (all masked)."""
    return (
        ee.Image.constant([0] * len(names))
        .rename(list(names))
        .toFloat()
        .updateMask(ee.Image.constant(0))
    )


def stack_windows(ee: Any, images: Sequence[Any], names: Sequence[str]) -> Any:
    """One image with the bands ``names`` of every window's image, renamed ``<band>_t<i>``."""
    stacked = None
    for i, image in enumerate(images):
        renamed = ee.Image(image).select(list(names), [dated(n, i) for n in names])
        stacked = renamed if stacked is None else stacked.addBands(renamed)
    return stacked


# -- Sentinel-2 --------------------------------------------------------------------------------


def _s2_window(
    ee: Any,
    region: Any,
    start: str,
    end: str,
    bands: tuple[str, ...],
    cloud_prob_max: float,
) -> Any:
    """Median composite of cloud-masked Sentinel-2 reflectance over ``[start, end)``."""
    sr = ee.ImageCollection(S2_SR).filterBounds(region).filterDate(start, end)
    clouds = ee.ImageCollection(S2_CLOUD_PROBABILITY).filterBounds(region).filterDate(start, end)
    joined = ee.ImageCollection(
        ee.Join.saveFirst("cloud_probability").apply(
            primary=sr,
            secondary=clouds,
            condition=ee.Filter.equals(leftField="system:index", rightField="system:index"),
        )
    )

    def mask_and_scale(image: Any) -> Any:
        image = ee.Image(image)
        probability = ee.Image(image.get("cloud_probability")).select("probability")
        clear = probability.lt(cloud_prob_max).And(image.select("SCL").neq(SCL_CLOUD_SHADOW))
        return (
            image.select(list(bands))
            .resample("bilinear")
            .updateMask(clear)
            .toFloat()
            .divide(10000)
            .toFloat()
        )

    stack = joined.map(mask_and_scale).merge(ee.ImageCollection([_masked_constant(ee, bands)]))
    return (
        stack.median()
        .set("window_start", start)
        .set("window_end", end)
        .set("system:time_start", ee.Date(start).millis())
        .set("n_scenes", joined.size())
    )


def sentinel2_window_composites(
    region: Any,
    dates: Sequence[tuple[str, str]],
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
) -> list[Any]:
    """The composites of :func:`sentinel2_composites` as a Python list of ``ee.Image``, one per
    window (what :func:`spectral_index_layers` and :func:`sentinel2_stack` take)."""
    windows = check_dates(dates)
    bands = check_bands(bands)
    cloud = check_cloud_prob_max(cloud_prob_max)
    precheck_region(region)
    ee = _ee_ready()
    geometry = _region(ee, region)
    return [_s2_window(ee, geometry, s, e, bands, cloud) for s, e in windows]


def sentinel2_composites(
    region: Any,
    dates: Sequence[tuple[str, str]],
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
) -> Any:
    """Cloud-masked Sentinel-2 L2A reflectance, one median composite per date window.

    Parameters
    ----------
    region : ee.Geometry | ee.FeatureCollection | (west, south, east, north)
        Scenes that intersect it are used (a box is in WGS84 degrees).
    dates : list of (start, end)
        Half-open windows ``[start, end)``, ISO dates, in chronological order.
    cloud_prob_max : float
        Pixels whose s2cloudless probability (percent, 0-100) is at or above this are masked;
        so are SCL cloud shadows.
    bands : sequence of str
        Sentinel-2 L2A bands (default: the ten 10 m and 20 m bands B2-B12).

    Returns
    -------
    ee.ImageCollection
        One image per window, in order, with the original band names, unitless reflectance
        (DN / 10000, float), bilinear resampling, and properties ``window_start``,
        ``window_end``, ``system:time_start`` (= start) and ``n_scenes``. A window without any
        clear scene gives an image whose pixels are all masked.
    """
    images = sentinel2_window_composites(region, dates, cloud_prob_max, bands)
    return _ee_ready().ImageCollection.fromImages(images)


def sentinel2_stack(
    region: Any,
    dates: Sequence[tuple[str, str]],
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
) -> Any:
    """:func:`sentinel2_composites` as one image with bands ``<band>_t<i>`` (window ``i``)."""
    bands = check_bands(bands)
    images = sentinel2_window_composites(region, dates, cloud_prob_max, bands)
    return stack_windows(_ee_ready(), images, bands)


# -- terrain, crops and indices ----------------------------------------------------------------


def terrain_layers(region: Any, tpi_radius_m: float = 300.0) -> Any:
    """Copernicus GLO-30 terrain: ``elevation`` (m), ``slope`` (degrees) and ``tpi`` (m).

    The DEM tiles that intersect ``region`` are resampled bilinearly and mosaicked (default
    projection: WGS84 at 30 m), so that sampling at 10 m interpolates rather than repeats 30 m
    cells; ``slope`` is ``ee.Terrain.slope`` of that surface. ``tpi`` (topographic position index)
    is the elevation minus its mean within a circle of ``tpi_radius_m`` metres — negative in
    depressions where water and salts accumulate — a simple wetness proxy standing in for a
    flow-accumulation wetness index, which GLO-30 alone does not give.

    Returns
    -------
    ee.Image with bands ``elevation``, ``slope``, ``tpi`` (float).
    """
    radius = check_positive(tpi_radius_m, "tpi_radius_m", "300")
    precheck_region(region)
    ee = _ee_ready()
    geometry = _region(ee, region)
    tiles = (
        ee.ImageCollection(GLO30)
        .filterBounds(geometry)
        .select(["DEM"], ["elevation"])
        .map(lambda image: ee.Image(image).resample("bilinear").toFloat())
    )
    elevation = (
        tiles.merge(ee.ImageCollection([_masked_constant(ee, ["elevation"])]))
        .mosaic()
        .setDefaultProjection(crs="EPSG:4326", scale=30)
        .rename(["elevation"])
    )
    slope = ee.Terrain.slope(elevation).rename(["slope"])
    tpi = elevation.subtract(
        elevation.focalMean(radius=radius, kernelType="circle", units="meters")
    ).rename(["tpi"])
    return elevation.addBands(slope).addBands(tpi).toFloat()


def crop_layers(
    region: Any, dates: Sequence[tuple[str, str]], good_quality_only: bool = True
) -> Any:
    """MODIS MCD15A3H leaf area index and FPAR, mean per date window.

    Scale factors are applied (``Lai`` x 0.1 -> m2/m2, ``Fpar`` x 0.01 -> fraction); raw values
    above 100 (the product's fill classes 249-255: water, urban, barren, ...) are masked, and with
    ``good_quality_only`` so are retrievals whose ``FparLai_QC`` bit 0 is set (back-up algorithm
    or fill). Masked, scaled images are then resampled bilinearly, so 500 m cells are interpolated
    at 10 m.

    Returns
    -------
    ee.Image with bands ``Lai_t<i>``, ``Fpar_t<i>`` for every window ``i`` (float; masked where
    a window has no valid retrieval).
    """
    windows = check_dates(dates, first_day=MCD15A3H_FIRST_DAY)
    precheck_region(region)
    ee = _ee_ready()
    geometry = _region(ee, region)

    def scale_and_mask(image: Any) -> Any:
        image = ee.Image(image)
        lai_raw = image.select("Lai")
        fpar_raw = image.select("Fpar")
        valid = lai_raw.lte(100).And(fpar_raw.lte(100))
        if good_quality_only:
            valid = valid.And(image.select("FparLai_QC").bitwiseAnd(1).eq(0))
        # mask the fill classes before interpolating, so that they never leak into neighbours
        lai = lai_raw.updateMask(valid).multiply(0.1)
        fpar = fpar_raw.updateMask(valid).multiply(0.01)
        return lai.addBands(fpar).resample("bilinear").toFloat()

    means = []
    for start, end in windows:
        collection = (
            ee.ImageCollection(MCD15A3H)
            .filterBounds(geometry)
            .filterDate(start, end)
            .map(scale_and_mask)
            .merge(ee.ImageCollection([_masked_constant(ee, ["Lai", "Fpar"])]))
        )
        means.append(collection.mean())
    return stack_windows(ee, means, ["Lai", "Fpar"])


def spectral_index_layers(composites: Sequence[Any]) -> Any:
    """NDVI and the salinity index SI = sqrt(B2 * B4) of each composite, bands ``NDVI_t<i>``,
    ``SI_t<i>``. ``composites`` is a list of reflectance images with bands B2, B4 and B8, one per
    window, e.g. from :func:`sentinel2_window_composites`."""
    ee = _ee_ready()
    if (
        isinstance(composites, ee.ComputedObject)
        or not isinstance(composites, Sequence)
        or not composites
    ):
        raise ParameterError(
            "spectral_index_layers takes a non-empty Python list of composite images (one per "
            "window), e.g. sentinel2_window_composites(region, dates), not an ee collection."
        )
    out = []
    for image in composites:
        image = ee.Image(image)
        ndvi = image.normalizedDifference(["B8", "B4"]).rename(["NDVI"])
        si = image.select("B2").multiply(image.select("B4")).sqrt().rename(["SI"])
        out.append(ndvi.addBands(si).toFloat())
    return stack_windows(ee, out, ["NDVI", "SI"])
