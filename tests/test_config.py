"""Parameter validation: every wrong value stops with a message saying what is allowed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from soilbook.config import defaults, validate_params
from soilbook.device import check_device
from soilbook.errors import OutputDirError, ParameterError

NB = "01_salinity_ss_soilnet"
NB2 = "02_spectral_transfer_deepsalt"


@pytest.fixture(autouse=True)
def in_notebooks_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test from a scratch ``notebooks/`` folder, as a notebook runs: the defaults'
    relative ``output_dir`` (``../_build/outputs/...``) is probed under ``tmp_path``."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _escaped(fragment: str) -> str:
    return fragment.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")


def test_defaults_validate():
    params = validate_params(NB, defaults(NB))
    assert params["device"] == "auto"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (
            "data_source",
            "satellite",
            "allowed: ['simulated', 'limesoda', 'ucrb', 'file', 'earthengine']",
        ),
        ("epochs", 0, "too small"),
        ("n_samples", -5, "too small"),
        ("scene_size", 0, "too small"),
        ("batch_size", 0, "too small"),
        ("window", 14, "must be odd"),
        ("window", 401, "does not fit"),
        ("epochs", 2.5, "has type float"),
        ("epochs", True, "must be an int"),
        ("profile", "huge", "allowed"),
        ("n_seeds", 0, "too small"),
        ("n_jobs", 0, "too small"),
        ("buffer_m", -1.0, "too small"),
        ("block_size", "large", "neither 'auto' nor a positive number of metres"),
        ("spectra_kind", "log", "allowed: ['auto', 'reflectance', 'percent', 'absorbance']"),
    ],
)
def test_bad_values_are_explained(name, value, fragment):
    params = defaults(NB) | {name: value}
    with pytest.raises(ParameterError, match=_escaped(fragment)):
        validate_params(NB, params)


@pytest.mark.parametrize(
    ("nb", "name", "value"),
    [
        (NB, "learning_rate", math.nan),
        (NB, "learning_rate", math.inf),
        (NB2, "learning_rate", -math.inf),
        (NB2, "beta", math.inf),
        (NB2, "alpha", math.nan),
        (NB2, "paired_fraction", math.nan),
    ],
)
def test_floats_must_be_finite(nb, name, value):
    with pytest.raises(ParameterError, match=f"'{name}' = {value!r} is not a finite number"):
        validate_params(nb, {name: value}, partial=True)


@pytest.mark.parametrize("nb", [NB, NB2])
def test_heads_must_divide_width(nb):
    with pytest.raises(ParameterError, match=r"heads=5 does not divide width=32") as err:
        validate_params(nb, {"heads": 5}, partial=True)
    assert "heads 4 or 8 (with width=32)" in str(err.value)
    assert "width 30 or 35 (with heads=5)" in str(err.value)
    assert validate_params(nb, {"heads": 8}, partial=True)["heads"] == 8


def test_output_dir_empty_is_refused():
    for value in ("", "   "):
        with pytest.raises(ParameterError, match=r"is empty.*notebooks/ folder"):
            validate_params(NB, {"output_dir": value}, partial=True)


def test_output_dir_that_cannot_be_created_is_refused(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputDirError, match=r"Cannot write to output_dir .*a file is in the way"):
        validate_params(NB2, {"output_dir": str(blocker / "outputs")}, partial=True)


def test_output_dir_probe_leaves_nothing_behind(tmp_path: Path, in_notebooks_folder: Path):
    validate_params(NB, {"output_dir": str(tmp_path / "new" / "deep" / "out")}, partial=True)
    assert not (tmp_path / "new").exists()
    validate_params(NB, defaults(NB))  # relative to the notebook's folder (the cwd)
    assert not (tmp_path / "_build").exists()
    assert list(in_notebooks_folder.iterdir()) == []


def test_output_dir_is_relative_to_workdir(tmp_path: Path):
    blocked = tmp_path / "elsewhere"
    blocked.mkdir()
    (blocked / "_build").write_text("a file where the folder would go")
    with pytest.raises(OutputDirError, match="a file is in the way"):
        validate_params(NB, {}, partial=True, workdir=blocked / "notebooks")
    validate_params(NB, {}, partial=True)  # the same defaults are fine from the cwd


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match=r"Unknown parameter\(s\) \['epoch'\]"):
        validate_params(NB, {"epoch": 3}, partial=True)


def test_missing_parameter_is_named():
    params = defaults(NB)
    del params["seed"]
    with pytest.raises(ParameterError, match=r"Missing parameter\(s\) \['seed'\]"):
        validate_params(NB, params)


def test_partial_fills_defaults_and_ints_become_floats():
    params = validate_params(NB, {"learning_rate": 1}, partial=True)
    assert params["learning_rate"] == 1.0 and isinstance(params["learning_rate"], float)
    assert params["window"] == defaults(NB)["window"]


def test_notebook_prefix_is_accepted():
    assert validate_params("01", {}, partial=True)["seed"] == 0
    assert validate_params("notebooks/02_spectral_transfer_deepsalt.ipynb", {}, partial=True)
    with pytest.raises(ParameterError, match="Unknown notebook"):
        validate_params("99", {}, partial=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_an_error():
    with pytest.raises(ParameterError, match="no CUDA device"):
        check_device("cuda")
    with pytest.raises(ParameterError, match="no CUDA device"):
        validate_params(NB, {"device": "cuda"}, partial=True)


def test_unknown_device():
    with pytest.raises(ParameterError, match="allowed: 'auto', 'cpu'"):
        check_device("tpu")


def test_str_parameters_that_hold_numbers_take_numbers():
    """`-p block_size 400` reaches validate_params as an int (YAML); it is kept as text."""
    assert validate_params(NB, {"block_size": 400}, partial=True)["block_size"] == "400"
    with pytest.raises(ParameterError, match="has type int"):
        validate_params(NB, {"target_units": 3}, partial=True)  # no number for other str params
