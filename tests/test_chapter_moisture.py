"""Chapter 4 (soil moisture) parameters: every wrong value stops before any data or model."""

from __future__ import annotations

import pytest

from soilbook import config
from soilbook.chapters import moisture
from soilbook.errors import ParameterError

NB = moisture.KEY


def _validate(tmp_path, **overrides):
    return config.validate_params(NB, overrides, partial=True, workdir=tmp_path)


def test_chapter_is_in_the_catalogue_and_its_presets_match_the_network():
    from soilbook.models.convnext_unet import PRESETS, STRIDE

    assert config.notebook_key("04") == NB and config.chapter("04") is moisture.CHAPTER
    assert set(moisture.PRESETS) == set(PRESETS) and moisture.TILE_STRIDE == STRIDE


def test_defaults_validate(tmp_path):
    p = _validate(tmp_path)
    assert p["data_source"] == "simulated" and p["preset"] == "tiny" and p["tile_size"] == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data_source": "smap"}, "data_source"),
        ({"tile_size": 48}, "multiple of 32"),
        ({"tile_size": 16}, "tile_size"),
        ({"preset": "huge"}, "preset"),
        ({"locations_per_landscape": 1, "cv_folds": 5}, "fewer than cv_folds"),
        ({"data_source": "retrieval"}, "data_path is empty"),
        ({"data_source": "retrieval", "data_path": "nowhere.tfrecord.gz"}, "does not exist"),
        ({"data_source": "file", "data_path": "x.nc"}, "does not exist"),
        ({"n_seeds": 0}, "n_seeds"),
    ],
)
def test_bad_values_are_refused_with_what_to_do(tmp_path, overrides, message):
    with pytest.raises(ParameterError, match=message):
        _validate(tmp_path, **overrides)


def test_a_file_source_needs_both_files(tmp_path):
    (tmp_path / "tiles.nc").write_bytes(b"")
    with pytest.raises(ParameterError, match="stations_path is empty"):
        _validate(tmp_path, data_source="file", data_path=str(tmp_path / "tiles.nc"))


def test_retrieval_shards_load_through_the_chapter(tmp_path):
    from test_real_sm_retrieval import _example, _shard

    from soilbook.data.moisture import MoistureData

    shard = _shard(tmp_path, [_example(i) for i in range(3)])
    p = _validate(tmp_path, data_source="retrieval", data_path=str(shard))
    data = moisture.load_data(p)
    assert isinstance(data, MoistureData) and data.readings.sizes["sample"] == 3
    assert "1 shard" in data.description and not data.tiles.attrs["simulated"]


def test_retrieval_sites_group_sensors_and_unlabelled_shards_are_refused(tmp_path):
    from test_real_sm_retrieval import _example, _shard

    from soilbook.errors import SchemaError

    shard = _shard(tmp_path, [_example(i) for i in range(4)])
    data = moisture.load_data(_validate(tmp_path, data_source="retrieval", data_path=str(shard)))
    # sensors NET__Station_0__probe and NET__Station_1__probe: two sites, one station each
    assert sorted(set(data.readings["group"].values)) == ["NET__Station_0", "NET__Station_1"]
    assert set(data.tiles["location"].values) == set(data.readings["group"].values)
    assert "station" in data.readings.coords
    (tmp_path / "e").mkdir()
    empty = _shard(tmp_path / "e", [_example(i, label=None) for i in range(2)])
    with pytest.raises(SchemaError, match="no in-situ label"):
        moisture.load_data(_validate(tmp_path, data_source="retrieval", data_path=str(empty)))
