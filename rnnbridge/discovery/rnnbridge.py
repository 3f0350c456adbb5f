"""rnnbridge's own outputs, read back with no ``source``: the metadata says what they hold.

The metadata JSON travels in every format rnnbridge writes: the npz member ``__meta__``,
JSON's ``"meta"``, safetensors' ``__metadata__["rnnbridge"]``, the ONNX model's
``metadata_props["rnnbridge"]`` and the TF checkpoint's scalar string tensor
``_rnnbridge_metadata``. Three kinds of output come back:

* a ``/convert`` result (``meta["target"]``): each layer's tensors are found under the
  names its ``target`` entry gives (convention, ``names_start``, levels, directions), with
  the configuration it was written with; so A → B → A is a conversion like any other;
* a TF checkpoint written by rnnbridge: its variables carry TF's own scope names, so the
  TF1 finder reads them and the metadata gives back each layer's name and configuration
  (a TF1 checkpoint does not store activations or the forget bias);
* a ``/split`` result (no ``target``): per-gate arrays ``{layer}/l{k}/{direction}/{name}``,
  edited or not, are fused again in the convention they were split from, so that
  ``/convert`` takes them to any target (and split ∘ convert is the plain conversion).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.discovery.tf1 import find_tf1
from rnnbridge.engine.canonical import check_topology, from_canonical, gate_letters
from rnnbridge.engine.conventions import CONVENTIONS
from rnnbridge.engine.model import DIRECTIONS, CellKey, Layer, LayerConfig, NativeLayer, Origin
from rnnbridge.engine.naming import parse_names
from rnnbridge.errors import MalformedFile, RnnBridgeError
from rnnbridge.formats.base import WeightFile
from rnnbridge.formats.json_arrays import loads_bounded

#: the key of rnnbridge's metadata in a file's string metadata (safetensors, ONNX, TF)
METADATA_KEY = "rnnbridge"

_CELL = re.compile(r"^l(\d+)$")


def rnnbridge_meta(weights: WeightFile) -> dict[str, Any] | None:
    """The rnnbridge metadata a file carries, or None for a file rnnbridge did not write."""
    meta = weights.attrs.get("meta")
    if meta is None:
        text = (weights.attrs.get("metadata") or {}).get(METADATA_KEY)
        if not isinstance(text, str):
            return None
        try:
            meta = loads_bounded(text, what="rnnbridge metadata")
        except RnnBridgeError:
            return None
    if isinstance(meta, dict) and isinstance(meta.get("layers"), list) and meta["layers"]:
        return meta
    return None


def is_rnnbridge_output(weights: WeightFile) -> bool:
    return rnnbridge_meta(weights) is not None


def find_rnnbridge(weights: WeightFile) -> Found:
    meta = rnnbridge_meta(weights)
    assert meta is not None, "find_rnnbridge is called on rnnbridge outputs only"
    if weights.format == "tf_checkpoint" and isinstance(meta.get("checkpoint"), dict):
        return _checkpoint_layers(weights, meta)
    found = Found()
    used: set[str] = set()
    for entry in meta["layers"]:
        try:
            layer = _layer(entry, weights) if "target" in meta else _split_layer(entry, weights)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedFile(f"the file's rnnbridge metadata is incomplete ({exc!r})") from None
        found.layers.append(layer)
        used.update(layer.origin.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _config(config: Mapping[str, Any]) -> LayerConfig:
    return LayerConfig(
        activations=tuple(str(a) for a in config["activations"]),
        forget_bias=float(config["forget_bias"]),
        clip=None if config["clip"] is None else float(config["clip"]),
        input_forget=bool(config["input_forget"]),
        independent_directions=bool(config["independent_directions"]),
    )


def _layer(entry: dict[str, Any], weights: WeightFile) -> NativeLayer:
    target = entry["target"]
    conv = CONVENTIONS[target["convention"]]
    directions = tuple(target["directions"])
    cells, origin = parse_names(
        weights.tensors, conv, str(target["names_start"]), int(target["num_layers"]), directions
    )
    if not cells:
        raise MalformedFile(f"layer {entry['name']!r}: none of its tensors is in the file", layer=str(entry["name"]))
    return NativeLayer(str(entry["name"]), conv, _config(target["config"]), cells, origin=origin)


def _checkpoint_layers(weights: WeightFile, meta: dict[str, Any]) -> Found:
    """A checkpoint rnnbridge wrote: the TF1 finder, then each layer's name and configuration."""
    found = find_tf1(weights)
    layer_of = meta["checkpoint"].get("variables", {})
    entries = {str(entry["name"]): entry for entry in meta["layers"]}
    for layer in found.layers:
        names = {layer_of.get(variable) for variable in layer.origin.values()}
        if len(names) == 1 and (name := names.pop()) in entries:
            layer.name = name
            layer.config = _config(entries[name]["target"]["config"])
    found.notes = [f"read back with the configuration rnnbridge wrote it with ({len(entries)} layer(s))"]
    return found


def _split_layer(entry: dict[str, Any], weights: WeightFile) -> NativeLayer:
    """Per-gate arrays of a ``/split`` result, fused again in the convention they came from."""
    name = str(entry["name"])
    conv = CONVENTIONS[entry["convention"]]
    transpose = entry.get("orientation") == "in_out"
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    origin: Origin = {}
    for key, array in weights.tensors.items():
        parts = key[len(name) + 1 :].split("/") if key.startswith(name + "/") else []
        match = _CELL.match(parts[0]) if len(parts) == 3 else None
        direction = next((d for d in DIRECTIONS if d == parts[1]), None) if match is not None else None
        if match is None or direction is None:
            continue
        cell = (int(match[1]), direction)
        cells.setdefault(cell, {})[parts[2]] = array.T if transpose and array.ndim == 2 else array
        origin[(cell[0], cell[1], parts[2])] = key
    if not cells:
        raise MalformedFile(f"split layer {name!r}: no per-gate array {name}/l<k>/<direction>/<name> in the file")
    for cell, gates in cells.items():
        _check_gates(name, conv.cell, cell, gates)
    config = _config(entry["config"]).with_(forget_bias=0.0)  # a split folds it into b_xf
    biases = [a for gates in cells.values() for n, a in gates.items() if n.startswith("b_")]
    has_bias = bool(entry.get("flags", {}).get("bias", True)) or any(np.any(b) for b in biases)
    layer = Layer(name, conv.cell, conv.reset_after, config, cells, has_bias=has_bias, source=conv.key)
    check_topology(layer)
    native, _ = from_canonical(layer, conv, 0.0)
    native.origin = origin
    native.notes.append(f"per-gate arrays of a split, fused again as {conv.native}")
    return native


def _check_gates(layer: str, cell_kind: str, cell: tuple[int, str], gates: dict[str, np.ndarray]) -> None:
    """Every per-gate array a cell needs is there, with one shape per part."""
    letters = gate_letters(cell_kind)
    where = f"split layer {layer!r} level {cell[0]} {cell[1]}"
    needed = [f"{part}{g}" for part in ("W_x", "W_h") for g in letters]
    missing = [n for n in needed if n not in gates]
    peepholes = [n for n in ("p_i", "p_f", "p_o") if n in gates]
    if peepholes and len(peepholes) != 3:
        missing += sorted({"p_i", "p_f", "p_o"} - set(peepholes))
    if missing:
        raise MalformedFile(f"{where}: per-gate arrays {missing} are missing", layer=layer, tensor=missing[0])
    units = gates[needed[0]].shape[0]
    for name, array in gates.items():
        part = name.rstrip("ifgorzn") if name != "W_proj" else name
        expected = {
            "W_x": (units, gates[needed[0]].shape[-1]),
            "W_h": (units, gates[f"W_h{letters[0]}"].shape[-1]),
            "b_x": (units,),
            "b_h": (units,),
            "p_": (units,),
        }.get(part)
        if name == "W_proj":
            expected = (gates[f"W_h{letters[0]}"].shape[-1], units)
        if expected is None:
            raise MalformedFile(f"{where}: {name!r} is not a per-gate array name", layer=layer, tensor=name)
        if array.shape != expected:
            raise MalformedFile(
                f"{where}: {name} has shape {list(array.shape)}, expected {list(expected)}", layer=layer, tensor=name
            )
