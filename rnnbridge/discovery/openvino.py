"""OpenVINO ``LSTMSequence`` / ``GRUSequence`` ops of an IR (``attrs["openvino_nodes"]``).

Each op is one layer of one level: its W, R, B constants carry the directions on their first
axis (index 0 forward, 1 backward; ``direction="reverse"`` has one, backward). The op's
``<data>`` gives the variant: ``direction``, ``linear_before_reset``, ``activations``
(OpenVINO's names: ``sigmoid``, ``tanh``, ``relu``), ``clip`` (0: none). A
``linear_before_reset`` GRU's B [D, 4H] = [z, r, Wb_h, Rb_h] is cut into ``B`` [3H] and
``Rb_h`` [H] per direction (views).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, RELU, SIGMOID, TANH
from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

_DIRECTIONS: dict[str, tuple[Direction, ...]] = {
    "forward": ("forward",),
    "reverse": ("backward",),
    "bidirectional": ("forward", "backward"),
}
_ACTIVATIONS = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}


def find_openvino(weights: WeightFile, **_: object) -> Found:
    found = Found()
    used: set[str] = set()
    for node in weights.attrs.get("openvino_nodes", []):
        found.layers.append(_layer(node, weights.tensors))
        used.update(node["inputs"].values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _layer(node: dict[str, Any], tensors: dict[str, np.ndarray]) -> NativeLayer:
    attrs, name = node["attributes"], node["name"]
    lstm = node["op_type"] == "LSTMSequence"
    lbr = not lstm and attrs.get("linear_before_reset", "false").lower() in ("true", "1")
    conv = CONVENTIONS["openvino.lstm" if lstm else "openvino.gru_lbr" if lbr else "openvino.gru"]
    directions = _DIRECTIONS.get(attrs.get("direction", "forward"))
    if directions is None:
        raise MalformedFile(f"op {name!r} has direction {attrs.get('direction')!r:.40}", layer=name)
    arrays = {role: tensors[const] for role, const in node["inputs"].items()}
    for role, array in arrays.items():
        if array.ndim < 2 or array.shape[0] != len(directions):
            raise MalformedFile(f"op {name!r}: {role} should have {len(directions)} direction(s) first", layer=name)
    cells: dict[tuple[int, Direction], dict[str, np.ndarray]] = {}
    origin = {}
    for d, direction in enumerate(directions):
        cell = {role: array[d] for role, array in arrays.items()}
        if lbr:
            units = cell["B"].shape[0] // 4
            cell["B"], cell["Rb_h"] = cell["B"][: 3 * units], cell["B"][3 * units :]
        cells[(0, direction)] = cell
        origin.update({(0, direction, role): node["inputs"]["B" if role == "Rb_h" else role] for role in cell})
    count = 3 if lstm else 2
    names = [a.strip().lower() for a in attrs.get("activations", "").split(",") if a.strip()]
    activations = tuple(_ACTIVATIONS.get(a, a) for a in names[:count]) or (
        (SIGMOID, TANH, TANH) if lstm else (SIGMOID, TANH)
    )
    clip = float(attrs.get("clip", "0") or 0)
    config = LayerConfig(activations, clip=clip if clip > 0 else None)
    return NativeLayer(name, conv, config, cells, origin=origin)
