"""Upper Colorado River Basin soil salinity (USGS), as a soilbook sample set.

The table (registry name ``ucrb_salinity``; public domain, USGS, with a CC0 waiver) holds 3,067
horizons of 608 NCSS laboratory pedons in the Upper Colorado River Basin with the electrical
conductivity of a 1:2 soil:water extract (``ec_12pre``, dS/m) and covariates extracted at the
pedon location (Nauman et al. 2019, Water Resources Research; data release
doi:10.5066/P9QSFDJN). There are no reflectance spectra, only Landsat-8 band *ratios*, so the
sample set has ``covariates`` and no ``reflectance``.

Choices, checked against the file
---------------------------------
- **Target** ``ec`` = ``ec_12pre`` in dS/m (0.01-61.6, median 0.31; strongly skewed — the source
  study modelled log(EC), and ``attrs["target_transform_hint"]`` says so; the loader returns EC).
- **Groups** = ``Pedon_key``: horizons of one profile share a location and its covariates, so
  they must never be split between training and test folds (``group_kind = "pedon"``).
- **Depth** ``"surface"`` keeps the horizons with ``depth_t <= 0 < depth_b`` (the source study's
  surface model: 587 horizons of 545 pedons); ``"all"`` keeps every horizon with a valid depth
  range (33 horizons have ``depth_b <= depth_t`` and are dropped). The horizon mid-depth
  ``(depth_t + depth_b) / 2`` (cm) is added as the covariate ``depth_mid_cm`` (group "soil").
  The file's own ``Hzn_depth`` is *not* used: it is half the horizon thickness, not its depth.
- **Feature groups** (for grouped importance): Landsat-8 band ratios ``redblue``, ``redgreen``,
  ``redswir1``, ``swir1nir``, ``swir1swir2`` → spectral; elevation, slope, aspect terms
  (``EASTNESS``, ``NENESS``, ``NWNESS``, ``SOUTHNESS``), curvatures (``PCURV``, ``TCURV``),
  ``PROTINDEX`` and the relative-height terms ``RELHT*`` / ``RELMNHT*`` → terrain; the wetness and
  flow terms ``TWI_TOPMODEL``, ``MRVBF``, ``MRRTF`` and ``CAlog_10`` (log catchment area) →
  hydrology; ``ppt_ann``, ``ppt_ratio``, ``temp_ann`` → climate; the land-cover / land-form codes
  ``NLCDcl``, ``GAP``, ``LFELEMS`` → other. **These three are categorical codes stored as numbers**
  (``feature_kind = "categorical code"``): fine for trees, meaningless as magnitudes for linear
  models or networks unless one-hot encoded.
- **Scales**: the file name's "covarsc" marks covariates stored as scaled numbers (e.g.
  ``temp_ann`` ~ 10^6, aspect terms in ±10 000); values are kept exactly as published and their
  ``feature_units`` say "as published (scaled)". Standardise before feeding networks.
- **Coordinates**: ``LAT_dec`` / ``LONG_dec`` (WGS84) → ``lat`` / ``lon``; ``coords.x1`` /
  ``coords.x2`` are the same points in EPSG:5070 (NAD83 / Conus Albers; checked to the
  millimetre) → ``x`` / ``y`` in metres.
- Rows with a missing target or covariate are dropped (none in the published file); the counts
  are in ``attrs["preprocessing"]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.schema import sample_set
from soilbook.data.targets import UCRB_TARGETS, resolve_target
from soilbook.errors import ParameterError

log = logging.getLogger(__name__)

TARGETS = UCRB_TARGETS
DEPTHS = ("all", "surface")

SPECTRAL = ("redblue", "redgreen", "redswir1", "swir1nir", "swir1swir2")
TERRAIN = (
    "ELEVm", "SLOPE", "EASTNESS", "NENESS", "NWNESS", "SOUTHNESS", "PCURV", "TCURV", "PROTINDEX",
    "RELHT1", "RELHT2", "RELHT4", "RELHT8", "RELHT16", "RELHT32", "RELHT64", "RELHT128",
    "RELMNHT1", "RELMNHT2", "RELMNHT4", "RELMNHT8", "RELMNHT16", "RELMNHT32", "RELMNHT64",
    "RELMNHT128",
)  # fmt: skip
HYDROLOGY = ("TWI_TOPMODEL", "MRVBF", "MRRTF", "CAlog_10")
CLIMATE = ("ppt_ann", "ppt_ratio", "temp_ann")
CATEGORICAL = ("NLCDcl", "GAP", "LFELEMS")

LICENCE = "public domain (USGS), CC0 1.0 waiver"
CITATION = (
    "Nauman, T. W., Ely, C. P., Miller, M. P., & Duniway, M. C. (2019). Salinity yield modeling "
    "of the Upper Colorado River Basin using 30-m resolution soil maps and random forests. Water "
    "Resources Research, 55, 4954-4973. Data release: Nauman, T. W. (2019), U.S. Geological "
    "Survey, doi:10.5066/P9QSFDJN"
)


def feature_groups() -> dict[str, str]:
    """Column → feature group for every covariate the loader keeps (in output order)."""
    out: dict[str, str] = {}
    for cols, group in (
        (SPECTRAL, "spectral"),
        (TERRAIN, "terrain"),
        (HYDROLOGY, "hydrology"),
        (CLIMATE, "climate"),
        (CATEGORICAL, "other"),
    ):
        out.update(dict.fromkeys(cols, group))
    out["depth_mid_cm"] = "soil"
    return out


def read_table(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The raw tab-separated table (fetched and verified through the registry if no ``path``)."""
    if path is None:
        from soilbook.data.registry import fetch

        path = fetch("ucrb_salinity")
    return pd.read_csv(Path(path), sep="\t")


def _select_rows(df: pd.DataFrame, depth: str, groups: dict[str, str]) -> tuple[pd.DataFrame, str]:
    """The horizons of ``depth`` with a target and every covariate, and a summary of the drops."""
    n0 = len(df)
    notes = []
    bad_depth = ~(df["depth_b"] > df["depth_t"])
    if depth == "surface":
        keep = (df["depth_t"] <= 0) & (df["depth_b"] > 0)
        notes.append(f"kept {int(keep.sum())} surface horizons (depth_t <= 0 < depth_b) of {n0}")
    else:
        keep = ~bad_depth
        notes.append(f"dropped {int(bad_depth.sum())} horizons with depth_b <= depth_t")
    df = df[keep].copy()
    df["depth_mid_cm"] = (df["depth_t"] + df["depth_b"]) / 2.0
    na = df[["ec_12pre", *groups]].isna().any(axis=1)
    notes.append(f"dropped {int(na.sum())} rows with a missing target or covariate")
    df = df[~na].reset_index(drop=True)
    summary = "; ".join(notes) + f"; {len(df)} samples from {df['Pedon_key'].nunique()} pedons"
    return df, summary


def _feature_units(name: str) -> str:
    if name == "depth_mid_cm":
        return "cm"
    return "code" if name in CATEGORICAL else "as published (scaled)"


def load_ucrb(
    target: str = "ec", depth: str = "all", path: str | os.PathLike[str] | None = None
) -> xr.Dataset:
    """The UCRB salinity horizons as a sample set (see the module docstring for every choice).

    Parameters
    ----------
    target
        ``"ec"``: EC of a 1:2 soil:water extract, dS/m.
    depth
        ``"all"`` horizons or ``"surface"`` (``depth_t <= 0 < depth_b``).
    path
        A local copy of the table; default: ``soilbook.data.registry.fetch("ucrb_salinity")``.

    Returns
    -------
    xarray.Dataset
        ``target`` (sample), ``covariates`` (sample, feature) with ``feature_group``,
        ``feature_kind`` and ``feature_units``; coords ``group`` (Pedon_key), ``lat``/``lon``,
        ``x``/``y`` (EPSG:5070, m), ``depth_top_cm``/``depth_bottom_cm``, ``sample_id``.
    """
    target = resolve_target(target, TARGETS, where="'ucrb'")
    if depth not in DEPTHS:
        raise ParameterError(f"depth={depth!r} is not allowed; allowed: {list(DEPTHS)}.")
    df = read_table(path)
    groups = feature_groups()
    raw_cols = [c for c in groups if c != "depth_mid_cm"]
    needed = ["ec_12pre", "depth_t", "depth_b", "LAT_dec", "LONG_dec", "Pedon_key", *raw_cols]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(
            f"The UCRB table lacks the column(s) {missing}; is it the file registered as "
            "'ucrb_salinity' (cop_ncss17_ec12_2D_covarsc.txt)?"
        )
    df, summary = _select_rows(df, depth, groups)
    log.info("UCRB: %s", summary)

    feats = list(groups)
    n = len(df)
    x = df["coords.x1"].to_numpy(float) if "coords.x1" in df.columns else np.full(n, np.nan)
    y = df["coords.x2"].to_numpy(float) if "coords.x2" in df.columns else np.full(n, np.nan)
    sample_id = (
        df["Sample_ID"].astype(str).to_numpy() if "Sample_ID" in df else np.arange(n).astype(str)
    )
    crs = {"units": "m", "crs": "EPSG:5070"}
    return sample_set(
        df["ec_12pre"].to_numpy(np.float64),
        groups=df["Pedon_key"].to_numpy(int),
        group_long_name="NCSS pedon key",
        target_units="dS/m",
        target_long_name="electrical conductivity of a 1:2 soil:water extract",
        covariates=df[feats].to_numpy(np.float32),
        features=groups,
        feature_units=[_feature_units(f) for f in feats],
        covariate_long_name="Landsat-8 ratios, terrain, hydrology, climate, land cover, depth",
        sample_ids=np.arange(n),
        lat=df["LAT_dec"].to_numpy(float),
        lon=df["LONG_dec"].to_numpy(float),
        coords={
            "feature_kind": (
                "feature",
                ["categorical code" if f in CATEGORICAL else "continuous" for f in feats],
            ),
            "x": ("sample", x, dict(crs)),
            "y": ("sample", y, dict(crs)),
            "depth_top_cm": ("sample", df["depth_t"].to_numpy(float), {"units": "cm"}),
            "depth_bottom_cm": ("sample", df["depth_b"].to_numpy(float), {"units": "cm"}),
            "sample_id": ("sample", sample_id),
        },
        source="USGS Upper Colorado River Basin salinity (NCSS pedons), "
        "cop_ncss17_ec12_2D_covarsc.txt",
        licence=LICENCE,
        citation=CITATION,
        simulated=False,
        target_name=target,
        depth=depth,
        group_kind="pedon",
        preprocessing=summary,
        target_transform_hint="the source study fitted a quantile random forest to log(EC)",
    )


__all__ = ["DEPTHS", "TARGETS", "feature_groups", "load_ucrb", "read_table"]
