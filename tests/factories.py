"""Builders of small test data shared by several test modules.

Plain functions, imported as ``from factories import sample_set`` (pytest puts ``tests/`` on
``sys.path`` because it has no ``__init__.py``). Each test module keeps its own recipe (sizes,
seed, how the target depends on the inputs) and hands the arrays to these builders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge

from soilbook.data import schema


def sample_set(
    target: np.ndarray,
    reflectance: np.ndarray,
    covariates: np.ndarray,
    *,
    dates: Sequence[str],
    bands: Sequence[str],
    features: Mapping[str, str],
    groups: Sequence[Any] | np.ndarray,
    patches: np.ndarray | None = None,
    layers: Mapping[str, str] | None = None,
    sample_ids: np.ndarray | None = None,
    target_units: str = "g/kg",
    target_long_name: str = "salt content",
    covariate_units: str = "mixed",
    source: str = "unit test",
    **attrs: Any,
) -> xr.Dataset:
    """A schema-valid sample set from plain arrays (checked with ``validate_samples``).

    ``target`` (n,), ``reflectance`` (n, date, band), ``covariates`` (n, feature) and, optionally,
    ``patches`` (n, layer, y, x). ``features`` and ``layers`` map each name to its group (in
    order); ``groups`` are the per-sample CV groups; ``sample_ids`` the ``sample`` coordinate
    (default: none, i.e. positions).
    The dataset attrs are ``source``, licence CC0, citation none, ``simulated=True`` and ``attrs``.
    """
    return schema.sample_set(
        target,
        groups=groups,
        reflectance=reflectance,
        dates=dates,
        bands=bands,
        reflectance_long_name="reflectance",
        covariates=covariates,
        features=features,
        covariate_units=covariate_units,
        patches=patches,
        layers=layers,
        sample_ids=sample_ids,
        target_units=target_units,
        target_long_name=target_long_name,
        source=source,
        licence="CC0",
        citation="none",
        simulated=True,
        **attrs,
    )


def random_sample_set(
    n: int,
    *,
    seed: int,
    dates: Sequence[str],
    bands: Sequence[str],
    features: Mapping[str, str],
    target: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray],
    **kwargs: Any,
) -> xr.Dataset:
    """A :func:`sample_set` of random inputs and a target computed from them.

    From one ``numpy.random.default_rng(seed)``, in this order: reflectance U(0.02, 0.5) of shape
    (n, date, band), covariates N(0, 1) of shape (n, feature), then
    ``target(rng, reflectance, covariates)``. ``kwargs`` go to :func:`sample_set` (``groups`` is
    required).
    """
    rng = np.random.default_rng(seed)
    refl = rng.uniform(0.02, 0.5, (n, len(dates), len(bands)))
    cov = rng.normal(size=(n, len(features)))
    return sample_set(
        target(rng, refl, cov), refl, cov, dates=dates, bands=bands, features=features, **kwargs
    )


class RidgeOnTable(RegressorMixin, BaseEstimator):
    """A minimal tabular estimator on schema Datasets (no predict_scene), like the baselines."""

    def fit(self, ds: xr.Dataset, y: Any = None) -> RidgeOnTable:
        self.model_ = Ridge().fit(schema.to_tabular(ds), schema.target_values(ds))
        self.target_units_ = ds["target"].attrs["units"]
        return self

    def predict(self, ds: xr.Dataset) -> np.ndarray:
        return self.model_.predict(schema.to_tabular(ds))
