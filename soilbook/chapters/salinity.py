"""Chapter 1 — SS-SoilNet: soil salinity from Sentinel-2 time series and environmental layers.

The notebook ``notebooks/01_salinity_ss_soilnet.ipynb``: its parameters (:data:`PARAMS`), the
checks of the whole set (:func:`check`) and its data (:func:`load_data`, over
:func:`soilbook.data.sources.load`), gathered in :data:`CHAPTER`.

Besides the source arguments, :func:`check` refuses, before any data are simulated:

- a ``window`` that is even or does not fit in the scene, ``heads`` that do not divide
  ``width``, a ``block_size`` that is neither ``"auto"`` nor a positive number of metres;
- simulated data: more ``n_samples`` than the scene holds (:func:`sample_capacity`), scene /
  map sizes whose memory (:func:`memory_estimate`) exceeds what the machine has free, more
  ``cv_folds`` than a numeric ``block_size`` gives blocks, a ``buffer_m`` half as wide as the scene;
- your file (``data_source="file"``, a CSV): what :func:`soilbook.data.real.userfile.
  describe_header` refuses (no target, no group or coordinates — ``x`` / ``y`` need ``crs`` —,
  no predictor once identifier columns are excluded), a ``crs`` pyproj does not know,
  coordinates that are not degrees, and more ``cv_folds`` than the file has groups or spatial
  blocks (its group / coordinate columns are read for that). A table without spectral inputs
  is not refused: a warning says that only RF and SVR will run (:func:`models_for`).

What each model needs (:data:`MODEL_NEEDS`, also in ``--help-params``): RF and SVR use any
numeric predictor; SS-SoilNet and its concat variant need spectral inputs (reflectance bands, or
covariates in the ``spectral`` / ``vegetation`` groups) *and* a spatial input (patches, or for
point data the other covariates); the spectral-only variant needs spectral inputs only.
:func:`models_for` says, for a loaded sample set, which models can run and why the others are
skipped, so a run on a table of lab properties goes on with the baselines.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from soilbook.chapters.common import (
    SPECTRA_KINDS,
    Chapter,
    Param,
    available_memory_bytes,
    check_heads_divide_width,
    gib,
    shared_params,
)
from soilbook.chapters.earthengine import EARTHENGINE, EARTHENGINE_PARAMS
from soilbook.errors import ParameterError

KEY = "01_salinity_ss_soilnet"

#: The chapter's models, by the names the notebook and its tables use.
MODEL_NAMES = ("RF", "SVR", "SS-SoilNet", "SS-SoilNet (concat)", "SS-SoilNet (spectral only)")
#: The fusion of each network model (:class:`soilbook.models.ss_soilnet.SSSoilNetRegressor`).
NETWORK_FUSIONS = {
    "SS-SoilNet": "cross_attention",
    "SS-SoilNet (concat)": "concat",
    "SS-SoilNet (spectral only)": "spectral_only",
}
_SPECTRAL = (
    "spectral inputs: reflectance bands (B01..B12, B8A, refl_<nm> or abs_<nm> columns) or "
    "covariates in the 'spectral' / 'vegetation' groups (e.g. 'vegetation:ndvi')"
)
_SPATIAL = "a spatial input: patches, or (point data) covariates in any other group"
#: What each model needs from the data.
MODEL_NEEDS = {
    "RF": "at least one numeric predictor (reflectance and/or covariates)",
    "SVR": "at least one numeric predictor (reflectance and/or covariates)",
    "SS-SoilNet": f"{_SPECTRAL}, and {_SPATIAL}",
    "SS-SoilNet (concat)": f"{_SPECTRAL}, and {_SPATIAL}",
    "SS-SoilNet (spectral only)": _SPECTRAL,
}
#: Pixel side (m) of the simulated scene.
PIXEL_M = 10.0
#: Largest file whose group / coordinate columns :func:`check` reads to count the groups.
CHECK_READ_BYTES = 200 * 2**20

PARAMS: tuple[Param, ...] = (
    *shared_params(output_dir=f"../_build/outputs/{KEY}"),
    Param(
        "data_source",
        str,
        "simulated",
        "'simulated' (offline scene), 'limesoda' (bundled real data), 'ucrb' (USGS download), "
        "'file' or 'earthengine' (your points, Sentinel-2 + terrain + MODIS from Earth Engine)",
        choices=("simulated", "limesoda", "ucrb", "file", EARTHENGINE),
    ),
    *EARTHENGINE_PARAMS,
    Param("dataset_id", str, "BB.250", "LimeSoDa dataset id (data_source='limesoda')"),
    Param(
        "target",
        str,
        "auto",
        "target variable; 'auto' = the source's default (see soilbook.data.sources)",
    ),
    Param(
        "data_path",
        str,
        "",
        "path of your CSV / NetCDF / Zarr (data_source='file'). RF and SVR use any numeric "
        "predictor column; SS-SoilNet needs spectral inputs (B01..B12 / refl_<nm> / abs_<nm> "
        "columns or 'spectral:' / 'vegetation:' covariates) — without them only RF and SVR "
        "run. Identifier columns (FID, OID_, *_id, *_key, ...) are not predictors",
    ),
    Param(
        "target_units",
        str,
        "",
        "unit of the target in your file (data_source='file'), e.g. 'dS/m'; '' records 'unknown'",
    ),
    Param(
        "crs",
        str,
        "",
        "coordinate reference system of 'x' / 'y' columns in your file, e.g. 'EPSG:32650' "
        "(transformed to lat/lon; not needed with 'lat' / 'lon' in degrees)",
    ),
    Param(
        "spectra_kind",
        str,
        "auto",
        "how your file's spectra are stored: 'auto' (told from the values and names; an "
        "ambiguous table is refused), 'reflectance' (0-1 or x 10000), 'percent' or "
        "'absorbance' (log10(1/R), converted to R = 10^-A)",
        choices=SPECTRA_KINDS,
    ),
    Param(
        "target_transform",
        str,
        "none",
        "fit on the target as it is ('none') or on log1p(target) ('log1p', for skewed targets such as EC)",
        choices=("none", "log1p"),
    ),
    Param(
        "scene_size", int, 160, "simulated scene side in pixels (10 m)", minimum=16, maximum=4000
    ),
    Param("n_samples", int, 360, "number of simulated field samples", minimum=20),
    Param("n_dates", int, 3, "number of simulated Sentinel-2 acquisitions", minimum=1, maximum=24),
    Param(
        "window",
        int,
        15,
        "patch side in pixels around each sample (odd; the paper uses 65)",
        minimum=1,
    ),
    Param("cv_folds", int, 5, "folds of random and spatial-block cross-validation", minimum=2),
    Param(
        "n_seeds",
        int,
        3,
        "network repetitions over seeds (seed, seed+1, ...) for the claims' intervals (full "
        "profile: 5)",
        minimum=1,
        maximum=20,
    ),
    Param(
        "n_jobs",
        int,
        2,
        "worker processes for the cross-validation folds (1 = in this process)",
        minimum=1,
        maximum=64,
    ),
    Param(
        "block_size",
        str,
        "auto",
        "side of the spatial-CV blocks: 'auto' (chosen from the residual variogram) or a "
        "number of metres, e.g. 400 (a file's own 'group' column is kept)",
        accepts_number=True,
    ),
    Param(
        "buffer_m",
        float,
        0.0,
        "spatial CV: drop training samples within this distance (m) of the test block "
        "(0 = no buffer)",
        minimum=0.0,
    ),
    Param("epochs", int, 80, "maximum training epochs per fold", minimum=1),
    Param("batch_size", int, 64, "mini-batch size", minimum=1),
    Param("width", int, 32, "network width (channels / attention dim)", minimum=4),
    Param("heads", int, 4, "attention heads", minimum=1),
    Param("learning_rate", float, 2e-3, "AdamW learning rate", minimum=0.0),
    Param("patience", int, 8, "early-stopping patience in epochs", minimum=1),
    Param("rf_trees", int, 200, "trees in the Random Forest", minimum=1),
    Param("shap_samples", int, 80, "samples explained by SHAP (Kernel SHAP is slow)", minimum=5),
    Param("map_size", int, 160, "side in pixels of the mapped scene (simulated data)", minimum=16),
)

_WIDTH_MIN = next(p.minimum for p in PARAMS if p.name == "width")


# -- how many samples a simulated scene holds --------------------------------------------------


def sample_capacity(scene_size: int) -> int:
    """The most field samples :func:`soilbook.data.scene.sample_scene` can draw from a square
    scene of ``scene_size`` pixels: every pixel once (``scene_size²``).

    The sampler draws pixels uniformly *without replacement* and keeps no margin or minimum
    spacing: a pixel near the border gets its window by mirror padding, so every pixel counts.
    """
    return int(scene_size) ** 2


# -- how much memory a simulated run needs -----------------------------------------------------

#: Bytes of one float32 / float64 value.
_F32, _F64 = 4, 8
#: Process baseline: interpreter, numpy / torch / scikit-learn and the fitted models (about
#: 0.55 GB measured as the peak RSS of the notebook's steps before mapping).
BASE_BYTES = 600 * 2**20
#: Working memory of :func:`soilbook.data.simulate.salinity.simulate_scene` per pixel on top of
#: the arrays it returns: float64 random fields, their FFTs and intermediate maps (measured:
#: peak RSS minus the stored arrays, 410-800 B/pixel on 256²-1024² scenes; rounded up).
SIM_WORK_BYTES_PER_PIXEL = 800
#: Memory per mapped pixel of :func:`soilbook.maps.predict_map` for the network and the Random
#: Forest beyond the scene itself: standardised copies of the reflectance, the covariate cube
#: (13 features), the mirror-padded layers, the predicted maps (float64) and the notebook's
#: difference map and scores (measured about 360 B/pixel on 512²-1024² maps; rounded up).
DENSE_BYTES_PER_PIXEL = 400
#: The tile side in pixels over which SS-SoilNet's ``predict_scene`` convolves at once.
MAP_TILE = 512
#: float32 values alive per tile pixel and network channel while a tile is mapped (conv
#: features, attention logits, the FFT pooling; measured ≈ 13 at width 32 and 64).
ACTIVATIONS_PER_CHANNEL = 16


def scene_bytes_per_pixel(n_dates: int) -> int:
    """Bytes per pixel of the arrays in a simulated scene (:func:`simulate_scene`'s output).

    Per date: the reflectance (one float32 per Sentinel-2 band) and three latent float32 maps
    (``lai``, ``surface_salt``, ``soil_moisture``). Once: the layers (float32 each), ``target``,
    ``groundwater_depth``, ``elevation_true`` (float32), ``parcel``, ``soil_unit`` (int32),
    ``crop`` (int8), ``lat``, ``lon`` (float64). About 221 B/pixel with 3 dates.
    """
    from soilbook.data import spectra
    from soilbook.data.simulate.salinity import LAYER_GROUPS

    n_bands = len(spectra.SENTINEL2.bands)
    per_date = (n_bands + 3) * _F32
    once = (len(LAYER_GROUPS) + 5) * _F32 + 1 + 2 * _F64
    return int(n_dates) * per_date + once


class MemoryEstimate(NamedTuple):
    """Peak memory of a simulated chapter-1 run (bytes) and its largest stage."""

    total: int
    stage: str


def _tile_bytes(map_size: int, width: int, window: int) -> int:
    side = min(int(map_size), MAP_TILE) + int(window) - 1
    return ACTIVATIONS_PER_CHANNEL * _F32 * int(width) * side * side


def memory_estimate(
    scene_size: int, map_size: int, *, n_dates: int, width: int, window: int
) -> MemoryEstimate:
    """Estimated peak memory (bytes) of the notebook on simulated data, by stage.

    The stages: simulating the training scene; simulating the map scene (when ``map_size``
    differs) while the training scene is kept; mapping it with SS-SoilNet and the Random
    Forest (scene arrays + :data:`DENSE_BYTES_PER_PIXEL` + one tile of network activations,
    ``width`` channels). Plus :data:`BASE_BYTES`. An estimate, rounded up on purpose.
    """
    stored = scene_bytes_per_pixel(n_dates)
    scene_px, map_px = int(scene_size) ** 2, int(map_size) ** 2
    same = int(map_size) == int(scene_size)
    stages = {
        f"simulating the {scene_size}² training scene": (stored + SIM_WORK_BYTES_PER_PIXEL)
        * scene_px,
        f"mapping the {map_size}² scene": stored * scene_px
        + (0 if same else stored * map_px)
        + DENSE_BYTES_PER_PIXEL * map_px
        + _tile_bytes(map_size, width, window),
    }
    if not same:
        stages[f"simulating the {map_size}² map scene"] = (
            stored * scene_px + (stored + SIM_WORK_BYTES_PER_PIXEL) * map_px
        )
    stage = max(stages, key=stages.__getitem__)
    return MemoryEstimate(BASE_BYTES + stages[stage], stage)


def _largest_fitting(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest n in [low, high] with ``fits(n)`` (monotone), or None if not even ``low``."""
    if not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def check_memory(p: Mapping[str, Any], available: int | None = None) -> None:
    """Refuse a simulated run whose :func:`memory_estimate` exceeds the free memory.

    ``available`` (bytes) defaults to :func:`~soilbook.chapters.common.available_memory_bytes`;
    where that cannot be told, nothing is refused. The message gives the estimate in GiB, the
    stage that needs it and the largest ``map_size`` (or ``scene_size``) that fits.
    """
    available = available_memory_bytes() if available is None else available
    if available is None:
        return
    args = {"n_dates": p["n_dates"], "width": p["width"], "window": p["window"]}
    need = memory_estimate(p["scene_size"], p["map_size"], **args)
    if need.total <= available:
        return

    def map_fits(m: int) -> bool:
        return memory_estimate(p["scene_size"], m, **args).total <= available

    def scene_fits(s: int) -> bool:
        return memory_estimate(s, min(s, p["map_size"]), **args).total <= available

    low = max(16, p["window"] + 1)
    best_map = _largest_fitting(map_fits, low, p["map_size"])
    if best_map is not None:
        advice = f"use map_size <= {best_map} (keeping scene_size={p['scene_size']})"
    else:
        best_scene = _largest_fitting(scene_fits, low, p["scene_size"])
        advice = (
            f"use scene_size and map_size <= {best_scene}"
            if best_scene is not None
            else "free memory or use a larger machine"
        )
    raise ParameterError(
        f"scene_size={p['scene_size']}, map_size={p['map_size']} need about {gib(need.total)} "
        f"of memory ({need.stage} is the largest step; {p['n_dates']} dates, width="
        f"{p['width']}), but only {gib(available)} is free on this machine. To fit, {advice}; "
        "memory grows with the square of the side."
    )


# -- the chapter -------------------------------------------------------------------------------


def _check_window(p: Mapping[str, Any]) -> None:
    if p["window"] % 2 == 0:
        raise ParameterError(
            f"window={p['window']} must be odd so the sample sits on the centre pixel; "
            f"use {p['window'] + 1} or {p['window'] - 1}."
        )
    if p["data_source"] == "simulated":
        for size in ("scene_size", "map_size"):
            if p["window"] >= p[size]:
                raise ParameterError(
                    f"window={p['window']} does not fit in {size}={p[size]} pixels; "
                    f"make {size} larger than the window (e.g. {4 * p['window']})."
                )


def _check_simulated(p: Mapping[str, Any]) -> None:
    capacity = sample_capacity(p["scene_size"])
    if p["n_samples"] > capacity:
        side = math.isqrt(p["n_samples"] - 1) + 1
        raise ParameterError(
            f"n_samples={p['n_samples']} is more than a {p['scene_size']} × {p['scene_size']} px "
            f"scene holds: at most {capacity} (each pixel is sampled once). Use n_samples <= "
            f"{capacity}, or scene_size >= {side}."
        )
    check_memory(p)


def block_size_m(p: Mapping[str, Any]) -> float | None:
    """The ``block_size`` parameter in metres, or None for ``"auto"``.

    Raises :class:`ParameterError` for anything but ``"auto"`` or a positive, finite number
    (as text or a number).
    """
    value = p["block_size"]
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        side = float(value)
    except (TypeError, ValueError):
        side = math.nan
    if isinstance(value, bool) or not math.isfinite(side) or side <= 0:
        raise ParameterError(
            f"block_size={value!r} is neither 'auto' nor a positive number of metres; allowed: "
            "'auto' (chosen from the residual variogram) or e.g. 400."
        )
    return side


def _too_few_groups(p: Mapping[str, Any], n_groups: int, what: str) -> None:
    if n_groups < p["cv_folds"]:
        raise ParameterError(
            f"cv_folds={p['cv_folds']} but {what} gives only {n_groups} group(s) for spatial "
            f"cross-validation (each fold needs at least one). Use cv_folds <= {n_groups}"
            + (", or a smaller block_size" if "block" in what else "")
            + "."
        )


def _check_simulated_blocks(p: Mapping[str, Any]) -> None:
    """cv_folds against a numeric ``block_size`` and buffer_m against the simulated scene
    (cheap arithmetic). With ``"auto"`` the side is chosen at run time (from the residual
    variogram, down to 5 m), so the folds are not checked here."""
    extent = p["scene_size"] * PIXEL_M
    side = block_size_m(p)
    if side is not None:
        per_side = math.ceil(extent / side)
        _too_few_groups(
            p,
            min(per_side**2, p["n_samples"]),
            f"a {p['scene_size']} px ({extent:g} m) scene in {side:g} m blocks",
        )
    if p["buffer_m"] >= extent / 2:
        raise ParameterError(
            f"buffer_m={p['buffer_m']:g} m is at least half the {extent:g} m scene: it would drop "
            "(nearly) every training sample. Use a buffer of the order of the residual "
            "autocorrelation range (a few hundred metres)."
        )


def _file_group_count(p: Mapping[str, Any], path: Path, info: Any) -> int | None:
    """The number of groups / spatial blocks a user's CSV gives, or None where not cheap."""
    import numpy as np
    import pandas as pd

    from soilbook import geo
    from soilbook.data import tables

    if path.stat().st_size > CHECK_READ_BYTES:
        return None
    cols = (
        ["group"]
        if info.has_group
        else {"lat/lon": ["lat", "lon"], "x/y": ["x", "y"]}[info.coordinates]
    )
    try:
        df = pd.read_csv(path, usecols=lambda c: c.strip() in {*cols, info.target})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None  # the loader gives the message
    df.columns = [c.strip() for c in df.columns]
    df = df[df[info.target].notna()].dropna(subset=cols)
    if info.has_group:
        return int(df["group"].astype(str).nunique())
    try:
        a, b = (df[c].to_numpy(np.float64) for c in cols)
    except ValueError:
        return None  # text in a coordinate column: the loader names it
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or a.size < 2:
        return None
    if info.coordinates == "x/y":
        lat, lon = tables.xy_to_lat_lon(a, b, p["crs"], name=path.name)
    else:
        lat, lon = a, b
        tables.check_lat_lon(lat, lon, name=path.name)
    labels, _ = geo.lat_lon_blocks(lat, lon, block_size_m(p))
    return int(np.unique(labels).size)


def no_spectra_message(path_name: str) -> str:
    """The note for a table without spectral inputs (shown by :func:`check` and the notebook)."""
    return (
        f"{path_name} has no spectral inputs ({_SPECTRAL}), so the SS-SoilNet models cannot be "
        "trained on it; the run goes on with RF and SVR only (they use any numeric predictor)."
    )


def _check_user_file(p: Mapping[str, Any]) -> None:
    """The pre-papermill checks of ``data_source="file"`` (see the module docstring)."""
    from soilbook.data.real.userfile import check_user_file
    from soilbook.data.sources import resolve_target

    info = check_user_file(p["data_path"], resolve_target("file", p["target"]), crs=p["crs"])
    if info is None:  # NetCDF / Zarr: checked when read
        return
    path = Path(p["data_path"]).expanduser()
    if not info.has_spectral_inputs:
        warnings.warn(no_spectra_message(path.name), stacklevel=4)
    n_groups = _file_group_count(p, path, info)
    if n_groups is not None:
        what = (
            f"{path.name}'s 'group' column"
            if info.has_group
            else f"{path.name}'s coordinates in "
            + (f"{block_size_m(p):g} m blocks" if block_size_m(p) else "automatic blocks")
        )
        _too_few_groups(p, n_groups, what)


def _earthengine_args(p: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`soilbook.chapters.earthengine.check_earthengine` for chapter 1:
    the salinity recipe's precheck (with the ``aoi``'s coverage), the 10 m Sentinel-2 grid, the
    points' ``target`` column or the one named by ``target``."""
    from soilbook.data.earthengine.points import parse_aoi
    from soilbook.data.earthengine.recipes.salinity import precheck_area, precheck_salinity

    def precheck(points: list[dict[str, Any]], dates: list[tuple[str, str]]) -> None:
        precheck_salinity(points, dates, p["window"])
        if p["aoi"].strip():  # the area to map, before any request is spent on the points
            precheck_area(parse_aoi(p["aoi"]), dates)

    column = "target" if p["target"] == "auto" else p["target"]
    return {"precheck": precheck, "scale": PIXEL_M, "target_column": column, "maps_aoi": True}


def _check_earthengine(p: Mapping[str, Any]) -> None:
    """The pre-papermill checks of ``data_source="earthengine"``: points, area, windows,
    coverage, cache and credentials (:func:`soilbook.chapters.earthengine.check_earthengine`)."""
    from soilbook.chapters.earthengine import check_earthengine

    check_earthengine(p, **_earthengine_args(p))


def _load_earthengine(p: Mapping[str, Any], side: float | None) -> Any:
    """Sentinel-2 reflectance, terrain, crop and index layers at the user's points from Earth
    Engine (:func:`soilbook.data.earthengine.recipes.salinity.extract_salinity_inputs`), cached
    and resumable under ``ee_cache_dir``; no map scene."""
    from soilbook.chapters.earthengine import earthengine_inputs
    from soilbook.data import sources
    from soilbook.data.earthengine.recipes.salinity import extract_salinity_inputs
    from soilbook.data.schema import validate_samples

    inputs = earthengine_inputs(p, **_earthengine_args(p))
    samples = extract_salinity_inputs(
        inputs.points,
        inputs.dates,
        p["window"],
        scale=PIXEL_M,
        project=inputs.project,
        cache_dir=inputs.cache_dir / "salinity",
    )
    if side is not None:
        samples = with_blocks(samples, side)
    return sources.LoadedData(validate_samples(samples), None)


#: Side (pixels) of the blocks in which an area map is read from Earth Engine and predicted.
AREA_CHUNK = 1024
#: The Zarr store of the area map, under ``output_dir``.
AREA_MAP = "area_map.zarr"


def map_area(
    p: Mapping[str, Any],
    samples: Any,
    *,
    inputs: Any = None,
    transport: Any = None,
    chunk: int = AREA_CHUNK,
) -> Any:
    """The map of the area of interest ``aoi`` of a ``data_source="earthengine"`` run, read and
    predicted block by block, never whole in memory; ``None`` without an ``aoi``.

    A Random Forest (``rf_trees`` trees, ``seed``; on log1p of the target with
    ``target_transform="log1p"``) is fitted on every field sample's *pixel* features — the
    Sentinel-2 reflectance of each date window and the covariates, exactly the bands of
    :func:`~soilbook.data.earthengine.recipes.salinity.salinity_pixel_image` (no patches). The
    area is read lazily from Earth Engine (:func:`~soilbook.data.earthengine.scene.lazy_image`,
    ``chunk`` x ``chunk`` pixels of 10 m per request group, cached and resumable under
    ``ee_cache_dir``), predicted block by block (:func:`soilbook.lazymaps.predict_lazy`) and
    written to ``output_dir/area_map.zarr`` (:func:`soilbook.lazymaps.write_map`: row by row,
    resumable). SS-SoilNet is not mapped here: its windows and sequences would need the
    patch layers over the whole area (a departure the notebook states). ``inputs`` (the checked
    :class:`~soilbook.chapters.earthengine.EarthEngineInputs`; default: checked again from
    ``p``) and ``transport`` (a fake in tests) are for reuse and testing. Returns the map,
    lazily opened from the store: (y, x) in the area's UTM zone, in the target's units.
    """
    if p["data_source"] != EARTHENGINE or not p["aoi"].strip():
        return None
    import numpy as np
    import xarray as xr
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import RandomForestRegressor

    from soilbook import lazymaps
    from soilbook.chapters.earthengine import check_earthengine
    from soilbook.data.earthengine.recipes.salinity import pixel_features, salinity_pixel_image
    from soilbook.data.earthengine.scene import area_grid, lazy_image

    if inputs is None:
        inputs = check_earthengine(p, **_earthengine_args(p))
    image, names = salinity_pixel_image(inputs.aoi, inputs.dates, scale=PIXEL_M)
    X, y = pixel_features(samples, names), samples["target"].values.astype(float)
    keep = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if keep.sum() < 2:
        raise ParameterError(
            f"only {int(keep.sum())} of {y.size} samples have every pixel feature, too few to fit "
            "the area model. What to do: check the date windows (cloud-free Sentinel-2 scenes?)."
        )
    forest = RandomForestRegressor(
        n_estimators=p["rf_trees"], n_jobs=p["n_jobs"], random_state=p["seed"]
    )
    log1p = p["target_transform"] == "log1p"
    model = (
        TransformedTargetRegressor(forest, func=np.log1p, inverse_func=np.expm1)
        if log1p
        else forest
    ).fit(X[keep], y[keep])
    scene = lazy_image(
        image,
        names,
        area_grid(inputs.aoi, PIXEL_M),
        chunk=chunk,
        cache_dir=inputs.cache_dir / "salinity-area",
        transport=transport,
    )
    lazy = lazymaps.predict_lazy(
        lazymaps.estimator_block(model),
        xr.Dataset({"bands": scene}, attrs=scene.attrs),
        chunk=chunk,
        units=str(samples["target"].attrs.get("units", "")),
        name="prediction",
    )
    path = lazymaps.write_map(lazy, Path(p["output_dir"]) / AREA_MAP, overwrite=True)
    return xr.open_zarr(path)["prediction"]


def check(p: dict[str, Any]) -> None:
    """Chapter 1's cross-checks of a full, per-value-checked parameter set (see the module)."""
    from soilbook.data.sources import check_source_args

    _check_window(p)
    check_heads_divide_width(p["width"], p["heads"], min_width=int(_WIDTH_MIN or 1))
    block_size_m(p)
    if p["data_source"] == "file":
        _check_user_file(p)
    elif p["data_source"] == EARTHENGINE:
        _check_earthengine(p)
    else:
        check_source_args(
            p["data_source"],
            dataset_id=p["dataset_id"],
            target=p["target"],
            data_path=p["data_path"],
        )
    if p["data_source"] == "simulated":
        _check_simulated(p)
        _check_simulated_blocks(p)


# -- the data and the models -------------------------------------------------------------------


def with_blocks(samples: Any, side_m: float) -> Any:
    """``samples`` regrouped into square spatial blocks of ``side_m`` metres.

    Positions: a scene's pixel ``row`` / ``col`` times ``attrs["pixel_size_m"]`` (the rule of
    :mod:`soilbook.data.scene` and :func:`soilbook.maps.pixel_blocks`, so sample blocks match
    the map's), else the ``x_m`` / ``y_m`` coordinates, else ``lat`` / ``lon`` on a local
    projection (:func:`soilbook.geo.local_xy_m`); the block grid starts at (0, 0).
    Groups that are units of their own (a pedon's horizons: ``group_kind`` other than
    ``"spatial block"``) stay whole: each goes to the block of its first sample. Sets
    ``attrs["group_kind"] = "spatial block"`` and ``attrs["block_size_m"]``.

    Raises :class:`ParameterError` when ``side_m`` is not positive or ``samples`` have no
    coordinates.
    """
    import numpy as np

    from soilbook import geo

    if not (math.isfinite(side_m) and side_m > 0):
        raise ParameterError(f"side_m={side_m!r}; expected a positive block side in metres.")
    origin = (0.0, 0.0)
    if "row" in samples.coords and "col" in samples.coords and "pixel_size_m" in samples.attrs:
        # pixels of a scene: the scene's own block rule (soilbook.data.scene, soilbook.maps),
        # counted from its north-west pixel, so sample blocks and map blocks agree
        px = float(samples.attrs["pixel_size_m"])
        x, y = samples["col"].values * px, samples["row"].values * px
    elif "x_m" in samples.coords and "y_m" in samples.coords:
        x, y = samples["x_m"].values, samples["y_m"].values
    elif "lat" in samples.coords and "lon" in samples.coords:
        x, y = geo.local_xy_m(samples["lat"].values, samples["lon"].values)
    else:
        raise ParameterError(
            "block_size needs coordinates, but these samples have none (x_m / y_m or lat / "
            "lon); their own 'group' makes the folds. Use block_size='auto'."
        )
    labels = geo.spatial_blocks(x, y, float(side_m), origin=origin)
    if samples.attrs.get("group_kind") != "spatial block" and "group" in samples.coords:
        old = np.asarray(samples["group"].values).astype(str)
        first = {g: labels[i] for i, g in reversed(list(enumerate(old)))}
        labels = np.array([first[g] for g in old])
    out = samples.assign_coords(
        group=("sample", labels, {"long_name": f"spatial block ({float(side_m):g} m)"})
    )
    out.attrs.update(group_kind="spatial block", block_size_m=float(side_m))
    return out


def load_data(p: Mapping[str, Any]) -> Any:
    """The sample set (and, for simulated data, the scene) for validated parameters ``p``, a
    :class:`~soilbook.data.sources.LoadedData`.

    :func:`soilbook.data.sources.load`, except for ``data_source="file"``, read by
    :func:`soilbook.data.real.userfile.load_user_file` with ``target_units``, ``crs``,
    ``spectra_kind`` and ``block_size``, and ``data_source="earthengine"``, extracted at the
    user's points by the salinity recipe (:func:`_load_earthengine`). A numeric ``block_size`` regroups the samples into
    blocks of that side (:func:`with_blocks`) — except a file's own ``group`` column, which is
    kept (with a warning).
    """
    from soilbook.data import sources

    side = block_size_m(p)
    if p["data_source"] == EARTHENGINE:
        return _load_earthengine(p, side)
    if p["data_source"] == "file":
        from soilbook.data.real.userfile import load_user_file
        from soilbook.data.schema import validate_samples

        samples = load_user_file(
            p["data_path"],
            sources.resolve_target("file", p["target"]),
            target_units=p["target_units"],
            crs=p["crs"],
            spectra_kind=p["spectra_kind"],
            block_size_m=side,
        )
        if side is not None and samples.attrs.get("group_kind") != "spatial block":
            warnings.warn(
                f"block_size={p['block_size']!r} is not used: the file's own groups "
                f"({samples.attrs.get('group_kind', 'group')}) make the folds.",
                stacklevel=2,
            )
        return sources.LoadedData(validate_samples(samples), None)
    data = sources.load(
        p["data_source"],
        target=p["target"],
        dataset_id=p["dataset_id"],
        data_path=p["data_path"],
        seed=p["seed"],
        scene_size=p["scene_size"],
        n_samples=p["n_samples"],
        n_dates=p["n_dates"],
        window=p["window"],
    )
    if side is None:
        return data
    return sources.LoadedData(with_blocks(data.samples, side), data.scene)


def models_for(samples: Any) -> tuple[list[str], dict[str, str]]:
    """Which of :data:`MODEL_NAMES` can be trained on ``samples``, and why the others cannot.

    Returns ``(available, skipped)``: the model names in book order, and ``{name: reason}``
    for the skipped ones (see :data:`MODEL_NEEDS`). RF and SVR need a tabular predictor;
    the networks are tested with :func:`soilbook.models.ss_soilnet.missing_inputs` — a
    table of lab properties only (no spectral inputs) keeps the baselines, and data without a
    spatial input skip the cross-attention and concat variants, which would only repeat the
    spectral-only one. Cheap: names and groups are read, no values.
    """
    from soilbook.data.schema import tabular_feature_names
    from soilbook.models.ss_soilnet import missing_inputs

    available: list[str] = []
    skipped: dict[str, str] = {}
    names, _ = tabular_feature_names(samples)
    for model in MODEL_NAMES:
        if model in NETWORK_FUSIONS:
            reason = missing_inputs(samples, NETWORK_FUSIONS[model])
        else:
            reason = None if names else "no predictors: the data have no reflectance or covariates"
        if reason is None:
            available.append(model)
        else:
            skipped[model] = reason
    return available, skipped


def models_message(available: list[str], skipped: Mapping[str, str]) -> str:
    """A few lines for the reader: the models that run, and each skipped one with its reason."""
    lines = [f"Models trained: {', '.join(available) if available else 'none'}."]
    lines += [f"Skipped {name}: {reason}." for name, reason in skipped.items()]
    return "\n".join(lines)


NOTES = "What each model needs from the data:\n" + "\n".join(
    f"  {name}: {need}" for name, need in MODEL_NEEDS.items()
)

CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data, notes=NOTES)

__all__ = [
    "CHAPTER",
    "KEY",
    "MODEL_NAMES",
    "MODEL_NEEDS",
    "NETWORK_FUSIONS",
    "NOTES",
    "PARAMS",
    "SPECTRA_KINDS",
    "MemoryEstimate",
    "block_size_m",
    "check",
    "check_memory",
    "load_data",
    "map_area",
    "memory_estimate",
    "models_for",
    "models_message",
    "no_spectra_message",
    "sample_capacity",
    "scene_bytes_per_pixel",
    "with_blocks",
]
