"""Plain-data descriptions of layers, for ``/inspect`` and the response metadata."""

from __future__ import annotations

from typing import Any

from rnnbridge.engine.canonical import to_canonical
from rnnbridge.engine.conventions import HARD_SIGMOID_KERAS3
from rnnbridge.engine.facts import hard_sigmoid_params
from rnnbridge.engine.model import NativeLayer, cell_order

_DIRECTION = {("forward",): "forward", ("backward",): "reverse", ("forward", "backward"): "bidirectional"}


def describe_layer(native: NativeLayer) -> dict[str, Any]:
    """One ``/inspect`` entry: convention, sizes, flags and the layer's tensors."""
    layer = to_canonical(native)
    dims = layer.dims(0)
    return {
        "name": native.name,
        "cell": native.convention.cell,
        "convention": native.convention.key,
        "native": native.convention.native,
        "input_size": dims["I"],
        "units": dims["H"],
        "proj_size": dims["P"],
        "num_layers": layer.num_levels,
        "directions": len(layer.directions),
        "direction": _DIRECTION[layer.directions],
        **describe_config(native),
        "dtype": str(native.dtype),
        "tensors": [
            {
                "name": native.origin.get((level, direction, tensor), f"l{level}/{direction}/{tensor}"),
                "role": tensor,
                "level": level,
                "direction": direction,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
            }
            for (level, direction), tensors in sorted(native.cells.items(), key=lambda item: cell_order(item[0]))
            for tensor, array in tensors.items()
        ],
    }


def describe_config(native: NativeLayer) -> dict[str, Any]:
    """Flags, run-time constants and notes of a native layer."""
    conv, config = native.convention, native.config
    names = ("gate", "cell", "hidden") if conv.cell == "lstm" else ("gate", "candidate")
    flags: dict[str, Any] = {"activations": dict(zip(names, config.activations))}
    if conv.reset_after is not None:
        flags["reset_after"] = conv.reset_after
    groups = stored_groups(native)
    flags.update(peepholes="peephole" in groups, projection="projection" in groups, bias="bias" in groups)
    if config.clip is not None:
        flags["clip"] = config.clip
    if config.input_forget:
        flags["input_forget"] = True
    if config.independent_directions:
        flags["independent_directions"] = True
    if {d for _, d in native.cells} == {"backward"}:
        flags["go_backwards" if conv.framework == "keras" else "reverse_only"] = True
    runtime = {"forget_bias": config.forget_bias} if conv.cell == "lstm" and conv.framework == "tf1" else {}
    return {
        "config": {
            "activations": list(config.activations),
            "forget_bias": config.forget_bias,
            "clip": config.clip,
            "input_forget": config.input_forget,
            "independent_directions": config.independent_directions,
        },
        "flags": flags,
        "runtime_constants": runtime,
        "assumed": [assumption.as_dict() for assumption in config.assumed],
        "notes": list(native.notes),
    }


#: the framework versions whose vocabulary a module recipe's names are in
FRAMEWORK_VERSIONS = {
    "pytorch": "torch 2",
    "onnx": "onnx opset 14",
    "keras": "keras 3",
    "tf1": "tensorflow 1",
}
_ONNX_NAMES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
_KERAS3_NAMES = {HARD_SIGMOID_KERAS3: "hard_sigmoid"}


def onnx_activation_attributes(activations: tuple[str, ...], directions: int) -> dict[str, list]:
    """ONNX ``activations`` (+ ``activation_alpha``/``activation_beta``) computing ``activations``.

    ``HardSigmoid`` and ``Affine`` take (alpha, beta), written out in full; the lists hold
    one pair per such activation, in order, as ONNX reads them.
    """
    names: list[str] = []
    alphas: list[float] = []
    betas: list[float] = []
    for name in activations * directions:
        params = hard_sigmoid_params(name)
        if params is not None:
            names.append("HardSigmoid")
        elif name == "linear":
            names.append("Affine")
            params = (1.0, 0.0)
        else:
            names.append(_ONNX_NAMES[name])
            continue
        alphas.append(params[0])
        betas.append(params[1])
    out: dict[str, list] = {"activations": names}
    if alphas:
        out.update(activation_alpha=alphas, activation_beta=betas)
    return out


def module_recipe(layer: NativeLayer) -> dict[str, Any]:
    """How to build the module that loads these tensors, in the target framework's terms.

    Names are in the vocabulary of the framework version in ``framework_version`` (Keras
    3's ``hard_sigmoid`` is clip(x/6 + 0.5, 0, 1); ONNX ``HardSigmoid`` comes with its
    ``activation_alpha``/``activation_beta``). ``rnnbridge.engine.loading`` reads a recipe
    back the way that framework would, and verification runs what it reads.
    """
    recipe = _recipe(layer)
    recipe["framework_version"] = FRAMEWORK_VERSIONS[layer.convention.framework]
    return recipe


def _recipe(layer: NativeLayer) -> dict[str, Any]:
    conv, config = layer.convention, layer.config
    dims = to_canonical(layer).dims(0)
    bidirectional = len(layer.directions) == 2
    cell = conv.cell.upper()
    if conv.framework == "pytorch":
        kwargs: dict[str, Any] = {"input_size": dims["I"], "hidden_size": dims["H"]}
        if "single_cell" not in conv.features:
            kwargs.update(num_layers=layer.num_levels, bidirectional=bidirectional)
            if conv.cell == "lstm":
                kwargs["proj_size"] = dims["P"]
        kwargs["bias"] = "bias" in stored_groups(layer)
        return {"class": f"torch.nn.{conv.native.split('.')[-1]}", "kwargs": kwargs}
    if conv.framework == "onnx":
        attrs: dict[str, Any] = {"hidden_size": dims["H"], "direction": _DIRECTION[layer.directions]}
        attrs.update(onnx_activation_attributes(config.activations, len(layer.directions)))
        if conv.cell == "gru":
            attrs["linear_before_reset"] = int(bool(conv.reset_after))
        if config.clip is not None:
            attrs["clip"] = config.clip
        if config.input_forget:
            attrs["input_forget"] = 1
        return {"op_type": cell, "attributes": attrs, "nodes": layer.num_levels}
    if conv.framework == "keras":
        gate, act = (_KERAS3_NAMES.get(a, a) for a in config.activations[:2])
        kwargs = {"units": dims["H"], "activation": act, "recurrent_activation": gate}
        kwargs["use_bias"] = "bias" in stored_groups(layer)
        if conv.cell == "gru":
            kwargs["reset_after"] = bool(conv.reset_after)
        if layer.directions == ("backward",):
            kwargs["go_backwards"] = True
        recipe = {"class": f"keras.layers.{cell}", "kwargs": kwargs, "layers": layer.num_levels}
        if bidirectional:
            recipe["wrapper"] = "keras.layers.Bidirectional(merge_mode='concat')"
        return recipe
    kwargs = {"num_units": dims["H"], "activation": config.activations[1]}
    if "forget_bias" in conv.runtime_constants:
        kwargs["forget_bias"] = config.forget_bias
    if conv.cell == "lstm":
        kwargs["use_peepholes"] = "peephole" in stored_groups(layer)
        if dims["P"]:
            kwargs["num_proj"] = dims["P"]
    recipe = {"class": conv.native.split(" / ")[0], "kwargs": kwargs, "levels": layer.num_levels}
    if layer.num_levels > 1:
        recipe["wrapper"] = "MultiRNNCell (variable scope multi_rnn_cell/cell_{k})"
    if bidirectional:
        recipe["wrapper"] = "bidirectional_dynamic_rnn (scopes fw/, bw/)"
        if layer.num_levels > 1:
            recipe["wrapper"] = (
                "bidirectional_dynamic_rnn of two MultiRNNCell stacks (scopes fw/multi_rnn_cell/cell_{k}, bw/...)"
                if config.independent_directions
                else "stack_bidirectional_dynamic_rnn (scopes cell_{k}/bidirectional_rnn/fw/, bw/)"
            )
    if config.independent_directions:
        recipe["independent_directions"] = True
    return recipe


def stored_groups(layer: NativeLayer) -> set[str]:
    """The tensor groups (``core``, ``bias``, ``peephole``, ``projection``) the layer stores."""
    return {spec.group for cell in layer.cells.values() for spec in layer.convention.tensors if spec.name in cell}
