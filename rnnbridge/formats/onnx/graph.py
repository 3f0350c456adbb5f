"""The messages of an ONNX model above its tensors: model, graph, nodes and attributes.

Fields read (``onnx/onnx.proto``)::

    ModelProto      ir_version=1  producer_name=2  graph=7  opset_import=8 {domain=1, version=2}
                    metadata_props=14 {key=1, value=2}
    GraphProto      node=1  initializer=5  input=11 {name=1}  sparse_initializer=15
    NodeProto       input=1  output=2  name=3  op_type=4  attribute=5  domain=7
    AttributeProto  name=1  f=2  i=3  s=4  t=5  g=6  floats=7  ints=8  strings=9
                    graphs=11  type=20

The walk follows the path model → graph → node → attribute → tensor; :func:`walk_graphs`
also enters the subgraphs (``g`` / ``graphs`` attributes) of ``If`` / ``Loop`` / ``Scan``
nodes, at most ``MAX_SUBGRAPH_DEPTH`` deep, and gathers their nodes and initializers with
the main graph's (ONNX names are unique across a model's graphs). :func:`read_tensors`
collects the initializers and the values of ``Constant`` nodes; sparse initializers are
skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile
from rnnbridge.formats.onnx.tensor_proto import Context, ints, parse_tensor, skip
from rnnbridge.formats.onnx.tensor_values import decode_tensor
from rnnbridge.formats.wire import protobuf as pb

DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass
class Header:
    """The top level of a ModelProto; ``graph`` is the GraphProto's byte range."""

    graph: slice
    ir_version: int = 0
    producer: str = ""
    opset_imports: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


#: the most nodes, initializers and sparse initializers of a graph (a large exported model has
#: ~10**4 nodes; each costs a few hundred bytes of Python and ~10 us to decode, so the bound
#: keeps the graph under ~40 MB of objects and about a second of decoding)
MAX_GRAPH_ENTRIES = 2**16
#: the most fields (inputs, outputs, attributes, names) of one node
MAX_NODE_FIELDS = 2**14


class GraphParts(NamedTuple):
    """The byte ranges of a GraphProto's nodes, initializers and sparse initializers, and
    the names of its inputs that no initializer gives a value (fed at run time)."""

    nodes: list[slice]
    initializers: list[slice]
    sparse: list[slice]
    inputs: list[str]


#: how deep the subgraphs of control-flow nodes are searched (an If in a Loop in a Scan ...)
MAX_SUBGRAPH_DEPTH = 8


@dataclass
class Node:
    """A NodeProto: position in the graph, names, and the byte ranges of its attributes."""

    index: int
    op_type: str = ""
    domain: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: list[slice] = field(default_factory=list)


def parse_model(buf: Any) -> Header:
    """The top level of a ModelProto; unknown fields are skipped, known ones checked
    (``MAX_NODE_FIELDS`` opset imports and metadata entries at most)."""
    header = Header(graph=slice(0, 0))
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
            elif number == 14:
                key, text = _parse_entry(buf, value)
                header.metadata[key] = text
            if len(header.metadata) + len(header.opset_imports) > MAX_NODE_FIELDS:
                raise LimitExceeded(f"ONNX: the model has more than {MAX_NODE_FIELDS} opsets and metadata entries")
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


def _parse_entry(buf: Any, sl: slice) -> tuple[str, str]:
    """A ``StringStringEntryProto`` (``metadata_props``) as ``(key, value)``."""
    texts = {1: "", 2: ""}
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number in texts:
            texts[number] = pb.as_text(buf, pb.expect_bytes(wire, value, "metadata_props"), "metadata_props")
    return texts[1], texts[2]


def parse_graph(buf: bytes, sl: slice) -> GraphParts:
    """The byte ranges of the GraphProto's nodes and (sparse) initializers, and its inputs
    (``MAX_GRAPH_ENTRIES`` in all, ``LimitExceeded`` past them)."""
    parts = GraphParts([], [], [], [])
    where = {1: parts.nodes, 5: parts.initializers, 15: parts.sparse}
    entries = 0
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number in where:
            value = pb.expect_bytes(wire, value, f"GraphProto field {number}")
            where[number].append(value)
        elif number == 11:
            value = pb.expect_bytes(wire, value, "GraphProto.input")
            for n, w, v in pb.iter_fields(buf, value.start, value.stop):
                if n == 1:
                    parts.inputs.append(pb.as_text(buf, pb.expect_bytes(w, v, "ValueInfoProto.name"), "input name"))
        else:
            continue
        entries += 1
        if entries > MAX_GRAPH_ENTRIES:
            raise LimitExceeded(f"ONNX: the graph has more than {MAX_GRAPH_ENTRIES} nodes, initializers and inputs")
    return parts


def walk_graphs(buf: bytes, sl: slice) -> tuple[GraphParts, int]:
    """The main graph's parts with those of every control-flow subgraph appended, and how
    many subgraphs there were. Deeper than ``MAX_SUBGRAPH_DEPTH`` is ``MalformedFile``; more
    than ``MAX_GRAPH_ENTRIES`` entries and subgraphs over all the graphs is ``LimitExceeded``
    (the bound of one graph holds for the model, however its entries are spread over subgraphs)."""
    merged = GraphParts([], [], [], [])
    pending, count = [(sl, 0)], -1
    while pending:
        graph_slice, depth = pending.pop()
        if depth > MAX_SUBGRAPH_DEPTH:
            raise MalformedFile(f"ONNX: subgraphs nested more than {MAX_SUBGRAPH_DEPTH} deep")
        parts = parse_graph(buf, graph_slice)
        count += 1
        total = count + sum(len(entries) for entries in (*merged, *parts))
        if total > MAX_GRAPH_ENTRIES:
            raise LimitExceeded(
                f"ONNX: the graph and its subgraphs have more than {MAX_GRAPH_ENTRIES} nodes, initializers and inputs"
            )
        merged.nodes.extend(parts.nodes)
        merged.initializers.extend(parts.initializers)
        merged.sparse.extend(parts.sparse)
        merged.inputs.extend(parts.inputs)
        for node_slice in parts.nodes:
            pending += [(sub, depth + 1) for sub in _subgraphs(buf, node_slice)]
            if count + len(pending) > MAX_GRAPH_ENTRIES:
                raise LimitExceeded(f"ONNX: the model has more than {MAX_GRAPH_ENTRIES} subgraphs")
    return merged, count


def _subgraphs(buf: bytes, sl: slice) -> list[slice]:
    """The GraphProtos held by a NodeProto's attributes (``g`` = 6, ``graphs`` = 11), at
    most ``MAX_NODE_FIELDS`` fields of the node and graphs of an attribute."""
    found: list[slice] = []
    for count, (number, wire, value) in enumerate(pb.iter_fields(buf, sl.start, sl.stop)):
        if count >= MAX_NODE_FIELDS or len(found) > MAX_NODE_FIELDS:
            raise LimitExceeded(f"ONNX: a node has more than {MAX_NODE_FIELDS} fields or subgraphs")
        if number != 5:
            continue
        attribute = pb.expect_bytes(wire, value, "NodeProto.attribute")
        for n, w, v in pb.iter_fields(buf, attribute.start, attribute.stop):
            if n in (6, 11):
                found.append(pb.expect_bytes(w, v, "AttributeProto graph"))
    return found


def parse_node(buf: bytes, sl: slice, index: int) -> Node:
    """A NodeProto's names and attribute ranges (``MAX_NODE_FIELDS``); attributes are decoded on demand."""
    node = Node(index)
    for count, (number, wire, value) in enumerate(pb.iter_fields(buf, sl.start, sl.stop)):
        if count >= MAX_NODE_FIELDS:
            raise LimitExceeded(f"ONNX: node {index} has more than {MAX_NODE_FIELDS} fields")
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


def node_record(buf: bytes, node: Node, ctx: Context) -> dict[str, Any]:
    """The ``attrs["nodes"]`` entry of a node, with its attributes decoded."""
    name = node.name or f"{node.op_type}_{node.index}"
    attributes = dict(_parse_attribute(buf, sl, name, ctx) for sl in node.attributes)
    return {
        "name": name,
        "op_type": node.op_type,
        "inputs": node.inputs,
        "outputs": node.outputs,
        "attributes": attributes,
    }


def note_subgraphs(subgraphs: int, ctx: Context) -> None:
    """Say that the subgraphs of control-flow nodes were searched too."""
    if subgraphs:
        ctx.notes.append(
            f"ONNX: the {subgraphs} subgraph(s) of If/Loop/Scan nodes were searched for recurrent nodes too."
        )


# AttributeProto.type → the field holding its value; types not listed are given as None
_ATTRIBUTE_FIELDS = {1: 2, 2: 3, 3: 4, 4: 5, 6: 7, 7: 8, 8: 9}

_REPEATED_FIELDS = frozenset({7, 8, 9})

_SCALAR_DEFAULTS: dict[int, Any] = {2: 0.0, 3: 0, 4: "", 5: None}


def _parse_attribute(buf: bytes, sl: slice, owner: str, ctx: Context) -> tuple[str, Any]:
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
        v for wire, value in fields.get(slot, []) for v in _attribute_values(buf, slot, wire, value, what, owner, ctx)
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
    buf: bytes, number: int, wire: int, value: pb.FieldValue, what: str, owner: str, ctx: Context
) -> list[Any]:
    if number in (2, 7):  # f, floats: I32 each, or `floats` packed in one LEN
        if wire == pb.LEN and number == 7:
            return list(pb.packed_fixed(buf, pb.expect_bytes(wire, value, what), "<f4").tolist())
        value = pb.expect_bytes(wire, value, what, pb.I32)
        return [pb.as_float(buf, value)]
    if number in (3, 8):  # i, ints: VARINT each, or `ints` packed in one LEN
        if wire == pb.LEN and number == 8:
            return ints(buf, wire, value, what)
        value = pb.expect_varint(wire, value, what)
        return [pb.as_int64(value)]
    value = pb.expect_bytes(wire, value, what)
    if number == 5:
        return [decode_tensor(buf, value, ctx, name=owner)[1]]
    return [pb.as_text(buf, value, what)]


def read_tensors(buf: bytes, graph: GraphParts, nodes: list[Node], ctx: Context) -> dict[str, np.ndarray]:
    """The initializers and ``Constant`` values of the graph, by name (unread types left out)."""
    found: list[tuple[str, np.ndarray | None]] = [decode_tensor(buf, sl, ctx) for sl in graph.initializers]
    found += [
        _constant_value(buf, node, ctx)
        for node in nodes
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS
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


def _constant_value(buf: bytes, node: Node, ctx: Context) -> tuple[str, np.ndarray | None]:
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
    skip(f"the value of Constant node {node.name or output!r} is of a kind that is not read", output, ctx)
    return output, None


def _skip_sparse(buf: bytes, sl: slice, ctx: Context) -> None:
    name = ""
    for number, wire, value in pb.iter_fields(buf, sl.start, sl.stop):
        if number == 1:
            value = pb.expect_bytes(wire, value, "SparseTensorProto.values")
            name = parse_tensor(buf, value).name
    skip(f"sparse initializer {name!r} is not read (sparse tensors are not supported)", name, ctx)
