"""Finding the recurrent layers among a file's named arrays.

Readers (``rnnbridge.formats``) know containers; the engine knows gates; this package sits
between them and knows how each framework *names* things: TF1 cell scopes, Keras layer
groups, PyTorch state_dict keys, ONNX nodes. ``find_layers`` turns a ``WeightFile`` into
``NativeLayer``\\ s of registry conventions, and counts the arrays that belong to no
recurrent layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rnnbridge.discovery.common import Found, make_names_safe
from rnnbridge.discovery.equinox import find_equinox
from rnnbridge.discovery.flax import find_flax
from rnnbridge.discovery.haiku import find_haiku
from rnnbridge.discovery.keras import find_keras
from rnnbridge.discovery.mlx import find_mlx, looks_like_mlx
from rnnbridge.discovery.onnx import find_onnx
from rnnbridge.discovery.openvino import find_openvino
from rnnbridge.discovery.paddle import find_paddle, looks_like_paddle
from rnnbridge.discovery.pytorch import find_pytorch
from rnnbridge.discovery.rnnbridge import find_rnnbridge, is_rnnbridge_output
from rnnbridge.discovery.tf1 import find_tf1
from rnnbridge.engine.conventions import FRAMEWORKS
from rnnbridge.engine.facts import Stated, settle
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import InexactConversion, InvalidField
from rnnbridge.formats.base import WeightFile

Finder = Callable[..., Found]


@dataclass(frozen=True)
class Written:
    """Which frameworks write a container format: ``by`` (empty: bare arrays, named by any
    framework, so ``source`` is required), and, where several do, ``guess``: the one whose
    names the file holds, used when ``source`` is not given."""

    by: tuple[str, ...] = ()
    guess: Callable[[WeightFile], str] | None = None


def _tf_checkpoint_framework(weights: WeightFile) -> str:
    """TF1 cells or a TF2 (Keras) object checkpoint: told apart by the names."""
    object_graph = any(name.endswith("/.ATTRIBUTES/VARIABLE_VALUE") for name in weights.tensors)
    return "keras" if object_graph else "tf1"


def _safetensors_framework(weights: WeightFile) -> str:
    """A PyTorch state_dict, or MLX parameter paths (``….Wx``, ``….Wh``)."""
    return "mlx" if looks_like_mlx(weights.tensors) else "pytorch"


#: per container format, the frameworks that write it
FORMAT_FRAMEWORK: dict[str, Written] = {
    "keras_h5": Written(("keras",)),
    "keras_zip": Written(("keras",)),
    "torch": Written(("pytorch",)),
    "safetensors": Written(("pytorch", "mlx"), _safetensors_framework),
    "onnx": Written(("onnx",)),
    "numpy_pickle": Written(("haiku", "paddle"), lambda weights: "paddle" if looks_like_paddle(weights) else "haiku"),
    "tf_checkpoint": Written(("tf1", "keras"), _tf_checkpoint_framework),
    "flax_msgpack": Written(("flax",)),
    "eqx_leaves": Written(("equinox",)),
    "openvino_ir": Written(("openvino",)),
    "npz": Written(),
    "json": Written(),
}

FINDERS: dict[str, Finder] = {
    "tf1": find_tf1,
    "keras": find_keras,
    "pytorch": find_pytorch,
    "onnx": find_onnx,
    "mlx": find_mlx,
    "haiku": find_haiku,
    "paddle": find_paddle,
    "flax": find_flax,
    "equinox": find_equinox,
    "openvino": find_openvino,
}


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
    written = FORMAT_FRAMEWORK[weights.format]
    if source is not None and written.by and source not in written.by:
        raise InvalidField(
            f"the file is a {weights.format} file, which holds {' or '.join(written.by)} weights, "
            f"but source={source!r}",
            field="source",
        )
    if source is None and written.guess is not None:
        source = written.guess(weights)
    framework = source or (written.by[0] if len(written.by) == 1 else None)
    if framework is None:
        raise InvalidField(
            f"a {weights.format} file holds bare arrays: say which framework named them with "
            f"source= ({', '.join(FRAMEWORKS)})",
            field="source",
        )
    return FINDERS[framework](weights, direction=direction, reset_after=reset_after)
