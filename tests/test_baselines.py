"""RF / SVR / PLSR / gradient-boosting baselines on schema Datasets (soilbook.baselines)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from factories import random_sample_set
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from soilbook.baselines import (
    GradientBoostingBaseline,
    PLSRBaseline,
    RandomForestBaseline,
    SVRBaseline,
    TabularRegressor,
)
from soilbook.data.schema import subset, tabular_feature_names, to_tabular
from soilbook.evaluate import cross_validate, make_splits, r2


def make_ds(n: int = 150, n_groups: int = 10, seed: int = 0) -> xr.Dataset:
    """Schema-valid sample set: 1 date × 4 bands + 4 covariates; target = smooth signal + noise."""
    return random_sample_set(
        n,
        seed=seed,
        target=lambda rng, refl, cov: (
            8
            + 3 * cov[:, 0]
            + 2 * np.sin(2 * cov[:, 1])
            + 10 * refl[:, 0, 2]
            + rng.normal(0, 0.5, n)
        ),
        dates=["2021-06-01"],
        bands=["B2", "B3", "B4", "B8"],
        features={
            "elevation": "terrain",
            "twi": "hydrology",
            "ndvi": "vegetation",
            "noise": "other",
        },
        groups=[f"field{i % n_groups}" for i in range(n)],
    )


FAST = {
    "RF": lambda: RandomForestBaseline(
        n_estimators=40, seed=0, max_features_grid=(1 / 3, 1.0), min_samples_leaf_grid=(1, 5)
    ),
    "SVR": lambda: SVRBaseline(
        seed=0, C_grid=(1.0, 10.0), gamma_grid=(0.5, 1.0), epsilon_grid=(0.1,)
    ),
    "PLSR": lambda: PLSRBaseline(max_components=6, inner_folds=3),
    "GB": lambda: GradientBoostingBaseline(max_iter=100),
}


@pytest.mark.parametrize("name", list(FAST))
def test_fit_predict_clone(name: str) -> None:
    ds = make_ds()
    train, test = subset(ds, np.arange(110)), subset(ds, np.arange(110, 150))
    est = FAST[name]()
    assert isinstance(est, TabularRegressor)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and twin is not est
    est.fit(train)
    pred = est.predict(test)
    assert pred.shape == (40,) and pred.dtype == np.float64 and np.all(np.isfinite(pred))
    assert r2(test["target"].values, pred) > 0.3  # a learnable signal is learned
    names, groups = tabular_feature_names(ds)
    assert est.feature_names_ == names and est.feature_groups_ == groups
    assert est.n_features_in_ == 8 and est.target_units_ == "g/kg"
    assert np.allclose(est.predict_array(to_tabular(test)), pred)
    assert not hasattr(twin, "model_")  # cloning gives an unfitted copy
    assert np.allclose(twin.fit(train).predict(test), pred)  # same seed → same model
    assert est.score(test) == pytest.approx(r2(test["target"].values, pred))


def test_rf_defaults_and_seed() -> None:
    rf = RandomForestBaseline()
    assert rf.n_estimators == 300 and rf.tune and rf.inner_cv == "oob"
    assert rf.max_features == pytest.approx(1 / 3) and rf.min_samples_leaf == 2  # tune=False
    # the grid holds scikit-learn's defaults (all features, leaves of 1) and the fixed ones
    assert 1.0 in rf.max_features_grid and 1 in rf.min_samples_leaf_grid
    assert rf.max_features_grid[0] == pytest.approx(1 / 3) and 2 in rf.min_samples_leaf_grid
    ds = make_ds(n=80)
    a = RandomForestBaseline(n_estimators=20, seed=1, tune=False).fit(ds).predict(ds)
    b = RandomForestBaseline(n_estimators=20, seed=2, tune=False).fit(ds).predict(ds)
    assert not np.allclose(a, b)


def test_rf_is_tuned_on_the_training_rows_by_out_of_bag_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.ensemble import RandomForestRegressor

    sizes: list[tuple[int, int]] = []
    original = RandomForestRegressor.fit

    def spy_fit(self, X, y, **kw):
        sizes.append((len(X), self.n_estimators))
        return original(self, X, y, **kw)

    monkeypatch.setattr(RandomForestRegressor, "fit", spy_fit)
    ds = make_ds(n=90)
    train = subset(ds, np.arange(60))
    rf = RandomForestBaseline(
        n_estimators=30, tune_trees=10, min_samples_leaf_grid=(1, 5), seed=0
    ).fit(train)
    assert len(rf.cv_results_["params"]) == 4 == len(rf.cv_results_["rmse"])
    best = int(np.argmin(rf.cv_results_["rmse"]))
    assert rf.best_params_ == rf.cv_results_["params"][best]
    assert rf.model_.max_features == rf.best_params_["max_features"]
    assert rf.model_.min_samples_leaf == rf.best_params_["min_samples_leaf"]
    # four small forests on the 60 training rows, then the chosen one at full size
    assert sizes == [(60, 10)] * 4 + [(60, 30)]
    fixed = RandomForestBaseline(n_estimators=10, tune=False).fit(train)
    assert fixed.best_params_ == {"max_features": pytest.approx(1 / 3), "min_samples_leaf": 2}
    cv = RandomForestBaseline(
        n_estimators=10, inner_cv="group", max_features_grid=(1.0,), min_samples_leaf_grid=(1, 5)
    ).fit(train)
    assert len(cv.cv_results_["rmse"]) == 2 and cv.model_.n_estimators == 10
    assert np.isfinite(cv.predict(subset(ds, np.arange(60, 90)))).all()


def test_predict_refuses_other_features() -> None:
    ds = make_ds(n=60)
    rf = RandomForestBaseline(n_estimators=10).fit(ds)
    fewer = ds.isel(feature=[0, 1, 2])
    with pytest.raises(ValueError, match=r"fitted on other features.*missing \['noise'\]"):
        rf.predict(fewer)


def test_svr_grid_search_uses_training_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fit inside the SVR (inner CV and refit) sees only rows of the outer training fold."""
    seen: list[np.ndarray] = []
    original = Pipeline.fit

    def spy_fit(self, X, y=None, **kw):  # records the raw feature rows the pipeline is fitted on
        seen.append(np.asarray(X).copy())
        return original(self, X, y, **kw)

    monkeypatch.setattr(Pipeline, "fit", spy_fit)
    ds = make_ds(n=90)
    splits = {"random": make_splits(ds, ("random",), n_splits=3, seed=0)["random"]}
    svr = SVRBaseline(
        seed=0, inner_folds=3, C_grid=(1.0, 10.0), gamma_grid=(1.0,), epsilon_grid=(0.1,)
    )
    X_all = to_tabular(ds)
    rows = {r.tobytes(): i for i, r in enumerate(X_all)}
    per_fold = 3 * 2 + 1  # inner folds × grid points + refit
    res = cross_validate({"SVR": svr}, ds, splits, progress=False)
    assert len(seen) == 3 * per_fold
    for k, (tr, te) in enumerate(splits["random"]):
        fits = seen[k * per_fold : (k + 1) * per_fold]
        for X in fits:
            idx = {rows[r.tobytes()] for r in X.astype(np.float32)}
            assert idx <= set(tr.tolist())
            assert not idx & set(te.tolist())
        assert len(fits[-1]) == len(tr)  # the refit uses the whole training fold
        assert all(len(X) < len(tr) for X in fits[:-1])  # inner fits use part of it
    best = res.fitted[("SVR", "random")].best_params_
    assert set(best) == {"C", "gamma", "epsilon"} and best["gamma"] == pytest.approx(1 / 8)


def test_svr_gamma_grid_and_group_inner_cv() -> None:
    ds = make_ds(n=90)
    svr = SVRBaseline(
        gamma_grid=("scale", 2.0), C_grid=(10.0,), epsilon_grid=(0.1,), inner_cv="group"
    )
    assert svr._gammas(8) == [pytest.approx(1 / 8), pytest.approx(2 / 8)]
    svr.fit(ds)
    assert svr.search_.cv.get_n_splits() == 3
    assert len(svr.cv_results_["params"]) == 2
    with pytest.raises(ValueError, match="inner_cv"):
        SVRBaseline(inner_cv="spatial").fit(ds)


def test_plsr_components_are_chosen_within_limits() -> None:
    ds = make_ds(n=60)
    pls = PLSRBaseline(max_components=20, inner_folds=3).fit(ds)
    assert 1 <= pls.best_params_["n_components"] <= 8  # capped at the 8 features
    assert pls.model_.n_components == pls.best_params_["n_components"]
    assert pls.predict(ds).shape == (60,)


def test_svr_search_is_subsampled_on_large_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above max_tune_samples rows the grid search uses a seeded subsample; the fit uses all."""
    from soilbook import baselines

    seen: list[int] = []
    original = Pipeline.fit

    def spy_fit(self, X, y=None, **kw):
        seen.append(len(X))
        return original(self, X, y, **kw)

    monkeypatch.setattr(Pipeline, "fit", spy_fit)
    monkeypatch.setattr(baselines, "_SUBSAMPLE_NOTED", [])
    ds = make_ds(n=90)
    grid = dict(C_grid=(1.0, 10.0), gamma_grid=(1.0,), epsilon_grid=(0.1,), inner_folds=3)
    with pytest.warns(UserWarning, match="90 training rows is more than max_tune_samples=40"):
        svr = SVRBaseline(seed=0, max_tune_samples=40, **grid).fit(ds)
    assert svr.tune_rows_ == 40 and seen[-1] == 90  # the chosen settings fitted on all rows
    assert len(seen) == 3 * 2 + 1 and all(n < 40 for n in seen[:-1])
    assert svr.model_.regressor_.named_steps["svr"].C == svr.best_params_["C"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process
        again = SVRBaseline(seed=0, max_tune_samples=40, **grid).fit(ds)
    np.testing.assert_allclose(again.predict(ds), svr.predict(ds))  # seeded subsample
    small = SVRBaseline(seed=0, **grid).fit(ds)
    assert small.tune_rows_ == 90


@pytest.mark.parametrize("cls", [RandomForestBaseline, SVRBaseline, GradientBoostingBaseline])
def test_missing_inputs_are_filled_with_training_means_only(cls):
    from soilbook.data.schema import sample_set

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = 2 * X[:, 0] + X[:, 2]
    cloudy = X.copy()
    cloudy[::4, 1] = np.nan  # a band under clouds in every fourth row
    ds = sample_set(
        y,
        groups=np.arange(60) % 6,
        source="t",
        licence="CC0",
        citation="none",
        simulated=True,
        target_units="%",
        target_long_name="soil moisture",
        covariates=cloudy,
        features=[("VV", "sar"), ("B4", "spectral"), ("t2m", "climate")],
    )
    train, test = subset(ds, np.arange(40)), subset(ds, np.arange(40, 60))
    model = cls(seed=0).fit(train)
    expected = np.nanmean(cloudy[:40, 1])
    assert model.fill_values_[1] == pytest.approx(expected, rel=1e-5)
    table = model.transform(test)
    assert not np.isnan(table).any() and table[0, 1] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(model.predict(test)).all()
    # a table without NaN is left as it is
    clean = cls(seed=0).fit(subset(ds.assign(covariates=(ds["covariates"].dims, X)), range(40)))
    assert clean.fill_values_ is None
