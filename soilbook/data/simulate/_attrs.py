"""Simulator parameters as netCDF-friendly attributes, one rule for every simulator."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["params_attrs"]


def params_attrs(params: Any) -> dict[str, Any]:
    """The fields of the dataclass ``params`` as flat attributes named ``sim_<field>``.

    A dict field gives one ``sim_<field>_<key>`` per entry, a tuple a list, a bool an int
    (netCDF has no boolean attribute); other values are kept as they are.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"sim_{f.name}_{k}"] = v
        elif isinstance(value, tuple):
            out[f"sim_{f.name}"] = list(value)
        elif isinstance(value, bool):
            out[f"sim_{f.name}"] = int(value)
        else:
            out[f"sim_{f.name}"] = value
    return out
