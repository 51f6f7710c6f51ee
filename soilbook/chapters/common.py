"""What every chapter shares: the parameter record, its checks, the shared parameters, ``Chapter``.

A chapter module (:mod:`soilbook.chapters.salinity`, :mod:`soilbook.chapters.transfer`, …)
declares its notebook's parameters as a tuple of :class:`Param`, a cross-check of the whole set
and its data entry point, and exposes them as one :class:`Chapter`; :mod:`soilbook.config`
gathers the chapters into the catalogue.

:meth:`Chapter.validate` runs, in order: unknown / missing names, each value's type, choices,
finiteness and bounds (:func:`check_value`), the device (:func:`soilbook.device.check_device`),
the chapter's own cross-check, and last the shared ``output_dir`` probe
(:func:`check_output_dir`). Everything here is cheap (a file header, a probe file), so a wrong
value stops before any data is read or model trained.

The shared parameter pieces — :data:`SEED`, :data:`DEVICE`, :data:`PROFILE` and the
:func:`output_dir_param` factory — hold no chapter's values; :func:`shared_params` puts them in
front of a chapter's own parameters.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soilbook.device import available_memory_bytes, check_device
from soilbook.errors import OutputDirError, ParameterError

#: The ``spectra_kind`` values of a user's spectra, the same as
#: :data:`soilbook.data.tables.SPECTRA_KINDS` (kept here so the parameter lists load without the
#: data layer; a test keeps them equal).
SPECTRA_KINDS: tuple[str, ...] = ("auto", "reflectance", "percent", "absorbance")

__all__ = [
    "DEVICE",
    "PROFILE",
    "SEED",
    "SPECTRA_KINDS",
    "Chapter",
    "Param",
    "available_memory_bytes",
    "check_heads_divide_width",
    "check_n_jobs",
    "check_output_dir",
    "check_value",
    "check_writable_dir",
    "describe",
    "gib",
    "output_dir_param",
    "shared_params",
]


@dataclass(frozen=True)
class Param:
    """One notebook parameter.

    ``kind`` is the Python type (``int``, ``float``, ``str``, ``bool``); ``choices`` limits the
    value to a fixed set; ``minimum`` / ``maximum`` are inclusive bounds for numbers. A float
    must also be finite (no NaN, no ±inf). ``accepts_number=True`` lets a ``str`` parameter
    that may hold a number (``block_size``: ``"auto"`` or metres) take an int or float too,
    stored as its text (``400`` → ``"400"``), since the command line and papermill pass
    ``-p block_size 400`` as a number.
    """

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    accepts_number: bool = False


def describe(p: Param) -> str:
    """What ``p`` allows, in words: ``one of [...]`` or ``a float >= 0.0``."""
    if p.choices:
        return f"one of {list(p.choices)}"
    bounds = []
    if p.minimum is not None:
        bounds.append(f">= {p.minimum}")
    if p.maximum is not None:
        bounds.append(f"<= {p.maximum}")
    finite = " (finite)" if p.kind is float else ""
    return f"a {p.kind.__name__}{finite}" + (f" {' and '.join(bounds)}" if bounds else "")


def _coerce(p: Param, value: Any) -> Any:
    if (
        p.accepts_number
        and p.kind is str
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if p.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if p.kind is bool and not isinstance(value, bool):
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is not a bool. Allowed: True or False. ({p.help})"
        )
    if p.kind is int and isinstance(value, bool):
        raise ParameterError(f"Parameter '{p.name}' = {value!r} must be an int, not a bool.")
    if not isinstance(value, p.kind):
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} has type {type(value).__name__}; "
            f"allowed: {describe(p)}. ({p.help})"
        )
    return value


def check_value(p: Param, value: Any) -> Any:
    """``value`` checked against ``p`` (type, finiteness, choices, bounds) and coerced
    (an int where a float is expected becomes a float). Raises :class:`ParameterError`."""
    value = _coerce(p, value)
    if p.kind is float and not math.isfinite(value):
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is not a finite number; allowed: {describe(p)}. "
            f"({p.help}) NaN and infinity would only surface as a failed training later."
        )
    if p.choices is not None and value not in p.choices:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is not allowed; allowed: {list(p.choices)}. "
            f"({p.help})"
        )
    if p.minimum is not None and value < p.minimum:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is too small; allowed: {describe(p)}. ({p.help})"
        )
    if p.maximum is not None and value > p.maximum:
        raise ParameterError(
            f"Parameter '{p.name}' = {value!r} is too large; allowed: {describe(p)}. ({p.help})"
        )
    return value


# -- the shared parameter pieces ---------------------------------------------------------------

SEED = Param("seed", int, 0, "random seed for data simulation, splits and training", minimum=0)
DEVICE = Param("device", str, "auto", "'auto' (GPU when present), 'cpu' or 'cuda'")
PROFILE = Param(
    "profile", str, "quick", "label of the parameter profile", choices=("quick", "full", "custom")
)


def output_dir_param(default: str) -> Param:
    """The ``output_dir`` parameter with a chapter's ``default`` (relative to ``notebooks/``)."""
    return Param("output_dir", str, default, "where tables, figures and checkpoints go")


def shared_params(output_dir: str) -> tuple[Param, ...]:
    """``seed``, ``device``, ``profile`` and ``output_dir`` (default ``output_dir``)."""
    return (SEED, DEVICE, PROFILE, output_dir_param(output_dir))


# -- checks several chapters use ---------------------------------------------------------------


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_heads_divide_width(width: int, heads: int, *, min_width: int = 1) -> None:
    """Raise :class:`ParameterError` unless ``heads`` divides ``width`` (each attention head gets
    ``width / heads`` channels); the message offers the nearest valid heads and widths."""
    if heads >= 1 and width % heads == 0:
        return
    divisors = _divisors(width)
    lower = [d for d in divisors if d < heads]
    upper = [d for d in divisors if d > heads]
    near_heads = [*lower[-1:], *upper[:1]]
    below = (width // heads) * heads
    near_widths = [w for w in (below, below + heads) if w >= max(min_width, heads)]
    raise ParameterError(
        f"heads={heads} does not divide width={width}: each attention head gets width/heads "
        f"channels, so width must be a multiple of heads. Nearest valid: heads "
        f"{' or '.join(map(str, near_heads))} (with width={width}), or width "
        f"{' or '.join(map(str, near_widths))} (with heads={heads})."
    )


def _dir_problem(err: OSError) -> str:
    if isinstance(err, FileExistsError | NotADirectoryError):
        return "a file is in the way"
    return err.strerror or type(err).__name__


def check_writable_dir(
    path: str | os.PathLike[str], *, what: str, keep: bool = False, hint: str | None = None
) -> Path:
    """Prove that the folder ``path`` can be created and written; return it, absolute.

    Missing folders are created, a small probe file is written and deleted. With
    ``keep=False`` the folders this call created are removed again (deepest first, only if
    empty), so checking leaves nothing behind. Raises :class:`OutputDirError` (read-only file
    system, no permission, a file in the way) naming ``what`` the folder is for; ``hint`` says
    how to choose another (default: the ``output_dir`` parameter).
    """
    folder = Path(path).expanduser().resolve()
    created: list[Path] = []
    probe = folder / f".soilbook-write-probe-{os.getpid()}"
    try:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            created.append(p)
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        probe.write_bytes(b"soilbook")
        probe.unlink()
    except OSError as err:
        raise OutputDirError(
            f"Cannot write to {what} {folder}: {_dir_problem(err)}. Choose a folder you can "
            "write to ("
            + (hint or "output_dir=... in the notebook; -p output_dir DIR on the command line")
            + "), or fix its permissions."
        ) from None
    finally:
        if not keep:
            for p in reversed(created):
                try:
                    p.rmdir()
                except OSError:
                    break
    return folder


def check_output_dir(value: str, workdir: str | os.PathLike[str] | None = None) -> Path:
    """The shared ``output_dir`` check: not empty, and a folder that can be created and written.

    A relative ``value`` is taken relative to ``workdir``, the folder the notebook runs in
    (default: the current directory, which is ``notebooks/`` inside a running notebook). An
    empty value is refused because it would scatter the outputs into ``notebooks/``.
    """
    if not value.strip():
        raise ParameterError(
            f"output_dir={value!r} is empty: the tables, figures and checkpoints would be "
            "written into the notebooks/ folder itself. Give a folder, e.g. "
            "'../_build/outputs/<notebook>' (relative to notebooks/) or an absolute path."
        )
    base = Path(workdir) if workdir is not None else Path.cwd()
    return check_writable_dir(base / Path(value).expanduser(), what="output_dir")


def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB for a message, e.g. ``"3.2 GiB"``."""
    value = n_bytes / 2**30
    return f"{value:.1f} GiB" if value < 1000 else f"{value:,.0f} GiB"


# -- a chapter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book: its notebook's parameters, cross-check and data entry point.

    ``key`` is the notebook's stem (``"01_salinity_ss_soilnet"``); ``params`` its parameters in
    the order of the notebook's parameters cell; ``check(params)`` the cross-parameter checks
    (raises :class:`ParameterError` or :class:`~soilbook.errors.SchemaError`), given the full,
    per-value-checked set; ``load(params)`` returns the chapter's data for a validated set.
    ``notes`` (optional) is text for ``--help-params`` below the table (e.g. what each model
    needs from a user's file).
    """

    key: str
    params: tuple[Param, ...]
    check: Callable[[dict[str, Any]], None]
    load: Callable[[Mapping[str, Any]], Any]
    notes: str = ""

    def defaults(self) -> dict[str, Any]:
        """The quick-profile defaults (the notebook's parameters cell holds the same)."""
        return {p.name: p.default for p in self.params}

    def validate(
        self,
        params: Mapping[str, Any],
        *,
        partial: bool = False,
        workdir: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """``params`` checked and completed with the defaults (see the module docstring).

        ``partial=True`` accepts a subset; unknown names are always an error. ``workdir`` is
        where relative paths (``output_dir``) resolve: the folder the notebook runs in.
        """
        spec = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise ParameterError(
                f"Unknown parameter(s) {unknown} for {self.key}; known: {sorted(spec)}. "
                "Check the spelling, or run `soilbook run NB --help-params`."
            )
        missing = sorted(set(spec) - set(params))
        if missing and not partial:
            raise ParameterError(f"Missing parameter(s) {missing} for {self.key}.")
        out = self.defaults()
        for name, value in params.items():
            out[name] = check_value(spec[name], value)
        if "device" in out:
            check_device(out["device"])
        self.check(out)
        if "output_dir" in out:
            check_output_dir(out["output_dir"], workdir)
        return out


def check_n_jobs(n_jobs: int) -> None:
    """Warn when ``n_jobs`` asks for more worker processes than this machine has cores (the
    folds then share cores and run no faster)."""
    cores = os.cpu_count() or 1
    if n_jobs > cores:
        warnings.warn(
            f"n_jobs={n_jobs} worker processes on {cores} CPU core(s): the folds will share "
            f"cores; n_jobs={cores} is as fast and uses less memory.",
            stacklevel=3,
        )
