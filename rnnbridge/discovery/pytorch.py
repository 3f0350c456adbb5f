"""PyTorch state_dict keys: ``{module path}.{weight_ih|weight_hh|bias_ih|bias_hh|weight_hr}[_l{k}][_reverse]``.

Keys with ``_l{k}`` belong to an ``nn.LSTM``/``nn.GRU`` (all levels and directions of one
module); keys without belong to an ``nn.LSTMCell``/``nn.GRUCell``. The cell kind comes from
the shapes: ``weight_hh`` is [4H, R] for an LSTM and [3H, H] for a GRU. An ``nn.RNN`` /
``nn.RNNCell`` ([H, H]) or any other shape is listed as unsupported with the reason.
"""

from __future__ import annotations

import re

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.model import CellKey, Direction, LayerConfig, NativeLayer, Origin
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

_KEY = re.compile(
    r"^(?P<module>(?:.*\.)?)(?P<tensor>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"(?P<level>_l\d+)?(?P<reverse>_reverse)?\Z",
    re.DOTALL,  # a module path is whatever the file says, newlines included (made safe later)
)


def find_pytorch(weights: WeightFile, **_: object) -> Found:
    found = Found()
    groups: dict[tuple[str, bool], Origin] = {}
    for key in weights.tensors:
        m = _KEY.match(key)
        if m is None:
            continue
        is_cell = m["level"] is None
        level = 0 if is_cell else int(m["level"][2:])
        direction: Direction = "backward" if m["reverse"] else "forward"
        groups.setdefault((m["module"], is_cell), {})[(level, direction, m["tensor"])] = key
    used: set[str] = set()
    for (module, is_cell), keys in groups.items():
        layer = _layer(module, is_cell, keys, weights.tensors, found)
        if layer is not None:
            found.layers.append(layer)
            used.update(keys.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _layer(
    module: str, is_cell: bool, keys: Origin, tensors: dict[str, np.ndarray], found: Found
) -> NativeLayer | None:
    name = module.rstrip(".")
    hh = [tensors[k] for (lvl, d, t), k in keys.items() if t == "weight_hh"]
    if not hh:
        raise MalformedFile(f"module {name or '(root)'!r} has no weight_hh", layer=name)
    cell = _cell_kind(hh[0], any(t == "weight_hr" for (_, _, t) in keys))
    if cell is None:
        _refuse(name or "(root)", is_cell, hh[0].shape, found)
        return None
    key = f"pytorch.{cell}_cell" if is_cell else f"pytorch.{cell}"
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    for (level, direction, tensor), k in keys.items():
        cells.setdefault((level, direction), {})[tensor] = tensors[k]
    activations = LSTM_DEFAULT_ACTIVATIONS if cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    return NativeLayer(
        name=name or cell,
        convention=CONVENTIONS[key],
        config=LayerConfig(activations),
        cells=cells,
        origin=dict(keys),
    )


def _cell_kind(weight_hh: np.ndarray, projected: bool) -> str | None:
    rows, cols = weight_hh.shape if weight_hh.ndim == 2 else (0, 0)
    if projected or (cols and rows == 4 * cols):
        return "lstm"
    if cols and rows == 3 * cols:
        return "gru"
    return None


def _refuse(name: str, is_cell: bool, shape: tuple[int, ...], found: Found) -> None:
    if len(shape) == 2 and shape[0] == shape[1]:
        kind = "torch.nn.RNNCell" if is_cell else "torch.nn.RNN"
        found.refuse(
            name, kind, "an Elman RNN (weight_hh [H, H]) has no gates; rnnbridge converts LSTM and GRU modules"
        )
        return
    found.refuse(
        name,
        "unknown recurrent module",
        f"weight_hh of shape {list(shape)} is neither an LSTM's [4H, H] nor a GRU's [3H, H]",
    )
