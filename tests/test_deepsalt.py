"""DeepSalt: teacher/student transfer with the SAU and feature distillation (tiny, fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from soilbook.data.schema import SchemaError, target_values
from soilbook.errors import ParameterError
from soilbook.evaluate import Log1pTarget
from soilbook.models import deepsalt
from soilbook.models.deepsalt import (
    DeepSaltRegressor,
    SpectralAdaptationUnit,
    held_out_lab_rows,
    interpolation_matrix,
    teacher_lab_rows,
    unlabelled_rows,
    withheld_sites,
)
from soilbook.train import TrainConfig
from soilbook.train import fit as train_fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAB_WL = np.arange(400.0, 2401.0, 25.0)  # 81 lab bands
SAT_WL = np.array(
    [w for w in np.arange(420.0, 2441.0, 45.0) if not (1330 < w < 1470 or 1780 < w < 1970)]
)
TINY = dict(
    width=8,
    depth=2,
    heads=2,
    n_tokens=6,
    n_basis=3,
    layer_weights=(1.0, 0.5),
    epochs=3,
    batch_size=16,
    patience=3,
    device="cpu",
    seed=0,
    progress=False,
)


def _soil(rng: np.random.Generator, ec: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """Smooth soil spectra whose salt features scale with ec."""
    n = ec.size
    base = 0.25 + 0.1 * np.sin(wl[None] / 400.0 + rng.uniform(0, 3, (n, 1)))
    salt = 0.02 * np.log1p(ec)[:, None] * np.exp(-0.5 * ((wl[None] - 1750.0) / 120.0) ** 2)
    return base + salt + 0.003 * rng.normal(size=(n, wl.size))


def _ds(refl, wl, target, groups, sites, prefix, **coords) -> xr.Dataset:
    n = refl.shape[0]
    data = {
        "reflectance": (
            ("sample", "date", "band"),
            refl[:, None, :].astype(np.float32),
            {"units": "1", "long_name": "reflectance"},
        )
    }
    if target is not None:
        data["target"] = ("sample", target, {"units": "dS/m", "long_name": "EC"})
    rng = np.random.default_rng(n)
    return xr.Dataset(
        data,
        coords={
            "sample": [f"{prefix}{i}" for i in range(n)],
            "date": ["2024-06-01"],
            "band": [f"{prefix}b{int(w)}" for w in wl],
            "wavelength": ("band", wl),
            "group": ("sample", np.asarray(groups)),
            "site": ("sample", np.asarray(sites)),
            "lat": ("sample", rng.uniform(30, 31, n)),
            "lon": ("sample", rng.uniform(-100, -99, n)),
            **coords,
        },
        attrs={"source": "unit test", "licence": "CC0", "citation": "none", "simulated": True},
    )


def make_trio(n_paired: int = 30, n_lab_only: int = 40, n_unl: int = 40, seed: int = 0):
    """(satellite, lab, unlabelled): paired sites in regions A-C, lab-only sites in A-D."""
    rng = np.random.default_rng(seed)
    regions = np.array(["A", "B", "C"])
    p_ec = rng.lognormal(1.0, 1.0, n_paired)
    p_group = regions[np.arange(n_paired) % 3]
    p_site = np.array([f"P{i}" for i in range(n_paired)])
    p_lab = _soil(rng, p_ec, LAB_WL)
    o_ec = rng.lognormal(1.0, 1.0, n_lab_only)
    o_group = np.array(["A", "B", "C", "D"])[np.arange(n_lab_only) % 4]
    o_site = np.array([f"L{i}" for i in range(n_lab_only)])
    o_lab = _soil(rng, o_ec, LAB_WL)
    lab = _ds(
        np.concatenate([p_lab, o_lab]),
        LAB_WL,
        np.concatenate([p_ec, o_ec]),
        np.concatenate([p_group, o_group]),
        np.concatenate([p_site, o_site]),
        "lab",
        paired=("sample", np.r_[np.ones(n_paired, bool), np.zeros(n_lab_only, bool)]),
    )
    to_sat = interpolation_matrix(LAB_WL, SAT_WL)
    sat_refl = 0.8 * p_lab @ to_sat.T + 0.02 + 0.005 * rng.normal(size=(n_paired, SAT_WL.size))
    sat = _ds(sat_refl, SAT_WL, p_ec, p_group, p_site, "sat")
    u_ec = rng.lognormal(1.0, 1.0, n_unl)
    u_refl = 0.8 * _soil(rng, u_ec, LAB_WL) @ to_sat.T + 0.02
    unl = _ds(
        u_refl,
        SAT_WL,
        None,
        regions[np.arange(n_unl) % 3],
        [f"U{i}" for i in range(n_unl)],
        "sat",
    )
    return sat, lab, unl


@pytest.fixture(scope="module")
def trio():
    return make_trio()


@pytest.fixture(scope="module")
def fitted(trio):
    sat, lab, unl = trio
    return DeepSaltRegressor(lab=lab, unlabelled=unl, **TINY).fit(sat)


def test_fit_predict_shapes_and_attributes(trio, fitted):
    sat, lab, _ = trio
    pred = fitted.predict(sat)
    assert pred.shape == (sat.sizes["sample"],) and np.isfinite(pred).all()
    assert fitted.teacher_ is not None and fitted.n_paired_sites_ == 30
    assert fitted.n_unlabelled_ == 40
    assert fitted.history_.epoch and fitted.teacher_history_.epoch
    assert fitted.predict_teacher(lab).shape == (lab.sizes["sample"],)
    f_s = fitted.features(sat, which="student")
    f_t = fitted.features(lab, which="teacher")
    assert f_s.shape == (30, 8) and f_t.shape == (70, 8)
    sau = fitted.sau_
    assert sau["gain"].dims == ("wavelength",) and sau["gain"].size == LAB_WL.size
    np.testing.assert_allclose(sau["wavelength"].values, LAB_WL)


def test_clone_keeps_params(trio):
    _sat, lab, unl = trio
    est = DeepSaltRegressor(lab=lab, unlabelled=unl, variant="no_sau", alpha=0.2, **TINY)
    twin = clone(est)
    params = twin.get_params()
    # scikit-learn deep-copies non-estimator parameters: equal data, not the same object
    assert params["lab"].identical(lab) and params["unlabelled"].identical(unl)
    assert params["variant"] == "no_sau" and params["alpha"] == 0.2 and params["epochs"] == 3
    assert not hasattr(twin, "module_")


def test_leakage_rule_and_spy(trio, monkeypatch):
    sat, lab, _ = trio
    # train on regions A and B only, and drop some paired sites (a "test fold")
    keep = np.isin(sat["group"].values, ["A", "B"]) & ~np.isin(sat["site"].values, ["P0", "P1"])
    train = sat.isel(sample=np.flatnonzero(keep))
    seen: list[set] = []
    original = DeepSaltRegressor._fit_teacher

    def spy(self, lab_train, config):
        seen.append(set(lab_train["site"].values.astype(str)))
        return original(self, lab_train, config)

    monkeypatch.setattr(DeepSaltRegressor, "_fit_teacher", spy)
    DeepSaltRegressor(lab=lab, **TINY).fit(train)
    assert len(seen) == 1
    sites = seen[0]
    test_sites = set(sat["site"].values[~keep].astype(str))  # P0, P1 and region C
    assert not sites & test_sites
    groups = dict(zip(lab["site"].values.astype(str), lab["group"].values.astype(str), strict=True))
    assert {groups[s] for s in sites} <= {"A", "B"}  # no lab-only site of C or D
    assert set(train["site"].values.astype(str)) <= sites  # the paired training sites are used
    rows = teacher_lab_rows(lab, train)
    assert set(lab["site"].values[rows].astype(str)) == sites


def test_distillation_gradient_reaches_student_and_sau(trio):
    sat, lab, _ = trio
    est = DeepSaltRegressor(lab=lab, **{**TINY, "epochs": 1}).fit(sat)
    module = est.module_.train()
    tensors = [t for t in est.to_tensors(sat)]
    est._teacher_pooled = None
    # rebuild the auxiliary teacher tensors as fit does
    lab_z = deepsalt._zscore(deepsalt._spectra(lab, "lab"), est.lab_stats_)
    site_row = {s: i for i, s in enumerate(lab["site"].values.astype(str))}
    paired = np.stack([lab_z[site_row[s]] for s in sat["site"].values.astype(str)])
    aux = [est._teacher_features(paired), torch.ones(sat.sizes["sample"])]
    pure_distill = clone(est).set_params(alpha=0.0)._make_loss(None)
    module.zero_grad()
    pure_distill(module, tensors + aux, torch.zeros(sat.sizes["sample"])).backward()
    enc_grad = sum(
        float(p.grad.abs().sum()) for p in module.encoder.parameters() if p.grad is not None
    )
    sau_grad = sum(float(p.grad.abs().sum()) for p in module.sau.parameters() if p.grad is not None)
    assert enc_grad > 0 and sau_grad > 0
    assert float(module.sau.log_gain.grad.abs().sum()) > 0

    # and the trained weights differ from a beta = 0 run with the same seed
    est0 = DeepSaltRegressor(lab=lab, beta=0.0, **{**TINY, "epochs": 1}).fit(sat)
    assert est0.teacher_ is None
    a = est.module_.state_dict()
    b = est0.module_.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_sau_identity_at_init_and_moves_after_training(fitted):
    rng = np.random.default_rng(1)
    interp = interpolation_matrix(SAT_WL, LAB_WL)
    np.testing.assert_allclose(interp.sum(axis=1), 1.0)
    stats = (
        rng.uniform(0.1, 0.3, (1, SAT_WL.size)).astype(np.float32),
        np.full((1, SAT_WL.size), 0.1, np.float32),
    )
    sau = SpectralAdaptationUnit(interp, stats, LAB_WL, n_basis=4)
    z = torch.randn(5, SAT_WL.size)
    torch.testing.assert_close(sau(z), sau.interpolate(z))
    raw = (z * 0.1 + torch.from_numpy(stats[0])).numpy()
    np.testing.assert_allclose(sau.interpolate(z).numpy(), raw @ interp.T, rtol=1e-5, atol=1e-6)
    gain = fitted.sau_["gain"].values
    offset = fitted.sau_["offset"].values
    assert not np.allclose(gain, 1.0) and not np.allclose(offset, 0.0)


def test_teacher_features_of_pixels_before_and_after_the_sau(trio, fitted):
    sat, lab, _ = trio
    after = fitted.teacher_features_of_pixels(sat)
    before = fitted.teacher_features_of_pixels(sat, adapted=False)
    assert after.shape == before.shape == (sat.sizes["sample"], TINY["width"])
    assert np.isfinite(after).all() and not np.allclose(after, before)  # the SAU has moved
    assert fitted.features(lab, which="teacher").shape[1] == after.shape[1]
    alone = DeepSaltRegressor(variant="satellite_only", **TINY).fit(sat)
    with pytest.raises(ValueError, match="no teacher"):
        alone.teacher_features_of_pixels(sat)


@pytest.mark.parametrize("variant", ["no_sau", "no_distillation", "satellite_only"])
def test_variants_run(trio, variant):
    sat, lab, _ = trio
    est = DeepSaltRegressor(lab=lab, variant=variant, **TINY).fit(sat)
    assert est.predict(sat).shape == (30,)
    assert (est.teacher_ is not None) == (variant == "no_sau")
    if variant == "satellite_only":
        assert est.module_.sau is None
    if variant == "no_sau":
        assert not est.module_.sau.learn
        with pytest.raises(AttributeError):
            _ = est.sau_


def test_no_distillation_runs_without_lab(trio):
    sat, _, _ = trio
    est = DeepSaltRegressor(variant="no_distillation", **TINY).fit(sat)
    np.testing.assert_allclose(est.lab_wavelength_, SAT_WL)
    assert np.isfinite(est.predict(sat)).all()


def test_deterministic_on_cpu(trio):
    sat, lab, unl = trio
    a = DeepSaltRegressor(lab=lab, unlabelled=unl, **TINY).fit(sat).predict(sat)
    b = DeepSaltRegressor(lab=lab, unlabelled=unl, **TINY).fit(sat).predict(sat)
    np.testing.assert_array_equal(a, b)


def test_band_attributions(trio, fitted):
    sat, lab, _ = trio
    att = fitted.band_attributions(sat.isel(sample=slice(0, 4)), steps=16)
    assert att.dims == ("sample", "wavelength") and att.shape == (4, SAT_WL.size)
    np.testing.assert_allclose(att["wavelength"].values, SAT_WL)
    # completeness: attributions sum to f(x) - f(baseline) (baseline: the training mean)
    base = sat.isel(sample=[0]).copy(deep=True)
    mean = fitted.input_stats_["spectra"][0][0]
    base["reflectance"].values[0, 0, :] = mean
    fitted.module_.eval()
    gap = fitted.predict(sat.isel(sample=slice(0, 4))) - fitted.predict(base)[0]
    np.testing.assert_allclose(
        att.sum("wavelength").values, gap, atol=0.05 * np.abs(gap).max() + 1e-3
    )
    t_att = fitted.band_attributions(lab.isel(sample=slice(0, 3)), which="teacher", steps=4)
    assert t_att.shape == (3, LAB_WL.size)


def test_errors_before_training(trio):
    sat, lab, _ = trio
    with pytest.raises(ParameterError, match="needs the lab set"):
        DeepSaltRegressor(**TINY).fit(sat)
    with pytest.raises(ParameterError, match="layer_weights"):
        DeepSaltRegressor(lab=lab, **{**TINY, "layer_weights": (1.0, 1.0, 1.0)}).fit(sat)
    with pytest.raises(ParameterError, match="variant"):
        DeepSaltRegressor(lab=lab, variant="bogus", **TINY).fit(sat)
    few = sat.isel(sample=np.arange(6))
    with pytest.raises(ValueError, match="at least 10"):
        DeepSaltRegressor(lab=lab, **TINY).fit(few)
    with pytest.raises(SchemaError, match="wavelength"):
        DeepSaltRegressor(lab=lab, **TINY).fit(sat.drop_vars("wavelength"))
    est = DeepSaltRegressor(variant="satellite_only", **TINY).fit(sat)
    with pytest.raises(SchemaError, match="band"):
        est.predict(sat.isel(band=slice(0, 10)))
    refl = xr.concat(
        [sat["reflectance"], sat["reflectance"].assign_coords(date=["2024-07-01"])], dim="date"
    )
    two_dates = sat.drop_vars("reflectance").drop_dims("date").assign(reflectance=refl)
    with pytest.raises(SchemaError, match="dates"):
        DeepSaltRegressor(variant="satellite_only", **TINY).fit(two_dates)


def test_train_fit_train_loss_hook():
    """The extension point of soilbook.train.fit: a custom training loss is used."""
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    y = x.sum(1)
    calls = []

    def loss(module, batch, target):
        calls.append(len(batch))
        return 3.0 * torch.nn.functional.mse_loss(module(*batch).reshape(-1), target)

    module = torch.nn.Linear(3, 1)
    cfg = TrainConfig(epochs=2, batch_size=10, device="cpu", progress=False, scheduler="none")
    hist = train_fit(module, [x], y, config=cfg, train_loss_fn=loss)
    assert len(calls) == 8 and calls[0] == 1
    module2 = torch.nn.Linear(3, 1)
    module2.load_state_dict({k: torch.zeros_like(v) for k, v in module.state_dict().items()})
    hist_default = train_fit(torch.nn.Linear(3, 1), [x], y, config=cfg)
    assert hist.train_loss[0] > hist_default.train_loss[0] * 1.5  # the tripled loss is recorded


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_interrupted_fit_resumes_teacher_and_student(trio, tmp_path, monkeypatch, stage):
    """Ctrl-C during the teacher's or the student's training; the re-run resumes both from
    checkpoint_dir/<key>/ and predicts exactly as an uninterrupted fit (CPU)."""
    from soilbook.models import base

    sat, lab, unl = trio
    settings = {**TINY, "epochs": 4, "patience": 10}
    reference = DeepSaltRegressor(lab=lab, unlabelled=unl, **settings).fit(sat)
    real = base.train_fit

    def interrupted(*args, run_key=None, **kwargs):
        def stop(epoch, history):
            if epoch == 2 and run_key["stage"] == stage:
                raise KeyboardInterrupt

        return real(*args, run_key=run_key, callback=stop, **kwargs)

    est = DeepSaltRegressor(lab=lab, unlabelled=unl, **settings, checkpoint_dir=tmp_path)
    with monkeypatch.context() as m:
        m.setattr(base, "train_fit", interrupted)
        with pytest.raises(KeyboardInterrupt):
            clone(est).fit(sat)
    resumed = clone(est).fit(sat)
    student_from = 2 if stage == "student" else 0
    teacher_from = 2 if stage == "teacher" else 4  # a finished teacher is restored, not retrained
    assert resumed.teacher_history_.resumed_from == teacher_from
    assert resumed.history_.resumed_from == student_from
    np.testing.assert_array_equal(resumed.predict(sat), reference.predict(sat))
    # the student's folder and the teacher's own (variant-independent) folder, one run each
    folders = set(tmp_path.iterdir())
    assert folders == {resumed.checkpoint_path_, resumed.teacher_checkpoint_path_}
    assert resumed.teacher_checkpoint_path_.name.startswith("DeepSaltTeacher-")
    for folder in folders:
        assert len(list(folder.glob("*.pt"))) == 1
    # another lab set (same shapes, other values) is another fit: another folder
    lab2 = lab.copy(deep=True)
    lab2["target"].values[0] += 1.0
    assert clone(est).set_params(lab=lab2).checkpoint_key(sat) != est.checkpoint_key(sat)


# -- one target transform, histories, teacher skill --------------------------------------------


def test_lab_target_transform_log1p(trio):
    sat, lab, _ = trio
    est = DeepSaltRegressor(lab=lab, lab_target_transform="log1p", **TINY).fit(sat)
    y_lab = target_values(lab.isel(sample=teacher_lab_rows(lab, sat)))
    assert est.teacher_target_mean_ == pytest.approx(np.log1p(y_lab).mean())
    assert est.teacher_target_scale_ == pytest.approx(np.log1p(y_lab).std())
    plain = DeepSaltRegressor(lab=lab, **TINY).fit(sat)
    assert plain.teacher_target_mean_ == pytest.approx(y_lab.mean())
    # predict_teacher answers in the original units: expm1 of the log-scale output
    scaled = est._predict_teacher_scaled(lab)
    np.testing.assert_allclose(est.predict_teacher(lab), np.expm1(scaled))
    assert est.teacher_target_units_ == "log1p(dS/m)"
    with pytest.raises(ParameterError, match="lab_target_transform"):
        DeepSaltRegressor(lab=lab, lab_target_transform="log", **TINY).fit(sat)
    # Log1pTarget sets it on its clone: both domains learn log1p(EC)
    wrapped = Log1pTarget(DeepSaltRegressor(lab=lab, **TINY)).fit(sat)
    assert wrapped.estimator_.lab_target_transform == "log1p"
    assert wrapped.estimator.lab_target_transform == "none"


def test_training_histories(trio, fitted):
    sat, _, _ = trio
    hist = fitted.training_histories()
    assert list(hist) == ["teacher", "student"]
    assert hist["teacher"] is fitted.teacher_history_ and hist["student"] is fitted.history_
    alone = DeepSaltRegressor(variant="satellite_only", **TINY).fit(sat)
    assert list(alone.training_histories()) == ["student"]


def test_teacher_scores_on_held_out_lab_rows(trio):
    sat, lab, _ = trio
    train = sat.isel(sample=np.flatnonzero(sat["group"].values != "C"))
    est = DeepSaltRegressor(lab=lab, **TINY).fit(train)
    held = lab.isel(sample=np.flatnonzero(lab["group"].values == "C"))
    scores = est.teacher_scores(held)
    assert {"rmse", "r2", "mae", "bias", "ccc", "rpiq", "n"} <= set(scores)
    assert scores["n"] == held.sizes["sample"] and scores["n_excluded_seen"] == 0
    # rows of sites the teacher saw are left out unless asked for
    mixed = lab.isel(sample=np.flatnonzero(np.isin(lab["group"].values, ["A", "C"])))
    part = est.teacher_scores(mixed)
    assert part["n"] == held.sizes["sample"] and part["n_excluded_seen"] > 0
    assert est.teacher_scores(mixed, include_seen=True)["n"] == mixed.sizes["sample"]
    seen = lab.isel(sample=np.flatnonzero(lab["group"].values == "A"))
    with pytest.raises(ValueError, match="trained on"):
        est.teacher_scores(seen)
    alone = DeepSaltRegressor(variant="satellite_only", **TINY).fit(sat)
    with pytest.raises(ValueError, match="no teacher"):
        alone.teacher_scores(held)
    # the same scores, every fit, for cross_validate's stage_scores
    assert est.held_out_stage_scores() == {"teacher": scores}
    assert alone.held_out_stage_scores() == {}


def test_held_out_lab_rows_are_the_test_sites_and_held_out_regions(trio):
    sat, lab, _ = trio
    group, site = lab["group"].values, lab["site"].values
    train = sat.isel(sample=np.flatnonzero(sat["group"].values != "C"))
    rows = held_out_lab_rows(lab, train)
    np.testing.assert_array_equal(rows, np.flatnonzero(group == "C"))  # lab-only C rows too
    assert not np.isin(rows, teacher_lab_rows(lab, train, 0.0)).any()
    # a random fold: only the test sites' own rows (their groups are in training)
    test_sites = sat["site"].values[:5]
    fold = sat.isel(sample=np.arange(5, sat.sizes["sample"]))
    np.testing.assert_array_equal(
        held_out_lab_rows(lab, fold), np.flatnonzero(np.isin(site, test_sites))
    )
    assert held_out_lab_rows(lab, sat).size == 0  # nothing withheld


# -- random-CV leakage through unlabelled pixels -----------------------------------------------


def _unlabelled_with_test_site(sat, lab, unl):
    """The trio's unlabelled set plus pixels of test site P0, an off-site pixel at P0's lab
    location, and a pixel of training site P5."""
    lab_pos = {s: i for i, s in enumerate(lab["site"].values.astype(str))}
    extra = unl.isel(sample=[0, 1, 2, 3]).copy(deep=True)
    p0, p5 = lab_pos["P0"], lab_pos["P5"]
    group_of = dict(
        zip(lab["site"].values.astype(str), lab["group"].values.astype(str), strict=True)
    )
    extra = extra.assign_coords(
        sample=["x0", "x1", "x2", "x3"],
        site=("sample", ["P0", "P0", "", "P5"]),
        group=("sample", [group_of["P0"]] * 3 + [group_of["P5"]]),
        lat=("sample", [lab["lat"].values[p0]] * 3 + [lab["lat"].values[p5]]),
        lon=("sample", [lab["lon"].values[p0]] * 3 + [lab["lon"].values[p5]]),
    )
    return xr.concat([unl, extra], dim="sample")


def test_unlabelled_pixels_of_test_sites_are_never_used(trio):
    sat, lab, unl = trio
    unl2 = _unlabelled_with_test_site(sat, lab, unl)
    keep = ~np.isin(sat["site"].values, ["P0", "P1"])  # a random-CV fold: P0, P1 are test sites
    train = sat.isel(sample=np.flatnonzero(keep))
    assert set(withheld_sites(train, lab)) == {"P0", "P1"}
    rows = unlabelled_rows(unl2, train, lab)
    used = set(unl2["sample"].values[rows].astype(str))
    assert not used & {"x0", "x1", "x2"}  # P0's pixels and the pixel at P0's location
    assert "x3" in used and len(used) == unl.sizes["sample"] + 1
    # without the distance rule the off-site pixel at P0 passes, P0's own pixels never do
    rows0 = set(unl2["sample"].values[unlabelled_rows(unl2, train, lab, buffer_m=0)])
    assert "x2" in rows0 and not rows0 & {"x0", "x1"}
    # without `paired` and `origin`: only training sites' and off-site pixels
    rows_unknown = unlabelled_rows(unl2, train, lab.drop_vars("paired"), buffer_m=0)
    kept_sites = set(unl2["site"].values[rows_unknown].astype(str))
    assert kept_sites <= set(train["site"].values.astype(str)) | {""}
    # the estimator uses exactly these rows
    est = DeepSaltRegressor(lab=lab, unlabelled=unl2, **TINY).fit(train)
    np.testing.assert_array_equal(est.unlabelled_rows_, rows)
    assert est.n_unlabelled_ == rows.size


def test_lab_only_rows_next_to_a_test_site_are_not_used(trio):
    sat, lab, _ = trio
    lab2 = lab.copy(deep=True)
    sites = lab2["site"].values.astype(str)
    p0, l3 = int(np.flatnonzero(sites == "P0")[0]), int(np.flatnonzero(sites == "L3")[0])
    lab2["lat"].values[l3] = lab2["lat"].values[p0]  # L3 sits at P0's location
    lab2["lon"].values[l3] = lab2["lon"].values[p0]
    lab2["group"].values[l3] = lab2["group"].values[p0]
    train = sat.isel(sample=np.flatnonzero(sat["site"].values != "P0"))
    assert "L3" not in set(sites[teacher_lab_rows(lab2, train)])
    assert "L3" in set(sites[teacher_lab_rows(lab2, train, buffer_m=0)])
    assert "L3" in set(sites[teacher_lab_rows(lab2, sat)])  # nothing withheld


def test_unlabelled_pixels_need_no_covariates(trio):
    """The student's ancillary covariates are used; the alignment reads the encoder only."""
    sat, lab, unl = trio
    rng = np.random.default_rng(3)
    cov = np.c_[rng.uniform(5, 60, 30), rng.uniform(5, 50, 30), rng.uniform(10, 30, 30)]
    attrs = {"units": "mixed", "long_name": "ancillary covariates"}
    sat_cov = sat.assign(
        covariates=(("sample", "feature"), cov.astype(np.float32), attrs)
    ).assign_coords(
        feature=["sand", "clay", "t_mean"], feature_group=("feature", ["soil", "soil", "climate"])
    )
    est = DeepSaltRegressor(lab=lab, unlabelled=unl, **TINY).fit(sat_cov)
    assert est.covariate_names_ == ["sand", "clay", "t_mean"]
    assert est.module_.n_covariates == 3 and est.n_unlabelled_ == 40
    assert est.input_groups()["covariates"] == ["soil", "soil", "climate"]
    off = DeepSaltRegressor(lab=lab, use_covariates=False, **TINY).fit(sat_cov)
    assert off.covariate_names_ == [] and off.module_.n_covariates == 0


# -- one teacher for the variants that share it ------------------------------------------------


def test_variants_share_the_teacher_checkpoint(trio, tmp_path, monkeypatch):
    from soilbook.models import base

    sat, lab, unl = trio
    settings = {**TINY, "epochs": 4, "patience": 10, "checkpoint_dir": tmp_path}
    full = DeepSaltRegressor(lab=lab, unlabelled=unl, variant="full", **settings)
    no_sau = DeepSaltRegressor(lab=lab, unlabelled=unl, variant="no_sau", alpha=0.3, **settings)
    assert full.teacher_checkpoint_key(sat) == no_sau.teacher_checkpoint_key(sat)
    assert full.checkpoint_key(sat) != no_sau.checkpoint_key(sat)
    for changed in ({"lab_target_transform": "log1p"}, {"dropout": 0.2}, {"seed": 1}):
        assert clone(full).set_params(**changed).teacher_checkpoint_key(sat) != (
            full.teacher_checkpoint_key(sat)
        )
    epochs_trained: list[tuple[str, int]] = []
    real = base.train_fit

    def counting(*args, run_key=None, **kwargs):
        def count(epoch, history):
            epochs_trained.append((run_key["stage"], epoch))

        return real(*args, run_key=run_key, callback=count, **kwargs)

    monkeypatch.setattr(base, "train_fit", counting)
    full.fit(sat)
    no_sau.fit(sat)
    teacher_epochs = [e for stage, e in epochs_trained if stage == "teacher"]
    assert teacher_epochs == [1, 2, 3, 4]  # trained once, by the first variant
    assert no_sau.teacher_history_.resumed_from == 4
    assert full.teacher_checkpoint_path_ == no_sau.teacher_checkpoint_path_
    assert full.teacher_checkpoint_path_.name == full.teacher_checkpoint_key(sat)
    a, b = full.teacher_.state_dict(), no_sau.teacher_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(full.predict_teacher(lab), no_sau.predict_teacher(lab))
    teachers = [p for p in tmp_path.iterdir() if p.name.startswith("DeepSaltTeacher-")]
    assert len(teachers) == 1
