"""Cheap checks of a user's data file that run before a notebook starts (no table is parsed).

:func:`soilbook.data.tables.read_header` already refuses an empty CSV, a header that is not
UTF-8, a column named twice and a ``;``-separated table. What it cannot see without reading the
rows is checked here, by reading bytes only:

:func:`check_file_content`
    the file can be opened for reading and is not empty (any format, e.g. a 0-byte NetCDF);
:func:`check_utf8_text`
    every byte of a text file decodes as UTF-8 (a Latin-1 ``é`` deep in a CSV would otherwise
    stop the notebook with a raw ``UnicodeDecodeError`` once the rows are read).
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from soilbook.errors import ParameterError, SchemaError

#: Bytes read at a time by :func:`check_utf8_text`.
CHUNK_BYTES = 1 << 20

__all__ = ["CHUNK_BYTES", "check_file_content", "check_utf8_text"]


def check_file_content(path: str | os.PathLike[str]) -> Path:
    """Raise unless ``path`` is a file that can be read and holds at least one byte.

    Raises :class:`ParameterError` (a folder, no read permission) or :class:`SchemaError`
    (empty). A ``.zarr`` folder is left alone (a store, not a file).
    """
    path = Path(path)
    if path.is_dir():
        if path.suffix.lower() == ".zarr":
            return path
        raise ParameterError(f"data_path {path} is a folder; give the path of a file inside it.")
    try:
        with path.open("rb") as handle:
            first = handle.read(1)
    except PermissionError:
        raise ParameterError(
            f"data_path {path} cannot be read (permission denied); fix its permissions or copy "
            "it somewhere you can read."
        ) from None
    if not first:
        raise SchemaError(
            f"{path.name} is empty (0 bytes) (file: {path}); an interrupted copy or download? "
            "Copy the file again."
        )
    return path


def check_utf8_text(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SchemaError` at the first byte of ``path`` that is not UTF-8.

    The file is streamed in :data:`CHUNK_BYTES` pieces (a character split across two pieces is
    fine); a leading byte-order mark is allowed. The message names the byte, its offset and
    its line (1 = the header).
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()  # a byte-order mark is valid UTF-8
    offset = 0  # file offset of the first byte of ``chunk``
    lines = 1
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                carried = len(err.object) - len(chunk)  # an unfinished character from before
                at = offset - carried + err.start
                line = lines + err.object[: err.start].count(b"\n")
                bad = err.object[err.start : err.start + 1].hex()
                raise SchemaError(
                    f"{path.name} is not UTF-8 text: the byte 0x{bad} at byte {at} (line "
                    f"{line}) cannot be decoded (file: {path}). Save the "
                    "table as UTF-8 (spreadsheet programs call it 'CSV UTF-8'), or convert it, "
                    "e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`."
                ) from None
            if not chunk:
                return
            lines += chunk.count(b"\n")
            offset += len(chunk)
