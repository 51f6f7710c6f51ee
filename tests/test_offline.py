"""The quick defaults of every chapter assemble their data with no network, no mirror, no cache.

This is what a fresh machine sees: ``$SOILBOOK_DATA_MIRROR`` unset, an empty
``$SOILBOOK_CACHE``, and every internet connection refused. Each chapter's data entry point runs
with the notebook's default parameters; nothing may try to connect, and nothing may land in the
cache (so no hidden download was needed).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from soilbook import config


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No mirror, an empty cache, and every attempt to reach the network recorded and refused."""
    from soilbook.data import spectra

    monkeypatch.delenv("SOILBOOK_DATA_MIRROR", raising=False)
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("SOILBOOK_CACHE", str(cache))
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(f"connect {address}")
            raise OSError(f"network access is forbidden in this test ({address})")
        real_connect(self, address)  # local (AF_UNIX) sockets are not the network

    def getaddrinfo(host, *args, **kwargs):
        attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror(f"name resolution is forbidden in this test ({host})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    # archives another test fetched through the mirror must not hide a download here
    spectra._read_enmapbox.cache_clear()
    spectra._esa_srf.cache_clear()
    yield attempts
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), (
        "a default run put files into the cache, so it needed a download"
    )


def test_chapter1_quick_default_scene_and_samples_offline(offline: list[str]) -> None:
    p = config.defaults("01_salinity_ss_soilnet")
    assert p["data_source"] == "simulated"
    data = config.chapter("01_salinity_ss_soilnet").load(p)  # the notebook's own entry point
    assert data.samples.sizes["sample"] == p["n_samples"]
    assert data.scene is not None and data.scene.sizes["x"] == p["scene_size"]
    assert offline == []


def test_chapter2_quick_default_transfer_data_offline(offline: list[str]) -> None:
    p = config.defaults("02_spectral_transfer_deepsalt")
    assert (p["target"], p["lab_source"]) == ("salinity", "library")
    data = config.chapter("02_spectral_transfer_deepsalt").load(p)
    assert data.satellite.sizes["band"] == 216  # the usable EnMAP bands
    assert offline == []
