"""Maps of areas larger than memory: lazy, chunk-by-chunk prediction with dask, written to disk.

:mod:`soilbook.maps` predicts a scene that is in memory (or reads it window by window with
:func:`soilbook.maps.predict_area`). This module does the same for a *dask-backed* scene — a
user's own area, opened lazily (``xr.open_zarr``, ``rioxarray.open_rasterio(chunks=...)``) —
so that neither the scene nor the map ever has to fit in memory:

:func:`predict_lazy`
    a lazy map: every ``chunk`` × ``chunk`` block of the scene, grown by a ``halo`` of context
    (:func:`dask.array.overlap.overlap`, the lazy twin of :func:`soilbook.maps.tile_windows`),
    goes through a per-block function ``(band, y, x) -> (y, x)`` or ``(k, y, x)``; the halo is
    cut off again, so cores tile the area without overlap. Nothing is computed until the map
    is written (or ``.compute()``-d).
:func:`estimator_block`
    the per-block function of a fitted estimator: a scikit-learn-like ``predict`` on a pixel
    table (n_pixels, n_bands), or — given the schema scene — any soilbook estimator that
    :func:`soilbook.maps.predict_map` maps (networks with ``predict_scene``, baselines on
    sample sets).
:func:`write_map`
    writes a lazy map to Zarr (or a Cloud-Optimised GeoTIFF, with rioxarray) one row of chunks
    at a time, atomically (``<path>.partial``, renamed when complete) and resumably.
:func:`lazy_scene`
    a synthetic dask scene of any size, computed chunk by chunk from pixel coordinates and
    seeded noise (labelled simulated), for benchmarks and tests.

Schedulers: everything runs on dask's *current* scheduler — the local threaded scheduler by
default, or a ``dask.distributed.Client`` if the user created one (``Client()`` registers itself
as the default); nothing here starts or configures a scheduler. Memory per worker thread is about
one overlapped input block plus its prediction: ``(chunk + 2·halo)² × (bands + k) × 8`` bytes
plus what the per-block function allocates.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from soilbook.errors import ParameterError, require
from soilbook.progress import progress_bar

__all__ = [
    "BOUNDARIES",
    "EstimatorBlock",
    "estimator_block",
    "lazy_scene",
    "overview",
    "predict_lazy",
    "write_map",
]

#: How :func:`predict_lazy` fills the halo beyond the scene's edges: ``"reflect"`` mirrors the
#: scene (edge pixel included, like :func:`numpy.pad` ``mode="symmetric"``), ``"nearest"``
#: repeats the edge pixel, ``"nan"`` fills NaN (for functions that skip missing values).
BOUNDARIES = ("reflect", "nearest", "nan")
_SPATIAL = ("y", "x")


# -- the scene as one (band, y, x) dask array ----------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One data variable of a scene inside the stacked (band, y, x) array."""

    name: str
    dims: tuple[str, ...]  # its non-spatial dims, in order
    shape: tuple[int, ...]  # their sizes
    start: int  # first band of the stack

    @property
    def stop(self) -> int:
        return self.start + int(np.prod(self.shape, dtype=int))


def _parts(scene: xr.Dataset, variables: Sequence[str] | None) -> list[_Part]:
    """The variables to stack, each with its non-spatial dims; ParameterError on wrong dims."""
    if not isinstance(scene, xr.Dataset):
        raise ParameterError(
            f"scene is a {type(scene).__name__}; expected an xarray.Dataset. Wrap a DataArray "
            "with da.to_dataset(name='bands')."
        )
    names = list(scene.data_vars) if variables is None else list(variables)
    missing = [n for n in names if n not in scene.data_vars]
    if not names or missing:
        raise ParameterError(
            f"variables {missing or names} are not data variables of the scene "
            f"{sorted(map(str, scene.data_vars))}; give some of those."
        )
    parts, start = [], 0
    for name in names:
        dims = tuple(map(str, scene[name].dims))
        if not set(_SPATIAL) <= set(dims):
            raise ParameterError(
                f"variable {name!r} has dims {dims}; every variable must be on ('y', 'x') or "
                "(band|channel|..., 'y', 'x'). Rename the raster dims to 'y' and 'x' or leave "
                "the variable out with variables=[...]."
            )
        other = tuple(d for d in dims if d not in _SPATIAL)
        part = _Part(name, other, tuple(int(scene.sizes[d]) for d in other), start)
        parts.append(part)
        start = part.stop
    return parts


def _stack(scene: xr.Dataset, parts: Sequence[_Part]) -> Any:
    """The variables as one dask array (band, y, x) of floats (lazy; chunks not yet set)."""
    import dask.array as da

    arrays = []
    for p in parts:
        var = scene[p.name].transpose(*p.dims, *_SPATIAL)
        data = var.data if hasattr(var.data, "dask") else da.from_array(var.values, chunks=-1)
        arrays.append(data.reshape((-1, *data.shape[-2:]), merge_chunks=True))
    out = da.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
    return out.astype(np.result_type(out.dtype, np.float32), copy=False)


def _chunk_sizes(n: int, chunk: int, halo: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` along a side of ``n`` pixels; a last chunk narrower than the halo
    joins the one before it (dask's overlap needs every chunk at least ``halo`` wide)."""
    sizes = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        sizes[-2:] = [sizes[-2] + sizes[-1]]
    return tuple(sizes)


def _check_geometry(scene: xr.Dataset, halo: int, chunk: int, boundary: str) -> None:
    if not isinstance(halo, (int, np.integer)) or halo < 0:
        raise ParameterError(f"halo={halo!r}; expected an int >= 0 (pixels of context).")
    if not isinstance(chunk, (int, np.integer)) or chunk < 1 or chunk < 2 * halo:
        raise ParameterError(
            f"chunk={chunk!r} with halo={halo}; expected an int >= max(1, 2·halo) = "
            f"{max(1, 2 * halo)}, so that the context stays smaller than the block. Raise chunk "
            "(1024-4096 is usual) or lower halo."
        )
    if boundary not in BOUNDARIES:
        raise ParameterError(f"boundary={boundary!r}; expected one of {BOUNDARIES}.")
    for dim in _SPATIAL:
        if dim not in scene.dims:
            raise ParameterError(
                f"the scene has no {dim!r} dimension (dims {tuple(scene.dims)}); rename its "
                "raster dimensions to 'y' and 'x'."
            )
        if scene.sizes[dim] < max(1, halo):
            raise ParameterError(
                f"the scene is {scene.sizes[dim]} px along {dim!r}, less than halo={halo}; "
                "lower halo or map a larger area."
            )


# -- the per-block function ----------------------------------------------------------------------


def _as_stack(values: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """A per-block result as (k, y, x); ParameterError when it is not (y, x) or (k, y, x)."""
    values = np.asarray(values)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3 or values.shape[1:] != shape:
        raise ParameterError(
            f"{what} returned shape {values.shape} for a block of {shape} pixels; expected "
            f"{shape} or (k, *{shape})."
        )
    return values


def _probe_outputs(predict_block: Callable, n_bands: int, halo: int, dtype: Any) -> int:
    """How many maps ``predict_block`` returns: one call on a small block of ones."""
    side = 2 * halo + 4
    out = predict_block(np.ones((n_bands, side, side), dtype=dtype))
    return _as_stack(out, (side, side), "predict_block").shape[0]


def _apply(
    block: np.ndarray, predict_block: Callable, halo: int, k: int, out_dtype: Any
) -> np.ndarray:
    """Apply ``predict_block`` to one overlapped block and cut the halo off: (k, y, x)."""
    h, w = block.shape[-2:]
    out = _as_stack(predict_block(block), (h, w), "predict_block")
    if out.shape[0] != k:
        raise ParameterError(
            f"predict_block returned {out.shape[0]} maps for a block; expected {k} (as many as "
            "`outputs` names, or as its first call returned). Return the same number of maps "
            "for every block, or fix `outputs`."
        )
    return np.ascontiguousarray(out[:, halo : h - halo, halo : w - halo], dtype=out_dtype)


def _output_coords(scene: xr.Dataset) -> dict[str, Any]:
    """The scene's coordinates that a (y, x) map keeps: y, x, and those on (a subset of) them
    (2-D lat/lon, a scalar ``spatial_ref``)."""
    return {str(k): v for k, v in scene.coords.items() if set(map(str, v.dims)) <= set(_SPATIAL)}


def predict_lazy(
    predict_block: Callable[[np.ndarray], np.ndarray],
    scene: xr.Dataset,
    *,
    halo: int = 0,
    chunk: int = 1024,
    out_dtype: Any = np.float32,
    boundary: str = "reflect",
    variables: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    units: str | None = None,
    name: str = "prediction",
) -> xr.DataArray:
    """A lazy map of a (dask-backed) scene, predicted block by block.

    Parameters
    ----------
    predict_block
        ``block (band, h, w) float ndarray -> (h, w)`` or ``(k, h, w)`` (e.g. a mean and a
        spread), e.g. :func:`estimator_block`. ``h, w`` are at most ``chunk + 2·halo`` (plus
        a last chunk narrower than the halo, which joins its neighbour). Pixels of a block
        depend only on its pixels; the ``halo`` outer pixels of every side are context and
        are dropped afterwards, so a function that looks at most ``halo`` pixels away (a
        filter, a patch of ``2·halo + 1``) gives seamless maps.
    scene
        Dataset with a variable on (band|channel|..., y, x) or several variables on (y, x)
        (extra dims are flattened, e.g. a schema scene's ``reflectance`` (date, band, y, x)
        then ``layers``); chunked with dask or in memory (then wrapped lazily).
    halo
        Pixels of context on every side of a block (0: pixel-wise models).
    chunk
        Core block side in pixels (>= 2·halo). Memory per thread ≈ ``(chunk + 2·halo)² ×
        (bands + k) × 8`` bytes.
    out_dtype
        dtype of the map (default float32).
    boundary
        How the halo is filled beyond the scene's edges: one of :data:`BOUNDARIES`.
    variables
        The data variables to stack as bands, in order (default: all).
    outputs
        Names of the ``k`` maps; default ``predict_block.outputs`` if it has one, else found
        by one call of ``predict_block`` on a tiny block of ones (pass it to skip that call).
    units
        ``units`` attribute of the map (default ``predict_block.units`` if any).
    name
        Name of the DataArray (and of the Zarr variable :func:`write_map` writes).

    Returns
    -------
    xarray.DataArray, lazy (dask), dims (y, x) when ``k == 1`` else (output, y, x); chunks
    (``chunk``, ``chunk``); the scene's y / x coordinates (and coordinates on them, e.g.
    ``spatial_ref``) and attrs (``crs``, ``simulated``, ...), plus ``units``, ``halo``,
    ``chunk``, ``boundary``, ``method``.
    """
    import dask.array as da

    _check_geometry(scene, halo, chunk, boundary)
    parts = _parts(scene, variables)
    bands = _stack(scene, parts)
    ny, nx = (int(n) for n in bands.shape[1:])
    chunks = (bands.shape[0], _chunk_sizes(ny, chunk, halo), _chunk_sizes(nx, chunk, halo))
    bands = bands.rechunk(chunks)
    outputs = outputs if outputs is not None else getattr(predict_block, "outputs", None)
    k = (
        len(outputs)
        if outputs is not None
        else _probe_outputs(predict_block, *bands.shape[:1], halo, bands.dtype)
    )
    if k < 1:
        raise ParameterError("outputs is empty; name at least one map, or leave it None.")
    fill = {"reflect": "reflect", "nearest": "nearest", "nan": np.nan}[boundary]
    grown = da.overlap.overlap(
        bands,
        depth={0: 0, 1: halo, 2: halo},
        boundary={0: "none", 1: fill, 2: fill},
        allow_rechunk=False,
    )
    data = da.map_blocks(
        _apply,
        grown,
        predict_block,
        halo,
        k,
        np.dtype(out_dtype),
        chunks=((k,), *chunks[1:]),
        dtype=np.dtype(out_dtype),
        meta=np.empty((0, 0, 0), dtype=out_dtype),
    )
    attrs = {
        **scene.attrs,
        "units": str(units if units is not None else getattr(predict_block, "units", "") or ""),
        "halo": int(halo),
        "chunk": int(chunk),
        "boundary": boundary,
        "method": f"soilbook.lazymaps.predict_lazy of {getattr(predict_block, '__name__', type(predict_block).__name__)}",
        "simulated": bool(scene.attrs.get("simulated", False)),
    }
    coords = _output_coords(scene)
    if k == 1:
        return xr.DataArray(data[0], dims=_SPATIAL, coords=coords, name=name, attrs=attrs)
    labels = list(outputs) if outputs is not None else [str(i) for i in range(k)]
    return xr.DataArray(
        data,
        dims=("output", *_SPATIAL),
        coords={"output": labels, **coords},
        name=name,
        attrs=attrs,
    )


class EstimatorBlock:
    """A fitted estimator as a per-block function of :func:`predict_lazy` (see
    :func:`estimator_block`). Call it with a block (band, h, w); returns (h, w) or, with
    ``spread``, (2, h, w) = mean and spread."""

    def __init__(self, estimator: Any, scene: xr.Dataset | None, spread: bool) -> None:
        self.estimator = estimator
        self.spread = bool(spread)
        self.outputs: tuple[str, ...] = ("mean", "spread") if spread else ("prediction",)
        self.__name__ = type(estimator).__name__
        self.units = str(getattr(estimator, "target_units_", "") or "")
        self._parts = None if scene is None else _parts(scene, None)
        self._coords = None
        self._var_attrs: dict[str, dict] = {}
        self._attrs: dict[str, Any] = {}
        if scene is not None:  # only what rebuilding a block needs: no spatial data
            self._coords = {
                str(k): v.variable.load()
                for k, v in scene.coords.items()
                if not set(map(str, v.dims)) & set(_SPATIAL)
            }
            self._var_attrs = {p.name: dict(scene[p.name].attrs) for p in self._parts}
            self._attrs = dict(scene.attrs)
            if self.spread:
                raise ParameterError(
                    "spread=True works on pixel tables only (scene=None); for a schema scene, "
                    "map the quantiles with soilbook.maps.quantile_map on tiles instead."
                )
            if not self.units and "target" in scene.data_vars:
                self.units = str(scene["target"].attrs.get("units", ""))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self._parts is None:
            return self._on_table(block)
        return self._on_scene(block)

    def _on_table(self, block: np.ndarray) -> np.ndarray:
        """Pixel table (n_pixels, n_bands) -> predict; pixels with a NaN band give NaN."""
        n, h, w = block.shape
        table = block.reshape(n, h * w).T
        ok = np.isfinite(table).all(axis=1)
        out = np.full((len(self.outputs), h * w), np.nan)
        if ok.any():
            out[:, ok] = self._predict_table(table[ok])
        return out.reshape(len(self.outputs), h, w)

    def _predict_table(self, table: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.estimator.predict(table), dtype=np.float64).ravel()
        if not self.spread:
            return mean[None]
        trees = getattr(self.estimator, "estimators_", None)
        if trees is not None and len(trees) > 1:  # a forest: spread of its trees
            spread = np.std([t.predict(table) for t in trees], axis=0)
        else:  # e.g. BayesianRidge, GaussianProcessRegressor
            mean, spread = self.estimator.predict(table, return_std=True)
        return np.vstack([np.ravel(mean), np.ravel(spread)])

    def _on_scene(self, block: np.ndarray) -> np.ndarray:
        """Rebuild the block as a schema scene and map it with :func:`soilbook.maps.predict_map`."""
        from soilbook.maps import predict_map

        h, w = block.shape[-2:]
        pixel = float(self._attrs.get("pixel_size_m", 1.0))
        data_vars = {
            p.name: (
                (*p.dims, *_SPATIAL),
                block[p.start : p.stop].reshape(*p.shape, h, w),
                self._var_attrs[p.name],
            )
            for p in self._parts
        }
        coords = {**self._coords, "y": -pixel * np.arange(h), "x": pixel * np.arange(w)}
        part = xr.Dataset(data_vars, coords=coords, attrs=self._attrs)
        return predict_map(self.estimator, part).values


def estimator_block(
    estimator: Any, scene: xr.Dataset | None = None, *, spread: bool = False
) -> EstimatorBlock:
    """The per-block function of :func:`predict_lazy` for a fitted ``estimator``.

    Parameters
    ----------
    estimator
        Fitted. With ``scene=None``: scikit-learn-like, ``predict(X (n_pixels, n_bands)) ->
        (n_pixels,)`` on the stacked bands in :func:`predict_lazy`'s order (pixels with a NaN
        band are not predicted: NaN). With a ``scene``: any estimator that
        :func:`soilbook.maps.predict_map` maps — every block is rebuilt as a schema scene
        (same variables, non-spatial coordinates and attrs) and mapped by it, so networks
        (``predict_scene``; give ``halo`` ≥ their window's half-width) and baselines on sample
        sets both work. The rebuilt block has *local* ``y`` / ``x`` coordinates (origin at its
        corner, the scene's ``pixel_size_m``): estimators that use pixel coordinates as
        features would see the wrong place, and are not supported.
    scene
        The schema scene that :func:`predict_lazy` gets (its layout: variables, dims, coords).
    spread
        Also return a spread (pixel tables only): the standard deviation over a forest's trees
        (``estimators_``), else ``predict(X, return_std=True)``. Then the block gives
        (2, h, w): ``mean``, ``spread``.

    Returns a callable :class:`EstimatorBlock` with ``outputs`` (map names) and ``units`` (the
    estimator's ``target_units_`` or the scene target's), which :func:`predict_lazy` uses.
    """
    if not hasattr(estimator, "predict") and not hasattr(estimator, "predict_scene"):
        raise ParameterError(
            f"{type(estimator).__name__} has neither predict nor predict_scene; give a fitted "
            "estimator."
        )
    return EstimatorBlock(estimator, scene, spread)


def overview(da: xr.DataArray, max_side: int = 400) -> xr.DataArray:
    """An in-memory overview of a (lazy) map for a figure: block means of ``k`` x ``k`` pixels,
    ``k`` the smallest factor that brings both sides to at most ``max_side`` pixels (the last
    partial row and column of blocks are dropped); attrs kept, ``attrs["overview_factor"] = k``.
    Reads the whole map once, block by block, holding only the overview."""
    if max_side < 1:
        raise ParameterError(f"max_side={max_side!r}; expected a positive number of pixels.")
    factor = max(1, -(-max(int(da.sizes["y"]), int(da.sizes["x"])) // int(max_side)))
    small = da.coarsen(y=factor, x=factor, boundary="trim").mean() if factor > 1 else da
    out = small.compute()
    out.attrs = {**da.attrs, "overview_factor": factor}
    return out


# -- a synthetic scene of any size ---------------------------------------------------------------


def _hash_uniform(*keys: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) floats from integer keys (splitmix64 mixing, broadcast over the keys): the
    same pixel always gets the same value, whatever the chunking. In place where it can be: about
    three arrays of the broadcast shape at a time."""
    with np.errstate(over="ignore"):
        z: Any = np.uint64(0x9E3779B97F4A7C15)
        for key in keys:
            z = z ^ np.asarray(key, dtype=np.uint64)
            z *= np.uint64(0xBF58476D1CE4E5B9)
            z ^= z >> np.uint64(31)
            z *= np.uint64(0x94D049BB133111EB)
            z ^= z >> np.uint64(29)
        z >>= np.uint64(11)
    return z.astype(np.float64) / float(2**53)


def _scene_block(n_bands: int, seed: int, block_info: Any = None) -> np.ndarray:
    """One block (band, y, x) float32 of :func:`lazy_scene` from its global pixel offsets, one
    band at a time (a few float64 / uint64 arrays of one band's size besides the block)."""
    (b0, b1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    row = np.arange(y0, y1)[:, None]
    col = np.arange(x0, x1)[None, :]
    phases = 2 * np.pi * _hash_uniform(np.full(1, seed), np.arange(n_bands))
    out = np.empty((b1 - b0, y1 - y0, x1 - x0), dtype=np.float32)
    for i, band in enumerate(range(b0, b1)):
        phase = phases[band]
        smooth = 0.5 + 0.2 * np.sin(row / 97.0 + phase) * np.cos(col / 131.0 - phase)
        smooth += 0.1 * np.sin((row + col) / 1500.0 + band)  # a trend across the scene
        noise = _hash_uniform(np.full(1, seed), band, row, col)
        noise -= 0.5
        noise *= 0.05
        out[i] = smooth + noise
    return out


def lazy_scene(
    height: int, width: int, n_bands: int = 8, chunk: int = 1024, seed: int = 0
) -> xr.Dataset:
    """A synthetic scene of ``height`` × ``width`` pixels that is never held in memory.

    Every chunk is computed when needed from its pixels' row/column (smooth waves per band) and
    seeded per-pixel noise (a hash of seed, band, row, column: independent of the chunking, so a
    scene chunked differently has the same values). Reflectance-like values around 0.5.

    Returns
    -------
    xarray.Dataset with ``bands`` (band, y, x) float32, dask chunks (n_bands, chunk, chunk);
    coordinates ``band`` ("b1" ...), ``y`` / ``x`` (pixel centres in m of a 10 m UTM grid);
    attrs ``crs`` "EPSG:32633", ``pixel_size_m`` 10, ``simulated`` True, ``source``,
    ``licence``, ``citation``.
    """
    import dask.array as da

    for what, value in (
        ("height", height),
        ("width", width),
        ("n_bands", n_bands),
        ("chunk", chunk),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"{what}={value!r}; expected a positive int.")
    chunks = ((n_bands,), _chunk_sizes(height, chunk, 0), _chunk_sizes(width, chunk, 0))
    data = da.map_blocks(
        _scene_block,
        n_bands,
        int(seed),
        chunks=chunks,
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
    )
    pixel = 10.0
    coords = {
        "band": [f"b{i + 1}" for i in range(n_bands)],
        "y": 5_000_000.0 - pixel * (np.arange(height) + 0.5),
        "x": 500_000.0 + pixel * (np.arange(width) + 0.5),
    }
    attrs = {
        "crs": "EPSG:32633",
        "pixel_size_m": pixel,
        "simulated": True,
        "source": "soilbook.lazymaps.lazy_scene (SIMULATED, synthetic waves + seeded noise)",
        "licence": "CC0-1.0",
        "citation": "none (simulated)",
        "seed": int(seed),
    }
    bands = xr.DataArray(
        data,
        dims=("band", *_SPATIAL),
        coords=coords,
        attrs={"units": "1", "long_name": "synthetic reflectance"},
    )
    return xr.Dataset({"bands": bands}, attrs=attrs)


# -- writing -------------------------------------------------------------------------------------

FORMATS = ("zarr", "cog")


def _check_map(da: Any, format: str) -> xr.DataArray:
    if not isinstance(da, xr.DataArray) or tuple(da.dims[-2:]) != _SPATIAL or da.ndim > 3:
        dims = getattr(da, "dims", None)
        raise ParameterError(
            f"write_map got {type(da).__name__} with dims {dims}; expected an xarray.DataArray "
            "on (y, x) or (output, y, x), e.g. from predict_lazy."
        )
    if format not in FORMATS:
        raise ParameterError(f"format={format!r}; expected one of {FORMATS}.")
    if not hasattr(da.data, "dask"):
        da = da.chunk({d: min(1024, n) for d, n in da.sizes.items()})
    return da.rename(da.name or "prediction")


def _regular(da: xr.DataArray) -> xr.DataArray:
    """Chunks a Zarr array can take: every chunk of a dim as large as the first, except that
    the last may differ (a last chunk merged with a small remainder is fine: region writes are
    by whole rows of chunks)."""
    chunks = {}
    for dim, sizes in zip(da.dims, da.chunks, strict=True):
        if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > 2 * sizes[0]):
            chunks[dim] = sizes[0]
    return da.chunk(chunks) if chunks else da


def _row_slices(da: xr.DataArray) -> list[slice]:
    """The rows of every row of dask chunks (what one region write computes and stores)."""
    edges = np.cumsum((0, *da.chunksizes["y"]))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _fingerprint(da: xr.DataArray) -> dict[str, Any]:
    """What identifies a map: its computation (the dask graph's name encodes the function and
    the inputs) and what the store's metadata holds (a token of the coordinates, attrs, name)."""
    from dask.base import tokenize

    return {
        "name": da.data.name,
        "token": tokenize(da),
        "shape": list(da.shape),
        "chunks": [list(c) for c in da.chunks],
    }


def _read_log(log: Path, fingerprint: dict[str, Any]) -> set[int] | None:
    """Rows already written by an interrupted run of the same map, None when there is none."""
    try:
        state = json.loads(log.read_text())
    except (OSError, ValueError):
        return None
    return set(state["rows"]) if state.get("fingerprint") == fingerprint else None


def _write_log(log: Path, fingerprint: dict[str, Any], rows: set[int]) -> None:
    tmp = log.with_name(log.name + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "rows": sorted(rows)}))
    os.replace(tmp, log)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _publish(partial: Path, path: Path) -> None:
    """Rename the finished ``partial`` to ``path`` (an existing ``path`` is replaced)."""
    if path.exists():
        old = path.with_name(path.name + ".old")
        _remove(old)
        os.replace(path, old)
        os.replace(partial, path)
        _remove(old)
    else:
        os.replace(partial, path)


def _zarr_init(da: xr.DataArray, partial: Path) -> None:
    """Create the store: metadata, coordinates in memory, no data chunk computed."""
    ds = da.to_dataset()
    chunks = [int(c[0]) for c in da.chunks]
    ds.to_zarr(
        partial,
        mode="w",
        compute=False,
        encoding={da.name: {"chunks": chunks}},
        consolidated=False,
    )


def _zarr_rows(da: xr.DataArray, partial: Path, log: Path, done: set[int], progress: bool) -> None:
    """Compute and store the rows of chunks not yet done, one row at a time (one dask compute
    each, on the current scheduler), recording each finished row in ``log``."""
    ds = da.to_dataset()
    ds = ds.drop_vars([k for k, v in ds.coords.items() if "y" not in v.dims])
    fingerprint = _fingerprint(da)
    rows = _row_slices(da)
    with progress_bar(
        total=len(rows), initial=len(done), disable=not progress, desc="writing rows of chunks"
    ) as bar:
        for i, rows_i in enumerate(rows):
            if i in done:
                continue
            region = {d: slice(None) for d in da.dims} | {"y": rows_i}
            ds.isel(y=rows_i).to_zarr(partial, mode="r+", region=region, consolidated=False)
            done.add(i)
            _write_log(log, fingerprint, done)
            bar.update(1)


def _consolidate(store: Path) -> None:
    """Consolidated metadata (one read opens the store; zarr 3 warns that this is an extension
    of the format 3 spec, which xarray and zarr-python read)."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(store))


def _write_zarr(da: xr.DataArray, path: Path, resume: bool, progress: bool) -> None:
    partial = path.with_name(path.name + ".partial")
    log = path.with_name(path.name + ".partial.json")
    da = _regular(da)
    done = _read_log(log, _fingerprint(da)) if resume and partial.is_dir() else None
    if done is None:
        _remove(log)  # first: a store re-created for another map must never meet the old log
        _remove(partial)
        _zarr_init(da, partial)
        done = set()
    _zarr_rows(da, partial, log, done, progress)
    _consolidate(partial)
    _publish(partial, path)
    _remove(log)


def _raster_lock() -> Any:
    """The lock that serialises writes into one GeoTIFF: a ``distributed.Lock`` when a
    ``dask.distributed.Client`` is the current scheduler (its workers are processes), else a
    thread lock."""
    import threading

    try:
        from distributed import Lock, default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client: local threads
        return threading.Lock()
    return Lock("soilbook.lazymaps.write_map", client=client)


def _write_cog(da: xr.DataArray, path: Path) -> None:
    """A tiled GeoTIFF written chunk by chunk, then copied (streamed from disk) into a COG at
    ``<path>.partial``, renamed to ``path`` when complete; on failure both are removed."""
    from rasterio.shutil import copy as rio_copy

    partial = path.with_name(path.name + ".partial")
    staging = path.with_name(path.name + ".partial.tif")
    if da.rio.crs is None and da.attrs.get("crs"):
        da = da.rio.write_crs(da.attrs["crs"])
    if da.rio.nodata is None and np.issubdtype(da.dtype, np.floating):
        da = da.rio.write_nodata(np.nan, encoded=False)  # pixels not predicted are NaN
    tags = {k: str(v) for k, v in da.attrs.items()}
    try:
        da.rio.to_raster(
            staging,
            driver="GTiff",
            tiled=True,
            lock=_raster_lock(),
            tags=tags,
            compress="deflate",
            BIGTIFF="IF_SAFER",
        )
        rio_copy(staging, partial, driver="COG", COMPRESS="DEFLATE", BIGTIFF="IF_SAFER")
        _publish(partial, path)
    finally:
        _remove(staging)
        _remove(partial)


def write_map(
    da: xr.DataArray,
    path: str | os.PathLike,
    *,
    format: str = "zarr",
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = False,
) -> Path:
    """Write a (lazy) map to disk chunk by chunk, never holding more than a row of chunks.

    Parameters
    ----------
    da
        A DataArray (y, x) or (output, y, x), e.g. :func:`predict_lazy`; an in-memory one is
        chunked first. Computed on dask's current scheduler: the local threads by default, a
        ``dask.distributed.Client``'s cluster if one exists (its workers must see ``path``).
    path
        The destination: a Zarr store (a folder) or a ``.tif`` file.
    format
        ``"zarr"`` (default; xarray ``to_zarr``, Zarr format 3, consolidated metadata) or
        ``"cog"`` (Cloud-Optimised GeoTIFF; needs rioxarray — a tiled GeoTIFF is written chunk
        by chunk, then GDAL copies it into a COG; not resumable).
    overwrite
        Replace an existing ``path``; otherwise an existing one is a ParameterError.
    resume
        Zarr only. The store is built at ``<path>.partial`` one row of chunks at a time, each
        finished row recorded in ``<path>.partial.json`` together with the dask graph's name
        (which encodes the function and the inputs) and a token of the coordinates and attrs.
        A rerun after an interruption that gets the *same* map (the same lazy map object, or
        one rebuilt from inputs dask tokenizes deterministically, e.g. in a new process) skips
        the recorded rows; any other rerun starts afresh. False: always start afresh.
    progress
        Show a progress bar over rows of chunks.

    Cost and parallelism: each row of chunks is one dask computation, so at most a row of
    chunks (``width / chunk`` tasks) runs at a time — plenty for a laptop's cores, a limit on
    a large cluster — and with a ``halo`` the input chunks of the rows above and below are
    computed (read) again for every row, about three reads of the scene in all (one without a
    halo).

    Returns the final path. The map appears at ``path`` only when complete (renamed from
    ``<path>.partial``); after a failure ``path`` is untouched and the partial store remains
    for a resume.
    """
    da = _check_map(da, format)
    if format == "cog":  # before anything is computed or created
        require("rioxarray", needed_for="writing maps as Cloud-Optimised GeoTIFFs (format='cog')")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ParameterError(
            f"{path} exists; pass overwrite=True to replace it, or choose another path."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "zarr":
        _write_zarr(da, path, resume, progress)
    else:
        _write_cog(da, path)
    return path
