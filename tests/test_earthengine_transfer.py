"""The transfer recipe (soilbook.data.earthengine.recipes.transfer): Hyperion bands, the
composed request's graph, the precheck and the conversion to the chapter's satellite set
(offline)."""

from __future__ import annotations

import math
from typing import Any

import ee_harness
import numpy as np
import pytest
from ee_harness import calls, const, date_ranges, graph, loaded_ids, point_ids

from soilbook.data import spectra
from soilbook.data.earthengine import FILL_VALUE, HYPERION
from soilbook.data.earthengine.recipes import transfer as T
from soilbook.data.schema import validate_samples
from soilbook.errors import ParameterError

ee_offline = ee_harness.ee_offline

#: Lab sites in the Yellow River Delta, EC in dS/m.
SITES = [
    {"id": "L1", "lat": 37.71, "lon": 118.86, "target": 4.2, "region": "north"},
    {"id": "L2", "lat": 37.72, "lon": 118.87, "target": 12.5, "region": "north"},
    {"id": "L3", "lat": 37.80, "lon": 118.95, "target": 1.1, "region": "south"},
]
WINDOWS = [("2010-04-01", "2010-06-01"), ("2011-04-01", "2011-06-01")]


# -- the band table ----------------------------------------------------------------------------


def test_band_table_is_the_nominal_spacing_without_water_vapour_and_overlap():
    assert T.HYPERION_WAVELENGTHS_NM["B008"] == pytest.approx(355.59 + 10.18 * 7)
    assert T.HYPERION_WAVELENGTHS_NM["B077"] == pytest.approx(851.92 + 10.09 * 6)
    assert len(T.HYPERION_WAVELENGTHS_NM) == 50 + 148  # B008-B057 and B077-B224
    # within ~2 nm of the catalogue's centres (B050 854.18 nm, B150 1648.90 nm)
    assert abs(T.HYPERION_WAVELENGTHS_NM["B050"] - 854.18) < 2
    assert abs(T.HYPERION_WAVELENGTHS_NM["B150"] - 1648.90) < 2
    wl = np.array([T.HYPERION_WAVELENGTHS_NM[b] for b in T.HYPERION_BANDS])
    assert np.all(np.diff(wl) > 0)  # the SWIR overlap B077/B078 is gone
    assert "B077" not in T.HYPERION_BANDS and "B079" in T.HYPERION_BANDS
    for lo, hi in spectra.WATER_VAPOUR_NM:
        assert not np.any((wl >= lo) & (wl <= hi))
    assert "B057" in T.HYPERION_BANDS and "B224" in T.HYPERION_BANDS
    with pytest.raises(ParameterError, match="1-242"):
        T.hyperion_nominal_nm(243)
    with pytest.raises(ParameterError, match="uncalibrated"):
        T.check_hyperion_bands(["B001"])


def test_nominal_solar_irradiance_and_distance():
    # a 5778 K black body at 1 AU: ~1360 W m-2 in total, peak near 500 nm
    grid = np.arange(200.0, 10000.0, 1.0)
    total = float(np.sum(T.solar_irradiance(grid)) * 1e-3)  # W m-2 um-1 * um
    assert 1300 < total < 1370
    assert 1700 < float(T.solar_irradiance(500.0)) < 2100
    assert float(T.earth_sun_distance_au(4)) == pytest.approx(1 - T.ORBIT_ECCENTRICITY)
    assert float(T.earth_sun_distance_au(187)) == pytest.approx(1.0167, abs=2e-4)
    # a VNIR DN of 4000 under a 45 degree sun at 1 AU is a soil-like reflectance
    (factor,) = T.reflectance_factors(["B030"])
    assert 0.15 < 4000 * factor / math.sin(math.radians(45)) < 0.4


# -- the precheck ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "match"),
    [
        ([("2018-01-01", "2018-06-01")], r"after EO1/HYPERION ended on 2017-03-31"),
        ([("1999-01-01", "2000-06-01")], r"Hyperion \(EO1/HYPERION\) flew from 2001"),
    ],
)
def test_precheck_refuses_windows_outside_hyperions_life(dates, match):
    with pytest.raises(ParameterError, match=match):
        T.precheck_transfer(SITES, dates)


def test_precheck_refuses_bad_points_and_passes_good_ones():
    T.precheck_transfer(SITES, WINDOWS)
    with pytest.raises(ParameterError, match="lat"):
        T.precheck_transfer([{"id": "x", "lat": 137.0, "lon": 0.0}], WINDOWS)


# -- the golden graph --------------------------------------------------------------------------


def _image_constants(tree: Any) -> list[Any]:
    """The literal values of every ``Image.constant`` in ``tree``."""
    values = [a["value"] for a in calls(tree, "Image.constant")]
    return [v["constantValue"] for v in values if "constantValue" in v]


def _number_constants(tree: Any, name: str) -> list[Any]:
    """The literal right-hand sides of every ``Number.<name>`` in ``tree``."""
    args = [a["right"] for a in calls(tree, f"Number.{name}")]
    return [v["constantValue"] for v in args if "constantValue" in v]


def test_build_transfer_request_graph(ee_offline):
    req = T.build_transfer_request(SITES, WINDOWS, batch_size=2)
    assert req.crs == "EPSG:32650" and req.scale == 30.0
    assert [point_ids(graph(b)) for b in req.batches] == [["L1", "L2"], ["L3"]]
    tree = graph(req.batches[0])
    assert loaded_ids(tree) == {HYPERION} == set(T.TRANSFER_COLLECTIONS)
    assert date_ranges(tree) == set(WINDOWS)
    (sample,) = calls(tree, "Image.sampleRegions")
    assert const(sample["scale"]) == 30
    selected = [const(a["bandSelectors"]) for a in calls(tree, "Image.select")]
    assert list(T.HYPERION_BANDS) in selected
    # the radiance -> TOA reflectance constants: pi / (E_sun * 40 or 80) per band
    constants = _image_constants(tree)
    assert any(
        isinstance(c, list) and np.allclose(c, T.reflectance_factors(T.HYPERION_BANDS))
        for c in constants
    )
    # the Earth-Sun distance of the scene's day of year, and its sun elevation in radians
    assert T.ORBIT_ECCENTRICITY in _number_constants(tree, "multiply")
    assert math.pi / 180 in _number_constants(tree, "multiply")
    # DN <= 0 masked, the scene's sun elevation read, masked pixels filled
    assert any(const(a["image2"]) == 0 for a in calls(tree, "Image.gt"))
    assert any(const(a["property"]) == "SUN_ELEVATION" for a in calls(tree, "Element.get"))
    assert any(const(a["value"]) == FILL_VALUE for a in calls(tree, "Image.unmask"))
    assert calls(tree, "reduce.median")


def test_hyperion_image_takes_fewer_bands(ee_offline):
    image = T.hyperion_image(WINDOWS[:1], (118.8, 37.6, 119.0, 37.9), bands=["B030", "B150"])
    tree = graph(image)
    assert date_ranges(tree) == {WINDOWS[0]}
    constants = _image_constants(tree)
    assert any(
        isinstance(c, list) and np.allclose(c, T.reflectance_factors(["B030", "B150"]))
        for c in constants
    )
    with pytest.raises(ParameterError, match="ended on 2017-03-31"):
        T.hyperion_image([("2019-01-01", "2019-02-01")], (118.8, 37.6, 119.0, 37.9))


# -- the conversion ----------------------------------------------------------------------------


def _payload(ids: list[str], seed: int = 0, empty: tuple[str, ...] = ()) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    features = []
    for pid in ids:
        props: dict[str, Any] = {"id": pid}
        for band in T.HYPERION_BANDS:
            props[band] = FILL_VALUE if pid in empty else float(rng.uniform(0.05, 0.4))
        features.append({"type": "Feature", "geometry": None, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def test_conversion_gives_the_chapters_satellite_set():
    ds = T.to_transfer_samples(
        _payload(["L1", "L2", "L3"]), SITES, dates=WINDOWS, group_key="region"
    )
    validate_samples(ds)
    assert ds["reflectance"].dims == ("sample", "date", "band")
    assert ds.sizes["date"] == 1 and ds.sizes["band"] == len(T.HYPERION_BANDS)
    np.testing.assert_allclose(
        ds["wavelength"].values, [T.HYPERION_WAVELENGTHS_NM[b] for b in T.HYPERION_BANDS]
    )
    np.testing.assert_allclose(ds["target"].values, [4.2, 12.5, 1.1])
    assert ds["target"].attrs["units"] == "dS/m"
    assert list(ds["site"].values) == ["L1", "L2", "L3"] and ds["site"].dtype.kind == "U"
    assert list(ds["group"].values) == ["north", "north", "south"]
    for c in ("site", "lat", "lon", "group", "location"):
        assert c in ds.coords
    assert ds.attrs["domain"] == "satellite" and ds.attrs["simulated"] is False
    assert ds.attrs["collections"] == HYPERION and ds.attrs["enmap_note"] == T.ENMAP_NOTE
    assert "EnMAP" in ds["reflectance"].attrs["long_name"]
    assert ds.attrs["date_windows"] == "2010-04-01/2010-06-01, 2011-04-01/2011-06-01"


def test_conversion_drops_sites_without_a_scene():
    with pytest.warns(UserWarning, match="no Hyperion pixel"):
        ds = T.to_transfer_samples(_payload(["L1", "L2", "L3"], empty=("L2",)), SITES)
    assert list(ds["site"].values) == ["L1", "L3"]
    np.testing.assert_allclose(ds["target"].values, [4.2, 1.1])
    assert not np.isnan(ds["reflectance"].values).any()
    with pytest.raises(ParameterError, match="widen the date windows"):
        T.to_transfer_samples(_payload(["L1", "L2", "L3"], empty=("L1", "L2", "L3")), SITES)


def test_extract_transfer_inputs_against_a_fake_server(ee_offline, monkeypatch):
    ee = ee_offline
    sent: list[list[str]] = []

    def fake_compute_value(obj: Any) -> dict:
        ids = point_ids(graph(obj))
        sent.append(ids)
        return _payload(ids, seed=len(sent))

    monkeypatch.setattr(ee.data, "computeValue", fake_compute_value)
    ds = T.extract_transfer_inputs(SITES, WINDOWS, batch_size=2, progress=False)
    assert sorted(sent) == [["L1", "L2"], ["L3"]]  # batches are sent in parallel, any order
    validate_samples(ds)
    assert ds.attrs["crs"] == "EPSG:32650" and ds.attrs["enmap_note"] == T.ENMAP_NOTE


def test_extract_checks_before_any_request(ee_offline, monkeypatch):
    ee = ee_offline
    monkeypatch.setattr(ee.data, "computeValue", lambda *_: pytest.fail("a request was sent"))
    with pytest.raises(ParameterError, match="no finite 'target'"):
        T.extract_transfer_inputs([{"id": "X", "lat": 37.7, "lon": 118.9}], WINDOWS)
    with pytest.raises(ParameterError, match="ended on 2017-03-31"):
        T.extract_transfer_inputs(SITES, [("2020-01-01", "2020-02-01")])
