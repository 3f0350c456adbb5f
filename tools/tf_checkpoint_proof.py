"""Run by hand: TensorFlow itself restores rnnbridge's ``format=tf_checkpoint`` outputs.

TensorFlow is too heavy for CI, so this is a two-step check run once, with two Pythons::

    python tools/tf_checkpoint_proof.py export /tmp/tfproof          # rnnbridge's Python
    /path/to/tf-venv/bin/python tools/tf_checkpoint_proof.py check /tmp/tfproof

``export`` converts every fixture layer that converts to TF1 and writes the tar rnnbridge
returns plus a job file (the recipe, the fixture's input, initial states and recorded
outputs). ``check`` (TensorFlow 2 with ``tf_keras``, ``TF_USE_LEGACY_KERAS=1``) extracts
each tar, lists the variables with ``tf.train.load_checkpoint`` and compares their shapes
with the metadata, builds the ``tf.compat.v1`` graph the recipe describes (``dynamic_rnn``
over an ``LSTMCell``/``GRUCell`` or a ``MultiRNNCell``, ``bidirectional_dynamic_rnn``, or
contrib's ``stack_bidirectional_dynamic_rnn`` scopes), restores it with
``tf.compat.v1.train.Saver`` and prints the largest difference from the source outputs.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np


def export(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rnnbridge import outputs, pipeline
    from rnnbridge.errors import InexactConversion
    from tests.fixtures_index import FIXTURE_LAYERS
    from tests.test_pipeline import forget_bias, layer_name
    from tests.test_round_trips import source_model

    for fx in FIXTURE_LAYERS:
        try:
            result = pipeline.convert(source_model(fx), "tf1", layer=layer_name(fx), source_forget_bias=forget_bias(fx))
        except InexactConversion:
            continue
        job = folder / fx.id.replace(":", "_")
        job.mkdir(parents=True, exist_ok=True)
        with (job / "out.tar").open("wb") as stream:
            outputs.write(result, "tf_checkpoint", stream)
        arrays = {"x": fx.x, "y": fx.y, "h_n": fx.h_n}
        arrays.update({k: v for k, v in (("h0", fx.h0), ("c0", fx.c0), ("c_n", fx.c_n)) if v is not None})
        np.savez(job / "io.npz", **arrays)
        (job / "meta.json").write_text(json.dumps({"id": fx.id, "meta": result.meta}))
    print(f"exported to {folder}")


def check(folder: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_eager_execution()
    worst = 0.0
    for job in sorted(p for p in folder.iterdir() if p.is_dir()):
        spec = json.loads((job / "meta.json").read_text())
        layer = spec["meta"]["layers"][0]
        target = layer["target"]
        if "cudnn" in target["convention"]:
            print(f"{spec['id']:45s} skipped: CudnnCompatible*Cell is not in TensorFlow 2 (contrib was removed)")
            continue
        with tarfile.open(job / "out.tar") as tar:
            tar.extractall(job / "ckpt", filter="data")
        prefix = str(job / "ckpt" / "model.ckpt")
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
        io = dict(np.load(job / "io.npz"))
        err, graph_shapes = _run(v1, tf, target, io, prefix)
        stored = {name: list(shape) for name, shape in shapes.items() if name != "_rnnbridge_metadata"}
        assert graph_shapes == stored, (graph_shapes, stored)
        worst = max(worst, err)
        print(f"{spec['id']:45s} {len(stored):2d} variables, names and shapes match; max |y - source| = {err:.2e}")
    print(f"largest difference from the source outputs: {worst:.2e}")


def _cell(v1, tf, target, units: int):
    config, module = target["config"], target["module"]["kwargs"]
    activation = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": tf.identity}[config["activations"][1]]
    if target["convention"] == "tf1.lstm":
        return v1.nn.rnn_cell.LSTMCell(
            units,
            use_peepholes=module.get("use_peepholes", False),
            num_proj=module.get("num_proj"),
            forget_bias=config["forget_bias"],
            activation=activation,
        )
    return v1.nn.rnn_cell.GRUCell(units, activation=activation)


def _state(v1, target, io, row: int, dtype):
    h = io["h0"][row].astype(dtype) if "h0" in io else None
    if h is None:
        return None
    if target["convention"] == "tf1.lstm":
        return v1.nn.rnn_cell.LSTMStateTuple(io["c0"][row].astype(dtype), h)
    return h


def _run(v1, tf, target, io, prefix: str) -> tuple[float, dict[str, list[int]]]:
    """The largest difference from the source outputs, and the graph's variables with their shapes."""
    levels, directions = target["num_layers"], len(target["directions"])
    units = target["module"]["kwargs"]["num_units"]
    x = io["x"]
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.constant(x.astype(dtype))
        cells = [[_cell(v1, tf, target, units) for _ in range(levels)] for _ in range(directions)]
        states = [[_state(v1, target, io, k * directions + d, dtype) for k in range(levels)] for d in range(directions)]
        y = _graph(v1, target, inputs, cells, states, dtype)
        listed = {v.op.name: v.shape.as_list() for v in v1.global_variables()}
        with v1.Session(graph=graph) as session:
            v1.train.Saver(var_list=v1.global_variables()).restore(session, prefix)
            got = session.run(y)
    return float(np.abs(got - io["y"]).max()), listed


def _graph(v1, target, inputs, cells, states, dtype):
    levels, directions = len(cells[0]), len(cells)
    independent = target["config"]["independent_directions"]

    def one(level_cells, level_states):
        if len(level_cells) == 1:
            return level_cells[0], level_states[0]
        initial = None if level_states[0] is None else tuple(level_states)
        return v1.nn.rnn_cell.MultiRNNCell(level_cells), initial

    if directions == 1:
        cell, initial = one(cells[0], states[0])
        y, _ = v1.nn.dynamic_rnn(cell, inputs, initial_state=initial, time_major=True, dtype=dtype)
        return y
    if levels == 1 or independent:
        (fw, fw0), (bw, bw0) = one(cells[0], states[0]), one(cells[1], states[1])
        (y_fw, y_bw), _ = v1.nn.bidirectional_dynamic_rnn(
            fw, bw, inputs, initial_state_fw=fw0, initial_state_bw=bw0, time_major=True, dtype=dtype
        )
        return v1.concat([y_fw, y_bw], axis=-1)
    y = inputs  # contrib.rnn.stack_bidirectional_dynamic_rnn, whose scopes these are
    with v1.variable_scope("stack_bidirectional_rnn"):
        for k in range(levels):
            with v1.variable_scope(f"cell_{k}"):
                (y_fw, y_bw), _ = v1.nn.bidirectional_dynamic_rnn(
                    cells[0][k],
                    cells[1][k],
                    y,
                    initial_state_fw=states[0][k],
                    initial_state_bw=states[1][k],
                    time_major=True,
                    dtype=dtype,
                )
                y = v1.concat([y_fw, y_bw], axis=-1)
    return y


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    {"export": export, "check": check}[command](where)
