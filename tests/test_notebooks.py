"""Smoke runs: every notebook executes in the quick profile, then the book builds with -W.

These are the slow tests (minutes): they run the real command line, exactly as `make book` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
EXECUTED = REPO / "_build" / "executed"

pytestmark = pytest.mark.slow


def _soilbook(*args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soilbook", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def executed() -> dict[str, subprocess.CompletedProcess]:
    """Execute every notebook once (quick profile) through `soilbook run`."""
    return {nb: _soilbook("run", nb, "--profile", "quick", timeout=1800) for nb in NOTEBOOKS}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_in_quick_profile(executed, nb):
    proc = executed[nb]
    assert proc.returncode == 0, f"{nb} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = json.loads((EXECUTED / f"{nb}.ipynb").read_text())
    outputs = [o for c in out["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3, f"{nb}: {len(figures)} figures captured (is MPLBACKEND headless?)"
    record = json.loads((EXECUTED / f"{nb}.json").read_text())
    assert record["parameters"]["profile"] == "quick"
    assert record["metrics"]["summary"], "the notebook wrote no metrics"
    # every network checkpoints under output_dir (relative to notebooks/, where the kernel runs)
    checkpoints = REPO / "notebooks" / record["parameters"]["output_dir"] / "checkpoints"
    assert checkpoints.is_dir() and any(checkpoints.iterdir()), f"{nb}: no checkpoints written"


def test_no_credentials_in_executed_notebooks(executed):
    for nb in NOTEBOOKS:
        text = (EXECUTED / f"{nb}.ipynb").read_text().lower()
        for marker in ("private_key", "client_secret", "refresh_token", "begin private key"):
            assert marker not in text, f"{nb}: executed notebook contains {marker!r}"


def test_bad_parameter_stops_before_execution():
    proc = _soilbook("run", NOTEBOOKS[0], "-p", "epochs", "0", timeout=120)
    assert proc.returncode == 2
    assert "epochs" in proc.stderr and "too small" in proc.stderr


def test_book_builds_with_warnings_as_errors(executed):
    proc = _soilbook("book", "--profile", "quick", timeout=1800)
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    html = REPO / "_build" / "html"
    assert (html / "index.html").exists()
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb}.html").read_text()
        assert "simulated" in page.lower()
        assert page.count("<img") >= 5, f"{nb}: the page shows no figures"
