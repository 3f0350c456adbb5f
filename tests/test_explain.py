"""/explain's expressions are what /split and /convert compute, bit for bit.

Every printed NumPy expression is evaluated on the arrays of every real fixture file (as
its format reader returns them, by the names /explain gives) and must give the /split
array exactly;
every target recipe, run as the printed NumPy program, must give the /convert tensors
exactly; every convention of the registry is checked the same way on random tensors of
the shapes /explain states for a layer described by sizes alone. The expressions are our
own output, evaluated on arrays we made or read: never a user's text.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from rnnbridge import formats, pipeline, verbs
from rnnbridge.discovery.common import safe_name
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, TARGET_FRAMEWORKS
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import InexactConversion, InvalidField, LimitExceeded
from rnnbridge.formats.base import InputFile, Limits
from tests.fixtures_index import BARE_ARRAY_SOURCES, FIXTURE_LAYERS, FixtureLayer, fixture_params
from tests.test_pipeline import layer_name, uploads

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _upload(fx: FixtureLayer) -> list[Path]:
    """One file (or checkpoint bundle, OpenVINO xml + bin) of the fixture that holds this layer."""
    groups = uploads(fx)
    first = sorted({name.split(":")[0] for role in fx.layer["weights"].values() for name in role["in_files"]})[0]
    return dict(groups).get(first, groups[0][1])


@lru_cache(maxsize=None)
def _model(fx_id: str) -> pipeline.Model:
    fx = next(f for f in FIXTURE_LAYERS if f.id == fx_id)
    files = _upload(fx)
    weights_only = files[0].name in ("w.h5", "m.weights.h5")
    source = BARE_ARRAY_SOURCES.get(fx.fixture["source"]) if files[0].suffix == ".npz" else None
    reverse = fx.layer["flags"].get("go_backwards") and weights_only
    return pipeline.read(files, source=source, direction="reverse" if reverse else None)


@lru_cache(maxsize=None)
def _file_tensors(fx_id: str) -> dict[str, np.ndarray]:
    """The fixture file's own arrays, by the names the file gives them (no discovery)."""
    fx = next(f for f in FIXTURE_LAYERS if f.id == fx_id)
    return formats.read([InputFile(p.name, p) for p in _upload(fx)], Limits()).tensors


def _native(model: pipeline.Model, name: str) -> NativeLayer:
    return next(layer for layer in model.layers if layer.name == name)


def stored_tensors(native: NativeLayer, doc: dict) -> dict[str, np.ndarray]:
    """The expressions' variables: each stored tensor as the file holds it (ONNX with its
    leading direction axis)."""
    env = {}
    for cell in doc["cells"]:
        for tensor in cell["tensors"]:
            if native.convention.stack_directions:
                stacked = [native.cells[(cell["level"], d)][tensor["role"]] for d in native.directions]
                env[tensor["variable"]] = np.stack(stacked)
            else:
                env[tensor["variable"]] = native.cells[(cell["level"], cell["direction"])][tensor["role"]]
            assert list(env[tensor["variable"]].shape) == tensor["shape"]
    return env


def assert_same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert (got.shape, got.dtype) == (want.shape, want.dtype), what
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


def variables(model: pipeline.Model, name: str, doc: dict, file: dict[str, np.ndarray] | None) -> dict:
    """The expressions' variables: the file's own arrays by the names /explain gives, or,
    for a layer built here, its stored tensors."""
    if file is None:
        return stored_tensors(_native(model, name), doc)
    env = {variable: file[tensor] for variable, tensor in doc["variables"].items()}
    assert env.keys() == stored_tensors(_native(model, name), doc).keys()
    return env


def check_gates(model: pipeline.Model, name: str, orientation: str = "out_in", file=None) -> int:
    doc = verbs.explain(model, layer=name, orientation=orientation)["layers"][0]
    split = pipeline.split(model, layer=name, orientation=orientation).arrays
    env = variables(model, name, doc, file)
    names = [gate["split_name"] for cell in doc["cells"] for gate in cell["gates"]]
    assert sorted(names) == sorted(split)
    for cell in doc["cells"]:
        for gate in cell["gates"]:
            assert_same_bits(eval(gate["numpy"], {"np": np}, env), split[gate["split_name"]], gate["numpy"])
            assert list(split[gate["split_name"]].shape) == gate["shape"]
    namespace = {"np": np, **env}
    exec(doc["snippets"]["numpy"], namespace)
    for key, array in split.items():
        assert_same_bits(namespace["gates"][key], array, f"snippet {key}")
    return len(names)


def check_target(model: pipeline.Model, name: str, target: str, file=None) -> None:
    doc = verbs.explain(model, layer=name, target=target)["layers"][0]
    recipe = doc["target"]
    try:
        converted = pipeline.convert(model, target, layer=name).arrays
    except InexactConversion as exc:
        assert recipe.get("refused", {}).get("code") == exc.code
        return
    assert "refused" not in recipe, recipe.get("refused")
    namespace = {"np": np, **variables(model, name, doc, file)}
    exec(recipe["snippets"]["numpy"], namespace)
    assert sorted(namespace["out"]) == sorted(converted) == sorted(t["name"] for t in recipe["tensors"])
    for key, array in converted.items():
        assert_same_bits(namespace["out"][key], array, f"{target} {key}")


#: OpenVINO IR stores both directions of a tensor in one constant ([D, ...]) and a GRU's B
#: holds Rb_h too, while its convention reads them per direction: /explain's ``variables``
#: name the whole file constant where the expressions index one direction's part of it
STACKED_IN_FILE = {"openvino_ir"}
KNOWN_GAP = pytest.mark.xfail(
    strict=True, reason="explain maps a variable to a whole file constant that holds several directions/roles"
)


def _expression_params() -> list:
    return [
        pytest.param(*p.values, id=p.id, marks=KNOWN_GAP if p.values[0].fixture["source"] in STACKED_IN_FILE else ())
        for p in fixture_params()
    ]


@pytest.mark.parametrize("fx", _expression_params())
@pytest.mark.parametrize("orientation", ["out_in", "in_out"])
def test_every_expression_reproduces_split(fx: FixtureLayer, orientation: str) -> None:
    assert check_gates(_model(fx.id), layer_name(fx), orientation, _file_tensors(fx.id)) > 0


@pytest.mark.parametrize("fx", fixture_params())
@pytest.mark.parametrize("target", TARGET_FRAMEWORKS)
def test_every_target_recipe_reproduces_convert(fx: FixtureLayer, target: str) -> None:
    stacked_in_file = fx.fixture["source"] in STACKED_IN_FILE  # the file's constants: see KNOWN_GAP
    check_target(_model(fx.id), layer_name(fx), target, None if stacked_in_file else _file_tensors(fx.id))


def _random_model(key: str, rng: np.random.Generator, **sizes) -> pipeline.Model:
    """A layer of ``key`` described by sizes, its tensors filled with random values."""
    shaped = verbs.layer_from_sizes(verbs.Bounds(), convention=key, **sizes)
    cells = {
        cell: {name: rng.uniform(-1, 1, a.shape).astype(a.dtype) for name, a in t.items()}
        for cell, t in shaped.cells.items()
    }
    native = NativeLayer(shaped.name, shaped.convention, shaped.config, cells)
    return pipeline.Model("npz", [native], 0)


def _variants(key: str) -> list[dict]:
    conv = CONVENTIONS[key]
    groups = {spec.group for spec in conv.tensors}
    out = [{"input_size": 3, "units": 4}, {"input_size": 2, "units": 3, "num_layers": 2, "bidirectional": True}]
    if "peephole" in groups:
        out.append({"input_size": 3, "units": 4, "peepholes": True})
    if "projection" in groups:
        out.append({"input_size": 3, "units": 4, "proj_size": 2, "num_layers": 2})
    if "no_bias" in conv.features:
        out.append({"input_size": 3, "units": 4, "bias": False})
    return out


CONVENTION_CASES = [
    pytest.param(key, sizes, id=f"{key}-{'-'.join(f'{k}{v}' for k, v in sizes.items())}")
    for key in sorted(CONVENTIONS)
    for sizes in _variants(key)
]


@pytest.mark.parametrize(("key", "sizes"), CONVENTION_CASES)
def test_every_convention_explains_its_layout(key: str, sizes: dict) -> None:
    model = _random_model(key, np.random.default_rng(0), **sizes)
    check_gates(model, "layer")
    for target in TARGET_FRAMEWORKS:
        check_target(model, "layer", target)


@pytest.mark.parametrize("key", sorted(CONVENTIONS))
def test_without_a_file_the_map_is_the_same(key: str) -> None:
    """A layer described by sizes gets the same expressions as one read with those shapes."""
    by_sizes = verbs.explain(None, convention=key, input_size=3, units=4)["layers"][0]
    with_data = verbs.explain(_random_model(key, np.random.default_rng(1), input_size=3, units=4))["layers"][0]
    assert by_sizes["cells"] == with_data["cells"]
    assert by_sizes["equations"] == with_data["equations"]


def test_the_issue_example_tf1_kernel() -> None:
    """TF1 LSTMCell, I = 6, H = 10: kernel [16, 40] in blocks i, j, f, o."""
    doc = verbs.explain(None, convention="tf1.lstm", input_size=6, units=10)["layers"][0]
    gates = {g["array"]: g for g in doc["cells"][0]["gates"]}
    assert gates["W_xg"]["numpy"] == "kernel[:6, 10:20].T" and gates["W_xg"]["letter"] == "j"
    assert gates["W_hf"]["numpy"] == "kernel[6:16, 20:30].T"
    assert gates["b_xf"]["numpy"] == "bias[20:30] + np.float32(1.0)" and gates["b_xf"]["constants"] == [1.0]
    assert doc["equations"][2].startswith("j = tanh(W_xj·x_t")
    assert "forget_bias" in doc["equations"][1]


def test_equations_use_the_framework_letters() -> None:
    onnx = verbs.explain(None, convention="onnx.gru", input_size=2, units=3)["layers"][0]
    assert onnx["letters"] == {"r": "r", "z": "z", "n": "h"}
    assert onnx["equations"][-1] == "H_t = z ⊙ H_(t-1) + (1 - z) ⊙ h"
    assert "W_hh·(r ⊙ H_(t-1))" in onnx["equations"][2]  # linear_before_reset=0
    keras = verbs.explain(None, convention="keras.lstm", input_size=2, units=3)["layers"][0]
    assert [line.split(" = ")[0] for line in keras["equations"]] == ["i", "f", "c", "C_t", "o", "h_t"]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("fx", fixture_params(lambda f: f.native.convention.framework in ("tf1", "onnx", "keras")))
def test_the_torch_snippet_runs(fx: FixtureLayer) -> None:
    import torch

    model, name = _model(fx.id), layer_name(fx)
    doc = verbs.explain(model, layer=name)["layers"][0]
    env = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stored_tensors(_native(model, name), doc).items()}
    namespace = {"torch": torch, **env}
    exec(doc["snippets"]["torch"], namespace)
    for key, array in pipeline.split(model, layer=name).arrays.items():
        assert_same_bits(namespace["gates"][key].numpy(), array, key)


def test_sizes_are_bounded() -> None:
    with pytest.raises(LimitExceeded):
        verbs.explain(None, convention="pytorch.lstm", input_size=100_000, units=100_000)
    with pytest.raises(InvalidField):
        verbs.explain(None, convention="keras.lstm", input_size=3, units=4, proj_size=2)
    with pytest.raises(InvalidField):
        verbs.explain(None, convention="nope", input_size=3, units=4)


def test_a_refused_target_says_why() -> None:
    doc = verbs.explain(None, convention="tf1.lstm", input_size=3, units=4, peepholes=True, target="pytorch")
    assert doc["layers"][0]["target"]["refused"]["code"] == "peepholes_unsupported"


@pytest.mark.parametrize("prefix", ["", "encoder.rnn."])
def test_a_pytorch_prefix_names_the_recipe_as_convert_does(prefix: str) -> None:
    model = _random_model("keras.gru_reset_after", np.random.default_rng(2), input_size=3, units=4)
    recipe = verbs.explain(model, target="pytorch", prefix=prefix)["layers"][0]["target"]
    converted = pipeline.convert(model, "pytorch", prefix=prefix).arrays
    assert [t["name"] for t in recipe["tensors"]] == list(converted)
    with pytest.raises(InvalidField):
        verbs.explain(model, target="keras", prefix=prefix)


def test_the_checkpoint_variables_are_those_convert_writes(keras_lstm, tmp_path) -> None:
    """With ``format=tf_checkpoint`` every TF1 target tensor is named as the checkpoint
    /convert writes names it (read back from the bytes)."""
    doc = verbs.explain(pipeline.read([keras_lstm]), target="tf1", format="tf_checkpoint", scope="enc")
    named = {t["name"]: t["checkpoint_variable"] for t in doc["layers"][0]["target"]["tensors"]}
    result = pipeline.convert([keras_lstm], "tf1", format="tf_checkpoint", scope="enc")
    path = result.save(tmp_path / "model.tar")
    assert path is not None
    (layer,) = pipeline.read([path]).layers
    written = {
        f"{result.meta['layers'][0]['target']['names_start']}l{lv}/{d}/{role}": tf_name
        for (lv, d, role), tf_name in layer.origin.items()
    }
    assert named == written and all(name.startswith("enc/") for name in named.values())


@pytest.mark.parametrize(
    "target, fmt", [("pytorch", "onnx"), ("keras", "tf_checkpoint"), (None, "h5"), ("onnx", "tf_checkpoint")]
)
def test_a_format_the_target_cannot_hold_is_refused(target, fmt) -> None:
    with pytest.raises(InvalidField, match=f"format {fmt} holds") as refused:
        verbs.explain(None, convention="keras.lstm", input_size=3, units=4, target=target, format=fmt)
    assert refused.value.extra["field"] == "format"
