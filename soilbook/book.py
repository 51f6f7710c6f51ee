"""Build the book: execute what changed (:mod:`soilbook.run`), stage, render with Jupyter Book.

``soilbook book`` runs every notebook whose source, parameters or package code changed since its
last successful run (:func:`soilbook.run.is_up_to_date`), copies the book's sources to
``_build/site_src/`` with the executed notebooks in place of the committed (output-free) ones,
and builds the HTML with Jupyter Book, warnings counted as errors, into ``_build/html/``.
Jupyter Book itself never executes anything (``execute_notebooks: off`` in ``_config.yml``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from soilbook.errors import DependencyNotFoundError, NotebookExecutionError
from soilbook.run import DEFAULT_TIMEOUT_S, build_params, execute_in_repo, find_repo, is_up_to_date

__all__ = ["book", "build_html", "fold_injected_parameters", "stage_book"]


# -- staging -----------------------------------------------------------------------------------


def _toc_files(toc: Any) -> list[str]:
    """Every ``file:`` / ``root:`` entry of a parsed ``_toc.yml``, at any depth."""
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


def _book_sources(repo: Path) -> tuple[set[str], list[str]]:
    """The top-level folders the book needs (at least ``book``, ``notebooks``) and the files
    the table of contents and ``_config.yml`` (bibliography, logo) name."""
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    config = yaml.safe_load((repo / "_config.yml").read_text()) or {}
    named = [*_toc_files(toc), *(config.get("bibtex_bibfiles") or [])]
    if isinstance(config.get("logo"), str):
        named.append(config["logo"])
    tops = {"book", "notebooks"} | {Path(f).parts[0] for f in named if len(Path(f).parts) > 1}
    return tops, named


def _copy_sources(repo: Path, site_src: Path, tops: set[str], named: list[str]) -> None:
    """A fresh ``site_src``: the two config files, the folders ``tops`` and top-level ``named``."""
    if site_src.exists():
        shutil.rmtree(site_src)
    site_src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(repo / name, site_src / name)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "outputs")
    for top in sorted(tops):
        if (repo / top).is_dir():
            shutil.copytree(repo / top, site_src / top, ignore=ignore)
    for f in named:  # top-level files named in the toc / config
        src = repo / f
        for cand in (src, src.with_suffix(".md"), src.with_suffix(".ipynb")):
            if cand.is_file() and len(Path(f).parts) == 1:
                shutil.copy2(cand, site_src / cand.name)


def fold_injected_parameters(src: Path, dest: Path) -> None:
    """Copy an executed notebook, folding papermill's injected-parameters cell in the book.

    The cell stays (it records the values this run used) but is collapsed behind a toggle
    (tag ``hide-input``), so readers do not see the parameter list twice.
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


def stage_book(repo: Path, executed_dir: Path, site_src: Path) -> list[str]:
    """Copy the book sources to ``site_src`` with executed notebooks in place of the sources.

    Copies ``_config.yml``, ``_toc.yml``, every top-level folder the table of contents or the
    bibliography points into (at least ``book/`` and ``notebooks/``), then replaces each
    ``notebooks/<stem>.ipynb`` by ``<executed_dir>/<stem>.ipynb`` where one exists (its
    injected-parameters cell folded). Returns the stems of the notebooks that had no executed
    copy (they are shown unexecuted).
    """
    _copy_sources(repo, site_src, *_book_sources(repo))
    missing = []
    for nb in sorted((site_src / "notebooks").glob("*.ipynb")):
        executed = executed_dir / nb.name
        if executed.is_file():
            fold_injected_parameters(executed, nb)
        else:
            missing.append(nb.stem)
    return missing


# -- building ----------------------------------------------------------------------------------


def _has_jupyter_book() -> bool:
    """Whether Jupyter Book is installed (without importing it: it is slow to import)."""
    return importlib.util.find_spec("jupyter_book") is not None


def build_html(repo: Path, site_src: Path) -> Path:
    """``jupyter-book build site_src --path-output repo -W --keep-going``; returns the HTML dir.

    Raises :class:`~soilbook.errors.DependencyNotFoundError` without Jupyter Book and
    :class:`~soilbook.errors.NotebookExecutionError` when the build fails.
    """
    if not _has_jupyter_book():
        raise DependencyNotFoundError(
            "jupyter_book",
            pip_name="'jupyter-book<2'",
            extra="book",
            needed_for="building the book",
        )
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
        raise NotebookExecutionError(
            f"jupyter-book build failed (exit {proc.returncode}); warnings count as errors. "
            "Read the messages above (file:line: WARNING ...) and fix them; paths under "
            "_build/site_src/ are copies of the same paths in the repository."
        )
    return repo / "_build" / "html"


def _execute_changed(
    repo: Path,
    executed_dir: Path,
    *,
    profile: str,
    force: bool,
    keep_going: bool,
    **options: Any,
) -> list[str]:
    """Execute each notebook whose inputs changed (all with ``force``); returns the failures
    as ``"stem: error"`` (stops at the first unless ``keep_going``)."""
    failures: list[str] = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        stem = path.stem
        params = build_params(stem, repo=repo, profile=profile)
        if not force and is_up_to_date(executed_dir / f"{stem}.json", path, params):
            print(f"[skip] {stem}: unchanged since its last successful run (use --force to rerun)")
            continue
        print(f"[run ] {stem} (profile {profile})", flush=True)
        rec = execute_in_repo(path, executed_dir, params, repo, profile, **options)
        ok = rec["status"] == "ok"
        print(f"[{'ok' if ok else 'FAIL'}  ] {stem} in {rec['wall_time_s']:.0f} s")
        if not ok:
            failures.append(f"{stem}: {rec['error']}")
            if not keep_going:
                break
    return failures


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
    """``soilbook book``: execute what changed, stage the executed copies, build the HTML.

    Returns the HTML folder. A failed notebook raises
    :class:`~soilbook.errors.NotebookExecutionError` before anything is built; Ctrl-C during a
    notebook raises :class:`soilbook.run.RunInterrupted`.
    """
    repo = repo or find_repo()
    executed_dir = repo / "_build" / "executed"
    if execute:
        failures = _execute_changed(
            repo,
            executed_dir,
            profile=profile,
            force=force,
            keep_going=keep_going,
            timeout=timeout,
            progress=progress,
        )
        if failures:
            raise NotebookExecutionError(
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
