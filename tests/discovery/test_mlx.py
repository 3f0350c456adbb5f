"""MLX parameter paths: modules found by their ``Wx`` / ``Wh``, the cell kind by ``Wh``'s shape."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.discovery import find_layers
from rnnbridge.errors import InvalidField, MalformedFile
from rnnbridge.formats.base import WeightFile


def gru(prefix: str, units: int = 3, inputs: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {"Wx": (3 * units, inputs), "Wh": (3 * units, units), "b": (3 * units,), "bhn": (units,)}
    return {prefix + k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_safetensors_names_say_mlx_without_a_source() -> None:
    arrays = {**gru("encoder.rnn."), "head.weight": np.zeros((2, 3), np.float32), "head.bias": np.zeros(2, np.float32)}
    found = find_layers(WeightFile("safetensors", arrays))
    assert [(layer.name, layer.convention.key) for layer in found.layers] == [("encoder.rnn", "mlx.gru")]
    assert found.other_tensors == 2


def test_a_state_dict_in_safetensors_is_still_pytorch() -> None:
    arrays = {"rnn.weight_ih_l0": np.zeros((12, 2), np.float32), "rnn.weight_hh_l0": np.zeros((12, 4), np.float32)}
    assert find_layers(WeightFile("safetensors", arrays)).layers[0].convention.key == "pytorch.gru"


def test_a_source_the_format_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidField, match="pytorch or mlx") as refused:
        find_layers(WeightFile("safetensors", gru("rnn.")), source="onnx")
    assert refused.value.extra["field"] == "source"


def test_bare_arrays_need_the_source_and_a_stated_direction_is_kept() -> None:
    with pytest.raises(InvalidField):
        find_layers(WeightFile("npz", gru("rnn.")))
    layer = find_layers(WeightFile("npz", gru("rnn.")), source="mlx", direction="reverse").layers[0]
    assert layer.directions == ("backward",)


def test_the_pre_018_layout_is_listed_unsupported_not_misread() -> None:
    arrays = {k: v.T if v.ndim == 2 else v for k, v in gru("rnn.", units=4, inputs=3).items()}
    found = find_layers(WeightFile("safetensors", arrays), source="mlx")
    assert found.layers == []
    assert "pre-0.18" in found.unsupported[0]["reason"]


def test_an_lstm_without_biases_is_told_by_its_shapes() -> None:
    arrays = {"rnn.Wx": np.zeros((8, 3), np.float32), "rnn.Wh": np.zeros((8, 2), np.float32)}
    layer = find_layers(WeightFile("npz", arrays), source="mlx").layers[0]
    assert layer.convention.key == "mlx.lstm" and "bias" not in layer.cells[(0, "forward")]


def test_a_module_with_wx_and_no_wh_is_malformed() -> None:
    with pytest.raises(MalformedFile, match="no Wh"):
        find_layers(WeightFile("npz", {"rnn.Wx": np.zeros((8, 3), np.float32)}), source="mlx")
