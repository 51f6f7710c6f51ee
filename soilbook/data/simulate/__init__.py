"""Deterministic scene simulators: the offline default data of the notebooks.

Each simulator returns a scene in the soilbook scene schema
(:func:`soilbook.data.schema.validate_scene`), labelled ``simulated=True``, built where possible
from real spectra (:mod:`soilbook.data.spectra`); :mod:`soilbook.data.scene` turns a scene into
field samples.

:mod:`soilbook.data.simulate.salinity`
    a Yellow-River-Delta-like coastal cropland with soil salt content (g/kg) and multi-date
    Sentinel-2 reflectance (chapter 1, SS-SoilNet). Documented in ``book/simulator_salinity.md``;
    its calibration check runs with ``python -m soilbook.data.simulate.salinity``.
:mod:`soilbook.data.simulate.soc`
    a Great-Plains-like continental region with topsoil organic carbon (g/kg), Landsat-8-like
    14-channel winter image patches and 61-month TerraClimate-like climate series, labelled and
    unlabelled locations (chapter 3, SSL-SoilNet). Documented in ``book/simulator_soc.md``; its
    calibration check runs with ``python -m soilbook.data.simulate.soc``.
:mod:`soilbook.data.simulate.moisture`
    multimodal image tiles (Sentinel-1-, Sentinel-2-like, terrain, meteorology) over farmland,
    alpine grassland and an arid basin with daily 0-5 cm soil moisture (%), a coarse SMAP-like
    product and in-situ stations (chapter 4). Documented in ``book/simulator_moisture.md``; its
    calibration check runs with ``python -m soilbook.data.simulate.moisture``.

The names below are imported lazily, so that running a simulator module as a script does not
import it twice.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MoistureParams",
    "SalinityParams",
    "SocParams",
    "simulate_moisture",
    "simulate_salinity_scene",
    "simulate_soc",
    "simulate_soc_at",
]


def __getattr__(name: str) -> Any:
    if name in ("SalinityParams", "simulate_salinity_scene"):
        from soilbook.data.simulate import salinity

        return salinity.SalinityParams if name == "SalinityParams" else salinity.simulate_scene
    if name in ("SocParams", "simulate_soc", "simulate_soc_at"):
        from soilbook.data.simulate import soc

        return getattr(soc, name)
    if name in ("MoistureParams", "simulate_moisture"):
        from soilbook.data.simulate import moisture

        return getattr(moisture, name)
    raise AttributeError(f"module 'soilbook.data.simulate' has no attribute {name!r}")
