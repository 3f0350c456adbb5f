"""The messages of a TensorFlow tensor bundle's index, and the keys of partitioned variables.

Protos read (``tensor_bundle.proto``, ``tensor_shape.proto``, ``tensor_slice.proto``)::

    BundleHeaderProto   num_shards=1  endianness=2 (0 little, 1 big)
    BundleEntryProto    dtype=1  shape=2  shard_id=3  offset=4  size=5  crc32c=6 (fixed32)
                        slices=7
    TensorShapeProto    dim=2 {size=1}  unknown_rank=3
    TensorSliceProto    extent=1 {start=1, length=2 (absent: the full dimension)}

A partitioned variable is one entry with ``slices`` and no bytes of its own; each slice is
a separate entry under the ``OrderedCode`` key of :func:`slice_key`
(``checkpoint::EncodeTensorNameSlice``). :func:`slice_box` and :func:`check_tiling` check
that the slices lie inside the variable and cover it exactly once.

Messages are walked with the shared, bounds-checked :mod:`~rnnbridge.formats.wire.protobuf`
decoder; an integer field may come in any integer wire type, as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from rnnbridge.errors import MalformedFile
from rnnbridge.formats.wire import protobuf as pb


@dataclass
class Entry:
    """A ``BundleEntryProto``: ``shape`` is None for an unknown rank or dimension."""

    dtype: int = 0
    shape: tuple[int, ...] | None = None
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    slices: list[list[tuple[int, int]]] = field(default_factory=list)


# --------------------------------------------------------------------- messages


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of a serialised message; value is an int or the bytes."""
    for number, wire, value in pb.iter_fields(buf):
        if isinstance(value, int):  # VARINT
            yield number, value
        elif wire == pb.LEN:
            yield number, buf[value]
        else:  # I32 / I64: a little-endian integer
            yield number, int.from_bytes(buf[value], "little")


def _int64(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise MalformedFile("a length-delimited field where an integer belongs")
    return value - (1 << 64) if value >= 1 << 63 else value  # defaults may be negative already


def _message(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedFile("an integer field where a message belongs")
    return value


def parse_header(entries: dict[bytes, bytes], where: str) -> dict[str, int]:
    """``num_shards`` and ``endianness`` of the ``BundleHeaderProto`` under key ``""``."""
    if b"" not in entries:
        raise MalformedFile(f"{where}: no BundleHeaderProto (empty key) in the index")
    fields = dict(_fields(entries[b""]))
    num_shards = _int64(fields.get(1, 0))
    if num_shards < 1:
        raise MalformedFile(f"{where}: bundle header declares {num_shards} shards")
    return {"num_shards": num_shards, "endianness": _int64(fields.get(2, 0))}


def parse_entry(buf: bytes) -> Entry:
    """A ``BundleEntryProto``; negative shard ids, offsets and sizes are refused."""
    entry = Entry()
    for number, value in _fields(buf):
        if number == 1:
            entry.dtype = _int64(value)
        elif number == 2:
            entry.shape = _parse_shape(_message(value))
        elif number in (3, 4, 5):
            setattr(entry, ("shard_id", "offset", "size")[number - 3], _int64(value))
        elif number == 6:
            entry.crc32c = _int64(value)
        elif number == 7:
            entry.slices.append(_parse_slice(_message(value)))
    if min(entry.shard_id, entry.offset, entry.size) < 0:
        raise MalformedFile("negative shard id, offset or size")
    return entry


def _parse_shape(buf: bytes) -> tuple[int, ...] | None:
    """``TensorShapeProto``: ``None`` for an unknown rank or dimension."""
    dims = []
    for number, value in _fields(buf):
        if number == 3 and value:
            return None
        if number == 2:
            size = _int64(dict(_fields(_message(value))).get(1, 0))
            if size < 0:
                return None
            dims.append(size)
    return tuple(dims)


def _parse_slice(buf: bytes) -> list[tuple[int, int]]:
    """``TensorSliceProto``: ``(start, length)`` per dimension; length -1 is the full extent."""
    extents = []
    for number, value in _fields(buf):
        if number == 1:
            extent = dict(_fields(_message(value)))
            extents.append((_int64(extent.get(1, 0)), _int64(extent.get(2, -1))))
    return extents


# ---------------------------------------------------------------------- slices


def slice_box(name: str, extents: list[tuple[int, int]], shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(start, stop)`` per dimension of one ``TensorSliceProto``, checked against ``shape``."""
    if len(extents) != len(shape):
        raise MalformedFile(f"tensor {name!r}: a slice of rank {len(extents)} for shape {shape}", tensor=name)
    box = [
        (0, dim) if length == -1 else (start, start + length)
        for (start, length), dim in zip(extents, shape, strict=True)
    ]
    if any(not 0 <= a <= b <= dim for (a, b), dim in zip(box, shape, strict=True)):
        raise MalformedFile(f"tensor {name!r}: slice {box} lies outside shape {shape}", tensor=name)
    return box


def check_tiling(name: str, boxes: list[list[tuple[int, int]]], shape: tuple[int, ...]) -> None:
    """The slices must cover the variable exactly once: disjoint, with volumes adding up."""
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            pairs = zip(first, second, strict=True)
            if all(max(a0, a1) < min(b0, b1) for (a0, b0), (a1, b1) in pairs):
                raise MalformedFile(f"tensor {name!r}: slices {first} and {second} overlap", tensor=name)
    covered = sum(math.prod(b - a for a, b in box) for box in boxes)
    if covered != math.prod(shape):
        raise MalformedFile(f"tensor {name!r}: slices cover {covered} of {math.prod(shape)} elements", tensor=name)


def slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    """``checkpoint::EncodeTensorNameSlice``: the index key of one slice, in ``OrderedCode``."""
    escaped = b"".join({0: b"\x00\xff", 0xFF: b"\xff\x00"}.get(c, bytes([c])) for c in name.encode())
    key = b"\x00" + escaped + b"\x00\x01" + _ordered_uint(len(extents))
    for start, length in extents:
        key += _ordered_int(start) + _ordered_int(length)
    return key


def _ordered_uint(value: int) -> bytes:
    """``OrderedCode::WriteNumIncreasing``: a length byte, then big-endian bytes."""
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def _ordered_int(value: int) -> bytes:
    """``OrderedCode::WriteSignedNumIncreasing``: the length is unary-coded in the top bits."""
    magnitude = ~value if value < 0 else value
    if magnitude < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = magnitude.bit_length() // 7 + 1
    body = bytearray(value.to_bytes(10, "big", signed=True)[10 - length :])
    header = (0xFFFF << (16 - length)) & 0xFFFF
    body[0] ^= header >> 8
    body[1] ^= header & 0xFF
    return bytes(body)
