"""Geographic regions for leave-one-region-out validation: compact, of comparable extent, with a
floor on the labelled pixels each region holds.

Why not plain k-means
---------------------
K-means of the coordinates (:func:`soilbook.geo.geographic_clusters`) minimises the squared
distance to a region's centre, so a few isolated sites (oceanic islands) join whichever
cluster is least far, however far that is. On the bundled ICRAF-ISRIC library (800 sites,
5 regions) it made one region of 51 sites and 13 labelled pixels that joined Hawaii, Samoa and
eastern Australia (9,256 km across), beside regions 6,300-10,600 km across.

The rule (:func:`compact_regions`)
----------------------------------
1. **Locations.** Sites at the same coordinates (several lab samples, e.g. the horizons of one
   profile) are one location; they always share a region. Above
   :data:`MAX_LINKAGE_LOCATIONS` locations, nearby locations are pooled into grid cells (a
   cell side doubling from 0.01 degrees until few enough remain) for the steps below.
2. **Land groups.** Locations closer than :data:`GAP_KM` (2,000 km) to another one are
   chained into one group (single linkage on great-circle distance,
   :func:`soilbook.geo.haversine_km`): a continent's sites form a group, an ocean between
   sites separates groups. A group with fewer than ``min_pixels`` labelled pixels
   (:func:`expected_pixels`) is **dropped**, with a message that says how many sites and
   where: it is too small to be held out on its own and too far from any other group to join
   it without making a region span an ocean.
3. **As many regions as asked.** While there are more groups than ``n_regions``, the two with
   the smallest gap between their nearest sites are merged. While there are fewer, the
   *widest* region that can be split is cut in two across its longest axis (the first
   principal axis of its sites on the plane tangent to the Earth at its centre), at the point
   that leaves the most labelled pixels on the smaller side — near the median site; a region
   can be split when both halves keep at least ``min_pixels`` labelled pixels. When no region
   can be split, the number of regions is lowered, with a message.
4. Regions are named ``region_0`` ... from west to east by the longitude of their centre.

The **extent** of a region is the largest great-circle distance between two of its locations
(km); its **radius** the median distance of its sites from its centre
(:func:`region_summary`). Everything is deterministic (no random draw is involved). The
extents can only be as comparable as the sites' geography allows: splitting always takes the
widest region, but a compact land group (eastern Australia) is never inflated by joining it to
another across the sea.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from soilbook import geo
from soilbook.errors import ParameterError

#: Default floor on the labelled satellite pixels (paired sites) of a region: the test set
#: when the region is held out. 20 keeps the held-out R² from resting on a dozen pixels.
DEFAULT_MIN_REGION_PIXELS = 20
#: Fewest paired sites drawn in every region (the test sites when it is held out).
MIN_PAIRED_PER_REGION = 2
#: Sites farther than this from every other site (km) start a new land group.
GAP_KM = 2000.0
#: Above this many distinct locations the clustering runs on pooled grid cells.
MAX_LINKAGE_LOCATIONS = 3000


def expected_pixels(n_sites: int, n_locations: int, paired_fraction: float) -> int:
    """Labelled pixels (paired sites) a region of ``n_sites`` sites at ``n_locations``
    pixel-eligible locations gets: ``min(n_locations, max(2, round(paired_fraction * n_sites)))``
    (one labelled pixel per location, at least :data:`MIN_PAIRED_PER_REGION`)."""
    wanted = max(MIN_PAIRED_PER_REGION, round(float(paired_fraction) * int(n_sites)))
    return int(min(int(n_locations), wanted))


@dataclass
class Regions:
    """The result of :func:`compact_regions`.

    Attributes
    ----------
    group
        (n,) str: the region of each site, ``""`` for a dropped site.
    kept
        (n,) bool: False for the sites dropped as isolated.
    messages
        What was lowered, merged or dropped, in words (empty when nothing was).
    n_requested
        The ``n_regions`` asked for.
    """

    group: np.ndarray
    kept: np.ndarray
    messages: list[str] = field(default_factory=list)
    n_requested: int = 0


def location_ids(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n,) int: the same id for sites at the same coordinates (rounded to 1e-6 degrees).

    Sites without coordinates (NaN) each get their own id: nothing says they share a place.
    """
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    out = np.empty(lat.size, dtype=int)
    known = np.isfinite(lat) & np.isfinite(lon)
    if known.any():
        pts = np.round(np.c_[lat[known], lon[known]], 6)
        _, inv = np.unique(pts, axis=0, return_inverse=True)
        out[known] = inv.ravel()
    n_known = int(out[known].max()) + 1 if known.any() else 0
    out[~known] = n_known + np.arange(int((~known).sum()))
    return out


def _units(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustering units: (unit id per site, unit lat, unit lon), pooled into cells if many."""
    loc = location_ids(lat, lon)
    step = 0.0
    while True:
        if step:
            key = np.c_[np.floor(lat / step), np.floor(lon / step)]
            _, unit = np.unique(key, axis=0, return_inverse=True)
            unit = unit.ravel()
        else:
            unit = loc
        n_units = int(unit.max()) + 1
        if n_units <= MAX_LINKAGE_LOCATIONS:
            break
        step = 0.01 if not step else step * 2
    xyz = geo.unit_vectors(lat, lon)
    sums = np.zeros((n_units, 3))
    np.add.at(sums, unit, xyz)
    u_lat = np.degrees(np.arctan2(sums[:, 2], np.hypot(sums[:, 0], sums[:, 1])))
    u_lon = np.degrees(np.arctan2(sums[:, 1], sums[:, 0]))
    return unit, u_lat, u_lon


def _distance_matrix(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle distances (km) between all points, (n, n)."""
    return geo.haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])


def _eligible_locations(
    unit: np.ndarray, loc: np.ndarray, eligible: np.ndarray, n_units: int
) -> np.ndarray:
    """Per clustering unit: the pixel-eligible locations in it (a location lies in one unit)."""
    pairs = np.unique(np.c_[unit[eligible], loc[eligible]], axis=0)
    if not len(pairs):
        return np.zeros(n_units, int)
    return np.bincount(pairs[:, 0], minlength=n_units)


@dataclass
class _Units:
    """The clustering units (locations or cells) and what the steps need about them."""

    lat: np.ndarray  # (u,) degrees
    lon: np.ndarray
    sites: np.ndarray  # (u,) sites per unit
    locations: np.ndarray  # (u,) pixel-eligible locations per unit
    dist: np.ndarray  # (u, u) km
    f: float  # paired_fraction
    floor: int

    def pixels(self, members: np.ndarray) -> int:
        """Expected labelled pixels of the units ``members``."""
        return expected_pixels(
            int(self.sites[members].sum()), int(self.locations[members].sum()), self.f
        )

    def extent(self, members: np.ndarray) -> float:
        """Largest distance (km) between two units of ``members``."""
        return float(self.dist[np.ix_(members, members)].max()) if members.size > 1 else 0.0


def _land_groups(units: _Units) -> list[np.ndarray]:
    """Step 2: units chained by gaps below :data:`GAP_KM` (single linkage components)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, comp = connected_components(csr_matrix(units.dist <= GAP_KM), directed=False)
    return [np.flatnonzero(comp == c) for c in np.unique(comp)]


def _merge_closest(regions: list[np.ndarray], units: _Units) -> list[np.ndarray]:
    """Step 3, too many: merge the two regions with the smallest gap between nearest sites."""
    best = None
    for i in range(len(regions)):
        for j in range(i + 1, len(regions)):
            gap = float(units.dist[np.ix_(regions[i], regions[j])].min())
            key = (gap, units.extent(np.r_[regions[i], regions[j]]), i, j)
            best = key if best is None or key < best else best
    assert best is not None
    _, _, i, j = best
    merged = np.sort(np.r_[regions[i], regions[j]])
    return [r for k, r in enumerate(regions) if k not in (i, j)] + [merged]


def _split_across_axis(members: np.ndarray, units: _Units) -> tuple[np.ndarray, np.ndarray]:
    """Step 3, too few: ``members`` cut across its longest axis where the smaller side keeps
    the most labelled pixels (ties: nearest the median site)."""
    xyz = geo.unit_vectors(units.lat[members], units.lon[members])
    w = units.sites[members].astype(float)
    centre = (w[:, None] * xyz).sum(axis=0)
    centre /= np.linalg.norm(centre)
    # an orthonormal basis of the tangent plane at the centre
    helper = np.array([0.0, 0.0, 1.0]) if abs(centre[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(centre, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(centre, e1)
    plane = np.c_[xyz @ e1, xyz @ e2]
    mean = np.average(plane, axis=0, weights=w)
    cov = np.cov((plane - mean).T, aweights=w)
    axis = np.linalg.eigh(np.atleast_2d(cov))[1][:, -1]
    t = (plane - mean) @ axis
    order = np.lexsort((members, t))
    sites = np.cumsum(units.sites[members][order])
    locs = np.cumsum(units.locations[members][order])
    best_key, best_cut = None, 1
    for cut in range(1, order.size):
        if t[order[cut]] == t[order[cut - 1]]:
            continue  # never split units at the same position along the axis
        left = expected_pixels(int(sites[cut - 1]), int(locs[cut - 1]), units.f)
        right = expected_pixels(
            int(sites[-1] - sites[cut - 1]), int(locs[-1] - locs[cut - 1]), units.f
        )
        key = (-min(left, right), abs(float(sites[cut - 1]) - float(sites[-1]) / 2))
        if best_key is None or key < best_key:
            best_key, best_cut = key, cut
    return np.sort(members[order[:best_cut]]), np.sort(members[order[best_cut:]])


def _split_widest(regions: list[np.ndarray], units: _Units) -> list[np.ndarray] | None:
    """Step 3, too few: split the widest region whose halves both meet the floor, or None."""
    for i in sorted(range(len(regions)), key=lambda k: -units.extent(regions[k])):
        if regions[i].size < 2:
            continue
        a, b = _split_across_axis(regions[i], units)
        if units.pixels(a) >= units.floor and units.pixels(b) >= units.floor:
            return [r for k, r in enumerate(regions) if k != i] + [a, b]
    return None


def _places(lat: np.ndarray, lon: np.ndarray) -> str:
    """A few rounded coordinates, for a message."""

    def fmt(la: float, lo: float) -> str:
        return f"{abs(la):.0f}°{'S' if la < 0 else 'N'} {abs(lo):.0f}°{'W' if lo < 0 else 'E'}"

    pts = sorted({fmt(la, lo) for la, lo in zip(lat, lon, strict=True)})
    return ", ".join(pts[:6]) + (" ..." if len(pts) > 6 else "")


def compact_regions(
    lat: np.ndarray,
    lon: np.ndarray,
    n_regions: int,
    *,
    paired_fraction: float,
    min_pixels: int = DEFAULT_MIN_REGION_PIXELS,
    eligible: np.ndarray | None = None,
    what: str = "the data",
) -> Regions:
    """Compact regions of comparable extent with at least ``min_pixels`` labelled pixels each.

    See the module docstring for the rule.

    Parameters
    ----------
    lat, lon
        (n,) WGS84 degrees of the sites (finite).
    n_regions
        Regions wanted (>= 2).
    paired_fraction
        Share of a region's sites that get a labelled pixel (:func:`expected_pixels`).
    min_pixels
        Floor on a region's labelled pixels.
    eligible
        (n,) bool: sites that may get a satellite pixel (topsoil, or depth not recorded);
        default all. Only their locations count towards a region's labelled pixels.
    what
        How the messages name the sites.

    Raises
    ------
    ParameterError
        When not even two regions can hold ``min_pixels`` labelled pixels each.
    """
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    n = lat.size
    k = int(n_regions)
    eligible = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    loc = location_ids(lat, lon)
    unit, u_lat, u_lon = _units(lat, lon)
    n_units = u_lat.size
    dist = _distance_matrix(u_lat, u_lon)
    np.fill_diagonal(dist, 0.0)
    units = _Units(
        lat=u_lat,
        lon=u_lon,
        sites=np.bincount(unit, minlength=n_units),
        locations=_eligible_locations(unit, loc, eligible, n_units),
        dist=dist,
        f=float(paired_fraction),
        floor=int(min_pixels),
    )
    messages: list[str] = []
    groups = _land_groups(units)
    regions = [g for g in groups if units.pixels(g) >= units.floor]
    small = [g for g in groups if units.pixels(g) < units.floor]
    kept = np.ones(n, bool)
    if small:
        gone = np.isin(unit, np.concatenate(small))
        kept &= ~gone
        messages.append(
            f"dropped {int(gone.sum())} isolated site(s) of {what} in {len(small)} group(s) "
            f"more than {GAP_KM:,.0f} km from any other site ({_places(lat[gone], lon[gone])}): "
            f"each group has fewer than min_region_pixels={min_pixels} labelled pixels, too few "
            "to be held out alone, and joining it to another would make a region span the sea."
        )
    if not regions:
        raise ParameterError(
            f"the sites of {what} form no group with at least min_region_pixels={min_pixels} labelled "
            f"pixels (paired_fraction={paired_fraction}, {n} sites at "
            f"{np.unique(loc).size} locations). Lower min_region_pixels, or raise n_sites or "
            "paired_fraction."
        )
    n_merged = 0
    while len(regions) > k:
        regions = _merge_closest(regions, units)
        n_merged += 1
    if n_merged:
        messages.append(
            f"{n_merged} pair(s) of land groups closest to each other were merged to make "
            f"n_regions={k} regions."
        )
    while len(regions) < k:
        split = _split_widest(regions, units)
        if split is None:
            break
        regions = split
    if len(regions) < 2:
        raise ParameterError(
            f"the sites of {what} cannot form two regions with at least min_region_pixels={min_pixels} "
            f"labelled pixels each (paired_fraction={paired_fraction}, {int(kept.sum())} "
            f"sites). Lower min_region_pixels, or raise n_sites or paired_fraction."
        )
    if len(regions) < k:
        messages.append(
            f"only {len(regions)} regions can hold at least min_region_pixels={min_pixels} "
            f"labelled pixels each, so n_regions={k} was lowered to {len(regions)} (lower "
            "min_region_pixels or raise n_sites to keep more)."
        )
    # name west to east by the longitude of the centre (mean direction of the sites)
    xyz = geo.unit_vectors(lat, lon)
    keys = []
    for i, members in enumerate(regions):
        s = xyz[np.isin(unit, members)].sum(axis=0)
        keys.append((round(float(np.degrees(np.arctan2(s[1], s[0]))), 9), i))
    group = np.full(n, "", dtype=object)
    for rank, (_, i) in enumerate(sorted(keys)):
        group[np.isin(unit, regions[i])] = f"region_{rank}"
    return Regions(group=group.astype(str), kept=kept, messages=messages, n_requested=k)


def region_summary(
    group: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    labelled: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per region: sites, locations, labelled pixels, extent and radius (km), centre.

    Parameters
    ----------
    group, lat, lon
        (n,) region and WGS84 degrees of each site (NaN where not known).
    labelled
        (n,) bool: sites with a labelled pixel; counted as ``labelled_pixels``.

    Returns
    -------
    pandas.DataFrame
        Indexed by region: ``sites``, ``locations``, ``labelled_pixels``, ``extent_km`` (the
        largest great-circle distance between two located sites), ``radius_km`` (median
        distance of the located sites from the region's centre), ``centre_lat``,
        ``centre_lon`` (degrees). Distances and centre are NaN where fewer than one / two
        sites of the region have coordinates.
    """
    group = np.asarray(group).astype(str)
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    labelled = np.zeros(group.size, bool) if labelled is None else np.asarray(labelled, bool)
    loc = location_ids(lat, lon)
    rows = []
    for g in sorted(set(group.tolist())):
        m = group == g
        known = m & np.isfinite(lat) & np.isfinite(lon)
        extent = radius = c_lat = c_lon = np.nan
        if known.any():
            la, lo = lat[known], lon[known]
            s = geo.unit_vectors(la, lo).sum(axis=0)
            c_lat = float(np.degrees(np.arctan2(s[2], np.hypot(s[0], s[1]))))
            c_lon = float(np.degrees(np.arctan2(s[1], s[0])))
            radius = float(np.median(geo.haversine_km(la, lo, c_lat, c_lon)))
            pts = np.unique(np.round(np.c_[la, lo], 6), axis=0)
            if len(pts) > 1:
                extent = max(
                    float(geo.haversine_km(p[0], p[1], pts[:, 0], pts[:, 1]).max()) for p in pts
                )
            else:
                extent = 0.0
        rows.append(
            {
                "region": g,
                "sites": int(m.sum()),
                "locations": int(np.unique(loc[m]).size),
                "labelled_pixels": int((m & labelled).sum()),
                "extent_km": extent,
                "radius_km": radius,
                "centre_lat": c_lat,
                "centre_lon": c_lon,
            }
        )
    return pd.DataFrame(rows).set_index("region")


def describe_regions(summary: pd.DataFrame) -> str:
    """One sentence listing each region's extent (km) and labelled pixels, for a description."""
    parts = []
    for g, row in summary.iterrows():
        extent = (
            "extent unknown (no coordinates)"
            if not np.isfinite(row["extent_km"])
            else f"{row['extent_km']:,.0f} km across"
        )
        parts.append(
            f"{g}: {extent}, {int(row['sites'])} sites at {int(row['locations'])} locations, "
            f"{int(row['labelled_pixels'])} labelled pixels"
        )
    return "Regions: " + "; ".join(parts) + "."


__all__ = [
    "DEFAULT_MIN_REGION_PIXELS",
    "GAP_KM",
    "MAX_LINKAGE_LOCATIONS",
    "MIN_PAIRED_PER_REGION",
    "Regions",
    "compact_regions",
    "describe_regions",
    "expected_pixels",
    "location_ids",
    "region_summary",
]
