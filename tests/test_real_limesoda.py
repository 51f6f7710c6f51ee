"""LimeSoDa loader: the real bundled field data in the soilbook schema."""

from __future__ import annotations

import LimeSoDa
import numpy as np
import pytest

from soilbook.data.real.limesoda import (
    SENTINEL2_DATASETS,
    load_limesoda,
)
from soilbook.data.schema import tabular_feature_names, to_tabular, validate_samples
from soilbook.errors import ParameterError


def test_sentinel2_list_matches_the_package() -> None:
    with_s2 = []
    for name in LimeSoDa.list_datasets():
        if name == "Overview_Datasets":
            continue
        cols = set(LimeSoDa.load_dataset(name)["Dataset"].columns)
        if len(cols & {"B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"}) >= 10:
            with_s2.append(name)
    assert sorted(with_s2) == sorted(SENTINEL2_DATASETS)


def test_bb250_soc() -> None:
    ds = validate_samples(load_limesoda("BB.250", "soc"))
    raw = LimeSoDa.load_dataset("BB.250")["Dataset"]
    assert ds.sizes["sample"] == 250
    np.testing.assert_allclose(ds["target"].values, raw["SOC_target"].values)
    assert ds["target"].attrs["units"] == "%"
    assert ds.attrs["target_name"] == "SOC" and ds.attrs["simulated"] is False
    assert ds.attrs["licence"] == "CC BY-SA 4.0" and "Geoderma" in ds.attrs["citation"]
    # reflectance is 0-1 (LimeSoDa stores L2A x 10000)
    r = ds["reflectance"].values
    assert r.shape == (250, 1, 10) and 0.05 < r.min() and r.max() < 1.0
    np.testing.assert_allclose(r[:, 0, 2], raw["B04"].values / 10000, rtol=1e-6)
    assert " ".join(ds["band"].values) == "B02 B03 B04 B05 B06 B07 B08 B8A B11 B12"
    assert np.all(np.diff(ds["wavelength"].values) > 0)
    groups = dict(zip(ds["feature"].values, ds["feature_group"].values, strict=True))
    assert groups == {
        "Altitude": "terrain",
        "Slope": "terrain",
        "ERa": "soil",
        "G_Total_Counts": "soil",
        "pH_ISE": "soil",
        "NDVI": "vegetation",
        "GNDVI": "vegetation",
    }
    # Brandenburg, Germany
    assert 52.3 < float(ds["lat"].mean()) < 52.5 and 14.3 < float(ds["lon"].mean()) < 14.6
    # spatial blocks: at least 10, and LimeSoDa's folds kept
    assert len(np.unique(ds["group"].values)) >= 10
    assert ds.attrs["group_kind"] == "spatial block"
    assert sorted(np.unique(ds["limesoda_fold"].values)) == list(range(1, 11))
    names, _ = tabular_feature_names(ds)
    assert to_tabular(ds).shape == (250, len(names)) == (250, 17)


@pytest.mark.parametrize("dataset_id", SENTINEL2_DATASETS)
@pytest.mark.parametrize("target", ["SOC", "pH", "Clay"])
def test_every_s2_dataset_and_target(dataset_id: str, target: str) -> None:
    ds = load_limesoda(dataset_id, target)
    assert np.isfinite(ds["target"].values).all()
    assert np.isfinite(ds["reflectance"].values).all()
    assert len(np.unique(ds["group"].values)) >= 10
    assert ds.attrs["source"] == f"LimeSoDa {dataset_id}"
    assert -60 < float(ds["lat"].mean()) < 60


def test_dataset_without_sentinel2_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"no Sentinel-2.*Allowed.*BB\.250"):
        load_limesoda("SSP.460", "SOC")
    with pytest.raises(ParameterError, match="Allowed"):
        load_limesoda("XX.1", "SOC")


def test_unknown_target() -> None:
    with pytest.raises(ParameterError, match=r"allowed: \['SOC', 'pH', 'Clay'\]"):
        load_limesoda("BB.250", "salinity")
