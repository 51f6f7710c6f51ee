"""Named real datasets: where each file comes from, its checksum, licence and citation.

Every file the book downloads is registered here as a :class:`RemoteFile` with a URL pinned to a
commit (where the source is a git repository) and its sha256. :func:`fetch` returns a verified
local copy, from the first of:

1. the cache (``$SOILBOOK_CACHE``, else the operating system's cache folder for ``soilbook``),
   re-hashed on every call — a corrupted file is named in a warning, deleted and fetched again;
2. a local mirror folder given by ``$SOILBOOK_DATA_MIRROR`` (the tests and CI use one, so they
   never touch the network), copied atomically (a temporary file in the cache folder, then
   :func:`os.replace`) and verified;
3. for a *derived* file (a table rebuilt byte for byte from another registered file), rebuilding
   it from that file;
4. the public URL, downloaded with :mod:`pooch`'s HTTP downloader into a temporary file beside
   the final one, checked, and moved into place (:func:`os.replace`).

A mismatch after fetching raises :class:`ChecksumError` with the file, both hashes and what to do.
A download that cannot reach the server (no network, DNS failure, time-out, an HTTP error)
raises :class:`DataUnavailableError` with one message: which file, from which URL, and how to
use a mirror (``$SOILBOOK_DATA_MIRROR``) or put the file into the cache by hand (the exact
path). Nothing is logged while downloading (no "Downloading ..." lines in an executed
notebook); a progress bar is drawn only when ``progress=True`` is asked for and
``$SOILBOOK_QUIET_DOWNLOADS`` is not set. Temporary files (``.<name>.*.part``) are removed when
a fetch fails, and ones that a killed process left behind are swept once they are older than
:data:`STALE_TEMPORARY_S`.

Files with an unknown checksum
------------------------------
A few large public files (the Open Soil Spectral Library, about 1 GB) are registered with
``sha256=None``: their publisher gives no checksum and we could not download them while writing
this registry, so we do not invent one. For those, the first download is trusted and its sha256 is
recorded in a ``<file>.sha256`` sidecar next to the cached file ("trust on first use"); every later
:func:`fetch` or :func:`verify` checks the file against that recorded hash, and a re-download that
differs from it raises :class:`ChecksumError` (the upstream file changed or the download was
corrupted) instead of silently replacing the data. :func:`list_datasets` shows which files are
pinned and which are only recorded. Before a hash is recorded the content must be plausible:
an empty file, an HTML/XML page (a proxy's or a server's error page) or a ``.gz`` file that is
not gzip is refused with :class:`DataUnavailableError` and nothing is recorded.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from soilbook.errors import ChecksumError, DataUnavailableError, UnknownDatasetError
from soilbook.hashing import sha256_file as sha256sum
from soilbook.progress import import_quietly

log = logging.getLogger(__name__)

ENV_CACHE = "SOILBOOK_CACHE"
ENV_MIRROR = "SOILBOOK_DATA_MIRROR"
#: Set (to anything but "" or "0") to draw no progress bar and log no cache paths while
#: fetching; ``soilbook run`` sets it for the notebook kernel.
ENV_QUIET = "SOILBOOK_QUIET_DOWNLOADS"
#: A temporary file of a fetch untouched for this long (s) was left by a killed process.
STALE_TEMPORARY_S = 3600.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One registered file.

    Attributes
    ----------
    name
        Registry key, e.g. ``"ucrb_salinity"``.
    url
        Public download URL (pinned to a commit where possible); ``None`` for a derived file that
        is only rebuilt from another registered file.
    sha256
        Hex digest of the exact bytes, or ``None`` when unknown (recorded at first download and
        verified afterwards; see the module docstring).
    licence, citation, description
        Shown by ``soilbook data list`` and in the book's data chapter.
    mirror_path
        Relative path inside a local mirror (``$SOILBOOK_DATA_MIRROR``), e.g.
        ``"usgs_ucrb_salinity/cop_ncss17_ec12_2D_covarsc.txt"``; ``None`` when not mirrored.
    derived_from
        Name of the registered file this one is rebuilt from (see :data:`DERIVERS`).
    """

    name: str
    url: str | None
    sha256: str | None
    licence: str
    citation: str
    description: str
    mirror_path: str | None = None
    derived_from: str | None = None

    @property
    def relpath(self) -> str:
        """Path of the cached copy relative to :func:`cache_dir`."""
        if self.mirror_path:
            return self.mirror_path
        if self.url:
            return f"{self.name}/{Path(urlparse(self.url).path).name}"
        return f"{self.name}/{self.name}"


# -- the registry ------------------------------------------------------------------------------

_UCRB = (
    "https://raw.githubusercontent.com/usgs/UCRB_Salinity/1c6c0a9764f64eb8a05d19aba5364a4b75459076"
)
_S2SRF = (
    "https://raw.githubusercontent.com/hygeos/eoread/ae25719f16a90e166f715c5626eda762af275a27/"
    "eoread/auxdata/msi"
)
_ENMAPBOX = (
    "https://raw.githubusercontent.com/EnMAP-Box/enmap-box/f9e8f486c9614813410cc9d715bb056e6ad3cfd5/"
    "enmapbox/apps/lmuvegetationapps/Resources/Spec2Sensor/srf"
)
_SOILNET = "https://raw.githubusercontent.com/moienr/SoilNet"
_OSSL = "https://storage.googleapis.com/soilspec4gg-public"

_CITE_UCRB = (
    "Nauman, T. W., Ely, C. P., Miller, M. P., & Duniway, M. C. (2019). Salinity yield modeling "
    "of the Upper Colorado River Basin using 30-m resolution soil maps and random forests. Water "
    "Resources Research, 55, 4954-4973. Data: Nauman, T. W. (2019), U.S. Geological Survey data "
    "release, doi:10.5066/P9QSFDJN"
)
_CITE_S2 = (
    "ESA (2021). Sentinel-2 Spectral Response Functions (S2-SRF), COPE-GSEG-EOPG-TN-15-0007, "
    "issue 3.0; copy from the hygeos/eoread repository (Apache-2.0)"
)
_CITE_ENMAPBOX = (
    "EnMAP-Box 3 (Jakimow et al. 2023, SoftwareX 23, 101507), Spec2Sensor spectral response "
    "tables, commit f9e8f486"
)
_CITE_RACA = (
    "Soil Survey Staff (2013). Rapid Carbon Assessment (RaCA) project, USDA-NRCS; "
    "Abatzoglou, J. T. et al. (2018). TerraClimate, Scientific Data 5, 170191; extracted with "
    "Earth Engine by the SSL-SoilNet authors (Kakhani et al. 2024, github.com/moienr/SoilNet)"
)
_LIC_RACA = (
    "RaCA: public domain (USDA-NRCS); TerraClimate: CC0 1.0 per its Earth Engine catalogue entry (check before "
    "redistributing); the SoilNet repository states no licence for the extraction"
)
_CITE_OSSL = (
    "Safanelli, J. L. et al. (2023). Open Soil Spectral Library (OSSL) v1.2, "
    "soilspectroscopy.org; doi:10.5281/zenodo.5759693"
)

#: TerraClimate variables shipped as RaCA_<var>.csv (monthly 2010-01 ... 2015-01).
RACA_CLIMATE_VARS = (
    "aet", "def", "pdsi", "pet", "pr", "ro", "soil", "srad", "swe", "tmmn", "tmmx", "vap", "vpd",
)  # fmt: skip
_RACA_SHA = {
    "aet": "5886e0285164ab91e5f251b840aee388195ebdffcc2f6fd79da8790632dad1f1",
    "def": "e3d695a56ca56568efbacbe2fe09d30f0d04ce300aa196e18c5df1945e76a868",
    "pdsi": "54ab5cbff65777970a1bdee95b4deb78476a111ad6ed7e8f444aeba3cf63b8da",
    "pet": "1b8118f87da422d42d979b08245b08b9e761b4f1b3672d66e60893d365549b80",
    "pr": "005f41c6e7c17f9480dbd62970825fe82cfbc0144dc5bf08f317267897c9d861",
    "ro": "4919492f8a6f03eb03393b411289f3e65a9f59e6a952f61dd5156a78434a5819",
    "soil": "1da39b1dd5067a03239c2b51bee010a9c2642209c3be0e74a33a7375552274b8",
    "srad": "9201bbb654a7c83b3fd627bc91309cc5623eb1b00db71c2c355e4315be5496ac",
    "swe": "a570bb1f19aa6cfaf23f7572f70f0f0a21620ff6aa115ff6db7686b7add03495",
    "tmmn": "cc23383be60e72f8ec64ca81b1fc4ae85fdf9abbdcb21afa1986ddce7e12d3f2",
    "tmmx": "7b2f2587c7fd0ebd84516dda6c31600e423c809add908a275562d8ff7f5ebd6e",
    "vap": "ccc242d7e0dcd3061fb80d79b3bd371ea88f1c26be1be328b5cdae01f7054866",
    "vpd": "6d89bb0d3c9428e85edc88601bc937bbdae56edf365d89ca602223dc208c95ec",
}


def _remote(
    name: str,
    path: str,
    sha: str | None,
    what: str,
    *,
    base: str,
    licence: str,
    citation: str,
    mirror: str | None = None,
    derived_from: str | None = None,
) -> RemoteFile:
    """The file ``path`` below the URL ``base``; mirrored as ``<mirror>/<its file name>``.

    A file ``derived_from`` another registered file has no URL: it is only rebuilt from that one.
    """
    return RemoteFile(
        name=name,
        url=None if derived_from else f"{base}/{path}",
        sha256=sha,
        licence=licence,
        citation=citation,
        description=what,
        mirror_path=f"{mirror}/{path.rsplit('/', 1)[-1]}" if mirror else None,
        derived_from=derived_from,
    )


_ucrb = partial(
    _remote,
    base=_UCRB,
    licence="public domain (USGS), CC0 1.0 waiver",
    citation=_CITE_UCRB,
    mirror="usgs_ucrb_salinity",
)
_sentinel2 = partial(
    _remote,
    base=_S2SRF,
    licence="published by ESA (free use); repository copy Apache-2.0",
    citation=_CITE_S2,
    mirror="srf/sentinel2_esa",
)
_enmapbox = partial(
    _remote,
    base=_ENMAPBOX,
    licence="GPL-3.0 (EnMAP-Box)",
    citation=_CITE_ENMAPBOX,
    mirror="srf/enmapbox",
)
_raca = partial(_remote, base=_SOILNET, citation=_CITE_RACA, mirror="raca_terraclimate")
_ossl = partial(_remote, base=_OSSL, licence="CC-BY 4.0", citation=_CITE_OSSL)


def _srf_long(name: str, parent: str, file: str, sha: str, sensor: str) -> RemoteFile:
    return _enmapbox(
        name,
        file,
        sha,
        f"{sensor} spectral response in long form (band, wavelength_nm, response), rebuilt "
        f"byte for byte from '{parent}'",
        derived_from=parent,
    )


_FILES: list[RemoteFile] = [
    _ucrb(
        "ucrb_salinity",
        "SoilMapPrediction/cop_ncss17_ec12_2D_covarsc.txt",
        "d7d6188435e940a6eca24c6190b46858e163baf2116a5a688e63685a903d032d",
        "Upper Colorado River Basin: EC 1:2 (dS/m) of 3,067 horizons from 608 NCSS pedons with "
        "Landsat-8 band ratios, terrain, climate and land-cover covariates (tab-separated)",
    ),
    _ucrb(
        "ucrb_licence",
        "LICENSE.md",
        "71ae619a15aed0dcf18a2db70582cc84498bd17f2e8600cb35e07b460807246a",
        "licence statement of the usgs/UCRB_Salinity repository",
    ),
    *(
        _sentinel2(
            f"sentinel2_srf_s2{unit.lower()}",
            f"S2-SRF_COPE-GSEG-EOPG-TN-15-0007_3.0_S2{unit}.csv",
            sha,
            f"Sentinel-2{unit} spectral response functions v3.0, 1 nm steps from 300 nm, B1-B12",
        )
        for unit, sha in (
            ("A", "4c8e79ba5078f5cdb494f9919ad696b8288b009b1bc3b0ff39b57ac53a45368f"),
            ("B", "6169d3427644d353e5e8398ed3684be388b77bd682f372e463e4106767503a94"),
        )
    ),
    _enmapbox(
        "enmap_srf",
        "EnMAP_L2A_224bands_generic.srf",
        "23c8f209c386280b3fc476195c9a7eeb0f6910804cdaba42297e6028aa72ee72",
        "EnMAP L2A spectral response, 224 bands (numpy .npz: srf, srf_nbands, sensor_wl)",
    ),
    _enmapbox(
        "prisma_srf",
        "PRISMA_generic.srf",
        "57b446652edee1d4989620f65782a17d7f8acb6e964c8fa877e6fbacd6435b89",
        "PRISMA spectral response, 233 bands (numpy .npz: srf, srf_nbands, sensor_wl)",
    ),
    _enmapbox(
        "landsat8_srf",
        "Landsat8.srf",
        "219e6cdaae8f26c0af2ef38b977ce1828d44c974a96cb3f1cbb1f3a1dbf37446",
        "Landsat-8 OLI spectral response, 8 bands (numpy .npz: srf, srf_nbands, sensor_wl)",
    ),
    _enmapbox(
        "prisma_bands",
        "prisma.csv",
        "c1830c802fb94e2895b4226cedf3627304338d7f7d0879d2635214ec85193dc1",
        "PRISMA band centres and FWHM (nm)",
    ),
    _srf_long(
        "enmap_srf_long",
        "enmap_srf",
        "EnMAP_L2A_224bands_generic_srf_long.csv",
        "ccef150d0278c3e8bdf17124f8b77cf46ded7b2cd4dabe8b99cec86be7df2434",
        "EnMAP",
    ),
    _srf_long(
        "prisma_srf_long",
        "prisma_srf",
        "PRISMA_generic_srf_long.csv",
        "9b49791b0a3a5534557a8bae3c72e4d11f8fe6ec15a1f972d44f5bff1d0e0f25",
        "PRISMA",
    ),
    _srf_long(
        "landsat8_srf_long",
        "landsat8_srf",
        "Landsat8_srf_long.csv",
        "97749dff5d5060978deccc08b139c3c3c1b181b85fcd7cdd1a27039bc41bbdca",
        "Landsat-8",
    ),
    _raca(
        "raca_rapidcarbon",
        "18e0ec1fb1acc3cfdb9ee5998954f6988ef15a1d/dataset/RapidCarbon.csv",
        "c53728aa8331a737aebc6935622224eb222488bcc5bbfe090aaf8d1021fd00f8",
        "RaCA sites: rcasiteid, Gen_lat/Gen_long (0.01 deg), SOCstock100 (SOC stock to 100 cm)",
        licence="public domain (USDA-NRCS)",
    ),
    *(
        _raca(
            f"raca_climate_{var}",
            f"44279087be8d1e796ff5fdd0eb5c45970a7c6262/dataset/Climate/RaCA_{var}.csv",
            _RACA_SHA[var],
            f"TerraClimate '{var}' at each RaCA site, monthly 2010-01...2015-01 "
            "(columns YYYYMMDD, not in time order; -999 = missing; stored units/scales)",
            licence=_LIC_RACA,
        )
        for var in RACA_CLIMATE_VARS
    ),
    *(
        _ossl(
            f"ossl_{table}",
            f"ossl_{table}_{level}_v1.2.csv.gz",
            None,
            f"OSSL v1.2 {what}; sha256 recorded at first use",
        )
        for table, level, what in (
            ("visnir", "L0", "VNIR spectra (level 0), large download"),
            ("soillab", "L1", "soil laboratory data (level 1, incl. KSSL EC ec_usda.a364_ds.m)"),
            ("soilsite", "L0", "site data (coordinates, depths)"),
        )
    ),
]

#: Every registered file by name.
DATASETS: dict[str, RemoteFile] = {f.name: f for f in _FILES}


def register(remote: RemoteFile, *, overwrite: bool = False) -> RemoteFile:
    """Add ``remote`` to :data:`DATASETS` (e.g. your own file with a pinned checksum)."""
    if remote.name in DATASETS and not overwrite:
        raise ValueError(
            f"'{remote.name}' is already registered; pass overwrite=True to replace it."
        )
    DATASETS[remote.name] = remote
    return remote


def get(name: str) -> RemoteFile:
    """The :class:`RemoteFile` called ``name``; :class:`UnknownDatasetError` lists the known."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}. Known: {', '.join(sorted(DATASETS))}. "
            "Run `soilbook data list` to see them with descriptions."
        ) from None


# -- paths and hashes --------------------------------------------------------------------------


def cache_dir() -> Path:
    """The cache folder: ``$SOILBOOK_CACHE`` if set, else ``pooch.os_cache("soilbook")``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    pooch = import_quietly("pooch")
    return Path(pooch.os_cache("soilbook"))


def cached_path(name: str) -> Path:
    """Where ``name`` lives in the cache (whether or not it is there yet)."""
    return cache_dir() / get(name).relpath


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _expected(remote: RemoteFile, path: Path) -> str | None:
    """The pinned sha256, else the one recorded at first download, else None."""
    if remote.sha256:
        return remote.sha256
    side = _sidecar(path)
    if side.is_file():
        text = side.read_text().split()
        return text[0] if text else None
    return None


def _record(path: Path, digest: str) -> None:
    _write_atomic(f"{digest}  {path.name}\n".encode(), _sidecar(path))


def _quiet() -> bool:
    return os.environ.get(ENV_QUIET, "") not in ("", "0")


def _mirror_source(remote: RemoteFile) -> Path | None:
    root = os.environ.get(ENV_MIRROR)
    if not root or not remote.mirror_path:
        return None
    src = Path(root).expanduser() / remote.mirror_path
    return src if src.is_file() else None


def _mismatch(
    remote: RemoteFile, where: str, expected: str, actual: str, todo: str
) -> ChecksumError:
    return ChecksumError(
        f"Checksum mismatch for '{remote.name}' ({where}): expected sha256 {expected}, got "
        f"{actual}. {todo}"
    )


# -- fetching ----------------------------------------------------------------------------------


def _publish(tmp: Path, dest: Path) -> None:
    """Give ``tmp`` ordinary permissions (mkstemp makes it private) and move it to ``dest``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def _copy_atomic(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` via a temporary file beside ``dest``; return the sha256.

    The temporary file is removed if anything fails, so an interrupted copy never leaves a
    partial file under the final name.
    """
    h = hashlib.sha256()

    def copy(fout: BinaryIO) -> None:
        with open(src, "rb") as fin:
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                h.update(chunk)
                fout.write(chunk)

    _write_via_temporary(dest, copy)
    return h.hexdigest()


def _write_atomic(data: bytes, dest: Path) -> str:
    _write_via_temporary(dest, lambda fout: fout.write(data))
    return hashlib.sha256(data).hexdigest()


def _write_via_temporary(
    dest: Path,
    write: Callable[[BinaryIO], object],
    check: Callable[[Path], object] | None = None,
) -> None:
    """``write`` a temporary file beside ``dest``, sync it, ``check`` it, then move it to ``dest``.

    The temporary file (``.<dest name>.<random>.part``) is removed if anything fails — including
    ``check`` raising, or Ctrl-C — so an interrupted write never leaves a partial file under the
    final name; stale temporaries of ``dest`` left by a killed process are swept first.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fout:
            write(fout)
            fout.flush()
            os.fsync(fout.fileno())
        if check is not None:
            check(tmp)
        _publish(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_stale_temporaries(dest: Path, older_than_s: float = STALE_TEMPORARY_S) -> list[Path]:
    """Delete temporary files of ``dest`` that no fetch has touched for ``older_than_s`` seconds.

    A process killed while it downloads or copies (``kill -9``, a crash, a power cut) cannot
    clean up after itself; its ``.<name>.*.part`` file (or, from older soilbook versions,
    ``.<name>.*.download`` / ``<name>.*.tmp``) would stay in the cache forever. A live fetch
    writes its temporary file continuously, so one older than ``older_than_s`` is dead.
    Returns the deleted paths.
    """
    name = glob.escape(dest.name)
    patterns = (f".{name}.*.part", f".{name}.*.download", f"{name}.*.tmp")
    cutoff = time.time() - older_than_s
    removed = []
    for pattern in patterns:
        for path in dest.parent.glob(pattern):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:  # another process removed it first, or no permission: leave it
                continue
    if removed:
        log.info("removed %d stale temporary file(s) of %s", len(removed), dest)
    return removed


#: What the first bytes of a file with this suffix must be.
_MAGIC = {".gz": (b"\x1f\x8b", "gzip data"), ".zip": (b"PK", "a zip archive")}
_MARKUP = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")


def _implausible(remote: RemoteFile, path: Path) -> str | None:
    """Why ``path`` cannot be the file ``remote`` (empty, an HTML/XML page, wrong magic), or None."""
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(512)
    suffix = Path(urlparse(remote.url or "").path or remote.relpath).suffix.lower()
    if suffix not in (".html", ".htm", ".xml") and head.lstrip().lower().startswith(_MARKUP):
        start = head.lstrip()[:40].decode("utf-8", "replace")
        return (
            f"it is a web page ({size:,} bytes starting {start!r}), not the data: a proxy, a "
            "captive portal or the server's error page answered instead of the file"
        )
    if suffix in _MAGIC and not head.startswith(_MAGIC[suffix][0]):
        magic, what = _MAGIC[suffix]
        return (
            f"it is not {what} ({size:,} bytes; a {suffix} file starts with the bytes "
            f"{magic.hex(' ')}, this one with {head[:2].hex(' ')})"
        )
    return None


def _refuse_implausible(remote: RemoteFile, path: Path, where: str, dest: Path) -> None:
    reason = _implausible(remote, path)
    if reason is not None:
        raise DataUnavailableError(
            f"'{remote.name}' {where} is not the expected file: {reason}. Nothing was saved "
            f"and no checksum was recorded. Check that {remote.url or 'the source'} opens in a "
            f"browser, then run `soilbook data fetch {remote.name}` again, or put a good copy "
            f"of the file at {dest}."
        )


def srf_long_csv(srf_path: str | os.PathLike[str]) -> bytes:
    """Rebuild the long-form table (band, wavelength_nm, response) of an EnMAP-Box ``.srf``.

    The ``.srf`` is a numpy ``.npz`` archive with ``srf`` (points, bands, 2: wavelength in µm,
    response) and ``srf_nbands`` (valid points per band). The output (CSV, CRLF line ends,
    1-based band numbers, wavelength rounded to 1e-6 nm) is byte-identical to the mirror's
    ``*_srf_long.csv`` files, so their registered sha256 verifies the rebuild.
    """
    with np.load(srf_path, allow_pickle=False) as z:
        srf, nbands = z["srf"], z["srf_nbands"]
    parts = []
    for b in range(srf.shape[1]):
        n = int(nbands[b])
        parts.append(
            pd.DataFrame(
                {
                    "band": b + 1,
                    "wavelength_nm": np.round(srf[:n, b, 0] * 1000.0, 6),
                    "response": srf[:n, b, 1],
                }
            )
        )
    return pd.concat(parts).to_csv(index=False, lineterminator="\r\n").encode()


#: How a derived file is rebuilt from the local path of its parent.
DERIVERS: dict[str, Callable[[Path], bytes]] = {
    "enmap_srf_long": srf_long_csv,
    "prisma_srf_long": srf_long_csv,
    "landsat8_srf_long": srf_long_csv,
}


def _short_reason(err: BaseException) -> str:
    """A one-line reason for a failed request (HTTP status, time-out, the innermost cause)."""
    response = getattr(err, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return f"HTTP {response.status_code} {getattr(response, 'reason', '') or ''}".strip()
    # requests wraps urllib3's MaxRetryError, whose .reason is the real cause (DNS, refused, ...)
    inner = err.args[0] if err.args and isinstance(err.args[0], BaseException) else err
    inner = getattr(inner, "reason", None) or inner
    text = " ".join(str(inner).split())
    if text.startswith("HTTP") and "): " in text:  # "HTTPSConnection(host=..., port=443): ..."
        text = text.split("): ", 1)[1]
    return f"{type(inner).__name__}: {text[:200]}"


def _unavailable(remote: RemoteFile, dest: Path, err: BaseException) -> DataUnavailableError:
    """The one message for a download that could not reach (or was refused by) the server."""
    ways = []
    if remote.mirror_path:
        ways.append(
            f"set {ENV_MIRROR} to a folder that holds {remote.mirror_path} (a local mirror, "
            "as the tests and CI use)"
        )
    pin = f" (sha256 {remote.sha256})" if remote.sha256 else ""
    ways.append(
        f"download {remote.url} on a machine with internet access and put it at\n    {dest}"
        f"{pin}\n    ({ENV_CACHE} chooses the cache folder, now {cache_dir()})"
    )
    return DataUnavailableError(
        f"Could not download '{remote.name}' ({dest.name}) from {remote.url}: "
        f"{_short_reason(err)}.\nIs this machine offline? To use the file without the network"
        + (", either:\n" if len(ways) > 1 else ":\n")
        + ", or\n".join(f"  - {w}" for w in ways)
        + f".\nThen run again; `soilbook data verify {remote.name}` checks the copy."
    )


def _download(remote: RemoteFile, dest: Path, progress: bool) -> str:
    """Download ``remote`` into a temporary file beside ``dest``, check it, move it into place.

    pooch's HTTP downloader streams the bytes (no log lines; a progress bar only if
    ``progress``). Network and HTTP failures become :class:`DataUnavailableError`; a web page
    or an empty file instead of the data is refused before it reaches ``dest``.
    """
    pooch = import_quietly("pooch")
    requests = import_quietly("requests")
    downloader = pooch.HTTPDownloader(progressbar=bool(progress) and not _quiet())
    digest = ""

    def write(fout: BinaryIO) -> None:
        try:
            downloader(remote.url, fout, None)
        except requests.exceptions.RequestException as err:
            raise _unavailable(remote, dest, err) from None

    def check(tmp: Path) -> None:
        nonlocal digest
        _refuse_implausible(remote, tmp, f"downloaded from {remote.url}", dest)
        digest = sha256sum(tmp)
        expected = _expected(remote, dest)
        if expected and digest != expected:
            raise _mismatch(
                remote,
                f"downloaded from {remote.url}",
                expected,
                digest,
                "The download was corrupted or the upstream file changed. Try again; if it "
                "persists, report it (the registry pins the bytes the book was made with)"
                + (
                    f", or delete {_sidecar(dest)} to accept the new upstream version."
                    if not remote.sha256
                    else "."
                ),
            )

    _write_via_temporary(dest, write, check)
    return digest


def _fetch_into(remote: RemoteFile, dest: Path, progress: bool) -> str:
    """Put a fresh copy of ``remote`` at ``dest`` and return its sha256 (not yet verified)."""
    src = _mirror_source(remote)
    if src is not None:
        log.info("copying %s from the mirror %s", remote.name, src)
        return _copy_atomic(src, dest)
    if remote.derived_from:
        parent = fetch(remote.derived_from, progress=progress)
        log.info("rebuilding %s from %s", remote.name, parent)
        return _write_atomic(DERIVERS[remote.name](parent), dest)
    if remote.url is None:
        raise FileNotFoundError(
            f"'{remote.name}' has no download URL and no mirror copy. Set {ENV_MIRROR} to a "
            f"folder holding {remote.mirror_path}."
        )
    log.info("downloading %s from %s", remote.name, remote.url)
    return _download(remote, dest, progress)


def fetch(name: str, *, progress: bool = False) -> Path:
    """A verified local copy of the registered file ``name``.

    Order: the cache (re-hashed), the mirror ``$SOILBOOK_DATA_MIRROR``, a rebuild for derived
    files, the public URL. A corrupted cached file triggers a :class:`UserWarning` naming the
    file and both hashes, is deleted and fetched again. Raises :class:`ChecksumError` if the
    fresh copy does not match, :class:`UnknownDatasetError` for an unknown name.
    """
    remote = get(name)
    dest = cache_dir() / remote.relpath
    expected = _expected(remote, dest)
    if dest.is_file():
        actual = sha256sum(dest)
        bad = _implausible(remote, dest) if expected is None else None
        if expected is None and bad is None:
            _record(dest, actual)  # cached before a hash was recorded: trust on first use
            return dest
        if actual == expected:
            return dest
        msg = (
            f"The cached copy of '{name}' at {dest} is corrupted: "
            + (bad if bad else f"expected sha256 {expected}, got {actual}")
            + ". Deleting it and fetching it again."
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        log.warning(msg)
        dest.unlink()
    digest = _fetch_into(remote, dest, progress)
    if expected is None:
        src = _mirror_source(remote)
        where = f"copied from the mirror {src}" if src is not None else "as fetched"
        try:
            _refuse_implausible(remote, dest, where, dest)
        except DataUnavailableError:
            dest.unlink(missing_ok=True)
            raise
        _record(dest, digest)
        (log.info if _quiet() else log.warning)(
            "'%s' has no published checksum; recorded sha256 %s at first download (%s).",
            name,
            digest,
            _sidecar(dest),
        )
    elif digest != expected:
        dest.unlink(missing_ok=True)
        src = _mirror_source(remote)
        where = f"copied from the mirror {src}" if src is not None else "freshly fetched"
        raise _mismatch(
            remote,
            where,
            expected,
            digest,
            "The source copy is corrupted or a different version: restore it (or unset "
            f"{ENV_MIRROR} to download from {remote.url}).",
        )
    return dest


def verify(name: str) -> bool:
    """True if ``name`` is cached and matches its pinned (or recorded) sha256; never downloads."""
    remote = get(name)
    path = cache_dir() / remote.relpath
    if not path.is_file():
        return False
    expected = _expected(remote, path)
    return expected is not None and sha256sum(path) == expected


def list_datasets() -> pd.DataFrame:
    """One row per registered file: name, description, licence, checksum kind, cached?, size."""
    rows = []
    for name, remote in sorted(DATASETS.items()):
        path = cache_dir() / remote.relpath
        cached = path.is_file()
        rows.append(
            {
                "name": name,
                "description": remote.description,
                "licence": remote.licence,
                "sha256": "pinned" if remote.sha256 else "recorded at first download",
                "cached": cached,
                "size_bytes": path.stat().st_size if cached else None,
            }
        )
    return pd.DataFrame(rows)


def clear_cache(name: str) -> None:
    """Delete the cached copy of ``name`` (and its recorded hash)."""
    path = cached_path(name)
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)


__all__ = [
    "DATASETS",
    "ChecksumError",
    "DataUnavailableError",
    "RemoteFile",
    "UnknownDatasetError",
    "cache_dir",
    "cached_path",
    "clear_cache",
    "fetch",
    "get",
    "list_datasets",
    "register",
    "sha256sum",
    "srf_long_csv",
    "sweep_stale_temporaries",
    "verify",
]
