"""``format=onnx``: the model rnnbridge writes, read back by rnnbridge's own ONNX reader.

(onnxruntime and onnx run and check the same bytes in ``tests/interop``.) Here: the
graph's structure (one node per level, the reshape between bidirectional levels, the
inputs and outputs), the exact node attributes, the metadata, and the encoder.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.cli import main
from rnnbridge.engine.conventions import HARD_SIGMOID_KERAS2
from rnnbridge.errors import InvalidField
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.formats.onnx import model as onnx_model
from rnnbridge.formats.onnx import writer
from rnnbridge.formats.wire import encoder, protobuf

from ..fixtures_index import FIXTURE_LAYERS
from ..test_round_trips import source_model


def written(fixture_id: str, tmp_path):
    fx = next(f for f in FIXTURE_LAYERS if f.id == fixture_id)
    result = pipeline.convert(source_model(fx), "onnx")
    path = tmp_path / "model.onnx"
    with path.open("wb") as stream:
        outputs.write(result, "onnx", stream)
    return result, onnx_model.read([InputFile("model.onnx", path)], Limits())


def ops(weights) -> list[str]:
    return [node["op_type"] for node in weights.attrs["nodes"]]


def test_a_two_level_bidirectional_lstm_is_two_nodes_chained_by_a_reshape(tmp_path):
    result, back = written("torch_lstm_2l_bi:rnn0", tmp_path)
    assert ops(back) == ["LSTM", "LSTM"]
    first, second = back.attrs["nodes"]
    assert first["inputs"][:4] == ["X", "encoder.rnn/l0/W", "encoder.rnn/l0/R", "encoder.rnn/l0/B"]
    assert second["inputs"][0] == "encoder.rnn/l0/Y_flat"  # [T, D, B, H] -> [T, B, D·H]
    np.testing.assert_array_equal(back.tensors["encoder.rnn/l0/Y_shape"], [0, 0, -1])
    assert first["attributes"]["direction"] == "bidirectional"
    assert first["attributes"]["activations"] == ["Sigmoid", "Tanh", "Tanh"] * 2
    assert first["attributes"]["layout"] == 0 and first["attributes"]["input_forget"] == 0
    for name, array in result.arrays.items():
        assert back.tensors[name].tobytes() == array.tobytes() and back.tensors[name].dtype == array.dtype


@pytest.mark.parametrize(
    ("fixture", "attribute", "value"),
    [
        ("onnx_lstm_clip:rnn0", "clip", pytest.approx(0.75)),
        ("onnx_lstm_input_forget:rnn0", "input_forget", 1),
        ("onnx_gru_lbr1:rnn0", "linear_before_reset", 1),
        ("onnx_gru_lbr0:rnn0", "linear_before_reset", 0),
        ("onnx_lstm_reverse:rnn0", "direction", "reverse"),
    ],
)
def test_node_attributes_are_the_source_s(fixture, attribute, value, tmp_path):
    fx = next(f for f in FIXTURE_LAYERS if f.id == fixture)
    _, back = written(fixture, tmp_path)
    (node,) = back.attrs["nodes"]
    if attribute == "clip":
        value = pytest.approx(fx.native.config.clip)
    assert node["attributes"][attribute] == value


def test_hard_sigmoid_is_written_in_onnx_s_words(tmp_path):
    """Issue 10, observation 5: ONNX spells it HardSigmoid with activation_alpha / _beta."""
    result, back = written("onnx_lstm_hard_sigmoid:rnn0", tmp_path)
    (node,) = back.attrs["nodes"]
    names = node["attributes"]["activations"]
    assert set(names) <= {"HardSigmoid", "Sigmoid", "Tanh", "Relu", "Affine"}
    assert writer.onnx_activations([HARD_SIGMOID_KERAS2, "tanh", "tanh"]) == (
        ["HardSigmoid", "Tanh", "Tanh"],
        [0.2],
        [0.5],
    )


def test_the_metadata_rides_in_metadata_props_and_the_opset_is_14(tmp_path):
    result, back = written("torch_gru_in1:rnn0", tmp_path)
    assert back.attrs["opset"] == writer.OPSET == 14 and back.attrs["ir_version"] == writer.IR_VERSION
    assert back.attrs["metadata"]["rnnbridge"] == outputs.meta_json(result)
    assert back.attrs["producer"] == "rnnbridge"


def test_onnx_is_for_target_onnx_only():
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_gru_in1:rnn0")
    result = pipeline.convert(source_model(fx), "pytorch")
    with pytest.raises(InvalidField, match="target=onnx"):
        outputs.write(result, "onnx", io.BytesIO())


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -(2**63)])
def test_the_encoder_s_varints_decode_back(value):
    data = encoder.field_varint(3, value)
    ((number, wire, decoded),) = list(protobuf.iter_fields(data))
    assert (number, wire, protobuf.as_int64(decoded)) == (3, protobuf.VARINT, value)


def test_the_encoder_s_nested_messages_and_packed_runs_decode_back():
    inner = encoder.field_text(1, "W") + encoder.packed_varints(2, [4, 12, 3]) + encoder.field_float(3, 0.5)
    data = encoder.field_bytes(7, inner)
    ((_, _, where),) = list(protobuf.iter_fields(data))
    fields = list(protobuf.iter_fields(data, where.start, where.stop))
    assert protobuf.as_text(data, fields[0][2], "") == "W"
    assert protobuf.packed_varints(data, fields[1][2]) == [4, 12, 3]
    assert protobuf.as_float(data, fields[2][2]) == 0.5


def test_the_cli_writes_model_onnx_and_the_service_answers_it(tmp_path, client):
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_lstm_1l:rnn0")
    out = tmp_path / "model.onnx"
    assert main(["convert", str(fx.dir / "model.pt"), "--target", "onnx", "--format", "onnx", "-o", str(out)]) == 0
    back = pipeline.read([out])
    assert [layer.name for layer in back.layers] == ["encoder.rnn"] and back.format == "onnx"
    with open(fx.dir / "model.pt", "rb") as upload:
        response = client.post(
            "/convert", files={"file": ("model.pt", upload)}, data={"target": "onnx", "format": "onnx"}
        )
    assert response.status_code == 200, response.text
    assert response.content == out.read_bytes()  # the same bytes, whichever way it is asked for
    assert response.headers["content-disposition"].endswith('model.to-onnx.onnx"')


def test_several_layers_sit_side_by_side_with_their_own_inputs_and_outputs(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {}
    for module, inputs in (("enc", 3), ("dec", 5)):
        arrays[f"{module}.weight_ih_l0"] = rng.uniform(-0.5, 0.5, (12, inputs)).astype(np.float32)
        arrays[f"{module}.weight_hh_l0"] = rng.uniform(-0.5, 0.5, (12, 4)).astype(np.float32)
    np.savez(tmp_path / "two.npz", **arrays)
    result = pipeline.convert(pipeline.read([tmp_path / "two.npz"], source="pytorch"), "onnx")
    path = tmp_path / "two.onnx"
    with path.open("wb") as stream:
        outputs.write(result, "onnx", stream)
    back = onnx_model.read([InputFile("two.onnx", path)], Limits())
    assert [node["inputs"][0] for node in back.attrs["nodes"]] == ["enc/X", "dec/X"]
    assert [layer.name for layer in pipeline.read([path]).layers] == ["enc", "dec"]


@pytest.mark.parametrize(("output", "target", "fmt"), [("model.onnx", "onnx", "onnx"), ("ckpt.tar", "tf1", None)])
def test_the_cli_takes_the_format_from_the_output_s_extension(tmp_path, output, target, fmt):
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_lstm_1l:rnn0")
    assert main(["convert", str(fx.dir / "model.pt"), "--target", target, "-o", str(tmp_path / output)]) == 0
    assert pipeline.read([tmp_path / output]).format == (fmt or "tf_checkpoint")
