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
from rnnbridge.engine.conventions import FRAMEWORKS
from rnnbridge.errors import InvalidField
from rnnbridge.formats.base import WeightFile

Finder = Callable[..., Found]


def _tf_checkpoint_framework(weights: WeightFile) -> str:
    """TF1 cells or a TF2 (Keras) object checkpoint: told apart by the names."""
    object_graph = any(name.endswith("/.ATTRIBUTES/VARIABLE_VALUE") for name in weights.tensors)
    return "keras" if object_graph else "tf1"


#: the framework each container format implies: a name, a function of the file for a
#: format several frameworks write, or None for bare arrays (``source`` required)
FORMAT_FRAMEWORK: dict[str, str | Callable[[WeightFile], str] | None] = {
    "keras_h5": "keras",
    "keras_zip": "keras",
    "torch": "pytorch",
    "safetensors": "pytorch",
    "onnx": "onnx",
    "tf_checkpoint": _tf_checkpoint_framework,
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
) -> Found:
    """The recurrent layers of ``weights`` as native layers, plus what was left over."""
    found = _find(weights, source, direction, reset_after)
    make_names_safe(found)
    return found


def _find(weights: WeightFile, source: str | None, direction: str | None, reset_after: bool | None) -> Found:
    if is_rnnbridge_output(weights):
        return find_rnnbridge(weights)
    implied = FORMAT_FRAMEWORK[weights.format]
    if callable(implied):
        if source is None:
            source = implied(weights)
        implied = None
    if implied is not None and source is not None and source != implied:
        raise InvalidField(
            f"the file is a {weights.format} file, which holds {implied} weights, but source={source!r}",
            field="source",
        )
    framework = implied or source
    if framework is None:
        raise InvalidField(
            f"a {weights.format} file holds bare arrays: say which framework named them with "
            f"source= ({', '.join(FRAMEWORKS)})",
            field="source",
        )
    return FINDERS[framework](weights, direction=direction, reset_after=reset_after)
