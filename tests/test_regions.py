"""Compact regions with a floor on labelled pixels (soilbook.data.regions)."""

from __future__ import annotations

import numpy as np
import pytest

from soilbook.data.regions import (
    GAP_KM,
    compact_regions,
    describe_regions,
    expected_pixels,
    location_ids,
    region_summary,
)
from soilbook.errors import ParameterError


def _cloud(rng, lat, lon, n, sd=2.0):
    return lat + rng.normal(0, sd, n), lon + rng.normal(0, sd, n)


def _world(seed=0):
    """Two continents (Europe-like, Africa-like), an elongated one and a small island group."""
    rng = np.random.default_rng(seed)
    parts = [
        _cloud(rng, 50.0, 10.0, 80),
        _cloud(rng, 0.0, 25.0, 80),
        (np.linspace(-40, 30, 120) + rng.normal(0, 0.5, 120), -70 + rng.normal(0, 2, 120)),
        _cloud(rng, 20.0, -157.0, 12, sd=0.5),  # Hawaii-like: far from everything
    ]
    lat = np.concatenate([p[0] for p in parts])
    lon = np.concatenate([p[1] for p in parts])
    return lat, lon


def test_expected_pixels_and_location_ids():
    assert expected_pixels(100, 100, 0.25) == 25
    assert expected_pixels(100, 10, 0.25) == 10  # one labelled pixel per location
    assert expected_pixels(3, 3, 0.1) == 2  # at least two per region
    ids = location_ids([1.0, 1.0, 2.0, np.nan, np.nan], [5.0, 5.0, 5.0, np.nan, np.nan])
    assert ids[0] == ids[1] != ids[2]
    assert len({ids[3], ids[4], ids[0], ids[2]}) == 4  # unknown places are never shared


def test_isolated_islands_are_dropped_and_regions_meet_the_floor():
    lat, lon = _world()
    r = compact_regions(lat, lon, 4, paired_fraction=0.25, min_pixels=10)
    island = lon < -140
    assert not r.kept[island].any() and r.kept[~island].all()
    assert (r.group[island] == "").all()
    assert any("dropped 12 isolated site(s)" in m for m in r.messages)
    assert any(f"{GAP_KM:,.0f} km" in m for m in r.messages)
    summary = region_summary(r.group[r.kept], lat[r.kept], lon[r.kept])
    assert list(summary.index) == [f"region_{i}" for i in range(4)]
    for g in summary.index:
        n = int(summary.loc[g, "sites"])
        assert expected_pixels(n, int(summary.loc[g, "locations"]), 0.25) >= 10
    # named west to east: the elongated (American) continent is cut in two, both in the west
    assert (summary["centre_lon"].iloc[:2] < -60).all()
    # the widest land group (7,800 km long) was cut across its long axis into two halves of
    # comparable extent, each about half as long
    halves = summary["extent_km"].iloc[:2].to_numpy()
    assert halves.max() / halves.min() < 1.2 and halves.max() < 4500
    # deterministic: no random draw involved
    again = compact_regions(lat, lon, 4, paired_fraction=0.25, min_pixels=10)
    np.testing.assert_array_equal(r.group, again.group)


def test_too_many_land_groups_merge_the_closest():
    lat, lon = _world()
    r = compact_regions(lat, lon, 2, paired_fraction=0.25, min_pixels=10)
    europe, africa = slice(0, 80), slice(80, 160)
    assert len(set(r.group[r.kept])) == 2
    assert len(set(r.group[europe]) | set(r.group[africa])) == 1  # the two nearest merged
    assert any("merged" in m for m in r.messages)


def test_floor_lowers_the_number_of_regions_or_refuses():
    lat, lon = _world()
    r = compact_regions(lat, lon, 8, paired_fraction=0.25, min_pixels=10)
    assert 2 <= len(set(r.group[r.kept])) < 8
    assert any("was lowered" in m for m in r.messages)
    with pytest.raises(ParameterError, match="min_region_pixels=500"):
        compact_regions(lat, lon, 3, paired_fraction=0.25, min_pixels=500)


def test_region_summary_extent_in_km():
    # 1 degree of longitude on the equator is 111.2 km; 2 degrees 222.4 km
    s = region_summary(["a", "a", "a", "b"], [0.0, 0.0, 0.0, 10.0], [0.0, 1.0, 2.0, 5.0])
    assert s.loc["a", "extent_km"] == pytest.approx(222.39, abs=0.05)
    assert s.loc["a", "locations"] == 3 and s.loc["b", "extent_km"] == 0.0
    s = region_summary(["x", "x"], [np.nan, np.nan], [np.nan, np.nan], labelled=[True, False])
    assert np.isnan(s.loc["x", "extent_km"]) and s.loc["x", "labelled_pixels"] == 1
    assert "extent unknown" in describe_regions(s)
