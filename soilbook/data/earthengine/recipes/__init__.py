"""One Earth Engine recipe per chapter: which layers, which target, which collections.

A recipe module composes the shared pieces of :mod:`soilbook.data.earthengine` — argument checks
(:mod:`..checks`), layer builders (:mod:`..layers`), sampling (:mod:`..sampling`) and the
generic :class:`~..request.Request` / :func:`~..request.extract` — into

- ``build_<chapter>_request(points, dates, ...)``: pure, returns a :class:`~..request.Request`
  (or a subclass that fixes the chapter's target name, units and collections), and
- ``extract_<chapter>_inputs(points, dates, ...)``: checks, initialises the session, builds
  and extracts, returning a sample set in the schema.

Adding a chapter's recipe is adding one module here (e.g. ``soc.py``); it is then importable
as ``soilbook.data.earthengine.recipes.soc``. Nothing shared needs to change, unless the recipe
reads a collection that :data:`~..catalogue.COLLECTIONS` does not list yet.

- :mod:`.salinity` — chapter 1 (SS-SoilNet): Sentinel-2, terrain, MODIS LAI/FPAR and indices;
- :mod:`.transfer` — chapter 2 (DeepSalt): EO-1 Hyperion TOA reflectance at the lab sites (the
  stand-in for EnMAP, which Earth Engine does not hold);
- :mod:`.soc` — chapter 3 (SSL-SoilNet): 14-channel Landsat-8 patches and the 61-month
  TerraClimate series (zeros kept);
- :mod:`.moisture` — chapter 4 (ConvNeXt V2): Sentinel-1/2, GLO-30, ERA5-Land and SMAP L4 tiles
  around station sites.

Each also has ``precheck_<chapter>(points, dates)``, the plain-Python check the chapter's
``data_source="earthengine"`` runs before any request (:mod:`soilbook.chapters.earthengine`).
"""
