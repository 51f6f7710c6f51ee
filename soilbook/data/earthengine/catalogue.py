"""The Earth Engine collections the builders read, their terms, and the names of what they make.

Pure constants and naming rules (no ``ee``): collection ids with licence and citation, the
Sentinel-2 band table, the fill value of masked pixels, batch limits, and the units / feature
group of every layer a builder makes. A recipe that reads a new collection adds it to
:data:`COLLECTIONS` here, so that its licence and citation reach the sample set's attributes.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from soilbook.errors import ParameterError

# -- collections and their terms ---------------------------------------------------------------

S2_SR = "COPERNICUS/S2_SR_HARMONIZED"
S2_CLOUD_PROBABILITY = "COPERNICUS/S2_CLOUD_PROBABILITY"
GLO30 = "COPERNICUS/DEM/GLO30"
MCD15A3H = "MODIS/061/MCD15A3H"
S1_GRD = "COPERNICUS/S1_GRD"
LANDSAT8_L2 = "LANDSAT/LC08/C02/T1_L2"
LANDSAT9_L2 = "LANDSAT/LC09/C02/T1_L2"
TERRACLIMATE = "IDAHO_EPSCOR/TERRACLIMATE"
ERA5_LAND_DAILY = "ECMWF/ERA5_LAND/DAILY_AGGR"
SMAP_L4 = "NASA/SMAP/SPL4SMGP/008"
HYPERION = "EO1/HYPERION"

#: Licence and citation of every collection a builder here reads.
COLLECTIONS: dict[str, dict[str, str]] = {
    S2_SR: {
        "name": "Sentinel-2 MSI Level-2A surface reflectance (harmonised)",
        "licence": "Copernicus Sentinel data: free, full and open access under the Copernicus "
        "Sentinel data terms and conditions (credit 'Contains modified Copernicus Sentinel data')",
        "citation": "Contains modified Copernicus Sentinel data, processed by ESA; "
        "via Google Earth Engine (COPERNICUS/S2_SR_HARMONIZED)",
    },
    S2_CLOUD_PROBABILITY: {
        "name": "Sentinel-2 cloud probability (s2cloudless)",
        "licence": "Copernicus Sentinel data: free, full and open access under the Copernicus "
        "Sentinel data terms and conditions",
        "citation": "Sentinel Hub s2cloudless cloud detector (Zupanc 2017), "
        "via Google Earth Engine (COPERNICUS/S2_CLOUD_PROBABILITY)",
    },
    GLO30: {
        "name": "Copernicus DEM GLO-30",
        "licence": "Copernicus DEM licence: free of charge for any use, with attribution "
        "('produced using Copernicus WorldDEM-30 (c) DLR e.V. 2010-2014 and (c) Airbus Defence "
        "and Space GmbH 2014-2018 provided under COPERNICUS by the European Union and ESA')",
        "citation": "European Space Agency (2021). Copernicus Global Digital Elevation Model "
        "GLO-30. doi:10.5270/ESA-c5d3d65",
    },
    MCD15A3H: {
        "name": "MODIS Terra+Aqua LAI/FPAR 4-day 500 m, collection 6.1",
        "licence": "public domain: NASA LP DAAC data carry no restriction on use, sale or "
        "redistribution",
        "citation": "Myneni, R., Knyazikhin, Y., Park, T. (2021). MCD15A3H MODIS/Terra+Aqua Leaf "
        "Area Index/FPAR 4-Day L4 Global 500m SIN Grid V061. NASA EOSDIS LP DAAC. "
        "doi:10.5067/MODIS/MCD15A3H.061",
    },
    S1_GRD: {
        "name": "Sentinel-1 C-band SAR GRD, calibrated and ortho-corrected backscatter (dB)",
        "licence": "Copernicus Sentinel data: free, full and open access under the Copernicus "
        "Sentinel data terms and conditions (credit 'Contains modified Copernicus Sentinel data')",
        "citation": "Contains modified Copernicus Sentinel data, processed by ESA; "
        "via Google Earth Engine (COPERNICUS/S1_GRD)",
    },
    LANDSAT8_L2: {
        "name": "Landsat 8 OLI/TIRS Collection 2 Tier 1 Level-2 surface reflectance",
        "licence": "public domain: Landsat data from the USGS carry no restriction on use or "
        "redistribution (credit the U.S. Geological Survey)",
        "citation": "Landsat-8 image courtesy of the U.S. Geological Survey; "
        "via Google Earth Engine (LANDSAT/LC08/C02/T1_L2)",
    },
    LANDSAT9_L2: {
        "name": "Landsat 9 OLI-2/TIRS-2 Collection 2 Tier 1 Level-2 surface reflectance",
        "licence": "public domain: Landsat data from the USGS carry no restriction on use or "
        "redistribution (credit the U.S. Geological Survey)",
        "citation": "Landsat-9 image courtesy of the U.S. Geological Survey; "
        "via Google Earth Engine (LANDSAT/LC09/C02/T1_L2)",
    },
    TERRACLIMATE: {
        "name": "TerraClimate monthly climate and climatic water balance, 1/24 degree",
        "licence": "CC0 1.0 (public domain dedication)",
        "citation": "Abatzoglou, J.T. et al. (2018). TerraClimate, a high-resolution global "
        "dataset of monthly climate and climatic water balance from 1958-2015. Scientific Data "
        "5, 170191. doi:10.1038/sdata.2017.191",
    },
    ERA5_LAND_DAILY: {
        "name": "ERA5-Land daily aggregates, 0.1 degree",
        "licence": "Copernicus Climate Change Service licence: free use with attribution "
        "('Contains modified Copernicus Climate Change Service information')",
        "citation": "Munoz Sabater, J. (2019). ERA5-Land hourly data from 1981 to present. "
        "Copernicus Climate Change Service (C3S) Climate Data Store. doi:10.24381/cds.e2161bac",
    },
    SMAP_L4: {
        "name": "SMAP L4 global 3-hourly 9 km surface and root-zone soil moisture, version 8",
        "licence": "public domain: NASA NSIDC DAAC data carry no restriction on use",
        "citation": "Reichle, R. et al. (2025). SMAP L4 Global 3-hourly 9 km EASE-Grid Surface "
        "and Root Zone Soil Moisture Geophysical Data, Version 8. NASA NSIDC DAAC. "
        "doi:10.5067/OMHVSRGFX38O",
    },
    HYPERION: {
        "name": "EO-1 Hyperion hyperspectral imager, 242 bands 357-2576 nm, 30 m (historic)",
        "licence": "public domain: USGS EO-1 data carry no restriction on use (credit the U.S. "
        "Geological Survey)",
        "citation": "EO-1 Hyperion data courtesy of the U.S. Geological Survey; "
        "via Google Earth Engine (EO1/HYPERION)",
    },
}
EARTH_ENGINE_CITATION = (
    "Gorelick, N. et al. (2017). Google Earth Engine: planetary-scale geospatial analysis for "
    "everyone. Remote Sensing of Environment 202, 18-27. doi:10.1016/j.rse.2017.06.031"
)

#: First day of COPERNICUS/S2_SR_HARMONIZED (global coverage only from December 2018).
S2_SR_FIRST_DAY = _dt.date(2017, 3, 28)
#: First day of MODIS/061/MCD15A3H.
MCD15A3H_FIRST_DAY = _dt.date(2002, 7, 4)


@dataclass(frozen=True)
class Coverage:
    """Where and when a collection has data, as far as can be checked before any request.

    ``first_day`` / ``last_day`` (``None``: still acquiring) bound its acquisitions;
    ``lat_min`` / ``lat_max`` (WGS84 degrees) bound its footprint (a static layer has
    ``first_day`` ``None``). :func:`~.checks.check_coverage` tests points and date windows
    against it, so that a request that can only come back empty is refused before it is sent.
    """

    first_day: _dt.date | None
    last_day: _dt.date | None = None
    lat_min: float = -90.0
    lat_max: float = 90.0
    note: str = ""


#: The coverage of every collection a recipe reads (a recipe adding a collection adds it here
#: too). Footprints are the products' documented latitude ranges.
COVERAGE: dict[str, Coverage] = {
    S2_SR: Coverage(S2_SR_FIRST_DAY, lat_min=-56.0, lat_max=84.0, note="Sentinel-2 land swath"),
    S2_CLOUD_PROBABILITY: Coverage(S2_SR_FIRST_DAY, lat_min=-56.0, lat_max=84.0),
    GLO30: Coverage(None, note="static, global"),
    MCD15A3H: Coverage(MCD15A3H_FIRST_DAY),
    S1_GRD: Coverage(_dt.date(2014, 10, 3), note="Sentinel-1 (IW mode over land)"),
    LANDSAT8_L2: Coverage(_dt.date(2013, 3, 18), lat_min=-82.0, lat_max=82.0, note="WRS-2"),
    LANDSAT9_L2: Coverage(_dt.date(2021, 10, 31), lat_min=-82.0, lat_max=82.0, note="WRS-2"),
    TERRACLIMATE: Coverage(_dt.date(1958, 1, 1), note="monthly, land"),
    ERA5_LAND_DAILY: Coverage(_dt.date(1950, 1, 2), note="daily, land"),
    SMAP_L4: Coverage(_dt.date(2015, 3, 31), lat_min=-85.04, lat_max=85.04, note="EASE-Grid 2.0"),
    HYPERION: Coverage(
        _dt.date(2001, 1, 1),
        _dt.date(2017, 3, 31),
        note="historic: EO-1 was decommissioned in March 2017; sparse tasked scenes",
    ),
}

# -- Sentinel-2 bands --------------------------------------------------------------------------

#: Central wavelength (nm) of the Sentinel-2 L2A bands: the response-weighted centroid of ESA's
#: spectral response functions v3.0, mean of Sentinel-2A and 2B. B10 (cirrus) is not in L2A.
S2_WAVELENGTHS_NM: dict[str, float] = {
    "B1": 442.5,
    "B2": 492.3,
    "B3": 559.4,
    "B4": 664.8,
    "B5": 704.0,
    "B6": 739.8,
    "B7": 781.3,
    "B8": 832.9,
    "B8A": 864.4,
    "B9": 944.2,
    "B11": 1612.1,
    "B12": 2194.1,
}
#: The ten 10 m and 20 m bands used by default (the 60 m atmospheric bands B1 and B9 are left out).
DEFAULT_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
#: Scene classification class of cloud shadows in Sentinel-2 L2A ``SCL``.
SCL_CLOUD_SHADOW = 3

# -- sampling limits ---------------------------------------------------------------------------

#: Value that masked pixels get before sampling; :func:`~.convert.to_samples` turns it back into
#: NaN.
FILL_VALUE = -9999.0
#: Points per ``getInfo`` call without patches (Earth Engine stops collections at 5000 elements).
POINT_BATCH = 500
#: The most features one ``getInfo`` call may return.
MAX_FEATURES_PER_REQUEST = 5000
#: Patch pixel values per ``getInfo`` call (keeps one response to a few MB).
PATCH_VALUES_PER_BATCH = 400_000

# -- the layers the builders make --------------------------------------------------------------

#: Units and feature group of the layers the builders make (``_t<i>`` = date window ``i``).
LAYER_INFO: dict[str, tuple[str, str, str]] = {
    # name: (units, feature group, long name)
    "elevation": ("m", "terrain", "elevation above the EGM2008 geoid (Copernicus GLO-30)"),
    "slope": ("degree", "terrain", "terrain slope"),
    "tpi": (
        "m",
        "hydrology",
        "topographic position index: elevation minus the mean elevation "
        "around (negative in depressions; a wetness proxy)",
    ),
    "Lai": ("m2 m-2", "vegetation", "leaf area index (MODIS MCD15A3H, window mean)"),
    "Fpar": (
        "1",
        "vegetation",
        "fraction of absorbed photosynthetically active radiation (MODIS MCD15A3H, window mean)",
    ),
    "NDVI": ("1", "vegetation", "normalised difference vegetation index (B8, B4)"),
    "SI": ("1", "spectral", "salinity index sqrt(B2 * B4) (Khan et al. 2005)"),
}


def dated(name: str, index: int) -> str:
    """Band / property name of layer ``name`` in date window ``index``, e.g. ``B2_t0``."""
    return f"{name}_t{index}"


def patch_name(layer: str) -> str:
    """Property name under which a patch of ``layer`` comes back, e.g. ``patch_elevation``."""
    return f"patch_{layer}"


def layer_info(name: str) -> tuple[str, str, str]:
    """(units, feature group, long name) of a layer, dated (``Lai_t0``) or not (``slope``)."""
    match = re.fullmatch(r"(.+)_t\d+", name)
    return LAYER_INFO.get(match.group(1) if match else name, ("1", "other", name))


def collection_attrs(collections: Sequence[str]) -> dict[str, str]:
    """``source``, ``licence``, ``citation`` and ``collections`` attributes of a sample set made
    from ``collections`` (ids in :data:`COLLECTIONS`), Earth Engine's own terms and citation
    included."""
    collections = tuple(collections)
    unknown = [c for c in collections if c not in COLLECTIONS]
    if unknown:
        raise ParameterError(
            f"unknown collection(s) {unknown}; known: {list(COLLECTIONS)}. What to do: name the "
            "collections the request read, or add a new one (with its licence and citation) to "
            "soilbook.data.earthengine.catalogue.COLLECTIONS."
        )
    return {
        "source": "Earth Engine: " + ", ".join(collections),
        "licence": "; ".join(f"{c}: {COLLECTIONS[c]['licence']}" for c in collections)
        + "; processed with Google Earth Engine (Earth Engine terms of service apply)",
        "citation": "; ".join(COLLECTIONS[c]["citation"] for c in collections)
        + "; "
        + EARTH_ENGINE_CITATION,
        "collections": ", ".join(collections),
    }
