"""Write a TF1 ``/convert`` result as a TensorFlow checkpoint that ``tf.compat.v1.train.Saver`` restores.

The checkpoint is a tensor bundle, the format ``checkpoint`` reads (see its docstring for
the layout): ``model.ckpt.index`` (an SSTable: the ``BundleHeaderProto`` under key ``""``,
then one ``BundleEntryProto`` per variable, keys in byte order) and
``model.ckpt.data-00000-of-00001`` (every tensor's little-endian C-order bytes, one after
the other), handed out as one uncompressed tar with the ``checkpoint`` state file::

    model.ckpt.index
    model.ckpt.data-00000-of-00001
    checkpoint                          model_checkpoint_path: "model.ckpt"

Variables are named as TF1 names a cell's variables inside its wrappers, ``{scope}``
being the ``scope`` field (default in brackets)::

    one level                 {scope=rnn}/lstm_cell/kernel
    L levels                  {scope=rnn}/multi_rnn_cell/cell_{k}/lstm_cell/kernel
    two directions            {scope=bidirectional_rnn}/fw/lstm_cell/kernel      (bw/ ...)
    two independent stacks    {scope=bidirectional_rnn}/fw/multi_rnn_cell/cell_{k}/lstm_cell/kernel
    L bidirectional levels    {scope=stack_bidirectional_rnn}/cell_{k}/bidirectional_rnn/fw/lstm_cell/kernel

with the cell scope of the convention (``lstm_cell``, ``gru_cell``,
``cudnn_compatible_lstm_cell``, ``cudnn_compatible_gru_cell``): the names
``tf.nn.dynamic_rnn``, ``MultiRNNCell``, ``bidirectional_dynamic_rnn`` and
``stack_bidirectional_dynamic_rnn`` give them. A result of several layers puts each under
``{layer}/`` before the default scope. rnnbridge's metadata (with the variable → layer
map) is the scalar string tensor ``_rnnbridge_metadata``, which a ``Saver`` restoring the
graph's own variables ignores, so the checkpoint reads back with no ``source``.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from rnnbridge.errors import InvalidField
from rnnbridge.formats.meta import dumps
from rnnbridge.formats.tf.crc32c import crc32c, crc32c_array, mask
from rnnbridge.formats.tf.sstable import FOOTER_SIZE, MAGIC
from rnnbridge.formats.wire import encoder as pb

PREFIX = "model.ckpt"
#: the scalar string tensor that holds rnnbridge's metadata
METADATA_TENSOR = "_rnnbridge_metadata"

_CELL_SCOPES = {
    "tf1.lstm": "lstm_cell",
    "tf1.gru": "gru_cell",
    "tf1.cudnn_lstm": "cudnn_compatible_lstm_cell",
    "tf1.cudnn_gru": "cudnn_compatible_gru_cell",
}
#: TF ``DataType`` of each dtype written (``types.proto``)
_DT = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("float16"): 19}
_DT_STRING = 7
#: the target framework whose layers this writer writes
TARGET = "tf1"
_SIDE = {"forward": "fw", "backward": "bw"}
_RESTART_INTERVAL = 16


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write the TF1 layers of a ``/convert`` result (``meta["target"] == "tf1"``) as a tar."""
    if meta.get("target") != TARGET:
        raise InvalidField("format=tf_checkpoint writes TF1 checkpoints: use it with target=tf1", field="format")
    names = variable_names(meta)
    variables = {tf_name: arrays[name] for name, tf_name in names.items()}
    layer_of = {tf_name: layer for layer, mapping in _by_layer(meta, names).items() for tf_name in mapping}
    full = json.loads(dumps(meta))
    full["checkpoint"] = {"variables": layer_of}
    index, data = bundle(variables, json.dumps(full, separators=(",", ":")).encode())
    members: dict[str, list[bytes | memoryview]] = {
        f"{PREFIX}.index": [index],
        f"{PREFIX}.data-00000-of-00001": data,
        "checkpoint": [_state_file()],
    }
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name, chunks in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = sum(memoryview(c).nbytes for c in chunks), 0o644
            tar.addfile(info, _ChunkReader(chunks))


class _ChunkReader(io.RawIOBase):
    """A readable stream over byte chunks, so the tensors go into the tar from their own memory."""

    def __init__(self, chunks: list[bytes | memoryview]) -> None:
        super().__init__()
        self._chunks = [memoryview(c).cast("B") for c in chunks if memoryview(c).nbytes]
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the chunks go (``tarfile`` takes a short read for the end)."""
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view) and self._chunks:
            chunk = self._chunks[0]
            n = min(len(view) - filled, len(chunk) - self._at)
            view[filled : filled + n] = chunk[self._at : self._at + n]
            filled, self._at = filled + n, self._at + n
            if self._at == len(chunk):
                self._chunks.pop(0)
                self._at = 0
        return filled


def _state_file() -> bytes:
    """The ``checkpoint`` file ``tf.train.latest_checkpoint`` reads (a CheckpointState in text format)."""
    return f'model_checkpoint_path: "{PREFIX}"\nall_model_checkpoint_paths: "{PREFIX}"\n'.encode()


def variable_names(meta: Mapping[str, Any]) -> dict[str, str]:
    """Result array name → TF variable name, for every tensor of every layer."""
    return {name: tf for mapping in _by_layer(meta, None).values() for name, tf in mapping.items()}


def _by_layer(meta: Mapping[str, Any], names: dict[str, str] | None) -> dict[str, dict[str, str]]:
    layers = meta["layers"]
    scope = meta.get("scope")
    if scope is not None and len(layers) > 1:
        raise InvalidField("scope names one layer's variables: convert one layer at a time with layer=", field="scope")
    out: dict[str, dict[str, str]] = {}
    for layer in layers:
        mapping = _layer_names(layer, scope, f"{layer['name']}/" if len(layers) > 1 else "")
        out[layer["name"]] = mapping if names is None else {names[n]: n for n in mapping}
    return out


def _layer_names(layer: Mapping[str, Any], scope: str | None, outer: str) -> dict[str, str]:
    target = layer["target"]
    cell = _CELL_SCOPES[target["convention"]]
    levels, directions = int(target["num_layers"]), tuple(target["directions"])
    independent = bool(target["config"].get("independent_directions"))
    start = target["names_start"]
    mapping = {}
    for tensor in layer["tensors"]:
        level_text, direction, role = tensor[len(start) :].split("/", 2)
        path = _cell_path(int(level_text[1:]), direction, levels, len(directions), independent)
        default, inner = path
        mapping[tensor] = f"{outer}{scope if scope is not None else default}/{inner}{cell}/{role}"
    return mapping


def _cell_path(level: int, direction: str, levels: int, num_directions: int, independent: bool) -> tuple[str, str]:
    """(default outer scope, the scopes between it and the cell) of one cell."""
    side = _SIDE[direction]
    if num_directions == 1:
        return ("rnn", f"multi_rnn_cell/cell_{level}/" if levels > 1 else "")
    if levels == 1:
        return ("bidirectional_rnn", f"{side}/")
    if independent:
        return ("bidirectional_rnn", f"{side}/multi_rnn_cell/cell_{level}/")
    return ("stack_bidirectional_rnn", f"cell_{level}/bidirectional_rnn/{side}/")


# ---------------------------------------------------------------------- the bundle


def bundle(
    variables: Mapping[str, np.ndarray], metadata: bytes | None = None
) -> tuple[bytes, list[bytes | memoryview]]:
    """The ``.index`` bytes of a one-shard tensor bundle, and its ``.data-00000-of-00001`` as
    chunks: each tensor's own memory (copied only if not C-ordered little-endian)."""
    data: list[bytes | memoryview] = []
    offset = 0
    entries: dict[bytes, bytes] = {b"": _header()}
    for name, array in variables.items():
        dtype = _DT.get(np.asarray(array).dtype)
        if dtype is None:
            raise InvalidField(f"a TF checkpoint cannot hold {array.dtype} variable {name!r}", field="format")
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
        entries[name.encode()] = _entry(dtype, array.shape, offset, raw.size, mask(crc32c_array(raw)))
        data.append(memoryview(raw.data))
        offset += raw.size
    if metadata is not None:
        payload, checksum = _scalar_string(metadata)
        entries[METADATA_TENSOR.encode()] = _entry(_DT_STRING, (), offset, len(payload), checksum)
        data.append(payload)
    return table(entries), data


def _header() -> bytes:
    """``BundleHeaderProto``: one shard, little-endian, ``version { producer: 1 }``."""
    return pb.field_varint(1, 1) + pb.field_varint(2, 0) + pb.field_bytes(3, pb.field_varint(1, 1))


def _entry(dtype: int, shape: tuple[int, ...], offset: int, size: int, checksum: int) -> bytes:
    """``BundleEntryProto``; proto3 leaves zero-valued scalars out, as TensorFlow's writer does."""
    dims = b"".join(pb.field_bytes(2, pb.field_varint(1, d) if d else b"") for d in shape)
    fields = [pb.field_varint(1, dtype), pb.field_bytes(2, dims)]
    fields += [pb.field_varint(4, offset) if offset else b"", pb.field_varint(5, size) if size else b""]
    return b"".join(fields) + pb.field_fixed32(6, checksum)


def _scalar_string(value: bytes) -> tuple[bytes, int]:
    """A scalar DT_STRING as ``WriteStringTensor`` lays it out, and its entry's masked checksum."""
    length = struct.pack("<I", len(value))
    length_checksum = struct.pack("<I", mask(crc32c(length)))
    payload = pb.varint(len(value)) + length_checksum + value
    return payload, mask(crc32c_array(np.frombuffer(length + length_checksum + value, dtype=np.uint8)))


def table(entries: Mapping[bytes, bytes]) -> bytes:
    """An uncompressed LevelDB table of ``entries``: one data block, an empty metaindex
    block, the index block and the footer (``table/format.cc``)."""
    out = bytearray()
    keys = sorted(entries)
    data_handle = _append_block(out, _block([(k, entries[k]) for k in keys]))
    meta_handle = _append_block(out, _block([]))
    last = keys[-1] if keys else b""
    index_handle = _append_block(out, _block([(last, data_handle)]))
    footer = meta_handle + index_handle
    out += footer + bytes(FOOTER_SIZE - len(MAGIC) - len(footer)) + MAGIC
    return bytes(out)


def _block(items: list[tuple[bytes, bytes]]) -> bytes:
    """A block of prefix-compressed entries with a restart point every 16 entries."""
    body, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % _RESTART_INTERVAL:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(body))
        body += pb.varint(shared) + pb.varint(len(key) - shared) + pb.varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def _append_block(out: bytearray, block: bytes) -> bytes:
    """Append ``block`` with its trailer (no compression, masked crc32c); return its BlockHandle."""
    handle = pb.varint(len(out)) + pb.varint(len(block))
    out += block + b"\x00" + struct.pack("<I", mask(crc32c(block + b"\x00")))
    return handle
