"""Target names: which soil property each data source offers, and the one lookup of a name.

Every loader asks :func:`resolve_target` what a user's ``target`` means, so that ``"auto"``,
the case of a name and the error for an unknown name behave the same everywhere:

- ``"auto"`` (or ``None`` / ``""``) means the source's default, the first of its names;
- names match in any case (``"soc"`` → ``"SOC"``), and the canonical spelling is returned;
- an unknown name raises :class:`~soilbook.errors.ParameterError` listing the allowed ones.

A user's own file has no fixed list: :func:`column_name` turns ``"auto"`` into the default
column ``"target"`` and keeps any other name as it is.

:data:`PROPERTIES` holds the units and long names of the properties that are pooled in one
unit wherever soilbook uses them (LimeSoDa's field and lab sets). Sources whose targets carry a
method in their name keep their own descriptions next to the column they read (UCRB's EC of a
1:2 extract, OSSL's level-1 columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from soilbook.errors import ParameterError

#: The word that asks for a source's default target.
AUTO = "auto"


class SoilProperty(NamedTuple):
    """The unit and the description (``long_name``) of a target."""

    units: str
    long_name: str


#: Properties with one unit wherever soilbook pools them (mass % for SOC, SOM and clay).
PROPERTIES: dict[str, SoilProperty] = {
    "SOC": SoilProperty("%", "soil organic carbon (g per 100 g)"),
    "SOM": SoilProperty("%", "soil organic matter (g per 100 g)"),
    "pH": SoilProperty("1", "soil pH"),
    "Clay": SoilProperty("%", "clay content (mass %)"),
}

#: LimeSoDa's field sets with Sentinel-2 bands (:mod:`soilbook.data.real.limesoda`).
LIMESODA_TARGETS = ("SOC", "pH", "Clay")
#: LimeSoDa's vis-NIR lab sets (:mod:`soilbook.data.real.limesoda_lab`).
LIMESODA_LAB_TARGETS = ("SOC", "SOM", "pH", "Clay")
#: The USGS Upper Colorado River Basin pedons (:mod:`soilbook.data.real.ucrb`).
UCRB_TARGETS = ("ec",)
#: Chapter 1's data sources (:mod:`soilbook.data.sources`); the first name is the default.
#: ``"file"`` accepts any column name (see :func:`column_name`).
SOURCE_TARGETS: dict[str, tuple[str, ...]] = {
    "simulated": ("salinity",),
    "limesoda": LIMESODA_TARGETS,
    "ucrb": UCRB_TARGETS,
    "file": ("target",),
}


def is_auto(target: object) -> bool:
    """Whether ``target`` asks for the default (``"auto"``, ``None`` or an empty string)."""
    return target is None or str(target).strip() in ("", AUTO)


def resolve_target(target: object, allowed: Sequence[str], *, where: str, hint: str = "") -> str:
    """The canonical spelling of ``target`` among ``allowed`` (the first is the default).

    Parameters
    ----------
    target
        What the user asked for: a name in any case, or ``"auto"`` / ``None`` / ``""``.
    allowed
        The source's names, default first.
    where
        The source, for the message (e.g. ``"data_source='limesoda'"``).
    hint
        A sentence added to the message (e.g. what else the source accepts).

    Raises
    ------
    ParameterError
        ``target`` is none of ``allowed``; the message lists them.
    """
    if not allowed:
        raise ParameterError(f"{where} offers no target; this is a bug in its target list.")
    if is_auto(target):
        return allowed[0]
    for name in allowed:
        if str(target).strip().lower() == name.lower():
            return name
    raise ParameterError(
        f"target={target!r} is not known for {where}; allowed: {list(allowed)} (any case) or "
        f"'auto' (= {allowed[0]!r}).{(' ' + hint) if hint else ''}"
    )


def column_name(target: object, default: str = "target") -> str:
    """The target column of a user's file: ``default`` for ``"auto"``, else the name as given."""
    return default if is_auto(target) else str(target)


def describe(name: str) -> SoilProperty:
    """Units and long name of a pooled property of :data:`PROPERTIES` (canonical name)."""
    if name not in PROPERTIES:
        raise ParameterError(
            f"no fixed unit is known for target {name!r}; known: {list(PROPERTIES)}."
        )
    return PROPERTIES[name]


__all__ = [
    "AUTO",
    "LIMESODA_LAB_TARGETS",
    "LIMESODA_TARGETS",
    "PROPERTIES",
    "SOURCE_TARGETS",
    "UCRB_TARGETS",
    "SoilProperty",
    "column_name",
    "describe",
    "is_auto",
    "resolve_target",
]
