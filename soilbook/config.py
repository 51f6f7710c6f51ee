"""Parameter validation shared by the notebooks and the command line.

Each notebook declares its parameters once, here, as a tuple of :class:`Param`. The notebook's
``parameters`` cell holds the same names with the quick-profile defaults (a test keeps the two in
step), its first code cell after that calls :func:`validate_params`, and ``soilbook run`` calls it
too before papermill starts, so a wrong value stops the run with a message that says what was
wrong, what is allowed and what to do — before any data is read or model trained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from soilbook.device import check_device
from soilbook.errors import ParameterError


@dataclass(frozen=True)
class Param:
    """One notebook parameter.

    ``kind`` is the Python type (``int``, ``float``, ``str``, ``bool``); ``choices`` limits a
    string to a fixed set; ``minimum`` is an inclusive lower bound for numbers.
    """

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


def _describe(p: Param) -> str:
    if p.choices:
        return f"one of {list(p.choices)}"
    bounds = []
    if p.minimum is not None:
        bounds.append(f">= {p.minimum}")
    if p.maximum is not None:
        bounds.append(f"<= {p.maximum}")
    return f"a {p.kind.__name__}" + (f" {' and '.join(bounds)}" if bounds else "")


def _coerce(p: Param, value: Any) -> Any:
    if p.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if p.kind is bool and not isinstance(value, bool):
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is not a bool. Allowed: True or False. ({p.help})"
        )
    if p.kind is int and isinstance(value, bool):
        raise ParameterError(f"Parameter '{p.name}' = {value!r} must be an int, not a bool.")
    if not isinstance(value, p.kind):
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} has type {type(value).__name__}; "
            f"allowed: {_describe(p)}. ({p.help})"
        )
    return value


def _check_one(p: Param, value: Any) -> Any:
    value = _coerce(p, value)
    if p.choices is not None and value not in p.choices:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is not allowed; allowed: {list(p.choices)}. "
            f"({p.help})"
        )
    if p.minimum is not None and value < p.minimum:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is too small; allowed: {_describe(p)}. ({p.help})"
        )
    if p.maximum is not None and value > p.maximum:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is too large; allowed: {_describe(p)}. ({p.help})"
        )
    return value


# -- shared parameter blocks -------------------------------------------------------------------

COMMON = (
    Param("seed", int, 0, "random seed for data simulation, splits and training", minimum=0),
    Param("device", str, "auto", "'auto' (GPU when present), 'cpu' or 'cuda'"),
    Param(
        "profile",
        str,
        "quick",
        "label of the parameter profile",
        choices=("quick", "full", "custom"),
    ),
    Param(
        "output_dir",
        str,
        "../_build/outputs/01_salinity_ss_soilnet",
        "where tables, figures and checkpoints go",
    ),
)

SALINITY = (
    *COMMON,
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

_COMMON_NO_OUTPUT = tuple(p for p in COMMON if p.name != "output_dir")

DEEPSALT = (
    *_COMMON_NO_OUTPUT,
    Param(
        "output_dir",
        str,
        "../_build/outputs/02_spectral_transfer_deepsalt",
        "where tables, figures and checkpoints go",
    ),
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

NOTEBOOK_PARAMS: dict[str, tuple[Param, ...]] = {
    "01_salinity_ss_soilnet": SALINITY,
    "02_spectral_transfer_deepsalt": DEEPSALT,
}

#: Extra cross-parameter checks per notebook, run after the per-parameter ones.
CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {}


def defaults(notebook: str) -> dict[str, Any]:
    """The quick-profile defaults of ``notebook`` (its parameters cell holds the same)."""
    return {p.name: p.default for p in _spec(notebook)}


def notebook_key(notebook: str) -> str:
    """The canonical stem of ``notebook``: a path, a stem, or a unique prefix such as ``"01"``."""
    key = notebook.removesuffix(".ipynb").replace("\\", "/").split("/")[-1]
    if key in NOTEBOOK_PARAMS:
        return key
    matches = [k for k in NOTEBOOK_PARAMS if k.startswith(key + "_")]
    if len(matches) != 1:
        raise ParameterError(f"Unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}.")
    return matches[0]


def _spec(notebook: str) -> tuple[Param, ...]:
    return NOTEBOOK_PARAMS[notebook_key(notebook)]


def validate_params(
    notebook: str, params: Mapping[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """Validate ``params`` for ``notebook`` and return them with defaults filled in.

    ``partial=True`` accepts a subset (the CLI's overrides) and fills the rest from defaults;
    unknown names are always an error. Raises :class:`ParameterError` on the first problem.
    """
    spec = {p.name: p for p in _spec(notebook)}
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ParameterError(
            f"Unknown parameter(s) {unknown} for {notebook}; known: {sorted(spec)}. "
            "Check the spelling, or run `soilbook run NB --help-params`."
        )
    missing = sorted(set(spec) - set(params))
    if missing and not partial:
        raise ParameterError(f"Missing parameter(s) {missing} for {notebook}.")
    out = {name: p.default for name, p in spec.items()}
    for name, value in params.items():
        out[name] = _check_one(spec[name], value)
    check_device(out["device"])
    key = notebook_key(notebook)
    if key in CROSS_CHECKS:
        CROSS_CHECKS[key](out)
    return out


def _check_salinity(p: dict[str, Any]) -> None:
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
    from soilbook.data.sources import check_source_args

    check_source_args(
        p["data_source"], dataset_id=p["dataset_id"], target=p["target"], data_path=p["data_path"]
    )


CROSS_CHECKS["01_salinity_ss_soilnet"] = _check_salinity


def _check_deepsalt(p: dict[str, Any]) -> None:
    from soilbook.data.transfer import check_transfer_args

    check_transfer_args(
        p["target"],
        lab_source=p["lab_source"],
        data_path=p["data_path"] or None,
        target_column=p["target_column"],
        n_sites=p["n_sites"],
        paired_fraction=p["paired_fraction"],
        unlabelled_per_site=p["unlabelled_per_site"],
        n_regions=None if (p["target"], p["lab_source"]) == ("soc", "library") else p["n_regions"],
        holdout_region=None if p["holdout_region"] == "all" else p["holdout_region"],
    )


CROSS_CHECKS["02_spectral_transfer_deepsalt"] = _check_deepsalt
