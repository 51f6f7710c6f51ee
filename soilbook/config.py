"""The parameter catalogue: every chapter's notebook parameters, validated before heavy work.

Each chapter declares its parameters, cross-checks and data entry point in its own module of
:mod:`soilbook.chapters`; this module only gathers them (:data:`CHAPTERS`, one line per chapter).
A notebook's ``parameters`` cell holds the same names with the quick-profile defaults (a test
keeps the two in step), its first code cell after that calls :func:`validate_params`, and
``soilbook run`` calls it too before papermill starts, so a wrong value stops the run with a
message that says what was wrong, what is allowed and what to do — before any data is read or
model trained.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from soilbook.chapters import moisture, salinity, soc, transfer
from soilbook.chapters.common import Chapter, Param
from soilbook.errors import ParameterError

#: The chapters by notebook stem, in book order — one line per chapter.
CHAPTERS: dict[str, Chapter] = {
    chapter.key: chapter
    for chapter in (
        salinity.CHAPTER,
        transfer.CHAPTER,
        soc.CHAPTER,
        moisture.CHAPTER,
    )
}

#: Each notebook's parameters (in the order of its parameters cell).
NOTEBOOK_PARAMS: dict[str, tuple[Param, ...]] = {k: c.params for k, c in CHAPTERS.items()}


def notebook_key(notebook: str) -> str:
    """The canonical stem of ``notebook``: a path, a stem, or a unique prefix such as ``"01"``."""
    key = notebook.removesuffix(".ipynb").replace("\\", "/").split("/")[-1]
    if key in CHAPTERS:
        return key
    matches = [k for k in CHAPTERS if k.startswith(key + "_")]
    if len(matches) != 1:
        raise ParameterError(f"Unknown notebook {notebook!r}; known: {sorted(CHAPTERS)}.")
    return matches[0]


def chapter(notebook: str) -> Chapter:
    """The :class:`~soilbook.chapters.common.Chapter` of ``notebook`` (path, stem or prefix)."""
    return CHAPTERS[notebook_key(notebook)]


def defaults(notebook: str) -> dict[str, Any]:
    """The quick-profile defaults of ``notebook`` (its parameters cell holds the same)."""
    return chapter(notebook).defaults()


def validate_params(
    notebook: str,
    params: Mapping[str, Any],
    *,
    partial: bool = False,
    workdir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Validate ``params`` for ``notebook`` and return them with defaults filled in.

    ``partial=True`` accepts a subset (the CLI's overrides) and fills the rest from defaults;
    unknown names are always an error. ``workdir`` is the folder the notebook runs in, against
    which a relative ``output_dir`` is probed (default: the current directory, which is
    ``notebooks/`` inside a running notebook; ``soilbook run`` passes ``notebooks/``).
    Raises :class:`ParameterError` (or :class:`~soilbook.errors.SchemaError` for a bad data
    file, :class:`~soilbook.errors.OutputDirError` for an output folder that cannot be
    written) on the first problem. See :meth:`soilbook.chapters.common.Chapter.validate`.
    """
    return chapter(notebook).validate(params, partial=partial, workdir=workdir)


__all__ = [
    "CHAPTERS",
    "NOTEBOOK_PARAMS",
    "Param",
    "ParameterError",
    "chapter",
    "defaults",
    "notebook_key",
    "validate_params",
]
