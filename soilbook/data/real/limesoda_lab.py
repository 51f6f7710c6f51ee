"""LimeSoDa's vis-NIR soil spectra on one wavelength grid: the "lab" domain of spectral transfer.

Eight of LimeSoDa's 31 datasets (Schmidinger et al. 2025) carry vis-NIR reflectance spectra
with columns ``wl_<nm>``: :data:`LAB_VNIR_DATASETS`. :func:`load_limesoda_lab` resamples them
onto a common grid (default 400-2450 nm every 10 nm, the range of the earthlib library and of
EnMAP) and pools them into one sample set, with the **dataset as the group** so that
leave-one-dataset-out validation tests transfer to an unseen region.

Left out on purpose: the MIR sets (H.138, NRW.115, NRW.62, NRW.42, O.32; columns ``wn_<cm-1>``
in wavenumbers) and RP.62 / SA.112, whose ``wl_`` columns are on-the-go **field** NIR
(1000-2400 nm only) recorded next to proximal sensors.

What the package stores, checked against its documentation and the numbers
--------------------------------------------------------------------------
========  ==============  ==============  =========================  ======================
set       spectra         range (nm)      target units (LimeSoDa)    coordinates
========  ==============  ==============  =========================  ======================
CV.98     in situ (auger) 350-2500, 1 nm  SOC %, Clay %              none
SC.93     lab, dry <2 mm  355-2500, 1 nm  SOC %, Clay %              EPSG:32722
SSP.460   lab, dry        350-2498, 2-5   SOC %, Clay %              none
SP.231    in situ         350-1700, 5 nm  **SOM** %, Clay %          EPSG:32654
MG.44     lab, dry <2 mm  431.6-2153, ~4  SOC "mmolc dm-3"*, g dm-3  EPSG:32721
SSP.58    lab, dry <2 mm  431.6-2153, ~4  SOC "mmolc dm-3"*, g dm-3  none
SL.125    lab, dry <2 mm  420-2500, 1 nm  **SOM** %, Clay %          dummy (privacy)
UL.120    lab, dry <2 mm  420-2500, 1 nm  **SOM** %, Clay %          dummy (privacy)
========  ==============  ==============  =========================  ======================

- **Reflectance scale.** Every set stores reflectance in **percent** (documented as
  "% (Reflectance)"; medians 19-34, maxima 25-83). :func:`detect_scale` checks this per set
  from the numbers (percent / fraction / absorbance log10(1/R)) and :func:`to_reflectance`
  converts to 0-1; the result is recorded per sample in the ``reflectance_scale`` coordinate.
- **Targets are pooled only in one unit.** SOC, SOM and clay are pooled in mass % and pH as
  it is (methods differ: water 1:1 to 5:1 or CaCl2; see ``target_method``). \\* MG.44 and
  SSP.58 document SOC in "mmolc dm-3" (values 8-21, which read like g dm-3 — a volume basis)
  and clay in g dm-3; without bulk densities they cannot be put in mass %, so they are refused
  for SOC and clay (use them for pH). SP.231, SL.125 and UL.120 report SOM, not SOC: ask for
  ``target="SOM"``; no SOM→SOC factor is applied.
- **Two sets are not lab spectra.** CV.98 was scanned in situ from an auger and SP.231 with a
  mounted field spectrometer; both are kept (they are vis-NIR soil spectra) and flagged in
  the ``measurement`` coordinate and :data:`IN_SITU_DATASETS`.
- **Coordinates.** SC.93, SP.231 and MG.44 are converted from their UTM zones to WGS84 with
  :func:`soilbook.data.real.limesoda.to_lonlat`; SL.125/UL.120 have deliberately displaced
  dummy coordinates, which are not used (``lat``/``lon`` NaN), like the sets without any.
- **Grid coverage.** A set is used only where its spectrum covers the whole grid (no
  extrapolation). With the default grid and ``dataset_ids=None`` that leaves CV.98, SC.93 and
  SSP.460 for SOC (651 samples); the others are listed with the reason in
  ``attrs["skipped"]`` (one string, ``"<set>: <reason>; ..."``). Naming a set that cannot
  serve raises a :class:`ParameterError` that says why; ``truncate=True`` instead narrows the
  grid to the range all chosen sets cover.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.real.limesoda import CITATION, LICENCE, _import_limesoda, to_lonlat
from soilbook.data.schema import sample_set
from soilbook.data.spectra import interpolation_matrix
from soilbook.data.tables import to_reflectance
from soilbook.data.targets import LIMESODA_LAB_TARGETS, describe, resolve_target
from soilbook.errors import ParameterError

#: LimeSoDa sets with vis-NIR reflectance spectra in nm (``wl_<nm>`` columns).
LAB_VNIR_DATASETS = ("CV.98", "SC.93", "SSP.460", "SP.231", "MG.44", "SSP.58", "SL.125", "UL.120")
#: Of these, the sets scanned in the field (not dried and sieved in a laboratory).
IN_SITU_DATASETS = ("CV.98", "SP.231")
#: Targets this loader pools (case-insensitive on input), each in the unit of
#: :data:`soilbook.data.targets.PROPERTIES`.
LAB_TARGETS = LIMESODA_LAB_TARGETS
#: The default common grid (nm).
DEFAULT_GRID_NM = np.arange(400.0, 2451.0, 10.0)
_WB = "Walkley & Black titration"
_LOI = "loss on ignition"
# From LimeSoDa's dataset pages (docs/source/datasets/*.rst, R man/*.Rd).
_META: dict[str, dict[str, object]] = {
    "CV.98": {
        "measurement": "in situ (Edelman auger), PSR+3500",
        "units": {"SOC": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOC": _WB, "pH": "water 5:1", "Clay": "sieve-pipette"},
    },
    "SC.93": {
        "measurement": "lab, dried and sieved <2 mm, ASD FieldSpec 4",
        "units": {"SOC": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOC": "wet oxidation, colorimetric (Tedesco et al. 1995)", "pH": "water 1:1", "Clay": "sieve-pipette"},
    },
    "SSP.460": {
        "measurement": "lab, dried, IRIS MkIV",
        "units": {"SOC": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOC": _WB, "pH": "water (ratio unspecified)", "Clay": "hydrometer"},
    },
    "SP.231": {
        "measurement": "in situ, mounted SAS3000",
        "units": {"SOM": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOM": _LOI, "pH": "water 2.5:1", "Clay": "sieve-pipette"},
    },
    "MG.44": {
        "measurement": "lab, dried and sieved <2 mm, Veris MSP3 spectrometers",
        "units": {"SOC": "mmolc dm-3 (as documented, a volume basis)", "Clay": "g dm-3", "pH": "1"},
        "methods": {"SOC": _WB, "pH": "CaCl2 2.5:1", "Clay": "hydrometer"},
    },
    "SSP.58": {
        "measurement": "lab, dried and sieved <2 mm, Veris MSP3 spectrometers",
        "units": {"SOC": "mmolc dm-3 (as documented, a volume basis)", "Clay": "g dm-3", "pH": "1"},
        "methods": {"SOC": _WB, "pH": "CaCl2 2.5:1", "Clay": "hydrometer"},
    },
    "SL.125": {
        "measurement": "lab, dried and sieved <2 mm, ASD FieldSpec Pro FR",
        "units": {"SOM": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOM": _LOI + " with clay correction", "pH": "water 5:1", "Clay": "sieve-pipette"},
    },
    "UL.120": {
        "measurement": "lab, dried and sieved <2 mm, ASD FieldSpec Pro FR",
        "units": {"SOM": "%", "Clay": "%", "pH": "1"},
        "methods": {"SOM": _LOI + " with clay correction", "pH": "water 5:1", "Clay": "sieve-pipette"},
    },
}  # fmt: skip

Scale = Literal["percent", "fraction", "absorbance"]


# -- reflectance scale -------------------------------------------------------------------------


def detect_scale(wavelengths_nm: np.ndarray, spectra: np.ndarray) -> Scale:
    """Whether vis-NIR soil spectra are reflectance in %, reflectance 0-1 or absorbance.

    Rules, in order: a median above 1.5 means **percent** reflectance (no soil has an
    absorbance log10(1/R) above 1.5 over most of the range, i.e. R < 3 %). Otherwise the
    visible-to-NIR trend decides: soil reflectance rises from 500 to 800 nm (iron oxides and
    organic matter absorb in the visible), so absorbance falls. Spectra without both
    480-520 and 780-820 nm are ambiguous (a bright soil's NIR absorbance is below 1 too): a
    ``ValueError`` asks for the scale instead of guessing.

    Parameters
    ----------
    wavelengths_nm
        Shape (wavelength,), increasing.
    spectra
        Shape (sample, wavelength).
    """
    x = np.asarray(spectra, float)
    w = np.asarray(wavelengths_nm, float)
    if x.ndim != 2 or x.shape[1] != w.size:
        raise ValueError(f"spectra must be (sample, {w.size}); got {x.shape}")
    med = float(np.nanmedian(x))
    if med > 1.5:
        return "percent"
    vis = (w >= 480) & (w <= 520)
    nir = (w >= 780) & (w <= 820)
    if vis.any() and nir.any():
        rising = np.nanmedian(x[:, nir], axis=1) > np.nanmedian(x[:, vis], axis=1)
        return "fraction" if rising.mean() >= 0.5 else "absorbance"
    raise ValueError(
        f"cannot tell reflectance (0-1) from absorbance for spectra over {w.min():g}-"
        f"{w.max():g} nm with median {med:.3g}: the test needs 480-520 and 780-820 nm. Convert "
        "them yourself with to_reflectance(spectra, scale)."
    )


# -- helpers -----------------------------------------------------------------------------------


def normalise_lab_target(target: str) -> str:
    """``"soc"`` → ``"SOC"``; raises :class:`ParameterError` listing :data:`LAB_TARGETS`."""
    return resolve_target(target, LAB_TARGETS, where="the LimeSoDa vis-NIR sets")


def _spectral_columns(df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    cols = [c for c in df.columns if re.fullmatch(r"wl_\d+(\.\d+)?", str(c))]
    wl = np.array([float(str(c)[3:]) for c in cols])
    order = np.argsort(wl)
    return [cols[i] for i in order], wl[order]


def _overview() -> pd.DataFrame:
    ov = _import_limesoda().load_dataset("Overview_Datasets")
    return ov.set_index("Dataset_ID")


def _target_problem(dataset_id: str, target: str, columns: list[str]) -> str | None:
    """Why ``dataset_id`` cannot give ``target`` in the pooled unit, or None."""
    units = _META[dataset_id]["units"]
    if target not in units or f"{target}_target" not in columns:
        have = sorted(t for t in units if t != "pH")
        return f"it reports {'/'.join(have)}, not {target}"
    pooled = describe(target).units
    if units[target] != pooled:
        return (
            f"its {target} is in {units[target]}, not {pooled} (without bulk "
            "densities it cannot be pooled)"
        )
    return None


def _coverage_problem(wl: np.ndarray, grid: np.ndarray) -> str | None:
    """Why spectra at ``wl`` cannot be interpolated onto ``grid`` without extrapolating."""
    if wl.min() > grid.min() or wl.max() < grid.max():
        return (
            f"its spectra cover {wl.min():g}-{wl.max():g} nm but the grid needs "
            f"{grid.min():g}-{grid.max():g} nm"
        )
    return None


# -- the loader, step by step ------------------------------------------------------------------


def _check_grid(wavelengths_nm: np.ndarray | list[float] | None) -> np.ndarray:
    grid = DEFAULT_GRID_NM if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ParameterError("wavelengths_nm must be a 1-D, strictly increasing grid in nm.")
    return grid


def _check_ids(dataset_ids: list[str] | tuple[str, ...] | str | None) -> list[str]:
    if isinstance(dataset_ids, str):
        dataset_ids = [dataset_ids]
    ids = list(LAB_VNIR_DATASETS if dataset_ids is None else dataset_ids)
    unknown = [d for d in ids if d not in LAB_VNIR_DATASETS]
    if unknown:
        raise ParameterError(
            f"dataset_ids {unknown} are not LimeSoDa vis-NIR sets in nm. Allowed: "
            f"{list(LAB_VNIR_DATASETS)} (MIR sets in wavenumbers and the field-NIR sets "
            "RP.62/SA.112 are not)."
        )
    if not ids:
        raise ParameterError("dataset_ids is empty; name at least one set or pass None.")
    return ids


def _sets_with_target(
    ids: list[str], raw: dict, target: str, explicit: bool, skipped: dict[str, str]
) -> list[str]:
    """The sets that report ``target`` in the pooled unit (the others go to ``skipped``)."""
    candidates: list[str] = []
    for d in ids:
        reason = _target_problem(d, target, list(raw[d]["Dataset"].columns))
        if reason is None:
            candidates.append(d)
        elif explicit:
            raise ParameterError(f"LimeSoDa {d} cannot serve target={target!r}: {reason}.")
        else:
            skipped[d] = reason
    if not candidates:
        raise ParameterError(
            f"no LimeSoDa vis-NIR set reports {target!r} in the pooled unit: {skipped}"
        )
    return candidates


def _shared_grid(grid: np.ndarray, candidates: list[str], spectral: dict) -> np.ndarray:
    """The points of ``grid`` inside the range every candidate set covers (``truncate=True``)."""
    lo = max(spectral[d][1].min() for d in candidates)
    hi = min(spectral[d][1].max() for d in candidates)
    kept = grid[(grid >= lo) & (grid <= hi)]
    if kept.size < 2:
        raise ParameterError(
            f"the sets {candidates} share only {lo:g}-{hi:g} nm, which holds fewer than two "
            "points of the grid; choose other sets or a finer grid."
        )
    return kept


def _sets_covering(
    candidates: list[str],
    spectral: dict,
    grid: np.ndarray,
    target: str,
    explicit: bool,
    skipped: dict[str, str],
) -> list[str]:
    """The candidate sets whose spectra cover ``grid`` (the others go to ``skipped``)."""
    use: list[str] = []
    for d in candidates:
        reason = _coverage_problem(spectral[d][1], grid)
        if reason is None:
            use.append(d)
        elif explicit:
            raise ParameterError(
                f"LimeSoDa {d} cannot serve this grid: {reason}. Pass truncate=True to narrow "
                "the grid to the range all chosen sets cover, or a grid inside that range."
            )
        else:
            skipped[d] = reason
    if not use:
        raise ParameterError(
            f"no LimeSoDa vis-NIR set covers {grid.min():g}-{grid.max():g} nm for "
            f"target={target!r}: {skipped}. Pass truncate=True or a narrower grid."
        )
    return use


def _lonlat(coords: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lat, lon of a set's samples from its UTM columns; NaN when none or dummy."""
    lat = np.full(n, np.nan)
    lon = np.full(n, np.nan)
    if isinstance(coords, pd.DataFrame):
        xcol = next((c for c in coords.columns if str(c).startswith("x_")), None)
        ycol = next((c for c in coords.columns if str(c).startswith("y_")), None)
        if xcol and ycol and "dummy" not in xcol:
            epsg = int(re.sub(r"\D", "", xcol))
            lon, lat = to_lonlat(coords[xcol].to_numpy(float), coords[ycol].to_numpy(float), epsg)
    return np.asarray(lat, float), np.asarray(lon, float)


def _ancillary_values(d: str, df: pd.DataFrame, name: str) -> np.ndarray:
    """Property ``name`` of set ``d`` in the pooled unit, NaN where it is not reported in it."""
    n = len(df)
    units = _META[d]["units"]
    if f"{name}_target" not in df.columns or units.get(name) != describe(name).units:
        return np.full(n, np.nan)
    return df[f"{name}_target"].to_numpy(float)


def _one_set(
    d: str,
    raw: dict,
    spectral: tuple,
    grid: np.ndarray,
    target: str,
    location: str,
    ancillary: tuple[str, ...] = (),
):
    """One set's arrays: reflectance on ``grid`` (0-1), target and per-sample descriptions."""
    df = raw["Dataset"].reset_index(drop=True)
    cols, wl = spectral
    values = df[cols].to_numpy(dtype=float)
    scale = detect_scale(wl, values)
    n = len(df)
    lat, lon = _lonlat(raw["Coordinates"], n)
    return {
        **{f"anc_{a.lower()}": _ancillary_values(d, df, a) for a in ancillary},
        "refl": to_reflectance(values, scale) @ interpolation_matrix(wl, grid).T,
        "y": df[f"{target}_target"].to_numpy(float),
        "group": np.full(n, d, dtype=object),
        "country": np.full(n, location.rsplit(",", 1)[-1].strip(), dtype=object),
        "location": np.full(n, location, dtype=object),
        "measurement": np.full(n, _META[d]["measurement"], dtype=object),
        "method": np.full(n, _META[d]["methods"][target], dtype=object),
        "scale": np.full(n, scale, dtype=object),
        "fold": np.asarray(raw["Folds"]).astype(int),
        "sid": np.array([f"{d}#{i}" for i in range(n)], dtype=object),
        "lat": lat,
        "lon": lon,
    }


def _pooled(
    use: list[str],
    raw: dict,
    spectral: dict,
    grid: np.ndarray,
    target: str,
    ancillary: tuple[str, ...] = (),
):
    """The chosen sets concatenated, without samples that lack a value; and how many lacked one.

    A missing ancillary value does not drop a sample (it stays NaN)."""
    overview = _overview()
    parts = [
        _one_set(
            d,
            raw[d],
            spectral[d],
            grid,
            target,
            str(overview.loc[d, "Location"]) if d in overview.index else "",
            ancillary,
        )
        for d in use
    ]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    finite = np.isfinite(cat["y"]) & np.all(np.isfinite(cat["refl"]), axis=1)
    return {k: v[finite] for k, v in cat.items()}, int((~finite).sum())


def load_limesoda_lab(
    dataset_ids: list[str] | tuple[str, ...] | None = None,
    target: str = "SOC",
    wavelengths_nm: np.ndarray | list[float] | None = None,
    *,
    truncate: bool = False,
    ancillary: tuple[str, ...] | list[str] = (),
) -> xr.Dataset:
    """LimeSoDa's vis-NIR soil spectra pooled on one wavelength grid (see the module docstring).

    Parameters
    ----------
    dataset_ids
        Sets from :data:`LAB_VNIR_DATASETS`. ``None``: every set that reports ``target`` in the
        pooled unit and covers the grid (the rest are listed in ``attrs["skipped"]``). Named
        sets that cannot serve raise :class:`ParameterError` with the reason.
    target
        ``"SOC"`` (%), ``"SOM"`` (%), ``"pH"`` or ``"Clay"`` (%), case-insensitive.
    wavelengths_nm
        The common grid in nm, increasing; default :data:`DEFAULT_GRID_NM` (400-2450 nm every
        10 nm). Spectra are linearly interpolated onto it (no extrapolation).
    truncate
        If True, instead of refusing sets that do not cover the grid, keep only the grid points
        inside the range all chosen sets cover (``attrs["grid_truncated"]`` says so).
    ancillary
        Further LimeSoDa properties of :data:`LAB_TARGETS` to return beside the target, e.g.
        ``("Clay",)`` (ancillary inputs for spectral transfer), each as a coordinate
        ``anc_<name>`` (lower case, e.g. ``anc_clay``) in the pooled unit, NaN for a set that
        does not report it in that unit (MG.44 / SSP.58 clay in g dm-3). A missing ancillary
        value never drops a sample.

    Returns
    -------
    xarray.Dataset
        ``reflectance`` (sample, date=1, band; 0-1, float32) with ``band`` names ``wl_<nm>``
        and ``wavelength`` (nm); ``target`` (sample); coordinates ``group`` and ``dataset_id``
        (the LimeSoDa set), ``country``, ``location``, ``measurement``, ``target_method``,
        ``reflectance_scale``, ``limesoda_fold``, ``sample_id``, ``lat``/``lon`` (WGS84, NaN
        where unknown); attrs ``licence`` CC BY-SA 4.0, ``citation``, ``simulated`` False,
        ``group_kind`` "dataset", ``dataset_ids``, ``skipped``; ``anc_<name>`` per
        ``ancillary`` property (attributes ``units``, ``long_name``).
    """
    target = normalise_lab_target(target)
    anc = tuple(normalise_lab_target(a) for a in ancillary)
    if target in anc:
        raise ParameterError(
            f"ancillary={list(ancillary)} names the target {target!r}; an ancillary input "
            "must be another property."
        )
    grid = _check_grid(wavelengths_nm)
    explicit = dataset_ids is not None
    ids = _check_ids(dataset_ids)

    limesoda = _import_limesoda()
    raw = {d: limesoda.load_dataset(d) for d in ids}
    spectral = {d: _spectral_columns(raw[d]["Dataset"]) for d in ids}
    skipped: dict[str, str] = {}
    candidates = _sets_with_target(ids, raw, target, explicit, skipped)
    truncated = False
    if truncate:
        kept = _shared_grid(grid, candidates, spectral)
        truncated, grid = kept.size < grid.size, kept
    use = _sets_covering(candidates, spectral, grid, target, explicit, skipped)
    cat, n_dropped = _pooled(use, raw, spectral, grid, target, anc)
    anc_coords = {
        f"anc_{a.lower()}": (
            "sample",
            cat[f"anc_{a.lower()}"],
            {
                "units": describe(a).units,
                "long_name": f"{describe(a).long_name} (REAL LimeSoDa measurement, ancillary)",
            },
        )
        for a in anc
    }

    text = {k: cat[k].astype(str) for k in (
        "group", "country", "location", "measurement", "method", "scale", "sid",
    )}  # fmt: skip
    prop = describe(target)
    return sample_set(
        cat["y"],
        groups=text["group"],
        group_long_name="LimeSoDa dataset",
        target_units=prop.units,
        target_long_name=prop.long_name,
        reflectance=cat["refl"].astype(np.float32)[:, None, :],
        dates=["lab"],
        bands=[f"wl_{w:g}" for w in grid],
        wavelengths_nm=grid,
        reflectance_long_name="soil reflectance (vis-NIR spectrometer, resampled)",
        reflectance_attrs={"resampling": "linear interpolation onto the grid"},
        sample_ids=np.arange(cat["y"].size),
        lat=cat["lat"],
        lon=cat["lon"],
        coords={
            "dataset_id": ("sample", text["group"]),
            "sample_id": ("sample", text["sid"]),
            "country": ("sample", text["country"]),
            "location": ("sample", text["location"]),
            "measurement": ("sample", text["measurement"]),
            "target_method": ("sample", text["method"]),
            "reflectance_scale": (
                "sample",
                text["scale"],
                {"long_name": "scale of the stored spectra before conversion to 0-1"},
            ),
            "limesoda_fold": (
                "sample",
                cat["fold"],
                {"long_name": "LimeSoDa's predefined random 10-fold id (within its dataset)"},
            ),
            **anc_coords,
        },
        source=f"LimeSoDa vis-NIR spectra ({', '.join(use)})",
        licence=LICENCE,
        citation=CITATION,
        simulated=False,
        target_name=target,
        group_kind="dataset",
        dataset_ids=list(use),
        skipped="; ".join(f"{k}: {v}" for k, v in skipped.items()),
        grid_nm=f"{grid.min():g}-{grid.max():g} nm, {grid.size} points",
        grid_truncated=bool(truncated),
        n_dropped_nan=n_dropped,
        coordinates_note=(
            "lat/lon from the UTM coordinates of SC.93, SP.231, MG.44; NaN for sets without "
            "coordinates and for the dummy (privacy) coordinates of SL.125/UL.120"
        ),
    )


__all__ = [
    "DEFAULT_GRID_NM",
    "IN_SITU_DATASETS",
    "LAB_TARGETS",
    "LAB_VNIR_DATASETS",
    "detect_scale",
    "load_limesoda_lab",
    "normalise_lab_target",
    "to_reflectance",
]
