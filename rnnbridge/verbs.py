"""The three questions people ask of a layer, as Python verbs: where is each gate
(``explain``), what does it compute (``run``), and a fresh one, initialised gate by gate
(``init``)::

    >>> import rnnbridge
    >>> doc = rnnbridge.explain(None, convention="tf1.lstm", input_size=3, units=5)
    >>> doc["layers"][0]["cells"][0]["gates"][0]["numpy"]
    'kernel[:3, :5].T'
    >>> result = rnnbridge.init("pytorch", cell="lstm", input_size=3, units=5, seed=0)
    >>> sorted(result.arrays)[0]
    'lstm.bias_hh_l0'

The HTTP routes (``/explain``, ``/run``, ``/init``) and the CLI subcommands of the same
names are thin translations of these functions. Nothing here knows about HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnbridge import outputs
from rnnbridge.describe import describe_config, module_recipe
from rnnbridge.engine import canonical, exactness, facts, naming
from rnnbridge.engine import init as init_engine
from rnnbridge.engine import run as run_engine
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORK_TABLE, TARGET_FRAMEWORKS, candidates, native_letter
from rnnbridge.engine.equations import equations
from rnnbridge.engine.explain import gate_map, recipe, split_snippet, target_snippet
from rnnbridge.engine.expressions import DIALECTS
from rnnbridge.engine.model import LayerConfig, NativeLayer
from rnnbridge.errors import InexactConversion, InvalidField, LimitExceeded
from rnnbridge.explain_text import render as explanation_text
from rnnbridge.formats.base import Limits
from rnnbridge.formats.user_arrays import SINGLE, load
from rnnbridge.inputs import Inputs
from rnnbridge.pipeline import Model, _checked_scope, _model, _select, _target_forget_bias, _with_forget_bias
from rnnbridge.result import LayerResult, Result

DTYPES = ("float16", "float32", "float64")
#: levels of a layer described by sizes (each is a cell to build, and tensors to name)
MAX_LEVELS = 64


@dataclass(frozen=True)
class Bounds:
    """What one request may make the engine allocate or compute (the service's settings).

    ``max_weights``: weights of a layer described by sizes (/explain without a file, /init);
    ``max_elements``: elements of one user array and of a /run output or trace;
    ``max_steps_weights``: steps × batch × weights of a /run (its multiply-adds).
    """

    max_weights: int = 2**26
    max_elements: int = 2**24
    max_steps_weights: int = 2**32
    max_bytes: int = 256 * 1024**2


def load_arrays(
    path: str | os.PathLike[str], what: str, bounds: Bounds | None = None, limits: Limits | None = None
) -> dict[str, np.ndarray]:
    """The arrays of one user file for ``run`` (``x``, ``h0``, ``c0``, ``expected``): an
    ``.npy`` (named ``"array"``), an ``.npz`` or JSON, recognised by content, read without
    unpickling and within ``bounds`` (``rnnbridge.formats.user_arrays``); in a reader
    process, bounded in time and memory, with ``limits.isolate`` (as the service reads)."""
    bounds = bounds or Bounds()
    return load(Path(path), what, max_bytes=bounds.max_bytes, max_elements=bounds.max_elements, limits=limits)


# --- explain ------------------------------------------------------------------------------


def explain(
    model: Model | Inputs | None,
    *,
    layer: str | None = None,
    target: str | None = None,
    orientation: str = "out_in",
    source_forget_bias: float | None = None,
    target_forget_bias: float | None = None,
    prefix: str | None = None,
    format: str | None = None,
    scope: str | None = None,
    bounds: Bounds | None = None,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    strict: bool = False,
    activations: str | None = None,
    clip: str | float | None = None,
    input_forget: bool | None = None,
    names: str | Mapping[str, str] | None = None,
    **sizes: Any,
) -> dict[str, Any]:
    """The gate map of each layer of ``model``, or, with ``model=None``, of a layer given by
    ``sizes`` (``convention``, ``input_size``, ``units``, and optionally ``proj_size``,
    ``num_layers``, ``bidirectional``, ``peepholes``, ``bias``, ``dtype``, ``name``).

    Per layer: ``equations`` (the framework's gate letters), ``letters`` (canonical ->
    the framework's), ``variables`` (expression identifier -> tensor name in the file),
    ``cells`` (per level and direction: the stored ``tensors`` and every /split array's
    ``gates`` entry with its ``numpy`` / ``torch`` / ``tensorflow`` expression), ``snippets``
    (programs splitting the fused tensors by hand) and, with ``target``, ``target``: the
    /convert recipe of every target tensor, or ``refused`` with the reason.

    ``model`` is a ``Model``, the files to read (with ``source``, ``direction``,
    ``reset_after``, ``limits`` and the stated facts ``activations``, ``clip``,
    ``input_forget``, ``names``, as for ``rnnbridge.read``) or None. ``format``: the output
    format the target would be written in, checked against ``target`` as /convert checks it
    (``h5`` Keras, ``onnx`` ONNX, ``tf_checkpoint`` TF1 only); with ``tf_checkpoint`` each
    target tensor also gets ``checkpoint_variable``, its name in the checkpoint (``scope`` as for
    /convert). Assumed facts are listed per layer (``assumed``); ``strict=True`` refuses
    them, and an ambiguous one is refused when a ``target`` recipe depends on it.
    """
    if orientation not in ("out_in", "in_out"):
        raise InvalidField(f"orientation must be 'out_in' or 'in_out', not {orientation!r}", field="orientation")
    if target is not None and target not in TARGET_FRAMEWORKS:
        raise InvalidField(f"target must be one of {list(TARGET_FRAMEWORKS)}, not {target!r}", field="target")
    if prefix is not None and (target is None or not FRAMEWORK_TABLE[target].prefix):
        takers = [key for key, framework in FRAMEWORK_TABLE.items() if framework.prefix]
        raise InvalidField(f"prefix applies to target={' or '.join(takers)} only", field="prefix")
    if format is not None:
        outputs.check_format(format, target)
    if scope is not None:
        if format != "tf_checkpoint":
            raise InvalidField("scope names the variables of format=tf_checkpoint (target=tf1)", field="scope")
        scope = _checked_scope(scope, target or "")
    source_forget_bias = facts.finite(source_forget_bias, "source_forget_bias")
    target_forget_bias = facts.finite(target_forget_bias, "target_forget_bias")
    data = model is not None
    reading = {"activations": activations, "clip": clip, "input_forget": input_forget, "names": names}
    if model is None:
        if any(v is not None for v in (source, direction, reset_after, *reading.values())):
            raise InvalidField("source, direction, reset_after and stated facts apply to a file", field="file")
        model = Model("sizes", [layer_from_sizes(bounds or Bounds(), **sizes)], 0)
    elif sizes:
        raise InvalidField(f"{sorted(sizes)[0]} describes a layer without a file: send one or the other", field="file")
    else:
        model = _model(model, source, direction, reset_after, limits, None, reading)
    layers = []
    for native in _select(model, layer):
        native = _with_forget_bias(native, source_forget_bias)
        facts.required(native, strict, ambiguous=target is not None)
        layers.append(_explain_layer(native, target, target_forget_bias, orientation, prefix, data))
    if format == "tf_checkpoint":
        _checkpoint_variables(layers, scope)
    return {"layers": layers, "notes": list(model.notes), "orientation": orientation}


def _checkpoint_variables(layers: list[dict[str, Any]], scope: str | None) -> None:
    """Give each TF1 target tensor its variable name in a ``tf_checkpoint`` output
    (``rnnbridge.formats.tf.writer.variable_names``, as /convert would write it)."""
    from rnnbridge.formats.tf.writer import variable_names

    converted = [doc for doc in layers if doc["target"] is not None and "tensors" in doc["target"]]
    meta: dict[str, Any] = {"target": "tf1", "scope": scope, "layers": []}
    for doc in converted:
        target, conv = doc["target"], CONVENTIONS[doc["target"]["convention"]]
        tensors = [tensor["name"] for tensor in target["tensors"]]
        cells = {(cell["level"], cell["direction"]) for cell in doc["cells"]}
        meta["layers"].append(
            {
                "name": doc["name"],
                "tensors": tensors,
                "target": {
                    "convention": conv.key,
                    "num_layers": 1 + max(level for level, _ in cells),
                    "directions": sorted({d for _, d in cells}, key=("forward", "backward").index),
                    "config": {"independent_directions": doc["config"]["independent_directions"]},
                    "names_start": target["names_start"],
                },
            }
        )
    if not meta["layers"]:
        return
    found = variable_names(meta)
    for doc in converted:
        for tensor in doc["target"]["tensors"]:
            tensor["checkpoint_variable"] = found[tensor["name"]]


def _explain_layer(
    native: NativeLayer, target: str | None, target_forget_bias: float | None, orientation: str, prefix, data: bool
) -> dict[str, Any]:
    conv = native.convention
    cells, variables = gate_map(native, orientation=orientation)
    stored = {spec.group for cell in native.cells.values() for spec in conv.tensors if spec.name in cell}
    doc: dict[str, Any] = {
        "name": native.name,
        "convention": conv.key,
        "native": conv.native,
        "cell": conv.cell,
        "letters": {g: native_letter(conv, g) for g in canonical.gate_letters(conv.cell)},
        "equations": equations(conv, native.config, peepholes="peephole" in stored, projection="projection" in stored),
        **describe_config(native),
        "variables": variables,
        "cells": cells,
        "snippets": {dialect: split_snippet(cells, variables, dialect) for dialect in DIALECTS},
        "target": None,
    }
    if target is not None:
        doc["target"] = _target_doc(native, target, target_forget_bias, prefix, data)
    return doc


def _target_doc(native: NativeLayer, target: str, forget_bias: float | None, prefix, data: bool) -> dict[str, Any]:
    layer = canonical.to_canonical(native)
    try:
        conv = exactness.select_target(layer, target)
        exactness.check(layer, conv)
        bias = _target_forget_bias(native, conv, forget_bias)
        if data:
            canonical.check_fold(layer, conv, bias)
        tensors = recipe(native, layer, conv, bias, prefix=prefix, data=data)
    except InexactConversion as exc:
        return {"framework": target, "refused": {"code": exc.code, "detail": exc.detail}}
    return {
        "framework": target,
        "convention": conv.key,
        "native": conv.native,
        "forget_bias": bias,
        "letters": {g: native_letter(conv, g) for g in canonical.gate_letters(conv.cell)},
        "names_start": naming.head(native.name, conv, prefix),
        "tensors": tensors,
        "snippets": {dialect: target_snippet(tensors, dialect) for dialect in DIALECTS},
    }


def layer_from_sizes(
    bounds: Bounds,
    *,
    convention: str | None = None,
    input_size: int | None = None,
    units: int | None = None,
    proj_size: int = 0,
    num_layers: int = 1,
    bidirectional: bool = False,
    peepholes: bool = False,
    bias: bool = True,
    dtype: str = "float32",
    name: str = "layer",
) -> NativeLayer:
    """A layer of ``convention`` with these sizes, its tensors read-only zeros that take no
    memory (``np.broadcast_to``): enough for everything /explain derives from shapes."""
    if convention is None:
        raise InvalidField(
            "send a weight file (file=), or describe the layer: convention, input_size and units", field="file"
        )
    if convention not in CONVENTIONS:
        raise InvalidField(f"convention must be one of {sorted(CONVENTIONS)}, not {convention!r}", field="convention")
    conv = CONVENTIONS[convention]
    if input_size is None or units is None:
        raise InvalidField("input_size and units are required without a file", field="units")
    shape = _shape(
        conv.cell,
        conv.reset_after,
        input_size,
        units,
        num_layers,
        bidirectional,
        proj_size,
        peepholes,
        "independent_directions" in conv.features,
    )
    _check_weights(shape, bounds)
    if dtype not in DTYPES:
        raise InvalidField(f"dtype must be one of {list(DTYPES)}", field="dtype")
    asked = {"core": True, "bias": bias, "peephole": peepholes, "projection": bool(proj_size)}
    groups = {group for group, wanted in asked.items() if wanted}
    for group, wanted in (("peephole", peepholes), ("projection", proj_size)):
        if wanted and not any(spec.group == group for spec in conv.tensors):
            raise InvalidField(
                f"{conv.native} has no {group}", field="peepholes" if group == "peephole" else "proj_size"
            )
    if not bias and "no_bias" not in conv.features:
        raise InvalidField(f"{conv.native} always stores biases", field="bias")
    zero = np.zeros((), dtype)
    cells = {}
    for level in range(num_layers):
        dims = shape.dims(level)
        for direction in shape.directions:
            cells[(level, direction)] = {
                spec.name: np.broadcast_to(zero, spec.shape(dims)) for spec in conv.tensors if spec.group in groups
            }
    config = LayerConfig(
        conv.default_activations, forget_bias=conv.forget_bias, independent_directions=shape.independent_directions
    )
    return NativeLayer(name, conv, config, cells)


def _shape(cell, reset_after, input_size, units, num_layers, bidirectional, proj_size, peepholes, independent):
    for field, value, low in (
        ("input_size", input_size, 1),
        ("units", units, 1),
        ("num_layers", num_layers, 1),
        ("proj_size", proj_size, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidField(f"{field} must be an integer >= {low}, not {value!r}", field=field)
    if num_layers > MAX_LEVELS:
        raise InvalidField(f"num_layers must be at most {MAX_LEVELS}", field="num_layers")
    if proj_size and cell != "lstm":
        raise InvalidField("proj_size applies to LSTMs", field="proj_size")
    if proj_size >= units:
        raise InvalidField(f"proj_size must be below units ({units})", field="proj_size")
    return init_engine.Shape(
        cell,
        input_size,
        units,
        num_layers,
        bool(bidirectional),
        proj_size,
        bool(peepholes),
        reset_after,
        independent and bool(bidirectional),
    )


def _check_weights(shape: init_engine.Shape, bounds: Bounds) -> None:
    weights = shape.weights()
    if weights > bounds.max_weights:
        raise LimitExceeded(
            f"a layer of {weights:,} weights is over the limit of {bounds.max_weights:,} "
            "(RNNBRIDGE_MAX_INIT_WEIGHTS): ask for fewer units, levels or inputs",
            field="units",
        )


# --- run ----------------------------------------------------------------------------------


def run(
    model: Model | Inputs,
    *,
    layer: str | None = None,
    x: np.ndarray | None = None,
    steps: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    time_major: bool | None = None,
    dtype: str = "float32",
    trace: bool = False,
    expected: Mapping[str, np.ndarray] | None = None,
    tolerance: float | None = None,
    source_forget_bias: float | None = None,
    bounds: Bounds | None = None,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    strict: bool = False,
    **facts_stated: Any,
) -> Result:
    """The forward pass of one layer, as its framework computes and lays it out.

    ``x``: the input, [B, T, I] or, with ``time_major`` (the framework's default when
    ``None``: PyTorch and ONNX yes, TF1 and Keras no), [T, B, I]; or ``steps``, ``batch``
    and ``seed`` for ``x ~ N(0, 1)``. ``h0``, ``c0``: initial states [L·D, B, Hout] /
    [L·D, B, H] (zeros if ``None``). ``dtype``: ``float32`` computes as the frameworks do,
    ``float64`` gives the exact function. ``trace=True`` adds ``trace/l{k}/{direction}/...``
    arrays (``pre/{g}``, ``act/{g}`` by the framework's gate letters, ``cell_state``,
    ``hidden``; [T, B, ·], input time). ``expected``: the user's own outputs by name
    (``"array"`` for the output sequence), compared in ``meta["divergence"]``.

    Returns the outputs by the framework's own names (``output``/``h_n``/``c_n``,
    ``Y``/``Y_h``/``Y_c``, ``sequence``/``state_h``/..., ``outputs``/``state_c``/...) with
    ``meta["axes"]`` naming each one's axes, and ``meta["assumed"]`` the facts the layer's
    function was assumed to have (an ambiguous one is refused, every one with ``strict``).

    ``model`` is a ``Model`` or the files to read, with ``source``, ``direction``,
    ``reset_after``, ``limits`` and the stated facts (``activations``, ``clip``,
    ``input_forget``, ``names``) as for ``rnnbridge.read``.
    """
    bounds = bounds or Bounds()
    source_forget_bias = facts.finite(source_forget_bias, "source_forget_bias")
    model = _model(model, source, direction, reset_after, limits, None, facts_stated)
    natives = _select(model, layer)
    if len(natives) > 1:
        names = [n.name for n in natives]
        raise InvalidField(f"/run runs one layer: choose it with layer= (the file has {names})", field="layer")
    native = _with_forget_bias(natives[0], source_forget_bias)
    facts.required(native, strict)
    if dtype not in ("float32", "float64"):
        raise InvalidField("dtype must be float32 or float64", field="dtype")
    compute = np.dtype(dtype)
    layout = run_engine.layout_of(native)
    time_major = layout.time_major if time_major is None else bool(time_major)
    first = canonical.to_canonical(native)
    xs = _input(x, steps, batch, seed, first.dims(0)["I"], time_major, bounds)
    _check_cost(native, xs, bounds)
    h0, c0 = _states(first, native, h0, c0, xs.shape[1])
    computed, axes = run_engine.forward(native, xs.astype(compute), h0, c0, time_major=time_major, dtype=compute)
    arrays = dict(computed)
    if trace:
        _check_trace_size(first, xs, bounds)
        traced = run_engine.trace(native, xs.astype(compute), h0, c0, compute)
        arrays.update({f"trace/{name}": a for name, a in traced.items()})
    meta = _run_meta(native, dtype, time_major, xs, axes)
    if x is None:
        meta["random_input"] = {"steps": xs.shape[0], "batch": xs.shape[1], "seed": seed, "law": "N(0, 1)"}
        arrays["x"] = np.ascontiguousarray(xs if time_major else np.swapaxes(xs, 0, 1)).astype(compute)
    if expected:
        wanted = {(layout.sequence if k == SINGLE else k): v for k, v in expected.items()}
        tol = (1e-5 if dtype == "float32" else 1e-6) if tolerance is None else tolerance
        units = [first.dims(first.num_levels - 1)["R"]] * len(first.directions)
        meta["divergence"] = run_engine.first_divergence(computed, axes, wanted, tol, units)
    layers = [LayerResult(native.name, native.convention, None, tuple(arrays))]
    return Result(arrays, meta, layers, input_name=model.input_name)


def _check_cost(native: NativeLayer, xs: np.ndarray, bounds: Bounds) -> None:
    weights = sum(a.size for cell in native.cells.values() for a in cell.values())
    cost = xs.shape[0] * xs.shape[1] * weights
    if cost > bounds.max_steps_weights:
        raise LimitExceeded(
            f"steps x batch x weights = {cost:,} is over the limit of {bounds.max_steps_weights:,}", field="x"
        )


def _run_meta(native: NativeLayer, dtype: str, time_major: bool, xs: np.ndarray, axes) -> dict[str, Any]:
    conv = native.convention
    return {
        "layer": native.name,
        "convention": conv.key,
        "native": conv.native,
        **describe_config(native),
        "dtype": dtype,
        "time_major": time_major,
        "input_shape": list(xs.shape if time_major else (xs.shape[1], xs.shape[0], xs.shape[2])),
        "axes": {name: list(a) for name, a in axes.items()},
        "letters": {g: native_letter(conv, g) for g in canonical.gate_letters(conv.cell)},
        "divergence": None,
    }


def _input(x, steps, batch, seed, inputs: int, time_major: bool, bounds: Bounds) -> np.ndarray:
    """The time-major input [T, B, I], given or drawn."""
    if x is None:
        if steps is None or batch is None:
            raise InvalidField("send x, or steps and batch for a random input", field="x")
        for name, value in (("steps", steps), ("batch", batch)):
            if not isinstance(value, int) or value < 1:
                raise InvalidField(f"{name} must be a positive integer", field=name)
        if steps * batch * inputs > bounds.max_elements:
            raise LimitExceeded(f"steps x batch x input_size is over {bounds.max_elements:,}", field="steps")
        return np.random.default_rng(seed).standard_normal((steps, batch, inputs))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :] if time_major else x[None]
    if x.ndim != 3 or x.shape[-1] != inputs or 0 in x.shape:
        order = "[T, B, I]" if time_major else "[B, T, I]"
        raise InvalidField(f"x has shape {list(x.shape)}; this layer reads {order} with I = {inputs}", field="x")
    return x if time_major else np.swapaxes(x, 0, 1)


def _states(layer, native: NativeLayer, h0, c0, batch: int):
    count = layer.num_levels * len(layer.directions)
    dims = [layer.dims(level) for level in range(layer.num_levels) for _ in layer.directions]
    out: list[np.ndarray | None] = []
    for name, given, size in (("h0", h0, "R"), ("c0", c0, "H")):
        if given is None:
            out.append(None)
            continue
        if name == "c0" and native.convention.cell != "lstm":
            raise InvalidField("c0 is an LSTM's initial cell state; a GRU has none", field="c0")
        given = np.asarray(given, dtype=np.float64)
        if given.ndim == 2 and count == 1:
            given = given[None]
        want = [(batch, d[size]) for d in dims]
        if len(given) != count or any(g.shape != w for g, w in zip(given, want)):
            raise InvalidField(
                f"{name} has shape {list(given.shape)}; this layer's is [L*D = {count}, B = {batch}, {want[0][1]}]",
                field=name,
            )
        out.append(given)
    return out[0], out[1]


def _check_trace_size(layer, xs, bounds: Bounds) -> None:
    gates = len(canonical.gate_letters(layer.cell))
    total = sum(
        xs.shape[0] * xs.shape[1] * (2 * gates + 2) * layer.dims(level)["H"] * len(layer.directions)
        for level in range(layer.num_levels)
    )
    if total > bounds.max_elements:
        raise LimitExceeded(f"a trace of {total:,} values is over the limit of {bounds.max_elements:,}", field="trace")


# --- init ---------------------------------------------------------------------------------


def init(
    target: str,
    *,
    cell: str = "lstm",
    input_size: int,
    units: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    reset_after: bool | None = None,
    proj_size: int = 0,
    peepholes: bool = False,
    input_initializer: str = "glorot_uniform",
    recurrent_initializer: str = "orthogonal",
    bias_initializer: str | None = None,
    seed: int = 0,
    dtype: str = "float32",
    name: str | None = None,
    prefix: str | None = None,
    target_forget_bias: float | None = None,
    format: str | None = None,
    scope: str | None = None,
    bounds: Bounds | None = None,
) -> Result:
    """A freshly initialised layer in ``target``'s own fused tensors (see
    ``rnnbridge.engine.init`` for the initializers), named and described like /convert's
    output (``meta["layers"][0]["target"]["module"]`` builds the module that loads it).

    ``target``: a framework, or a convention key (``tf1.cudnn_gru``). ``reset_after``
    (GRU): default the framework's own default variant. ``bias_initializer``: default
    ``unit_forget_bias`` for an LSTM, ``zeros`` for a GRU. The same arguments give the
    same arrays, bit for bit (and, written, the same bytes).

    ``format`` (a key of ``rnnbridge.outputs.OUTPUTS``) is checked against the target
    before the work and becomes the result's default for ``Result.save``: every format
    ``/convert`` can write for that target (``h5`` Keras, ``onnx`` ONNX, ``tf_checkpoint``
    TF1, with ``scope`` its variable scope). The default output name is
    ``init.<framework>.<ext>``.
    """
    bounds = bounds or Bounds()
    conv = _init_convention(target, cell, reset_after)
    if format is not None:
        outputs.check_format(format, conv.framework)
    if scope is not None:
        scope = _checked_scope(scope, conv.framework)
    if prefix is not None and not FRAMEWORK_TABLE[conv.framework].prefix:
        takers = [key for key, framework in FRAMEWORK_TABLE.items() if framework.prefix]
        raise InvalidField(f"prefix applies to target={' or '.join(takers)} only", field="prefix")
    shape = _shape(
        conv.cell,
        conv.reset_after,
        input_size,
        units,
        num_layers,
        bidirectional,
        proj_size,
        peepholes,
        "independent_directions" in conv.features,
    )
    for feature, asked, field in (("projection", proj_size, "proj_size"), ("peepholes", peepholes, "peepholes")):
        if asked and feature not in conv.features:
            raise InvalidField(f"{conv.native} has no {feature}", field=field)
    _check_weights(shape, bounds)
    if dtype not in DTYPES:
        raise InvalidField(f"dtype must be one of {list(DTYPES)}", field="dtype")
    if not isinstance(seed, int) or seed < 0:
        raise InvalidField("seed must be a non-negative integer", field="seed")
    scheme = init_engine.Scheme(
        init_engine.parse(input_initializer, "input", init_engine.INPUT_KINDS),
        init_engine.parse(recurrent_initializer, "recurrent", init_engine.RECURRENT_KINDS),
        init_engine.parse(
            bias_initializer or ("unit_forget_bias" if conv.cell == "lstm" else "zeros"), "bias", init_engine.BIAS_KINDS
        ),
    )
    layer = init_engine.initialise(shape, scheme, conv, seed, np.dtype(dtype), name or conv.cell)
    forget_bias = _target_forget_bias(layer, conv, facts.finite(target_forget_bias, "target_forget_bias"))
    out, folded = canonical.from_canonical(layer, conv, forget_bias)
    arrays = naming.tensor_names(out, prefix)
    meta_layer = {
        "name": out.name,
        "target": {
            "convention": conv.key,
            "native": conv.native,
            "num_layers": out.num_levels,
            "directions": list(out.directions),
            "names_start": naming.head(out.name, conv, prefix),
            "module": module_recipe(out),
            **describe_config(out),
        },
        "init": {
            "input": str(scheme.input),
            "recurrent": str(scheme.recurrent),
            "bias": str(scheme.bias),
            "seed": seed,
            "dtype": dtype,
            "per_gate_block": True,
        },
        "folded": folded,
        "tensors": list(arrays),
    }
    head = {"target": conv.framework} if scope is None else {"target": conv.framework, "scope": scope}
    meta = {**head, "layers": [meta_layer], "notes": [], "bfloat16": []}
    layers = [LayerResult(out.name, out.convention, out.convention, tuple(arrays))]
    return Result(arrays, meta, layers, format=format, input_name="init")


def _init_convention(target: str, cell: str, reset_after: bool | None):
    if cell not in ("lstm", "gru"):
        raise InvalidField(f"cell must be lstm or gru, not {cell!r}", field="cell")
    if target in CONVENTIONS:
        conv = CONVENTIONS[target]
        if conv.source_only:
            raise InvalidField(f"{target} is read, never written", field="target")
        if conv.cell != cell or (reset_after is not None and conv.cell == "gru" and conv.reset_after != reset_after):
            raise InvalidField(f"{target} is not a {cell} of that variant", field="target")
        return conv
    if target not in TARGET_FRAMEWORKS:
        raise InvalidField(f"target must be a framework {list(TARGET_FRAMEWORKS)} or a convention key", field="target")
    if cell == "gru" and reset_after is None:
        reset_after = init_engine.DEFAULT_RESET_AFTER[target]
    found = candidates(target, cell, reset_after if cell == "gru" else None)
    if not found:
        raise InvalidField(
            f"{target} has no {'reset-after' if reset_after else 'reset-before'} GRU", field="reset_after"
        )
    return found[0]


__all__ = [
    "SINGLE",
    "Bounds",
    "explain",
    "explanation_text",
    "init",
    "layer_from_sizes",
    "load_arrays",
    "run",
]
