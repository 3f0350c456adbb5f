"""Flax state-dict paths: a cell's parameters are ``{scope}/{dense}/{kernel|bias}``.

The set of Dense names below a scope says which cell it is: ``ii if ig io hi hf hg ho``
(linen ``LSTMCell`` / ``OptimizedLSTMCell``; NNX ``LSTMCell`` spells ``if_``), ``ir iz in hr
hz hn`` (linen ``GRUCell``), ``dense_i dense_h`` (NNX ``OptimizedLSTMCell`` when
``dense_h/kernel`` is [H, 4H], NNX ``GRUCell`` when it is [H, 3H]).

A cell is one level in one direction. Two cells make one bidirectional layer when
``nn.Bidirectional`` / ``nnx.Bidirectional`` names them (``{layer}/forward_rnn/cell`` and
``{layer}/backward_rnn/cell``), or when a linen module built them in its ``@nn.compact``
method, where they are auto-named ``{Class}_0`` and ``{Class}_1`` in one scope: such a pair
of cells of the same sizes is taken as a bidirectional layer (forward first, as
``nn.Bidirectional`` creates them), ``assumed`` lists ``directions`` and a note says so.
Flax cells take ``gate_fn`` / ``activation_fn`` arguments the file does not record: the
defaults (sigmoid, tanh) are assumed and listed.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.facts import Assumption, stated_form
from rnnbridge.engine.model import CellKey, Direction, LayerConfig, NativeLayer
from rnnbridge.formats.base import WeightFile

_DENSES = {
    "flax.lstm": {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"},
    "flax.nnx_lstm": {"ii", "if_", "ig", "io", "hi", "hf", "hg", "ho"},
    "flax.gru": {"ir", "iz", "in", "hr", "hz", "hn"},
}
_FUSED = {4: "flax.nnx_optimized_lstm", 3: "flax.nnx_gru"}
_AUTO = re.compile(r"^(?P<scope>(?:.*/)?)(?P<cls>[A-Za-z]+Cell)_(?P<k>[01])\Z", re.DOTALL)
_PAIR = re.compile(r"^(?P<layer>.*?)/?(?P<side>forward|backward)_rnn/cell\Z", re.DOTALL)

Cell = tuple[str, dict[str, str]]  # (convention key, tensor name -> file key)


def find_flax(weights: WeightFile, *, direction: str | None = None, **_: object) -> Found:
    """Flax cells of ``weights``, grouped into layers (see the module docstring)."""
    scopes: dict[str, dict[str, str]] = defaultdict(dict)
    for key in weights.tensors:
        parts = key.rsplit("/", 2)
        if len(parts) >= 2 and parts[-1] in ("kernel", "bias"):
            scope = parts[0] if len(parts) == 3 else ""
            scopes[scope]["/".join(parts[-2:])] = key
    cells = {scope: cell for scope, keys in scopes.items() if (cell := _cell(keys, weights.tensors)) is not None}
    found = Found()
    side: Direction = "backward" if direction in ("reverse", "backward") else "forward"
    for name, members, assumed in _layers(cells, weights.tensors):
        found.layers.append(_layer(name, members, cells, weights.tensors, side, assumed))
    used = {key for cell in cells.values() for key in cell[1].values()}
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _cell(keys: dict[str, str], tensors: dict[str, np.ndarray]) -> Cell | None:
    denses = {name.split("/")[0] for name in keys}
    for conv, needed in _DENSES.items():
        if needed <= denses:
            return conv, {name: key for name, key in keys.items() if name.split("/")[0] in needed}
    if {"dense_i", "dense_h"} <= denses and "dense_h/kernel" in keys:
        hh = tensors[keys["dense_h/kernel"]]
        gates = hh.shape[1] // hh.shape[0] if hh.ndim == 2 and hh.shape[0] and hh.shape[1] % hh.shape[0] == 0 else 0
        if gates in _FUSED:
            return _FUSED[gates], {n: k for n, k in keys.items() if n.split("/")[0] in ("dense_i", "dense_h")}
    return None


def _sizes(cell: Cell, tensors: dict[str, np.ndarray]) -> tuple:
    return cell[0], tuple(sorted((name, tensors[key].shape) for name, key in cell[1].items()))


def _layers(cells: dict[str, Cell], tensors: dict[str, np.ndarray]) -> list[tuple[str, dict[Direction, str], tuple]]:
    """``(layer name, {direction: cell scope}, assumed)`` per layer."""
    layers: list[tuple[str, dict[Direction, str], tuple[str, ...]]] = []
    taken: set[str] = set()
    pairs: dict[str, dict[str, str]] = defaultdict(dict)
    for scope in cells:
        m = _PAIR.match(scope)
        if m is not None:
            pairs[m["layer"]][m["side"]] = scope
    for layer, sides in pairs.items():
        if len(sides) == 2 and cells[sides["forward"]][0] == cells[sides["backward"]][0]:
            layers.append((layer or "bidirectional", {"forward": sides["forward"], "backward": sides["backward"]}, ()))
            taken |= set(sides.values())
    auto: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for scope in cells:
        m = _AUTO.match(scope)
        if m is not None and scope not in taken:
            auto[(m["scope"], m["cls"])][m["k"]] = scope
    for pair in auto.values():
        if len(pair) == 2 and _sizes(cells[pair["0"]], tensors) == _sizes(cells[pair["1"]], tensors):
            layers.append(
                (f"{pair['0']} | {pair['1']}", {"forward": pair["0"], "backward": pair["1"]}, ("directions",))
            )
            taken |= set(pair.values())
    layers += [(scope or "cell", {"forward": scope}, ()) for scope in cells if scope not in taken]
    return layers


def _layer(
    name: str,
    members: dict[Direction, str],
    cells: dict[str, Cell],
    tensors: dict[str, np.ndarray],
    side: Direction,
    assumed: tuple,
) -> NativeLayer:
    conv = CONVENTIONS[cells[next(iter(members.values()))][0]]
    if len(members) == 1:
        members = {side: members["forward"]}
    keys: dict[CellKey, dict[str, str]] = {(0, d): cells[scope][1] for d, scope in members.items()}
    activations = LSTM_DEFAULT_ACTIVATIONS if conv.cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    notes = []
    if "directions" in assumed:
        notes.append(
            f"{' and '.join(members.values())} were taken as the forward and backward cells of one nn.Bidirectional"
        )
    defaults = Assumption(
        "activations",
        stated_form(activations),
        "Flax cells' defaults gate_fn=sigmoid, activation_fn=tanh: the file does not record them",
    )
    paired = [
        Assumption(
            "directions",
            "bidirectional",
            "auto-named cells of equal sizes taken as one nn.Bidirectional (no field can state it)",
        )
        for fact in assumed
        if fact == "directions"
    ]
    return NativeLayer(
        name=name,
        convention=conv,
        config=LayerConfig(activations, assumed=(defaults, *paired)),
        cells={key: {t: tensors[k] for t, k in cell.items()} for key, cell in keys.items()},
        notes=notes,
        origin={(level, d, t): k for (level, d), cell in keys.items() for t, k in cell.items()},
    )
