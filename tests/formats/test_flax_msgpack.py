"""Flax ``.msgpack``: the bounded MessagePack decoder and the array reader, on files built here
byte by byte (a tiny packer below) and on the real fixtures."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats import detect
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.formats.flax import msgpack, serialization

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def pack(value) -> bytes:
    """MessagePack of str-keyed maps, str, bytes, lists, ints, and ``(code, bytes)`` ext values."""
    if isinstance(value, dict):
        return bytes([0xDE]) + struct.pack(">H", len(value)) + b"".join(pack(k) + pack(v) for k, v in value.items())
    if isinstance(value, list):
        return bytes([0xDC]) + struct.pack(">H", len(value)) + b"".join(pack(v) for v in value)
    if isinstance(value, str):
        data = value.encode()
        return bytes([0xD9, len(data)]) + data
    if isinstance(value, bytes):
        return bytes([0xC6]) + struct.pack(">I", len(value)) + value
    if isinstance(value, tuple):
        code, data = value
        return bytes([0xC9]) + struct.pack(">Ib", len(data), code) + data
    if isinstance(value, int):
        return bytes([0xD3]) + struct.pack(">q", value)
    raise TypeError(value)


def array(a: np.ndarray, dtype: str | None = None) -> tuple[int, bytes]:
    return 1, pack([list(a.shape), dtype or a.dtype.name, a.tobytes()])


def write(tmp_path: Path, data: bytes) -> InputFile:
    path = tmp_path / "params.msgpack"
    path.write_bytes(data)
    return InputFile(path.name, path)


def read(tmp_path: Path, data: bytes, limits: Limits | None = None):
    return serialization.read([write(tmp_path, data)], limits or Limits())


def test_arrays_come_back_by_tree_path(tmp_path: Path) -> None:
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = pack({"params": {"cell": {"hi": {"kernel": array(kernel), "bias": array(np.ones(4, np.float64))}}}, "step": 3})
    assert detect([write(tmp_path, data)]) == "flax_msgpack"
    weights = read(tmp_path, data)
    np.testing.assert_array_equal(weights.tensors["params/cell/hi/kernel"], kernel)
    assert weights.tensors["params/cell/hi/bias"].dtype == np.float64
    assert weights.attrs["ignored_entries"] == ["step"]


def test_bfloat16_is_widened_exactly_with_a_note(tmp_path: Path) -> None:
    bits = np.array([0x3F80, 0xC000], dtype="<u2")  # 1.0, -2.0
    weights = read(tmp_path, pack({"w": array(bits, "bfloat16")}))
    np.testing.assert_array_equal(weights.tensors["w"], np.array([1.0, -2.0], np.float32))
    assert weights.bfloat16 == {"w"} and weights.notes


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ([[2, 2], "float32", b"\0" * 15], MalformedFile, "needs 16 bytes"),
        ([[2], "object", b"\0" * 16], UnsupportedFormat, "not a plain number"),
        ([[-1], "float32", b""], MalformedFile, "shape"),
        ([[2], "float32"], MalformedFile, "shape, dtype, data"),
    ],
)
def test_arrays_are_checked_before_they_exist(tmp_path: Path, fields, error, match) -> None:
    with pytest.raises(error, match=match):
        read(tmp_path, pack({"w": (1, pack(fields))}))


def test_the_element_bound_holds(tmp_path: Path) -> None:
    with pytest.raises(LimitExceeded):
        read(tmp_path, pack({"w": array(np.zeros(10, np.float32))}), Limits(max_tensor_elements=9))


def test_chunked_arrays_are_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="chunks"):
        read(tmp_path, pack({"w": {"__msgpack_chunked_array__": 1, "shape": [2]}}))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xdf\xff\xff\xff\xff", MalformedFile),  # a map of 4G pairs in 0 bytes: refused before allocating
        (b"\xdd\x00\x10\x00\x00\xc0", MalformedFile),  # an array of 1M elements in 1 byte
        (b"\xc6\xff\xff\xff\xff", MalformedFile),  # bin longer than the input
        (b"\x81\xa1a\xc1", MalformedFile),  # the never-used type byte
        (b"\x82\xa1a\x01\xa1a\x02", MalformedFile),  # a key twice
        (b"\x81\x90\x01", MalformedFile),  # a key that is a list
        (b"\x81\xa1a\x01\x00", MalformedFile),  # bytes after the value
        (b"\x81\xa2\xff\xfe\x01", MalformedFile),  # a key that is not UTF-8
        (b"\x91" * 100 + b"\xc0", LimitExceeded),  # nested deeper than MAX_DEPTH
    ],
)
def test_hostile_messagepack_is_refused(data: bytes, error: type) -> None:
    with pytest.raises(error):
        msgpack.unpackb(data)


def test_every_scalar_type_decodes() -> None:
    data = b"\x9f\xc0\xc2\xc3\x7f\xe0\xcc\xff\xcd\x01\x00\xd0\x80\xd1\x80\x00\xca" + struct.pack(">f", 1.5)
    data += b"\xcb" + struct.pack(">d", -2.25) + b"\xa2hi\xc4\x01z\xd4\x05q\xd9\x01s"
    assert msgpack.unpackb(data)[:11] == [None, False, True, 127, -32, 255, 256, -128, -32768, 1.5, -2.25]


def test_an_orbax_folder_is_refused_with_the_way_out() -> None:
    folder = FIXTURES / "flax_linen_lstm" / "ckpt"
    files = [InputFile(f"ckpt/{p.name}", p) for p in folder.iterdir() if p.is_file()]
    assert detect(files) == "flax_msgpack"
    with pytest.raises(UnsupportedFormat, match="to_bytes"):
        serialization.read(files, Limits())
