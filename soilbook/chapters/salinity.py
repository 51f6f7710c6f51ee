"""Chapter 1 — SS-SoilNet: soil salinity from Sentinel-2 time series and environmental layers.

The notebook ``notebooks/01_salinity_ss_soilnet.ipynb``: its parameters (:data:`PARAMS`), the
checks of the whole set (:func:`check`) and its data (:func:`load_data`, over
:func:`soilbook.data.sources.load`), gathered in :data:`CHAPTER`.

Besides the source arguments, :func:`check` refuses, before any data are simulated:

- a ``window`` that is even or does not fit in the scene, ``heads`` that do not divide
  ``width``;
- simulated data: more ``n_samples`` than the scene holds (:func:`sample_capacity`), and scene /
  map sizes whose memory (:func:`memory_estimate`) exceeds what the machine has free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from soilbook.chapters.common import (
    Chapter,
    Param,
    available_memory_bytes,
    check_heads_divide_width,
    gib,
    shared_params,
)
from soilbook.errors import ParameterError

KEY = "01_salinity_ss_soilnet"

PARAMS: tuple[Param, ...] = (
    *shared_params(output_dir=f"../_build/outputs/{KEY}"),
    Param(
        "data_source",
        str,
        "simulated",
        "'simulated' (offline scene), 'limesoda' (bundled real data), 'ucrb' (USGS download) or 'file'",
        choices=("simulated", "limesoda", "ucrb", "file"),
    ),
    Param("dataset_id", str, "BB.250", "LimeSoDa dataset id (data_source='limesoda')"),
    Param(
        "target",
        str,
        "auto",
        "target variable; 'auto' = the source's default (see soilbook.data.sources)",
    ),
    Param("data_path", str, "", "path of your CSV / NetCDF / Zarr (data_source='file')"),
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
    Param("epochs", int, 40, "maximum training epochs per fold", minimum=1),
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


def check(p: dict[str, Any]) -> None:
    """Chapter 1's cross-checks of a full, per-value-checked parameter set (see the module)."""
    from soilbook.data.sources import check_source_args

    _check_window(p)
    check_heads_divide_width(p["width"], p["heads"], min_width=int(_WIDTH_MIN or 1))
    check_source_args(
        p["data_source"], dataset_id=p["dataset_id"], target=p["target"], data_path=p["data_path"]
    )
    if p["data_source"] == "simulated":
        _check_simulated(p)


def load_data(p: Mapping[str, Any]) -> Any:
    """The sample set (and, for simulated data, the scene) for validated parameters ``p``:
    :func:`soilbook.data.sources.load`, a :class:`~soilbook.data.sources.LoadedData`."""
    from soilbook.data import sources

    return sources.load(
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


CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data)

__all__ = [
    "CHAPTER",
    "KEY",
    "PARAMS",
    "MemoryEstimate",
    "check",
    "check_memory",
    "load_data",
    "memory_estimate",
    "sample_capacity",
    "scene_bytes_per_pixel",
]
