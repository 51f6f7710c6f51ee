"""Chapter 2 — DeepSalt: lab-to-satellite spectral transfer for soil salinity (and SOC).

The notebook ``notebooks/02_spectral_transfer_deepsalt.ipynb``: its parameters
(:data:`PARAMS`), the checks of the whole set (:func:`check`: ``heads`` must divide ``width``,
then :func:`soilbook.data.transfer.check_transfer_args`, which reads only a CSV's header and
scans its bytes) and its data (:func:`load_data`, over
:func:`soilbook.data.transfer.load_transfer`), gathered in :data:`CHAPTER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soilbook.chapters.common import Chapter, Param, check_heads_divide_width, shared_params

KEY = "02_spectral_transfer_deepsalt"

PARAMS: tuple[Param, ...] = (
    *shared_params(output_dir=f"../_build/outputs/{KEY}"),
    Param(
        "target",
        str,
        "salinity",
        "'salinity' (library: simulated EC on real ICRAF spectra; ossl: real EC) or 'soc'; "
        "with lab_source='file' the name of your property",
    ),
    Param(
        "lab_source",
        str,
        "library",
        "lab spectra from the bundled 'library', your own 'file' (data_path) or 'ossl' (download)",
        choices=("library", "file", "ossl"),
    ),
    Param("data_path", str, "", "your lab spectra (CSV with refl_<nm> columns, or NetCDF)"),
    Param("target_column", str, "target", "the target's column in your file (lab_source='file')"),
    Param("n_sites", int, 800, "lab sites drawn from the spectral library", minimum=20),
    Param("paired_fraction", float, 0.25, "share of lab sites with a labelled satellite pixel"),
    Param("unlabelled_per_site", int, 2, "unlabelled satellite pixels around a site", minimum=0),
    Param("n_regions", int, 5, "geographic regions for salinity (soc: the 3 datasets)", minimum=2),
    Param("holdout_region", str, "all", "region held out ('all' = leave each region out in turn)"),
    Param("cv_folds", int, 5, "folds of the random-split comparison", minimum=2),
    Param("epochs", int, 40, "maximum training epochs (teacher and student)", minimum=1),
    Param("batch_size", int, 32, "mini-batch size", minimum=1),
    Param("width", int, 32, "encoder width (the official code: 64)", minimum=4),
    Param("depth", int, 2, "encoder layers (the official code: 3)", minimum=1),
    Param("heads", int, 4, "attention heads", minimum=1),
    Param("learning_rate", float, 1e-3, "Adam(W) learning rate", minimum=0.0),
    Param("patience", int, 8, "early-stopping patience in epochs", minimum=1),
    Param("alpha", float, 0.1, "weight of the target (Huber) loss", minimum=0.0),
    Param("beta", float, 0.9, "weight of the feature-distillation loss", minimum=0.0),
    Param("rf_trees", int, 200, "trees in the Random Forest", minimum=1),
    Param("explain_samples", int, 60, "samples for band attributions and SHAP", minimum=5),
)

_WIDTH_MIN = next(p.minimum for p in PARAMS if p.name == "width")


def n_regions(p: Mapping[str, Any]) -> int | None:
    """The ``n_regions`` argument of the loader: None where the data fix the regions (SOC from
    the bundled library: the three LimeSoDa sets), else the parameter."""
    return None if (p["target"], p["lab_source"]) == ("soc", "library") else p["n_regions"]


def check(p: dict[str, Any]) -> None:
    """Chapter 2's cross-checks of a full, per-value-checked parameter set."""
    from soilbook.data.transfer import check_transfer_args

    check_heads_divide_width(p["width"], p["heads"], min_width=int(_WIDTH_MIN or 1))
    check_transfer_args(
        p["target"],
        lab_source=p["lab_source"],
        data_path=p["data_path"] or None,
        target_column=p["target_column"],
        n_sites=p["n_sites"],
        paired_fraction=p["paired_fraction"],
        unlabelled_per_site=p["unlabelled_per_site"],
        n_regions=n_regions(p),
        holdout_region=None if p["holdout_region"] == "all" else p["holdout_region"],
    )


def load_data(p: Mapping[str, Any]) -> Any:
    """The lab, satellite and unlabelled sample sets for validated parameters ``p``
    (:func:`soilbook.data.transfer.load_transfer`, a :class:`~soilbook.data.transfer.TransferData`)."""
    from soilbook.data.transfer import load_transfer

    return load_transfer(
        p["target"],
        n_sites=p["n_sites"],
        paired_fraction=p["paired_fraction"],
        unlabelled_per_site=p["unlabelled_per_site"],
        lab_source=p["lab_source"],
        data_path=p["data_path"] or None,
        target_column=p["target_column"],
        n_regions=n_regions(p),
        seed=p["seed"],
    )


CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data)

__all__ = ["CHAPTER", "KEY", "PARAMS", "check", "load_data", "n_regions"]
