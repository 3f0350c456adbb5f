"""Equinox ``.eqx`` files (``eqx.tree_serialise_leaves``), read and written without Equinox.

Layout: the model's array leaves, in pytree order, each written by ``np.save`` one after
the other (``\\x93NUMPY``, version, header length, a Python-literal header, the data); the
file holds no names and no structure. Arrays are named ``#0``, ``#1``, ... by position.

Contract: every header is bounded (``MAX_HEADER_SIZE``) and parsed by ``numpy.lib.format``
without evaluating anything; the dtype must be a plain number (an object dtype would need
unpickling: ``UnsafeInput``), the element count within ``Limits`` and the data inside the
file, before the array (a read-only view of the file's bytes) exists. At most ``MAX_LEAVES``
leaves.

``write`` writes arrays the same way, in the order given: ``tree_deserialise_leaves`` loads
them into a module whose array leaves come in that order.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from tokenize import TokenError
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from rnnbridge.errors import InvalidField, LimitExceeded, MalformedFile, RnnBridgeError, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile

#: the target framework whose layers ``write`` writes
TARGET = "equinox"

NAME = "eqx_leaves"
MAGIC = b"\x93NUMPY"
MAX_HEADER_SIZE = 10_000
MAX_LEAVES = 100_000
_NUMERIC_KINDS = "biufc"


def _is_leaves(file: InputFile) -> bool:
    try:
        with open(file.path, "rb") as stream:
            return stream.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` is consecutive ``.npy`` arrays, more than one: a single
    ``.npy`` is a plain NumPy array (no cell has one array), which the upload refusal names."""
    leaves = [f for f in files if _is_leaves(f)]
    return len(leaves) == 1 and _more_than_one_leaf(leaves[0])


def _more_than_one_leaf(file: InputFile) -> bool:
    """Whether bytes follow the first ``.npy`` array of ``file`` (its header alone is read)."""
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(len(MAGIC) + 2 + 4 + MAX_HEADER_SIZE)
        size = file.path.stat().st_size
        _, end = _leaf(memoryview(head), 0, "#0", Limits(), header_only=True)
    except (OSError, RnnBridgeError):
        return True  # let ``read`` say what is wrong with it
    return size > end


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """The leaves of the one ``.eqx`` among ``files``, named ``#<position>``."""
    file = next(f for f in files if _is_leaves(f))
    size = file.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{file.name}: {size} bytes is more than the {limits.max_total_bytes} read at most")
    data = memoryview(file.path.read_bytes())
    tensors: dict[str, np.ndarray] = {}
    pos = 0
    while pos < len(data):
        if len(tensors) >= MAX_LEAVES:
            raise LimitExceeded(f"{file.name}: more than {MAX_LEAVES} leaves")
        name = f"#{len(tensors)}"
        tensors[name], pos = _leaf(data, pos, name, limits)
    return WeightFile(NAME, tensors)


def _leaf(
    data: memoryview, pos: int, name: str, limits: Limits, *, header_only: bool = False
) -> tuple[np.ndarray, int]:
    """The array whose ``.npy`` starts at ``pos``, and where the next one starts
    (``header_only``: an empty placeholder array, from the header alone)."""
    stream = io.BytesIO(data[pos : pos + len(MAGIC) + 2 + 4 + MAX_HEADER_SIZE])
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_SIZE)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_SIZE)
        else:
            raise ValueError(f"version {version}")
    except (ValueError, TypeError, SyntaxError, OSError, EOFError, TokenError) as exc:
        raise MalformedFile(f"leaf {name} at byte {pos}: not a .npy array ({exc})", tensor=name) from None
    if dtype.hasobject:
        raise UnsafeInput(f"leaf {name} is an object array, which would need unpickling", code="object_array")
    if dtype.kind not in _NUMERIC_KINDS:
        raise UnsupportedFormat(f"leaf {name} has dtype {dtype}, not a plain number")
    count = math.prod(shape)
    if count > limits.max_tensor_elements:
        raise LimitExceeded(f"leaf {name} has {count} elements, more than {limits.max_tensor_elements}", tensor=name)
    start = pos + stream.tell()
    end = start + count * dtype.itemsize
    if header_only:
        return np.empty(0, dtype), end
    if end > len(data):
        raise MalformedFile(f"leaf {name}: {count} elements of {dtype} run past the end of the file", tensor=name)
    array = np.frombuffer(data[start:end], dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return (array if dtype.isnative else array.astype(dtype.newbyteorder("="))), end


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write ``arrays`` as consecutive ``.npy`` leaves, in the order given: the ``eqx``
    output of an Equinox conversion, which ``eqx.tree_deserialise_leaves`` loads into a
    module of the same structure. ``meta`` is not written: the format has no place for it."""
    if meta.get("target") not in (None, TARGET):
        raise InvalidField("format=eqx writes Equinox weights: use it with target=equinox", field="format")
    for array in arrays.values():
        npy_format.write_array(stream, np.asarray(array), allow_pickle=False)
