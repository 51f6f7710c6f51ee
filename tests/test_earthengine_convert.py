"""to_samples, the generic conversion of a hand-written getInfo() payload to the sample-set
schema (pure, no ``ee``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from ee_harness import DATES, YRD_POINTS

from soilbook.data import earthengine as E
from soilbook.data.schema import validate_samples
from soilbook.errors import ParameterError

# -- to_samples: a hand-written getInfo() payload ----------------------------------------------

BANDS = ["B4", "B8", "B11"]
#: What a recipe tells the generic converter (here: the salinity recipe's target and collections).
SALT = {
    "target_name": "soil salt content",
    "target_units": "g/kg",
    "collections": E.SALINITY_COLLECTIONS,
}


def to_samples(features: Any, bands: Any, **kwargs: Any):
    """:func:`E.to_samples` with the salinity recipe's target and collections."""
    return E.to_samples(features, bands, **{**SALT, **kwargs})


def _payload() -> dict:
    def patch(base: float) -> list[list[float]]:
        return [[base + 3 * r + c for c in range(3)] for r in range(3)]

    features = []
    values = {
        "S1": (0.05, 1.2, 2.5),
        "S2": (0.07, 3.4, E.FILL_VALUE),  # elevation fine, tpi masked -> FILL
        "S3": (None, 0.5, -1.0),  # a band with no value at all
    }
    for k, (pid, (b4, elev, tpi)) in enumerate(values.items()):
        props: dict[str, Any] = {
            "id": pid,
            "lat": YRD_POINTS[k]["lat"],
            "lon": YRD_POINTS[k]["lon"],
        }
        props.update({"B4_t0": b4, "B8_t0": 0.30, "B11_t0": 0.25})
        props.update({"B4_t1": 0.06, "B8_t1": 0.35, "B11_t1": 0.28})
        props.update({"elevation": elev, "tpi": tpi, "Lai_t0": 1.5})
        props.update({"patch_elevation": patch(elev), "patch_tpi": patch(0.0)})
        features.append({"type": "Feature", "geometry": None, "id": f"{k}_0", "properties": props})
    # Earth Engine does not promise the order of features: shuffle it
    features = [features[2], features[0], features[1]]
    return {"type": "FeatureCollection", "columns": {}, "features": features}


def _convert(**kwargs: Any):
    args = {
        "dates": DATES,
        "covariates": {"elevation": "terrain", "tpi": "hydrology", "Lai_t0": "vegetation"},
        "patch_layers": {"elevation": "terrain", "tpi": "hydrology"},
        "points": YRD_POINTS,
    }
    args.update(kwargs)
    with pytest.warns(UserWarning, match="missing values"):
        return to_samples(_payload(), BANDS, **args)


def test_to_samples_builds_a_valid_sample_set():
    ds = _convert()
    assert validate_samples(ds) is ds
    assert ds.sizes == {"sample": 3, "date": 2, "band": 3, "feature": 3, "layer": 2, "y": 3, "x": 3}
    assert list(ds["sample"].values) == ["S1", "S2", "S3"]  # the points' order, not the payload's
    np.testing.assert_allclose(ds["target"].values, [4.2, 12.5, 1.1])
    assert ds["target"].attrs["units"] == "g/kg"
    # reflectance (sample, date, band) with wavelengths
    assert ds["reflectance"].dims == ("sample", "date", "band")
    assert ds["reflectance"].dtype == np.float32
    np.testing.assert_allclose(ds["reflectance"].sel(sample="S1", band="B4").values, [0.05, 0.06])
    assert math.isnan(float(ds["reflectance"].sel(sample="S3", band="B4", date="2021-04-01")))
    np.testing.assert_allclose(ds["wavelength"].values, [664.8, 832.9, 1612.1])
    assert list(ds["date_end"].values) == ["2021-05-01", "2021-10-01"]
    # covariates with groups and units; FILL_VALUE became NaN
    assert list(ds["feature_group"].values) == ["terrain", "hydrology", "vegetation"]
    assert list(ds["feature_units"].values) == ["m", "m", "m2 m-2"]
    assert math.isnan(float(ds["covariates"].sel(sample="S2", feature="tpi")))
    np.testing.assert_allclose(ds["covariates"].sel(feature="elevation").values, [1.2, 3.4, 0.5])
    # patches (sample, layer, y, x), centre pixel = the covariate, y north-up offsets in metres
    assert ds["patches"].dims == ("sample", "layer", "y", "x")
    assert list(ds["layer_group"].values) == ["terrain", "hydrology"]
    np.testing.assert_allclose(ds["y"].values, [10, 0, -10])
    np.testing.assert_allclose(ds["x"].values, [-10, 0, 10])
    centre = ds["patches"].sel(layer="elevation", y=0, x=0).values
    np.testing.assert_allclose(centre, ds["covariates"].sel(feature="elevation").values + 4)
    # provenance
    assert ds.attrs["simulated"] is False
    assert ds.attrs["source"].startswith("Earth Engine: COPERNICUS/S2_SR_HARMONIZED")
    licence = ds.attrs["licence"]
    assert "Copernicus Sentinel data" in licence and "public domain" in licence
    assert "Copernicus DEM licence" in licence
    assert "10.1016/j.rse.2017.06.031" in ds.attrs["citation"]
    # groups: spatial blocks (S1, S2 ~1.4 km apart may share a block; S3 is ~12 km away)
    assert ds["group"].values[2] != ds["group"].values[0]


def test_to_samples_group_key_and_without_points():
    ds = _convert(group_key="field")
    assert list(ds["group"].values) == ["F1", "F1", "F2"]
    # without points: order, lat/lon and target come from the features themselves
    payload = _payload()
    for f in payload["features"]:
        f["properties"]["salt"] = 2.0
    with pytest.warns(UserWarning):
        ds = to_samples(payload, BANDS, dates=DATES, target_key="salt")
    assert list(ds["sample"].values) == ["S3", "S1", "S2"]
    assert "covariates" not in ds and "patches" not in ds
    np.testing.assert_allclose(ds["lat"].values, [37.80, 37.71, 37.72])


def test_to_samples_covariates_only():
    payload = _payload()
    ds = to_samples(
        payload["features"], [], covariates={"elevation": "terrain", "Lai_t0": "vegetation"},
        points=YRD_POINTS, collections=[E.GLO30, E.MCD15A3H],
    )  # fmt: skip
    assert "reflectance" not in ds and "band" not in ds.dims
    assert ds.attrs["source"] == "Earth Engine: COPERNICUS/DEM/GLO30, MODIS/061/MCD15A3H"
    assert "Sentinel" not in ds.attrs["licence"]


def test_to_samples_errors():
    payload = _payload()
    unlabelled = [dict(p) for p in YRD_POINTS]
    del unlabelled[1]["target"]
    with pytest.raises(ValueError, match="no finite 'target'"):
        to_samples(payload, BANDS, dates=DATES, points=unlabelled)
    with pytest.raises(ValueError, match="repeat the id"):
        to_samples(payload["features"] * 2, BANDS, dates=DATES, points=YRD_POINTS)
    with pytest.raises(ValueError, match="without 'features'"):
        to_samples({"type": "FeatureCollection"}, BANDS, dates=DATES, points=YRD_POINTS)
    with pytest.raises(ValueError, match="dates is required"):
        to_samples(payload, BANDS, points=YRD_POINTS)
    with pytest.raises(ValueError, match="unknown group"):
        to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, covariates={"tpi": "wetness"})
    bad = _payload()
    bad["features"][0]["properties"]["patch_tpi"] = [[1.0, 2.0]]
    with pytest.raises(ValueError, match="odd"):
        to_samples(bad, BANDS, dates=DATES, points=YRD_POINTS, patch_layers={"tpi": "hydrology"})
    with pytest.raises(ValueError, match="no feature carries a patch"):
        to_samples(
            payload, BANDS, dates=DATES, points=YRD_POINTS, patch_layers={"slope": "terrain"}
        )
    with pytest.raises(ValueError, match="group_key 'plot'"):
        to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, group_key="plot")


def test_to_samples_warns_about_points_that_did_not_come_back():
    payload = _payload()
    payload["features"] = payload["features"][1:]  # S3 missing
    with pytest.warns(UserWarning) as record:
        ds = to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS)
    assert any("without values" in str(w.message) for w in record)
    assert np.isnan(ds["reflectance"].sel(sample="S3").values).all()


def test_to_samples_has_no_recipe_defaults():
    """The generic converter is told the target and the collections; it assumes no chapter."""
    payload = _payload()
    for missing in ("target_name", "target_units", "collections"):
        args = {k: v for k, v in SALT.items() if k != missing}
        with pytest.raises(TypeError, match=missing):
            E.to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, **args)
    with pytest.raises(TypeError, match="band_names"):
        E.to_samples(payload, dates=DATES, points=YRD_POINTS, **SALT)
    # another chapter's target and collections pass straight through
    ds = E.to_samples(
        payload, [], covariates={"elevation": "terrain"}, points=YRD_POINTS,
        target_name="soil organic carbon", target_units="%", collections=[E.GLO30],
    )  # fmt: skip
    assert ds.attrs["target_name"] == "soil organic carbon"
    assert ds["target"].attrs == {"units": "%", "long_name": "soil organic carbon"}
    assert ds.attrs["source"] == "Earth Engine: COPERNICUS/DEM/GLO30"
    assert "Sentinel" not in ds.attrs["licence"] and "Sentinel" not in ds.attrs["citation"]


def test_to_samples_raises_parameter_errors():
    payload = _payload()
    with pytest.raises(ParameterError, match="unknown collection"):
        to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, collections=["NASA/NOPE"])
    with pytest.raises(ParameterError, match="not a dict"):
        to_samples(["x"], BANDS, dates=DATES)
    with pytest.raises(ParameterError, match="block_size_m"):
        to_samples(payload, BANDS, dates=DATES, points=YRD_POINTS, block_size_m=0)
    with pytest.raises(ParameterError, match="nothing came back"):
        to_samples([], BANDS, dates=DATES)
