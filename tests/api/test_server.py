"""End to end: the real ``rnnbridge serve`` (uvicorn) on a loopback port, driven by httpx."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import TEST_UPLOAD_LIMIT

PROBLEM_JSON = "application/problem+json"


def _post(url: str, path: str, upload: Path, **data: str) -> httpx.Response:
    files = {"file": (upload.name, upload.read_bytes())}
    return httpx.post(f"{url}{path}", files=files, data=data, timeout=60)


def _npz(response: httpx.Response) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("__meta__")))


def test_healthz_docs_and_openapi(server_url):
    assert httpx.get(f"{server_url}/healthz").json()["status"] == "ok"
    docs = httpx.get(f"{server_url}/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    paths = httpx.get(f"{server_url}/openapi.json").json()["paths"]
    assert {"/inspect", "/split", "/convert", "/conventions", "/healthz"} <= set(paths)


def test_split_end_to_end(server_url, keras_lstm):
    arrays, meta = _npz(_post(server_url, "/split", keras_lstm))
    assert len(arrays) == 16 and all(name.startswith("lstm/l0/forward/") for name in arrays)
    assert meta["layers"][0]["name"] == "lstm"
    with np.load(keras_lstm.parent / "rnn0.canonical.npz", allow_pickle=False) as truth:
        np.testing.assert_array_equal(arrays["lstm/l0/forward/W_xf"], truth["l0.fw.W_x.f"])


def test_convert_to_pytorch_end_to_end(server_url, keras_lstm):
    response = _post(server_url, "/convert", keras_lstm, target="pytorch")
    assert response.headers["content-disposition"] == 'attachment; filename="m.to-pytorch.npz"'
    arrays, meta = _npz(response)
    assert sorted(arrays) == ["lstm.bias_hh_l0", "lstm.bias_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l0"]
    assert arrays["lstm.weight_ih_l0"].shape == (24, 4)
    assert meta["target"] == "pytorch"
    verification = meta["layers"][0]["verification"]
    assert verification["max_abs_err"] <= verification["tolerance"]


def test_workspace_is_empty_between_requests(server_url, server_spool, keras_lstm):
    _post(server_url, "/split", keras_lstm)
    _post(server_url, "/split", keras_lstm, layer="nope")
    assert list(server_spool.iterdir()) == []


def test_garbage_is_415(server_url, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00\x01garbage" * 64)
    response = _post(server_url, "/inspect", junk)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "unsupported_format"


@pytest.mark.parametrize(("field", "value"), [("target", "caffe"), ("format", "xml"), ("source", "tf2")])
def test_unknown_field_values_are_422(server_url, keras_lstm, field, value):
    data = {"target": "pytorch", field: value}
    response = _post(server_url, "/convert", keras_lstm, **data)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["code"], body["field"], body["instance"]) == ("invalid_field", field, "/convert")


def test_oversized_upload_with_content_length_is_413(server_url):
    files = {"file": ("big.h5", b"\0" * (TEST_UPLOAD_LIMIT + 1))}
    response = httpx.post(f"{server_url}/split", files=files, timeout=60)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "limit_exceeded"


def test_oversized_chunked_upload_is_413(server_url):
    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.h5"\r\n\r\n'
        for _ in range(TEST_UPLOAD_LIMIT // 8192 + 2):
            yield b"\0" * 8192
        yield b"\r\n--b--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = httpx.post(f"{server_url}/split", content=body(), headers=headers, timeout=60)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413
    assert response.json()["code"] == "limit_exceeded"
