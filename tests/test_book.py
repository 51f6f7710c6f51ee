"""The book: staging executed notebooks into the site source, and ``book()``'s failure paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tinybook import NB, fake_papermill, tiny_notebook, tiny_repo

from soilbook import book as bookmod
from soilbook.errors import DependencyNotFoundError, NotebookExecutionError
from soilbook.run import RunInterrupted


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tiny_repo(tmp_path / "repo")


def test_stage_book_uses_executed_copies(repo: Path, tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    marker = tiny_notebook(executed / f"{NB}.ipynb", body="y = 'EXECUTED COPY'")
    site = repo / "_build" / "site_src"
    missing = bookmod.stage_book(repo, executed, site)
    assert missing == []
    assert (site / "notebooks" / f"{NB}.ipynb").read_bytes() == marker.read_bytes()
    assert (site / "book" / "intro.md").is_file() and (site / "_toc.yml").is_file()
    assert (
        yaml.safe_load((site / "_config.yml").read_text())["execute"]["execute_notebooks"] == "off"
    )
    # without an executed copy the source is staged and reported
    assert bookmod.stage_book(repo, tmp_path / "none", site) == [NB]


def test_stage_book_folds_papermill_injected_parameters(repo: Path, tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    path = tiny_notebook(executed / f"{NB}.ipynb")
    nb = json.loads(path.read_text())
    injected = {
        "cell_type": "code",
        "execution_count": None,
        "outputs": [],
        "metadata": {"tags": ["injected-parameters"]},
        "source": "x = 1",
    }
    nb["cells"].insert(1, injected)
    path.write_text(json.dumps(nb))
    site = repo / "_build" / "site_src"
    bookmod.stage_book(repo, executed, site)
    staged = json.loads((site / "notebooks" / f"{NB}.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in staged["cells"]]
    assert ["injected-parameters", "hide-input"] in tags


def test_a_failing_notebook_stops_the_book_before_the_build(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from papermill.exceptions import PapermillExecutionError

    error = PapermillExecutionError(2, 1, "y = x / 0", "ZeroDivisionError", "division by zero", [])
    fake_papermill(monkeypatch, error)
    built = []
    monkeypatch.setattr(bookmod, "build_html", lambda *a: built.append(a))
    with pytest.raises(NotebookExecutionError, match=f"{NB}: ZeroDivisionError") as info:
        bookmod.book(repo=repo)
    assert str(repo / "_build" / "executed") in str(info.value)
    assert built == [] and not (repo / "_build" / "site_src").exists()


def test_ctrl_c_during_the_book_says_where_the_partial_notebook_is(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_papermill(monkeypatch, KeyboardInterrupt())
    with pytest.raises(RunInterrupted, match=f"{NB}.ipynb"):
        bookmod.book(repo=repo)
    assert not (repo / "_build" / "site_src").exists()


def test_building_without_jupyter_book_names_the_install(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookmod, "_has_jupyter_book", lambda: False)
    with pytest.raises(DependencyNotFoundError, match=r"pip install 'soilbook\[book\]'"):
        bookmod.book(repo=repo, execute=False)
