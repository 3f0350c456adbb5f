"""Plain-data descriptions of layers, for ``/inspect`` and the response metadata."""

from __future__ import annotations

from typing import Any

from .engine.canonical import to_canonical
from .engine.model import NativeLayer

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
            for (level, direction), tensors in sorted(native.cells.items())
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
    peepholes = any(t.group == "peephole" and t.name in cell for cell in native.cells.values() for t in conv.tensors)
    projection = any(t.group == "projection" and t.name in cell for cell in native.cells.values() for t in conv.tensors)
    bias = any(t.group == "bias" and t.name in cell for cell in native.cells.values() for t in conv.tensors)
    flags.update(peepholes=peepholes, projection=projection, bias=bias)
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
        "assumed": list(config.assumed),
        "notes": list(native.notes),
    }
