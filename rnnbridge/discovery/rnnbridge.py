"""rnnbridge's own ``/convert`` output (npz or JSON with its ``__meta__``), read back.

The metadata names each layer's target convention, levels, directions and configuration,
so a converted file can be converted again (A → B → A) or inspected without ``source``.
"""

from __future__ import annotations

from typing import Any

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS
from rnnbridge.engine.model import LayerConfig, NativeLayer
from rnnbridge.engine.naming import parse_names
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile


def is_rnnbridge_output(weights: WeightFile) -> bool:
    meta = weights.attrs.get("meta")
    return isinstance(meta, dict) and isinstance(meta.get("layers"), list) and "target" in meta


def find_rnnbridge(weights: WeightFile) -> Found:
    found = Found()
    used: set[str] = set()
    for entry in weights.attrs["meta"]["layers"]:
        layer = _layer(entry, weights)
        found.layers.append(layer)
        used.update(layer.origin.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _layer(entry: dict[str, Any], weights: WeightFile) -> NativeLayer:
    try:
        target = entry["target"]
        conv = CONVENTIONS[target["convention"]]
        config = target["config"]
        layer_config = LayerConfig(
            activations=tuple(config["activations"]),
            forget_bias=float(config["forget_bias"]),
            clip=None if config["clip"] is None else float(config["clip"]),
            input_forget=bool(config["input_forget"]),
            independent_directions=bool(config["independent_directions"]),
        )
        directions = tuple(target["directions"])
        cells, origin = parse_names(
            weights.tensors, conv, str(target["names_start"]), int(target["num_layers"]), directions
        )
        name = str(entry["name"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedFile(f"the file's rnnbridge metadata is incomplete ({exc})") from None
    return NativeLayer(name, conv, layer_config, cells, origin=origin)
