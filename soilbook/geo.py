"""Geometry for pairing and grouping samples by location: great circles and spatial blocks.

Tools for pairing and regions, all in WGS84 degrees on input:

:func:`haversine_km`
    great-circle distance on a sphere of the mean Earth radius (:data:`EARTH_RADIUS_KM`);
:func:`pair_nearest`
    for each point of one set, its nearest point of another within a distance in km
    (e.g. a lab sample and the satellite pixel it falls in);
:func:`geographic_clusters`
    k-means regions for leave-one-region-out validation, computed on 3-D unit vectors so that
    points on either side of the antimeridian (±180°) or around a pole are neighbours.

and the one definition of spatial blocks for grouped cross-validation, used by every data source:

:func:`spatial_blocks`
    square blocks of a given side on projected coordinates in metres, labelled ``b<col>_<row>``;
:func:`local_xy_m`
    a local equirectangular projection of lat/lon to metres (for study areas up to a few hundred
    km), so point data in degrees can be blocked too;
:func:`choose_block_side`
    the largest side from a list that still gives a minimum number of occupied blocks;
:func:`buffer_split`
    buffered spatial cross-validation: drop training samples closer than a distance to any test
    sample (a KD-tree query, so thousands of samples take milliseconds).

A note on the DeepSalt code
---------------------------
The official DeepSalt repository paired lab and satellite samples with
``BallTree(metric="haversine")`` fed with coordinates in **degrees** and a radius of 0.01.
scikit-learn's haversine metric expects **radians** (latitude first) and returns arc lengths in
radians, so both the ranking and the radius were on a meaningless scale. Here the coordinates
are converted with :func:`numpy.radians` and arc lengths are multiplied by the Earth radius,
so ``distance_km`` is a distance in kilometres (tests check 1° of latitude ≈ 111.2 km and
London–Paris ≈ 344 km).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Mean Earth radius (IUGG R1), km.
EARTH_RADIUS_KM = 6371.0088


def _validated(lat, lon, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of ``lat``/``lon`` after checking they are finite, in range, same shape."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    try:
        lat, lon = np.broadcast_arrays(lat, lon)
    except ValueError:
        raise ValueError(
            f"{what}: latitude shape {lat.shape} and longitude shape {lon.shape} do not "
            "broadcast; pass one longitude per latitude"
        ) from None
    for name, arr in (("latitude", lat), ("longitude", lon)):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = np.argwhere(bad)[0]
            raise ValueError(
                f"{what}: {int(bad.sum())} {name} value(s) are NaN or infinite (first at index "
                f"{tuple(int(i) for i in first)}). Drop samples without a location first."
            )
    if np.any(np.abs(lat) > 90.0):
        i = int(np.argmax(np.abs(lat) > 90.0))
        raise ValueError(
            f"{what}: latitude {lat.ravel()[i]} is outside -90...90 degrees. Are latitude and "
            "longitude swapped, or the coordinates projected (metres) rather than WGS84 degrees?"
        )
    if np.any((lon < -180.0) | (lon > 360.0)):
        i = int(np.argmax((lon < -180.0) | (lon > 360.0)))
        raise ValueError(
            f"{what}: longitude {lon.ravel()[i]} is outside -180...360 degrees; expected WGS84 "
            "degrees (convert projected coordinates with pyproj first)"
        )
    return lat, lon


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance (km) between points given in degrees; arrays broadcast.

    $$d = 2R \\arcsin\\sqrt{\\sin^2\\frac{\\Delta\\varphi}{2} + \\cos\\varphi_1
    \\cos\\varphi_2 \\sin^2\\frac{\\Delta\\lambda}{2}},\\qquad R = 6371.0088\\ \\mathrm{km}.$$

    Returns
    -------
    ndarray of float
        Distances in km, of the broadcast shape of the inputs.
    """
    lat1, lon1 = _validated(lat1, lon1, "haversine_km (point 1)")
    lat2, lon2 = _validated(lat2, lon2, "haversine_km (point 2)")
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(lon2 - lon1)
    h = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def pair_nearest(lat_a, lon_a, lat_b, lon_b, max_km: float) -> pd.DataFrame:
    """Each point of set *a* with its nearest point of set *b* no farther than ``max_km``.

    Uses a scikit-learn ``BallTree`` with the haversine metric on **radians** (latitude first)
    and converts the returned arc lengths to km (see the module docstring for the defect this
    avoids). Points of *a* with no *b* within ``max_km`` are left out; several points of *a*
    may share one point of *b*.

    Parameters
    ----------
    lat_a, lon_a, lat_b, lon_b
        1-D coordinates in WGS84 degrees.
    max_km
        Largest accepted distance (km), inclusive.

    Returns
    -------
    pandas.DataFrame
        Columns ``index_a``, ``index_b`` (positions in the inputs, int) and ``distance_km``,
        one row per paired point of *a*, in the order of *a*.
    """
    from sklearn.neighbors import BallTree

    if not np.isfinite(max_km) or max_km < 0:
        raise ValueError(f"max_km={max_km!r}; expected a distance >= 0 in km")
    lat_a, lon_a = _validated(lat_a, lon_a, "pair_nearest (set a)")
    lat_b, lon_b = _validated(lat_b, lon_b, "pair_nearest (set b)")
    if lat_a.ndim != 1 or lat_b.ndim != 1:
        raise ValueError("pair_nearest expects 1-D coordinate arrays")
    empty = pd.DataFrame(
        {
            "index_a": np.empty(0, int),
            "index_b": np.empty(0, int),
            "distance_km": np.empty(0, float),
        }
    )
    if lat_a.size == 0 or lat_b.size == 0:
        return empty
    tree = BallTree(np.radians(np.column_stack([lat_b, lon_b])), metric="haversine")
    arc, idx = tree.query(np.radians(np.column_stack([lat_a, lon_a])), k=1)
    dist_km = arc[:, 0] * EARTH_RADIUS_KM
    keep = dist_km <= max_km
    return pd.DataFrame(
        {
            "index_a": np.flatnonzero(keep).astype(int),
            "index_b": idx[keep, 0].astype(int),
            "distance_km": dist_km[keep],
        }
    )


def unit_vectors(lat, lon) -> np.ndarray:
    """Points on the unit sphere, shape (n, 3), from degrees (x towards 0°E, z to the pole)."""
    lat, lon = _validated(lat, lon, "unit_vectors")
    p, lam = np.radians(lat.ravel()), np.radians(lon.ravel())
    return np.column_stack([np.cos(p) * np.cos(lam), np.cos(p) * np.sin(lam), np.sin(p)])


def geographic_clusters(lat, lon, n_clusters: int, seed: int = 0) -> np.ndarray:
    """K-means regions of locations, e.g. for leave-one-region-out validation.

    The clustering runs on 3-D unit vectors of the coordinates (:func:`unit_vectors`), so the
    distance it minimises is the chord through the Earth — monotonic in great-circle distance —
    and the antimeridian and the poles are no edges. (k-means on raw degrees, as in DeepSalt's
    split, puts 179.9°E and 179.9°W at opposite ends of the map.)

    Parameters
    ----------
    lat, lon
        1-D coordinates in WGS84 degrees (no NaN; drop samples without a location first).
    n_clusters
        Number of regions (at least 1, at most the number of distinct locations).
    seed
        Seed of the k-means initialisation.

    Returns
    -------
    ndarray of str, shape (n,)
        Labels ``"region_0"`` ... numbered from west to east by the longitude of each
        cluster's mean direction, so the names do not depend on k-means' arbitrary order.
    """
    from sklearn.cluster import KMeans

    xyz = unit_vectors(lat, lon)
    n_distinct = len(np.unique(np.round(xyz, 12), axis=0))
    if not isinstance(n_clusters, int | np.integer) or n_clusters < 1:
        raise ValueError(f"n_clusters={n_clusters!r}; expected a positive integer")
    if n_clusters > n_distinct:
        raise ValueError(
            f"n_clusters={n_clusters} but there are only {n_distinct} distinct locations; "
            "ask for fewer regions"
        )
    km = KMeans(n_clusters=int(n_clusters), random_state=seed, n_init=10).fit(xyz)
    centres = km.cluster_centers_
    centre_lon = np.degrees(np.arctan2(centres[:, 1], centres[:, 0]))
    centre_lat = np.degrees(np.arctan2(centres[:, 2], np.hypot(centres[:, 0], centres[:, 1])))
    order = np.lexsort((centre_lat, np.round(centre_lon, 9)))  # west to east, then south-north
    rank = np.empty(n_clusters, dtype=int)
    rank[order] = np.arange(n_clusters)
    return np.array([f"region_{r}" for r in rank[km.labels_]])


# -- spatial blocks ------------------------------------------------------------------------------

#: Candidate block sides in metres for :func:`choose_block_side`, largest first (field to region).
BLOCK_SIDES_M = (
    100_000, 50_000, 20_000, 10_000, 5000, 2000, 1000, 500, 400, 300, 250, 200, 150, 100, 75,
    50, 40, 30, 25, 20, 15, 10, 5,
)  # fmt: skip


def local_xy_m(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Local equirectangular projection of WGS84 ``lat``, ``lon`` (degrees) to metres.

    ``x`` is scaled by the cosine of the samples' mean latitude; distances are good to about a
    percent over a few hundred km, which is all block labels need. The grid origin is
    (0° N, 0° E), so the same point gets the same coordinates in every request.

    Returns ``(x_m, y_m)``, each of shape (n,).
    """
    lat, lon = _validated(lat, lon, "points")
    radius_m = EARTH_RADIUS_KM * 1000.0
    x = np.radians(lon) * radius_m * np.cos(np.radians(float(np.mean(lat))))
    y = np.radians(lat) * radius_m
    return x, y


def spatial_blocks(
    x_m, y_m, block_size_m: float, origin: tuple[float, float] | None = None
) -> np.ndarray:
    """Square spatial blocks as group labels for grouped (spatial) cross-validation.

    Parameters
    ----------
    x_m, y_m : projected coordinates in metres, shape (n_sample,)
    block_size_m : block edge in metres; choose it larger than the range of spatial
        autocorrelation of the residuals, so that test blocks are really new places
    origin : lower-left corner of the block grid; default the minimum of x and y

    Returns
    -------
    ndarray of str, shape (n_sample,), labels ``"b<col>_<row>"`` zero-padded to a common width
    (at least 3 digits, e.g. ``"b003_012"``), so that sorting the labels sorts the blocks.
    """
    x = np.asarray(x_m, dtype=np.float64).ravel()
    y = np.asarray(y_m, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(
            f"x_m has {x.size} values but y_m has {y.size}; give one x and y per sample."
        )
    if not block_size_m or not np.isfinite(block_size_m) or block_size_m <= 0:
        raise ValueError(f"block_size_m = {block_size_m!r}; expected a positive size in metres.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x_m / y_m contain NaN or inf; drop or locate those samples first.")
    if x.size == 0:
        return np.array([], dtype=str)
    x0, y0 = (x.min(), y.min()) if origin is None else origin
    col = np.floor((x - x0) / block_size_m).astype(np.int64)
    row = np.floor((y - y0) / block_size_m).astype(np.int64)
    width = max(3, len(str(int(np.abs(np.concatenate([col, row])).max()))))
    return np.array(
        [f"b{c:0{width}d}_{r:0{width}d}" for c, r in zip(col, row, strict=True)], dtype=str
    )


def choose_block_side(
    x_m, y_m, *, min_blocks: int = 10, sides: tuple[float, ...] = BLOCK_SIDES_M
) -> float:
    """The largest side in ``sides`` (metres) that gives at least ``min_blocks`` occupied blocks.

    Falls back to the smallest side when none does. ``sides`` is tried in the order given, so
    pass it largest first.
    """
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    for side in sides:
        if np.unique(spatial_blocks(x, y, side)).size >= min_blocks:
            return float(side)
    return float(sides[-1])


def lat_lon_blocks(
    lat, lon, block_size_m: float | None = None, *, min_blocks: int = 10
) -> tuple[np.ndarray, float]:
    """Spatial blocks of WGS84 points on one local grid (:func:`local_xy_m`).

    ``block_size_m`` is the side in metres; ``None`` takes :func:`choose_block_side` (the
    largest of :data:`BLOCK_SIDES_M` giving at least ``min_blocks`` blocks). Pass every point
    that must share the grid in one call (e.g. labelled and unlabelled locations together).

    Returns ``(labels, side_m)``: the :func:`spatial_blocks` labels, shape (n,), and the side.
    """
    x, y = local_xy_m(lat, lon)
    side = (
        float(block_size_m)
        if block_size_m is not None
        else choose_block_side(x, y, min_blocks=min_blocks)
    )
    return spatial_blocks(x, y, side), side


def buffer_split(train_idx, test_idx, x_m, y_m, distance_m: float) -> np.ndarray:
    """The training indices of one fold without the samples near its test samples.

    Buffered (spatial) cross-validation (Roberts et al. 2017, *Ecography* 40:913; Valavi et al.
    2019): training samples closer than ``distance_m`` to **any** test sample of the fold are
    dropped, so the model is not scored on places right next to where it learned, even where a
    test block touches a training block. Use the range of the residual autocorrelation
    (:func:`soilbook.variogram.block_side_from_variogram`) or a share of it.

    Parameters
    ----------
    train_idx, test_idx
        Positional int indices of the fold's training and test samples.
    x_m, y_m
        Projected coordinates (m) of **all** samples, shape (n_sample,) (the indices point into
        them); :func:`local_xy_m` turns lat/lon into such coordinates.
    distance_m
        Buffer distance in metres; a training sample whose distance to the nearest test sample
        is strictly less than ``distance_m`` is dropped. ``0`` drops nothing.

    Returns
    -------
    ndarray of int
        The kept training indices, in their original order (a subset of ``train_idx``).

    Raises
    ------
    SplitError
        When the buffer leaves no training sample (choose a smaller distance or larger blocks).
    """
    from scipy.spatial import cKDTree

    from soilbook.errors import ParameterError, SplitError

    train = np.asarray(train_idx, dtype=np.int64).ravel()
    test = np.asarray(test_idx, dtype=np.int64).ravel()
    x = np.asarray(x_m, dtype=np.float64).ravel()
    y = np.asarray(y_m, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ParameterError(
            f"x_m has {x.size} values but y_m has {y.size}; give one x and y per sample."
        )
    if distance_m is None or not np.isfinite(distance_m) or distance_m < 0:
        raise ParameterError(
            f"distance_m={distance_m!r}; expected a buffer distance >= 0 in metres."
        )
    for name, idx in (("train_idx", train), ("test_idx", test)):
        if idx.size and (idx.min() < 0 or idx.max() >= x.size):
            raise ParameterError(
                f"{name} holds indices outside 0..{x.size - 1}; x_m / y_m must hold the "
                "coordinates of all samples the indices point into."
            )
    used = np.concatenate([train, test])
    if not (np.all(np.isfinite(x[used])) and np.all(np.isfinite(y[used]))):
        raise ParameterError("x_m / y_m contain NaN or inf; drop or locate those samples first.")
    if distance_m == 0 or test.size == 0 or train.size == 0:
        return train.copy()
    tree = cKDTree(np.column_stack([x[test], y[test]]))
    nearest, _ = tree.query(np.column_stack([x[train], y[train]]), k=1)
    kept = train[nearest >= distance_m]
    if kept.size == 0:
        raise SplitError(
            f"a buffer of {distance_m:g} m around the {test.size} test samples leaves none of the "
            f"{train.size} training samples. What to do: use a smaller buffer or larger blocks."
        )
    return kept


__all__ = [
    "BLOCK_SIDES_M",
    "EARTH_RADIUS_KM",
    "buffer_split",
    "choose_block_side",
    "geographic_clusters",
    "haversine_km",
    "lat_lon_blocks",
    "local_xy_m",
    "pair_nearest",
    "spatial_blocks",
    "unit_vectors",
]
