"""Writing safetensors files, whole or as a stream of bounded chunks.

The writer stores tensors in the order given, C order and little-endian, pads the JSON
header with spaces to a multiple of 8 bytes and streams arrays in pieces of about
``chunk_bytes``, so a non-contiguous array is never copied whole. Every input is checked
before the first byte is produced. float32 tensors may be stored as BF16 when every value
is exactly representable.

``write_result`` writes an rnnbridge result: its metadata JSON under
``__metadata__["rnnbridge"]``, where the reader looks for it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from rnnbridge.errors import InvalidField
from rnnbridge.formats.meta import SAFETENSORS_KEY, dumps
from rnnbridge.formats.safetensors.header import DTYPES, METADATA

_CODES = {dtype: code for code, dtype in DTYPES.items() if code != "BF16"}


@dataclass(frozen=True)
class _Planned:
    name: str
    array: np.ndarray
    code: str


def _code(name: str, array: np.ndarray, as_bfloat16: bool) -> str:
    if as_bfloat16:
        if array.dtype.kind != "f" or array.dtype.itemsize != 4:
            raise ValueError(f"tensor {name!r} is {array.dtype}; only float32 can be written as BF16")
        for piece in _pieces(array, 1 << 20):
            if (np.ascontiguousarray(piece, dtype="<f4").view("<u4") & 0xFFFF).any():
                raise ValueError(f"tensor {name!r} holds float32 values that BF16 cannot represent exactly")
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
        header[METADATA] = dict(metadata)
    planned, offset = [], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == METADATA:
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
    >>> data = b"".join(iter_chunks({"x": np.zeros(2, np.float32)}))
    >>> data[8:64]  # the header: 54 bytes of JSON padded to 56
    b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  '
    >>> int.from_bytes(data[:8], "little"), len(data)
    (56, 72)
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
    stream: IO[bytes],
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
    bfloat16: Collection[str] = (),
) -> None:
    """Write ``tensors`` to ``stream`` as a safetensors file; see ``iter_chunks``."""
    for chunk in iter_chunks(tensors, metadata, bfloat16):
        stream.write(chunk)


def write_result(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write an rnnbridge result: ``arrays`` as tensors, ``meta`` under ``__metadata__["rnnbridge"]``.

    The tensors named in ``meta["bfloat16"]`` (stored as bfloat16 in the source file) are
    stored as BF16 again when every value still is one.
    """
    metadata, exact = result_header(arrays, meta)
    try:
        write(stream, arrays, metadata, bfloat16=exact)
    except ValueError as exc:  # a dtype or name safetensors cannot hold
        raise InvalidField(f"the result cannot be written as safetensors: {exc}", field="format") from exc


def result_header(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The ``__metadata__`` and the BF16 tensor names ``write_result`` writes for a result."""
    exact = [name for name in meta.get("bfloat16", ()) if _fits_bfloat16(arrays[name])]
    return {SAFETENSORS_KEY: dumps(meta)}, exact


def _fits_bfloat16(array: np.ndarray) -> bool:
    """A float32 array whose values are all bfloat16 values (its low 16 bits are zero)."""
    if array.dtype != np.float32:
        return False
    return not np.any(np.ascontiguousarray(array).view(np.uint32) & np.uint32(0xFFFF))
