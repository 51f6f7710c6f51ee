"""Smoke runs: every notebook executes in the quick profile and the book builds with -W.

These are the slow tests (minutes). They run the real command line, `soilbook book`, exactly as
`make book` does, and as a new user would: without the data mirror, with an empty download
cache and nothing but the installed packages, so a hidden download fails them. Notebooks whose
source, parameters and package code have not changed since their last successful run are not
executed again (that is `soilbook book`'s rule; `.ci/run`'s book stage has just run them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from secret_scan import scan_files

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
EXECUTED = REPO / "_build" / "executed"

pytestmark = pytest.mark.slow


def _soilbook(*args: str, timeout: int, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "soilbook", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def book_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """`soilbook book --profile quick` offline: no mirror, an empty cache."""
    env = {k: v for k, v in os.environ.items() if k != "SOILBOOK_DATA_MIRROR"}
    env["SOILBOOK_CACHE"] = str(tmp_path_factory.mktemp("empty-cache"))
    return _soilbook("book", "--profile", "quick", timeout=3000, env=env)


@pytest.fixture(scope="module")
def executed(book_run) -> subprocess.CompletedProcess:
    assert book_run.returncode == 0, (
        f"book failed:\n{book_run.stdout[-4000:]}\n{book_run.stderr[-4000:]}"
    )
    return book_run


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_in_quick_profile(executed, nb):
    record = json.loads((EXECUTED / f"{nb}.json").read_text())
    assert record["status"] == "ok"
    out = json.loads((EXECUTED / f"{nb}.ipynb").read_text())
    outputs = [o for c in out["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3, f"{nb}: {len(figures)} figures captured (is MPLBACKEND headless?)"
    assert record["parameters"]["profile"] == "quick"
    assert record["metrics"]["summary"], "the notebook wrote no metrics"
    # every network checkpoints under output_dir (relative to notebooks/, where the kernel runs)
    checkpoints = REPO / "notebooks" / record["parameters"]["output_dir"] / "checkpoints"
    assert checkpoints.is_dir() and any(checkpoints.iterdir()), f"{nb}: no checkpoints written"


def test_no_credentials_in_executed_notebooks(executed):
    """No key, token or credential-variable value (tests/secret_scan.py) in the executed
    notebooks, their run records or any page of the built book."""
    for nb in NOTEBOOKS:
        text = (EXECUTED / f"{nb}.ipynb").read_text().lower()
        assert "downloading" not in text, f"{nb}: download messages landed in the notebook"
    records = sorted(EXECUTED.glob("*.ipynb")) + sorted(EXECUTED.glob("*.json"))
    pages = sorted((REPO / "_build" / "html").rglob("*.html"))
    assert len(records) >= 2 * len(NOTEBOOKS) and pages, "the book was not built"
    found = scan_files([*records, *pages])
    assert not found, "credentials in the built book:\n" + "\n".join(found)


def test_bad_parameter_stops_before_execution():
    proc = _soilbook("run", NOTEBOOKS[0], "-p", "epochs", "0", timeout=120)
    assert proc.returncode == 2
    assert "epochs" in proc.stderr and "too small" in proc.stderr


def test_book_builds_with_warnings_as_errors(executed):
    html = REPO / "_build" / "html"
    assert (html / "index.html").exists()
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb}.html").read_text()
        assert "simulated" in page.lower()
        assert page.count("<img") >= 5, f"{nb}: the page shows no figures"
