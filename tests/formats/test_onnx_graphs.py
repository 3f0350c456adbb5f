"""ONNX models whose recurrent weights are not plain initializers of the main graph.

The fixtures (``tests/fixtures/onnx_graphs``, made by ``tools/make_onnx_graph_fixtures.py``
with the real onnx and onnxruntime, whose outputs are recorded beside them): weights built
by a constant-only subgraph, a GRU inside an ``If``, and weights fed as graph inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnbridge import pipeline
from rnnbridge.engine import reference
from rnnbridge.errors import InvalidField, LimitExceeded
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.formats.onnx import folding
from rnnbridge.formats.onnx import model as onnx_model

from .test_onnx_model import R, W, attr, float_tensor, graph, model, node, read_bytes

FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "onnx_graphs"


def recorded(name: str) -> dict[str, np.ndarray]:
    with np.load(FOLDER / f"{name}.io.npz") as npz:
        return dict(npz)


def run(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The layer through rnnbridge's reference equations; y as ONNX gives it, [T, D, B, H]."""
    y, h_n, c_n = reference.run(layer, x, None, None)
    directions = len(layer.directions)
    return y.reshape(*y.shape[:2], directions, -1).transpose(0, 2, 1, 3), h_n, c_n


def test_weights_computed_by_a_constant_subgraph_are_folded():
    model = pipeline.read([FOLDER / "folded_weights.onnx"])
    (layer,) = model.layers
    assert layer.name == "folded" and layer.directions == ("forward", "backward")
    assert any("folded from constants" in note and "Concat" in note for note in model.notes)
    io = recorded("folded_weights")
    y, h_n, c_n = run(layer, io["x"])
    np.testing.assert_allclose(y, io["y"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n, io["y_h"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(c_n, io["y_c"], rtol=0, atol=1e-5)


def test_a_recurrent_node_inside_an_if_is_found():
    model = pipeline.read([FOLDER / "gru_in_if.onnx"])
    (layer,) = model.layers
    assert layer.name == "inner_gru" and layer.convention.key == "onnx.gru_lbr"
    assert any("subgraph" in note for note in model.notes)
    io = recorded("gru_in_if")
    y, _, _ = run(layer, io["x"])
    np.testing.assert_allclose(y, io["y"], rtol=0, atol=1e-5)


def test_weights_fed_as_graph_inputs_are_not_in_the_file_and_the_error_says_how_to_send_them():
    with pytest.raises(InvalidField, match="npz of W, R, B.*source=onnx") as caught:
        pipeline.read([FOLDER / "weights_as_inputs.onnx"])
    assert caught.value.code == "weights_not_in_file"
    assert caught.value.fields()["layer"] == "backend_lstm"


def test_the_service_answers_422_for_weights_fed_as_inputs(client):
    path = FOLDER / "weights_as_inputs.onnx"
    response = client.post("/inspect", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 422
    assert response.json()["code"] == "weights_not_in_file"


def test_a_weight_that_depends_on_a_runtime_value_is_refused_with_the_reason(tmp_path):
    nodes = [node("Identity", ["X"], ["Wx"]), node("LSTM", ["X", "Wx", "R"], ["Y"], name="rnn")]
    result = read_bytes(tmp_path, model(graph(nodes, [float_tensor("R", R)])))
    from rnnbridge.discovery import find_layers

    found = find_layers(result)
    assert found.layers == [] and "not constants" in found.unsupported[0]["reason"]


def test_folding_is_bounded(tmp_path):
    """A Concat of one constant many times stops at the element limit, before allocating."""
    nodes = [
        node("Constant", [], ["w"], attrs=[attr("value", t=float_tensor("w", W))]),
        node("Concat", ["w"] * 1000, ["Wbig"], attrs=[attr("axis", i=1)]),
        node("LSTM", ["X", "Wbig", "R"], ["Y"], name="rnn"),
    ]
    path = tmp_path / "big.onnx"
    path.write_bytes(model(graph(nodes, [float_tensor("R", R)])))
    with pytest.raises(LimitExceeded):
        onnx_model.read([InputFile("big.onnx", path)], Limits(max_tensor_elements=W.size * 100))


def test_a_chain_longer_than_the_bound_is_not_folded(tmp_path):
    nodes = [node("Constant", [], ["v0"], attrs=[attr("value", t=float_tensor("v0", W))])]
    nodes += [node("Identity", [f"v{k}"], [f"v{k + 1}"]) for k in range(folding.MAX_NODES + 5)]
    last = f"v{folding.MAX_NODES + 5}"
    nodes.append(node("LSTM", ["X", last, "R"], ["Y"], name="rnn"))
    result = read_bytes(tmp_path, model(graph(nodes, [float_tensor("R", R)])))
    assert last not in result.tensors


def _ifs(count: int, inner: int) -> bytes:
    """A model of ``count`` If nodes, each with a then-branch of ``inner`` Identity nodes."""
    branch = graph([node("Identity", ["c"], [f"o{k}"]) for k in range(inner)])
    ifs = [node("If", ["c"], [f"y{k}"], attrs=[attr("then_branch", g=branch)]) for k in range(count)]
    return model(graph(ifs, [float_tensor("R", R)]))


def test_the_graph_entry_bound_holds_over_the_subgraphs_together(tmp_path, monkeypatch):
    """Entries spread over many subgraphs, each under the bound, are counted together."""
    from rnnbridge.formats.onnx import graph as onnx_graph

    monkeypatch.setattr(onnx_graph, "MAX_GRAPH_ENTRIES", 50)
    path = tmp_path / "spread.onnx"
    path.write_bytes(_ifs(count=10, inner=8))  # 10 + 1 + 10 x 8 entries; none of the graphs over 50
    with pytest.raises(LimitExceeded, match="subgraphs"):
        onnx_model.read([InputFile(path.name, path)], Limits())
    path.write_bytes(_ifs(count=4, inner=8))
    onnx_model.read([InputFile(path.name, path)], Limits())


def test_a_node_with_more_subgraphs_than_its_field_bound_is_refused(tmp_path, monkeypatch):
    from rnnbridge.formats.onnx import graph as onnx_graph

    monkeypatch.setattr(onnx_graph, "MAX_NODE_FIELDS", 20)
    many = node("If", ["c"], ["y"], attrs=[attr("then_branch", g=graph())] * 30)
    path = tmp_path / "many.onnx"
    path.write_bytes(model(graph([many], [float_tensor("R", R)])))
    with pytest.raises(LimitExceeded):
        onnx_model.read([InputFile(path.name, path)], Limits())
