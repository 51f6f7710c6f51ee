"""soilbook — the helper package behind the soilbook Jupyter book.

Four deep-learning papers on mapping soil properties from remote sensing, re-implemented as
parameterised notebooks over one small package. Data flows one way:
``config`` → ``data`` (an xarray Dataset in the schema) → ``models`` + ``train`` / ``baselines``
→ ``evaluate`` → ``explain`` / ``maps`` / ``plots``.
"""

__version__ = "0.1.0"
