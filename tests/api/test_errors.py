"""Every failure is an RFC 9457 problem+json body with the status of the error table.

First the table itself, through a route that raises each error class; then the errors
real requests provoke: garbage bytes, a damaged file, an unknown layer, a refused
conversion, invalid fields, an oversized body, an internal bug.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rnnbridge.schemas import Problem
from rnnbridge import errors
from rnnbridge.service.errors import STATUS
from rnnbridge.errors import InexactConversion, InvalidField, LayerNotFound, LimitExceeded, MalformedFile, RnnBridgeError, UnsafeInput, UnsupportedFormat, VerificationFailed
from tests.conftest import TEST_UPLOAD_LIMIT

#: the interface's status per error class (issue 2), written out rather than read from STATUS
EXPECTED_STATUS = {
    MalformedFile: 400,
    UnsafeInput: 400,
    LayerNotFound: 404,
    LimitExceeded: 413,
    UnsupportedFormat: 415,
    InvalidField: 422,
    InexactConversion: 422,
    VerificationFailed: 500,
}
PROBLEM_JSON = "application/problem+json"


def _problem(response: Any, status: int, code: str, path: str) -> dict[str, Any]:
    """Check the RFC 9457 members and return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    Problem.model_validate(body)
    assert body["status"] == status and body["code"] == code and body["instance"] == path
    assert body["type"] == f"urn:rnnbridge:problem:{code}"
    assert body["title"] and body["detail"]
    return body


def _upload(path: Path) -> dict[str, Any]:
    return {"file": (path.name, path.read_bytes())}


def test_every_error_class_has_a_status():
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, RnnBridgeError) and cls is not RnnBridgeError
    }
    assert classes == set(EXPECTED_STATUS)
    assert classes <= set(STATUS)


@pytest.fixture
def raising_client(client) -> Iterator[Any]:
    """The test app plus ``POST /raise/{name}``, which raises that error class of ``rnnbridge.errors``."""

    def raise_error(name: str) -> None:
        cls = getattr(errors, name)
        raise cls(f"{name} happened here", layer="encoder", tensor="kernel")

    client.app.add_api_route("/raise/{name}", raise_error, methods=["POST"])
    yield client


@pytest.mark.parametrize(("cls", "status"), EXPECTED_STATUS.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_error_table(raising_client, cls, status):
    path = f"/raise/{cls.__name__}"
    body = _problem(raising_client.post(path), status, cls.code, path)
    assert body["title"] == cls.title
    assert body["detail"] == f"{cls.__name__} happened here"
    assert (body["layer"], body["tensor"]) == ("encoder", "kernel")


def test_a_subclass_inherits_its_parents_status(raising_client):
    class Truncated(MalformedFile):
        code = "truncated"

    errors.Truncated = Truncated  # type: ignore[attr-defined]
    try:
        _problem(raising_client.post("/raise/Truncated"), 400, "truncated", "/raise/Truncated")
    finally:
        del errors.Truncated  # type: ignore[attr-defined]


def test_an_unexpected_exception_is_a_bare_500(client, caplog):
    def broken() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    client.app.add_api_route("/broken", broken, methods=["GET"])
    with caplog.at_level(logging.ERROR, logger="rnnbridge.api"):
        response = client.get("/broken")
    body = _problem(response, 500, "internal_error", "/broken")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance", "code", "request_id"}
    assert any("secret internals" in (record.exc_text or "") for record in caplog.records)


def test_garbage_bytes_are_415(client):
    body = _problem(
        client.post("/split", files={"file": ("x.h5", b"not a weight file" * 20)}), 415, "unsupported_format", "/split"
    )
    assert body["detail"].startswith("'x.h5' is a text file")  # what was seen comes first


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b[:8] + bytes(4000)],
    ids=["truncated", "signature_only"],
)
def test_a_damaged_hdf5_file_is_400(client, keras_lstm, damage):
    data = damage(keras_lstm.read_bytes())
    _problem(client.post("/inspect", files={"file": ("m.h5", data)}), 400, "malformed_file", "/inspect")


def test_unknown_layer_is_404_naming_it(client, keras_lstm):
    response = client.post("/split", files=_upload(keras_lstm), data={"layer": "decoder"})
    body = _problem(response, 404, "layer_not_found", "/split")
    assert body["layer"] == "decoder" and "lstm" in body["detail"]


def test_an_inexact_conversion_is_422(client, fixtures_dir):
    gru = fixtures_dir / "k2_gru_reset_before" / "m.h5"
    response = client.post("/convert", files=_upload(gru), data={"target": "pytorch"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"] == PROBLEM_JSON
    assert body["title"] == InexactConversion.title and body["code"] != "invalid_field"
    assert "reset" in body["detail"]


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("/split", {"source": "tf2"}, "source"),
        ("/split", {"format": "xml"}, "format"),
        ("/split", {"format": "h5"}, "format"),
        ("/split", {"orientation": "sideways"}, "orientation"),
        ("/split", {"direction": "up"}, "direction"),
        ("/split", {"reset_after": "maybe"}, "reset_after"),
        ("/split", {"source_forget_bias": "one"}, "source_forget_bias"),
        ("/split", {"source_forget_bias": "1.0"}, "source_forget_bias"),
        ("/split", {"source": "onnx"}, "source"),
        ("/convert", {}, "target"),
        ("/convert", {"target": "caffe"}, "target"),
        ("/convert", {"target": "pytorch", "verify": "perhaps"}, "verify"),
        ("/convert", {"target": "onnx", "prefix": "x."}, "prefix"),
        ("/inspect", {"source": "TF1"}, "source"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client, keras_lstm, path, data, field):
    body = _problem(client.post(path, files=_upload(keras_lstm), data=data), 422, "invalid_field", path)
    assert body["field"] == field
    assert field in body["detail"]


def test_a_missing_file_field_is_422(client):
    body = _problem(client.post("/split", data={"source": "keras"}), 422, "invalid_field", "/split")
    assert body["field"] == "file"


def test_a_declared_oversized_body_is_413(client):
    data = b"\0" * (TEST_UPLOAD_LIMIT + 1)
    body = _problem(client.post("/split", files={"file": ("big.h5", data)}), 413, "limit_exceeded", "/split")
    assert str(TEST_UPLOAD_LIMIT) in body["detail"]


def test_an_oversized_body_without_length_is_413(client, test_settings):
    def chunks() -> Iterator[bytes]:
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.h5"\r\n\r\n'
        yield boundary
        for _ in range(TEST_UPLOAD_LIMIT // 4096 + 2):
            yield b"\0" * 4096
        yield b"\r\n--b--\r\n"

    response = client.post("/split", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert "content-length" not in response.request.headers
    _problem(response, 413, "limit_exceeded", "/split")
    assert list(test_settings.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nowhere", 404), ("GET", "/split", 405)])
def test_http_errors_are_problem_json(client, method, path, status):
    body = _problem(client.request(method, path), status, {404: "not_found", 405: "method_not_allowed"}[status], path)
    assert body["title"] in ("Not Found", "Method Not Allowed")
