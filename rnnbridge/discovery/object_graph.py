"""Structured names for the variables of a TF2 object checkpoint, from its object graph.

A TF2 checkpoint (``tf.train.Checkpoint``, Keras ``save_weights`` in TF format, the
``variables/`` bundle of a SavedModel) keys each variable by *one* path through the graph
of trackable objects: the first one a breadth-first walk meets. In a Keras 2 SavedModel
that is the model's flat ``variables`` list, so a cell's kernel is stored as
``variables/0/.ATTRIBUTES/VARIABLE_VALUE`` and nothing in the key says which layer or
direction it belongs to. The bundle's ``_CHECKPOINTABLE_OBJECT_GRAPH`` entry (a
``TrackableObjectGraph`` protobuf, ``tensorflow/core/protobuf/trackable_object_graph.proto``)
lists every object with its named children and its serialised tensors::

    TrackableObjectGraph   nodes = 1 (TrackableObject, node 0 is the root)
    TrackableObject        children = 1 (ObjectReference), attributes = 2 (SerializedTensor)
    ObjectReference        node_id = 1, local_name = 2
    SerializedTensor       name = 1, full_name = 2, checkpoint_key = 3

``structured_keys`` walks that graph breadth first, as TensorFlow does, but never through
the flat lists (``variables``, ``trainable_variables``, ``keras_api``, ...), so a cell
kernel is reached as ``layer_with_weights-0/cell/kernel``: the key ``save_weights`` itself
writes for the same model.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rnnbridge.formats.wire.protobuf import LEN, as_text, expect_bytes, expect_varint, iter_fields

#: children that alias objects reachable by their own structure
FLAT_LISTS = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "trainable_weights",
        "non_trainable_weights",
        "weights",
        "keras_api",
        "signatures",
    }
)
ATTRIBUTES = "/.ATTRIBUTES/"


def structured_keys(graph: bytes) -> dict[str, str]:
    """Map each checkpoint key to the key of its shortest path that avoids flat lists.

    Parameters
    ----------
    graph : bytes
        The serialised ``TrackableObjectGraph`` (the value of ``_CHECKPOINTABLE_OBJECT_GRAPH``).

    Returns
    -------
    dict of str to str
        ``{checkpoint_key: structured_key}`` for the keys that differ, e.g.
        ``"variables/0/.ATTRIBUTES/VARIABLE_VALUE"`` ->
        ``"layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE"``.

    Raises
    ------
    MalformedFile
        If the bytes are not a well-formed protobuf message.
    """
    nodes = [
        _node(graph, value)
        for number, wire, value in iter_fields(graph)
        if number == 1 and wire == LEN and isinstance(value, slice)
    ]
    out: dict[str, str] = {}
    for node_id, path in _walk(nodes):
        for name, key in nodes[node_id]["attributes"]:
            structured = f"{path}{ATTRIBUTES}{name}"
            if path and key != structured:
                out[key] = structured
    return out


def _walk(nodes: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """``(node, path)`` for every node reachable from the root, shortest paths first."""
    if not nodes:
        return []
    seen, order, queue = {0}, [], deque([(0, "")])
    while queue:
        node_id, path = queue.popleft()
        order.append((node_id, path))
        for child, local in nodes[node_id]["children"]:
            if local in FLAT_LISTS or child in seen or not 0 <= child < len(nodes):
                continue
            seen.add(child)
            queue.append((child, f"{path}/{local}" if path else local))
    return order


def _node(buf: bytes, span: slice) -> dict[str, Any]:
    children, attributes = [], []
    for number, wire, value in iter_fields(buf, span.start, span.stop):
        if number == 1:
            children.append(_reference(buf, expect_bytes(wire, value, "object graph child")))
        elif number == 2:
            attributes.append(_tensor(buf, expect_bytes(wire, value, "object graph attribute")))
    return {"children": children, "attributes": [a for a in attributes if a[1]]}


def _reference(buf: bytes, span: slice) -> tuple[int, str]:
    node_id, local = -1, ""
    for number, wire, value in iter_fields(buf, span.start, span.stop):
        if number == 1:
            node_id = expect_varint(wire, value, "object graph node_id")
        elif number == 2:
            local = as_text(buf, expect_bytes(wire, value, "local_name"), "local_name")
    return node_id, local


def _tensor(buf: bytes, span: slice) -> tuple[str, str]:
    name = key = ""
    for number, wire, value in iter_fields(buf, span.start, span.stop):
        if number == 1:
            name = as_text(buf, expect_bytes(wire, value, "attribute name"), "attribute name")
        elif number == 3:
            key = as_text(buf, expect_bytes(wire, value, "checkpoint_key"), "checkpoint_key")
    return name, key
