"""Paddle state_dict keys: per-cell keys are the truth, flat keys their aliases."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.discovery import find_layers
from rnnbridge.discovery.paddle import STRUCTURED
from rnnbridge.engine.canonical import to_canonical
from rnnbridge.formats.base import InputFile, WeightFile

from ..fixtures_index import FIXTURE_LAYERS


def lstm_cells(prefix: str, levels: int = 1, units: int = 3, inputs: int = 2, proj: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {}
    for level in range(levels):
        fan_in = inputs if level == 0 else (proj or units)
        shapes = {"weight_ih": (4 * units, fan_in), "weight_hh": (4 * units, proj or units), "bias_ih": (4 * units,)}
        if proj:
            shapes["weight_ho"] = (units, proj)
        for tensor, shape in shapes.items():
            arrays[f"{prefix}.{level}.cell.{tensor}"] = rng.standard_normal(shape).astype(np.float32)
    return arrays


def with_aliases(arrays: dict[str, np.ndarray]) -> WeightFile:
    """The file paddle.save writes: per-cell keys, flat aliases, and the structured-name map."""
    tensors, strings = dict(arrays), {}
    for k, (key, array) in enumerate(arrays.items()):
        module, level, _, tensor = key.rsplit(".", 3)
        flat = f"{module}.{tensor}_l{level}"
        tensors[flat] = array
        strings[f"{STRUCTURED}/{key}"] = strings[f"{STRUCTURED}/{flat}"] = f"lstm_cell_0.w_{k}"
    return WeightFile("numpy_pickle", tensors, {"strings": strings})


def test_flat_keys_are_aliases_of_the_per_cell_keys() -> None:
    found = find_layers(with_aliases(lstm_cells("encoder.rnn", levels=2)))
    (layer,) = found.layers
    assert (layer.name, layer.convention.key, layer.num_levels) == ("encoder.rnn", "paddle.lstm", 2)
    assert found.other_tensors == 0
    assert set(layer.origin.values()) == set(lstm_cells("encoder.rnn", levels=2))


def test_a_projection_is_read_from_the_per_cell_keys() -> None:
    layer = find_layers(with_aliases(lstm_cells("rnn", levels=2, units=4, proj=2))).layers[0]
    assert layer.cells[(1, "forward")]["weight_ho"].shape == (4, 2)
    assert to_canonical(layer).dims(1) == {"H": 4, "I": 2, "P": 2, "R": 2}


def test_flat_keys_alone_are_read_unless_projected() -> None:
    flat = {k.replace(".0.cell.", ".") + "_l0": v for k, v in lstm_cells("rnn").items()}
    assert find_layers(WeightFile("numpy_pickle", flat), source="paddle").layers[0].num_levels == 1
    projected = {k.replace(".0.cell.", ".") + "_l0": v for k, v in lstm_cells("rnn", units=4, proj=2).items()}
    found = find_layers(WeightFile("numpy_pickle", projected), source="paddle")
    assert found.layers == [] and "numbering" in found.unsupported[0]["reason"]


def test_a_simple_rnn_is_listed_unsupported() -> None:
    arrays = {
        "rnn.0.cell.weight_ih": np.zeros((3, 2), np.float32),
        "rnn.0.cell.weight_hh": np.zeros((3, 3), np.float32),
    }
    found = find_layers(WeightFile("numpy_pickle", arrays), source="paddle")
    assert found.unsupported[0]["kind"] == "paddle.nn.SimpleRNN"


@pytest.mark.parametrize("fx", [f for f in FIXTURE_LAYERS if f.id == "paddle_lstm_2l_bi:rnn0"], ids=str)
def test_a_pdparams_result_reads_back_as_the_same_layer(fx, tmp_path) -> None:
    model = pipeline.read([fx.dir / "model.pdparams"])
    result = pipeline.convert(model, "paddle")
    buffer = io.BytesIO()
    outputs.write(result, "pdparams", buffer)
    path = tmp_path / "out.pdparams"
    path.write_bytes(buffer.getvalue())
    back = pipeline.read([InputFile(path.name, path)])
    assert back.layers[0].convention.key == "paddle.lstm"
    for key, tensors in model.layers[0].cells.items():
        for name, array in tensors.items():
            np.testing.assert_array_equal(back.layers[0].cells[key][name], array)
