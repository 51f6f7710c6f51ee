"""SS-SoilNet: shapes, gradients, attention, ablations, point data, whole-scene prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from factories import sample_set
from sklearn.base import clone

from soilbook.data.scene import pixels_as_samples, sample_scene
from soilbook.data.schema import SchemaError, subset
from soilbook.data.simulate.salinity import simulate_scene
from soilbook.errors import ParameterError
from soilbook.models.base import NetworkRegressor, inner_group_split
from soilbook.models.ss_soilnet import (
    FUSIONS,
    SSSoilNet,
    SSSoilNetRegressor,
    missing_inputs,
    window_attention_pool,
)

SIZE, WINDOW = 32, 7
FAST = dict(width=8, heads=2, n_queries=2, epochs=3, batch_size=32, device="cpu", seed=0)


#: Settings of the module-scoped ``scene`` and ``samples`` fixtures (tests/conftest.py).
SCENE = dict(size=SIZE, n_dates=2, seed=1)
SAMPLES = dict(n_samples=150, window=WINDOW, seed=0, block_size_m=80.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def point_samples(n: int = 80, with_context: bool = True, seed: int = 0) -> xr.Dataset:
    """A tiny schema-valid point data set (no patches), like LimeSoDa or the UCRB pedons."""
    rng = np.random.default_rng(seed)
    feats = {"ndvi": "vegetation", "si": "spectral", "elev": "terrain", "twi": "hydrology"}
    if not with_context:
        feats = {"ndvi": "vegetation", "si": "spectral"}
    cov = rng.normal(size=(n, len(feats))).astype(np.float32)
    refl = rng.uniform(0.05, 0.4, size=(n, 1, 4)).astype(np.float32)
    y = 2 + cov[:, 0] - cov[:, -1] + refl[:, 0, 1]
    return sample_set(
        y,
        refl,
        cov,
        dates=["2020-06-01"],
        bands=["B2", "B3", "B4", "B8"],
        features=feats,
        groups=np.arange(n) // 5,
        target_units="dS/m",
        target_long_name="EC",
        covariate_units="various",
        source="test",
    )


# -- the module ------------------------------------------------------------------------------


def _inputs(n=5, dates=2, bands=6, n_index=3, layers=4, window=9):
    return {
        "spectra": torch.randn(n, dates, bands),
        "index": torch.randn(n, n_index),
        "spatial": torch.randn(n, layers, window, window),
    }


#: A tiny network sized for ``_inputs()``.
TINY = dict(n_dates=2, n_bands=6, n_index=3, n_spatial=4, window=9, width=8, heads=2)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_forward_shapes_for_every_fusion(fusion):
    x = _inputs()
    net = SSSoilNet(**TINY, n_queries=3, fusion=fusion)
    args = [x[k] for k in net.input_names]
    assert net.input_names == (
        ("spectra", "index") if fusion == "spectral_only" else ("spectra", "index", "spatial")
    )
    out = net(*args)
    assert out.shape == (5,)
    parts = net.explain_forward(*args)
    if fusion == "cross_attention":
        assert parts["cross_attention"].shape == (5, 3, 6 + 3)
    if fusion != "spectral_only":
        assert parts["spatial_attention"].shape == (5, 3, 9 - 4, 9 - 4)


def test_forward_point_inputs_use_1x1_convolutions():
    net = SSSoilNet(n_dates=1, n_bands=4, n_index=2, n_spatial=3, window=1, width=8, heads=2)
    assert net.kernel == 1 and net.pool_window == 1
    out = net(torch.randn(7, 1, 4), torch.randn(7, 2), torch.randn(7, 3, 1, 1))
    assert out.shape == (7,)
    # index tokens only (no reflectance)
    net = SSSoilNet(n_dates=0, n_bands=0, n_index=2, n_spatial=3, window=1, width=8, heads=2)
    assert net(torch.randn(7, 2), torch.randn(7, 3, 1, 1)).shape == (7,)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_gradients_reach_every_parameter(fusion):
    x = _inputs()
    net = SSSoilNet(**TINY, fusion=fusion, dropout=0.0)
    net(*[x[k] for k in net.input_names]).pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


def test_bad_settings_raise_parameter_errors():
    with pytest.raises(ParameterError, match="divisible"):
        SSSoilNetRegressor(width=10, heads=4).fit(point_samples())
    with pytest.raises(ParameterError, match="fusion"):
        SSSoilNetRegressor(fusion="late").fit(point_samples())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda_raises(samples):
    with pytest.raises(ParameterError, match="CUDA"):
        SSSoilNetRegressor(**{**FAST, "device": "cuda"}).fit(samples)


# -- the estimator ---------------------------------------------------------------------------


def test_clone_and_params():
    est = SSSoilNetRegressor(fusion="concat", width=16, epochs=7, learning_rate=1e-3)
    params = est.get_params()
    assert params["fusion"] == "concat" and params["epochs"] == 7 and params["width"] == 16
    assert {"patience", "seed", "device", "checkpoint_dir", "val_fraction"} <= set(params)
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert isinstance(est, NetworkRegressor)


@pytest.fixture(scope="module")
def fitted(samples):
    return {f: SSSoilNetRegressor(fusion=f, **FAST).fit(samples) for f in FUSIONS}


def test_fit_predict_and_attributes(fitted, samples):
    net = fitted["cross_attention"]
    pred = net.predict(samples)
    assert pred.shape == (samples.sizes["sample"],) and pred.dtype == np.float64
    assert np.isfinite(pred).all()
    assert (
        net.window_ == WINDOW
        and net.spatial_mode_ == "patches"
        and net.fusion_ == "cross_attention"
    )
    assert net.n_train_ + net.n_val_ == samples.sizes["sample"] and net.n_val_ > 0
    assert net.target_units_ == samples["target"].attrs["units"]
    assert len(net.history_.train_loss) >= 1
    tensors = net.to_tensors(samples)
    groups = net.input_groups(samples)
    assert list(groups) == net.input_names_ == ["spectra", "index", "spatial"]
    assert groups["spectra"] == "spectral"
    assert groups["spatial"] == [str(g) for g in samples["layer_group"].values]
    assert tensors[1].shape[1] == len(groups["index"])
    with torch.no_grad():
        out = net.module_(*tensors).numpy() * net.target_scale_ + net.target_mean_
    np.testing.assert_allclose(out, pred, rtol=1e-5, atol=1e-5)


def test_same_seed_same_predictions(samples):
    a = SSSoilNetRegressor(**FAST).fit(samples).predict(samples)
    b = SSSoilNetRegressor(**FAST).fit(samples).predict(samples)
    np.testing.assert_array_equal(a, b)


def test_inner_validation_split_is_grouped(samples):
    groups = samples["group"].values
    train, val = inner_group_split(groups, 0.15, seed=0)
    assert val.size > 0 and train.size + val.size == groups.size
    assert not set(groups[train]) & set(groups[val])
    assert 0.05 < val.size / groups.size < 0.4
    train0, val0 = inner_group_split(groups, 0.0, seed=0)
    assert val0.size == 0 and train0.size == groups.size


def test_attention_weights_sum_to_one(fitted, samples):
    net = fitted["cross_attention"]
    part = subset(samples, range(6))
    attn = net.attention_weights(part)
    assert attn.dims == ("sample", "query", "token")
    assert attn.shape == (6, FAST["n_queries"], samples.sizes["band"] + len(net.index_features_))
    np.testing.assert_allclose(attn.sum("token").values, 1.0, atol=1e-5)
    assert list(attn["token"].values[:3]) == [str(b) for b in samples["band"].values[:3]]
    assert set(attn["token_group"].values) <= {"spectral", "vegetation"}
    spatial = net.spatial_attention(part)
    assert spatial.dims == ("sample", "query", "y", "x")
    assert spatial.shape[-2:] == (WINDOW - 4, WINDOW - 4)
    np.testing.assert_allclose(spatial.sum(["y", "x"]).values, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="cross-attention"):
        fitted["concat"].attention_weights(part)
    with pytest.raises(ValueError, match="spatial branch"):
        fitted["spectral_only"].spatial_attention(part)


def test_point_data_use_covariates_as_1x1_patches():
    ds = point_samples()
    net = SSSoilNetRegressor(**FAST).fit(ds)
    assert net.spatial_mode_ == "pixels" and net.window_ == 1
    assert net.spatial_names_ == ["elev", "twi"] and net.index_features_ == ["ndvi", "si"]
    assert net.predict(ds).shape == (80,)
    np.testing.assert_allclose(net.spatial_attention(subset(ds, [0, 1])).values, 1.0)
    assert net.input_groups(ds)["spatial"] == ["terrain", "hydrology"]


def test_no_spatial_inputs_falls_back_to_spectral_only():
    ds = point_samples(with_context=False)
    with pytest.warns(UserWarning, match="spectral-only"):
        net = SSSoilNetRegressor(**FAST).fit(ds)
    assert net.fusion_ == "spectral_only" and net.predict(ds).shape == (80,)


def test_no_spectral_inputs_is_a_clear_error():
    ds = point_samples().drop_vars("reflectance")
    ds = ds.assign_coords(feature_group=("feature", ["terrain"] * 4))
    with pytest.raises(SchemaError, match="no spectral inputs"):
        SSSoilNetRegressor(**FAST).fit(ds)


def test_missing_inputs_says_before_fit_what_a_variant_lacks(samples):
    """The cheap test agrees with what fit does (error / spectral-only fallback / fine)."""
    lab_only = point_samples().drop_vars("reflectance")
    lab_only = lab_only.assign_coords(feature_group=("feature", ["terrain", "soil"] * 2))
    for fusion in FUSIONS:
        reason = missing_inputs(lab_only, fusion)
        assert reason.startswith("no spectral inputs") and "'soil', 'terrain'" in reason
    bare = point_samples(with_context=False)
    assert missing_inputs(bare, "spectral_only") is None
    assert "would train the spectral-only variant" in missing_inputs(bare, "concat")
    assert all(missing_inputs(point_samples(), f) is None for f in FUSIONS)  # point data
    assert all(missing_inputs(samples, f) is None for f in FUSIONS)  # patches
    with pytest.raises(ParameterError, match="fusion="):
        missing_inputs(bare, "sum")


def test_predict_rejects_mismatched_inputs(fitted, samples):
    net = fitted["cross_attention"]
    with pytest.raises(SchemaError, match="band"):
        net.predict(samples.isel(band=slice(0, 5)))
    small = sample_scene(
        simulate_scene(size=SIZE, n_dates=2, seed=1), n_samples=5, window=5, seed=1
    )
    with pytest.raises(SchemaError, match="window=7"):
        net.predict(small)


# -- whole scenes ----------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS)
def test_predict_scene_equals_patchwise_predict(fitted, scene, fusion):
    net = fitted[fusion]
    dense = net.predict_scene(scene, tile=13, batch_pixels=100)  # several tiles and batches
    assert dense.shape == (SIZE, SIZE) and dense.dtype == np.float64
    pixels = pixels_as_samples(scene, window=WINDOW)
    patchwise = net.predict(pixels).reshape(SIZE, SIZE)
    np.testing.assert_allclose(dense, patchwise, atol=1e-4, rtol=1e-5)
    if fusion != "spectral_only":  # the FFT path (used for large windows) agrees too
        np.testing.assert_allclose(
            net.predict_scene(scene, tile=20, fft=True), patchwise, atol=1e-4, rtol=1e-5
        )


@pytest.mark.parametrize("scale", [0.3, 3.0, 40.0])  # float32 FFT, float64 FFT, direct float64
def test_window_attention_pool_matches_softmax_pooling(scale):
    torch.manual_seed(0)
    f = torch.randn(3, 12, 14)
    logits = scale * torch.randn(2, 12, 14)
    bias = 0.3 * torch.randn(2, 5, 5)
    for use_fft in (False, True):
        pooled = window_attention_pool(f, logits, bias, use_fft)
        assert pooled.shape == (2, 3, 8, 10)
        for i, j in [(0, 0), (3, 7), (7, 9)]:
            w = torch.softmax((logits[:, i : i + 5, j : j + 5] + bias).reshape(2, -1), dim=-1)
            ref = torch.einsum("mp,cp->mc", w, f[:, i : i + 5, j : j + 5].reshape(3, -1))
            torch.testing.assert_close(pooled[:, :, i, j], ref, atol=2e-5, rtol=1e-5)


def test_checkpointed_fit_resumes_only_the_same_estimator(samples, tmp_path):
    a = SSSoilNetRegressor(**FAST, checkpoint_dir=tmp_path).fit(samples)
    again = SSSoilNetRegressor(**FAST, checkpoint_dir=tmp_path).fit(samples)  # finished: reloaded
    assert again.history_.resumed_from == len(a.history_.epoch)
    np.testing.assert_array_equal(a.predict(samples), again.predict(samples))
    other = SSSoilNetRegressor(**FAST, dropout=0.3, checkpoint_dir=tmp_path).fit(samples)
    assert other.history_.resumed_from == 0  # same shapes, different settings: its own run
    assert len(list(tmp_path.glob("SSSoilNetRegressor-*/checkpoint-*.pt"))) == 2
    assert other.checkpoint_path_ != a.checkpoint_path_ == again.checkpoint_path_


def _interrupt_at_epoch(monkeypatch, epoch: int = 2):
    """Make every training run raise KeyboardInterrupt right after ``epoch`` (and its
    checkpoint) completes, as a Ctrl-C in a notebook would."""
    from soilbook.models import base

    real = base.train_fit

    def stop(epoch_done, history):
        if epoch_done == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(base, "train_fit", lambda *a, **k: real(*a, **k, callback=stop))


def test_interrupted_fit_resumes_to_the_uninterrupted_result(samples, tmp_path, monkeypatch):
    settings = {**FAST, "epochs": 4, "patience": 10}
    reference = SSSoilNetRegressor(**settings).fit(samples).predict(samples)
    est = SSSoilNetRegressor(**settings, checkpoint_dir=str(tmp_path))
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            clone(est).fit(samples)
    resumed = clone(est).fit(samples)  # clone keeps checkpoint_dir: a plain constructor param
    assert resumed.history_.resumed_from == 2 and resumed.history_.finished
    np.testing.assert_array_equal(resumed.predict(samples), reference)
    assert resumed.checkpoint_path_.parent == tmp_path
    assert resumed.checkpoint_path_.name == est.checkpoint_key(samples)


def test_checkpoint_key_separates_folds_and_variants(samples):
    est = SSSoilNetRegressor(**FAST, checkpoint_dir="ckpt")
    first, second = subset(samples, np.arange(75)), subset(samples, np.arange(75, 150))
    assert est.checkpoint_key(first) == est.checkpoint_key(first.copy(deep=True))
    assert est.checkpoint_key(first) != est.checkpoint_key(second)
    assert est.checkpoint_key(first) != est.checkpoint_key(first, y=np.zeros(75))
    variant = SSSoilNetRegressor(**FAST, fusion="concat", checkpoint_dir="ckpt")
    assert variant.checkpoint_key(first) != est.checkpoint_key(first)
    moved = SSSoilNetRegressor(**FAST, checkpoint_dir="elsewhere", progress=True)
    assert moved.checkpoint_key(first) == est.checkpoint_key(first)  # where, not what
    assert est.checkpoint_key(first).startswith("SSSoilNetRegressor-")


@pytest.mark.parametrize("bad", ["", "  ", 3])
def test_bad_checkpoint_dir_fails_before_training(samples, bad):
    with pytest.raises(ParameterError, match="checkpoint_dir"):
        SSSoilNetRegressor(**FAST, checkpoint_dir=bad).fit(samples)


def test_unwritable_checkpoint_dir_fails_before_training(samples, tmp_path):
    from soilbook.errors import OutputDirError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputDirError, match="cannot be created"):
        SSSoilNetRegressor(**FAST, checkpoint_dir=blocker).fit(samples)


def test_checkpoint_key_covers_the_training_code(monkeypatch):
    """A checkpoint written by other code (a changed model or training loop) is never resumed."""
    from soilbook.models import base

    ss = base._training_code_digest(SSSoilNetRegressor)
    from soilbook.models.deepsalt import DeepSaltRegressor

    assert ss != base._training_code_digest(DeepSaltRegressor)  # each model's own module counts
    ds = sample_set(
        np.arange(8.0),
        np.ones((8, 1, 3)),
        np.zeros((8, 1)),
        dates=["d"],
        bands=["B2", "B3", "B4"],
        features={"f": "terrain"},
        groups=np.arange(8),
    )
    model = SSSoilNetRegressor(checkpoint_dir="unused")
    before = model.checkpoint_key(ds)
    monkeypatch.setattr(base, "_training_code_digest", lambda cls: "other code")
    assert model.checkpoint_key(ds) != before
