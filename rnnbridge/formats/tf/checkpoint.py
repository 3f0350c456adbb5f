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
crc32c of every tensor's bytes are verified (the latter compiled where ``google-crc32c`` is
installed, about 2 GB/s, else vectorised with NumPy, about 46 MB/s: ``crc32c``). Each
tensor is read once, with ``np.fromfile`` at its offset. The scalar string
``_CHECKPOINTABLE_OBJECT_GRAPH`` (which relates a TF2 checkpoint's or SavedModel's variables
to the objects that own them) is returned as bytes in ``attrs["object_graph"]``; other
string and non-numeric entries are listed in ``attrs["skipped"]``, not read, except
``_rnnbridge_metadata`` (rnnbridge's own metadata JSON), returned as
``attrs["metadata"]["rnnbridge"]``.

This module pairs the files and reads the tensors; ``sstable`` reads the index table,
``tf_bundle`` its protos and slice keys, ``crc32c`` the checksums.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.tf.bundle import Entry, check_tiling, parse_entry, parse_header, slice_box, slice_key
from rnnbridge.formats.tf.crc32c import crc32c_array, mask
from rnnbridge.formats.tf.sstable import has_magic, read_table
from rnnbridge.formats.wire.elements import widen_bfloat16
from rnnbridge.formats.wire.protobuf import read_varint

NAME = "tf_checkpoint"

_T = TypeVar("_T")

_SHARD_NAME = re.compile(r"^(?P<prefix>.*)\.data-(?P<k>\d{5})-of-(?P<n>\d{5})$")

#: TF ``DataType`` enum -> NumPy dtype of the stored bytes (``types.proto``)
_DTYPES: dict[int, np.dtype[Any]] = {
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
_DT_STRING = 7
#: the entry that maps a TF2 checkpoint's variables to the objects that own them
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_MAX_OBJECT_GRAPH_BYTES = 64 * 1024**2
#: the scalar string in which rnnbridge's own checkpoints carry their metadata (``tf.writer``)
RNNBRIDGE_METADATA = "_rnnbridge_metadata"


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
    return any(has_magic(f.path) for f in files)


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
        entry = _guarded(name, parse_entry, value)
        if name == OBJECT_GRAPH and entry.dtype == _DT_STRING and not entry.shape:
            attrs["object_graph"] = _read_scalar_string(bundle, name, entry)
            continue
        if name == RNNBRIDGE_METADATA and entry.dtype == _DT_STRING and not entry.shape:
            text = _read_scalar_string(bundle, name, entry).decode("utf-8", "replace")
            attrs["metadata"] = {"rnnbridge": text}
            continue
        if entry.dtype not in _DTYPES:
            attrs["skipped"].append(name)
            continue
        array = _read_variable(bundle, name, entry, limits)
        if entry.slices:
            attrs["partitioned"].append(name)
        if entry.dtype == _DT_BFLOAT16:
            array = widen_bfloat16(array)
            widened.append(name)
        out.tensors[name] = array
    if widened:
        out.notes.append(f"bfloat16 tensors widened exactly to float32: {', '.join(widened)}")
        out.bfloat16.update(widened)
    return out


def _read_scalar_string(bundle: _Bundle, name: str, entry: Entry) -> bytes:
    """A scalar DT_STRING entry: a varint length, a masked CRC32C of that length's bytes,
    then the bytes (``tensor_bundle.cc`` ``WriteStringTensor``). Used for the checkpoint's
    object graph, which says which layer each variable of a SavedModel belongs to."""
    if entry.size > _MAX_OBJECT_GRAPH_BYTES:
        raise LimitExceeded(f"tensor {name!r}: {entry.size} bytes, more than {_MAX_OBJECT_GRAPH_BYTES}", tensor=name)
    raw = _shard_bytes(bundle, name, entry, check_crc=False).tobytes()
    try:
        length, start = read_varint(raw, 0, len(raw))
    except MalformedFile as exc:
        raise MalformedFile(f"tensor {name!r}: {exc.detail}", tensor=name) from None
    if start + 4 + length != len(raw):
        raise MalformedFile(
            f"tensor {name!r}: a string of {length} bytes does not fill its {len(raw)} bytes", tensor=name
        )
    value = raw[start + 4 :]
    # the entry's checksum covers the length as a uint32 (uint64 past 4 GiB), the length
    # checksum as stored, then the bytes
    size = struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length)
    covered = np.frombuffer(size + raw[start : start + 4] + value, dtype=np.uint8)
    if entry.crc32c is not None and mask(crc32c_array(covered)) != entry.crc32c:
        raise MalformedFile(f"tensor {name!r}: its bytes fail their crc32c check", tensor=name)
    return value


# ------------------------------------------------------------------- finding files


def _open_bundle(files: Sequence[InputFile], limits: Limits) -> _Bundle:
    indexes = [f for f in files if has_magic(f.path)]
    if not indexes:
        raise UnsupportedFormat("no file is a TensorFlow checkpoint index (tensor-bundle magic)")
    if len(indexes) > 1:
        names = ", ".join(f.name for f in indexes)
        raise MalformedFile(f"the upload holds {len(indexes)} checkpoint indexes ({names}); send one")
    index = indexes[0]
    size = index.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{index.name}: index of {size} bytes exceeds {limits.max_total_bytes}")
    entries = _guarded(None, read_table, index.path.read_bytes(), index.name)
    header = _guarded(None, parse_header, entries, index.name)
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


def _read_variable(bundle: _Bundle, name: str, entry: Entry, limits: Limits) -> np.ndarray:
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


def _read_bytes(bundle: _Bundle, name: str, entry: Entry) -> np.ndarray:
    """The bytes ``[offset, offset + size)`` of the entry's shard, as an array of its shape."""
    dtype, shape = _DTYPES[entry.dtype], entry.shape or ()
    if entry.size != math.prod(shape) * dtype.itemsize:
        raise MalformedFile(
            f"tensor {name!r}: {entry.size} bytes stored for shape {shape} of {dtype} "
            f"({math.prod(shape) * dtype.itemsize} bytes)",
            tensor=name,
        )
    raw = _shard_bytes(bundle, name, entry)
    stored = dtype.newbyteorder(">" if bundle.big_endian else "<")
    return raw.view(stored).reshape(shape).astype(dtype, copy=False)


def _shard_bytes(bundle: _Bundle, name: str, entry: Entry, check_crc: bool = True) -> np.ndarray:
    """The bytes ``[offset, offset + size)`` of the entry's shard, checked against its CRC32C."""
    if entry.shard_id >= len(bundle.shards):
        raise MalformedFile(f"tensor {name!r}: shard {entry.shard_id} does not exist", tensor=name)
    shard = bundle.shards[entry.shard_id]
    end, available = entry.offset + entry.size, shard.path.stat().st_size
    if end > available:
        raise MalformedFile(
            f"tensor {name!r}: bytes [{entry.offset}, {end}) run past the end of {shard.name} ({available} bytes)",
            tensor=name,
        )
    raw = np.fromfile(shard.path, dtype=np.uint8, count=entry.size, offset=entry.offset)
    if check_crc and entry.crc32c is not None and mask(crc32c_array(raw)) != entry.crc32c:
        raise MalformedFile(
            f"tensor {name!r}: bytes at offset {entry.offset} of {shard.name} fail their crc32c check",
            tensor=name,
        )
    return raw


def _assemble(bundle: _Bundle, name: str, entry: Entry) -> np.ndarray:
    """A partitioned variable, put together from the slices its entry lists."""
    shape = entry.shape or ()
    boxes = [slice_box(name, extents, shape) for extents in entry.slices]
    check_tiling(name, boxes, shape)
    full = np.empty(shape, _DTYPES[entry.dtype])
    for extents, box in zip(entry.slices, boxes, strict=True):
        label = f"{name}[{', '.join(f'{a}:{b}' for a, b in box)}]"
        value = bundle.entries.get(slice_key(name, extents))
        if value is None:
            raise MalformedFile(f"tensor {name!r}: slice {label} is not in the index", tensor=name)
        part = _guarded(name, parse_entry, value)
        if part.dtype != entry.dtype or part.shape != tuple(b - a for a, b in box):
            raise MalformedFile(
                f"tensor {name!r}: slice {label} is stored as dtype {part.dtype}, shape "
                f"{part.shape}; the variable needs dtype {entry.dtype}, shape "
                f"{tuple(b - a for a, b in box)}",
                tensor=name,
            )
        full[tuple(slice(a, b) for a, b in box)] = _read_bytes(bundle, label, part)
    return full


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
