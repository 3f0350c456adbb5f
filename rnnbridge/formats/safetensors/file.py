"""safetensors files: read them, and write them (whole or as a stream of chunks).

Layout::

    bytes 0..8        N, unsigned 64-bit little-endian: the header length
    bytes 8..8+N      JSON object, UTF-8, possibly padded with spaces:
                        {"__metadata__": {str: str},            (optional)
                         "<name>": {"dtype": "F32", "shape": [4, 3],
                                    "data_offsets": [begin, end]}, ...}
    bytes 8+N..       the data buffer; tensor <name> is buffer[begin:end], C order,
                      little-endian

Contract of the reader: the header is bounded (``MAX_HEADER_BYTES``), must be one JSON
object without duplicate keys, and every entry is checked before any tensor is read:
a known dtype, ``end - begin == prod(shape) * itemsize``, offsets inside the file and not
overlapping, element counts and total bytes within ``Limits``. Tensors are memory-mapped
read-only, so nothing beyond the header is read until a tensor is used (``inspect`` of a
large file reads its header only; the upload must not shrink while its arrays are in use).
BF16 is widened exactly to float32 (with a note); every other dtype is kept.
``__metadata__`` goes to ``attrs["metadata"]``, and the metadata rnnbridge writes in it
(``__metadata__["rnnbridge"]``, a JSON string) parsed to ``attrs["meta"]``, where discovery
finds a converted file's layers. Several
safetensors files in one upload (shards) are merged; a name in two of them is
``MalformedFile``.

The writer stores tensors in the order given, pads the header with spaces to a multiple
of 8 bytes and streams arrays in bounded chunks, so a non-contiguous array is never
copied whole.

This module holds the reader; the header checks are in ``header`` and the writer
(``write``, ``iter_chunks``, ``encoded_size``, re-exported here) in ``writer``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.json_arrays import loads_bounded
from rnnbridge.formats.meta import SAFETENSORS_KEY
from rnnbridge.formats.safetensors.header import (
    DTYPES,
    MAX_HEADER_BYTES,
    METADATA,
    Entry,
    check_layout,
    header_length,
    parse_entry,
    parse_header,
    parse_metadata,
)
from rnnbridge.formats.safetensors.writer import encoded_size, iter_chunks, write
from rnnbridge.formats.wire.elements import check_element_count, widen_bfloat16

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "NAME", "encoded_size", "iter_chunks", "read", "sniff", "write"]

NAME = "safetensors"


def _looks_like(file: InputFile, strict: bool) -> bool:
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(9)
        size = file.path.stat().st_size
    except OSError:
        return False
    if strict:
        return header_length(head, size) is not None
    return head[8:9] == b"{"


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether one of ``files`` starts like a safetensors file.

    Parameters
    ----------
    files : sequence of InputFile
        The upload.

    Returns
    -------
    bool
        True if a file's first 8 bytes are a little-endian length N with
        2 <= N <= min(100 MB, file size - 8), followed by ``{``.
    """
    return any(_looks_like(file, strict=True) for file in files)


def _check_limits(entries: list[Entry], limits: Limits, budget: int) -> int:
    """Raise LimitExceeded past ``limits``; return the bytes left of ``budget``."""
    for entry in entries:
        check_element_count(entry.name, math.prod(entry.shape), limits)
    left = budget - sum(entry.end - entry.begin for entry in entries)
    if left < 0:
        raise LimitExceeded(f"the tensors hold more than the limit of {limits.max_total_bytes} bytes")
    return left


def _read_tensor(path: Path, entry: Entry, data_start: int) -> np.ndarray:
    """The tensor's bytes, memory-mapped read-only: nothing is read until it is used, so
    ``inspect`` of a large file reads its header only. BOOL and BF16 are converted (read) here."""
    count = entry.end - entry.begin
    if count == 0:
        raw = np.empty(0, dtype=np.uint8)
    else:
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start + entry.begin, shape=(count,))
    if entry.dtype == "BOOL":  # bytes other than 0 and 1 would make odd NumPy bools
        array = raw != 0
    else:
        array = raw.view(DTYPES[entry.dtype])
    if entry.dtype == "BF16":
        array = widen_bfloat16(array)
    array = array.astype(array.dtype.newbyteorder("="), copy=False).reshape(entry.shape)
    return array.view(np.ndarray) if isinstance(array, np.memmap) else array


def _read_file(file: InputFile, limits: Limits, budget: int) -> tuple[WeightFile, int]:
    size = file.path.stat().st_size
    with open(file.path, "rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            raise MalformedFile(f"{file.name}: {size} bytes, too short for a header length")
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise MalformedFile(
                f"{file.name}: header length {length} does not fit the file "
                f"({size} bytes) or the bound of {MAX_HEADER_BYTES}"
            )
        header = parse_header(stream.read(length), file.name)
        metadata = parse_metadata(header.pop(METADATA, {}), file.name)
        entries = [parse_entry(name, info) for name, info in header.items()]
        check_layout(entries, size - 8 - length, 8 + length)
        left = _check_limits(entries, limits, budget)
        tensors = {}
        for entry in sorted(entries, key=lambda e: e.begin):
            tensors[entry.name] = _read_tensor(file.path, entry, 8 + length)
    tensors = {entry.name: tensors[entry.name] for entry in entries}  # header order
    widened = [entry.name for entry in entries if entry.dtype == "BF16"]
    notes = []
    if widened:
        notes.append(f"{file.name}: BF16 widened exactly to float32: {', '.join(widened)}.")
    return WeightFile(NAME, tensors, {"metadata": metadata}, notes, bfloat16=set(widened)), left


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read the safetensors file(s) among ``files``.

    Parameters
    ----------
    files : sequence of InputFile
        The upload. Files with ``{`` at byte 8 are read (shards are merged); if none
        has it, every file is tried, so a damaged file is reported as such.
    limits : Limits
        Bounds on tensor elements and total bytes.

    Returns
    -------
    WeightFile
        ``tensors`` in header order and stored dtype (BF16 widened to float32);
        ``attrs["metadata"]`` is the ``__metadata__`` object (merged over shards),
        ``attrs["meta"]`` the parsed ``__metadata__["rnnbridge"]``, where there is one.

    Raises
    ------
    MalformedFile
        Bad header length, JSON, dtype, shape, offsets, or a name in two shards.
    LimitExceeded, UnsupportedFormat
    """
    chosen = [file for file in files if _looks_like(file, strict=False)] or list(files)
    if not chosen:
        raise UnsupportedFormat("the upload holds no file")
    merged = WeightFile(NAME, {}, {"metadata": {}})
    budget = limits.max_total_bytes
    for file in chosen:
        part, budget = _read_file(file, limits, budget)
        twice = sorted(part.tensors.keys() & merged.tensors.keys())
        if twice:
            raise MalformedFile(f"tensor {twice[0]!r} is in two files ({file.name} and another)", tensor=twice[0])
        merged.tensors.update(part.tensors)
        merged.attrs["metadata"].update(part.attrs["metadata"])
        merged.notes.extend(part.notes)
        merged.bfloat16 |= part.bfloat16
    ours = merged.attrs["metadata"].get(SAFETENSORS_KEY)
    if ours is not None:
        merged.attrs["meta"] = loads_bounded(ours, what=f"__metadata__[{SAFETENSORS_KEY!r}]")
    return merged
