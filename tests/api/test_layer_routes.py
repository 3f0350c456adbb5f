"""/explain, /run and /init over HTTP: the transport changes nothing, bad input is a clear
problem+json, and the limits hold."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rnnbridge import pipeline, verbs
from rnnbridge.schemas import ExplainResponse, RunResponse

PROBLEM = "application/problem+json"


def _npz(content: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=allow_pickle)
    return stream.getvalue()


def _decoded(payload: dict[str, Any]) -> np.ndarray:
    return np.array(payload["data"], dtype=payload["dtype"]).reshape(payload["shape"])


def test_explain_a_file_matches_split_over_http(client, keras_lstm: Path) -> None:
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes())}
    response = client.post("/explain", files=files, data={"target": "onnx"})
    assert response.status_code == 200, response.text
    doc = ExplainResponse.model_validate(response.json())
    split = _npz(client.post("/split", files=files).content)
    split.pop("__meta__")
    native = pipeline.read([keras_lstm]).layers[0]
    env = {
        t.variable: native.cells[(cell.level, cell.direction)][t.role]
        for cell in doc.layers[0].cells
        for t in cell.tensors
    }
    checked = 0
    for cell in doc.layers[0].cells:
        for gate in cell.gates:
            got = eval(gate.numpy, {"np": np}, env)  # our own expression, on arrays we read
            assert got.tobytes() == np.ascontiguousarray(split[gate.split_name]).tobytes()
            checked += 1
    assert checked == 16
    assert doc.layers[0].target.convention == "onnx.lstm" and doc.layers[0].target.tensors


def test_explain_sizes_as_text(client) -> None:
    response = client.post(
        "/explain", data={"convention": "tf1.lstm", "input_size": "6", "units": "10", "format": "text"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "kernel[:6, 10:20].T  (j)" in response.text
    assert "bias[20:30] + np.float32(1.0)" in response.text


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({}, 422, "invalid_field"),
        ({"convention": "tf1.lstm", "input_size": "3"}, 422, "invalid_field"),
        ({"convention": "nope", "input_size": "3", "units": "4"}, 422, "invalid_field"),
        ({"convention": "pytorch.lstm", "input_size": "100000", "units": "100000"}, 413, "limit_exceeded"),
    ],
)
def test_explain_refusals(client, data, status, code) -> None:
    response = client.post("/explain", data=data)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM and response.json()["code"] == code


def test_run_over_http_is_the_python_api(client, keras_lstm: Path) -> None:
    x = np.random.default_rng(3).standard_normal((2, 5, 4)).astype(np.float32)  # [B, T, I]: Keras' layout
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes()), "x": ("x.npy", _npy(x))}
    response = client.post("/run", files=files, data={"trace": "true", "dtype": "float64"})
    assert response.status_code == 200, response.text
    body = RunResponse.model_validate(response.json())
    local = verbs.run(pipeline.read([keras_lstm]), x=x, trace=True, dtype="float64")
    assert set(body.arrays) == set(local.arrays)
    for name, array in local.arrays.items():
        assert _decoded(body.arrays[name]).tobytes() == array.tobytes(), name
    assert body.meta["axes"]["sequence"] == ["B", "T", "D*Hout"]


def test_run_reports_where_expected_diverges(client, keras_lstm: Path) -> None:
    model = pipeline.read([keras_lstm])
    clean = verbs.run(model, steps=6, batch=2, seed=1)
    wrong = clean.arrays["sequence"].copy()
    wrong[1, 4:, 2] += 0.1  # batch 1, steps 4.., unit 2
    files = {
        "file": (keras_lstm.name, keras_lstm.read_bytes()),
        "expected": ("y.json", json.dumps(wrong.tolist()).encode()),
    }
    response = client.post("/run", files=files, data={"steps": "6", "batch": "2", "seed": "1"})
    first = response.json()["meta"]["divergence"]["first"]
    assert (first["array"], first["step"], first["unit"], first["at"]["B"]) == ("sequence", 4, 2, 1)


@pytest.mark.parametrize(
    ("x", "status", "code"),
    [
        (_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), 400, "unsafe_input"),
        (b"[[1, 2], [3]]", 400, "malformed_file"),
        (_npy(np.zeros((2, 5, 3))), 422, "invalid_field"),  # I is 4
    ],
    ids=["pickle", "ragged-json", "wrong-input-size"],
)
def test_run_refuses_bad_inputs(client, keras_lstm: Path, x: bytes, status: int, code: str) -> None:
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes()), "x": ("x.npy", x)}
    response = client.post("/run", files=files)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM and response.json()["code"] == code


def test_run_is_bounded(client, keras_lstm: Path, test_settings) -> None:
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes())}
    response = client.post("/run", files=files, data={"steps": "100000", "batch": "1000"})
    assert response.status_code == 413 and response.json()["code"] == "limit_exceeded"


def test_init_returns_the_same_bytes_for_the_same_seed(client) -> None:
    data = {"target": "pytorch", "cell": "gru", "input_size": "3", "units": "4", "bidirectional": "true", "seed": "9"}
    first, again = client.post("/init", data=data), client.post("/init", data=data)
    assert first.status_code == 200 and first.content == again.content
    assert 'filename="init.to-pytorch.npz"' in first.headers["content-disposition"]
    arrays = _npz(first.content)
    meta = json.loads(str(arrays.pop("__meta__")))
    assert sorted(arrays) == sorted(meta["layers"][0]["tensors"])
    assert meta["layers"][0]["target"]["module"]["kwargs"]["bidirectional"] is True
    assert client.post("/init", data={**data, "seed": "10"}).content != first.content


def test_init_keras_h5_and_refusals(client) -> None:
    h5 = client.post("/init", data={"target": "keras", "input_size": "3", "units": "4", "format": "h5"})
    assert h5.status_code == 200 and h5.content[:8] == b"\x89HDF\r\n\x1a\n"
    for data, status in [
        ({"target": "pytorch", "input_size": "50000", "units": "50000"}, 413),  # 10 billion weights
        ({"target": "pytorch", "input_size": "3", "units": "4", "input_initializer": "magic"}, 422),
        ({"target": "pytorch", "input_size": "3", "units": "4", "format": "h5"}, 422),
        ({"target": "keras", "input_size": "3", "units": "4", "peepholes": "true"}, 422),
        ({"target": "pytorch", "input_size": "3", "units": "4", "name": "a/b"}, 422),
    ]:
        response = client.post("/init", data=data)
        assert response.status_code == status, (data, response.text)
        assert response.headers["content-type"] == PROBLEM


def test_the_openapi_document_lists_the_endpoints(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/explain", "/run", "/init"):
        assert "post" in paths[path]
        assert "413" in paths[path]["post"]["responses"]


def test_a_real_server_answers_init(server_url: str) -> None:
    data = {"target": "onnx", "cell": "lstm", "input_size": "3", "units": "4", "peepholes": "true", "format": "json"}
    response = httpx.post(f"{server_url}/init", data=data, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert {name.rsplit("/", 1)[1] for name in body["arrays"]} == {"W", "R", "B", "P"}


def test_the_routes_are_plain_functions_run_in_the_threadpool() -> None:
    from inspect import iscoroutinefunction

    from fastapi.routing import APIRoute

    from rnnbridge.service.routes_layers import router

    endpoints = {route.path: route.endpoint for route in router.routes if isinstance(route, APIRoute)}
    assert set(endpoints) == {"/explain", "/run", "/init"}
    assert not [path for path, endpoint in endpoints.items() if iscoroutinefunction(endpoint)]


@pytest.mark.parametrize(
    "target, fmt, media_type, filename",
    [
        ("onnx", "onnx", "application/octet-stream", "init.to-onnx.onnx"),
        ("tf1", "tf_checkpoint", "application/x-tar", "init.to-tf1.tar"),
        ("keras", "h5", "application/x-hdf5", "init.to-keras.weights.h5"),
    ],
)
def test_init_answers_every_format_of_its_target(client, tmp_path: Path, target, fmt, media_type, filename) -> None:
    data = {"target": target, "input_size": "3", "units": "4", "format": fmt, "seed": "4"}
    response = client.post("/init", data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert f'filename="{filename}"' in response.headers["content-disposition"]
    path = tmp_path / filename
    path.write_bytes(response.content)
    expected = verbs.init(target, input_size=3, units=4, seed=4)
    reference = expected.save(tmp_path / "expected.npz", "npz")
    back = pipeline.split(pipeline.read([path])).arrays
    want = pipeline.split(pipeline.read([reference], source=target)).arrays
    assert back.keys() == want.keys()
    assert all(np.array_equal(back[name], want[name]) for name in want)


def test_explain_names_checkpoint_variables_and_refuses_other_formats(client, keras_lstm: Path) -> None:
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes())}
    data = {"target": "tf1", "output_format": "tf_checkpoint", "scope": "enc"}
    response = client.post("/explain", files=files, data=data)
    assert response.status_code == 200, response.text
    tensors = ExplainResponse.model_validate(response.json()).layers[0].target.tensors
    assert tensors and all(t.checkpoint_variable.startswith("enc/lstm_cell/") for t in tensors)
    refused = client.post("/explain", files=files, data={"target": "pytorch", "output_format": "onnx"})
    assert refused.status_code == 422 and refused.json()["field"] == "format"


def test_run_refuses_weight_formats_and_lists_assumptions(client, keras_lstm: Path) -> None:
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes())}
    for fmt in ("h5", "onnx", "tf_checkpoint"):
        refused = client.post("/run", files=files, data={"steps": "2", "batch": "1", "format": fmt})
        assert refused.status_code == 422 and refused.json()["field"] == "format", fmt
    response = client.post("/run", files=files, data={"steps": "2", "batch": "1", "format": "npz"})
    assert response.status_code == 200
    assert 'filename="run.npz"' in response.headers["content-disposition"]
    meta = json.loads(str(_npz(response.content)["__meta__"]))
    listed = [{k: a[k] for k in ("fact", "value", "field")} for a in meta["assumed"]]
    header = json.loads(response.headers["RNNBridge-Assumed"])
    assert [{k: a[k] for k in ("fact", "value", "field")} for a in header] == listed
    assert all(a["layer"] == meta["layer"] for a in header)
