"""A user's own chapter-4 data: a tile set in NetCDF and a CSV of station readings.

The tile set (``data_path``) is a NetCDF file in the tile-set schema of
:mod:`soilbook.data.schema` (``inputs`` and ``valid`` (tile, channel, y, x), optionally
``coarse`` with ``coarse_mask``, coordinates ``channel_group``, ``channel_units``,
``location``). The readings (``stations_path``) are a CSV with one row per reading:

=================  ================================================================
column             meaning
=================  ================================================================
``station``        the station's name (text)
``tile``           the tile's position along ``tile`` in the NetCDF (0-based int)
``row``, ``col``   the station's pixel in that tile (0-based ints along ``y``, ``x``)
``soil_moisture``  the 0-5 cm volumetric soil moisture in % (100 × m³/m³)
=================  ================================================================

Each reading's covariates are the tile's channels at its pixel (NaN where not observed,
:func:`soilbook.data.moisture.pixel_features`) and ``group`` is the tile's ``location``.
NetCDF is read with xarray (no pickle); nothing in the files is executed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilbook.data.moisture import SOIL_MOISTURE_UNITS, MoistureData, pixel_features
from soilbook.data.schema import sample_set, validate_tiles
from soilbook.data.tables import read_netcdf
from soilbook.errors import SchemaError

__all__ = ["READING_COLUMNS", "load_moisture_files", "readings_for_tiles"]

#: The columns the readings CSV must have.
READING_COLUMNS: tuple[str, ...] = ("station", "tile", "row", "col", "soil_moisture")


def readings_for_tiles(table: pd.DataFrame, tiles: xr.Dataset, *, source: str) -> xr.Dataset:
    """The readings sample set of ``table`` (columns :data:`READING_COLUMNS`) on ``tiles``.

    Raises :class:`SchemaError` naming a missing column, a position outside the tiles, or a
    soil moisture that is not a number in [0, 100] %.
    """
    missing = [c for c in READING_COLUMNS if c not in table.columns]
    if missing:
        raise SchemaError(
            f"the readings table lacks the column(s) {missing}. Expected: "
            f"{list(READING_COLUMNS)} (soil_moisture in vol %). What to do: rename or add them."
        )
    sm = pd.to_numeric(table["soil_moisture"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(sm) | (sm < 0) | (sm > 100)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"{int(bad.sum())} reading(s) have a soil moisture that is not a number in [0, 100] "
            f"% (the first in data row {first + 1}: {table['soil_moisture'].iloc[first]!r}). "
            "What to do: give volumetric % (100 × m³/m³) and drop readings without a value."
        )
    pos = {}
    for name, dim in (("tile", "tile"), ("row", "y"), ("col", "x")):
        v = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        size = tiles.sizes[dim]
        if not (
            np.isfinite(v).all() and (v == np.round(v)).all() and v.min() >= 0 and v.max() < size
        ):
            raise SchemaError(
                f"column {name!r} must hold integer positions in [0, {size}) along the tile "
                f"set's '{dim}'. What to do: give 0-based positions into the NetCDF."
            )
        pos[name] = v.astype(np.int64)
    t, r, c = pos["tile"], pos["row"], pos["col"]
    names = [str(n) for n in tiles["channel"].values]
    groups = [str(g) for g in tiles["channel_group"].values]
    locations = np.asarray(tiles["location"].values).astype(str)
    return sample_set(
        sm,
        groups=locations[t],
        source=source,
        licence=str(tiles.attrs.get("licence", "your own data")),
        citation=str(tiles.attrs.get("citation", "")),
        simulated=bool(tiles.attrs.get("simulated", False)),
        target_units=SOIL_MOISTURE_UNITS,
        target_long_name="0-5 cm volumetric soil moisture",
        covariates=pixel_features(tiles, t, r, c),
        features=list(zip(names, groups, strict=True)),
        feature_units=[str(u) for u in tiles["channel_units"].values],
        coords={
            "tile": ("sample", t),
            "row": ("sample", r),
            "col": ("sample", c),
            "station": ("sample", table["station"].astype(str).to_numpy()),
            "location": ("sample", locations[t]),
        },
    )


def load_moisture_files(tiles_path: str | Path, stations_path: str | Path) -> MoistureData:
    """A user's tile set (NetCDF) and readings (CSV) as :class:`MoistureData` (module docstring).

    Raises :class:`SchemaError` when the tile set or the table does not fit the schema.
    """
    tiles = validate_tiles(read_netcdf(Path(tiles_path)))
    table = pd.read_csv(stations_path)
    readings = readings_for_tiles(table, tiles, source=f"your files ({Path(stations_path).name})")
    return MoistureData(
        tiles=tiles,
        readings=readings,
        description=(
            f"Your data: {tiles.sizes['tile']} tiles of {tiles.sizes['y']} x {tiles.sizes['x']} "
            f"pixels from {Path(tiles_path).name} and {readings.sizes['sample']} station "
            f"readings from {Path(stations_path).name}."
        ),
    )
