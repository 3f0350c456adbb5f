"""Haiku parameter paths: ``{scope}{lstm}/linear/{w|b}`` (``hk.LSTM``), ``{scope}{gru}/{w_i|w_h|b}``
(``hk.GRU``), as ``params.npz`` (``<module>/<param>``) or a flattened ``params.pkl``.

An ``hk.LSTM`` is recognised by its ``linear`` submodule below a module whose name holds
``lstm`` (Haiku's default names are ``lstm``, ``lstm_1``, ...; a Linear elsewhere is not an
LSTM); an ``hk.GRU`` by its ``w_i`` and ``w_h``. Activations are fixed (sigmoid, tanh) and
the LSTM's +1 on the forget gate is a constant of the framework, so nothing is assumed
about a single core.

``hk.DeepRNN`` adds no scope: its cores are auto-named ``lstm``, ``lstm_1``, ... exactly as
separate cores would be. Cores of one kind named ``<base>``, ``<base>_1``, ... in one scope
whose sizes chain (each reads the previous one's output size) are taken as one stack, one
layer whose levels are the cores; ``assumed`` lists ``stacking`` and a note says so. Each
core's tensors are the same either way; only the recipe differs.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.facts import Assumption
from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

_LSTM = re.compile(
    r"^(?P<scope>(?:.*/)?)(?P<module>[^/]*lstm[^/]*)/linear/(?P<param>[wb])\Z", re.DOTALL | re.IGNORECASE
)
_GRU = re.compile(r"^(?P<scope>(?:.*/)?)(?P<module>[^/]+)/(?P<param>w_i|w_h|b)\Z", re.DOTALL)
_NUMBERED = re.compile(r"^(?P<base>.*?)(?:_(?P<k>[1-9]\d{0,5}))?\Z", re.DOTALL)


def find_haiku(weights: WeightFile, *, direction: str | None = None, **_: object) -> Found:
    """``hk.LSTM`` / ``hk.GRU`` cores (stacks of them, see the module docstring);
    ``direction="reverse"`` says they read their sequence backwards (the caller reversed it)."""
    found = Found()
    cores: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)  # (kind, scope, module) -> param -> key
    for key in weights.tensors:
        lstm = _LSTM.match(key)
        if lstm is not None:
            cores[("lstm", lstm["scope"], lstm["module"])][f"linear/{lstm['param']}"] = key
            continue
        gru = _GRU.match(key)
        if gru is not None:
            cores[("gru", gru["scope"], gru["module"])][gru["param"]] = key
    cores = {k: v for k, v in cores.items() if k[0] == "lstm" or {"w_i", "w_h"} <= v.keys()}
    side: Direction = "backward" if direction in ("reverse", "backward") else "forward"
    used: set[str] = set()
    for stack in _stacks(cores, weights.tensors):
        found.layers.append(_layer(stack, cores, weights.tensors, side))
        used.update(key for core in stack for key in cores[core].values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _sizes(kind: str, params: dict[str, str], tensors: dict[str, np.ndarray]) -> tuple[int, int]:
    """``(inputs, units)`` of one core, from its matrices."""
    if kind == "lstm":
        if "linear/w" not in params:
            raise MalformedFile(f"Haiku LSTM parameter {params.get('linear/b', '?')!r} has no linear/w beside it")
        w = tensors[params["linear/w"]]
        units = w.shape[1] // 4 if w.ndim == 2 else 0
        return (w.shape[0] - units, units) if units else (0, 0)
    w_i, w_h = tensors[params["w_i"]], tensors[params["w_h"]]
    return (w_i.shape[0], w_h.shape[0]) if w_i.ndim == 2 and w_h.ndim == 2 else (0, 0)


def _stacks(cores: dict, tensors: dict[str, np.ndarray]) -> list[list[tuple[str, str, str]]]:
    """Cores grouped into stacks (see the module docstring), in file order of their first core."""
    numbered: dict[tuple[str, str, str], dict[int, tuple[str, str, str]]] = defaultdict(dict)
    for core in cores:
        kind, scope, module = core
        m = _NUMBERED.match(module)
        assert m is not None, module  # the pattern matches every module name
        numbered[(kind, scope, m["base"])][int(m["k"] or 0)] = core
    stacks = []
    for by_level in numbered.values():
        stack: list[tuple[str, str, str]] = []
        previous = -1
        for level in sorted(by_level):
            core = by_level[level]
            if stack and level == previous + 1 and _chains(stack[-1], core, cores, tensors):
                stack.append(core)
            else:
                if stack:
                    stacks.append(stack)
                stack = [core]
            previous = level
        stacks.append(stack)
    return stacks


def _chains(below: tuple, above: tuple, cores: dict, tensors: dict[str, np.ndarray]) -> bool:
    return _sizes(above[0], cores[above], tensors)[0] == _sizes(below[0], cores[below], tensors)[1]


def _core_name(core: tuple[str, str, str]) -> str:
    kind, scope, module = core
    return f"{scope}{module}/linear" if kind == "lstm" else f"{scope}{module}"


def _layer(stack: list, cores: dict, tensors: dict[str, np.ndarray], side: Direction) -> NativeLayer:
    kind = stack[0][0]
    cells, origin = {}, {}
    for level, core in enumerate(stack):
        cells[(level, side)] = {param: tensors[key] for param, key in cores[core].items()}
        origin.update({(level, side, param): key for param, key in cores[core].items()})
    names = [_core_name(core) for core in stack]
    config = (
        LayerConfig(LSTM_DEFAULT_ACTIVATIONS, forget_bias=1.0)
        if kind == "lstm"
        else LayerConfig(GRU_DEFAULT_ACTIVATIONS)
    )
    notes = []
    if len(stack) > 1:
        because = (
            "Haiku files do not record hk.DeepRNN: auto-numbered cores whose sizes chain are read as one "
            "stack (no field can state it)"
        )
        config = config.with_(assumed=(Assumption("stacking", f"hk.DeepRNN([{', '.join(names)}])", because),))
        notes.append(
            f"Haiku files do not record hk.DeepRNN: the cores {', '.join(names)} were taken as one "
            "stack because each reads the previous one's output size"
        )
    return NativeLayer(" | ".join(names), CONVENTIONS[f"haiku.{kind}"], config, cells, notes=notes, origin=origin)
