"""format=h5 writes what Keras 3's own ``save_weights`` writes.

A Keras 3 file converted to Keras must come back as the same datasets at the same paths as
the ``.weights.h5`` Keras itself wrote for that model. Where Keras is installed, a model
built from the metadata's recipe also loads the file and reproduces the source outputs.
"""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from rnnbridge import pipeline
from rnnbridge.formats.hdf5 import keras_weights
from rnnbridge.errors import InvalidField

from .fixtures_index import FIXTURE_LAYERS, SHARED_FIXTURES

KERAS3_MODELS = ["k3_lstm", "k3_bilstm", "k3_stacked_gru", "k3_gru_reset_before", "k3_gru_reset_after"]


def datasets(source: h5py.File | h5py.Group) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    source.visititems(lambda name, obj: found.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("fixture", KERAS3_MODELS)
def test_keras_to_keras_reproduces_keras_own_weights_file(fixture: str) -> None:
    folder = SHARED_FIXTURES / fixture
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here")
    result = pipeline.convert(pipeline.read([folder / "m.keras"]), "keras")
    buffer = io.BytesIO()
    keras_weights.write(result.arrays, result.meta, buffer)
    with h5py.File(io.BytesIO(buffer.getvalue()), "r") as ours, h5py.File(folder / "m.weights.h5", "r") as theirs:
        mine, keras = datasets(ours), datasets(theirs)
        assert mine.keys() == keras.keys()
        for name, array in keras.items():
            np.testing.assert_array_equal(mine[name], array, err_msg=name)
            assert mine[name].dtype == array.dtype


def test_h5_is_for_keras_targets_only() -> None:
    fx = next(f for f in FIXTURE_LAYERS if f.layer["native_type"] == "torch.nn.LSTM")
    result = pipeline.convert(pipeline.read([fx.dir / "model.pt"]), "pytorch")
    with pytest.raises(InvalidField, match="target=keras"):
        keras_weights.write(result.arrays, result.meta, io.BytesIO())


def test_the_service_answers_format_h5(client) -> None:
    path = SHARED_FIXTURES / "k3_stacked_gru" / "m.keras"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    with path.open("rb") as upload:
        response = client.post("/convert", files={"file": ("m.keras", upload)}, data={"target": "keras", "format": "h5"})
    assert response.status_code == 200, response.text
    with h5py.File(io.BytesIO(response.content), "r") as h5, h5py.File(path.with_name("m.weights.h5"), "r") as keras:
        assert datasets(h5).keys() == datasets(keras).keys()


def test_the_service_refuses_h5_for_other_targets(client) -> None:
    path = SHARED_FIXTURES / "k3_stacked_gru" / "m.keras"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    with path.open("rb") as upload:
        response = client.post("/convert", files={"file": ("m.keras", upload)}, data={"target": "onnx", "format": "h5"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_field"


def two_torch_layers(tmp_path, decoder_inputs: int) -> str:
    """A state dict of an encoder LSTM (3 → 4) and a decoder LSTM reading ``decoder_inputs``."""
    rng = np.random.default_rng(0)
    arrays = {}
    for module, inputs in (("enc", 3), ("dec", decoder_inputs)):
        arrays[f"{module}.weight_ih_l0"] = rng.uniform(-0.5, 0.5, (16, inputs)).astype(np.float32)
        arrays[f"{module}.weight_hh_l0"] = rng.uniform(-0.5, 0.5, (16, 4)).astype(np.float32)
    path = tmp_path / "two.npz"
    np.savez(path, **arrays)
    return str(path)


def test_layers_that_do_not_chain_are_refused_asking_for_layer(tmp_path) -> None:
    """Issue 10, observation 8: one Sequential cannot hold an encoder and a decoder of other sizes."""
    result = pipeline.convert(pipeline.read([two_torch_layers(tmp_path, 5)], source="pytorch"), "keras")
    with pytest.raises(InvalidField, match="do not chain.*layer=") as caught:
        keras_weights.write(result.arrays, result.meta, io.BytesIO())
    assert caught.value.fields()["field"] == "layer"
    alone = pipeline.convert(pipeline.read([two_torch_layers(tmp_path, 5)], source="pytorch"), "keras", layer="dec")
    keras_weights.write(alone.arrays, alone.meta, io.BytesIO())  # one loadable file per layer


def test_layers_that_chain_go_into_one_file(tmp_path) -> None:
    result = pipeline.convert(pipeline.read([two_torch_layers(tmp_path, 4)], source="pytorch"), "keras")
    buffer = io.BytesIO()
    keras_weights.write(result.arrays, result.meta, buffer)
    with h5py.File(io.BytesIO(buffer.getvalue()), "r") as h5:
        assert sorted(h5["layers"]) == ["lstm", "lstm_1"]


def test_the_service_answers_422_for_layers_that_do_not_chain(client, tmp_path) -> None:
    data = {"source": "pytorch", "target": "keras", "format": "h5"}
    with open(two_torch_layers(tmp_path, 5), "rb") as upload:
        response = client.post("/convert", files={"file": ("two.npz", upload)}, data=data)
    assert response.status_code == 422
    assert "layer=" in response.json()["detail"]
