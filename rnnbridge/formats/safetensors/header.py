"""The JSON header of a safetensors file, checked entry by entry before any tensor is read.

The header is the JSON object at bytes ``8..8+N`` of the file (layout in
``file``): ``{"__metadata__": {str: str}, "<name>": {"dtype", "shape",
"data_offsets": [begin, end]}, ...}``, offsets counted from the start of the data buffer.

Contract: the header is bounded (``MAX_HEADER_BYTES``, and ``MAX_META_VALUES`` JSON values
counted before it is parsed), must be one JSON object without
duplicate keys; every entry has a known dtype, at most 64 dimensions and
``end - begin == prod(shape) * itemsize``; entries lie inside the data buffer and do not
overlap. Any contradiction is ``MalformedFile`` naming the tensor.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile
from rnnbridge.formats.base import check_shape
from rnnbridge.formats.json_arrays import MAX_META_VALUES, json_census

#: the bound the reference implementation puts on the JSON header
MAX_HEADER_BYTES = 100 * 1024**2

METADATA = "__metadata__"

_MAX_NDIM = 64

#: safetensors dtype -> NumPy dtype of the stored bytes (BF16 is read as its bits)
DTYPES: dict[str, np.dtype] = {
    code: np.dtype(numpy)
    for code, numpy in {
        "F16": "<f2",
        "BF16": "<u2",
        "F32": "<f4",
        "F64": "<f8",
        "I8": "i1",
        "I16": "<i2",
        "I32": "<i4",
        "I64": "<i8",
        "U8": "u1",
        "U16": "<u2",
        "U32": "<u4",
        "U64": "<u8",
        "BOOL": "?",
    }.items()
}


@dataclass(frozen=True)
class Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def header_length(head: bytes, size: int) -> int | None:
    """N from the first 9 bytes, if it is sane and followed by ``{``."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (length,) = struct.unpack_from("<Q", head)
    return length if 2 <= length <= min(MAX_HEADER_BYTES, size - 8) else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedFile(f"the header names {key!r:.200} twice", tensor=key)
        out[key] = value
    return out


def parse_header(text: bytes, where: str) -> dict[str, Any]:
    try:
        decoded = text.decode("utf-8")
        _, values = json_census(decoded)
        if values > MAX_META_VALUES:
            raise LimitExceeded(f"{where}: the JSON header holds about {values} values, more than {MAX_META_VALUES}")
        header = json.loads(decoded, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise MalformedFile(f"{where}: the JSON header is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFile(f"{where}: the header is not valid JSON: {exc}"[:500]) from None
    if not isinstance(header, dict):
        raise MalformedFile(f"{where}: the header is a JSON {type(header).__name__}, not an object")
    return header


def _int_list(value: object, what: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise MalformedFile(f"tensor {name!r}: {what} {value!r:.100} is not a list of integers >= 0", tensor=name)
    return tuple(value)


def parse_entry(name: str, info: object) -> Entry:
    if not isinstance(info, dict):
        raise MalformedFile(f"tensor {name!r}: header entry is {info!r:.100}, not an object", tensor=name)
    dtype = info.get("dtype")
    if dtype not in DTYPES:
        raise MalformedFile(f"tensor {name!r}: dtype {dtype!r:.50} is not one of {', '.join(DTYPES)}", tensor=name)
    shape = _int_list(info.get("shape"), "shape", name)
    offsets = _int_list(info.get("data_offsets"), "data_offsets", name)
    if len(shape) > _MAX_NDIM or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise MalformedFile(
            f"tensor {name!r}: shape {list(shape)} or data_offsets {list(offsets)} is out of form",
            tensor=name,
        )
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize
    if not nbytes:  # an empty array may still declare dimensions no array can have
        check_shape(shape, DTYPES[dtype].itemsize, f"tensor {name!r:.200}", tensor=name)
    if offsets[1] - offsets[0] != nbytes:
        raise MalformedFile(
            f"tensor {name!r}: {dtype} {list(shape)} needs {nbytes} bytes, "
            f"data_offsets {list(offsets)} span {offsets[1] - offsets[0]}",
            tensor=name,
        )
    return Entry(name, dtype, shape, *offsets)


def parse_metadata(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedFile(f"{where}: __metadata__ is not an object of strings")
    return value


def check_layout(entries: list[Entry], data_size: int, data_start: int) -> None:
    previous: Entry | None = None
    for entry in sorted(entries, key=lambda e: (e.begin, e.end)):
        if entry.end > data_size:
            raise MalformedFile(
                f"tensor {entry.name!r} ends at byte {data_start + entry.end}, past the end "
                f"of the file ({data_start + data_size} bytes)",
                tensor=entry.name,
            )
        if previous is not None and entry.begin < previous.end:
            raise MalformedFile(
                f"tensor {entry.name!r} (bytes {entry.begin}..{entry.end} of the data) "
                f"overlaps {previous.name!r} (bytes {previous.begin}..{previous.end})",
                tensor=entry.name,
            )
        if entry.end > entry.begin:
            previous = entry
