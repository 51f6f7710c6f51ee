"""Sensor band tables that ship with the package (no download; see ``README.md`` here).

Each table is a small CSV beside this module: ``# key: value`` lines (``sensor``, ``columns``,
``source``, ``licence``), then a header row and one row per band. :func:`band_table` reads one;
numbers are parsed with :func:`float`, so every value is exactly the decimal written in the file
(a table copied from a source array round-trips bit for bit).

=================  ==========================================================================
``enmap_l2a``      EnMAP L2A, 224 bands: ``band``, ``centre_nm``, ``fwhm_nm``
``prisma``         PRISMA, 233 bands: ``band``, ``centre_nm``, ``fwhm_nm``
``sentinel2_msi``  Sentinel-2 MSI, 13 bands: ``band``, ``resolution_m``, ``centre_s2a_nm``,
                   ``centre_s2b_nm``, ``bandwidth_s2a_nm``
=================  ==========================================================================
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

#: The packaged tables, by name (the CSV file is ``<name>.csv``).
TABLES = ("enmap_l2a", "prisma", "sentinel2_msi")


@dataclass(frozen=True)
class BandTable:
    """One packaged band table.

    Attributes
    ----------
    name
        Table name, one of :data:`TABLES`.
    meta
        The ``# key: value`` lines of the file (``sensor``, ``columns``, ``source``, ``licence``).
    bands
        Band names in the file's order.
    columns
        Every numeric column as a read-only float64 array, one value per band.
    """

    name: str
    meta: dict[str, str]
    bands: tuple[str, ...]
    columns: dict[str, np.ndarray]

    def __getitem__(self, column: str) -> np.ndarray:
        try:
            return self.columns[column]
        except KeyError:
            raise KeyError(
                f"the band table {self.name!r} has no column {column!r}; it has "
                f"{sorted(self.columns)}"
            ) from None


@functools.lru_cache(maxsize=len(TABLES))
def band_table(name: str) -> BandTable:
    """The packaged band table ``name`` (one of :data:`TABLES`); read once, then cached."""
    if name not in TABLES:
        raise ValueError(f"no packaged band table {name!r}; available: {list(TABLES)}")
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    meta: dict[str, str] = {}
    body = []
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    rows = list(csv.reader(body))
    header, records = rows[0], rows[1:]
    if header[0] != "band" or any(len(r) != len(header) for r in records):
        raise ValueError(
            f"the packaged table {name}.csv is damaged (header {header}); reinstall soilbook"
        )
    columns = {}
    for j, column in enumerate(header[1:], start=1):
        values = np.array([float(r[j]) for r in records], dtype=np.float64)
        values.flags.writeable = False
        columns[column] = values
    return BandTable(name, meta, tuple(r[0] for r in records), columns)


__all__ = ["TABLES", "BandTable", "band_table"]
