"""Parameter validation: every wrong value stops with a message saying what is allowed."""

from __future__ import annotations

import pytest
import torch

from soilbook.config import defaults, validate_params
from soilbook.device import check_device
from soilbook.errors import ParameterError

NB = "01_salinity_ss_soilnet"


def test_defaults_validate():
    params = validate_params(NB, defaults(NB))
    assert params["device"] == "auto"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("data_source", "satellite", "allowed: ['simulated', 'limesoda', 'ucrb', 'file']"),
        ("epochs", 0, "too small"),
        ("n_samples", -5, "too small"),
        ("scene_size", 0, "too small"),
        ("batch_size", 0, "too small"),
        ("window", 14, "must be odd"),
        ("window", 401, "does not fit"),
        ("epochs", 2.5, "has type float"),
        ("epochs", True, "must be an int"),
        ("profile", "huge", "allowed"),
    ],
)
def test_bad_values_are_explained(name, value, fragment):
    params = defaults(NB) | {name: value}
    with pytest.raises(ParameterError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        validate_params(NB, params)


def test_unknown_parameter_is_named():
    with pytest.raises(ParameterError, match=r"Unknown parameter\(s\) \['epoch'\]"):
        validate_params(NB, {"epoch": 3}, partial=True)


def test_partial_fills_defaults_and_ints_become_floats():
    params = validate_params(NB, {"learning_rate": 1}, partial=True)
    assert params["learning_rate"] == 1.0 and isinstance(params["learning_rate"], float)
    assert params["window"] == defaults(NB)["window"]


def test_notebook_prefix_is_accepted():
    assert validate_params("01", {}, partial=True)["seed"] == 0
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
