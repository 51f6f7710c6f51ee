"""environment.yml (pinned) and pyproject.toml (ranges) must describe the same environment."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"environment.yml: {line!r} is not pinned with =="
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_python_versions_agree():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert _project()["requires-python"] == ">=3.11"


def test_every_dependency_is_pinned_within_its_range():
    pins = _pins()
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("book", "dev"):  # what `make install` and environment.yml provide
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in environment.yml"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"environment.yml pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_no_pin_without_a_declared_dependency():
    project = _project()
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    extra_pins = set(_pins()) - declared
    assert not extra_pins, f"pinned in environment.yml but not declared in pyproject: {extra_pins}"


def test_user_required_packages_are_present():
    pins = _pins()
    for name in (
        "torch",
        "jupyter-book",
        "papermill",
        "xarray",
        "matplotlib",
        "shap",
        "scikit-learn",
        "earthengine-api",
        "limesoda",
        "earthlib",
        "spyndex",
        "pooch",
        "dask",
        "sphinx-exercise",
        "sphinxcontrib-bibtex",
    ):
        assert canonicalize_name(name) in pins, name
    assert pins["torch"].startswith("2.")


def test_book_tools_are_an_extra_not_the_core():
    """A bare GPU machine (torch, numpy, scikit-learn, xarray) needs none of the book tools."""
    project = _project()
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    book = {
        canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["book"]
    }
    assert {"papermill", "jupyter-book", "shap", "sphinx-exercise"} <= book
    assert not core & {"papermill", "jupyter-book", "shap", "earthengine-api", "ipykernel"}
    # the user's package list is required for the book: core + book extra hold all of it
    assert {"torch", "xarray", "matplotlib", "scikit-learn"} <= core
    assert "earthengine-api" in book
