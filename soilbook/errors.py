"""The project's error classes, at the bottom of the package (this module imports nothing of ours).

Every expected failure raises one of these. Each subclasses :class:`SoilbookError` *and* the
builtin exception a caller would naturally catch (``ValueError`` for a bad value,
``FileNotFoundError`` for a missing file, ``ModuleNotFoundError`` for a missing package …), so
code written against the builtins keeps working, while the command line catches
:class:`SoilbookError` alone and prints its message without a traceback.

Messages follow one rule: say what was wrong, what is allowed, and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckpointError",
    "ChecksumError",
    "DataUnavailableError",
    "DependencyNotFoundError",
    "EarthEngineSetupError",
    "NotebookExecutionError",
    "OutputDirError",
    "ParameterError",
    "SchemaError",
    "SoilbookError",
    "SplitError",
    "TrainingDivergedError",
    "UnknownDatasetError",
]


class SoilbookError(Exception):
    """Base class of every error soilbook raises on purpose (bad input, missing data, …)."""


class ParameterError(SoilbookError, ValueError):
    """A notebook or function parameter has a wrong value; the message says what to do."""


class SchemaError(SoilbookError, ValueError):
    """A dataset does not follow the sample-set / scene schema (:mod:`soilbook.data.schema`)."""


class SplitError(SoilbookError, ValueError):
    """A cross-validation split cannot be made from these groups or these folds."""


class ChecksumError(SoilbookError, OSError):
    """A file does not have the sha256 it must have (a download, a cache file, a checkpoint)."""


class CheckpointError(SoilbookError, OSError):
    """A training checkpoint is unreadable, corrupt or belongs to another run."""


class UnknownDatasetError(SoilbookError, KeyError):
    """A dataset or file name that the registry does not know; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DataUnavailableError(SoilbookError, ConnectionError):
    """A registered file is not in the cache and could not be fetched (no network, no mirror)."""


class TrainingDivergedError(SoilbookError, RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and batch."""


class EarthEngineSetupError(SoilbookError, RuntimeError):
    """Earth Engine cannot be used here (package, credentials or project missing)."""


class OutputDirError(SoilbookError, OSError):
    """An output folder cannot be created or written (read-only, no permission, a file in the way)."""


class NotebookExecutionError(SoilbookError, RuntimeError):
    """A notebook failed while it ran, or the book build failed; the message says where to look."""


class DependencyNotFoundError(SoilbookError, ModuleNotFoundError):
    """An optional package is not installed; the message gives the command that installs it.

    Parameters
    ----------
    package:
        The import name that failed, e.g. ``"ee"``.
    pip_name:
        The name on PyPI when it differs from the import name, e.g. ``"earthengine-api"``.
    extra:
        The soilbook extra that brings it (``pip install 'soilbook[extra]'``), if any.
    needed_for:
        What the package is needed for, in a few words.
    """

    def __init__(
        self,
        package: str,
        *,
        pip_name: str | None = None,
        extra: str | None = None,
        needed_for: str = "this feature",
    ) -> None:
        pip_name = pip_name or package
        ways: Sequence[str] = [f"    pip install {pip_name}"]
        if extra:
            ways = [*ways, f"    pip install 'soilbook[{extra}]'   (everything for {extra})"]
        message = (
            f"The optional package '{package}' is not installed; it is needed for {needed_for}. "
            "Install it with\n\n" + "\n".join(ways) + "\n\nand run again."
        )
        super().__init__(message, name=package)
        self.package = package
        self.pip_name = pip_name
        self.extra = extra


def require(
    package: str,
    *,
    pip_name: str | None = None,
    extra: str | None = None,
    needed_for: str = "this feature",
):
    """Import optional ``package`` or raise :class:`DependencyNotFoundError` with the fix.

    Only a missing *top-level* package becomes that error; an import that fails inside an
    installed package (a broken install) propagates unchanged, so it is not misreported.
    """
    import importlib

    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] != package.split(".")[0]:
            raise
        raise DependencyNotFoundError(
            package, pip_name=pip_name, extra=extra, needed_for=needed_for
        ) from None
