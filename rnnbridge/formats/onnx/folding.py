"""Fold the constant-only subgraphs that compute a recurrent node's W / R / B / P.

Exporters do not always store a recurrent node's weights as initializers: some build
``W`` as ``Concat(Unsqueeze(w_fw), Unsqueeze(w_bw))``, cast a double constant, slice a
packed buffer, transpose and reshape. When every leaf of such a subgraph is a constant
(an initializer or a ``Constant``), :func:`fold_inputs` evaluates it with NumPy, exactly
as ONNX defines each operator, and returns the value under the input's name.

Operators (default domain, every opset the shapes of their inputs and attributes allow)::

    Identity  Cast  Reshape  Transpose  Squeeze  Unsqueeze  Concat  Slice  Flatten

Bounds: at most ``MAX_NODES`` nodes are evaluated per model; every result is charged to
the read budget (``tensor_proto.charge``: elements per tensor, bytes in all) before it is
allocated, so a crafted graph (a ``Concat`` of one input ten thousand times) stops at the
limits. A node of another operator, or an input that no constant reaches, stops folding
that weight; the layer is then refused by discovery with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rnnbridge.errors import MalformedFile
from rnnbridge.formats.onnx.graph import DEFAULT_DOMAINS, Node, node_record
from rnnbridge.formats.onnx.tensor_proto import Context, Tensor, charge

MAX_NODES = 256
#: which inputs of a recurrent node are weights (W, R, B; LSTM's P)
WEIGHT_SLOTS = (1, 2, 3, 7)

#: ONNX TensorProto.DataType -> NumPy dtype, for Cast
_CAST_TYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}


class _NotConstant(Exception):
    """The value depends on something that is not a constant, or on an unknown operator."""


def fold_inputs(
    buf: bytes,
    nodes: Sequence[Node],
    rnn_nodes: Sequence[Node],
    tensors: Mapping[str, np.ndarray],
    ctx: Context,
) -> dict[str, np.ndarray]:
    """The weights of ``rnn_nodes`` that constant-only subgraphs compute, by name."""
    producers = {output: node for node in nodes for output in node.outputs if output}
    folder = _Folder(buf, producers, tensors, ctx)
    folded: dict[str, np.ndarray] = {}
    for rnn in rnn_nodes:
        for slot in WEIGHT_SLOTS:
            name = rnn.inputs[slot] if slot < len(rnn.inputs) else ""
            if not name or name in tensors or name in folded or name not in producers:
                continue
            try:
                folded[name] = folder.value(name)
            except _NotConstant:
                continue
            ops = ", ".join(sorted(folder.used_ops))
            ctx.notes.append(f"ONNX: {name!r} of node {rnn.name or rnn.op_type!r} was folded from constants ({ops}).")
    return folded


class _Folder:
    def __init__(self, buf: bytes, producers: dict[str, Node], tensors: Mapping[str, np.ndarray], ctx: Context):
        self.buf, self.producers, self.tensors, self.ctx = buf, producers, tensors, ctx
        self.memo: dict[str, np.ndarray] = {}
        self.evaluated = 0
        self.used_ops: set[str] = set()

    def value(self, name: str) -> np.ndarray:
        """The value of ``name``, evaluating its producers depth first (no recursion)."""
        stack = [name]
        while stack:
            top = stack[-1]
            if top in self.tensors or top in self.memo:
                stack.pop()
                continue
            node = self.producers.get(top)
            if node is None or node.op_type not in _OPS or node.domain not in DEFAULT_DOMAINS:
                raise _NotConstant(top)
            missing = [i for i in node.inputs if i and i not in self.tensors and i not in self.memo]
            if missing:
                if len(stack) > MAX_NODES:
                    raise _NotConstant(top)
                stack += missing
                continue
            self._evaluate(node)
            stack.pop()
        return self.tensors[name] if name in self.tensors else self.memo[name]

    def _evaluate(self, node: Node) -> None:
        self.evaluated += 1
        if self.evaluated > MAX_NODES:
            raise _NotConstant(node.op_type)
        record = node_record(self.buf, node, self.ctx)
        inputs = [None if not i else self.tensors.get(i, self.memo.get(i)) for i in node.inputs]
        try:
            result = _OPS[node.op_type](inputs, record["attributes"], self._charger(node))
        except (ValueError, IndexError, TypeError) as exc:
            raise MalformedFile(
                f"ONNX: constant node {record['name']!r} ({node.op_type}) cannot be computed: {exc}"
            ) from None
        self.used_ops.add(node.op_type)
        self.memo[node.outputs[0]] = result

    def _charger(self, node: Node) -> Callable[[tuple[int, ...], np.dtype], None]:
        def charged(shape: tuple[int, ...], dtype: np.dtype) -> None:
            count = math.prod(shape)
            charge(Tensor(name=node.outputs[0]), count, count * np.dtype(dtype).itemsize, self.ctx)

        return charged


def _axes(inputs: list, attrs: dict[str, Any], rank: int, index: int = 1) -> list[int]:
    """Axes given as an input (opset >= 13) or an attribute, made non-negative."""
    given = inputs[index] if len(inputs) > index and inputs[index] is not None else attrs.get("axes")
    axes = [int(a) for a in np.asarray(given if given is not None else [], dtype=np.int64).ravel()]
    return [a + rank if a < 0 else a for a in axes]


def _identity(inputs, attrs, charged):
    return inputs[0]


def _cast(inputs, attrs, charged):
    dtype = _CAST_TYPES.get(int(attrs.get("to", 0)))
    if dtype is None:
        raise ValueError(f"Cast to data type {attrs.get('to')} is not folded")
    charged(inputs[0].shape, dtype)
    return inputs[0].astype(dtype)


def _reshape(inputs, attrs, charged):
    data, shape = inputs[0], [int(d) for d in np.asarray(inputs[1]).ravel()]
    if not int(attrs.get("allowzero", 0)):
        shape = [data.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return data.reshape(shape)


def _transpose(inputs, attrs, charged):
    perm = attrs.get("perm") or list(range(inputs[0].ndim))[::-1]
    charged(inputs[0].shape, inputs[0].dtype)
    return np.ascontiguousarray(np.transpose(inputs[0], [int(p) for p in perm]))


def _squeeze(inputs, attrs, charged):
    axes = _axes(inputs, attrs, inputs[0].ndim)
    return np.squeeze(inputs[0], axis=tuple(axes)) if axes else np.squeeze(inputs[0])


def _unsqueeze(inputs, attrs, charged):
    data, given = inputs[0], _axes(inputs, attrs, 0)
    rank = data.ndim + len(given)
    for axis in sorted(a + rank if a < 0 else a for a in given):
        data = np.expand_dims(data, axis)
    return data


def _concat(inputs, attrs, charged):
    parts = [p for p in inputs if p is not None]
    shape = list(parts[0].shape)
    axis = int(attrs["axis"]) % len(shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    charged(tuple(shape), np.result_type(*parts))
    return np.concatenate(parts, axis=axis)


def _slice(inputs, attrs, charged):
    data = inputs[0]
    if len(inputs) > 1:  # opset >= 10: starts, ends, axes, steps are inputs
        starts, ends = (np.asarray(v, dtype=np.int64).ravel() for v in inputs[1:3])
        axes = _axes(inputs, {}, data.ndim, 3) or list(range(len(starts)))
        steps = np.asarray(inputs[4]).ravel() if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = np.asarray(attrs["starts"]), np.asarray(attrs["ends"])
        axes = _axes([], attrs, data.ndim) or list(range(len(starts)))
        steps = [1] * len(starts)
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[axis] = slice(int(start), int(np.clip(end, -(2**62), 2**62)), int(step))
    result = data[tuple(index)]
    charged(result.shape, result.dtype)
    return np.ascontiguousarray(result)


def _flatten(inputs, attrs, charged):
    data = inputs[0]
    axis = int(attrs.get("axis", 1)) % (data.ndim + 1) if data.ndim else 0
    return data.reshape(math.prod(data.shape[:axis]), -1)


_OPS = {
    "Identity": _identity,
    "Cast": _cast,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Slice": _slice,
    "Flatten": _flatten,
}
