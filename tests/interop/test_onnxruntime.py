"""onnxruntime runs the ``format=onnx`` model rnnbridge returns and reproduces the source outputs.

For every fixture layer that converts to ONNX, the model bytes rnnbridge wrote are given
to ``onnxruntime.InferenceSession`` as they are, fed the fixture's input and initial
states, and must reproduce what the *source* framework recorded (≤ 1e-5). Where the
``onnx`` package is installed too, ``onnx.checker.check_model(full_check=True)`` passes
and onnx's reference evaluator gives the same outputs (it also runs float64, which
onnxruntime's GRU and LSTM kernels do not).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InexactConversion

from ..fixtures_index import FIXTURE_LAYERS, FixtureLayer
from ..test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.interop

try:
    import onnx
    from onnx.reference import ReferenceEvaluator
except ImportError:  # the checker and the reference evaluator are optional
    onnx = None


def model_bytes(fx: FixtureLayer) -> tuple[bytes, pipeline.Result]:
    name = next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))
    model = read(fx.id, name)  # with source= for bare-array npz fixtures
    try:
        result = pipeline.convert(model, "onnx", layer=layer_name(fx), source_forget_bias=forget_bias(fx))
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    buffer = io.BytesIO()
    outputs.write(result, "onnx", buffer)
    return buffer.getvalue(), result


def feeds(fx: FixtureLayer, result: pipeline.Result, dtype: np.dtype) -> dict[str, np.ndarray]:
    target = result.meta["layers"][0]["target"]
    rows, batch, hidden = target["num_layers"] * len(target["directions"]), fx.x.shape[1], fx.h_n.shape[-1]
    zeros = np.zeros((rows, batch, hidden))
    out = {"X": fx.x.astype(dtype), "initial_h": (zeros if fx.h0 is None else fx.h0).reshape(rows, batch, hidden)}
    if target["convention"] == "onnx.lstm":
        out["initial_c"] = (zeros if fx.c0 is None else fx.c0).reshape(rows, batch, hidden)
    return {name: array.astype(dtype) for name, array in out.items()}


def assert_reproduces(fx: FixtureLayer, named: dict[str, np.ndarray]) -> None:
    y = named["Y"].transpose(0, 2, 1, 3).reshape(fx.y.shape)  # [T, D, B, H] -> [T, B, D·H]
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=1e-5)
    np.testing.assert_allclose(named["Y_h"].reshape(fx.h_n.shape), fx.h_n, rtol=0, atol=1e-5)
    if fx.c_n is not None:
        np.testing.assert_allclose(named["Y_c"].reshape(fx.c_n.shape), fx.c_n, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_onnxruntime_runs_the_model_and_reproduces_the_source_outputs(fx: FixtureLayer) -> None:
    data, result = model_bytes(fx)
    dtype = next(iter(result.arrays.values())).dtype
    if dtype != np.float32:
        pytest.skip(
            f"onnxruntime's CPU GRU/LSTM kernels take float32 only, not {dtype} (the reference evaluator runs it)"
        )
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == (["Y", "Y_h", "Y_c"] if fx.c_n is not None else ["Y", "Y_h"])
    assert_reproduces(fx, dict(zip(names, session.run(None, feeds(fx, result, dtype)))))


@pytest.mark.skipif(onnx is None, reason="the onnx package is not installed")
@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_onnx_checks_the_model_fully(fx: FixtureLayer) -> None:
    data, _ = model_bytes(fx)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 14)]
    assert {p.key for p in model.metadata_props} == {"rnnbridge"}


def reference_evaluator_covers(result: pipeline.Result) -> bool:
    """onnx's reference GRU/LSTM ignore ``activations``, ``clip`` and ``input_forget`` (onnx 1.23
    ``onnx/reference/ops/op_lstm.py``): it can only check layers that use none of them."""
    config = result.meta["layers"][0]["target"]["config"]
    defaults = (["sigmoid", "tanh", "tanh"], ["sigmoid", "tanh"])
    return config["activations"] in defaults and config["clip"] is None and not config["input_forget"]


@pytest.mark.skipif(onnx is None, reason="the onnx package is not installed")
@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_the_onnx_reference_evaluator_reproduces_the_source_outputs(fx: FixtureLayer) -> None:
    data, result = model_bytes(fx)
    if not reference_evaluator_covers(result):
        pytest.skip("onnx's reference GRU/LSTM ignore activations, clip and input_forget")
    evaluator = ReferenceEvaluator(onnx.load_from_string(data))
    dtype = next(iter(result.arrays.values())).dtype
    if dtype == np.float16:  # onnxruntime runs these (test above); the evaluator rounds each step to float16
        pytest.skip("onnx's reference evaluator computes a float16 layer in float16 (errors ~4e-4)")
    got = evaluator.run(None, feeds(fx, result, dtype))
    assert_reproduces(fx, dict(zip(evaluator.output_names, got)))


GRAPHS = Path(__file__).resolve().parents[1] / "fixtures" / "onnx_graphs"


@pytest.mark.parametrize("name", ["folded_weights", "gru_in_if"])
def test_layers_found_in_subgraphs_or_folded_run_in_onnxruntime_as_recorded(name: str) -> None:
    """The weights rnnbridge folded (or found inside an If) reproduce what onnxruntime computed
    from the original model, once written as rnnbridge's own model."""
    result = pipeline.convert(pipeline.read([GRAPHS / f"{name}.onnx"]), "onnx")
    buffer = io.BytesIO()
    outputs.write(result, "onnx", buffer)
    with np.load(GRAPHS / f"{name}.io.npz") as npz:
        recorded = dict(npz)
    target = result.meta["layers"][0]["target"]
    rows, batch = len(target["directions"]), recorded["x"].shape[1]
    hidden = recorded["y"].shape[-1]
    feeds = {"X": recorded["x"], "initial_h": np.zeros((rows, batch, hidden), np.float32)}
    if target["convention"] == "onnx.lstm":
        feeds["initial_c"] = feeds["initial_h"]
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    np.testing.assert_allclose(got["Y"], recorded["y"], rtol=0, atol=1e-6)
    if "y_h" in recorded:
        np.testing.assert_allclose(got["Y_h"], recorded["y_h"], rtol=0, atol=1e-6)


def test_a_model_of_several_layers_runs_each_layer_on_its_own_inputs(tmp_path) -> None:
    from rnnbridge.engine import reference

    rng = np.random.default_rng(2)
    arrays = {}
    for module, inputs in (("enc", 3), ("dec", 5)):
        arrays[f"{module}.weight_ih_l0"] = rng.uniform(-0.5, 0.5, (16, inputs)).astype(np.float32)
        arrays[f"{module}.weight_hh_l0"] = rng.uniform(-0.5, 0.5, (16, 4)).astype(np.float32)
        arrays[f"{module}.bias_ih_l0"] = rng.uniform(-0.5, 0.5, 16).astype(np.float32)
    np.savez(tmp_path / "two.npz", **arrays)
    model = pipeline.read([tmp_path / "two.npz"], source="pytorch")
    result = pipeline.convert(model, "onnx")
    buffer = io.BytesIO()
    outputs.write(result, "onnx", buffer)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    feeds, expected = {}, {}
    for layer in model.layers:
        x = rng.normal(size=(6, 2, layer.cells[(0, "forward")]["weight_ih"].shape[1])).astype(np.float32)
        zeros = np.zeros((1, 2, 4), np.float32)
        feeds.update({f"{layer.name}/X": x, f"{layer.name}/initial_h": zeros, f"{layer.name}/initial_c": zeros})
        expected[f"{layer.name}/Y"] = reference.run(layer, x, None, None)[0]
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    for name, y in expected.items():
        np.testing.assert_allclose(got[name][:, 0], y, rtol=0, atol=1e-5)
