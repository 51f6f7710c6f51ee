"""From a raster scene to sample sets: patches, covariates, field samples, dense pixels.

A *scene* (:func:`soilbook.data.schema.validate_scene`) holds ``reflectance`` (date, band, y, x),
``layers`` (layer, y, x) and, for simulated scenes, the true ``target`` (y, x). This module turns
it into the sample-set schema the models use:

:func:`scene_covariates`
    every pixel's tabular covariates (feature, y, x): spectral indices of the date-mean
    reflectance plus the value of every layer;
:func:`extract_patches`
    windows of the layers centred on given pixels, an ndarray (sample, layer, y, x), vectorised;
    the scene is padded by reflection (:data:`PAD_MODE`) so that pixels at the border get full
    windows;
:func:`sample_scene`
    a simulated field campaign: random pixels without replacement, lab noise on the target,
    spatial-block groups for grouped cross-validation;
:func:`pixels_as_samples`
    any set of pixels (default all) as a sample set, for dense maps.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from soilbook.data.schema import SAMPLE, sample_set, validate_scene
from soilbook.geo import spatial_blocks

#: How scenes are padded for windows at the border (``numpy.pad`` mode; reflect = mirror
#: without repeating the edge pixel). Models that predict whole scenes pad the same way.
PAD_MODE = "reflect"
#: Fill value when PAD_MODE is "constant" (unused with "reflect").
PAD_VALUE = np.nan

#: Spectral indices computed on the date-mean reflectance: name -> (feature group, formula,
#: reference). Bands are Sentinel-2 names; reflectance is unitless (0-1).
INDICES: dict[str, tuple[str, str, str]] = {
    "NDVI": ("vegetation", "(B8 - B4) / (B8 + B4)", "Rouse et al. (1974)"),
    "SAVI": ("vegetation", "1.5 (B8 - B4) / (B8 + B4 + 0.5)", "Huete (1988)"),
    "SI": ("spectral", "sqrt(B2 B4)", "Khan et al. (2005), salinity index"),
    "SI3": ("spectral", "sqrt(B3^2 + B4^2)", "Douaoui et al. (2006), SI3"),
    "SSSI1": ("spectral", "B11 - B12", "Bannari et al. (2008), soil salinity and sodicity index 1"),
    "BI": ("spectral", "sqrt(B4^2 + B8^2)", "Khan et al. (2001), brightness index"),
}

_LAB_NOISE_DEFAULT = 0.30


def _band(refl: xr.DataArray, name: str) -> np.ndarray:
    bands = [str(b) for b in refl["band"].values]
    if name not in bands:
        raise ValueError(
            f"the reflectance has no band {name!r} (bands: {bands}). Expected Sentinel-2 band "
            "names (B2, B3, B4, B8, B11, B12 at least) to compute the spectral indices."
        )
    return refl.isel(band=bands.index(name)).values.astype(np.float32)


def spectral_indices(refl: xr.DataArray) -> dict[str, np.ndarray]:
    """The :data:`INDICES` of a reflectance array with a ``band`` dimension.

    ``refl`` may be (band, ...) in any order of dims; the date dimension, if present, must be
    averaged beforehand. Returns ``{name: ndarray}`` with the remaining dims' shape (float32).

    Formulas (Sentinel-2 bands): NDVI = (B8 − B4)/(B8 + B4) (Rouse et al. 1974);
    SAVI = 1.5 (B8 − B4)/(B8 + B4 + 0.5) (Huete 1988); SI = √(B2·B4) (Khan et al. 2005);
    SI3 = √(B3² + B4²) (Douaoui et al. 2006); SSSI1 = B11 − B12 (Bannari et al. 2008);
    BI = √(B4² + B8²) (Khan et al. 2001). The red/NIR salinity index NDSI = (B4 − B8)/(B4 + B8)
    (Khan et al. 2005) is left out because it is exactly −NDVI.
    """
    other = [d for d in refl.dims if d != "band"]
    refl = refl.transpose("band", *other)
    b2, b3, b4 = _band(refl, "B2"), _band(refl, "B3"), _band(refl, "B4")
    b8, b11, b12 = _band(refl, "B8"), _band(refl, "B11"), _band(refl, "B12")
    eps = np.float32(1e-6)
    return {
        "NDVI": (b8 - b4) / np.maximum(b8 + b4, eps),
        "SAVI": 1.5 * (b8 - b4) / (b8 + b4 + 0.5),
        "SI": np.sqrt(np.maximum(b2 * b4, 0.0)),
        "SI3": np.sqrt(b3**2 + b4**2),
        "SSSI1": b11 - b12,
        "BI": np.sqrt(b4**2 + b8**2),
    }


def _layer_meta(scene: xr.Dataset) -> tuple[list[str], list[str], list[str]]:
    if "layers" not in scene.data_vars:
        return [], [], []
    names = [str(v) for v in scene["layer"].values]
    groups = [str(g) for g in scene["layer_group"].values]
    if "layer_units" in scene.coords:
        units = [str(u) for u in scene["layer_units"].values]
    else:
        units = list(scene["layers"].attrs.get("layer_units", ["1"] * len(names)))
    return names, groups, units


def scene_covariates(scene: xr.Dataset) -> xr.DataArray:
    """Tabular covariates of every pixel: indices of the date-mean reflectance + the layers.

    Returns
    -------
    xarray.DataArray, dims ``(feature, y, x)``, float32
        Features :data:`INDICES` (groups "vegetation" / "spectral") followed by every layer of
        ``scene["layers"]`` (its ``layer_group``); coordinates ``feature``, ``feature_group``,
        ``feature_units``. The sample sets of :func:`sample_scene` hold exactly these values at
        the sampled pixels.
    """
    validate_scene(scene)
    parts: list[np.ndarray] = []
    names: list[str] = []
    groups: list[str] = []
    units: list[str] = []
    if "reflectance" in scene.data_vars:
        mean = (
            scene["reflectance"].mean("date")
            if "date" in scene["reflectance"].dims
            else scene["reflectance"]
        )
        for name, values in spectral_indices(mean.transpose("band", "y", "x")).items():
            parts.append(values.astype(np.float32))
            names.append(name)
            groups.append(INDICES[name][0])
            units.append("1")
    lnames, lgroups, lunits = _layer_meta(scene)
    if lnames:
        layers = scene["layers"].transpose("layer", "y", "x").values.astype(np.float32)
        parts.extend(layers)
        names += lnames
        groups += lgroups
        units += lunits
    if not parts:
        raise ValueError("the scene has neither 'reflectance' nor 'layers'; nothing to tabulate")
    coords = {
        "feature": ("feature", np.array(names)),
        "feature_group": ("feature", np.array(groups)),
        "feature_units": ("feature", np.array(units)),
        "y": scene["y"],
        "x": scene["x"],
    }
    return xr.DataArray(
        np.stack(parts),
        dims=("feature", "y", "x"),
        coords=coords,
        name="covariates",
        attrs={"units": "see feature_units", "long_name": "spectral indices and layer values"},
    )


def _check_window(window: int) -> int:
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(
            f"window={window}: expected an odd number of pixels >= 1 so that the sample sits on "
            f"the centre pixel; use {max(1, window + 1 if window % 2 == 0 else 1)}."
        )
    return window


def _check_pixels(
    rows: np.ndarray, cols: np.ndarray, ny: int, nx: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.intp).ravel()
    cols = np.asarray(cols, dtype=np.intp).ravel()
    if rows.shape != cols.shape:
        raise ValueError(f"rows ({rows.size}) and cols ({cols.size}) differ in length")
    if rows.size and (rows.min() < 0 or rows.max() >= ny or cols.min() < 0 or cols.max() >= nx):
        raise ValueError(f"pixel indices outside the scene (rows 0..{ny - 1}, cols 0..{nx - 1})")
    return rows, cols


def extract_patches(
    layers: np.ndarray | xr.DataArray | xr.Dataset,
    rows: np.ndarray,
    cols: np.ndarray,
    window: int,
    pad_mode: str = PAD_MODE,
) -> np.ndarray:
    """Windows of raster layers centred on pixels ``(rows, cols)``, all at once.

    Parameters
    ----------
    layers
        An array (layer, y, x) — an ndarray, a DataArray, or a scene (its ``layers``).
    rows, cols
        Pixel indices (row 0 = first ``y``), one pair per sample.
    window
        Odd window side in pixels. Pixels near the border get full windows: the layers are
        padded by ``window // 2`` with ``numpy.pad(mode=pad_mode)``; the default
        :data:`PAD_MODE` ``"reflect"`` mirrors the scene without repeating the edge pixel
        (``"constant"`` fills with :data:`PAD_VALUE`, NaN; any ``numpy.pad`` mode works).

    Returns
    -------
    ndarray, shape (n_sample, layer, window, window), float32
        ``patches[i, :, window//2, window//2]`` is the layer value at ``(rows[i], cols[i])``.
        Built from a strided view of the padded array, so the only copy is the result.
    """
    window = _check_window(window)
    if isinstance(layers, xr.Dataset):
        layers = layers["layers"]
    if isinstance(layers, xr.DataArray):
        layers = layers.transpose("layer", "y", "x").values
    values = np.asarray(layers, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"layers has shape {values.shape}; expected (layer, y, x)")
    _, ny, nx = values.shape
    rows, cols = _check_pixels(rows, cols, ny, nx)
    r = window // 2
    if r > 0 and pad_mode in ("reflect", "symmetric") and (r >= ny or r >= nx):
        raise ValueError(
            f"window={window} needs a scene larger than {r} pixels on each side for "
            f"mirror padding; the scene is {ny} × {nx}. Use a smaller window."
        )
    if r > 0:
        kwargs = {"constant_values": PAD_VALUE} if pad_mode == "constant" else {}
        values = np.pad(values, ((0, 0), (r, r), (r, r)), mode=pad_mode, **kwargs)
    view = np.lib.stride_tricks.sliding_window_view(values, (window, window), axis=(1, 2))
    # view[:, i, j] is the window whose top-left corner is padded (i, j) = centre (i, j)
    return np.ascontiguousarray(view[:, rows, cols].transpose(1, 0, 2, 3))


def _patch_offsets(window: int) -> dict[str, tuple]:
    """The ``y`` / ``x`` coordinates of a window: pixel offsets from its centre."""
    offsets = np.arange(-(window // 2), window // 2 + 1)
    return {
        "y": ("y", offsets, {"units": "pixel", "long_name": "row offset from the sample"}),
        "x": ("x", offsets, {"units": "pixel", "long_name": "column offset from the sample"}),
    }


def block_ids(
    scene: xr.Dataset, rows: np.ndarray, cols: np.ndarray, block_size_m: float
) -> np.ndarray:
    """Spatial-block labels ``b<col>_<row>`` (blocks counted from the scene's north-west corner)."""
    px = float(scene.attrs.get("pixel_size_m", abs(float(scene["x"][1] - scene["x"][0]))))
    return spatial_blocks(cols * px, rows * px, block_size_m, origin=(0.0, 0.0))


def _reflectance_args(scene: xr.Dataset, rows: np.ndarray, cols: np.ndarray) -> dict:
    """:func:`~soilbook.data.schema.sample_set` arguments for the pixels' reflectance."""
    if "reflectance" not in scene.data_vars:
        return {}
    refl = scene["reflectance"].transpose("date", "band", "y", "x").values[:, :, rows, cols]
    attrs = dict(scene["reflectance"].attrs)
    args = {
        "reflectance": np.ascontiguousarray(refl.transpose(2, 0, 1)).astype(np.float32),
        "dates": scene["date"].values,
        "bands": scene["band"].values,
        "reflectance_long_name": attrs.get("long_name", "surface reflectance"),
        "reflectance_attrs": attrs,
    }
    if "wavelength" in scene.coords:
        args["wavelengths_nm"] = scene["wavelength"].values
    return args


def _patch_args(scene: xr.Dataset, rows: np.ndarray, cols: np.ndarray, window: int) -> dict:
    """:func:`~soilbook.data.schema.sample_set` arguments for the layers' windows."""
    names, groups, _ = _layer_meta(scene)
    coords = _patch_offsets(window)
    if "layer_units" in scene.coords:
        coords["layer_units"] = ("layer", scene["layer_units"].values)
    return {
        "patches": extract_patches(scene["layers"], rows, cols, window),
        "layers": list(zip(names, groups, strict=True)),
        "patch_units": "see layer_units",
        "patch_long_name": f"{window} x {window} windows of the environmental layers",
        "patch_attrs": {"pad_mode": PAD_MODE},
        "coords": coords,
    }


def _pixels_dataset(
    scene: xr.Dataset,
    rows: np.ndarray,
    cols: np.ndarray,
    target: np.ndarray,
    window: int | None,
    block_size_m: float,
    covariates: xr.DataArray | None = None,
    *,
    target_extra: dict | None = None,
    coords: dict | None = None,
    validate: bool = True,
    **attrs,
) -> xr.Dataset:
    """Pixels ``(rows, cols)`` of ``scene`` as a sample set with ``target`` (one per pixel).

    Reflectance, covariates (:func:`scene_covariates`, or the precomputed ``covariates``),
    patches (when ``window`` and the scene has layers), spatial-block groups, pixel positions
    and lat/lon. The target's attributes are the scene's plus ``target_extra``; ``coords`` are
    further per-sample coordinates; the dataset's attributes are the scene's plus the
    sampling settings and ``attrs``.
    """
    cov = scene_covariates(scene) if covariates is None else covariates
    target_attrs = dict(scene["target"].attrs) if "target" in scene.data_vars else {}
    target_attrs |= dict(target_extra or {})
    extra = (
        {}
        if window is None or "layers" not in scene.data_vars
        else _patch_args(scene, rows, cols, window)
    )
    sample_coords: dict = {
        "row": ((SAMPLE,), rows.astype(np.int32)),
        "col": ((SAMPLE,), cols.astype(np.int32)),
        "x_m": ((SAMPLE,), scene["x"].values[cols].astype(np.float64), {"units": "m"}),
        "y_m": ((SAMPLE,), scene["y"].values[rows].astype(np.float64), {"units": "m"}),
        **extra.pop("coords", {}),
        **(coords or {}),
    }
    located = "lat" in scene.coords and scene["lat"].ndim == 2
    return sample_set(
        target,
        groups=block_ids(scene, rows, cols, block_size_m),
        target_units=target_attrs.get("units", "1"),
        target_long_name=target_attrs.get("long_name", "target"),
        target_attrs=target_attrs,
        **_reflectance_args(scene, rows, cols),
        covariates=cov.values[:, rows, cols].T.astype(np.float32),
        features=list(zip(cov["feature"].values, cov["feature_group"].values, strict=True)),
        feature_units=cov["feature_units"].values,
        covariate_units=cov.attrs.get("units", "see feature_units"),
        covariate_long_name=cov.attrs.get("long_name", "covariates"),
        covariate_attrs=cov.attrs,
        **extra,
        lat=scene["lat"].values[rows, cols] if located else None,
        lon=scene["lon"].values[rows, cols] if located else None,
        coords=sample_coords,
        validate=validate,
        **{
            **scene.attrs,
            "group_kind": "spatial block",
            "block_size_m": float(block_size_m),
            "window": int(window) if window is not None else 0,
            **attrs,
        },
    )


def sample_scene(
    scene: xr.Dataset,
    n_samples: int = 360,
    window: int | None = 15,
    seed: int = 0,
    *,
    block_size_m: float = 400.0,
    lab_noise: float = _LAB_NOISE_DEFAULT,
) -> xr.Dataset:
    """A simulated field campaign on ``scene``: the sample set a field study would collect.

    Parameters
    ----------
    scene
        A scene with a ``target`` (the true value per pixel).
    n_samples
        Number of sampled pixels, drawn uniformly **without replacement** (any pixel; border
        pixels get padded windows, see :func:`extract_patches`).
    window
        Odd patch side in pixels; ``None`` for no ``patches``.
    seed
        Random seed of the sampling and the lab noise (independent of the scene's own seed).
    block_size_m
        Edge of the square spatial blocks used as ``group`` (ids ``"b<col>_<row>"``, e.g.
        ``"b03_01"``). The default 400 m gives 16 blocks on a 160 × 160 px, 10 m scene —
        enough for 5-fold grouped CV — and is larger than the correlation length of the
        simulator's salt residual (150 m), so test blocks are new places.
    lab_noise
        Standard deviation of the multiplicative, log-normal measurement noise:
        ``target = S_pixel · exp(ε − lab_noise²/2)``, ``ε ~ N(0, lab_noise²)``. The default 0.30
        (a coefficient of variation of about 31 %, √(exp(0.30²) − 1)) stands for laboratory error of the salt determination plus the mismatch
        between a point soil sample and the 10 m pixel (within-pixel heterogeneity, GPS error).

    Returns
    -------
    xarray.Dataset
        A sample set in the schema (validated): ``target`` (g/kg for the simulated scene),
        ``reflectance``, ``covariates`` (see :func:`scene_covariates`), ``patches``; ``group``,
        ``lat``, ``lon``, ``row``, ``col``, ``x_m``, ``y_m`` per sample; attrs of the scene plus
        the sampling settings.
    """
    validate_scene(scene)
    if "target" not in scene.data_vars:
        raise ValueError("the scene has no 'target': sample_scene needs the true value per pixel")
    ny, nx = scene.sizes["y"], scene.sizes["x"]
    n_samples = int(n_samples)
    if not 1 <= n_samples <= ny * nx:
        raise ValueError(f"n_samples={n_samples}; expected 1 .. {ny * nx} (the number of pixels)")
    if lab_noise < 0:
        raise ValueError(f"lab_noise={lab_noise}; expected >= 0")
    if window is not None:
        _check_window(window)
    rng = np.random.default_rng([int(seed), 20260])
    flat = np.sort(rng.choice(ny * nx, size=n_samples, replace=False))
    rows, cols = np.divmod(flat, nx)
    truth = scene["target"].transpose("y", "x").values[rows, cols].astype(np.float64)
    noise = rng.normal(0.0, lab_noise, n_samples) if lab_noise > 0 else np.zeros(n_samples)
    target = truth * np.exp(noise - 0.5 * lab_noise**2)
    units = scene["target"].attrs.get("units", "1")
    return _pixels_dataset(
        scene,
        rows,
        cols,
        target,
        window,
        block_size_m,
        target_extra={
            "measurement": "lab value of a point sample: true pixel value x log-normal noise "
            f"(log sd {lab_noise})"
        },
        coords={
            "target_true": (
                (SAMPLE,),
                truth,
                {"units": units, "long_name": "true pixel value (before lab noise)"},
            )
        },
        n_samples=n_samples,
        sample_seed=int(seed),
        lab_noise_log_sd=float(lab_noise),
        sampling="uniform random pixels without replacement",
    )


def pixels_as_samples(
    scene: xr.Dataset,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    *,
    window: int | None = None,
    block_size_m: float = 400.0,
    covariates: xr.DataArray | None = None,
) -> xr.Dataset:
    """Pixels of ``scene`` as a sample set (default: every pixel, row by row), for dense maps.

    The target is the scene's true ``target`` when it has one (no lab noise), otherwise NaN
    (then the result is not validated, since the schema requires a target). ``window`` adds
    patches (memory: n × layers × window² floats). Pass precomputed ``covariates``
    (:func:`scene_covariates`) to map a large scene tile by tile without recomputing them.
    """
    validate_scene(scene)
    ny, nx = scene.sizes["y"], scene.sizes["x"]
    if rows is None and cols is None:
        rows, cols = np.divmod(np.arange(ny * nx), nx)
    elif rows is None or cols is None:
        raise ValueError("give both rows and cols, or neither (all pixels)")
    rows, cols = _check_pixels(rows, cols, ny, nx)
    if window is not None:
        _check_window(window)
    if "target" in scene.data_vars:
        target = scene["target"].transpose("y", "x").values[rows, cols].astype(np.float64)
    else:
        target = np.full(rows.size, np.nan)
    return _pixels_dataset(
        scene,
        rows,
        cols,
        target,
        window,
        block_size_m,
        covariates,
        validate=bool(np.all(np.isfinite(target))),
    )
