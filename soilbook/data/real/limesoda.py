"""LimeSoDa field datasets with Sentinel-2 bands, as a soilbook sample set.

LimeSoDa (Schmidinger et al. 2025, Geoderma 117337; CC BY-SA 4.0; the ``LimeSoDa`` package
bundles the data, so nothing is downloaded) holds 31 field- and farm-scale soil datasets. Seven
of them carry a Sentinel-2 Level-2A *bare-soil* image at every sample plus terrain and proximal
sensing covariates, which is what the salinity chapter's models take as input:
:data:`SENTINEL2_DATASETS`. The others (lab spectra, proximal sensing only) are refused with a
message listing these seven.

What the loader does, and why
-----------------------------
- **Targets** ``SOC`` (soil organic carbon, % = g per 100 g), ``pH`` (unitless; in CaCl2 for the
  Brandenburg sets, in water 2.5:1 for the Brazilian sets — see ``attrs["target_method"]``) and
  ``Clay`` (%), from the ``<T>_target`` columns. Units and methods are those of the LimeSoDa
  dataset documentation. All seven sets report SOC (none reports SOM instead); if a future set
  only had ``SOM_target`` the loader says so rather than converting.
- **Reflectance** ``(sample, date=1, band)`` from the ``B01``...``B12`` columns present. LimeSoDa
  stores them as Level-2A digital numbers (surface reflectance × 10 000, documented as
  "unitless"); we divide by 10 000 to get 0-1 reflectance. Four sets (BB.72, G.104, MG.112,
  MGS.101) were acquired after ESA's processing baseline 04.00 (25 Jan 2022), whose products add
  +1000 to the stored numbers. LimeSoDa does not say whether that offset was removed; the band
  values of those sets are not systematically ~0.1 brighter than the older sets from the same
  regions (e.g. BB.72 vs BB.250: median B12 0.454 vs 0.449), so we assume it was removed and
  subtract nothing. ``attrs["s2_acquisition"]`` gives the image month.
- **Covariates** ``(sample, feature)``: ``Altitude`` (m) and ``Slope`` (°) → terrain;
  ``ERa`` (apparent electrical resistivity, Ω m), gamma counts ``G_*`` and on-the-go ``pH_ISE``
  → soil (proximal soil sensing); ``NDVI`` / ``GNDVI`` → vegetation. Note that NDVI/GNDVI come
  from a *different* Sentinel-2 image taken during the growing season, so they do not equal the
  NDVI of the bare-soil bands.
- **Groups** for cross-validation are square **spatial blocks** of the projected coordinates: the
  largest side from :data:`BLOCK_SIDES_M` that still gives at least ``min_blocks`` (10) occupied
  blocks, so that 5- or 10-fold grouped CV is possible while neighbouring samples stay together.
  LimeSoDa's own predefined folds are random (not spatial); they are kept as the coordinate
  ``limesoda_fold`` for comparison with the published benchmark.
- **lat / lon** (WGS84) are converted from the projected coordinates; the EPSG code is taken
  from the coordinate column names (``x_25833`` → EPSG:25833) and :mod:`pyproj` does the work.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from soilbook import geo
from soilbook.data.schema import sample_set
from soilbook.data.spectra import sentinel2_centres_nm
from soilbook.data.targets import LIMESODA_TARGETS, describe, resolve_target
from soilbook.errors import ParameterError

#: LimeSoDa datasets with a Sentinel-2 bare-soil image (at least 10 of the bands B02...B12).
SENTINEL2_DATASETS = ("B.204", "BB.250", "BB.72", "G.104", "G.150", "MG.112", "MGS.101")
#: The targets every LimeSoDa dataset carries (case-insensitive on input; units and long names
#: in :data:`soilbook.data.targets.PROPERTIES`).
TARGETS = LIMESODA_TARGETS

#: Sentinel-2A central wavelengths (nm), ESA S2-SRF v3.0, under LimeSoDa's band names
#: (``B01`` ... ``B12``, ``B8A``), from the packaged table (:func:`spectra.sentinel2_centres_nm`).
S2_CENTRES_NM = {
    re.sub(r"^B(\d)$", r"B0\1", band): nm for band, nm in sentinel2_centres_nm("A").items()
}
#: Candidate spatial-block sides, largest first (metres).
#: Block sides tried for LimeSoDa's field- and farm-scale sets, metres (at most 2 km).
BLOCK_SIDES_M = tuple(s for s in geo.BLOCK_SIDES_M if s <= 2000)

_FEATURE_UNITS = {
    "Altitude": "m",
    "Slope": "degree",
    "ERa": "ohm m",
    "pH_ISE": "1",
    "NDVI": "1",
    "GNDVI": "1",
}
# From the LimeSoDa dataset pages: month of the bare-soil image, methods, sampling depth.
_WB = "Walkley & Black titration"
_DC = "dry combustion after removing inorganic C (DIN ISO 10694)"
_PH_W = "in water, 2.5:1 liquid:soil"
_PH_CA = "in CaCl2, 5:1 liquid:soil (DIN ISO 10390)"
_META: dict[str, dict[str, str]] = {
    "B.204": {"s2": "2016-11", "soc": _WB, "ph": _PH_W, "depth": "0-20 cm", "where": "Bahia, Brazil"},
    "BB.250": {"s2": "2020-04", "soc": _DC, "ph": _PH_CA, "depth": "0-30 cm", "where": "Brandenburg, Germany"},
    "BB.72": {"s2": "2022-08", "soc": _DC, "ph": _PH_CA, "depth": "0-30 cm", "where": "Brandenburg, Germany"},
    "G.104": {"s2": "2022-07", "soc": _WB, "ph": _PH_W, "depth": "0-20 cm", "where": "Goias, Brazil"},
    "G.150": {"s2": "2017-07", "soc": _WB, "ph": _PH_W, "depth": "0-20 cm", "where": "Goias, Brazil"},
    "MG.112": {"s2": "2022-10", "soc": _WB, "ph": _PH_W, "depth": "0-20 cm", "where": "Mato Grosso, Brazil"},
    "MGS.101": {"s2": "2022-08", "soc": _WB, "ph": _PH_W, "depth": "0-20 cm", "where": "Mato Grosso do Sul, Brazil"},
}  # fmt: skip

LICENCE = "CC BY-SA 4.0"
CITATION = (
    "Schmidinger, J., Vogel, S., Barkov, V., et al. (2025). LimeSoDa: A dataset collection for "
    "benchmarking of machine learning regressors in digital soil mapping. Geoderma, 117337."
)


def _import_limesoda() -> Any:
    try:
        import LimeSoDa
    except ImportError as err:  # pragma: no cover - it is a core dependency
        raise ImportError(
            "data_source='limesoda' needs the LimeSoDa package: pip install limesoda"
        ) from err
    return LimeSoDa


def normalise_target(target: str) -> str:
    """``"soc"`` → ``"SOC"``; raises :class:`ParameterError` listing :data:`TARGETS`."""
    return resolve_target(target, TARGETS, where="LimeSoDa")


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if it has Sentinel-2 bands, else raise a helpful error."""
    if dataset_id in SENTINEL2_DATASETS:
        return dataset_id
    known = ""
    try:
        names = [n for n in _import_limesoda().list_datasets() if n != "Overview_Datasets"]
        if dataset_id in names:
            known = (
                f" {dataset_id!r} is a LimeSoDa dataset, but it has no Sentinel-2 bare-soil "
                "bands (its features are lab spectra or proximal sensing only)."
            )
    except ImportError:  # pragma: no cover
        pass
    raise ParameterError(
        f"dataset_id={dataset_id!r} cannot feed this chapter.{known} Allowed (LimeSoDa sets with "
        f"Sentinel-2 bands): {list(SENTINEL2_DATASETS)}."
    )


def to_lonlat(x: np.ndarray, y: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``x``, ``y`` in EPSG:``epsg`` → (lon, lat) in WGS84 degrees (pyproj)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(lon), np.asarray(lat)


def _feature_group(name: str) -> str:
    if name in ("Altitude", "Slope"):
        return "terrain"
    if name in ("NDVI", "GNDVI"):
        return "vegetation"
    if name in ("ERa", "pH_ISE") or name.startswith("G_"):
        return "soil"
    return "other"


def _target_column(df: pd.DataFrame, dataset_id: str, target: str) -> str:
    """The ``<target>_target`` column, or a :class:`ParameterError` naming the ones there are."""
    col = f"{target}_target"
    if col not in df.columns:
        have = [c for c in df.columns if c.endswith("_target")]
        extra = (
            " It reports SOM (organic matter), not SOC; this loader does not convert."
            if (target == "SOC" and "SOM_target" in have)
            else ""
        )
        raise ParameterError(
            f"LimeSoDa {dataset_id} has no '{col}' column (targets: {have}).{extra}"
        )
    return col


def _reflectance(df: pd.DataFrame, dataset_id: str) -> tuple[list[str], np.ndarray, float]:
    """The Sentinel-2 band columns, their reflectance (sample, band; 0-1) and the divisor."""
    bands = [b for b in S2_CENTRES_NM if b in df.columns]
    if len(bands) < 10:  # pragma: no cover - guarded by SENTINEL2_DATASETS
        raise ParameterError(f"LimeSoDa {dataset_id} has only the S2 bands {bands}.")
    dn = df[bands].to_numpy(dtype=float)
    if not np.isfinite(dn).all():  # pragma: no cover - the packaged sets are complete
        raise ParameterError(f"LimeSoDa {dataset_id} has missing or infinite band values.")
    scale = 10000.0 if np.max(dn) > 1.5 else 1.0
    return bands, (dn / scale).astype(np.float32), scale


def _projected(coords: Any, dataset_id: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Projected x, y (m) and the EPSG code taken from the coordinate column names."""
    if not isinstance(coords, pd.DataFrame):  # pragma: no cover - all seven have coordinates
        raise ParameterError(f"LimeSoDa {dataset_id} has no coordinates; spatial blocks need them.")
    xcol = next(c for c in coords.columns if c.startswith("x_"))
    ycol = next(c for c in coords.columns if c.startswith("y_"))
    epsg = int(re.sub(r"\D", "", xcol))
    return coords[xcol].to_numpy(float), coords[ycol].to_numpy(float), epsg


def load_limesoda(
    dataset_id: str = "BB.250", target: str = "SOC", *, min_blocks: int = 10
) -> xr.Dataset:
    """One LimeSoDa dataset with Sentinel-2 bands as a sample set (see the module docstring).

    Parameters
    ----------
    dataset_id
        One of :data:`SENTINEL2_DATASETS`.
    target
        ``"SOC"`` (%), ``"pH"`` or ``"Clay"`` (%), case-insensitive.
    min_blocks
        Minimum number of spatial blocks used as CV groups.

    Returns
    -------
    xarray.Dataset
        ``target`` (sample), ``reflectance`` (sample, date=1, band; 0-1), ``covariates``
        (sample, feature) with ``feature_group``; coords ``group`` (spatial block),
        ``limesoda_fold``, ``lat``/``lon`` (WGS84), ``x``/``y`` (m, native CRS).
    """
    dataset_id = check_dataset_id(dataset_id)
    target = normalise_target(target)
    raw = _import_limesoda().load_dataset(dataset_id)
    df: pd.DataFrame = raw["Dataset"].reset_index(drop=True)
    folds = np.asarray(raw["Folds"]).astype(int)
    col = _target_column(df, dataset_id, target)
    bands, refl, scale = _reflectance(df, dataset_id)
    targets = [c for c in df.columns if c.endswith("_target")]
    feats = [c for c in df.columns if c not in targets and c not in bands]

    x, y, epsg = _projected(raw["Coordinates"], dataset_id)
    lon, lat = to_lonlat(x, y, epsg)
    side = geo.choose_block_side(x, y, min_blocks=min_blocks, sides=BLOCK_SIDES_M)
    meta = _META[dataset_id]
    prop = describe(target)
    crs = {"units": "m", "crs": f"EPSG:{epsg}"}
    return sample_set(
        df[col].to_numpy(dtype=np.float64),
        groups=geo.spatial_blocks(x, y, side),
        group_long_name=f"spatial block ({side:g} m)",
        target_units=prop.units,
        target_long_name=prop.long_name,
        reflectance=refl[:, None, :],
        dates=[meta["s2"]],
        bands=bands,
        wavelengths_nm=[S2_CENTRES_NM[b] for b in bands],
        reflectance_long_name="surface reflectance (Sentinel-2 L2A bare-soil image)",
        reflectance_attrs={"scale_applied": f"stored value / {scale:g}"},
        covariates=df[feats].to_numpy(dtype=np.float32),
        features={f: _feature_group(f) for f in feats},
        feature_units=[_FEATURE_UNITS.get(f, "1") for f in feats],
        covariate_long_name="terrain, proximal sensing and vegetation covariates",
        sample_ids=np.arange(len(df)),
        lat=lat,
        lon=lon,
        coords={
            "limesoda_fold": (
                "sample",
                folds,
                {"long_name": "LimeSoDa's predefined random 10-fold id"},
            ),
            "x": ("sample", x, dict(crs)),
            "y": ("sample", y, dict(crs)),
        },
        source=f"LimeSoDa {dataset_id}",
        licence=LICENCE,
        citation=CITATION,
        simulated=False,
        target_name=target,
        dataset_id=dataset_id,
        location=meta["where"],
        group_kind="spatial block",
        block_size_m=side,
        crs=f"EPSG:{epsg}",
        s2_acquisition=meta["s2"],
        reflectance_scale=f"stored value / {scale:g}",
        target_method={"SOC": meta["soc"], "pH": meta["ph"], "Clay": "sieve-pipette"}[target],
        sampling_depth=meta["depth"],
    )


__all__ = [
    "SENTINEL2_DATASETS",
    "TARGETS",
    "check_dataset_id",
    "load_limesoda",
    "normalise_target",
    "to_lonlat",
]
