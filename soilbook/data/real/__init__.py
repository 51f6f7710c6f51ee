"""Loaders of real datasets; each returns a sample set in :mod:`soilbook.data.schema`."""
