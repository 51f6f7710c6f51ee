"""Google's soil-moisture retrieval data as chapter-4 tiles and in-situ readings.

The data
--------
Batchu, V., Nearing, G. & Gulshan, V. (2023). A deep learning data fusion model using
Sentinel-1/2, SoilGrids, SMAP, and GLDAS for soil moisture retrieval. *Journal of
Hydrometeorology* 24(10), 1789-1823, doi:10.1175/JHM-D-22-0118.1. Code and data description:
github.com/google-research/google-research, folder ``soil_moisture_retrieval`` (README.md,
``run_inference.py``, ``combine_ismn_data.py``).

- **Location**: Google Cloud Storage bucket ``eoscience-public``, folder
  ``soil_moisture_retrieval_data``: 500 shards
  ``https://storage.googleapis.com/eoscience-public/soil_moisture_retrieval_data/data-NNNNN-of-00500.tfrecord.gz``
  (``NNNNN`` = 00000 … 00499), licence file ``…/soil_moisture_retrieval_data/LICENSE.md``.
- **Licence**: CC-BY 4.0 (cite the paper above).
- **Format**: GZIP TFRecord of ``tf.train.Example`` (read here by
  :mod:`soilbook.data.real.tfrecord`, no TensorFlow). One example = one in-situ sensor at one
  time: image features are int64 lists of ``size × size`` (512 × 512) values, row-major, with
  the sensor at the centre (``center_lat`` / ``center_long`` are the sensor's coordinates);
  scalars ``sensor_id`` (bytes, ``<NETWORK>__<STATION>__<SENSOR_TYPE>``), ``timestamp``
  (float, milliseconds since 1970-01-01 UTC), ``smap_sm`` and ``gldas_sm`` (int64, 0-255
  scaled), ``sm_0_5`` (float, in-situ 0-5 cm soil moisture in m³/m³).
- **Partial labels**: ``sm_0_5`` is present only for non-ISMN sensors (the SMAP core
  validation sites the authors could redistribute); ISMN terms forbid redistribution, so ISMN
  readings must come from the user's own ISMN download (:mod:`soilbook.data.real.ismn`, joined
  by :func:`readings_from_stations`).
- Published skill of the authors' model: ubRMSE 0.055 m³/m³, per-sensor correlation 0.707.

Scaling, what is documented and what is not
-------------------------------------------
The bands are stored as integers "scaled 0-255". The only scales the authors document (in
``run_inference.py``) are: the **DEM is not normalised** (``nasa_dem_elevation`` in metres;
their model itself rescales 0-3000 m to 0-255), and ``smap_sm`` / ``gldas_sm`` are divided by
255 before entering their model. The physical ranges behind the Sentinel-1 (dB, degrees),
Sentinel-2 (reflectance), GLDAS and SoilGrids 0-255 values are **not** published, so those
channels are kept as stored with ``units`` ``"1 (0-255 scaled)"`` (:data:`SCALED_UNITS`): fine
for networks and trees after standardisation, not comparable with physical dB or reflectance.
The tile set says so in ``attrs["scaling_note"]``.

Channels (the default key mapping, :data:`DEFAULT_CHANNELS`)
------------------------------------------------------------
=============  =============================  ==========  ==================  =================
channel        feature key                    group       units               missing pixels
=============  =============================  ==========  ==================  =================
VV, VH         sentinel_1_VV, sentinel_1_VH   sar         1 (0-255 scaled)    value 0
angle          sentinel_1_angle               sar         1 (0-255 scaled)    value 0
B2 … B8        sentinel_2_B2 … sentinel_2_B8  spectral    1 (0-255 scaled)    value 0
B11, B12       sentinel_2_B11, _B12           spectral    1 (0-255 scaled)    value 0
elevation      nasa_dem_elevation             terrain     m                   none
rainfall       gldas_rainfall                 climate     1 (0-255 scaled)    none
temperature    gldas_temp                     climate     1 (0-255 scaled)    none
evaporation    gldas_evaporation              climate     1 (0-255 scaled)    none
doy_sin/cos    (derived from ``timestamp``)   time        1                   none
=============  =============================  ==========  ==================  =================

"value 0" as the no-data rule is **inferred**: the authors' reader uses 0 as its placeholder
where data is not available. The dataset also has a ``sentinel_2_sen_2_mask`` feature whose
meaning is not documented, so it is not used by default (a :class:`Channel` can name a
``mask_key``). Optional tables: :data:`SOILGRIDS_CHANNELS` (sand, silt, clay, bulk density →
group "soil") and :data:`COARSE_PRODUCT_CHANNELS` (``smap_sm``, ``gldas_sm`` → "climate").
The coarse soil-moisture products are **not** inputs by default: chapter 4 uses a coarse
product as the stage-1 label, and the same product as an input would leak it. Pass
``coarse_key="smap_sm"`` to make it the dense ``coarse`` label instead (a scalar per
example, so a constant over the tile), with the scale you assume (``coarse_scale``, vol % per
stored unit; e.g. 100/255 if 255 stands for 1 m³/m³ — an assumption the authors' division by
255 suggests but does not state).

Feature keys are parameters: if the public shards name a feature differently, pass your own
``channels`` (a sequence of :class:`Channel`) and ``keys`` (see :data:`DEFAULT_KEYS`); a
missing required key raises :class:`~soilbook.errors.SchemaError` listing the keys found.

Geometry: ``pixel_size_m`` defaults to 10 m (*inferred*: the Sentinel-2 10-m grid; the README
states no pixel size); the sensor's pixel is the centre ``(size // 2, size // 2)``; ``window``
crops a centred square (the authors' model crops 256 × 256) to bound memory: a 512 × 512 tile
of the 17 default channels is 18 MB as float32.

Public API: :class:`Channel`, :data:`DEFAULT_CHANNELS`, :data:`SOILGRIDS_CHANNELS`,
:data:`COARSE_PRODUCT_CHANNELS`, :data:`DEFAULT_KEYS`, :data:`SHARD_URL`,
:func:`shard_url`, :func:`examples_to_tiles`, :func:`load_sm_retrieval`,
:func:`readings_from_stations`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.real.tfrecord import read_examples
from soilbook.data.schema import FEATURE_GROUPS, sample_set, tile_set
from soilbook.errors import ParameterError, SchemaError

__all__ = [
    "CITATION",
    "COARSE_PRODUCT_CHANNELS",
    "DEFAULT_CHANNELS",
    "DEFAULT_KEYS",
    "LICENCE",
    "SCALED_UNITS",
    "SHARD_URL",
    "SOILGRIDS_CHANNELS",
    "SOURCE",
    "Channel",
    "examples_to_tiles",
    "load_sm_retrieval",
    "readings_from_stations",
    "shard_url",
    "site_of",
]

SOURCE = "Google soil-moisture retrieval data (Batchu, Nearing & Gulshan 2023)"
LICENCE = "CC-BY 4.0"
CITATION = (
    "Batchu, V., Nearing, G., & Gulshan, V. (2023). A deep learning data fusion model using "
    "Sentinel-1/2, SoilGrids, SMAP, and GLDAS for soil moisture retrieval. Journal of "
    "Hydrometeorology, 24(10), 1789-1823. doi:10.1175/JHM-D-22-0118.1"
)
#: ``SHARD_URL.format(index=i)`` is shard ``i`` (0-499) of the public data.
SHARD_URL = (
    "https://storage.googleapis.com/eoscience-public/soil_moisture_retrieval_data/"
    "data-{index:05d}-of-00500.tfrecord.gz"
)
N_SHARDS = 500
#: Units of a band kept as the dataset stores it (its physical scale is not published).
SCALED_UNITS = "1 (0-255 scaled)"
#: Name of a derived channel → how it is computed (from the example's timestamp).
_DERIVED = {"doy_sin": "sin(2π·doy/365.25)", "doy_cos": "cos(2π·doy/365.25)"}


@dataclass(frozen=True)
class Channel:
    """One input channel of the tile set and where it comes from.

    Attributes
    ----------
    name : the channel's name in the tile set (``channel`` coordinate)
    key : the feature key in the tf.Example; ``"timestamp"`` for the derived ``doy_sin`` /
        ``doy_cos`` channels
    group : its modality, one of :data:`~soilbook.data.schema.FEATURE_GROUPS`
    units : the unit after ``scale`` / ``offset``
    scale, offset : physical value = ``offset + scale × stored`` (``scale=None``: kept as stored)
    nodata : a stored value meaning "missing" (those pixels get ``valid = 0``), or ``None``
    mask_key : a feature (same size) whose nonzero pixels are the valid ones, or ``None``
    required : a missing key raises (``True``) or gives an all-invalid channel (``False``)
    """

    name: str
    key: str
    group: str
    units: str = SCALED_UNITS
    scale: float | None = None
    offset: float = 0.0
    nodata: float | None = None
    mask_key: str | None = None
    required: bool = True


DEFAULT_CHANNELS: tuple[Channel, ...] = (
    Channel("VV", "sentinel_1_VV", "sar", nodata=0),
    Channel("VH", "sentinel_1_VH", "sar", nodata=0),
    Channel("angle", "sentinel_1_angle", "sar", nodata=0),
    *(
        Channel(b, f"sentinel_2_{b}", "spectral", nodata=0)
        for b in ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B11", "B12")
    ),
    Channel("elevation", "nasa_dem_elevation", "terrain", units="m", scale=1.0),
    Channel("rainfall", "gldas_rainfall", "climate"),
    Channel("temperature", "gldas_temp", "climate"),
    Channel("evaporation", "gldas_evaporation", "climate"),
    Channel("doy_sin", "timestamp", "time", units="1"),
    Channel("doy_cos", "timestamp", "time", units="1"),
)
SOILGRIDS_CHANNELS: tuple[Channel, ...] = (
    Channel("sand", "soil_grids_sand_sand_0-5cm_mean", "soil"),
    Channel("silt", "soil_grids_silt_silt_0-5cm_mean", "soil"),
    Channel("clay", "soil_grids_clay_clay_0-5cm_mean", "soil"),
    Channel("bulk_density", "soil_grids_bd_bdod_0-5cm_mean", "soil"),
)
COARSE_PRODUCT_CHANNELS: tuple[Channel, ...] = (
    Channel("smap_sm", "smap_sm", "climate"),
    Channel("gldas_sm", "gldas_sm", "climate"),
)
#: Role → feature key of the scalar properties. ``station`` and ``time`` are required;
#: ``lat`` / ``lon`` / ``size`` are used when present; ``label`` (m³/m³) is optional per
#: example, ``label_fallback`` is used where ``label`` is missing or 0 (as the authors do).
DEFAULT_KEYS: Mapping[str, str] = {
    "station": "sensor_id",
    "time": "timestamp",
    "lat": "center_lat",
    "lon": "center_long",
    "size": "size",
    "label": "sm_0_5",
    "label_fallback": "sm_5_5",
}


def shard_url(index: int) -> str:
    """The public URL of shard ``index`` (0-499)."""
    if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < N_SHARDS:
        raise ParameterError(
            f"shard index {index!r} is not allowed. Allowed: integers 0 … {N_SHARDS - 1}. "
            "What to do: pick a shard in that range."
        )
    return SHARD_URL.format(index=int(index))


# --------------------------------------------------------------------------- helpers


def _missing_key(key: str, need: str, example: Mapping[str, Any], index: int) -> SchemaError:
    found = sorted(example)
    return SchemaError(
        f"example {index} has no feature '{key}' (needed for {need}). Keys found "
        f"({len(found)}): {found}. Expected: the keys of DEFAULT_CHANNELS / DEFAULT_KEYS in "
        "soilbook.data.real.sm_retrieval. What to do: pass channels=[Channel(name, key, "
        "group, ...)] and keys={role: key} naming the features of your files, or "
        "Channel(..., required=False) to accept a missing channel as all-invalid."
    )


def _scalar(value: Any) -> Any:
    """The first value of a decoded feature (bytes → str), or ``None`` when empty."""
    if isinstance(value, list):
        return value[0].decode("utf-8", "replace") if value else None
    arr = np.asarray(value)
    return arr.ravel()[0].item() if arr.size else None


def _as_image(value: Any, size: int, what: str, index: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size == 1:  # a scalar (e.g. GLDAS at the sensor): constant over the tile
        return np.full((size, size), arr[0])
    if arr.size != size * size:
        raise SchemaError(
            f"example {index}: feature '{what}' has {arr.size} values. Expected: 1 (a scalar) "
            f"or size × size = {size * size}. What to do: check the 'size' key, or drop this "
            "channel."
        )
    return arr.reshape(size, size)


def _example_size(example: Mapping[str, Any], keys: Mapping[str, str], channels, index: int) -> int:
    size = _scalar(example.get(keys.get("size", ""), []))
    if size is not None:
        return int(size)
    for ch in channels:
        if ch.key in example and ch.key != keys["time"]:
            n = np.asarray(example[ch.key]).size
            side = round(float(np.sqrt(n)))
            if n > 1 and side * side == n:
                return side
    raise SchemaError(
        f"example {index} has no 'size' feature and no square image to infer it from. "
        f"Keys found: {sorted(example)}. What to do: pass keys={{'size': <key>}}."
    )


def _timestamp(example: Mapping[str, Any], keys: Mapping[str, str], index: int) -> np.datetime64:
    ms = _scalar(example.get(keys["time"], []))
    if ms is None:
        raise _missing_key(keys["time"], "the acquisition time", example, index)
    return np.datetime64(round(float(ms)), "ms")


def _check_channels(channels: Sequence[Channel]) -> list[Channel]:
    chans = list(channels)
    if not chans or not all(isinstance(c, Channel) for c in chans):
        raise ParameterError(
            "channels must be a non-empty sequence of Channel. What to do: start from "
            "DEFAULT_CHANNELS (+ SOILGRIDS_CHANNELS) and edit it."
        )
    names = [c.name for c in chans]
    dupes = sorted({n for n in names if names.count(n) > 1})
    bad = sorted({c.group for c in chans} - set(FEATURE_GROUPS))
    if dupes or bad:
        raise ParameterError(
            f"channels have duplicate names {dupes} or unknown groups {bad}. Allowed groups: "
            f"{FEATURE_GROUPS}. What to do: give each channel a unique name and a known group."
        )
    for c in chans:
        if c.key == DEFAULT_KEYS["time"] and c.name not in _DERIVED:
            raise ParameterError(
                f"channel '{c.name}' reads the timestamp; only {sorted(_DERIVED)} are derived "
                "from it. What to do: rename the channel or give another key."
            )
    return chans


def _crop(size: int, window: int | None) -> slice:
    """The centred crop of at most ``window`` pixels of a ``size``-pixel tile (None: all)."""
    if window is None:
        return slice(0, size)
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ParameterError(
            f"window={window!r} is not a window side. Allowed: None or an integer >= 1 (a tile "
            f"smaller than the window is kept whole). What to do: pass e.g. 256."
        )
    window = min(int(window), size)
    start = (size - int(window)) // 2
    return slice(start, start + int(window))


def _channel_plane(
    ch: Channel, example: Mapping[str, Any], size: int, when: np.datetime64, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """(value, valid) planes (size, size) of one channel of one example."""
    if ch.name in _DERIVED:
        doy = (when - when.astype("datetime64[Y]")).astype("timedelta64[D]").astype(int) + 1
        angle = 2 * np.pi * doy / 365.25
        v = np.sin(angle) if ch.name == "doy_sin" else np.cos(angle)
        return np.full((size, size), v), np.ones((size, size), dtype=bool)
    if ch.key not in example:
        if ch.required:
            raise _missing_key(ch.key, f"channel '{ch.name}'", example, index)
        return np.zeros((size, size)), np.zeros((size, size), dtype=bool)
    raw = _as_image(example[ch.key], size, ch.key, index)
    valid = np.isfinite(raw)
    if ch.nodata is not None:
        valid &= raw != ch.nodata
    if ch.mask_key is not None:
        if ch.mask_key not in example:
            raise _missing_key(ch.mask_key, f"the mask of channel '{ch.name}'", example, index)
        valid &= _as_image(example[ch.mask_key], size, ch.mask_key, index) != 0
    value = raw if ch.scale is None else ch.offset + ch.scale * raw
    return np.where(valid, value, 0.0), valid


def _pixel_values(inputs: np.ndarray, valid: np.ndarray, t, r, c) -> np.ndarray:
    """(n, channel) input values at the given pixels, NaN where invalid."""
    x = inputs[t, :, r, c].astype(np.float64)
    return np.where(valid[t, :, r, c].astype(bool), x, np.nan)


def site_of(sensor_id: str) -> str:
    """The site of a sensor id ``NETWORK__STATION__SENSOR``: ``NETWORK__STATION`` (the id itself
    when it has fewer parts). Sensors of one site share their image, so the site is the unit of
    a held-out-tile split (``location`` of the tiles, ``group`` of the readings)."""
    parts = str(sensor_id).split("__")
    return "__".join(parts[:2]) if len(parts) >= 2 else str(sensor_id)


def _readings(
    tiles: xr.Dataset,
    t: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    vol_pct: np.ndarray,
    stations: Sequence[str],
    times: Sequence[Any],
    long_name: str,
    **attrs: Any,
) -> xr.Dataset:
    """A readings sample set pointing into ``tiles`` (schema: sparse point labels on tiles)."""
    t, r, c = (np.asarray(a, dtype=np.int64) for a in (t, r, c))
    names = [str(v) for v in tiles["channel"].values]
    groups = [str(v) for v in tiles["channel_group"].values]
    x = _pixel_values(tiles["inputs"].values, tiles["valid"].values, t, r, c)
    lat = tiles["center_lat"].values[t] if "center_lat" in tiles.coords else None
    lon = tiles["center_lon"].values[t] if "center_lon" in tiles.coords else None
    return sample_set(
        np.asarray(vol_pct, dtype=np.float64),
        groups=np.asarray([site_of(s) for s in stations], dtype=object),
        group_long_name="in-situ site (NETWORK__STATION: every sensor and image of it)",
        source=tiles.attrs["source"],
        licence=tiles.attrs["licence"],
        citation=tiles.attrs["citation"],
        simulated=False,
        target_units="%",
        target_long_name="volumetric soil moisture 0-5 cm (in situ)",
        covariates=x.reshape(len(t), len(names)),
        features=list(zip(names, groups, strict=True)),
        feature_units=[str(u) for u in tiles["channel_units"].values],
        covariate_long_name="input channels at the station pixel (NaN where not observed)",
        lat=lat,
        lon=lon,
        coords={
            "tile": ("sample", t),
            "row": ("sample", r),
            "col": ("sample", c),
            "location": ("sample", tiles["location"].values[t].astype(str)),
            "station": ("sample", np.asarray([str(v) for v in stations])),
            "reading_time": ("sample", np.asarray(times, dtype="datetime64[ns]")),
        },
        target_name="sm_0_5",
        label_kind=long_name,
        **attrs,
    )


# --------------------------------------------------------------------------- the conversion


def examples_to_tiles(
    examples: Iterable[Mapping[str, Any]],
    *,
    channels: Sequence[Channel] = DEFAULT_CHANNELS,
    keys: Mapping[str, str] | None = None,
    window: int | None = None,
    pixel_size_m: float = 10.0,
    label_pixel: tuple[int, int] | None = None,
    coarse_key: str | None = None,
    coarse_scale: float | None = None,
    source: str = SOURCE,
    licence: str = LICENCE,
    citation: str = CITATION,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Decoded examples (:func:`~soilbook.data.real.tfrecord.read_examples`) → chapter-4 data.

    Parameters
    ----------
    examples : mappings key → decoded feature, one per tile (sensor × time)
    channels : the input channels and their feature keys (default :data:`DEFAULT_CHANNELS`)
    keys : role → feature key of the scalar properties, merged over :data:`DEFAULT_KEYS`
    window : crop a centred square of at most ``window`` pixels of each tile (a smaller tile
        is kept whole), or ``None`` for the whole tile
    pixel_size_m : the pixel side in metres (default 10, inferred — module docstring)
    label_pixel : (row, col) of the in-situ sensor in the *uncropped* tile; default the centre
        ``(size // 2, size // 2)``
    coarse_key, coarse_scale : a feature to use as the dense ``coarse`` label and its scale
        in vol % per stored unit (required with ``coarse_key``; no default, see module
        docstring); the coarse mask is 1 where the stored value is finite and not 0
    source, licence, citation : the attributes of both outputs

    Returns
    -------
    tiles : a tile set (:func:`~soilbook.data.schema.tile_set`): ``inputs`` / ``valid``
        (tile, channel, y, x), coordinates ``location`` and ``station`` (the sensor id),
        ``date``, ``center_lat`` / ``center_lon`` (degrees, NaN when absent), optionally
        ``coarse`` / ``coarse_mask`` in vol %
    readings : a sample set of the in-situ labels (``target`` = 100 × ``sm_0_5`` in vol %)
        with ``tile`` / ``row`` / ``col`` into ``tiles``, ``group`` = station, ``covariates``
        = the inputs at the station pixel (NaN where not observed). Examples without a label
        (missing, 0 or NaN, as for ISMN sensors in the public shards) give no reading; labels
        outside 0-1 m³/m³ are dropped and counted in ``attrs["readings_dropped_out_of_range"]``.

    Raises :class:`SchemaError` when a required key is missing (listing the keys found) or
    the examples disagree in size, :class:`ParameterError` for bad arguments.
    """
    chans = _check_channels(channels)
    roles = {**DEFAULT_KEYS, **dict(keys or {})}
    if coarse_key is not None and (coarse_scale is None or not np.isfinite(coarse_scale)):
        raise ParameterError(
            f"coarse_key={coarse_key!r} needs coarse_scale (vol % per stored unit): the "
            "dataset does not document the scale of its coarse products. What to do: pass "
            "the scale you assume, e.g. coarse_scale=100/255 if 255 stands for 1 m³/m³, and "
            "say so where you report results."
        )
    planes: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    coarse: list[np.ndarray] = []
    stations: list[str] = []
    dates: list[np.datetime64] = []
    lats: list[float] = []
    lons: list[float] = []
    labels: list[float] = []
    size0: int | None = None
    crop = slice(0)
    for index, example in enumerate(examples):
        size = _example_size(example, roles, chans, index)
        if size0 is None:
            size0, crop = size, _crop(size, window)
        elif size != size0:
            raise SchemaError(
                f"example {index} is {size} × {size} pixels, the first was {size0} × {size0}. "
                "Expected: one tile size per tile set. What to do: read shards of one size, "
                "or pass window= smaller than the smallest tile."
            )
        station = _scalar(example.get(roles["station"], []))
        if station is None:
            raise _missing_key(roles["station"], "the station (sensor id)", example, index)
        when = _timestamp(example, roles, index)
        vals, vmask = zip(
            *(_channel_plane(ch, example, size, when, index) for ch in chans), strict=True
        )
        planes.append(np.stack(vals)[:, crop, crop].astype(np.float32))
        masks.append(np.stack(vmask)[:, crop, crop])
        if coarse_key is not None:
            if coarse_key not in example:
                raise _missing_key(coarse_key, "the coarse label", example, index)
            raw = _as_image(example[coarse_key], size, coarse_key, index)[crop, crop]
            ok = np.isfinite(raw) & (raw != 0)
            coarse.append(np.where(ok, raw * float(coarse_scale), np.nan))
        stations.append(str(station))
        dates.append(when)
        lat = _scalar(example.get(roles.get("lat", ""), []))
        lon = _scalar(example.get(roles.get("lon", ""), []))
        lats.append(np.nan if lat is None else float(lat))
        lons.append(np.nan if lon is None else float(lon))
        label = _scalar(example.get(roles.get("label", ""), []))
        if label is None or label == 0 or not np.isfinite(label):
            label = _scalar(example.get(roles.get("label_fallback", ""), []))
        labels.append(np.nan if label is None or label == 0 else float(label))
    if size0 is None:
        raise SchemaError(
            "no examples were given. Expected: at least one tf.Example. What to do: check the "
            "paths and limit= of load_sm_retrieval."
        )
    n = len(planes)
    side = crop.stop - crop.start
    if label_pixel is None:
        label_pixel = (size0 // 2, size0 // 2)
    row, col = label_pixel[0] - crop.start, label_pixel[1] - crop.start
    if not (0 <= row < side and 0 <= col < side):
        raise ParameterError(
            f"label_pixel={label_pixel} lies outside the {side}-pixel window. What to do: use "
            "a larger window, or None for the tile's centre."
        )
    scaled = [c.name for c in chans if c.units == SCALED_UNITS]
    tiles = tile_set(
        np.stack(planes),
        np.stack(masks),
        channels=[(c.name, c.group) for c in chans],
        channel_units=[c.units for c in chans],
        locations=[site_of(v) for v in stations],
        source=source,
        licence=licence,
        citation=citation,
        simulated=False,
        pixel_size_m=pixel_size_m,
        coarse=np.stack(coarse) if coarse else None,
        label_units="%",
        coarse_long_name=f"coarse soil moisture from '{coarse_key}' (× {coarse_scale} %)",
        dates=dates,
        coords={
            "station": ("tile", np.asarray(stations, dtype=str)),
            "center_lat": ("tile", np.asarray(lats, dtype=float), {"units": "degrees_north"}),
            "center_lon": ("tile", np.asarray(lons, dtype=float), {"units": "degrees_east"}),
            "channel_key": ("channel", [c.key for c in chans]),
        },
        scaling_note=(
            f"channels {scaled} are kept as stored (0-255 scaled; the dataset does not publish "
            "their physical ranges); 'elevation' is in metres as published; doy_sin/doy_cos "
            "are derived from the timestamp"
        ),
        pixel_size_note="10 m inferred (Sentinel-2 grid), not stated by the dataset"
        if pixel_size_m == 10.0
        else "as given",
        window_pixels=int(side),
    )
    m3 = np.asarray(labels, dtype=np.float64)
    has = np.isfinite(m3)
    in_range = has & (m3 > 0) & (m3 <= 1)
    keep = np.flatnonzero(in_range)
    readings = _readings(
        tiles,
        keep,
        np.full(keep.size, row),
        np.full(keep.size, col),
        100.0 * m3[keep],
        [stations[i] for i in keep],
        [dates[i] for i in keep],
        f"in-situ '{roles['label']}' of the tf.Examples (m³/m³ × 100)",
        readings_dropped_out_of_range=int((has & ~in_range).sum()),
        readings_unlabelled=int((~has).sum()),
    )
    if n and not keep.size:
        readings.attrs["note"] = (
            "no example carries a label: the public shards omit ISMN sensors; join your ISMN "
            "download with readings_from_stations"
        )
    return tiles, readings


def load_sm_retrieval(
    paths: str | Path | Sequence[str | Path],
    *,
    limit: int | None = None,
    channels: Sequence[Channel] = DEFAULT_CHANNELS,
    keys: Mapping[str, str] | None = None,
    window: int | None = None,
    pixel_size_m: float = 10.0,
    coarse_key: str | None = None,
    coarse_scale: float | None = None,
    verify: bool = True,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Read shards (``.tfrecord.gz`` files) and convert them with :func:`examples_to_tiles`.

    Only the features the channels and keys need are decoded. ``limit`` bounds the number of
    examples (tiles) read in all; ``verify`` checks the records' CRCs. Returns ``(tiles,
    readings)``; raises as :func:`examples_to_tiles` and, on a corrupt file,
    :class:`~soilbook.errors.ChecksumError` naming the file and record.
    """
    chans = _check_channels(channels)
    roles = {**DEFAULT_KEYS, **dict(keys or {})}
    wanted = (
        {c.key for c in chans} | {c.mask_key for c in chans if c.mask_key} | set(roles.values())
    )
    if coarse_key is not None:
        wanted.add(coarse_key)
    examples = read_examples(paths, keys=wanted, limit=limit, verify=verify)
    return examples_to_tiles(
        examples,
        channels=chans,
        keys=roles,
        window=window,
        pixel_size_m=pixel_size_m,
        coarse_key=coarse_key,
        coarse_scale=coarse_scale,
    )


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def readings_from_stations(
    tiles: xr.Dataset,
    stations: pd.DataFrame,
    *,
    tolerance: str | pd.Timedelta = "3min",
    label_pixel: tuple[int, int] | None = None,
) -> xr.Dataset:
    """Readings for ``tiles`` from a station table (e.g. :func:`soilbook.data.real.ismn.read_ismn`).

    Each tile's ``station`` (``<NETWORK>__<STATION>__<SENSOR_TYPE>``) is matched to the rows
    of ``stations`` with the same ``network`` and ``station`` (compared lower-case, letters and
    digits only, since the shards and ISMN spell names differently), and its ``date`` to the
    nearest ``time`` within ``tolerance`` (the authors matched within ±3 min). A tile without a
    match gets no reading.

    ``stations`` needs the columns ``network``, ``station``, ``time`` and ``sm_0_5`` (vol %).
    The reading sits at ``label_pixel`` (row, col in the tile set's pixels; default the
    centre). Returns a readings sample set as :func:`examples_to_tiles` makes.
    """
    need = ("network", "station", "time", "sm_0_5")
    missing = [c for c in need if c not in stations.columns]
    if missing:
        raise SchemaError(
            f"the station table has no column(s) {missing}; it has {list(stations.columns)}. "
            f"Expected: {list(need)} (sm_0_5 in vol %). What to do: build it with "
            "soilbook.data.real.ismn.read_ismn or rename your columns."
        )
    if "station" not in tiles.coords or "date" not in tiles.coords:
        raise SchemaError(
            "the tile set has no 'station' or 'date' coordinate. Expected: tiles made by "
            "examples_to_tiles. What to do: add both (tile) coordinates."
        )
    tol = pd.Timedelta(tolerance)
    table = stations.assign(
        _key=[
            f"{_normalise(a)}|{_normalise(b)}"
            for a, b in zip(stations["network"], stations["station"], strict=True)
        ],
        _time=pd.to_datetime(stations["time"]),
    ).sort_values("_time")
    by_key = {k: g for k, g in table.groupby("_key")}
    ny, nx = tiles.sizes["y"], tiles.sizes["x"]
    row, col = label_pixel if label_pixel is not None else (ny // 2, nx // 2)
    t_idx: list[int] = []
    values: list[float] = []
    names: list[str] = []
    times: list[Any] = []
    for i, (sid, when) in enumerate(
        zip(tiles["station"].values, tiles["date"].values, strict=True)
    ):
        parts = str(sid).split("__")
        if len(parts) < 2:
            continue
        group = by_key.get(f"{_normalise(parts[0])}|{_normalise(parts[1])}")
        if group is None:
            continue
        gap = (group["_time"] - pd.Timestamp(when)).abs()
        j = int(np.argmin(gap.to_numpy()))
        if gap.iloc[j] > tol or not np.isfinite(group["sm_0_5"].iloc[j]):
            continue
        t_idx.append(i)
        values.append(float(group["sm_0_5"].iloc[j]))
        names.append(str(sid))
        times.append(group["_time"].iloc[j].to_datetime64())
    n = len(t_idx)
    return _readings(
        tiles,
        np.asarray(t_idx, dtype=np.int64),
        np.full(n, row),
        np.full(n, col),
        np.asarray(values),
        names,
        times,
        "station table matched by network/station and time",
        match_tolerance=str(tol),
        tiles_without_reading=int(tiles.sizes["tile"] - n),
    )
