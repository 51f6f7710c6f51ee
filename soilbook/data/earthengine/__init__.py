"""Earth Engine requests for the real-data path, and their conversion to the sample-set schema.

One module per job (``import ee`` happens only inside functions, so everything but the builders
works without ``earthengine-api``):

- :mod:`.session` — :func:`initialize` from credentials in the environment, the lazy ``ee``;
- :mod:`.catalogue` — collection ids with licence and citation, Sentinel-2 bands, the fill
  value, batch limits, units and feature groups of every layer;
- :mod:`.checks` — argument checks in plain Python (:func:`check_dates`, :func:`check_bands`,
  :func:`check_window`, :func:`check_points`, ...) and the grid helpers (:func:`utm_crs`,
  :func:`points_crs`, :func:`points_bbox`);
- :mod:`.layers` — pure ``ee.Image`` builders: :func:`sentinel2_composites` (one cloud-masked
  median per date window; :func:`sentinel2_window_composites` as a list,
  :func:`sentinel2_stack` as one image with bands ``<band>_t<i>``), :func:`terrain_layers`
  (GLO-30 elevation, slope, a topographic-position wetness proxy), :func:`crop_layers` (MODIS
  LAI / FPAR per window), :func:`spectral_index_layers` (NDVI and a salinity index);
- :mod:`.sampling` — :func:`point_values_request` / :func:`patch_request` (the pixel under
  each point, or a ``window`` x ``window`` patch around it) and the download loop;
- :mod:`.convert` — :func:`to_samples`, the pure, generic conversion of ``getInfo()`` answers
  into an :class:`xarray.Dataset` that passes :func:`soilbook.data.schema.validate_samples`;
- :mod:`.points` — :func:`read_points` (a user's CSV of sample points, every bad cell named with
  its fix) and :func:`parse_aoi` (an area of interest);
- :mod:`.pixels` — the pixel engine: :class:`PixelGrid`, :func:`plan_pieces` (requests under
  Earth Engine's size limits), :func:`fetch_image` / :func:`fetch_patches` (parallel, rate
  limited, retried with back-off, cached piece by piece and resumable) over a
  :class:`Transport` (``computePixels`` or a test fake);
- :mod:`.scene` — :func:`lazy_image` (an image on a grid as a lazy dask ``(band, y, x)`` scene,
  each block fetched, cached and resumable when computed) and :func:`area_grid` (an area's grid);
- :mod:`.request` — :class:`Request`, what a recipe composes, and :func:`extract`, which sends
  it batch by batch;
- :mod:`.recipes` — one module per chapter: :mod:`.recipes.salinity`
  (:func:`build_salinity_request`, :func:`extract_salinity_inputs`), :mod:`.recipes.transfer`,
  :mod:`.recipes.soc` and :mod:`.recipes.moisture`.

Two read paths: point samples (``getInfo`` of ``sampleRegions`` batches, :func:`.sampling.
download`, cached per batch) for chapters 1 and 2 and chapter 3's climate series; pixel grids
(``computePixels``, :mod:`.pixels`) for chapter 3's patches and chapter 4's tiles. ``xee`` (the
xarray backend for Earth Engine) is not used: the pixel engine already splits, retries and
caches, and a whole-area read for a map is :func:`.scene.lazy_image` (dask, block by block) into
:mod:`soilbook.lazymaps`.

Request builders need an *initialised* ``ee`` (a live session, or the offline
``ee.apitestcase.ApiTestCase`` harness the tests use) because ``ee`` checks its function
signatures at build time; each checks its arguments first and raises a
:class:`~soilbook.errors.ParameterError` (a ``ValueError``) that says what was wrong and what
to do. Only :func:`extract` (and so :func:`extract_salinity_inputs`) talks to the server.
The choices behind the layers (cloud mask, reflectance scale, wetness proxy) are written down in
:mod:`.layers`, those behind sampling (grid, masked pixels) in :mod:`.sampling`.
"""

from __future__ import annotations

from soilbook.data.earthengine.catalogue import (
    COLLECTIONS,
    COVERAGE,
    DEFAULT_BANDS,
    EARTH_ENGINE_CITATION,
    ERA5_LAND_DAILY,
    FILL_VALUE,
    GLO30,
    HYPERION,
    LANDSAT8_L2,
    LANDSAT9_L2,
    LAYER_INFO,
    MCD15A3H,
    MCD15A3H_FIRST_DAY,
    PATCH_VALUES_PER_BATCH,
    POINT_BATCH,
    S1_GRD,
    S2_CLOUD_PROBABILITY,
    S2_SR,
    S2_SR_FIRST_DAY,
    S2_WAVELENGTHS_NM,
    SCL_CLOUD_SHADOW,
    SMAP_L4,
    TERRACLIMATE,
    Coverage,
    dated,
    patch_name,
)
from soilbook.data.earthengine.checks import (
    check_bands,
    check_bbox,
    check_cloud_prob_max,
    check_coverage,
    check_dates,
    check_points,
    check_window,
    points_bbox,
    points_crs,
    utm_crs,
)
from soilbook.data.earthengine.convert import spatial_block_groups, to_samples
from soilbook.data.earthengine.layers import (
    crop_layers,
    sentinel2_composites,
    sentinel2_stack,
    sentinel2_window_composites,
    spectral_index_layers,
    terrain_layers,
)
from soilbook.data.earthengine.pixels import (
    MAX_BANDS,
    MAX_BYTES,
    MAX_SIDE,
    MAX_TOTAL_VALUES,
    MAX_WORKERS,
    EarthEngineTransport,
    Piece,
    PixelGrid,
    RateLimiter,
    RetryableRequestError,
    Transport,
    backoff_delay,
    expression_key,
    fetch_image,
    fetch_patches,
    grid_around,
    grid_for_bbox,
    plan_pieces,
)
from soilbook.data.earthengine.points import parse_aoi, read_points
from soilbook.data.earthengine.recipes.salinity import (
    SALINITY_COLLECTIONS,
    SalinityRequest,
    build_salinity_request,
    extract_salinity_inputs,
    pixel_features,
    salinity_pixel_image,
    salinity_pixel_names,
)
from soilbook.data.earthengine.request import Request, extract
from soilbook.data.earthengine.sampling import (
    patch_request,
    point_values_request,
    points_to_features,
)
from soilbook.data.earthengine.scene import area_grid, check_aoi, lazy_image
from soilbook.data.earthengine.session import (
    HIGH_VOLUME_URL,
    PROJECT_ENV,
    CredentialSource,
    find_credentials,
    initialize,
)
from soilbook.errors import EarthEngineSetupError

__all__ = [
    "COLLECTIONS",
    "COVERAGE",
    "DEFAULT_BANDS",
    "EARTH_ENGINE_CITATION",
    "ERA5_LAND_DAILY",
    "FILL_VALUE",
    "GLO30",
    "HIGH_VOLUME_URL",
    "HYPERION",
    "LANDSAT8_L2",
    "LANDSAT9_L2",
    "LAYER_INFO",
    "MAX_BANDS",
    "MAX_BYTES",
    "MAX_SIDE",
    "MAX_TOTAL_VALUES",
    "MAX_WORKERS",
    "MCD15A3H",
    "MCD15A3H_FIRST_DAY",
    "PATCH_VALUES_PER_BATCH",
    "POINT_BATCH",
    "PROJECT_ENV",
    "S1_GRD",
    "S2_CLOUD_PROBABILITY",
    "S2_SR",
    "S2_SR_FIRST_DAY",
    "S2_WAVELENGTHS_NM",
    "SALINITY_COLLECTIONS",
    "SCL_CLOUD_SHADOW",
    "SMAP_L4",
    "TERRACLIMATE",
    "Coverage",
    "CredentialSource",
    "EarthEngineSetupError",
    "EarthEngineTransport",
    "Piece",
    "PixelGrid",
    "RateLimiter",
    "Request",
    "RetryableRequestError",
    "SalinityRequest",
    "Transport",
    "area_grid",
    "backoff_delay",
    "build_salinity_request",
    "check_aoi",
    "check_bands",
    "check_bbox",
    "check_cloud_prob_max",
    "check_coverage",
    "check_dates",
    "check_points",
    "check_window",
    "crop_layers",
    "dated",
    "expression_key",
    "extract",
    "extract_salinity_inputs",
    "fetch_image",
    "fetch_patches",
    "find_credentials",
    "grid_around",
    "grid_for_bbox",
    "initialize",
    "lazy_image",
    "parse_aoi",
    "patch_name",
    "patch_request",
    "pixel_features",
    "plan_pieces",
    "point_values_request",
    "points_bbox",
    "points_crs",
    "points_to_features",
    "read_points",
    "salinity_pixel_image",
    "salinity_pixel_names",
    "sentinel2_composites",
    "sentinel2_stack",
    "sentinel2_window_composites",
    "spatial_block_groups",
    "spectral_index_layers",
    "terrain_layers",
    "to_samples",
    "utm_crs",
]
