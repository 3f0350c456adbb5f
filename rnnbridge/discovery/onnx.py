"""ONNX ``LSTM``/``GRU`` nodes, or bare ``W``/``R``/``B``/``P`` arrays.

A node's weights are the initializers its inputs name (W = input 1, R = 2, B = 3, P = 7),
with the direction axis first (index 0 forward, 1 backward). Attributes give the variant:
``direction``, ``linear_before_reset``, ``activations``, ``clip``, ``input_forget``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import (
    CONVENTIONS,
    GRU_DEFAULT_ACTIVATIONS,
    LINEAR,
    LSTM_DEFAULT_ACTIVATIONS,
    RELU,
    SIGMOID,
    TANH,
)
from rnnbridge.engine.facts import Assumption, stated_form
from rnnbridge.engine.model import CellKey, Direction, LayerConfig, NativeLayer, Origin
from rnnbridge.errors import InvalidField, MalformedFile
from rnnbridge.formats.base import WeightFile

_SLOTS = {"W": 1, "R": 2, "B": 3, "P": 7}
_DIRECTIONS: dict[str, tuple[Direction, ...]] = {
    "forward": ("forward",),
    "reverse": ("backward",),
    "bidirectional": ("forward", "backward"),
}
_SIMPLE = {"Sigmoid": SIGMOID, "Tanh": TANH, "Relu": RELU}
#: (takes alpha, takes beta) of the ONNX RNN activations with parameters
_PARAMS = {
    "HardSigmoid": (True, True),
    "Affine": (True, True),
    "ScaledTanh": (True, True),
    "LeakyRelu": (True, False),
    "ThresholdedRelu": (True, False),
    "Elu": (True, False),
}


def find_onnx(
    weights: WeightFile, *, direction: str | None = None, reset_after: bool | None = None, **_: object
) -> Found:
    found = Found()
    used: set[str] = set()
    nodes = weights.attrs.get("nodes")
    bare = nodes is None
    if nodes is None:  # bare arrays (npz / JSON)
        nodes = [_bare_node(weights.tensors, direction, reset_after)]
    graph_inputs = frozenset(weights.attrs.get("graph_inputs", ()))
    for node in nodes:
        layer = _node_layer(node, weights.tensors, found, graph_inputs)
        if layer is not None and bare:
            layer.config = layer.config.with_(assumed=_bare_assumptions(layer, node))
        if layer is not None:
            found.layers.append(layer)
            used.update(layer.origin.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _bare_node(tensors: Mapping[str, np.ndarray], direction: str | None, reset_after: bool | None) -> dict[str, Any]:
    missing = [slot for slot in ("W", "R") if slot not in tensors]
    if missing:
        raise MalformedFile(f"ONNX arrays need W and R; {missing} missing (found {sorted(tensors)})")
    r = tensors["R"]
    op = "LSTM" if r.ndim == 3 and r.shape[1] == 4 * r.shape[2] else "GRU"
    attributes: dict[str, Any] = {"hidden_size": r.shape[-1]}
    attributes["direction"] = direction or ("bidirectional" if r.shape[0] == 2 else "forward")
    if reset_after is not None:
        attributes["linear_before_reset"] = int(reset_after)
    inputs = ["X"] + [slot if slot in tensors else "" for slot in ("W", "R", "B")] + ["", "", ""]
    inputs.append("P" if "P" in tensors else "")
    assumed = direction is None and r.shape[0] == 1
    return {"name": "onnx", "op_type": op, "inputs": inputs, "attributes": attributes, "direction_assumed": assumed}


_ONNX_DEFAULT = "bare arrays record no ONNX node attributes; the ONNX operator's documented default"


def _bare_assumptions(layer: NativeLayer, node: Mapping[str, Any]) -> tuple[Assumption, ...]:
    """What bare W/R/B arrays do not say and ONNX's LSTM/GRU defaults supply (listed)."""
    attributes = node["attributes"]
    assumed = [Assumption("activations", stated_form(layer.config.activations), f"{_ONNX_DEFAULT} (activations)")]
    if node.get("direction_assumed"):
        assumed.append(Assumption("direction", attributes["direction"], f"{_ONNX_DEFAULT} direction=forward"))
    if layer.convention.cell == "gru" and "linear_before_reset" not in attributes:
        assumed.append(Assumption("reset_after", False, f"{_ONNX_DEFAULT} linear_before_reset=0 (reset before)"))
    assumed.append(Assumption("clip", "none", f"{_ONNX_DEFAULT}: no clip"))
    if layer.convention.cell == "lstm":
        assumed.append(Assumption("input_forget", False, f"{_ONNX_DEFAULT} input_forget=0"))
    return tuple(assumed)


def _node_layer(
    node: Mapping[str, Any], tensors: Mapping[str, np.ndarray], found: Found, graph_inputs: frozenset[str] = frozenset()
) -> NativeLayer | None:
    name, op = node["name"], node["op_type"]
    if op not in ("LSTM", "GRU"):
        found.refuse(name, op, f"ONNX {op} is not an LSTM or GRU")
        return None
    attrs = {k: _text(v) for k, v in node.get("attributes", {}).items()}
    directions = _DIRECTIONS.get(attrs.get("direction", "forward"))
    if directions is None:
        raise MalformedFile(
            f"node {name!r}: direction {attrs.get('direction')!r} is not forward, reverse or bidirectional", layer=name
        )
    inputs = list(node["inputs"]) + [""] * 8
    origin: Origin = {}
    cells: dict[CellKey, dict[str, np.ndarray]] = {(0, d): {} for d in directions}
    for slot, index in _SLOTS.items():
        ref = inputs[index]
        if not ref:
            continue
        if ref not in tensors:
            if ref in graph_inputs:
                raise InvalidField(
                    f"node {name!r}: its weight {slot} is the graph input {ref!r}, fed at run time, so the weights "
                    "are not in the file (as in the ONNX backend test models). Send them as an npz of "
                    "W, R, B (and P), direction axis first, with source=onnx",
                    code="weights_not_in_file",
                    field="file",
                    layer=name,
                    tensor=ref,
                )
            found.refuse(
                name, op, f"input {slot} ({ref!r}) is computed by the graph from values that are not constants"
            )
            return None
        array = tensors[ref]
        if array.ndim < 1 or array.shape[0] != len(directions):
            raise MalformedFile(
                f"node {name!r}: {slot} has shape {list(array.shape)}, expected {len(directions)} direction(s) first",
                layer=name,
                tensor=ref,
            )
        for d, direction in enumerate(directions):
            cells[(0, direction)][slot] = array[d]
            origin[(0, direction, slot)] = ref
    if op == "GRU":
        key = "onnx.gru_lbr" if int(attrs.get("linear_before_reset", 0)) else "onnx.gru"
    else:
        key = "onnx.lstm"
    config = LayerConfig(
        activations=_activations(node, attrs, op, len(directions)),
        clip=float(attrs["clip"]) if attrs.get("clip") is not None else None,
        input_forget=bool(int(attrs.get("input_forget", 0))),
    )
    layer = NativeLayer(name, CONVENTIONS[key], config, cells, origin=origin)
    if int(attrs.get("layout", 0)):
        layer.notes.append("layout=1 (batch-major X/Y) does not change the weights")
    return layer


def _activations(node: Mapping[str, Any], attrs: Mapping[str, Any], op: str, num_directions: int) -> tuple[str, ...]:
    defaults = LSTM_DEFAULT_ACTIVATIONS if op == "LSTM" else GRU_DEFAULT_ACTIVATIONS
    names = attrs.get("activations")
    if not names:
        return defaults
    names = [_text(n) for n in names]
    alphas = list(attrs.get("activation_alpha") or [])
    betas = list(attrs.get("activation_beta") or [])
    per_direction = len(defaults)
    if len(names) != per_direction * num_directions:
        raise MalformedFile(
            f"node {node['name']!r}: {len(names)} activations for {num_directions} direction(s) of an {op}",
            layer=node["name"],
        )
    canonical = [_activation(n, alphas, betas) for n in names]
    first = tuple(canonical[:per_direction])
    if tuple(canonical[per_direction:]) not in ((), first):
        raise InvalidField(
            f"node {node['name']!r}: forward and reverse directions use different activations, which no "
            "other framework can express",
            code="activation_unsupported",
            layer=node["name"],
        )
    return first


def _activation(name: str, alphas: list[float], betas: list[float]) -> str:
    """Canonical name of one ONNX activation, consuming its alpha/beta from the shared lists."""
    takes_alpha, takes_beta = _PARAMS.get(name, (False, False))
    alpha = (alphas.pop(0) if alphas else None) if takes_alpha else None
    beta = (betas.pop(0) if betas else None) if takes_beta else None
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "HardSigmoid":
        return f"hard_sigmoid({_f32(0.2 if alpha is None else alpha)},{_f32(0.5 if beta is None else beta)})"
    if name == "Affine" and (alpha in (None, 1.0) and beta in (None, 0.0)):
        return LINEAR
    params = ",".join(_f32(v) for v in (alpha, beta) if v is not None)
    return f"{name}({params})"


def _f32(value: float) -> str:
    """A float32 attribute as its shortest decimal (0.2, 0.16666667)."""
    return str(np.float32(value))


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value
