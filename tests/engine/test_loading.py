"""A module recipe read back the way its framework reads it gives the layer that was meant,
and a recipe that names the wrong function is read as that wrong function."""

from __future__ import annotations

import pytest

from rnnbridge.describe import module_recipe
from rnnbridge.engine import canonical, exactness, loading
from rnnbridge.engine.conventions import HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3, TARGET_FRAMEWORKS
from rnnbridge.errors import InexactConversion
from tests.fixtures_index import FIXTURE_LAYERS, FixtureLayer

CASES = [pytest.param(fx, target, id=f"{fx.id}-{target}") for fx in FIXTURE_LAYERS for target in TARGET_FRAMEWORKS]


@pytest.mark.parametrize(("fx", "target"), CASES)
def test_every_recipe_reads_back_as_the_converted_layer(fx: FixtureLayer, target: str) -> None:
    canon = canonical.to_canonical(fx.native)
    try:
        conv = exactness.select_target(canon, target)
        exactness.check(canon, conv)
        out, _ = canonical.from_canonical(canon, conv, conv.forget_bias)
    except InexactConversion:  # refused (a float16 bias cannot hold the fold of a run-time constant)
        return
    loaded = loading.interpret(module_recipe(out), target)
    assert loaded.convention == out.convention
    assert (loaded.levels, loaded.directions) == (out.num_levels, out.directions)
    config = out.config
    assert loaded.config.activations == config.activations
    assert (loaded.config.forget_bias, loaded.config.clip, loaded.config.input_forget) == (
        config.forget_bias,
        config.clip,
        config.input_forget,
    )
    if out.num_levels > 1:  # with one level, the directions are independent either way
        assert loaded.config.independent_directions == config.independent_directions


def test_keras_names_mean_keras_3_functions() -> None:
    recipe = {"class": "keras.layers.LSTM", "kwargs": {"recurrent_activation": "hard_sigmoid"}, "layers": 1}
    assert loading.interpret({**recipe, "framework_version": "keras 3"}, "keras").config.activations[0] == (
        HARD_SIGMOID_KERAS3
    )
    assert loading.interpret({**recipe, "framework_version": "keras 2"}, "keras").config.activations[0] == (
        HARD_SIGMOID_KERAS2
    )


def test_onnx_hard_sigmoid_takes_its_alpha_and_beta_in_order() -> None:
    attributes = {
        "direction": "bidirectional",
        "activations": ["HardSigmoid", "Tanh", "Relu"] * 2,
        "activation_alpha": [0.25, 0.25],
        "activation_beta": [0.4, 0.4],
    }
    loaded = loading.interpret({"op_type": "LSTM", "attributes": attributes}, "onnx")
    assert loaded.config.activations == ("hard_sigmoid(0.25,0.4)", "tanh", "relu")
    default = {"activations": ["HardSigmoid", "Tanh"]}
    assert loading.interpret({"op_type": "GRU", "attributes": default}, "onnx").config.activations == (
        HARD_SIGMOID_KERAS2,
        "tanh",
    )


def test_a_pytorch_module_has_no_forget_bias_whatever_the_recipe_says() -> None:
    recipe = {"class": "torch.nn.LSTM", "kwargs": {"forget_bias": 2.0, "num_layers": 1, "bidirectional": False}}
    assert loading.interpret(recipe, "pytorch").config.forget_bias == 0.0


def test_tf1_forget_bias_is_the_cell_argument() -> None:
    recipe = {"class": "tf.nn.rnn_cell.LSTMCell", "kwargs": {"forget_bias": 0.5, "activation": "tanh"}, "levels": 1}
    assert loading.interpret(recipe, "tf1").config.forget_bias == 0.5
    cudnn = {**recipe, "class": "tf.contrib.cudnn_rnn.CudnnCompatibleLSTMCell"}
    assert loading.interpret(cudnn, "tf1").config.forget_bias == 0.0
