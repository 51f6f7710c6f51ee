"""The inner (early-stopping) validation split of NetworkRegressor, on small data.

Unit choice (group -> spatial blocks inside groups -> site / sample), the size floor and cap,
the fixed-schedule fallback, sites kept whole, seeded determinism, ``min_epochs`` as an
estimator setting, and ``training_histories``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch import nn

from soilbook.data import schema
from soilbook.models.base import (
    INNER_MIN_UNITS,
    INNER_MIN_VAL_SAMPLES,
    InnerSplit,
    NetworkRegressor,
    inner_group_split,
    inner_validation_split,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _coords_ds(n: int, *, groups=None, lat=None, lon=None, site=None, x_m=None, y_m=None):
    """A bare data set with a sample dimension and the given coordinates (all the split reads)."""
    coords = {}
    for name, values in (
        ("group", groups),
        ("lat", lat),
        ("lon", lon),
        ("site", site),
        ("x_m", x_m),
        ("y_m", y_m),
    ):
        if values is not None:
            coords[name] = ("sample", np.asarray(values))
    return xr.Dataset(coords=coords).assign_coords(sample=np.arange(n))


def _regions(n: int = 160, n_regions: int = 4, seed: int = 0):
    """``n`` points in ``n_regions`` regions (a few hundred km across each), like chapter 2."""
    rng = np.random.default_rng(seed)
    region = np.arange(n) % n_regions
    lat = 10.0 * region + rng.uniform(-2, 2, n)
    lon = 20.0 * region + rng.uniform(-2, 2, n)
    return np.array([f"region_{r}" for r in region]), lat, lon


def _check_sides(split: InnerSplit, n: int) -> None:
    assert np.intersect1d(split.train, split.val).size == 0
    assert np.union1d(split.train, split.val).size == n
    assert split.train.size + split.val.size == n


def _bounds(n: int, fraction: float = 0.15) -> tuple[int, int]:
    target = max(INNER_MIN_VAL_SAMPLES, int(np.ceil(fraction * n)))
    return target, min(2 * target, int(np.floor(max(fraction, 1 / 3) * n)))


def test_coarse_groups_give_spatial_blocks_inside_the_groups():
    groups, lat, lon = _regions()
    ds = _coords_ds(160, groups=groups, lat=lat, lon=lon)
    split = inner_validation_split(ds, 0.15, seed=0)
    _check_sides(split, 160)
    assert split.unit == "block" and split.block_side_m is not None
    target, cap = _bounds(160)
    assert target <= split.val.size <= cap and split.n_val_units >= INNER_MIN_UNITS
    assert "spatial blocks" in split.description
    # the validation draws on several regions, i.e. on blocks inside them, not whole regions
    assert set(groups[split.train]) == set(groups)
    assert len(set(groups[split.val])) >= 2
    # the old rule took one whole region (40 samples here): far fewer validation units
    train, val = split  # unpacks like the old tuple
    assert train is split.train and val is split[1] and len(split) == 2


def test_fine_groups_are_kept_as_units():
    n = 150
    groups = np.arange(n) // 5  # 30 pedons of 5 horizons
    _, lat, lon = _regions(n)
    split = inner_validation_split(_coords_ds(n, groups=groups, lat=lat, lon=lon), 0.15, 1)
    _check_sides(split, n)
    assert split.unit == "group" and split.n_units == 30
    assert not set(groups[split.train]) & set(groups[split.val])
    assert split.val.size >= INNER_MIN_VAL_SAMPLES and split.n_val_units >= INNER_MIN_UNITS


def test_projected_x_m_y_m_are_used_before_lat_lon():
    n = 120
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 2000, n), rng.uniform(0, 2000, n)
    # lat/lon that would fail validation (metres passed as degrees): only x_m/y_m can block
    ds = _coords_ds(n, groups=np.zeros(n, int), lat=y, lon=x, x_m=x, y_m=y)
    split = inner_validation_split(ds, 0.15, 0)
    assert split.unit == "block" and split.block_side_m <= 1000
    ds_bad = _coords_ds(n, groups=np.zeros(n, int), lat=y, lon=x)  # no usable coordinates
    split_bad = inner_validation_split(ds_bad, 0.15, 0)
    assert split_bad.unit == "sample" and split_bad.val.size >= INNER_MIN_VAL_SAMPLES


def test_sites_are_the_fallback_and_never_straddle():
    n = 120
    groups = np.repeat(["a", "b"], n // 2)  # two groups: too coarse
    site = np.repeat(np.arange(n // 3), 3)  # 3 samples per site, no coordinates
    split = inner_validation_split(_coords_ds(n, groups=groups, site=site), 0.15, 0)
    _check_sides(split, n)
    assert split.unit == "site" and split.n_units == n // 3
    assert not set(site[split.train]) & set(site[split.val])


def test_a_site_spread_over_blocks_stays_on_one_side():
    groups, lat, lon = _regions(160)
    site = np.arange(160) % 80  # every site has two samples in different regions and blocks
    ds = _coords_ds(160, groups=groups, lat=lat, lon=lon, site=site)
    for seed in range(3):
        split = inner_validation_split(ds, 0.15, seed)
        _check_sides(split, 160)
        assert split.val.size > 0
        assert not set(site[split.train]) & set(site[split.val])


def test_samples_are_the_last_resort_and_groups_without_coordinates():
    n = 100
    groups = np.repeat(["r0", "r1", "r2", "r3"], n // 4)
    train, val = inner_group_split(groups, 0.15, seed=0)  # regions too coarse -> samples
    assert val.size == INNER_MIN_VAL_SAMPLES and train.size + val.size == n
    assert np.intersect1d(train, val).size == 0
    fine = np.arange(n) // 4  # 25 groups of 4
    train, val = inner_group_split(fine, 0.15, seed=0)
    assert not set(fine[train]) & set(fine[val]) and val.size >= INNER_MIN_VAL_SAMPLES


@pytest.mark.parametrize("n", [30, 59])
def test_too_few_samples_give_a_fixed_schedule(n):
    groups, lat, lon = _regions(n)
    split = inner_validation_split(_coords_ds(n, groups=groups, lat=lat, lon=lon), 0.15, 0)
    assert split.fixed_schedule and split.unit == "none" and split.val.size == 0
    assert split.train.size == n and "fixed schedule" in split.description
    train, val = inner_group_split(groups, 0.15, 0)
    assert val.size == 0 and train.size == n


def test_sixty_samples_are_enough_and_fraction_zero_is_fixed():
    groups, lat, lon = _regions(60)
    ds = _coords_ds(60, groups=groups, lat=lat, lon=lon)
    split = inner_validation_split(ds, 0.15, 0)
    assert split.val.size == INNER_MIN_VAL_SAMPLES
    zero = inner_validation_split(ds, 0.0, 0)
    assert zero.fixed_schedule and "val_fraction is 0" in zero.description


def test_units_too_large_for_the_floor_give_a_fixed_schedule():
    n = 90
    site = np.repeat([0, 1, 2], 30)  # three sites of 30: any 3 of them exceed the cap
    split = inner_validation_split(_coords_ds(n, groups=np.zeros(n, int), site=site), 0.15, 0)
    assert split.fixed_schedule and "no split of" in split.description


def test_split_is_seeded():
    groups, lat, lon = _regions(200)
    ds = _coords_ds(200, groups=groups, lat=lat, lon=lon)
    a, b = inner_validation_split(ds, 0.15, 7), inner_validation_split(ds, 0.15, 7)
    np.testing.assert_array_equal(a.val, b.val)
    assert a.description == b.description
    others = [inner_validation_split(ds, 0.15, s).val for s in range(3)]
    assert any(not np.array_equal(others[0], o) for o in others[1:])


# -- the estimator: min_epochs, fixed schedule, training_histories ------------------------------


class _Mlp(nn.Module):
    def __init__(self, d: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class TinyNet(NetworkRegressor):
    """The smallest NetworkRegressor: an MLP on the covariates."""

    def __init__(self, *, width: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def _arrays(self, ds):
        return {"covariates": ds["covariates"].values.astype(np.float32)}

    def _build_module(self, ds, arrays):
        return _Mlp(arrays["covariates"].shape[1], int(self.width))


def _points(n: int, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    cov = rng.normal(size=(n, 3)).astype(np.float32)
    y = 2 + cov[:, 0] - 0.5 * cov[:, 1] + 0.1 * rng.normal(size=n)
    groups, lat, lon = _regions(n, seed=seed)
    return schema.sample_set(
        y,
        groups=groups,
        covariates=cov,
        features={"a": "spectral", "b": "terrain", "c": "climate"},
        lat=lat,
        lon=lon,
        target_units="dS/m",
        target_long_name="EC",
        source="test",
        licence="CC0",
        citation="none",
        simulated=True,
    )


FAST = dict(epochs=6, batch_size=16, device="cpu", seed=0, learning_rate=1e-2)


def test_min_epochs_is_a_training_setting():
    net = TinyNet(min_epochs=4, epochs=12)
    params = net.get_params()
    assert params["min_epochs"] == 4 and "min_epochs" in TinyNet.__init__.__signature__.parameters
    assert clone(net).get_params() == params
    assert TinyNet().min_epochs == 10
    assert net._train_config().min_epochs == 4
    assert TinyNet(epochs=3)._train_config().min_epochs == 3  # clipped to epochs
    with pytest.raises(Exception, match="min_epochs"):
        TinyNet(min_epochs=0).fit(_points(60))
    # the setting joins the checkpoint key: runs that differ only in it never share a folder
    ds = _points(60)
    assert TinyNet(min_epochs=2).checkpoint_key(ds) != TinyNet(min_epochs=3).checkpoint_key(ds)


def test_small_data_train_on_a_fixed_schedule_and_say_so():
    net = TinyNet(patience=1, **FAST).fit(_points(40))
    h = net.history_
    assert net.n_val_ == 0 and net.inner_split_.fixed_schedule and h.fixed_schedule
    assert h.epoch == list(range(1, FAST["epochs"] + 1))  # no early stopping on train loss
    assert "fixed schedule" in h.inner_split
    record = h.convergence()
    assert record["schedule"] == "fixed" and record["final_val_loss"] is None
    assert "fixed schedule" in record["reason"]


def test_training_histories_and_the_inner_split_record():
    with pytest.raises(NotFittedError):
        TinyNet().training_histories()
    net = TinyNet(min_epochs=3, **FAST).fit(_points(120))
    hists = net.training_histories()
    assert list(hists) == ["network"] and hists["network"] is net.history_
    assert net.inner_split_.unit == "block" and net.n_val_ >= INNER_MIN_VAL_SAMPLES
    assert net.history_.inner_split == net.inner_split_.description
    assert net.history_.min_epochs == 3 and net.history_.n_val == net.n_val_
    assert len(net.history_.epoch) >= 3


def test_missing_site_ids_count_as_sites_of_their_own():
    n = 100
    site = np.array([None] * n, dtype=object)
    site[:10] = "pedon_1"  # one real site of 10 samples, the rest unknown
    split = inner_validation_split(_coords_ds(n, groups=np.zeros(n, int), site=site), 0.15, 0)
    assert split.unit == "site" and split.n_units == 91 and split.val.size >= 20
    in_val = np.isin(np.arange(10), split.val)
    assert in_val.all() or not in_val.any()
