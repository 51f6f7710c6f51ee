"""Reading an ISMN download with a fake ``ismn`` package (the real one is not installed here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real.ismn import COLUMNS, read_ismn
from soilbook.errors import DependencyNotFoundError, ParameterError, SchemaError


def _sensor(variable: str, start: float, end: float, sm, flags):
    index = pd.date_range("2019-07-01", periods=len(sm), freq="h", name="date_time")
    frame = pd.DataFrame({"soil_moisture": sm, "soil_moisture_flag": flags}, index=index)
    return SimpleNamespace(
        variable=variable,
        instrument="ThetaProbe",
        depth=SimpleNamespace(start=start, end=end),
        read_data=lambda: frame,
    )


class _FakeInterface:
    """The part of ismn.interface.ISMN_Interface that read_ismn uses."""

    calls: ClassVar[list] = []

    def __init__(self, data_path, network=None):
        type(self).calls.append((data_path, network))
        canizal = SimpleNamespace(
            lat=41.2,
            lon=-5.36,
            sensors={
                "top": _sensor(
                    "soil_moisture", 0.0, 0.05, [0.30, 0.31, np.nan, 0.29], ["G", "D01", "G", "G"]
                ),
                "deep": _sensor("soil_moisture", 0.25, 0.25, [0.2, 0.2, 0.2, 0.2], ["G"] * 4),
                "temp": _sensor("soil_temperature", 0.05, 0.05, [10.0] * 4, ["G"] * 4),
            },
        )
        other = SimpleNamespace(
            lat=38.0,
            lon=-100.0,
            sensors={"s": _sensor("soil_moisture", 0.05, 0.05, [0.1, 0.12], ["G", "C01"])},
        )
        nets = {
            "REMEDHUS": SimpleNamespace(stations={"Canizal": canizal}),
            "SCAN": SimpleNamespace(stations={"Other": other}),
        }
        self.networks = {k: v for k, v in nets.items() if network is None or k in network}


@pytest.fixture
def fake_ismn(monkeypatch: pytest.MonkeyPatch):
    package = types.ModuleType("ismn")
    interface = types.ModuleType("ismn.interface")
    interface.ISMN_Interface = _FakeInterface
    package.interface = interface
    monkeypatch.setitem(sys.modules, "ismn", package)
    monkeypatch.setitem(sys.modules, "ismn.interface", interface)
    _FakeInterface.calls = []
    return _FakeInterface


def test_reads_good_0_5_cm_readings_in_vol_percent(fake_ismn, tmp_path: Path):
    table = read_ismn(tmp_path)
    assert tuple(table.columns) == COLUMNS
    # Canizal: 0.30 and 0.29 are good (0.31 is D01, NaN dropped); SCAN 0.05 m: 0.10 good
    assert list(table["station"]) == ["Canizal", "Canizal", "Other"]
    np.testing.assert_allclose(table["sm_0_5"], [30.0, 29.0, 10.0])
    assert set(table["flag"]) == {"G"} and (table["depth_to_m"] <= 0.05).all()
    assert (
        table["time"].iloc[1] == pd.Timestamp("2019-07-01 03:00") and table["lat"].iloc[0] == 41.2
    )
    assert "no redistribution" in table.attrs["licence"] and table.attrs["sensors_read"] == 2
    every = read_ismn(tmp_path, flags=None, networks="REMEDHUS", end="2019-07-01 01:00")
    assert list(every["flag"]) == ["G", "D01"] and fake_ismn.calls[-1][1] == ["REMEDHUS"]


def test_errors(fake_ismn, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"ismn\.earth"):
        read_ismn(tmp_path / "missing.zip")
    with pytest.raises(ParameterError, match="depth"):
        read_ismn(tmp_path, depth_m=(0.05, 0.0))
    with pytest.raises(SchemaError, match="no soil-moisture sensor"):
        read_ismn(tmp_path, depth_m=(1.0, 2.0))


def test_missing_package_says_pip_install_ismn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "ismn", None)  # import ismn → ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "ismn.interface", None)
    with pytest.raises(DependencyNotFoundError, match="pip install ismn"):
        read_ismn(tmp_path)
