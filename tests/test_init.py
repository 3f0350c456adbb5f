"""/init: every gate block initialised on its own, in the target's own tensors.

Each result is written in an output format and read back through rnnbridge's reader, then
split into per-gate arrays, so the checks below are on the bytes a user receives.
"""

from __future__ import annotations

import importlib.util
import io
import time

import numpy as np
import pytest

from rnnbridge import outputs, pipeline, verbs
from rnnbridge.engine.conventions import CONVENTIONS, TARGET_FRAMEWORKS
from rnnbridge.errors import InvalidField, LimitExceeded
from rnnbridge.formats.base import InputFile

HAS_TORCH = importlib.util.find_spec("torch") is not None
GATES = {"lstm": "ifgo", "gru": "rzn"}


def gates_of(result: pipeline.Result, tmp_path, fmt: str = "npz") -> dict[str, np.ndarray]:
    """The per-gate arrays of an /init result, after a round trip through ``fmt``."""
    path = tmp_path / f"init.{fmt}"
    with path.open("wb") as stream:
        outputs.write(result, fmt, stream)
    model = pipeline.read([InputFile(path.name, path)], source=result.meta["target"])
    return pipeline.split(model).arrays


def cells(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        where, name = key.rsplit("/", 1)
        out.setdefault(where, {})[name] = array
    return out


def variants():
    for target in TARGET_FRAMEWORKS:
        for cell in ("lstm", "gru"):
            yield pytest.param(target, cell, {}, id=f"{target}-{cell}")
            yield pytest.param(target, cell, {"num_layers": 2, "bidirectional": True}, id=f"{target}-{cell}-2l-bi")
    yield pytest.param("pytorch", "lstm", {"proj_size": 3, "num_layers": 2}, id="pytorch-lstm-proj")
    yield pytest.param("tf1", "lstm", {"proj_size": 3, "peepholes": True}, id="tf1-lstm-proj-peep")
    yield pytest.param("onnx", "lstm", {"peepholes": True, "bidirectional": True}, id="onnx-lstm-peep")
    yield pytest.param("keras", "gru", {"reset_after": False}, id="keras-gru-reset-before")


@pytest.mark.parametrize(("target", "cell", "extra"), list(variants()))
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_every_recurrent_block_is_orthogonal(tmp_path, target, cell, extra, gain) -> None:
    result = verbs.init(target, cell=cell, input_size=4, units=6, recurrent_initializer=f"orthogonal({gain})", **extra)
    split = cells(gates_of(result, tmp_path))
    assert len(split) == extra.get("num_layers", 1) * (2 if extra.get("bidirectional") else 1)
    for gates in split.values():
        for g in GATES[cell]:
            w = gates["W_h" + g].astype(np.float64)
            assert w.shape[0] >= w.shape[1]  # [H, R]: columns orthonormal (square without projection)
            assert np.linalg.norm(w.T @ w / gain**2 - np.eye(w.shape[1])) <= 1e-5


@pytest.mark.parametrize("target", TARGET_FRAMEWORKS)
def test_unit_forget_bias_is_exact(tmp_path, target) -> None:
    split = cells(gates_of(verbs.init(target, cell="lstm", input_size=3, units=5, seed=1), tmp_path))
    for gates in split.values():
        assert np.array_equal(gates["b_xf"] + gates["b_hf"], np.ones(5, np.float32))
        for g in "igo":
            assert not np.any(gates["b_x" + g]) and not np.any(gates["b_h" + g])


@pytest.mark.parametrize("target", TARGET_FRAMEWORKS)
def test_chrono_biases_are_exact(tmp_path, target) -> None:
    t_max = 40.0
    extra = {"target_forget_bias": 0.0} if target == "tf1" else {}  # else TF1 stores b_f - 1.0, rounded
    result = verbs.init(target, cell="lstm", input_size=3, units=64, bias_initializer=f"chrono({t_max})", **extra)
    for gates in cells(gates_of(result, tmp_path)).values():
        forget = gates["b_xf"] + gates["b_hf"]
        assert np.array_equal(gates["b_xi"] + gates["b_hi"], -forget)
        assert np.all(forget >= 0) and np.all(forget <= np.float32(np.log(t_max - 1)))
        assert np.ptp(forget) > 1.0  # drawn, not constant


@pytest.mark.parametrize(
    ("initializer", "variance"),
    [
        ("glorot_uniform", lambda i, h: 2 / (i + h)),
        ("glorot_normal", lambda i, h: 2 / (i + h)),
        ("he_uniform", lambda i, h: 2 / i),
        ("he_normal", lambda i, h: 2 / i),
        ("lecun_uniform", lambda i, h: 1 / i),
        ("lecun_normal", lambda i, h: 1 / i),
        ("uniform(0.05)", lambda i, h: 0.05**2 / 3),
    ],
)
def test_input_weight_statistics_match_the_initializer(tmp_path, initializer, variance) -> None:
    inputs, units = 300, 200
    result = verbs.init("pytorch", cell="gru", input_size=inputs, units=units, input_initializer=initializer, seed=5)
    for gates in cells(gates_of(result, tmp_path)).values():
        for g in "rzn":
            block = gates["W_x" + g].astype(np.float64)
            assert block.shape == (units, inputs)
            assert abs(block.mean()) < 0.02 * np.sqrt(variance(inputs, units)) * 5
            assert block.var() == pytest.approx(variance(inputs, units), rel=0.03)
            if initializer.endswith("normal"):  # truncated at two standard deviations
                bound = 2 * np.sqrt(variance(inputs, units)) / 0.87962566103423978
                assert np.abs(block).max() <= bound


def test_identity_and_framework_defaults(tmp_path) -> None:
    ident = cells(
        gates_of(verbs.init("onnx", cell="gru", input_size=3, units=4, recurrent_initializer="identity(0.5)"), tmp_path)
    )
    for gates in ident.values():
        assert all(np.array_equal(gates["W_h" + g], 0.5 * np.eye(4, dtype=np.float32)) for g in "rzn")
    torch_default = verbs.init(
        "pytorch",
        cell="lstm",
        input_size=3,
        units=16,
        input_initializer="default",
        recurrent_initializer="default",
        bias_initializer="default",
    )
    assert all(np.abs(a).max() <= 0.25 for a in torch_default.arrays.values())  # U(±1/sqrt(16))
    keras = verbs.init("keras", cell="lstm", input_size=3, units=8, recurrent_initializer="default")
    fused = keras.arrays["lstm/l0/forward/recurrent_kernel"].astype(np.float64)  # [H, 4H], rows orthonormal
    assert np.linalg.norm(fused @ fused.T - np.eye(8)) <= 1e-5
    with pytest.raises(InvalidField):
        verbs.init("onnx", cell="lstm", input_size=3, units=4, input_initializer="default")


#: the target whose weights each one-framework output format holds
TARGET_OF = {name: output.targets[0] for name, output in outputs.OUTPUTS.items() if output.targets}
#: targets of single cells (one level, one direction)
SINGLE_CELL = {c.framework for c in CONVENTIONS.values() if not c.source_only and "single_cell" in c.features}


@pytest.mark.parametrize("fmt", list(outputs.OUTPUTS))
def test_the_same_seed_gives_the_same_bytes(fmt) -> None:
    target = TARGET_OF.get(fmt, "pytorch")

    def encoded(seed: int) -> bytes:
        stream = io.BytesIO()
        outputs.write(
            verbs.init(
                target, cell="lstm", input_size=3, units=5, seed=seed, bidirectional=target not in SINGLE_CELL
            ),
            fmt,
            stream,
        )
        return stream.getvalue()

    first = encoded(11)
    time.sleep(1.05)  # a timestamp in the encoding would show now
    assert encoded(11) == first
    assert encoded(12) != first


def test_sizes_are_bounded_before_anything_is_allocated() -> None:
    started = time.perf_counter()
    with pytest.raises(LimitExceeded):
        verbs.init("pytorch", cell="lstm", input_size=50_000, units=50_000)  # 10 billion weights
    assert time.perf_counter() - started < 1.0
    for bad in ({"units": 0}, {"proj_size": 5}, {"num_layers": -1}):
        with pytest.raises(InvalidField):
            verbs.init("pytorch", **{"cell": "lstm", "input_size": 3, "units": 5, **bad})
    with pytest.raises(InvalidField):
        verbs.init("pytorch", cell="gru", input_size=3, units=5, bias_initializer="chrono(10)")
    with pytest.raises(InvalidField):
        verbs.init("keras", cell="lstm", input_size=3, units=5, peepholes=True)
    with pytest.raises(InvalidField):
        verbs.init("pytorch", cell="gru", input_size=3, units=5, reset_after=False)


@pytest.mark.parametrize("key", sorted(k for k, c in CONVENTIONS.items() if not c.source_only))
def test_every_writable_convention_can_be_initialised(tmp_path, key) -> None:
    conv = CONVENTIONS[key]
    result = verbs.init(key, cell=conv.cell, input_size=3, units=4)
    assert result.meta["layers"][0]["target"]["convention"] == key
    assert cells(gates_of(result, tmp_path))


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(
    "extra",
    [
        {"cell": "lstm"},
        {"cell": "gru"},
        {"cell": "lstm", "num_layers": 2, "bidirectional": True, "proj_size": 2},
        {"cell": "gru", "num_layers": 2, "bidirectional": True},
    ],
    ids=["lstm", "gru", "lstm-2l-bi-proj", "gru-2l-bi"],
)
def test_torch_loads_it_strictly_and_runs_it(tmp_path, extra) -> None:
    import torch

    result = verbs.init("pytorch", input_size=3, units=5, seed=2, prefix="", **extra)
    path = tmp_path / "init.safetensors"
    with path.open("wb") as stream:
        outputs.write(result, "safetensors", stream)
    recipe = result.meta["layers"][0]["target"]["module"]
    module = getattr(torch.nn, recipe["class"].rsplit(".", 1)[1])(**recipe["kwargs"])
    model = pipeline.read([InputFile(path.name, path)], source="pytorch")
    module.load_state_dict({k: torch.from_numpy(v) for k, v in result.arrays.items()}, strict=True)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with torch.no_grad():
        y = module(torch.from_numpy(x))[0].numpy()
    ours = verbs.run(model, x=x, time_major=True).arrays["output"]
    np.testing.assert_allclose(y, ours, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("target", "reset_after", "convention"),
    [
        ("keras", None, "keras.gru_reset_after"),
        ("keras", False, "keras.gru"),
        ("pytorch", None, "pytorch.gru"),
        ("tf1", None, "tf1.gru"),
        ("tf1", True, "tf1.cudnn_gru"),
        ("onnx", None, "onnx.gru"),
        ("onnx", True, "onnx.gru_lbr"),
    ],
)
def test_a_gru_is_the_framework_default_variant_unless_asked(target, reset_after, convention) -> None:
    result = verbs.init(target, cell="gru", input_size=2, units=3, reset_after=reset_after)
    assert result.meta["layers"][0]["target"]["convention"] == convention


@pytest.mark.parametrize(
    "extra",
    [
        {"cell": "lstm", "bidirectional": True, "peepholes": True},
        {"cell": "gru", "reset_after": False},
        {"cell": "gru", "reset_after": True, "bidirectional": True},
    ],
    ids=["lstm-bi-peepholes", "gru", "gru-lbr-bi"],
)
def test_onnxruntime_runs_it(tmp_path, extra) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    result = verbs.init("onnx", input_size=3, units=4, seed=3, bias_initializer="uniform(0.5)", **extra)
    recipe = result.meta["layers"][0]["target"]["module"]
    inputs = {name.rsplit("/", 1)[1]: array for name, array in result.arrays.items()}
    slots = ["X", "W", "R", "B"] + (["", "", "", "P"] if "P" in inputs else [])
    node = helper.make_node(recipe["op_type"], slots, ["Y"], **recipe["attributes"])
    graph = helper.make_graph(
        [node],
        "init",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [5, None, 2, 4])],
        [numpy_helper.from_array(array, name) for name, array in inputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"X": x})
    path = tmp_path / "init.npz"
    with path.open("wb") as stream:
        outputs.write(result, "npz", stream)
    ours = verbs.run(pipeline.read([InputFile(path.name, path)], source="onnx"), x=x).arrays["Y"]
    np.testing.assert_allclose(y, ours, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' torch backend and NumPy 2
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "extra",
    [{"cell": "lstm", "num_layers": 2}, {"cell": "gru", "bidirectional": True}, {"cell": "gru", "reset_after": False}],
    ids=["lstm-2l", "gru-bi", "gru-reset-before"],
)
def test_keras_loads_the_h5_and_runs_it(tmp_path, monkeypatch, extra) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    result = verbs.init("keras", input_size=3, units=4, seed=4, bias_initializer="uniform(0.3)", **extra)
    path = tmp_path / "init.weights.h5"
    with path.open("wb") as stream:
        outputs.write(result, "h5", stream)
    recipe = result.meta["layers"][0]["target"]["module"]
    layers: list = [keras.Input((5, 3))]
    for _ in range(recipe["layers"]):
        layer = getattr(keras.layers, recipe["class"].rsplit(".", 1)[1])(**recipe["kwargs"], return_sequences=True)
        layers.append(keras.layers.Bidirectional(layer, merge_mode="concat") if "wrapper" in recipe else layer)
    model = keras.Sequential(layers)
    model.load_weights(path)
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    y = keras.ops.convert_to_numpy(model(x))
    read = pipeline.read([InputFile(path.name, path)], source="keras")
    ours = verbs.run(read, x=x).arrays["sequence"] if len(read.layers) == 1 else None
    if ours is None:  # one Keras layer per level: run them in turn
        ours = x
        for native in read.layers:
            ours = verbs.run(pipeline.Model("h5", [native], 0), x=ours).arrays["sequence"]
    np.testing.assert_allclose(y, ours, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("fmt", list(outputs.OUTPUTS))
def test_every_output_format_of_the_target_is_saved_and_reads_back(tmp_path, fmt, cell) -> None:
    """``format=`` makes the result's own format: ``Result.save`` writes it under
    ``init.<target>.<ext>``, and rnnbridge reads the same per-gate arrays back from it."""
    target = TARGET_OF.get(fmt, "tf1")
    bidirectional = target not in SINGLE_CELL
    result = verbs.init(target, cell=cell, input_size=3, units=4, bidirectional=bidirectional, seed=3, format=fmt)
    path = result.save(f"{tmp_path}/out/")
    assert path is not None and path.name == f"init.to-{target}.{outputs.OUTPUTS[fmt].extension}"
    back = pipeline.split(pipeline.read([InputFile(path.name, path)], source=target)).arrays
    expected = gates_of(result, tmp_path)
    if fmt == "eqx":  # .eqx leaves hold no names: the one layer reads back named by its first leaf
        back = {name.split("/", 1)[1]: array for name, array in back.items()}
        expected = {name.split("/", 1)[1]: array for name, array in expected.items()}
    assert back.keys() == expected.keys()
    assert all(np.array_equal(back[name], expected[name]) for name in expected)


@pytest.mark.parametrize(
    "target, fmt", [("pytorch", "onnx"), ("keras", "tf_checkpoint"), ("tf1", "h5"), ("onnx", "h5")]
)
def test_a_format_the_target_cannot_hold_is_refused_before_the_work(target, fmt) -> None:
    # sizes over every bound: the format is refused first, not the size
    with pytest.raises(InvalidField, match=f"format {fmt} holds") as refused:
        verbs.init(target, input_size=50_000, units=50_000, format=fmt)
    assert refused.value.extra["field"] == "format"


def test_a_tf_checkpoint_scope_names_the_variables(tmp_path) -> None:
    result = verbs.init("tf1", input_size=3, units=4, bidirectional=True, format="tf_checkpoint", scope="enc")
    path = result.save(tmp_path / "init.tar")
    assert path is not None
    (layer,) = pipeline.read([InputFile(path.name, path)]).layers
    assert sorted(layer.origin.values()) == [
        "enc/bw/lstm_cell/bias",
        "enc/bw/lstm_cell/kernel",
        "enc/fw/lstm_cell/bias",
        "enc/fw/lstm_cell/kernel",
    ]
    with pytest.raises(InvalidField, match="scope applies to target=tf1"):
        verbs.init("keras", input_size=3, units=4, scope="enc")
