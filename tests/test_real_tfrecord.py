"""TFRecord / tf.Example reader and writer without TensorFlow, on files the tests write."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from soilbook.data.real import tfrecord as tfr
from soilbook.errors import ChecksumError, ParameterError, SchemaError


def _examples():
    return [
        {
            "sensor_id": b"NET__ST_1__probe",
            "timestamp": np.float32(1.6e12),
            "image": np.arange(16, dtype=np.int64).reshape(4, 4) * 20,
            "floats": np.array([0.25, -1.5, 3e8], dtype=np.float32),
            "neg": np.array([-1, -(2**63), 2**63 - 1, 0, 300]),
            "names": ["a", "bc"],
        },
        {"sensor_id": "second", "image": np.zeros(16, dtype=np.int64), "empty": np.zeros(0)},
    ]


def test_crc32c_check_value_and_backends_agree():
    assert tfr.crc32c(b"123456789", backend="python") == 0xE3069283
    rng = np.random.default_rng(0)
    for n in (0, 3, 4, 5, 4095, 4097, 70_001):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        expected = tfr.crc32c(data, backend="python") if n < 5000 else None
        got = tfr.crc32c(data, backend="numpy")
        if expected is not None:
            assert got == expected
        assert got == tfr.crc32c(data)  # the C implementation where installed
    with pytest.raises(ParameterError, match="backend"):
        tfr.crc32c(b"x", backend="fast")
    # the masked CRC TFRecord stores (rotate right by 15, add a constant)
    crc = tfr.crc32c(b"abc")
    assert (
        tfr.masked_crc32c(b"abc")
        == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32
    )


@pytest.mark.parametrize("name", ["x.tfrecord", "x.tfrecord.gz"])
def test_round_trip_plain_and_gzip(tmp_path: Path, name: str):
    path = tmp_path / name
    assert tfr.write_examples(path, _examples()) == 2
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    first, second = tfr.read_examples(path)
    assert first["sensor_id"] == [b"NET__ST_1__probe"] and first["names"] == [b"a", b"bc"]
    assert first["image"].dtype == np.int64 and (first["image"] == np.arange(16) * 20).all()
    np.testing.assert_array_equal(first["floats"], np.array([0.25, -1.5, 3e8], np.float32))
    np.testing.assert_array_equal(first["neg"], [-1, -(2**63), 2**63 - 1, 0, 300])
    assert second["empty"].size == 0 and second["sensor_id"] == [b"second"]
    # only the wanted keys are decoded; a limit stops early
    (only,) = tfr.read_examples([path], keys=["image"], limit=1)
    assert list(only) == ["image"]


def test_packed_and_unpacked_lists_decode_the_same():
    values = {"f": np.array([1.0, -2.5, 1e-3], np.float32), "i": np.array([-5, 0, 7, 2**40])}
    packed = tfr.encode_example(values, packed=True)
    unpacked = tfr.encode_example(values, packed=False)
    assert packed != unpacked
    for blob in (packed, unpacked):
        out = tfr.decode_example(blob)
        np.testing.assert_array_equal(out["f"], values["f"])
        np.testing.assert_array_equal(out["i"], values["i"])


def test_agrees_with_the_protobuf_library():
    """Cross-check against Google's protobuf runtime (when installed) on a dynamic Example."""
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="ex.proto", package="t", syntax="proto3")
    fd = descriptor_pb2.FieldDescriptorProto
    for name, typ in (
        ("BytesList", fd.TYPE_BYTES),
        ("FloatList", fd.TYPE_FLOAT),
        ("Int64List", fd.TYPE_INT64),
    ):
        fdp.message_type.add(name=name).field.add(
            name="value", number=1, type=typ, label=fd.LABEL_REPEATED
        )
    feat = fdp.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    for i, kind in enumerate(("bytes_list", "float_list", "int64_list"), 1):
        tname = ".t." + {1: "BytesList", 2: "FloatList", 3: "Int64List"}[i]
        feat.field.add(name=kind, number=i, type=fd.TYPE_MESSAGE, type_name=tname, oneof_index=0)
    feats = fdp.message_type.add(name="Features")
    entry = feats.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=fd.TYPE_STRING)
    entry.field.add(name="value", number=2, type=fd.TYPE_MESSAGE, type_name=".t.Feature")
    feats.field.add(
        name="feature",
        number=1,
        type=fd.TYPE_MESSAGE,
        label=fd.LABEL_REPEATED,
        type_name=".t.Features.FeatureEntry",
    )
    fdp.message_type.add(name="Example").field.add(
        name="features", number=1, type=fd.TYPE_MESSAGE, type_name=".t.Features"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    example_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Example"))

    ours = example_cls.FromString(tfr.encode_example({"i": np.array([-3, 200]), "s": [b"id"]}))
    assert list(ours.features.feature["i"].int64_list.value) == [-3, 200]
    theirs = example_cls()
    theirs.features.feature["f"].float_list.value.extend([0.5, 2.0])
    theirs.features.feature["i"].int64_list.value.extend([-(2**40), 1])
    out = tfr.decode_example(theirs.SerializeToString())
    np.testing.assert_array_equal(out["f"], [0.5, 2.0])
    np.testing.assert_array_equal(out["i"], [-(2**40), 1])


def _records(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each record's data in a plain file."""
    raw, pos, out = path.read_bytes(), 0, []
    while pos < len(raw):
        (n,) = struct.unpack("<Q", raw[pos : pos + 8])
        out.append((pos + 12, n))
        pos += 16 + n
    return out


def test_a_corrupted_crc_names_the_file_and_the_record(tmp_path: Path):
    path = tmp_path / "bad.tfrecord"
    tfr.write_examples(path, _examples())
    offset, _ = _records(path)[1]
    raw = bytearray(path.read_bytes())
    raw[offset + 3] ^= 0xFF  # a flipped byte in record 1's data
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"bad\.tfrecord: record 1 is corrupt"):
        list(tfr.read_examples(path))
    assert len(list(tfr.read_examples(path, limit=1))) == 1  # the records before it still read
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0x01  # record 0's length field
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="record 0 has a corrupt length"):
        list(tfr.iter_records(path))
    # the same flipped data byte in a gzip file
    gz = tmp_path / "bad.tfrecord.gz"
    clean = tmp_path / "clean.tfrecord"
    tfr.write_examples(clean, _examples())
    raw = bytearray(clean.read_bytes())
    raw[offset + 3] ^= 0xFF
    gz.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError, match=r"bad\.tfrecord\.gz: record 1"):
        list(tfr.iter_records(gz))


def test_a_truncated_file_raises(tmp_path: Path):
    path = tmp_path / "cut.tfrecord"
    tfr.write_examples(path, _examples())
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])
    with pytest.raises(ChecksumError, match="truncated in record 1"):
        list(tfr.iter_records(path))
    gz = tmp_path / "cut.tfrecord.gz"
    tfr.write_examples(gz, _examples())
    gz.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(ChecksumError, match=r"cut\.tfrecord\.gz"):
        list(tfr.iter_records(gz))


def test_bad_inputs_raise_clear_errors(tmp_path: Path):
    with pytest.raises(SchemaError, match=r"tf\.train\.Example"):
        tfr.decode_example(b"\x0a\x05abc")  # a length past the end
    path = tmp_path / "junk.tfrecord"
    tfr.write_records(path, [b"\x0a\x05abc"])
    with pytest.raises(SchemaError, match=r"junk\.tfrecord, record 0"):
        list(tfr.read_examples(path))
    with pytest.raises(FileNotFoundError):
        list(tfr.iter_records(tmp_path / "missing.tfrecord"))
    with pytest.raises(ParameterError, match="compression"):
        list(tfr.iter_records(path, compression="zlib"))
    with pytest.raises(ParameterError, match="encode"):
        tfr.encode_example({"x": [object()]})
