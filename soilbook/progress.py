"""Progress bars that suit where the code runs.

``tqdm.auto`` draws a widget in Jupyter when ipywidgets is installed and otherwise warns and falls
back to text; this picks the widget only where it can work, so notebooks executed by papermill
stay free of warnings. ``TQDM_DISABLE=1`` (set by ``soilbook run``) hides every bar.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm progress bar (widget in Jupyter with ipywidgets, text elsewhere); kwargs go to tqdm."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(**kwargs)


def import_quietly(name: str) -> Any:
    """Import module ``name`` without tqdm's "IProgress not found" warning.

    Some dependencies (pooch, shap) import ``tqdm.auto`` at import time; inside a Jupyter kernel
    without ipywidgets that warns, and the warning would land in every executed notebook.
    """
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        return importlib.import_module(name)
