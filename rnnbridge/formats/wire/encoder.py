"""A small encoder for the protocol buffers wire format, the inverse of ``protobuf``.

Writers of protobuf containers (ONNX models, TensorFlow checkpoint indexes) build each
message as ``bytes`` from its fields, innermost first: a nested message is a ``LEN``
field holding the encoded child. Fields are written in the order given, which is the
field-number order the official encoders use, so the bytes match theirs for the same
message. Only what those writers need is here: varints (unsigned and two's-complement
``int64``), fixed 32-bit values, floats, and length-delimited bytes, strings and packed
runs.

    >>> field_varint(1, 8) + field_text(2, "hi")
    b'\\x08\\x08\\x12\\x02hi'
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from rnnbridge.formats.wire.protobuf import I32, LEN, VARINT


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint; a negative ``int64`` is written as its 64-bit two's complement."""
    if value < 0:
        value += 1 << 64
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{value} does not fit a 64-bit varint")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def field_varint(number: int, value: int) -> bytes:
    return tag(number, VARINT) + varint(value)


def field_bytes(number: int, value: bytes | bytearray | memoryview) -> bytes:
    """A ``LEN`` field: a nested message, raw bytes or a packed run."""
    return tag(number, LEN) + varint(len(value)) + bytes(value)


def field_head(number: int, size: int) -> bytes:
    """The tag and length of a ``LEN`` field whose ``size`` bytes are written separately
    (large payloads go to the stream as they are, never copied into the message)."""
    return tag(number, LEN) + varint(size)


def field_text(number: int, value: str) -> bytes:
    return field_bytes(number, value.encode("utf-8"))


def field_float(number: int, value: float) -> bytes:
    """A ``float`` field (I32, little-endian IEEE single)."""
    return tag(number, I32) + struct.pack("<f", value)


def field_fixed32(number: int, value: int) -> bytes:
    return tag(number, I32) + struct.pack("<I", value)


def packed_varints(number: int, values: Iterable[int]) -> bytes:
    """A packed repeated ``int64`` field (empty runs are left out, as encoders do)."""
    body = b"".join(varint(v) for v in values)
    return field_bytes(number, body) if body else b""


def packed_floats(number: int, values: Iterable[float]) -> bytes:
    body = np.asarray(list(values), dtype="<f4").tobytes()
    return field_bytes(number, body) if body else b""
