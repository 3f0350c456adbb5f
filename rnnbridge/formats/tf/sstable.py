"""A reader of uncompressed LevelDB tables (SSTables), as TensorFlow writes checkpoint indexes.

Layout (LevelDB ``table/format.cc``, ``table/block.cc``)::

    data block, trailer  ...  entries, restart offsets, num_restarts (uint32 LE each)
                              entry: shared | non_shared | value_len (varints) | key | value
                              trailer: compression type (1 byte, 0 = none) | masked crc32c
    metaindex block, trailer  (empty in tensor bundles)
    index block, trailer      last key of each data block -> BlockHandle(offset, size)
    footer (48 bytes)         metaindex handle | index handle (varints) | zeros | magic (LE)

Contract: :func:`read_table` returns every key/value pair. Each block handle is checked to
lie before the footer, each block's crc32c is verified, compressed blocks are refused
(TensorFlow writes indexes uncompressed) and no entry may reach past its block or into
the restart array; any contradiction is ``MalformedFile`` naming the byte offset.

Keys are prefix-compressed (each entry keeps ``shared`` bytes of the previous key), so a
few bytes of table can declare ever longer keys: a key is at most ``MAX_KEY_BYTES`` and
all keys and values together at most ``MAX_DECODED_BYTES`` (``LimitExceeded``), checked
before each key is built.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from rnnbridge.errors import LimitExceeded, MalformedFile
from rnnbridge.formats.tf.crc32c import crc32c, mask
from rnnbridge.formats.wire.protobuf import read_varint

#: the table magic number (``kTableMagicNumber``) ending every footer
MAGIC = struct.pack("<Q", 0xDB4775248B80FB57)
FOOTER_SIZE = 48
_TRAILER_SIZE = 5
#: the longest key (TensorFlow's are variable names, a few hundred bytes)
MAX_KEY_BYTES = 64 * 1024
#: the most bytes of keys and values one table may decode to
MAX_DECODED_BYTES = 128 * 1024**2


def has_magic(path: Path) -> bool:
    """Whether the file at ``path`` ends like an SSTable footer (reads its last 8 bytes)."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < FOOTER_SIZE:
                return False
            f.seek(-len(MAGIC), 2)
            return f.read() == MAGIC
    except OSError:
        return False


def read_table(data: bytes, where: str) -> dict[bytes, bytes]:
    """All key/value pairs of an uncompressed LevelDB table; ``where`` names it in errors."""
    if len(data) < FOOTER_SIZE or data[-8:] != MAGIC:
        raise MalformedFile(f"{where}: no SSTable footer (file of {len(data)} bytes)")
    footer = data[-FOOTER_SIZE:]
    _, pos = _handle(footer, 0)  # the metaindex block, empty in tensor bundles
    index_handle, _ = _handle(footer, pos)
    entries: dict[bytes, bytes] = {}
    budget = [MAX_DECODED_BYTES]
    for _, value in _block_entries(_block(data, index_handle, where), where, budget):
        block_handle, _ = _handle(value, 0)
        entries.update(_block_entries(_block(data, block_handle, where), where, budget))
    return entries


def _handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buf, pos, len(buf))
    size, pos = read_varint(buf, pos, len(buf))
    return (offset, size), pos


def _block(data: bytes, handle: tuple[int, int], where: str) -> bytes:
    """The contents of the block at ``handle``, after checking its trailer."""
    offset, size = handle
    end = offset + size
    if end + _TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise MalformedFile(f"{where}: block [{offset}, {end}) runs past the end of the index")
    kind = data[end]
    if kind != 0:
        raise MalformedFile(
            f"{where}: block at byte {offset} uses compression type {kind}; "
            "compressed checkpoint indexes are unsupported (TensorFlow writes them uncompressed)"
        )
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if mask(crc32c(data[offset : end + 1])) != stored:
        raise MalformedFile(f"{where}: block at byte {offset} fails its crc32c check")
    return data[offset:end]


def _block_entries(block: bytes, where: str, budget: list[int]) -> Iterator[tuple[bytes, bytes]]:
    """Decode the prefix-compressed entries of one block, charging ``budget[0]`` their sizes."""
    if len(block) < 4:
        raise MalformedFile(f"{where}: block of {len(block)} bytes has no restart array")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 * (num_restarts + 1)
    if limit < 0:
        raise MalformedFile(f"{where}: block claims {num_restarts} restart points")
    block = block[:limit]  # no varint may run on into the restart array
    key, pos = b"", 0
    while pos < limit:
        shared, pos = read_varint(block, pos, limit)
        non_shared, pos = read_varint(block, pos, limit)
        value_len, pos = read_varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise MalformedFile(f"{where}: block entry at byte {pos} overruns its block")
        budget[0] -= shared + non_shared + value_len
        if shared + non_shared > MAX_KEY_BYTES or budget[0] < 0:
            raise LimitExceeded(
                f"{where}: the key at byte {pos} is {shared + non_shared} bytes long, or the keys so far "
                f"decode to more than {MAX_DECODED_BYTES} bytes (keys are at most {MAX_KEY_BYTES})"
            )
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len
