"""Regenerate the ONNX graph fixtures of tests/fixtures/onnx_graphs with the real onnx + onnxruntime.

Never run by CI (``pip install onnx onnxruntime``; versions in the fixtures' README)::

    python tools/make_onnx_graph_fixtures.py

Three models, each checked with ``onnx.checker.check_model(full_check=True)`` and run by
onnxruntime on a seeded input, whose outputs are recorded beside it (``<name>.io.npz``:
``x``, ``y`` [T, D, B, H], ``y_h``, ``y_c``):

* ``folded_weights.onnx``: a bidirectional LSTM whose ``W`` is ``Concat(Unsqueeze(fw),
  Unsqueeze(bw))``, ``R`` a ``Reshape(Transpose(Constant))`` and ``B`` a ``Slice`` of a
  ``Cast`` float64 ``Constant``: nothing is an initializer of the node.
* ``gru_in_if.onnx``: an ``If`` whose then-branch holds a GRU (linear_before_reset=1) with
  its own initializers; the else-branch returns zeros. Run with ``cond=True``.
* ``weights_as_inputs.onnx``: an LSTM whose ``W``, ``R``, ``B`` are graph inputs, as in the
  ONNX backend test models: the file holds no weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "onnx_graphs"
T, B, I, H = 4, 2, 3, 5  # noqa: E741  (steps, batch, inputs, units: the ONNX spec's letters)
OPSET = [helper.make_opsetid("", 14)]


def rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def uniform(r: np.random.Generator, *shape: int, dtype=np.float32) -> np.ndarray:
    return r.uniform(-0.5, 0.5, shape).astype(dtype)


def const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def folded_weights() -> onnx.ModelProto:
    r = rng("folded_weights")
    w_fw, w_bw = uniform(r, 4 * H, I), uniform(r, 4 * H, I)
    r_t = uniform(r, H, 2, 4 * H)  # R [2, 4H, H] stored transposed
    b_wide = uniform(r, 2, 8 * H + 3, dtype=np.float64)
    nodes = [
        const("w_fw", w_fw),
        const("w_bw", w_bw),
        const("axes0", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["w_fw", "axes0"], ["w_fw1"]),
        helper.make_node("Unsqueeze", ["w_bw", "axes0"], ["w_bw1"]),
        helper.make_node("Concat", ["w_fw1", "w_bw1"], ["W"], axis=0),
        const("r_t", r_t),
        helper.make_node("Transpose", ["r_t"], ["r_dgh"], perm=[1, 2, 0]),
        const("r_shape", np.array([2, 4 * H, H], np.int64)),
        helper.make_node("Reshape", ["r_dgh", "r_shape"], ["R"]),
        const("b_wide", b_wide),
        helper.make_node("Cast", ["b_wide"], ["b32"], to=TensorProto.FLOAT),
        const("b_start", np.array([3], np.int64)),
        const("b_end", np.array([8 * H + 3], np.int64)),
        const("b_axes", np.array([1], np.int64)),
        helper.make_node("Slice", ["b32", "b_start", "b_end", "b_axes"], ["B"]),
        helper.make_node(
            "LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], name="folded", hidden_size=H, direction="bidirectional"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "folded_weights",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 2, B, H]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [2, B, H]),
            helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [2, B, H]),
        ],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=7, producer_name="make_onnx_graph_fixtures")


def gru_in_if() -> onnx.ModelProto:
    r = rng("gru_in_if")
    inits = [
        numpy_helper.from_array(uniform(r, 1, 3 * H, I), "gru_W"),
        numpy_helper.from_array(uniform(r, 1, 3 * H, H), "gru_R"),
        numpy_helper.from_array(uniform(r, 1, 6 * H), "gru_B"),
    ]
    then_branch = helper.make_graph(
        [
            helper.make_node(
                "GRU",
                ["X", "gru_W", "gru_R", "gru_B"],
                ["gru_Y", "gru_Y_h"],
                name="inner_gru",
                hidden_size=H,
                linear_before_reset=1,
            ),
            helper.make_node("Identity", ["gru_Y"], ["then_Y"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_Y", TensorProto.FLOAT, [T, 1, B, H])],
        initializer=inits,
    )
    else_branch = helper.make_graph(
        [const("else_Y", np.zeros((T, 1, B, H), np.float32))],
        "else",
        [],
        [helper.make_tensor_value_info("else_Y", TensorProto.FLOAT, [T, 1, B, H])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["Y"], then_branch=then_branch, else_branch=else_branch)],
        "gru_in_if",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=7, producer_name="make_onnx_graph_fixtures")


def weights_as_inputs() -> onnx.ModelProto:
    inputs = [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I]),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 4 * H, I]),
        helper.make_tensor_value_info("R", TensorProto.FLOAT, [1, 4 * H, H]),
        helper.make_tensor_value_info("B", TensorProto.FLOAT, [1, 8 * H]),
    ]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], name="backend_lstm", hidden_size=H)],
        "weights_as_inputs",
        inputs,
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=7, producer_name="make_onnx_graph_fixtures")


def record(name: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    onnx.checker.check_model(model, full_check=True)
    path = OUT / f"{name}.onnx"
    onnx.save(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    arrays = {"x": feeds["X"], "y": got["Y"]}
    arrays.update({k.lower(): v for k, v in got.items() if k in ("Y_h", "Y_c")})
    np.savez(OUT / f"{name}.io.npz", **arrays)
    print(f"{path.name}: {path.stat().st_size} bytes, outputs {sorted(got)}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(7).normal(size=(T, B, I)).astype(np.float32)
    record("folded_weights", folded_weights(), {"X": x})
    record("gru_in_if", gru_in_if(), {"X": x, "cond": np.array(True)})
    model = weights_as_inputs()
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / "weights_as_inputs.onnx")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
