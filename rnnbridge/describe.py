"""Plain-data descriptions of layers, for ``/inspect`` and the response metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnnbridge.engine.canonical import to_canonical
from rnnbridge.engine.conventions import FRAMEWORK_TABLE, HARD_SIGMOID_KERAS3
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
        flags[FRAMEWORK_TABLE[conv.framework].reverse_flag] = True
    runtime = {}
    if conv.cell == "lstm" and (conv.forget_bias_rule != "none" or config.forget_bias):
        runtime["forget_bias"] = config.forget_bias
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
    "mlx": "mlx >= 0.18",
    "haiku": "dm-haiku 0.0.17",
    "paddle": "paddlepaddle 3",
    "equinox": "equinox (jax 0.10)",
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
    recipe = RECIPES[layer.convention.framework](layer, to_canonical(layer).dims(0))
    recipe["framework_version"] = FRAMEWORK_VERSIONS[layer.convention.framework]
    return recipe


def _pytorch_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    conv = layer.convention
    kwargs: dict[str, Any] = {"input_size": dims["I"], "hidden_size": dims["H"]}
    if "single_cell" not in conv.features:
        kwargs.update(num_layers=layer.num_levels, bidirectional=len(layer.directions) == 2)
        if conv.cell == "lstm":
            kwargs["proj_size"] = dims["P"]
    kwargs["bias"] = "bias" in stored_groups(layer)
    return {"class": f"torch.nn.{conv.native.split('.')[-1]}", "kwargs": kwargs}


def _onnx_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    conv, config = layer.convention, layer.config
    attrs: dict[str, Any] = {"hidden_size": dims["H"], "direction": _DIRECTION[layer.directions]}
    attrs.update(onnx_activation_attributes(config.activations, len(layer.directions)))
    if conv.cell == "gru":
        attrs["linear_before_reset"] = int(bool(conv.reset_after))
    if config.clip is not None:
        attrs["clip"] = config.clip
    if config.input_forget:
        attrs["input_forget"] = 1
    return {"op_type": conv.cell.upper(), "attributes": attrs, "nodes": layer.num_levels}


def _keras_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    conv, config = layer.convention, layer.config
    gate, act = (_KERAS3_NAMES.get(a, a) for a in config.activations[:2])
    kwargs: dict[str, Any] = {"units": dims["H"], "activation": act, "recurrent_activation": gate}
    kwargs["use_bias"] = "bias" in stored_groups(layer)
    if conv.cell == "gru":
        kwargs["reset_after"] = bool(conv.reset_after)
    if layer.directions == ("backward",):
        kwargs["go_backwards"] = True
    recipe = {"class": f"keras.layers.{conv.cell.upper()}", "kwargs": kwargs, "layers": layer.num_levels}
    if len(layer.directions) == 2:
        recipe["wrapper"] = "keras.layers.Bidirectional(merge_mode='concat')"
    return recipe


def _tf1_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    conv, config = layer.convention, layer.config
    kwargs: dict[str, Any] = {"num_units": dims["H"], "activation": config.activations[1]}
    if "forget_bias" in conv.runtime_constants:
        kwargs["forget_bias"] = config.forget_bias
    if conv.cell == "lstm":
        kwargs["use_peepholes"] = "peephole" in stored_groups(layer)
        if dims["P"]:
            kwargs["num_proj"] = dims["P"]
    recipe = {"class": conv.native.split(" / ")[0], "kwargs": kwargs, "levels": layer.num_levels}
    if layer.num_levels > 1:
        recipe["wrapper"] = "MultiRNNCell (variable scope multi_rnn_cell/cell_{k})"
    if len(layer.directions) == 2:
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


def _mlx_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    conv = layer.convention
    kwargs = {"input_size": dims["I"], "hidden_size": dims["H"], "bias": "bias" in stored_groups(layer)}
    load = "the module at attribute path `path` of the model; model.load_weights(<file>.safetensors)"
    if layer.dtype == "float64":
        load = (
            "the module at attribute path `path` of the model; MLX reads float64 from .npz only (its "
            "safetensors loader has no F64, and mx.load rejects the npz's text __meta__): "
            "model.load_weights([(k, mx.array(v)) for k, v in np.load(<file>.npz).items() if k != '__meta__'])"
        )
    return {"class": conv.native, "kwargs": kwargs, "path": layer.name, "load": load}


_HAIKU_LOAD = (
    "params = {}; for key, value in np.load(<file>.npz).items(): if key != '__meta__': module, name = "
    "key.rsplit('/', 1); params.setdefault(module, {})[name] = value"
)


def _haiku_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    canon = to_canonical(layer)
    cores = [f"hk.{layer.convention.cell.upper()}({canon.dims(k)['H']})" for k in range(layer.num_levels)]
    recipe: dict[str, Any] = {
        "class": layer.convention.native,
        "kwargs": {"hidden_size": dims["H"]},
        "levels": layer.num_levels,
        "cores": cores,
        "scope": "created inside an hk.Module named after the layer (names <layer>/~/lstm, lstm_1, ...), "
        "or at the top of hk.transform with prefix=''",
        "load": _HAIKU_LOAD,
    }
    if layer.num_levels > 1:
        recipe["wrapper"] = f"hk.DeepRNN([{', '.join(cores)}])"
    return recipe


def _paddle_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "input_size": dims["I"],
        "hidden_size": dims["H"],
        "num_layers": layer.num_levels,
        "direction": "bidirect" if len(layer.directions) == 2 else "forward",
    }
    if layer.convention.cell == "lstm" and dims["P"]:
        kwargs["proj_size"] = dims["P"]
    if "bias" not in stored_groups(layer):
        kwargs.update(bias_ih_attr=False, bias_hh_attr=False)
    return {
        "class": layer.convention.native,
        "kwargs": kwargs,
        "path": layer.name,
        "load": "model.set_state_dict(paddle.load(<file>.pdparams)) with the module at attribute path `path`; "
        "the file holds the per-cell keys, which name the same parameters as the flat weight_*_l{k} keys",
    }


def _equinox_recipe(layer: NativeLayer, dims: dict[str, int]) -> dict[str, Any]:
    return {
        "class": layer.convention.native,
        "kwargs": {"input_size": dims["I"], "hidden_size": dims["H"], "use_bias": "bias" in stored_groups(layer)},
        "load": "eqx.tree_deserialise_leaves(<file>.eqx, like) where like is a module whose array leaves are "
        "these cells in the order of the result's layers (one cell: like = the cell itself)",
    }


#: per framework: the module recipe of a layer in one of its conventions, from the layer
#: and the sizes of its first level (``H``, ``I``, ``P``, ``R``)
RECIPES: dict[str, Callable[[NativeLayer, dict[str, int]], dict[str, Any]]] = {
    "tf1": _tf1_recipe,
    "keras": _keras_recipe,
    "pytorch": _pytorch_recipe,
    "onnx": _onnx_recipe,
    "mlx": _mlx_recipe,
    "haiku": _haiku_recipe,
    "paddle": _paddle_recipe,
    "equinox": _equinox_recipe,
}


def stored_groups(layer: NativeLayer) -> set[str]:
    """The tensor groups (``core``, ``bias``, ``peephole``, ``projection``) the layer stores."""
    return {spec.group for cell in layer.cells.values() for spec in layer.convention.tensors if spec.name in cell}
