"""SHAP, grouped importances and attention summaries (soilbook.explain)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from factories import sample_set

from soilbook.baselines import RandomForestBaseline, SVRBaseline
from soilbook.data.schema import subset
from soilbook.evaluate import Log1pTarget
from soilbook.explain import (
    Attribution,
    _expand_groups,
    _permute,
    _resolve,
    attention_matrix,
    attention_summary,
    default_input_groups,
    gradient_shap,
    group_contributions,
    grouped_permutation_importance,
    kernel_shap,
    tree_shap,
)

pytest.importorskip("shap")


def make_ds(n: int = 160, seed: int = 0) -> xr.Dataset:
    """Sample set with reflectance, covariates and patches.

    The target depends on elevation (terrain covariate) and the terrain patch layer ``dem``
    (whose centre pixel equals the elevation covariate), a little on band B4; the two "other"
    covariates and the vegetation layer are pure noise.
    """
    rng = np.random.default_rng(seed)
    refl = rng.uniform(0.02, 0.5, (n, 2, 3))
    elev = rng.normal(size=n)
    cov = np.column_stack([elev, rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)])
    patches = rng.normal(size=(n, 2, 5, 5))
    patches[:, 0, 2, 2] = elev
    target = (
        6
        + 3 * elev
        + 0.5 * patches[:, 0].mean(axis=(1, 2))
        + 4 * refl[:, 1, 1]
        + rng.normal(0, 0.3, n)
    )
    return sample_set(
        np.abs(target),
        refl,
        cov,
        dates=["2020-05-01", "2020-08-01"],
        bands=["B3", "B4", "B8"],
        features={
            "elevation": "terrain",
            "ndvi": "vegetation",
            "noise_a": "other",
            "noise_b": "other",
        },
        patches=patches,
        layers={"dem": "terrain", "ndvi_layer": "vegetation"},
        groups=[f"g{i % 8}" for i in range(n)],
    )


# --------------------------------------------------------------------------------------------
# SHAP on tabular baselines
# --------------------------------------------------------------------------------------------


def test_tree_shap_is_additive() -> None:
    ds = make_ds()
    rf = RandomForestBaseline(n_estimators=40, seed=0).fit(subset(ds, np.arange(120)))
    test = subset(ds, np.arange(120, 160))
    att = tree_shap(rf, test)
    assert att.method == "tree" and att.units == "g/kg"
    assert att.values.shape == (40, 10) and att.data.shape == (40, 10)
    assert att.feature_names == rf.feature_names_ and att.feature_groups == rf.feature_groups_
    np.testing.assert_allclose(att.base_value + att.total(), rf.predict(test), rtol=1e-5, atol=1e-5)
    top = att.to_frame().iloc[0]
    assert top["feature"] == "elevation" and top["group"] == "terrain"
    few = tree_shap(rf, test, max_samples=7)
    assert few.values.shape == (7, 10)


def test_tree_shap_of_log1p_model_is_in_log_units() -> None:
    ds = make_ds(n=80)
    wrapped = Log1pTarget(RandomForestBaseline(n_estimators=20)).fit(ds)
    att = tree_shap(wrapped, ds)
    assert att.units == "log1p(g/kg)"
    np.testing.assert_allclose(
        np.expm1(att.base_value + att.total()), wrapped.predict(ds), rtol=1e-5
    )


def test_kernel_shap_shapes_and_additivity() -> None:
    ds = make_ds(n=90)
    train, test = subset(ds, np.arange(70)), subset(ds, np.arange(70, 90))
    svr = SVRBaseline(C_grid=(10.0,), gamma_grid=(1.0,), epsilon_grid=(0.1,)).fit(train)
    att = kernel_shap(svr, train, test, n_background_clusters=5, nsamples=150, max_samples=6)
    assert att.method == "kernel" and att.values.shape == (6, 10) and att.units == "g/kg"
    # Kernel SHAP is constrained so that base + Σ SHAP = prediction
    np.testing.assert_allclose(
        att.base_value + att.total(), svr.predict_array(att.data), rtol=1e-4, atol=1e-4
    )
    assert np.count_nonzero(att.values) > 6 * 5  # no L1 selection down to a few features
    again = kernel_shap(svr, train, test, n_background_clusters=5, nsamples=150, max_samples=6)
    np.testing.assert_allclose(again.values, att.values)  # seeded
    with pytest.raises(TypeError, match="baselines estimator"):
        kernel_shap(object(), train, test)


# --------------------------------------------------------------------------------------------
# SHAP on a network (a tiny stand-in with the NetworkRegressor contract)
# --------------------------------------------------------------------------------------------


class TinyModule(torch.nn.Module):
    """Linear in both inputs; the vegetation patch layer has zero weight."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = torch.nn.Linear(6, 1)
        self.patch_w = torch.nn.Parameter(torch.zeros(2, 5, 5))
        with torch.no_grad():
            self.spec.weight.copy_(torch.linspace(-1, 1, 6)[None])
            self.patch_w[0] = 0.2

    def forward(self, spectra: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        s = self.spec(spectra.flatten(1)).squeeze(1)
        p = (patches * self.patch_w).sum(dim=(1, 2, 3))
        return s + p  # (n,), standardised target units


class TinyNetwork:
    """What soilbook.models.base.NetworkRegressor exposes to the explainers."""

    target_mean_ = 6.0
    target_scale_ = 2.5
    input_names_ = ("spectra", "spatial")

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.module_ = TinyModule()

    def to_tensors(self, ds: xr.Dataset) -> list[torch.Tensor]:
        return [
            torch.as_tensor(ds["reflectance"].values, dtype=torch.float32),
            torch.as_tensor(ds["patches"].values, dtype=torch.float32),
        ]

    def input_groups(self, ds: xr.Dataset | None = None) -> dict:
        # one group for the whole spectrum; one per position along the channel (layer) axis
        return {"spectra": "spectral", "spatial": [str(g) for g in ds["layer_group"].values]}

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        with torch.no_grad():
            out = self.module_(*self.to_tensors(ds)).numpy()
        return out * self.target_scale_ + self.target_mean_


def test_gradient_shap_on_a_tiny_network() -> None:
    ds = make_ds(n=60)
    net = TinyNetwork()
    att = gradient_shap(
        net, subset(ds, np.arange(40)), subset(ds, np.arange(40, 60)), n_background=30, nsamples=100
    )
    assert att.method == "gradient" and att.units == "g/kg"
    assert att.feature_names == ["spectra", "spatial"]
    assert [v.shape for v in att.values] == [(20, 2, 3), (20, 2, 5, 5)]
    assert att.feature_groups[1].shape == (2, 5, 5)
    assert set(att.feature_groups[1][0].ravel()) == {"terrain"}
    assert set(att.feature_groups[1][1].ravel()) == {"vegetation"}
    assert np.all(att.values[1][:, 1] == 0)  # zero-weight layer gets no credit
    # expected gradients ≈ SHAP: base + Σ ≈ prediction (sampling noise only), in g/kg
    recon = att.base_value + att.total()
    pred = net.predict(subset(ds, np.arange(40, 60)))
    assert np.corrcoef(recon, pred)[0, 1] > 0.95
    assert np.abs(recon - pred).mean() < 0.25 * pred.std()
    groups = group_contributions(att)
    assert groups.loc[groups.group == "vegetation", "share"].item() == 0.0
    assert set(groups.group) == {"spectral", "terrain", "vegetation"}
    assert groups["share"].sum() == pytest.approx(100.0)
    assert list(groups.columns[:3]) == ["group", "n_inputs", "mean_abs"]


def test_input_group_labels_are_broadcast() -> None:
    assert _expand_groups("spectral", (2, 3), "x").shape == (2, 3)
    per_layer = _expand_groups(["terrain", "vegetation"], (2, 4, 4), "patch")
    assert set(per_layer[0].ravel()) == {"terrain"} and set(per_layer[1].ravel()) == {"vegetation"}
    full = np.array([["a", "b"], ["c", "d"]])
    assert np.array_equal(_expand_groups(full, (2, 2), "x"), full)
    with pytest.raises(ValueError, match="does not fit"):
        _expand_groups(["a", "b", "c"], (2, 4), "x")


def test_gradient_shap_needs_a_network() -> None:
    ds = make_ds(n=20)
    with pytest.raises(TypeError, match="module_"):
        gradient_shap(RandomForestBaseline(), ds, ds)


# --------------------------------------------------------------------------------------------
# group summaries
# --------------------------------------------------------------------------------------------


def test_group_contributions_by_hand() -> None:
    att = Attribution(
        values=np.array([[1.0, -1.0, 2.0], [-1.0, 1.0, 0.0]]),
        feature_names=["a1", "a2", "b1"],
        feature_groups=["terrain", "terrain", "spectral"],
        base_value=0.0,
        units="g/kg",
        method="tree",
    )
    members = group_contributions(att, how="sum_abs").set_index("group")
    assert members.loc["terrain", "mean_abs_shap"] == pytest.approx(2.0)  # 1 + 1
    assert members.loc["spectral", "mean_abs_shap"] == pytest.approx(1.0)
    assert members.loc["terrain", "share"] == pytest.approx(200 / 3)
    assert members.loc["terrain", "n_inputs"] == 2
    whole = group_contributions(att).set_index("group")  # default: the group as one player
    assert whole.loc["terrain", "mean_abs_group_shap"] == pytest.approx(0.0)  # members cancel
    assert whole.loc["spectral", "share"] == pytest.approx(100.0)
    assert group_contributions(att).attrs["units"] == "g/kg"


def test_default_groups_and_joint_permutation() -> None:
    ds = make_ds(n=30)
    groups = default_input_groups(ds)
    assert groups["spectral"] == ["reflectance"]
    assert groups["terrain"] == ["covariates:elevation", "patches:dem"]
    assert groups["other"] == ["covariates:noise_a", "covariates:noise_b"]
    assert _resolve(ds, "ndvi") == [("covariates", "feature", "ndvi")]
    assert _resolve(ds, "B4") == [("reflectance", "band", "B4")]
    with pytest.raises(KeyError, match="names no input"):
        _resolve(ds, "soil_moisture")

    perm = np.random.default_rng(0).permutation(30)
    slices = [s for m in groups["terrain"] for s in _resolve(ds, m)]
    out = _permute(ds, slices, perm)
    elev = out["covariates"].sel(feature="elevation").values
    assert np.array_equal(elev, ds["covariates"].sel(feature="elevation").values[perm])
    # the group moves jointly: the dem centre pixel still equals the elevation covariate
    assert np.array_equal(out["patches"].sel(layer="dem").values[:, 2, 2], elev)
    # everything else is untouched
    assert np.array_equal(
        out["patches"].sel(layer="ndvi_layer").values, ds["patches"].sel(layer="ndvi_layer").values
    )
    assert np.array_equal(
        out["covariates"].sel(feature="ndvi").values, ds["covariates"].sel(feature="ndvi").values
    )
    assert np.array_equal(out["target"].values, ds["target"].values)
    assert np.array_equal(out["reflectance"].values, ds["reflectance"].values)
    whole = _permute(ds, [("reflectance", None, None)], perm)
    assert np.array_equal(whole["reflectance"].values, ds["reflectance"].values[perm])


def test_grouped_permutation_importance_ranks_informative_above_noise() -> None:
    ds = make_ds(n=200)
    train, test = subset(ds, np.arange(140)), subset(ds, np.arange(140, 200))
    rf = RandomForestBaseline(n_estimators=60, seed=0).fit(train)
    imp = grouped_permutation_importance(rf, test, n_repeats=4, seed=0)
    assert imp.iloc[0]["group"] == "terrain"
    by = imp.set_index("group")
    assert by.loc["terrain", "rmse_increase"] > 5 * max(by.loc["other", "rmse_increase"], 0.05)
    assert abs(by.loc["other", "importance"]) < 0.3 * by.loc["terrain", "importance"]
    assert by.loc["terrain", "baseline"] == pytest.approx(
        np.sqrt(np.mean((rf.predict(test) - test["target"].values) ** 2))
    )
    assert imp.attrs == {"metric": "rmse", "units": "g/kg"}
    # the same call works for a network taking the Dataset, and with custom groups / metric
    net_imp = grouped_permutation_importance(
        TinyNetwork(),
        test,
        groups={"dem": ["patches:dem"], "veg": ["ndvi_layer"]},
        n_repeats=2,
        metric="r2",
    ).set_index("group")
    assert net_imp.loc["veg", "r2_decrease"] == pytest.approx(0.0)  # zero weight: no effect
    assert net_imp.loc["dem", "r2_decrease"] > 0
    with pytest.raises(ValueError, match="metric"):
        grouped_permutation_importance(rf, test, metric="bias")


# --------------------------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------------------------


def test_attention_summary() -> None:
    w = np.array(
        [
            [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
            [[0.7, 0.1, 0.2], [0.3, 0.3, 0.4]],
        ]
    )  # (sample 2, query 2, token 3); each query sums to 1
    attn = xr.DataArray(
        w,
        dims=("sample", "query", "token"),
        coords={
            "token": ["B4", "B8", "NDVI"],
            "token_group": ("token", ["spectral", "spectral", "vegetation"]),
        },
    )
    by_token = attention_summary(attn).set_index("token")
    assert by_token.loc["NDVI", "mean_weight"] == pytest.approx((0.2 + 0.8 + 0.2 + 0.4) / 4)
    assert by_token.loc["B4", "group"] == "spectral"
    assert by_token["share"].sum() == pytest.approx(100.0)
    assert by_token.loc["B4", "sd_weight"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    by_group = attention_summary(attn, by="group").set_index("group")
    assert by_group.loc["spectral", "mean_weight"] == pytest.approx(0.6)
    assert by_group.loc["spectral", "n_tokens"] == 2
    m = attention_matrix(attn)
    assert m.shape == (2, 3) and list(m.columns) == ["B4", "B8", "NDVI"]
    assert list(m.index) == ["0", "1"] and m.loc["0", "B4"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="token_group"):
        attention_summary(attn.drop_vars("token_group"), by="group")
    heads = xr.concat([attn, attn], dim="head")  # extra dims are averaged too
    assert isinstance(attention_summary(heads), pd.DataFrame)
    assert attention_summary(heads)["mean_weight"].sum() == pytest.approx(1.0)
