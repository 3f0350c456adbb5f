#!/usr/bin/env python
"""Write the fixtures of issue 10 ("exactly, or not at all") into ``tests/fixtures/exactness/``.

Facts a file does not record, with the real framework's outputs to prove what they change:

``k2_lstm_hard_sigmoid_w224``
    A weights-only Keras HDF5 file as standalone Keras 2.2.4's ``save_weights`` lays it
    out (root attributes ``layer_names``, ``backend``, ``keras_version=b"2.2.4"`` as bytes;
    ``<layer>/<layer>/kernel:0`` with no cell scope; ``weight_names`` to match; no
    ``model_config``), made with h5py from the bytes of ``tests/fixtures/k2_lstm_hard_sigmoid/w.h5``,
    which tf_keras 2.21 wrote for ``LSTM(4, recurrent_activation="hard_sigmoid")``. The
    datasets are copied bit for bit; ``x.npy``, ``y.npy``, ``h_n.npy``, ``c_n.npy`` are that
    fixture's recorded Keras outputs (``y`` time-major [T, B, H]). Keras before 2.3 defaulted
    ``recurrent_activation`` to hard_sigmoid, so this file's documented default is the
    function the layer really computed. (Standalone Keras 2.2.4 does not install on
    Python 3.11, hence the rewrite.)

``torch_onnx_gru_bare``
    ``torch.nn.GRU(3, 4)`` (uniform(-0.5, 0.5) weights, seed 10) exported with the real
    ``torch.onnx.export(dynamo=False, opset_version=14)``: ``model.onnx`` holds a GRU node
    with ``linear_before_reset=1``; ``bare.npz`` holds its ``W``, ``R``, ``B`` initializers
    as bare arrays (``[1, 3H, I]``, ``[1, 3H, H]``, ``[1, 6H]``). ``y.npy`` [T, B, H] and
    ``h_n.npy`` [1, B, H] are onnxruntime's outputs for ``x.npy`` [T, B, I] (checked
    against torch's own to 1e-5).

``onnx_lstm_reverse_bare``
    An ONNX ``LSTM(hidden_size=4, direction="reverse")`` single-node model made with
    ``onnx.helper`` (uniform(-0.5, 0.5) initializers, seed 11); ``bare.npz`` holds its
    ``W``, ``R``, ``B`` ([1, ...]: one direction, which the arrays cannot tell);
    ``y.npy``, ``h_n.npy``, ``c_n.npy`` are onnxruntime's outputs for ``x.npy``.

Requirements (never needed by CI): ``torch==2.13.0 onnx onnxruntime h5py numpy``.
Run ``python tools/exactness_fixtures.py`` (or ``python tools/make_fixtures.py --exactness``).
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "exactness"
SOURCE = ROOT / "tests" / "fixtures" / "k2_lstm_hard_sigmoid"


def k2_lstm_hard_sigmoid_w224(out: Path) -> None:
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(SOURCE / "w.h5", "r") as src, h5py.File(out / "w.h5", "w") as dst:
        layers = [n.decode() if isinstance(n, bytes) else n for n in src.attrs["layer_names"]]
        dst.attrs["layer_names"] = np.array([n.encode() for n in layers])
        dst.attrs["backend"] = b"tensorflow"
        dst.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            group = dst.create_group(layer)
            names = [n.decode() if isinstance(n, bytes) else n for n in src[layer].attrs["weight_names"]]
            fresh = [f"{layer}/{name.rsplit('/', 1)[1]}" for name in names]  # no cell scope in Keras 2.2.4
            group.attrs["weight_names"] = np.array([n.encode() for n in fresh])
            for old, new in zip(names, fresh):
                group.create_dataset(new, data=src[layer][old][()])
    for name in ("rnn0.h_n.npy", "rnn0.c_n.npy"):
        shutil.copyfile(SOURCE / name, out / name.replace("rnn0.", ""))
    y = np.load(SOURCE / "rnn0.y.npy")  # batch-major [B, T, H] as the fixture records it; zero initial state
    np.save(out / "y.npy", y.transpose(1, 0, 2))
    np.save(out / "x.npy", np.load(SOURCE / "x.npy").transpose(1, 0, 2))


def _onnxruntime(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def _initializers(model: bytes) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(model).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def torch_onnx_gru_bare(out: Path) -> None:
    import onnx
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(10)
    gru = torch.nn.GRU(3, 4)
    with torch.no_grad():
        for p in gru.parameters():
            p.uniform_(-0.5, 0.5)
    x = np.random.default_rng(10).standard_normal((5, 2, 3)).astype(np.float32)
    buffer = io.BytesIO()
    torch.onnx.export(gru, (torch.from_numpy(x),), buffer, dynamo=False, opset_version=14)
    model = buffer.getvalue()
    (out / "model.onnx").write_bytes(model)
    (node,) = [n for n in onnx.load_from_string(model).graph.node if n.op_type == "GRU"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attributes.get("linear_before_reset") == 1, attributes
    inits = _initializers(model)
    np.savez(out / "bare.npz", **{slot: inits[node.input[k]] for k, slot in ((1, "W"), (2, "R"), (3, "B"))})
    y = _onnxruntime(model, x)[0]
    with torch.no_grad():
        expected_y, expected_h = gru(torch.from_numpy(x))
    y = y.reshape(expected_y.shape)  # the export squeezes the direction axis
    assert np.abs(y - expected_y.numpy()).max() < 1e-5
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y)
    np.save(out / "h_n.npy", expected_h.numpy())


def onnx_lstm_reverse_bare(out: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    hidden, inputs = 4, 3
    arrays = {
        "W": rng.uniform(-0.5, 0.5, (1, 4 * hidden, inputs)).astype(np.float32),
        "R": rng.uniform(-0.5, 0.5, (1, 4 * hidden, hidden)).astype(np.float32),
        "B": rng.uniform(-0.5, 0.5, (1, 8 * hidden)).astype(np.float32),
    }
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=hidden, direction="reverse")
    graph = helper.make_graph(
        [node],
        "lstm_reverse",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 2, inputs])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [5, 1, 2, hidden]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 2, hidden]),
            helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, 2, hidden]),
        ],
        initializer=[numpy_helper.from_array(a, name) for name, a in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    (out / "model.onnx").write_bytes(data)
    np.savez(out / "bare.npz", **arrays)
    x = rng.standard_normal((5, 2, inputs)).astype(np.float32)
    y, h_n, c_n = _onnxruntime(data, x)
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y[:, 0])  # [T, D=1, B, H] -> [T, B, H]
    np.save(out / "h_n.npy", h_n)
    np.save(out / "c_n.npy", c_n)


FIXTURES = {
    "k2_lstm_hard_sigmoid_w224": k2_lstm_hard_sigmoid_w224,
    "torch_onnx_gru_bare": torch_onnx_gru_bare,
    "onnx_lstm_reverse_bare": onnx_lstm_reverse_bare,
}


def main(argv: list[str] | None = None) -> int:
    for name in argv or list(FIXTURES):
        FIXTURES[name](OUT / name)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
