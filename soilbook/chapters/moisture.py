"""Chapter 4 — multimodal surface soil moisture: a masked ConvNeXt V2 U-Net with SE fusion and
intermediate-task fine-tuning.

The notebook ``notebooks/04_soil_moisture_convnext.ipynb``: its parameters (:data:`PARAMS`), the
checks of the whole set (:func:`check`: tile sides the encoder's strides allow, enough places
for the folds, a user's files) and its data (:func:`load_data`: the simulated tiles, Google's
soil-moisture retrieval shards or a user's tile set with a station table, a
:class:`~soilbook.data.moisture.MoistureData`), gathered in :data:`CHAPTER`.

Everything here is cheap: no data are read or simulated and no model is built, so a wrong value
stops before any heavy work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soilbook.chapters.common import Chapter, Param, check_n_jobs, shared_params
from soilbook.chapters.earthengine import EARTHENGINE, EARTHENGINE_PARAMS
from soilbook.errors import ParameterError, SchemaError

KEY = "04_soil_moisture_convnext"

#: ``data_source``: the simulated tiles, Google's retrieval shards (real), or your own files.
DATA_SOURCES: tuple[str, ...] = ("simulated", "retrieval", "file", EARTHENGINE)
#: The encoder sizes (:data:`soilbook.models.convnext_unet.PRESETS`; kept here so the parameter
#: list loads without torch; a test keeps them equal).
PRESETS: tuple[str, ...] = ("tiny", "atto", "femto", "pico", "nano")
#: The tile side must be a multiple of this (a stride-4 stem and three 2× downsamplings).
TILE_STRIDE = 32
#: Side (pixels) of the centred window read from each 512 × 512 retrieval example, to bound
#: memory (a full example of 17 channels is 18 MB as float32; the authors' model crops 256 too).
RETRIEVAL_WINDOW = 256
#: Pixel side (m) of the tiles extracted from Earth Engine (Sentinel-1/2's 10 m grid).
EARTHENGINE_SCALE_M = 10.0

PARAMS: tuple[Param, ...] = (
    *shared_params(output_dir=f"../_build/outputs/{KEY}"),
    Param(
        "data_source",
        str,
        "simulated",
        "'simulated' (simulated tiles over farmland, alpine grassland and an arid basin, with a "
        "coarse SMAP-like product and in-situ stations), 'retrieval' (Google's soil-moisture "
        "retrieval TFRecord shards in data_path), 'file' (your tile set and station table) or "
        "'earthengine' (tiles of Sentinel-1/2, GLO-30 terrain, ERA5-Land and SMAP L4 around "
        "your stations, from Earth Engine)",
        choices=DATA_SOURCES,
    ),
    *EARTHENGINE_PARAMS,
    Param(
        "data_path",
        str,
        "",
        "retrieval: a .tfrecord.gz shard or a folder of them; file: your tile set (NetCDF in "
        "the tile-set schema of soilbook.data.schema)",
    ),
    Param(
        "stations_path",
        str,
        "",
        "file: your station readings (CSV: station, tile, row, col, soil_moisture in vol %)",
    ),
    Param(
        "locations_per_landscape",
        int,
        4,
        "simulated places with stations per landscape (full: 12)",
        minimum=1,
    ),
    Param(
        "coarse_only_per_landscape",
        int,
        2,
        "simulated places with the coarse product only, for the intermediate stage (full: 24)",
        minimum=0,
    ),
    Param("dates", int, 6, "acquisition dates per simulated place (full: 24)", minimum=1),
    Param(
        "tile_size",
        int,
        32,
        f"side of the simulated tiles in pixels (a multiple of {TILE_STRIDE}; full: 64)",
        minimum=TILE_STRIDE,
        maximum=1024,
    ),
    Param("stations_per_tile", int, 3, "in-situ stations per simulated place", minimum=1),
    Param(
        "preset",
        str,
        "tiny",
        "encoder size: 'tiny' (CPU), 'atto' … 'nano' (ConvNeXt V2; full: 'atto')",
        choices=PRESETS,
    ),
    Param(
        "epochs", int, 120, "maximum fine-tuning epochs on the stations (early stopping)", minimum=1
    ),
    Param(
        "intermediate_epochs",
        int,
        100,
        "maximum epochs of the intermediate stage on the coarse product (early stopping)",
        minimum=1,
    ),
    Param("batch_size", int, 16, "tiles per mini-batch", minimum=1),
    Param("learning_rate", float, 2e-3, "learning rate (AdamW), both stages", minimum=0.0),
    Param("patience", int, 8, "early-stopping patience in epochs (both stages)", minimum=1),
    Param("cv_folds", int, 3, "folds of the held-out-tile and held-out-station splits", minimum=2),
    Param("rf_trees", int, 100, "trees in the Random Forest (full: 500)", minimum=1),
    Param(
        "n_seeds",
        int,
        3,
        "network repetitions over seeds on the held-out-tile split (the claims); full 5",
        minimum=1,
        maximum=50,
    ),
    Param(
        "station_seeds",
        int,
        1,
        "network seeds on the held-out-station split (context, no claims; full 5)",
        minimum=1,
        maximum=50,
    ),
    Param("n_jobs", int, 2, "worker processes for cross-validation folds", minimum=1, maximum=64),
)


def _check_file(path: str, what: str, suffixes: tuple[str, ...]) -> Path:
    if not path:
        raise ParameterError(
            f"{what} is empty. What to do: pass -p {what} <path> (a {' or '.join(suffixes)} file)."
        )
    p = Path(path)
    if not p.exists():
        raise ParameterError(f"{what}={path!r} does not exist. What to do: check the path.")
    if p.is_file() and p.suffix.lower() not in suffixes and not path.endswith(suffixes):
        raise ParameterError(
            f"{what}={path!r} is not a {' or '.join(suffixes)} file. What to do: convert it, or "
            "see `soilbook run 04 --help-params`."
        )
    return p


def _earthengine_args(p: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`soilbook.chapters.earthengine.check_earthengine` for chapter 4:
    the moisture recipe's precheck, the 10 m grid and, without ``ee_dates``, a week around
    each reading's day (overlapping weeks merged; :func:`~soilbook.data.earthengine.recipes.
    moisture.reading_windows`)."""
    from soilbook.data.earthengine.recipes.moisture import precheck_moisture, reading_windows

    return {
        "precheck": precheck_moisture,
        "scale": EARTHENGINE_SCALE_M,
        "default_dates": reading_windows,
    }


def _check_tile_size(p: Mapping[str, Any]) -> None:
    """The tile side is a multiple of :data:`TILE_STRIDE` (the encoder's total stride); for
    Earth Engine also at most the recipe's largest tile."""
    if p["data_source"] == EARTHENGINE:
        from soilbook.data.earthengine.recipes.moisture import check_tile_size

        check_tile_size(p["tile_size"])
    if p["tile_size"] % TILE_STRIDE:
        low = TILE_STRIDE * max(1, p["tile_size"] // TILE_STRIDE)
        raise ParameterError(
            f"tile_size={p['tile_size']} is not a multiple of {TILE_STRIDE}: the encoder "
            f"has a stride-4 stem and three 2x downsamplings. What to do: use {low} or "
            f"{low + TILE_STRIDE}."
        )


def check(p: dict[str, Any]) -> None:
    """Chapter 4's cross-checks of a full, per-value-checked parameter set (cheap)."""
    check_n_jobs(p["n_jobs"])
    source = p["data_source"]
    if source == EARTHENGINE:
        from soilbook.chapters.earthengine import check_earthengine

        _check_tile_size(p)
        check_earthengine(p, **_earthengine_args(p))
    elif source == "simulated":
        _check_tile_size(p)
        places = 3 * int(p["locations_per_landscape"])
        if places < int(p["cv_folds"]):
            raise ParameterError(
                f"{places} simulated places with stations (3 landscapes x "
                f"locations_per_landscape={p['locations_per_landscape']}) are fewer than "
                f"cv_folds={p['cv_folds']}: the held-out-tile split puts whole places in a fold. "
                "What to do: raise locations_per_landscape or lower cv_folds."
            )
    elif source == "retrieval":
        _check_file(p["data_path"], "data_path", (".gz", ".tfrecord"))
    else:
        _check_file(p["data_path"], "data_path", (".nc",))
        _check_file(p["stations_path"], "stations_path", (".csv",))


def load_data(p: Mapping[str, Any]) -> Any:
    """The chapter's :class:`~soilbook.data.moisture.MoistureData` for validated parameters."""
    source = p["data_source"]
    if source == EARTHENGINE:
        from soilbook.chapters.earthengine import earthengine_inputs
        from soilbook.data.earthengine.recipes.moisture import extract_moisture_data

        inputs = earthengine_inputs(p, **_earthengine_args(p))
        return extract_moisture_data(
            inputs.points,
            inputs.dates,
            tile_size=p["tile_size"],
            scale=EARTHENGINE_SCALE_M,
            cache_dir=inputs.cache_dir / "moisture",
            project=inputs.project,
        )
    if source == "simulated":
        from soilbook.data.simulate.moisture import simulate_moisture

        return simulate_moisture(
            locations_per_landscape=p["locations_per_landscape"],
            coarse_only_per_landscape=p["coarse_only_per_landscape"],
            dates=p["dates"],
            tile_size=p["tile_size"],
            stations_per_tile=p["stations_per_tile"],
            seed=p["seed"],
        )
    if source == "retrieval":
        from soilbook.data.moisture import MoistureData
        from soilbook.data.real.sm_retrieval import load_sm_retrieval

        path = Path(p["data_path"])
        paths = sorted(path.glob("*.tfrecord*")) if path.is_dir() else [path]
        tiles, readings = load_sm_retrieval(paths, window=RETRIEVAL_WINDOW)
        if readings.sizes["sample"] == 0:
            raise SchemaError(
                f"{len(paths)} shard(s) in {p['data_path']} hold no in-situ label (sm_0_5): the "
                "public shards omit ISMN sensors. What to do: pass shards with labels, or join "
                "your ISMN download (soilbook.data.real.ismn.read_ismn, then "
                "sm_retrieval.readings_from_stations) and use data_source='file'."
            )
        return MoistureData(
            tiles=tiles,
            readings=readings,
            description=f"Google's soil-moisture retrieval data, {len(paths)} shard(s) (real).",
        )
    from soilbook.data.real.moisture_file import load_moisture_files

    return load_moisture_files(p["data_path"], p["stations_path"])


#: Text for ``--help-params`` below the table.
NOTES = "\n".join(
    [
        "Data sources:",
        "  simulated: tiles of SAR, optical (with cloud gaps), terrain, meteorology and day of "
        "year; a coarse biased SMAP-like product; in-situ stations. Soil moisture in vol %.",
        "  retrieval (data_path): Google's soil-moisture retrieval TFRecord shards (CC-BY 4.0), "
        "read without TensorFlow; readings where the shard has in-situ sm_0_5.",
        "  file (data_path, stations_path): a tile set in NetCDF (inputs, valid, optional coarse "
        "+ coarse_mask, location) and a CSV of readings: station, tile, row, col, soil_moisture.",
    ]
)

CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data, notes=NOTES)

__all__ = [
    "CHAPTER",
    "DATA_SOURCES",
    "KEY",
    "NOTES",
    "PARAMS",
    "PRESETS",
    "RETRIEVAL_WINDOW",
    "TILE_STRIDE",
    "check",
    "load_data",
]
