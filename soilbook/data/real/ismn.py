"""A user's ISMN download as a table of 0-5 cm station readings (labels for chapter 4).

The International Soil Moisture Network (ISMN, https://ismn.earth; Dorigo et al. 2021, *HESS*
25, 5749-5804, doi:10.5194/hess-25-5749-2021) gives in-situ soil moisture after registration;
its terms forbid redistribution, so soilbook never downloads it: the user downloads a zip
archive (or its extracted folder) and this module reads it with the ``ismn`` package
(TU Wien, MIT licence, ``pip install ismn``; github.com/TUW-GEO/ismn), imported only when
:func:`read_ismn` runs.

How the package is used (its documented interface)
--------------------------------------------------
``ismn.interface.ISMN_Interface(data_path, network=None)`` reads the archive's metadata (the
first call writes a ``python_metadata`` folder next to the data); ``.networks`` is an ordered
mapping name → network, ``network.stations`` name → station (``.lat``, ``.lon`` in WGS84
degrees), ``station.sensors`` name → sensor (``.variable``, ``.instrument``, ``.depth.start``
/ ``.depth.end`` in metres, ``.read_data()`` → a pandas DataFrame indexed by UTC time with
the columns ``soil_moisture`` (m³/m³) and ``soil_moisture_flag``).

ISMN quality flags: ``G`` good; ``C01``-``C03`` outside the plausible range; ``D01``-``D10``
questionable (dubious, e.g. frozen soil or a sudden jump; several may be joined by commas);
``M`` missing. Only ``G`` is kept by default (``flags``).

The table
---------
One row per reading: ``network``, ``station``, ``sensor`` (the ISMN sensor name),
``instrument``, ``lat`` / ``lon`` (degrees), ``depth_from_m`` / ``depth_to_m``, ``time``
(UTC, datetime64), ``sm_0_5`` (**vol %** = 100 × m³/m³) and ``flag``. Sensors are kept
when their depth interval lies inside ``depth_m`` (default 0-0.05 m, the 0-5 cm layer).
:func:`soilbook.data.real.sm_retrieval.readings_from_stations` joins it to tiles.

Public API: :func:`read_ismn`, :data:`GOOD_FLAGS`, :data:`COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from soilbook.errors import DependencyNotFoundError, ParameterError, SchemaError

__all__ = ["COLUMNS", "GOOD_FLAGS", "read_ismn"]

#: The ISMN quality flag of a good reading.
GOOD_FLAGS: tuple[str, ...] = ("G",)
#: The columns of the station table, in order.
COLUMNS: tuple[str, ...] = (
    "network",
    "station",
    "sensor",
    "instrument",
    "lat",
    "lon",
    "depth_from_m",
    "depth_to_m",
    "time",
    "sm_0_5",
    "flag",
)
LICENCE = "ISMN terms of use (no redistribution); see https://ismn.earth"
CITATION = (
    "Dorigo, W., et al. (2021). The International Soil Moisture Network: serving Earth system "
    "science for over a decade. Hydrology and Earth System Sciences, 25, 5749-5804. "
    "doi:10.5194/hess-25-5749-2021"
)


def _interface_class():
    try:
        from ismn.interface import ISMN_Interface
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] != "ismn":
            raise  # a broken install of ismn (a dependency of it is missing): say so as is
        raise DependencyNotFoundError(
            "ismn", needed_for="reading a downloaded ISMN archive"
        ) from None
    return ISMN_Interface


def read_ismn(
    path: str | Path,
    *,
    networks: str | Sequence[str] | None = None,
    depth_m: tuple[float, float] = (0.0, 0.05),
    flags: Sequence[str] | None = GOOD_FLAGS,
    start: str | None = None,
    end: str | None = None,
) -> pd.DataFrame:
    """Read a user's ISMN download into the station table (module docstring).

    Parameters
    ----------
    path : the ISMN zip archive or its extracted folder (the network folders inside)
    networks : read only these networks (names as in the archive), or all
    depth_m : (from, to) in metres; sensors whose depth interval lies inside are kept
    flags : the ISMN quality flags to keep (default ``("G",)``: good only); ``None`` keeps all
    start, end : keep readings in [start, end] (anything ``pandas.Timestamp`` reads), UTC

    Returns a DataFrame with :data:`COLUMNS`, sorted by network, station, time; readings with a
    missing value are dropped. ``attrs`` hold the source, licence and citation.

    Raises :class:`~soilbook.errors.DependencyNotFoundError` (a ``ModuleNotFoundError``) when
    the ``ismn`` package is missing (``pip install ismn``), ``FileNotFoundError`` when ``path``
    does not exist, :class:`ParameterError` for a bad depth, :class:`SchemaError` when nothing
    matches.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"ISMN data {path} does not exist. What to do: download the archive from "
            "https://ismn.earth (after registration, 'Data access') and pass its path."
        )
    lo, hi = (float(v) for v in depth_m)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise ParameterError(
            f"depth_m={depth_m!r} is not a depth interval. Allowed: (from, to) in metres with "
            "0 <= from < to. What to do: use (0.0, 0.05) for the 0-5 cm layer."
        )
    interface_cls = _interface_class()
    wanted = [networks] if isinstance(networks, str) else networks
    ds = interface_cls(str(path), network=None if wanted is None else list(wanted))
    t0 = None if start is None else pd.Timestamp(start)
    t1 = None if end is None else pd.Timestamp(end)
    frames: list[pd.DataFrame] = []
    n_sensors = 0
    for net_name, network in ds.networks.items():
        for st_name, station in network.stations.items():
            for sensor_name, sensor in station.sensors.items():
                if sensor.variable != "soil_moisture":
                    continue
                d0, d1 = float(sensor.depth.start), float(sensor.depth.end)
                if not (lo - 1e-9 <= d0 and d1 <= hi + 1e-9):
                    continue
                n_sensors += 1
                data = sensor.read_data()
                if data is None or len(data) == 0:
                    continue
                if "soil_moisture" not in data.columns:
                    raise SchemaError(
                        f"ISMN sensor {net_name}/{st_name}/{sensor_name} has no "
                        f"'soil_moisture' column (columns: {list(data.columns)}). Expected: "
                        "the ismn package's reader output. What to do: update ismn."
                    )
                flag = (
                    data["soil_moisture_flag"].astype(str)
                    if "soil_moisture_flag" in data.columns
                    else pd.Series("", index=data.index)
                )
                times = pd.to_datetime(data.index)
                if times.tz is not None:
                    times = times.tz_convert("UTC").tz_localize(None)
                frame = pd.DataFrame(
                    {
                        "network": str(net_name),
                        "station": str(st_name),
                        "sensor": str(sensor_name),
                        "instrument": str(getattr(sensor, "instrument", "")),
                        "lat": float(station.lat),
                        "lon": float(station.lon),
                        "depth_from_m": d0,
                        "depth_to_m": d1,
                        "time": times.to_numpy(),
                        "sm_0_5": 100.0 * data["soil_moisture"].to_numpy(dtype=float),
                        "flag": flag.to_numpy(),
                    }
                )
                keep = np.isfinite(frame["sm_0_5"].to_numpy())
                if flags is not None:
                    keep &= frame["flag"].isin(list(flags)).to_numpy()
                if t0 is not None:
                    keep &= (frame["time"] >= t0).to_numpy()
                if t1 is not None:
                    keep &= (frame["time"] <= t1).to_numpy()
                frames.append(frame[keep])
    if not n_sensors:
        raise SchemaError(
            f"the ISMN data at {path} has no soil-moisture sensor within {lo}-{hi} m"
            + ("" if wanted is None else f" in the networks {list(wanted)}")
            + ". Expected: at least one. What to do: check networks= and depth_m=."
        )
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    )
    table = table.loc[:, list(COLUMNS)].sort_values(["network", "station", "time"])
    table = table.reset_index(drop=True)
    table.attrs.update(
        source=f"ISMN download at {path}",
        licence=LICENCE,
        citation=CITATION,
        simulated=False,
        units="sm_0_5 in vol % (100 × m³/m³); time UTC; depths m; lat/lon WGS84 degrees",
        flags_kept="all" if flags is None else list(flags),
        sensors_read=n_sensors,
    )
    return table
