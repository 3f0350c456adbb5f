"""Protobuf wire-format encoding for building test inputs byte by byte."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint; negative values as their 64-bit two's complement."""
    value %= 2**64
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
