"""The runner: notebook resolution, parameter merging and checks, output folders, papermill runs,
run records, Ctrl-C, up-to-date stamps and the kernel's environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from tinybook import NB, fake_papermill, tiny_notebook, tiny_repo

from soilbook import run as runner
from soilbook.errors import OutputDirError, ParameterError, SoilbookError


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tiny_repo(tmp_path / "repo")


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("true", True), ("False", False), ("2e-3", 0.002), ("0.5", 0.5), ("cuda", "cuda"),
     ("BB.250", "BB.250"), ("", "")],
)  # fmt: skip
def test_parse_value(text: str, value) -> None:
    assert runner.parse_value(text) == value and type(runner.parse_value(text)) is type(value)


def test_merge_order_defaults_profile_files_overrides(repo: Path, tmp_path: Path) -> None:
    f1 = tmp_path / "a.yaml"
    f1.write_text("epochs: 7\nrf_trees: 10\n")
    f2 = tmp_path / "b.yaml"
    f2.write_text("rf_trees: 11\n")
    merged, origin = runner.merge_params(
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
    assert merged["profile"] == "quick" and origin["profile"] == "--profile"
    full, _ = runner.merge_params(NB, repo=repo, profile="full")
    assert full["epochs"] == 150 and full["profile"] == "full"
    params = runner.build_params(
        NB, repo=repo, profile="quick", overrides=[("learning_rate", "1e-3")]
    )
    assert params["learning_rate"] == 0.001 and params["epochs"] == 5


def test_string_parameters_stay_text_and_paths_become_absolute(repo: Path, tmp_path: Path) -> None:
    merged, _ = runner.merge_params(
        NB,
        repo=repo,
        overrides=[("dataset_id", "1"), ("data_path", "my.csv"), ("output_dir", "res")],
        cwd=tmp_path,
    )
    assert merged["dataset_id"] == "1"
    assert merged["data_path"] == str((tmp_path / "my.csv").resolve())
    assert merged["output_dir"] == str((tmp_path / "res").resolve())  # -p: the caller's folder
    default, _ = runner.merge_params(NB, repo=repo, cwd=tmp_path)
    # the default stays relative, and is read against notebooks/ where the kernel runs
    assert not Path(default["output_dir"]).is_absolute()
    assert runner.notebook_output_dir(default, repo / "notebooks") == (
        repo / "_build" / "outputs" / NB
    )


def test_missing_profile_is_a_parameter_error(repo: Path) -> None:
    with pytest.raises(ParameterError, match=r"No 'gpu' profile.*Available: \['full', 'quick'\]"):
        runner.merge_params(NB, repo=repo, profile="gpu")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe epochs: 3\n", "not valid UTF-8 YAML"), (b"[1, 2]\n", "must be a mapping"),
     (b"epochs: [\n", "not valid UTF-8 YAML")],
)  # fmt: skip
def test_bad_parameter_file_is_a_parameter_error(
    repo: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    f = tmp_path / "p.yaml"
    f.write_bytes(content)
    with pytest.raises(ParameterError, match=message):
        runner.merge_params(NB, repo=repo, files=[f])
    with pytest.raises(ParameterError, match="does not exist"):
        runner.merge_params(NB, repo=repo, files=[tmp_path])  # a folder, not a file


def test_secret_looking_names_are_parameter_errors() -> None:
    for name in ("password", "my_secret", "gcp_credentials", "key", "ee_token", "api_key", "token"):
        with pytest.raises(ParameterError, match="environment variables"):
            runner.check_secret_names([name])
    # not secrets: a count of tokens is a model size
    runner.check_secret_names(["dataset_id", "keep_going", "monkey", "n_tokens"])


def test_resolve_notebook(repo: Path) -> None:
    assert runner.resolve_notebook("01", repo).name == f"{NB}.ipynb"
    assert runner.resolve_notebook(NB, repo).name == f"{NB}.ipynb"
    with pytest.raises(ParameterError, match="No notebook matches"):
        runner.resolve_notebook("07", repo)
    tiny_notebook(repo / "notebooks" / "01_other.ipynb")
    with pytest.raises(ParameterError, match="several"):
        runner.resolve_notebook("01", repo)


# -- output folders ----------------------------------------------------------------------------


def test_ensure_writable_creates_the_folder_and_leaves_no_probe(tmp_path: Path) -> None:
    out = runner.ensure_writable(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []


def test_ensure_writable_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a file")
    with pytest.raises(OutputDirError, match="a file is in the way") as info:
        runner.ensure_writable(tmp_path / "f" / "sub", "the executed-notebook folder")
    assert isinstance(info.value, SoilbookError) and isinstance(info.value, OSError)
    assert "the executed-notebook folder" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_ensure_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputDirError, match="Permission denied"):
            runner.ensure_writable(ro / "executed")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("which", ["executed", "output_dir"])
def test_unwritable_folders_stop_before_papermill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    calls = fake_papermill(monkeypatch)
    nb = tiny_notebook(tmp_path / "src" / "tiny.ipynb")
    (tmp_path / "blocker").write_text("a file")
    executed = tmp_path / ("blocker" if which == "executed" else "executed")
    outputs = str(tmp_path / "blocker" / "out") if which == "output_dir" else "out"
    hint = "--output-dir DIR" if which == "executed" else "-p output_dir DIR"
    with pytest.raises(OutputDirError, match=f"a file is in the way.*{hint}"):
        runner.execute_notebook(nb, executed, {"x": 1, "output_dir": outputs})
    assert calls == []


# -- executing ---------------------------------------------------------------------------------


def test_execute_tiny_notebook_writes_notebook_and_json(tmp_path: Path) -> None:
    nb = tiny_notebook(tmp_path / "src" / "tiny.ipynb")
    out = tmp_path / "executed"
    rec = runner.execute_notebook(
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


def test_failing_notebook_is_recorded_with_its_cell(tmp_path: Path) -> None:
    nb = tiny_notebook(tmp_path / "bad.ipynb", body="y = x / 0")
    rec = runner.execute_notebook(
        nb, tmp_path / "executed", {"x": 1, "output_dir": "r"}, timeout=120
    )
    assert rec["status"] == "failed" and rec["error"] == "ZeroDivisionError: division by zero"
    assert rec["error_cell"] == 3  # parameters, injected parameters, then the body
    saved = json.loads((tmp_path / "executed" / "bad.json").read_text())
    assert saved["metrics"] is None and saved["error_cell"] == 3
    assert (tmp_path / "executed" / "bad.ipynb").is_file()  # the partial notebook stays


def test_run_resolves_merges_and_executes(repo: Path) -> None:
    tiny_notebook(repo / "notebooks" / "99_tiny.ipynb")
    rec = runner.run(
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
    assert runner.is_up_to_date(record, src, rec["parameters"])
    assert not runner.is_up_to_date(record, src, {**rec["parameters"], "x": 5})


def test_relative_output_dir_is_read_against_the_callers_folder(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_papermill(monkeypatch)
    caller = tmp_path / "caller"
    caller.mkdir()
    rec = runner.run(
        "01", repo=repo, output_dir=Path("executed"), overrides=[("output_dir", "o")], cwd=caller
    )
    assert Path(rec["executed"]) == caller / "executed" / f"{NB}.ipynb"
    assert Path(calls[0]["output"]) == caller / "executed" / f"{NB}.ipynb"
    assert calls[0]["parameters"]["output_dir"] == str(caller / "o")
    assert calls[0]["cwd"] == str(repo / "notebooks")


@pytest.mark.parametrize("where", ["in this process", "in the kernel"])
def test_ctrl_c_records_the_run_and_says_where_the_outputs_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from papermill.exceptions import PapermillExecutionError

    if where == "in this process":
        error: BaseException = KeyboardInterrupt()
    else:  # the terminal's Ctrl-C reached the kernel first: papermill reports a cell error
        error = PapermillExecutionError(1, 2, "sleep()", "KeyboardInterrupt", "", [])
    fake_papermill(monkeypatch, error)
    nb = tiny_notebook(tmp_path / "src" / "tiny.ipynb")
    with pytest.raises(runner.RunInterrupted) as info:
        runner.execute_notebook(nb, tmp_path / "executed", {"x": 1, "output_dir": "res"})
    assert isinstance(info.value, KeyboardInterrupt)
    message = str(info.value)
    assert str(tmp_path / "executed" / "tiny.ipynb") in message
    assert str(tmp_path / "src" / "res") in message and "resume" in message
    saved = json.loads((tmp_path / "executed" / "tiny.json").read_text())
    assert saved["status"] == "interrupted"


def test_kernel_environment_captures_figures_quiets_downloads_and_restores(monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.delenv("SOILBOOK_QUIET_DOWNLOADS", raising=False)
    with runner.kernel_environment():
        assert os.environ["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
        assert os.environ["TQDM_DISABLE"] == "0"  # the caller's choice wins
        assert os.environ["SOILBOOK_QUIET_DOWNLOADS"] == "1"  # no "Downloading ..." lines
    assert os.environ["MPLBACKEND"] == "Agg"
    assert "SOILBOOK_QUIET_DOWNLOADS" not in os.environ
