"""Google soil-moisture retrieval shards → chapter-4 tiles and readings, on tiny files the tests
write in the published record format (8 × 8 pixels instead of 512 × 512)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from soilbook.data.real import sm_retrieval as smr
from soilbook.data.real.tfrecord import write_examples
from soilbook.data.schema import label_rasters, validate_samples, validate_tiles
from soilbook.errors import ParameterError, SchemaError

SIZE = 8
T0 = np.datetime64("2019-07-01T10:00:00", "ms")


def _example(i: int, *, label: float | None = 0.25, drop: str | None = None) -> dict:
    rng = np.random.default_rng(i)
    ex: dict = {
        "sensor_id": f"NET__Station_{i % 2}__probe",
        "timestamp": np.array([T0.astype(np.int64) + i * 86_400_000], dtype=np.float64),
        "center_lat": np.float32(40.0 + i),
        "center_long": np.float32(-100.0),
        "size": np.int64(SIZE),
        "smap_sm": np.int64(51),
        "gldas_rainfall": np.int64(12),  # a scalar: constant over the tile
        "gldas_temp": rng.integers(0, 256, SIZE * SIZE),
        "gldas_evaporation": rng.integers(0, 256, SIZE * SIZE),
        "nasa_dem_elevation": np.full(SIZE * SIZE, 1234),
    }
    for ch in smr.DEFAULT_CHANNELS:
        if ch.key.startswith("sentinel_"):
            ex[ch.key] = rng.integers(1, 256, SIZE * SIZE)
    ex["sentinel_2_B4"][:5] = 0  # a cloud gap: no-data 0
    if label is not None:
        ex["sm_0_5"] = np.float32(label)
    if drop:
        del ex[drop]
    return ex


def _shard(tmp_path: Path, examples) -> Path:
    path = tmp_path / "data-00000-of-00500.tfrecord.gz"
    write_examples(path, examples)
    return path


def test_a_shard_becomes_a_schema_valid_tile_set_and_readings(tmp_path: Path):
    path = _shard(tmp_path, [_example(0), _example(1, label=None), _example(2, label=0.4)])
    tiles, readings = smr.load_sm_retrieval(path)
    validate_tiles(tiles)
    validate_samples(readings)
    n_ch = len(smr.DEFAULT_CHANNELS)
    assert tiles["inputs"].shape == (3, n_ch, SIZE, SIZE) and tiles.attrs["simulated"] is False
    assert set(tiles["channel_group"].values) == {"sar", "spectral", "terrain", "climate", "time"}
    assert (
        "CC-BY 4.0" == tiles.attrs["licence"]
        and "10.1175/JHM-D-22-0118.1" in tiles.attrs["citation"]
    )
    units = dict(zip(tiles["channel"].values, tiles["channel_units"].values, strict=True))
    assert units["VV"] == smr.SCALED_UNITS and units["elevation"] == "m" and units["doy_sin"] == "1"
    assert "0-255 scaled" in tiles.attrs["scaling_note"]
    b4 = tiles["valid"].sel(channel="B4").values
    assert b4[:, 0, :5].sum() == 0 and b4[:, 1:].all()  # the cloud gap is masked
    assert float(tiles["inputs"].sel(channel="elevation")[0, 3, 3]) == 1234.0
    assert (tiles["inputs"].sel(channel="rainfall").values == 12).all()
    doy = 182  # 2019-07-01
    np.testing.assert_allclose(
        tiles["inputs"].sel(channel="doy_sin").values[0],
        np.sin(2 * np.pi * doy / 365.25),
        rtol=1e-6,
    )
    # the place of a tile is the sensor's site (NETWORK__STATION); the sensor id stays
    assert list(tiles["location"].values) == ["NET__Station_0", "NET__Station_1", "NET__Station_0"]
    assert smr.site_of("NET__Station_0__probe") == "NET__Station_0" == smr.site_of("NET__Station_0")
    # timestamps are float32 milliseconds in the shards: exact to ~2 minutes
    gap = tiles["date"].values[2] - np.datetime64("2019-07-03T10:00:00")
    assert abs(gap) <= np.timedelta64(131, "s")
    # the unlabelled example (an ISMN sensor in the public shards) gives no reading
    np.testing.assert_allclose(readings["target"].values, [25.0, 40.0], rtol=1e-6)
    assert readings["target"].attrs["units"] == "%" and readings.attrs["readings_unlabelled"] == 1
    assert list(readings["tile"].values) == [0, 2]
    assert (readings["row"].values == SIZE // 2).all() and (
        readings["col"].values == SIZE // 2
    ).all()
    label, mask = label_rasters(readings, tiles)
    assert mask.sum() == 2 and label[2, SIZE // 2, SIZE // 2] == pytest.approx(40.0)
    # covariates are the inputs at the station pixel, grouped like the channels
    vv = tiles["inputs"].sel(channel="VV").values[0, SIZE // 2, SIZE // 2]
    assert readings["covariates"].sel(feature="VV").values[0] == vv
    assert list(readings["feature_group"].values) == list(tiles["channel_group"].values)


def test_window_crops_around_the_sensor_and_coarse_needs_a_scale(tmp_path: Path):
    examples = [_example(0), _example(1)]
    tiles, readings = smr.examples_to_tiles(
        examples, window=4, coarse_key="smap_sm", coarse_scale=100 / 255
    )
    assert tiles.sizes["y"] == tiles.sizes["x"] == 4 and tiles.attrs["window_pixels"] == 4
    assert (readings["row"].values == 2).all()  # the centre (4, 4) of 8 × 8 is (2, 2) of the window
    np.testing.assert_allclose(tiles["coarse"].values, 51 * 100 / 255, rtol=1e-6)
    assert tiles["coarse_mask"].values.all() and tiles["coarse"].attrs["units"] == "%"
    with pytest.raises(ParameterError, match="coarse_scale"):
        smr.examples_to_tiles(examples, coarse_key="smap_sm")
    with pytest.raises(ParameterError, match="window"):
        smr.examples_to_tiles(examples, window=0)
    assert smr.examples_to_tiles(examples, window=99)[0].sizes["y"] == SIZE  # kept whole


def test_a_missing_required_key_lists_the_keys_found(tmp_path: Path):
    with pytest.raises(SchemaError, match="no feature 'sentinel_1_VH'") as err:
        smr.examples_to_tiles([_example(0, drop="sentinel_1_VH")])
    assert "'sentinel_1_VV'" in str(err.value) and "Keys found" in str(err.value)
    with pytest.raises(SchemaError, match="sensor_id"):
        smr.examples_to_tiles([_example(0, drop="sensor_id")])
    # an optional channel becomes all-invalid; renamed keys are a parameter
    chans = [*smr.DEFAULT_CHANNELS[:1], smr.Channel("VH", "s1_vh", "sar", nodata=0, required=False)]
    ex = _example(0)
    ex["sensor"] = ex.pop("sensor_id")
    tiles, _ = smr.examples_to_tiles([ex], channels=chans, keys={"station": "sensor"})
    assert tiles["valid"].sel(channel="VH").values.sum() == 0 and list(tiles["station"].values) == [
        "NET__Station_0__probe"
    ]
    with pytest.raises(ParameterError, match="unknown groups"):
        smr.examples_to_tiles([ex], channels=[smr.Channel("VV", "sentinel_1_VV", "radar")])


def test_out_of_range_labels_are_dropped_and_counted():
    _, readings = smr.examples_to_tiles([_example(0, label=0.3), _example(1, label=35.0)])
    assert readings.sizes["sample"] == 1 and readings.attrs["readings_dropped_out_of_range"] == 1


def test_station_table_readings_match_by_name_and_time():
    tiles, none = smr.examples_to_tiles([_example(0, label=None), _example(1, label=None)])
    assert none.sizes["sample"] == 0 and "readings_from_stations" in none.attrs["note"]
    t0, t1 = (pd.Timestamp(t) for t in tiles["date"].values)
    table = pd.DataFrame(
        {
            "network": ["NET", "NET", "NET"],
            "station": ["Station-0", "Station-0", "Station 1"],
            "time": [
                t0 + pd.Timedelta("1min"),
                t0 + pd.Timedelta("1h"),
                t1 + pd.Timedelta("30min"),  # outside ±3 min
            ],
            "sm_0_5": [21.5, 30.0, 18.0],
        }
    )
    readings = smr.readings_from_stations(tiles, table)
    validate_samples(readings)
    assert list(readings["tile"].values) == [0] and readings["target"].values[0] == 21.5
    assert readings.attrs["tiles_without_reading"] == 1
    wider = smr.readings_from_stations(tiles, table, tolerance="1h")
    assert list(wider["tile"].values) == [0, 1]
    with pytest.raises(SchemaError, match="sm_0_5"):
        smr.readings_from_stations(tiles, table.drop(columns="sm_0_5"))


def test_shard_urls():
    assert smr.shard_url(7).endswith("soil_moisture_retrieval_data/data-00007-of-00500.tfrecord.gz")
    with pytest.raises(ParameterError):
        smr.shard_url(500)
