"""Small arrays a user hands to /run: an input sequence, initial states, expected outputs.

One file holds them, recognised by its first bytes, never by its name:

* ``.npy`` (``\\x93NUMPY``): one array; its header is parsed by ``numpy.lib.format``
  (bounded, nothing evaluated) and checked against the file size and ``max_elements``
  before any data is read, then ``np.load(allow_pickle=False)``;
* ``.npz`` (a zip): every numeric member, through ``rnnbridge.formats.npz`` (bounded the
  same way, object arrays refused);
* JSON (at most ``MAX_JSON_BYTES``): a nested list of numbers (one array), an object of such lists, or rnnbridge's own
  ``{"arrays": {...}}`` document (``rnnbridge.formats.json_arrays``).

A file over ``max_bytes`` is refused before it is read. Values come back as float64,
exactly (every float16/32 value is a float64 value).

:func:`load` is the entry point: with ``Limits.isolate`` (the service) the file is read in
a reader process (``hdf5.isolation``), bounded in time and resident memory like a weight
file, and the JSON census bounds the values a bare list may create (``2 x max_elements``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput
from rnnbridge.formats import json_arrays, npz
from rnnbridge.formats.base import InputFile, Limits, WeightFile

SINGLE = "array"
#: the largest JSON array file (a number costs ~10 bytes of text and ~30 of Python while parsed)
MAX_JSON_BYTES = 64 * 1024**2  # the name of the one array of an .npy or a bare JSON list


def load(
    path: Path, what: str, *, max_bytes: int, max_elements: int, limits: Limits | None = None
) -> dict[str, np.ndarray]:
    """:func:`read_arrays`, in a reader process when ``limits.isolate`` (the service's reads)."""
    if limits is None or not limits.isolate:
        return read_arrays(path, what, max_bytes=max_bytes, max_elements=max_elements)
    from rnnbridge.formats.hdf5.isolation import read_isolated

    weights = read_isolated(
        "rnnbridge.formats.user_arrays:read_file",
        path,
        dataclasses.replace(limits, isolate=False),
        what=what,
        max_bytes=max_bytes,
        max_elements=max_elements,
    )
    return dict(weights.tensors)


def read_file(path: Path, limits: Limits, *, what: str, max_bytes: int, max_elements: int) -> WeightFile:
    """:func:`read_arrays` with a reader's signature (what a reader process runs)."""
    return WeightFile("user_arrays", read_arrays(path, what, max_bytes=max_bytes, max_elements=max_elements))


def read_arrays(path: Path, what: str, *, max_bytes: int, max_elements: int) -> dict[str, np.ndarray]:
    """The arrays of one user file, by name (``SINGLE`` for a file of one unnamed array)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise LimitExceeded(f"{what}: {size} bytes, over the limit of {max_bytes}", field=what)
    with path.open("rb") as stream:
        head = stream.read(8)
    if head.startswith(npz.NPY_MAGIC):
        return {SINGLE: _read_npy(path, what, size, max_elements)}
    limits = Limits(max_tensor_elements=max_elements, max_total_bytes=max_bytes)
    if head.startswith(b"PK"):
        arrays = npz.read([InputFile(path.name, path)], limits).tensors
    else:
        arrays = _read_json(path, what, limits)
    return {name: _numeric(a, what, name, max_elements) for name, a in arrays.items()}


def _read_npy(path: Path, what: str, size: int, max_elements: int) -> np.ndarray:
    with path.open("rb") as stream:
        try:
            version = npy_format.read_magic(stream)
            reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = reader(stream, max_header_size=npz.MAX_HEADER_SIZE)
        except (ValueError, OSError) as exc:
            raise MalformedFile(f"{what}: not a valid .npy file: {exc}", field=what) from exc
        offset = stream.tell()
    if dtype.hasobject:
        raise UnsafeInput(f"{what}: an object array would need unpickling; send numbers", field=what)
    count = int(np.prod(shape, dtype=object))
    if count > max_elements:
        raise LimitExceeded(f"{what}: {count} elements, over the limit of {max_elements}", field=what)
    if offset + count * dtype.itemsize > size:
        raise MalformedFile(f"{what}: the .npy header declares more data than the file holds", field=what)
    array = np.load(path, allow_pickle=False)
    return _numeric(array, what, SINGLE, max_elements)


def _read_json(path: Path, what: str, limits: Limits) -> dict[str, np.ndarray]:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise LimitExceeded(f"{what}: JSON of {size} bytes, over {MAX_JSON_BYTES}: send an .npy", field=what)
    data = path.read_bytes()
    if data.lstrip()[:1] != b"[":
        return json_arrays.read([InputFile(path.name, path)], limits).tensors
    max_values = min(json_arrays.MAX_JSON_VALUES, 2 * limits.max_tensor_elements + json_arrays.MAX_DEPTH)
    values = json_arrays.loads_bounded(data, what=what, max_values=max_values)
    try:
        return {SINGLE: np.array(values, dtype=np.float64)}
    except (ValueError, TypeError) as exc:
        raise MalformedFile(f"{what}: the JSON list is not a rectangular array of numbers: {exc}", field=what) from None


def _numeric(array: np.ndarray, what: str, name: str, max_elements: int) -> np.ndarray:
    if array.dtype.kind not in "fiub":
        raise MalformedFile(f"{what}: array {name!r} has dtype {array.dtype}, not numbers", field=what)
    if array.size > max_elements:
        raise LimitExceeded(f"{what}: {array.size} elements, over the limit of {max_elements}", field=what)
    return np.asarray(array, dtype=np.float64)
