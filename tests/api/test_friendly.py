"""The service says what it saw and is easy to operate: request ids in error bodies, trace
context in the logs, HEAD on the probes, no slash redirects, process metrics and build info,
settings with units and one-line errors."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote

import httpx
import numpy as np
import pytest

from rnnbridge.service.observability import JsonFormatter
from rnnbridge.service.settings import Settings

from ..conftest import FIXTURES, running_server

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


# --- request ids and trace context ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "files", "status"),
    [
        ("GET", "/nowhere", None, 404),
        ("POST", "/convert", {"file": ("m.h5", b"")}, 422),  # target missing
        ("POST", "/inspect", {"file": ("x.bin", b"not weights at all")}, 415),
    ],
)
def test_every_error_body_carries_the_request_id(client, method, path, files, status):
    response = client.request(method, path, files=files, headers={"X-Request-ID": "ticket-7"})
    assert response.status_code == status
    assert response.json()["request_id"] == response.headers["x-request-id"] == "ticket-7"


def test_a_made_request_id_is_in_the_body_too(client):
    response = client.get("/nowhere")
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.fixture
def json_log() -> io.StringIO:
    """What the ``rnnbridge`` loggers write, formatted as ``rnnbridge serve`` formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("rnnbridge")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _access_lines(stream: io.StringIO) -> list[dict]:
    return [line for line in map(json.loads, stream.getvalue().splitlines()) if line["logger"] == "rnnbridge.access"]


def test_a_w3c_traceparent_reaches_the_log_lines_of_its_request(client, json_log):
    client.get("/healthz", headers={"traceparent": TRACEPARENT})
    client.get("/healthz")
    traced, plain = _access_lines(json_log)
    assert (traced["trace_id"], traced["parent_id"]) == (TRACE_ID, PARENT_ID)
    assert "trace_id" not in plain


@pytest.mark.parametrize(
    "header",
    [
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # upper case
        f"00-{TRACE_ID}-{PARENT_ID}",  # no flags
        "x" * 300,
    ],
)
def test_an_invalid_traceparent_is_ignored(client, json_log, header):
    assert client.get("/healthz", headers={"traceparent": header}).status_code == 200
    (line,) = _access_lines(json_log)
    assert "trace_id" not in line


# --- methods and paths ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_on_the_probes_answers_200_without_a_body(server_url, path):
    head, get = httpx.head(f"{server_url}{path}"), httpx.get(f"{server_url}{path}")
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("path", ["/convert/", "/inspect/", "/split/"])
def test_a_trailing_slash_is_not_redirected(server_url, path):
    upload = {"file": ("m.h5", (FIXTURES / "k2_lstm_seq" / "m.h5").read_bytes())}
    response = httpx.post(f"{server_url}{path}", files=upload, data={"target": "pytorch"}, follow_redirects=False)
    assert response.status_code == 404
    assert f"the endpoint is {path.rstrip('/')}" in response.json()["detail"]


def _form_enum(openapi: dict, path: str, field: str) -> list[str]:
    ref = openapi["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    schema = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"][field]
    return next(option["enum"] for option in [schema, *schema.get("anyOf", [])] if "enum" in option)


def test_split_offers_only_the_formats_it_can_write(client):
    openapi = client.get("/openapi.json").json()
    assert "h5" not in _form_enum(openapi, "/split", "format")
    assert "h5" in _form_enum(openapi, "/convert", "format")


# --- metrics ----------------------------------------------------------------------------


def _families(text: str) -> dict:
    parser = pytest.importorskip("prometheus_client.parser")
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def _workers(server_pid: int) -> set[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    if not children.is_file():
        pytest.skip("no /proc here")
    return {int(pid) for pid in children.read_text().split()}


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


def test_metrics_report_each_workers_process_and_the_build(two_worker_server):
    folder = two_worker_server.log.parent / "metrics"
    deadline = time.monotonic() + 30
    while len(list(folder.glob("*.json"))) < 2:  # each worker publishes once started
        assert time.monotonic() < deadline, "the second worker never published"
        time.sleep(0.05)
    families = _families(httpx.get(f"{two_worker_server.url}/metrics").text)
    # the uvicorn supervisor's children: the two workers and their HDF5 reader processes
    candidates = _workers(two_worker_server.process.pid)
    rss = {int(s.labels["pid"]): s.value for s in families["process_resident_memory_bytes"].samples}
    assert len(rss) == 2 and set(rss) <= candidates
    for pid, value in rss.items():
        assert 0.5 * _rss(pid) < value < 2 * _rss(pid)
    for family in ("process_cpu_seconds", "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        assert {int(s.labels["pid"]) for s in families[family].samples} == set(rss), family
    started = {int(s.labels["pid"]): s.value for s in families["process_start_time_seconds"].samples}
    for pid, value in started.items():
        assert time.time() - 3600 < value <= time.time()  # started during this test session
    assert all(s.value > 0 for s in families["process_open_fds"].samples)
    (build,) = families["rnnbridge_build_info"].samples
    assert build.value == 1 and build.labels["version"] == metadata.version("rnnbridge")
    assert build.labels["python"] == ".".join(map(str, sys.version_info[:3]))


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 2**20), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("2gib", 2 * 2**30), ("1.5 KiB", 1536)],
)
def test_sizes_accept_units(monkeypatch, text, expected):
    monkeypatch.setenv("RNNBRIDGE_MAX_UPLOAD_BYTES", text)
    settings = Settings()
    assert settings.max_upload_bytes == expected and type(settings.max_upload_bytes) is int


def test_serve_reports_each_invalid_setting_on_one_line():
    env = {**os.environ, "RNNBRIDGE_PORT": "eighty", "RNNBRIDGE_MAX_UPLOAD_BYTES": "lots", "RNNBRIDGE_WORKERS": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "rnnbridge", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 3, run.stderr
    assert any("RNNBRIDGE_PORT='eighty'" in line for line in lines)
    assert any("RNNBRIDGE_MAX_UPLOAD_BYTES='lots': not a size" in line and "512MiB" in line for line in lines)
    assert any("RNNBRIDGE_WORKERS='0'" in line for line in lines)


# --- form fields ------------------------------------------------------------------------

KERAS = FIXTURES / "k2_lstm_seq" / "m.h5"


@pytest.mark.parametrize(
    ("path", "field", "closest"),
    [("/convert", "fromat", "format"), ("/convert", "taget", "target"), ("/split", "layers", "layer")],
)
def test_a_misspelt_field_is_422_naming_it_and_the_closest_known_one(client, path, field, closest):
    data = {"target": "pytorch", field: "json"} if path == "/convert" else {field: ""}
    response = client.post(path, files={"file": ("m.h5", KERAS.read_bytes())}, data=data)
    body = response.json()
    assert response.status_code == 422 and body["code"] == "invalid_field" and body["field"] == field
    assert body["detail"].startswith(f"unknown field '{field}': did you mean '{closest}'?")


def test_an_unknown_field_with_nothing_close_lists_the_known_ones(client):
    response = client.post("/inspect", files={"file": ("m.h5", KERAS.read_bytes())}, data={"zzz": "1"})
    assert response.status_code == 422
    assert "did you mean" not in response.json()["detail"] and "activations, clip, direction, file, input_forget, names, reset_after, source" in response.json()["detail"]


def test_a_file_sent_as_text_says_how_to_send_the_file(client):
    # curl -F file=model.h5 (no @): a multipart text part holding the path
    response = client.post("/inspect", files={"file": (None, "model.h5")})
    assert response.status_code == 422
    assert response.json()["detail"].endswith("send the file as multipart: curl -F file=@model.h5")


@pytest.mark.parametrize(
    ("kwargs", "seen"),
    [
        ({"json": {"file": "model.h5"}}, "the body is application/json"),
        ({"data": {"file": "model.h5"}}, "the body is application/x-www-form-urlencoded"),
        ({}, "the body has no Content-Type"),
    ],
)
def test_a_body_that_is_not_multipart_says_how_to_send_the_file(client, kwargs, seen):
    response = client.post("/convert", **kwargs)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{seen}: send the file as multipart: curl -F file=@model.h5")


def test_echoed_values_are_clipped(client):
    name = "y" * 60_000
    response = client.post(
        "/convert", files={"file": ("m.h5", KERAS.read_bytes())}, data={"target": "pytorch", "layer": name}
    )
    body = response.json()
    assert response.status_code == 404 and len(response.content) < 2_000
    assert "(60000 characters)" in body["layer"] and "the file has ['lstm']" in body["detail"]


# --- download names ---------------------------------------------------------------------


def _disposition_names(header: str) -> tuple[str, str | None]:
    """``filename`` and the decoded ``filename*`` of a Content-Disposition header."""
    ascii_name = re.search(r'filename="([^"]*)"', header)[1]  # type: ignore[index]
    extended = re.search(r"filename\*=UTF-8''([!#$&+.^_`|~0-9A-Za-z%-]+)$", header)  # RFC 8187 attr-chars
    return ascii_name, unquote(extended[1], errors="strict") if extended else None


@pytest.mark.parametrize(
    ("uploads", "data", "expected"),
    [
        (["k2_lstm_seq/m.h5"], {}, "m.gates.npz"),
        (["k2_lstm_seq/m.h5"], {"target": "keras"}, "m.to-keras.npz"),
        (["k2_lstm_seq/m.h5"], {"target": "onnx", "format": "safetensors"}, "m.to-onnx.safetensors"),
        (["k2_lstm_seq/m.h5"], {"target": "keras", "format": "h5"}, "m.to-keras.weights.h5"),
        (["tf1_lstm/model.ckpt.index", "tf1_lstm/model.ckpt.data-00000-of-00001"], {"target": "pytorch"}, "model.to-pytorch.npz"),
        (["k3_lstm/m.weights.h5"], {"target": "pytorch"}, "m.to-pytorch.npz"),
    ],
)
def test_download_names_do_not_pass_for_another_kind_of_file(client, uploads, data, expected):
    files = [("file", (Path(name).name, (FIXTURES / name).read_bytes())) for name in uploads]
    response = client.post("/convert" if "target" in data else "/split", files=files, data=data)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="{expected}"'
    # Keras 3's load_weights refuses an HDF5 file whose name does not end in .weights.h5
    assert expected.endswith(".weights.h5") == (data.get("format") == "h5")
    assert not re.search(r"\.(keras|onnx|ckpt|h5|pt)\.", expected)


def test_a_non_ascii_name_is_sent_as_filename_star(client):
    upload = {"file": ("модель (v2).h5", (FIXTURES / "k2_lstm_seq" / "m.h5").read_bytes())}
    response = client.post("/convert", files=upload, data={"target": "pytorch"})
    ascii_name, utf8_name = _disposition_names(response.headers["content-disposition"])
    assert utf8_name == "модель (v2).to-pytorch.npz"
    assert ascii_name.isascii() and ascii_name.endswith(".to-pytorch.npz")


# --- a client that goes away ------------------------------------------------------------


def test_a_client_that_aborts_mid_upload_is_logged_as_such_not_as_a_400(tmp_path):
    with running_server(tmp_path, {"RNNBRIDGE_TMP_DIR": str(tmp_path)}) as server:
        port = int(server.url.rsplit(":", 1)[1])
        head = (
            "POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.h5\"\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(head + bytes(50_000))
            time.sleep(0.5)  # the server is reading the body when the client goes
        deadline = time.monotonic() + 20
        while "closed the connection during the upload" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'rnnbridge_http_requests_total{endpoint="/inspect",method="POST",status="499"} 1.0' in metrics
        assert 'status="400"' not in metrics and 'status="500"' not in metrics
        log = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
        (access,) = [line for line in log if line["logger"] == "rnnbridge.access" and line["path"] == "/inspect"]
        assert access["status"] == 499 and 50_000 <= access["bytes_in"] < 1_000_000
        assert not any(line["level"] == "error" for line in log)


# --- large downloads --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_a_large_streamed_download_carries_its_content_length(tmp_path, fmt):
    import warnings

    from rnnbridge.service import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from rnnbridge.service.routes import INLINE_BYTES

    hidden, inputs = 384, 1024  # 8.6 MB of float32 weights: over INLINE_BYTES, so streamed
    rng = np.random.default_rng(0)
    weights = {
        "weight_ih_l0": rng.standard_normal((4 * hidden, inputs), np.float32),
        "weight_hh_l0": rng.standard_normal((4 * hidden, hidden), np.float32),
    }
    assert sum(a.nbytes for a in weights.values()) > INLINE_BYTES
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    settings = Settings(tmp_dir=tmp_path, max_upload_bytes=64 << 20)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/convert",
            files={"file": ("big.npz", buffer.getvalue())},
            data={"source": "pytorch", "target": "keras", "format": fmt},
        )
    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == len(response.content)
    assert "chunked" not in response.headers.get("transfer-encoding", "")
