"""TFRecord files of ``tf.train.Example`` records, read and written without TensorFlow.

Google's soil-moisture retrieval data (:mod:`soilbook.data.real.sm_retrieval`) is published as
GZIP-compressed TFRecord shards; this module reads (and, for tests and for users who want to
write their own tiles in the same format, writes) them with numpy and the standard library only.

Record framing (one record after another, nothing else in the file)
-------------------------------------------------------------------
=====================  =======================================================================
``uint64`` (8 bytes)   the record's length ``n``, little-endian
``uint32`` (4 bytes)   masked CRC32C of those 8 length bytes, little-endian
``n`` bytes            the record (here a serialised ``tf.train.Example``)
``uint32`` (4 bytes)   masked CRC32C of the ``n`` record bytes, little-endian
=====================  =======================================================================

CRC32C is the Castagnoli CRC (reflected polynomial ``0x82F63B78``, initial value and final XOR
``0xFFFFFFFF``; ``crc32c(b"123456789") == 0xE3069283``). The *mask* is
``((crc >> 15) | (crc << 17)) + 0xA282EAD8`` modulo 2³². A ``.gz`` file is the same byte
stream compressed with gzip (``compression="auto"`` recognises it by its magic bytes).
Both CRCs are checked on reading: a mismatch or a file that ends inside a record raises
:class:`~soilbook.errors.ChecksumError` naming the file and the record's index (0-based).

CRC32C speed: the table-driven algorithm is run *vectorised* over many chunks of a record at
once with numpy, and the chunk CRCs are combined with the CRC's linearity (shifting a CRC
register by ``L`` zero bytes is a linear map of its 32 bits, tabulated per byte), so a 40 MB
record is checked in a fraction of a second. When the optional package ``google_crc32c`` (a C
implementation, installed with ``earthengine-api``) is importable it is used instead; the
results are identical (a test checks the numpy path against it and against the check value).

``tf.train.Example`` (protobuf wire format, decoded here by hand)
-----------------------------------------------------------------
::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }    // entries {string key = 1; Feature value = 2;}
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

A field is a varint *tag* ``(field_number << 3) | wire_type`` followed by its payload: wire
type 0 a base-128 varint (little-endian groups of 7 bits, high bit = "more"), 1 eight bytes,
2 a varint length then that many bytes (sub-messages, strings, packed arrays), 5 four bytes.
Repeated scalars may come *packed* (one length-delimited field holding the values back to back)
or *unpacked* (one tagged field per value), or both; a reader must accept either. int64 values
are two's complement, so a negative value is a 10-byte varint. Packed varint arrays are decoded
with vectorised numpy (the shards' 512 × 512 images are int64 lists of 262,144 values).

Decoded features are ``list[bytes]`` (bytes_list), ``numpy.float32`` arrays (float_list) or
``numpy.int64`` arrays (int64_list); a feature with no kind set decodes to an empty float32
array.

Public API: :func:`crc32c`, :func:`masked_crc32c`, :func:`iter_records`,
:func:`write_records`, :func:`decode_example`, :func:`encode_example`,
:func:`read_examples`, :func:`write_examples`.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from soilbook.errors import ChecksumError, ParameterError, SchemaError

__all__ = [
    "COMPRESSIONS",
    "Feature",
    "crc32c",
    "decode_example",
    "encode_example",
    "iter_records",
    "masked_crc32c",
    "read_examples",
    "write_examples",
    "write_records",
]

#: What ``compression`` accepts: ``"auto"`` (gzip if the file starts with the gzip magic bytes
#: on reading, or if its name ends in ``.gz`` on writing), ``"gzip"``, or ``None`` (plain).
COMPRESSIONS = ("auto", "gzip", None)
#: A decoded feature: bytes_list → list of bytes, float_list → float32 array, int64_list →
#: int64 array.
Feature = list[bytes] | np.ndarray

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"
_MIN_VECTOR_BYTES = 4096  # below this the plain loop is as fast as numpy


def _make_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _crc_register_loop(data: bytes | memoryview, state: int) -> int:
    """Run the reflected table algorithm over ``data`` from register ``state`` (no final XOR)."""
    table = _TABLE_LIST
    for b in bytes(data):
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


@lru_cache(maxsize=32)
def _shift_tables(n_bytes: int) -> np.ndarray:
    """(4, 256) uint32 tables of the linear map "feed ``n_bytes`` zero bytes to the register":
    ``shift(x) = T[0][x & 255] ^ T[1][(x >> 8) & 255] ^ T[2][(x >> 16) & 255] ^ T[3][x >> 24]``."""
    states = (
        np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
    ).ravel()
    for _ in range(n_bytes):
        states = _TABLE[states & 0xFF] ^ (states >> 8)
    return states.reshape(4, 256)


def _crc32c_numpy(data: bytes | memoryview) -> int:
    """CRC32C of ``data`` with numpy: chunk CRCs in parallel, then combined (module docstring)."""
    n = len(data)
    if n < _MIN_VECTOR_BYTES:
        return _crc_register_loop(data, 0xFFFFFFFF) ^ 0xFFFFFFFF
    # Chunk length: a power of two near sqrt(n) balances the two loops below.
    chunk = 1 << max(6, int(np.log2(np.sqrt(n))))
    n_chunks = -(-n // chunk)
    buf = np.zeros(n_chunks * chunk, dtype=np.uint8)
    pad = n_chunks * chunk - n
    # Leading zero bytes leave a zero register at zero, so the message is padded at the front;
    # the initial value 0xFFFFFFFF is equivalent to XOR-ing it into the first 4 message bytes.
    buf[pad:] = np.frombuffer(data, dtype=np.uint8)
    buf[pad : pad + 4] ^= np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)
    columns = np.ascontiguousarray(buf.reshape(n_chunks, chunk).T)  # (chunk, n_chunks)
    state = np.zeros(n_chunks, dtype=np.uint32)
    for row in columns:
        state = _TABLE[(state ^ row) & 0xFF] ^ (state >> 8)
    t0, t1, t2, t3 = (list(map(int, t)) for t in _shift_tables(chunk))
    acc = 0
    for s in state.tolist():
        acc = t0[acc & 0xFF] ^ t1[(acc >> 8) & 0xFF] ^ t2[(acc >> 16) & 0xFF] ^ t3[acc >> 24] ^ s
    return acc ^ 0xFFFFFFFF


try:  # optional C implementation (comes with earthengine-api); identical results
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover - depends on the environment
    _google_crc32c = None


def crc32c(data: bytes | bytearray | memoryview, *, backend: str = "auto") -> int:
    """The CRC32C (Castagnoli) checksum of ``data`` as an int in [0, 2³²).

    ``backend``: ``"auto"`` (``google_crc32c`` when installed, else numpy), ``"numpy"`` or
    ``"python"`` (the plain table loop, slow; for tests).
    """
    if backend == "auto":
        backend = "google" if _google_crc32c is not None else "numpy"
    if backend == "google" and _google_crc32c is not None:
        return int(_google_crc32c.value(bytes(data)))
    if backend == "numpy":
        return _crc32c_numpy(memoryview(data).cast("B"))
    if backend == "python":
        return _crc_register_loop(memoryview(data).cast("B"), 0xFFFFFFFF) ^ 0xFFFFFFFF
    raise ParameterError(
        f"crc32c backend {backend!r} is unknown. Allowed: 'auto', 'numpy', 'python'"
        + (", 'google'" if _google_crc32c is not None else "")
        + ". What to do: use backend='auto'."
    )


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC32C TFRecord stores: ``((crc >> 15) | (crc << 17)) + 0xA282EAD8`` mod 2³²."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- record framing


def _check_compression(compression: str | None) -> None:
    if compression not in COMPRESSIONS:
        raise ParameterError(
            f"compression={compression!r} is not supported. Allowed: {list(COMPRESSIONS)}. "
            "What to do: use 'gzip' for .tfrecord.gz shards, None for plain files, or 'auto'."
        )


def _open_for_reading(path: Path, compression: str | None) -> BinaryIO:
    _check_compression(compression)
    if not path.is_file():
        raise FileNotFoundError(
            f"TFRecord file {path} does not exist. What to do: check the path (a shard of the "
            "soil-moisture data is named like data-00000-of-00500.tfrecord.gz)."
        )
    if compression == "auto":
        with open(path, "rb") as fh:
            compression = "gzip" if fh.read(2) == _GZIP_MAGIC else None
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_exactly(fh: BinaryIO, n: int, path: Path, index: int, what: str) -> bytes | None:
    """``n`` bytes, ``None`` at a clean end of file (only before a record), else raise."""
    try:
        data = fh.read(n)
    except (EOFError, OSError, zlib.error) as err:  # a truncated or damaged gzip stream
        raise ChecksumError(
            f"{path}: the compressed stream is damaged or truncated in record {index} "
            f"({what}): {err}. What to do: download the file again (its sha256 will differ "
            "from the published one) or pass limit= to read the records before it."
        ) from None
    if len(data) == n:
        return data
    if not data and what == "length":
        return None
    raise ChecksumError(
        f"{path}: the file is truncated in record {index}: its {what} needs {n} bytes but "
        f"only {len(data)} remain. What to do: download the file again, or pass limit={index} "
        "to read the complete records before it."
    )


def iter_records(
    path: str | Path, *, compression: str | None = "auto", verify: bool = True
) -> Iterator[bytes]:
    """The records of a TFRecord file, in order, as bytes.

    Parameters
    ----------
    path : a ``.tfrecord`` or ``.tfrecord.gz`` file
    compression : ``"auto"`` (gzip when the file starts with gzip's magic bytes), ``"gzip"``
        or ``None``
    verify : check both masked CRC32Cs of every record (default; turn off only for speed on
        files you have verified before)

    Raises
    ------
    ChecksumError
        a length or data CRC does not match, or the file ends inside a record; the message
        names the file and the record's 0-based index.
    """
    path = Path(path)
    with _open_for_reading(path, compression) as fh:
        index = 0
        while True:
            header = _read_exactly(fh, 12, path, index, "length")
            if header is None:
                return
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if verify and masked_crc32c(header[:8]) != length_crc:
                raise ChecksumError(
                    f"{path}: record {index} has a corrupt length field (CRC32C mismatch: "
                    f"stored {length_crc:#010x}, computed {masked_crc32c(header[:8]):#010x}). "
                    f"What to do: download the file again, or pass limit={index}."
                )
            data = _read_exactly(fh, length, path, index, "data")
            footer = _read_exactly(fh, 4, path, index, "data CRC")
            assert data is not None and footer is not None
            (data_crc,) = struct.unpack("<I", footer)
            if verify and masked_crc32c(data) != data_crc:
                raise ChecksumError(
                    f"{path}: record {index} is corrupt (data CRC32C mismatch: stored "
                    f"{data_crc:#010x}, computed {masked_crc32c(data):#010x}). What to do: "
                    f"download the file again, or pass limit={index}."
                )
            yield data
            index += 1


def write_records(
    path: str | Path, records: Iterable[bytes], *, compression: str | None = "auto"
) -> int:
    """Write ``records`` (bytes each) as a TFRecord file; returns the number written.

    ``compression``: ``"auto"`` (gzip when the name ends in ``.gz``), ``"gzip"`` or ``None``.
    """
    _check_compression(compression)
    path = Path(path)
    if compression == "auto":
        compression = "gzip" if path.suffix == ".gz" else None
    opener = gzip.open if compression == "gzip" else open
    n = 0
    with opener(path, "wb") as fh:
        for record in records:
            record = bytes(record)
            length = struct.pack("<Q", len(record))
            fh.write(length)
            fh.write(struct.pack("<I", masked_crc32c(length)))
            fh.write(record)
            fh.write(struct.pack("<I", masked_crc32c(record)))
            n += 1
    return n


# --------------------------------------------------------------------------- protobuf wire format


class _WireError(ValueError):
    """Malformed protobuf bytes (turned into a SchemaError with the file and record)."""


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise _WireError("a varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("a varint is longer than 10 bytes")


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, payload) of each field of a message: an int for wire types
    0, 1 and 5 (raw little-endian bits), a memoryview for wire type 2."""
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
    pos, end = 0, len(view)
    while pos < end:
        tag, pos = _read_varint(view, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _WireError("a field has number 0")
        if wire == 0:
            value, pos = _read_varint(view, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise _WireError("a 64-bit field runs past the end of the message")
            value = int.from_bytes(view[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            size, pos = _read_varint(view, pos)
            if pos + size > end:
                raise _WireError("a length-delimited field runs past the end of the message")
            value = view[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise _WireError("a 32-bit field runs past the end of the message")
            value = int.from_bytes(view[pos : pos + 4], "little")
            pos += 4
        else:
            raise _WireError(f"wire type {wire} (groups or unknown) is not used by tf.Example")
        yield number, wire, value


def _decode_packed_varints(payload: memoryview) -> np.ndarray:
    """Back-to-back varints → int64 (two's complement, as protobuf int64), vectorised."""
    b = np.frombuffer(payload, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = b < 0x80
    if not last[-1]:
        raise _WireError("a packed int64 list ends inside a varint")
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise _WireError("a varint in a packed int64 list is longer than 10 bytes")
    if lengths.max() == 1:  # every value < 128: the common case of 0-255 scaled bands ...
        return b.astype(np.int64)
    group = np.repeat(np.arange(ends.size), lengths)
    position = np.arange(b.size) - starts[group]
    parts = (b & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts).view(np.int64)


def _decode_float_list(payload: memoryview) -> np.ndarray:
    chunks: list[np.ndarray] = []
    for number, wire, value in _fields(payload):
        if number != 1:
            continue  # unknown field: ignored, as protobuf does
        if wire == 2:  # packed
            if len(value) % 4:
                raise _WireError("a packed float list's length is not a multiple of 4")
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif wire == 5:  # unpacked, one value per field
            chunks.append(np.array([value], dtype=np.uint32).view("<f4"))
        else:
            raise _WireError(f"a float list value has wire type {wire}")
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _decode_int64_list(payload: memoryview) -> np.ndarray:
    chunks: list[np.ndarray] = []
    for number, wire, value in _fields(payload):
        if number != 1:
            continue
        if wire == 2:
            chunks.append(_decode_packed_varints(value))
        elif wire == 0:
            chunks.append(np.array([value & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64).view(np.int64))
        else:
            raise _WireError(f"an int64 list value has wire type {wire}")
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def _decode_feature(payload: memoryview) -> Feature:
    out: Feature = np.zeros(0, dtype=np.float32)  # no kind set
    for number, wire, value in _fields(payload):
        if wire != 2:
            continue
        if number == 1:
            out = [bytes(v) for n, w, v in _fields(value) if n == 1 and w == 2]
        elif number == 2:
            out = _decode_float_list(value)
        elif number == 3:
            out = _decode_int64_list(value)
    return out  # a oneof: the last kind seen wins, as in protobuf


def decode_example(
    data: bytes | memoryview, *, keys: Iterable[str] | None = None
) -> dict[str, Feature]:
    """Decode a serialised ``tf.train.Example`` into ``{key: feature}`` (see :data:`Feature`).

    ``keys``: decode only these features (others are skipped without decoding: much faster on
    the shards' ~150 image features); keys absent from the record are simply not returned.

    Raises :class:`SchemaError` when ``data`` is not a well-formed Example.
    """
    wanted = None if keys is None else set(keys)
    out: dict[str, Feature] = {}
    try:
        for number, wire, features in _fields(data):
            if number != 1 or wire != 2:
                continue
            for n, w, entry in _fields(features):
                if n != 1 or w != 2:
                    continue
                key: str | None = None
                value: memoryview | None = None
                for en, ew, ev in _fields(entry):
                    if en == 1 and ew == 2:
                        key = bytes(ev).decode("utf-8")
                    elif en == 2 and ew == 2:
                        value = ev
                if key is None or (wanted is not None and key not in wanted):
                    continue
                out[key] = np.zeros(0, np.float32) if value is None else _decode_feature(value)
    except (_WireError, UnicodeDecodeError) as err:
        raise SchemaError(
            f"the record is not a well-formed tf.train.Example: {err}. Expected: protobuf "
            "Example{Features{map<string, Feature>}}. What to do: check that the file holds "
            "tf.Example records (not SequenceExample or raw tensors)."
        ) from None
    return out


# --------------------------------------------------------------------------- encoding


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64 → two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _encode_packed_varints(values: np.ndarray) -> bytes:
    v = values.astype(np.int64).view(np.uint64)
    if v.size == 0:
        return b""
    if int(v.max()) < 0x80:
        return v.astype(np.uint8).tobytes()
    # bytes needed per value, then each 7-bit group with its continuation bit
    nbytes = np.ones(v.size, dtype=np.int64)
    for k in range(1, 10):
        nbytes += (v >> np.uint64(7 * k)) > 0
    group = np.repeat(np.arange(v.size), nbytes)
    offsets = np.arange(group.size) - np.repeat(np.cumsum(nbytes) - nbytes, nbytes)
    out = ((v[group] >> (7 * offsets).astype(np.uint64)) & np.uint64(0x7F)).astype(np.uint8)
    out[offsets < nbytes[group] - 1] |= 0x80
    return out.tobytes()


def _encode_feature(value: Any, packed: bool) -> bytes:
    if isinstance(value, (bytes, str)):
        value = [value]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (bytes, str)) for v in value)
    ):
        items = [v.encode("utf-8") if isinstance(v, str) else v for v in value]
        return _len_field(1, b"".join(_len_field(1, v) for v in items))
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        flat = arr.astype("<f4").ravel()
        if packed:
            body = _len_field(1, flat.tobytes()) if flat.size else b""
        else:
            body = b"".join(b"\x0d" + x.tobytes() for x in flat)
        return _len_field(2, body)
    if arr.dtype.kind in "iub":
        flat = arr.astype(np.int64).ravel()
        if packed:
            body = _len_field(1, _encode_packed_varints(flat)) if flat.size else b""
        else:
            body = b"".join(b"\x08" + _varint(int(x)) for x in flat)
        return _len_field(3, body)
    raise ParameterError(
        f"cannot encode a feature of type {type(value).__name__} (dtype {arr.dtype}). Allowed: "
        "bytes/str or a list of them (bytes_list), floats (float_list), integers (int64_list). "
        "What to do: convert the value to one of these."
    )


def encode_example(features: Mapping[str, Any], *, packed: bool = True) -> bytes:
    """Serialise ``{key: value}`` as a ``tf.train.Example``.

    A value is bytes / str or a list of them (→ bytes_list), a float array or scalar
    (→ float_list, stored as float32), or an integer / bool array or scalar (→ int64_list);
    arrays are flattened in C order. ``packed=False`` writes repeated scalars one field per
    value (the older encoding; both are valid and :func:`decode_example` reads both).
    """
    entries = []
    for key, value in features.items():
        entry = _len_field(1, str(key).encode("utf-8")) + _len_field(
            2, _encode_feature(value, packed)
        )
        entries.append(_len_field(1, entry))
    return _len_field(1, b"".join(entries))


# --------------------------------------------------------------------------- convenience


def read_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    keys: Iterable[str] | None = None,
    limit: int | None = None,
    compression: str | None = "auto",
    verify: bool = True,
) -> Iterator[dict[str, Feature]]:
    """Decoded examples of one or more TFRecord files, in order (see :func:`decode_example`).

    ``limit``: stop after this many examples in all. Raises :class:`ChecksumError` on a corrupt
    or truncated record and :class:`SchemaError` on a record that is not a tf.Example, naming
    the file and the record's 0-based index.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ParameterError(
            f"limit={limit!r} is not allowed. Allowed: None or an integer >= 0. "
            "What to do: pass limit=None to read everything."
        )
    wanted = None if keys is None else list(keys)
    files = [paths] if isinstance(paths, (str, Path)) else list(paths)
    n = 0
    for path in files:
        if limit is not None and n >= limit:
            return
        for index, record in enumerate(iter_records(path, compression=compression, verify=verify)):
            try:
                example = decode_example(record, keys=wanted)
            except SchemaError as err:
                raise SchemaError(f"{path}, record {index}: {err}") from None
            yield example
            n += 1
            if limit is not None and n >= limit:
                return


def write_examples(
    path: str | Path,
    examples: Iterable[Mapping[str, Any]],
    *,
    compression: str | None = "auto",
    packed: bool = True,
) -> int:
    """Write ``examples`` (mappings as :func:`encode_example` takes) as a TFRecord file (gzip
    when the name ends in ``.gz`` with ``compression="auto"``); returns the number written."""
    return write_records(
        path, (encode_example(e, packed=packed) for e in examples), compression=compression
    )
