"""The endpoints in process: what they return for real framework files, and that the
transport changes nothing on the way (names, dtypes, exact values, metadata)."""

from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnbridge.schemas import ArraysResponse, ConventionsResponse, Health, InspectResponse
from rnnbridge.service import routes
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, TARGET_FRAMEWORKS

LSTM_GATE_NAMES = {f"{part}{gate}" for part in ("W_x", "W_h", "b_x", "b_h") for gate in "ifgo"}


def _files(path: Path, name: str | None = None) -> dict[str, Any]:
    return {"file": (name or path.name, path.read_bytes())}


def _npz(content: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _meta(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    meta = arrays.pop("__meta__")
    assert meta.shape == () and meta.dtype.kind == "U"
    document: dict[str, Any] = json.loads(str(meta))
    return document


def _canonical(fixture: Path, layer: str) -> dict[str, np.ndarray]:
    """The fixture's recorded per-gate truth, renamed as /split names its arrays."""
    directions = {"fw": "forward", "bw": "backward"}
    with np.load(fixture / "rnn0.canonical.npz", allow_pickle=False) as truth:
        renamed = {}
        for key in truth.files:
            level, direction, part, gate = key.split(".")
            renamed[f"{layer}/{level}/{directions[direction]}/{part}{gate}"] = truth[key]
        return renamed


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert Health.model_validate(response.json()).status == "ok"


def test_conventions_lists_every_registry_entry(client):
    response = client.get("/conventions")
    assert response.status_code == 200
    body = ConventionsResponse.model_validate(response.json())
    assert body.frameworks == list(FRAMEWORKS)
    assert set(body.conventions) == set(CONVENTIONS)


@pytest.mark.parametrize("key", sorted(CONVENTIONS))
def test_conventions_entry_is_derived_from_the_registry(client, key):
    conv = CONVENTIONS[key]
    info = client.get("/conventions").json()["conventions"][key]
    assert (info["framework"], info["cell"], info["native"]) == (conv.framework, conv.cell, conv.native)
    assert (info["reset_after"], info["forget_bias"], info["source_only"]) == (
        conv.reset_after,
        conv.forget_bias,
        conv.source_only,
    )
    assert info["features"] == sorted(conv.features)
    assert info["naming"] == conv.naming and info["source"] == conv.source
    assert [(t["name"], t["gates"], tuple(t["parts"]), t["gate_axis"], t["group"]) for t in info["tensors"]] == [
        (t.name, t.gates, t.parts, t.gate_axis, t.group) for t in conv.tensors
    ]


def test_inspect_keras_file(client, keras_lstm):
    response = client.post("/inspect", files=_files(keras_lstm))
    assert response.status_code == 200, response.text
    body = InspectResponse.model_validate(response.json())
    assert body.format and body.other_tensors >= 0
    (layer,) = body.layers
    assert (layer.name, layer.cell, layer.convention) == ("lstm", "lstm", "keras.lstm")
    assert (layer.input_size, layer.units) == (4, 6)
    assert sorted(tuple(t.shape) for t in layer.tensors) == [(4, 24), (6, 24), (24,)]


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_results_over_the_inline_size_stream_as_they_are_encoded(client, keras_lstm, monkeypatch, fmt):
    inline = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", "format": fmt})
    monkeypatch.setattr(routes, "INLINE_BYTES", 0)
    streamed = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", "format": fmt})
    assert inline.status_code == streamed.status_code == 200, streamed.text
    # both carry a Content-Length: the streamed one computed before encoding (rnnbridge.output_sizes)
    assert int(inline.headers["content-length"]) == len(inline.content)
    assert int(streamed.headers["content-length"]) == len(streamed.content)
    if fmt == "npz":  # a zip written to a stream differs in its headers: compare the arrays
        inline_arrays, streamed_arrays = _npz(inline.content), _npz(streamed.content)
        assert list(inline_arrays) == list(streamed_arrays)
        assert all(inline_arrays[k].tobytes() == streamed_arrays[k].tobytes() for k in inline_arrays)
    else:
        assert streamed.content == inline.content


def test_inspect_takes_several_files_in_one_request(client, fixtures_dir):
    """A TF1 checkpoint is an index plus data shards: the ``file`` field repeats."""
    folder = fixtures_dir / "tf1_lstm"
    files = [("file", (p.name, p.read_bytes())) for p in sorted(folder.glob("model.ckpt.*")) if p.suffix != ".meta"]
    assert len(files) == 2
    response = client.post("/inspect", files=files)
    assert response.status_code == 200, response.text
    assert [layer["cell"] for layer in response.json()["layers"]] == ["lstm"]


def test_split_npz_is_the_recorded_truth(client, keras_lstm):
    response = client.post("/split", files=_files(keras_lstm))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="m.gates.npz"'
    assert response.headers["content-length"] == str(len(response.content))  # small: encoded in the route
    arrays = _npz(response.content)
    meta = _meta(arrays)
    assert {name.rsplit("/", 1)[1] for name in arrays} == LSTM_GATE_NAMES
    truth = _canonical(keras_lstm.parent, "lstm")
    assert arrays.keys() == truth.keys()
    for name, expected in truth.items():
        assert arrays[name].dtype == np.float32
        np.testing.assert_array_equal(arrays[name], expected, err_msg=name)
    assert [layer["name"] for layer in meta["layers"]] == ["lstm"]


def test_split_json_carries_the_same_exact_values(client, keras_lstm):
    npz = _npz(client.post("/split", files=_files(keras_lstm)).content)
    npz.pop("__meta__")
    response = client.post("/split", files=_files(keras_lstm), data={"format": "json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = ArraysResponse.model_validate(response.json())
    assert body.arrays.keys() == npz.keys()
    for name, payload in body.arrays.items():
        decoded = np.array(payload.data, dtype=payload.dtype).reshape(payload.shape)
        assert decoded.tobytes() == npz[name].tobytes(), name
    assert body.meta["layers"][0]["name"] == "lstm"


def test_split_in_out_orientation_transposes_matrices(client, keras_lstm):
    out_in = _npz(client.post("/split", files=_files(keras_lstm)).content)
    in_out = _npz(client.post("/split", files=_files(keras_lstm), data={"orientation": "in_out"}).content)
    assert _meta(in_out)["layers"][0]["orientation"] == "in_out"
    _meta(out_in)
    for name, array in out_in.items():
        np.testing.assert_array_equal(in_out[name], array.T if array.ndim == 2 else array, err_msg=name)


def test_split_safetensors_holds_the_metadata(client, keras_lstm):
    response = client.post("/split", files=_files(keras_lstm), data={"format": "safetensors"})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="m.gates.safetensors"'
    (length,) = struct.unpack("<Q", response.content[:8])
    header = json.loads(response.content[8 : 8 + length])
    meta = json.loads(header.pop("__metadata__")["rnnbridge"])
    assert meta["layers"][0]["name"] == "lstm"
    assert {name.rsplit("/", 1)[1] for name in header} == LSTM_GATE_NAMES
    assert {entry["dtype"] for entry in header.values()} == {"F32"}


@pytest.mark.parametrize("target", TARGET_FRAMEWORKS)
def test_convert_to_every_framework(client, keras_lstm, target):
    response = client.post("/convert", files=_files(keras_lstm), data={"target": target})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="m.to-{target}.npz"'
    arrays = _npz(response.content)
    meta = _meta(arrays)
    assert meta["target"] == target
    (layer,) = meta["layers"]
    assert sorted(layer["tensors"]) == sorted(arrays)
    assert layer["verification"] is not None
    assert all(array.dtype == np.float32 for array in arrays.values())


@pytest.mark.parametrize(
    ("data", "keys"),
    [
        ({}, ["lstm.bias_hh_l0", "lstm.bias_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l0"]),
        ({"prefix": ""}, ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]),
        (
            {"prefix": "encoder.rnn."},
            [f"encoder.rnn.{k}" for k in ("bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0")],
        ),
    ],
    ids=["absent", "empty", "given"],
)
def test_convert_prefix_absent_empty_and_given(client, keras_lstm, data, keys):
    response = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", **data})
    assert response.status_code == 200, response.text
    arrays = _npz(response.content)
    _meta(arrays)
    assert sorted(arrays) == keys


def test_convert_without_verification(client, keras_lstm):
    response = client.post("/convert", files=_files(keras_lstm), data={"target": "onnx", "verify": "false"})
    assert response.status_code == 200, response.text
    arrays = _npz(response.content)
    assert _meta(arrays)["layers"][0]["verification"] is None


def test_convert_json_body(client, keras_lstm):
    response = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", "format": "json"})
    assert response.status_code == 200, response.text
    body = ArraysResponse.model_validate(response.json())
    assert body.arrays["lstm.weight_ih_l0"].shape == [24, 4]
    assert body.meta["target"] == "pytorch"


@pytest.mark.parametrize(
    ("client_name", "download"),
    [
        ("../../etc/x y.h5", "x_y.gates.npz"),
        ("C:\\Users\\me\\model.h5", "model.gates.npz"),
        (".hidden.h5", "hidden.gates.npz"),
        ('a"; filename=evil.exe\r\nSet-Cookie: a=b.h5', None),
    ],
)
def test_download_name_is_sanitised(client, keras_lstm, client_name, download):
    response = client.post("/split", files=_files(keras_lstm, client_name))
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+"', disposition)
    if download is not None:
        assert disposition == f'attachment; filename="{download}"'


@pytest.mark.parametrize(
    ("path", "data"),
    [("/inspect", {}), ("/split", {}), ("/convert", {"target": "pytorch"}), ("/split", {"layer": "nope"})],
)
def test_workspace_is_removed_after_every_request(client, test_settings, keras_lstm, path, data):
    client.post(path, files=_files(keras_lstm), data=data)
    client.post(path, files={"file": ("junk.bin", b"junk" * 100)}, data=data)
    assert list(test_settings.tmp_dir.iterdir()) == []


def test_openapi_lists_registry_enums(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    form = schemas["ConvertForm"]["properties"]

    def enum(prop: dict[str, Any]) -> list[str]:
        options = prop.get("anyOf", [prop])
        return next(option["enum"] for option in options if "enum" in option)

    assert enum(form["target"]) == list(TARGET_FRAMEWORKS)
    assert enum(form["source"]) == list(FRAMEWORKS)
    assert enum(form["format"]) == ["npz", "json", "safetensors", "h5", "onnx", "tf_checkpoint", "pdparams", "eqx"]
    assert set(form) >= {"file", "layer", "source_forget_bias", "target_forget_bias", "verify", "prefix"}
    split_form = schemas["SplitForm"]["properties"]
    assert enum(split_form["orientation"]) == ["out_in", "in_out"]


@pytest.mark.parametrize("path", ["/inspect", "/split", "/convert"])
def test_openapi_documents_errors_as_problem_json(client, path):
    responses = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    for status in ("400", "413", "415", "422"):
        assert list(responses[status]["content"]) == ["application/problem+json"], status
        assert responses[status]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert "application/octet-stream" in responses["200"]["content"] or path == "/inspect"


def test_docs_page(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


# The encoders behind ``format=``, on hand-made results with awkward values.


class _Unseekable(io.RawIOBase):
    """A write-only stream without ``seek``/``tell``, like a socket or a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


def _awkward(dtype: str) -> np.ndarray:
    info = np.finfo(dtype)
    values = [0.0, -0.0, 1 / 3, info.max, info.tiny, info.smallest_subnormal, np.nan, np.inf, -np.inf]
    return np.array(values, dtype=dtype).reshape(3, 3)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_json_encoding_is_exact(dtype):
    from rnnbridge.outputs import to_json
    from rnnbridge.pipeline import Result

    array = _awkward(dtype)
    payload = json.loads(json.dumps(to_json(Result({"a": array}, {})), allow_nan=False))["arrays"]["a"]
    assert payload["dtype"] == dtype and payload["shape"] == [3, 3]
    assert payload["data"][-3:] == ["NaN", "Infinity", "-Infinity"]
    decoded = np.array([float(v) if isinstance(v, str) else v for v in payload["data"]], dtype=dtype).reshape(3, 3)
    assert decoded.tobytes() == array.tobytes()


def test_npz_streams_to_an_unseekable_stream_with_plain_json_meta():
    from rnnbridge.outputs import write_npz
    from rnnbridge.pipeline import Result

    arrays = {"enc/l0/forward/W_xi": _awkward("float16"), "weight_ih_l0": np.arange(6.0).reshape(2, 3)}
    meta = {"verification": {"max_abs_err": np.float32(1e-7), "seed": np.int64(0)}, "odd": float("nan")}
    stream = _Unseekable()
    write_npz(Result(arrays, meta), stream)
    loaded = _npz(bytes(stream.data))
    assert _meta(loaded) == {"verification": {"max_abs_err": float(np.float32(1e-7)), "seed": 0}, "odd": "NaN"}
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].tobytes() == array.tobytes()


@pytest.mark.parametrize(
    ("fmt", "target"),
    [("h5", None), ("h5", "pytorch"), ("xml", "keras"), ("onnx", None), ("onnx", "tf1"), ("tf_checkpoint", "onnx")],
)
def test_unavailable_formats_are_refused_before_any_work(fmt, target):
    from rnnbridge.errors import InvalidField
    from rnnbridge.outputs import check_format

    with pytest.raises(InvalidField, match="format") as caught:
        check_format(fmt, target)
    assert caught.value.fields()["field"] == "format"


def test_routes_are_plain_functions_run_in_the_threadpool():
    """NumPy and h5py work must never run on the event loop."""
    from inspect import iscoroutinefunction

    from fastapi.routing import APIRoute

    from rnnbridge.service.routes import ops, router

    routes = [*router.routes, *ops.routes]
    endpoints = {route.path: route.endpoint for route in routes if isinstance(route, APIRoute)}
    assert set(endpoints) == {"/inspect", "/split", "/convert", "/conventions", "/healthz", "/readyz", "/metrics"}
    assert not [path for path, endpoint in endpoints.items() if iscoroutinefunction(endpoint)]


# Issue 10: facts a file does not record, target constants, assumptions in a header.

LOCAL = Path(__file__).resolve().parents[1] / "fixtures"
W224 = LOCAL / "exactness" / "k2_lstm_hard_sigmoid_w224" / "w.h5"
GRU_BARE = LOCAL / "exactness" / "torch_onnx_gru_bare" / "bare.npz"
TORCH_LSTM = LOCAL / "torch_lstm_no_bias" / "model.pt"


@pytest.mark.parametrize("path", ["/inspect", "/split", "/convert"])
def test_every_assumption_is_listed_in_the_header(client, path):
    data = {"target": "onnx"} if path == "/convert" else {}  # a field an endpoint does not take is a 422
    response = client.post(path, files=_files(W224), data=data)
    assert response.status_code == 200, response.text
    listed = json.loads(response.headers[routes.ASSUMED_HEADER])
    assert {(a["layer"], a["fact"], a["field"]) for a in listed} == {
        ("lstm_2", "activations", "activations"),
        ("lstm_2", "direction", "direction"),
    }
    assert next(a["value"] for a in listed if a["fact"] == "activations") == "hard_sigmoid_keras2,tanh,tanh"


def test_stated_facts_leave_nothing_assumed(client):
    data = {"target": "onnx", "activations": "hard_sigmoid_keras2,tanh", "direction": "forward", "strict": "true"}
    response = client.post("/convert", files=_files(W224), data=data)
    assert response.status_code == 200, response.text
    assert json.loads(response.headers[routes.ASSUMED_HEADER]) == []


@pytest.mark.parametrize("path", ["/split", "/convert"])
def test_strict_turns_an_assumption_into_a_422_naming_the_field(client, path):
    data = {"source": "onnx", "strict": "true", "activations": "sigmoid,tanh", "direction": "forward"}
    data |= {"target": "onnx"} if path == "/convert" else {}
    response = client.post(path, files=_files(GRU_BARE), data=data)
    assert response.status_code == 422
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("assumption_required", "reset_after")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("target", ["pytorch", "keras", "onnx"])
def test_a_target_forget_bias_the_target_cannot_apply_is_422(client, target):
    response = client.post("/convert", files=_files(TORCH_LSTM), data={"target": target, "target_forget_bias": "2"})
    assert response.status_code == 422
    assert response.json()["field"] == "target_forget_bias"


@pytest.mark.parametrize("value", ["nan", "inf", "1e309"])
def test_a_non_finite_forget_bias_is_422(client, value):
    tf1 = sorted((LOCAL / "tf1_lstm_forget_bias_half").glob("model.ckpt.*"))
    files = [("file", (p.name, p.read_bytes())) for p in tf1 if not p.name.endswith(".meta")]
    response = client.post("/convert", files=files, data={"target": "tf1", "source_forget_bias": value})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "source_forget_bias"


def test_a_field_contradicting_the_file_is_422_naming_both(client):
    data = {"target": "onnx", "activations": "sigmoid,tanh"}
    response = client.post("/convert", files=_files(LOCAL / "k2_lstm_hard_sigmoid" / "m.h5"), data=data)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "field_contradicts_file"
    assert (problem["stated"], problem["recorded"]) == ("sigmoid,tanh,tanh", "hard_sigmoid(0.2,0.5),tanh,tanh")


def test_openapi_documents_the_fact_fields(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for body in ("ConvertForm", "SplitForm"):
        fields = {"activations", "clip", "input_forget", "strict", "reset_after", "direction", "source_forget_bias"}
        assert fields <= set(schemas[body]["properties"])
    assert "activations" in schemas["InspectForm"]["properties"]


def test_convert_reports_its_verification_in_a_header(client, keras_lstm):
    """The least margin over the layers, as in the metadata; none without verification."""
    response = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", "format": "json"})
    reports = [layer["verification"] for layer in response.json()["meta"]["layers"]]
    header = json.loads(response.headers[routes.VERIFICATION_HEADER])
    assert header == {**max(reports, key=lambda r: r["max_abs_err"] / r["tolerance"]), "layers": len(reports)}
    unverified = client.post("/convert", files=_files(keras_lstm), data={"target": "pytorch", "verify": "false"})
    assert routes.VERIFICATION_HEADER not in unverified.headers
