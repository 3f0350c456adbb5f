"""What every framework's layer finder shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.conventions import (
    HARD_SIGMOID_KERAS2,
    HARD_SIGMOID_KERAS3,
    LINEAR,
    RELU,
    SIGMOID,
    TANH,
)
from ..engine.model import NativeLayer


@dataclass
class Found:
    layers: list[NativeLayer] = field(default_factory=list)
    other_tensors: int = 0
    notes: list[str] = field(default_factory=list)
    unsupported: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, name: str, kind: str, reason: str) -> None:
        """List a recurrent layer rnnbridge finds but does not convert, with the reason."""
        self.unsupported.append({"name": name, "kind": kind, "reason": reason})


_KERAS_ACTIVATIONS = {"sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "linear": LINEAR, None: LINEAR}


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
    return _KERAS_ACTIVATIONS.get(spec, str(spec))


def count_other(arrays: dict[str, np.ndarray], used: set[str]) -> int:
    """How many arrays belong to no recurrent layer."""
    return sum(1 for name in arrays if name not in used)
