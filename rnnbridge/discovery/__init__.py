"""Finding the recurrent layers among a file's named arrays.

Readers (``rnnbridge.formats``) know containers; the engine knows gates; this package sits
between them and knows how each framework *names* things: TF1 cell scopes, Keras layer
groups, PyTorch state_dict keys, ONNX nodes. ``find_layers`` turns a ``WeightFile`` into
``NativeLayer``\\ s of registry conventions, and counts the arrays that belong to no
recurrent layer.
"""

from __future__ import annotations

from collections.abc import Callable

from rnnbridge.discovery.common import Found, make_names_safe
from rnnbridge.discovery.keras import find_keras
from rnnbridge.discovery.onnx import find_onnx
from rnnbridge.discovery.pytorch import find_pytorch
from rnnbridge.discovery.rnnbridge import find_rnnbridge, is_rnnbridge_output
from rnnbridge.discovery.tf1 import find_tf1
from rnnbridge.engine.facts import Stated, settle
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import InexactConversion, InvalidField
from rnnbridge.formats.base import WeightFile

Finder = Callable[..., Found]

#: the framework each container format implies (None: arrays only, ``source`` required)
FORMAT_FRAMEWORK: dict[str, str | None] = {
    "keras_h5": "keras",
    "keras_zip": "keras",
    "torch": "pytorch",
    "safetensors": "pytorch",
    "onnx": "onnx",
    "tf_checkpoint": None,  # TF1 cells or a TF2 (Keras) object checkpoint: told apart by names
    "npz": None,
    "json": None,
}

FINDERS: dict[str, Finder] = {"tf1": find_tf1, "keras": find_keras, "pytorch": find_pytorch, "onnx": find_onnx}


def find_layers(
    weights: WeightFile,
    *,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    activations: tuple[str, ...] | None = None,
    clip: float | None = None,
    input_forget: bool | None = None,
) -> Found:
    """The recurrent layers of ``weights`` as native layers, plus what was left over.

    ``direction``, ``reset_after``, ``activations``, ``clip`` (``math.inf``: none) and
    ``input_forget`` are facts the user states: each
    replaces what the file leaves to a default, and is refused where it contradicts what
    the file records (``rnnbridge.engine.facts.settle``).
    """
    found = _find(weights, source, direction, reset_after)
    stated = Stated(activations, reset_after, direction, clip, input_forget)
    found.layers = [settle(layer, stated) for layer in found.layers]
    make_names_safe(found)
    for layer in found.layers:
        refuse_non_float(layer)
    return found


def refuse_non_float(layer: NativeLayer) -> None:
    """Refuse a layer with integer, bool or complex weights (code ``non_float_weights``).

    Widening them to float would round 64-bit integers, and no framework's recurrent layer
    computes with such weights: the file is not what it claims to be.
    """
    for (level, direction), cell in layer.cells.items():
        for tensor, array in cell.items():
            if array.dtype.kind != "f":
                name = layer.origin.get((level, direction, tensor), tensor)
                raise InexactConversion(
                    f"layer {layer.name!r}: tensor {name[:200]!r} holds {array.dtype} values; recurrent weights "
                    "must be float16, bfloat16, float32 or float64 (converting them would not be exact)",
                    code="non_float_weights",
                    layer=layer.name,
                    tensor=name[:200],
                )


def _find(weights: WeightFile, source: str | None, direction: str | None, reset_after: bool | None) -> Found:
    if is_rnnbridge_output(weights):
        return find_rnnbridge(weights)
    implied = FORMAT_FRAMEWORK.get(weights.format)
    if implied is not None and source is not None and source != implied:
        raise InvalidField(
            f"the file is a {weights.format} file, which holds {implied} weights, but source={source!r}",
            field="source",
        )
    if weights.format == "tf_checkpoint" and source is None:
        source = "keras" if _is_object_checkpoint(weights) else "tf1"
    framework = implied or source
    if framework is None:
        raise InvalidField(
            f"a {weights.format} file holds bare arrays: say which framework named them with "
            "source= (tf1, keras, pytorch or onnx)",
            field="source",
        )
    return FINDERS[framework](weights, direction=direction, reset_after=reset_after)


def _is_object_checkpoint(weights: WeightFile) -> bool:
    return any(name.endswith("/.ATTRIBUTES/VARIABLE_VALUE") for name in weights.tensors)
