"""The sample-set and scene schemas shared by every data source.

Every loader and simulator in :mod:`soilbook.data` returns an :class:`xarray.Dataset` that
passes :func:`validate_samples`, so models, baselines, plots and cross-validation never care
where the data came from.

Sample set (one row per field sample)
-------------------------------------
dims
    ``sample``; as needed ``date`` (acquisition), ``band`` (spectral band), ``feature``
    (tabular covariate), ``layer`` (environmental raster layer), ``y`` / ``x`` (patch pixels).
data variables (each with ``units`` and ``long_name`` attributes)
    ``target``       (sample)                 the soil property, e.g. salt content in g/kg;
    ``reflectance``  (sample, date, band)     surface reflectance, unitless (0-1), optional;
    ``covariates``   (sample, feature)        tabular covariates, optional;
    ``patches``      (sample, layer, y, x)    windows of environmental layers centred on the
                                              sample, optional.
coordinates
    ``group`` (sample, required) — the unit of grouped / spatial-block cross-validation
    (a spatial block, pedon, field or region); ``lat`` / ``lon`` (sample, WGS84 degrees, when
    known); ``band`` names and ``wavelength`` (band, nm) when spectral; ``feature_group``
    (feature) and ``layer_group`` (layer), one of :data:`FEATURE_GROUPS`.
attrs
    ``source``, ``licence``, ``citation``, ``simulated`` (bool), ``target_name``, and the
    parameters that produced it.

Scene (a whole raster, for dense maps)
--------------------------------------
dims ``y``, ``x`` (pixels), ``date``, ``band``, ``layer``; variables ``reflectance``
(date, band, y, x) and ``layers`` (layer, y, x), optionally ``target`` (y, x) where the
truth is known (simulated scenes); coordinates ``y`` / ``x`` in metres, ``layer_group``,
``wavelength``; attrs as for a sample set plus ``pixel_size_m``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from soilbook.errors import SchemaError

SAMPLE = "sample"
#: Feature groups used for grouped importance (the paper's covariate analysis).
FEATURE_GROUPS = ("spectral", "vegetation", "terrain", "hydrology", "soil", "climate", "other")
REQUIRED_ATTRS = ("source", "licence", "citation", "simulated")
_VARIABLE_DIMS = {
    "target": (SAMPLE,),
    "reflectance": (SAMPLE, "date", "band"),
    "covariates": (SAMPLE, "feature"),
    "patches": (SAMPLE, "layer", "y", "x"),
}
_SCENE_VARIABLE_DIMS = {
    "reflectance": ("date", "band", "y", "x"),
    "layers": ("layer", "y", "x"),
    "target": ("y", "x"),
}


def _fail(what: str, expected: str, todo: str) -> None:
    raise SchemaError(f"{what}. Expected: {expected}. What to do: {todo}")


def _check_attrs(ds: xr.Dataset, kind: str) -> None:
    missing = [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing:
        _fail(
            f"{kind} is missing the attribute(s) {missing}",
            f"attrs {list(REQUIRED_ATTRS)} (simulated: True/False)",
            "set ds.attrs[...] to say where the data came from and under which licence",
        )


def _check_variable(ds: xr.Dataset, name: str, dims: tuple[str, ...], kind: str) -> None:
    var = ds[name]
    if tuple(var.dims) != dims:
        _fail(
            f"{kind} variable '{name}' has dims {tuple(var.dims)}",
            f"dims {dims}",
            f"transpose or rename the dimensions of '{name}'",
        )
    for attr in ("units", "long_name"):
        if attr not in var.attrs:
            _fail(
                f"{kind} variable '{name}' has no '{attr}' attribute",
                "every data variable carries 'units' and 'long_name'",
                f"set ds['{name}'].attrs['{attr}']",
            )
    if not np.issubdtype(var.dtype, np.number):
        _fail(
            f"{kind} variable '{name}' has dtype {var.dtype}",
            "a numeric dtype",
            f"convert '{name}' to float",
        )


def _check_groups(ds: xr.Dataset, coord: str, dim: str) -> None:
    if dim not in ds.dims:
        return
    if coord not in ds.coords:
        _fail(
            f"dimension '{dim}' has no '{coord}' coordinate",
            f"'{coord}' along '{dim}' with values in {FEATURE_GROUPS}",
            f"assign_coords({coord}=(('{dim}',), [...]))",
        )
    bad = sorted(set(map(str, ds[coord].values)) - set(FEATURE_GROUPS))
    if bad:
        _fail(
            f"'{coord}' has unknown group(s) {bad}",
            f"one of {FEATURE_GROUPS}",
            "relabel those features",
        )


def validate_samples(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` is a sample set in the soilbook schema and return it unchanged.

    Raises :class:`SchemaError` naming the first missing or malformed piece.
    """
    if not isinstance(ds, xr.Dataset):
        _fail(f"got a {type(ds).__name__}", "an xarray.Dataset", "wrap your arrays in a Dataset")
    if SAMPLE not in ds.dims:
        _fail(
            "the dataset has no 'sample' dimension",
            "dims ('sample', ...)",
            "rename the row dimension to 'sample'",
        )
    if "target" not in ds.data_vars:
        _fail(
            "the dataset has no 'target' variable",
            "a 'target' (sample) variable",
            "add the measured soil property as 'target'",
        )
    if not any(v in ds.data_vars for v in ("reflectance", "covariates", "patches")):
        _fail(
            "the dataset has no inputs",
            "at least one of 'reflectance', 'covariates', 'patches'",
            "add the predictors",
        )
    for name, dims in _VARIABLE_DIMS.items():
        if name in ds.data_vars:
            _check_variable(ds, name, dims, "sample set")
    if "group" not in ds.coords:
        _fail(
            "the dataset has no 'group' coordinate",
            "a 'group' (sample) coordinate used for grouped / spatial-block CV",
            "use a field, pedon or spatial-block id (soilbook.geo.spatial_blocks can make one)",
        )
    _check_groups(ds, "feature_group", "feature")
    _check_groups(ds, "layer_group", "layer")
    if int(np.isnan(ds["target"].values.astype(float)).sum()):
        _fail(
            "'target' contains NaN",
            "a measured value for every sample",
            "drop unlabelled samples first",
        )
    _check_attrs(ds, "sample set")
    return ds


def sample_set(
    target: Any,
    *,
    groups: Any,
    target_units: str,
    target_long_name: str,
    source: str,
    licence: str,
    citation: str,
    simulated: bool,
    reflectance: Any = None,
    dates: Sequence[Any] | None = None,
    bands: Sequence[str] | None = None,
    wavelengths_nm: Sequence[float] | None = None,
    reflectance_long_name: str = "surface reflectance",
    covariates: Any = None,
    features: Mapping[str, str] | None = None,
    feature_units: Sequence[str] | None = None,
    covariate_units: str = "mixed, see feature_units",
    covariate_long_name: str = "covariates",
    patches: Any = None,
    layers: Mapping[str, str] | None = None,
    patch_units: str = "mixed",
    lat: Any = None,
    lon: Any = None,
    sample_ids: Any = None,
    group_long_name: str | None = None,
    coords: Mapping[str, Any] | None = None,
    **attrs: Any,
) -> xr.Dataset:
    """Build a sample set in the schema from plain arrays, and validate it.

    The one builder every loader, simulator and test uses, so a sample set always has the same
    names, dims and attributes wherever it came from.

    Parameters
    ----------
    target : (n,) the soil property, in ``target_units``
    groups : (n,) the unit of grouped / spatial-block cross-validation (stored as text)
    reflectance : (n, date, band) surface reflectance, unitless 0–1; needs ``dates`` and
        ``bands`` (and optionally ``wavelengths_nm``, one per band)
    covariates : (n, feature); ``features`` maps each name to its group in :data:`FEATURE_GROUPS`
        (in column order); ``feature_units`` gives one unit per feature
    patches : (n, layer, y, x) windows centred on the samples; ``layers`` maps each layer name
        to its group
    lat, lon : (n,) WGS84 degrees, when known
    sample_ids : (n,) the ``sample`` coordinate (default: positions)
    coords : further coordinates, as ``xarray`` accepts them
    source, licence, citation, simulated, attrs : the dataset's attributes

    Raises :class:`SchemaError` (from :func:`validate_samples`) when the pieces do not fit.
    """
    target = np.asarray(target, dtype=np.float64)
    data_vars: dict[str, Any] = {
        "target": ((SAMPLE,), target, {"units": target_units, "long_name": target_long_name}),
    }
    out_coords: dict[str, Any] = {} if sample_ids is None else {SAMPLE: np.asarray(sample_ids)}
    if reflectance is not None:
        if dates is None or bands is None:
            _fail(
                "reflectance was given without its dates and bands",
                "dates=[...] and bands=[...] matching reflectance's (n, date, band) shape",
                "pass the acquisition dates and the band names",
            )
        data_vars["reflectance"] = (
            (SAMPLE, "date", "band"),
            np.asarray(reflectance),
            {"units": "1", "long_name": reflectance_long_name},
        )
        out_coords |= {"date": list(dates), "band": list(bands)}
        if wavelengths_nm is not None:
            out_coords["wavelength"] = ("band", list(wavelengths_nm), {"units": "nm"})
    if covariates is not None:
        features = dict(features or {})
        data_vars["covariates"] = (
            (SAMPLE, "feature"),
            np.asarray(covariates),
            {"units": covariate_units, "long_name": covariate_long_name},
        )
        out_coords |= {
            "feature": list(features),
            "feature_group": ("feature", list(features.values())),
        }
        if feature_units is not None:
            out_coords["feature_units"] = ("feature", list(feature_units))
    if patches is not None:
        layers = dict(layers or {})
        data_vars["patches"] = (
            (SAMPLE, "layer", "y", "x"),
            np.asarray(patches),
            {"units": patch_units, "long_name": "patches of environmental layers"},
        )
        out_coords |= {"layer": list(layers), "layer_group": ("layer", list(layers.values()))}
    group_attrs = {} if group_long_name is None else {"long_name": group_long_name}
    out_coords["group"] = (SAMPLE, np.asarray(groups).astype(str), group_attrs)
    if lat is not None and lon is not None:
        out_coords["lat"] = (SAMPLE, np.asarray(lat, dtype=float), {"units": "degrees_north"})
        out_coords["lon"] = (SAMPLE, np.asarray(lon, dtype=float), {"units": "degrees_east"})
    out_coords |= dict(coords or {})
    ds = xr.Dataset(
        data_vars,
        coords=out_coords,
        attrs={
            "source": source,
            "licence": licence,
            "citation": citation,
            "simulated": bool(simulated),
            **attrs,
        },
    )
    return validate_samples(ds)


def validate_scene(scene: xr.Dataset) -> xr.Dataset:
    """Check that ``scene`` is a raster scene in the soilbook schema and return it unchanged."""
    for dim in ("y", "x"):
        if dim not in scene.dims:
            _fail(
                f"the scene has no '{dim}' dimension",
                "dims ('y', 'x', ...)",
                "rename the raster dimensions",
            )
    for name, dims in _SCENE_VARIABLE_DIMS.items():
        if name in scene.data_vars:
            _check_variable(scene, name, dims, "scene")
    _check_groups(scene, "layer_group", "layer")
    _check_attrs(scene, "scene")
    return scene


def tabular_feature_names(ds: xr.Dataset) -> tuple[list[str], list[str]]:
    """Names and groups of the columns :func:`to_tabular` produces, in order."""
    names: list[str] = []
    groups: list[str] = []
    if "reflectance" in ds.data_vars:
        dates = [str(d) for d in ds["date"].values]
        bands = [str(b) for b in ds["band"].values]
        for d in dates:
            for b in bands:
                names.append(b if len(dates) == 1 else f"{b}@{d}")
                groups.append("spectral")
    if "covariates" in ds.data_vars:
        names += [str(f) for f in ds["feature"].values]
        groups += [str(g) for g in ds["feature_group"].values]
    return names, groups


def to_tabular(ds: xr.Dataset) -> np.ndarray:
    """Flatten a sample set into the table the baselines use.

    Columns are the reflectance of every (date, band) pair followed by the covariates; patches
    are not flattened (their centre pixels are expected among the covariates).

    Returns
    -------
    X : ndarray of float32, shape (n_sample, n_feature)
        In the order of :func:`tabular_feature_names`.
    """
    parts: list[np.ndarray] = []
    n = ds.sizes[SAMPLE]
    if "reflectance" in ds.data_vars:
        parts.append(ds["reflectance"].transpose(SAMPLE, "date", "band").values.reshape(n, -1))
    if "covariates" in ds.data_vars:
        parts.append(ds["covariates"].transpose(SAMPLE, "feature").values)
    if not parts:
        _fail("nothing to tabulate", "'reflectance' or 'covariates'", "add tabular predictors")
    return np.concatenate(parts, axis=1).astype(np.float32)


def target_values(ds: xr.Dataset) -> np.ndarray:
    """The target as a float64 vector, shape (n_sample,)."""
    return ds["target"].values.astype(np.float64)


def subset(ds: xr.Dataset, index: Iterable[int] | np.ndarray) -> xr.Dataset:
    """Rows ``index`` of a sample set (positional), keeping every attribute."""
    return ds.isel({SAMPLE: np.asarray(index, dtype=int)})
