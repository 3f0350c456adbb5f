"""PyTorch state_dict keys: ``{module path}.{weight_ih|weight_hh|bias_ih|bias_hh|weight_hr}[_l{k}][_reverse]``.

Keys with ``_l{k}`` belong to an ``nn.LSTM``/``nn.GRU`` (all levels and directions of one
module); keys without belong to an ``nn.LSTMCell``/``nn.GRUCell``. The cell kind comes from
the shapes: ``weight_hh`` is [4H, R] for an LSTM and [3H, H] for a GRU.
"""

from __future__ import annotations

import re

import numpy as np

from ..engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from ..engine.model import LayerConfig, NativeLayer
from ..errors import MalformedFile
from ..formats.base import WeightFile
from .common import Found, count_other

_KEY = re.compile(
    r"^(?P<module>(?:.*\.)?)(?P<tensor>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"(?P<level>_l\d+)?(?P<reverse>_reverse)?$"
)


def find_pytorch(weights: WeightFile, **_: object) -> Found:
    found = Found()
    groups: dict[tuple[str, bool], dict[tuple[int, str, str], str]] = {}
    for key in weights.tensors:
        m = _KEY.match(key)
        if m is None:
            continue
        is_cell = m["level"] is None
        level = 0 if is_cell else int(m["level"][2:])
        direction = "backward" if m["reverse"] else "forward"
        groups.setdefault((m["module"], is_cell), {})[(level, direction, m["tensor"])] = key
    used: set[str] = set()
    for (module, is_cell), keys in groups.items():
        layer = _layer(module, is_cell, keys, weights.tensors)
        found.layers.append(layer)
        used.update(keys.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _layer(module: str, is_cell: bool, keys: dict[tuple[int, str, str], str], tensors: dict[str, np.ndarray]) -> NativeLayer:
    name = module.rstrip(".")
    hh = [tensors[k] for (lvl, d, t), k in keys.items() if t == "weight_hh"]
    if not hh:
        raise MalformedFile(f"module {name or '(root)'!r} has no weight_hh", layer=name)
    rows, cols = hh[0].shape if hh[0].ndim == 2 else (0, 0)
    projected = any(t == "weight_hr" for (_, _, t) in keys)
    if projected or (cols and rows == 4 * cols):
        cell = "lstm"
    elif cols and rows == 3 * cols:
        cell = "gru"
    else:
        raise MalformedFile(
            f"module {name or '(root)'!r}: weight_hh of shape {list(hh[0].shape)} is neither an LSTM's "
            "[4H, H] nor a GRU's [3H, H]",
            layer=name,
            tensor=module + "weight_hh",
        )
    key = f"pytorch.{cell}_cell" if is_cell else f"pytorch.{cell}"
    cells: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for (level, direction, tensor), k in keys.items():
        cells.setdefault((level, direction), {})[tensor] = tensors[k]
    activations = LSTM_DEFAULT_ACTIVATIONS if cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    return NativeLayer(
        name=name or cell,
        convention=CONVENTIONS[key],
        config=LayerConfig(activations),
        cells=cells,
        origin={k: v for k, v in keys.items()},
    )
