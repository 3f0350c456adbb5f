"""Equinox ``.eqx`` leaves: cells inferred from the shapes of consecutive unnamed arrays.

``tree_serialise_leaves`` keeps no names, so the cells are recognised by shape, in leaf
order: a matrix ``weight_ih`` [G·H, I] followed by ``weight_hh`` [G·H, H] with G = 4 is an
``eqx.nn.LSTMCell`` (then ``bias`` [4H] if the next leaf has that shape), with G = 3 an
``eqx.nn.GRUCell`` (then ``bias`` [3H] and ``bias_n`` [H]). Nothing else in a file can be told
apart from such a pair by its bytes (two bias-free Linear layers of those shapes would look
the same), so every layer lists ``structure`` in ``assumed`` and a note names the leaves it
was read from: check them against the module (``/inspect``). A layer is named by its first
leaf (``#0``). Equinox cells have fixed sigmoid / tanh activations.
"""

from __future__ import annotations

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.facts import Assumption
from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.formats.base import WeightFile

_KINDS = {4: ("lstm", ("bias",)), 3: ("gru", ("bias", "bias_n"))}


def find_equinox(weights: WeightFile, *, direction: str | None = None, **_: object) -> Found:
    """The cells among ``weights``' leaves ``#0``, ``#1``, ... (see the module docstring)."""
    names = list(weights.tensors)
    arrays = [weights.tensors[n] for n in names]
    side: Direction = "backward" if direction in ("reverse", "backward") else "forward"
    found, used, k = Found(), set[str](), 0
    while k + 1 < len(arrays):
        cell = _cell_at(arrays, k)
        if cell is None:
            k += 1
            continue
        kind, roles = cell
        keys = dict(zip(roles, names[k : k + len(roles)]))
        found.layers.append(_layer(kind, keys, weights.tensors, side))
        used.update(keys.values())
        k += len(roles)
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _cell_at(arrays: list[np.ndarray], k: int) -> tuple[str, tuple[str, ...]] | None:
    """``(kind, roles)`` of a cell whose ``weight_ih`` is leaf ``k``, or None."""
    w_ih, w_hh = arrays[k], arrays[k + 1]
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_ih.shape[0] != w_hh.shape[0] or not w_hh.shape[1]:
        return None
    rows, units = w_hh.shape
    if rows % units or rows // units not in _KINDS:
        return None
    kind, optional = _KINDS[rows // units]
    roles: tuple[str, ...] = ("weight_ih", "weight_hh")
    expected = {"bias": (rows,), "bias_n": (units,)}
    for offset, role in enumerate(optional, start=k + 2):
        if offset >= len(arrays) or arrays[offset].shape != expected[role]:
            break
        roles += (role,)
    if kind == "gru" and len(roles) == 3:
        roles = roles[:2]  # a GRUCell has both biases or neither: a lone [3H] vector is not its
    return kind, roles


def _layer(kind: str, keys: dict[str, str], tensors: dict[str, np.ndarray], side: Direction) -> NativeLayer:
    first = keys["weight_ih"]
    activations = LSTM_DEFAULT_ACTIVATIONS if kind == "lstm" else GRU_DEFAULT_ACTIVATIONS
    note = (
        f"an .eqx file has no names: leaves {', '.join(keys.values())} were read as the "
        f"{'/'.join(keys)} of an eqx.nn.{kind.upper()}Cell from their shapes"
    )
    return NativeLayer(
        name=first,
        convention=CONVENTIONS[f"equinox.{kind}"],
        config=LayerConfig(
            activations,
            assumed=(
                Assumption(
                    "structure",
                    f"eqx.nn.{kind.upper()}Cell",
                    "an .eqx file has no names: cells are inferred from consecutive leaf shapes "
                    "(no field can state it)",
                ),
            ),
        ),
        cells={(0, side): {role: tensors[key] for role, key in keys.items()}},
        notes=[note],
        origin={(0, side, role): key for role, key in keys.items()},
    )
