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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import xarray as xr

from soilbook.data import targets
from soilbook.data.schema import validate_samples, validate_scene
from soilbook.errors import ParameterError, SchemaError

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
    data_source: str, *, dataset_id: str = "BB.250", target: str = "auto", data_path: str = ""
) -> None:
    """Cheap checks of the data arguments (nothing is loaded); raises :class:`ParameterError`.

    Unknown source, a LimeSoDa id without Sentinel-2 bands, a target the source does not have,
    or (for ``"file"``) a missing path, an unsupported extension, a folder or an empty file, and
    for a CSV (:func:`check_user_csv`) a header without the target column or without ``group``
    / ``lat`` + ``lon``, or bytes that are not UTF-8. Raises :class:`ParameterError` or
    :class:`~soilbook.errors.SchemaError` (the file's content).
    """
    check_source(data_source)
    tgt = resolve_target(data_source, target)
    if data_source == "limesoda":
        from soilbook.data.real.limesoda import check_dataset_id

        check_dataset_id(dataset_id)
    elif data_source == "file":
        from soilbook.data.checks import check_file_content
        from soilbook.data.real.userfile import check_user_path

        path = check_file_content(check_user_path(data_path))
        if path.suffix.lower() == ".csv":
            check_user_csv(path, tgt)


def check_user_csv(path: str | os.PathLike[str], target: str) -> list[str]:
    """The header of a chapter-1 CSV, checked without reading its rows; returns the columns.

    Refuses (:class:`~soilbook.errors.SchemaError`, with the expected layout): what
    :func:`soilbook.data.tables.read_header` refuses (empty, column named twice, ``;``
    separated), bytes that are not UTF-8 anywhere in the file, no ``target`` column, and
    neither a ``group`` column nor ``lat`` and ``lon``. The rows are checked when
    :func:`soilbook.data.real.userfile.load_user_file` reads them.
    """
    from soilbook.data import tables
    from soilbook.data.checks import check_utf8_text
    from soilbook.data.real.userfile import EXPECTED_LAYOUT

    path = Path(path)
    columns = tables.read_header(path, layout=EXPECTED_LAYOUT)
    check_utf8_text(path)
    tables.require_columns(path, columns, [target], layout=EXPECTED_LAYOUT)
    if "group" not in columns and not {"lat", "lon"} <= set(columns):
        raise SchemaError(
            f"{path.name} has neither a 'group' column nor 'lat' and 'lon' columns, so no "
            f"spatial groups can be made for cross-validation (file: {path}; columns: "
            f"{columns[:12]}). Expected: {EXPECTED_LAYOUT}"
        )
    return columns


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

    Returns
    -------
    LoadedData
        ``samples`` in the sample-set schema; ``scene`` (simulated only) in the scene schema.
    """
    check_source_args(data_source, dataset_id=dataset_id, target=target, data_path=data_path)
    tgt = resolve_target(data_source, target)
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

        samples = load_user_file(data_path, tgt)
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
