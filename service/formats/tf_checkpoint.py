"""TensorFlow tensor-bundle checkpoints (``prefix.index`` + ``prefix.data-*``), read with NumPy.

Layout (``tensorflow/core/util/tensor_bundle/tensor_bundle.cc``, LevelDB ``table/format.cc``)::

    prefix.index                  a LevelDB-style SSTable, always written uncompressed
    ├── data block, trailer  ...  entries, restart offsets, num_restarts (uint32 LE each)
    │                             entry: shared | non_shared | value_len (varints) | key | value
    │                             trailer: compression type (1 byte, 0 = none) | masked crc32c
    ├── metaindex block, trailer  (empty)
    ├── index block, trailer      last key of each data block -> BlockHandle(offset, size)
    └── footer (48 bytes)         metaindex handle | index handle (varints) | zeros | magic (LE)
    prefix.data-00000-of-0000N    raw C-order bytes of every tensor, one file per shard

Key ``""`` holds the ``BundleHeaderProto`` (``num_shards``, ``endianness``); every other key
is a tensor name with its ``BundleEntryProto``: dtype, shape, shard, ``[offset, offset+size)``
in that shard and the masked crc32c of those bytes. A partitioned variable is one entry with
``slices`` and no bytes of its own; each slice is a separate entry under the ``OrderedCode``
key ``EncodeTensorNameSlice(name, slice)``. Like ``BundleReader::GetSliceValue`` this reader
looks the slices up and assembles the full variable under its own name.

Contract: the index is found by its footer magic, never by its file name; data shards are
paired by the client file names ``<prefix>.data-<k:05d>-of-<n:05d>``. Every block handle,
offset, size and shape is checked against the real file sizes and ``Limits`` before anything
is allocated, and any contradiction is ``MalformedFile``. Block checksums of the index and the
crc32c of every tensor's bytes are verified (the latter with a vectorised NumPy CRC32C, about
100 MB/s). Each tensor is read once, with ``np.fromfile`` at its offset. String and other
non-numeric entries (such as ``_CHECKPOINTABLE_OBJECT_GRAPH``) are listed in
``attrs["skipped"]``, not read.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from service.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsupportedFormat
from service.formats.base import InputFile, Limits, WeightFile

NAME = "tf_checkpoint"

_T = TypeVar("_T")

_MAGIC = struct.pack("<Q", 0xDB4775248B80FB57)
_FOOTER_SIZE = 48
_TRAILER_SIZE = 5
_SHARD_NAME = re.compile(r"^(?P<prefix>.*)\.data-(?P<k>\d{5})-of-(?P<n>\d{5})$")

#: TF ``DataType`` enum -> NumPy dtype of the stored bytes (``types.proto``)
_DTYPES = {
    1: np.dtype("float32"),
    2: np.dtype("float64"),
    3: np.dtype("int32"),
    4: np.dtype("uint8"),
    5: np.dtype("int16"),
    6: np.dtype("int8"),
    9: np.dtype("int64"),
    10: np.dtype("bool"),
    14: np.dtype("uint16"),  # DT_BFLOAT16, widened to float32 after reading
    17: np.dtype("uint16"),
    19: np.dtype("float16"),
    22: np.dtype("uint32"),
    23: np.dtype("uint64"),
}
_DT_BFLOAT16 = 14


@dataclass
class _Entry:
    dtype: int = 0
    shape: tuple[int, ...] | None = None
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    slices: list[list[tuple[int, int]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Bundle:
    name: str
    entries: dict[bytes, bytes]
    shards: list[InputFile]
    big_endian: bool


# ---------------------------------------------------------------------- public API


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether one of ``files`` is a tensor-bundle index (judged by its footer magic).

    Parameters
    ----------
    files : sequence of InputFile
        The uploaded files; only their last 8 bytes are read.

    Returns
    -------
    bool
    """
    return any(_has_magic(f.path) for f in files)


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read every numeric tensor of a tensor-bundle checkpoint.

    Parameters
    ----------
    files : sequence of InputFile
        Exactly one index file (found by its bytes) and its data shards, named
        ``<prefix>.data-<k:05d>-of-<n:05d>``; other files are ignored.
    limits : Limits
        ``max_tensor_elements`` bounds every tensor, ``max_total_bytes`` the index.

    Returns
    -------
    WeightFile
        ``tensors`` maps each variable name to its array in the stored dtype (bfloat16
        widened to float32). ``attrs`` has ``skipped`` (names of non-numeric entries),
        ``num_shards`` and ``partitioned`` (variables assembled from their slices).

    Raises
    ------
    UnsupportedFormat
        If no file is a tensor-bundle index.
    MalformedFile
        If the bytes contradict themselves, or a data shard is missing.
    LimitExceeded
        If a tensor or the index is larger than ``limits`` allow.
    """
    bundle = _open_bundle(files, limits)
    attrs: dict[str, Any] = {"skipped": [], "num_shards": len(bundle.shards), "partitioned": []}
    out = WeightFile(format=NAME, tensors={}, attrs=attrs)
    widened: list[str] = []
    for key, value in bundle.entries.items():
        if key == b"" or key.startswith(b"\x00"):
            continue  # the header, and slices that belong to a partitioned variable
        name = _decode_name(key, bundle.name)
        entry = _guarded(name, _parse_entry, value)
        if entry.dtype not in _DTYPES:
            attrs["skipped"].append(name)
            continue
        array = _read_variable(bundle, name, entry, limits)
        if entry.slices:
            attrs["partitioned"].append(name)
        if entry.dtype == _DT_BFLOAT16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
            widened.append(name)
        out.tensors[name] = array
    if widened:
        out.notes.append(f"bfloat16 tensors widened exactly to float32: {', '.join(widened)}")
        out.bfloat16.update(widened)
    return out


# ------------------------------------------------------------------- finding files


def _has_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < _FOOTER_SIZE:
                return False
            f.seek(-len(_MAGIC), 2)
            return f.read() == _MAGIC
    except OSError:
        return False


def _open_bundle(files: Sequence[InputFile], limits: Limits) -> _Bundle:
    indexes = [f for f in files if _has_magic(f.path)]
    if not indexes:
        raise UnsupportedFormat("no file is a TensorFlow checkpoint index (tensor-bundle magic)")
    if len(indexes) > 1:
        names = ", ".join(f.name for f in indexes)
        raise MalformedFile(
            f"the upload holds {len(indexes)} checkpoint indexes ({names}); send one"
        )
    index = indexes[0]
    size = index.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{index.name}: index of {size} bytes exceeds {limits.max_total_bytes}")
    entries = _guarded(None, _read_table, index.path.read_bytes(), index.name)
    header = _guarded(None, _header, entries, index.name)
    shards = _pair_shards(index, files, header["num_shards"])
    return _Bundle(index.name, entries, shards, header["endianness"] == 1)


def _pair_shards(index: InputFile, files: Sequence[InputFile], num_shards: int) -> list[InputFile]:
    """Shard ``k`` for every ``k``, matched by the client file names."""
    found: dict[str, dict[int, InputFile]] = {}
    for f in files:
        m = _SHARD_NAME.match(f.name)
        if m and int(m["n"]) == num_shards:
            found.setdefault(m["prefix"], {})[int(m["k"])] = f
    prefix = index.name.removesuffix(".index")
    if prefix not in found and len(found) == 1:
        prefix = next(iter(found))  # one index: its data files may carry another prefix
    shards = found.get(prefix, {})
    for k in range(num_shards):
        if k not in shards:
            expected = f"{prefix}.data-{k:05d}-of-{num_shards:05d}"
            raise MalformedFile(f"{index.name}: data shard {expected!r} is missing from the upload")
    return [shards[k] for k in range(num_shards)]


# ------------------------------------------------------------------------- tensors


def _read_variable(bundle: _Bundle, name: str, entry: _Entry, limits: Limits) -> np.ndarray:
    if entry.shape is None:
        raise MalformedFile(f"tensor {name!r}: stored without a fully known shape", tensor=name)
    count = math.prod(entry.shape)
    if count > limits.max_tensor_elements:
        raise LimitExceeded(
            f"tensor {name!r}: shape {entry.shape} has {count} elements, "
            f"more than the limit of {limits.max_tensor_elements}",
            tensor=name,
        )
    if entry.slices:
        return _assemble(bundle, name, entry)
    return _read_bytes(bundle, name, entry)


def _read_bytes(bundle: _Bundle, name: str, entry: _Entry) -> np.ndarray:
    """The bytes ``[offset, offset + size)`` of the entry's shard, as an array of its shape."""
    dtype, shape = _DTYPES[entry.dtype], entry.shape or ()
    if entry.size != math.prod(shape) * dtype.itemsize:
        raise MalformedFile(
            f"tensor {name!r}: {entry.size} bytes stored for shape {shape} of {dtype} "
            f"({math.prod(shape) * dtype.itemsize} bytes)",
            tensor=name,
        )
    if entry.shard_id >= len(bundle.shards):
        raise MalformedFile(f"tensor {name!r}: shard {entry.shard_id} does not exist", tensor=name)
    shard = bundle.shards[entry.shard_id]
    end, available = entry.offset + entry.size, shard.path.stat().st_size
    if end > available:
        raise MalformedFile(
            f"tensor {name!r}: bytes [{entry.offset}, {end}) run past the end of "
            f"{shard.name} ({available} bytes)",
            tensor=name,
        )
    raw = np.fromfile(shard.path, dtype=np.uint8, count=entry.size, offset=entry.offset)
    if entry.crc32c is not None and _mask(_crc32c_array(raw)) != entry.crc32c:
        raise MalformedFile(
            f"tensor {name!r}: bytes at offset {entry.offset} of {shard.name} "
            "fail their crc32c check",
            tensor=name,
        )
    stored = dtype.newbyteorder(">" if bundle.big_endian else "<")
    return raw.view(stored).reshape(shape).astype(dtype, copy=False)


def _assemble(bundle: _Bundle, name: str, entry: _Entry) -> np.ndarray:
    """A partitioned variable, put together from the slices its entry lists."""
    shape = entry.shape or ()
    boxes = [_slice_box(name, extents, shape) for extents in entry.slices]
    _check_tiling(name, boxes, shape)
    full = np.empty(shape, _DTYPES[entry.dtype])
    for extents, box in zip(entry.slices, boxes, strict=True):
        label = f"{name}[{', '.join(f'{a}:{b}' for a, b in box)}]"
        value = bundle.entries.get(_slice_key(name, extents))
        if value is None:
            raise MalformedFile(f"tensor {name!r}: slice {label} is not in the index", tensor=name)
        part = _guarded(name, _parse_entry, value)
        if part.dtype != entry.dtype or part.shape != tuple(b - a for a, b in box):
            raise MalformedFile(
                f"tensor {name!r}: slice {label} is stored as dtype {part.dtype}, shape "
                f"{part.shape}; the variable needs dtype {entry.dtype}, shape "
                f"{tuple(b - a for a, b in box)}",
                tensor=name,
            )
        full[tuple(slice(a, b) for a, b in box)] = _read_bytes(bundle, label, part)
    return full


def _slice_box(
    name: str, extents: list[tuple[int, int]], shape: tuple[int, ...]
) -> list[tuple[int, int]]:
    """``(start, stop)`` per dimension of one ``TensorSliceProto``, checked against ``shape``."""
    if len(extents) != len(shape):
        raise MalformedFile(
            f"tensor {name!r}: a slice of rank {len(extents)} for shape {shape}", tensor=name
        )
    box = [
        (0, dim) if length == -1 else (start, start + length)
        for (start, length), dim in zip(extents, shape, strict=True)
    ]
    if any(not 0 <= a <= b <= dim for (a, b), dim in zip(box, shape, strict=True)):
        raise MalformedFile(f"tensor {name!r}: slice {box} lies outside shape {shape}", tensor=name)
    return box


def _check_tiling(name: str, boxes: list[list[tuple[int, int]]], shape: tuple[int, ...]) -> None:
    """The slices must cover the variable exactly once: disjoint, with volumes adding up."""
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            pairs = zip(first, second, strict=True)
            if all(max(a0, a1) < min(b0, b1) for (a0, b0), (a1, b1) in pairs):
                raise MalformedFile(
                    f"tensor {name!r}: slices {first} and {second} overlap", tensor=name
                )
    covered = sum(math.prod(b - a for a, b in box) for box in boxes)
    if covered != math.prod(shape):
        raise MalformedFile(
            f"tensor {name!r}: slices cover {covered} of {math.prod(shape)} elements", tensor=name
        )


def _slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    """``checkpoint::EncodeTensorNameSlice``: the index key of one slice, in ``OrderedCode``."""
    escaped = b"".join(
        {0: b"\x00\xff", 0xFF: b"\xff\x00"}.get(c, bytes([c])) for c in name.encode()
    )
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


# --------------------------------------------------------------------- the SSTable


def _read_table(data: bytes, where: str) -> dict[bytes, bytes]:
    """All key/value pairs of an uncompressed LevelDB table."""
    if len(data) < _FOOTER_SIZE or data[-8:] != _MAGIC:
        raise MalformedFile(f"{where}: no SSTable footer (file of {len(data)} bytes)")
    footer = data[-_FOOTER_SIZE:]
    _, pos = _handle(footer, 0)  # the metaindex block, empty in tensor bundles
    index_handle, _ = _handle(footer, pos)
    entries: dict[bytes, bytes] = {}
    for _, value in _block_entries(_block(data, index_handle, where), where):
        block_handle, _ = _handle(value, 0)
        entries.update(_block_entries(_block(data, block_handle, where), where))
    return entries


def _handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def _block(data: bytes, handle: tuple[int, int], where: str) -> bytes:
    """The contents of the block at ``handle``, after checking its trailer."""
    offset, size = handle
    end = offset + size
    if end + _TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise MalformedFile(f"{where}: block [{offset}, {end}) runs past the end of the index")
    kind = data[end]
    if kind != 0:
        raise MalformedFile(
            f"{where}: block at byte {offset} uses compression type {kind}; "
            "compressed checkpoint indexes are unsupported (TensorFlow writes them uncompressed)"
        )
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if _mask(_crc32c(data[offset : end + 1])) != stored:
        raise MalformedFile(f"{where}: block at byte {offset} fails its crc32c check")
    return data[offset:end]


def _block_entries(block: bytes, where: str) -> Iterator[tuple[bytes, bytes]]:
    """Decode the prefix-compressed entries of one block."""
    if len(block) < 4:
        raise MalformedFile(f"{where}: block of {len(block)} bytes has no restart array")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 * (num_restarts + 1)
    if limit < 0:
        raise MalformedFile(f"{where}: block claims {num_restarts} restart points")
    block = block[:limit]  # no varint may run on into the restart array
    key, pos = b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise MalformedFile(f"{where}: block entry at byte {pos} overruns its block")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len


# ------------------------------------------------------------------------ protobuf


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise MalformedFile(f"truncated or overlong varint at byte {pos}")
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of a serialised message; value is an int or the bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise MalformedFile(f"truncated fixed{width * 8} field {number} at byte {pos}")
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise MalformedFile(f"field {number} of {length} bytes overruns its message")
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise MalformedFile(f"unsupported protobuf wire type {wire} at byte {pos}")
        yield number, value


def _int64(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise MalformedFile("a length-delimited field where an integer belongs")
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedFile("an integer field where a message belongs")
    return value


def _header(entries: dict[bytes, bytes], where: str) -> dict[str, int]:
    if b"" not in entries:
        raise MalformedFile(f"{where}: no BundleHeaderProto (empty key) in the index")
    fields = dict(_fields(entries[b""]))
    num_shards = _int64(fields.get(1, 0))
    if num_shards < 1:
        raise MalformedFile(f"{where}: bundle header declares {num_shards} shards")
    return {"num_shards": num_shards, "endianness": _int64(fields.get(2, 0))}


def _parse_entry(buf: bytes) -> _Entry:
    entry = _Entry()
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


def _guarded(tensor: str | None, parse: Callable[..., _T], *args: Any) -> _T:
    """``parse(*args)``, with any contradiction in the bytes turned into ``MalformedFile``."""
    where = f"tensor {tensor!r}: " if tensor else ""
    try:
        return parse(*args)
    except RnnBridgeError as exc:
        if tensor is None or exc.tensor is not None:
            raise
        raise type(exc)(where + exc.detail, tensor=tensor) from exc
    except (IndexError, KeyError, ValueError, OverflowError, struct.error) as exc:
        raise MalformedFile(f"{where}unreadable index entry ({exc})", tensor=tensor) from exc


def _decode_name(key: bytes, where: str) -> str:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFile(f"{where}: tensor name {key!r} is not UTF-8") from None


# ----------------------------------------------------------------------- checksums
#
# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). The index blocks are small and go
# through the byte-at-a-time loop. Tensor bytes go through NumPy: the "raw" CRC (start 0,
# no final xor) is linear over GF(2) and blind to leading zero bytes, so the bytes are
# front-padded to a (lanes, width) grid, all lanes advance one byte per step together, and
# lanes are folded pairwise with raw(a + b) = shift(raw(a), len(b)) ^ raw(b), where
# ``shift`` (feeding zero bytes) is a linear map kept as four 256-entry tables, one per byte.

_CHUNK = 1 << 26  # bytes per NumPy pass: bounds the padded copy


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)
#: _SHIFTS[i] feeds 2**i zero bytes; row j maps byte j of the state
_SHIFTS = [np.stack([_CRC_TABLE_NP, *(np.arange(256, dtype=np.uint32) << s for s in (0, 8, 16))])]


def _crc32c(data: bytes) -> int:
    """CRC-32C of a small ``bytes`` object, byte by byte."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_array(data: np.ndarray) -> int:
    """CRC-32C of a ``uint8`` array, vectorised (about 100 MB/s)."""
    raw = 0
    for start in range(0, data.size, _CHUNK):
        chunk = data[start : start + _CHUNK]
        raw = int(_shift(np.uint32(raw), chunk.size)) ^ _raw_crc(chunk)
    return raw ^ int(_shift(np.uint32(0xFFFFFFFF), data.size)) ^ 0xFFFFFFFF


def _raw_crc(chunk: np.ndarray) -> int:
    width = 1 << max(4, (chunk.size.bit_length() + 1) // 2)
    lanes = -(-chunk.size // width)
    grid = np.zeros(lanes * width, np.uint8)
    grid[grid.size - chunk.size :] = chunk
    state, index, looked_up = (np.zeros(lanes, np.uint32) for _ in range(3))
    for column in np.ascontiguousarray(grid.reshape(lanes, width).T):
        np.bitwise_xor(state, column, out=index, casting="unsafe")
        np.bitwise_and(index, 0xFF, out=index)
        np.right_shift(state, 8, out=state)
        np.take(_CRC_TABLE_NP, index, out=looked_up)
        state ^= looked_up
    while state.size > 1:
        if state.size % 2:
            state = np.concatenate([np.zeros(1, np.uint32), state])
        state = _shift(state[0::2], width) ^ state[1::2]
        width *= 2
    return int(state[0])


def _shift(state: np.ndarray, nbytes: int) -> np.ndarray:
    """The CRC state after ``nbytes`` zero bytes, by squaring the one-byte map."""
    while len(_SHIFTS) < nbytes.bit_length():
        _SHIFTS.append(_apply(_SHIFTS[-1], _SHIFTS[-1]))
    for i in range(nbytes.bit_length()):
        if nbytes >> i & 1:
            state = _apply(_SHIFTS[i], state)
    return state


def _apply(tables: np.ndarray, state: np.ndarray) -> np.ndarray:
    return (
        tables[0][state & 0xFF]
        ^ tables[1][(state >> 8) & 0xFF]
        ^ tables[2][(state >> 16) & 0xFF]
        ^ tables[3][state >> 24]
    )


def _mask(crc: int) -> int:
    """LevelDB's masked crc (``crc32c::Mask``), stored so that CRCs of CRCs stay distinct."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
