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


# -- the chapters' shape: Project Pythia's sections, a Colab cell, checkpoints, shared set-up ---

#: The level-2 sections every chapter has, as Project Pythia writes them: the first two open the
#: notebook, the last three close it, the body's own sections sit between.
OPENING = ["Overview", "Prerequisites"]
CLOSING = ["Summary", "What's next", "Resources and references"]


def _headings(nb: Path) -> list[tuple[int, str, int]]:
    """(level, title, cell index) of every markdown heading outside fenced blocks."""
    found = []
    for index, cell in enumerate(_cells(nb)):
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in "".join(cell["source"]).splitlines():
            if line.startswith(("```", "~~~")):
                fenced = not fenced
            match = None if fenced else re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
            if match:
                title = match.group(2).replace("\u2019", "'").rstrip("?").strip()
                found.append((len(match.group(1)), title, index))
    return found


def _section_cell(nb: Path, title: str) -> int:
    """The index of the cell holding the ``## title`` heading."""
    cells = [i for level, t, i in _headings(nb) if (level, t) == (2, title)]
    assert cells, f"{nb.name}: no '## {title}' section"
    return cells[0]


def _code(nb: Path) -> list[tuple[int, str]]:
    return [(i, "".join(c["source"])) for i, c in enumerate(_cells(nb)) if c["cell_type"] == "code"]


def _parameters_index(nb: Path) -> int:
    return next(
        i for i, c in enumerate(_cells(nb)) if "parameters" in c.get("metadata", {}).get("tags", [])
    )


def _repository_url() -> str:
    return yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_pythias_sections_in_order(nb: Path):
    headings = _headings(nb)
    assert headings and headings[0][0] == 1, f"{nb.name}: the first heading must be the # title"
    assert [h for h in headings if h[0] == 1] == headings[:1], f"{nb.name}: one # title only"
    sections = [title for level, title, _ in headings if level == 2]
    assert sections[: len(OPENING)] == OPENING, (
        f"{nb.name}: the ## sections must open with {OPENING}; found {sections[:4]}"
    )
    assert sections[-len(CLOSING) :] == CLOSING, (
        f"{nb.name}: the ## sections must close with {CLOSING}; found {sections[-4:]}"
    )
    body = sections[len(OPENING) : -len(CLOSING)]
    assert len(body) >= 3, f"{nb.name}: the body between Prerequisites and Summary is empty"
    assert not set(body) & set(OPENING + CLOSING), f"{nb.name}: a section repeats: {body}"
    assert _parameters_index(nb) > _section_cell(nb, "Prerequisites"), (
        f"{nb.name}: parameters before Prerequisites"
    )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_prerequisites_give_a_table_and_the_time_to_learn(nb: Path):
    text = "".join(_cells(nb)[_section_cell(nb, "Prerequisites")]["source"])
    rows = [line for line in text.splitlines() if line.strip().startswith("|")]
    assert len(rows) >= 3, f"{nb.name}: Prerequisites needs a table (header, rule, rows)"
    header = [c.strip().lower() for c in rows[0].strip().strip("|").split("|")]
    assert header == ["concepts", "importance", "notes"], f"{nb.name}: table header {header}"
    assert re.fullmatch(r"[\s|:-]+", rows[1]), f"{nb.name}: the table's second row is not a rule"
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 3 and cells[0], f"{nb.name}: bad prerequisites row {row!r}"
        assert cells[1] in ("Necessary", "Helpful"), f"{nb.name}: importance {cells[1]!r}"
    assert re.search(r"Time to learn\W*\d+ minutes", text.replace("*", "")), (
        f"{nb.name}: Prerequisites must say 'Time to learn: N minutes'"
    )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_a_commented_colab_install_cell(nb: Path):
    """The first code cell, before the parameters, installs soilbook from the one repository URL."""
    url = _repository_url()
    first_index, first = _code(nb)[0]
    assert _section_cell(nb, "Overview") < first_index < _parameters_index(nb), (
        f"{nb.name}: the install cell must come after the Overview and before the parameters"
    )
    lines = [line for line in first.splitlines() if line.strip()]
    assert all(line.lstrip().startswith("#") for line in lines), (
        f"{nb.name}: the install cell must be commented out (it runs on Colab only when asked)"
    )
    installs = [line for line in lines if re.match(r"#\s*%pip install ", line)]
    assert len(installs) == 1, f"{nb.name}: no `# %pip install ...` line in the first code cell"
    assert re.search(rf"soilbook(\[[\w,]+\])? @ git\+{re.escape(url)}\b", installs[0]), (
        f"{nb.name}: the install line must install soilbook from {url} (_config.yml)"
    )


def _network_classes() -> set[str]:
    """Names of the networks (NetworkRegressor subclasses) that soilbook.models exports."""
    import importlib
    import pkgutil

    import soilbook.models
    from soilbook.models.base import NetworkRegressor

    names = set()
    for info in pkgutil.iter_modules(soilbook.models.__path__):
        module = importlib.import_module(f"soilbook.models.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, NetworkRegressor):
                names.add(name)
    return names - {"NetworkRegressor"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_network_checkpoints_under_output_dir(nb: Path):
    networks = _network_classes()
    calls = []
    for _, source in _code(nb):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in networks:
                    calls.append((name, node))
    assert calls, f"{nb.name}: builds none of the networks {sorted(networks)}"
    for name, call in calls:
        value = {k.arg: k.value for k in call.keywords}.get("checkpoint_dir")
        assert value is not None, f"{nb.name}: {name}(...) without checkpoint_dir"
        assert ast.unparse(value) == "f'{output_dir}/checkpoints'", (
            f"{nb.name}: {name}(checkpoint_dir={ast.unparse(value)}) — "
            'use checkpoint_dir=f"{output_dir}/checkpoints"'
        )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_the_shared_setup_and_run_record(nb: Path):
    """Set-up, the run record and unwrapping come from soilbook.notebook, not per-chapter code."""
    code = "\n".join(source for _, source in _code(nb))
    assert re.search(
        r"^params = validate_params\(NOTEBOOK, parameters_from\(NOTEBOOK, globals\(\)\)\)$",
        code,
        re.M,
    ), f"{nb.name}: validate the parameters with validate_params(NOTEBOOK, ...)"
    assert re.search(r"^run = start\(NOTEBOOK, params\)$", code, re.M)
    assert f'NOTEBOOK = "{nb.stem}"' in code
    assert len(re.findall(r"\brun\.write_record\(", code)) == 1
    for repeated in ("metrics.json", "mkdir(", "use_style(", "resolve_device(", '"estimator_"'):
        assert repeated not in code, f"{nb.name}: {repeated!r} belongs in soilbook.notebook"
    last = _code(nb)[-1][1]
    assert "run.write_record(" in last, f"{nb.name}: the run record must be the last code cell"
