"""Paddle state_dict keys: ``{module}.{level}.{cell|cell_fw|cell_bw}.{tensor}`` per cell, where
``tensor`` is ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` or ``weight_ho`` (projection).

``paddle.nn.LSTM`` / ``GRU`` also list every parameter under a PyTorch-style flat key
(``weight_ih_l0``, ``bias_hh_l1_reverse``): the same parameter, as the file's
``StructuredToParameterName@@`` map shows (both keys name one structured parameter). The
per-cell keys are the truth (the flat ones are numbered wrongly once ``proj_size`` is used
with several levels): flat keys whose structured name a per-cell key shares are aliases,
counted as belonging to the layer. A module that has only flat keys is read like a PyTorch
module, unless it has ``weight_ho`` (then the numbering cannot be trusted and the module is
listed unsupported with the reason).

The cell kind comes from ``weight_hh``: [4H, R] for an LSTM, [3H, H] for a GRU; a
``SimpleRNN`` ([H, H]) is listed as unsupported.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.model import CellKey, Direction, LayerConfig, NativeLayer
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

_TENSORS = "weight_ih|weight_hh|bias_ih|bias_hh|weight_ho"
_PER_CELL = re.compile(
    rf"^(?P<module>(?:.*\.)?)(?P<level>\d{{1,4}})\.cell(?P<side>_fw|_bw)?\.(?P<tensor>{_TENSORS})\Z", re.DOTALL
)
_FLAT = re.compile(
    rf"^(?P<module>(?:.*\.)?)(?P<tensor>{_TENSORS})_l(?P<level>\d{{1,4}})(?P<reverse>_reverse)?\Z", re.DOTALL
)
#: the entry of ``paddle.save`` that maps state_dict keys to structured parameter names
STRUCTURED = "StructuredToParameterName@@"

Cells = dict[CellKey, dict[str, str]]


def looks_like_paddle(weights: WeightFile) -> bool:
    """Whether a pickle holds a Paddle state_dict (its structured-name map or per-cell keys)."""
    strings = weights.attrs.get("strings", {})
    return any(k.startswith(STRUCTURED + "/") for k in strings) or any(_PER_CELL.match(k) for k in weights.tensors)


def find_paddle(weights: WeightFile, **_: object) -> Found:
    found = Found()
    per_cell: dict[str, Cells] = defaultdict(dict)
    flat: dict[str, Cells] = defaultdict(dict)
    for key in weights.tensors:
        m = _PER_CELL.match(key)
        if m is not None:
            direction: Direction = "backward" if m["side"] == "_bw" else "forward"
            per_cell[m["module"]].setdefault((int(m["level"]), direction), {})[m["tensor"]] = key
            continue
        m = _FLAT.match(key)
        if m is not None:
            direction = "backward" if m["reverse"] else "forward"
            flat[m["module"]].setdefault((int(m["level"]), direction), {})[m["tensor"]] = key
    structured = {k[len(STRUCTURED) + 1 :]: v for k, v in weights.attrs.get("strings", {}).items()}
    used: set[str] = set()
    for module in list(per_cell) + [m for m in flat if m not in per_cell]:
        cells = per_cell.get(module) or flat[module]
        name = module.rstrip(".") or "rnn"
        if module not in per_cell and any("weight_ho" in c for c in cells.values()):
            found.refuse(name, "paddle.nn.LSTM", "only flat keys with a projection, whose numbering is not reliable")
            continue
        layer = _layer(name, cells, weights.tensors, found)
        if layer is None:
            continue
        found.layers.append(layer)
        used.update(key for tensors in cells.values() for key in tensors.values())
        used.update(_aliases(flat.get(module, {}), cells, structured) if module in per_cell else ())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _aliases(flat: Cells, cells: Cells, structured: dict[str, str]) -> set[str]:
    """The flat keys that name a parameter some per-cell key names too."""
    truth = {structured.get(key) for tensors in cells.values() for key in tensors.values()} - {None}
    return {key for tensors in flat.values() for key in tensors.values() if structured.get(key) in truth}


def _layer(name: str, keys: Cells, tensors: dict[str, np.ndarray], found: Found) -> NativeLayer | None:
    first = keys.get((0, "forward")) or next(iter(keys.values()))
    if "weight_hh" not in first:
        raise MalformedFile(f"Paddle module {name!r} has no weight_hh", layer=name)
    hh = tensors[first["weight_hh"]]
    rows, cols = hh.shape if hh.ndim == 2 else (0, 0)
    cell = (
        "lstm" if "weight_ho" in first or (cols and rows == 4 * cols) else "gru" if cols and rows == 3 * cols else None
    )
    if cell is None:
        kind = "paddle.nn.SimpleRNN" if rows == cols else "unknown recurrent module"
        found.refuse(
            name, kind, f"weight_hh of shape {list(hh.shape)} is neither an LSTM's [4H, H] nor a GRU's [3H, H]"
        )
        return None
    activations = LSTM_DEFAULT_ACTIVATIONS if cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    return NativeLayer(
        name=name,
        convention=CONVENTIONS[f"paddle.{cell}"],
        config=LayerConfig(activations),
        cells={key: {t: tensors[k] for t, k in cell_keys.items()} for key, cell_keys in keys.items()},
        origin={(level, d, t): k for (level, d), cell_keys in keys.items() for t, k in cell_keys.items()},
    )
