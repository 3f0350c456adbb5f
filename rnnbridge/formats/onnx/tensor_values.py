"""The values of an ONNX ``TensorProto``, decoded into a NumPy array.

A tensor's values sit in exactly one place: ``raw_data`` (little-endian), the typed field
of its data type (``float16`` / ``bfloat16`` bits travel in ``int32_data``, sign-extended
negatives as 64-bit varints), or a side file (``onnx_external_data``). The element count
of ``dims`` must match what is stored, and every tensor is charged to the read budget
before it is allocated. Arrays keep the stored dtype (BOOL as ``bool``, BFLOAT16 widened
exactly to float32 with a note); data types NumPy cannot hold are skipped.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from rnnbridge.errors import MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import quote
from rnnbridge.formats.onnx.external_data import external_bytes
from rnnbridge.formats.onnx.tensor_proto import EXTERNAL, Context, Tensor, charge, check_size, parse_tensor, skip
from rnnbridge.formats.wire import protobuf as pb
from rnnbridge.formats.wire.elements import widen_bfloat16


class _DataType(NamedTuple):
    name: str
    stored: str  # little-endian dtype of one element in raw_data / a side file
    field: int  # the TensorProto field holding the values when there is no raw_data


_DATA_TYPES = {
    1: _DataType("FLOAT", "<f4", 4),
    2: _DataType("UINT8", "u1", 5),
    3: _DataType("INT8", "i1", 5),
    4: _DataType("UINT16", "<u2", 5),
    5: _DataType("INT16", "<i2", 5),
    6: _DataType("INT32", "<i4", 5),
    7: _DataType("INT64", "<i8", 7),
    9: _DataType("BOOL", "u1", 5),
    10: _DataType("FLOAT16", "<f2", 5),
    11: _DataType("DOUBLE", "<f8", 10),
    12: _DataType("UINT32", "<u4", 11),
    13: _DataType("UINT64", "<u8", 11),
    16: _DataType("BFLOAT16", "<u2", 5),
}

_UNREAD_TYPES = {0: "UNDEFINED", 8: "STRING", 14: "COMPLEX64", 15: "COMPLEX128"}


def decode_tensor(buf: bytes, sl: slice, ctx: Context, name: str = "") -> tuple[str, np.ndarray | None]:
    """A TensorProto as ``(name, array)``, the name being ``name`` if given, else the
    tensor's own; the array is None for a data type that is not read."""
    tensor = parse_tensor(buf, sl)
    tensor.name = name or tensor.name
    if not tensor.name:
        raise MalformedFile(f"ONNX: the tensor at byte {sl.start} has no name")
    kind = _DATA_TYPES.get(tensor.data_type)
    if kind is None:
        label = _UNREAD_TYPES.get(tensor.data_type, f"number {tensor.data_type}")
        skip(f"tensor {tensor.name!r} has data type {label}, which is not read", tensor.name, ctx)
        return tensor.name, None
    if tensor.segmented:
        raise UnsupportedFormat(
            f"ONNX: tensor {tensor.name!r} is segmented, which is not supported", tensor=tensor.name
        )
    flat = _tensor_values(buf, tensor, kind, ctx)
    return tensor.name, _finish(flat, tensor, kind, ctx).reshape(tensor.dims)


def _tensor_values(buf: bytes, tensor: Tensor, kind: _DataType, ctx: Context) -> np.ndarray:
    count = _element_count(tensor)
    stored = np.dtype(kind.stored)
    sources = (tensor.location == EXTERNAL) + (tensor.raw is not None) + bool(tensor.typed)
    if sources > 1:
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} stores its values in more than one place", tensor=tensor.name
        )
    if tensor.location == EXTERNAL:
        data = external_bytes(tensor, count, stored.itemsize, ctx)
        return np.frombuffer(data, dtype=stored).astype(stored.newbyteorder("="))
    if tensor.raw is not None:
        check_size(tensor, tensor.raw.stop - tensor.raw.start, count * stored.itemsize, "raw_data bytes")
        charge(tensor, count, count * stored.itemsize, ctx)
        return pb.packed_fixed(buf, tensor.raw, stored)
    return _typed_values(buf, tensor, kind, count, ctx)


def _element_count(tensor: Tensor) -> int:
    if tensor.location not in (0, EXTERNAL):
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} has unknown data_location {tensor.location}", tensor=tensor.name
        )
    if any(d < 0 for d in tensor.dims):
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} has a negative dimension in {quote(tensor.dims)}", tensor=tensor.name
        )
    return math.prod(tensor.dims)


def _typed_values(buf: bytes, tensor: Tensor, kind: _DataType, count: int, ctx: Context) -> np.ndarray:
    """Values from float_data / int32_data / int64_data / double_data / uint64_data."""
    wrong = set(tensor.typed) - {kind.field}
    if wrong:
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} of type {kind.name} has values in field {min(wrong)}",
            tensor=tensor.name,
        )
    items = tensor.typed.get(kind.field, [])
    if kind.field in (4, 10):
        return _float_values(buf, tensor, items, np.dtype(kind.stored), count, ctx)
    values = [_varints(buf, wire, value, tensor) for wire, value in items]
    flat = np.concatenate(values) if values else np.zeros(0, dtype=np.uint64)
    check_size(tensor, flat.size, count, f"values in field {kind.field}")
    charge(tensor, count, count * np.dtype(kind.stored).itemsize, ctx)
    return _narrow(flat, tensor, kind)


def _float_values(
    buf: bytes,
    tensor: Tensor,
    items: list[tuple[int, pb.FieldValue]],
    dtype: np.dtype,
    count: int,
    ctx: Context,
) -> np.ndarray:
    """``float_data`` / ``double_data``: packed runs or one I32 / I64 field per value."""
    one = pb.I32 if dtype.itemsize == 4 else pb.I64
    runs = []
    for wire, value in items:
        if wire not in (pb.LEN, one) or not isinstance(value, slice):
            raise MalformedFile(f"ONNX: tensor {tensor.name!r} has a value of wire type {wire}", tensor=tensor.name)
        runs.append(value)
    found = sum((run.stop - run.start) // dtype.itemsize for run in runs)
    check_size(tensor, found, count, "float values")
    charge(tensor, count, count * dtype.itemsize, ctx)
    parts = [pb.packed_fixed(buf, run, dtype) for run in runs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype.newbyteorder("="))


def _varints(buf: bytes, wire: int, value: pb.FieldValue, tensor: Tensor) -> np.ndarray:
    what = f"a value of tensor {tensor.name!r}"
    if wire == pb.LEN:
        return pb.packed_varint_array(buf, pb.expect_bytes(wire, value, what))
    return np.array([pb.expect_varint(wire, value, what)], dtype=np.uint64)


def _narrow(values: np.ndarray, tensor: Tensor, kind: _DataType) -> np.ndarray:
    """Cast decoded varints to the stored dtype, refusing values that do not fit.

    ``int32_data`` carries every type narrower than 32 bits, float16 / bfloat16 as their
    uint16 bit patterns; negative values arrive sign-extended to 64 bits.
    """
    if kind.field == 11:  # uint64_data: UINT32, UINT64
        target = np.dtype(kind.stored)
        low, high, numbers = 0, np.iinfo(target).max, values
    else:
        target = np.dtype("<u2" if kind.name in ("FLOAT16", "BFLOAT16") else kind.stored)
        low, high = (0, 1) if kind.name == "BOOL" else (np.iinfo(target).min, np.iinfo(target).max)
        numbers = values.view(np.int64)
    if numbers.size and (numbers.min() < low or numbers.max() > high):
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} has a value out of range for {kind.name}", tensor=tensor.name
        )
    narrowed = numbers.astype(target.newbyteorder("="))
    return narrowed.view(np.float16) if kind.name == "FLOAT16" else narrowed


def _finish(flat: np.ndarray, tensor: Tensor, kind: _DataType, ctx: Context) -> np.ndarray:
    if kind.name == "BOOL":
        return flat.astype(bool)
    if kind.name == "BFLOAT16":
        ctx.notes.append(f"ONNX tensor {tensor.name!r} is bfloat16; it was widened exactly to float32.")
        ctx.bfloat16.add(tensor.name)
        return widen_bfloat16(flat)
    return flat
