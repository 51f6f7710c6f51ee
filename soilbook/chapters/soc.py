"""Chapter 3 — SSL-SoilNet: self-supervised image + climate pre-training for soil organic carbon.

The notebook ``notebooks/03_soc_ssl_soilnet.ipynb``: its parameters (:data:`PARAMS`), the checks
of the whole set (:func:`check`: heads divide widths, the patch side is a multiple of the ViT's
patch size 8, a temperature > 0, label fractions in (0, 1] that leave enough labelled rows, the
modalities against what the data source has, a user's file header) and its data
(:func:`load_data`: the simulated region, RaCA or a user's file, a
:class:`~soilbook.data.soc.SocData`), gathered in :data:`CHAPTER`.

Everything here is cheap: no data are read or simulated and no model is built, so a wrong value
stops before any heavy work.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soilbook.chapters.common import (
    Chapter,
    Param,
    check_heads_divide_width,
    check_n_jobs,
    shared_params,
)
from soilbook.chapters.earthengine import EARTHENGINE, EARTHENGINE_PARAMS
from soilbook.errors import ParameterError

KEY = "03_soc_ssl_soilnet"

#: ``data_source``: the simulated region, RaCA with TerraClimate (real), or your own file.
DATA_SOURCES: tuple[str, ...] = ("simulated", "raca", "file", EARTHENGINE)
#: ``modalities``: ``auto`` = image + climate where the data have images, else climate only.
MODALITY_CHOICES: tuple[str, ...] = ("auto", "both", "climate", "image")
#: The ViT's patch size (the paper's 8 pixels); the image patch side must be a multiple of it.
VIT_PATCH = 8
#: Smallest contrastive mini-batch (:data:`soilbook.models.ssl_soilnet.MIN_CONTRASTIVE_BATCH`;
#: kept here so the parameter list loads without torch; a test keeps them equal).
MIN_CONTRASTIVE_BATCH = 8
#: Fewest labelled training rows a label fraction may leave (:func:`soilbook.evaluate.label_subset`).
MIN_TRAIN_ROWS = 10
#: Fewest training rows with an inner early-stopping split
#: (:func:`soilbook.models.base.inner_validation_split` with its defaults); fewer train on a fixed
#: schedule, whose convergence is judged on the training loss of a network that can memorise them.
MIN_VALIDATED_ROWS = 60

PARAMS: tuple[Param, ...] = (
    *shared_params(output_dir=f"../_build/outputs/{KEY}"),
    Param(
        "data_source",
        str,
        "simulated",
        "'simulated' (the simulated Great-Plains-like region: image patches + climate, SOC in "
        "g/kg), 'raca' (real RaCA SOC stocks in Mg C/ha with their TerraClimate series; no "
        "image), 'file' (your own table, data_path) or 'earthengine' (your points: Landsat-8 "
        "patches and the TerraClimate series from Earth Engine)",
        choices=DATA_SOURCES,
    ),
    *EARTHENGINE_PARAMS,
    Param(
        "data_path",
        str,
        "",
        "your file (data_source='file'): a CSV with lat/lon (or group), the target and climate "
        "columns named clim_<variable>@<YYYY-MM> (e.g. clim_tmmx@2010-01), or a NetCDF sample set",
    ),
    Param("target_column", str, "target", "the target's column in your file"),
    Param(
        "max_labelled",
        int,
        600,
        "at most this many labelled locations of RaCA or your file, drawn at random with seed "
        "to fit the time budget (0 = all; full profile 0); the simulated region draws n_labelled",
        minimum=0,
    ),
    Param(
        "modalities",
        str,
        "auto",
        "'auto' (image + climate where the data have image patches, else climate only), "
        "'both', 'climate' or 'image'",
        choices=MODALITY_CHOICES,
    ),
    Param("n_labelled", int, 400, "labelled simulated locations", minimum=20),
    Param("n_unlabelled", int, 1000, "unlabelled simulated locations for pre-training", minimum=0),
    Param(
        "patch_size",
        int,
        16,
        "side of the simulated image patch in 30 m pixels (a multiple of 8; the paper: 64)",
        minimum=8,
        maximum=256,
    ),
    Param("block_size_km", float, 100.0, "side of the spatial blocks of the grouped CV (km)"),
    Param("cv_folds", int, 3, "folds of the random and of the spatial-block split", minimum=2),
    Param(
        "epochs",
        int,
        100,
        "maximum fine-tuning epochs (early stopping; below 60 labelled rows a fixed schedule)",
        minimum=1,
    ),
    Param("batch_size", int, 32, "fine-tuning mini-batch size", minimum=1),
    Param("learning_rate", float, 1e-3, "fine-tuning learning rate (AdamW)", minimum=0.0),
    Param("patience", int, 10, "early-stopping patience in epochs (both stages)", minimum=1),
    Param("pretrain_epochs", int, 20, "maximum contrastive pre-training epochs", minimum=1),
    Param(
        "pretrain_batch_size",
        int,
        64,
        "contrastive mini-batch: every other location of the batch is a negative, so at least "
        f"{MIN_CONTRASTIVE_BATCH} (the official code: 32)",
        minimum=1,
    ),
    Param("temperature", float, 0.5, "InfoNCE temperature (> 0; the paper's 0.5)"),
    Param(
        "contrastive_loss",
        str,
        "clip",
        "'clip' (cross-modal InfoNCE) or 'ntxent' (the official NT-Xent over 2N embeddings)",
        choices=("clip", "ntxent"),
    ),
    Param("image_width", int, 32, "ViT width (full: 768, ViT-B)", minimum=4),
    Param("image_depth", int, 1, "ViT layers (full: 12)", minimum=1),
    Param("image_heads", int, 4, "ViT attention heads (full: 12)", minimum=1),
    Param("climate_width", int, 16, "climate Transformer width (full: 512)", minimum=4),
    Param("climate_depth", int, 1, "climate Transformer layers (full: 6)", minimum=1),
    Param("climate_heads", int, 4, "climate Transformer heads (full: 8)", minimum=1),
    Param(
        "label_fractions",
        str,
        "0.25,0.5,1.0",
        "comma-separated shares of the labelled training rows for the label-efficiency curve, "
        "each in (0, 1] (1.0 is always included; full profile 0.05,0.1,0.25,0.5,1.0; a share "
        f"below {MIN_VALIDATED_ROWS} rows trains without early stopping)",
    ),
    Param("rf_trees", int, 100, "trees in the Random Forest (full: 500)", minimum=1),
    Param("explain_samples", int, 60, "samples for SHAP and gradient attributions", minimum=5),
    Param("map_cells", int, 30, "map grid side in cells (simulated data only)", minimum=4),
    Param(
        "n_seeds",
        int,
        3,
        "network repetitions over seeds for the claims' intervals; full profile 5",
        minimum=1,
        maximum=50,
    ),
    Param(
        "random_seeds",
        int,
        1,
        "network seeds on the random split (context, no claims; full profile 5)",
        minimum=1,
        maximum=50,
    ),
    Param("n_jobs", int, 2, "worker processes for cross-validation folds", minimum=1, maximum=64),
)


def parse_fractions(text: str | float | list[float] | tuple[float, ...]) -> list[float]:
    """The label fractions of ``text`` ("0.05,0.25,1.0", a number or a list), sorted, unique,
    with 1.0 added. Raises :class:`ParameterError` for a value that is not a number in (0, 1]."""
    if isinstance(text, str):
        parts = [s.strip() for s in text.replace(";", ",").split(",") if s.strip()]
    elif isinstance(text, int | float):
        parts = [text]
    else:
        parts = list(text)
    if not parts:
        raise ParameterError(
            f"label_fractions={text!r} is empty. Allowed: comma-separated numbers in (0, 1], "
            "e.g. '0.05,0.1,0.25,0.5,1.0'."
        )
    out = []
    for part in parts:
        try:
            f = float(part)
        except (TypeError, ValueError):
            raise ParameterError(
                f"label_fractions: {part!r} is not a number. Allowed: comma-separated numbers "
                "in (0, 1], e.g. '0.05,0.1,0.25,0.5,1.0'."
            ) from None
        if not (math.isfinite(f) and 0.0 < f <= 1.0):
            raise ParameterError(
                f"label_fractions: {part!r} lies outside (0, 1]: a label fraction is the share "
                "of the labelled training rows kept (1.0 = all). What to do: use e.g. "
                "'0.05,0.1,0.25,0.5,1.0'."
            )
        out.append(f)
    return sorted(set(out) | {1.0})


def modalities_for(p: Mapping[str, Any], has_image: bool) -> str:
    """The network's ``modalities`` for parameters ``p`` and data that do / do not carry image
    patches: ``auto`` becomes ``both`` or ``climate``. Raises :class:`ParameterError` when an
    image is asked for and the data have none."""
    asked = str(p["modalities"])
    if asked == "auto":
        return "both" if has_image else "climate"
    if asked in ("both", "image") and not has_image:
        raise ParameterError(
            f"modalities={asked!r} needs image patches, but data_source={p['data_source']!r} "
            "has none (RaCA from the mirror carries the climate series only; its Landsat "
            "patches come with the Earth Engine issue). What to do: use modalities='climate' "
            "or 'auto'."
        )
    return asked


def _check_fraction_rows(p: Mapping[str, Any], fractions: list[float]) -> None:
    """The smallest label fraction of a simulated run keeps at least :data:`MIN_TRAIN_ROWS`."""
    if p["data_source"] != "simulated":
        return
    n_train = int(p["n_labelled"]) * (int(p["cv_folds"]) - 1) // int(p["cv_folds"])
    smallest = fractions[0]
    keep = math.ceil(smallest * n_train - 1e-9)
    if keep < MIN_TRAIN_ROWS:
        need = math.ceil(MIN_TRAIN_ROWS / smallest * int(p["cv_folds"]) / (int(p["cv_folds"]) - 1))
        raise ParameterError(
            f"label fraction {smallest:g} of about {n_train} labelled training rows per fold "
            f"keeps {keep}, fewer than {MIN_TRAIN_ROWS}. What to do: raise n_labelled to at "
            f"least {need}, or use a larger smallest fraction (at least "
            f"{MIN_TRAIN_ROWS / n_train:.2g})."
        )
    if keep < MIN_VALIDATED_ROWS:
        warnings.warn(
            f"label fraction {smallest:g} keeps about {keep} labelled training rows per fold, "
            f"fewer than {MIN_VALIDATED_ROWS}: those networks get no inner validation set, train "
            "for all epochs and are judged converged only if their training loss flattens, "
            "which a network memorising a few rows rarely does (its claims then read "
            "inconclusive). For a validated point raise n_labelled to about "
            f"{math.ceil(MIN_VALIDATED_ROWS / smallest * int(p['cv_folds']) / (int(p['cv_folds']) - 1))}.",
            stacklevel=3,
        )


def _earthengine_args(p: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`soilbook.chapters.earthengine.check_earthengine` for chapter 3:
    the SOC recipe's precheck, Landsat's 30 m grid, the points' target column and, without
    ``ee_dates``, the paper's window (climate 2010-01 ... 2015-01, Landsat 2015)."""
    from soilbook.data.earthengine.recipes.soc import PAPER_WINDOW, precheck_soc_windows

    return {
        "precheck": precheck_soc_windows,
        "scale": 30.0,
        "target_column": p["target_column"],
        "unlabelled_ok": True,  # rows without SOC are the pre-training locations
        "need_date": False,  # the window, not the points' dates, picks scenes and months
        "default_dates": lambda points: [PAPER_WINDOW],
    }


def check(p: dict[str, Any]) -> None:
    """Chapter 3's cross-checks of a full, per-value-checked parameter set (cheap)."""
    check_heads_divide_width(p["image_width"], p["image_heads"])
    check_heads_divide_width(p["climate_width"], p["climate_heads"])
    check_n_jobs(p["n_jobs"])
    if p["temperature"] <= 0:
        raise ParameterError(
            f"temperature={p['temperature']!r} must be > 0: it divides the cosine similarities "
            "of the contrastive loss (the paper's 0.5; try 0.1-1.0)."
        )
    if p["pretrain_batch_size"] < MIN_CONTRASTIVE_BATCH:
        raise ParameterError(
            f"pretrain_batch_size={p['pretrain_batch_size']} is too small for contrastive "
            f"learning (at least {MIN_CONTRASTIVE_BATCH}: the other locations of a batch are the "
            "negatives, so a tiny batch makes the task trivial). What to do: use 32-256 (the "
            "official code: 32)."
        )
    if not (math.isfinite(p["block_size_km"]) and p["block_size_km"] > 0):
        raise ParameterError(
            f"block_size_km={p['block_size_km']!r} must be a positive side in km (e.g. 100)."
        )
    fractions = parse_fractions(p["label_fractions"])
    source = p["data_source"]
    if source == "simulated":
        if p["patch_size"] % VIT_PATCH:
            raise ParameterError(
                f"patch_size={p['patch_size']} is not a multiple of the ViT's {VIT_PATCH}-pixel "
                f"patches. What to do: use {VIT_PATCH * max(1, p['patch_size'] // VIT_PATCH)} "
                f"or {VIT_PATCH * (p['patch_size'] // VIT_PATCH + 1)} (the paper: 64)."
            )
        if p["n_unlabelled"] < p["pretrain_batch_size"]:
            raise ParameterError(
                f"n_unlabelled={p['n_unlabelled']} is fewer than pretrain_batch_size="
                f"{p['pretrain_batch_size']}: pre-training needs at least one full batch of "
                "unlabelled locations per fold. What to do: raise n_unlabelled (quick: 1000)."
            )
        modalities_for(p, has_image=True)
        _check_fraction_rows(p, fractions)
    elif source == "raca":
        modalities_for(p, has_image=False)
    elif source == EARTHENGINE:
        from soilbook.chapters.earthengine import check_earthengine

        modalities_for(p, has_image=True)
        check_earthengine(p, **_earthengine_args(p))
    else:
        from soilbook.data.real.soc_file import check_soc_file

        check_soc_file(p["data_path"], target_column=p["target_column"])
        if Path(p["data_path"]).suffix.lower() == ".csv":
            modalities_for(p, has_image=False)


def load_data(p: Mapping[str, Any]) -> Any:
    """The chapter's :class:`~soilbook.data.soc.SocData` for validated parameters ``p``."""
    source = p["data_source"]
    if source == "simulated":
        from soilbook.data.simulate.soc import simulate_soc

        return simulate_soc(
            n_labelled=p["n_labelled"],
            n_unlabelled=p["n_unlabelled"],
            patch_size=p["patch_size"],
            seed=p["seed"],
            block_size_km=p["block_size_km"],
        )
    if source == "raca":
        from soilbook.data.real.raca import load_raca

        data = load_raca(block_size_km=p["block_size_km"])
    elif source == EARTHENGINE:
        from soilbook.chapters.earthengine import earthengine_inputs
        from soilbook.data.earthengine.recipes.soc import extract_soc_data, soc_window_args

        inputs = earthengine_inputs(p, **_earthengine_args(p))
        year, start, months = soc_window_args(inputs.dates)
        data = extract_soc_data(
            inputs.points,
            year=year,
            start=start,
            months=months,
            cache_dir=inputs.cache_dir / "soc",
            block_size_km=p["block_size_km"],
            project=inputs.project,
        )
    else:
        from soilbook.data.real.soc_file import load_soc_file

        data = load_soc_file(
            p["data_path"], target_column=p["target_column"], block_size_km=p["block_size_km"]
        )
    return subsample_labelled(data, p["max_labelled"], p["seed"])


def subsample_labelled(data: Any, max_labelled: int, seed: int) -> Any:
    """``data`` (a :class:`~soilbook.data.soc.SocData`) with at most ``max_labelled`` labelled
    locations, drawn at random with ``seed`` and kept in their order (0: all). The unlabelled
    set is unchanged; the description says how many were kept."""
    import numpy as np

    from soilbook.data.schema import SAMPLE
    from soilbook.data.soc import SocData

    n = int(data.labelled.sizes[SAMPLE])
    if not max_labelled or n <= max_labelled:
        return data
    rows = np.sort(
        np.random.default_rng([int(seed), 3]).choice(n, int(max_labelled), replace=False)
    )
    note = (
        f" Subsampled for the time budget: {max_labelled} of the {n} labelled locations, drawn "
        f"at random (seed {seed}); max_labelled=0 keeps all."
    )
    return SocData(
        labelled=data.labelled.isel({SAMPLE: rows}),
        unlabelled=data.unlabelled,
        description=data.description + note,
    )


#: Text for ``--help-params`` below the table.
NOTES = "\n".join(
    [
        "Data sources:",
        "  simulated: image patches (14 Landsat-8-like layers) + 61-month climate; SOC g/kg.",
        "  raca: real RaCA SOC stocks (Mg C/ha) with their TerraClimate series, climate only "
        "(modalities 'auto' or 'climate'); -999 cells that were real zeros are set to 0.",
        "  file (data_path): CSV with lat/lon or group, the target column (empty = unlabelled) "
        "and climate columns clim_<variable>@<YYYY-MM>, or a NetCDF sample set.",
        "label_fractions: comma-separated shares in (0, 1]; the smallest must leave at least "
        f"{MIN_TRAIN_ROWS} labelled training rows per fold.",
    ]
)

CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data, notes=NOTES)

__all__ = [
    "CHAPTER",
    "DATA_SOURCES",
    "KEY",
    "MIN_CONTRASTIVE_BATCH",
    "MODALITY_CHOICES",
    "NOTES",
    "PARAMS",
    "check",
    "load_data",
    "modalities_for",
    "parse_fractions",
    "subsample_labelled",
]
