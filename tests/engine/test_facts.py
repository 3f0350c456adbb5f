"""Facts that change a layer's function: names users send, Keras's version defaults, and
stated facts against what a file records."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.engine import facts
from rnnbridge.engine.conventions import CONVENTIONS, HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3
from rnnbridge.engine.facts import Assumption, Stated, keras_defaults, settle
from rnnbridge.engine.model import LayerConfig, NativeLayer
from rnnbridge.errors import InvalidField


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("sigmoid,tanh", ("sigmoid", "tanh")),
        ("hard_sigmoid_keras2, tanh", (HARD_SIGMOID_KERAS2, "tanh")),
        ("hard_sigmoid_keras3,relu,tanh", (HARD_SIGMOID_KERAS3, "relu", "tanh")),
        ("hard_sigmoid(0.2,0.5),tanh", (HARD_SIGMOID_KERAS2, "tanh")),
        ("hard_sigmoid(0.25, 0.5),linear", ("hard_sigmoid(0.25,0.5)", "linear")),
    ],
)
def test_activation_names_say_which_hard_sigmoid_they_mean(sent: str, canonical: tuple[str, ...]) -> None:
    assert facts.parse_activations(sent) == canonical


@pytest.mark.parametrize(
    "sent",
    ["hard_sigmoid,tanh", "softmax,tanh", "sigmoid", "sigmoid,tanh,tanh,tanh", "hard_sigmoid(nan,0.5),tanh"],
)
def test_ambiguous_unknown_or_miscounted_activations_are_refused(sent: str) -> None:
    with pytest.raises(InvalidField) as refused:
        facts.parse_activations(sent)
    assert refused.value.extra["field"] == "activations"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e309])
def test_constants_must_be_finite(value: float) -> None:
    with pytest.raises(InvalidField, match="finite") as refused:
        facts.finite(value, "source_forget_bias")
    assert refused.value.extra["field"] == "source_forget_bias"


@pytest.mark.parametrize(
    ("version", "gate", "reset_after", "ambiguous"),
    [
        ("2.0.8", HARD_SIGMOID_KERAS2, False, False),
        ("2.2.4", HARD_SIGMOID_KERAS2, False, False),
        ("2.3.1", "sigmoid", False, False),
        ("2.2.4-tf", "sigmoid", True, True),  # TF 1.x (hard_sigmoid) or TF 2.0-2.2 (sigmoid)
        ("2.4.0", "sigmoid", True, False),
        ("2.21.0", "sigmoid", True, False),
        ("3.15.1", "sigmoid", True, False),
        (None, "sigmoid", True, False),
    ],
)
def test_the_keras_version_in_the_file_decides_the_defaults(version, gate, reset_after, ambiguous) -> None:
    found = keras_defaults(version)
    assert (found.gate, found.reset_after, found.ambiguous) == (gate, reset_after, ambiguous)


def _layer(key: str, config: LayerConfig, direction: str = "forward") -> NativeLayer:
    conv = CONVENTIONS[key]
    gates = 4 if conv.cell == "lstm" else 3
    cells = {(0, direction): {"W": np.zeros((gates * 2, 3)), "R": np.zeros((gates * 2, 2))}}
    return NativeLayer("node", conv, config, cells)


ASSUMED = (
    Assumption("activations", "sigmoid,tanh", "default"),
    Assumption("reset_after", False, "default"),
    Assumption("direction", "forward", "default"),
)


def test_a_stated_fact_replaces_the_assumption_of_that_fact() -> None:
    layer = _layer("onnx.gru", LayerConfig(("sigmoid", "tanh"), assumed=ASSUMED))
    stated = Stated(activations=("hard_sigmoid(0.2,0.5)", "tanh"), reset_after=True, direction="reverse")
    settled = settle(layer, stated)
    assert settled.convention.key == "onnx.gru_lbr"
    assert settled.config.activations == ("hard_sigmoid(0.2,0.5)", "tanh")
    assert set(settled.cells) == {(0, "backward")}
    assert settled.config.assumed == ()


@pytest.mark.parametrize(
    ("stated", "field"),
    [
        (Stated(activations=("relu", "tanh")), "activations"),
        (Stated(reset_after=True), "reset_after"),
        (Stated(direction="reverse"), "direction"),
    ],
)
def test_a_stated_fact_that_contradicts_the_file_is_refused_naming_both(stated: Stated, field: str) -> None:
    layer = _layer("onnx.gru", LayerConfig(("sigmoid", "tanh")))  # everything recorded
    with pytest.raises(InvalidField) as refused:
        settle(layer, stated)
    error = refused.value
    assert (error.code, error.extra["field"]) == ("field_contradicts_file", field)
    assert str(error.extra["recorded"]) in error.detail and str(error.extra["stated"]) in error.detail


def test_a_stated_fact_equal_to_the_file_is_accepted() -> None:
    layer = _layer("onnx.gru_lbr", LayerConfig(("sigmoid", "tanh")))
    assert settle(layer, Stated(("sigmoid", "tanh"), True, "forward")) == layer


@pytest.mark.parametrize("strict", [False, True])
def test_strict_refuses_every_assumption_and_ambiguity_is_refused_always(strict: bool) -> None:
    plain = _layer("onnx.gru", LayerConfig(("sigmoid", "tanh"), assumed=ASSUMED[1:2]))
    ambiguous = _layer("onnx.gru", LayerConfig(("sigmoid", "tanh"), assumed=(Assumption("activations", "", "", True),)))
    if strict:
        with pytest.raises(InvalidField) as refused:
            facts.required(plain, strict)
        assert (refused.value.code, refused.value.extra["field"]) == ("assumption_required", "reset_after")
    else:
        facts.required(plain, strict)
    with pytest.raises(InvalidField, match="no single documented default") as refused:
        facts.required(ambiguous, strict=False)
    assert refused.value.extra["field"] == "activations"


def test_stated_activations_a_framework_cannot_have_are_refused() -> None:
    """TF1 cells always have sigmoid gates: a checkpoint cannot have hard_sigmoid ones."""
    layer = NativeLayer(
        "cell",
        CONVENTIONS["tf1.lstm"],
        LayerConfig(("sigmoid", "tanh", "tanh"), assumed=ASSUMED[:1]),
        {(0, "forward"): {}},
    )
    with pytest.raises(InvalidField, match="always computes sigmoid") as refused:
        settle(layer, Stated(activations=("hard_sigmoid(0.2,0.5)", "tanh")))
    assert refused.value.extra["field"] == "activations"
    assert settle(layer, Stated(activations=("sigmoid", "relu"))).config.activations == ("sigmoid", "relu", "relu")
