"""ONNX ``TensorProto`` headers, and the accounting shared by everything that decodes them.

Fields read (``onnx/onnx.proto``)::

    TensorProto  dims=1  data_type=2  segment=3  float_data=4  int32_data=5  int64_data=7
                 name=8  raw_data=9  double_data=10  uint64_data=11
                 external_data=13 {key=1, value=2}  data_location=14 (1 = EXTERNAL)

:func:`parse_tensor` records where a tensor's values are (byte ranges of ``buf``) without
decoding them. :class:`Context` carries what decoding one model needs: the upload (for
side files), ``Limits`` and the bytes left of the read budget, which :func:`charge`
takes from before anything is allocated; :func:`skip` notes a tensor that is not read,
or refuses it when a recurrent node needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, quote
from rnnbridge.formats.wire import protobuf as pb

EXTERNAL = 1


@dataclass
class Tensor:
    """A TensorProto's header and where its values are; nothing decoded yet."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw: slice | None = None
    typed: dict[int, list[tuple[int, pb.FieldValue]]] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)
    location: int = 0
    segmented: bool = False


@dataclass
class Context:
    """What decoding one model needs besides its bytes."""

    files: Sequence[InputFile]
    limits: Limits
    rnn_inputs: frozenset[str]
    budget: int
    notes: list[str] = field(default_factory=list)
    bfloat16: set[str] = field(default_factory=set)


#: the most dimensions a TensorProto may list
MAX_DIMS = 64


def skip(reason: str, name: str, ctx: Context) -> None:
    """Note a tensor that is not read, or refuse it if a recurrent node needs it."""
    if name in ctx.rnn_inputs:
        raise UnsupportedFormat(f"ONNX: {reason}, and it feeds a recurrent node", tensor=name)
    ctx.notes.append(f"ONNX: {reason}.")


def parse_tensor(buf: bytes, sl: slice) -> Tensor:
    """The TensorProto at ``buf[sl]``: its header and where its values are."""
    tensor = Tensor()
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            tensor.dims += ints(buf, wire, value, "TensorProto.dims")
            if len(tensor.dims) > MAX_DIMS:
                raise MalformedFile(f"ONNX: a tensor has more than {MAX_DIMS} dims", tensor=tensor.name or None)
        elif number == 2:
            value = pb.expect_varint(wire, value, "TensorProto.data_type")
            tensor.data_type = pb.as_int64(value)
        elif number == 14:
            value = pb.expect_varint(wire, value, "TensorProto.data_location")
            tensor.location = pb.as_int64(value)
        elif number in (4, 5, 7, 10, 11):
            tensor.typed.setdefault(number, []).append((wire, value))
        elif number in (3, 8, 9, 13):
            value = pb.expect_bytes(wire, value, f"TensorProto field {number}")
            _tensor_len_field(buf, tensor, number, value)
    return tensor


def _tensor_len_field(buf: bytes, tensor: Tensor, number: int, value: slice) -> None:
    if number == 3:
        tensor.segmented = True
    elif number == 8:
        tensor.name = pb.as_text(buf, value, "TensorProto.name")
    elif number == 9:
        tensor.raw = value
    else:
        key, text = "", ""
        for n, wire, v in pb.iter_fields(buf, value.start, value.stop):
            v = pb.expect_bytes(wire, v, "StringStringEntryProto field")
            if n == 1:
                key = pb.as_text(buf, v, "external_data key")
            elif n == 2:
                text = pb.as_text(buf, v, "external_data value")
        tensor.external[key] = text


def ints(buf: bytes, wire: int, value: pb.FieldValue, what: str) -> list[int]:
    """A repeated int64 field's values: one VARINT, or a packed run of them."""
    if wire == pb.LEN:
        run = pb.packed_varint_array(buf, pb.expect_bytes(wire, value, what))
        return [int(v) for v in run.view(np.int64)]
    return [pb.as_int64(pb.expect_varint(wire, value, what))]


def check_size(tensor: Tensor, actual: int, expected: int, what: str) -> None:
    """``MalformedFile`` unless the ``actual`` count of ``what`` is the ``expected`` one."""
    if actual != expected:
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r:.200} with dims {quote(tensor.dims)} needs {expected} {what}, found {actual}",
            tensor=tensor.name,
        )


def charge(tensor: Tensor, count: int, nbytes: int, ctx: Context) -> None:
    """Account for a tensor about to be materialised, before allocating it."""
    limit = ctx.limits.max_tensor_elements
    if count > limit:
        raise LimitExceeded(
            f"ONNX tensor {tensor.name!r} has {count} elements, over the limit of {limit}",
            tensor=tensor.name,
        )
    if nbytes > ctx.budget:
        raise LimitExceeded(
            f"reading ONNX tensor {tensor.name!r} would pass the limit of "
            f"{ctx.limits.max_total_bytes} bytes read in all",
            tensor=tensor.name,
        )
    ctx.budget -= nbytes
