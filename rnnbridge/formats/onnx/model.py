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
in ``attrs["nodes"]`` every ``LSTM``, ``GRU`` and ``RNN`` node of the graph and of the
subgraphs of its ``If`` / ``Loop`` / ``Scan`` nodes (at most ``MAX_SUBGRAPH_DEPTH`` deep)
with its inputs (``""`` for an absent optional input) and attributes. A recurrent node's
weight computed from constants only (``Constant``, ``Unsqueeze``, ``Concat``, ``Slice``,
``Cast``, ...) is folded by a small bounded evaluator (``onnx.folding``) and returned
under its name; ``attrs["graph_inputs"]`` lists the graph inputs that no initializer
gives a value (weights fed at run time are not in the file). Tensors of a data type NumPy
cannot hold (strings, complex, 8-bit floats, ...) and sparse initializers are skipped with
a note, unless they feed a recurrent node, which is refused.

This module finds the model file and assembles the result; ``onnx_graph`` walks the
model, graph, node and attribute messages, ``onnx_tensor_proto`` / ``onnx_tensor_values``
decode TensorProtos and ``onnx_external_data`` reads side files.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from pathlib import Path

from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.onnx.folding import fold_inputs
from rnnbridge.formats.onnx.graph import (
    DEFAULT_DOMAINS,
    node_record,
    note_subgraphs,
    parse_model,
    parse_node,
    read_tensors,
    walk_graphs,
)
from rnnbridge.formats.onnx.tensor_proto import Context
from rnnbridge.formats.wire import protobuf as pb

NAME = "onnx"

#: recurrent operators reported in ``attrs["nodes"]``
RNN_OPS = frozenset({"LSTM", "GRU", "RNN"})


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
    header = parse_model(buf)
    graph, subgraphs = walk_graphs(buf, header.graph)
    nodes = [parse_node(buf, sl, index) for index, sl in enumerate(graph.nodes)]
    rnn_nodes = [n for n in nodes if n.op_type in RNN_OPS and n.domain in DEFAULT_DOMAINS]
    ctx = Context(
        files,
        limits,
        rnn_inputs=frozenset(name for n in rnn_nodes for name in n.inputs if name),
        budget=limits.max_total_bytes,
    )
    tensors = read_tensors(buf, graph, nodes, ctx)
    tensors.update(fold_inputs(buf, nodes, rnn_nodes, tensors, ctx))
    note_subgraphs(subgraphs, ctx)
    opsets = header.opset_imports
    attrs = {
        "nodes": [node_record(buf, n, ctx) for n in rnn_nodes],
        "graph_inputs": [name for name in graph.inputs if name not in tensors],
        "opset": opsets.get("", opsets.get("ai.onnx")),
        "opset_imports": opsets,
        "ir_version": header.ir_version,
        "producer": header.producer,
        "metadata": header.metadata,
    }
    return WeightFile(format=NAME, tensors=tensors, attrs=attrs, notes=ctx.notes, bfloat16=ctx.bfloat16)


def _is_model_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            if fh.read(1) != b"\x08":
                return False
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                header = parse_model(mm)
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
        raise LimitExceeded(f"ONNX model {upload.name!r} has {size} bytes, over the limit of {limits.max_total_bytes}")
    with open(upload.path, "rb") as fh:
        return fh.read()
