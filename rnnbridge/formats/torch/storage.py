"""Storages and strided tensors of a ``torch.save`` file, turned into NumPy arrays.

A tensor is a view of a storage (a flat run of ``numel`` elements of one dtype): element
``offset``, ``size`` and ``stride`` counted in elements. Before any storage is read,
:func:`check_all` checks every tensor against its storage (no element past the end, a
whole number of elements) and against ``Limits``; :func:`materialise` then builds the
array from the storage's bytes without copying more than the dtype conversion needs.
"""

from __future__ import annotations

import io
import math

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import Limits
from rnnbridge.formats.torch.unpickler import TORCH_DTYPES, Storage, Tensor
from rnnbridge.formats.wire.elements import check_element_count, widen_bfloat16


def numpy_dtype(dtype: str, name: str, big_endian: bool) -> np.dtype:
    """The NumPy dtype of the stored elements (bfloat16 as its uint16 bits)."""
    if TORCH_DTYPES.get(dtype, dtype) is None:
        raise UnsupportedFormat(f"tensor {name!r} has dtype torch.{dtype}, which NumPy cannot hold", tensor=name)
    stored = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return stored.newbyteorder(">" if big_endian else "<")


def storage_nbytes(storage: Storage) -> int:
    """The size of ``storage`` in bytes."""
    return storage.numel * numpy_dtype(storage.dtype, storage.key, False).itemsize


def _check_tensor(name: str, t: Tensor, limits: Limits) -> None:
    """Check shape, strides and offset against the storage and the limits."""
    count = math.prod(t.size)
    check_element_count(name, count, limits)
    itemsize = numpy_dtype(t.dtype, name, False).itemsize
    available = storage_nbytes(t.storage) // itemsize
    if storage_nbytes(t.storage) % itemsize:
        raise MalformedFile(
            f"tensor {name!r}: storage {t.storage.key!r} of "
            f"{storage_nbytes(t.storage)} bytes is no whole number of {t.dtype}",
            tensor=name,
        )
    if count == 0:
        return
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
    if last >= available:
        raise MalformedFile(
            f"tensor {name!r} (size {t.size}, stride {t.stride}, offset {t.offset}) reaches "
            f"element {last} of storage {t.storage.key!r}, which holds {available}",
            tensor=name,
        )


def check_all(tensors: dict[str, Tensor], limits: Limits) -> None:
    """Check every tensor, and the bytes of the storages they use, against ``limits``."""
    for name, t in tensors.items():
        _check_tensor(name, t, limits)
    used = {t.storage.key: t.storage for t in tensors.values()}
    total = sum(storage_nbytes(s) for s in used.values())
    if total > limits.max_total_bytes:
        raise LimitExceeded(
            f"the tensors' storages hold {total} bytes, more than the limit of {limits.max_total_bytes}"
        )


def materialise(name: str, t: Tensor, raw: np.ndarray, big_endian: bool) -> np.ndarray:
    """The array for ``t`` from its storage's bytes (``raw``, uint8), as checked above."""
    stored = numpy_dtype(t.dtype, name, big_endian)
    if math.prod(t.size) == 0:
        array = np.empty(t.size, dtype=stored)
    else:
        elements = raw[: raw.size - raw.size % stored.itemsize].view(stored)
        strides = tuple(s * stored.itemsize for s in t.stride)
        array = np.lib.stride_tricks.as_strided(elements[t.offset :], t.size, strides)
    if t.dtype == "bfloat16":
        return widen_bfloat16(array)
    if t.dtype == "bool":  # bytes other than 0 and 1 would make odd NumPy bools
        return array.view(np.uint8) != 0
    if big_endian or not array.flags.c_contiguous:
        return array.astype(stored.newbyteorder("="))
    return array


def read_into(stream: io.BufferedIOBase, nbytes: int, what: str) -> np.ndarray:
    """Exactly ``nbytes`` from ``stream`` as a new uint8 array; ``what`` names the bytes."""
    buffer = np.empty(nbytes, dtype=np.uint8)
    got = stream.readinto(buffer.data)
    if got != nbytes:
        raise MalformedFile(f"{what}: expected {nbytes} bytes, found {got}")
    return buffer
