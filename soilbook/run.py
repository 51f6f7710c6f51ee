"""Run one notebook: find it, merge and check its parameters, execute it with papermill.

``soilbook run`` (:mod:`soilbook.cli`) and ``soilbook book`` (:mod:`soilbook.book`) both go
through this module; it knows nothing about the HTML book.

A notebook is named by a path, its stem (``01_salinity_ss_soilnet``) or a unique prefix (``01``).
Parameters are merged in this order, later wins: the notebook's defaults (:mod:`soilbook.config`)
← the profile file ``notebooks/params/<stem>/<profile>.yaml`` ← each ``-f`` file in turn ← each
``-p KEY VALUE``. ``-p`` values are read as YAML (``3`` → 3, ``true`` → True, ``2e-3`` → 0.002)
and turned back into text where the parameter is a string.

Relative paths: the notebook runs in ``notebooks/``. The defaults and the profile files are
written relative to ``notebooks/`` and stay as they are; a relative path given with ``-p`` or in
a ``-f`` file for a parameter named ``*_path`` or ``*_dir`` (``output_dir`` included), and a
relative ``--output-dir``, are made absolute against the caller's directory (``cwd``).

The merged set is validated (:func:`soilbook.config.validate_params`) and both output folders
(the executed-notebook folder and the notebook's ``output_dir``) are checked for writing *before*
papermill starts. Each run writes ``<executed dir>/<stem>.ipynb`` and ``<stem>.json``: the
parameters, profile, wall time, status, versions, device, input hashes (for
:func:`is_up_to_date`) and the metrics the notebook saved to ``<output_dir>/metrics.json``.

Credentials never go into parameters (they would be stored in the executed notebook): names
that look like secrets (token, key, password, secret, credential; not a count such as n_tokens)
are refused; use environment variables instead (e.g. ``EARTHENGINE_PROJECT``,
``GOOGLE_APPLICATION_CREDENTIALS``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import yaml

from soilbook.chapters.common import check_writable_dir
from soilbook.config import NOTEBOOK_PARAMS, Param, chapter, defaults, validate_params
from soilbook.errors import ParameterError, require

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "KERNEL_DEFAULTS",
    "KERNEL_ENVIRONMENT",
    "PROFILES",
    "RunInterrupted",
    "build_params",
    "check_secret_names",
    "ensure_writable",
    "environment_info",
    "execute_in_repo",
    "execute_notebook",
    "find_repo",
    "is_up_to_date",
    "kernel_environment",
    "merge_params",
    "notebook_output_dir",
    "package_hash",
    "params_hash",
    "params_table",
    "parse_value",
    "profile_file",
    "resolve_notebook",
    "run",
]

PROFILES = ("quick", "full")
#: papermill's per-cell limit in seconds when the caller gives none.
DEFAULT_TIMEOUT_S = 3600
_SECRET = re.compile(
    r"(token(?!s)|secret|passw|credential|api_?key|private_?key|(^|_)key($|_))", re.I
)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a notebook while it ran; the message says where the partial outputs are.

    A :class:`KeyboardInterrupt`, so that code which lets Ctrl-C through keeps doing so.
    ``executed`` is the partial executed notebook; ``outputs`` the notebook's ``output_dir``
    (its tables, figures and training checkpoints, from which a re-run resumes), or ``None``.
    """

    def __init__(self, stem: str, executed: Path, outputs: Path | None) -> None:
        message = f"{stem} was interrupted; the partial executed notebook is {executed}"
        if outputs is not None:
            message += (
                f", its outputs so far (checkpoints included) are in {outputs}; "
                "run the same command again to resume"
            )
        super().__init__(message)
        self.stem, self.executed, self.outputs = stem, executed, outputs


# -- locating things ---------------------------------------------------------------------------


def find_repo(start: str | os.PathLike[str] | None = None) -> Path:
    """The book's root: the first folder upwards from ``start`` (default: the current one)
    that holds ``_toc.yml`` and ``notebooks/``; else the folder above the installed package."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    pkg_parent = Path(__file__).resolve().parents[1]
    if (pkg_parent / "notebooks").is_dir():
        return pkg_parent
    raise ParameterError(
        f"Cannot find the soilbook book (a folder with _toc.yml and notebooks/) above {here}; "
        "run soilbook from inside the repository."
    )


def resolve_notebook(nb: str, repo: Path) -> Path:
    """A notebook path from a path, a stem or a unique prefix such as ``"01"``."""
    p = Path(nb)
    if p.suffix == ".ipynb" and p.is_file():
        return p.resolve()
    folder = repo / "notebooks"
    stem = p.name.removesuffix(".ipynb")
    exact = folder / f"{stem}.ipynb"
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"{stem}*.ipynb"))
    if len(matches) == 1:
        return matches[0]
    known = sorted(q.stem for q in folder.glob("*.ipynb"))
    if not matches:
        raise ParameterError(f"No notebook matches {nb!r}; known: {known}.")
    raise ParameterError(
        f"{nb!r} matches several notebooks {[m.stem for m in matches]}; be more specific."
    )


def profile_file(repo: Path, stem: str, profile: str) -> Path:
    """Where the parameter profile ``profile`` of notebook ``stem`` lives (it may not exist)."""
    return repo / "notebooks" / "params" / stem / f"{profile}.yaml"


# -- parameters --------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``"3"`` → 3, ``"true"`` → True, ``"2e-3"`` → 0.002."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value) else value
        except ValueError:  # pragma: no cover
            return value
    return text if value is None and text.strip() not in ("null", "~") else value


def check_secret_names(names: Sequence[str]) -> None:
    """Refuse parameter names that look like credentials (:class:`ParameterError`)."""
    bad = [n for n in names if _SECRET.search(str(n))]
    if bad:
        raise ParameterError(
            f"Refusing parameter(s) {bad}: they look like credentials, and parameters are saved "
            "in the executed notebook and its JSON. Put secrets in environment variables (e.g. "
            "EARTHENGINE_PROJECT, GOOGLE_APPLICATION_CREDENTIALS) and read them in code."
        )


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping of parameter: value from ``path``; ``what`` names the file in messages."""
    if not path.is_file():
        raise ParameterError(f"{what} {path} does not exist (or is not a file).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ParameterError(f"{what} {path} is not valid UTF-8 YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParameterError(
            f"{what} {path} must be a mapping of parameter: value, got {type(data).__name__}."
        )
    return data


def _spec(stem: str) -> dict[str, Param] | None:
    params = NOTEBOOK_PARAMS.get(stem)
    return {p.name: p for p in params} if params else None


def _absolutise(values: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``values`` with relative ``*_path`` / ``*_dir`` strings made absolute against ``base``."""
    out = dict(values)
    for k, v in values.items():
        if (k.endswith("_path") or k.endswith("_dir")) and isinstance(v, str) and v.strip():
            p = Path(v).expanduser()
            if not p.is_absolute():
                out[k] = str((base / p).resolve())
    return out


def _profile_layer(stem: str, repo: Path, profile: str) -> dict[str, Any]:
    """The values of profile ``profile`` (``{}`` for a missing ``quick`` profile)."""
    pf = profile_file(repo, stem, profile)
    if pf.is_file():
        layer = _read_yaml(pf, "Profile file")
        check_secret_names(list(layer))
        return layer
    if profile != "quick":
        raise ParameterError(
            f"No {profile!r} profile for {stem}: {pf} does not exist. Available: "
            f"{sorted(q.stem for q in pf.parent.glob('*.yaml'))}."
        )
    return {}


def merge_params(
    stem: str,
    *,
    repo: Path,
    profile: str | None = "quick",
    files: Sequence[str | os.PathLike[str]] = (),
    overrides: Sequence[tuple[str, str]] = (),
    cwd: Path | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge defaults ← profile ← ``-f`` files ← ``-p`` overrides (later wins), unvalidated.

    Returns the merged parameters and, per name, where its value came from (``"default"``,
    ``"profile quick"``, ``"--profile"``, ``"-f FILE"`` or ``"-p"``).
    """
    cwd = Path(cwd or Path.cwd())
    spec = _spec(stem)
    merged: dict[str, Any] = defaults(stem) if spec else {}
    origin = dict.fromkeys(merged, "default")
    if profile:
        layer = _profile_layer(stem, repo, profile)
        merged.update(layer)
        origin.update(dict.fromkeys(layer, f"profile {profile}"))
        if spec and "profile" in spec and origin.get("profile") == "default":
            choices = spec["profile"].choices or (profile,)
            merged["profile"] = profile if profile in choices else "custom"
            origin["profile"] = "--profile"
    for f in files:
        layer = _read_yaml(Path(f), "Parameter file")
        check_secret_names(list(layer))
        merged.update(_absolutise(layer, cwd))
        origin.update(dict.fromkeys(layer, f"-f {f}"))
    check_secret_names([k for k, _ in overrides])
    for key, text in overrides:
        value = parse_value(text)
        if spec and key in spec and spec[key].kind is str and not isinstance(value, str):
            value = text  # "-p dataset_id 1" means the text "1"
        merged.update(_absolutise({key: value}, cwd))
        origin[key] = "-p"
    return merged, origin


def build_params(stem: str, **sources: Any) -> dict[str, Any]:
    """Merged and validated parameters; raises :class:`ParameterError`.

    ``sources`` are the keyword arguments of :func:`merge_params` (``repo``, ``profile``,
    ``files``, ``overrides``, ``cwd``).
    """
    merged, _ = merge_params(stem, **sources)
    if _spec(stem) is None:
        print(f"note: soilbook.config declares no parameters for {stem}; passing them unchecked.")
        return merged
    return validate_params(stem, merged, partial=True, workdir=Path(sources["repo"]) / "notebooks")


def _allowed(p: Param) -> str:
    """The allowed values of ``p`` in a few characters: ``a|b|c`` or ``>= 1 <= 9``."""
    if p.choices:
        return "|".join(map(str, p.choices))
    bounds = [
        f">= {p.minimum:g}" if p.minimum is not None else "",
        f"<= {p.maximum:g}" if p.maximum is not None else "",
    ]
    return " ".join(b for b in bounds if b)


def params_table(stem: str, repo: Path | None = None) -> str:
    """The parameter table of ``stem`` (name, type, default, allowed, profile values, help),
    followed by the chapter's notes (:attr:`soilbook.chapters.common.Chapter.notes`)."""
    spec = NOTEBOOK_PARAMS.get(stem)
    if not spec:
        raise ParameterError(
            f"soilbook.config declares no parameters for {stem!r}; known: {sorted(NOTEBOOK_PARAMS)}."
        )
    profiles: dict[str, dict[str, Any]] = {}
    if repo is not None:
        for prof in PROFILES:
            pf = profile_file(repo, stem, prof)
            if pf.is_file():
                profiles[prof] = _read_yaml(pf, "Profile file")
    rows = [["name", "type", "default", *profiles, "allowed", "help"]]
    for p in spec:
        prof_vals = [repr(profiles[k][p.name]) if p.name in profiles[k] else "" for k in profiles]
        rows.append([p.name, p.kind.__name__, repr(p.default), *prof_vals, _allowed(p), p.help])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    notes = chapter(stem).notes
    if notes:  # what each model needs, coverage rules: read before a run, not after a failure
        lines += ["", notes]
    return "\n".join(lines)


# -- the run record: hashes and environment ----------------------------------------------------


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
    """sha256 of the parameters as sorted JSON (a change re-executes the notebook)."""
    return _sha256_bytes(json.dumps(params, sort_keys=True, default=str).encode())


def package_hash() -> str:
    """sha256 over the soilbook package sources (a change re-executes the notebooks)."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict[str, Any]:
    """Versions and the compute device, for the run record."""
    import soilbook

    info: dict[str, Any] = {
        "versions": {
            "soilbook": soilbook.__version__,
            "python": platform.python_version(),
            **{
                d: _version(d)
                for d in ("torch", "numpy", "pandas", "xarray", "scikit-learn", "papermill")
            },
        },
        "platform": platform.platform(),
    }
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
        info["device"] = {
            "cuda_available": cuda,
            "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
            "torch_cuda": torch.version.cuda,
        }
    except ImportError:  # pragma: no cover - torch is a core dependency
        info["device"] = {"cuda_available": False, "cuda_device": None, "torch_cuda": None}
    return info


def is_up_to_date(record_path: Path, notebook: Path, params: Mapping[str, Any]) -> bool:
    """True if the last run of ``notebook`` succeeded with the same source, parameters and
    package code (the stamp is the run's JSON record next to the executed copy)."""
    executed = record_path.with_suffix(".ipynb")
    if not (record_path.is_file() and executed.is_file()):
        return False
    try:
        rec = json.loads(record_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return (
        rec.get("status") == "ok"
        and rec.get("notebook_sha256") == _sha256_bytes(notebook.read_bytes())
        and rec.get("parameters_sha256") == params_hash(params)
        and rec.get("package_sha256") == package_hash()
    )


# -- the kernel's environment and the output folders -------------------------------------------

#: Environment the notebook kernel runs with (restored afterwards).
KERNEL_ENVIRONMENT = {
    # Figures must be captured as notebook outputs: a headless MPLBACKEND=Agg (as CI sets)
    # would make plt.show() draw nothing and the book would have no figures.
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    # Download messages ("Downloading file ... to ...") name local cache paths and would
    # land in the executed notebook and the book; soilbook.data.registry stays quiet with it.
    "SOILBOOK_QUIET_DOWNLOADS": "1",
}
#: Set only where the caller has not: progress bars fill an executed notebook (and the book)
#: with hundreds of text lines.
KERNEL_DEFAULTS = {"TQDM_DISABLE": "1"}


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Set :data:`KERNEL_ENVIRONMENT` and :data:`KERNEL_DEFAULTS` for a kernel started inside."""
    wanted = dict(KERNEL_ENVIRONMENT)
    wanted.update({k: v for k, v in KERNEL_DEFAULTS.items() if k not in os.environ})
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ensure_writable(
    folder: str | os.PathLike[str], what: str = "output folder", hint: str | None = None
) -> Path:
    """Create ``folder`` if needed and prove it can be written (a probe file, then deleted).

    Returns the absolute folder. Raises :class:`~soilbook.errors.OutputDirError` (read-only
    file system, no permission, a file in the way) naming ``what`` the folder is for and,
    in ``hint``, how to choose another (default: the ``output_dir`` parameter). The probe is
    :func:`soilbook.chapters.common.check_writable_dir`, the one parameter validation uses.
    """
    return check_writable_dir(folder, what=what, keep=True, hint=hint)


def notebook_output_dir(params: Mapping[str, Any], cwd: Path) -> Path | None:
    """The notebook's ``output_dir`` parameter as an absolute path (relative to ``cwd``, where
    the kernel runs), or ``None`` where the notebook has none."""
    value = params.get("output_dir")
    if not isinstance(value, str) or not value.strip():
        return None
    return (Path(cwd) / Path(value).expanduser()).resolve()


# -- executing one notebook --------------------------------------------------------------------


def _new_record(
    input_path: Path, out_nb: Path, params: Mapping[str, Any], profile: str | None, **extra: Any
) -> dict[str, Any]:
    """The run record as it stands before execution: inputs, their hashes, the environment."""
    return {
        "notebook": out_nb.stem,
        "input": str(input_path),
        "executed": str(out_nb),
        "profile": profile,
        "parameters": dict(params),
        "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "notebook_sha256": _sha256_bytes(input_path.read_bytes()),
        "parameters_sha256": params_hash(params),
        "package_sha256": package_hash(),
        **environment_info(),
        **extra,
    }


def _kernel_manager_class(stderr: IO[bytes], kernel_pids: list[int] | None = None) -> type:
    """A jupyter_client kernel manager whose kernel process writes its stderr to ``stderr``.

    The kernel's own messages (ipykernel's start-up warnings, and on Ctrl-C the complaints of a
    shutdown that races the interrupted cell's reply) go to the run's kernel log instead of the
    terminal; what the cells print is captured in the notebook as always. The process id of
    each kernel it starts is appended to ``kernel_pids`` (for :func:`_sigint_interrupts_kernel`).
    """
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw.setdefault("stderr", stderr)
            await super().start_kernel(**kw)
            provisioner = getattr(self, "provisioner", None)
            pid = getattr(provisioner, "pid", None) or getattr(
                getattr(provisioner, "process", None), "pid", None
            )
            if kernel_pids is not None and pid:
                kernel_pids.append(int(pid))

    return LoggedKernelManager


@contextlib.contextmanager
def _sigint_interrupts_kernel(kernel_pids: list[int]) -> Iterator[None]:
    """While a notebook runs: the first Ctrl-C (SIGINT) interrupts the kernel, so the running
    cell stops with ``KeyboardInterrupt`` and the run ends as interrupted through the kernel's
    reply, instead of an exception raised at a random point of the executor's event loop (which
    could leave it waiting on a kernel that is still busy). A second Ctrl-C, or one before the
    kernel has started, raises :class:`KeyboardInterrupt` here at once. Only in the main thread
    (where signal handlers live); the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    asked: list[bool] = []

    def on_sigint(signum: int, frame: Any) -> None:
        if asked or not kernel_pids:
            raise KeyboardInterrupt
        asked.append(True)
        try:
            os.kill(kernel_pids[-1], signal.SIGINT)
        except OSError:  # the kernel is gone: stop here
            raise KeyboardInterrupt from None

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _papermill(
    input_path: Path,
    out_nb: Path,
    params: Mapping[str, Any],
    cwd: Path,
    kernel_log: Path,
    **options: Any,
) -> tuple[str | None, int | None]:
    """Execute with papermill; returns ``(error, cell)``: ``(None, None)`` when it ran through,
    else ``"Name: message"`` and the 1-based number of the failing cell (``None`` if unknown).

    Every exception of the execution (a cell's error, a cell timeout, a dead kernel …) becomes
    a failed run; Ctrl-C, in this process or inside the kernel, raises :class:`KeyboardInterrupt`.
    The kernel process's own stderr goes to ``kernel_log``.
    """
    papermill = require("papermill", extra="book", needed_for="executing the notebooks")
    kernel_pids: list[int] = []
    try:
        with (
            kernel_environment(),
            open(kernel_log, "wb") as log,
            _sigint_interrupts_kernel(kernel_pids),
        ):
            papermill.execute_notebook(
                str(input_path),
                str(out_nb),
                parameters=dict(params),
                cwd=str(cwd),
                kernel_manager_class=_kernel_manager_class(log, kernel_pids),
                **options,
            )
    except Exception as err:
        ename = getattr(err, "ename", None) or type(err).__name__
        evalue = getattr(err, "evalue", None)
        evalue = str(err) if evalue is None else evalue
        if ename == "KeyboardInterrupt":  # the kernel got the terminal's Ctrl-C first
            raise KeyboardInterrupt from None
        index = getattr(err, "cell_index", None)
        return f"{ename}: {evalue}".strip(), None if index is None else int(index) + 1
    return None, None


def _finish_record(
    record: dict[str, Any], status: str, params: Mapping[str, Any], cwd: Path, t0: float
) -> None:
    """Add wall time, status and the metrics the notebook wrote during this run."""
    record["wall_time_s"] = round(time.time() - t0, 3)
    record["status"] = status
    record["metrics"] = None
    outputs = notebook_output_dir(params, cwd)
    if outputs is None:
        return
    metrics_path = outputs / "metrics.json"
    record["metrics_path"] = str(metrics_path)
    if metrics_path.is_file() and metrics_path.stat().st_mtime >= t0 - 1:
        try:
            record["metrics"] = json.loads(metrics_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            record["metrics_error"] = f"{metrics_path} is not valid JSON: {err}"


def _write_record(record: Mapping[str, Any], json_path: Path) -> None:
    """Write the record atomically (a half-written JSON never stands as a run's stamp)."""
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, json_path)


def execute_notebook(
    input_path: Path,
    output_dir: Path,
    params: Mapping[str, Any],
    *,
    stem: str | None = None,
    profile: str | None = None,
    cwd: Path | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    progress: bool = False,
    kernel_name: str = "python3",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Execute ``input_path`` with papermill and write ``<stem>.ipynb`` and ``<stem>.json``.

    ``params`` are injected as they are (validate first). ``cwd`` is where the kernel runs
    (default: the notebook's folder); ``timeout`` is papermill's per-cell limit in seconds
    (``None`` or 0: none). ``output_dir`` and the notebook's ``output_dir`` parameter are
    checked for writing before the kernel starts (:class:`~soilbook.errors.OutputDirError`).
    Metrics the notebook wrote to ``<output_dir param>/metrics.json`` during this run are merged
    into the record. Returns the record (also written as JSON); its ``status`` is ``"ok"`` or
    ``"failed"`` (then ``error`` is ``"Name: message"`` and ``error_cell`` the cell's number).
    Ctrl-C writes the record with status ``"interrupted"`` and raises :class:`RunInterrupted`.
    """
    stem = stem or input_path.stem
    cwd = Path(cwd or input_path.parent).resolve()
    output_dir = ensure_writable(
        output_dir,
        "the executed-notebook folder",
        hint="--output-dir DIR on the command line, output_dir= in Python",
    )
    outputs = notebook_output_dir(params, cwd)
    if outputs is not None:
        ensure_writable(outputs, "the notebook's output_dir")
    out_nb = output_dir / f"{stem}.ipynb"
    record = _new_record(input_path, out_nb, params, profile, **(extra or {}))
    record["kernel_log"] = str(output_dir / f"{stem}.kernel.log")
    t0 = time.time()
    try:
        error, cell = _papermill(
            input_path,
            out_nb,
            params,
            cwd,
            Path(record["kernel_log"]),
            kernel_name=kernel_name,
            execution_timeout=timeout or None,
            progress_bar=progress,
            log_output=False,
        )
    except KeyboardInterrupt:
        _finish_record(record, "interrupted", params, cwd, t0)
        record["error"], record["error_cell"] = "KeyboardInterrupt: stopped by Ctrl-C", None
        _write_record(record, output_dir / f"{stem}.json")
        raise RunInterrupted(stem, out_nb, outputs) from None
    _finish_record(record, "ok" if error is None else "failed", params, cwd, t0)
    record["error"], record["error_cell"] = error, cell
    _write_record(record, output_dir / f"{stem}.json")
    return record


def execute_in_repo(
    path: Path,
    out: Path,
    params: Mapping[str, Any],
    repo: Path,
    profile: str | None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`execute_notebook` as ``soilbook run`` and ``book`` call it: from ``notebooks/``."""
    return execute_notebook(
        path, out, params, stem=path.stem, profile=profile, cwd=repo / "notebooks", **options
    )


def run(
    nb: str,
    *,
    repo: Path | None = None,
    profile: str | None = "quick",
    files: Sequence[str] = (),
    overrides: Sequence[tuple[str, str]] = (),
    timeout: float | None = DEFAULT_TIMEOUT_S,
    output_dir: Path | None = None,
    progress: bool = False,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """``soilbook run``: resolve, merge and validate parameters, then execute.

    ``cwd`` (default: the current folder) is what relative ``-p``/``-f`` paths and a relative
    ``output_dir`` (the executed-notebook folder, default ``_build/executed``) are relative to.
    Returns the run record (see :func:`execute_notebook`).
    """
    repo = repo or find_repo()
    cwd = Path(cwd or Path.cwd())
    path = resolve_notebook(nb, repo)
    params = build_params(
        path.stem, repo=repo, profile=profile, files=files, overrides=overrides, cwd=cwd
    )
    out = (cwd / Path(output_dir).expanduser()) if output_dir else repo / "_build" / "executed"
    return execute_in_repo(path, out, params, repo, profile, timeout=timeout, progress=progress)
