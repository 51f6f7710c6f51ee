"""Chapter 2 — DeepSalt: lab-to-satellite spectral transfer for soil salinity (and SOC).

The notebook ``notebooks/02_spectral_transfer_deepsalt.ipynb``: its parameters
(:data:`PARAMS`), the checks of the whole set (:func:`check`: ``heads`` must divide ``width``,
then :func:`soilbook.data.transfer.check_transfer_args`, which reads only a CSV's header and
scans its bytes — the required columns, the spectra's coverage of the lab grid, the floor on
labelled pixels per region) and its data (:func:`load_data`, over
:func:`soilbook.data.transfer.load_transfer`), gathered in :data:`CHAPTER`.

What the data need, shown by ``soilbook run 02 --help-params`` (:data:`NOTES`): a lab file's
spectra are used where they cover 400-2450 nm (:data:`soilbook.data.labdomain.COVERAGE_RULE`);
they may be reflectance (``refl_<nm>``: 0-1, percent or x 10 000) or absorbance
(``abs_<nm>``, log10(1/R)), which is detected (``spectra_kind="auto"``) or told and converted
to R = 10^-A (:func:`soilbook.data.tables.spectra_to_reflectance`); ``lat``/``lon`` are needed
only without a ``group`` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soilbook.chapters.common import (
    SPECTRA_KINDS,
    Chapter,
    Param,
    check_heads_divide_width,
    check_n_jobs,
    shared_params,
)
from soilbook.chapters.earthengine import EARTHENGINE, EARTHENGINE_PARAMS
from soilbook.errors import ParameterError

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
    Param(
        "data_path",
        str,
        "",
        "your lab spectra: a CSV with refl_<nm> (reflectance) or abs_<nm> (absorbance) "
        "columns, the target, lat/lon (not needed when "
        "a 'group' column gives the regions), optional site, depth_top_cm (only topsoil, top "
        "<= 5 cm, gets satellite pixels) and ancillary '<group>:<name>' columns (e.g. "
        "soil:sand, climate:map_mm); or a NetCDF sample set. Coverage: the lab grid is "
        "400-2450 nm every 10 nm where the spectra cover it (at least 200 nm; e.g. NIR-only "
        "1100-2498 nm gives 1100-2450 nm) and satellite bands whose centre +/- FWHM/2 is not "
        "inside it are dropped",
    ),
    Param("target_column", str, "target", "the target's column in your file (lab_source='file')"),
    Param(
        "data_source",
        str,
        "simulated",
        "where the satellite pixels come from: 'simulated' (EnMAP pixels simulated from the lab "
        "spectra) or 'earthengine' (real EO-1 Hyperion pixels, EnMAP's stand-in, at your "
        "points: points_path ids = the lab file's site ids)",
        choices=("simulated", EARTHENGINE),
    ),
    *EARTHENGINE_PARAMS,
    Param(
        "spectra_kind",
        str,
        "auto",
        "how your lab file's spectra are stored (lab_source='file'): 'auto' (abs_<nm> columns "
        "are absorbance, otherwise told from the values; an ambiguous table is refused), "
        "'reflectance' (0-1 or x 10000), 'percent' or 'absorbance' (log10(1/R), converted to "
        "R = 10^-A)",
        choices=SPECTRA_KINDS,
    ),
    Param("n_sites", int, 800, "lab sites drawn from the spectral library", minimum=20),
    Param("paired_fraction", float, 0.25, "share of lab sites with a labelled satellite pixel"),
    Param("unlabelled_per_site", int, 2, "unlabelled satellite pixels around a site", minimum=0),
    Param(
        "n_regions",
        int,
        5,
        "regions built from the coordinates: compact, of comparable extent (soc from the "
        "library: the 3 LimeSoDa datasets; a file's 'group' column: its groups)",
        minimum=2,
    ),
    Param("holdout_region", str, "all", "region held out ('all' = leave each region out in turn)"),
    Param(
        "min_region_pixels",
        int,
        20,
        "fewest labelled satellite pixels a region built from coordinates must hold (its test "
        "set when held out); isolated sites are dropped and n_regions lowered, with a warning, "
        "when the sites cannot meet it",
        minimum=2,
    ),
    Param("cv_folds", int, 3, "folds of the random-split comparison (full profile 5)", minimum=2),
    Param(
        "epochs",
        int,
        150,
        "maximum training epochs (teacher and student; most stop early)",
        minimum=1,
    ),
    Param("batch_size", int, 32, "mini-batch size", minimum=1),
    Param("width", int, 32, "encoder width (the official code: 64)", minimum=4),
    Param("depth", int, 2, "encoder layers (the official code: 3)", minimum=1),
    Param("heads", int, 4, "attention heads", minimum=1),
    Param(
        "n_tokens",
        int,
        16,
        "band-group tokens per spectrum (about 13 lab bands each at 16; full profile 32)",
        minimum=1,
    ),
    Param("learning_rate", float, 1e-3, "Adam(W) learning rate", minimum=0.0),
    Param("patience", int, 8, "early-stopping patience in epochs", minimum=1),
    Param("alpha", float, 0.1, "weight of the target (Huber) loss", minimum=0.0),
    Param("beta", float, 0.9, "weight of the feature-distillation loss", minimum=0.0),
    Param("rf_trees", int, 200, "trees in the Random Forest", minimum=1),
    Param("explain_samples", int, 60, "samples for band attributions and SHAP", minimum=5),
    Param(
        "n_seeds",
        int,
        3,
        "network repetitions over seeds for the claims' intervals; full profile 5",
        minimum=1,
        maximum=50,
    ),
    Param("n_jobs", int, 2, "worker processes for cross-validation folds", minimum=1, maximum=64),
)

_WIDTH_MIN = next(p.minimum for p in PARAMS if p.name == "width")


def n_regions(p: Mapping[str, Any]) -> int | None:
    """The ``n_regions`` argument of the loader: None where the data fix the regions (SOC from
    the bundled library: the three LimeSoDa sets), else the parameter."""
    return None if (p["target"], p["lab_source"]) == ("soc", "library") else p["n_regions"]


def _earthengine_args(p: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`soilbook.chapters.earthengine.check_earthengine` for chapter 2:
    the Hyperion recipe's precheck, its 30 m grid and the points' target column."""
    from soilbook.data.earthengine.recipes.transfer import HYPERION_SCALE_M, precheck_transfer

    return {
        "precheck": precheck_transfer,
        "scale": HYPERION_SCALE_M,
        "target_column": p["target_column"],
    }


def check(p: dict[str, Any]) -> None:
    """Chapter 2's cross-checks of a full, per-value-checked parameter set."""
    from soilbook.data.transfer import check_transfer_args

    check_heads_divide_width(p["width"], p["heads"], min_width=int(_WIDTH_MIN or 1))
    check_n_jobs(p["n_jobs"])
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
        min_region_pixels=p["min_region_pixels"],
        spectra_kind=p["spectra_kind"],
    )
    if p["data_source"] == EARTHENGINE:
        from soilbook.chapters.earthengine import check_earthengine

        if (p["lab_source"], p["target"]) == ("library", "salinity"):
            raise ParameterError(
                "data_source='earthengine' pairs real satellite pixels and their measured EC with "
                "lab spectra, but the library's EC labels are simulated. What to do: use your "
                "own lab spectra (-p lab_source file -p data_path ...) or -p lab_source ossl, "
                "with the lab sites' ids in the points' id column."
            )
        check_earthengine(p, **_earthengine_args(p))


def load_data(p: Mapping[str, Any]) -> Any:
    """The lab, satellite and unlabelled sample sets for validated parameters ``p``
    (:func:`soilbook.data.transfer.load_transfer`, a :class:`~soilbook.data.transfer.TransferData`);
    with ``data_source="earthengine"`` the satellite pixels are real EO-1 Hyperion pixels at the
    points (:func:`soilbook.data.transfer.with_satellite`)."""
    from soilbook.data.transfer import load_transfer

    data = load_transfer(
        p["target"],
        n_sites=p["n_sites"],
        paired_fraction=p["paired_fraction"],
        unlabelled_per_site=p["unlabelled_per_site"],
        lab_source=p["lab_source"],
        data_path=p["data_path"] or None,
        target_column=p["target_column"],
        n_regions=n_regions(p),
        seed=p["seed"],
        min_region_pixels=p["min_region_pixels"],
        spectra_kind=p["spectra_kind"],
    )
    if p["data_source"] != EARTHENGINE:
        return data
    from soilbook.chapters.earthengine import earthengine_inputs
    from soilbook.data.earthengine.recipes.transfer import extract_transfer_inputs
    from soilbook.data.transfer import check_site_ids, with_satellite

    inputs = earthengine_inputs(p, **_earthengine_args(p))
    check_site_ids(data, (pt["id"] for pt in inputs.points))  # before any request
    satellite = extract_transfer_inputs(
        inputs.points, inputs.dates, project=inputs.project, cache_dir=inputs.cache_dir / "transfer"
    )
    return with_satellite(data, satellite)


#: Text for ``--help-params`` below the table: what a lab file needs, before any run.
NOTES = "\n".join(
    [
        "Your lab file (lab_source='file', data_path):",
        "  spectra: refl_<nm> (reflectance) or abs_<nm> (absorbance) columns, not both; "
        "spectra_kind='auto' detects absorbance log10(1/R) (abs_<nm> names, or values that "
        "cannot be reflectance) and percent / x 10000, converts absorbance to R = 10^-A with a "
        "warning, and refuses an ambiguous table (then set spectra_kind).",
        "  coverage: the lab grid is 400-2450 nm every 10 nm where the spectra cover it (at "
        "least 200 nm; NIR-only 1100-2498 nm gives 1100-2450 nm); satellite bands whose "
        "centre +/- FWHM/2 lies outside it are dropped.",
        "  places: lat/lon (WGS84 degrees), or a 'group' column for the regions; without "
        "coordinates the pixels have no location and regions no extent.",
    ]
)

CHAPTER = Chapter(key=KEY, params=PARAMS, check=check, load=load_data, notes=NOTES)

__all__ = [
    "CHAPTER",
    "KEY",
    "NOTES",
    "PARAMS",
    "SPECTRA_KINDS",
    "check",
    "check_n_jobs",
    "load_data",
    "n_regions",
]
