"""Structure checks: notebooks, parameter profiles, book table of contents, set-up files."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from soilbook import config

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _parameters_cell(nb: Path) -> str:
    cells = [c for c in _cells(nb) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{nb.name}: expected exactly one cell tagged 'parameters'"
    return "".join(cells[0]["source"])


def _parameter_values(source: str) -> dict:
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.AnnAssign), (
            f"parameters cell line {node.lineno}: use `name: type = value  # comment`"
        )
        values[node.target.id] = ast.literal_eval(node.value)
    return values


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(nb: Path):
    data = json.loads(nb.read_text())
    assert data["metadata"]["kernelspec"]["name"] == "python3"
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{nb.name}: committed outputs (run nbstripout)"
            assert cell.get("execution_count") is None, f"{nb.name}: execution counts committed"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_config(nb: Path):
    source = _parameters_cell(nb)
    for line in source.strip().splitlines():
        if line.strip():
            assert "#" in line, f"{nb.name}: parameter line without a comment: {line!r}"
    values = _parameter_values(source)
    assert values == config.defaults(nb.stem), (
        f"{nb.name}: the parameters cell and soilbook.config disagree; keep them in step"
    )
    config.validate_params(nb.stem, values)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_profiles_validate(nb: Path, profile: str):
    path = REPO / "notebooks" / "params" / nb.stem / f"{profile}.yaml"
    assert path.exists(), f"missing profile {path.relative_to(REPO)}"
    params = yaml.safe_load(path.read_text()) or {}
    assert params.get("profile") == profile
    config.validate_params(nb.stem, params, partial=True)


def test_quick_profile_equals_notebook_defaults():
    for nb in NOTEBOOKS:
        quick = yaml.safe_load((REPO / "notebooks" / "params" / nb.stem / "quick.yaml").read_text())
        defaults = config.defaults(nb.stem)
        assert {k: defaults[k] for k in quick} == quick, (
            f"{nb.stem}: quick.yaml differs from defaults"
        )


def test_toc_lists_every_notebook_and_page():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files
    for f in files:
        assert any((REPO / f"{f}{ext}").exists() for ext in (".md", ".ipynb")), f"{f} in _toc.yml"


def test_book_config_does_not_execute():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "sphinx_exercise" in cfg["sphinx"]["extra_extensions"]


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^stage test make test$", ci, re.M)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(nb: Path):
    papermill = pytest.importorskip("papermill")
    inspected = papermill.inspect_notebook(str(nb))
    assert set(inspected) == set(config.defaults(nb.stem))
    for name, info in inspected.items():
        assert info["help"], f"{nb.name}: parameter {name} has no comment for --help-notebook"
