"""From a scene to sample sets: covariates, patches, field samples, dense pixels."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data import scene as sc
from soilbook.data.schema import FEATURE_GROUPS, tabular_feature_names, to_tabular, validate_samples
from soilbook.data.simulate.salinity import simulate_scene

SIZE = 48


@pytest.fixture(scope="module")
def scene():
    return simulate_scene(size=SIZE, n_dates=2, seed=1)


def test_scene_covariates(scene):
    cov = sc.scene_covariates(scene)
    assert cov.dims == ("feature", "y", "x")
    names = list(cov["feature"].values)
    for idx in ("NDVI", "SI", "SI3", "BI"):
        assert idx in names
    assert set(cov["feature_group"].values) <= set(FEATURE_GROUPS)
    # layer values pass through unchanged
    np.testing.assert_array_equal(
        cov.sel(feature="elevation").values, scene["layers"].sel(layer="elevation").values
    )
    # NDVI on the date-mean reflectance
    mean = scene["reflectance"].mean("date")
    b4, b8 = mean.sel(band="B4").values, mean.sel(band="B8").values
    np.testing.assert_allclose(cov.sel(feature="NDVI").values, (b8 - b4) / (b8 + b4), rtol=1e-5)
    groups = dict(zip(names, cov["feature_group"].values, strict=True))
    assert groups["NDVI"] == "vegetation" and groups["SI"] == "spectral"


def test_extract_patches_centre_and_padding(scene):
    rows = np.array([0, 10, SIZE - 1, 20])
    cols = np.array([0, 30, SIZE - 1, 5])
    layers = scene["layers"].values
    p = sc.extract_patches(layers, rows, cols, window=7)
    assert isinstance(p, np.ndarray) and p.dtype == np.float32
    assert p.shape == (4, scene.sizes["layer"], 7, 7)
    np.testing.assert_array_equal(p[:, :, 3, 3], layers[:, rows, cols].T)
    # an interior window is the plain slice
    np.testing.assert_array_equal(p[1], layers[:, 7:14, 27:34])
    # the corner window is mirror-padded (numpy 'reflect', edge not repeated)
    padded = np.pad(layers, ((0, 0), (3, 3), (3, 3)), mode="reflect")
    np.testing.assert_array_equal(p[0], padded[:, 0:7, 0:7])
    np.testing.assert_array_equal(p[0][:, 2, 3], layers[:, 1, 0])  # reflection of row 1
    np.testing.assert_array_equal(p[2][:, 4, 3], layers[:, SIZE - 2, SIZE - 1])
    # a scene or a DataArray gives the same windows; other pad modes are honoured
    np.testing.assert_array_equal(sc.extract_patches(scene, rows, cols, 7), p)
    edge = sc.extract_patches(scene["layers"], rows, cols, 7, pad_mode="edge")
    np.testing.assert_array_equal(edge[0][:, 0, 0], layers[:, 0, 0])
    nan = sc.extract_patches(layers, rows, cols, 7, pad_mode="constant")
    assert np.isnan(nan[0][:, 0, 0]).all() and np.isfinite(nan[1]).all()
    # window 1 is the pixel itself
    np.testing.assert_array_equal(
        sc.extract_patches(layers, rows, cols, 1)[:, :, 0, 0], layers[:, rows, cols].T
    )


def test_extract_patches_rejects_bad_windows(scene):
    with pytest.raises(ValueError, match="odd"):
        sc.extract_patches(scene, [1], [1], window=4)
    with pytest.raises(ValueError, match="outside"):
        sc.extract_patches(scene, [SIZE], [0], window=3)
    with pytest.raises(ValueError, match="smaller window"):
        sc.extract_patches(scene, [0], [0], window=2 * SIZE + 1)


def test_sample_scene(scene):
    ds = sc.sample_scene(scene, n_samples=120, window=9, seed=0)
    validate_samples(ds)
    assert ds.sizes["sample"] == 120
    assert ds["patches"].shape == (120, scene.sizes["layer"], 9, 9)
    assert ds["patches"].dims == ("sample", "layer", "y", "x")
    assert list(ds["layer_group"].values) == list(scene["layer_group"].values)
    # pixels are drawn without replacement
    pix = set(zip(ds["row"].values.tolist(), ds["col"].values.tolist(), strict=True))
    assert len(pix) == 120
    # 48 px * 10 m / 400 m blocks -> at most 2 x 2 blocks; labels look like b01_00
    groups = set(ds["group"].values.tolist())
    assert 2 <= len(groups) <= 4 and all(g.startswith("b") and "_" in g for g in groups)
    assert ds["target"].attrs["units"] == "g/kg"
    assert ds.attrs["simulated"] is True and ds.attrs["lab_noise_log_sd"] == 0.30
    # covariates and reflectance are the scene's values at the sampled pixels
    r, c = ds["row"].values, ds["col"].values
    cov = sc.scene_covariates(scene)
    np.testing.assert_array_equal(ds["covariates"].values, cov.values[:, r, c].T)
    np.testing.assert_array_equal(
        ds["reflectance"].values, scene["reflectance"].values[:, :, r, c].transpose(2, 0, 1)
    )
    np.testing.assert_array_equal(
        ds["patches"].values[:, :, 4, 4], scene["layers"].values[:, r, c].T
    )
    # lab noise: multiplicative, about 30 % in log units, unbiased on average
    ratio = np.log(ds["target"].values / ds["target_true"].values)
    assert 0.2 < ratio.std() < 0.4
    names, _ = tabular_feature_names(ds)
    assert to_tabular(ds).shape == (120, len(names))
    assert "B4@2021-04-15" in names


def test_sample_scene_groups_for_five_fold_cv():
    big = simulate_scene(size=160, n_dates=1, seed=0)
    ds = sc.sample_scene(big, n_samples=400, window=None, seed=3, block_size_m=400.0)
    assert "patches" not in ds
    assert len(np.unique(ds["group"].values)) >= 10
    a = sc.sample_scene(big, n_samples=50, window=None, seed=3, lab_noise=0.0)
    np.testing.assert_allclose(a["target"].values, a["target_true"].values)
    b = sc.sample_scene(big, n_samples=50, window=None, seed=3, lab_noise=0.0)
    np.testing.assert_array_equal(a["row"].values, b["row"].values)


def test_sample_scene_errors(scene):
    with pytest.raises(ValueError, match="n_samples"):
        sc.sample_scene(scene, n_samples=SIZE * SIZE + 1)
    with pytest.raises(ValueError, match="odd"):
        sc.sample_scene(scene, n_samples=10, window=8)


def test_pixels_as_samples(scene):
    ds = sc.pixels_as_samples(scene)
    assert ds.sizes["sample"] == SIZE * SIZE
    np.testing.assert_array_equal(ds["target"].values, scene["target"].values.ravel())
    sub = sc.pixels_as_samples(scene, rows=[0, 5], cols=[3, 4], window=3)
    validate_samples(sub)
    assert sub["patches"].shape[-1] == 3
    no_target = scene.drop_vars("target")
    out = sc.pixels_as_samples(no_target, rows=[1], cols=[1])
    assert np.isnan(out["target"].values).all()


def test_sample_scene_docstring_states_the_default_lab_noise():
    import inspect

    from soilbook.data.scene import sample_scene

    default = inspect.signature(sample_scene).parameters["lab_noise"].default
    assert f"The default {default:.2f}" in (sample_scene.__doc__ or "")
