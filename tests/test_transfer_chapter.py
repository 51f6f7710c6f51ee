"""Chapter 2's parameters (soilbook.chapters.transfer): the new ones and what --help-params says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soilbook.chapters import transfer
from soilbook.errors import ParameterError, SchemaError
from soilbook.run import params_table

REPO = Path(__file__).resolve().parents[1]


def _params(**changes):
    return transfer.CHAPTER.validate(changes, partial=True, workdir=REPO / "notebooks")


def test_new_parameters_and_their_defaults():
    d = transfer.CHAPTER.defaults()
    assert (d["n_jobs"], d["n_seeds"], d["min_region_pixels"]) == (2, 3, 20)
    spec = {p.name: p for p in transfer.PARAMS}
    assert spec["n_jobs"].help == "worker processes for cross-validation folds"
    assert "full profile 5" in spec["n_seeds"].help


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"n_jobs": 0}, "'n_jobs' = 0 is too small"),
        ({"n_seeds": 0}, "'n_seeds' = 0 is too small"),
        ({"n_seeds": 2.5}, "'n_seeds' = 2.5 has type float"),
        ({"min_region_pixels": 1}, "'min_region_pixels' = 1 is too small"),
        ({"min_region_pixels": 60}, "below min_region_pixels=60"),
    ],
)
def test_new_parameters_are_validated(changes, match):
    with pytest.raises(ParameterError, match=match):
        _params(**changes)


def test_more_workers_than_cores_warns(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.warns(UserWarning, match="n_jobs=8 worker processes on 2 CPU core"):
        transfer.check_n_jobs(8)


def test_help_params_states_the_coverage_rule_and_optional_coordinates():
    table = params_table(transfer.KEY, REPO)
    line = next(row for row in table.splitlines() if row.startswith("data_path"))
    assert "1100-2498 nm gives 1100-2450 nm" in line and "FWHM/2" in line
    assert "lat/lon (not needed when a 'group' column" in line
    rows = {row.split()[0]: row for row in table.split("\n\n")[0].splitlines()[2:]}
    assert {"n_jobs", "n_seeds", "min_region_pixels"} <= set(rows)
    assert "5" in rows["n_seeds"].split()[3:5]  # the full profile's value


def test_check_reads_the_header_before_any_heavy_work(tmp_path):
    path = tmp_path / "narrow.csv"
    path.write_text("group,target," + ",".join(f"refl_{w}" for w in range(1000, 1110, 10)) + "\n")
    with pytest.raises(SchemaError, match="at least 20"):
        _params(lab_source="file", data_path=str(path), n_regions=2)


def test_spectra_kind_parameter_is_checked_and_reaches_the_loader(tmp_path, monkeypatch):
    from soilbook.data import tables
    from soilbook.data import transfer as data_transfer

    assert transfer.SPECTRA_KINDS == tables.SPECTRA_KINDS
    assert transfer.CHAPTER.defaults()["spectra_kind"] == "auto"
    with pytest.raises(ParameterError, match=r"'spectra_kind' = 'dn'.*\['auto', 'reflectance'"):
        _params(spectra_kind="dn")
    # the check reads the header with spectra_kind: abs_<nm> columns are not percent
    path = tmp_path / "abs.csv"
    path.write_text("group,target," + ",".join(f"abs_{w}" for w in range(400, 2451, 10)) + "\n")
    with pytest.raises(SchemaError, match=r"abs_<nm>\) says the spectra are 'absorbance'"):
        _params(lab_source="file", data_path=str(path), n_regions=2, spectra_kind="percent")
    seen = {}
    monkeypatch.setattr(data_transfer, "load_transfer", lambda *a, **k: seen.update(k))
    transfer.load_data(transfer.CHAPTER.defaults() | {"spectra_kind": "absorbance"})
    assert seen["spectra_kind"] == "absorbance"


def test_help_params_says_absorbance_is_detected_and_converted():
    table = params_table(transfer.KEY, REPO)
    assert "spectra_kind" in table and "auto|reflectance|percent|absorbance" in table
    notes = table.split("\n\n", 1)[1]
    assert notes == transfer.NOTES
    assert "abs_<nm>" in notes and "detects absorbance log10(1/R)" in notes
    assert "R = 10^-A" in notes and "1100-2498 nm gives 1100-2450 nm" in notes
