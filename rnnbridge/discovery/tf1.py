"""TF1 checkpoint variables: cell scopes, their wrappers and their historic names.

A variable path reads, outside in::

    [user scopes/] [rnn | bidirectional_rnn/{fw,bw} | multi_rnn_cell/cell_{k} | ...] <cell scope>/<tensor>

The cell scope says the convention (``lstm_cell``, ``basic_lstm_cell``, ``gru_cell``,
``cudnn_compatible_lstm_cell``, ...); ``cell_{k}`` gives the level and ``fw``/``bw`` the
direction. A layer is named by the outermost wrapper scope (``encoder/rnn/multi_rnn_cell``,
``bidirectional_rnn``) or, for a lone cell, by the cell scope itself (``rnn/lstm_cell``).
Optimizer slots and bookkeeping variables are skipped; pre-1.2 ``weights``/``biases`` and
pre-1.0 ``Linear/Matrix``/``Linear/Bias`` names are read as ``kernel``/``bias``;
partitioned variables (``kernel/part_{k}``) are concatenated along their first axis.
contrib ``GRUBlockCell``'s ``w_ru``/``b_ru``/``w_c``/``b_c`` are ``GRUCell``'s gates and
candidate (same equations, same ``[x, h]`` rows, r before u); ``LSTMBlockCell`` and
``GRUBlockCellV2`` write ``LSTMCell``/``GRUCell`` names already.

Cells rnnbridge does not convert (``BasicRNNCell``, contrib ``LayerNormBasicLSTMCell``, ...)
are recognised by their scope and listed as unsupported with the reason; a wrapper that
holds one of them (a ``MultiRNNCell`` stack, a bidirectional pair) is refused as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.facts import Assumption, stated_form
from rnnbridge.engine.model import CellKey, Direction, LayerConfig, NativeLayer, Origin
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

#: cell scope -> convention key ("gru" resolves to tf1.gru or tf1.cudnn_gru by its tensors)
CELL_SCOPES = {
    "basic_lstm_cell": "tf1.lstm",
    "lstm_cell": "tf1.lstm",
    "lstm_fused_cell": "tf1.lstm",
    "BasicLSTMCell": "tf1.lstm",
    "LSTMCell": "tf1.lstm",
    "cudnn_compatible_lstm_cell": "tf1.cudnn_lstm",
    "gru_cell": "tf1.gru",
    "GRUCell": "tf1.gru",
    "cudnn_compatible_gru_cell": "tf1.cudnn_gru",
}
#: cell scope -> (kind, why it is not converted)
UNSUPPORTED_SCOPES = {
    "basic_rnn_cell": ("BasicRNNCell", "a vanilla RNN cell has no gates; rnnbridge converts LSTM and GRU cells"),
    "layer_norm_basic_lstm_cell": (
        "LayerNormBasicLSTMCell",
        (
            "layer normalisation of the gates and the cell state (input/, transform/, forget/, "
            "output/, state/ gamma and beta) has no equivalent in the other frameworks' LSTMs"
        ),
    ),
    "layer_norm_lstm_cell": ("LayerNormLSTMCell", "layer-normalised LSTM; no equivalent in the other frameworks"),
    "nas_cell": ("NASCell", "a NAS cell is not an LSTM or GRU"),
    "ugrnn_cell": ("UGRNNCell", "a UGRNN cell is not an LSTM or GRU"),
    "intersection_rnn_cell": ("IntersectionRNNCell", "an intersection RNN cell is not an LSTM or GRU"),
}
WRAPPERS = {"multi_rnn_cell", "MultiRNNCell", "bidirectional_rnn", "BiRNN", "stack_bidirectional_rnn"}
DIRECTION_SCOPES: dict[str, Direction] = {"fw": "forward", "bw": "backward", "FW": "forward", "BW": "backward"}
_LEVEL = re.compile(r"^(?:cell_|Cell)(\d+)$")
_PART = re.compile(r"^(?P<var>.+)/part_(?P<k>\d+)$")
_SLOT = re.compile(
    r"/(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|AdagradDA|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+|"
    r"ExponentialMovingAverage|Nadam|Nadam_\d+)$"
)
_BOOKKEEPING = {"global_step", "beta1_power", "beta2_power"}
_RENAMES = {
    "weights": "kernel",
    "biases": "bias",
    "Linear/Matrix": "kernel",
    "Linear/Bias": "bias",
    "Gates/Linear/Matrix": "gates/kernel",
    "Gates/Linear/Bias": "gates/bias",
    "Candidate/Linear/Matrix": "candidate/kernel",
    "Candidate/Linear/Bias": "candidate/bias",
    "gates/weights": "gates/kernel",
    "gates/biases": "gates/bias",
    "candidate/weights": "candidate/kernel",
    "candidate/biases": "candidate/bias",
    "W_I_diag": "w_i_diag",
    "W_F_diag": "w_f_diag",
    "W_O_diag": "w_o_diag",
    "projection/weights": "projection/kernel",
    "w_ru": "gates/kernel",
    "b_ru": "gates/bias",
    "w_c": "candidate/kernel",
    "b_c": "candidate/bias",
}


@dataclass(frozen=True)
class _Place:
    layer: str
    scope: str
    level: int
    direction: Direction
    tensor: str
    independent: bool


def find_tf1(weights: WeightFile, **_: object) -> Found:
    found = Found()
    variables = _assemble_partitions(weights.tensors)
    groups: dict[str, dict[_Place, str]] = {}
    for name in variables:
        if _SLOT.search(name) or name.split("/")[-1] in _BOOKKEEPING:
            continue
        place = _locate(name)
        if place is not None:
            groups.setdefault(place.layer, {})[place] = name
    used: set[str] = set()
    for layer_name, places in groups.items():
        unsupported = sorted({p.scope for p in places if p.scope in UNSUPPORTED_SCOPES})
        if unsupported:
            kind, reason = UNSUPPORTED_SCOPES[unsupported[0]]
            found.refuse(layer_name, kind, reason)
            continue
        found.layers.append(_layer(layer_name, places, variables))
        used.update(places.values())
    used |= {n for n in weights.tensors if (part := _PART.match(n)) and part["var"] in used}
    found.other_tensors = count_other(weights.tensors, used)
    if any(layer.convention.cell == "lstm" for layer in found.layers):
        found.notes.append(
            "TF1 checkpoints do not store the LSTM forget_bias: the TF default was assumed "
            "(1.0; 0 for cuDNN-compatible cells). Pass source_forget_bias if the model used another."
        )
    return found


def _assemble_partitions(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Join ``var/part_0``, ``var/part_1``, ... (split along axis 0) into ``var``."""
    out = {name: array for name, array in tensors.items() if not _PART.match(name)}
    parts: dict[str, dict[int, np.ndarray]] = {}
    for name, array in tensors.items():
        m = _PART.match(name)
        if m:
            parts.setdefault(m["var"], {})[int(m["k"])] = array
    for var, pieces in parts.items():
        if sorted(pieces) != list(range(len(pieces))):
            raise MalformedFile(f"partitioned variable {var!r} has parts {sorted(pieces)}", tensor=var)
        try:
            out[var] = np.concatenate([pieces[k] for k in range(len(pieces))], axis=0)
        except ValueError:
            raise MalformedFile(f"the parts of partitioned variable {var!r} do not fit together", tensor=var) from None
    return out


def _locate(name: str) -> _Place | None:
    segments = name.split("/")
    cell_at = next(
        (
            i
            for i in range(len(segments) - 1, -1, -1)
            if segments[i] in CELL_SCOPES or segments[i] in UNSUPPORTED_SCOPES
        ),
        None,
    )
    if cell_at is None:
        return None
    tensor = "/".join(segments[cell_at + 1 :])
    tensor = _RENAMES.get(tensor, tensor)
    level, outer = 0, cell_at
    direction: Direction = "forward"
    level_at = direction_at = None
    i = cell_at - 1
    while i >= 0:
        seg = segments[i]
        if seg in DIRECTION_SCOPES and direction_at is None:
            direction, direction_at = DIRECTION_SCOPES[seg], i
        elif (numbered := _LEVEL.match(seg)) and level_at is None:
            level, level_at = int(numbered[1]), i
        elif seg not in WRAPPERS:
            break
        outer = i
        i -= 1
    if outer == cell_at:
        layer = "/".join(segments[: cell_at + 1])
    else:
        layer = "/".join(segments[: outer + 1]) if segments[outer] in WRAPPERS else "/".join(segments[:outer])
    independent = level_at is not None and direction_at is not None and direction_at < level_at
    return _Place(layer or segments[cell_at], segments[cell_at], level, direction, tensor, independent)


_NO_CONFIG = "TF1 checkpoints store no cell arguments; the cell's documented default"


def _layer(layer_name: str, places: dict[_Place, str], variables: dict[str, np.ndarray]) -> NativeLayer:
    scopes = {CELL_SCOPES[p.scope] for p in places}
    if len(scopes) > 1:
        raise MalformedFile(
            f"layer {layer_name!r} mixes cell kinds {sorted(scopes)}; rnnbridge converts stacks of one kind",
            layer=layer_name,
        )
    key = scopes.pop()
    conv = CONVENTIONS[key]
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    origin: Origin = {}
    for place, name in places.items():
        cells.setdefault((place.level, place.direction), {})[place.tensor] = variables[name]
        origin[(place.level, place.direction, place.tensor)] = name
    activations = LSTM_DEFAULT_ACTIVATIONS if conv.cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    assumed = [Assumption("activations", stated_form(activations), _NO_CONFIG + " activation=tanh")]
    if "forget_bias" in conv.runtime_constants:  # the LSTMCell family: its constructor arguments
        assumed.append(Assumption("forget_bias", conv.forget_bias, _NO_CONFIG + f" forget_bias={conv.forget_bias:g}"))
        assumed.append(Assumption("clip", "none", _NO_CONFIG + " cell_clip=None, proj_clip=None (no clipping)"))
    config = LayerConfig(
        activations=activations,
        forget_bias=conv.forget_bias,
        independent_directions=any(p.independent for p in places),
        assumed=tuple(assumed),
    )
    return NativeLayer(layer_name, conv, config, cells, origin=origin)
