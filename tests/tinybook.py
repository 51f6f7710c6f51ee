"""A tiny book for the runner, book and command-line tests (``from tinybook import ...``).

The notebooks here run in about a second: one parameters cell (``x``, ``output_dir``), one body
cell, one cell that writes ``<output_dir>/metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

#: The stem the tiny book borrows, so that chapter 1's parameter declarations apply to it.
NB = "01_salinity_ss_soilnet"


def tiny_notebook(path: Path, body: str = "y = x * 2") -> Path:
    """Write a three-cell notebook to ``path``: parameters, ``body``, metrics writer."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('x = 1\noutput_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell(
            "import json, pathlib\n"
            "p = pathlib.Path(output_dir); p.mkdir(parents=True, exist_ok=True)\n"
            "(p / 'metrics.json').write_text(json.dumps({'y': y}))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def tiny_repo(root: Path) -> Path:
    """A minimal book at ``root``: _toc.yml, _config.yml, book/intro.md, notebook :data:`NB`
    (a tiny one) with a quick and a full profile."""
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (root / "_toc.yml").write_text(
        f"format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/{NB}\n"
    )
    tiny_notebook(root / "notebooks" / f"{NB}.ipynb")
    prof = root / "notebooks" / "params" / NB
    prof.mkdir(parents=True)
    (prof / "quick.yaml").write_text("seed: 1\nepochs: 5\nrf_trees: 50\n")
    (prof / "full.yaml").write_text("epochs: 150\n")
    return root


def fake_papermill(monkeypatch, error: BaseException | None = None) -> list[dict]:
    """Replace ``papermill.execute_notebook`` by a stand-in that copies the input notebook to
    the output path (as papermill leaves a partial notebook) and then raises ``error``, if any.

    Returns the list of calls (``input``, ``output``, ``parameters``, ``cwd``), for assertions.
    """
    import papermill

    calls: list[dict] = []

    def execute_notebook(input_path, output_path, parameters=None, cwd=None, **options):
        calls.append(
            {"input": input_path, "output": output_path, "parameters": parameters, "cwd": cwd}
        )
        Path(output_path).write_text(Path(input_path).read_text())
        if error is not None:
            raise error

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    return calls
