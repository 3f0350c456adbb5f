"""Every real fixture, read from the file its framework wrote, converted to every target.

A conversion passes only when the converted tensors, run through the *target* framework's
own equations (``rnnbridge.engine.reference``), reproduce the outputs the *source* framework
recorded. Refusals are predicted here from the manifest's flags, independently of the
service's registry, and must come with the right code.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.discovery.common import safe_name
from rnnbridge.discovery.rnnbridge import find_rnnbridge
from rnnbridge.engine import reference
from rnnbridge.engine.conventions import FRAMEWORK_TABLE, TARGET_FRAMEWORKS, candidates
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import InexactConversion, InvalidField
from rnnbridge.formats.base import WeightFile

from .fixtures_index import BARE_ARRAY_SOURCES, FIXTURE_LAYERS, FixtureLayer

NO_CONFIG_FILES = {"w.h5", "m.weights.h5"}  # Keras save_weights files carry no model config


def uploads(fx: FixtureLayer) -> list[tuple[str, list[Path]]]:
    """Each separately uploadable file (group) of the fixture that holds this layer."""
    where = set()
    for role in fx.layer["weights"].values():
        where |= {name.split(":")[0] for name in role["in_files"]}
    groups = []
    for name in sorted(where):
        if name == "model.ckpt":
            groups.append((name, [fx.dir / f["name"] for f in fx.fixture["files"]]))
        elif name.endswith(".xml"):  # an OpenVINO IR: the graph and its weights
            groups.append((name, [fx.dir / name, fx.dir / name.replace(".xml", ".bin")]))
        elif (fx.dir / name).is_dir():
            continue  # an Orbax checkpoint folder: refused with the way out (tests/formats/test_flax_msgpack.py)
        else:
            groups.append((name, [fx.dir / name]))
    return groups


CASES = [pytest.param(fx, name, files, id=f"{fx.id}:{name}") for fx in FIXTURE_LAYERS for name, files in uploads(fx)]


@cache
def read(fx_id: str, name: str) -> pipeline.Model:
    fx = next(f for f in FIXTURE_LAYERS if f.id == fx_id)
    files = dict(uploads(fx))[name]
    reverse = fx.layer["flags"].get("go_backwards") and name in NO_CONFIG_FILES
    source = BARE_ARRAY_SOURCES.get(fx.fixture["source"]) if name.endswith(".npz") else None
    return pipeline.read(files, source=source, direction="reverse" if reverse else None)


def layer_name(fx: FixtureLayer) -> str:
    """The manifest's layer name as rnnbridge reports it (made safe: ONNX ``/GRU`` is ``GRU``;
    an .eqx file has no names: its layers are named by their first leaf, ``#0``)."""
    if fx.fixture["source"] == "equinox_eqx":
        return fx.layer["weights"]["weight_ih"]["in_files"]["model.eqx"]
    return safe_name(fx.layer["name"])


def layer_of(model: pipeline.Model, fx: FixtureLayer) -> NativeLayer:
    names = [layer.name for layer in model.layers]
    assert layer_name(fx) in names, f"layer {layer_name(fx)!r} not found; found {names}"
    return next(layer for layer in model.layers if layer.name == layer_name(fx))


def forget_bias(fx: FixtureLayer) -> float | None:
    """The TF1 run-time forget bias the model was built with, as a user would pass it (other
    frameworks' run-time constants are fixed or in the file: nobody states them)."""
    if not fx.layer["native_type"].startswith("tf1."):
        return None
    return (fx.layer.get("runtime_constants") or {}).get("forget_bias")


def non_default_activations(fx: FixtureLayer) -> bool:
    flags = fx.layer["flags"]
    return flags.get("recurrent_activation", "sigmoid") != "sigmoid" or flags.get("activation", "tanh") != "tanh"


def expected_refusals(fx: FixtureLayer, target: str) -> set[str]:
    """Error codes a conversion of this layer to ``target`` must be refused with (any of)."""
    layer, flags = fx.layer, fx.layer["flags"]
    codes = set()
    if layer["cell"] == "gru" and fx.layer.get("canonical_variant") == "reset_before" and target in TORCH_LIKE_TARGETS:
        codes.add("gru_variant_mismatch")
    if flags.get("use_peepholes") and target in {"keras"} | TORCH_LIKE_TARGETS:
        codes.add("peepholes_unsupported")
    if (flags.get("num_proj") or flags.get("proj_size")) and target in ("keras", "onnx"):
        codes.add("projection_unsupported")
    if flags.get("clip") and target != "onnx":  # OpenVINO writes clip=0 for none
        codes.add("clip_unsupported")
    if flags.get("input_forget") and target != "onnx":
        codes.add("input_forget_unsupported")
    if layer["direction"] == "reverse" and target in {"tf1"} | TORCH_LIKE_TARGETS:
        codes.add("reverse_only_unsupported")
    gate = flags.get("recurrent_activation", "sigmoid")
    if (gate != "sigmoid" or "HardSigmoid" in str(flags.get("activations"))) and target in {"tf1"} | TORCH_LIKE_TARGETS:
        codes.add("activation_unsupported")
    keras2_hard_sigmoid = gate == "hard_sigmoid" and fx.fixture["source"] != "keras3"
    if (keras2_hard_sigmoid or "HardSigmoid" in str(flags.get("activations"))) and target == "keras":
        codes.add("activation_unsupported")  # Keras 3 (what rnnbridge writes) has no clip(0.2x + 0.5, 0, 1)
    if flags.get("activation", "tanh") != "tanh" and target in TORCH_LIKE_TARGETS:
        codes.add("activation_unsupported")
    if layer.get("wrapper") == "tf1.bidirectional_dynamic_rnn" and layer["num_layers"] > 1 and target != "tf1":
        codes.add("topology_unsupported")
    if layer["cell"] == "lstm" and flags.get("stored_dtype") == "float16" and target in {"tf1", "haiku"}:
        codes.add("inexact_fold")  # b_f - 1 is not exact in float16 for these values
    if target in LIMITED_TARGETS:
        codes |= _limited_refusals(fx, LIMITED_TARGETS[target])
    return codes


#: targets with sigmoid / tanh only, one GRU variant, and no bidirectional module (or not even
#: several levels): what each can hold
LIMITED_TARGETS = {
    "mlx": {"reset_after": True, "levels": False},
    "equinox": {"reset_after": True, "levels": False},
    "haiku": {"reset_after": False, "levels": True},
}
#: targets like PyTorch's modules (every level, both directions, reset-after GRU, projection)
TORCH_LIKE_TARGETS = {"pytorch", "paddle"}


def _limited_refusals(fx: FixtureLayer, can: dict) -> set[str]:
    layer, flags = fx.layer, fx.layer["flags"]
    codes = set()
    if layer["cell"] == "gru" and (layer.get("canonical_variant") == "reset_after") != can["reset_after"]:
        codes.add("gru_variant_mismatch")
    if flags.get("use_peepholes"):
        codes.add("peepholes_unsupported")
    if flags.get("num_proj") or flags.get("proj_size"):
        codes.add("projection_unsupported")
    if flags.get("clip"):
        codes.add("clip_unsupported")
    if flags.get("input_forget"):
        codes.add("input_forget_unsupported")
    if non_default_activations(fx) or "HardSigmoid" in str(flags.get("activations")):
        codes.add("activation_unsupported")
    if layer["direction"] == "reverse":
        codes.add("reverse_only_unsupported")
    if layer["directions"] > 1 or (layer["num_layers"] > 1 and not can["levels"]):
        codes.add("topology_unsupported")
    return codes


REASON_CODES = {
    "gru_variant": "gru_variant_mismatch",
    "peepholes": "peepholes_unsupported",
    "projection": "projection_unsupported",
    "clip": "clip_unsupported",
    "activation": "activation_unsupported",
    "reverse_only": "reverse_only_unsupported",
    "topology": "topology_unsupported",
    "input_forget": "input_forget_unsupported",
}


RECORDED_REFUSALS = [
    pytest.param(fx, target, recorded, id=f"{fx.id}->{target}")
    for fx in FIXTURE_LAYERS
    for target, recorded in sorted(fx.layer.get("expect_refused", {}).items())
]


@pytest.mark.parametrize(("fx", "target", "recorded"), RECORDED_REFUSALS)
def test_refusal_predictions_agree_with_the_generator(fx: FixtureLayer, target: str, recorded: str) -> None:
    """The fixture generator's own ``expect_refused`` and our flag-based prediction agree."""
    assert REASON_CODES[recorded] in expected_refusals(fx, target)


@pytest.mark.parametrize(("fx", "name", "files"), CASES)
def test_inspect_finds_the_layer_with_its_sizes(fx: FixtureLayer, name: str, files: list[Path]) -> None:
    info = pipeline.inspect(read(fx.id, name))
    entry = next(e for e in info["layers"] if e["name"] == layer_name(fx))
    assert entry["cell"] == fx.layer["cell"]
    assert entry["input_size"] == fx.layer["input_size"]
    assert entry["units"] == fx.layer["units"]
    assert entry["num_layers"] == fx.layer["num_layers"]
    assert entry["directions"] == fx.layer["directions"]
    assert entry["direction"] == fx.layer["direction"]


@pytest.mark.parametrize(("fx", "name", "files"), CASES)
def test_split_equals_the_per_gate_truth(fx: FixtureLayer, name: str, files: list[Path]) -> None:
    result = pipeline.split(read(fx.id, name), layer=layer_name(fx), source_forget_bias=forget_bias(fx))
    added = (fx.layer.get("runtime_constants") or {}).get("forget_bias", 0.0)  # folded into b_xf
    reverse_only = fx.layer["direction"] == "reverse"
    expected = {}
    for (level, direction, gate), array in fx.canonical.items():
        direction = "backward" if reverse_only else direction
        expected[f"{layer_name(fx)}/l{level}/{direction}/{gate}"] = array + (added if gate == "b_xf" else 0)
    assert set(expected) <= set(result.arrays)
    for key, array in expected.items():
        np.testing.assert_array_equal(result.arrays[key], array.astype(result.arrays[key].dtype), err_msg=key)
    extra = {k for k in set(result.arrays) - set(expected) if not k.split("/")[-1].startswith("b_h")}
    assert not extra, f"unexpected arrays {sorted(extra)}"


def weights_only_with_other_activations(fx: FixtureLayer, name: str) -> bool:
    """Weights-only files do not say which activations the layer used: defaults are assumed."""
    return name in NO_CONFIG_FILES and non_default_activations(fx)


ASSUMED_ACTIVATIONS = [case for case in CASES if weights_only_with_other_activations(*case.values[:2])]
CONVERSIONS = [
    pytest.param(*case.values, target, id=f"{case.id}->{target}")
    for case in CASES
    if not weights_only_with_other_activations(*case.values[:2])
    for target in TARGET_FRAMEWORKS
]
REFUSED = [case for case in CONVERSIONS if expected_refusals(case.values[0], case.values[3])]
EXACT = [case for case in CONVERSIONS if not expected_refusals(case.values[0], case.values[3])]


@pytest.mark.parametrize(("fx", "name", "files"), ASSUMED_ACTIVATIONS)
def test_weights_only_files_say_the_activations_are_assumed(fx: FixtureLayer, name: str, files: list[Path]) -> None:
    """These layers need a model file to be converted exactly; the metadata must say so."""
    model = read(fx.id, name)
    assert "activations" in {a.fact for a in layer_of(model, fx).config.assumed}


@pytest.mark.parametrize(("fx", "name", "files", "target"), REFUSED)
def test_inexact_conversions_are_refused(fx: FixtureLayer, name: str, files: list[Path], target: str) -> None:
    model = read(fx.id, name)
    refusals = expected_refusals(fx, target)
    with pytest.raises(InexactConversion) as refused:
        pipeline.convert(model, target, layer=layer_name(fx), source_forget_bias=forget_bias(fx))
    assert refused.value.code in refusals


@pytest.mark.parametrize(("fx", "name", "files", "target"), EXACT)
def test_convert_reproduces_the_source_framework(fx: FixtureLayer, name: str, files: list[Path], target: str) -> None:
    model = read(fx.id, name)
    result = pipeline.convert(model, target, layer=layer_name(fx), source_forget_bias=forget_bias(fx))
    converted = find_rnnbridge(WeightFile("npz", result.arrays, {"meta": result.meta})).layers[0]
    assert converted.convention.framework == target
    y, h_n, c_n = reference.run(converted, fx.x, fx.h0, fx.c0)
    tolerance = 1e-12 if fx.y.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=tolerance)
    np.testing.assert_allclose(h_n, fx.h_n, rtol=0, atol=tolerance)
    if fx.c_n is not None:
        np.testing.assert_allclose(c_n, fx.c_n, rtol=0, atol=tolerance)
    report = result.meta["layers"][0]["verification"]
    assert report["max_abs_err"] <= report["tolerance"]
    stored = fx.layer["flags"].get("stored_dtype") or fx.fixture.get("dtype", "float32").split()[0]
    for array in result.arrays.values():
        assert array.dtype == np.dtype(stored)  # the source dtype is kept (OpenVINO: float16 in the .bin)


def test_one_prefix_for_several_layers_is_refused_not_overwritten() -> None:
    fx = next(f for f in FIXTURE_LAYERS if f.fixture["id"] == "k2_stacked_lstm")
    model = pipeline.read([fx.dir / "m.h5"])
    assert len(model.layers) == 2
    with pytest.raises(InvalidField, match="one at a time") as refused:
        pipeline.convert(model, "pytorch", prefix="")
    assert refused.value.extra["field"] == "prefix"
    both = pipeline.convert(model, "pytorch")
    assert {name.split(".")[0] for name in both.arrays} == {"lstm", "lstm_1"}


def big_pytorch_model(tmp_path: Path) -> Path:
    """A 2-level bidirectional LSTM with more weights than verification checks in full."""
    rng = np.random.default_rng(0)
    state = {}
    for level in range(2):
        for suffix in ("", "_reverse"):
            fan_in = 256 if level == 0 else 1024
            state[f"rnn.weight_ih_l{level}{suffix}"] = rng.standard_normal((2048, fan_in), dtype=np.float32)
            state[f"rnn.weight_hh_l{level}{suffix}"] = rng.standard_normal((2048, 512), dtype=np.float32)
            state[f"rnn.bias_ih_l{level}{suffix}"] = rng.standard_normal(2048, dtype=np.float32)
            state[f"rnn.bias_hh_l{level}{suffix}"] = rng.standard_normal(2048, dtype=np.float32)
    path = tmp_path / "big.safetensors"
    from rnnbridge.formats.safetensors import file as safetensors_file

    with path.open("wb") as stream:
        safetensors_file.write(stream, state)
    return path


@pytest.mark.parametrize("target", ["keras", "onnx"])
def test_consuming_a_large_layer_cell_by_cell_gives_the_same_result(tmp_path: Path, target: str) -> None:
    path = big_pytorch_model(tmp_path)
    whole = pipeline.convert(pipeline.read([path]), target)
    model = pipeline.read([path])
    by_cell = pipeline.convert(model, target, consume=True)
    assert model.layers[0].cells == {}  # handed over: the source arrays are gone
    assert by_cell.arrays.keys() == whole.arrays.keys()
    for name, array in whole.arrays.items():
        np.testing.assert_array_equal(by_cell.arrays[name], array, err_msg=name)
    report = by_cell.meta["layers"][0]["verification"]
    assert report["cells_checked"] == 4 and report["max_abs_err"] <= report["tolerance"]


def test_any_memory_order_holds_the_same_values() -> None:
    fx = next(f for f in FIXTURE_LAYERS if f.layer["native_type"] == "torch.nn.LSTM" and f.layer["directions"] == 2)
    model = pipeline.read([fx.dir / "model.pt"])
    c_order = pipeline.convert(model, "keras")
    any_order = pipeline.convert(model, "keras", order="K")
    assert any(a.flags.f_contiguous and not a.flags.c_contiguous for a in any_order.arrays.values())
    assert all(a.flags.c_contiguous for a in c_order.arrays.values())
    for name, array in c_order.arrays.items():
        np.testing.assert_array_equal(any_order.arrays[name], array, err_msg=name)
    buffer = io.BytesIO()
    outputs.write_npz(any_order, buffer)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as loaded:
        for name, array in c_order.arrays.items():
            np.testing.assert_array_equal(loaded[name], array, err_msg=name)


def _a_torch_lstm() -> pipeline.Model:
    fx = next(f for f in FIXTURE_LAYERS if f.layer["native_type"] == "torch.nn.LSTM")
    return pipeline.read([fx.dir / "model.pt"])


@pytest.mark.parametrize("target", [f for f in TARGET_FRAMEWORKS if not FRAMEWORK_TABLE[f].prefix])
def test_a_prefix_is_refused_where_the_framework_names_its_own_tensors(target: str) -> None:
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(_a_torch_lstm(), target, prefix="model.")
    assert refused.value.extra["field"] == "prefix"


#: per target framework, the LSTM convention a torch.nn.LSTM converts into
LSTM_TARGETS = {f: candidates(f, "lstm", None)[0] for f in TARGET_FRAMEWORKS}


@pytest.mark.parametrize(
    "framework", sorted(f for f, conv in LSTM_TARGETS.items() if conv.forget_bias_rule != "stated")
)
def test_a_stated_forget_bias_applies_only_where_it_is_a_setting(framework: str) -> None:
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(_a_torch_lstm(), framework, target_forget_bias=0.5)
    assert refused.value.extra["field"] == "target_forget_bias"
    with pytest.raises(InvalidField) as refused:
        pipeline.split(_a_torch_lstm(), source_forget_bias=0.5)
    assert refused.value.extra["field"] == "source_forget_bias"
