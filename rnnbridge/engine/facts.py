"""The facts that change a layer's function, where each one came from, and how to state it.

For every layer each fact (the gate, candidate and cell activations, with hard_sigmoid's
slope and offset; the GRU variant; the direction; the run-time forget bias) is

(a) read from the file (a model config, node attributes, tensor shapes, names),
(b) stated by the user in a field, or
(c) the documented default of the framework *version* that wrote the file.

Only (c) is an ``Assumption``: it travels in the layer's ``LayerConfig.assumed`` with the
value taken and the field that would state it, and reaches the metadata, the
``RNNBridge-Assumed`` response header and the CLI's stderr. ``strict=True`` turns every
assumption into a 422 ``assumption_required``; an *ambiguous* one (no single documented
default exists, e.g. a weights-only file of tf.keras 2.2.4-tf, written by TF 1.x, whose
LSTM defaulted to hard_sigmoid gates, or by TF 2.0-2.2, whose LSTM defaulted to sigmoid) is
refused even without it.

Activation names a user may send (``activations=gate,candidate[,cell]``; LSTM: three, the
cell output defaulting to the candidate's; GRU: two):

=======================  =====================================================
``sigmoid``, ``tanh``     the usual functions
``relu``, ``linear``
``hard_sigmoid_keras2``   clip(0.2·x + 0.5, 0, 1): Keras 2 / tf.keras, ONNX's default
``hard_sigmoid_keras3``   clip(x/6 + 0.5, 0, 1): Keras 3
``hard_sigmoid(a,b)``     clip(a·x + b, 0, 1), a and b finite
=======================  =====================================================

A bare ``hard_sigmoid`` is refused: Keras 2 and Keras 3 mean different functions by it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rnnbridge.engine.conventions import (
    CONVENTIONS,
    HARD_SIGMOID_KERAS2,
    HARD_SIGMOID_KERAS3,
    LINEAR,
    RELU,
    SIGMOID,
    TANH,
    Convention,
)
from rnnbridge.engine.model import CellKey, Direction, NativeLayer, Origin
from rnnbridge.errors import InvalidField

#: the request field that states each fact; ``None`` for facts of how a file's tensors make
#: up layers (``structure`` of an .eqx file's unnamed leaves, Haiku ``stacking`` of cores into
#: an ``hk.DeepRNN``, Flax ``directions`` of an auto-named cell pair), which no field can
#: state: ``strict=true`` refuses them, and the way out is a file that records them
FIELDS: dict[str, str | None] = {
    "activations": "activations",
    "reset_after": "reset_after",
    "direction": "direction",
    "forget_bias": "source_forget_bias",
    "clip": "clip",
    "input_forget": "input_forget",
    "structure": None,
    "stacking": None,
    "directions": None,
}


@dataclass(frozen=True)
class Assumption:
    """One fact taken from a documented default: ``value`` as a user would state it in
    ``field``; ``because`` names the default; ``ambiguous`` when no single default exists."""

    fact: str
    value: Any
    because: str
    ambiguous: bool = False

    @property
    def field(self) -> str | None:
        return FIELDS[self.fact]

    def as_dict(self) -> dict[str, Any]:
        out = {"fact": self.fact, "value": self.value, "field": self.field, "because": self.because}
        if self.ambiguous:
            out["ambiguous"] = True
        return out


@dataclass(frozen=True)
class Stated:
    """Facts stated by the user; ``None``: not stated."""

    activations: tuple[str, ...] | None = None
    reset_after: bool | None = None
    direction: str | None = None  # "forward" | "reverse"
    clip: float | None = None  # math.inf: no clipping
    input_forget: bool | None = None


# --- activation names ---------------------------------------------------------------------

_PLAIN = {SIGMOID, TANH, RELU, LINEAR}
_USER_ALIASES = {"hard_sigmoid_keras2": HARD_SIGMOID_KERAS2, "hard_sigmoid_keras3": HARD_SIGMOID_KERAS3}
_HARD_SIGMOID = re.compile(r"hard_sigmoid\(([^,()]+),([^,()]+)\)")
_SPLIT = re.compile(r",(?![^()]*\))")  # commas outside parentheses


def hard_sigmoid(alpha: float, beta: float) -> str:
    """The canonical name of clip(alpha·x + beta, 0, 1), parameters float32-rounded."""
    return f"hard_sigmoid({str(np.float32(alpha))},{str(np.float32(beta))})"


def hard_sigmoid_params(name: str) -> tuple[float, float] | None:
    """``(alpha, beta)`` of a canonical ``hard_sigmoid(a,b)`` name, else None."""
    match = _HARD_SIGMOID.fullmatch(name)
    return None if match is None else (float(match[1]), float(match[2]))


def activation_name(text: str, where: str = "activations") -> str:
    """The canonical name of one activation a user sent (see the module docstring)."""
    name = text.strip().replace(" ", "")
    if name in _PLAIN:
        return name
    if name in _USER_ALIASES:
        return _USER_ALIASES[name]
    if name == "hard_sigmoid":
        raise InvalidField(
            "hard_sigmoid is ambiguous: Keras 2 means clip(0.2x + 0.5, 0, 1) and Keras 3 means "
            "clip(x/6 + 0.5, 0, 1); send hard_sigmoid_keras2, hard_sigmoid_keras3 or hard_sigmoid(alpha,beta)",
            field=where,
        )
    match = _HARD_SIGMOID.fullmatch(name)
    if match is not None:
        try:
            alpha, beta = float(match[1]), float(match[2])
        except ValueError:
            alpha = beta = math.nan
        if math.isfinite(alpha) and math.isfinite(beta):
            return hard_sigmoid(alpha, beta)
    raise InvalidField(
        f"unknown activation {text[:80]!r}: use sigmoid, tanh, relu, linear, hard_sigmoid_keras2, "
        "hard_sigmoid_keras3 or hard_sigmoid(alpha,beta) with finite alpha, beta",
        field=where,
    )


def stated_form(names: Sequence[str]) -> str:
    """Canonical activation names as the ``activations`` field spells them."""
    back = {v: k for k, v in _USER_ALIASES.items()}
    return ",".join(back.get(name, name) for name in names)


def parse_activations(text: str) -> tuple[str, ...]:
    """``activations`` as sent: 2 names (gates, candidate) or 3 (LSTM gates, candidate, cell)."""
    names = tuple(activation_name(part) for part in _SPLIT.split(text) if part.strip())
    if len(names) not in (2, 3):
        raise InvalidField(
            f"activations takes 2 names (gates, candidate; an LSTM's cell output then uses the "
            f"candidate's) or 3 (LSTM gates, candidate, cell output), not {len(names)}",
            field="activations",
        )
    return names


def for_cell(names: Sequence[str], cell: str, layer: str) -> tuple[str, ...]:
    """User-stated ``names`` completed for an ``lstm`` or ``gru``."""
    if cell == "lstm":
        return tuple(names) if len(names) == 3 else (names[0], names[1], names[1])
    if len(names) != 2:
        raise InvalidField(f"layer {layer!r} is a GRU: activations takes 2 names", field="activations", layer=layer)
    return tuple(names)


def finite(value: float | None, field: str) -> float | None:
    """``value`` as a float, refusing NaN and infinities (422 naming ``field``)."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise InvalidField(f"{field} must be a finite number, not {value!r}", field=field)
    return number


# --- Keras version defaults ---------------------------------------------------------------

_KERAS_NAMES = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "linear": LINEAR, None: LINEAR}
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$")


def keras_activation(spec: Any, keras_major: int) -> str:
    """The canonical name of a Keras activation setting (a string, or a Keras 3 dict).

    ``hard_sigmoid`` is 0.2·x + 0.5 in Keras 2 and x/6 + 0.5 in Keras 3; unknown names are
    kept as they are, so that conversions which cannot express them are refused.
    """
    if isinstance(spec, dict):
        spec = spec.get("config", spec.get("class_name"))
        if isinstance(spec, dict):
            spec = spec.get("name")
    if spec == "hard_sigmoid":
        return HARD_SIGMOID_KERAS3 if keras_major >= 3 else HARD_SIGMOID_KERAS2
    return _KERAS_NAMES.get(spec, str(spec))


@dataclass(frozen=True)
class KerasDefaults:
    """The defaults of the Keras that wrote a file: ``gate`` activation, GRU ``reset_after``,
    and the sentence naming them. ``ambiguous``: the version string does not settle them."""

    gate: str
    reset_after: bool
    because: str
    ambiguous: bool = False


def keras_defaults(version: str | None) -> KerasDefaults:
    """Keras's documented LSTM/GRU defaults for the ``keras_version`` recorded in a file.

    Standalone Keras before 2.3.0 defaulted ``recurrent_activation`` to ``hard_sigmoid``
    (clip(0.2x + 0.5, 0, 1)); 2.3.0 changed it to ``sigmoid``. ``GRU(reset_after)``
    defaulted to False in standalone Keras (up to 2.3.1) and to True in tf.keras 2.4+ and
    Keras 3. tf.keras of TF 1.13-2.2 recorded ``2.2.4-tf`` (or ``2.1.6-tf``): its v1
    classes (TF 1.x) default to hard_sigmoid, its v2 classes (TF 2.x) to sigmoid, so the
    version alone does not say which (ambiguous).
    """
    match = _VERSION.match(version or "")
    if match is None:
        return KerasDefaults(
            SIGMOID, True, "no keras_version is recorded: the defaults of Keras 2.4+ and 3 (sigmoid gates)"
        )
    major, minor, suffix = int(match[1]), int(match[2] or 0), match[4]
    said = f"keras_version {version!r}"
    if major >= 3 or (major == 2 and minor >= 4):
        return KerasDefaults(SIGMOID, True, f"{said}: recurrent_activation='sigmoid', GRU reset_after=True")
    if suffix.startswith("-tf"):
        return KerasDefaults(
            SIGMOID,
            True,
            f"{said} is tf.keras of TensorFlow 1.13-2.2, whose LSTM/GRU defaulted to hard_sigmoid gates "
            "(TF 1.x) or sigmoid gates (TF 2.x)",
            ambiguous=True,
        )
    if major == 2 and minor == 3:
        return KerasDefaults(SIGMOID, False, f"{said}: recurrent_activation='sigmoid', GRU reset_after=False")
    return KerasDefaults(
        HARD_SIGMOID_KERAS2,
        False,
        f"{said}: Keras before 2.3 defaulted recurrent_activation to 'hard_sigmoid' = clip(0.2x + 0.5, 0, 1), "
        "GRU reset_after=False",
    )


# --- stated facts against the file --------------------------------------------------------


def direction_of(layer: NativeLayer) -> str:
    present = {d for _, d in layer.cells}
    return "bidirectional" if len(present) == 2 else ("reverse" if present == {"backward"} else "forward")


def settle(layer: NativeLayer, stated: Stated) -> NativeLayer:
    """``layer`` with the user's stated facts applied.

    A stated fact replaces an assumption of the same fact; one that contradicts what the
    file records is refused (422 naming both values); one equal to it is accepted.
    """
    assumed = {a.fact: a for a in layer.config.assumed}
    if stated.activations is not None:
        layer = _settle_activations(layer, stated.activations, "activations" in assumed)
    if stated.reset_after is not None and layer.convention.cell == "gru":
        layer = _settle_variant(layer, stated.reset_after, "reset_after" in assumed)
    if stated.direction is not None:
        layer = _settle_direction(layer, stated.direction, "direction" in assumed)
    if stated.clip is not None:
        clip = None if math.isinf(stated.clip) else stated.clip
        if clip is not None and "clip" not in layer.convention.features:
            raise InvalidField(
                f"layer {layer.name!r}: {layer.convention.native} has no clip that rnnbridge converts (clip is "
                "ONNX's clipping of the gate inputs; TF1's cell_clip and proj_clip clip the cell state and the "
                "projection, which no other framework computes): a clipped layer cannot be converted exactly",
                code="clip_unsupported",
                field="clip",
                layer=layer.name,
            )
        layer = _settle_value(layer, "clip", clip, "clip" in assumed, "none" if clip is None else clip)
    if stated.input_forget is not None and layer.convention.cell == "lstm":
        layer = _settle_value(layer, "input_forget", stated.input_forget, "input_forget" in assumed)
    return layer


def _settle_value(layer: NativeLayer, fact: str, value: Any, assumed: bool, shown: Any = None) -> NativeLayer:
    """A config value (``clip``, ``input_forget``) stated: replaces an assumption, must match a record."""
    if assumed:
        return _without(layer, fact, **{fact: value})
    recorded = getattr(layer.config, fact)
    if recorded != value:
        raise _contradiction(layer, fact, shown if shown is not None else value, recorded, "its attributes")
    return layer


def parse_clip(text: str | float | None) -> float | None:
    """The ``clip`` field: ``none`` (no clipping, returned as ``math.inf``) or a finite number > 0."""
    if text is None or text == "":
        return None
    if isinstance(text, str) and text.strip().lower() == "none":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidField(f"clip is 'none' or a finite number > 0, not {text!r}", field="clip")
    return value


def _without(layer: NativeLayer, fact: str, **config: Any) -> NativeLayer:
    kept = tuple(a for a in layer.config.assumed if a.fact != fact)
    return replace(layer, config=layer.config.with_(assumed=kept, **config))


def _contradiction(layer: NativeLayer, field: str, stated: Any, recorded: Any, where: str) -> InvalidField:
    return InvalidField(
        f"layer {layer.name!r}: {field}={stated} contradicts the file, which records {recorded} ({where}); "
        f"leave {field} out or send {recorded}",
        code="field_contradicts_file",
        field=field,
        layer=layer.name,
        stated=stated,
        recorded=recorded,
    )


def _settle_activations(layer: NativeLayer, names: tuple[str, ...], assumed: bool) -> NativeLayer:
    wanted = for_cell(names, layer.convention.cell, layer.name)
    conv = layer.convention
    fixed = [(conv.activations.gate, 0)] + [(conv.activations.cell, k) for k in range(1, len(wanted))]
    for allowed, k in fixed:
        if allowed is None and wanted[k] != conv.default_activations[k]:
            raise InvalidField(
                f"layer {layer.name!r}: {conv.native} always computes {conv.default_activations[k]} there, "
                f"not {wanted[k]}; activations={stated_form(wanted)} cannot describe it",
                field="activations",
                layer=layer.name,
            )
    if assumed:
        return _without(layer, "activations", activations=wanted)
    if wanted != layer.config.activations:
        raise _contradiction(
            layer, "activations", ",".join(wanted), ",".join(layer.config.activations), "its configuration"
        )
    return layer


def _settle_variant(layer: NativeLayer, reset_after: bool, assumed: bool) -> NativeLayer:
    conv = layer.convention
    if conv.reset_after == reset_after:
        return _without(layer, "reset_after") if assumed else layer
    sibling = _sibling(conv, reset_after, layer)
    if not assumed or sibling is None:
        raise _contradiction(
            layer, "reset_after", str(reset_after).lower(), str(conv.reset_after).lower(), f"a {conv.native}"
        )
    return replace(_without(layer, "reset_after"), convention=sibling)


def _sibling(conv: Convention, reset_after: bool, layer: NativeLayer) -> Convention | None:
    """The convention that stores ``layer``'s tensors alike but is the other GRU variant."""
    present = {name for cell in layer.cells.values() for name in cell}
    for other in CONVENTIONS.values():
        if (other.framework, other.cell, other.reset_after) != (conv.framework, conv.cell, reset_after):
            continue
        if other.source_only:
            continue
        shapes_agree = all(
            other.tensor(n).rows == conv.tensor(n).rows for n in present if n in {t.name for t in other.tensors}
        )
        if present <= {t.name for t in other.tensors} and shapes_agree:
            return other
    return None


def _settle_direction(layer: NativeLayer, direction: str, assumed: bool) -> NativeLayer:
    direction = "reverse" if direction == "backward" else direction
    current = direction_of(layer)
    if current == direction:
        return _without(layer, "direction") if assumed else layer
    if not assumed or current == "bidirectional":
        raise _contradiction(layer, "direction", direction, current, "its configuration or tensors")
    new: Direction = "backward" if direction == "reverse" else "forward"
    cells: dict[CellKey, dict[str, np.ndarray]] = {(level, new): tensors for (level, _), tensors in layer.cells.items()}
    origin: Origin = {(level, new, name): where for (level, _, name), where in layer.origin.items()}
    return replace(_without(layer, "direction"), cells=cells, origin=origin)


def required(layer: NativeLayer, strict: bool, *, ambiguous: bool = True) -> None:
    """Refuse (422 ``assumption_required``) any assumption with ``strict``, and an ambiguous
    one unless ``ambiguous=False`` (a split's arrays do not depend on the activations)."""
    for assumption in layer.config.assumed:
        if strict or (ambiguous and assumption.ambiguous):
            why = "strict=true forbids assumptions" if strict else "no single documented default exists"
            way_out = (
                f"state it with the field {assumption.field}"
                if assumption.field is not None
                else "no field can state it: convert without strict=true to accept it as listed"
            )
            raise InvalidField(
                f"layer {layer.name!r}: {assumption.fact} would be assumed ({assumption.because}) and {why}; {way_out}",
                code="assumption_required",
                field=assumption.field,
                layer=layer.name,
                fact=assumption.fact,
            )


def assumptions_of(layers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every layer's ``assumed`` entries of a result's metadata, each with its layer name."""
    found = []
    for entry in layers:
        source = entry.get("source", entry)
        for item in source.get("assumed", ()):
            found.append({"layer": entry.get("name"), **item})
    return found
