"""Earth Engine requests for the real-data path, and their conversion to the sample-set schema.

Two halves, kept apart on purpose:

**Request builders** (pure): each returns an ``ee`` object — an ``ee.ImageCollection``, ``ee.Image``
or ``ee.FeatureCollection`` computation — and never talks to the server. They need an
*initialised* ``ee`` library (a live session from :func:`initialize`, or the offline
``ee.apitestcase.ApiTestCase`` harness the tests use), because ``ee`` checks its function
signatures at build time. Every builder checks its arguments in plain Python first and raises a
:class:`ValueError` that says what was wrong and what to do.

- :func:`sentinel2_composites` — Sentinel-2 L2A surface reflectance, cloud-masked, one median
  composite per date window (:func:`sentinel2_window_composites`: the same as a Python list,
  :func:`sentinel2_stack`: as one image with bands ``<band>_t<i>``);
- :func:`terrain_layers` — Copernicus GLO-30 elevation, slope and a topographic-position wetness
  proxy;
- :func:`crop_layers` — MODIS LAI / FPAR, mean per date window;
- :func:`spectral_index_layers` — NDVI and a salinity index per date window;
- :func:`point_values_request` / :func:`patch_request` — sampling at points, either the pixel
  under each point or a ``window`` x ``window`` patch around it;
- :func:`build_salinity_request` — all of the above composed into one request for the salinity
  chapter (SS-SoilNet), split into batches of points.

**Conversion** (pure, no ``ee`` needed): :func:`to_samples` turns what ``getInfo()`` returned
for those requests into an :class:`xarray.Dataset` that passes
:func:`soilbook.data.schema.validate_samples`.

Only :func:`extract_salinity_inputs` talks to the server: it composes the request, calls
``getInfo`` batch by batch and returns :func:`to_samples` of the result.

Choices (see also the docstrings)
---------------------------------
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
- **Sampling grid**: the UTM zone of the points' centroid at ``scale`` metres (10 m by default),
  unless ``crs`` is given, so that a patch of ``window`` pixels is ``window * scale`` metres wide.
- **Masked pixels** are filled with :data:`FILL_VALUE` before sampling (otherwise
  ``sampleRegions`` silently drops a point when any band is masked) and turned back into NaN by
  :func:`to_samples`.
- **Wetness proxy**: a true topographic wetness index needs flow accumulation, which GLO-30 does
  not provide in Earth Engine (MERIT Hydro's ``upa`` would, under a non-commercial / ODbL
  licence). We use the topographic position index ``tpi = elevation - mean elevation within
  tpi_radius_m`` instead: negative values are local depressions, where water and salt collect.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from soilbook import geo
from soilbook.data.schema import FEATURE_GROUPS, validate_samples
from soilbook.errors import EarthEngineSetupError

# -- collections and their terms ---------------------------------------------------------------

S2_SR = "COPERNICUS/S2_SR_HARMONIZED"
S2_CLOUD_PROBABILITY = "COPERNICUS/S2_CLOUD_PROBABILITY"
GLO30 = "COPERNICUS/DEM/GLO30"
MCD15A3H = "MODIS/061/MCD15A3H"

#: Licence and citation of every collection a builder here reads.
COLLECTIONS: dict[str, dict[str, str]] = {
    S2_SR: {
        "name": "Sentinel-2 MSI Level-2A surface reflectance (harmonised)",
        "licence": "Copernicus Sentinel data: free, full and open access under the Copernicus "
        "Sentinel data terms and conditions (credit 'Contains modified Copernicus Sentinel data')",
        "citation": "Contains modified Copernicus Sentinel data, processed by ESA; "
        "via Google Earth Engine (COPERNICUS/S2_SR_HARMONIZED)",
    },
    S2_CLOUD_PROBABILITY: {
        "name": "Sentinel-2 cloud probability (s2cloudless)",
        "licence": "Copernicus Sentinel data: free, full and open access under the Copernicus "
        "Sentinel data terms and conditions",
        "citation": "Sentinel Hub s2cloudless cloud detector (Zupanc 2017), "
        "via Google Earth Engine (COPERNICUS/S2_CLOUD_PROBABILITY)",
    },
    GLO30: {
        "name": "Copernicus DEM GLO-30",
        "licence": "Copernicus DEM licence: free of charge for any use, with attribution "
        "('produced using Copernicus WorldDEM-30 (c) DLR e.V. 2010-2014 and (c) Airbus Defence "
        "and Space GmbH 2014-2018 provided under COPERNICUS by the European Union and ESA')",
        "citation": "European Space Agency (2021). Copernicus Global Digital Elevation Model "
        "GLO-30. doi:10.5270/ESA-c5d3d65",
    },
    MCD15A3H: {
        "name": "MODIS Terra+Aqua LAI/FPAR 4-day 500 m, collection 6.1",
        "licence": "public domain: NASA LP DAAC data carry no restriction on use, sale or "
        "redistribution",
        "citation": "Myneni, R., Knyazikhin, Y., Park, T. (2021). MCD15A3H MODIS/Terra+Aqua Leaf "
        "Area Index/FPAR 4-Day L4 Global 500m SIN Grid V061. NASA EOSDIS LP DAAC. "
        "doi:10.5067/MODIS/MCD15A3H.061",
    },
}
EARTH_ENGINE_CITATION = (
    "Gorelick, N. et al. (2017). Google Earth Engine: planetary-scale geospatial analysis for "
    "everyone. Remote Sensing of Environment 202, 18-27. doi:10.1016/j.rse.2017.06.031"
)
#: The collections one salinity extraction reads.
SALINITY_COLLECTIONS = (S2_SR, S2_CLOUD_PROBABILITY, GLO30, MCD15A3H)

#: First day of COPERNICUS/S2_SR_HARMONIZED (global coverage only from December 2018).
S2_SR_FIRST_DAY = _dt.date(2017, 3, 28)
#: First day of MODIS/061/MCD15A3H.
MCD15A3H_FIRST_DAY = _dt.date(2002, 7, 4)

#: Central wavelength (nm) of the Sentinel-2 L2A bands: the response-weighted centroid of ESA's
#: spectral response functions v3.0, mean of Sentinel-2A and 2B. B10 (cirrus) is not in L2A.
S2_WAVELENGTHS_NM: dict[str, float] = {
    "B1": 442.5,
    "B2": 492.3,
    "B3": 559.4,
    "B4": 664.8,
    "B5": 704.0,
    "B6": 739.8,
    "B7": 781.3,
    "B8": 832.9,
    "B8A": 864.4,
    "B9": 944.2,
    "B11": 1612.1,
    "B12": 2194.1,
}
#: The ten 10 m and 20 m bands used by default (the 60 m atmospheric bands B1 and B9 are left out).
DEFAULT_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")

#: Value that masked pixels get before sampling; :func:`to_samples` turns it back into NaN.
FILL_VALUE = -9999.0
#: Scene classification class of cloud shadows in Sentinel-2 L2A ``SCL``.
SCL_CLOUD_SHADOW = 3
#: Points per ``getInfo`` call without patches (Earth Engine stops collections at 5000 elements).
POINT_BATCH = 500
#: Patch pixel values per ``getInfo`` call (keeps one response to a few MB).
PATCH_VALUES_PER_BATCH = 400_000

#: Units and feature group of the layers the builders make (``_t<i>`` = date window ``i``).
LAYER_INFO: dict[str, tuple[str, str, str]] = {
    # name: (units, feature group, long name)
    "elevation": ("m", "terrain", "elevation above the EGM2008 geoid (Copernicus GLO-30)"),
    "slope": ("degree", "terrain", "terrain slope"),
    "tpi": (
        "m",
        "hydrology",
        "topographic position index: elevation minus the mean elevation "
        "around (negative in depressions; a wetness proxy)",
    ),
    "Lai": ("m2 m-2", "vegetation", "leaf area index (MODIS MCD15A3H, window mean)"),
    "Fpar": (
        "1",
        "vegetation",
        "fraction of absorbed photosynthetically active radiation (MODIS MCD15A3H, window mean)",
    ),
    "NDVI": ("1", "vegetation", "normalised difference vegetation index (B8, B4)"),
    "SI": ("1", "spectral", "salinity index sqrt(B2 * B4) (Khan et al. 2005)"),
}


# -- small helpers -----------------------------------------------------------------------------


def _ee() -> Any:
    """Import ``ee`` lazily, with a message that says how to get it."""
    try:
        import ee
    except ImportError as err:  # pragma: no cover - exercised in a subprocess test
        raise EarthEngineSetupError(
            "The Earth Engine Python API is not installed. Install it with "
            "`pip install earthengine-api` (or `pip install soilbook[ee]`), then call "
            "soilbook.data.earthengine.initialize()."
        ) from err
    return ee


def _ee_ready() -> Any:
    """``ee``, checked to be initialised (builders need the server's function signatures)."""
    ee = _ee()
    if not ee.data.is_initialized():
        raise EarthEngineSetupError(
            "Earth Engine is not initialised. Call soilbook.data.earthengine.initialize() first "
            "(it reads EARTHENGINE_PROJECT and your credentials from the environment)."
        )
    return ee


def dated(name: str, index: int) -> str:
    """Band / property name of layer ``name`` in date window ``index``, e.g. ``B2_t0``."""
    return f"{name}_t{index}"


def _layer_info(name: str) -> tuple[str, str, str]:
    """(units, feature group, long name) of a layer, dated (``Lai_t0``) or not (``slope``)."""
    match = re.fullmatch(r"(.+)_t\d+", name)
    return LAYER_INFO.get(match.group(1) if match else name, ("1", "other", name))


# -- argument checks (pure Python, run before anything touches ee) -----------------------------


def _as_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(
        f"{what} = {value!r} is not a date. Expected an ISO date string 'YYYY-MM-DD' or a "
        "datetime.date. What to do: write dates like '2021-04-01'."
    )


def check_dates(
    dates: Sequence[tuple[Any, Any]], first_day: _dt.date = S2_SR_FIRST_DAY
) -> tuple[tuple[str, str], ...]:
    """Check date windows ``[(start, end), ...]`` and return them as ISO strings.

    Each window is half-open, ``[start, end)`` (Earth Engine's ``filterDate``). Windows must be
    in chronological order of their start, each start before its end, none entirely before
    ``first_day`` (the collection's first acquisition) and none starting in the future.
    """
    if isinstance(dates, (str, bytes)) or not isinstance(dates, Sequence) or len(dates) == 0:
        raise ValueError(
            f"dates = {dates!r} is not a non-empty list of (start, end) windows. Expected e.g. "
            "[('2021-04-01', '2021-05-01'), ('2021-09-01', '2021-10-01')]."
        )
    out: list[tuple[str, str]] = []
    today = _dt.date.today()
    previous: _dt.date | None = None
    for i, window in enumerate(dates):
        if isinstance(window, (str, bytes)) or not isinstance(window, Sequence) or len(window) != 2:
            raise ValueError(
                f"dates[{i}] = {window!r} is not a (start, end) pair. Expected e.g. "
                "('2021-04-01', '2021-05-01')."
            )
        start = _as_date(window[0], f"dates[{i}][0]")
        end = _as_date(window[1], f"dates[{i}][1]")
        if end <= start:
            raise ValueError(
                f"dates[{i}] = ({start}, {end}): the end is not after the start. Windows are "
                "half-open [start, end); swap the two dates or widen the window."
            )
        if end <= first_day:
            raise ValueError(
                f"dates[{i}] = ({start}, {end}) ends before the collection starts on {first_day}. "
                "What to do: choose a later window."
            )
        if start > today:
            raise ValueError(f"dates[{i}] starts in the future ({start}); choose a past window.")
        if previous is not None and start <= previous:
            raise ValueError(
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
        raise ValueError(f"bands = {bands!r} is not a list of band names, e.g. ['B2', 'B3'].")
    bands = tuple(bands)
    if not bands:
        raise ValueError(f"bands is empty. Expected some of {list(S2_WAVELENGTHS_NM)}.")
    unknown = [b for b in bands if b not in S2_WAVELENGTHS_NM]
    if unknown:
        raise ValueError(
            f"Unknown Sentinel-2 L2A band(s) {unknown}. Allowed: {list(S2_WAVELENGTHS_NM)} "
            "(B10 is not in L2A; band names are case-sensitive, e.g. 'B8A')."
        )
    if len(set(bands)) != len(bands):
        raise ValueError(f"bands = {list(bands)} names a band twice; list each band once.")
    return bands


def check_window(window: int) -> int:
    """Check a patch side in pixels: a positive odd integer (the patch is centred on the pixel)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise ValueError(f"window = {window!r} must be an int (pixels), e.g. 65.")
    if window < 1:
        raise ValueError(f"window = {window} must be positive (a side in pixels), e.g. 65.")
    if window % 2 == 0:
        raise ValueError(
            f"window = {window} is even; the patch must be centred on the sample's pixel, so use "
            f"an odd side such as {window + 1} or {window - 1}."
        )
    return int(window)


def _check_positive(value: Any, name: str, example: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} = {value!r} must be a positive number, e.g. {example}.")
    return float(value)


def check_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check sample points and return ``[{'id': str, 'lat': float, 'lon': float}, ...]``.

    Each point is a mapping with ``lat`` and ``lon`` (WGS84 degrees) and an ``id`` that is unique
    once written as a string (ids travel to Earth Engine as strings, so that ``1`` and ``1.0``
    cannot be confused on the way back).
    """
    if isinstance(points, Mapping) or not isinstance(points, Sequence) or len(points) == 0:
        raise ValueError(
            "points is empty or not a list. Expected a non-empty list of dicts such as "
            "[{'id': 'S001', 'lat': 37.71, 'lon': 118.86}, ...]."
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, p in enumerate(points):
        if not isinstance(p, Mapping):
            raise ValueError(f"points[{i}] = {p!r} is not a dict with 'id', 'lat' and 'lon'.")
        missing = [k for k in ("id", "lat", "lon") if k not in p]
        if missing:
            raise ValueError(f"points[{i}] has no {missing}; every point needs 'id', 'lat', 'lon'.")
        try:
            lat, lon = float(p["lat"]), float(p["lon"])
        except (TypeError, ValueError):
            raise ValueError(
                f"points[{i}] has lat={p['lat']!r}, lon={p['lon']!r}; expected numbers in degrees."
            ) from None
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            raise ValueError(f"points[{i}] has lat={lat}; expected WGS84 degrees in [-90, 90].")
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            raise ValueError(
                f"points[{i}] has lon={lon}; expected WGS84 degrees in [-180, 180] "
                "(were lat and lon swapped?)."
            )
        pid = str(p["id"])
        if pid in seen:
            raise ValueError(f"points[{i}] repeats the id {pid!r}; ids must be unique.")
        seen.add(pid)
        out.append({"id": pid, "lat": lat, "lon": lon})
    return out


def check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """Check a ``(west, south, east, north)`` box in WGS84 degrees."""
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(
            f"region = {bbox!r} is not an ee.Geometry nor a (west, south, east, north) box in "
            "degrees."
        ) from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ValueError(
            f"region box {(west, south, east, north)} is not (west, south, east, north) with "
            "west < east in [-180, 180] and south < north in [-90, 90]."
        )
    return west, south, east, north


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


def _precheck_region(region: Any) -> None:
    """Check a box region before ``ee`` is touched (ee objects are checked in :func:`_region`)."""
    if region is None:
        raise ValueError(
            "region is None. Expected an ee.Geometry / ee.FeatureCollection or a "
            "(west, south, east, north) box in degrees."
        )
    if isinstance(region, (tuple, list)):
        check_bbox(region)


def _region(ee: Any, region: Any) -> Any:
    """An ee.Geometry (or collection / feature) from ``region``; a box is checked first."""
    if isinstance(region, ee.ComputedObject):  # ee.Geometry, ee.Feature(Collection), ...
        return region
    return ee.Geometry.Rectangle(list(check_bbox(region)), None, False)


def check_cloud_prob_max(value: Any) -> float:
    """Check an s2cloudless threshold in percent, 0 < value <= 100."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (0 < value <= 100)
    ):
        raise ValueError(
            f"cloud_prob_max = {value!r} must be a cloud probability in percent, "
            "0 < value <= 100 (e.g. 40)."
        )
    return float(value)


# -- credentials -------------------------------------------------------------------------------

#: Environment variables read for the Google Cloud project, in order.
PROJECT_ENV = ("EARTHENGINE_PROJECT", "EE_PROJECT", "GOOGLE_CLOUD_PROJECT")

_SETUP_HELP = (
    "What to do (one of):\n"
    "  1. Service account: set GOOGLE_APPLICATION_CREDENTIALS=/path/to/key.json (a JSON key of a "
    "service account registered for Earth Engine); the project defaults to the key's project_id.\n"
    "  2. Your own account: run `earthengine authenticate` once (or "
    "`gcloud auth application-default login`), and set EARTHENGINE_PROJECT=<your Cloud project "
    "id registered for Earth Engine>.\n"
    "Credentials are read only from the environment; never put keys into notebooks or code."
)


def _gcloud_adc_path() -> Path:
    config = os.environ.get("CLOUDSDK_CONFIG")
    base = Path(config) if config else Path("~/.config/gcloud").expanduser()
    return base / "application_default_credentials.json"


def initialize(project: str | None = None) -> str:
    """Initialise Earth Engine from credentials found in the environment; return the project.

    Looks, in order, for

    1. ``GOOGLE_APPLICATION_CREDENTIALS``: a service-account JSON key (``type`` =
       ``service_account``) is used as such; any other credentials file is left to Google's
       application-default credentials;
    2. the token written by ``earthengine authenticate`` (``~/.config/earthengine/credentials``);
    3. gcloud's application-default credentials
       (``~/.config/gcloud/application_default_credentials.json``).

    ``project`` is the Google Cloud project registered for Earth Engine (not a secret); when
    ``None`` it is read from ``EARTHENGINE_PROJECT``, ``EE_PROJECT`` or ``GOOGLE_CLOUD_PROJECT``,
    then from the service-account key or the stored token. Raises
    :class:`EarthEngineSetupError`, saying what to set, when no credentials or no project are
    found. Keys are never taken as arguments.
    """
    ee = _ee()
    project = project or next((os.environ[v] for v in PROJECT_ENV if os.environ.get(v)), None)
    credentials: Any = "persistent"
    key_path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_path:
        path = Path(key_path).expanduser()
        if not path.is_file():
            raise EarthEngineSetupError(
                f"GOOGLE_APPLICATION_CREDENTIALS points to {path}, which is not a file. "
                "Set it to the path of your service-account JSON key, or unset it.\n" + _SETUP_HELP
            )
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            raise EarthEngineSetupError(
                f"GOOGLE_APPLICATION_CREDENTIALS = {path} is not a readable JSON credentials "
                "file.\n" + _SETUP_HELP
            ) from None
        if isinstance(info, dict) and info.get("type") == "service_account":
            credentials = ee.ServiceAccountCredentials(info.get("client_email"), key_file=str(path))
            project = project or info.get("project_id")
    else:
        token = Path(ee.oauth.get_credentials_path())
        if token.is_file():
            if not project:
                try:
                    project = json.loads(token.read_text()).get("project")
                except (OSError, ValueError):
                    project = None
        elif not _gcloud_adc_path().is_file():
            raise EarthEngineSetupError(
                "No Earth Engine credentials were found in the environment (no "
                "GOOGLE_APPLICATION_CREDENTIALS, no `earthengine authenticate` token, no gcloud "
                "application-default credentials).\n" + _SETUP_HELP
            )
    if not project:
        raise EarthEngineSetupError(
            "No Google Cloud project for Earth Engine: set EARTHENGINE_PROJECT=<project id> "
            "(or pass initialize(project=...)); Earth Engine bills and authorises requests "
            "through a project registered for it.\n" + _SETUP_HELP
        )
    try:
        ee.Initialize(credentials=credentials, project=project)
    except ee.EEException as err:
        raise EarthEngineSetupError(
            f"Earth Engine refused to initialise with project {project!r}: {err}\n" + _SETUP_HELP
        ) from err
    return str(project)


# -- image builders ----------------------------------------------------------------------------


def _masked_constant(ee: Any, names: Sequence[str]) -> Any:
    """A fully masked float image with bands ``names``: merged into a collection so that a
    window without any image still composites to the right bands (all masked)."""
    return (
        ee.Image.constant([0] * len(names))
        .rename(list(names))
        .toFloat()
        .updateMask(ee.Image.constant(0))
    )


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
    _precheck_region(region)
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


def _stack_windows(ee: Any, images: Sequence[Any], names: Sequence[str]) -> Any:
    """One image with the bands of every window, renamed ``<band>_t<i>``."""
    stacked = None
    for i, image in enumerate(images):
        renamed = ee.Image(image).select(list(names), [dated(n, i) for n in names])
        stacked = renamed if stacked is None else stacked.addBands(renamed)
    return stacked


def sentinel2_stack(
    region: Any,
    dates: Sequence[tuple[str, str]],
    cloud_prob_max: float = 40,
    bands: Sequence[str] = DEFAULT_BANDS,
) -> Any:
    """:func:`sentinel2_composites` as one image with bands ``<band>_t<i>`` (window ``i``)."""
    bands = check_bands(bands)
    images = sentinel2_window_composites(region, dates, cloud_prob_max, bands)
    return _stack_windows(_ee_ready(), images, bands)


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
    radius = _check_positive(tpi_radius_m, "tpi_radius_m", "300")
    _precheck_region(region)
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
    _precheck_region(region)
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
    return _stack_windows(ee, means, ["Lai", "Fpar"])


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
        raise ValueError(
            "spectral_index_layers takes a non-empty Python list of composite images (one per "
            "window), e.g. sentinel2_window_composites(region, dates), not an ee collection."
        )
    out = []
    for image in composites:
        image = ee.Image(image)
        ndvi = image.normalizedDifference(["B8", "B4"]).rename(["NDVI"])
        si = image.select("B2").multiply(image.select("B4")).sqrt().rename(["SI"])
        out.append(ndvi.addBands(si).toFloat())
    return _stack_windows(ee, out, ["NDVI", "SI"])


# -- sampling ----------------------------------------------------------------------------------


def points_to_features(points: Sequence[Mapping[str, Any]]) -> Any:
    """An ``ee.FeatureCollection`` of the points, with properties ``id`` (str), ``lat``, ``lon``.

    Only these three travel to Earth Engine: targets and other field data stay local.
    """
    pts = check_points(points)
    ee = _ee_ready()
    return ee.FeatureCollection(
        [ee.Feature(ee.Geometry.Point([p["lon"], p["lat"]]), dict(p)) for p in pts]
    )


def _sampling_args(points: Sequence[Mapping[str, Any]], scale: float, crs: str | None) -> tuple:
    pts = check_points(points)
    scale = _check_positive(scale, "scale", "10 (metres)")
    if crs is not None and (not isinstance(crs, str) or not crs.strip()):
        raise ValueError(f"crs = {crs!r} must be a CRS string such as 'EPSG:32650', or None.")
    return pts, scale, crs or points_crs(pts)


def _sample(ee: Any, image: Any, pts: list[dict], scale: float, crs: str, tile_scale: float) -> Any:
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

    Masked pixels are filled with :data:`FILL_VALUE` first, so no point is dropped; sampling is
    on a ``scale``-metre grid in ``crs`` (default: the UTM zone of the points' centroid).

    Returns
    -------
    ee.FeatureCollection whose features carry ``id``, ``lat``, ``lon`` and one property per band.
    """
    pts, scale, crs = _sampling_args(points, scale, crs)
    tile_scale = _check_positive(tile_scale, "tile_scale", "1")
    ee = _ee_ready()
    return _sample(ee, ee.Image(image).unmask(FILL_VALUE, False), pts, scale, crs, tile_scale)


def _patch_arrays(ee: Any, image: Any, window: int) -> Any:
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
    patch covers ``window * scale`` metres. Masked pixels read :data:`FILL_VALUE`. Each band of a
    feature holds a nested list of shape (window, window): axis 0 is the image's y axis (row 0 is
    the northern edge), axis 1 its x axis (column 0 is the western edge).

    Returns
    -------
    ee.FeatureCollection with ``id``, ``lat``, ``lon`` and one array property per band.
    """
    window = check_window(window)
    pts, scale, crs = _sampling_args(points, scale, crs)
    tile_scale = _check_positive(tile_scale, "tile_scale", "1")
    ee = _ee_ready()
    return _sample(ee, _patch_arrays(ee, image, window), pts, scale, crs, tile_scale)


# -- the salinity chapter's request ------------------------------------------------------------


def patch_name(layer: str) -> str:
    """Property name under which a patch of ``layer`` comes back, e.g. ``patch_elevation``."""
    return f"patch_{layer}"


@dataclass(frozen=True)
class SalinityRequest:
    """A composed salinity-inputs request, and everything :func:`to_samples` needs to read it.

    ``image`` holds every band that is sampled (reflectance ``<band>_t<i>``, covariates, and
    patch arrays ``patch_<layer>``); ``batches`` are the ``ee.FeatureCollection`` requests, one per
    chunk of ``points``; the other fields describe the bands.
    """

    image: Any
    batches: tuple[Any, ...]
    points: tuple[dict[str, Any], ...]
    dates: tuple[tuple[str, str], ...]
    bands: tuple[str, ...]
    covariates: dict[str, str]
    patch_layers: dict[str, str]
    window: int | None
    scale: float
    crs: str
    batch_size: int
    collections: tuple[str, ...] = SALINITY_COLLECTIONS
    params: dict[str, Any] = field(default_factory=dict)

    def to_samples(
        self, features: Any, points: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> xr.Dataset:
        """:func:`to_samples` of this request's ``getInfo()`` results (``points`` carry targets)."""
        return to_samples(
            features,
            self.bands,
            dates=self.dates,
            covariates=self.covariates,
            patch_layers=self.patch_layers,
            points=points,
            scale=self.scale,
            collections=self.collections,
            extra_attrs={**self.params, "crs": self.crs},
            **kwargs,
        )


def _default_batch_size(n_patch_layers: int, window: int | None) -> int:
    if not n_patch_layers or window is None:
        return POINT_BATCH
    return int(
        max(1, min(POINT_BATCH, PATCH_VALUES_PER_BATCH // (n_patch_layers * window * window)))
    )


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
    stays near :data:`PATCH_VALUES_PER_BATCH` values).
    """
    pts = check_points(points)
    windows = check_dates(dates)
    bands = check_bands(bands)
    if window is not None:
        window = check_window(window)
    scale = _check_positive(scale, "scale", "10 (metres)")
    cloud = check_cloud_prob_max(cloud_prob_max)
    tile_scale = _check_positive(tile_scale, "tile_scale", "1")
    _check_positive(tpi_radius_m, "tpi_radius_m", "300")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= 5000
    ):
        raise ValueError(
            f"batch_size = {batch_size!r} must be an int between 1 and 5000 (Earth Engine returns "
            "at most 5000 features per request), or None for the default."
        )
    covariate_names = ["elevation", "slope", "tpi"]
    for i in range(len(windows)):
        covariate_names += [dated(n, i) for n in ("Lai", "Fpar")]
    with_indices = all(b in bands for b in ("B2", "B4", "B8"))
    if with_indices:
        for i in range(len(windows)):
            covariate_names += [dated(n, i) for n in ("NDVI", "SI")]
    if window is None:
        layers: list[str] = []
    elif patch_layers is None:
        layers = list(covariate_names)
    else:
        layers = list(patch_layers)
        unknown = [name for name in layers if name not in covariate_names]
        if unknown:
            raise ValueError(
                f"patch_layers {unknown} are not among the environmental layers "
                f"{covariate_names}. Pick from those (dated layers end in _t<window index>)."
            )
        if not layers:
            raise ValueError("patch_layers is empty; pass window=None for no patches.")
    size = batch_size or _default_batch_size(len(layers), window)
    margin = (window // 2 if window else 0) * scale + 1000.0
    box = points_bbox(pts, margin_m=margin)
    if crs is not None and (not isinstance(crs, str) or not crs.strip()):
        raise ValueError(f"crs = {crs!r} must be a CRS string such as 'EPSG:32650', or None.")
    crs = crs or points_crs(pts)

    images = sentinel2_window_composites(box, windows, cloud, bands)
    ee = _ee_ready()
    reflectance = _stack_windows(ee, images, bands)
    environment = terrain_layers(box, tpi_radius_m).addBands(crop_layers(box, windows))
    if with_indices:
        environment = environment.addBands(spectral_index_layers(images))
    environment = environment.select(covariate_names)
    image = reflectance.addBands(environment).unmask(FILL_VALUE, False)
    if layers:
        arrays = _patch_arrays(ee, environment.select(layers), window)
        image = image.addBands(arrays.select(layers, [patch_name(n) for n in layers]))
    batches = tuple(
        _sample(ee, image, pts[i : i + size], scale, crs, tile_scale)
        for i in range(0, len(pts), size)
    )
    return SalinityRequest(
        image=image,
        batches=batches,
        points=tuple(pts),
        dates=windows,
        bands=bands,
        covariates={n: _layer_info(n)[1] for n in covariate_names},
        patch_layers={n: _layer_info(n)[1] for n in layers},
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


def extract_salinity_inputs(
    points: Sequence[Mapping[str, Any]],
    dates: Sequence[tuple[str, str]],
    window: int | None = 65,
    *,
    target_key: str = "target",
    group_key: str | None = None,
    project: str | None = None,
    progress: bool = True,
    **request_kwargs: Any,
) -> xr.Dataset:
    """Extract the salinity chapter's inputs at field samples from Earth Engine (needs a live
    session and internet).

    ``points`` are dicts with ``id``, ``lat``, ``lon`` and the measured ``target_key`` (e.g. salt
    content in g/kg; it never leaves this machine). Initialises Earth Engine from the environment
    when needed (:func:`initialize`), composes :func:`build_salinity_request`, calls ``getInfo``
    on each batch of points and returns :func:`to_samples` of the lot.
    """
    check_points(points)
    check_dates(dates)
    if window is not None:
        check_window(window)
    _targets(points, target_key)  # fail before any request if a target is missing
    ee = _ee()
    if not ee.data.is_initialized():
        initialize(project)
    request = build_salinity_request(points, dates, window, **request_kwargs)
    batches: Iterable[Any] = request.batches
    if progress:
        from soilbook.progress import progress_bar

        batches = progress_bar(iterable=batches, desc="Earth Engine batches", unit="batch")
    features: list[dict] = []
    for batch in batches:
        info = batch.getInfo()
        features.extend(info.get("features", []) if isinstance(info, dict) else info)
    return request.to_samples(features, points, target_key=target_key, group_key=group_key)


# -- conversion to the sample-set schema (pure, no ee) -----------------------------------------


def _targets(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
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
        raise ValueError(
            f"{len(missing)} point(s) have no finite '{key}' (ids {missing[:10]}). Every sample "
            f"needs its measured value under '{key}'; drop unlabelled points first (use "
            "point_values_request for inputs at unlabelled points)."
        )
    return np.asarray(values, dtype=np.float64)


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if f == FILL_VALUE else f


def spatial_block_groups(lat: np.ndarray, lon: np.ndarray, block_size_m: float) -> np.ndarray:
    """Square ``block_size_m`` blocks on a grid anchored at (0 deg, 0 deg), labelled as
    :func:`soilbook.geo.spatial_blocks` labels them (``b<col>_<row>``), on the local projection
    of :func:`soilbook.geo.local_xy_m`: fine for study areas of up to a few hundred km."""
    size = _check_positive(block_size_m, "block_size_m", "2000")
    x, y = geo.local_xy_m(lat, lon)
    return geo.spatial_blocks(x, y, size, origin=(0.0, 0.0))


def _feature_list(features: Any) -> list[Mapping[str, Any]]:
    if isinstance(features, Mapping):
        if "features" not in features:
            raise ValueError(
                "features is a dict without 'features'; pass what getInfo() returned for a "
                "FeatureCollection, or its 'features' list."
            )
        features = features["features"]
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence):
        raise ValueError("features must be a list of feature dicts (getInfo()['features']).")
    out = []
    for i, f in enumerate(features):
        if not isinstance(f, Mapping):
            raise ValueError(f"features[{i}] is not a dict.")
        properties = f.get("properties", f)  # a GeoJSON feature, or already its properties
        if not isinstance(properties, Mapping):
            raise ValueError(f"features[{i}]['properties'] is not a dict.")
        out.append(properties)
    return out


def to_samples(
    features: Any,
    band_names: Sequence[str] = DEFAULT_BANDS,
    *,
    dates: Sequence[tuple[str, str]] | None = None,
    covariates: Mapping[str, str] | None = None,
    patch_layers: Mapping[str, str] | None = None,
    points: Sequence[Mapping[str, Any]] | None = None,
    target_key: str = "target",
    group_key: str | None = None,
    block_size_m: float = 2000.0,
    scale: float = 10.0,
    target_name: str = "soil salt content",
    target_units: str = "g/kg",
    collections: Sequence[str] = SALINITY_COLLECTIONS,
    extra_attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Turn downloaded Earth Engine samples into a sample set in the soilbook schema (pure).

    Parameters
    ----------
    features : list of dict | dict
        ``getInfo()`` of sampling requests (a FeatureCollection dict, or its ``features``; batches
        concatenated). Each feature's ``properties`` hold ``id``, ``lat``, ``lon``, reflectance
        ``<band>_t<i>``, covariates by name and patches ``patch_<layer>`` (nested lists
        (window, window)). ``None`` and :data:`FILL_VALUE` become NaN.
    band_names : sequence of str
        Sentinel-2 bands of ``reflectance`` (empty: no reflectance).
    dates : list of (start, end)
        The windows of ``_t<i>``; labels of the ``date`` dimension are the start dates, with
        ``date_start`` / ``date_end`` coordinates.
    covariates, patch_layers : dict name -> feature group
        Scalar covariates and patch layers to read, with their group (one of
        :data:`~soilbook.data.schema.FEATURE_GROUPS`).
    points : list of dict, optional
        The requested points: the sample order, ``lat``/``lon``, the target and (with
        ``group_key``) the group come from here, matched to features by ``id``. Without it they
        are read from the features' properties.
    target_key, group_key : str
        Keys of the measured value and of the cross-validation group; without ``group_key`` the
        group is a ``block_size_m`` spatial block (:func:`spatial_block_groups`).
    scale : float
        Pixel size in metres (patch ``y`` / ``x`` coordinates are offsets from the centre).

    Returns
    -------
    xarray.Dataset
        Validated by :func:`soilbook.data.schema.validate_samples`: ``target`` (sample),
        ``reflectance`` (sample, date, band), ``covariates`` (sample, feature) and ``patches``
        (sample, layer, y, x) as present, float32 inputs with NaN where Earth Engine had no data.
    """
    props = _feature_list(features)
    bands = tuple(band_names)
    if bands:
        check_bands(bands)
        if dates is None:
            raise ValueError("dates is required when band_names is not empty (one per '_t<i>').")
    windows = check_dates(dates, first_day=_dt.date(1900, 1, 1)) if dates is not None else ()
    covariates = dict(covariates or {})
    patch_layers = dict(patch_layers or {})
    for kind, mapping in (("covariates", covariates), ("patch_layers", patch_layers)):
        bad = {k: g for k, g in mapping.items() if g not in FEATURE_GROUPS}
        if bad:
            raise ValueError(f"{kind} has unknown group(s) {bad}; allowed: {FEATURE_GROUPS}.")

    by_id: dict[str, Mapping[str, Any]] = {}
    for i, p in enumerate(props):
        if "id" not in p:
            raise ValueError(
                f"features[{i}] has no 'id' property; sample with properties ['id', ...]."
            )
        pid = str(p["id"])
        if pid in by_id:
            raise ValueError(f"features repeat the id {pid!r}; each sample must come back once.")
        by_id[pid] = p
    if points is not None:
        records = [dict(p) for p in points]
        pts = check_points(records)
        ids = [p["id"] for p in pts]
        missing = [pid for pid in ids if pid not in by_id]
        if missing:
            warnings.warn(
                f"{len(missing)} point(s) came back from Earth Engine without values (ids "
                f"{missing[:10]}); their inputs are NaN.",
                stacklevel=2,
            )
        rows = [by_id.get(pid, {}) for pid in ids]
        lat = np.array([p["lat"] for p in pts])
        lon = np.array([p["lon"] for p in pts])
        target = _targets(records, target_key)
        group_source = records
    else:
        if not props:
            raise ValueError("features is empty: nothing came back to convert.")
        records = [dict(p, id=str(p["id"])) for p in props]
        pts = check_points(records)
        ids = [p["id"] for p in pts]
        rows = props
        lat = np.array([p["lat"] for p in pts])
        lon = np.array([p["lon"] for p in pts])
        target = _targets(records, target_key)
        group_source = records
    if group_key is not None:
        absent = [r.get("id") for r in group_source if r.get(group_key) is None]
        if absent:
            raise ValueError(f"group_key '{group_key}' is missing for ids {absent[:10]}.")
        group = np.array([str(r[group_key]) for r in group_source])
    else:
        group = spatial_block_groups(lat, lon, block_size_m)

    n = len(ids)
    data_vars: dict[str, Any] = {
        "target": (("sample",), target, {"units": target_units, "long_name": target_name}),
    }
    coords: dict[str, Any] = {
        "sample": np.array(ids, dtype=object),
        "lat": (("sample",), lat, {"units": "degrees_north", "long_name": "latitude (WGS84)"}),
        "lon": (("sample",), lon, {"units": "degrees_east", "long_name": "longitude (WGS84)"}),
        "group": (
            ("sample",),
            group,
            {
                "long_name": "cross-validation group"
                + (f" ({group_key})" if group_key else f" (spatial block of {block_size_m:g} m)")
            },
        ),
    }
    if bands:
        refl = np.full((n, len(windows), len(bands)), np.nan, dtype=np.float32)
        for s, row in enumerate(rows):
            for t in range(len(windows)):
                for b, band in enumerate(bands):
                    refl[s, t, b] = _number(row.get(dated(band, t)))
        data_vars["reflectance"] = (
            ("sample", "date", "band"),
            refl,
            {
                "units": "1",
                "long_name": "surface reflectance (Sentinel-2 L2A, cloud-masked median "
                "composite per date window)",
            },
        )
        coords["date"] = np.array([s for s, _ in windows], dtype=object)
        coords["date_start"] = (("date",), np.array([s for s, _ in windows], dtype=object))
        coords["date_end"] = (("date",), np.array([e for _, e in windows], dtype=object))
        coords["band"] = np.array(bands, dtype=object)
        coords["wavelength"] = (
            ("band",),
            np.array([S2_WAVELENGTHS_NM[b] for b in bands]),
            {"units": "nm", "long_name": "central wavelength"},
        )
    if covariates:
        names = list(covariates)
        cov = np.array(
            [[_number(row.get(name)) for name in names] for row in rows], dtype=np.float32
        ).reshape(n, len(names))
        data_vars["covariates"] = (
            ("sample", "feature"),
            cov,
            {
                "units": "see feature_units",
                "long_name": "environmental covariates at the sample's pixel",
            },
        )
        coords["feature"] = np.array(names, dtype=object)
        coords["feature_group"] = (
            ("feature",),
            np.array([covariates[k] for k in names], dtype=object),
        )
        coords["feature_units"] = (
            ("feature",),
            np.array([_layer_info(k)[0] for k in names], dtype=object),
        )
    if patch_layers:
        names = list(patch_layers)
        side = None
        for row in rows:
            for name in names:
                value = row.get(patch_name(name))
                if value is not None:
                    arr = np.asarray(value, dtype=float)
                    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] % 2 == 0:
                        raise ValueError(
                            f"patch '{patch_name(name)}' has shape {arr.shape}; expected an odd "
                            "square (window, window) array from neighborhoodToArray."
                        )
                    if side is not None and arr.shape[0] != side:
                        raise ValueError(
                            f"patches have different sides ({side} and {arr.shape[0]}); convert "
                            "requests made with one window at a time."
                        )
                    side = arr.shape[0]
        if side is None:
            raise ValueError(
                f"no feature carries a patch for {names}; were the patches requested "
                "(patch_request / window not None)?"
            )
        patches = np.full((n, len(names), side, side), np.nan, dtype=np.float32)
        for s, row in enumerate(rows):
            for k, name in enumerate(names):
                value = row.get(patch_name(name))
                if value is not None:
                    arr = np.array([[_number(v) for v in line] for line in value], dtype=np.float32)
                    patches[s, k] = arr
        half = side // 2
        offsets = (np.arange(side) - half) * float(scale)
        data_vars["patches"] = (
            ("sample", "layer", "y", "x"),
            patches,
            {
                "units": "see layer_units",
                "long_name": f"{side} x {side} pixel windows of "
                "environmental layers centred on the sample",
            },
        )
        coords["layer"] = np.array(names, dtype=object)
        coords["layer_group"] = (
            ("layer",),
            np.array([patch_layers[k] for k in names], dtype=object),
        )
        coords["layer_units"] = (
            ("layer",),
            np.array([_layer_info(k)[0] for k in names], dtype=object),
        )
        coords["y"] = (
            ("y",),
            -offsets,
            {"units": "m", "long_name": "northing offset from the sample's pixel"},
        )
        coords["x"] = (
            ("x",),
            offsets,
            {"units": "m", "long_name": "easting offset from the sample's pixel"},
        )

    collections = tuple(collections)
    unknown = [c for c in collections if c not in COLLECTIONS]
    if unknown:
        raise ValueError(f"unknown collection(s) {unknown}; known: {list(COLLECTIONS)}.")
    attrs: dict[str, Any] = {
        "source": "Earth Engine: " + ", ".join(collections),
        "licence": "; ".join(f"{c}: {COLLECTIONS[c]['licence']}" for c in collections)
        + "; processed with Google Earth Engine (Earth Engine terms of service apply)",
        "citation": "; ".join(COLLECTIONS[c]["citation"] for c in collections)
        + "; "
        + EARTH_ENGINE_CITATION,
        "simulated": False,
        "target_name": target_name,
        "collections": ", ".join(collections),
        "fill_value_replaced": FILL_VALUE,
    }
    attrs.update(extra_attrs or {})
    ds = xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)
    for name in ("reflectance", "covariates", "patches"):
        if name in ds and bool(np.isnan(ds[name].values).any()):
            frac = float(np.isnan(ds[name].values).mean())
            warnings.warn(
                f"'{name}' has {frac:.1%} missing values (no clear scene / no data there); "
                "drop or impute them before training.",
                stacklevel=2,
            )
    return validate_samples(ds)


__all__ = [
    "COLLECTIONS",
    "DEFAULT_BANDS",
    "FILL_VALUE",
    "S2_WAVELENGTHS_NM",
    "EarthEngineSetupError",
    "SalinityRequest",
    "build_salinity_request",
    "check_bands",
    "check_cloud_prob_max",
    "check_dates",
    "check_points",
    "check_window",
    "crop_layers",
    "dated",
    "extract_salinity_inputs",
    "initialize",
    "patch_name",
    "patch_request",
    "point_values_request",
    "points_crs",
    "points_to_features",
    "sentinel2_composites",
    "sentinel2_stack",
    "sentinel2_window_composites",
    "spatial_block_groups",
    "spectral_index_layers",
    "terrain_layers",
    "to_samples",
    "utm_crs",
]
