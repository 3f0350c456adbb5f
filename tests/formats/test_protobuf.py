"""The protobuf wire-format decoder, on hand-written bytes."""

from __future__ import annotations

import mmap
import struct

import numpy as np
import pytest

from rnnbridge.errors import MalformedFile
from rnnbridge.formats.wire import protobuf as pb

from .wire import varint as encode_varint

VARINTS = [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


@pytest.mark.parametrize("value", VARINTS)
def test_read_varint_round_trips(value):
    data = b"\xff" + encode_varint(value) + b"\xff"
    assert pb.read_varint(data, 1, len(data)) == (value, len(data) - 1)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\xff\xff", b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x02"],
    ids=["empty", "unterminated", "unterminated2", "eleven_bytes", "over_64_bits"],
)
def test_read_varint_refuses_truncated_or_overlong(data):
    with pytest.raises(MalformedFile, match="varint"):
        pb.read_varint(data, 0, len(data))


def test_read_varint_stops_at_the_window_not_the_buffer():
    with pytest.raises(MalformedFile, match="byte 1"):
        pb.read_varint(b"\x80\x01", 0, 1)


def test_iter_fields_yields_every_wire_type():
    data = (
        b"\x08\x96\x01"  # 1: varint 150
        + b"\x11"
        + struct.pack("<d", 2.5)  # 2: I64
        + b"\x1a\x03abc"  # 3: LEN
        + b"\x25"
        + struct.pack("<f", -1.5)  # 4: I32
    )
    fields = list(pb.iter_fields(data))
    assert [(n, w) for n, w, _ in fields] == [(1, pb.VARINT), (2, pb.I64), (3, pb.LEN), (4, pb.I32)]
    assert fields[0][2] == 150
    assert pb.as_float(data, fields[1][2]) == 2.5
    assert data[fields[2][2]] == b"abc"
    assert pb.as_float(data, fields[3][2]) == -1.5


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_iter_fields_accepts_bytes_like_buffers(buffer_type):
    data = buffer_type(b"\x08\x07\x12\x02hi")
    assert list(pb.iter_fields(data)) == [(1, pb.VARINT, 7), (2, pb.LEN, slice(4, 6))]


def test_iter_fields_reads_an_mmap(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"\x08\x07\x12\x02hi")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        fields = list(pb.iter_fields(mm))
        assert pb.as_text(mm, fields[1][2], "x") == "hi"


def test_nested_message_cannot_reach_into_its_parent():
    # the inner message [2, 4) holds a LEN field declaring 5 bytes; the outer buffer has them
    data = b"\x0a\x02\x0a\x05" + b"\x00" * 5
    (_, _, inner), *_ = pb.iter_fields(data, 0, 4)
    with pytest.raises(MalformedFile, match=r"declares 5 bytes but only 0 remain before byte 4"):
        list(pb.iter_fields(data, inner.start, inner.stop))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x05ab", "declares 5 bytes but only 2 remain"),
        (b"\x0d\x00\x00", "declares 4 bytes but only 2 remain"),
        (b"\x09\x00", "declares 8 bytes but only 1 remain"),
        (b"\x08", "varint runs past the end"),
        (b"\x0a", "varint runs past the end"),
        (b"\x0b", "wire type 3"),
        (b"\x0c", "wire type 4"),
        (b"\x0e", "wire type 6"),
        (b"\x0f", "wire type 7"),
        (b"\x00\x00", "field number 0"),
        (b"\x08\x01\x80\x80\x80\x80\x80\x01\x00", "field number 4294967296"),
    ],
    ids=[
        "len_past_end",
        "i32_past_end",
        "i64_past_end",
        "varint_truncated",
        "len_prefix_truncated",
        "group_start",
        "group_end",
        "wire6",
        "wire7",
        "field0",
        "field_number_too_big",
    ],
)
def test_iter_fields_refuses_contradictions(data, message):
    with pytest.raises(MalformedFile, match=message):
        list(pb.iter_fields(data))


@pytest.mark.parametrize(("start", "end"), [(-1, 2), (0, 9), (3, 2)])
def test_iter_fields_refuses_a_window_outside_the_buffer(start, end):
    with pytest.raises(MalformedFile, match="outside the 4-byte buffer"):
        list(pb.iter_fields(b"\x08\x01\x08\x02", start, end))


def test_error_names_the_byte_offset_of_the_bad_field():
    data = b"\x08\x01" + b"\x12\x09abc"
    with pytest.raises(MalformedFile, match="field at byte 2"):
        list(pb.iter_fields(data))


@pytest.mark.parametrize(
    ("raw", "signed"), [(5, 5), (2**64 - 1, -1), (2**63, -(2**63)), (2**63 - 1, 2**63 - 1)]
)
def test_as_int64(raw, signed):
    assert pb.as_int64(raw) == signed


def test_as_text_refuses_invalid_utf8():
    with pytest.raises(MalformedFile, match="name at byte 1 is not valid UTF-8"):
        pb.as_text(b"x\xff\xfe", slice(1, 3), "name")


@pytest.mark.parametrize("values", [[], [0], VARINTS, [5] * 1000, list(range(0, 2**40, 2**33))])
def test_packed_varints_list_and_array_agree(values):
    data = b"".join(encode_varint(v) for v in values)
    window = slice(0, len(data))
    assert pb.packed_varints(data, window) == values
    array = pb.packed_varint_array(data, window)
    assert array.dtype == np.uint64
    assert array.tolist() == values


def test_packed_varint_array_gives_negative_int64_through_a_view():
    data = b"".join(encode_varint(v) for v in [-1, -300, 7])
    assert pb.packed_varint_array(data, slice(0, len(data))).view(np.int64).tolist() == [-1, -300, 7]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x80", "run past the end"),
        (b"\xff" * 10 + b"\x01", "longer than 64 bits"),
        (b"\xff" * 9 + b"\x02", "longer than 64 bits"),
    ],
)
def test_packed_varint_array_refuses_bad_varints(data, message):
    with pytest.raises(MalformedFile, match=message):
        pb.packed_varint_array(data, slice(0, len(data)))


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<u8", "<i4"])
def test_packed_fixed_copies_native_arrays(dtype):
    expected = np.arange(-3, 4).astype(dtype)
    data = b"pad" + expected.tobytes()
    out = pb.packed_fixed(data, slice(3, len(data)), np.dtype(dtype))
    assert out.dtype.isnative
    assert out.flags.owndata and out.flags.writeable
    np.testing.assert_array_equal(out, expected)


def test_packed_fixed_refuses_a_partial_element():
    with pytest.raises(MalformedFile, match="has 6 bytes, not a multiple of 4"):
        pb.packed_fixed(b"\x00" * 6, slice(0, 6), np.dtype("<f4"))


def test_expect_helpers_narrow_a_field_value():
    (_, w1, v1), (_, w2, v2) = pb.iter_fields(b"\x08\x07\x12\x02hi")
    assert pb.expect_varint(w1, v1, "a") == 7
    assert pb.expect_bytes(w2, v2, "b") == slice(4, 6)


@pytest.mark.parametrize(
    ("data", "check", "message"),
    [
        (b"\x12\x02hi", pb.expect_varint, r"field x has wire type 2, expected 0"),
        (b"\x08\x07", pb.expect_bytes, r"field x has wire type 0, expected 2"),
        (b"\x0d\x00\x00\x00\x00", pb.expect_bytes, r"field x at byte 1 has wire type 5, expected 2"),
    ],
    ids=["len_for_varint", "varint_for_len", "i32_for_len"],
)
def test_expect_helpers_refuse_the_wrong_wire_type(data, check, message):
    ((_, wire, value),) = pb.iter_fields(data)
    with pytest.raises(MalformedFile, match=message):
        check(wire, value, "field x")
