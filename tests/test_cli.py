"""The command line: exit codes and one-message failures of ``soilbook run|book|data|bench``.

Every expected failure prints one ``error: ...`` message (no traceback) and exits 2, a failed
notebook exits 1 naming its cell and the partial executed notebook, Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinybook import NB, fake_papermill, tiny_notebook, tiny_repo

from soilbook import cli
from soilbook.errors import DataUnavailableError, SchemaError


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny book, and the current folder inside it (as a user would run soilbook)."""
    root = tiny_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def _one_message(err: str, *needles: str) -> None:
    """``err`` is one ``error:``/``interrupted:`` message, no traceback, containing ``needles``."""
    assert "Traceback" not in err
    assert err.count("error:") + err.count("interrupted:") == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_invalid_value_exits_2_before_papermill(repo: Path, monkeypatch, capsys) -> None:
    calls = fake_papermill(monkeypatch)
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
    assert cli.main(["run", "01", "--profile", "gpu"]) == 2
    _one_message(capsys.readouterr().err, "No 'gpu' profile")
    assert calls == [] and not (repo / "_build").exists()


def test_secret_looking_names_are_refused(repo: Path, capsys, tmp_path: Path) -> None:
    assert cli.main(["run", "01", "-p", "ee_token", "abc"]) == 2
    assert "environment variables" in capsys.readouterr().err
    f = tmp_path / "s.yaml"
    f.write_text("api_key: x\n")
    assert cli.main(["run", "01", "-f", str(f)]) == 2
    _one_message(capsys.readouterr().err, "api_key", "environment variables")


def test_a_bad_parameter_file_is_one_message(repo: Path, capsys, tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"target_column: \xe9\n")
    assert cli.main(["run", "01", "-f", str(f)]) == 2
    _one_message(capsys.readouterr().err, str(f), "UTF-8")


def test_any_soilbook_error_is_one_message_and_exit_2(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from soilbook import run as runner

    def bad(*args, **kwargs):
        raise SchemaError("lab file x.csv has no column 'ec'; columns are ['a', 'b'].")

    monkeypatch.setattr(runner, "validate_params", bad)
    assert cli.main(["run", "01"]) == 2
    _one_message(capsys.readouterr().err, "no column 'ec'")


def test_help_params(repo: Path, capsys) -> None:
    assert cli.main(["run", "01", "--help-params"]) == 0
    out = capsys.readouterr().out
    assert "data_source" in out and "simulated|limesoda|ucrb|file" in out and "quick" in out
    assert "What each model needs from the data" in out  # the chapter's notes, before any run


def test_unwritable_output_dir_is_one_message_before_papermill(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    calls = fake_papermill(monkeypatch)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, where a folder should be")
    assert cli.main(["run", "01", "--output-dir", str(blocker / "executed")]) == 2
    _one_message(capsys.readouterr().err, str(blocker / "executed"), "--output-dir")
    assert cli.main(["run", "01", "-p", "output_dir", str(blocker / "out")]) == 2
    _one_message(capsys.readouterr().err, str(blocker / "out"), "output_dir")
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir_is_one_message(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    calls = fake_papermill(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli.main(["run", "01", "--output-dir", str(ro)]) == 2
    finally:
        ro.chmod(0o755)
    _one_message(capsys.readouterr().err, str(ro), "Permission denied")
    assert calls == []


def test_empty_output_dir_is_refused_not_written_into_notebooks(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = fake_papermill(monkeypatch)
    before = sorted((repo / "notebooks").rglob("*"))
    assert cli.main(["run", "01", "-p", "output_dir", ""]) == 2
    _one_message(capsys.readouterr().err, "output_dir")
    assert calls == [] and sorted((repo / "notebooks").rglob("*")) == before


def test_relative_paths_are_read_against_the_callers_folder(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = fake_papermill(monkeypatch)
    monkeypatch.chdir(repo / "book")
    assert cli.main(["run", "01", "--output-dir", "ex", "-p", "output_dir", "res"]) == 0
    assert "ok in" in capsys.readouterr().out
    assert Path(calls[0]["output"]) == repo / "book" / "ex" / f"{NB}.ipynb"
    assert calls[0]["parameters"]["output_dir"] == str(repo / "book" / "res")
    assert (repo / "book" / "ex" / f"{NB}.json").is_file()


def test_a_failing_notebook_exits_1_naming_the_cell_and_the_partial_notebook(
    repo: Path, capsys
) -> None:
    tiny_notebook(repo / "notebooks" / "99_bad.ipynb", body="y = x / 0")
    assert cli.main(["run", "99", "-p", "output_dir", "o", "--timeout", "120"]) == 1
    executed = repo / "_build" / "executed" / "99_bad.ipynb"
    _one_message(
        capsys.readouterr().err, "ZeroDivisionError: division by zero", "cell 3", str(executed)
    )
    assert executed.is_file()


def test_ctrl_c_exits_130_saying_where_the_partial_outputs_are(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fake_papermill(monkeypatch, KeyboardInterrupt())
    assert cli.main(["run", "01"]) == 130
    err = capsys.readouterr().err
    _one_message(err, str(repo / "_build" / "executed" / f"{NB}.ipynb"), "resume")
    assert str(repo / "_build" / "outputs" / NB) in err and len(err.strip().splitlines()) == 1
    fake_papermill(monkeypatch, KeyboardInterrupt())
    assert cli.main(["book"]) == 130
    _one_message(capsys.readouterr().err, "interrupted", f"{NB}.ipynb")


@pytest.mark.parametrize("to", ["group", "parent"])
def test_ctrl_c_of_a_real_run_stops_cleanly(repo: Path, to: str) -> None:
    """A SIGINT to ``python -m soilbook run`` while a cell runs — to its process group as a
    terminal sends it, or to the run's process alone (``kill -INT``; the run then interrupts its
    kernel): exit 130, one line, a record."""
    marker = repo / "started"
    tiny_notebook(
        repo / "notebooks" / "99_slow.ipynb",
        body=f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(300)\ny = 1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "soilbook", "run", "99", "-p", "output_dir", "o"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), proc.communicate(timeout=5)
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        else:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)  # generous on a loaded machine; the cell sleeps 300 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    # one line: the kernel's own shutdown noise goes to its log, not to the terminal
    assert err.startswith("interrupted: 99_slow") and len(err.strip().splitlines()) == 1, err
    assert str(repo / "_build" / "executed" / "99_slow.ipynb") in err
    assert (repo / "_build" / "executed" / "99_slow.json").read_text().count('"interrupted"') == 1


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


@pytest.mark.parametrize(
    "error",
    [DataUnavailableError("ossl_visnir is not cached and https://x could not be reached."),
     ConnectionError("Max retries exceeded with url: /ossl.csv.gz")],
)  # fmt: skip
def test_an_offline_fetch_is_one_message_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys, error: Exception
) -> None:
    from soilbook.data import registry

    def offline(name, progress=False):
        raise error

    monkeypatch.setattr(registry, "fetch", offline)
    assert cli.main(["data", "fetch", "ossl_visnir"]) == 2
    _one_message(capsys.readouterr().err, str(error))


def test_a_missing_benchmark_is_one_message(repo: Path, capsys) -> None:
    assert cli.main(["bench", "maps"]) == 2
    _one_message(capsys.readouterr().err, "bench_maps.py", "does not exist")
