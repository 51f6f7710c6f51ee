"""Conversion of downloaded Earth Engine samples to the sample-set schema (pure, no ``ee``).

:func:`to_samples` is generic: what the target is (name, units), which covariates and patch
layers were sampled (with their feature groups) and which collections were read are arguments,
supplied by a recipe's request (:class:`~.request.Request`), never assumed here. The Dataset is
built by :func:`soilbook.data.schema.sample_set`, the one sample-set builder, and so passes
:func:`soilbook.data.schema.validate_samples`.
"""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from soilbook import geo
from soilbook.data.earthengine.catalogue import (
    FILL_VALUE,
    S2_WAVELENGTHS_NM,
    collection_attrs,
    dated,
    layer_info,
    patch_name,
)
from soilbook.data.earthengine.checks import (
    check_bands,
    check_dates,
    check_points,
    check_positive,
    check_targets,
)
from soilbook.data.schema import FEATURE_GROUPS, sample_set
from soilbook.errors import ParameterError


def spatial_block_groups(lat: np.ndarray, lon: np.ndarray, block_size_m: float) -> np.ndarray:
    """Square ``block_size_m`` blocks on a grid anchored at (0 deg, 0 deg), labelled as
    :func:`soilbook.geo.spatial_blocks` labels them (``b<col>_<row>``), on the local projection
    of :func:`soilbook.geo.local_xy_m`: fine for study areas of up to a few hundred km."""
    size = check_positive(block_size_m, "block_size_m", "2000")
    x, y = geo.local_xy_m(lat, lon)
    return geo.spatial_blocks(x, y, size, origin=(0.0, 0.0))


def _number(value: Any) -> float:
    """A property value as a float; ``None``, bools, text and :data:`FILL_VALUE` become NaN."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if f == FILL_VALUE else f


# -- reading the payload -----------------------------------------------------------------------


def _feature_list(features: Any) -> list[Mapping[str, Any]]:
    """The ``properties`` of every feature of a ``getInfo()`` payload (or of its list)."""
    if isinstance(features, Mapping):
        if "features" not in features:
            raise ParameterError(
                "features is a dict without 'features'; pass what getInfo() returned for a "
                "FeatureCollection, or its 'features' list."
            )
        features = features["features"]
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence):
        raise ParameterError("features must be a list of feature dicts (getInfo()['features']).")
    out = []
    for i, f in enumerate(features):
        if not isinstance(f, Mapping):
            raise ParameterError(f"features[{i}] is not a dict.")
        properties = f.get("properties", f)  # a GeoJSON feature, or already its properties
        if not isinstance(properties, Mapping):
            raise ParameterError(f"features[{i}]['properties'] is not a dict.")
        out.append(properties)
    return out


def _by_id(props: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The features' properties keyed by their ``id`` (as text), each id once."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for i, p in enumerate(props):
        if "id" not in p:
            raise ParameterError(
                f"features[{i}] has no 'id' property; sample with properties ['id', ...]."
            )
        pid = str(p["id"])
        if pid in by_id:
            raise ParameterError(
                f"features repeat the id {pid!r}; each sample must come back once."
            )
        by_id[pid] = p
    return by_id


def _samples(
    props: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]] | None,
    target_key: str,
) -> tuple[list[dict[str, Any]], list[Mapping[str, Any]], list[dict[str, Any]], np.ndarray]:
    """The checked samples (``id``, ``lat``, ``lon``, in order), each sample's properties, each
    sample's record and the targets.

    The records (with ``lat``, ``lon``, the target and the group) are ``points`` when given,
    matched to the features by ``id`` (a point that did not come back warns and gets NaN
    inputs); otherwise the features' own properties, in the payload's order.
    """
    by_id = _by_id(props)
    if points is not None:
        records = [dict(p) for p in points]
        pts = check_points(records)
        missing = [p["id"] for p in pts if p["id"] not in by_id]
        if missing:
            warnings.warn(
                f"{len(missing)} point(s) came back from Earth Engine without values (ids "
                f"{missing[:10]}); their inputs are NaN.",
                stacklevel=3,
            )
        rows = [by_id.get(p["id"], {}) for p in pts]
    else:
        if not props:
            raise ParameterError("features is empty: nothing came back to convert.")
        records = [dict(p, id=str(p["id"])) for p in props]
        pts = check_points(records)
        rows = list(props)
    return pts, rows, records, check_targets(records, target_key)


def _groups(
    records: Sequence[Mapping[str, Any]],
    group_key: str | None,
    lat: np.ndarray,
    lon: np.ndarray,
    block_size_m: float,
) -> np.ndarray:
    """Each sample's cross-validation group: ``record[group_key]``, or its spatial block."""
    if group_key is None:
        return spatial_block_groups(lat, lon, block_size_m)
    absent = [r.get("id") for r in records if r.get(group_key) is None]
    if absent:
        raise ParameterError(
            f"group_key '{group_key}' is missing for ids {absent[:10]}; give every point a "
            "group, or pass group_key=None for spatial blocks."
        )
    return np.array([str(r[group_key]) for r in records])


# -- the arrays --------------------------------------------------------------------------------


def _reflectance(
    rows: Sequence[Mapping[str, Any]], n_dates: int, bands: Sequence[str]
) -> np.ndarray:
    """(sample, date, band) float32 of the properties ``<band>_t<date>``."""
    refl = np.full((len(rows), n_dates, len(bands)), np.nan, dtype=np.float32)
    for s, row in enumerate(rows):
        for t in range(n_dates):
            for b, band in enumerate(bands):
                refl[s, t, b] = _number(row.get(dated(band, t)))
    return refl


def _covariates(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """(sample, feature) float32 of the scalar properties ``names``."""
    values = [[_number(row.get(name)) for name in names] for row in rows]
    return np.array(values, dtype=np.float32).reshape(len(rows), len(names))


def _patch_side(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> int:
    """The common odd side of every ``patch_<name>`` array present in ``rows``."""
    side = None
    for row in rows:
        for name in names:
            value = row.get(patch_name(name))
            if value is None:
                continue
            arr = np.asarray(value, dtype=float)
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] % 2 == 0:
                raise ParameterError(
                    f"patch '{patch_name(name)}' has shape {arr.shape}; expected an odd "
                    "square (window, window) array from neighborhoodToArray."
                )
            if side is not None and arr.shape[0] != side:
                raise ParameterError(
                    f"patches have different sides ({side} and {arr.shape[0]}); convert "
                    "requests made with one window at a time."
                )
            side = arr.shape[0]
    if side is None:
        raise ParameterError(
            f"no feature carries a patch for {list(names)}; were the patches requested "
            "(patch_request / window not None)?"
        )
    return side


def _patches(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """(sample, layer, y, x) float32 of the ``patch_<name>`` arrays; NaN where absent."""
    side = _patch_side(rows, names)
    patches = np.full((len(rows), len(names), side, side), np.nan, dtype=np.float32)
    for s, row in enumerate(rows):
        for k, name in enumerate(names):
            value = row.get(patch_name(name))
            if value is not None:
                patches[s, k] = np.array(
                    [[_number(v) for v in line] for line in value], dtype=np.float32
                )
    return patches


def _patch_coords(patches: np.ndarray, names: Sequence[str], scale: float) -> dict[str, Any]:
    """``layer_units`` and the ``y`` / ``x`` offsets (m) from the centre pixel of ``patches``."""
    side = patches.shape[-1]
    offsets = (np.arange(side) - side // 2) * float(scale)
    return {
        "layer_units": (("layer",), np.array([layer_info(k)[0] for k in names], dtype=object)),
        "y": (
            ("y",),
            -offsets,
            {"units": "m", "long_name": "northing offset from the sample's pixel"},
        ),
        "x": (
            ("x",),
            offsets,
            {"units": "m", "long_name": "easting offset from the sample's pixel"},
        ),
    }


def _check_layout(
    band_names: Sequence[str],
    dates: Sequence[tuple[str, str]] | None,
    covariates: Mapping[str, str] | None,
    patch_layers: Mapping[str, str] | None,
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], dict[str, str], dict[str, str]]:
    """The request's layout, checked: bands, date windows (ISO strings), and covariates and
    patch layers with groups in :data:`~soilbook.data.schema.FEATURE_GROUPS`."""
    bands = tuple(band_names)
    if bands:
        check_bands(bands)
        if not dates:
            raise ParameterError(
                "dates is required when band_names is not empty (one per '_t<i>')."
            )
    # no windows (None or empty) is fine for a request without dated layers
    windows = check_dates(dates, first_day=_dt.date(1900, 1, 1)) if dates else ()
    groups = {"covariates": dict(covariates or {}), "patch_layers": dict(patch_layers or {})}
    for kind, mapping in groups.items():
        bad = {k: g for k, g in mapping.items() if g not in FEATURE_GROUPS}
        if bad:
            raise ParameterError(f"{kind} has unknown group(s) {bad}; allowed: {FEATURE_GROUPS}.")
    return bands, windows, groups["covariates"], groups["patch_layers"]


def _date_coords(windows: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``date_start`` / ``date_end`` coordinates of the ``date`` dimension."""
    return {
        "date_start": (("date",), np.array([s for s, _ in windows], dtype=object)),
        "date_end": (("date",), np.array([e for _, e in windows], dtype=object)),
    }


def _warn_missing(arrays: Mapping[str, np.ndarray | None]) -> None:
    """Warn, per input, about the share of NaN (no clear scene / no data there)."""
    for name, values in arrays.items():
        if values is not None and bool(np.isnan(values).any()):
            warnings.warn(
                f"'{name}' has {float(np.isnan(values).mean()):.1%} missing values (no clear "
                "scene / no data there); drop or impute them before training.",
                stacklevel=3,
            )


# -- the converter -----------------------------------------------------------------------------


def to_samples(
    features: Any,
    band_names: Sequence[str],
    *,
    target_name: str,
    target_units: str,
    collections: Sequence[str],
    dates: Sequence[tuple[str, str]] | None = None,
    covariates: Mapping[str, str] | None = None,
    patch_layers: Mapping[str, str] | None = None,
    points: Sequence[Mapping[str, Any]] | None = None,
    target_key: str = "target",
    group_key: str | None = None,
    block_size_m: float = 2000.0,
    scale: float = 10.0,
    extra_attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Turn downloaded Earth Engine samples into a sample set in the soilbook schema (pure).

    Parameters
    ----------
    features : list of dict | dict
        ``getInfo()`` of sampling requests (a FeatureCollection dict, or its ``features``; batches
        concatenated). Each feature's ``properties`` hold ``id``, ``lat``, ``lon``, reflectance
        ``<band>_t<i>``, covariates by name and patches ``patch_<layer>`` (nested lists
        (window, window)). ``None`` and :data:`~.catalogue.FILL_VALUE` become NaN.
    band_names : sequence of str
        Sentinel-2 bands of ``reflectance`` (empty: no reflectance).
    target_name, target_units : str
        What the measured value is (e.g. ``"soil salt content"``, ``"g/kg"``): the recipe says.
    collections : sequence of str
        The Earth Engine collections the request read (ids in
        :data:`~.catalogue.COLLECTIONS`): their licences and citations become the attributes.
    dates : list of (start, end)
        The windows of ``_t<i>``; labels of the ``date`` dimension are the start dates, with
        ``date_start`` / ``date_end`` coordinates. Needed with ``band_names``; ``None`` or
        empty for a request without dated layers.
    covariates, patch_layers : dict name -> feature group
        Scalar covariates and patch layers to read, with their group (one of
        :data:`~soilbook.data.schema.FEATURE_GROUPS`).
    points : list of dict, optional
        The requested points: the sample order, ``lat``/``lon``, the target and (with
        ``group_key``) the group come from here, matched to features by ``id``. Without it they
        are read from the features' properties.
    target_key, group_key : str
        Keys of the measured value and of the cross-validation group; without ``group_key`` the
        group is a ``block_size_m`` spatial block (:func:`spatial_block_groups`).
    scale : float
        Pixel size in metres (patch ``y`` / ``x`` coordinates are offsets from the centre).
    extra_attrs : dict
        Further dataset attributes (the request's parameters).

    Returns
    -------
    xarray.Dataset
        Validated by :func:`soilbook.data.schema.validate_samples`: ``target`` (sample),
        ``reflectance`` (sample, date, band), ``covariates`` (sample, feature) and ``patches``
        (sample, layer, y, x) as present, float32 inputs with NaN where Earth Engine had no data.
    """
    props = _feature_list(features)
    bands, windows, covariates, patch_layers = _check_layout(
        band_names, dates, covariates, patch_layers
    )
    provenance = collection_attrs(collections)  # unknown collections fail before any work

    pts, rows, records, target = _samples(props, points, target_key)
    lat = np.array([p["lat"] for p in pts])
    lon = np.array([p["lon"] for p in pts])
    groups = _groups(records, group_key, lat, lon, block_size_m)
    refl = _reflectance(rows, len(windows), bands) if bands else None
    cov = _covariates(rows, list(covariates)) if covariates else None
    patches = _patches(rows, list(patch_layers)) if patch_layers else None
    _warn_missing({"reflectance": refl, "covariates": cov, "patches": patches})

    coords: dict[str, Any] = _date_coords(windows) if bands else {}
    if patches is not None:
        coords |= _patch_coords(patches, list(patch_layers), scale)
    side = patches.shape[-1] if patches is not None else 0
    attrs = {
        **provenance,
        "simulated": False,
        "target_name": target_name,
        "fill_value_replaced": FILL_VALUE,
        **dict(extra_attrs or {}),
    }
    return sample_set(
        target,
        groups=groups,
        group_long_name="cross-validation group"
        + (f" ({group_key})" if group_key else f" (spatial block of {block_size_m:g} m)"),
        target_units=target_units,
        target_long_name=target_name,
        sample_ids=np.array([p["id"] for p in pts], dtype=object),
        lat=lat,
        lon=lon,
        reflectance=refl,
        dates=[s for s, _ in windows] if bands else None,
        bands=list(bands) if bands else None,
        wavelengths_nm=[S2_WAVELENGTHS_NM[b] for b in bands] if bands else None,
        reflectance_long_name="surface reflectance (Sentinel-2 L2A, cloud-masked median "
        "composite per date window)",
        covariates=cov,
        features=covariates,
        feature_units=[layer_info(k)[0] for k in covariates],
        covariate_units="see feature_units",
        covariate_long_name="environmental covariates at the sample's pixel",
        patches=patches,
        layers=patch_layers,
        patch_units="see layer_units",
        patch_long_name=f"{side} x {side} pixel windows of environmental layers centred on the "
        "sample",
        coords=coords,
        source=attrs.pop("source"),
        licence=attrs.pop("licence"),
        citation=attrs.pop("citation"),
        simulated=attrs.pop("simulated"),
        **attrs,
    )
