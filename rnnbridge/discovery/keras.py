"""Keras layers in every layout Keras has written, found by their weight paths.

All layouts end a recurrent weight's path with the cell's ``kernel``, ``recurrent_kernel``
and ``bias`` (Keras 3 ``.weights.h5`` numbers them ``cell/vars/0, 1, 2``)::

    Keras 2 / tf.keras h5   [model_weights/]lstm/lstm/lstm_cell/kernel:0
    Bidirectional           bidi/bidi/forward_lstm/lstm_cell/kernel:0     (backward_lstm/...)
    standalone Keras 2.x    lstm_1/lstm_1/kernel:0
    Keras 3 .weights.h5     layers/lstm/cell/vars/0            (forward_layer/cell/vars/0 ...)
    Keras 3 legacy .h5      model_weights/lstm/lstm/lstm_cell/kernel
    TF2 object checkpoint   layer_with_weights-0/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE
    Keras 2 SavedModel      variables/0/.ATTRIBUTES/VARIABLE_VALUE   (named through the object graph)

The cell kind and variant come from the shapes: ``recurrent_kernel`` [H, 4H] is an LSTM,
[H, 3H] a GRU; the bias tells plain from cuDNN and the two GRU variants (LSTM [4H] vs
CuDNNLSTM [8H]; GRU [3H] reset-before, [2, 3H] reset-after, CuDNNGRU [6H]), exactly as
Keras' own loader decides. The model config, where the file has one, gives the user's
layer names, activations and ``go_backwards``; without one, the layer's path is its name.

A SavedModel's bundle keys cell weights by their index in the model's flat variable list;
they are renamed through the checkpoint's object graph (``attrs["object_graph"]``, see
``object_graph``) or, where the reader did not supply it, listed as unsupported. Optimizer
slots, ``save_counter`` and other bookkeeping end in no cell role and are left alone.
Recurrent layers that are not LSTM or GRU (SimpleRNN, ConvLSTM, cells with extra weights
such as layer normalisation or peepholes) are listed as unsupported with the reason.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.discovery.object_graph import structured_keys
from rnnbridge.engine.conventions import CONVENTIONS, TANH
from rnnbridge.engine.facts import Assumption, KerasDefaults, keras_activation, keras_defaults, stated_form
from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.formats.base import WeightFile

_ROLES = ("kernel", "recurrent_kernel", "bias")
_STRIP = re.compile(r"(:\d+|/\.ATTRIBUTES/VARIABLE_VALUE)$")
_INDEXED = re.compile(r"^variables/\d+/\.ATTRIBUTES/VARIABLE_VALUE$")


@dataclass
class _Group:
    path: str
    cells: dict[Direction, dict[str, str]] = field(default_factory=dict)  # direction -> role -> tensor name
    duplicate: bool = False
    extra: list[str] = field(default_factory=list)  # other weights of the same cell (layer norm, peepholes)


def find_keras(
    weights: WeightFile, *, direction: str | None = None, reset_after: bool | None = None, **_: object
) -> Found:
    """Keras layers of ``weights``; ``direction="reverse"`` marks single-direction layers as
    ``go_backwards`` and ``reset_after`` settles bias-less GRUs, where the file has no config."""
    found = Found()
    configs: dict[str, dict[str, Any]] = {}
    for name, layer_config in _layer_configs(weights.attrs.get("model_config")):
        configs.setdefault(name, layer_config)  # outer layers first: a wrapper wins over its inner layer
    major = _keras_major(weights.attrs)
    defaults = keras_defaults(_keras_version(weights.attrs))
    tensors, file_names = _object_keys(weights, found)
    used: set[str] = set()
    for group in _groups(tensors):
        name = _layer_name(group.path, weights.attrs)
        config = configs.get(name)
        if direction == "reverse" and config is None:
            config = {"config": {"go_backwards": True}}
        layer = _layer(name, group, tensors, config, (major, defaults), reset_after, found)
        if layer is not None and config is None and direction is None and len(layer.cells) == 1:
            layer.config = layer.config.with_(assumed=layer.config.assumed + (_FORWARD,))
        if layer is not None:
            layer.origin = {key: file_names.get(t, t) for key, t in layer.origin.items()}
            found.layers.append(layer)
            used.update(layer.origin.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _object_keys(weights: WeightFile, found: Found) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors under structured names, and ``{structured name: name in the file}``.

    Only SavedModel-style keys (``variables/{k}/...``) are renamed; without the object
    graph they cannot be grouped into layers, and ``found`` says so.
    """
    indexed = [name for name in weights.tensors if _INDEXED.match(name)]
    if not indexed:
        return dict(weights.tensors), {}
    graph = weights.attrs.get("object_graph")
    if not isinstance(graph, (bytes, bytearray, memoryview)):
        found.refuse(
            "variables",
            "SavedModel variables",
            f"{len(indexed)} variables are stored by their index in the model (variables/0 ...) and "
            "the checkpoint's object graph, which says which layer each belongs to, was not read; "
            "upload weights saved with save_weights (TF format or .h5) instead",
        )
        return dict(weights.tensors), {}
    renames = {old: new for old, new in structured_keys(bytes(graph)).items() if old in indexed}
    tensors = {renames.get(name, name): array for name, array in weights.tensors.items()}
    return tensors, {new: old for old, new in renames.items()}


def _groups(tensors: Mapping[str, np.ndarray]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for name in tensors:
        parsed = _parse(name)
        if parsed is None:
            continue
        path, direction, role = parsed
        group = groups.setdefault(path, _Group(path))
        if role not in _ROLES:
            group.extra.append(name)
            continue
        cell = group.cells.setdefault(direction, {})
        group.duplicate |= role in cell
        cell[role] = name
    return [g for g in groups.values() if any("recurrent_kernel" in c for c in g.cells.values())]


def _parse(name: str) -> tuple[str, Direction, str] | None:
    """``(layer path, direction, role)`` of a weight path, or None if it is no cell weight.

    A weight inside a cell scope that is no cell role (a layer-norm ``gamma``, a peephole
    vector) comes back with its own name as the role, so that the cell can be refused.
    """
    segments = _STRIP.sub("", name).split("/")
    if segments[0] == "model_weights":
        segments = segments[1:]
    if ".OPTIMIZER_SLOT" in segments:
        return None
    if len(segments) >= 3 and segments[-2] == "vars" and segments[-1].isdigit():
        index = int(segments[-1])
        if segments[-3] != "cell":
            return None
        role = _ROLES[index] if index < len(_ROLES) else f"vars/{index}"
        segments = segments[:-3]
    else:
        at = _cell_scope(segments)
        if at is None:
            role, segments = segments[-1], segments[:-1]
            if role not in _ROLES:
                return None
        else:
            role, segments = "/".join(segments[at + 1 :]), segments[:at]
    direction: Direction = "forward"
    if segments and segments[-1].startswith(("forward_", "backward_")):
        direction = "forward" if segments[-1].startswith("forward_") else "backward"
        segments = segments[:-1]
    return "/".join(segments), direction, role


def _cell_scope(segments: list[str]) -> int | None:
    """Index of the cell scope (``cell``, ``lstm_cell``, ...) a weight sits in, if any."""
    for i in range(len(segments) - 2, -1, -1):
        if segments[i] == "cell" or segments[i].endswith("_cell"):
            return i
    return None


def _layer_name(path: str, attrs: Mapping[str, Any]) -> str:
    names = attrs.get("layer_names") or {}
    if isinstance(names, dict) and path in names:
        return str(names[path])
    segments = path.split("/")
    return segments[-1] if segments[-1] else path


def _layer(
    name: str,
    group: _Group,
    tensors: Mapping[str, np.ndarray],
    config: dict[str, Any] | None,
    version: tuple[int, KerasDefaults],
    reset_after: bool | None,
    found: Found,
) -> NativeLayer | None:
    if group.duplicate:
        found.refuse(name, "stacked cells", "several cells share one layer (StackedRNNCells); not supported")
        return None
    if group.extra:
        found.refuse(
            name,
            "cell with extra weights",
            f"the cell holds weights beyond kernel, recurrent_kernel and bias ({', '.join(sorted(group.extra)[:3])}): "
            "a layer-normalised or peephole cell computes another function; not converted",
        )
        return None
    cell_config = _cell_config(config)
    first = next(iter(group.cells.values()))
    major, defaults = version
    variant_assumed = reset_after is None and "reset_after" not in cell_config and "bias" not in first
    if variant_assumed:
        reset_after = defaults.reset_after
    key = _convention(name, {r: tensors[t] for r, t in first.items()}, cell_config, reset_after, found)
    if key is None:
        return None
    conv = CONVENTIONS[key]
    directions = dict(group.cells)
    if cell_config.get("go_backwards") and set(directions) == {"forward"}:
        directions = {"backward": directions["forward"]}
    cells = {(0, d): {role: tensors[t] for role, t in roles.items()} for d, roles in directions.items()}
    origin = {(0, d, role): t for d, roles in directions.items() for role, t in roles.items()}
    config_ = _config(conv.cell, cell_config, major, defaults)
    if variant_assumed and conv.cell == "gru":
        because = f"a GRU without bias does not show its variant; {defaults.because}"
        config_ = config_.with_(assumed=config_.assumed + (Assumption("reset_after", reset_after, because),))
    layer = NativeLayer(name, conv, config_, cells, origin=origin)
    if cell_config.get("go_backwards") and len(directions) == 1:
        layer.notes.append(
            "go_backwards=True: one backward direction (Keras returns its outputs in reversed time order)"
        )
    return layer


def _convention(
    name: str, weights: Mapping[str, np.ndarray], config: Mapping[str, Any], reset_after: bool | None, found: Found
) -> str | None:
    rk = weights["recurrent_kernel"]
    if rk.ndim != 2:
        found.refuse(
            name,
            "ConvLSTM/ConvGRU",
            f"recurrent_kernel has {rk.ndim} dimensions: convolutional recurrent layers are not converted",
        )
        return None
    units, width = rk.shape
    gates = width // units if units and width % units == 0 else 0
    bias = weights.get("bias")
    blen = None if bias is None else bias.shape
    if gates == 4:
        return "keras.cudnn_lstm" if blen == (8 * units,) else "keras.lstm"
    if gates == 3:
        if blen == (6 * units,):
            return "keras.cudnn_gru"
        if blen is not None:
            return "keras.gru_reset_after" if len(blen) == 2 else "keras.gru"
        after = config.get("reset_after", reset_after)
        return "keras.gru" if after is False else "keras.gru_reset_after"
    if gates == 1:
        found.refuse(name, "SimpleRNN", "a SimpleRNN has no gates to convert; rnnbridge converts LSTM and GRU layers")
        return None
    found.refuse(
        name,
        "unknown recurrent cell",
        f"recurrent_kernel of shape {list(rk.shape)} is neither an LSTM's [H, 4H] nor a GRU's [H, 3H]",
    )
    return None


def _config(cell: str, config: Mapping[str, Any], major: int, defaults: KerasDefaults) -> LayerConfig:
    if not config or not ({"activation", "recurrent_activation"} & config.keys()):
        names = (defaults.gate, TANH, TANH) if cell == "lstm" else (defaults.gate, TANH)
        because = f"the file has no layer configuration; {defaults.because}"
        assumed = Assumption("activations", stated_form(names), because, defaults.ambiguous)
        return LayerConfig(names, assumed=(assumed,))
    gate = keras_activation(config.get("recurrent_activation", "sigmoid"), major)
    act = keras_activation(config.get("activation", "tanh"), major)
    return LayerConfig((gate, act, act) if cell == "lstm" else (gate, act))


def _cell_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings of the recurrent cell inside a layer config (LSTM, Bidirectional, RNN(cell))."""
    if not config:
        return {}
    body = config.get("config", {})
    if config.get("class_name") == "Bidirectional":
        inner = body.get("layer", {})
        return _cell_config(inner) if isinstance(inner, dict) else {}
    cell = body.get("cell")
    merged = dict(body)
    if isinstance(cell, dict) and isinstance(cell.get("config"), dict):
        merged.update(cell["config"])
    return merged


def _layer_configs(model_config: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``{"class_name", "config": {"name", ...}}`` in a model config, outer layers first."""
    queue = deque([model_config])
    while queue:
        node = queue.popleft()
        if isinstance(node, dict):
            body = node.get("config")
            if "class_name" in node and isinstance(body, dict) and isinstance(body.get("name"), str):
                yield body["name"], node
            queue.extend(node.values())
        elif isinstance(node, list):
            queue.extend(node)


#: a weights-only file does not record ``go_backwards``; Keras's default is False
_FORWARD = Assumption(
    "direction", "forward", "a weights-only file does not record go_backwards; Keras's default go_backwards=False"
)


def _keras_version(attrs: Mapping[str, Any]) -> str | None:
    version = attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if version:
        return str(version)
    return "3" if attrs.get("layout") == "keras3" else None


def _keras_major(attrs: Mapping[str, Any]) -> int:
    version = str(attrs.get("keras_version") or "")
    if version[:1].isdigit():
        return int(version.split(".")[0])
    return 3 if attrs.get("layout") == "keras3" else 2
