"""One entry point for every data source a notebook can use.

``data_source`` picks where the sample set comes from:

=============  ==========================================  ==========================  =========
source         what                                        targets (first = default)   scene
=============  ==========================================  ==========================  =========
``simulated``  the offline salinity scene + field samples  ``salinity`` (g/kg)         yes
``limesoda``   a LimeSoDa field set with Sentinel-2 bands  ``SOC`` (%), ``pH``,        no
                                                           ``Clay`` (%)
``ucrb``       USGS Upper Colorado River Basin pedons      ``ec`` (dS/m, EC 1:2)       no
``file``       your CSV / NetCDF / Zarr file               any column (default         no
                                                           ``target``)
=============  ==========================================  ==========================  =========

:func:`check_source_args` does the cheap checks (no data read) that
:func:`soilbook.config.validate_params` runs before a notebook starts; :func:`load` returns a
:class:`LoadedData` whose ``samples`` passed :func:`soilbook.data.schema.validate_samples`.
``target="auto"`` means the source's default target.

A user's file (``"file"``) is checked and read by :mod:`soilbook.data.real.userfile` alone
(:func:`~soilbook.data.real.userfile.check_user_file`,
:func:`~soilbook.data.real.userfile.load_user_file`): this module only passes the arguments on,
so the pre-run check and the loader give the same messages.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import xarray as xr

from soilbook.data import targets
from soilbook.data.schema import validate_samples, validate_scene
from soilbook.errors import ParameterError

#: Targets per source; the first is the default ("auto"). "file" accepts any column name.
#: Defined once, in :data:`soilbook.data.targets.SOURCE_TARGETS`.
SOURCE_TARGETS: dict[str, tuple[str, ...]] = targets.SOURCE_TARGETS
SOURCES = tuple(SOURCE_TARGETS)


class LoadedData(NamedTuple):
    """What :func:`load` returns: the sample set and, for simulated data, the whole scene."""

    samples: xr.Dataset
    scene: xr.Dataset | None


def resolve_target(data_source: str, target: str) -> str:
    """The canonical target name for ``data_source`` (``"auto"`` → the default; any case)."""
    check_source(data_source)
    if data_source == "file":
        return targets.column_name(target)
    return targets.resolve_target(
        target, SOURCE_TARGETS[data_source], where=f"data_source={data_source!r}"
    )


def check_source(data_source: str) -> str:
    if data_source not in SOURCE_TARGETS:
        raise ParameterError(f"data_source={data_source!r} is not known; allowed: {list(SOURCES)}.")
    return data_source


def check_source_args(
    data_source: str,
    *,
    dataset_id: str = "BB.250",
    target: str = "auto",
    data_path: str = "",
    crs: str = "",
) -> None:
    """Cheap checks of the data arguments (no rows are parsed).

    Unknown source, a LimeSoDa id without Sentinel-2 bands, a target the source does not have,
    or for ``"file"`` what :func:`soilbook.data.real.userfile.check_user_file` refuses: a
    missing path, an unsupported extension, a folder, an empty file, an unknown ``crs`` (the
    CRS of ``x`` / ``y`` columns), and for a CSV a header without the target column, without
    ``group`` / ``lat`` + ``lon`` / ``x`` + ``y`` with ``crs``, or without predictors, or bytes
    that are not UTF-8. Raises :class:`ParameterError` or
    :class:`~soilbook.errors.SchemaError` (the file's content).
    """
    check_source(data_source)
    tgt = resolve_target(data_source, target)
    if data_source == "limesoda":
        from soilbook.data.real.limesoda import check_dataset_id

        check_dataset_id(dataset_id)
    elif data_source == "file":
        from soilbook.data.real.userfile import check_user_file

        check_user_file(data_path, tgt, crs=crs)


def check_user_csv(path: str | os.PathLike[str], target: str, *, crs: str = "") -> list[str]:
    """The header of a chapter-1 CSV, checked without parsing its rows; returns the columns.

    :func:`soilbook.data.real.userfile.check_csv_header` (see there for what is refused, with
    :class:`~soilbook.errors.SchemaError` and the expected layout); ``target`` is the column
    name as is, ``crs`` the CRS of ``x`` / ``y`` columns. The rows are checked when
    :func:`soilbook.data.real.userfile.load_user_file` reads them.
    """
    from soilbook.data.real.userfile import check_csv_header

    return list(check_csv_header(path, target, crs=crs).columns)


def load(
    data_source: str = "simulated",
    *,
    target: str = "auto",
    dataset_id: str = "BB.250",
    data_path: str = "",
    seed: int = 0,
    scene_size: int = 160,
    n_samples: int = 360,
    n_dates: int = 3,
    window: int = 15,
    ucrb_depth: str = "surface",
    target_units: str = "",
    crs: str = "",
    spectra_kind: str = "auto",
    block_size_m: float | None = None,
) -> LoadedData:
    """Load the sample set (and, for simulated data, the scene) for a notebook.

    Parameters
    ----------
    data_source
        One of :data:`SOURCES`.
    target
        A target of that source (see :data:`SOURCE_TARGETS`) or ``"auto"``.
    dataset_id
        LimeSoDa dataset id (``data_source="limesoda"``).
    data_path
        Your file (``data_source="file"``).
    seed, scene_size, n_samples, n_dates, window
        Simulated data only: random seed, scene side (pixels), number of field samples,
        Sentinel-2 acquisitions, and the side (pixels) of the patch cut around each sample.
    ucrb_depth
        ``"surface"`` (default: horizons at the surface, as in the source study, which is what
        a satellite sees) or ``"all"`` horizons with their mid-depth as a covariate.
    target_units, crs, spectra_kind, block_size_m
        Your file only, passed to :func:`soilbook.data.real.userfile.load_user_file`: the
        target's unit (``""``: ``"unknown"``, or a NetCDF / Zarr file's own), the CRS of
        ``x`` / ``y`` columns, how spectra are stored, and the side (m) of the spatial blocks
        made from coordinates when the file has no ``group`` (``None``: automatic).

    Returns
    -------
    LoadedData
        ``samples`` in the sample-set schema; ``scene`` (simulated only) in the scene schema.
    """
    tgt = resolve_target(data_source, target)
    if data_source != "file":  # a file's checks run first thing in load_user_file
        check_source_args(data_source, dataset_id=dataset_id, target=target, data_path=data_path)
    scene = None
    if data_source == "simulated":
        from soilbook.data.scene import sample_scene
        from soilbook.data.simulate.salinity import simulate_scene

        scene = validate_scene(simulate_scene(size=scene_size, n_dates=n_dates, seed=seed))
        samples = sample_scene(scene, n_samples=n_samples, window=window, seed=seed)
    elif data_source == "limesoda":
        from soilbook.data.real.limesoda import load_limesoda

        samples = load_limesoda(dataset_id, tgt)
    elif data_source == "ucrb":
        from soilbook.data.real.ucrb import load_ucrb

        samples = load_ucrb(tgt, depth=ucrb_depth)
    else:
        from soilbook.data.real.userfile import load_user_file

        samples = load_user_file(
            data_path,
            tgt,
            target_units=target_units,
            crs=crs,
            spectra_kind=spectra_kind,
            block_size_m=block_size_m,
        )
    return LoadedData(validate_samples(samples), scene)


__all__ = [
    "SOURCES",
    "SOURCE_TARGETS",
    "LoadedData",
    "check_source_args",
    "check_user_csv",
    "load",
    "resolve_target",
]
