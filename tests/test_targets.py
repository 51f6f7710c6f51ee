"""The one target-name lookup (soilbook.data.targets) and the loaders that use it."""

from __future__ import annotations

import pytest

from soilbook.data import sources, targets
from soilbook.data.real import limesoda, limesoda_lab, ucrb
from soilbook.errors import ParameterError


def test_auto_case_and_unknown_names():
    allowed = ("SOC", "pH", "Clay")
    assert targets.resolve_target("auto", allowed, where="x") == "SOC"
    assert targets.resolve_target(None, allowed, where="x") == "SOC"
    assert targets.resolve_target(" ph ", allowed, where="x") == "pH"
    with pytest.raises(ParameterError, match=r"not known for LimeSoDa; allowed: \['SOC'.*'auto'"):
        targets.resolve_target("EC", allowed, where="LimeSoDa", hint="Use ucrb.")
    assert targets.column_name("auto") == "target" and targets.column_name("ec") == "ec"


def test_every_source_reads_the_same_tables():
    assert limesoda.TARGETS is targets.LIMESODA_TARGETS
    assert limesoda_lab.LAB_TARGETS is targets.LIMESODA_LAB_TARGETS
    assert ucrb.TARGETS is targets.UCRB_TARGETS
    assert sources.SOURCE_TARGETS is targets.SOURCE_TARGETS
    assert limesoda.normalise_target("clay") == limesoda_lab.normalise_lab_target("CLAY") == "Clay"
    assert sources.resolve_target("limesoda", "soc") == "SOC"
    assert targets.describe("SOM") == ("%", "soil organic matter (g per 100 g)")
    with pytest.raises(ParameterError, match="no fixed unit"):
        targets.describe("salinity")
