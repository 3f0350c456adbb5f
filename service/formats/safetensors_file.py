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
overlapping, element counts and total bytes within ``Limits``. Tensors are read once
each, straight into their arrays. BF16 is widened exactly to float32 (with a note);
every other dtype is kept. ``__metadata__`` goes to ``attrs["metadata"]``. Several
safetensors files in one upload (shards) are merged; a name in two of them is
``MalformedFile``.

The writer stores tensors in the order given, pads the header with spaces to a multiple
of 8 bytes and streams arrays in bounded chunks, so a non-contiguous array is never
copied whole.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from service.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from service.formats.base import InputFile, Limits, WeightFile

NAME = "safetensors"

#: the bound the reference implementation puts on the JSON header
MAX_HEADER_BYTES = 100 * 1024**2
_METADATA = "__metadata__"
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
_CODES = {dtype: code for code, dtype in DTYPES.items() if code != "BF16"}


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _header_length(head: bytes, size: int) -> int | None:
    """N from the first 9 bytes, if it is sane and followed by ``{``."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (length,) = struct.unpack_from("<Q", head)
    return length if 2 <= length <= min(MAX_HEADER_BYTES, size - 8) else None


def _looks_like(file: InputFile, strict: bool) -> bool:
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(9)
        size = file.path.stat().st_size
    except OSError:
        return False
    if strict:
        return _header_length(head, size) is not None
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedFile(f"the header names {key!r:.200} twice", tensor=key)
        out[key] = value
    return out


def _parse_header(text: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise MalformedFile(f"{where}: the JSON header is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFile(f"{where}: the header is not valid JSON: {exc}"[:500]) from None
    if not isinstance(header, dict):
        raise MalformedFile(f"{where}: the header is a JSON {type(header).__name__}, not an object")
    return header


def _int_list(value: object, what: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise MalformedFile(
            f"tensor {name!r}: {what} {value!r:.100} is not a list of integers >= 0", tensor=name
        )
    return tuple(value)


def _entry(name: str, info: object) -> _Entry:
    if not isinstance(info, dict):
        raise MalformedFile(
            f"tensor {name!r}: header entry is {info!r:.100}, not an object", tensor=name
        )
    dtype = info.get("dtype")
    if dtype not in DTYPES:
        raise MalformedFile(
            f"tensor {name!r}: dtype {dtype!r:.50} is not one of {', '.join(DTYPES)}", tensor=name
        )
    shape = _int_list(info.get("shape"), "shape", name)
    offsets = _int_list(info.get("data_offsets"), "data_offsets", name)
    if len(shape) > _MAX_NDIM or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise MalformedFile(
            f"tensor {name!r}: shape {list(shape)} or data_offsets {list(offsets)} is out of form",
            tensor=name,
        )
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise MalformedFile(
            f"tensor {name!r}: {dtype} {list(shape)} needs {nbytes} bytes, "
            f"data_offsets {list(offsets)} span {offsets[1] - offsets[0]}",
            tensor=name,
        )
    return _Entry(name, dtype, shape, *offsets)


def _metadata(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedFile(f"{where}: __metadata__ is not an object of strings")
    return value


def _check_layout(entries: list[_Entry], data_size: int, data_start: int) -> None:
    previous: _Entry | None = None
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


def _check_limits(entries: list[_Entry], limits: Limits, budget: int) -> int:
    """Raise LimitExceeded past ``limits``; return the bytes left of ``budget``."""
    for entry in entries:
        count = math.prod(entry.shape)
        if count > limits.max_tensor_elements:
            raise LimitExceeded(
                f"tensor {entry.name!r} has {count} elements, more than the "
                f"limit of {limits.max_tensor_elements}",
                tensor=entry.name,
            )
    left = budget - sum(entry.end - entry.begin for entry in entries)
    if left < 0:
        raise LimitExceeded(
            f"the tensors hold more than the limit of {limits.max_total_bytes} bytes"
        )
    return left


def _read_tensor(stream: BinaryIO, entry: _Entry, data_start: int) -> np.ndarray:
    raw = np.empty(entry.end - entry.begin, dtype=np.uint8)
    stream.seek(data_start + entry.begin)
    if stream.readinto(memoryview(raw)) != raw.size:
        raise MalformedFile(
            f"tensor {entry.name!r}: the file ends inside its data", tensor=entry.name
        )
    if entry.dtype == "BOOL":  # bytes other than 0 and 1 would make odd NumPy bools
        array = raw != 0
    else:
        array = raw.view(DTYPES[entry.dtype])
    if entry.dtype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    return array.astype(array.dtype.newbyteorder("="), copy=False).reshape(entry.shape)


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
        header = _parse_header(stream.read(length), file.name)
        metadata = _metadata(header.pop(_METADATA, {}), file.name)
        entries = [_entry(name, info) for name, info in header.items()]
        _check_layout(entries, size - 8 - length, 8 + length)
        left = _check_limits(entries, limits, budget)
        tensors = {}
        for entry in sorted(entries, key=lambda e: e.begin):
            tensors[entry.name] = _read_tensor(stream, entry, 8 + length)
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
        ``attrs["metadata"]`` is the ``__metadata__`` object (merged over shards).

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
            raise MalformedFile(
                f"tensor {twice[0]!r} is in two files ({file.name} and another)", tensor=twice[0]
            )
        merged.tensors.update(part.tensors)
        merged.attrs["metadata"].update(part.attrs["metadata"])
        merged.notes.extend(part.notes)
        merged.bfloat16 |= part.bfloat16
    return merged


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Planned:
    name: str
    array: np.ndarray
    code: str


def _code(name: str, array: np.ndarray, as_bfloat16: bool) -> str:
    if as_bfloat16:
        if array.dtype.kind != "f" or array.dtype.itemsize != 4:
            raise ValueError(
                f"tensor {name!r} is {array.dtype}; only float32 can be written as BF16"
            )
        for piece in _pieces(array, 1 << 20):
            if (np.ascontiguousarray(piece, dtype="<f4").view("<u4") & 0xFFFF).any():
                raise ValueError(
                    f"tensor {name!r} holds float32 values that BF16 cannot represent exactly"
                )
        return "BF16"
    code = _CODES.get(array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype)
    if code is None:
        raise ValueError(
            f"tensor {name!r} has dtype {array.dtype}, which safetensors "
            f"cannot store here (supported: {', '.join(DTYPES)})"
        )
    return code


def _plan(
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None,
    bfloat16: Collection[str],
) -> tuple[bytes, list[_Planned]]:
    """Check every input and encode the header (length prefix included)."""
    unknown = set(bfloat16) - set(tensors)
    if unknown:
        raise ValueError(f"bfloat16 names {sorted(unknown)}, which are not tensors")
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must map str to str")
        header[_METADATA] = dict(metadata)
    planned, offset = [], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == _METADATA:
            raise ValueError(f"{name!r} cannot name a tensor")
        array = np.asarray(value)
        code = _code(name, array, name in bfloat16)
        nbytes = array.size * DTYPES[code].itemsize
        header[name] = {
            "dtype": code,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        planned.append(_Planned(name, array, code))
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, planned


def _pieces(array: np.ndarray, chunk_bytes: int) -> Iterator[np.ndarray]:
    """Sub-arrays of ``array`` that cover it in C order, each about ``chunk_bytes``."""
    if array.nbytes <= chunk_bytes or array.ndim == 0:
        yield array
    elif array.flags.c_contiguous:
        flat = array.reshape(-1)
        step = max(1, chunk_bytes // array.itemsize)
        for start in range(0, flat.size, step):
            yield flat[start : start + step]
    elif array.nbytes // len(array) > chunk_bytes:
        for row in array:
            yield from _pieces(row, chunk_bytes)
    else:
        rows = chunk_bytes // (array.nbytes // len(array))
        for start in range(0, len(array), rows):
            yield array[start : start + rows]


def _encode(piece: np.ndarray, code: str) -> bytes:
    if code == "BF16":
        bits = np.ascontiguousarray(piece, dtype="<f4").view("<u4")
        return (bits >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(piece, dtype=DTYPES[code]).tobytes()


def _stream(header: bytes, planned: list[_Planned], chunk_bytes: int) -> Iterator[bytes]:
    buffer = bytearray(header)
    for item in planned:
        for piece in _pieces(item.array, chunk_bytes):
            buffer += _encode(piece, item.code)
            if len(buffer) >= chunk_bytes:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


def iter_chunks(
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
    bfloat16: Collection[str] = (),
    chunk_bytes: int = 1 << 20,
) -> Iterator[bytes]:
    """The bytes of a safetensors file, in chunks of about ``chunk_bytes``.

    Every input is checked when this is called, before the first chunk exists, so a
    stream that has started does not fail on bad input.

    Parameters
    ----------
    tensors : mapping of str to ndarray
        Written in this order, in C order, little-endian; any strides.
    metadata : mapping of str to str, optional
        Stored as ``__metadata__``.
    bfloat16 : collection of str
        Names of float32 tensors to store as BF16; each must be exactly representable.
    chunk_bytes : int
        Target chunk size. Non-contiguous arrays are copied at most this much at a time.

    Returns
    -------
    iterator of bytes

    Raises
    ------
    ValueError
        An unsupported dtype, a bad name or metadata, or an inexact BF16 tensor.

    Examples
    --------
    >>> b"".join(iter_chunks({"x": np.zeros(2, np.float32)}))[:8]
    b'@\\x00\\x00\\x00\\x00\\x00\\x00\\x00'
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    header, planned = _plan(tensors, metadata, bfloat16)
    return _stream(header, planned, chunk_bytes)


def encoded_size(
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
    bfloat16: Collection[str] = (),
) -> int:
    """The size in bytes of the file ``iter_chunks`` produces (e.g. a Content-Length)."""
    header, planned = _plan(tensors, metadata, bfloat16)
    return len(header) + sum(p.array.size * DTYPES[p.code].itemsize for p in planned)


def write(
    stream: BinaryIO,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
    bfloat16: Collection[str] = (),
) -> None:
    """Write ``tensors`` to ``stream`` as a safetensors file; see ``iter_chunks``."""
    for chunk in iter_chunks(tensors, metadata, bfloat16):
        stream.write(chunk)
