"""The ``soilbook`` command line: run notebooks, build the book, manage the data cache.

::

    soilbook run NB [-p KEY VALUE ...] [-f params.yaml ...] [--profile quick|full]
                    [--timeout SEC] [--output-dir DIR] [--help-params]
    soilbook book [--profile quick] [--force] [--no-execute] [--keep-going] [--timeout SEC]
    soilbook data list | fetch NAME... | verify [NAME...]
    soilbook bench maps|train [ARGS...]

``NB`` is a notebook path, its stem (``01_salinity_ss_soilnet``) or a unique prefix (``01``).

Parameters are merged in this order, later wins: the notebook's defaults
(:mod:`soilbook.config`) ← the profile file ``notebooks/params/<stem>/<profile>.yaml`` ← each
``-f`` file in turn ← each ``-p KEY VALUE``. ``-p`` values are read as YAML (``3`` → 3,
``true`` → True, ``2e-3`` → 0.002) and turned back into text where the parameter is a string.
Relative paths given with ``-p``/``-f`` for parameters named ``*_path`` or ``*_dir`` are made
absolute against the directory you run ``soilbook`` from (the notebook itself runs in
``notebooks/``); the defaults and profile files are written relative to ``notebooks/``.
The merged set is validated (:func:`soilbook.config.validate_params`) *before* papermill
starts: a wrong value exits with status 2 and a message saying what to change.

Each run writes ``<output-dir>/<stem>.ipynb`` (the executed notebook, default
``_build/executed/``) and ``<stem>.json`` with the parameters, profile, wall time, status,
versions, device and the metrics the notebook saved to ``<output_dir>/metrics.json``.

Credentials never go into parameters (they would be stored in the executed notebook): names
that look like secrets (token, key, password, secret, credential) are refused; use environment
variables instead (e.g. ``EARTHENGINE_PROJECT``, ``GOOGLE_APPLICATION_CREDENTIALS``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from soilbook.config import NOTEBOOK_PARAMS, Param, ParameterError, defaults, validate_params

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROFILES = ("quick", "full")
DEFAULT_TIMEOUT_S = 3600
_SECRET = re.compile(r"(token|secret|passw|credential|api_?key|private_?key|(^|_)key($|_))", re.I)


class CliError(Exception):
    """A usage problem reported with exit status 2 (wrong name, bad value, missing file)."""


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
    raise CliError(
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
        raise CliError(f"No notebook matches {nb!r}; known: {known}.")
    raise CliError(
        f"{nb!r} matches several notebooks {[m.stem for m in matches]}; be more specific."
    )


def profile_file(repo: Path, stem: str, profile: str) -> Path:
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
    """Refuse parameter names that look like credentials."""
    bad = [n for n in names if _SECRET.search(str(n))]
    if bad:
        raise CliError(
            f"Refusing parameter(s) {bad}: they look like credentials, and parameters are saved "
            "in the executed notebook and its JSON. Put secrets in environment variables (e.g. "
            "EARTHENGINE_PROJECT, GOOGLE_APPLICATION_CREDENTIALS) and read them in code."
        )


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise CliError(f"{what} {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise CliError(f"{what} {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise CliError(
            f"{what} {path} must be a mapping of parameter: value, got {type(data).__name__}."
        )
    return data


def _spec(stem: str) -> dict[str, Param] | None:
    params = NOTEBOOK_PARAMS.get(stem)
    return {p.name: p for p in params} if params else None


def _absolutise(values: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(values)
    for k, v in values.items():
        if (k.endswith("_path") or k.endswith("_dir")) and isinstance(v, str) and v.strip():
            p = Path(v).expanduser()
            if not p.is_absolute():
                out[k] = str((base / p).resolve())
    return out


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

    Returns the merged parameters and, per name, where its value came from.
    """
    cwd = Path(cwd or Path.cwd())
    spec = _spec(stem)
    merged: dict[str, Any] = defaults(stem) if spec else {}
    origin = dict.fromkeys(merged, "default")
    if profile:
        pf = profile_file(repo, stem, profile)
        if pf.is_file():
            layer = _read_yaml(pf, "Profile file")
            check_secret_names(list(layer))
            merged.update(layer)
            origin.update(dict.fromkeys(layer, f"profile {profile}"))
        elif profile != "quick":
            raise CliError(
                f"No {profile!r} profile for {stem}: {pf} does not exist. Available: "
                f"{sorted(q.stem for q in pf.parent.glob('*.yaml'))}."
            )
        if spec and "profile" in spec and origin.get("profile") == "default":
            choices = spec["profile"].choices or (profile,)
            merged["profile"] = profile if profile in choices else "custom"
            origin["profile"] = "--profile"
    for f in files:
        layer = _read_yaml(Path(f), "Parameter file")
        check_secret_names(list(layer))
        merged.update(_absolutise(layer, cwd))
        origin.update(dict.fromkeys(layer, f"-f {f}"))
    if overrides:
        check_secret_names([k for k, _ in overrides])
    for key, text in overrides:
        value = parse_value(text)
        if spec and key in spec and spec[key].kind is str and not isinstance(value, str):
            value = text  # "-p dataset_id 1" means the text "1"
        merged.update(_absolutise({key: value}, cwd))
        origin[key] = "-p"
    return merged, origin


def build_params(stem: str, **sources: Any) -> dict[str, Any]:
    """Merged and validated parameters; raises :class:`ParameterError` or :class:`CliError`.

    ``sources`` are the keyword arguments of :func:`merge_params` (``repo``, ``profile``,
    ``files``, ``overrides``, ``cwd``).
    """
    merged, _ = merge_params(stem, **sources)
    if _spec(stem) is None:
        print(f"note: soilbook.config declares no parameters for {stem}; passing them unchecked.")
        return merged
    return validate_params(stem, merged, partial=True)


def params_table(stem: str, repo: Path | None = None) -> str:
    """The parameter table of ``stem`` (name, type, default, allowed, profile values, help)."""
    spec = NOTEBOOK_PARAMS.get(stem)
    if not spec:
        raise CliError(
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
        if p.choices:
            allowed = "|".join(map(str, p.choices))
        else:
            b = [
                f">= {p.minimum:g}" if p.minimum is not None else "",
                f"<= {p.maximum:g}" if p.maximum is not None else "",
            ]
            allowed = " ".join(x for x in b if x)
        prof_vals = [repr(profiles[k][p.name]) if p.name in profiles[k] else "" for k in profiles]
        rows.append([p.name, p.kind.__name__, repr(p.default), *prof_vals, allowed, p.help])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(lines)


# -- execution ---------------------------------------------------------------------------------


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
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


#: Environment the notebook kernel runs with (restored afterwards).
KERNEL_ENVIRONMENT = {
    # Figures must be captured as notebook outputs: a headless MPLBACKEND=Agg (as CI sets)
    # would make plt.show() draw nothing and the book would have no figures.
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
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
    (``None`` or 0: none). Metrics the notebook wrote to ``<output_dir param>/metrics.json``
    during this run are merged into the record. Returns the record (also written as JSON);
    its ``status`` is ``"ok"`` or ``"failed"``.
    """
    import papermill

    stem = stem or input_path.stem
    cwd = Path(cwd or input_path.parent)
    output_dir.mkdir(parents=True, exist_ok=True)
    out_nb = output_dir / f"{stem}.ipynb"
    record: dict[str, Any] = {
        "notebook": stem,
        "input": str(input_path),
        "executed": str(out_nb),
        "profile": profile,
        "parameters": dict(params),
        "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "notebook_sha256": _sha256_bytes(input_path.read_bytes()),
        "parameters_sha256": params_hash(params),
        "package_sha256": package_hash(),
        **environment_info(),
        **(extra or {}),
    }
    t0 = time.time()
    status, error = "ok", None
    try:
        with kernel_environment():
            papermill.execute_notebook(
                str(input_path),
                str(out_nb),
                parameters=dict(params),
                kernel_name=kernel_name,
                cwd=str(cwd),
                execution_timeout=timeout or None,
                progress_bar=progress,
                log_output=False,
            )
    except Exception as err:  # papermill's execution error, a cell timeout, a dead kernel...
        status = "failed"
        ename = getattr(err, "ename", type(err).__name__)
        evalue = getattr(err, "evalue", str(err))
        error = f"{ename}: {evalue}".strip()
    record["wall_time_s"] = round(time.time() - t0, 3)
    record["status"] = status
    record["error"] = error
    record["metrics"] = None
    out_param = params.get("output_dir")
    if isinstance(out_param, str) and out_param:
        metrics_path = (cwd / out_param).resolve() / "metrics.json"
        record["metrics_path"] = str(metrics_path)
        if metrics_path.is_file() and metrics_path.stat().st_mtime >= t0 - 1:
            try:
                record["metrics"] = json.loads(metrics_path.read_text())
            except json.JSONDecodeError as err:
                record["metrics_error"] = f"{metrics_path} is not valid JSON: {err}"
    json_path = output_dir / f"{stem}.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, json_path)
    return record


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
    """``soilbook run``: resolve, merge and validate parameters, then execute."""
    repo = repo or find_repo()
    path = resolve_notebook(nb, repo)
    stem = path.stem
    params = build_params(
        stem, repo=repo, profile=profile, files=files, overrides=overrides, cwd=cwd
    )
    out = Path(output_dir) if output_dir else repo / "_build" / "executed"
    return _execute_in_repo(path, out, params, repo, profile, timeout=timeout, progress=progress)


def _execute_in_repo(
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


# -- the book ----------------------------------------------------------------------------------


def is_up_to_date(record_path: Path, notebook: Path, params: Mapping[str, Any]) -> bool:
    """True if the last run of ``notebook`` succeeded with the same source, parameters and
    package code (the stamp is the run's JSON record next to the executed copy)."""
    executed = record_path.with_suffix(".ipynb")
    if not (record_path.is_file() and executed.is_file()):
        return False
    try:
        rec = json.loads(record_path.read_text())
    except json.JSONDecodeError:
        return False
    return (
        rec.get("status") == "ok"
        and rec.get("notebook_sha256") == _sha256_bytes(notebook.read_bytes())
        and rec.get("parameters_sha256") == params_hash(params)
        and rec.get("package_sha256") == package_hash()
    )


def _toc_files(toc: Any) -> list[str]:
    found: list[str] = []
    if isinstance(toc, dict):
        for k, v in toc.items():
            if k in ("file", "root") and isinstance(v, str):
                found.append(v)
            else:
                found += _toc_files(v)
    elif isinstance(toc, list):
        for item in toc:
            found += _toc_files(item)
    return found


def stage_book(repo: Path, executed_dir: Path, site_src: Path) -> list[str]:
    """Copy the book sources to ``site_src`` with executed notebooks in place of the sources.

    Copies ``_config.yml``, ``_toc.yml``, every top-level folder the table of contents or the
    bibliography points into (at least ``book/`` and ``notebooks/``), then replaces each
    ``notebooks/<stem>.ipynb`` by ``<executed_dir>/<stem>.ipynb`` where one exists. Returns the
    stems of the notebooks that had no executed copy (they are shown unexecuted).
    """
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    config = yaml.safe_load((repo / "_config.yml").read_text()) or {}
    tops = {"book", "notebooks"}
    extra = [*_toc_files(toc), *(config.get("bibtex_bibfiles") or [])]
    for logo in (config.get("logo"),):
        if isinstance(logo, str):
            extra.append(logo)
    for f in extra:
        parts = Path(f).parts
        if len(parts) > 1:
            tops.add(parts[0])
    if site_src.exists():
        shutil.rmtree(site_src)
    site_src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(repo / name, site_src / name)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "outputs")
    for top in sorted(tops):
        if (repo / top).is_dir():
            shutil.copytree(repo / top, site_src / top, ignore=ignore)
    for f in extra:  # top-level files named in the toc / config
        src = repo / f
        for cand in (src, src.with_suffix(".md"), src.with_suffix(".ipynb")):
            if cand.is_file() and len(Path(f).parts) == 1:
                shutil.copy2(cand, site_src / cand.name)
    missing = []
    for nb in sorted((site_src / "notebooks").glob("*.ipynb")):
        executed = executed_dir / nb.name
        if executed.is_file():
            _copy_with_folded_injected_parameters(executed, nb)
        else:
            missing.append(nb.stem)
    return missing


def _copy_with_folded_injected_parameters(src: Path, dest: Path) -> None:
    """Copy an executed notebook, folding papermill's injected-parameters cell in the book.

    The cell stays (it records the values this run used) but is collapsed behind a toggle, so
    readers do not see the parameter list twice.
    """
    nb = json.loads(src.read_text())
    folded = False
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell["metadata"]["tags"] = [*tags, "hide-input"]
            folded = True
    if folded:
        dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    else:
        shutil.copy2(src, dest)


def build_html(repo: Path, site_src: Path) -> Path:
    """``jupyter-book build site_src --path-output repo -W --keep-going``; returns the HTML dir."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(site_src),
        "--path-output",
        str(repo),
        "--warningiserror",
        "--keep-going",
    ]
    print("$ jupyter-book build", " ".join(cmd[4:]), flush=True)
    proc = subprocess.run(cmd, cwd=repo, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (exit {proc.returncode}); warnings count as errors. "
            "Read the messages above (file:line: WARNING ...) and fix them; paths under "
            "_build/site_src/ are copies of the same paths in the repository."
        )
    return repo / "_build" / "html"


def book(
    *,
    repo: Path | None = None,
    profile: str = "quick",
    force: bool = False,
    execute: bool = True,
    keep_going: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    progress: bool = False,
) -> Path:
    """``soilbook book``: execute what changed, stage the executed copies, build the HTML."""
    repo = repo or find_repo()
    executed_dir = repo / "_build" / "executed"
    failures: list[str] = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        stem = path.stem
        if not execute:
            continue
        params = build_params(stem, repo=repo, profile=profile)
        if not force and is_up_to_date(executed_dir / f"{stem}.json", path, params):
            print(f"[skip] {stem}: unchanged since its last successful run (use --force to rerun)")
            continue
        print(f"[run ] {stem} (profile {profile})", flush=True)
        rec = _execute_in_repo(
            path, executed_dir, params, repo, profile, timeout=timeout, progress=progress
        )
        print(
            f"[{'ok' if rec['status'] == 'ok' else 'FAIL'}  ] {stem} in {rec['wall_time_s']:.0f} s"
        )
        if rec["status"] != "ok":
            failures.append(f"{stem}: {rec['error']}")
            if not keep_going:
                break
    if failures:
        raise RuntimeError(
            "Notebook execution failed, the book was not built:\n  "
            + "\n  ".join(failures)
            + f"\nThe executed copies with the traceback are in {executed_dir}."
        )
    missing = stage_book(repo, executed_dir, repo / "_build" / "site_src")
    if missing:
        print(f"warning: no executed copy of {missing}; the book shows them without outputs.")
    html = build_html(repo, repo / "_build" / "site_src")
    print(f"The book is in {html / 'index.html'}")
    return html


# -- data --------------------------------------------------------------------------------------


def data_list() -> str:
    from soilbook.data.registry import cache_dir, list_datasets

    table = list_datasets()
    table["size"] = [
        "-" if s is None or s != s else f"{s / 1e6:.2f} MB" for s in table.pop("size_bytes")
    ]
    table["checksum"] = ["pinned" if c == "pinned" else "first use" for c in table.pop("sha256")]
    for col, width in (("description", 64), ("licence", 28)):
        table[col] = [t if len(t) <= width else t[: width - 3] + "..." for t in table[col]]
    cols = ["name", "cached", "size", "checksum", "licence", "description"]
    rows = [cols, *([str(v) for v in r] for r in table[cols].itertuples(index=False))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    return f"{text}\n\ncache: {cache_dir()}  (soilbook.data.registry has the full licences and citations)"


def data_fetch(names: Sequence[str], progress: bool = False) -> list[Path]:
    from soilbook.data.registry import fetch

    return [fetch(n, progress=progress) for n in names]


def data_verify(names: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(ok, missing, corrupt) among ``names`` (default: every registered file)."""
    from soilbook.data.registry import DATASETS, cached_path, get, verify

    ok, missing, corrupt = [], [], []
    for n in names or sorted(DATASETS):
        get(n)
        if not cached_path(n).is_file():
            missing.append(n)
        elif verify(n):
            ok.append(n)
        else:
            corrupt.append(n)
    return ok, missing, corrupt


# -- argument parsing --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="soilbook",
        description="Run the soilbook notebooks, build the book and manage its data.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute one notebook with papermill")
    r.add_argument("notebook", help="path, stem (01_salinity_ss_soilnet) or unique prefix (01)")
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE")
    )
    r.add_argument("-f", "--file", action="append", default=[], metavar="PARAMS.yaml")
    r.add_argument(
        "--profile",
        default="quick",
        help="quick (default) | full | another notebooks/params/<nb>/<name>.yaml",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per-cell limit in seconds (0: none)",
    )
    r.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where the executed notebook and JSON go (default _build/executed)",
    )
    r.add_argument(
        "--help-params", action="store_true", help="print the notebook's parameters and exit"
    )
    r.add_argument(
        "--progress", action="store_true", default=None, help="show papermill's progress bar"
    )

    b = sub.add_parser("book", help="execute the notebooks and build the HTML book")
    b.add_argument("--profile", default="quick")
    b.add_argument("--force", action="store_true", help="re-execute even unchanged notebooks")
    b.add_argument(
        "--no-execute", action="store_true", help="build from the existing executed copies"
    )
    b.add_argument(
        "--keep-going", action="store_true", help="execute the other notebooks after a failure"
    )
    b.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)

    d = sub.add_parser("data", help="registered datasets: list, fetch, verify")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="every registered file, cached or not")
    f = dsub.add_parser("fetch", help="download (or copy from the mirror) and verify")
    f.add_argument("names", nargs="+", metavar="NAME")
    v = dsub.add_parser("verify", help="re-hash cached files (default: all)")
    v.add_argument("names", nargs="*", metavar="NAME")

    be = sub.add_parser("bench", help="run a benchmark script from benchmarks/")
    be.add_argument("which", choices=("maps", "train"))
    be.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soilbook`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            repo = find_repo()
            if args.help_params:
                stem = resolve_notebook(args.notebook, repo).stem
                print(params_table(stem, repo))
                return EXIT_OK
            progress = sys.stdout.isatty() if args.progress is None else args.progress
            rec = run(
                args.notebook,
                repo=repo,
                profile=args.profile,
                files=args.file,
                overrides=[tuple(p) for p in args.parameter],
                timeout=args.timeout,
                output_dir=args.output_dir,
                progress=progress,
            )
            print(
                f"{rec['notebook']}: {rec['status']} in {rec['wall_time_s']:.1f} s → {rec['executed']}"
            )
            if rec["status"] != "ok":
                print(f"error: {rec['error']}", file=sys.stderr)
                return EXIT_FAILED
            return EXIT_OK
        if args.command == "book":
            book(
                profile=args.profile,
                force=args.force,
                execute=not args.no_execute,
                keep_going=args.keep_going,
                timeout=args.timeout,
                progress=sys.stdout.isatty(),
            )
            return EXIT_OK
        if args.command == "data":
            if args.data_command == "list":
                print(data_list())
            elif args.data_command == "fetch":
                for name, path in zip(
                    args.names, data_fetch(args.names, progress=sys.stdout.isatty()), strict=True
                ):
                    print(f"{name}: {path}")
            else:
                ok, missing, corrupt = data_verify(args.names)
                for n in ok:
                    print(f"ok       {n}")
                for n in missing:
                    print(f"missing  {n} (not cached; `soilbook data fetch {n}`)")
                for n in corrupt:
                    print(f"CORRUPT  {n} (`soilbook data fetch {n}` replaces it)")
                if corrupt or (args.names and missing):
                    return EXIT_FAILED
            return EXIT_OK
        if args.command == "bench":
            repo = find_repo()
            script = repo / "benchmarks" / f"bench_{args.which}.py"
            if not script.is_file():
                raise CliError(f"{script} does not exist.")
            return subprocess.run(
                [sys.executable, str(script), *args.args], cwd=repo, check=False
            ).returncode
    except (CliError, ParameterError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
