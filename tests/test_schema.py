"""The one sample-set builder (soilbook.data.schema.sample_set) and the schema's validator."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data.schema import (
    SchemaError,
    sample_set,
    tabular_feature_names,
    to_tabular,
    validate_samples,
)

ATTRS = {"source": "unit test", "licence": "CC0", "citation": "none", "simulated": True}


def _args(n: int = 6) -> dict:
    rng = np.random.default_rng(0)
    return {
        "target": rng.uniform(1, 5, n),
        "groups": np.arange(n) % 3,
        "target_units": "g/kg",
        "target_long_name": "salt content",
        "reflectance": rng.uniform(0, 0.5, (n, 1, 2)).astype(np.float32),
        "dates": ["2021-05"],
        "bands": ["B04", "B08"],
        "wavelengths_nm": [664.6, 832.8],
        **ATTRS,
    }


def test_builder_keeps_dtypes_attrs_and_integer_groups():
    ds = sample_set(
        **_args(),
        target_attrs={"measurement": "lab"},
        reflectance_attrs={"scale_applied": "none"},
        covariates=np.ones((6, 2)),
        features=[("slope", "terrain"), ("slope_2", "terrain")],
        feature_units=["degree", "degree"],
        group_long_name="pedon",
        coords={"x": ("sample", np.arange(6.0), {"units": "m"})},
        target_name="salt",
    )
    assert ds["target"].dtype == np.float64 and ds["reflectance"].dtype == np.float32
    assert ds["target"].attrs == {
        "units": "g/kg",
        "long_name": "salt content",
        "measurement": "lab",
    }
    assert ds["reflectance"].attrs["units"] == "1" and ds["reflectance"].attrs["scale_applied"]
    assert ds["group"].dtype.kind == "i" and ds["group"].attrs == {"long_name": "pedon"}
    assert list(ds.attrs)[:5] == ["source", "licence", "citation", "simulated", "target_name"]
    assert ds["wavelength"].attrs == {"units": "nm"} and ds["x"].attrs == {"units": "m"}
    mixed = sample_set(**{**_args(), "groups": np.array([1.0, 2, 3, 1, 2, 3])})
    assert mixed["group"].values[0] == "1.0"  # floats become text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bands": ["B04"]}, r"1 band names were given for the 2 bands"),
        ({"wavelengths_nm": [665.0]}, r"1 wavelengths were given"),
        ({"dates": None}, "without its dates and bands"),
        ({"target_units": None}, "without target_units"),
        ({"covariates": np.ones((6, 3)), "features": {"a": "other"}}, "1 feature names"),
        ({"reflectance": np.ones((6, 2))}, r"reflectance has shape \(6, 2\)"),
    ],
)
def test_pieces_that_do_not_fit_are_named(change, match):
    with pytest.raises(SchemaError, match=match):
        sample_set(**{**_args(), **change})


def test_unlabelled_set_is_built_without_validation():
    ds = sample_set(**{**_args(), "target": None}, validate=False)
    assert "target" not in ds.data_vars and ds.sizes["sample"] == 6
    with pytest.raises(SchemaError, match="no 'target'"):
        validate_samples(ds)


def test_infinite_inputs_are_refused():
    args = _args()
    args["reflectance"][3, 0, 1] = np.inf
    with pytest.raises(SchemaError, match=r"'reflectance' holds 1 infinite.*'sample': 3"):
        sample_set(**args)
    with pytest.raises(SchemaError, match="'target' holds 1 infinite"):
        sample_set(**{**_args(), "target": [1, 2, np.inf, 4, 5, 6]})


def _climate_set(**change):
    rng = np.random.default_rng(0)
    args = dict(
        target=rng.uniform(10, 90, 4),
        groups=["a", "a", "b", "b"],
        target_units="Mg C/ha",
        target_long_name="SOC stock 0-100 cm",
        climate=rng.normal(size=(4, 3, 2)).astype(np.float32),
        climate_times=["2010-01-01", "2010-02-01", "2010-03-01"],
        climate_variables={"pr": "mm", "tmmx": "degC"},
        source="test",
        licence="CC0-1.0",
        citation="none",
        simulated=True,
    )
    return sample_set(**{**args, **change})


def test_climate_series_in_the_schema_and_the_table():
    ds = _climate_set()
    assert ds["climate"].dims == ("sample", "time", "variable")
    assert ds["climate"].dtype == np.float32
    assert list(ds["variable_units"].values) == ["mm", "degC"]
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    names, groups = tabular_feature_names(ds)
    assert names[:3] == ["pr@2010-01", "pr@2010-02", "pr@2010-03"] and names[3] == "tmmx@2010-01"
    assert set(groups) == {"climate"}
    x = to_tabular(ds)
    assert x.shape == (4, 6)
    np.testing.assert_array_equal(x[:, 4], ds["climate"].values[:, 1, 1])  # tmmx, February


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"climate": np.zeros((4, 3))}, r"\(sample, time, variable\)"),
        ({"climate_times": None}, "without its times and variables"),
        ({"climate_variables": {"pr": "mm"}}, "1 climate variables were given for the 2"),
        ({"climate_times": ["2010-01-01"]}, "1 climate times were given for the 3"),
    ],
)
def test_climate_pieces_that_do_not_fit_are_named(change, match):
    with pytest.raises(SchemaError, match=match):
        _climate_set(**change)


def test_climate_without_its_labels_is_refused():
    ds = _climate_set()
    with pytest.raises(SchemaError, match="variable_units"):
        validate_samples(ds.drop_vars("variable_units"))
    with pytest.raises(SchemaError, match="datetime64 'time'"):
        validate_samples(ds.assign_coords(time=("time", [1, 2, 3])))


def test_chapter3_constants_fit_the_schema():
    from soilbook.data.schema import FEATURE_GROUPS
    from soilbook.data.soc import (
        CLIMATE_UNITS,
        CLIMATE_VARIABLES,
        IMAGE_LAYER_GROUPS,
        IMAGE_LAYERS,
        N_MONTHS,
        months,
    )

    t = months()
    assert t.size == N_MONTHS == 61 and str(t[0])[:10] == "2010-01-01"
    assert str(t[-1])[:10] == "2015-01-01" and str(t[12])[:10] == "2011-01-01"
    assert list(CLIMATE_UNITS) == list(CLIMATE_VARIABLES) and len(CLIMATE_VARIABLES) == 13
    assert len(IMAGE_LAYERS) == 14 and list(IMAGE_LAYER_GROUPS) != []
    assert set(IMAGE_LAYER_GROUPS) == set(IMAGE_LAYERS)
    assert set(IMAGE_LAYER_GROUPS.values()) <= set(FEATURE_GROUPS)
    ds = _climate_set(
        climate=np.zeros((4, N_MONTHS, 13), np.float32),
        climate_times=t,
        climate_variables=CLIMATE_UNITS,
    )
    assert validate_samples(ds)["climate"].shape == (4, 61, 13)


def _tiles(**kw):
    from soilbook.data.schema import tile_set

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 4, 4))
    valid = np.ones_like(x, dtype=bool)
    valid[0, 1, :2] = False
    x[0, 1, :2] = np.nan  # a cloud: values under a 0 may be anything
    args = dict(
        channels=[("VV", "sar"), ("B4", "spectral")],
        channel_units=["dB", "1"],
        locations=["a", "a", "b"],
        source="test",
        licence="CC0",
        citation="none",
        simulated=True,
        pixel_size_m=10.0,
        coarse=rng.uniform(5, 40, size=(3, 4, 4)),
        label_units="%",
        dates=["2020-05-01", "2020-05-13", "2020-05-01"],
    )
    return tile_set(x, valid, **(args | kw))


def test_tile_set_builds_a_valid_tile_set_with_masks():
    ts = _tiles()
    assert ts["inputs"].dims == ("tile", "channel", "y", "x") and ts["inputs"].dtype == np.float32
    assert ts["valid"].dtype == np.uint8 and int(ts["valid"].values[0, 1].sum()) == 8
    assert list(ts["channel_group"].values) == ["sar", "spectral"]
    assert ts["coarse_mask"].values.all() and ts.attrs["pixel_size_m"] == 10.0
    assert ts["y"].values[0] == 5.0 and list(ts["location"].values) == ["a", "a", "b"]


def test_validate_tiles_refuses_what_a_model_would_misread():
    from soilbook.data.schema import validate_tiles

    ts = _tiles()
    broken = ts.copy(deep=True)
    broken["valid"].values[0, 1, 0, 0] = 1  # a NaN input marked valid
    with pytest.raises(SchemaError, match="at valid pixels"):
        validate_tiles(broken)
    broken = ts.copy(deep=True)
    broken["valid"].values[0, 0, 0, 0] = 2
    with pytest.raises(SchemaError, match="other than 0 and 1"):
        validate_tiles(broken)
    with pytest.raises(SchemaError, match="coarse_mask"):
        validate_tiles(ts.drop_vars("coarse_mask"))
    with pytest.raises(SchemaError, match="location"):
        validate_tiles(ts.drop_vars("location"))
    with pytest.raises(SchemaError, match="unknown group"):
        _tiles(channels=[("VV", "radar"), ("B4", "spectral")])
    with pytest.raises(SchemaError, match="channel"):
        _tiles(channel_units=["dB"])


def test_label_rasters_place_readings_and_average_duplicates():
    from soilbook.data.schema import label_rasters

    ts = _tiles()
    readings = sample_set(
        [10.0, 20.0, 30.0, 50.0],
        groups=["a", "a", "b", "b"],
        source="test",
        licence="CC0",
        citation="none",
        simulated=True,
        target_units="%",
        target_long_name="soil moisture",
        covariates=np.zeros((4, 1)),
        features=[("VV", "sar")],
        coords={
            "tile": ("sample", [0, 1, 2, 2]),
            "row": ("sample", [1, 2, 3, 3]),
            "col": ("sample", [0, 1, 2, 2]),
        },
    )
    label, mask = label_rasters(readings, ts)
    assert label.shape == mask.shape == (3, 4, 4) and mask.sum() == 3
    assert label[0, 1, 0] == 10.0 and label[1, 2, 1] == 20.0 and label[2, 3, 2] == 40.0
    assert label[mask == 0].max() == 0.0
    bad = readings.assign_coords(row=("sample", [1, 2, 3, 4]))
    with pytest.raises(SchemaError, match="row"):
        label_rasters(bad, ts)
