"""The command line: parameter merging and validation, data commands, papermill runs, staging."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml

from soilbook import cli

NB = "01_salinity_ss_soilnet"


def _tiny_notebook(path: Path, body: str = "y = x * 2") -> Path:
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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A minimal book: _toc.yml, _config.yml, book/intro.md, notebooks with a quick profile."""
    root = tmp_path / "repo"
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_salinity_ss_soilnet\n"
    )
    _tiny_notebook(root / "notebooks" / f"{NB}.ipynb")
    prof = root / "notebooks" / "params" / NB
    prof.mkdir(parents=True)
    (prof / "quick.yaml").write_text("seed: 1\nepochs: 5\nrf_trees: 50\n")
    (prof / "full.yaml").write_text("epochs: 150\n")
    return root


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("true", True), ("False", False), ("2e-3", 0.002), ("0.5", 0.5), ("cuda", "cuda"),
     ("BB.250", "BB.250"), ("", "")],
)  # fmt: skip
def test_parse_value(text: str, value) -> None:
    assert cli.parse_value(text) == value and type(cli.parse_value(text)) is type(value)


def test_merge_order_defaults_profile_files_overrides(repo: Path, tmp_path: Path) -> None:
    f1 = tmp_path / "a.yaml"
    f1.write_text("epochs: 7\nrf_trees: 10\n")
    f2 = tmp_path / "b.yaml"
    f2.write_text("rf_trees: 11\n")
    merged, origin = cli.merge_params(
        NB,
        repo=repo,
        profile="quick",
        files=[f1, f2],
        overrides=[("epochs", "9"), ("device", "cpu")],
    )
    assert merged["epochs"] == 9 and origin["epochs"] == "-p"  # -p beats -f beats profile
    assert merged["rf_trees"] == 11 and origin["rf_trees"] == f"-f {f2}"  # later -f wins
    assert merged["seed"] == 1 and origin["seed"] == "profile quick"
    assert merged["window"] == 15 and origin["window"] == "default"
    assert merged["profile"] == "quick"
    full, _ = cli.merge_params(NB, repo=repo, profile="full")
    assert full["epochs"] == 150 and full["profile"] == "full"
    params = cli.build_params(NB, repo=repo, profile="quick", overrides=[("learning_rate", "1e-3")])
    assert params["learning_rate"] == 0.001 and params["epochs"] == 5


def test_string_parameters_stay_text_and_paths_become_absolute(repo: Path, tmp_path: Path) -> None:
    merged, _ = cli.merge_params(
        NB, repo=repo, overrides=[("dataset_id", "1"), ("data_path", "my.csv")], cwd=tmp_path
    )
    assert merged["dataset_id"] == "1"
    assert merged["data_path"] == str((tmp_path / "my.csv").resolve())


def test_missing_profile_is_an_error(repo: Path) -> None:
    with pytest.raises(cli.CliError, match=r"No 'gpu' profile.*Available: \['full', 'quick'\]"):
        cli.merge_params(NB, repo=repo, profile="gpu")


def test_invalid_value_exits_2_before_papermill(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import papermill

    def boom(*a, **k):
        raise AssertionError("papermill must not start")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    monkeypatch.chdir(repo)
    assert cli.main(["run", "01", "-p", "epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "epochs" in err and "too small" in err
    assert cli.main(["run", "01", "-p", "window", "14"]) == 2
    assert "odd" in capsys.readouterr().err
    assert (
        cli.main(["run", "01", "-p", "data_source", "limesoda", "-p", "dataset_id", "CV.98"]) == 2
    )
    assert "Sentinel-2" in capsys.readouterr().err
    assert cli.main(["run", "01", "-p", "no_such", "1"]) == 2
    assert "Unknown parameter" in capsys.readouterr().err
    assert cli.main(["run", "nope"]) == 2
    assert "No notebook matches" in capsys.readouterr().err
    assert not (repo / "_build").exists()


def test_secret_looking_names_are_refused(repo: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["run", "01", "-p", "ee_token", "abc"]) == 2
    assert "environment variables" in capsys.readouterr().err
    f = tmp_path / "s.yaml"
    f.write_text("api_key: x\n")
    assert cli.main(["run", "01", "-f", str(f)]) == 2
    for name in ("password", "my_secret", "gcp_credentials", "key"):
        with pytest.raises(cli.CliError):
            cli.check_secret_names([name])
    cli.check_secret_names(["dataset_id", "keep_going", "monkey"])  # not secrets


def test_help_params(repo: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["run", "01", "--help-params"]) == 0
    out = capsys.readouterr().out
    assert "data_source" in out and "simulated|limesoda|ucrb|file" in out and "quick" in out


def test_resolve_notebook(repo: Path) -> None:
    assert cli.resolve_notebook("01", repo).name == f"{NB}.ipynb"
    assert cli.resolve_notebook(NB, repo).name == f"{NB}.ipynb"
    _tiny_notebook(repo / "notebooks" / "01_other.ipynb")
    with pytest.raises(cli.CliError, match="several"):
        cli.resolve_notebook("01", repo)


def test_data_commands(data_mirror: Path, cache_dir: Path, capsys) -> None:
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ucrb_salinity" in out and "sentinel2_srf_s2a" in out and "ossl_visnir" in out
    assert cli.main(["data", "verify", "ucrb_licence"]) == 1  # named but not cached
    assert cli.main(["data", "fetch", "ucrb_licence", "prisma_bands"]) == 0
    assert "ucrb_licence:" in capsys.readouterr().out
    assert cli.main(["data", "verify"]) == 0
    out = capsys.readouterr().out
    assert "ok       prisma_bands" in out and "missing  ucrb_salinity" in out
    (cache_dir / "srf" / "enmapbox" / "prisma.csv").write_text("broken")
    assert cli.main(["data", "verify", "prisma_bands"]) == 1
    assert "CORRUPT  prisma_bands" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "nope"]) == 2
    assert "Known:" in capsys.readouterr().err


def test_execute_tiny_notebook_writes_notebook_and_json(tmp_path: Path) -> None:
    nb = _tiny_notebook(tmp_path / "src" / "tiny.ipynb")
    out = tmp_path / "executed"
    rec = cli.execute_notebook(
        nb,
        out,
        {"x": 5, "output_dir": "results"},
        profile="quick",
        cwd=tmp_path / "src",
        timeout=120,
    )
    assert rec["status"] == "ok", rec["error"]
    executed = nbformat.read(out / "tiny.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "x = 5" in injected[0].source
    saved = json.loads((out / "tiny.json").read_text())
    assert saved["metrics"] == {"y": 10}
    assert saved["parameters"] == {"x": 5, "output_dir": "results"}
    assert saved["profile"] == "quick" and saved["wall_time_s"] > 0
    assert saved["versions"]["soilbook"] and "cuda_available" in saved["device"]
    assert (tmp_path / "src" / "results" / "metrics.json").is_file()


def test_failing_notebook_is_recorded(tmp_path: Path) -> None:
    nb = _tiny_notebook(tmp_path / "bad.ipynb", body="y = x / 0")
    rec = cli.execute_notebook(nb, tmp_path / "executed", {"x": 1, "output_dir": "r"}, timeout=120)
    assert rec["status"] == "failed" and "ZeroDivisionError" in rec["error"]
    assert json.loads((tmp_path / "executed" / "bad.json").read_text())["metrics"] is None


def test_run_resolves_merges_and_executes(repo: Path, tmp_path: Path) -> None:
    _tiny_notebook(repo / "notebooks" / "99_tiny.ipynb")
    rec = cli.run(
        "99",
        repo=repo,
        profile=None,
        overrides=[("x", "4"), ("output_dir", "out99")],
        cwd=repo / "notebooks",
    )
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"] == {"y": 8}
    record = repo / "_build" / "executed" / "99_tiny.json"
    assert record.is_file()
    src = repo / "notebooks" / "99_tiny.ipynb"
    assert cli.is_up_to_date(record, src, rec["parameters"])
    assert not cli.is_up_to_date(record, src, {**rec["parameters"], "x": 5})


def test_stage_book_uses_executed_copies(repo: Path, tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    marker = _tiny_notebook(executed / f"{NB}.ipynb", body="y = 'EXECUTED COPY'")
    site = repo / "_build" / "site_src"
    missing = cli.stage_book(repo, executed, site)
    assert missing == []
    assert (site / "notebooks" / f"{NB}.ipynb").read_bytes() == marker.read_bytes()
    assert (site / "book" / "intro.md").is_file() and (site / "_toc.yml").is_file()
    assert (
        yaml.safe_load((site / "_config.yml").read_text())["execute"]["execute_notebooks"] == "off"
    )
    # without an executed copy the source is staged and reported
    assert cli.stage_book(repo, tmp_path / "none", site) == [NB]


def test_stage_book_folds_papermill_injected_parameters(repo: Path, tmp_path: Path) -> None:
    executed = tmp_path / "executed"
    executed.mkdir()
    path = _tiny_notebook(executed / f"{NB}.ipynb")
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
    cli.stage_book(repo, executed, site)
    staged = json.loads((site / "notebooks" / f"{NB}.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in staged["cells"]]
    assert ["injected-parameters", "hide-input"] in tags


def test_kernel_environment_captures_figures_and_restores(monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TQDM_DISABLE", "0")
    with cli.kernel_environment():
        assert os.environ["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
        assert os.environ["TQDM_DISABLE"] == "0"  # the caller's choice wins
    assert os.environ["MPLBACKEND"] == "Agg"
