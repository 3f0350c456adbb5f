"""A small, bounds-checked decoder for the protocol buffers wire format.

Readers of protobuf containers (ONNX models, TensorFlow checkpoints) need only a few
things from a message: walk its fields, read scalars, and find the byte range of a
nested message or a packed array. This module does exactly that, with no schema and no
generated code, over any buffer that indexes to ints (``bytes``, ``memoryview``,
``mmap``).

Wire format (https://protobuf.dev/programming-guides/encoding/)::

    message := (tag value)*
    tag     := varint  (field_number << 3 | wire_type)
    wire_type 0  VARINT  value is a base-128 varint, at most 10 bytes
    wire_type 1  I64     value is 8 little-endian bytes
    wire_type 2  LEN     value is a varint length, then that many bytes
    wire_type 5  I32     value is 4 little-endian bytes

Groups (wire types 3 and 4) are deprecated and refused. Every read is checked against
the ``[start, end)`` window it was given, so a nested message can never reach into the
bytes of its parent; any contradiction raises :class:`MalformedFile` with the absolute
byte offset. Nothing is allocated from a declared size before the bytes it describes
are known to be present.

Typical use, for a message whose field 1 is a string and field 2 a packed ``int64``::

    for number, wire, value in iter_fields(buf, start, end):
        if number == 1:
            name = as_text(buf, expect_bytes(wire, value, "name"), "name")
        elif number == 2 and wire == LEN:
            dims = packed_varint_array(buf, value).view(np.int64)

The wire type of a field comes from the bytes, not from a schema, so ``expect_bytes`` /
``expect_varint`` check it before the value is used.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from rnnbridge.errors import MalformedFile

VARINT, I64, LEN, I32 = 0, 1, 2, 5

#: what ``iter_fields`` yields as the value: an int for VARINT, else the value's bytes
FieldValue = int | slice

_MAX_FIELD_NUMBER = 2**29 - 1
_FIXED_SIZE = {I64: 8, I32: 4}


def read_varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """Decode one unsigned varint.

    Parameters
    ----------
    buf : bytes-like
        The buffer; ``buf[i]`` must be an int.
    pos, end : int
        Where the varint starts, and the end of the window it must lie in.

    Returns
    -------
    value, next_pos : int, int
        The value as an unsigned 64-bit integer and the offset just after it.
    """
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise MalformedFile(f"protobuf: varint runs past the end of its message at byte {end}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> 64:
                break
            return value, pos
    raise MalformedFile(f"protobuf: varint longer than 64 bits ending at byte {pos}")


def iter_fields(buf: Any, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, FieldValue]]:
    """Walk the fields of one message.

    Parameters
    ----------
    buf : bytes-like
        The buffer holding the message.
    start, end : int
        The message's byte range; ``end`` defaults to ``len(buf)``.

    Yields
    ------
    field_number, wire_type, value
        ``value`` is the decoded int for ``VARINT``; for ``I32``, ``I64`` and ``LEN`` it
        is the ``slice`` of ``buf`` holding the value's bytes (for ``LEN``, without the
        length prefix), so nested messages are walked with
        ``iter_fields(buf, value.start, value.stop)`` and no bytes are copied.

    Raises
    ------
    MalformedFile
        On a truncated tag or value, a length past ``end``, field number 0 or a wire
        type other than 0, 1, 2 or 5; the message names the byte offset.

    Examples
    --------
    >>> [(n, w, v) for n, w, v in iter_fields(b"\\x08\\x07\\x12\\x02hi")]
    [(1, 0, 7), (2, 2, slice(4, 6, None))]
    """
    end = len(buf) if end is None else end
    if not 0 <= start <= end <= len(buf):
        raise MalformedFile(f"protobuf: message range [{start}, {end}) lies outside the {len(buf)}-byte buffer")
    pos = start
    while pos < end:
        tag_at = pos
        tag, pos = read_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if not 0 < number <= _MAX_FIELD_NUMBER:
            raise MalformedFile(f"protobuf: invalid field number {number} in the tag at byte {tag_at}")
        value, pos = _read_value(buf, wire, pos, end, tag_at)
        yield number, wire, value


def _read_value(buf: Any, wire: int, pos: int, end: int, tag_at: int) -> tuple[FieldValue, int]:
    if wire == VARINT:
        return read_varint(buf, pos, end)
    if wire == LEN:
        size, pos = read_varint(buf, pos, end)
    elif wire in _FIXED_SIZE:
        size = _FIXED_SIZE[wire]
    else:
        raise MalformedFile(f"protobuf: unsupported wire type {wire} in the tag at byte {tag_at}")
    if size > end - pos:
        raise MalformedFile(
            f"protobuf: field at byte {tag_at} declares {size} bytes but only {end - pos} remain before byte {end}"
        )
    return slice(pos, pos + size), pos + size


def expect_varint(wire: int, value: FieldValue, what: str) -> int:
    """``value`` as the VARINT that the field ``what`` must be."""
    if wire != VARINT or not isinstance(value, int):
        raise MalformedFile(f"protobuf: {what} has wire type {wire}, expected {VARINT} (varint)")
    return value


def expect_bytes(wire: int, value: FieldValue, what: str, wanted: int = LEN) -> slice:
    """``value`` as the byte range of the LEN field ``what`` (or I32 / I64 with ``wanted``)."""
    if wire != wanted or not isinstance(value, slice):
        where = f" at byte {value.start}" if isinstance(value, slice) else ""
        raise MalformedFile(f"protobuf: {what}{where} has wire type {wire}, expected {wanted}")
    return value


def as_int64(value: int) -> int:
    """Reinterpret a decoded varint as a two's-complement ``int64`` (or ``int32``, whose
    negative values protobuf sign-extends to 64 bits)."""
    return value - (1 << 64) if value >> 63 else value


def as_float(buf: Any, value: slice) -> float:
    """The float an ``I32`` (float) or ``I64`` (double) field holds."""
    fmt = "<f" if value.stop - value.start == 4 else "<d"
    return float(struct.unpack(fmt, bytes(buf[value]))[0])


def as_text(buf: Any, value: slice, what: str) -> str:
    """Decode a ``LEN`` field as UTF-8; ``what`` names the field in the error."""
    try:
        return bytes(buf[value]).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFile(f"protobuf: {what} at byte {value.start} is not valid UTF-8") from None


def packed_varints(buf: Any, value: slice) -> list[int]:
    """Decode a packed repeated varint field (unsigned values; see :func:`as_int64`)."""
    out = []
    pos = value.start
    while pos < value.stop:
        number, pos = read_varint(buf, pos, value.stop)
        out.append(number)
    return out


def packed_varint_array(buf: Any, value: slice) -> np.ndarray:
    """Decode a packed repeated varint field into a ``uint64`` array, vectorised.

    Use ``.view(np.int64)`` for ``int32`` / ``int64`` fields. The temporary arrays are a
    few times the field's byte length, never more.
    """
    raw = np.frombuffer(buf, dtype=np.uint8, count=value.stop - value.start, offset=value.start)
    if not raw.size:
        return np.zeros(0, dtype=np.uint64)
    if raw[-1] & 0x80:
        raise MalformedFile(f"protobuf: packed varints run past the end of their field at byte {value.stop}")
    last = np.flatnonzero(raw < 0x80)
    first = np.concatenate(([0], last[:-1] + 1))
    # position of every byte inside its own varint: 0 for the first byte, 1 for the next, ...
    position = np.arange(raw.size) - np.repeat(first, last - first + 1)
    if position.max() > 9 or (raw[position == 9] > 1).any():
        raise MalformedFile(f"protobuf: packed varint longer than 64 bits in the field at byte {value.start}")
    chunks = (raw & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(chunks, first)


def packed_fixed(buf: Any, value: slice, dtype: np.dtype | str) -> np.ndarray:
    """Copy a packed repeated fixed-size field (``float``, ``double``, ``fixed64``, ...)
    into a native-order array of ``dtype`` (given little-endian, e.g. ``"<f4"``)."""
    dtype = np.dtype(dtype)
    size = value.stop - value.start
    if size % dtype.itemsize:
        raise MalformedFile(
            f"protobuf: packed field at byte {value.start} has {size} bytes, not a multiple of {dtype.itemsize}"
        )
    count = size // dtype.itemsize
    raw = np.frombuffer(buf, dtype=dtype, count=count, offset=value.start)
    return raw.astype(dtype.newbyteorder("="))
