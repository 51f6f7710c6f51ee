"""Deterministic scene simulators: the offline default data of the notebooks.

Each simulator returns a scene in the soilbook scene schema
(:func:`soilbook.data.schema.validate_scene`), labelled ``simulated=True``, built where possible
from real spectra (:mod:`soilbook.data.spectra`); :mod:`soilbook.data.scene` turns a scene into
field samples.

:mod:`soilbook.data.simulate.salinity`
    a Yellow-River-Delta-like coastal cropland with soil salt content (g/kg) and multi-date
    Sentinel-2 reflectance (chapter 1, SS-SoilNet). Documented in ``book/simulator_salinity.md``;
    its calibration check runs with ``python -m soilbook.data.simulate.salinity``.

The names below are imported lazily, so that running a simulator module as a script does not
import it twice.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SalinityParams", "simulate_salinity_scene"]


def __getattr__(name: str) -> Any:
    if name in ("SalinityParams", "simulate_salinity_scene"):
        from soilbook.data.simulate import salinity

        return salinity.SalinityParams if name == "SalinityParams" else salinity.simulate_scene
    raise AttributeError(f"module 'soilbook.data.simulate' has no attribute {name!r}")
