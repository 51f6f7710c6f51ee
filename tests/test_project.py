"""The project as people meet it: licence, citation, one repository URL, Binder, the layers."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _repository_url() -> str:
    """The one setting: `repository.url` in _config.yml (it drives the book's launch buttons)."""
    return yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_licence_is_mit_as_declared():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert _project()["license"]["text"] == "MIT"


def test_citation_file_agrees_with_the_package():
    import soilbook

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == _project()["version"] == soilbook.__version__
    assert cff["license"] == "MIT"
    assert cff["title"] and cff["authors"] and cff["message"]


def test_repository_url_is_one_setting():
    url = _repository_url()
    assert url.startswith("https://")
    assert _project()["urls"]["Repository"] == url
    assert yaml.safe_load((REPO / "CITATION.cff").read_text())["repository-code"] == url
    bib = (REPO / "book" / "references.bib").read_text()
    assert f"url     = {{{url}}}" in bib
    # every mention of a soilbook repository in the README, the book and the notebooks is this one
    others = set()
    for path in [REPO / "README.md", *REPO.glob("book/*.md"), *REPO.glob("notebooks/*.ipynb")]:
        for word in path.read_text().replace('"', " ").replace("(", " ").replace(")", " ").split():
            if "github.com/" in word and "soilbook" in word.split("github.com/")[1].lower():
                if url not in word:
                    others.add((path.name, word))
    assert not others, f"repository URLs other than {url}: {sorted(others)}"


def test_binder_installs_the_package():
    post = (REPO / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    assert (REPO / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(line.startswith("jupyter-book==") for line in pip)


def test_no_import_cycles_in_the_package():
    """No module of soilbook reaches itself through its imports (lazy imports included)."""
    import grimp

    graph = grimp.build_graph("soilbook")
    modules = sorted(graph.modules)
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported))
    assert not cycles, f"import cycles: {cycles[:10]}"


def test_layer_contract_holds():
    """The import-linter contract of pyproject.toml (also run by `make lint`)."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_models_and_training_run_without_the_book_tools():
    """A bare GPU machine has torch, numpy, scikit-learn, xarray, pandas, matplotlib: no shap,
    papermill, Jupyter Book or Earth Engine. The models, the training loop and the data loaders
    must import (and a network must fit) there."""
    code = """
import importlib.abc, sys
ABSENT = {"shap", "papermill", "jupyter_book", "ee", "sphinx", "nbformat", "IPython"}
class Absent(importlib.abc.MetaPathFinder):  # as if these were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
import numpy as np
import soilbook.train, soilbook.models.ss_soilnet, soilbook.models.deepsalt
import soilbook.data.simulate.salinity, soilbook.data.scene, soilbook.evaluate, soilbook.baselines
from soilbook.data.simulate.salinity import simulate_scene
from soilbook.data.scene import sample_scene
from soilbook.models.ss_soilnet import SSSoilNetRegressor
scene = simulate_scene(size=32, n_dates=1, seed=0)
ds = sample_scene(scene, n_samples=40, window=5, seed=0)
model = SSSoilNetRegressor(width=8, heads=2, epochs=1, batch_size=16, device="cpu")
print("ok", model.fit(ds).predict(ds).shape)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith("ok")
