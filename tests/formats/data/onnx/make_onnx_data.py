"""Write the small ONNX models of this folder (run by hand; the tests never run it).

    pip install onnx==1.23.2
    python tests/formats/data/onnx/make_onnx_data.py

Each ``<stem>.onnx`` gets a ``<stem>.expected.npz`` holding every tensor the reader must
return, keyed by tensor name, in the dtype the reader must return (bfloat16 widened to
float32). Values are fingerprinted (``gate block * 100 + position`` plus a small random
part), so a misplaced element cannot go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(20240611)
OPSET = [helper.make_opsetid("", 14)]


def values(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """Distinct, exactly representable values (multiples of 1/8 below 256)."""
    n = int(np.prod(shape))
    base = (np.arange(n) % 2000) / 8.0 - 120.0
    return (base + RNG.integers(0, 4, size=n) / 8.0).reshape(shape).astype(dtype)


def save(stem: str, graph: onnx.GraphProto, expected: dict[str, np.ndarray], **save_kw) -> None:
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="rnnbridge-tests", ir_version=8)
    onnx.checker.check_model(model)
    onnx.save_model(model, HERE / f"{stem}.onnx", **save_kw)
    np.savez(HERE / f"{stem}.expected.npz", **expected)


def lstm_graph(inits, node_inputs, hidden, node_name="lstm", constant_nodes=(), **attrs) -> onnx.GraphProto:
    node = helper.make_node(
        "LSTM", node_inputs, ["Y", "Y_h", "Y_c"], name=node_name, hidden_size=hidden, **attrs
    )
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 1, 3])
    y = helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, ["D", 1, "H"])
    return helper.make_graph([*constant_nodes, node], f"{node_name}_graph", [x], [y], initializer=inits)


def lstm_weights(hidden: int = 2, inputs: int = 3, dtype: str = "float32") -> dict[str, np.ndarray]:
    return {
        "W": values((1, 4 * hidden, inputs), dtype),
        "R": values((1, 4 * hidden, hidden), dtype),
        "B": values((1, 8 * hidden), dtype),
        "P": values((1, 3 * hidden), dtype),
    }


def make_external() -> None:
    """LSTM whose initializers all live in one side file, ``lstm_external.weights``."""
    w = lstm_weights()
    del w["P"]
    inits = [numpy_helper.from_array(a, name) for name, a in w.items()]
    graph = lstm_graph(inits, ["X", "W", "R", "B"], 2, node_name="lstm_ext")
    (HERE / "lstm_external.weights").unlink(missing_ok=True)  # onnx refuses to overwrite it
    save(
        "lstm_external",
        graph,
        w,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="lstm_external.weights",
        size_threshold=0,
    )


def make_float16_gru() -> None:
    """GRU with float16 weights: W and R in raw_data, B in int32_data (the uint16 bits)."""
    w = {
        "W": values((1, 6, 3), "float16"),
        "R": values((1, 6, 2), "float16"),
        "B": values((1, 12), "float16"),
    }
    inits = [
        numpy_helper.from_array(w["W"], "W"),
        numpy_helper.from_array(w["R"], "R"),
        helper.make_tensor("B", TensorProto.FLOAT16, [1, 12], w["B"].tolist(), raw=False),
    ]
    node = helper.make_node(
        "GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru_f16", hidden_size=2, linear_before_reset=1
    )
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT16, [2, 1, 3])
    y = helper.make_tensor_value_info("Y_h", TensorProto.FLOAT16, ["D", 1, "H"])
    save("gru_float16", helper.make_graph([node], "g", [x], [y], initializer=inits), w)


def make_float64_lstm() -> None:
    """LSTM with float64 weights: W, R in raw_data, B in double_data."""
    w = lstm_weights(dtype="float64")
    del w["P"]
    inits = [
        numpy_helper.from_array(w["W"], "W"),
        numpy_helper.from_array(w["R"], "R"),
        helper.make_tensor("B", TensorProto.DOUBLE, [1, 16], w["B"].tolist(), raw=False),
    ]
    save("lstm_float64", lstm_graph(inits, ["X", "W", "R", "B"], 2, node_name="lstm_f64"), w)


def make_peephole_no_bias() -> None:
    """LSTM with P but without B (an empty name in the B slot), float_data storage for P."""
    w = lstm_weights()
    del w["B"]
    inits = [
        numpy_helper.from_array(w["W"], "W"),
        numpy_helper.from_array(w["R"], "R"),
        helper.make_tensor("P", TensorProto.FLOAT, [1, 6], w["P"].ravel().tolist(), raw=False),
    ]
    save("lstm_peephole_no_bias", lstm_graph(inits, ["X", "W", "R", "", "", "", "", "P"], 2), w)


def make_activations_clip() -> None:
    """Bidirectional LSTM with explicit activations, alphas, clip and input_forget; no name."""
    w = {k: np.concatenate([v, v + 0.5]) for k, v in lstm_weights().items() if k != "P"}
    inits = [numpy_helper.from_array(a, name) for name, a in w.items()]
    graph = lstm_graph(
        inits,
        ["X", "W", "R", "B"],
        2,
        node_name="",
        direction="bidirectional",
        clip=2.5,
        input_forget=1,
        activations=["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Tanh", "Tanh"],
        activation_alpha=[0.25],
        activation_beta=[0.5],
    )
    save("lstm_activations_clip", graph, w)


def make_constant_weight() -> None:
    """W comes from a Constant node; R and B are initializers; a bfloat16 and an int64
    initializer ride along unused."""
    w = lstm_weights()
    del w["P"]
    const = helper.make_node(
        "Constant", [], ["W_const"], name="w_const", value=numpy_helper.from_array(w["W"], "ignored_name")
    )
    bf16 = np.array([-119.5, 0.15625, 3.0], dtype=np.float32)  # exactly representable in bfloat16
    inits = [
        numpy_helper.from_array(w["R"], "R"),
        numpy_helper.from_array(w["B"], "B"),
        helper.make_tensor("extra_bf16", TensorProto.BFLOAT16, [3], bf16.tolist(), raw=False),
        helper.make_tensor("extra_i64", TensorProto.INT64, [2, 2], [-3, 0, 7, 2**40], raw=False),
    ]
    graph = lstm_graph(inits, ["X", "W_const", "R", "B"], 2, constant_nodes=[const])
    expected = {
        "W_const": w["W"],
        "R": w["R"],
        "B": w["B"],
        "extra_bf16": bf16,
        "extra_i64": np.array([[-3, 0], [7, 2**40]], dtype=np.int64),
    }
    save("lstm_constant_weight", graph, expected)


if __name__ == "__main__":
    make_external()
    make_float16_gru()
    make_float64_lstm()
    make_peephole_no_bias()
    make_activations_clip()
    make_constant_weight()
