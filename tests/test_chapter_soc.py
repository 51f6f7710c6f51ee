"""Chapter 3 (SSL-SoilNet) parameters: every wrong value stops before any data or model."""

from __future__ import annotations

import pytest

from soilbook import config
from soilbook.chapters import soc
from soilbook.errors import ParameterError, SchemaError

NB = soc.KEY


def _validate(tmp_path, **overrides):
    return config.validate_params(NB, overrides, partial=True, workdir=tmp_path)


def test_chapter_is_in_the_catalogue():
    assert config.notebook_key("03") == NB
    assert config.chapter("03") is soc.CHAPTER


def test_defaults_validate(tmp_path):
    p = _validate(tmp_path)
    assert p["data_source"] == "simulated" and p["modalities"] == "auto"


def test_contrastive_batch_floor_matches_the_model():
    from soilbook.models.ssl_soilnet import MIN_CONTRASTIVE_BATCH, MODALITIES

    assert soc.MIN_CONTRASTIVE_BATCH == MIN_CONTRASTIVE_BATCH
    assert set(soc.MODALITY_CHOICES) == {"auto", *MODALITIES}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data_source": "lucas"}, "data_source"),
        ({"pretrain_batch_size": 4}, "contrastive"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.5}, "temperature"),
        ({"label_fractions": "0,0.5"}, "(0, 1]"),
        ({"label_fractions": "0.1,1.5"}, "(0, 1]"),
        ({"label_fractions": "a tenth"}, "not a number"),
        ({"label_fractions": ""}, "empty"),
        ({"data_source": "raca", "modalities": "both"}, "needs image patches"),
        ({"data_source": "raca", "modalities": "image"}, "needs image patches"),
        ({"patch_size": 12}, "multiple"),
        ({"n_labelled": 60, "label_fractions": "0.05,1.0"}, "fewer than 10"),
        ({"n_unlabelled": 10}, "pretrain_batch_size"),
        ({"image_width": 30, "image_heads": 4}, "does not divide"),
        ({"block_size_km": 0.0}, "block_size_km"),
        ({"data_source": "file"}, "data_path"),
    ],
)
def test_bad_values_stop_with_a_clear_message(tmp_path, overrides, message):
    with pytest.raises(ParameterError) as err:
        _validate(tmp_path, **overrides)
    assert message in str(err.value)


def test_raca_with_climate_only_validates_without_reading_data(tmp_path):
    for modalities in ("auto", "climate"):
        assert _validate(tmp_path, data_source="raca", modalities=modalities)


def test_a_user_file_header_is_checked_before_the_notebook(tmp_path):
    bad = tmp_path / "soc.csv"
    bad.write_text("lat,lon,target\n40,-95,12\n")
    with pytest.raises(SchemaError):
        _validate(tmp_path, data_source="file", data_path=str(bad))


def test_parse_fractions_sorts_and_adds_all_labels():
    assert soc.parse_fractions("0.25, 0.05") == [0.05, 0.25, 1.0]
    assert soc.parse_fractions([0.5]) == [0.5, 1.0]
    assert soc.parse_fractions(1.0) == [1.0]


def test_modalities_for_the_data():
    p = soc.CHAPTER.defaults()
    assert soc.modalities_for(p, has_image=True) == "both"
    assert soc.modalities_for(p, has_image=False) == "climate"
    assert soc.modalities_for(p | {"modalities": "climate"}, has_image=True) == "climate"


def test_a_fraction_too_small_for_early_stopping_warns(tmp_path):
    with pytest.warns(UserWarning, match="no inner validation set"):
        _validate(tmp_path, label_fractions="0.05,1.0")


def test_real_data_are_subsampled_to_max_labelled():
    from soilbook.data.simulate.soc import simulate_soc

    data = simulate_soc(n_labelled=30, n_unlabelled=5, patch_size=None, seed=1)
    few = soc.subsample_labelled(data, 10, seed=0)
    assert few.labelled.sizes["sample"] == 10
    assert few.unlabelled.sizes["sample"] == 5
    assert "10 of the 30" in few.description
    assert soc.subsample_labelled(data, 0, seed=0) is data
    again = soc.subsample_labelled(data, 10, seed=0)
    assert (again.labelled["lat"].values == few.labelled["lat"].values).all()
