"""Shared pytest fixtures: the local data mirror, an isolated cache directory, one torch thread
and a module's simulated scene with its samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The real-data mirror that sits beside the checkout on developer machines and in CI.
MIRROR = Path(os.environ.get("SOILBOOK_DATA_MIRROR", REPO.parent / "shared" / "data"))


@pytest.fixture
def data_mirror(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the registry at the local mirror of ../shared/data (skip where it is absent)."""
    if not MIRROR.is_dir():
        pytest.skip(f"no local data mirror at {MIRROR}")
    monkeypatch.setenv("SOILBOOK_DATA_MIRROR", str(MIRROR))
    return MIRROR


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty soilbook cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SOILBOOK_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny torch models on one thread (fastest, and no fight over cores).

    Request it for a whole module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(request: pytest.FixtureRequest):
    """A module's simulated scene: ``simulate_scene(**SCENE)`` with the module's ``SCENE``."""
    from soilbook.data.simulate.salinity import simulate_scene

    return simulate_scene(**request.module.SCENE)


@pytest.fixture(scope="module")
def samples(request: pytest.FixtureRequest, scene):
    """Samples of the module's ``scene``: ``sample_scene(scene, **SAMPLES)``, ``SAMPLES`` too."""
    from soilbook.data.scene import sample_scene

    return sample_scene(scene, **request.module.SAMPLES)


@pytest.fixture(scope="module")
def module_mirror(tmp_path_factory):
    """Module-scoped :func:`data_mirror`: the local mirror plus a fresh cache for one module."""
    if not MIRROR.is_dir():
        pytest.skip(f"no local data mirror at {MIRROR}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOILBOOK_DATA_MIRROR", str(MIRROR))
        mp.setenv("SOILBOOK_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield MIRROR
