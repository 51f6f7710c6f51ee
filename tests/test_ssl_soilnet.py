"""SSL-SoilNet: encoders, contrastive loss and retrieval, pre-training, fine-tuning from the
pre-trained weights, the shared pre-training stage, the leakage rule and parameter checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone

from soilbook.data import soc
from soilbook.data.schema import sample_set
from soilbook.errors import ParameterError
from soilbook.models import base
from soilbook.models.ssl_soilnet import (
    ClimateTransformer,
    PatchViT,
    SSLPretrainNet,
    SSLSoilNet,
    SSLSoilNetRegressor,
    augment_climate,
    augment_patches,
    clear_pretrain_cache,
    info_nce,
    pretrain_rows,
    retrieval_accuracy,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

PATCH = 16
MONTHS = 24


def _soc_sets(n_lab=100, n_unl=160, n_groups=8, seed=0, image=True):
    """A tiny labelled and unlabelled chapter-3 pair: two latent factors per location drive the
    climate series, the patch and SOC, so image and climate of one location belong together."""
    rng = np.random.default_rng(seed)
    times = soc.months(n=MONTHS)
    variables = {v: soc.CLIMATE_UNITS[v] for v in soc.CLIMATE_VARIABLES}
    layers = {name: soc.IMAGE_LAYER_GROUPS[name] for name in soc.IMAGE_LAYERS}
    season = np.sin(2 * np.pi * np.arange(MONTHS) / 12)[None, :, None]
    load = rng.normal(size=(1, 1, len(variables)))
    chan = rng.normal(size=(1, len(layers), 1, 1))
    ramp = np.linspace(-1, 1, PATCH)[:, None] * np.ones((1, PATCH))

    def make(n, labelled):
        z = rng.normal(size=(n, 2))
        groups = np.array([f"b{g}" for g in rng.integers(0, n_groups, n)])
        climate = (
            season * (1 + 0.3 * z[:, :1, None])
            + z[:, 1:2, None] * load
            + 0.2 * rng.normal(size=(n, MONTHS, len(variables)))
        ).astype(np.float32)
        kw = dict(climate=climate, climate_times=times, climate_variables=variables)
        if image:
            patches = (
                z[:, 0, None, None, None] * chan
                + z[:, 1, None, None, None] * ramp
                + 0.2 * rng.normal(size=(n, len(layers), PATCH, PATCH))
            ).astype(np.float32)
            centre = patches[:, :, PATCH // 2, PATCH // 2]
            kw.update(patches=patches, layers=layers, covariates=centre, features=layers)
        target = 20 + 4 * z[:, 0] + 3 * z[:, 1] + rng.normal(size=n) if labelled else None
        return sample_set(
            target,
            groups=groups,
            source="test",
            licence="CC0",
            citation="none",
            simulated=True,
            target_units="g/kg" if labelled else None,
            target_long_name="soil organic carbon" if labelled else None,
            lat=40 + rng.uniform(0, 1, n),
            lon=-100 + rng.uniform(0, 1, n),
            validate=labelled,
            **kw,
        )

    return make(n_lab, True), make(n_unl, False)


@pytest.fixture(scope="module")
def sets():
    return _soc_sets()


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_pretrain_cache()
    yield
    clear_pretrain_cache()


def _est(unl=None, **kw) -> SSLSoilNetRegressor:
    settings = dict(
        unlabelled=unl,
        image_width=16,
        image_depth=1,
        image_heads=2,
        climate_width=16,
        climate_depth=1,
        climate_heads=2,
        patch_size=8,
        pretrain_epochs=3,
        pretrain_batch_size=16,
        epochs=3,
        batch_size=16,
        min_epochs=2,
        device="cpu",
        progress=False,
    )
    settings.update(kw)
    return SSLSoilNetRegressor(**settings)


def _stage_spy(monkeypatch):
    """Record (stage, epoch) of every epoch trained through base.train_fit."""
    epochs: list[tuple[str, int]] = []
    real = base.train_fit

    def counting(*args, run_key=None, **kwargs):
        def count(epoch, history):
            epochs.append((run_key.get("stage", "network"), epoch))

        return real(*args, run_key=run_key, callback=count, **kwargs)

    monkeypatch.setattr(base, "train_fit", counting)
    return epochs


# -- modules -------------------------------------------------------------------------------------


def test_encoder_and_network_shapes():
    torch.manual_seed(0)
    vit = PatchViT(14, PATCH, patch_size=8, width=16, depth=1, heads=2)
    assert vit.n_tokens == 4
    assert torch.count_nonzero(vit.cls_token) == 0 and torch.count_nonzero(vit.position) == 0
    x = torch.randn(5, 14, PATCH, PATCH)
    assert vit(x).shape == (5, 128)
    for pool in ("flatten", "mean"):
        tst = ClimateTransformer(13, MONTHS, width=16, depth=1, heads=2, pool=pool)
        assert tst(torch.randn(5, MONTHS, 13)).shape == (5, 128)
    tst = ClimateTransformer(13, MONTHS, width=16, depth=1, heads=2)
    net = SSLSoilNet(vit, tst)
    c = torch.randn(5, MONTHS, 13)
    assert net(x, c).shape == (5,)
    assert set(net.embeddings(x, c)) == {"image", "climate"}
    za, zb = SSLPretrainNet(vit, tst)(x, c)
    assert za.shape == zb.shape == (5, 128)
    # the pre-training state dict loads into the fine-tuning network (names and shapes agree)
    own = net.state_dict()
    pre = SSLPretrainNet(vit, tst).state_dict()
    assert all(k in own and own[k].shape == v.shape for k, v in pre.items())
    with pytest.raises(ValueError, match="does not divide"):
        PatchViT(14, 12, patch_size=8)


def test_views_are_random_in_training_and_fixed_in_evaluation():
    x = torch.randn(6, MONTHS, 13)
    g = torch.Generator().manual_seed(0)
    view = augment_climate(x, 0.5, 0.0, g)
    masked = (view == 0).all(dim=2)
    assert masked.any() and (~masked).any()
    assert torch.equal(view[~masked], x[~masked])
    p = torch.randn(4, 14, PATCH, PATCH)
    flipped = augment_patches(p, 0.0, torch.Generator().manual_seed(1))
    assert flipped.shape == p.shape
    # a flip/rotation keeps each sample's values (a permutation of its pixels)
    assert torch.allclose(flipped.flatten(1).sort(dim=1).values, p.flatten(1).sort(dim=1).values)
    tst = ClimateTransformer(13, MONTHS, width=16, depth=1, heads=2)
    net = SSLPretrainNet(None, tst).eval()
    a1, b1 = net(x)
    a2, b2 = net(x)
    assert torch.equal(a1, a2) and torch.equal(b1, b2) and not torch.equal(a1, b1)


# -- contrastive loss and retrieval --------------------------------------------------------------


def _hand_clip(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    s = a @ b.T / tau
    rows = [-(s[i, i] - math.log(sum(math.exp(v) for v in s[i]))) for i in range(3)]
    cols = [-(s[j, j] - math.log(sum(math.exp(v) for v in s[:, j]))) for j in range(3)]
    return 0.5 * (sum(rows) / 3 + sum(cols) / 3)


def _hand_ntxent(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    z = np.concatenate([a, b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z.T / tau
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        denom = sum(math.exp(s[i, k]) for k in range(2 * n) if k != i)
        total += -(s[i, partner] - math.log(denom))
    return total / (2 * n)


def test_info_nce_matches_a_hand_computation_on_3x3():
    a = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.5]])
    b = np.array([[0.9, 0.1], [0.5, 1.0], [-0.7, 0.2]])
    ta, tb = torch.tensor(a), torch.tensor(b)
    for tau in (0.5, 0.1):
        # computed in float32: agreement to float32 rounding
        clip, ntxent = info_nce(ta, tb, tau, "clip"), info_nce(ta, tb, tau, "ntxent")
        assert float(clip) == pytest.approx(_hand_clip(a, b, tau), rel=1e-5, abs=1e-6)
        assert float(ntxent) == pytest.approx(_hand_ntxent(a, b, tau), rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(ta, tb, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        info_nce(ta[:1], tb[:1])


def test_info_nce_is_lower_for_aligned_than_for_shuffled_pairs():
    g = torch.Generator().manual_seed(0)
    za = torch.randn(32, 16, generator=g)
    zb = za + 0.1 * torch.randn(32, 16, generator=g)
    shuffled = zb[torch.randperm(32, generator=g)]
    for form in ("clip", "ntxent"):
        assert float(info_nce(za, zb, 0.5, form)) < float(info_nce(za, shuffled, 0.5, form))


def test_retrieval_accuracy():
    z = torch.eye(6)
    assert float(retrieval_accuracy(z, z)["top1"]) == 1.0
    rolled = torch.roll(z, 1, dims=0)  # every positive is orthogonal: tied with four others
    acc = retrieval_accuracy(z, rolled, (1, 5))
    assert float(acc["top1"]) == 0.0
    assert float(acc["top5"]) == 0.0  # ties count against the positive: rank 5 of 6
    collapsed = torch.ones(6, 4)
    assert float(retrieval_accuracy(collapsed, collapsed)["top1"]) == 0.0
    half = z.clone()
    half[3:] = torch.roll(z[3:], 1, dims=0)  # rows 3-5 point at the wrong candidate
    near = half + 0.0
    assert float(retrieval_accuracy(z, near)["top1"]) == pytest.approx(0.5)


# -- pre-training and fine-tuning ----------------------------------------------------------------


def test_pretraining_reduces_the_contrastive_loss(sets):
    lab, unl = sets
    est = _est(unl, pretrain_epochs=4, min_epochs=4, epochs=1).fit(lab)
    h = est.pretrain_history_
    assert h.task == "contrastive" and len(h.epoch) == 4
    assert h.train_loss[-1] < h.train_loss[0]
    assert min(h.val_loss) < h.val_loss[0]
    assert h.metrics["val_top1"][-1] > 1 / 16  # better than chance among 16 candidates
    assert set(h.metrics) == {"train_top1", "train_top5", "val_top1", "val_top5"}
    assert all(len(v) == 4 for v in h.metrics.values())


def test_finetuning_starts_from_the_pretrained_weights(sets, monkeypatch):
    lab, unl = sets
    starts: dict[str, dict[str, torch.Tensor]] = {}
    real = base.train_fit

    def spy(module, *args, run_key=None, **kwargs):
        starts[run_key["stage"]] = {k: v.clone() for k, v in module.state_dict().items()}
        return real(module, *args, run_key=run_key, **kwargs)

    monkeypatch.setattr(base, "train_fit", spy)
    est = _est(unl).fit(lab)
    pre = est.pretrained_state_
    start = starts["finetune"]
    assert pre and all(torch.equal(start[k], v) for k, v in pre.items())
    assert sorted(pre) == est.init_weights_loaded_
    assert any(k.startswith("head.") for k in start) and not any(k.startswith("head.") for k in pre)
    # the weights moved away from the pre-trained ones during fine-tuning
    after = est.module_.state_dict()
    assert any(not torch.equal(after[k].cpu(), v) for k, v in pre.items())


def test_pretraining_is_reused_across_label_fractions(sets, tmp_path, monkeypatch):
    lab, unl = sets
    epochs = _stage_spy(monkeypatch)
    fits = [_est(unl, label_fraction=f, checkpoint_dir=tmp_path).fit(lab) for f in (0.5, 1.0)]
    pre_epochs = [e for stage, e in epochs if stage == "pretrain"]
    assert pre_epochs == [1, 2, 3]  # trained once, by the first fit
    assert [e for stage, e in epochs if stage == "finetune"] == [1, 2, 3, 1, 2, 3]
    first, second = fits
    assert not first.pretrain_restored_ and second.pretrain_restored_
    assert first.pretrain_checkpoint_key(lab) == second.pretrain_checkpoint_key(lab)
    assert first.checkpoint_key(lab) != second.checkpoint_key(lab)
    assert first.pretrain_checkpoint_path_ == second.pretrain_checkpoint_path_
    assert second.pretrain_history_.resumed_from == 3
    a, b = first.pretrained_state_, second.pretrained_state_
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.label_rows_.size == 50 and second.label_rows_.size == 100
    assert np.isin(first.label_rows_, second.label_rows_).all()  # nested subsets
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("SSLSoilNetPretrain-")]
    assert len(folders) == 1
    # a fine-tuning-only change keeps the key; a pre-training change does not
    assert _est(unl, epochs=9).pretrain_checkpoint_key(lab) == first.pretrain_checkpoint_key(lab)
    assert _est(unl, temperature=0.2).pretrain_checkpoint_key(lab) != (
        first.pretrain_checkpoint_key(lab)
    )


def test_pretraining_is_kept_in_memory_without_checkpoints(sets, monkeypatch):
    lab, unl = sets
    epochs = _stage_spy(monkeypatch)
    _est(unl).fit(lab)
    again = _est(unl, label_fraction=0.5).fit(lab)
    assert [e for stage, e in epochs if stage == "pretrain"] == [1, 2, 3]
    assert again.pretrain_restored_


def test_leakage_rule_drops_the_unlabelled_rows_of_held_out_blocks(sets, monkeypatch):
    lab, unl = sets
    train = lab.isel(sample=np.flatnonzero(np.isin(lab["group"].values, ["b0", "b1", "b2", "b3"])))
    rows = pretrain_rows(unl, train)
    groups = unl["group"].values[rows]
    assert set(groups) <= {"b0", "b1", "b2", "b3"}
    assert rows.size == int(np.isin(unl["group"].values, ["b0", "b1", "b2", "b3"]).sum())
    seen: list[int] = []
    real = base.train_fit

    def spy(module, train_tensors, *args, run_key=None, **kwargs):
        if run_key["stage"] == "pretrain":
            val = args[1]
            seen.append(train_tensors[0].shape[0] + (0 if val is None else val[0].shape[0]))
        return real(module, train_tensors, *args, run_key=run_key, **kwargs)

    monkeypatch.setattr(base, "train_fit", spy)
    est = _est(unl).fit(train)
    np.testing.assert_array_equal(est.pretrain_rows_, rows)
    assert seen == [rows.size]
    # the statistics come from the allowed rows only
    allowed = unl["climate"].values[rows].astype(np.float64)
    mean = est.input_stats_["climate"][0].reshape(-1)
    np.testing.assert_allclose(mean, allowed.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)


def test_climate_only_ssl_works_without_patches(monkeypatch):
    lab, unl = _soc_sets(image=False, seed=3)
    assert "patches" not in lab.data_vars
    est = _est(unl, modalities="climate").fit(lab)
    assert est.modalities_ == ["climate"] and est.module_.image is None
    assert est.predict(lab).shape == (100,)
    assert est.embed(lab, "climate").shape == (100, 128)
    assert est.pretrain_history_.metrics["val_top1"]
    with pytest.raises(ParameterError, match="no image"):
        est.embed(lab, "image")
    with pytest.raises(ParameterError, match="modalities='climate'"):
        _est(unl).fit(lab)  # "both" needs patches the data lack


def test_parameter_errors_before_any_training(sets, monkeypatch):
    lab, unl = sets
    calls = _stage_spy(monkeypatch)
    cases = [
        (dict(pretrain_batch_size=4), "too small for contrastive"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(modalities="radar"), "modalities"),
        (dict(pretrain="byol"), "pretrain"),
        (dict(label_fraction=0.0), "label_fraction"),
        (dict(label_fraction=1.5), "label_fraction"),
        (dict(patch_size=5), "does not divide"),
        (dict(image_width=15), "divisible"),
        (dict(contrastive_loss="triplet"), "contrastive_loss"),
    ]
    for kw, match in cases:
        with pytest.raises(ParameterError, match=match):
            _est(unl, **kw).fit(lab)
    with pytest.raises(ParameterError, match="needs unlabelled"):
        _est(None).fit(lab)
    with pytest.raises(ParameterError, match="lack"):
        _est(unl.drop_vars("patches")).fit(lab)  # pre-training needs the image too
    few = unl.isel(sample=slice(0, 10))
    with pytest.raises(ParameterError, match="fewer than pretrain_batch_size"):
        _est(few).fit(lab)
    assert calls == []


def test_determinism_on_the_cpu(sets):
    lab, unl = sets
    first = _est(unl).fit(lab)
    clear_pretrain_cache()
    second = _est(unl).fit(lab)
    assert not second.pretrain_restored_
    np.testing.assert_array_equal(first.predict(lab), second.predict(lab))
    np.testing.assert_array_equal(first.embed(lab, "image"), second.embed(lab, "image"))
    assert first.pretrain_history_.val_loss == second.pretrain_history_.val_loss


def test_clone_keeps_params_and_shares_the_unlabelled_set(sets):
    _, unl = sets
    est = _est(unl, temperature=0.3, modalities="climate", label_fraction=0.25)
    twin = clone(est)
    assert twin is not est and twin.get_params().keys() == est.get_params().keys()
    for key, value in est.get_params().items():
        if key != "unlabelled":
            assert twin.get_params()[key] == value, key
    assert twin.unlabelled is est.unlabelled  # shared, not deep-copied


def test_histories_convergence_and_stage_scores(sets):
    lab, unl = sets
    est = _est(unl).fit(lab)
    stages = est.training_histories()
    assert list(stages) == ["pretrain", "finetune"]
    for h in stages.values():
        record = h.convergence()
        assert record["epochs_run"] == 3 and "reason" in record
        assert h.inner_split
    assert stages["finetune"].task == "regression" and not stages["finetune"].metrics
    frame = stages["pretrain"].to_frame()
    assert {"val_top1", "val_top5", "train_top1"} <= set(frame.columns)
    scores = est.held_out_stage_scores()["pretrain"]
    assert set(scores) == {"loss", "top1", "top5", "n", "batch"} and 0 <= scores["top1"] <= 1
    control = _est(unl, pretrain="none").fit(lab)
    assert list(control.training_histories()) == ["finetune"]
    assert control.held_out_stage_scores() == {}
    # a true same-architecture control: the same tensors, names and shapes
    a, b = est.module_.state_dict(), control.module_.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    # the control standardises its inputs with the same (unlabelled) statistics
    for name in est.input_stats_:
        np.testing.assert_array_equal(est.input_stats_[name][0], control.input_stats_[name][0])


def test_init_weights_from_a_state_dict_or_a_file(sets, tmp_path):
    lab, unl = sets
    donor = _est(unl).fit(lab)
    path = tmp_path / "encoders.pt"
    torch.save(donor.pretrained_state_, path)
    for weights in (donor.pretrained_state_, str(path)):
        est = _est(unl, pretrain="none", init_weights=weights, epochs=1, min_epochs=1)
        est.fit(lab)
        assert est.init_weights_loaded_ == sorted(donor.pretrained_state_)
    wrong = _est(unl, pretrain="none", image_width=32, init_weights=donor.pretrained_state_)
    with pytest.raises(ParameterError, match="shape mismatch"):
        wrong.fit(lab)
    with pytest.raises(ParameterError, match="no such file"):
        _est(unl, pretrain="none", init_weights=str(tmp_path / "missing.pt")).fit(lab)
    with pytest.raises(ParameterError, match="both set the starting weights"):
        _est(unl, init_weights=donor.pretrained_state_).fit(lab)
