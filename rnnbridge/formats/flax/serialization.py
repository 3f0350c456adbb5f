"""Flax ``.msgpack`` files (``flax.serialization.to_bytes``), read without Flax.

Layout (flax/serialization.py): the state dict (nested maps of str keys; lists become maps
keyed ``"0"``, ``"1"``, ...) packed with MessagePack; each array is an ext value of code 1
whose payload is itself MessagePack: ``[shape, dtype name, raw C-order bytes]``. Code 2
(native complex) and 3 (NumPy scalar) carry no weights and are skipped. Arrays above 1 GiB
are split by Flax into a ``__msgpack_chunked_array__`` map: refused with the way out.

Contract: decoded by the bounded decoder of ``rnnbridge.formats.flax.msgpack``; each array's
dtype must be a plain number (bfloat16 is widened exactly to float32, with a note), its
element count within ``Limits`` and its byte length exactly count × item size, before it
becomes an array (a read-only view of the file's bytes). Names are the ``/``-joined tree
paths (``params/encoder/hi/kernel``, ``rnn/cell/dense_i/kernel``).

Orbax checkpoint folders (``ckpt/`` with ``_METADATA``, ``manifest.ocdbt``) store arrays
through TensorStore: recognised and refused with the way out (restore and save with
``flax.serialization.to_bytes``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.flax.msgpack import MAX_DEPTH, Ext, unpackb
from rnnbridge.formats.wire.elements import check_element_count, widen_bfloat16

NAME = "flax_msgpack"
_ARRAY, _COMPLEX, _SCALAR = 1, 2, 3
_CHUNKED = "__msgpack_chunked_array__"
_DTYPES = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
}
_DTYPES |= {"bool": np.dtype(bool), "uint64": np.dtype("<u8"), "bfloat16": np.dtype("<u2")}
_MAP_START = frozenset(range(0x81, 0x90)) | {0xDE, 0xDF}
_STR_START = frozenset(range(0xA0, 0xC0)) | {0xD9, 0xDA}
_ORBAX_MARKERS = ("_METADATA", "manifest.ocdbt", "_CHECKPOINT_METADATA")


def _looks_like(file: InputFile) -> bool:
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(4)
    except OSError:
        return False
    if len(head) < 2 or head[0] not in _MAP_START:
        return False
    key_at = {0xDE: 3, 0xDF: 5}.get(head[0], 1)
    return len(head) > key_at and head[key_at] in _STR_START


def is_orbax(files: Sequence[InputFile]) -> bool:
    """Whether the upload is an Orbax checkpoint folder (its metadata files)."""
    return sum(f.name.rsplit("/", 1)[-1] in _ORBAX_MARKERS for f in files) >= 2


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` starts like a MessagePack map with a string key, or
    the upload is an Orbax checkpoint (read only to say how to convert it)."""
    return is_orbax(files) or sum(_looks_like(f) for f in files) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """The arrays of the one Flax ``.msgpack`` among ``files``, by tree path."""
    if is_orbax(files):
        raise UnsupportedFormat(
            "this is an Orbax checkpoint, whose arrays TensorStore writes (OCDBT); restore it in "
            "Flax and save the variables with flax.serialization.to_bytes, then upload that .msgpack"
        )
    file = next(f for f in files if _looks_like(f))
    size = file.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{file.name}: {size} bytes is more than the {limits.max_total_bytes} read at most")
    tree = unpackb(file.path.read_bytes(), file.name)
    if not isinstance(tree, dict):
        raise UnsupportedFormat(f"{file.name} holds a MessagePack {type(tree).__name__}, not Flax's state dict")
    weights = WeightFile(NAME, {}, {"ignored_entries": []})
    _flatten(tree, "", 0, weights, limits)
    return weights


def _flatten(node: dict, path: str, depth: int, weights: WeightFile, limits: Limits) -> None:
    if depth > MAX_DEPTH:
        raise LimitExceeded(f"the state dict nests deeper than {MAX_DEPTH} levels")
    for key, value in node.items():
        name = f"{path}/{key}" if path else str(key)
        if isinstance(value, dict) and _CHUNKED in value:
            raise UnsupportedFormat(
                f"array {name!r} is stored in chunks (Flax splits arrays over 1 GiB); rnnbridge reads "
                "unchunked arrays only: save it with flax.serialization.msgpack_serialize of smaller parts",
            )
        if isinstance(value, dict):
            _flatten(value, name, depth + 1, weights, limits)
        elif isinstance(value, Ext) and value.code == _ARRAY:
            weights.tensors[name] = _array(name, value.data, weights, limits)
        else:
            weights.attrs["ignored_entries"].append(name)


def _array(name: str, payload: memoryview, weights: WeightFile, limits: Limits) -> np.ndarray:
    """One ext-1 array, checked against its bytes before it is made."""
    fields: Any = unpackb(payload, f"array {name!r}")
    if not (isinstance(fields, list) and len(fields) == 3):
        raise MalformedFile(f"array {name!r} is not [shape, dtype, data]", tensor=name)
    shape, dtype_name, data = fields
    if not (isinstance(shape, list) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)):
        raise MalformedFile(f"array {name!r} has the shape {shape!r:.80}", tensor=name)
    dtype = _DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise UnsupportedFormat(f"array {name!r} has dtype {dtype_name!r:.40}, not a plain number")
    if not isinstance(data, memoryview):
        raise MalformedFile(f"array {name!r} has no binary data", tensor=name)
    count = math.prod(shape)
    check_element_count(name, count, limits)
    if count * dtype.itemsize != len(data):
        raise MalformedFile(
            f"array {name!r}: shape {shape} of {dtype_name} needs {count * dtype.itemsize} bytes, has {len(data)}",
            tensor=name,
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype_name == "bfloat16":
        weights.bfloat16.add(name)
        weights.notes.append(f"{name} is bfloat16, widened exactly to float32")
        return widen_bfloat16(array)
    return array.astype(dtype.newbyteorder("="), copy=False)
