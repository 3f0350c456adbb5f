"""Read the weights and recurrent nodes of an ONNX model, without the ``onnx`` package.

An ``.onnx`` file is one protobuf ``ModelProto`` (``onnx/onnx.proto``). The fields read::

    ModelProto      ir_version=1  producer_name=2  graph=7  opset_import=8 {domain=1, version=2}
    GraphProto      node=1  initializer=5  sparse_initializer=15
    NodeProto       input=1  output=2  name=3  op_type=4  attribute=5  domain=7
    AttributeProto  name=1  f=2  i=3  s=4  t=5  floats=7  ints=8  strings=9  type=20
    TensorProto     dims=1  data_type=2  float_data=4  int32_data=5  int64_data=7  name=8
                    raw_data=9  double_data=10  uint64_data=11  external_data=13 {key=1, value=2}
                    data_location=14

A tensor's values sit in exactly one place: ``raw_data`` (little-endian), the typed
field of its data type (``float16`` / ``bfloat16`` bits travel in ``int32_data``), or a
side file named by ``external_data["location"]`` at ``offset`` / ``length``. A side file
is read only if it was uploaded with the model (matched by base name); the path in the
model is never opened.

Contract: :func:`read` returns every initializer and every ``Constant`` node's value as a
named array in its stored dtype (bfloat16 widened exactly to float32, with a note), and
in ``attrs["nodes"]`` every ``LSTM``, ``GRU`` and ``RNN`` node of the main graph with its
inputs (``""`` for an absent optional input) and attributes. Only the main graph is read:
the subgraphs of ``If`` / ``Loop`` / ``Scan`` nodes are not searched. The decoder follows
the fixed path model → graph → node → attribute → tensor and never descends into a
subgraph, so its nesting depth is bounded by construction. Tensors of a data type NumPy
cannot hold (strings, complex, 8-bit floats, ...) and sparse initializers are skipped with
a note, unless they feed a recurrent node, which is refused.
"""

from __future__ import annotations

import math
import mmap
import posixpath
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from service.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsafeInput, UnsupportedFormat
from service.formats import protobuf as pb
from service.formats.base import InputFile, Limits, WeightFile

NAME = "onnx"

#: recurrent operators reported in ``attrs["nodes"]``
RNN_OPS = frozenset({"LSTM", "GRU", "RNN"})
_DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
_CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
_EXTERNAL = 1


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


@dataclass
class _Tensor:
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
class _Header:
    """The top level of a ModelProto; ``graph`` is the GraphProto's byte range."""

    graph: slice
    ir_version: int = 0
    producer: str = ""
    opset_imports: dict[str, int] = field(default_factory=dict)


class _GraphParts(NamedTuple):
    """The byte ranges of a GraphProto's nodes, initializers and sparse initializers."""

    nodes: list[slice]
    initializers: list[slice]
    sparse: list[slice]


@dataclass
class _Node:
    index: int
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: list[slice] = field(default_factory=list)


@dataclass
class _Context:
    """What decoding one model needs besides its bytes."""

    files: Sequence[InputFile]
    limits: Limits
    rnn_inputs: frozenset[str]
    budget: int
    notes: list[str] = field(default_factory=list)
    bfloat16: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- entry points


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether one of ``files`` is an ONNX ``ModelProto``.

    The file must start with the ``ir_version`` tag (``0x08``), its top-level fields must
    parse to the end with the wire types ``ModelProto`` gives them, and it must hold a
    graph.
    """
    return any(_is_model_file(f.path) for f in files)


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read an ONNX model's initializers, ``Constant`` values and recurrent nodes.

    Parameters
    ----------
    files : sequence of InputFile
        The model, plus the side files its external data names, if any.
    limits : Limits
        Bounds on one tensor's elements and on the bytes read in all.

    Returns
    -------
    WeightFile
        ``tensors`` maps initializer / ``Constant`` output names to arrays; ``attrs`` has
        ``nodes`` (list of ``{"name", "op_type", "inputs", "outputs", "attributes"}``),
        ``opset`` (default-domain version or None), ``opset_imports``, ``ir_version`` and
        ``producer``.

    Raises
    ------
    MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded
    """
    model_file = _model_file(files)
    buf = _read_bytes(model_file, limits)
    try:
        return _read_model(buf, files, limits)
    except RnnBridgeError:
        raise
    except (IndexError, KeyError, ValueError, OverflowError, struct.error, MemoryError) as exc:
        raise MalformedFile(f"ONNX model {model_file.name!r} cannot be decoded: {exc}") from exc


def _read_model(buf: bytes, files: Sequence[InputFile], limits: Limits) -> WeightFile:
    header = _parse_model(buf)
    graph = _parse_graph(buf, header.graph)
    nodes = [_parse_node(buf, sl, index) for index, sl in enumerate(graph.nodes)]
    rnn_nodes = [n for n in nodes if n.op_type in RNN_OPS and n.domain in _DEFAULT_DOMAINS]
    ctx = _Context(
        files,
        limits,
        rnn_inputs=frozenset(name for n in rnn_nodes for name in n.inputs if name),
        budget=limits.max_total_bytes,
    )
    tensors = _read_tensors(buf, graph, nodes, ctx)
    _note_subgraphs(nodes, ctx)
    opsets = header.opset_imports
    attrs = {
        "nodes": [_node_record(buf, n, ctx) for n in rnn_nodes],
        "opset": opsets.get("", opsets.get("ai.onnx")),
        "opset_imports": opsets,
        "ir_version": header.ir_version,
        "producer": header.producer,
    }
    return WeightFile(format=NAME, tensors=tensors, attrs=attrs, notes=ctx.notes, bfloat16=ctx.bfloat16)


# --------------------------------------------------------------------------- files


def _is_model_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x08":
                return False
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                header = _parse_model(mm)
    except (OSError, ValueError, RnnBridgeError):
        return False
    return 1 <= header.ir_version <= 100


def _model_file(files: Sequence[InputFile]) -> InputFile:
    """The upload's one model: the file that sniffs as ONNX, else the one file that at
    least starts like a ModelProto (so a damaged model is reported as malformed)."""
    models = [f for f in files if _is_model_file(f.path)]
    if not models:
        models = [f for f in files if _starts_like_model(f.path)]
    if len(models) == 1:
        return models[0]
    if models:
        names = ", ".join(repr(f.name) for f in models)
        raise UnsupportedFormat(
            f"the upload holds {len(models)} ONNX models ({names}); send one model and its data files"
        )
    names = ", ".join(repr(f.name) for f in files)
    raise UnsupportedFormat(f"none of the uploaded files ({names}) is an ONNX model")


def _starts_like_model(path: Path) -> bool:
    """Whether a file opens with a ModelProto ``ir_version`` field of a plausible value."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(11)
        number, wire, value = next(pb.iter_fields(head, 0, len(head)))
    except (OSError, StopIteration, RnnBridgeError):
        return False
    return (number, wire) == (1, pb.VARINT) and isinstance(value, int) and 1 <= value <= 100


def _read_bytes(upload: InputFile, limits: Limits) -> bytes:
    size = upload.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(
            f"ONNX model {upload.name!r} has {size} bytes, over the limit of {limits.max_total_bytes}"
        )
    with open(upload.path, "rb") as fh:
        return fh.read()


# --------------------------------------------------------------------------- messages


def _parse_model(buf: Any) -> _Header:
    """The top level of a ModelProto; unknown fields are skipped, known ones checked."""
    header = _Header(graph=slice(0, 0))
    graphs = 0
    for number, wire, value in pb.iter_fields(buf):
        if number in (1, 5):
            value = pb.expect_varint(wire, value, f"ModelProto field {number}")
            if number == 1:
                header.ir_version = pb.as_int64(value)
        elif number in (2, 3, 4, 6, 7, 8, 14, 20, 25, 26):
            value = pb.expect_bytes(wire, value, f"ModelProto field {number}")
            if number == 2:
                header.producer = pb.as_text(buf, value, "ModelProto.producer_name")
            elif number == 7:
                header.graph, graphs = value, graphs + 1
            elif number == 8:
                domain, version = _parse_opset(buf, value)
                header.opset_imports[domain] = version
    if graphs != 1:
        raise MalformedFile(f"ONNX: the ModelProto has {graphs} graphs, not one")
    return header


def _parse_opset(buf: Any, sl: slice) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            value = pb.expect_bytes(wire, value, "OperatorSetIdProto.domain")
            domain = pb.as_text(buf, value, "OperatorSetIdProto.domain")
        elif number == 2:
            value = pb.expect_varint(wire, value, "OperatorSetIdProto.version")
            version = pb.as_int64(value)
    return domain, version


def _parse_graph(buf: bytes, sl: slice) -> _GraphParts:
    parts = _GraphParts([], [], [])
    where = {1: parts.nodes, 5: parts.initializers, 15: parts.sparse}
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number in where:
            value = pb.expect_bytes(wire, value, f"GraphProto field {number}")
            where[number].append(value)
    return parts


def _parse_node(buf: bytes, sl: slice, index: int) -> _Node:
    node = _Node(index)
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number not in (1, 2, 3, 4, 5, 7):
            continue
        where = pb.expect_bytes(wire, value, f"NodeProto field {number}")
        if number == 5:
            node.attributes.append(where)
            continue
        text = pb.as_text(buf, where, f"NodeProto field {number}")
        if number == 1:
            node.inputs.append(text)
        elif number == 2:
            node.outputs.append(text)
        elif number == 3:
            node.name = text
        elif number == 4:
            node.op_type = text
        else:
            node.domain = text
    return node


def _node_record(buf: bytes, node: _Node, ctx: _Context) -> dict[str, Any]:
    name = node.name or f"{node.op_type}_{node.index}"
    attributes = dict(_parse_attribute(buf, sl, name, ctx) for sl in node.attributes)
    return {
        "name": name,
        "op_type": node.op_type,
        "inputs": node.inputs,
        "outputs": node.outputs,
        "attributes": attributes,
    }


def _note_subgraphs(nodes: list[_Node], ctx: _Context) -> None:
    count = sum(n.op_type in _CONTROL_FLOW_OPS and n.domain in _DEFAULT_DOMAINS for n in nodes)
    if count:
        ctx.notes.append(
            f"Only the main ONNX graph was read; the subgraphs of {count} If/Loop/Scan node(s) "
            "were not searched for recurrent nodes."
        )


# --------------------------------------------------------------------------- attributes

# AttributeProto.type → the field holding its value; types not listed are given as None
_ATTRIBUTE_FIELDS = {1: 2, 2: 3, 3: 4, 4: 5, 6: 7, 7: 8, 8: 9}
_REPEATED_FIELDS = frozenset({7, 8, 9})
_SCALAR_DEFAULTS: dict[int, Any] = {2: 0.0, 3: 0, 4: "", 5: None}


def _parse_attribute(buf: bytes, sl: slice, owner: str, ctx: _Context) -> tuple[str, Any]:
    """An AttributeProto as ``(name, python value)``.

    Graph, sparse-tensor and type-proto attributes (no recurrent node has one) are given
    as ``None``. A tensor attribute is decoded under the name ``owner``.
    """
    name, kind, fields = _attribute_fields(buf, sl)
    slot: int | None
    if kind:
        slot = _ATTRIBUTE_FIELDS.get(kind)
    else:  # IR version 1 had no `type`: the one value field present says it
        slot = next((n for n in (2, 3, 4, 5, 7, 8, 9) if n in fields), None)
    if slot is None:
        return name, None
    what = f"attribute {name!r} of {owner!r}"
    values = [
        v
        for wire, value in fields.get(slot, [])
        for v in _attribute_values(buf, slot, wire, value, what, owner, ctx)
    ]
    if slot in _REPEATED_FIELDS:
        return name, values
    return name, values[-1] if values else _SCALAR_DEFAULTS[slot]


def _attribute_fields(buf: bytes, sl: slice) -> tuple[str, int, dict[int, list[tuple[int, pb.FieldValue]]]]:
    """An AttributeProto's name, type and value fields (by field number), undecoded."""
    name, kind = "", 0
    fields: dict[int, list[tuple[int, pb.FieldValue]]] = {}
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            name = pb.as_text(buf, pb.expect_bytes(wire, value, "AttributeProto.name"), "AttributeProto.name")
        elif number == 20:
            kind = pb.as_int64(pb.expect_varint(wire, value, "AttributeProto.type"))
        else:
            fields.setdefault(number, []).append((wire, value))
    return name, kind, fields


def _attribute_values(
    buf: bytes, number: int, wire: int, value: pb.FieldValue, what: str, owner: str, ctx: _Context
) -> list[Any]:
    if number in (2, 7):  # f, floats: I32 each, or `floats` packed in one LEN
        if wire == pb.LEN and number == 7:
            return list(pb.packed_fixed(buf, pb.expect_bytes(wire, value, what), "<f4").tolist())
        value = pb.expect_bytes(wire, value, what, pb.I32)
        return [pb.as_float(buf, value)]
    if number in (3, 8):  # i, ints: VARINT each, or `ints` packed in one LEN
        if wire == pb.LEN and number == 8:
            return _ints(buf, wire, value, what)
        value = pb.expect_varint(wire, value, what)
        return [pb.as_int64(value)]
    value = pb.expect_bytes(wire, value, what)
    if number == 5:
        return [_decode_tensor(buf, value, ctx, name=owner)[1]]
    return [pb.as_text(buf, value, what)]


# --------------------------------------------------------------------------- tensors


def _read_tensors(buf: bytes, graph: _GraphParts, nodes: list[_Node], ctx: _Context) -> dict[str, np.ndarray]:
    found: list[tuple[str, np.ndarray | None]] = [_decode_tensor(buf, sl, ctx) for sl in graph.initializers]
    found += [
        _constant_value(buf, node, ctx)
        for node in nodes
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS
    ]
    for sl in graph.sparse:
        _skip_sparse(buf, sl, ctx)
    tensors: dict[str, np.ndarray] = {}
    for name, array in found:
        if array is None:
            continue
        if name in tensors:
            raise MalformedFile(f"ONNX: the graph defines tensor {name!r} twice", tensor=name)
        tensors[name] = array
    return tensors


def _constant_value(buf: bytes, node: _Node, ctx: _Context) -> tuple[str, np.ndarray | None]:
    """A Constant node's output as an array; its value may be a tensor or a number / list."""
    output = node.outputs[0] if node.outputs else f"Constant_{node.index}"
    for sl in node.attributes:
        name, value = _parse_attribute(buf, sl, output, ctx)
        if name == "value" and value is not None:
            return output, value
        if name in ("value_float", "value_floats"):
            return output, np.asarray(value, dtype=np.float32)
        if name in ("value_int", "value_ints"):
            return output, np.asarray(value, dtype=np.int64)
    _skip(f"the value of Constant node {node.name or output!r} is of a kind that is not read", output, ctx)
    return output, None


def _skip_sparse(buf: bytes, sl: slice, ctx: _Context) -> None:
    name = ""
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            value = pb.expect_bytes(wire, value, "SparseTensorProto.values")
            name = _parse_tensor(buf, value).name
    _skip(f"sparse initializer {name!r} is not read (sparse tensors are not supported)", name, ctx)


def _skip(reason: str, name: str, ctx: _Context) -> None:
    """Note a tensor that is not read, or refuse it if a recurrent node needs it."""
    if name in ctx.rnn_inputs:
        raise UnsupportedFormat(f"ONNX: {reason}, and it feeds a recurrent node", tensor=name)
    ctx.notes.append(f"ONNX: {reason}.")


def _parse_tensor(buf: bytes, sl: slice) -> _Tensor:
    tensor = _Tensor()
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            tensor.dims += _ints(buf, wire, value, "TensorProto.dims")
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


def _tensor_len_field(buf: bytes, tensor: _Tensor, number: int, value: slice) -> None:
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


def _ints(buf: bytes, wire: int, value: pb.FieldValue, what: str) -> list[int]:
    """A repeated int64 field's values: one VARINT, or a packed run of them."""
    if wire == pb.LEN:
        run = pb.packed_varint_array(buf, pb.expect_bytes(wire, value, what))
        return [int(v) for v in run.view(np.int64)]
    return [pb.as_int64(pb.expect_varint(wire, value, what))]


def _decode_tensor(buf: bytes, sl: slice, ctx: _Context, name: str = "") -> tuple[str, np.ndarray | None]:
    """A TensorProto as ``(name, array)``, the name being ``name`` if given, else the
    tensor's own; the array is None for a data type that is not read."""
    tensor = _parse_tensor(buf, sl)
    tensor.name = name or tensor.name
    if not tensor.name:
        raise MalformedFile(f"ONNX: the tensor at byte {sl.start} has no name")
    kind = _DATA_TYPES.get(tensor.data_type)
    if kind is None:
        label = _UNREAD_TYPES.get(tensor.data_type, f"number {tensor.data_type}")
        _skip(f"tensor {tensor.name!r} has data type {label}, which is not read", tensor.name, ctx)
        return tensor.name, None
    if tensor.segmented:
        raise UnsupportedFormat(
            f"ONNX: tensor {tensor.name!r} is segmented, which is not supported", tensor=tensor.name
        )
    flat = _tensor_values(buf, tensor, kind, ctx)
    return tensor.name, _finish(flat, tensor, kind, ctx).reshape(tensor.dims)


def _tensor_values(buf: bytes, tensor: _Tensor, kind: _DataType, ctx: _Context) -> np.ndarray:
    count = _element_count(tensor)
    stored = np.dtype(kind.stored)
    sources = (tensor.location == _EXTERNAL) + (tensor.raw is not None) + bool(tensor.typed)
    if sources > 1:
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} stores its values in more than one place", tensor=tensor.name
        )
    if tensor.location == _EXTERNAL:
        data = _external_bytes(tensor, count, stored.itemsize, ctx)
        return np.frombuffer(data, dtype=stored).astype(stored.newbyteorder("="))
    if tensor.raw is not None:
        _check_size(tensor, tensor.raw.stop - tensor.raw.start, count * stored.itemsize, "raw_data bytes")
        _charge(tensor, count, count * stored.itemsize, ctx)
        return pb.packed_fixed(buf, tensor.raw, stored)
    return _typed_values(buf, tensor, kind, count, ctx)


def _element_count(tensor: _Tensor) -> int:
    if tensor.location not in (0, _EXTERNAL):
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} has unknown data_location {tensor.location}", tensor=tensor.name
        )
    if any(d < 0 for d in tensor.dims):
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} has a negative dimension in {tensor.dims}", tensor=tensor.name
        )
    return math.prod(tensor.dims)


def _check_size(tensor: _Tensor, actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise MalformedFile(
            f"ONNX: tensor {tensor.name!r} with dims {tensor.dims} needs {expected} {what}, found {actual}",
            tensor=tensor.name,
        )


def _charge(tensor: _Tensor, count: int, nbytes: int, ctx: _Context) -> None:
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


def _typed_values(buf: bytes, tensor: _Tensor, kind: _DataType, count: int, ctx: _Context) -> np.ndarray:
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
    _check_size(tensor, flat.size, count, f"values in field {kind.field}")
    _charge(tensor, count, count * np.dtype(kind.stored).itemsize, ctx)
    return _narrow(flat, tensor, kind)


def _float_values(
    buf: bytes,
    tensor: _Tensor,
    items: list[tuple[int, pb.FieldValue]],
    dtype: np.dtype,
    count: int,
    ctx: _Context,
) -> np.ndarray:
    """``float_data`` / ``double_data``: packed runs or one I32 / I64 field per value."""
    one = pb.I32 if dtype.itemsize == 4 else pb.I64
    runs = []
    for wire, value in items:
        if wire not in (pb.LEN, one) or not isinstance(value, slice):
            raise MalformedFile(
                f"ONNX: tensor {tensor.name!r} has a value of wire type {wire}", tensor=tensor.name
            )
        runs.append(value)
    found = sum((run.stop - run.start) // dtype.itemsize for run in runs)
    _check_size(tensor, found, count, "float values")
    _charge(tensor, count, count * dtype.itemsize, ctx)
    parts = [pb.packed_fixed(buf, run, dtype) for run in runs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype.newbyteorder("="))


def _varints(buf: bytes, wire: int, value: pb.FieldValue, tensor: _Tensor) -> np.ndarray:
    what = f"a value of tensor {tensor.name!r}"
    if wire == pb.LEN:
        return pb.packed_varint_array(buf, pb.expect_bytes(wire, value, what))
    return np.array([pb.expect_varint(wire, value, what)], dtype=np.uint64)


def _narrow(values: np.ndarray, tensor: _Tensor, kind: _DataType) -> np.ndarray:
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


def _finish(flat: np.ndarray, tensor: _Tensor, kind: _DataType, ctx: _Context) -> np.ndarray:
    if kind.name == "BOOL":
        return flat.astype(bool)
    if kind.name == "BFLOAT16":
        ctx.notes.append(f"ONNX tensor {tensor.name!r} is bfloat16; it was widened exactly to float32.")
        ctx.bfloat16.add(tensor.name)
        return (flat.astype(np.uint32) << 16).view(np.float32)
    return flat


# --------------------------------------------------------------------------- external data

_DRIVE = re.compile(r"^[A-Za-z]:")
_DIGITS = re.compile(r"[0-9]+")


def _external_bytes(tensor: _Tensor, count: int, itemsize: int, ctx: _Context) -> bytes:
    """The bytes of an external-data tensor, from an uploaded side file only."""
    nbytes = count * itemsize
    upload = _side_file(tensor, ctx.files)
    offset = _external_int(tensor, "offset", 0)
    length = _external_int(tensor, "length", nbytes)
    _check_size(tensor, length, nbytes, "bytes of external data (length)")
    size = upload.path.stat().st_size
    if offset + nbytes > size:
        raise MalformedFile(
            f"ONNX: external data of tensor {tensor.name!r} spans bytes [{offset}, {offset + nbytes}) "
            f"of {upload.name!r}, which has {size} bytes",
            tensor=tensor.name,
        )
    _charge(tensor, count, nbytes, ctx)
    with open(upload.path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(nbytes)
    _check_size(tensor, len(data), nbytes, f"bytes of {upload.name!r} from offset {offset}")
    return data


def _side_file(tensor: _Tensor, files: Sequence[InputFile]) -> InputFile:
    """The uploaded file a ``location`` names; anything else is refused unopened."""
    location = tensor.external.get("location", "")
    parts = location.replace("\\", "/").split("/")
    unsafe = (
        not location or "\x00" in location or location[0] in "/\\~" or _DRIVE.match(location) or ".." in parts
    )
    wanted = "" if unsafe else posixpath.basename(posixpath.normpath("/".join(parts)))
    for upload in files:
        if wanted and posixpath.basename(upload.name.replace("\\", "/")) == wanted:
            return upload
    raise UnsafeInput(
        f"ONNX: tensor {tensor.name!r} keeps its data at {location!r}, which is not a file of this upload; "
        "upload the model's external data files with it",
        code="external_data_outside_upload",
        tensor=tensor.name,
    )


def _external_int(tensor: _Tensor, key: str, default: int) -> int:
    text = tensor.external.get(key)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        raise MalformedFile(
            f"ONNX: external data {key} {text!r} of tensor {tensor.name!r} is not a byte count",
            tensor=tensor.name,
        )
    return int(text)
