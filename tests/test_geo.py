"""Great-circle distances, nearest-neighbour pairing in km and dateline-safe regions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.neighbors import BallTree

from soilbook import geo
from soilbook.geo import (
    EARTH_RADIUS_KM,
    geographic_clusters,
    haversine_km,
    pair_nearest,
    unit_vectors,
)

LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)


def test_haversine_known_distances():
    # one degree of latitude along a meridian: 2*pi*R/360
    assert haversine_km(0.0, 10.0, 1.0, 10.0) == pytest.approx(111.195, abs=0.01)
    assert float(haversine_km(*LONDON, *PARIS)) == pytest.approx(343.5, abs=1.0)
    # half the circumference between antipodes, and across the antimeridian
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(np.pi * EARTH_RADIUS_KM)
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(111.195, abs=0.01)
    # longitudes 0-360 are the same places as -180-180
    assert haversine_km(10.0, 350.0, 10.0, -10.0) == pytest.approx(0.0, abs=1e-9)


def test_haversine_broadcasts():
    d = haversine_km(np.array([0.0, 1.0, 2.0])[:, None], 0.0, 0.0, np.array([0.0, 1.0]))
    assert d.shape == (3, 2)
    assert d[0, 0] == 0.0 and d[1, 0] == pytest.approx(111.195, abs=0.01)
    assert d[0, 1] == pytest.approx(111.195, abs=0.01)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (95.0, 0.0, "outside -90...90"),
        (np.nan, 0.0, "NaN"),
        (10.0, np.inf, "NaN or infinite"),
        (10.0, 500.0, "outside -180...360"),
    ],
)
def test_invalid_coordinates_are_refused(lat, lon, message):
    with pytest.raises(ValueError, match=message):
        haversine_km(lat, lon, 0.0, 0.0)
    with pytest.raises(ValueError, match=message):
        pair_nearest([lat], [lon], [0.0], [0.0], max_km=10)
    with pytest.raises(ValueError, match=message):
        geographic_clusters([lat, 0.0], [lon, 0.0], n_clusters=1)


def test_pair_nearest_distances_are_kilometres():
    # lab points and a coarse 'pixel' grid around London and Paris
    lat_a = np.array([LONDON[0], PARIS[0], 0.0])
    lon_a = np.array([LONDON[1], PARIS[1], 0.0])
    lat_b = np.array([PARIS[0], LONDON[0] + 0.01, 40.0])
    lon_b = np.array([PARIS[1], LONDON[1], 3.0])
    pairs = pair_nearest(lat_a, lon_a, lat_b, lon_b, max_km=5.0)
    assert list(pairs.columns) == ["index_a", "index_b", "distance_km"]
    assert pairs["index_a"].tolist() == [0, 1]  # (0, 0) has nothing within 5 km
    assert pairs["index_b"].tolist() == [1, 0]
    assert pairs["distance_km"].iloc[0] == pytest.approx(1.112, abs=0.002)
    assert pairs["distance_km"].iloc[1] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(
        pairs["distance_km"],
        haversine_km(
            lat_a[pairs.index_a], lon_a[pairs.index_a], lat_b[pairs.index_b], lon_b[pairs.index_b]
        ),
        rtol=1e-9,
        atol=1e-9,
    )
    # London to Paris: in range at 400 km, not at 300 km
    far = pair_nearest([LONDON[0]], [LONDON[1]], [PARIS[0]], [PARIS[1]], max_km=400.0)
    assert far["distance_km"].iloc[0] == pytest.approx(343.5, abs=1.0)
    assert pair_nearest([LONDON[0]], [LONDON[1]], [PARIS[0]], [PARIS[1]], max_km=300.0).empty


def test_pair_nearest_fixes_the_degrees_defect():
    # the official DeepSalt code fed degrees to a haversine BallTree: at high latitude that
    # picks the wrong neighbour. Point a at 60N; b0 is 0.9 deg of longitude away (50 km),
    # b1 is 0.7 deg of latitude away (78 km).
    a = np.array([[60.0, 10.0]])
    b = np.array([[60.0, 10.9], [60.7, 10.0]])
    _, wrong = BallTree(b, metric="haversine").query(a, k=1)  # degrees: the defect
    assert wrong[0, 0] == 1
    pairs = pair_nearest(a[:, 0], a[:, 1], b[:, 0], b[:, 1], max_km=100.0)
    assert pairs["index_b"].tolist() == [0]
    assert pairs["distance_km"].iloc[0] == pytest.approx(50.0, abs=0.2)


def test_pair_nearest_empty_and_bad_radius():
    assert pair_nearest([], [], [1.0], [1.0], max_km=1.0).empty
    with pytest.raises(ValueError, match="max_km"):
        pair_nearest([0.0], [0.0], [0.0], [0.0], max_km=-1.0)


def test_unit_vectors_are_on_the_sphere():
    xyz = unit_vectors([0.0, 90.0, -45.0], [0.0, 123.0, 180.0])
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), 1.0)
    np.testing.assert_allclose(xyz[0], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(xyz[1], [0.0, 0.0, 1.0], atol=1e-12)


def test_clusters_keep_the_dateline_and_the_pole_together():
    rng = np.random.default_rng(0)
    # Fiji-like group straddling 180 deg, a group near Greenwich, a group around the north pole
    lat = np.concatenate([rng.normal(-17, 0.5, 20), rng.normal(5, 0.5, 20), np.full(20, 89.5)])
    lon = np.concatenate(
        [
            np.where(rng.random(20) < 0.5, 179.7, -179.7) + rng.normal(0, 0.1, 20),
            rng.normal(0, 0.5, 20),
            np.linspace(-180, 180, 20, endpoint=False),
        ]
    )
    lon = (lon + 180) % 360 - 180
    labels = geographic_clusters(lat, lon, n_clusters=3, seed=0)
    assert labels.dtype.kind == "U" and set(labels) == {"region_0", "region_1", "region_2"}
    for block in (slice(0, 20), slice(20, 40), slice(40, 60)):
        assert len(set(labels[block])) == 1, labels[block]
    assert len({labels[0], labels[20], labels[40]}) == 3
    # k-means on raw degrees splits the dateline group (the pitfall the 3-D vectors avoid)
    naive = KMeans(3, random_state=0, n_init=10).fit_predict(np.column_stack([lat, lon]))
    assert len(set(naive[:20])) > 1
    # deterministic, and names ordered west to east
    assert np.array_equal(labels, geographic_clusters(lat, lon, n_clusters=3, seed=0))


def test_cluster_names_run_west_to_east():
    lat = np.zeros(6)
    lon = np.array([100.0, 101.0, -60.0, -61.0, 10.0, 11.0])
    labels = geographic_clusters(lat, lon, n_clusters=3, seed=1)
    assert labels.tolist() == ["region_2"] * 2 + ["region_0"] * 2 + ["region_1"] * 2


def test_cluster_count_is_checked():
    with pytest.raises(ValueError, match="only 2 distinct locations"):
        geographic_clusters([0.0, 0.0, 1.0], [0.0, 0.0, 1.0], n_clusters=3)
    with pytest.raises(ValueError, match="positive integer"):
        geographic_clusters([0.0, 1.0], [0.0, 1.0], n_clusters=0)


# -- spatial blocks ------------------------------------------------------------------------------


def test_spatial_blocks_labels_and_errors() -> None:
    x = np.array([0.0, 999.0, 1000.0, 2500.0, 100.0])
    y = np.array([0.0, 0.0, 0.0, 0.0, 1500.0])
    labels = geo.spatial_blocks(x, y, 1000.0)
    assert labels.tolist() == ["b000_000", "b000_000", "b001_000", "b002_000", "b000_001"]
    # a fixed origin keeps labels stable across requests; negative cells keep their sign
    assert geo.spatial_blocks([-500.0], [250.0], 1000.0, origin=(0.0, 0.0)).tolist() == ["b-01_000"]
    for bad in (0, -5, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            geo.spatial_blocks(x, y, bad)
    with pytest.raises(ValueError, match="NaN"):
        geo.spatial_blocks([np.nan], [0.0], 10.0)


def test_spatial_block_labels_sort_like_the_blocks() -> None:
    """Labels are zero-padded to one width, so string order is (column, row) order."""
    x = np.arange(0, 12_000, 1000.0)
    labels = geo.spatial_blocks(x, np.zeros_like(x), 1000.0)
    assert sorted(labels.tolist()) == labels.tolist()


def test_choose_block_side_picks_largest_side_with_enough_blocks() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1000, 300), rng.uniform(0, 1000, 300)
    side = geo.choose_block_side(x, y, min_blocks=10, sides=(2000, 1000, 500, 400, 300, 250))
    assert side == 300
    assert np.unique(geo.spatial_blocks(x, y, side)).size >= 10
    # none is fine enough: the smallest side
    assert geo.choose_block_side(x[:3], y[:3], min_blocks=10, sides=(500, 250)) == 250


def test_local_xy_m_scales_longitude_by_latitude() -> None:
    x, y = geo.local_xy_m([60.0, 60.0], [0.0, 1.0])
    assert y[1] - y[0] == pytest.approx(0.0)
    assert x[1] - x[0] == pytest.approx(111_195 * 0.5, rel=1e-3)


# -- buffered spatial CV -------------------------------------------------------------------------


def test_buffer_split_drops_training_samples_near_the_test_fold() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 1000, 200), rng.uniform(0, 1000, 200)
    test = np.flatnonzero(x < 300)
    train = np.flatnonzero(x >= 300)
    kept = geo.buffer_split(train, test, x, y, 100.0)
    # brute force: nearest test sample of every training sample
    near = np.hypot(x[train, None] - x[None, test], y[train, None] - y[None, test]).min(axis=1)
    np.testing.assert_array_equal(kept, train[near >= 100.0])
    assert 0 < kept.size < train.size and np.all(np.diff(kept) > 0)  # a subset, in order
    assert x[kept].min() >= 300.0 and np.setdiff1d(kept, train).size == 0
    # no buffer: unchanged
    np.testing.assert_array_equal(geo.buffer_split(train, test, x, y, 0.0), train)


def test_buffer_split_errors() -> None:
    from soilbook.errors import ParameterError, SplitError

    x, y = np.array([0.0, 10.0, 20.0]), np.zeros(3)
    with pytest.raises(SplitError, match="leaves none"):
        geo.buffer_split([0, 1], [2], x, y, 50.0)
    with pytest.raises(ParameterError, match="distance_m"):
        geo.buffer_split([0, 1], [2], x, y, -1.0)
    with pytest.raises(ParameterError, match="outside"):
        geo.buffer_split([0, 5], [2], x, y, 5.0)
    with pytest.raises(ParameterError, match="NaN"):
        geo.buffer_split([0, 1], [2], [np.nan, 10.0, 20.0], y, 5.0)


def test_lat_lon_blocks_given_or_chosen_side():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(40, 42, 300), rng.uniform(-100, -97, 300)
    labels, side = geo.lat_lon_blocks(lat, lon, 50_000.0)
    x, y = geo.local_xy_m(lat, lon)
    assert side == 50_000.0
    np.testing.assert_array_equal(labels, geo.spatial_blocks(x, y, 50_000.0))
    chosen, auto = geo.lat_lon_blocks(lat, lon, min_blocks=10)
    assert auto == geo.choose_block_side(x, y, min_blocks=10)
    assert np.unique(chosen).size >= 10
