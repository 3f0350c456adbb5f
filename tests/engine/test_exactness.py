"""Conversions keep the function, or are refused for a stated reason.

Property: for random layers of every convention and every target framework, A → B → A
computes A's function (checked by the frameworks' reference equations), and gives back A's
tensors bit for bit wherever no bias was summed and no constant folded.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnbridge.engine import CONVENTIONS, FRAMEWORKS, LayerConfig, NativeLayer, check, from_canonical, select_target, to_canonical
from rnnbridge.engine.conventions import HARD_SIGMOID_KERAS2, RELU, TARGET_FRAMEWORKS
from rnnbridge.engine.verify import verify
from rnnbridge.errors import InexactConversion

from .test_canonical import groups_of, layer_dims, native_layer

SOURCES = sorted(CONVENTIONS)


def stores_recurrent_bias(conv_key: str, gate: str) -> bool:
    return any("b_h" + gate in spec.names() for spec in CONVENTIONS[conv_key].tensors)


def one_cell_only(framework: str) -> bool:
    """Whether every module of ``framework`` holds one level in one direction (MLX)."""
    return all("single_cell" in c.features for c in CONVENTIONS.values() if c.framework == framework)


def one_direction_only(framework: str) -> bool:
    """Whether ``framework`` has no bidirectional module (Haiku)."""
    return all({"single_cell", "one_direction"} & c.features for c in CONVENTIONS.values() if c.framework == framework)


def convert(native: NativeLayer, framework: str) -> NativeLayer:
    canonical = to_canonical(native)
    target = select_target(canonical, framework)
    check(canonical, target)
    out, _ = from_canonical(canonical, target, target.forget_bias)
    return out


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("framework", TARGET_FRAMEWORKS)
@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(1, 5),
    i=st.integers(1, 5),
    p=st.integers(1, 3),
    levels=st.integers(1, 2),
    bidirectional=st.booleans(),
    projected=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_there_and_back_keeps_the_function(
    source: str, framework: str, h: int, i: int, p: int, levels: int, bidirectional: bool, projected: bool, dtype: type, seed: int
) -> None:
    conv = CONVENTIONS[source]
    single = "single_cell" in conv.features
    one_way = single or "one_direction" in conv.features
    projected = projected and any(s.group == "projection" for s in conv.tensors)
    native = native_layer(
        source,
        layer_dims(h, i, p if projected else 0),
        dtype,
        seed,
        levels=1 if single else levels,
        directions=("forward",) if one_way or not bidirectional else ("forward", "backward"),
        groups=groups_of(source, projected),
    )
    native = NativeLayer(native.name, conv, native.config.with_(forget_bias=conv.forget_bias), native.cells)
    try:
        there = convert(native, framework)
    except InexactConversion as refused:
        expected = {"gru_variant_mismatch", "peepholes_unsupported", "projection_unsupported"}
        if (one_cell_only(framework) and len(native.cells) > 1) or (
            one_direction_only(framework) and len(native.directions) > 1
        ):
            expected.add("topology_unsupported")
        assert refused.code in expected
        return
    verify(native, there)
    if conv.framework not in TARGET_FRAMEWORKS:
        return  # a source-only framework: nothing converts back into it
    back = convert(there, conv.framework)
    verify(native, back)

    summed = any(
        np.any(gates["b_h" + g]) and not stores_recurrent_bias(there.convention.key, g)
        for gates in to_canonical(native).cells.values()
        for g in ("ifgo" if conv.cell == "lstm" else "rzn")
    )
    folded = conv.forget_bias != 0 or there.convention.forget_bias != 0
    if not summed and not folded and back.convention is conv:
        for key, tensors in native.cells.items():
            for name, array in tensors.items():
                np.testing.assert_array_equal(back.cells[key][name], array, err_msg=f"{source} via {framework}: {name}")


def plain(conv_key: str, peepholes: bool = False, **config: object) -> NativeLayer:
    groups = frozenset({"bias", "peephole"} if peepholes else {"bias"})
    native = native_layer(conv_key, layer_dims(3, 2, 0), np.float32, seed=7, groups=groups)
    return NativeLayer(native.name, native.convention, native.config.with_(**config), native.cells)


REFUSALS = [
    ("keras.gru", "pytorch", {}, "gru_variant_mismatch"),
    ("onnx.gru", "pytorch", {}, "gru_variant_mismatch"),
    ("tf1.lstm", "keras", {"peepholes": True}, "peepholes_unsupported"),
    ("onnx.lstm", "pytorch", {"peepholes": True}, "peepholes_unsupported"),
    ("onnx.lstm", "keras", {"clip": 3.0}, "clip_unsupported"),
    ("onnx.lstm", "tf1", {"input_forget": True}, "input_forget_unsupported"),
    ("keras.lstm", "pytorch", {"activations": (HARD_SIGMOID_KERAS2, "tanh", "tanh")}, "activation_unsupported"),
    ("keras.lstm", "tf1", {"activations": (HARD_SIGMOID_KERAS2, "tanh", "tanh")}, "activation_unsupported"),
    ("keras.gru", "pytorch", {"activations": ("sigmoid", RELU)}, "gru_variant_mismatch"),
    ("keras.gru_reset_after", "pytorch", {"activations": ("sigmoid", RELU)}, "activation_unsupported"),
    ("onnx.lstm", "keras", {"activations": ("sigmoid", "tanh", RELU)}, "activation_unsupported"),
]


@pytest.mark.parametrize(("source", "target", "config", "code"), REFUSALS, ids=lambda v: str(v)[:30])
def test_inexact_conversions_are_refused_with_a_stable_code(source: str, target: str, config: dict, code: str) -> None:
    with pytest.raises(InexactConversion) as refused:
        convert(plain(source, **config), target)
    assert refused.value.code == code
    assert "layer" in refused.value.detail


@pytest.mark.parametrize("target", ["pytorch", "tf1"])
def test_a_reverse_only_layer_has_nowhere_to_go_in_pytorch_or_tf1(target: str) -> None:
    native = plain("onnx.lstm")
    native = NativeLayer(native.name, native.convention, native.config, {(0, "backward"): native.cells[(0, "forward")]})
    with pytest.raises(InexactConversion) as refused:
        convert(native, target)
    assert refused.value.code == "reverse_only_unsupported"
    assert "onnx" in refused.value.detail and "keras" in refused.value.detail


@pytest.mark.parametrize("target", ["onnx", "keras"])
def test_a_reverse_only_layer_stays_reverse_in_onnx_and_keras(target: str) -> None:
    onnx = plain("onnx.lstm")
    reverse = NativeLayer("r", onnx.convention, onnx.config, {(0, "backward"): onnx.cells[(0, "forward")]})
    out = convert(reverse, target)
    assert out.directions == ("backward",)
    verify(reverse, out)


def test_independent_bidirectional_stacks_stay_in_tf1() -> None:
    native = native_layer("tf1.lstm", layer_dims(2, 3, 0), np.float32, seed=2, levels=1, directions=("forward", "backward"))
    stacked = {}
    for direction in ("forward", "backward"):
        stacked[(0, direction)] = native.cells[(0, direction)]
        second = native_layer("tf1.lstm", {"H": 2, "I": 2, "R": 2, "P": 0}, np.float32, seed=3)
        stacked[(1, direction)] = second.cells[(0, "forward")]
    config = LayerConfig(native.config.activations, forget_bias=1.0, independent_directions=True)
    layer = NativeLayer("bidirectional_rnn", native.convention, config, stacked)
    for framework in ("pytorch", "keras", "onnx"):
        with pytest.raises(InexactConversion) as refused:
            convert(layer, framework)
        assert refused.value.code == "topology_unsupported"
    verify(layer, convert(layer, "tf1"))


def test_levels_of_different_sizes_do_not_fit_one_pytorch_module() -> None:
    first = native_layer("tf1.lstm", layer_dims(3, 2, 0), np.float32, seed=4)
    second = native_layer("tf1.lstm", {"H": 5, "I": 3, "R": 5, "P": 0}, np.float32, seed=5)
    layer = NativeLayer("stack", first.convention, first.config.with_(forget_bias=1.0), {(0, "forward"): first.cells[(0, "forward")], (1, "forward"): second.cells[(0, "forward")]})
    with pytest.raises(InexactConversion) as refused:
        convert(layer, "pytorch")
    assert refused.value.code == "topology_unsupported"
    for framework in ("keras", "onnx"):
        verify(layer, convert(layer, framework))
