"""Recurrent layers rnnbridge does not convert are listed by ``/inspect``, with the reason.

Real files written by tf_keras, tf.compat.v1 and PyTorch (``tools/make_fixtures.py``):
SimpleRNN (also inside Bidirectional), ConvLSTM1D/2D, ``nn.RNN``, ``nn.RNNCell``, TF1
``BasicRNNCell`` (alone and inside a ``MultiRNNCell`` with an LSTM), and the variable names
of contrib's ``LayerNormBasicLSTMCell``. The convertible layers next to them are still found.
"""

from __future__ import annotations

import pytest

from rnnbridge import pipeline
from rnnbridge.discovery import find_layers
from rnnbridge.formats.base import WeightFile

from ._fixtures import fixture, paths, unsupported_cases

UNSUPPORTED_FIXTURES = ("k2_simple_rnn_convlstm", "torch_rnn_unsupported", "tf1_basic_rnn_layer_norm")


def _cases() -> list:
    return [case for fid in UNSUPPORTED_FIXTURES for case in unsupported_cases(fid)]


@pytest.mark.parametrize(("entry", "expected", "name"), _cases())
def test_inspect_lists_the_layer_with_its_kind_and_a_reason(entry: dict, expected: dict, name: str) -> None:
    info = pipeline.inspect(pipeline.read(paths(entry, name)))
    listed = {u["name"]: u for u in info["unsupported_layers"]}
    assert expected["name"] in listed, f"not listed; listed: {sorted(listed)}"
    assert listed[expected["name"]]["kind"] == expected["kind"]
    assert listed[expected["name"]]["reason"]
    assert expected["name"] not in {layer["name"] for layer in info["layers"]}


@pytest.mark.parametrize("fid", UNSUPPORTED_FIXTURES)
def test_the_convertible_layers_beside_them_are_found(fid: str) -> None:
    entry = fixture(fid)
    for other in entry["other_recurrent_layers"]:
        for name in other["in_files"]:
            info = pipeline.inspect(pipeline.read(paths(entry, name)))
            found = {layer["name"]: layer for layer in info["layers"]}
            assert set(found) == {other["name"]}, name
            assert (found[other["name"]]["units"], found[other["name"]]["input_size"]) == (
                other["units"],
                other["input_size"],
            )


def test_an_unknown_pytorch_recurrent_shape_is_listed_not_fatal() -> None:
    import numpy as np

    tensors = {"odd.weight_ih_l0": np.zeros((10, 3), np.float32), "odd.weight_hh_l0": np.zeros((10, 5), np.float32)}
    found = find_layers(WeightFile("safetensors", tensors))
    assert found.layers == []
    assert [(u["name"], u["kind"]) for u in found.unsupported] == [("odd", "unknown recurrent module")]
