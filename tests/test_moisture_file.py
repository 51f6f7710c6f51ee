"""A user's chapter-4 files: a NetCDF tile set and a CSV of station readings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real.moisture_file import load_moisture_files
from soilbook.data.schema import label_rasters, tile_set
from soilbook.errors import SchemaError


def _write(tmp_path, rows):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 32, 32))
    valid = np.ones_like(x, dtype=bool)
    valid[1, 1, :4, :4] = False
    tiles = tile_set(
        x,
        valid,
        channels=[("VV", "sar"), ("B4", "spectral")],
        channel_units=["dB", "1"],
        locations=["field-a", "field-b"],
        source="my tiles",
        licence="mine",
        citation="none",
        simulated=False,
        pixel_size_m=10.0,
    )
    tiles.attrs["simulated"] = 0  # NetCDF attributes have no boolean
    tiles.to_netcdf(tmp_path / "tiles.nc")
    pd.DataFrame(rows).to_csv(tmp_path / "stations.csv", index=False)
    return tmp_path / "tiles.nc", tmp_path / "stations.csv", x


def test_user_files_become_readings_on_tiles(tmp_path):
    rows = {"station": ["s1", "s2"], "tile": [0, 1], "row": [3, 2], "col": [5, 1],
            "soil_moisture": [21.5, 30.0]}  # fmt: skip
    nc, csv, x = _write(tmp_path, rows)
    data = load_moisture_files(nc, csv)
    r = data.readings
    assert list(r["target"].values) == [21.5, 30.0] and r["target"].attrs["units"] == "%"
    assert list(r["group"].values) == ["field-a", "field-b"]
    assert r["covariates"].values[0, 0] == pytest.approx(x[0, 0, 3, 5], rel=1e-6)
    assert np.isnan(r["covariates"].values[1, 1])  # B4 not observed there
    label, mask = label_rasters(r, data.tiles)
    assert mask.sum() == 2 and label[1, 2, 1] == 30.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"soil_moisture": [21.5, 130.0]}, r"\[0, 100\] %"),
        ({"row": [3, 40]}, "'row' must hold integer positions"),
        ({"tile": [0, 1.5]}, "'tile' must hold integer positions"),
    ],
)
def test_bad_readings_are_named(tmp_path, change, match):
    rows = {"station": ["s1", "s2"], "tile": [0, 1], "row": [3, 2], "col": [5, 1],
            "soil_moisture": [21.5, 30.0]} | change  # fmt: skip
    nc, csv, _ = _write(tmp_path, rows)
    with pytest.raises(SchemaError, match=match):
        load_moisture_files(nc, csv)


def test_missing_column_is_named(tmp_path):
    nc, csv, _ = _write(tmp_path, {"station": ["s1"], "tile": [0], "row": [1], "col": [1]})
    with pytest.raises(SchemaError, match="soil_moisture"):
        load_moisture_files(nc, csv)
