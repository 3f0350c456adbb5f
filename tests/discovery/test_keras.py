"""Keras layers from TF2 object checkpoints, SavedModels and standalone Keras 2.x HDF5 files."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge import pipeline
from rnnbridge.discovery import find_layers
from rnnbridge.engine import conventions as conv
from rnnbridge.engine import reference
from rnnbridge.errors import InexactConversion
from rnnbridge.formats.base import WeightFile

from ._fixtures import FIXTURES, fixture, paths, read_weights

SAVEDMODEL = "k2_savedmodel_lstm_bigru"


def assumed_facts(layer) -> set[str]:
    return {assumption.fact for assumption in layer.config.assumed}


def _model(weights: WeightFile) -> pipeline.Model:
    found = find_layers(weights)
    return pipeline.Model(weights.format, found.layers, found.other_tensors, found.notes, found.unsupported)


def test_object_checkpoint_skips_optimizer_state_and_save_counter() -> None:
    entry = fixture("k2_tf_ckpt_lstm_bigru")
    weights = read_weights(paths(entry, "model.ckpt"))
    others = entry["checkpoint_other_variables"]
    assert any(n.startswith("optimizer/") for n in others)
    weights.tensors["save_counter/.ATTRIBUTES/VARIABLE_VALUE"] = np.array(1, np.int64)
    slot = "layer_with_weights-0/cell/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    weights.tensors[slot] = np.zeros((3, 16), np.float32)
    found = find_layers(weights)
    assert [(layer.name, layer.convention.key) for layer in found.layers] == [
        ("layer_with_weights-0", "keras.lstm"),
        ("layer_with_weights-1", "keras.gru_reset_after"),
    ]
    assert found.unsupported == []
    not_tensors = set(weights.attrs["skipped"]) | {"_CHECKPOINTABLE_OBJECT_GRAPH"}  # read into attrs
    assert found.other_tensors == len(set(others) - not_tensors) + 2
    assert all("activations" in assumed_facts(layer) for layer in found.layers)


@pytest.mark.parametrize("archive", ["saved_model.zip", "saved_model.tar.gz"])
def test_savedmodel_without_its_object_graph_says_what_it_cannot_group(archive: str) -> None:
    weights = read_weights(paths(fixture(SAVEDMODEL), archive))
    weights.attrs.pop("object_graph", None)
    found = find_layers(weights)
    assert found.layers == []
    assert [(u["name"], u["kind"]) for u in found.unsupported] == [("variables", "SavedModel variables")]


def _savedmodel_layers(archive: str) -> tuple[dict, pipeline.Model]:
    entry = fixture(SAVEDMODEL)
    weights = read_weights(paths(entry, archive))
    # the checkpoint reader decodes the graph exactly as TensorFlow returned it
    assert weights.attrs["object_graph"] == (FIXTURES / entry["dir"] / "object_graph.pb").read_bytes()
    return entry, _model(weights)


@pytest.mark.parametrize("archive", ["saved_model.zip", "saved_model.tar.gz"])
def test_savedmodel_layers_are_found_through_the_object_graph(archive: str) -> None:
    entry, model = _savedmodel_layers(archive)
    assert [layer.name for layer in model.layers] == [e["name"] for e in entry["layers"]]
    for expected, layer in zip(entry["layers"], model.layers):
        assert layer.convention.cell == expected["cell"]
        assert len(layer.directions) == expected["directions"]
        by_origin = {name: key for key, name in layer.origin.items()}
        with np.load(FIXTURES / entry["dir"] / expected["native_npz"]) as native:
            for role, spec in expected["weights"].items():
                level, direction, tensor = by_origin[spec["in_files"][archive]]
                np.testing.assert_array_equal(layer.cells[(level, direction)][tensor], native[role])
    assert model.unsupported == []


BIDIRECTIONAL_TARGETS = [
    f
    for f in conv.TARGET_FRAMEWORKS
    if any(not {"single_cell", "one_direction"} & c.features for c in conv.CONVENTIONS.values() if c.framework == f)
]


@pytest.mark.parametrize("target", BIDIRECTIONAL_TARGETS)
def test_savedmodel_layers_convert_to_what_keras_computed(target: str) -> None:
    entry, model = _savedmodel_layers("saved_model.zip")
    folder = FIXTURES / entry["dir"]
    for expected in entry["layers"]:
        x = np.load(folder / entry["inputs"][expected["input"]["ref"]]["file"]).transpose(1, 0, 2)
        y = np.load(folder / expected["outputs"]["y"]["file"]).transpose(1, 0, 2)
        result = pipeline.convert(model, target, layer=expected["name"])
        converted = find_layers(WeightFile("npz", result.arrays, {"meta": result.meta})).layers[0]
        got, _, _ = reference.run(converted, x)
        np.testing.assert_allclose(got, y, rtol=0, atol=1e-5)


def test_standalone_keras2_names_and_hard_sigmoid_come_from_the_config() -> None:
    entry = fixture("k2_standalone_names_hard_sigmoid")
    weights = read_weights(paths(entry, "m.h5"))
    assert all(name.count("/") == 3 and "_cell" not in name for name in weights.tensors)  # no cell scope
    found = find_layers(weights)
    got = {(layer.name, layer.convention.key, layer.config.activations[0]) for layer in found.layers}
    assert got == {
        ("lstm_1", "keras.lstm", conv.HARD_SIGMOID_KERAS2),
        ("gru_1", "keras.gru", conv.HARD_SIGMOID_KERAS2),
    }
    with pytest.raises(InexactConversion) as refused:
        pipeline.convert(_model(weights), "pytorch", layer="lstm_1")
    assert refused.value.code == "activation_unsupported"


def test_standalone_keras2_weights_file_assumes_the_defaults() -> None:
    found = find_layers(read_weights(paths(fixture("k2_standalone_names_hard_sigmoid"), "w.h5")))
    assert sorted(layer.name for layer in found.layers) == ["gru_1", "lstm_1"]
    assert all("activations" in assumed_facts(layer) for layer in found.layers)


def test_a_cell_with_extra_weights_is_refused_not_converted_as_plain() -> None:
    """A layer-normalised Keras cell (TF Addons ``LayerNormLSTMCell``) stores a plain-looking
    kernel / recurrent_kernel / bias beside its norm weights: it must not pass for an LSTM."""
    base = "rnn/rnn/layer_norm_lstm_cell/"
    shapes = {"kernel:0": (3, 16), "recurrent_kernel:0": (4, 16), "bias:0": (16,), "kernel_norm/gamma:0": (16,)}
    tensors = {base + name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    found = find_layers(WeightFile("keras_h5", tensors))
    assert found.layers == []
    assert [(u["name"], u["kind"]) for u in found.unsupported] == [("rnn", "cell with extra weights")]
