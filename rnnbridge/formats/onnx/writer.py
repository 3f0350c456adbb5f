"""Write a ``/convert`` result for ONNX as a self-contained model onnxruntime runs as it is.

The model (opset ``OPSET``, IR version ``IR_VERSION``) holds, per converted layer, one
``LSTM`` / ``GRU`` node per level with the layer's ``W``, ``R``, ``B`` (and ``P``) as
initializers under their result names (``{layer}/l{k}/W``), levels chained by the
reshape a bidirectional level needs::

    X [T, B, I] ─► LSTM l0 ─► Y_0 [T, D, B, H] ─► Transpose(0, 2, 1, 3) ─► Reshape [T, B, D·H] ─► LSTM l1 ─► ...

    graph inputs   X          [T, B, I]      (``layout=0``: time-major)
                   initial_h  [L·D, B, H]    level-major, direction-minor (PyTorch's h0)
                   initial_c  [L·D, B, H]    LSTM only
    graph outputs  Y          [T, D, B, H]   the last level's ``Y``, as ONNX gives it
                   Y_h        [L·D, B, H]    every level's final hidden state
                   Y_c        [L·D, B, H]    LSTM only

Level k reads rows ``[k·D, (k+1)·D)`` of the initial states (a ``Slice``); the final
states of all levels are concatenated in the same order. A result of several layers puts
each layer's network side by side in the one graph, its inputs and outputs named
``{layer}/X``, ``{layer}/Y``, ... . Node attributes are exact: ``hidden_size``,
``direction``, ``activations`` in ONNX's names with ``activation_alpha`` /
``activation_beta`` where a function takes them, ``clip``, ``input_forget``,
``linear_before_reset``, ``layout``. The metadata JSON of the result travels in the
model's ``metadata_props`` under ``"rnnbridge"``, so that rnnbridge reads the file back
with no ``source``.

The bytes are written with rnnbridge's own protobuf encoder (``wire.encoder``): the
``onnx`` package is far too large a dependency for writing one flat graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from rnnbridge.errors import InvalidField
from rnnbridge.formats.meta import dumps
from rnnbridge.formats.wire import encoder as pb

#: LSTM-14 / GRU-14 (which added ``layout``), Slice-13, Reshape-14, Transpose-13, Concat-13
#: the target framework whose layers this writer writes
TARGET = "onnx"
OPSET = 14
#: the IR version released with opset 14 (ONNX 1.9)
IR_VERSION = 7
METADATA_KEY = "rnnbridge"
#: protobuf's limit on one message: a larger model needs ONNX external data
MAX_MODEL_BYTES = 2**31

_DATA_TYPES = {np.dtype("float32"): 1, np.dtype("float16"): 10, np.dtype("float64"): 11}
_INT64 = 7
# AttributeProto.type
_FLOAT, _INT, _STRING, _FLOATS, _INTS, _STRINGS = 1, 2, 3, 6, 7, 8

_SIMPLE = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
_PARAMETRISED = re.compile(r"^(?P<name>[A-Za-z_]+)\((?P<params>[^()]*)\)$")
_ONNX_NAMES = {"hard_sigmoid": "HardSigmoid"}
_DIRECTION = {("forward",): "forward", ("backward",): "reverse", ("forward", "backward"): "bidirectional"}


#: a piece of the encoded model: message bytes, or an array's own memory (never copied)
Chunk = bytes | memoryview


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write the ONNX layers of a ``/convert`` result (``meta["target"] == "onnx"``) as one model.

    The weights go to ``stream`` from the arrays' own memory: the encoder lays out the
    small messages around them and never copies a tensor.
    """
    if meta.get("target") != TARGET:
        raise InvalidField("format=onnx writes ONNX models: use it with target=onnx", field="format")
    meta_json = dumps(meta)
    layers = meta["layers"]
    graph = _Graph()
    for layer in layers:
        _add_layer(graph, arrays, layer, prefix="" if len(layers) == 1 else f"{layer['name']}/")
    chunks = model_chunks(graph.encode("rnnbridge"), meta_json)
    if _size(chunks) >= MAX_MODEL_BYTES:
        raise InvalidField(
            "the weights make an ONNX model of 2 GiB or more, which protobuf cannot parse without external "
            "data (not written here): convert to npz or safetensors instead",
            field="format",
        )
    for chunk in chunks:
        stream.write(chunk)


def model_chunks(graph: list[Chunk], meta_json: str) -> list[Chunk]:
    """A ModelProto around an encoded GraphProto, with rnnbridge's metadata."""
    opset = pb.field_text(1, "") + pb.field_varint(2, OPSET)
    entry = pb.field_text(1, METADATA_KEY) + pb.field_text(2, meta_json)
    head = pb.field_varint(1, IR_VERSION) + pb.field_text(2, "rnnbridge") + pb.field_head(7, _size(graph))
    return [head, *graph, pb.field_bytes(8, opset) + pb.field_bytes(14, entry)]


def _size(chunks: list[Chunk]) -> int:
    return sum(memoryview(c).nbytes for c in chunks)


class _Graph:
    """The fields of a GraphProto, gathered as encoded messages."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.initializers: list[list[Chunk]] = []
        self.inputs: list[bytes] = []
        self.outputs: list[bytes] = []

    def encode(self, name: str) -> list[Chunk]:
        chunks: list[Chunk] = [b"".join(pb.field_bytes(1, n) for n in self.nodes) + pb.field_text(2, name)]
        for tensor in self.initializers:
            chunks += [pb.field_head(5, _size(tensor)), *tensor]
        chunks.append(
            b"".join(pb.field_bytes(11, v) for v in self.inputs) + b"".join(pb.field_bytes(12, v) for v in self.outputs)
        )
        return chunks

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, attributes: Sequence[bytes] = ()) -> None:
        while inputs and not inputs[-1]:
            inputs = inputs[:-1]  # trailing optional inputs are left out
        fields = [pb.field_text(1, i) for i in inputs] + [pb.field_text(2, o) for o in outputs]
        fields += [pb.field_text(3, name), pb.field_text(4, op)] + [pb.field_bytes(5, a) for a in attributes]
        self.nodes.append(b"".join(fields))

    def initializer(self, name: str, array: np.ndarray) -> None:
        self.initializers.append(tensor_proto(name, array))

    def constant(self, name: str, values: list[int]) -> str:
        self.initializer(name, np.asarray(values, dtype=np.int64))
        return name


def tensor_proto(name: str, array: np.ndarray) -> list[Chunk]:
    """A TensorProto with the values in ``raw_data`` (little-endian, C order): its header,
    then the array's memory itself (copied only if it is not C-ordered little-endian)."""
    array = np.asarray(array)
    data_type = _INT64 if array.dtype == np.int64 else _DATA_TYPES.get(array.dtype)
    if data_type is None:
        raise InvalidField(f"ONNX RNN weights cannot be {array.dtype} (float16, float32 or float64)", field="format")
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
    head = pb.packed_varints(1, array.shape) + pb.field_varint(2, data_type) + pb.field_text(8, name)
    return [head + pb.field_head(9, raw.nbytes), memoryview(raw.data)]


def value_info(name: str, dtype: np.dtype, dims: list[int | str]) -> bytes:
    """A ValueInfoProto of a tensor: element type and dims (ints, or names of symbolic ones)."""
    shape = b"".join(
        pb.field_bytes(1, pb.field_varint(1, d) if isinstance(d, int) else pb.field_text(2, d)) for d in dims
    )
    tensor_type = pb.field_varint(1, _DATA_TYPES[np.dtype(dtype)]) + pb.field_bytes(2, shape)
    return pb.field_text(1, name) + pb.field_bytes(2, pb.field_bytes(1, tensor_type))


def _add_layer(graph: _Graph, arrays: Mapping[str, np.ndarray], layer: Mapping[str, Any], prefix: str) -> None:
    target = layer["target"]
    start, levels, directions = target["names_start"], int(target["num_layers"]), tuple(target["directions"])
    op = "LSTM" if target["convention"] == "onnx.lstm" else "GRU"
    weights = [{slot: arrays.get(f"{start}l{k}/{slot}") for slot in "WRBP"} for k in range(levels)]
    w0, r0 = arrays[f"{start}l0/W"], arrays[f"{start}l0/R"]
    dtype, hidden, inputs = w0.dtype, r0.shape[-1], w0.shape[-1]
    d = len(directions)
    states = ["initial_h", "initial_c"] if op == "LSTM" else ["initial_h"]
    graph.inputs.append(value_info(f"{prefix}X", dtype, ["seq_length", "batch_size", inputs]))
    for state in states:
        graph.inputs.append(value_info(f"{prefix}{state}", dtype, [levels * d, "batch_size", hidden]))
    attributes = _attributes(op, target, hidden, directions)
    x = f"{prefix}X"
    finals: dict[str, list[str]] = {state: [] for state in states}
    for k, w in enumerate(weights):
        here = f"{start}l{k}/"
        for slot, array in w.items():
            if array is not None:
                graph.initializer(f"{here}{slot}", array)
        level_states = [_level_state(graph, f"{prefix}{s}", here + s, k, d, levels) for s in states]
        outputs = [f"{here}Y", f"{here}Y_h"] + ([f"{here}Y_c"] if op == "LSTM" else [])
        node_inputs = [x] + [f"{here}{s}" if w[s] is not None else "" for s in "WRB"] + [""] + level_states
        if op == "LSTM":
            node_inputs.append(f"{here}P" if w["P"] is not None else "")
        graph.node(op, node_inputs, outputs, f"{layer['name']}/l{k}", attributes)
        for state, out in zip(states, outputs[1:]):
            finals[state].append(out)
        if k + 1 < levels:
            x = _flatten_directions(graph, f"{here}Y", here)
    _graph_outputs(graph, prefix, f"{start}l{levels - 1}/Y", finals, dtype, (levels * d, hidden, d))


def _level_state(graph: _Graph, state: str, name: str, level: int, d: int, levels: int) -> str:
    """The rows of the initial state ``state`` that level ``level`` reads."""
    if levels == 1:
        return state
    starts = graph.constant(f"{name}/starts", [level * d])
    ends = graph.constant(f"{name}/ends", [(level + 1) * d])
    axes = graph.constant(f"{name}/axes", [0])
    graph.node("Slice", [state, starts, ends, axes], [name], name)
    return name


def _flatten_directions(graph: _Graph, y: str, here: str) -> str:
    """``Y`` [T, D, B, H] as the next level's input [T, B, D·H]."""
    graph.node("Transpose", [y], [f"{here}Y_tbdh"], f"{here}Transpose", [_ints("perm", [0, 2, 1, 3])])
    shape = graph.constant(f"{here}Y_shape", [0, 0, -1])
    graph.node("Reshape", [f"{here}Y_tbdh", shape], [f"{here}Y_flat"], f"{here}Reshape")
    return f"{here}Y_flat"


def _graph_outputs(
    graph: _Graph, prefix: str, y: str, finals: dict[str, list[str]], dtype: np.dtype, sizes: tuple[int, int, int]
) -> None:
    rows, hidden, d = sizes
    graph.node("Identity", [y], [f"{prefix}Y"], f"{prefix}Y")
    graph.outputs.append(value_info(f"{prefix}Y", dtype, ["seq_length", d, "batch_size", hidden]))
    for state, parts in finals.items():
        name = f"{prefix}Y_{state[-1]}"
        if len(parts) == 1:
            graph.node("Identity", parts, [name], name)
        else:
            graph.node("Concat", parts, [name], name, [_int("axis", 0)])
        graph.outputs.append(value_info(name, dtype, [rows, "batch_size", hidden]))


def _attributes(op: str, target: Mapping[str, Any], hidden: int, directions: tuple[str, ...]) -> list[bytes]:
    config = target["config"]
    names, alphas, betas = onnx_activations(config["activations"])
    attributes = [
        _int("hidden_size", hidden),
        _string("direction", _DIRECTION[directions]),
        _strings("activations", names * len(directions)),
        _int("layout", 0),
    ]
    if alphas:
        attributes.append(_floats("activation_alpha", alphas * len(directions)))
    if betas:
        attributes.append(_floats("activation_beta", betas * len(directions)))
    if config.get("clip") is not None:
        attributes.append(_float("clip", float(config["clip"])))
    if op == "LSTM":
        attributes.append(_int("input_forget", int(bool(config.get("input_forget")))))
    else:
        attributes.append(_int("linear_before_reset", int(target["convention"] == "onnx.gru_lbr")))
    return attributes


def onnx_activations(canonical: list[str]) -> tuple[list[str], list[float], list[float]]:
    """ONNX names and the ``activation_alpha`` / ``activation_beta`` lists of canonical activations.

    >>> onnx_activations(["hard_sigmoid(0.2,0.5)", "tanh", "linear"])
    (['HardSigmoid', 'Tanh', 'Affine'], [0.2, 1.0], [0.5, 0.0])
    """
    names: list[str] = []
    alphas: list[float] = []
    betas: list[float] = []
    for activation in canonical:
        if activation in _SIMPLE:
            names.append(_SIMPLE[activation])
            continue
        if activation == "linear":
            names.append("Affine")
            alphas.append(1.0)
            betas.append(0.0)
            continue
        match = _PARAMETRISED.match(activation)
        if match is None:
            raise InvalidField(f"activation {activation!r} has no ONNX equivalent", code="activation_unsupported")
        names.append(_ONNX_NAMES.get(match["name"], match["name"]))
        params = [float(p) for p in match["params"].split(",") if p]
        if params:
            alphas.append(params[0])
        if len(params) > 1:
            betas.append(params[1])
    return names, alphas, betas


def _attribute(name: str, kind: int, value: bytes) -> bytes:
    return pb.field_text(1, name) + value + pb.field_varint(20, kind)


def _int(name: str, value: int) -> bytes:
    return _attribute(name, _INT, pb.field_varint(3, value))


def _float(name: str, value: float) -> bytes:
    return _attribute(name, _FLOAT, pb.field_float(2, value))


def _string(name: str, value: str) -> bytes:
    return _attribute(name, _STRING, pb.field_text(4, value))


def _ints(name: str, values: list[int]) -> bytes:
    return _attribute(name, _INTS, pb.packed_varints(8, values))


def _floats(name: str, values: list[float]) -> bytes:
    return _attribute(name, _FLOATS, pb.packed_floats(7, values))


def _strings(name: str, values: list[str]) -> bytes:
    return _attribute(name, _STRINGS, b"".join(pb.field_text(9, v) for v in values))
