"""Shared pytest fixtures: the local data mirror and an isolated cache directory."""

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
