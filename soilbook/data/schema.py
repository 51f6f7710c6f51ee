"""The sample-set and scene schemas shared by every data source.

Every loader and simulator in :mod:`soilbook.data` returns an :class:`xarray.Dataset` that
passes :func:`validate_samples`, so models, baselines, plots and cross-validation never care
where the data came from.

Sample set (one row per field sample)
-------------------------------------
dims
    ``sample``; as needed ``date`` (acquisition), ``band`` (spectral band), ``feature``
    (tabular covariate), ``layer`` (environmental raster layer), ``y`` / ``x`` (patch pixels),
    ``time`` / ``variable`` (a climate series: its months and its variables).
data variables (each with ``units`` and ``long_name`` attributes)
    ``target``       (sample)                 the soil property, e.g. salt content in g/kg;
    ``reflectance``  (sample, date, band)     surface reflectance, unitless (0-1), optional;
    ``covariates``   (sample, feature)        tabular covariates, optional;
    ``patches``      (sample, layer, y, x)    windows of environmental layers centred on the
                                              sample, optional (e.g. a 14-channel image patch);
    ``climate``      (sample, time, variable) a monthly climate series per sample, optional;
                                              ``units`` "mixed, see variable_units".
coordinates
    ``group`` (sample, required) — the unit of grouped / spatial-block cross-validation
    (a spatial block, pedon, field or region); ``lat`` / ``lon`` (sample, WGS84 degrees, when
    known); ``band`` names and ``wavelength`` (band, nm) when spectral; ``feature_group``
    (feature) and ``layer_group`` (layer), one of :data:`FEATURE_GROUPS`; with ``climate``,
    ``time`` (time, datetime64: the first day of each month) and ``variable_units``
    (variable, e.g. "mm", "degC").
attrs
    ``source``, ``licence``, ``citation``, ``simulated`` (bool), ``target_name``, and the
    parameters that produced it.

Tile set (image tiles with per-pixel masks, for dense targets)
--------------------------------------------------------------
dims
    ``tile`` (one image tile: a place at a date), ``channel`` (an input channel), ``y`` / ``x``
    (pixels).
data variables (each with ``units`` and ``long_name``)
    ``inputs``       (tile, channel, y, x)    the input channels, float; ``units`` "mixed, see
                                              channel_units";
    ``valid``        (tile, channel, y, x)    uint8 validity mask of each input: 1 where the
                                              value was observed, 0 where it is missing (a
                                              cloud, no data); values under a 0 carry no
                                              information and may hold anything;
    ``coarse``       (tile, y, x)             optional, a dense label (e.g. a coarse satellite
                                              product) in the target's unit ...
    ``coarse_mask``  (tile, y, x)             ... and its uint8 label mask (1 = labelled);
                                              required with ``coarse``.
coordinates
    ``channel_group`` (channel): the modality of each channel, one of :data:`FEATURE_GROUPS`;
    ``channel_units`` (channel); ``location`` (tile): the place of the tile (the unit of
    held-out-tile cross-validation: every date of a place goes to the same side); ``date``
    (tile, datetime64); ``y`` / ``x`` (metres from the tile's corner), when known.
attrs
    as for a sample set plus ``pixel_size_m``.

Sparse point labels on tiles (e.g. in-situ stations) are a *sample set* of readings whose
samples point into a tile set with the integer coordinates ``tile`` (position along ``tile``),
``row`` and ``col`` (pixel); :func:`label_rasters` turns such readings into a label raster and
its mask, so a fitted model only ever sees the labels of its training readings.

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
FEATURE_GROUPS = (
    "spectral",
    "vegetation",
    "terrain",
    "hydrology",
    "soil",
    "climate",
    "other",
    "sar",
    "time",
)
REQUIRED_ATTRS = ("source", "licence", "citation", "simulated")
_VARIABLE_DIMS = {
    "target": (SAMPLE,),
    "reflectance": (SAMPLE, "date", "band"),
    "covariates": (SAMPLE, "feature"),
    "patches": (SAMPLE, "layer", "y", "x"),
    "climate": (SAMPLE, "time", "variable"),
}
#: The predictor variables of a sample set (a set needs at least one).
INPUT_VARIABLES = ("reflectance", "covariates", "patches", "climate")
TILE = "tile"
_TILE_VARIABLE_DIMS = {
    "inputs": (TILE, "channel", "y", "x"),
    "valid": (TILE, "channel", "y", "x"),
    "coarse": (TILE, "y", "x"),
    "coarse_mask": (TILE, "y", "x"),
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


def _check_no_infinity(ds: xr.Dataset) -> None:
    """An infinite value is a broken cell (NaN may mean missing in inputs; inf never does)."""
    for name in _VARIABLE_DIMS:
        if name in ds.data_vars:
            bad = np.isinf(np.asarray(ds[name].values, dtype=float))
            if bad.any():
                first = np.argwhere(bad)[0].tolist()
                _fail(
                    f"'{name}' holds {int(bad.sum())} infinite value(s), the first at "
                    f"{dict(zip(ds[name].dims, first, strict=True))}",
                    "finite numbers (NaN where a value is missing)",
                    "fix or drop those samples",
                )


def _check_climate_coords(ds: xr.Dataset) -> None:
    """``climate`` needs ``time`` (datetime64) and ``variable`` / ``variable_units`` labels."""
    if "time" not in ds.coords or not np.issubdtype(ds["time"].dtype, np.datetime64):
        _fail(
            "'climate' has no datetime64 'time' coordinate",
            "time (time) = the first day of each month, e.g. np.datetime64('2010-01-01')",
            "assign_coords(time=('time', pd.date_range('2010-01-01', periods=61, freq='MS')))",
        )
    for coord in ("variable", "variable_units"):
        if coord not in ds.coords:
            _fail(
                f"'climate' has no '{coord}' coordinate",
                "'variable' (the climate variable names) and 'variable_units' (one unit each)",
                f"assign_coords({coord}=('variable', [...]))",
            )


def validate_samples(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` is a sample set in the soilbook schema and return it unchanged.

    Raises :class:`SchemaError` naming the first missing or malformed piece (a missing
    variable, coordinate or attribute, wrong dims, a NaN target, an infinite value).
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
    if not any(v in ds.data_vars for v in INPUT_VARIABLES):
        _fail(
            "the dataset has no inputs",
            f"at least one of {list(INPUT_VARIABLES)}",
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
    if "climate" in ds.data_vars:
        _check_climate_coords(ds)
    if int(np.isnan(ds["target"].values.astype(float)).sum()):
        _fail(
            "'target' contains NaN",
            "a measured value for every sample",
            "drop unlabelled samples first",
        )
    _check_no_infinity(ds)
    _check_attrs(ds, "sample set")
    return ds


#: What the ``features`` and ``layers`` arguments of :func:`sample_set` accept: a mapping of
#: name to group, or (name, group) pairs in column order.
NamedGroups = Mapping[str, str] | Sequence[tuple[str, str]]


def _names_groups(pairs: NamedGroups | None) -> tuple[list[str], list[str]]:
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs or [])
    return [str(n) for n, _ in items], [str(g) for _, g in items]


def _check_length(what: str, names: Sequence[Any], size: int, axis: str) -> None:
    """``names`` must label every entry of an axis of length ``size``."""
    if len(names) != size:
        _fail(
            f"{len(names)} {what} were given for the {size} {axis}",
            f"one entry of {what} per entry of that axis",
            f"give exactly {size} {what}",
        )


def _var_attrs(units: str, long_name: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"units": units, "long_name": long_name, **dict(extra or {})}


def _group_values(groups: Any) -> np.ndarray:
    """Integer groups (e.g. pedon keys) and text stay as they are; anything else becomes text."""
    values = np.asarray(groups)
    if values.dtype.kind in "iuU":
        return values
    if values.dtype.kind == "O" and all(isinstance(v, str) for v in values.ravel()):
        return values
    return values.astype(str)


def _reflectance_part(
    reflectance: Any,
    dates: Sequence[Any] | None,
    bands: Sequence[str] | None,
    wavelengths_nm: Sequence[float] | None,
    attrs: dict[str, Any],
) -> tuple[tuple, dict[str, Any]]:
    """The ``reflectance`` variable (sample, date, band) and its coordinates."""
    if dates is None or bands is None:
        _fail(
            "reflectance was given without its dates and bands",
            "dates=[...] and bands=[...] matching reflectance's (n, date, band) shape",
            "pass the acquisition dates and the band names",
        )
    values = np.asarray(reflectance)
    if values.ndim != 3:
        _fail(
            f"reflectance has shape {values.shape}",
            "an array (sample, date, band)",
            "add the missing axis (e.g. reflectance[:, None, :] for one date)",
        )
    _check_length("dates", dates, values.shape[1], "dates of reflectance")
    _check_length("band names", bands, values.shape[2], "bands of reflectance")
    coords: dict[str, Any] = {"date": np.asarray(dates), "band": np.asarray(bands)}
    if wavelengths_nm is not None:
        _check_length("wavelengths", wavelengths_nm, values.shape[2], "bands of reflectance")
        coords["wavelength"] = ("band", np.asarray(wavelengths_nm, dtype=float), {"units": "nm"})
    return ((SAMPLE, "date", "band"), values, attrs), coords


def _covariate_part(
    covariates: Any,
    features: NamedGroups | None,
    feature_units: Sequence[str] | None,
    attrs: dict[str, Any],
) -> tuple[tuple, dict[str, Any]]:
    """The ``covariates`` variable (sample, feature) and its coordinates."""
    values = np.asarray(covariates)
    names, groups = _names_groups(features)
    if values.ndim != 2:
        _fail(
            f"covariates have shape {values.shape}",
            "an array (sample, feature)",
            "stack the covariates as columns",
        )
    _check_length("feature names", names, values.shape[1], "columns of covariates")
    coords: dict[str, Any] = {
        "feature": np.asarray(names),
        "feature_group": ("feature", np.asarray(groups)),
    }
    if feature_units is not None:
        _check_length("feature units", feature_units, values.shape[1], "columns of covariates")
        coords["feature_units"] = ("feature", np.asarray(feature_units))
    return ((SAMPLE, "feature"), values, attrs), coords


def _patch_part(
    patches: Any, layers: NamedGroups | None, attrs: dict[str, Any]
) -> tuple[tuple, dict[str, Any]]:
    """The ``patches`` variable (sample, layer, y, x) and its layer coordinates."""
    values = np.asarray(patches)
    names, groups = _names_groups(layers)
    if values.ndim != 4:
        _fail(
            f"patches have shape {values.shape}",
            "an array (sample, layer, y, x)",
            "stack the windows as (sample, layer, y, x)",
        )
    _check_length("layer names", names, values.shape[1], "layers of patches")
    coords = {"layer": np.asarray(names), "layer_group": ("layer", np.asarray(groups))}
    return ((SAMPLE, "layer", "y", "x"), values, attrs), coords


def _climate_part(
    climate: Any,
    times: Sequence[Any] | None,
    variables: Mapping[str, str] | Sequence[tuple[str, str]] | None,
    attrs: dict[str, Any],
) -> tuple[tuple, dict[str, Any]]:
    """The ``climate`` variable (sample, time, variable) and its coordinates."""
    values = np.asarray(climate)
    if values.ndim != 3:
        _fail(
            f"climate has shape {values.shape}",
            "an array (sample, time, variable)",
            "stack the monthly series as (sample, month, variable)",
        )
    if times is None or variables is None:
        _fail(
            "climate was given without its times and variables",
            "climate_times=[...] (months) and climate_variables={name: unit, ...}",
            "pass the months and the variables with their units",
        )
    names, units = _names_groups(variables)  # (name, unit) pairs, the same shape
    _check_length("climate times", times, values.shape[1], "months of climate")
    _check_length("climate variables", names, values.shape[2], "variables of climate")
    coords = {
        "time": np.asarray(times, dtype="datetime64[ns]"),
        "variable": np.asarray(names),
        "variable_units": ("variable", np.asarray(units)),
    }
    return ((SAMPLE, "time", "variable"), values, attrs), coords


def sample_set(
    target: Any,
    *,
    groups: Any,
    source: str,
    licence: str,
    citation: str,
    simulated: bool,
    target_units: str | None = None,
    target_long_name: str | None = None,
    target_attrs: Mapping[str, Any] | None = None,
    reflectance: Any = None,
    dates: Sequence[Any] | None = None,
    bands: Sequence[str] | None = None,
    wavelengths_nm: Sequence[float] | None = None,
    reflectance_long_name: str = "surface reflectance",
    reflectance_attrs: Mapping[str, Any] | None = None,
    covariates: Any = None,
    features: NamedGroups | None = None,
    feature_units: Sequence[str] | None = None,
    covariate_units: str = "mixed, see feature_units",
    covariate_long_name: str = "covariates",
    covariate_attrs: Mapping[str, Any] | None = None,
    patches: Any = None,
    layers: NamedGroups | None = None,
    patch_units: str = "mixed",
    patch_long_name: str = "patches of environmental layers",
    patch_attrs: Mapping[str, Any] | None = None,
    climate: Any = None,
    climate_times: Sequence[Any] | None = None,
    climate_variables: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    climate_long_name: str = "monthly climate series",
    climate_attrs: Mapping[str, Any] | None = None,
    lat: Any = None,
    lon: Any = None,
    sample_ids: Any = None,
    group_long_name: str | None = None,
    coords: Mapping[str, Any] | None = None,
    validate: bool = True,
    **attrs: Any,
) -> xr.Dataset:
    """Build a sample set in the schema from plain arrays, and validate it.

    The one builder every loader, simulator and test uses, so a sample set always has the same
    names, dims and attributes wherever it came from.

    Parameters
    ----------
    target : (n,) the soil property, in ``target_units`` (stored as float64); ``None`` for an
        unlabelled set (no ``target`` variable; pass ``validate=False``, since the schema
        requires a target)
    groups : (n,) the unit of grouped / spatial-block cross-validation; integer ids (e.g. pedon
        keys) and text are kept as they are, anything else (floats, mixed objects) becomes text
    target_units, target_long_name : the target's ``units`` and ``long_name`` (required with a
        target)
    reflectance : (n, date, band) surface reflectance, unitless 0–1; needs ``dates`` and
        ``bands`` (and optionally ``wavelengths_nm``, one per band, nm)
    covariates : (n, feature); ``features`` maps each name to its group in :data:`FEATURE_GROUPS`
        (a mapping, or (name, group) pairs, in column order); ``feature_units`` gives one unit
        per feature
    patches : (n, layer, y, x) windows centred on the samples; ``layers`` maps each layer name
        to its group (as ``features``); pixel-offset ``y`` / ``x`` coordinates go in ``coords``
    climate : (n, time, variable) a monthly series per sample; ``climate_times`` the months
        (anything ``numpy.datetime64`` reads, e.g. "2010-01-01"), ``climate_variables`` each
        variable's unit (a mapping name → unit, or (name, unit) pairs, in column order)
    target_attrs, reflectance_attrs, covariate_attrs, patch_attrs, climate_attrs : further
        attributes of
        that variable, added after (and overriding) its ``units`` and ``long_name``
    lat, lon : (n,) WGS84 degrees, when known (stored as float64)
    sample_ids : (n,) the ``sample`` coordinate (default: none, i.e. positions)
    group_long_name : the ``long_name`` of ``group`` (default: no attributes)
    coords : further coordinates, as ``xarray`` accepts them (they override the ones above)
    validate : check the result with :func:`validate_samples` (default True)
    source, licence, citation, simulated, attrs : the dataset's attributes, in this order

    Arrays keep their dtype (pass float32 to store float32), except ``target``, ``lat`` and
    ``lon`` (float64) and ``groups`` (see above).

    Raises :class:`SchemaError` when the pieces do not fit (a name list whose length does not
    match its axis, reflectance without dates and bands, a target without units) and, with
    ``validate``, from :func:`validate_samples`.
    """
    data_vars: dict[str, Any] = {}
    if target is not None:
        if target_units is None or target_long_name is None:
            _fail(
                "the target was given without target_units or target_long_name",
                "both, e.g. target_units='g/kg', target_long_name='salt content'",
                "say what the target is and in which unit",
            )
        data_vars["target"] = (
            (SAMPLE,),
            np.asarray(target, dtype=np.float64),
            _var_attrs(target_units, target_long_name, target_attrs),
        )
    out_coords: dict[str, Any] = {} if sample_ids is None else {SAMPLE: np.asarray(sample_ids)}
    if reflectance is not None:
        data_vars["reflectance"], part = _reflectance_part(
            reflectance,
            dates,
            bands,
            wavelengths_nm,
            _var_attrs("1", reflectance_long_name, reflectance_attrs),
        )
        out_coords |= part
    if covariates is not None:
        data_vars["covariates"], part = _covariate_part(
            covariates,
            features,
            feature_units,
            _var_attrs(covariate_units, covariate_long_name, covariate_attrs),
        )
        out_coords |= part
    if patches is not None:
        data_vars["patches"], part = _patch_part(
            patches, layers, _var_attrs(patch_units, patch_long_name, patch_attrs)
        )
        out_coords |= part
    if climate is not None:
        data_vars["climate"], part = _climate_part(
            climate,
            climate_times,
            climate_variables,
            _var_attrs("mixed, see variable_units", climate_long_name, climate_attrs),
        )
        out_coords |= part
    group_attrs = {} if group_long_name is None else {"long_name": group_long_name}
    out_coords["group"] = (SAMPLE, _group_values(groups), group_attrs)
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
    return validate_samples(ds) if validate else ds


def _check_mask(ds: xr.Dataset, name: str) -> None:
    values = np.asarray(ds[name].values)
    if not np.isin(values, (0, 1)).all():
        _fail(
            f"mask '{name}' holds values other than 0 and 1",
            "uint8 0/1 (1 = observed / labelled)",
            f"set ds['{name}'] = (condition).astype('uint8')",
        )


def validate_tiles(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` is a tile set in the soilbook schema (module docstring) and return it.

    Raises :class:`SchemaError` naming the first missing or malformed piece: no ``tile`` /
    ``channel`` / ``y`` / ``x`` dims, no ``inputs`` or ``valid`` (or wrong dims), a mask that is
    not 0/1, ``coarse`` without ``coarse_mask``, a NaN or infinite input at a valid pixel, a NaN
    label under a 1 of its mask, a ``channel_group`` outside :data:`FEATURE_GROUPS`, no
    ``location`` coordinate, missing attributes.
    """
    if not isinstance(ds, xr.Dataset):
        _fail(f"got a {type(ds).__name__}", "an xarray.Dataset", "wrap your arrays in a Dataset")
    for dim in (TILE, "channel", "y", "x"):
        if dim not in ds.dims:
            _fail(
                f"the tile set has no '{dim}' dimension",
                "dims ('tile', 'channel', 'y', 'x')",
                "rename the dimensions of the tile arrays",
            )
    for name in ("inputs", "valid"):
        if name not in ds.data_vars:
            _fail(
                f"the tile set has no '{name}' variable",
                "'inputs' and its validity mask 'valid', both (tile, channel, y, x)",
                "add the input channels and a 0/1 mask of where they were observed",
            )
    for name, dims in _TILE_VARIABLE_DIMS.items():
        if name in ds.data_vars:
            _check_variable(ds, name, dims, "tile set")
    if "coarse" in ds.data_vars and "coarse_mask" not in ds.data_vars:
        _fail(
            "'coarse' has no 'coarse_mask'",
            "a 0/1 label mask (tile, y, x) beside every dense label",
            "add coarse_mask = np.isfinite(coarse).astype('uint8')",
        )
    for name in ("valid", "coarse_mask"):
        if name in ds.data_vars:
            _check_mask(ds, name)
    valid = np.asarray(ds["valid"].values).astype(bool)
    bad = ~np.isfinite(np.asarray(ds["inputs"].values, dtype=float)) & valid
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        _fail(
            f"'inputs' holds {int(bad.sum())} NaN or infinite value(s) at valid pixels, the "
            f"first at {dict(zip(ds['inputs'].dims, first, strict=True))}",
            "finite values wherever 'valid' is 1",
            "set 'valid' to 0 where an input is missing",
        )
    if "coarse" in ds.data_vars:
        labelled = np.asarray(ds["coarse_mask"].values).astype(bool)
        if (~np.isfinite(np.asarray(ds["coarse"].values, dtype=float)) & labelled).any():
            _fail(
                "'coarse' is NaN or infinite under a 1 of 'coarse_mask'",
                "a finite label wherever the mask is 1",
                "set coarse_mask to 0 where the product has no value",
            )
    _check_groups(ds, "channel_group", "channel")
    if "location" not in ds.coords:
        _fail(
            "the tile set has no 'location' coordinate",
            "'location' (tile): the place of each tile, the unit of held-out-tile CV",
            "assign_coords(location=('tile', [...]))",
        )
    _check_attrs(ds, "tile set")
    return ds


def tile_set(
    inputs: Any,
    valid: Any,
    *,
    channels: NamedGroups,
    channel_units: Sequence[str],
    locations: Any,
    source: str,
    licence: str,
    citation: str,
    simulated: bool,
    pixel_size_m: float,
    coarse: Any = None,
    coarse_mask: Any = None,
    label_units: str = "",
    coarse_long_name: str = "coarse dense label",
    dates: Sequence[Any] | None = None,
    coords: Mapping[str, Any] | None = None,
    validate: bool = True,
    **attrs: Any,
) -> xr.Dataset:
    """Build a tile set in the schema from plain arrays, and validate it.

    Parameters
    ----------
    inputs : (n_tile, n_channel, ny, nx) input channels (stored as float32)
    valid : same shape, 1 / True where the input was observed (stored as uint8)
    channels : each channel's name → its modality in :data:`FEATURE_GROUPS` (a mapping or
        (name, group) pairs, in channel order); ``channel_units`` one unit per channel
    locations : (n_tile,) the place of each tile (kept as text)
    pixel_size_m : the pixel side in metres; ``y`` / ``x`` become pixel centres in metres
    coarse, coarse_mask : optional (n_tile, ny, nx) dense label in ``label_units`` and its 0/1
        mask (default: where ``coarse`` is finite)
    dates : (n_tile,) acquisition dates (anything ``numpy.datetime64`` reads), optional
    coords : further coordinates (override the ones above)
    validate : check the result with :func:`validate_tiles`

    Raises :class:`SchemaError` when the shapes or name lists do not fit, and from
    :func:`validate_tiles`.
    """
    x = np.asarray(inputs, dtype=np.float32)
    m = np.asarray(valid).astype(np.uint8)
    if x.ndim != 4 or m.shape != x.shape:
        _fail(
            f"inputs have shape {x.shape} and valid {m.shape}",
            "both (n_tile, n_channel, ny, nx)",
            "stack the tiles and give one mask value per input value",
        )
    names, groups = _names_groups(channels)
    _check_length("channels", names, x.shape[1], "channel")
    _check_length("channel_units", list(channel_units), x.shape[1], "channel")
    n, _, ny, nx = x.shape
    locs = np.asarray(locations).astype(str)
    _check_length("locations", list(locs), n, TILE)
    data_vars: dict[str, Any] = {
        "inputs": (
            (TILE, "channel", "y", "x"),
            x,
            _var_attrs("mixed, see channel_units", "input channels", None),
        ),
        "valid": (
            (TILE, "channel", "y", "x"),
            m,
            _var_attrs("1", "validity mask of the inputs (1 = observed)", None),
        ),
    }
    if coarse is not None:
        c = np.asarray(coarse, dtype=np.float32)
        cm = np.isfinite(c) if coarse_mask is None else np.asarray(coarse_mask).astype(bool)
        if c.shape != (n, ny, nx) or cm.shape != c.shape:
            _fail(
                f"coarse has shape {c.shape} and its mask {cm.shape}",
                f"both (n_tile, ny, nx) = {(n, ny, nx)}",
                "give one label value per pixel of each tile",
            )
        data_vars["coarse"] = ((TILE, "y", "x"), c, _var_attrs(label_units, coarse_long_name, None))
        data_vars["coarse_mask"] = (
            (TILE, "y", "x"),
            cm.astype(np.uint8),
            _var_attrs("1", f"label mask of {coarse_long_name} (1 = labelled)", None),
        )
    half = float(pixel_size_m) / 2
    out_coords: dict[str, Any] = {
        "channel": names,
        "channel_group": ("channel", groups),
        "channel_units": ("channel", [str(u) for u in channel_units]),
        "location": (TILE, locs),
        "y": ("y", half + float(pixel_size_m) * np.arange(ny), {"units": "m"}),
        "x": ("x", half + float(pixel_size_m) * np.arange(nx), {"units": "m"}),
    }
    if dates is not None:
        out_coords["date"] = (TILE, np.asarray(dates, dtype="datetime64[ns]"))
    out_coords |= dict(coords or {})
    ds = xr.Dataset(
        data_vars,
        coords=out_coords,
        attrs={
            "source": source,
            "licence": licence,
            "citation": citation,
            "simulated": bool(simulated),
            "pixel_size_m": float(pixel_size_m),
            **attrs,
        },
    )
    return validate_tiles(ds) if validate else ds


def reading_positions(readings: xr.Dataset, tiles: xr.Dataset) -> tuple[np.ndarray, ...]:
    """The (tile, row, col) integer positions of a sample set of point ``readings`` in
    ``tiles``, each (n_sample,). Raises :class:`SchemaError` when a coordinate is missing or
    points outside the tile set."""
    out = []
    limits = {"tile": tiles.sizes[TILE], "row": tiles.sizes["y"], "col": tiles.sizes["x"]}
    for name, size in limits.items():
        if name not in readings.coords:
            _fail(
                f"the readings have no '{name}' coordinate",
                "integer 'tile', 'row' and 'col' (sample) coordinates into the tile set",
                "say in which tile and pixel each reading was taken",
            )
        v = np.asarray(readings[name].values)
        if not np.issubdtype(v.dtype, np.integer) or (v.size and (v.min() < 0 or v.max() >= size)):
            _fail(
                f"'{name}' of the readings is not an integer position in [0, {size})",
                f"integer positions along the tile set's '{TILE if name == 'tile' else name}'",
                "index the tile set by position (0-based)",
            )
        out.append(v.astype(np.int64))
    return tuple(out)


def label_rasters(
    readings: xr.Dataset, tiles: xr.Dataset, values: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """A label raster and its mask from point ``readings`` (a sample set pointing into
    ``tiles``, see :func:`reading_positions`).

    ``values`` (n_sample,) replaces ``readings['target']`` (e.g. a transformed target).
    Returns ``label`` float32 (n_tile, ny, nx) — the reading's value at its pixel, 0 elsewhere
    — and ``mask`` float32 of the same shape, 1 at the readings' pixels. Two readings on one
    pixel of one tile are averaged.
    """
    t, r, c = reading_positions(readings, tiles)
    v = target_values(readings) if values is None else np.asarray(values, dtype=np.float64)
    shape = (tiles.sizes[TILE], tiles.sizes["y"], tiles.sizes["x"])
    total = np.zeros(shape, dtype=np.float64)
    count = np.zeros(shape, dtype=np.float64)
    np.add.at(total, (t, r, c), v)
    np.add.at(count, (t, r, c), 1.0)
    label = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return label.astype(np.float32), (count > 0).astype(np.float32)


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
    if "climate" in ds.data_vars:
        months = [str(t)[:7] for t in ds["time"].values.astype("datetime64[M]")]
        for v in (str(v) for v in ds["variable"].values):
            names += [f"{v}@{m}" for m in months]
            groups += ["climate"] * len(months)
    return names, groups


def to_tabular(ds: xr.Dataset) -> np.ndarray:
    """Flatten a sample set into the table the baselines use.

    Columns are the reflectance of every (date, band) pair, the covariates, then the climate
    series flattened variable by variable (``<variable>@<YYYY-MM>``, month by month); patches
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
    if "climate" in ds.data_vars:
        parts.append(ds["climate"].transpose(SAMPLE, "variable", "time").values.reshape(n, -1))
    if not parts:
        _fail(
            "nothing to tabulate",
            "'reflectance', 'covariates' or 'climate'",
            "add tabular predictors",
        )
    return np.concatenate(parts, axis=1).astype(np.float32)


def target_values(ds: xr.Dataset) -> np.ndarray:
    """The target as a float64 vector, shape (n_sample,)."""
    return ds["target"].values.astype(np.float64)


def subset(ds: xr.Dataset, index: Iterable[int] | np.ndarray) -> xr.Dataset:
    """Rows ``index`` of a sample set (positional), keeping every attribute."""
    return ds.isel({SAMPLE: np.asarray(index, dtype=int)})
