"""``data_source="earthengine"``, shared by the four chapters: its parameters and its checks.

Every chapter takes the same four parameters (:data:`EARTHENGINE_PARAMS`): the user's sample
points (a CSV with ``lat``, ``lon``, ``date`` and ``target``; ``id`` optional), an optional area of
interest for maps, the date windows and the extraction cache. :func:`check_earthengine` runs,
in this order and before any heavy work, (1) the points table
(:func:`~soilbook.data.earthengine.points.read_points`), (2) the area's size at the chapter's
scale, (3) the chapter recipe's own precheck (coverage of every collection it reads, its
arguments), (4) the cache folder, and last (5) the credentials in the environment
(:func:`~soilbook.data.earthengine.session.find_credentials`), so a run without credentials
stops with the set-up steps — never with a traceback, never after training began.
:func:`open_earthengine` then initialises the session on the high-volume endpoint.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soilbook.chapters.common import Param, check_writable_dir
from soilbook.errors import ParameterError

#: The name of the Earth Engine data source in every chapter's ``data_source`` choices.
EARTHENGINE = "earthengine"

EARTHENGINE_PARAMS: tuple[Param, ...] = (
    Param(
        "points_path",
        str,
        "",
        "earthengine: your sample points, a CSV with lat, lon (WGS84 degrees), date "
        "(YYYY-MM-DD) and target (id optional)",
    ),
    Param(
        "aoi",
        str,
        "",
        "earthengine: an area of interest to map, 'west,south,east,north' in degrees ('' none)",
    ),
    Param(
        "ee_dates",
        str,
        "",
        "earthengine: date windows 'start/end,start/end' (ISO, end exclusive); '' = the span "
        "of the points' dates, widened by the chapter's margin",
    ),
    Param(
        "ee_cache_dir",
        str,
        "",
        "earthengine: folder of the resumable extraction cache ('' = $SOILBOOK_CACHE/earthengine)",
    ),
)

#: A recipe's pure precheck: ``precheck(points, dates)`` raises ParameterError or returns.
Precheck = Callable[[list[dict[str, Any]], list[tuple[str, str]]], None]


@dataclass(frozen=True)
class EarthEngineInputs:
    """What :func:`check_earthengine` read and checked: the points (dicts with ``id``, ``lat``,
    ``lon``, ``date``, ``target``), the area of interest (a degree box or ``None``), the date
    windows, the cache folder and the Cloud project the credentials will use."""

    points: list[dict[str, Any]]
    aoi: tuple[float, float, float, float] | None
    dates: list[tuple[str, str]]
    cache_dir: Path
    project: str


def date_windows(
    text: str, points: Sequence[Mapping[str, Any]], pad_days: int
) -> list[tuple[str, str]]:
    """The windows ``"start/end,start/end"`` of ``text``; for ``""`` one window from the
    earliest point date minus ``pad_days`` to the latest plus ``pad_days`` (end exclusive)."""
    if text.strip():
        windows = []
        for part in text.split(","):
            bounds = [b.strip() for b in part.split("/")]
            if len(bounds) != 2 or not all(bounds):
                raise ParameterError(
                    f"ee_dates={text!r}: {part.strip()!r} is not 'start/end'. What to do: pass "
                    "windows such as '2021-04-01/2021-05-01,2021-09-01/2021-10-01'."
                )
            windows.append((bounds[0], bounds[1]))
        return windows
    days = sorted(_dt.date.fromisoformat(p["date"]) for p in points if p.get("date"))
    if not days:
        raise ParameterError(
            "ee_dates is empty and the points carry no dates. What to do: add a date column to "
            "the points or pass ee_dates='start/end'."
        )
    pad = _dt.timedelta(days=pad_days)
    return [((days[0] - pad).isoformat(), (days[-1] + pad + _dt.timedelta(days=1)).isoformat())]


def _cache_dir(text: str) -> Path:
    from soilbook.data.registry import cache_dir

    folder = Path(text).expanduser() if text.strip() else cache_dir() / "earthengine"
    return check_writable_dir(
        folder, what="the Earth Engine cache", hint="-p ee_cache_dir DIR on the command line"
    )


def check_earthengine(
    p: Mapping[str, Any],
    precheck: Precheck,
    *,
    scale: float,
    pad_days: int = 30,
    target_column: str = "target",
    unlabelled_ok: bool = False,
    need_date: bool = True,
    maps_aoi: bool = False,
    default_dates: Callable[[list[dict[str, Any]]], list[tuple[str, str]]] | None = None,
) -> EarthEngineInputs:
    """Check a chapter's ``data_source="earthengine"`` run before any heavy work (see the
    module docstring for the order); ``scale`` (m) is the chapter's pixel size for the area
    check, ``pad_days`` the margin of the default date window, ``target_column`` the points'
    column with the measured value (``unlabelled_ok``: empty cells are points without a label;
    ``need_date``: a ``date`` column is required), ``maps_aoi`` whether the chapter maps the
    area (otherwise an ``aoi`` is checked and a warning says it is not used),
    ``default_dates(points)`` the windows used when ``ee_dates`` is empty (default: the points'
    span widened by ``pad_days``, see :func:`date_windows`). Raises ParameterError,
    OutputDirError or EarthEngineSetupError (the set-up steps) — all without a traceback."""
    from soilbook.data.earthengine.checks import check_area
    from soilbook.data.earthengine.points import parse_aoi, read_points
    from soilbook.data.earthengine.session import find_credentials

    if not p["points_path"].strip():
        raise ParameterError(
            "data_source='earthengine' needs your sample points. What to do: pass -p points_path "
            "points.csv (columns lat, lon, date, target; id optional); see the book's page "
            "'Real data with Earth Engine'."
        )
    points = read_points(
        p["points_path"],
        target_column=target_column,
        unlabelled_ok=unlabelled_ok,
        need_date=need_date,
    )
    aoi = parse_aoi(p["aoi"])
    if aoi is not None:
        check_area(aoi, scale)
        if not maps_aoi:
            warnings.warn(
                f"aoi={p['aoi']!r} is checked, but this chapter does not map an area yet (chapter "
                "1 does); the run uses your points only.",
                stacklevel=3,
            )
    if default_dates is not None and not p["ee_dates"].strip():
        dates = default_dates(points)
    else:
        dates = date_windows(p["ee_dates"], points, pad_days)
    precheck(points, dates)
    cache = _cache_dir(p["ee_cache_dir"])
    credentials = find_credentials()
    return EarthEngineInputs(points, aoi, dates, cache, str(credentials.project))


def open_earthengine(inputs: EarthEngineInputs) -> None:
    """Initialise Earth Engine on the high-volume endpoint (bulk reads) with the checked
    project; the credentials come from the environment only."""
    from soilbook.data.earthengine.session import initialize

    initialize(inputs.project, high_volume=True)


def earthengine_inputs(
    p: Mapping[str, Any], precheck: Precheck, **kwargs: Any
) -> EarthEngineInputs:
    """:func:`check_earthengine` (``kwargs`` go to it), then :func:`open_earthengine`: what a
    chapter's ``load_data`` calls before its recipe extracts."""
    inputs = check_earthengine(p, precheck, **kwargs)
    open_earthengine(inputs)
    return inputs
