"""A bounded MessagePack decoder: the subset ``flax.serialization.to_bytes`` writes.

Why our own and not the ``msgpack`` package: a Flax file is a handful of maps, strings and
ext-typed arrays, which 100 lines decode; the package would be a new dependency (a C
extension) for the service, and its ``unpackb`` allocates a container from a declared
length before it has seen the elements (its own ``max_*_len`` caps default to the input
size, not to what the service allows). Here every declared length is checked against the
bytes that remain before anything is allocated (each element takes at least one byte), the
nesting depth and the number of objects are capped, and binary payloads are ``memoryview``
slices of the input, never copies.

Types: nil, bool, int (all widths), float32/64, str, bin, array, map, ext (kept as
``Ext(code, data)``). Map keys must be str or int. Anything else is ``MalformedFile``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rnnbridge.errors import LimitExceeded, MalformedFile

MAX_DEPTH = 64
#: objects one document may hold (a Flax file holds a few per array)
MAX_OBJECTS = 1_000_000


@dataclass(frozen=True)
class Ext:
    """A MessagePack extension value: its type code and payload (a view of the input)."""

    code: int
    data: memoryview


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
#: first byte -> (struct format of a number, or of a length for str/bin/array/map/ext)
_NUMBERS = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q"}
_NUMBERS |= {0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_LENGTHS = {
    0xD9: ("str", ">B"),
    0xDA: ("str", ">H"),
    0xDB: ("str", ">I"),
    0xC4: ("bin", ">B"),
    0xC5: ("bin", ">H"),
    0xC6: ("bin", ">I"),
    0xDC: ("array", ">H"),
    0xDD: ("array", ">I"),
    0xDE: ("map", ">H"),
    0xDF: ("map", ">I"),
    0xC7: ("ext", ">B"),
    0xC8: ("ext", ">H"),
    0xC9: ("ext", ">I"),
}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class _Decoder:
    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data, self.pos, self.what, self.objects = memoryview(data), 0, what, 0

    def fail(self, reason: str) -> MalformedFile:
        return MalformedFile(f"{self.what}: {reason} at byte {self.pos}")

    def take(self, size: int) -> memoryview:
        if size > len(self.data) - self.pos:
            raise self.fail(f"{size} bytes declared, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"{self.what}: nested deeper than {MAX_DEPTH} levels")
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise LimitExceeded(f"{self.what}: more than {MAX_OBJECTS} values")
        first = self.unpack(">B")
        if first <= 0x7F or first >= 0xE0:
            return first if first <= 0x7F else first - 0x100
        if first in _FIXED:
            return _FIXED[first]
        if first in _NUMBERS:
            return self.unpack(_NUMBERS[first])
        if 0xA0 <= first <= 0xBF:
            return self.text(first & 0x1F)
        if 0x90 <= first <= 0x9F:
            return self.array(first & 0x0F, depth)
        if 0x80 <= first <= 0x8F:
            return self.map(first & 0x0F, depth)
        if first in _FIXEXT:
            code = self.unpack(">b")
            return Ext(code, self.take(_FIXEXT[first]))
        if first in _LENGTHS:
            kind, fmt = _LENGTHS[first]
            size = self.unpack(fmt)
            if kind == "str":
                return self.text(size)
            if kind == "bin":
                return self.take(size)
            if kind == "array":
                return self.array(size, depth)
            if kind == "map":
                return self.map(size, depth)
            code = self.unpack(">b")
            return Ext(code, self.take(size))
        raise self.fail(f"unknown MessagePack type byte 0x{first:02x}")

    def text(self, size: int) -> str:
        try:
            return str(self.take(size), "utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"a string that is not UTF-8 ({exc.reason})") from None

    def room(self, count: int) -> None:
        if count > len(self.data) - self.pos:
            raise self.fail(f"a container of {count} elements in {len(self.data) - self.pos} bytes")

    def array(self, size: int, depth: int) -> list[Any]:
        self.room(size)
        return [self.value(depth + 1) for _ in range(size)]

    def map(self, size: int, depth: int) -> dict[Any, Any]:
        self.room(2 * size)
        out: dict[Any, Any] = {}
        for _ in range(size):
            key = self.value(depth + 1)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise self.fail(f"a map key of type {type(key).__name__}")
            if key in out:
                raise self.fail(f"the map key {key!r:.80} twice")
            out[key] = self.value(depth + 1)
        return out


def unpackb(data: bytes | memoryview, what: str = "MessagePack") -> Any:
    """The one value ``data`` holds; ``MalformedFile`` if bytes follow it."""
    decoder = _Decoder(data, what)
    value = decoder.value(0)
    if decoder.pos != len(decoder.data):
        raise decoder.fail(f"{len(decoder.data) - decoder.pos} bytes after the value")
    return value
