"""The layer a target framework builds from a converted result: what verification checks.

A conversion's own ``NativeLayer`` says what rnnbridge *meant* to write. What the user
gets is named arrays and a module recipe (``target.module`` in the metadata: the
``torch.nn.LSTM`` keyword arguments, the ONNX node attributes, the Keras 3 layer arguments,
the TF1 cell arguments). This module reads those back the way the target framework would:
the convention from the recipe's class and variant arguments, the activations from the
recipe's names *in that framework's vocabulary and version* (Keras 3 ``hard_sigmoid`` is
x/6 + 0.5; ONNX ``HardSigmoid`` takes ``activation_alpha``/``activation_beta``, default
0.2/0.5), the run-time constants only where the framework has them as arguments (TF1's
``forget_bias``), everything else at the framework's fixed behaviour (PyTorch: sigmoid and
tanh, no forget bias). Nothing is taken from the conversion's in-memory configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnnbridge.engine.conventions import (
    CONVENTIONS,
    GRU_DEFAULT_ACTIVATIONS,
    LSTM_DEFAULT_ACTIVATIONS,
    Convention,
    targets,
)
from rnnbridge.engine.facts import hard_sigmoid, keras_activation
from rnnbridge.engine.model import DIRECTIONS, Direction, LayerConfig, NativeLayer
from rnnbridge.engine.naming import parse_names
from rnnbridge.errors import VerificationFailed

_ONNX_DIRECTIONS: dict[str, tuple[Direction, ...]] = {
    "forward": ("forward",),
    "reverse": ("backward",),
    "bidirectional": DIRECTIONS,
}
_ONNX_PLAIN = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}
#: ONNX activations that take (alpha, beta), with their defaults
_ONNX_PARAMS = {"HardSigmoid": (0.2, 0.5), "Affine": (1.0, 0.0)}
_TF1_CLASSES = {
    "tf.nn.rnn_cell.LSTMCell": "tf1.lstm",
    "tf.contrib.cudnn_rnn.CudnnCompatibleLSTMCell": "tf1.cudnn_lstm",
    "tf.nn.rnn_cell.GRUCell": "tf1.gru",
    "tf.contrib.cudnn_rnn.CudnnCompatibleGRUCell": "tf1.cudnn_gru",
}


class Loaded:
    """A recipe read the way its framework reads it: convention, config, levels, directions."""

    def __init__(self, convention: Convention, config: LayerConfig, levels: int, directions: tuple[Direction, ...]):
        self.convention, self.config, self.levels, self.directions = convention, config, levels, directions


def interpret(recipe: Mapping[str, Any], framework: str) -> Loaded:
    """What ``framework`` builds from ``recipe`` (a ``target.module`` of the metadata)."""
    try:
        return _INTERPRETERS[framework](recipe)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise VerificationFailed(f"the module recipe cannot be read as {framework} would: {error!r}") from None


def from_arrays(arrays: Mapping[str, np.ndarray], name: str, target: Mapping[str, Any], framework: str) -> NativeLayer:
    """The layer ``framework`` loads from the named ``arrays`` of one converted layer."""
    loaded = interpret(target["module"], framework)
    cells, _ = parse_names(arrays, loaded.convention, str(target["names_start"]), loaded.levels, loaded.directions)
    return NativeLayer(name, loaded.convention, loaded.config, cells)


def as_loaded(layer: NativeLayer, recipe: Mapping[str, Any]) -> NativeLayer:
    """``layer``'s cells under the convention and configuration its recipe gives them."""
    loaded = interpret(recipe, layer.convention.framework)
    return NativeLayer(layer.name, loaded.convention, loaded.config, layer.cells)


def _cell(class_name: str) -> str:
    return "lstm" if class_name.upper().endswith(("LSTM", "LSTMCELL")) else "gru"


def _pytorch(recipe: Mapping[str, Any]) -> Loaded:
    class_name = recipe["class"].rsplit(".", 1)[-1]  # LSTM, GRU, LSTMCell, GRUCell
    key = {"LSTM": "pytorch.lstm", "GRU": "pytorch.gru", "LSTMCell": "pytorch.lstm_cell", "GRUCell": "pytorch.gru_cell"}
    conv = CONVENTIONS[key[class_name]]
    kwargs = recipe["kwargs"]
    directions = DIRECTIONS if kwargs.get("bidirectional") else ("forward",)
    return Loaded(conv, LayerConfig(conv.default_activations), int(kwargs.get("num_layers", 1)), directions)


def onnx_activations(attributes: Mapping[str, Any], count: int, num_directions: int) -> tuple[str, ...]:
    """The activations an ONNX LSTM/GRU node computes, as canonical names.

    ``activation_alpha``/``activation_beta`` are consumed in order by the activations that
    take them; an absent value is the activation's default (onnx/defs/rnn/defs.cc).
    """
    names = attributes.get("activations")
    if not names:
        return LSTM_DEFAULT_ACTIVATIONS if count == 3 else GRU_DEFAULT_ACTIVATIONS
    if len(names) != count * num_directions:
        raise ValueError(f"{len(names)} activations for {num_directions} direction(s)")
    alphas, betas = list(attributes.get("activation_alpha") or []), list(attributes.get("activation_beta") or [])
    out = []
    for name in names:
        if name in _ONNX_PLAIN:
            out.append(_ONNX_PLAIN[name])
            continue
        alpha, beta = _ONNX_PARAMS[name]
        alpha = float(np.float32(alphas.pop(0))) if alphas else alpha
        beta = float(np.float32(betas.pop(0))) if betas else beta
        out.append(hard_sigmoid(alpha, beta) if name == "HardSigmoid" else _affine(alpha, beta))
    first = tuple(out[:count])
    if tuple(out[count:]) not in ((), first):
        raise ValueError("the directions use different activations")
    return first


def _affine(alpha: float, beta: float) -> str:
    if (alpha, beta) != (1.0, 0.0):
        raise ValueError(f"Affine({alpha}, {beta}) is no activation rnnbridge writes")
    return "linear"


def _onnx(recipe: Mapping[str, Any]) -> Loaded:
    attributes = recipe["attributes"]
    op = recipe["op_type"]
    if op == "GRU":
        conv = CONVENTIONS["onnx.gru_lbr" if int(attributes.get("linear_before_reset", 0)) else "onnx.gru"]
    else:
        conv = CONVENTIONS["onnx.lstm"]
    directions = _ONNX_DIRECTIONS[attributes.get("direction", "forward")]
    clip = attributes.get("clip")
    config = LayerConfig(
        activations=onnx_activations(attributes, 3 if op == "LSTM" else 2, len(directions)),
        clip=None if clip is None else float(clip),
        input_forget=bool(int(attributes.get("input_forget", 0))),
    )
    return Loaded(conv, config, int(recipe.get("nodes", 1)), directions)


def _keras(recipe: Mapping[str, Any]) -> Loaded:
    kwargs = recipe["kwargs"]
    cell = _cell(recipe["class"])
    if cell == "lstm":
        conv = CONVENTIONS["keras.lstm"]
    else:
        conv = CONVENTIONS["keras.gru_reset_after" if kwargs.get("reset_after", True) else "keras.gru"]
    major = int(str(recipe.get("framework_version", "keras 3")).split()[-1].split(".")[0])
    gate, act = (
        _keras_name(kwargs.get(k, d), major) for k, d in (("recurrent_activation", "sigmoid"), ("activation", "tanh"))
    )
    if recipe.get("wrapper"):
        directions: tuple[Direction, ...] = DIRECTIONS
    else:
        directions = ("backward",) if kwargs.get("go_backwards") else ("forward",)
    activations = (gate, act, act) if cell == "lstm" else (gate, act)
    return Loaded(conv, LayerConfig(activations), int(recipe.get("layers", 1)), directions)


#: activation names Keras defines, of those an LSTM/GRU recipe may carry
_KERAS_NAMES = frozenset({"sigmoid", "tanh", "relu", "linear", "hard_sigmoid"})
#: TF1 cells' ``activation`` arguments (``tf.tanh``, ``tf.nn.relu``, ...) by canonical name
_TF1_NAMES = frozenset({"tanh", "relu", "linear", "sigmoid"})


def _keras_name(name: Any, major: int) -> str:
    if name not in _KERAS_NAMES:
        raise ValueError(f"Keras {major} has no activation named {name!r}")
    return keras_activation(name, major)


def _tf1(recipe: Mapping[str, Any]) -> Loaded:
    conv = CONVENTIONS[_TF1_CLASSES[recipe["class"]]]
    kwargs = recipe["kwargs"]
    act = kwargs.get("activation", "tanh")
    if act not in _TF1_NAMES:
        raise ValueError(f"TF1 cells take no activation named {act!r}")
    forget_bias = float(kwargs.get("forget_bias", conv.forget_bias)) if "forget_bias" in conv.runtime_constants else 0.0
    wrapper = str(recipe.get("wrapper", ""))
    config = LayerConfig(
        activations=("sigmoid", act, act) if conv.cell == "lstm" else ("sigmoid", act),
        forget_bias=forget_bias if conv.cell == "lstm" else 0.0,
        independent_directions=bool(recipe.get("independent_directions", False)),
    )
    directions = DIRECTIONS if "bidirectional" in wrapper else ("forward",)
    return Loaded(conv, config, int(recipe.get("levels", 1)), directions)


def _module_class(recipe: Mapping[str, Any], framework: str) -> Convention:
    """The target convention whose class the recipe names (``mlx.nn.LSTM``, ``hk.GRU``, ...)."""
    found = [c for c in targets(framework, "lstm") + targets(framework, "gru") if c.native == recipe["class"]]
    if len(found) != 1:
        raise ValueError(f"{framework} has no class {recipe['class']!r}")
    return found[0]


def _fixed_config(conv: Convention) -> LayerConfig:
    """A module whose activations and forget-gate constant are fixed by its framework (no
    constructor argument changes them): Haiku's LSTM always adds 1 to its forget gate."""
    forget_bias = conv.forget_bias if conv.forget_bias_rule == "fixed" else 0.0
    return LayerConfig(conv.default_activations, forget_bias=forget_bias)


def _single_cell(framework: str) -> Callable[[Mapping[str, Any]], Loaded]:
    """MLX ``nn.LSTM``/``nn.GRU`` and Equinox cells: one level, one direction."""

    def interpret(recipe: Mapping[str, Any]) -> Loaded:
        conv = _module_class(recipe, framework)
        return Loaded(conv, _fixed_config(conv), 1, ("forward",))

    return interpret


def _haiku(recipe: Mapping[str, Any]) -> Loaded:
    """``hk.LSTM``/``hk.GRU`` cores, ``levels`` of them in an ``hk.DeepRNN``, forward only."""
    conv = _module_class(recipe, "haiku")
    return Loaded(conv, _fixed_config(conv), int(recipe.get("levels", 1)), ("forward",))


def _paddle(recipe: Mapping[str, Any]) -> Loaded:
    """``paddle.nn.LSTM``/``GRU(num_layers, direction='forward'|'bidirect')``."""
    conv = _module_class(recipe, "paddle")
    kwargs = recipe["kwargs"]
    direction = kwargs.get("direction", "forward")
    if direction not in ("forward", "bidirect", "bidirectional"):
        raise ValueError(f"paddle RNNs take no direction {direction!r}")
    directions: tuple[Direction, ...] = ("forward",) if direction == "forward" else DIRECTIONS
    return Loaded(conv, _fixed_config(conv), int(kwargs.get("num_layers", 1)), directions)


_INTERPRETERS: dict[str, Callable[[Mapping[str, Any]], Loaded]] = {
    "pytorch": _pytorch,
    "onnx": _onnx,
    "keras": _keras,
    "tf1": _tf1,
    "mlx": _single_cell("mlx"),
    "haiku": _haiku,
    "paddle": _paddle,
    "equinox": _single_cell("equinox"),
}
