"""The shared training loop: devices, seeds, determinism, early stopping, checkpoints, resume."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from soilbook.checkpoint import sidecar_path
from soilbook.errors import ParameterError
from soilbook.evaluate import CONVERGENCE_KEYS
from soilbook.train import (
    ContrastiveTask,
    DenseMaskedTask,
    History,
    RegressionTask,
    TrainConfig,
    TrainingDivergedError,
    _prepare_data,
    _run_fingerprint,
    fit,
    masked_mse,
    resolve_device,
    set_seed,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


class TwoInputNet(nn.Module):
    """A small two-input regression net with dropout (exercises the RNG in resume)."""

    def __init__(self, d1: int = 5, d2: int = 3):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(d1, 16), nn.GELU(), nn.Dropout(0.2))
        self.b = nn.Linear(d2, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.head(self.a(x1) + self.b(x2)).squeeze(-1)


def _data(n: int = 120, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, 5, generator=g)
    x2 = torch.randn(n, 3, generator=g)
    y = x1[:, 0] - 0.5 * x2[:, 1] + 0.1 * torch.randn(n, generator=g)
    return [x1[:90], x2[:90]], y[:90], [x1[90:], x2[90:]], y[90:]


def _net(seed: int = 0) -> nn.Module:
    set_seed(seed)
    return TwoInputNet()


def _config(tmp=None, **kw) -> TrainConfig:
    base = dict(
        epochs=8,
        batch_size=16,
        learning_rate=1e-2,
        patience=100,
        seed=3,
        device="cpu",
        progress=False,
        checkpoint_dir=tmp,
    )
    base.update(kw)
    return TrainConfig(**base)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resolve_device_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_raises_parameter_error(name):
    with pytest.raises(ParameterError, match="no CUDA device"):
        resolve_device(name)
    with pytest.raises(ParameterError):
        TrainConfig(device=name)


def test_bad_device_name_and_settings_raise():
    with pytest.raises(ParameterError, match="allowed"):
        resolve_device("tpu")
    with pytest.raises(ParameterError, match="loss"):
        TrainConfig(loss="l1")
    with pytest.raises(ParameterError, match="epochs"):
        TrainConfig(epochs=0)


def test_training_reduces_loss_and_reports_history():
    xs, y, vxs, vy = _data()
    module = _net()
    hist = fit(module, xs, y, vxs, vy, _config(epochs=15))
    assert isinstance(hist, History)
    assert len(hist.train_loss) == 15 and hist.epoch == list(range(1, 16))
    assert hist.train_loss[-1] < hist.train_loss[0] * 0.5
    assert all(math.isfinite(v) for v in hist.val_loss)
    assert hist.finished and not hist.stopped_early and hist.device == "cpu"
    assert hist.lr[-1] < hist.lr[0]  # cosine schedule decays
    assert hist["train_loss"] is hist.train_loss  # mapping access for plots
    assert list(hist.to_frame().columns) == ["train_loss", "val_loss", "lr", "seconds"]
    assert hist.samples_per_second > 0


def test_same_seed_same_result_on_cpu():
    xs, y, vxs, vy = _data()
    m1, m2 = _net(), _net()
    h1 = fit(m1, xs, y, vxs, vy, _config(loss="huber"))
    h2 = fit(m2, xs, y, vxs, vy, _config(loss="huber"))
    assert _same_state(m1, m2)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    m3 = _net()
    fit(m3, xs, y, vxs, vy, _config(loss="huber", seed=4))  # another shuffling seed
    assert not _same_state(m1, m3)


def test_early_stopping_restores_best_weights():
    xs, y, vxs, vy = _data()
    # A large learning rate and no decay make the validation loss noisy, so the last epoch is
    # (almost surely) not the best one; the returned weights must be the best epoch's.
    module = _net()
    saved = {}

    def remember(epoch, history):
        saved[epoch] = {k: v.clone() for k, v in module.state_dict().items()}

    hist = fit(
        module,
        xs,
        y,
        vxs,
        vy,
        _config(epochs=30, patience=3, min_epochs=1, learning_rate=0.3, scheduler="none"),
        callback=remember,
    )
    assert hist.best_epoch == int(np.argmin(hist.val_loss)) + 1
    assert hist.best_loss == min(hist.val_loss)
    if hist.stopped_early:
        assert len(hist.epoch) == hist.best_epoch + 3
    best = saved[hist.best_epoch]
    assert all(torch.equal(best[k], v) for k, v in module.state_dict().items())
    if hist.best_epoch != hist.epoch[-1]:
        last = saved[hist.epoch[-1]]
        assert not all(torch.equal(last[k], v) for k, v in module.state_dict().items())


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    xs, y, vxs, vy = _data()
    reference = _net()
    h_ref = fit(reference, xs, y, vxs, vy, _config(tmp_path / "ref"))

    def stop_after_3(epoch, history):
        if epoch == 3:
            raise _Interrupt

    interrupted = _net()
    with pytest.raises(_Interrupt):
        fit(interrupted, xs, y, vxs, vy, _config(tmp_path / "run"), callback=stop_after_3)
    files = list((tmp_path / "run").glob("checkpoint-*.pt"))
    assert len(files) == 1 and not list((tmp_path / "run").glob(".*tmp"))
    assert sidecar_path(files[0]).is_file()
    ckpt = torch.load(files[0], weights_only=True)  # plain tensors and values only
    assert ckpt["epoch"] == 3
    assert {"model", "optimizer", "scheduler", "rng", "best_state", "history"} <= set(ckpt)

    resumed = _net()  # a fresh process would rebuild the same initial module
    h_res = fit(resumed, xs, y, vxs, vy, _config(tmp_path / "run"))
    assert h_res.resumed_from == 3
    assert _same_state(resumed, reference)
    assert h_res.train_loss == h_ref.train_loss and h_res.val_loss == h_ref.val_loss
    assert h_res.best_epoch == h_ref.best_epoch

    # Calling fit again after the run finished returns the stored result without training.
    again = _net(seed=99)
    h_again = fit(again, xs, y, vxs, vy, _config(tmp_path / "run"))
    assert _same_state(again, reference) and h_again.finished


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    xs, y, vxs, vy = _data()
    fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=2))
    other_y = y + 1.0  # same shapes, different data
    module = _net()
    hist = fit(module, xs, other_y, vxs, vy, _config(tmp_path, epochs=2))
    assert hist.resumed_from == 0
    assert len(list(tmp_path.glob("checkpoint-*.pt"))) == 2


class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)
        self.calls = 0

    def forward(self, x1, x2):
        self.calls += 1
        out = self.lin(x1).squeeze(-1)
        return out * float("nan") if self.calls == 3 else out


def test_nan_loss_raises_training_diverged():
    xs, y, vxs, vy = _data()
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch 3.*learning_rate"):
        fit(NaNNet(), xs, y, vxs, vy, _config())


def test_nan_inputs_are_reported_before_training():
    xs, y, vxs, vy = _data()
    xs[1][4, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fit(_net(), xs, y, vxs, vy, _config())


def test_without_validation_monitors_training_loss():
    xs, y, _, _ = _data()
    hist = fit(_net(), xs, y, config=_config(epochs=4))
    assert hist.monitor == "train_loss" and hist.n_val == 0
    assert hist.best_loss == min(hist.train_loss)


def test_atomic_checkpoint_leaves_no_temporary_files(tmp_path):
    xs, y, vxs, vy = _data()
    fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=2))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and all(n.startswith("checkpoint-") for n in names)
    assert names[0].endswith(".json") and names[1].endswith(".pt")
    assert names[0][:-5] == names[1][:-3]  # the side-car sits beside its checkpoint


def test_small_cpu_fits_use_one_thread_and_restore_the_setting():
    xs, y, vxs, vy = _data()
    before = torch.get_num_threads()
    seen = []
    fit(
        _net(),
        xs,
        y,
        vxs,
        vy,
        _config(epochs=1),
        callback=lambda e, h: seen.append(torch.get_num_threads()),
    )
    assert seen == [1] and torch.get_num_threads() == before
    fit(
        _net(),
        xs,
        y,
        vxs,
        vy,
        _config(epochs=1, cpu_threads=2),
        callback=lambda e, h: seen.append(torch.get_num_threads()),
    )
    assert seen[-1] == 2 and torch.get_num_threads() == before
    with pytest.raises(ParameterError, match="cpu_threads"):
        TrainConfig(cpu_threads=0)


# -- safe checkpoints: weights_only, sha256 side-car, clear errors (soilbook.checkpoint) -------


def _finished_run(tmp_path):
    """A finished 2-epoch run with a checkpoint; returns (data, checkpoint path)."""
    data = _data()
    fit(_net(), *data, _config(tmp_path, epochs=2))
    (path,) = tmp_path.glob("checkpoint-*.pt")
    return data, path


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("forge_sidecar", [False, True])
def test_crafted_pickle_at_the_checkpoint_path_is_not_executed(tmp_path, forge_sidecar):
    import hashlib
    import json
    import pickle

    from soilbook.errors import CheckpointError, ChecksumError

    data, path = _finished_run(tmp_path / "ckpt")
    # the payload is live: plain unpickling would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()

    marker = tmp_path / "marker"
    torch.save({"model": _Payload(marker)}, path)  # a crafted "checkpoint" at the run's path
    if forge_sidecar:  # an attacker who rewrites the side-car too: weights_only still refuses
        side = sidecar_path(path)
        info = json.loads(side.read_text())
        info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        side.write_text(json.dumps(info))
        expected, words = CheckpointError, "weights_only=True"
    else:
        expected, words = ChecksumError, "does not match the sha256"
    with pytest.raises(expected, match=words) as err:
        fit(_net(), *data, _config(tmp_path / "ckpt", epochs=2))
    assert not marker.exists()
    message = str(err.value)
    assert path.name in message and "delete" in message and "from scratch" in message


def test_flipped_byte_is_detected_not_resumed(tmp_path):
    from soilbook.errors import ChecksumError

    data, path = _finished_run(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"changed or\s+damaged") as err:
        fit(_net(), *data, _config(tmp_path, epochs=2))
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_checkpoint_without_sidecar_is_refused(tmp_path):
    from soilbook.errors import CheckpointError

    data, path = _finished_run(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match="no checksum file"):
        fit(_net(), *data, _config(tmp_path, epochs=2))
    path.unlink()  # deleting the checkpoint, as the message says, retrains
    hist = fit(_net(), *data, _config(tmp_path, epochs=2))
    assert hist.resumed_from == 0 and hist.finished


def test_kill_between_sidecar_and_checkpoint_rename_still_resumes(tmp_path, monkeypatch):
    import soilbook.checkpoint as ck

    path = tmp_path / "checkpoint-x.pt"
    first = ck.save_checkpoint({"epoch": 1}, path)
    real_replace = os.replace

    def interrupted(src, dst):
        if str(dst).endswith(".pt"):
            raise KeyboardInterrupt  # after the side-car was committed
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint({"epoch": 2}, path, previous_sha256=first)
    monkeypatch.undo()
    payload, digest = ck.load_checkpoint(path)  # the previous epoch's file still verifies
    assert payload["epoch"] == 1 and digest == first
    assert not list(tmp_path.glob(".*tmp"))


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    import random

    import soilbook.checkpoint as ck

    gen = torch.Generator().manual_seed(5)
    set_seed(11)
    random.gauss(0, 1)  # a cached gaussian in Python's state
    np.random.normal()  # noqa: NPY002
    ck.save_checkpoint({"rng": ck.capture_rng(gen)}, tmp_path / "c.pt")
    expected = (random.random(), np.random.random(), torch.rand(1), torch.rand(1, generator=gen))  # noqa: NPY002
    set_seed(999)
    gen2 = torch.Generator()
    payload, _ = ck.load_checkpoint(tmp_path / "c.pt")
    ck.restore_rng(payload["rng"], gen2)
    got = (random.random(), np.random.random(), torch.rand(1), torch.rand(1, generator=gen2))  # noqa: NPY002
    assert got[:2] == expected[:2]
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


def test_safe_payload_refuses_arbitrary_objects():
    from soilbook.checkpoint import plain
    from soilbook.errors import CheckpointError

    out = plain({"a": np.float64(1.5), "b": (np.int64(2), [np.arange(3)])})
    assert type(out["a"]) is float and type(out["b"][0]) is int
    assert torch.equal(out["b"][1][0], torch.arange(3))
    with pytest.raises(CheckpointError, match=r"checkpoint\['x'\] holds a object"):
        plain({"x": object()})


# -- min_epochs, the fixed schedule and the convergence record ----------------------------------


def test_min_epochs_delays_early_stopping_and_is_clipped():
    xs, y, vxs, vy = _data()
    noisy = dict(epochs=12, patience=1, learning_rate=0.3, scheduler="none")
    early = fit(_net(), xs, y, vxs, vy, _config(min_epochs=1, **noisy))
    late = fit(_net(), xs, y, vxs, vy, _config(min_epochs=8, **noisy))
    assert early.stopped_early and len(early.epoch) < 8  # patience 1 on a noisy loss
    assert len(late.epoch) >= 8 and late.min_epochs == 8 and late.patience == 1
    assert late.best_epoch == int(np.argmin(late.val_loss)) + 1
    assert TrainConfig(epochs=4, min_epochs=10).min_epochs == 4
    assert TrainConfig(min_epochs=5).fingerprint_fields()["min_epochs"] == 5
    with pytest.raises(ParameterError, match="min_epochs"):
        TrainConfig(min_epochs=0)


def test_runs_differing_in_min_epochs_do_not_share_a_checkpoint(tmp_path):
    xs, y, vxs, vy = _data()
    fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=2, min_epochs=1))
    hist = fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=3, min_epochs=2))
    assert hist.resumed_from == 0 and len(list(tmp_path.glob("checkpoint-*.pt"))) == 2


def test_fixed_schedule_runs_every_epoch():
    xs, y, _, _ = _data()
    hist = fit(_net(), xs, y, config=_config(epochs=6, patience=1, min_epochs=1))
    assert hist.fixed_schedule and hist.epoch == list(range(1, 7)) and not hist.stopped_early
    assert hist.best_loss == min(hist.train_loss)


def _hist(val, train=None, **kw) -> History:
    n = len(val if val is not None else train)
    train = list(train) if train is not None else [1.0 - 0.01 * i for i in range(n)]
    val = list(val) if val is not None else [float("nan")] * n
    monitored = train if kw.get("monitor") == "train_loss" else val
    defaults = dict(
        epoch=list(range(1, n + 1)),
        train_loss=train,
        val_loss=val,
        best_epoch=int(np.nanargmin(monitored)) + 1,
        best_loss=float(np.nanmin(monitored)),
        max_epochs=n,
        patience=5,
        min_epochs=1,
        finished=True,
    )
    defaults.update(kw)
    return History(**defaults)


def test_convergence_rules_on_recorded_histories():
    plateau = _hist([1.0, 0.6, 0.4, 0.35, 0.33] + [0.33 + 0.001 * (i % 3) for i in range(15)])
    rec = plateau.convergence()
    assert set(CONVERGENCE_KEYS) <= set(rec) and rec["converged"] and rec["flattened"]
    assert rec["epochs_run"] == 20 and rec["best_val_loss"] == min(plateau.val_loss)
    assert rec["schedule"] == "early stopping" and "converged" in rec["reason"]

    falling = _hist([1.0 * 0.95**i for i in range(20)])  # 5 % better every epoch to the end
    rec = falling.convergence()
    assert not rec["flattened"] and not rec["converged"] and "still falling" in rec["reason"]

    stopped = _hist([0.5, 0.4, 0.3] + [0.31] * 5, stopped_early=True, max_epochs=40)
    rec = stopped.convergence()
    assert rec["converged"] and rec["early_stopped"] and "early-stopped" in rec["reason"]

    first_best = _hist([0.5] + [0.6] * 9, stopped_early=True)  # best at epoch 1: did not learn
    rec = first_best.convergence()
    assert rec["flattened"] and not rec["converged"] and "epoch 1" in rec["reason"]

    short = _hist([0.8, 0.6])  # 2 epochs: too few to judge
    rec = short.convergence()
    assert not rec["converged"] and "too few" in rec["reason"]

    diverged = _hist([0.5, 0.4, 0.3, 0.3, 0.3], train=[1, 0.9, float("inf"), 0.8, 0.8])
    assert not diverged.convergence()["converged"]
    assert "NaN or infinite" in diverged.convergence()["reason"]

    empty = History().convergence()
    assert not empty["converged"] and empty["epochs_run"] == 0


def test_convergence_of_fixed_schedules():
    train = [1.0, 0.5, 0.3, 0.25] + [0.24 - 0.0001 * i for i in range(16)]
    flat = _hist(None, train=train, monitor="train_loss")
    rec = flat.convergence()
    assert rec["converged"] and rec["schedule"] == "fixed" and rec["final_val_loss"] is None
    assert rec["best_val_loss"] is None and "fixed schedule" in rec["reason"]
    steep = _hist(None, train=[0.9**i for i in range(20)], monitor="train_loss")
    assert not steep.convergence()["converged"]
    # a linear descent is never flat: the last quarter brings a third of the later improvement
    linear = _hist([1.0 - 0.02 * i for i in range(40)])
    assert not linear.convergence()["flattened"]


def test_convergence_of_real_runs_and_of_restored_histories(tmp_path):
    xs, y, vxs, vy = _data()
    two = fit(_net(), xs, y, vxs, vy, _config(epochs=2))
    assert not two.convergence()["converged"]  # a learnable problem, stopped after 2 epochs
    normal = fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=20, patience=5))
    rec = normal.convergence()
    assert rec["converged"], rec["reason"]
    assert rec["best_epoch"] == normal.best_epoch > 1
    assert rec["final_train_loss"] == normal.train_loss[-1]
    restored = fit(_net(), xs, y, vxs, vy, _config(tmp_path, epochs=20, patience=5))
    assert restored.finished and restored.convergence() == rec
    # an older record without the settings fields (and with an unknown key) still loads
    old = normal.to_dict()
    for name in ("max_epochs", "patience", "min_epochs", "inner_split"):
        old.pop(name)
    old["retired_field"] = 1
    again = History.from_dict(old)
    assert again.patience == 0 and again.convergence()["converged"] == rec["converged"]


def test_best_epoch_is_chosen_after_the_warm_up():
    """Epochs before min_epochs are never kept, even when their validation loss is lowest."""
    torch.manual_seed(0)
    x = torch.randn(80, 3)
    y = x[:, 0] * 2.0
    x_val = torch.randn(20, 3)
    y_val = torch.zeros(20)  # unrelated to x: the untrained network (near 0) looks best
    module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    config = TrainConfig(epochs=12, batch_size=16, patience=3, min_epochs=6, seed=0)
    history = fit(module, [x], y, [x_val], y_val, config)
    assert history.best_epoch >= 6


# -- task hooks: regression (default) and contrastive pre-training -------------------------------


class TwoViewNet(nn.Module):
    """Two small encoders of two paired inputs -> two embeddings (for ContrastiveTask)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Dropout(0.1), nn.Linear(16, 8))
        self.b = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, 8))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a(x1), self.b(x2)


def _paired(n: int = 120, seed: int = 0):
    """Two views of a shared 3-d latent: x1 (n, 5) and x2 (n, 3)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    x1 = torch.cat([z, z[:, :2] ** 2], dim=1) + 0.05 * torch.randn(n, 5, generator=g)
    x2 = z @ torch.randn(3, 3, generator=g) + 0.05 * torch.randn(n, 3, generator=g)
    return [x1[:96], x2[:96]], [x1[96:], x2[96:]]


def _two_view_net(seed: int = 0) -> nn.Module:
    set_seed(seed)
    return TwoViewNet()


def test_default_task_is_the_original_regression():
    xs, y, vxs, vy = _data()
    m1, m2 = _net(), _net()
    h1 = fit(m1, xs, y, vxs, vy, _config())
    h2 = fit(m2, xs, y, vxs, vy, _config(), task=RegressionTask())
    assert _same_state(m1, m2) and h1.train_loss == h2.train_loss
    assert h1.task == "regression" and h1.metrics == {}
    # the default task leaves the checkpoint fingerprint as it was before tasks existed
    config = _config()
    data = _prepare_data(xs, y, vxs, vy)
    cpu = torch.device("cpu")
    plain = _run_fingerprint(_net(), config, data, cpu, None)
    assert _run_fingerprint(_net(), config, data, cpu, None, RegressionTask()) == plain
    assert _run_fingerprint(_net(), config, data, cpu, None, ContrastiveTask()) != plain
    with pytest.raises(ParameterError, match="both task and train_loss_fn"):
        fit(_net(), xs, y, vxs, vy, _config(), task=RegressionTask(), train_loss_fn=lambda *a: 0)


def test_contrastive_task_trains_without_labels_and_records_retrieval():
    xs, vxs = _paired()
    module = _two_view_net()
    config = _config(epochs=12, batch_size=16, min_epochs=12)
    hist = fit(module, xs, None, vxs, None, config, task=ContrastiveTask(0.5))
    assert hist.task == "contrastive" and hist.monitor == "val_loss" and hist.n_val == 24
    assert hist.train_loss[-1] < hist.train_loss[0] and min(hist.val_loss) < hist.val_loss[0]
    assert set(hist.metrics) == {"train_top1", "train_top5", "val_top1", "val_top5"}
    assert all(len(v) == 12 for v in hist.metrics.values())
    assert hist.metrics["val_top1"][-1] > hist.metrics["val_top1"][0]
    assert all(0 <= v <= 1 for v in hist.metrics["val_top5"])
    assert {"val_top1", "train_top5"} <= set(hist.to_frame().columns)
    assert hist.convergence()["epochs_run"] == 12
    # an incomplete last mini-batch is dropped: 96 rows of 16 -> 6 steps an epoch
    assert ContrastiveTask().steps_per_epoch(100, 16) == 6
    assert ContrastiveTask().steps_per_epoch(10, 16) == 1
    assert ContrastiveTask().validation_batches(40, 16) == [(0, 16), (16, 40)]
    with pytest.raises(ParameterError, match="temperature"):
        ContrastiveTask(temperature=0)
    with pytest.raises(ValueError, match="needs a target"):
        fit(_net(), xs, None, None, None, _config())


def test_contrastive_run_resumes_with_its_metrics(tmp_path):
    xs, vxs = _paired()
    config = dict(epochs=6, batch_size=16, min_epochs=6)
    reference = _two_view_net()
    h_ref = fit(
        reference, xs, None, vxs, None, _config(tmp_path / "ref", **config), task=ContrastiveTask()
    )

    def stop_after_2(epoch, history):
        if epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(
            _two_view_net(),
            xs,
            None,
            vxs,
            None,
            _config(tmp_path / "run", **config),
            task=ContrastiveTask(),
            callback=stop_after_2,
        )
    resumed = _two_view_net()
    h_res = fit(
        resumed, xs, None, vxs, None, _config(tmp_path / "run", **config), task=ContrastiveTask()
    )
    assert h_res.resumed_from == 2 and _same_state(resumed, reference)
    assert h_res.val_loss == h_ref.val_loss and h_res.metrics == h_ref.metrics
    # a history written before tasks existed (no task, no metrics) still loads
    old = h_ref.to_dict()
    old.pop("task")
    old.pop("metrics")
    again = History.from_dict(old)
    assert again.metrics == {} and again.task == ""


def _dense_data(n: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Images (n, 2, 8, 8) whose target map is 2·x0 − x1, labelled at a sparse random mask;
    the label under mask 0 is garbage (100)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 8, 8, generator=g)
    truth = 2 * x[:, 0] - x[:, 1]
    mask = (torch.rand(n, 8, 8, generator=g) < 0.2).float()
    label = torch.where(mask > 0, truth, torch.full_like(truth, 100.0))
    return [x, label, mask], truth


def test_masked_mse_ignores_unlabelled_pixels():
    pred = torch.zeros(2, 3, 3, requires_grad=True)
    label = torch.ones(2, 3, 3)
    mask = torch.zeros(2, 3, 3)
    mask[0, 1, 1] = 1
    label[1] = float("nan")  # under mask 0: ignored
    loss = masked_mse(pred, label, mask)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert pred.grad[0, 1, 1] != 0 and int((pred.grad != 0).sum()) == 1
    assert masked_mse(pred, label, torch.zeros_like(mask)).item() == 0.0


def test_dense_masked_task_learns_from_labelled_pixels_only():
    train, _ = _dense_data(48, 0)
    val, _ = _dense_data(16, 1)
    module = nn.Conv2d(2, 1, 1)
    config = _config(epochs=40, learning_rate=0.1)
    hist = fit(module, train, None, val, None, config, task=DenseMaskedTask())
    assert hist.task == "dense_masked" and hist.monitor == "val_loss"
    assert hist.val_loss[-1] < 0.05 * hist.val_loss[0]  # the garbage labels were not learned
    w = module.weight.detach().reshape(-1)
    assert w[0].item() == pytest.approx(2.0, abs=0.1) and w[1].item() == pytest.approx(-1, abs=0.1)
    assert hist.metrics["train_labelled_px"][0] == pytest.approx(0.2 * 64, rel=0.3)
    with pytest.raises(TypeError, match="label, mask"):
        fit(nn.Conv2d(2, 1, 1), train[:1], None, None, None, _config(), task=DenseMaskedTask())
