"""What every chapter-3 (SSL-SoilNet, soil organic carbon) data source returns.

The simulated region (:mod:`soilbook.data.simulate.soc`), RaCA with its TerraClimate series
(:mod:`soilbook.data.real.raca`) and a user's own file all give a :class:`SocData`: a labelled
sample set and, for self-supervised pre-training, an unlabelled one, both in the schema of
:mod:`soilbook.data.schema` with

``climate`` (sample, time, variable)
    :data:`N_MONTHS` monthly values from :data:`FIRST_MONTH` (2010-01 … 2015-01, ``time`` = the
    first day of each month) of the :data:`CLIMATE_VARIABLES` in this order, in the physical
    units of :data:`CLIMATE_UNITS` (TerraClimate's scale factors applied);
``patches`` (sample, layer, y, x), where an image exists
    the :data:`IMAGE_LAYERS` (Landsat-8 surface reflectance bands 1–7 as 0–1, five normalised
    differences, elevation in m, slope in percent) centred on the sample, with ``layer_group``
    from :data:`IMAGE_LAYER_GROUPS`;
``covariates`` (sample, feature), where an image exists
    the centre pixel of every patch layer (the same names and groups), which the tabular
    baselines read (:func:`soilbook.data.schema.to_tabular` adds the flattened climate);
``target``, ``group``, ``lat`` / ``lon``
    SOC (its unit in ``target.attrs["units"]``: g/kg for the simulated concentration, Mg C/ha
    for RaCA's stock), the spatial block of grouped cross-validation, WGS84 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = [
    "CLIMATE_SCALE_FACTORS",
    "CLIMATE_UNITS",
    "CLIMATE_VARIABLES",
    "FIRST_MONTH",
    "IMAGE_LAYERS",
    "IMAGE_LAYER_GROUPS",
    "ND_INDICES",
    "N_MONTHS",
    "SocData",
    "months",
]

#: The 13 TerraClimate variables of the paper, in the order the climate axis holds them.
CLIMATE_VARIABLES: tuple[str, ...] = (
    "aet",
    "def",
    "pdsi",
    "pet",
    "pr",
    "ro",
    "soil",
    "srad",
    "swe",
    "tmmn",
    "tmmx",
    "vap",
    "vpd",
)
#: Physical units of each variable (TerraClimate's documentation, after its scale factors):
#: actual and reference evapotranspiration, climatic water deficit, precipitation, runoff, soil
#: moisture and snow water equivalent in mm per month; the Palmer drought severity index
#: unitless; downward shortwave radiation in W/m²; minimum and maximum temperature in °C;
#: vapour pressure and its deficit in kPa.
CLIMATE_UNITS: dict[str, str] = {
    "aet": "mm",
    "def": "mm",
    "pdsi": "1",
    "pet": "mm",
    "pr": "mm",
    "ro": "mm",
    "soil": "mm",
    "srad": "W/m2",
    "swe": "mm",
    "tmmn": "degC",
    "tmmx": "degC",
    "vap": "kPa",
    "vpd": "kPa",
}
#: TerraClimate's scale factors (Earth Engine catalogue, ``gee:scale``): stored integer x
#: factor = the value in :data:`CLIMATE_UNITS`, so also the resolution the values come in.
CLIMATE_SCALE_FACTORS: dict[str, float] = {
    "aet": 0.1,
    "def": 0.1,
    "pdsi": 0.01,
    "pet": 0.1,
    "pr": 1.0,
    "ro": 1.0,
    "soil": 0.1,
    "srad": 0.1,
    "swe": 1.0,
    "tmmn": 0.1,
    "tmmx": 0.1,
    "vap": 0.001,
    "vpd": 0.01,
}
#: The first month of the series and its length (2010-01 … 2015-01, as in the paper).
FIRST_MONTH = "2010-01"
N_MONTHS = 61

#: The paper's five normalised differences (a − b) / (a + b) of Landsat-8 bands: name → (a, b).
ND_INDICES: dict[str, tuple[str, str]] = {
    "clay": ("B6", "B7"),
    "ferrous": ("B6", "B5"),
    "carbonate": ("B4", "B3"),
    "rock_outcrop": ("B6", "B3"),
    "ndvi": ("B5", "B4"),
}
#: The 14 image channels in order: bands 1–7, the normalised differences, elevation, slope.
IMAGE_LAYERS: tuple[str, ...] = (
    *(f"B{i}" for i in range(1, 8)),
    *ND_INDICES,
    "elevation",
    "slope",
)
#: The feature group of each image channel (:data:`soilbook.data.schema.FEATURE_GROUPS`).
IMAGE_LAYER_GROUPS: dict[str, str] = {
    **{f"B{i}": "spectral" for i in range(1, 8)},
    **{name: "spectral" for name in ND_INDICES},
    "ndvi": "vegetation",
    "elevation": "terrain",
    "slope": "terrain",
}


def months(first: str = FIRST_MONTH, n: int = N_MONTHS) -> np.ndarray:
    """The ``time`` coordinate of a climate series: ``n`` month starts from ``first``
    ("YYYY-MM"), as datetime64[ns], shape (n,)."""
    start = np.datetime64(first, "M")
    return (start + np.arange(int(n))).astype("datetime64[D]").astype("datetime64[ns]")


@dataclass(frozen=True)
class SocData:
    """A chapter-3 data source: labelled samples and unlabelled locations.

    Attributes
    ----------
    labelled
        A valid sample set (:func:`soilbook.data.schema.validate_samples`) with ``climate`` and,
        where an image exists, ``patches`` and their centre-pixel ``covariates``.
    unlabelled
        The same inputs at locations without a label, for self-supervised pre-training (no
        ``target``), or None where the source has none. Its ``group`` uses the same block rule
        as ``labelled``, so a fold can leave out the unlabelled locations of its test blocks.
    description
        What the data are and where they came from, in sentences, for the notebook.
    """

    labelled: xr.Dataset
    unlabelled: xr.Dataset | None
    description: str

    @property
    def has_image(self) -> bool:
        """Whether the samples carry image ``patches`` (RaCA from the mirror does not)."""
        return "patches" in self.labelled.data_vars
