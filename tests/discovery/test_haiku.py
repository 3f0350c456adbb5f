"""Haiku parameter paths: cores by their parameters, stacks by their auto-numbered names."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.discovery import find_layers
from rnnbridge.errors import InvalidField
from rnnbridge.formats.base import WeightFile


def lstm(module: str, inputs: int, units: int) -> dict[str, np.ndarray]:
    return {
        f"{module}/linear/w": np.zeros((inputs + units, 4 * units), np.float32),
        f"{module}/linear/b": np.zeros(4 * units, np.float32),
    }


def gru(module: str, inputs: int, units: int) -> dict[str, np.ndarray]:
    return {
        f"{module}/w_i": np.zeros((inputs, 3 * units), np.float32),
        f"{module}/w_h": np.zeros((units, 3 * units), np.float32),
        f"{module}/b": np.zeros(3 * units, np.float32),
    }


def found(arrays: dict[str, np.ndarray]):
    return find_layers(WeightFile("npz", arrays), source="haiku")


def test_cores_whose_sizes_chain_are_one_stack_and_say_so() -> None:
    (layer,) = found({**lstm("lstm", 3, 5), **lstm("lstm_1", 5, 4), **lstm("lstm_2", 4, 4)}).layers
    assert layer.num_levels == 3 and layer.name == "lstm/linear _ lstm_1/linear _ lstm_2/linear"  # "|" is not kept in output names
    assert "stacking" in {a.fact for a in layer.config.assumed} and layer.notes
    assert layer.config.forget_bias == 1.0


def test_cores_whose_sizes_do_not_chain_are_separate_layers() -> None:
    layers = found({**lstm("lstm", 3, 5), **lstm("lstm_1", 3, 5)}).layers  # both read the input
    assert [(lay.name, lay.num_levels) for lay in layers] == [("lstm/linear", 1), ("lstm_1/linear", 1)]
    assert all(lay.config.assumed == () for lay in layers)


def test_kinds_and_scopes_are_never_stacked_together() -> None:
    layers = found({**lstm("enc/~/lstm", 3, 4), **gru("enc/~/gru", 4, 4), **lstm("dec/~/lstm_1", 4, 4)}).layers
    assert sorted(lay.name for lay in layers) == ["dec/~/lstm_1/linear", "enc/~/gru", "enc/~/lstm/linear"]


def test_a_linear_outside_an_lstm_is_not_an_lstm() -> None:
    result = found(lstm("mlp/~/linear_0", 3, 4))  # the shapes of an LSTM, the name of an MLP
    assert result.layers == [] and result.other_tensors == 2


def test_a_gru_of_any_name_is_found_by_its_parameters() -> None:
    (layer,) = found(gru("encoder", 2, 3)).layers
    assert layer.convention.key == "haiku.gru" and layer.name == "encoder"


def test_pickles_hold_haiku_params_and_no_other_framework() -> None:
    arrays = lstm("lstm", 2, 3)
    assert find_layers(WeightFile("numpy_pickle", arrays)).layers[0].convention.key == "haiku.lstm"
    with pytest.raises(InvalidField):
        find_layers(WeightFile("numpy_pickle", arrays), source="pytorch")
