"""Which target convention a layer converts into, and every reason it may not.

A conversion must compute the same function as its source (up to float rounding). Each
rule below refuses, with a stable code, a layer whose function the target cannot express,
and says what would make it possible.

============================  =====================================================
code                          refused when
============================  =====================================================
gru_variant_mismatch          reset-before and reset-after GRUs meet
peepholes_unsupported         the layer has peepholes and the target has none
projection_unsupported        the layer projects its output and the target cannot
clip_unsupported              ONNX ``clip`` into a target without it
input_forget_unsupported      ONNX ``input_forget=1`` into a target without it
activation_unsupported        an activation the target cannot express
reverse_only_unsupported      one backward direction into PyTorch or TF1
topology_unsupported          a layer shape the target has no module for
target_unavailable            the target framework has no module of this cell kind
inexact_fold                  a run-time forget constant cannot be folded exactly in the
                              stored dtype (float16) (raised by ``canonical.from_canonical``)
============================  =====================================================
"""

from __future__ import annotations

from rnnbridge.engine.conventions import (
    ANY_HARD_SIGMOID,
    CONVENTIONS,
    FRAMEWORK_TABLE,
    FRAMEWORKS,
    Convention,
    candidates,
    frameworks_with,
    frameworks_with_bidirectional,
    targets,
)
from rnnbridge.engine.model import Layer
from rnnbridge.errors import InexactConversion


def select_target(layer: Layer, framework: str) -> Convention:
    """The convention of ``framework`` that ``layer`` converts into.

    The layer's own convention when the framework is its source's (so TF1 cuDNN-compatible
    cells and PyTorch ``LSTMCell`` keep their form), else the framework's preferred one for
    this cell and GRU variant.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}")
    own = CONVENTIONS.get(layer.source)
    if own is not None and own.framework == framework and not own.source_only:
        if "single_cell" not in own.features or (layer.num_levels == 1 and len(layer.directions) == 1):
            return own
    found = candidates(framework, layer.cell, layer.reset_after)
    if not found:
        _no_candidate(layer, framework)
    return found[0]


def _no_candidate(layer: Layer, framework: str) -> None:
    title = FRAMEWORK_TABLE[framework].title
    if layer.cell == "gru" and targets(framework, "gru"):
        variant = "reset-after" if layer.reset_after else "reset-before"
        raise InexactConversion(
            f"layer {layer.name!r} is a {variant} GRU and {title} has no {variant} GRU: "
            "r*(W_hn h + b_hn) and W_hn (r*h) are different functions, so no re-ordering of the "
            "weights can make one compute the other. Convert to a framework with a "
            f"{variant} GRU instead ({_frameworks_with(layer)}).",
            code="gru_variant_mismatch",
            layer=layer.name,
        )
    raise InexactConversion(
        f"layer {layer.name!r} is an {layer.cell.upper()} and {title} has no {layer.cell.upper()} module "
        f"rnnbridge writes; convert to {_frameworks_with(layer)}",
        code="target_unavailable",
        layer=layer.name,
    )


def check(layer: Layer, conv: Convention) -> None:
    """Raise ``InexactConversion`` if ``conv`` cannot compute ``layer``'s function."""
    for rule in (_variant, _peepholes, _projection, _clip, _input_forget, _activations, _reverse_only, _topology):
        rule(layer, conv)


def _refuse(layer: Layer, code: str, detail: str) -> None:
    raise InexactConversion(f"layer {layer.name!r}: {detail}", code=code, layer=layer.name)


def _variant(layer: Layer, conv: Convention) -> None:
    if layer.cell != conv.cell:
        _refuse(layer, "cell_mismatch", f"an {layer.cell.upper()} cannot become a {conv.cell.upper()}")
    if layer.cell == "gru" and layer.reset_after != conv.reset_after:
        _refuse(layer, "gru_variant_mismatch", "reset-before and reset-after GRUs compute different functions")


def _peepholes(layer: Layer, conv: Convention) -> None:
    if layer.has_peepholes and "peepholes" not in conv.features:
        _refuse(
            layer,
            "peepholes_unsupported",
            f"it has peephole connections and {conv.native} has none; convert to "
            f"{frameworks_with('peepholes')}, which have peepholes",
        )


def _projection(layer: Layer, conv: Convention) -> None:
    if layer.has_projection and "projection" not in conv.features:
        _refuse(
            layer,
            "projection_unsupported",
            f"it projects its output (W_proj) and {conv.native} cannot: the projected state is the "
            f"recurrent input, so it cannot be added after the layer; convert to {frameworks_with('projection')}",
        )


def _clip(layer: Layer, conv: Convention) -> None:
    if layer.config.clip is not None and "clip" not in conv.features:
        _refuse(
            layer,
            "clip_unsupported",
            f"it clips activation inputs at ±{layer.config.clip:g} (ONNX clip) and {conv.native} "
            f"cannot; only {frameworks_with('clip')} keeps it",
        )


def _input_forget(layer: Layer, conv: Convention) -> None:
    if layer.config.input_forget and "input_forget" not in conv.features:
        _refuse(
            layer,
            "input_forget_unsupported",
            f"it couples the input and forget gates (ONNX input_forget=1) and {conv.native} does not",
        )


def _activations(layer: Layer, conv: Convention) -> None:
    rule = conv.activations
    acts = layer.config.activations
    defaults = conv.default_activations
    slots = [("gate", acts[0], rule.gate, defaults[0])]
    slots += [("cell", a, rule.cell, d) for a, d in zip(acts[1:], defaults[1:])]
    for slot, name, allowed, default in slots:
        if name != default and not _allowed(name, allowed):
            _refuse(
                layer,
                "activation_unsupported",
                f"its {slot} activation is {name}, which {conv.native} cannot express "
                f"(it allows {sorted(allowed or {default})}); targets that can: {_expressing(layer, slot, name)}",
            )
    if rule.tied and len(acts) == 3 and acts[1] != acts[2]:
        _refuse(
            layer,
            "activation_unsupported",
            f"its cell candidate and cell output activations differ ({acts[1]}, {acts[2]}), and "
            f"{conv.native} has one setting for both",
        )


def _expressing(layer: Layer, slot: str, name: str) -> str:
    found = {
        c.framework
        for c in CONVENTIONS.values()
        if c.cell == layer.cell and not c.source_only and _allowed(name, getattr(c.activations, slot))
    }
    return ", ".join(sorted(found)) or "none"


def _allowed(name: str, allowed: frozenset[str] | None) -> bool:
    if allowed is None:
        return False
    return name in allowed or (name.startswith("hard_sigmoid(") and ANY_HARD_SIGMOID in allowed)


def _reverse_only(layer: Layer, conv: Convention) -> None:
    if layer.reverse_only and "reverse_only" not in conv.features:
        _refuse(
            layer,
            "reverse_only_unsupported",
            f"it runs backward only, and {conv.native} has no reverse-only layer; convert to "
            f"{frameworks_with('reverse_only')}, which run a layer backward only",
        )


def _topology(layer: Layer, conv: Convention) -> None:
    if layer.config.independent_directions and layer.num_levels > 1 and "independent_directions" not in conv.features:
        _refuse(
            layer,
            "topology_unsupported",
            "it is a bidirectional pair of two independent multi-level stacks (each level reads "
            f"only its own direction), which {conv.native} cannot express; only "
            f"{frameworks_with('independent_directions')} can",
        )
    if "one_direction" in conv.features and len(layer.directions) > 1:
        _refuse(
            layer,
            "topology_unsupported",
            f"it is bidirectional and {conv.native} runs one direction; convert to "
            f"{frameworks_with_bidirectional()}, or split the directions yourself",
        )
    if "single_cell" in conv.features and (layer.num_levels > 1 or len(layer.directions) > 1):
        _refuse(layer, "topology_unsupported", f"{conv.native} holds one level in one direction")
    if "nonuniform_levels" not in conv.features and "single_cell" not in conv.features:
        sizes = {(d["H"], d["P"]) for d in (layer.dims(k) for k in range(layer.num_levels))}
        if len(sizes) > 1:
            _refuse(
                layer,
                "topology_unsupported",
                f"its levels differ in size ({sorted(sizes)}) and {conv.native} gives every level the same hidden size",
            )


def _frameworks_with(layer: Layer) -> str:
    found = [f for f in FRAMEWORKS if candidates(f, layer.cell, layer.reset_after)]
    return ", ".join(found) or "none"
