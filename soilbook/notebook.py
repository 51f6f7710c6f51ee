"""What every chapter notebook does the same way, written once.

A chapter notebook keeps its narrative and its calls; the plumbing around them lives here:

* :func:`parameters_from` gathers the values of the ``parameters`` cell from the notebook's
  namespace, ready for :func:`soilbook.config.validate_params`;
* :func:`start` is the set-up cell: the book's figure style, the output folder, the training
  device and a one-line report, and the clock for the run's wall time. It returns a
  :class:`NotebookRun`;
* :meth:`NotebookRun.write_record` writes the run record, ``<output_dir>/metrics.json`` (which
  ``soilbook run`` merges into ``_build/executed/<notebook>.json``) and ``summary.csv``;
* :func:`unwrap` and :func:`histories` reach the model inside a fitted wrapper (a
  :class:`soilbook.evaluate.Log1pTarget`, a scikit-learn ``Pipeline``) to read what only the
  inner model has: its training history, attention weights or features.

A chapter's set-up cell is then::

    NOTEBOOK = "01_salinity_ss_soilnet"
    params = validate_params(NOTEBOOK, parameters_from(NOTEBOOK, globals()))
    run = start(NOTEBOOK, params)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from soilbook import __version__, config, plots
from soilbook.chapters.common import check_writable_dir
from soilbook.errors import ParameterError
from soilbook.train import resolve_device

__all__ = [
    "NotebookRun",
    "histories",
    "parameters_from",
    "start",
    "timings_record",
    "unwrap",
]

#: The run record's file name inside ``output_dir`` (``soilbook run`` reads it from there).
RECORD_NAME = "metrics.json"
#: The pooled metric table's file name inside ``output_dir``.
SUMMARY_NAME = "summary.csv"


def parameters_from(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``notebook``'s parameters as they stand in ``namespace`` (pass ``globals()``).

    Only the names that :func:`soilbook.config.defaults` lists are taken, so the notebook's other
    variables never reach the validator. Raises :class:`ParameterError` naming any parameter that
    the namespace lacks (the ``parameters`` cell was edited or not run).
    """
    names = list(config.defaults(notebook))
    missing = [name for name in names if name not in namespace]
    if missing:
        raise ParameterError(
            f"{notebook}: parameter(s) {missing} are not defined in the notebook. Run the "
            "'parameters' cell first, and keep one line `name: type = value  # comment` for "
            f"each of {names}."
        )
    return {name: namespace[name] for name in names}


@dataclass
class NotebookRun:
    """One execution of a chapter notebook, as :func:`start` set it up.

    Attributes
    ----------
    notebook : the notebook's stem, e.g. ``"01_salinity_ss_soilnet"``.
    params : the validated parameters (what :func:`soilbook.config.validate_params` returned).
    output_dir : the folder of tables, figures, checkpoints and the run record (it exists).
    device : the :class:`torch.device` networks train on (``"auto"`` resolved).
    started : :func:`time.perf_counter` at set-up, seconds; :attr:`elapsed_s` counts from it.
    """

    notebook: str
    params: dict[str, Any]
    output_dir: Path
    device: Any
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed_s(self) -> float:
        """Seconds since :func:`start` (wall clock)."""
        return time.perf_counter() - self.started

    def write_record(
        self,
        *,
        data: str,
        summary: pd.DataFrame,
        claims: pd.DataFrame | Sequence[Any],
        timings: Mapping[Any, float],
        **extra: Any,
    ) -> dict[str, Any]:
        """Write the run record and the pooled metric table; return the record.

        ``data`` says what the data were (e.g. ``"simulated"``); ``summary`` is the pooled
        ``CVResult.summary()`` (one row per model × split); ``claims`` the claims check: a list of
        :class:`soilbook.claims.Claim` (written with ``Claim.to_dict``, the one record shape of
        every chapter) or a table;
        ``timings`` ``CVResult.timings`` (seconds per model × split). ``extra`` adds fields, e.g.
        ``source=...`` or ``map=map_scores``; a DataFrame becomes a list of row records (its
        index included), ``None`` stays ``None``.

        Writes ``<output_dir>/metrics.json`` (keys ``notebook, data, device, parameters, summary,
        timings_s``, the extra fields, ``claims, wall_time_s``; strict JSON: a NaN or infinite
        number is written as ``null``, other values JSON cannot hold as text; written to a
        temporary file and moved into place, so a reader never sees half a record) and
        ``<output_dir>/summary.csv``, and prints where they went.
        """
        record: dict[str, Any] = {
            "notebook": self.notebook,
            "data": data,
            "device": str(self.device),
            "parameters": self.params,
            "summary": _rows(summary, keep_index=True),
            "timings_s": timings_record(timings),
            **{name: _rows(value, keep_index=True) for name, value in extra.items()},
            "claims": _claim_rows(claims),
            "wall_time_s": self.elapsed_s,
        }
        path = self.output_dir / RECORD_NAME
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(
                json.dumps(_finite_or_null(record), indent=2, default=str, allow_nan=False)
            )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        summary.to_csv(self.output_dir / SUMMARY_NAME)
        # names only: the reader of a built book should not see this machine's folders
        print(f"wrote {RECORD_NAME} and {SUMMARY_NAME} to output_dir ({self.elapsed_s:.0f} s)")
        return record


def _finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (also NumPy's) replaced by ``None``, in nested
    dicts, lists and tuples, so the record is strict JSON (``null``) that any reader accepts."""
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_null(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):  # np.float64 is a float
        return None
    if hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0 and obj.dtype.kind == "f":
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def start(notebook: str, params: Mapping[str, Any]) -> NotebookRun:
    """The set-up cell of a chapter: style, output folder, device, report; returns the run.

    ``params`` are the validated parameters; ``params["output_dir"]`` is created (with its
    parents), ``params["device"]`` is resolved (``"auto"``: CUDA when present, else CPU), the
    book's figure style is applied to matplotlib, and one line reports the package version, the
    profile and the training device. Raises :class:`soilbook.errors.OutputDirError` when the
    output folder cannot be created or written (a file in the way, no permission, a read-only
    disk), before any heavy work starts.
    """
    started = time.perf_counter()
    out = Path(params["output_dir"])
    check_writable_dir(out, what="output_dir", keep=True)
    device = resolve_device(params["device"])
    plots.use_style()
    print(
        f"soilbook {__version__} | profile {params['profile']} | training device: {device}",
        flush=True,
    )
    return NotebookRun(notebook, dict(params), out, device, started)


def unwrap(estimator: Any) -> Any:
    """The model inside a fitted wrapper, or ``estimator`` itself when it wraps nothing.

    Follows a fitted ``estimator_`` (:class:`soilbook.evaluate.Log1pTarget` and the
    scikit-learn meta-estimators that name their fitted model so) and a ``Pipeline``'s last
    step, as deep as they nest. With ``Log1pTarget`` the inner model predicts log1p(target):
    its SHAP values and attention are then in log1p units.
    """
    while True:
        if isinstance(estimator, Pipeline):
            estimator = estimator.steps[-1][1]
        elif getattr(estimator, "estimator_", None) is not None:
            estimator = estimator.estimator_
        else:
            return estimator


def histories(
    source: Any,
    split: str | None = None,
    *,
    seed: int | None = None,
    fold: int | None = None,
) -> dict[str, Any]:
    """Training histories of the fitted networks, keyed ``"<model> / <split>"``.

    ``source`` is either

    * ``CVResult.fitted`` (``{(model, split): estimator}``, the last fold of the first seed):
      each network's :meth:`training_histories` (or its ``history_``) is read; or
    * the :class:`~soilbook.evaluate.CVResult` itself: its :attr:`histories` of every fit,
      of which one fold per (model, split) is returned — the first seed (``seed`` picks
      another) and the last fold (``fold`` picks another, 0-based), i.e. the same fits as
      ``fitted``.

    A network trained in one stage is keyed ``"<model> / <split>"``; one with several stages
    (DeepSalt's teacher and student) gets a key per stage, ``"<model> / <split> / <stage>"``.
    Models without histories (the baselines) are left out, and ``split`` keeps one split only.
    The values are :class:`soilbook.train.History` objects (plain dicts of per-epoch lists
    after ``CVResult.from_json``), ready for :func:`soilbook.plots.learning_curves`.
    """
    if isinstance(source, Mapping):
        fits: dict[tuple[str, str], dict[str, Any]] = {}
        for (name, split_name), estimator in source.items():
            inner = unwrap(estimator)
            method = getattr(inner, "training_histories", None)
            if callable(method):
                stages = dict(method())
            elif hasattr(inner, "history_"):
                stages = {"network": inner.history_}
            else:
                continue
            if split in (None, split_name):
                fits[(name, split_name)] = stages
        return _history_keys(fits)
    records = getattr(source, "histories", None)
    if not isinstance(records, Mapping):
        raise ParameterError(
            f"histories() got a {type(source).__name__}. Expected: a CVResult or its `fitted` "
            "dict {(model, split): estimator}."
        )
    chosen: dict[tuple[str, str], tuple[int, int]] = {}
    for name, split_name, fit_seed, fit_fold, _stage in records:
        if split not in (None, split_name):
            continue
        want_seed = source.seeds_of(name)[0] if seed is None else seed
        if fit_seed != want_seed or (fold is not None and fit_fold != fold):
            continue
        best = chosen.get((name, split_name))
        if best is None or fit_fold > best[1]:
            chosen[(name, split_name)] = (fit_seed, fit_fold)
    fits = {}
    for (name, split_name, fit_seed, fit_fold, stage), history in records.items():
        if chosen.get((name, split_name)) == (fit_seed, fit_fold):
            fits.setdefault((name, split_name), {})[stage] = history
    return _history_keys(fits)


def _history_keys(fits: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, Any]:
    """``{(model, split): {stage: history}}`` → ``{"model / split[ / stage]": history}``."""
    out = {}
    for (name, split_name), stages in fits.items():
        for stage, history in stages.items():
            key = f"{name} / {split_name}"
            out[key if len(stages) == 1 else f"{key} / {stage}"] = history
    return out


def timings_record(timings: Mapping[Any, float]) -> dict[str, float]:
    """``CVResult.timings`` with JSON keys: ``{(model, split): s}`` → ``{"model / split": s}``.

    Keys that are already text are kept as they are.
    """
    return {
        " / ".join(map(str, key)) if isinstance(key, tuple) else str(key): float(seconds)
        for key, seconds in timings.items()
    }


def _claim_rows(claims: Any) -> Any:
    """Claims as JSON records: ``Claim.to_dict()`` per claim, or a table's rows."""
    if isinstance(claims, pd.DataFrame):
        return _rows(claims, keep_index=False)
    return [c.to_dict() if hasattr(c, "to_dict") else dict(c) for c in claims]


def _rows(value: Any, *, keep_index: bool) -> Any:
    """A DataFrame as a list of row dicts (``keep_index``: its index as columns first)."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if keep_index else value
        return frame.to_dict(orient="records")
    return value
