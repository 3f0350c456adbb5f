"""Freshly initialised layers, gate block by gate block.

Frameworks initialise the *fused* tensor: Keras' ``recurrent_initializer='orthogonal'``
makes the [H, 4H] recurrent kernel's rows orthonormal, not each gate's [H, H] block, and
TF1's variable-scope initializer draws the whole [I+H, 4H] kernel at once. Here every
initializer acts on one canonical block (``rnnbridge.engine.layout``): ``W_x{g}`` [H, I]
(fan_in I, fan_out H), ``W_h{g}`` [H, R], ``W_proj`` [P, H] (fan_in H, fan_out P); the
result is then fused into the target's own tensors by ``canonical.from_canonical``.

Initializers (``parse`` reads their spelling, ``uniform(0.1)``, ``orthogonal(gain=2)``):

=======================  ==============================================================
input (``W_x``, ``W_proj``)  ``glorot_uniform``, ``glorot_normal``, ``he_uniform``, ``he_normal``,
                         ``lecun_uniform``, ``lecun_normal``, ``uniform(a)``, ``default``
recurrent (``W_h``)      ``orthogonal(gain)`` (default gain 1), ``identity(gain)``,
                         any input initializer, ``default``
bias (``b_x``, ``b_h``)  ``zeros``, ``unit_forget_bias`` (LSTM: ``b_xf`` = 1),
                         ``chrono(T_max)`` (LSTM: ``b_xf = log(u)``, ``u ~ U(1, T_max − 1)``,
                         ``b_xi = −b_xf``; Tallec & Ollivier 2018), ``uniform(a)``, ``default``
=======================  ==============================================================

The ``*_normal`` initializers draw from a normal truncated at two standard deviations and
rescaled to the stated variance (as Keras does): glorot 2 / (fan_in + fan_out), he
2 / fan_in, lecun 1 / fan_in. ``default`` is the target framework's own scheme, on its
fused tensors (``FRAMEWORK_DEFAULTS``). Peepholes start at zero unless the framework's
default says otherwise. Draws are made in float64 from one ``numpy.random.Generator``
seeded with ``seed``, in a fixed order (level, direction, then W_x, W_h, W_proj, biases,
each gate in canonical order), then cast once: the same seed gives the same bits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rnnbridge.engine.canonical import gate_letters
from rnnbridge.engine.conventions import Convention
from rnnbridge.engine.layout import split_tensor
from rnnbridge.engine.model import DIRECTIONS, CellKey, Direction, Layer, LayerConfig
from rnnbridge.errors import InvalidField

#: a normal truncated at ±2σ has variance 0.7737…; its σ is divided by sqrt of that
_TRUNCATED_STD = 0.87962566103423978

_SPELLING = re.compile(r"([a-z_]+)(?:\(\s*(?:[a-z_]+\s*=\s*)?([-+0-9.eE]+)\s*\))?")
INPUT_KINDS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "uniform",
    "default",
)
RECURRENT_KINDS = ("orthogonal", "identity", *INPUT_KINDS)
BIAS_KINDS = ("zeros", "unit_forget_bias", "chrono", "uniform", "default")
_NEEDS_ARGUMENT = {"uniform": "the bound a of U(-a, a)", "chrono": "T_max, the longest dependency in steps"}


@dataclass(frozen=True)
class Initializer:
    kind: str
    arg: float | None = None

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}({self.arg:g})"


def parse(text: str, part: str, kinds: tuple[str, ...]) -> Initializer:
    """``"uniform(0.05)"`` -> ``Initializer("uniform", 0.05)``; refuses kinds not in ``kinds``."""
    match = _SPELLING.fullmatch(text.strip().lower())
    if match is None or match[1] not in kinds:
        raise InvalidField(f"{part} initializer {text!r} is not one of {list(kinds)}", field=f"{part}_initializer")
    arg = None if match[2] is None else float(match[2])
    kind = match[1]
    if kind in _NEEDS_ARGUMENT and arg is None:
        raise InvalidField(f"{kind} needs {_NEEDS_ARGUMENT[kind]}: {kind}(...)", field=f"{part}_initializer")
    if arg is not None and not (math.isfinite(arg) and arg > 0):
        raise InvalidField(f"{text!r}: the argument must be a positive number", field=f"{part}_initializer")
    if kind == "chrono" and arg is not None and arg <= 2:
        raise InvalidField("chrono(T_max) needs T_max > 2 (u is drawn from U(1, T_max - 1))", field="bias_initializer")
    return Initializer(kind, arg)


@dataclass(frozen=True)
class Shape:
    """The layer to create: sizes, topology, variant."""

    cell: str
    input_size: int
    units: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    peepholes: bool = False
    reset_after: bool | None = None
    independent_directions: bool = False

    def dims(self, level: int) -> dict[str, int]:
        recurrent = self.proj_size or self.units
        fan = recurrent if self.independent_directions else recurrent * (2 if self.bidirectional else 1)
        inputs = self.input_size if level == 0 else fan
        return {"H": self.units, "I": inputs, "P": self.proj_size, "R": recurrent}

    @property
    def directions(self) -> tuple[Direction, ...]:
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

    def weights(self) -> int:
        """The number of canonical weights (what the fused tensors hold, biases included)."""
        gates = len(gate_letters(self.cell))
        total = 0
        for level in range(self.num_layers):
            d = self.dims(level)
            total += gates * d["H"] * (d["I"] + d["R"] + 2) + d["P"] * d["H"] + 3 * d["H"] * self.peepholes
        return total * len(self.directions)


@dataclass(frozen=True)
class Scheme:
    """The initializer of each part."""

    input: Initializer
    recurrent: Initializer
    bias: Initializer


#: a framework's own initialisation, applied to each of its own fused tensors (the registry's
#: ``Tensor`` grids, so the fans are those of the fused tensor: Keras' kernel [I, G·H], TF1's
#: joint kernel [I+R, G·H]): a rule per canonical part, and one for biases
FRAMEWORK_DEFAULTS: dict[str, dict[str, str]] = {
    # torch/nn/modules/rnn.py reset_parameters: every parameter U(-1/sqrt(H), 1/sqrt(H))
    "pytorch": {
        "W_x": "uniform_inv_sqrt_h",
        "W_h": "uniform_inv_sqrt_h",
        "W_proj": "uniform_inv_sqrt_h",
        "bias": "uniform_inv_sqrt_h",
    },
    # keras/src/layers/rnn/lstm.py, gru.py: kernel glorot_uniform, recurrent_kernel orthogonal,
    # bias zeros (LSTM: unit_forget_bias=True)
    "keras": {"W_x": "glorot_uniform", "W_h": "orthogonal", "bias": "zeros_unit_forget"},
    # tf.compat.v1 get_variable's default glorot_uniform on every kernel (and [H] peephole);
    # LSTMCell bias zeros (forget_bias 1.0 is added at run time), GRUCell gates/bias 1.0
    "tf1": {
        "W_x": "glorot_uniform",
        "W_h": "glorot_uniform",
        "W_proj": "glorot_uniform",
        "p_": "glorot_uniform",
        "bias": "zeros_gru_gates_one",
    },
    # mlx/nn/layers/recurrent.py LSTM/GRU __init__: every parameter U(-1/sqrt(H), 1/sqrt(H))
    "mlx": {"W_x": "uniform_inv_sqrt_h", "W_h": "uniform_inv_sqrt_h", "bias": "uniform_inv_sqrt_h"},
    # paddle/nn/layer/rnn.py LSTMCell/GRUCell: I.Uniform(-1/sqrt(H), 1/sqrt(H)) on every parameter
    "paddle": {
        "W_x": "uniform_inv_sqrt_h",
        "W_h": "uniform_inv_sqrt_h",
        "W_proj": "uniform_inv_sqrt_h",
        "bias": "uniform_inv_sqrt_h",
    },
    # equinox/nn/_rnn.py LSTMCell/GRUCell: lim = sqrt(1/H), every parameter U(-lim, lim)
    "equinox": {"W_x": "uniform_inv_sqrt_h", "W_h": "uniform_inv_sqrt_h", "bias": "uniform_inv_sqrt_h"},
    # ONNX and Haiku have no entry: ONNX defines no initializer, and Haiku's (truncated normals
    # on the joint [I+H, 4H] linear, per-tensor w_i/w_h initialisers) is not described here, so
    # ``default`` is refused for them (choose an initializer)
}


#: the GRU variant each framework builds by default (Keras ``reset_after=True`` since 2.4,
#: ``torch.nn.GRU`` has no other, TF1 ``GRUCell`` resets before, ONNX ``linear_before_reset=0``;
#: MLX, Paddle and Equinox GRUs reset after, Haiku's ``hk.GRU`` before), per target framework
DEFAULT_RESET_AFTER: dict[str, bool] = {
    "keras": True,
    "pytorch": True,
    "tf1": False,
    "onnx": False,
    "mlx": True,
    "haiku": False,
    "paddle": True,
    "equinox": True,
}


def initialise(shape: Shape, scheme: Scheme, conv: Convention, seed: int, dtype: np.dtype, name: str) -> Layer:
    """A canonical ``Layer`` of ``shape``, drawn by ``scheme`` from ``seed`` (see the module)."""
    defaults = FRAMEWORK_DEFAULTS.get(conv.framework)
    if defaults is None and "default" in (scheme.input.kind, scheme.recurrent.kind, scheme.bias.kind):
        raise InvalidField(f"{conv.framework} defines no initializer of its own: choose one", field="input_initializer")
    if shape.cell == "gru" and scheme.bias.kind in ("unit_forget_bias", "chrono"):
        raise InvalidField(
            f"{scheme.bias.kind} sets LSTM forget and input gate biases; a GRU has none", field="bias_initializer"
        )
    rng = np.random.default_rng(seed)
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    for level in range(shape.num_layers):
        for direction in shape.directions:
            gates = _cell(shape, scheme, conv, defaults or {}, shape.dims(level), rng)
            cells[(level, direction)] = {k: v.astype(dtype) for k, v in gates.items()}
    activations = ("sigmoid", "tanh", "tanh") if shape.cell == "lstm" else ("sigmoid", "tanh")
    config = LayerConfig(activations=activations, independent_directions=shape.independent_directions)
    return Layer(name, shape.cell, shape.reset_after, config, cells, has_bias=True)


def _cell(
    shape: Shape, scheme: Scheme, conv: Convention, defaults: dict[str, str], dims: dict[str, int], rng
) -> dict[str, np.ndarray]:
    letters = gate_letters(shape.cell)
    h, i, r, p = dims["H"], dims["I"], dims["R"], dims["P"]
    wanted = {"W_x": scheme.input, "W_h": scheme.recurrent, "W_proj": scheme.input}
    fused = _defaults(shape, conv, defaults, dims, rng) if "default" in {w.kind for w in wanted.values()} else {}
    out: dict[str, np.ndarray] = {}
    for part, block in (("W_x", (h, i)), ("W_h", (h, r))):
        for g in letters:
            out[part + g] = fused[part + g] if wanted[part].kind == "default" else _draw(wanted[part], block, rng)
    if p:
        out["W_proj"] = fused["W_proj"] if scheme.input.kind == "default" else _draw(scheme.input, (p, h), rng)
    out.update(_biases(shape, scheme.bias, defaults.get("bias"), letters, h, rng))
    for g in "ifo" if shape.peepholes else "":
        out["p_" + g] = fused.get("p_" + g, np.zeros(h))
    return out


def _defaults(
    shape: Shape, conv: Convention, defaults: dict[str, str], dims: dict[str, int], rng
) -> dict[str, np.ndarray]:
    """The framework's own draw of each of its fused tensors, cut into canonical blocks."""
    out: dict[str, np.ndarray] = {}
    for spec in conv.tensors:
        rule = defaults.get(spec.parts[0])
        if rule is None or spec.group == "bias" or not _wanted(spec.group, shape):
            continue
        stored = spec.shape(dims)
        out.update(split_tensor(spec, _fused(rule, stored, dims["H"], rng), dims))
    return out


def _wanted(group: str, shape: Shape) -> bool:
    return (
        group == "core" or (group == "peephole" and shape.peepholes) or (group == "projection" and shape.proj_size > 0)
    )


def _fused(rule: str, stored: tuple[int, ...], units: int, rng) -> np.ndarray:
    """One fused tensor by a framework's rule; fans as Keras computes them (fan_in the first
    axis, fan_out the second; a vector's both its length)."""
    if rule == "uniform_inv_sqrt_h":
        return rng.uniform(-1.0 / math.sqrt(units), 1.0 / math.sqrt(units), stored)
    fan_in, fan_out = (stored[0], stored[-1])
    if rule == "orthogonal":
        return _orthogonal((stored[0], stored[1]), 1.0, rng)
    return _uniform_fans(stored, fan_in, fan_out, rng)


def _uniform_fans(shape: tuple[int, ...], fan_in: int, fan_out: int, rng) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def _draw(init: Initializer, shape: tuple[int, int], rng) -> np.ndarray:
    """One [out, in] block."""
    fan_out, fan_in = shape
    if init.kind == "orthogonal":
        return _orthogonal(shape, 1.0 if init.arg is None else init.arg, rng)
    if init.kind == "identity":
        return np.eye(*shape) * (1.0 if init.arg is None else init.arg)
    if init.kind == "uniform":
        return rng.uniform(-_arg(init), _arg(init), shape)
    family, law = init.kind.split("_")
    variance = {"glorot": 2.0 / (fan_in + fan_out), "he": 2.0 / fan_in, "lecun": 1.0 / fan_in}[family]
    if law == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    return _truncated_normal(shape, math.sqrt(variance) / _TRUNCATED_STD, rng)


def _arg(init: Initializer) -> float:
    assert init.arg is not None, f"{init.kind} is parsed with its argument"
    return init.arg


def _truncated_normal(shape: tuple[int, ...], std: float, rng) -> np.ndarray:
    out = rng.standard_normal(shape)
    outside = np.abs(out) > 2.0
    while outside.any():
        out[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(out) > 2.0
    return out * std


def _orthogonal(shape: tuple[int, int], gain: float, rng) -> np.ndarray:
    """Rows (or columns, whichever are fewer) orthonormal, times ``gain``: the QR of a
    normal matrix with the signs of R's diagonal folded into Q (Saxe et al., as Keras and
    PyTorch do)."""
    rows, cols = shape
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)


def _biases(shape: Shape, init: Initializer, default, letters: str, h: int, rng) -> dict[str, np.ndarray]:
    out = {side + g: np.zeros(h) for side in ("b_x", "b_h") for g in letters}
    kind = init.kind if init.kind != "default" else default
    if kind == "uniform":
        out = {k: rng.uniform(-_arg(init), _arg(init), h) for k in out}
    elif kind == "uniform_inv_sqrt_h":
        out = {k: rng.uniform(-1.0 / math.sqrt(h), 1.0 / math.sqrt(h), h) for k in out}
    elif kind == "unit_forget_bias" or (kind == "zeros_unit_forget" and shape.cell == "lstm"):
        out["b_xf"] = np.ones(h)
    elif kind == "zeros_gru_gates_one" and shape.cell == "gru":
        out["b_xr"], out["b_xz"] = np.ones(h), np.ones(h)
    elif kind == "chrono":
        forget = np.log(rng.uniform(1.0, _arg(init) - 1.0, h))
        out["b_xf"], out["b_xi"] = forget, -forget
    return out
