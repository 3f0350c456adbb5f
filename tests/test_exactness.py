"""Exactly, or not at all (issue 10): every fact that changes a layer's function is read from
the file, stated, or an assumption listed where the user sees it; target constants exist
only where the target has them; verification checks what the target framework will build
from the bytes returned, and can fail.

Each ``test_observation_*`` reproduces one of the issue's observations with real files
(``tests/fixtures``, ``tests/fixtures/exactness``) and the frameworks' recorded outputs.
"""

from __future__ import annotations

import importlib
import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.engine import layout, loading, reference
from rnnbridge.engine.conventions import HARD_SIGMOID_KERAS2
from rnnbridge.errors import InexactConversion, InvalidField, VerificationFailed

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXACT = FIXTURES / "exactness"
K2_HARD_SIGMOID = FIXTURES / "k2_lstm_hard_sigmoid"
K3_HARD_SIGMOID = FIXTURES / "k3_lstm_hard_sigmoid"
W224 = EXACT / "k2_lstm_hard_sigmoid_w224"
GRU_BARE = EXACT / "torch_onnx_gru_bare"
LSTM_REVERSE_BARE = EXACT / "onnx_lstm_reverse_bare"
TF1_LSTM = FIXTURES / "tf1_lstm_forget_bias_half"


def tf1_files() -> list[Path]:
    return sorted(p for p in TF1_LSTM.iterdir() if p.name.startswith("model.ckpt"))


def outputs_of(result: pipeline.Result, target: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Run layer 0 of ``result`` as the target framework builds it (recipe + named arrays)."""
    entry = result.meta["layers"][0]
    layer = loading.from_arrays(result.arrays, entry["name"], entry["target"], target)
    y, h_n, c_n = reference.run(layer, x)
    return (y, h_n) if c_n is None else (y, h_n, c_n)


def truth(folder: Path) -> tuple[np.ndarray, ...]:
    names = ["y.npy", "h_n.npy"] + (["c_n.npy"] if (folder / "c_n.npy").exists() else [])
    return tuple(np.load(folder / name) for name in names)


def assumed(result_or_model, fact: str) -> list[dict]:
    layers = result_or_model.meta["layers"] if isinstance(result_or_model, pipeline.Result) else None
    if layers is None:
        return [a.as_dict() for a in result_or_model.layers[0].config.assumed if a.fact == fact]
    entry = layers[0].get("source", layers[0])
    return [a for a in entry["assumed"] if a["fact"] == fact]


def max_error(actual: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> float:
    return max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))


# --- observation 1: target constants -------------------------------------------------------


@pytest.mark.parametrize("target", ["pytorch", "keras", "onnx"])
def test_observation_1_a_target_forget_bias_without_that_knob_is_refused(target: str) -> None:
    model = pipeline.read(tf1_files())
    with pytest.raises(InvalidField, match="no run-time forget bias") as refused:
        pipeline.convert(model, target, source_forget_bias=0.5, target_forget_bias=2.0)
    assert refused.value.extra["field"] == "target_forget_bias"


def test_observation_1_tf1_takes_a_target_forget_bias_and_verification_applies_it() -> None:
    model = pipeline.read(tf1_files())
    result = pipeline.convert(model, "tf1", source_forget_bias=0.5, target_forget_bias=2.0)
    entry = result.meta["layers"][0]
    assert entry["target"]["module"]["kwargs"]["forget_bias"] == 2.0
    x = np.load(TF1_LSTM / "x.npy").transpose(1, 0, 2)
    expected = tuple(np.load(TF1_LSTM / f"rnn0.{n}.npy") for n in ("y", "h_n", "c_n"))
    expected = (expected[0].transpose(1, 0, 2),) + expected[1:]
    assert max_error(outputs_of(result, "tf1", x), expected) < 1e-5


def test_observation_1_verification_runs_the_constants_the_target_will_apply(monkeypatch) -> None:
    """A recipe that tells TF1 another forget_bias than the one folded into the bias fails."""
    from rnnbridge import describe

    real = describe.RECIPES["tf1"]

    def wrong_forget_bias(layer, dims):
        recipe = real(layer, dims)
        if "forget_bias" in recipe.get("kwargs", {}):
            recipe["kwargs"]["forget_bias"] = 1.0 + recipe["kwargs"]["forget_bias"]
        return recipe

    monkeypatch.setitem(describe.RECIPES, "tf1", wrong_forget_bias)
    with pytest.raises(VerificationFailed):
        pipeline.convert(pipeline.read(tf1_files()), "tf1", source_forget_bias=0.5)


def test_observation_1_torch_loads_the_result_and_computes_the_source() -> None:
    torch = pytest.importorskip("torch")
    result = pipeline.convert(pipeline.read(tf1_files()), "pytorch", source_forget_bias=0.5, prefix="")
    module = torch.nn.LSTM(**result.meta["layers"][0]["target"]["module"]["kwargs"])
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in result.arrays.items()})
    x = np.load(TF1_LSTM / "x.npy").transpose(1, 0, 2)
    with torch.no_grad():
        y, _ = module(torch.from_numpy(x))
    expected = np.load(TF1_LSTM / "rnn0.y.npy").transpose(1, 0, 2)
    assert np.max(np.abs(y.numpy() - expected)) < 1e-5


# --- observation 2: finite numbers only ----------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e309])
@pytest.mark.parametrize("field", ["source_forget_bias", "target_forget_bias"])
def test_observation_2_non_finite_constants_are_refused(value: float, field: str) -> None:
    model = pipeline.read(tf1_files())
    with pytest.raises(InvalidField, match="finite") as refused:
        pipeline.convert(model, "tf1", **{field: value})
    assert refused.value.extra["field"] == field


def test_observation_2_nan_in_a_result_whose_source_is_finite_fails(monkeypatch) -> None:
    real = layout.fuse_tensor

    def poisoned(spec, arrays, dims, dtype, order="C"):
        out = real(spec, arrays, dims, dtype, order)
        if spec.group == "bias":
            out = out.copy()
            out.flat[0] = np.nan
        return out

    monkeypatch.setattr("rnnbridge.engine.canonical.fuse_tensor", poisoned)
    with pytest.raises(VerificationFailed, match="NaN/Inf"):
        pipeline.convert(pipeline.read([K3_HARD_SIGMOID / "m.keras"]), "onnx")


# --- observation 3: bare ONNX arrays -------------------------------------------------------


def test_observation_3_a_bare_onnx_gru_variant_is_a_listed_assumption() -> None:
    x, expected = np.load(GRU_BARE / "x.npy"), truth(GRU_BARE)
    guessed = pipeline.convert(pipeline.read([GRU_BARE / "bare.npz"], source="onnx"), "onnx")
    listed = assumed(guessed, "reset_after")
    assert listed and listed[0]["value"] is False and listed[0]["field"] == "reset_after"
    assert max_error(outputs_of(guessed, "onnx", x), expected) > 1e-2  # the documented default is wrong here
    stated = pipeline.convert(pipeline.read([GRU_BARE / "bare.npz"], source="onnx", reset_after=True), "pytorch")
    assert assumed(stated, "reset_after") == []
    assert max_error(outputs_of(stated, "pytorch", x), expected) < 1e-5
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(pipeline.read([GRU_BARE / "bare.npz"], source="onnx"), "onnx", strict=True)
    assert (refused.value.code, refused.value.extra["field"]) == ("assumption_required", "activations")


def test_observation_3_the_onnx_model_itself_records_the_variant() -> None:
    model = pipeline.read([GRU_BARE / "model.onnx"])
    assert model.layers[0].convention.key == "onnx.gru_lbr" and model.layers[0].config.assumed == ()
    result = pipeline.convert(model, "keras", strict=True)
    assert max_error(outputs_of(result, "keras", np.load(GRU_BARE / "x.npy")), truth(GRU_BARE)) < 1e-5
    with pytest.raises(InvalidField, match="contradicts") as refused:
        pipeline.read([GRU_BARE / "model.onnx"], reset_after=False)
    assert refused.value.extra["recorded"] == "true"


def test_observation_3_a_bare_one_direction_onnx_lstm_direction_is_listed() -> None:
    x, expected = np.load(LSTM_REVERSE_BARE / "x.npy"), truth(LSTM_REVERSE_BARE)
    guessed = pipeline.convert(pipeline.read([LSTM_REVERSE_BARE / "bare.npz"], source="onnx"), "onnx")
    assert assumed(guessed, "direction")[0]["value"] == "forward"
    assert max_error(outputs_of(guessed, "onnx", x), expected) > 1e-2
    model = pipeline.read([LSTM_REVERSE_BARE / "bare.npz"], source="onnx", direction="reverse")
    stated = pipeline.convert(model, "keras")
    assert assumed(stated, "direction") == []
    assert stated.meta["layers"][0]["target"]["module"]["kwargs"]["go_backwards"] is True
    assert max_error(outputs_of(stated, "keras", x), expected) < 1e-5


# --- observation 4: the Keras version decides Keras's defaults -----------------------------


def test_observation_4_keras_2_2_4_weights_assume_its_hard_sigmoid_default() -> None:
    model = pipeline.read([W224 / "w.h5"])
    listed = assumed(model, "activations")
    assert listed[0]["value"] == "hard_sigmoid_keras2,tanh,tanh" and "2.2.4" in listed[0]["because"]
    assert model.layers[0].config.activations[0] == HARD_SIGMOID_KERAS2
    result = pipeline.convert(model, "onnx")
    assert max_error(outputs_of(result, "onnx", np.load(W224 / "x.npy")), truth(W224)) < 1e-5
    for target in ("pytorch", "tf1", "keras"):
        with pytest.raises(InexactConversion) as refused:
            pipeline.convert(model, target)
        assert refused.value.code == "activation_unsupported"


def test_observation_4_the_activations_field_states_what_the_file_does_not() -> None:
    model = pipeline.read([W224 / "w.h5"], activations="sigmoid,tanh")
    assert assumed(model, "activations") == []
    assert pipeline.convert(model, "pytorch", strict=False).meta["layers"][0]["verification"] is not None


def test_observation_4_a_field_contradicting_the_model_config_is_refused() -> None:
    with pytest.raises(InvalidField) as refused:
        pipeline.read([K2_HARD_SIGMOID / "m.h5"], activations="sigmoid,tanh")
    error = refused.value
    assert (error.code, error.extra["field"]) == ("field_contradicts_file", "activations")
    assert "hard_sigmoid(0.2,0.5)" in error.detail and "sigmoid,tanh,tanh" in error.detail


def test_observation_4_tf_keras_2_2_4_tf_is_ambiguous_and_refused_until_stated(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    shutil.copyfile(W224 / "w.h5", path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["keras_version"] = b"2.2.4-tf"
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(pipeline.read([path]), "onnx")
    assert (refused.value.code, refused.value.extra["field"]) == ("assumption_required", "activations")
    stated = pipeline.read([path], activations="hard_sigmoid_keras2,tanh")
    result = pipeline.convert(stated, "onnx")
    assert max_error(outputs_of(result, "onnx", np.load(W224 / "x.npy")), truth(W224)) < 1e-5


# --- observations 5 and 6: names in the target's own vocabulary ----------------------------


def test_observation_5_onnx_names_hard_sigmoid_with_its_alpha_and_beta() -> None:
    result = pipeline.convert(pipeline.read([K2_HARD_SIGMOID / "m.h5"]), "onnx")
    attributes = result.meta["layers"][0]["target"]["module"]["attributes"]
    assert attributes["activations"] == ["HardSigmoid", "Tanh", "Tanh"]
    assert (attributes["activation_alpha"], attributes["activation_beta"]) == ([0.2], [0.5])
    assert result.meta["layers"][0]["target"]["module"]["framework_version"] == "onnx opset 14"


@pytest.mark.parametrize("fixture", [K2_HARD_SIGMOID / "m.h5", K3_HARD_SIGMOID / "m.keras"])
def test_observation_5_onnxruntime_runs_the_result(fixture: Path) -> None:
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    result = pipeline.convert(pipeline.read([fixture]), "onnx")
    entry = result.meta["layers"][0]
    start, attributes = entry["target"]["names_start"], entry["target"]["module"]["attributes"]
    slots = [f"{start}l0/{s}" for s in ("W", "R", "B")]
    node = helper.make_node("LSTM", ["X", *slots], ["Y", "Y_h", "Y_c"], **attributes)
    x = np.load(fixture.parent / "x.npy").transpose(1, 0, 2)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(result.arrays[s]), s) for s in slots],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(["Y"], {"X": x})
    expected = np.load(fixture.parent / "rnn0.y.npy").transpose(1, 0, 2)
    assert np.max(np.abs(y[:, 0] - expected)) < 1e-5


def test_observation_6_keras_2_hard_sigmoid_is_not_declared_as_keras_3_hard_sigmoid() -> None:
    with pytest.raises(InexactConversion, match="keras.layers.LSTM cannot express") as refused:
        pipeline.convert(pipeline.read([K2_HARD_SIGMOID / "m.h5"]), "keras")
    assert refused.value.code == "activation_unsupported"
    keras3 = pipeline.convert(pipeline.read([K3_HARD_SIGMOID / "m.keras"]), "keras")
    module = keras3.meta["layers"][0]["target"]["module"]
    assert module["kwargs"]["recurrent_activation"] == "hard_sigmoid" and module["framework_version"] == "keras 3"


# --- verification can fail -----------------------------------------------------------------


def _swap_first_two_gate_blocks(array: np.ndarray) -> np.ndarray:
    """The first two quarters (LSTM) of the gate axis of a fused tensor, exchanged."""
    array = np.array(array)
    axis = int(np.argmax(array.shape[-2:])) + array.ndim - 2 if array.ndim > 1 else 0
    quarter = array.shape[axis] // 4
    index = np.arange(array.shape[axis])
    index[:quarter], index[quarter : 2 * quarter] = index[quarter : 2 * quarter], index[:quarter].copy()
    return np.take(array, index, axis=axis)


@pytest.mark.parametrize(
    ("target", "fmt"), [("onnx", "npz"), ("pytorch", "safetensors"), ("keras", "h5"), ("tf1", "json")]
)
def test_a_writer_that_swaps_two_gate_blocks_is_caught(monkeypatch, target: str, fmt: str) -> None:
    module_name, function = outputs.OUTPUTS[fmt].writer.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, function)

    def broken(arrays, meta, stream):
        real({name: _swap_first_two_gate_blocks(a) for name, a in arrays.items()}, meta, stream)

    plain = target in ("pytorch", "tf1")  # targets with sigmoid gates only get a plain LSTM
    model = pipeline.read([FIXTURES / "torch_lstm_no_bias" / "model.pt" if plain else K3_HARD_SIGMOID / "m.keras"])
    pipeline.convert(model, target, format=fmt)  # the real writer passes
    monkeypatch.setattr(module, function, broken)
    with pytest.raises(VerificationFailed):
        pipeline.convert(model, target, format=fmt)


def test_the_verification_report_says_what_it_checked() -> None:
    result = pipeline.convert(pipeline.read([K3_HARD_SIGMOID / "m.keras"]), "keras", format="h5")
    assert result.meta["layers"][0]["verification"]["target_from"].startswith("re-read from the h5 bytes")
    buffer = io.BytesIO()
    outputs.write(result, "h5", buffer)
    assert buffer.getvalue()[:8] == b"\x89HDF\r\n\x1a\n"


def test_an_ambiguous_default_is_listed_by_split_and_refused_by_convert(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    shutil.copyfile(W224 / "w.h5", path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["keras_version"] = b"2.1.6-tf"
    split = pipeline.split(pipeline.read([path]))
    (listed,) = assumed(split, "activations")
    assert listed["ambiguous"] is True and "2.1.6-tf" in listed["because"]
    with pytest.raises(InvalidField, match="no single documented default"):
        pipeline.convert(pipeline.read([path]), "onnx")


def test_a_recipe_naming_keras_2_hard_sigmoid_hard_sigmoid_fails_verification(monkeypatch) -> None:
    """Observation 6 as it was: let Keras take Keras 2's hard_sigmoid and name it
    ``hard_sigmoid``; Keras 3 loads clip(x/6 + 0.5, 0, 1), and verification says so."""
    from dataclasses import replace

    from rnnbridge import describe
    from rnnbridge.engine import conventions

    keras = conventions.CONVENTIONS["keras.lstm"]
    allowed = replace(keras.activations, gate=keras.activations.gate | {HARD_SIGMOID_KERAS2})
    monkeypatch.setitem(conventions.CONVENTIONS, "keras.lstm", replace(keras, activations=allowed))
    monkeypatch.setitem(describe._KERAS3_NAMES, HARD_SIGMOID_KERAS2, "hard_sigmoid")
    with pytest.raises(VerificationFailed, match="differs from the source"):
        pipeline.convert(pipeline.read([K2_HARD_SIGMOID / "m.h5"]), "keras")
    monkeypatch.delitem(describe._KERAS3_NAMES, HARD_SIGMOID_KERAS2)
    with pytest.raises(VerificationFailed, match="no activation named"):
        pipeline.convert(pipeline.read([K2_HARD_SIGMOID / "m.h5"]), "keras")


ONNX_STATED = {"source": "onnx", "activations": "sigmoid,tanh,tanh", "direction": "forward"}
STRICT_CASES = {
    # fact: (files, read fields stating every *other* assumed fact)
    "activations": ([W224 / "w.h5"], {"direction": "forward"}),
    "direction": ([W224 / "w.h5"], {"activations": "hard_sigmoid_keras2,tanh"}),
    "reset_after": ([GRU_BARE / "bare.npz"], {**ONNX_STATED, "activations": "sigmoid,tanh", "clip": "none"}),
    "clip": ([LSTM_REVERSE_BARE / "bare.npz"], {**ONNX_STATED, "direction": "reverse", "input_forget": False}),
    "input_forget": ([LSTM_REVERSE_BARE / "bare.npz"], {**ONNX_STATED, "direction": "reverse", "clip": "none"}),
    "forget_bias": (tf1_files(), {"activations": "sigmoid,tanh", "clip": "none"}),
}


@pytest.mark.parametrize("fact", sorted(STRICT_CASES))
def test_strict_refuses_each_assumed_fact_naming_its_field(fact: str) -> None:
    files, read_fields = STRICT_CASES[fact]
    model = pipeline.read(files, **read_fields)
    (listed,) = model.layers[0].config.assumed
    assert listed.fact == fact
    for run in (lambda: pipeline.split(model, strict=True), lambda: pipeline.convert(model, "onnx", strict=True)):
        with pytest.raises(InvalidField) as refused:
            run()
        assert (refused.value.code, refused.value.extra["field"]) == ("assumption_required", listed.field)
    assert [a["fact"] for a in assumed(pipeline.convert(model, "onnx"), fact)] == [fact]  # without strict: listed


def test_clip_and_input_forget_of_bare_onnx_arrays_are_listed_and_can_be_stated() -> None:
    model = pipeline.read([LSTM_REVERSE_BARE / "bare.npz"], source="onnx")
    listed = {a.fact: a.value for a in model.layers[0].config.assumed}
    assert (listed["clip"], listed["input_forget"]) == ("none", False)
    stated = pipeline.read([LSTM_REVERSE_BARE / "bare.npz"], source="onnx", clip="0.5", input_forget=True)
    config = stated.layers[0].config
    assert (config.clip, config.input_forget) == (0.5, True)
    assert {"clip", "input_forget"}.isdisjoint(a.fact for a in config.assumed)
    with pytest.raises(InexactConversion, match="clip"):
        pipeline.convert(stated, "pytorch")


@pytest.mark.parametrize("clip", ["0", "-1", "nan", "inf", "big"])
def test_clip_is_none_or_a_finite_positive_number(clip: str) -> None:
    with pytest.raises(InvalidField) as refused:
        pipeline.read([LSTM_REVERSE_BARE / "bare.npz"], source="onnx", clip=clip)
    assert refused.value.extra["field"] == "clip"


def test_a_stated_clip_contradicting_the_onnx_node_is_refused() -> None:
    with pytest.raises(InvalidField, match="contradicts") as refused:
        pipeline.read([FIXTURES / "onnx_lstm_clip" / "model.onnx"], clip="none")
    assert refused.value.extra["recorded"] == 0.5


@pytest.mark.parametrize(("encoding", "target"), [("xml", "onnx"), ("h5", "onnx")])
def test_an_encoding_the_target_cannot_have_is_refused_before_the_work(encoding: str, target: str) -> None:
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(pipeline.read([K3_HARD_SIGMOID / "m.keras"]), target, format=encoding)
    assert refused.value.extra["field"] == "format"


def test_tf1_cell_clipping_is_a_listed_assumption_and_cannot_be_stated_as_a_number() -> None:
    """TF1 checkpoints do not store LSTMCell(cell_clip, proj_clip): no clipping is assumed and
    listed; stating clip=none removes the assumption; a number is refused, since ONNX's clip
    (gate inputs) is not TF1's cell_clip (cell state), and no other framework clips the cell."""
    (layer,) = pipeline.read(tf1_files()).layers
    assert ("clip", "none") in {(a.fact, a.value) for a in layer.config.assumed}
    (stated,) = pipeline.read(tf1_files(), clip="none").layers
    assert "clip" not in {a.fact for a in stated.config.assumed} and stated.config.clip is None
    with pytest.raises(InvalidField) as refused:
        pipeline.read(tf1_files(), clip="3")
    assert (refused.value.code, refused.value.extra["field"]) == ("clip_unsupported", "clip")
