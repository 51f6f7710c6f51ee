"""What every chapter-4 (multimodal surface soil moisture) data source returns.

The simulated tiles (:mod:`soilbook.data.simulate.moisture`) and the real loaders return a
:class:`MoistureData`: a *tile set* of multimodal image tiles and a *sample set* of in-situ
station readings that point into it, both in the schema of :mod:`soilbook.data.schema`.

``tiles`` (a tile set, :func:`soilbook.data.schema.validate_tiles`)
    ``inputs`` / ``valid`` (tile, channel, y, x): the :data:`CHANNELS` in this order, with
    ``channel_group`` and ``channel_units`` from the same table; ``valid`` is 0 where an input
    was not observed (e.g. the optical channels under a cloud; the values there mean nothing).
    ``coarse`` / ``coarse_mask`` (tile, y, x): a coarse SMAP-like soil-moisture product in
    :data:`SOIL_MOISTURE_UNITS` (the label of the intermediate task). Coordinates ``location``
    (the place: all dates of a place go to the same side of a held-out-tile split),
    ``date``, ``landscape`` (one of :data:`LANDSCAPES`) and ``lat`` / ``lon`` (the tile centre,
    WGS84 degrees). A simulated tile set also has ``truth`` (tile, y, x), the simulated true
    soil moisture — for maps and checks, never an input or a label of a model.
``readings`` (a sample set, :func:`soilbook.data.schema.validate_samples`)
    one station reading per row: ``target`` = 0-5 cm volumetric soil moisture in
    :data:`SOIL_MOISTURE_UNITS`; ``covariates`` = the tile's input channels at the station
    pixel (:func:`pixel_features`; NaN where not observed) and ``optical_valid`` (0/1);
    ``group`` = the location (held-out-tile cross-validation); integer coordinates ``tile``,
    ``row``, ``col`` into ``tiles`` (:func:`soilbook.data.schema.label_rasters` turns them
    into label rasters), and ``station``, ``location``, ``landscape``, ``date``, ``lat`` /
    ``lon``.

This module imports only numpy and xarray (and the project's schema and errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from soilbook.errors import ParameterError, SchemaError

__all__ = [
    "CHANNELS",
    "CHANNEL_GROUPS",
    "CHANNEL_NAMES",
    "CHANNEL_UNITS",
    "INPUT_SETS",
    "LANDSCAPES",
    "MODALITY_GROUPS",
    "OPTICAL_CHANNELS",
    "SOIL_MOISTURE_UNITS",
    "MoistureData",
    "day_angle",
    "modality_channels",
    "pixel_features",
]


def day_angle(doy: Any) -> Any:
    """The angle (radians) whose sine and cosine are the ``doy_sin`` / ``doy_cos`` channels:
    ``2π (doy + 0.5) / 365.25``, ``doy`` = 0 on 1 January (a number or an array), the middle
    of the day. Simulated tiles and Earth Engine tiles share it."""
    return 2.0 * np.pi * (doy + 0.5) / 365.25


#: The input channels in order: (name, feature group, unit). Sentinel-1 backscatter in dB and
#: its incidence angle; Sentinel-2 surface reflectance (0-1) and NDVI; elevation and slope;
#: meteorology of the acquisition day (2 m air temperature, that day's precipitation, the
#: antecedent precipitation index); the cyclic day of year.
CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("VV", "sar", "dB"),
    ("VH", "sar", "dB"),
    ("theta", "sar", "deg"),
    ("B2", "spectral", "1"),
    ("B3", "spectral", "1"),
    ("B4", "spectral", "1"),
    ("B8", "spectral", "1"),
    ("B11", "spectral", "1"),
    ("ndvi", "spectral", "1"),
    ("elevation", "terrain", "m"),
    ("slope", "terrain", "deg"),
    ("t2m", "climate", "degC"),
    ("precip", "climate", "mm/day"),
    ("api", "climate", "mm"),
    ("doy_sin", "time", "1"),
    ("doy_cos", "time", "1"),
)
#: The channel names, groups and units of :data:`CHANNELS`, each in channel order.
CHANNEL_NAMES: tuple[str, ...] = tuple(c[0] for c in CHANNELS)
CHANNEL_GROUPS: tuple[str, ...] = tuple(c[1] for c in CHANNELS)
CHANNEL_UNITS: tuple[str, ...] = tuple(c[2] for c in CHANNELS)
#: The optical channels (all invalid under a cloud).
OPTICAL_CHANNELS: tuple[str, ...] = ("B2", "B3", "B4", "B8", "B11", "ndvi")
#: The network's modalities (one stem each) → the channel groups each reads.
MODALITY_GROUPS: dict[str, tuple[str, ...]] = {
    "sar": ("sar",),
    "optical": ("spectral",),
    "terrain": ("terrain",),
    "meteo": ("climate", "time"),
}
#: The paper's ablation steps: SAR only → + optical + terrain → + meteorology and time.
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "sar": ("sar",),
    "sar+optical+terrain": ("sar", "optical", "terrain"),
    "all": ("sar", "optical", "terrain", "meteo"),
}
#: The landscape types of the paper, in the order every per-landscape setting uses.
LANDSCAPES: tuple[str, ...] = ("farmland", "alpine grassland", "arid basin")
#: Volumetric soil moisture in percent (100 × m³/m³).
SOIL_MOISTURE_UNITS = "%"


@dataclass(frozen=True)
class MoistureData:
    """A chapter-4 data source: image tiles and the station readings that point into them.

    Attributes
    ----------
    tiles
        A tile set (:func:`soilbook.data.schema.validate_tiles`) with the :data:`CHANNELS`,
        usually a ``coarse`` product and ``landscape`` / ``date`` / ``lat`` / ``lon``
        coordinates along ``tile``.
    readings
        A sample set (:func:`soilbook.data.schema.validate_samples`) of station readings
        (``target`` in %), with integer ``tile`` / ``row`` / ``col`` coordinates into
        ``tiles``.
    description
        What the data are and where they came from, in sentences, for the notebook.
    """

    tiles: xr.Dataset
    readings: xr.Dataset
    description: str

    @property
    def landscapes(self) -> tuple[str, ...]:
        """The landscape types present in ``tiles``, in the order of :data:`LANDSCAPES`
        (others after them, sorted)."""
        if "landscape" not in self.tiles.coords:
            return ()
        present = {str(v) for v in np.asarray(self.tiles["landscape"].values)}
        known = [name for name in LANDSCAPES if name in present]
        return (*known, *sorted(present - set(LANDSCAPES)))


def modality_channels(tiles: xr.Dataset, modality: str) -> list[int]:
    """Positions along ``channel`` of the channels a modality reads (:data:`MODALITY_GROUPS`),
    in channel order.

    Raises :class:`ParameterError` for an unknown modality and :class:`SchemaError` when the
    tile set has no ``channel_group`` coordinate.
    """
    if modality not in MODALITY_GROUPS:
        raise ParameterError(
            f"modality={modality!r} is not known. Expected one of {list(MODALITY_GROUPS)}. "
            "What to do: pick one of those (INPUT_SETS lists the ablation steps)."
        )
    if "channel_group" not in tiles.coords:
        raise SchemaError(
            "the tile set has no 'channel_group' coordinate. Expected: one group per channel "
            "(soilbook.data.schema.FEATURE_GROUPS). What to do: build it with "
            "soilbook.data.schema.tile_set."
        )
    wanted = MODALITY_GROUPS[modality]
    groups = [str(g) for g in np.asarray(tiles["channel_group"].values)]
    return [i for i, g in enumerate(groups) if g in wanted]


def pixel_features(tiles: xr.Dataset, tile: Any, row: Any, col: Any) -> np.ndarray:
    """The input channels at given pixels, NaN where an input was not observed.

    Parameters
    ----------
    tiles : a tile set
    tile, row, col : integer positions (scalars or arrays of one length n) along ``tile``,
        ``y`` and ``x``

    Returns
    -------
    ndarray of float32, shape (n, n_channel)
        ``inputs[tile, :, row, col]`` where ``valid`` is 1, NaN elsewhere.

    Raises :class:`ParameterError` when a position is not an integer inside the tile set or the
    three have different lengths.
    """
    idx = []
    for name, value, dim in (("tile", tile, "tile"), ("row", row, "y"), ("col", col, "x")):
        v = np.atleast_1d(np.asarray(value))
        size = tiles.sizes[dim]
        if not np.issubdtype(v.dtype, np.integer) or (v.size and (v.min() < 0 or v.max() >= size)):
            raise ParameterError(
                f"{name} must hold integer positions in [0, {size}) along '{dim}'; got "
                f"{v[:5].tolist()}{' …' if v.size > 5 else ''}. What to do: index by position "
                "(0-based), e.g. the 'tile', 'row' and 'col' coordinates of the readings."
            )
        idx.append(v.astype(np.int64).ravel())
    if not len(idx[0]) == len(idx[1]) == len(idx[2]):
        raise ParameterError(
            f"tile, row and col have lengths {[len(i) for i in idx]}; expected one length "
            "(one pixel per entry)."
        )
    t, r, c = idx
    x = np.asarray(tiles["inputs"].values)[t, :, r, c].astype(np.float32)
    m = np.asarray(tiles["valid"].values)[t, :, r, c].astype(bool)
    return np.where(m, x, np.float32(np.nan)).astype(np.float32)
