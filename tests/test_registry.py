"""The data registry: checksums, the local mirror, atomic copies, corrupted caches, downloads
from a local HTTP server and what happens without a network."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from local_http import serve

from soilbook.data import registry
from soilbook.data.registry import ChecksumError, RemoteFile, UnknownDatasetError
from soilbook.errors import DataUnavailableError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tmp_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder used as $SOILBOOK_DATA_MIRROR."""
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv("SOILBOOK_DATA_MIRROR", str(root))
    return root


def _register_tmp(
    monkeypatch: pytest.MonkeyPatch, mirror: Path, data: bytes, *, pinned: bool = True
):
    (mirror / "demo").mkdir(exist_ok=True)
    (mirror / "demo" / "table.csv").write_bytes(data)
    remote = RemoteFile(
        name="demo_table",
        url="https://example.invalid/demo/table.csv",
        sha256=_sha(data) if pinned else None,
        licence="CC0",
        citation="a test",
        description="a file written by the test",
        mirror_path="demo/table.csv",
    )
    monkeypatch.setitem(registry.DATASETS, remote.name, remote)
    return remote


def _mirror_readme_hashes(mirror: Path) -> dict[str, str]:
    text = (mirror / "README.md").read_text()
    return {m[1]: m[0] for m in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, flags=re.M)}


def test_registry_hashes_match_the_mirror_readme(data_mirror: Path) -> None:
    listed = _mirror_readme_hashes(data_mirror)
    assert listed, "the mirror README lists no sha256"
    mirrored = [r for r in registry.DATASETS.values() if r.mirror_path]
    assert len(mirrored) >= 20
    for remote in mirrored:
        assert remote.mirror_path in listed, f"{remote.name}: {remote.mirror_path} not in README"
        assert remote.sha256 == listed[remote.mirror_path], remote.name
    # every data file the project relies on is registered (licences of the SRF repos aside)
    needed = {p for p in listed if not Path(p).name.startswith("LICENSE_")}
    assert needed <= {r.mirror_path for r in mirrored}


def test_required_names_are_registered() -> None:
    names = set(registry.DATASETS)
    for name in (
        "ucrb_salinity",
        "ucrb_licence",
        "sentinel2_srf_s2a",
        "sentinel2_srf_s2b",
        "enmap_srf",
        "prisma_srf",
        "landsat8_srf",
        "prisma_bands",
        "raca_rapidcarbon",
        "raca_climate_pr",
        "ossl_visnir",
        "ossl_soillab",
        "ossl_soilsite",
    ):
        assert name in names
    for r in registry.DATASETS.values():
        assert r.licence and r.citation and r.description
        assert r.url or r.derived_from, r.name
        if r.url and "githubusercontent" in r.url:
            assert re.search(r"/[0-9a-f]{40}/", r.url), f"{r.name}: URL not pinned to a commit"
    assert registry.DATASETS["ossl_visnir"].sha256 is None


def test_fetch_every_mirrored_file(data_mirror: Path, cache_dir: Path) -> None:
    for remote in registry.DATASETS.values():
        if not remote.mirror_path:
            continue
        path = registry.fetch(remote.name)
        assert path.is_file() and path.is_relative_to(cache_dir)
        assert registry.sha256sum(path) == remote.sha256
        assert registry.verify(remote.name)
    table = registry.list_datasets()
    assert {"name", "description", "licence", "cached", "size_bytes"} <= set(table.columns)
    row = table.set_index("name").loc["ucrb_salinity"]
    assert bool(row["cached"]) and row["size_bytes"] == 2139453
    assert not bool(table.set_index("name").loc["ossl_visnir", "cached"])


def test_cache_dir_from_environment(cache_dir: Path) -> None:
    assert registry.cache_dir() == cache_dir


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownDatasetError, match="ucrb_salinity") as err:
        registry.fetch("no_such_dataset")
    assert isinstance(err.value, KeyError)
    assert "no_such_dataset" in str(err.value)


def test_corrupted_cache_is_named_deleted_and_refetched(
    tmp_mirror: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"x,y\n1,2\n3,4\n"
    _register_tmp(monkeypatch, tmp_mirror, data)
    path = registry.fetch("demo_table")
    assert path.read_bytes() == data
    path.write_bytes(b"x,y\n1,2\n3,5\n")  # bit rot
    assert not registry.verify("demo_table")
    with pytest.warns(UserWarning, match=r"demo_table.*corrupted.*expected sha256") as rec:
        again = registry.fetch("demo_table")
    message = str(rec[0].message)
    assert _sha(data) in message and _sha(b"x,y\n1,2\n3,5\n") in message
    assert again == path and again.read_bytes() == data
    assert registry.verify("demo_table")


def test_interrupted_copy_leaves_no_partial_file(
    tmp_mirror: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_tmp(monkeypatch, tmp_mirror, b"0123456789" * 1000)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(registry.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        registry.fetch("demo_table")
    leftovers = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert leftovers == []
    monkeypatch.undo()


def test_corrupt_mirror_raises_checksum_error(
    tmp_mirror: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = _register_tmp(monkeypatch, tmp_mirror, b"good bytes\n")
    (tmp_mirror / "demo" / "table.csv").write_bytes(b"bad bytes\n")
    with pytest.raises(ChecksumError) as err:
        registry.fetch("demo_table")
    msg = str(err.value)
    assert "demo_table" in msg and remote.sha256 in msg and _sha(b"bad bytes\n") in msg
    assert "mirror" in msg
    assert not (cache_dir / "demo" / "table.csv").exists()


def test_unknown_checksum_is_recorded_then_enforced(
    tmp_mirror: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_tmp(monkeypatch, tmp_mirror, b"first version\n", pinned=False)
    path = registry.fetch("demo_table")
    side = path.with_name(path.name + ".sha256")
    assert side.read_text().split()[0] == _sha(b"first version\n")
    assert registry.verify("demo_table")
    # upstream changes and the cached copy is damaged: the re-fetch must not silently accept it
    (tmp_mirror / "demo" / "table.csv").write_bytes(b"second version\n")
    path.write_bytes(b"damaged\n")
    with pytest.warns(UserWarning, match="corrupted"), pytest.raises(ChecksumError):
        registry.fetch("demo_table")
    registry.clear_cache("demo_table")
    assert registry.fetch("demo_table").read_bytes() == b"second version\n"


@pytest.fixture
def server(cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A local HTTP server (routes editable), no mirror, and a registry entry served from it."""
    monkeypatch.delenv("SOILBOOK_DATA_MIRROR", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    routes: dict[str, tuple[int, bytes, str]] = {}
    with serve(routes) as base:
        yield base, routes


def _served(monkeypatch, base: str, data: bytes | None, name: str = "remote.txt") -> RemoteFile:
    remote = RemoteFile(
        name="demo_remote",
        url=f"{base}/x/{name}",
        sha256=_sha(data) if data is not None else None,
        licence="CC0",
        citation="a test",
        description="served by a local HTTP server",
    )
    monkeypatch.setitem(registry.DATASETS, remote.name, remote)
    return remote


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_download_path_verifies_and_moves_atomically(server, cache_dir, monkeypatch, capfd):
    base, routes = server
    routes["/x/remote.txt"] = (200, b"downloaded\n", "text/plain")
    _served(monkeypatch, base, b"downloaded\n")
    path = registry.fetch("demo_remote")
    assert path.read_bytes() == b"downloaded\n" and path.name == "remote.txt"
    assert _files(cache_dir) == [path]
    assert os.stat(path).st_mode & 0o044  # readable by others, like an ordinary download
    # pooch's "Downloading data from ..." lines (and any progress bar) must not be printed:
    # they would land in an executed notebook
    out, err = capfd.readouterr()
    assert "Downloading" not in out + err and "demo_remote" not in out + err
    path.unlink()
    routes["/x/remote.txt"] = (200, b"tampered\n", "text/plain")
    with pytest.raises(ChecksumError, match="demo_remote"):
        registry.fetch("demo_remote")
    assert _files(cache_dir) == []


def test_offline_fetch_raises_one_clear_error(cache_dir, monkeypatch, capfd):
    """No network (every connection refused): DataUnavailableError saying what and how."""
    import socket

    monkeypatch.delenv("SOILBOOK_DATA_MIRROR", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    remote = registry.get("enmap_srf")
    with pytest.raises(DataUnavailableError) as err:
        registry.fetch("enmap_srf")
    msg = str(err.value)
    dest = cache_dir / remote.relpath
    assert "'enmap_srf'" in msg and remote.url in msg  # which file, from where
    assert "SOILBOOK_DATA_MIRROR" in msg and remote.mirror_path in msg  # the mirror way
    assert str(dest) in msg and remote.sha256 in msg and "SOILBOOK_CACHE" in msg  # the cache way
    assert "soilbook data verify enmap_srf" in msg
    assert isinstance(err.value, ConnectionError)  # callers catching ConnectionError still work
    assert err.value.__suppress_context__  # one message, not requests' chained traceback
    assert _files(cache_dir) == []  # no temporary file left behind
    out, errs = capfd.readouterr()
    assert "Downloading" not in out + errs


@pytest.mark.parametrize(("status", "text"), [(404, "HTTP 404"), (500, "HTTP 500")])
def test_http_errors_raise_data_unavailable(server, cache_dir, monkeypatch, status, text):
    base, routes = server
    routes["/x/remote.txt"] = (status, b"<html>error</html>", "text/html")
    remote = _served(monkeypatch, base, b"never served\n")
    with pytest.raises(DataUnavailableError, match=text) as err:
        registry.fetch("demo_remote")
    assert remote.url in str(err.value) and str(cache_dir / remote.relpath) in str(err.value)
    assert _files(cache_dir) == []


def test_an_interrupted_download_leaves_no_temporary_file(server, cache_dir, monkeypatch):
    import pooch

    base, routes = server
    routes["/x/remote.txt"] = (200, b"0123456789" * 100, "text/plain")
    _served(monkeypatch, base, b"0123456789" * 100)

    def interrupted(self, url, output_file, pooch_, check_only=False):
        output_file.write(b"01234")  # part of the file has arrived ...
        raise KeyboardInterrupt  # ... when the user presses Ctrl-C

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registry.fetch("demo_remote")
    assert _files(cache_dir) == []


def test_stale_temporary_files_are_swept(tmp_mirror, cache_dir, monkeypatch):
    """A killed process (kill -9) cannot clean up: the next fetch removes its leftovers."""
    _register_tmp(monkeypatch, tmp_mirror, b"x,y\n1,2\n")
    folder = cache_dir / "demo"
    folder.mkdir(parents=True)
    old = time.time() - registry.STALE_TEMPORARY_S - 60
    stale = [
        folder / ".table.csv.k1ll3d.part",  # this version's temporary name
        folder / ".table.csv.4242.download",  # an older version's download
        folder / "table.csv.sha256.4242.tmp",  # an older version's sidecar
    ]
    for path in stale:
        path.write_bytes(b"partial")
        os.utime(path, (old, old))
    live = folder / ".table.csv.wr1t1ng.part"  # another process is writing it right now
    live.write_bytes(b"partial")
    other = folder / ".other.csv.k1ll3d.part"  # some other file's: not ours to judge here
    other.write_bytes(b"partial")
    os.utime(other, (old, old))
    path = registry.fetch("demo_table")
    assert path.read_bytes() == b"x,y\n1,2\n"
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert registry.sweep_stale_temporaries(folder / "other.csv") == [other]


def test_quiet_downloads_draw_no_progress_bar(server, cache_dir, monkeypatch, capfd):
    base, routes = server
    routes["/x/remote.txt"] = (200, b"a" * 5000, "text/plain")
    _served(monkeypatch, base, b"a" * 5000)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.setenv("SOILBOOK_QUIET_DOWNLOADS", "1")  # what `soilbook run` sets for a kernel
    registry.fetch("demo_remote", progress=True)
    out, err = capfd.readouterr()
    assert out + err == ""


def test_derived_long_table_is_rebuilt_from_its_parent(
    data_mirror: Path, tmp_mirror: Path, cache_dir: Path
) -> None:
    # a mirror that holds only the .srf: the long CSV must be rebuilt and still verify
    src = data_mirror / "srf" / "enmapbox" / "Landsat8.srf"
    (tmp_mirror / "srf" / "enmapbox").mkdir(parents=True)
    shutil.copy(src, tmp_mirror / "srf" / "enmapbox" / "Landsat8.srf")
    path = registry.fetch("landsat8_srf_long")
    assert registry.sha256sum(path) == registry.DATASETS["landsat8_srf_long"].sha256
    assert path.read_bytes() == (data_mirror / "srf/enmapbox/Landsat8_srf_long.csv").read_bytes()
    assert os.stat(path).st_mode & 0o044  # readable by others, like an ordinary download
