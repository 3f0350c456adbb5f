"""Operating the real server: request ids, metrics (one worker and two), readiness,
admission control (503 + Retry-After), the body deadline (408), graceful shutdown, the
offline docs, and a problem+json body for every error status a client can provoke.

Requests that must stay in flight are held deterministically, without sleeps: a raw
socket sends the headers and part of the body and sends the rest only when the test says
so (``HeldUpload``).
"""

from __future__ import annotations

import http.client
import io
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from rnnbridge.schemas import Problem
from tests.conftest import TEST_UPLOAD_LIMIT, running_server

PROBLEM_JSON = "application/problem+json"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


class HeldUpload:
    """A multipart POST sent over a raw socket in two halves: ``finish()`` sends the rest."""

    BOUNDARY = "heldheldheld"

    def __init__(self, url: str, path: str, upload: Path, **fields: str) -> None:
        parts = [
            f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ]
        head = f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{upload.name}"\r\n\r\n'
        body = b"".join(parts) + head.encode() + upload.read_bytes() + f"\r\n--{self.BOUNDARY}--\r\n".encode()
        netloc = urlsplit(url)
        self.socket = socket.create_connection((netloc.hostname, netloc.port), timeout=60)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {netloc.netloc}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={self.BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        half = len(body) // 2
        self.socket.sendall(request.encode() + body[:half])
        self.rest = body[half:]

    def finish(self, send_rest: bool = True) -> tuple[int, dict[str, str], bytes]:
        """Send the rest of the body (or not) and read the whole response."""
        if send_rest:
            self.socket.sendall(self.rest)
        response = http.client.HTTPResponse(self.socket)
        response.begin()
        body = response.read()
        self.socket.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _poll(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never true: {what}")
        time.sleep(0.02)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse the exposition format strictly enough: every non-comment line is a sample."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def _value(text: str, name: str, **labels: str) -> float:
    wanted = frozenset(labels.items())
    return sum(v for (n, ls), v in _samples(text).items() if n == name and wanted <= ls)


def _metric(url: str, name: str, **labels: str) -> float:
    return _value(httpx.get(f"{url}/metrics").text, name, **labels)


def _problem(status: int, headers: Any, body: bytes | dict[str, Any], code: str) -> dict[str, Any]:
    assert headers["content-type"] == PROBLEM_JSON
    document = body if isinstance(body, dict) else httpx.Response(200, content=body).json()
    Problem.model_validate(document)
    assert (document["status"], document["code"]) == (status, code)
    assert document["type"] == f"urn:rnnbridge:problem:{code}" and document["title"] and document["detail"]
    return document


# --- request ids and logs -------------------------------------------------------------


def test_the_request_id_is_echoed_or_made(server_url):
    assert httpx.get(f"{server_url}/healthz", headers={"X-Request-ID": "lb-42.a"}).headers["x-request-id"] == "lb-42.a"
    made = {httpx.get(f"{server_url}/healthz").headers["x-request-id"] for _ in range(2)}
    assert len(made) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", ident) for ident in made)
    unsafe = httpx.get(f"{server_url}/healthz", headers={"X-Request-ID": "x" * 200}).headers["x-request-id"]
    assert unsafe != "x" * 200


def test_an_error_carries_the_request_id_too(server_url):
    response = httpx.get(f"{server_url}/nowhere", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 404 and response.headers["x-request-id"] == "trace-me"


# --- metrics ---------------------------------------------------------------------------


def test_metrics_count_requests_bytes_latency_and_conversions(server_url, keras_lstm):
    before = httpx.get(f"{server_url}/metrics").text
    files = {"file": (keras_lstm.name, keras_lstm.read_bytes())}
    converted = httpx.post(f"{server_url}/convert", files=files, data={"target": "pytorch"}, timeout=60)
    assert converted.status_code == 200
    refused = httpx.post(f"{server_url}/convert", files=files, data={"target": "caffe"}, timeout=60)
    assert refused.status_code == 422
    after = httpx.get(f"{server_url}/metrics").text

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    endpoint = {"endpoint": "/convert"}
    assert moved("rnnbridge_http_requests_total", **endpoint, status="200", method="POST") == 1
    assert moved("rnnbridge_http_requests_total", **endpoint, status="422") == 1
    assert moved("rnnbridge_http_request_duration_seconds_count", **endpoint) == 2
    assert moved("rnnbridge_http_request_duration_seconds_bucket", **endpoint, le="+Inf") == 2
    assert moved("rnnbridge_http_request_bytes_total", **endpoint) >= 2 * keras_lstm.stat().st_size
    assert moved("rnnbridge_http_response_bytes_total", **endpoint) >= len(converted.content)
    assert moved("rnnbridge_conversions_total", source="keras", target="pytorch") == 1
    assert moved("rnnbridge_http_requests_total", endpoint="/metrics", status="200") == 1


def test_metrics_are_valid_prometheus_text(server_url):
    response = httpx.get(f"{server_url}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    samples = _samples(text)
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    assert declared["rnnbridge_http_request_duration_seconds"] == "histogram"
    for name, _ in samples:
        assert name in declared or name.rsplit("_", 1)[0] in declared, name
    buckets = sorted(
        (float(dict(ls)["le"]), v)
        for (n, ls), v in samples.items()
        if n == "rnnbridge_http_request_duration_seconds_bucket" and ("endpoint", "/healthz") in ls
    )
    assert buckets[-1][0] == float("inf") and [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_metrics_parse_with_the_reference_parser(server_url):
    parser = pytest.importorskip("prometheus_client.parser")
    httpx.get(f"{server_url}/healthz")
    families = {f.name: f for f in parser.text_string_to_metric_families(httpx.get(f"{server_url}/metrics").text)}
    assert families["rnnbridge_http_request_duration_seconds"].type == "histogram"
    assert families["rnnbridge_http_requests"].type == "counter"  # the parser drops _total
    assert any(s.labels.get("endpoint") == "/healthz" for s in families["rnnbridge_http_requests"].samples)


def test_metrics_add_up_across_two_workers(two_worker_server):
    """Each worker counts its own requests; every scrape, whichever worker answers it,
    reports the sum."""
    url, folder = two_worker_server.url, two_worker_server.log.parent / "metrics"
    _poll(lambda: len(list(folder.glob("*.json"))) == 2, "both workers published")

    def served_by_each() -> list[int]:
        counts = []
        for snapshot in folder.glob("*.json"):
            rows = httpx.Response(200, content=snapshot.read_bytes()).json()
            counts.append(
                sum(v for n, ls, v in rows if n == "rnnbridge_http_requests_total" and ["endpoint", "/healthz"] in ls)
            )
        return counts

    sent = 0
    while min(served_by_each()) == 0:  # new connections until the kernel gave both workers some
        assert sent < 400, "one worker took every connection"
        with httpx.Client() as fresh:
            assert fresh.get(f"{url}/healthz").status_code == 200
        sent += 1
    for _ in range(6):
        with httpx.Client() as fresh:
            assert (
                _value(fresh.get(f"{url}/metrics").text, "rnnbridge_http_requests_total", endpoint="/healthz")
                == sent + 1
            )


# --- readiness, admission, deadlines, shutdown ----------------------------------------


def test_readiness(server_url):
    response = httpx.get(f"{server_url}/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_not_ready_without_a_writable_spool_directory(client, test_settings):
    test_settings.tmp_dir.rmdir()
    response = client.get("/readyz")
    body = _problem(503, response.headers, response.json(), "not_ready")
    assert str(test_settings.tmp_dir) in body["detail"] and response.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200  # alive all the same


def test_beyond_max_uploads_is_503_with_retry_after(server_url, keras_lstm, server_spool):
    # the test server: 1 conversion, no line, so 1 upload at a time (RNNBRIDGE_MAX_UPLOADS's default)
    held = HeldUpload(server_url, "/convert", keras_lstm, target="pytorch")
    try:
        _poll(lambda: _metric(server_url, "rnnbridge_http_requests_in_flight", endpoint="/convert") == 1, "in flight")
        assert httpx.get(f"{server_url}/healthz").status_code == 200  # the event loop is free
        refused = httpx.post(f"{server_url}/split", files={"file": ("m.h5", keras_lstm.read_bytes())})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
        body = _problem(503, refused.headers, refused.json(), "overloaded")
        assert "RNNBRIDGE_MAX_UPLOADS" in body["detail"] and "RNNBRIDGE_MAX_CONCURRENT" in body["detail"]
    finally:
        status, _, content = held.finish()
    assert status == 200, content[:500]
    with np.load(io.BytesIO(content), allow_pickle=False) as archive:
        assert "lstm.weight_ih_l0" in archive.files
    assert list(server_spool.iterdir()) == []


class SlowRead:
    """A request whose whole body is sent at once and whose file takes seconds to read
    (3 million JSON numbers), so that it holds its conversion slot meanwhile."""

    def __init__(self, url: str) -> None:
        body = b'{"w": [' + b"0.5," * 2_999_999 + b"0.5]}"
        self._pool = ThreadPoolExecutor(1)
        self._future = self._pool.submit(
            httpx.post, f"{url}/inspect", files={"file": ("w.json", body)}, data={"source": "pytorch"}, timeout=120
        )

    def finish(self) -> httpx.Response:
        try:
            return self._future.result()
        finally:
            self._pool.shutdown()


@pytest.fixture
def one_slot_server(tmp_path: Path) -> Iterator[Any]:
    env = {
        "RNNBRIDGE_TMP_DIR": str(tmp_path),
        "RNNBRIDGE_MAX_CONCURRENT": "1",
        "RNNBRIDGE_MAX_QUEUED": "1",
        "RNNBRIDGE_QUEUE_TIMEOUT": "60",
    }
    with running_server(tmp_path, env) as server:
        yield server


def test_over_max_concurrent_requests_wait_in_line_with_their_body_in(one_slot_server, keras_lstm, tmp_path):
    url = one_slot_server.url
    converting = SlowRead(url)
    _poll(lambda: any(tmp_path.glob("rnnbridge-read-*")), "the slow read began")  # it holds the slot
    uploading = HeldUpload(url, "/split", keras_lstm)  # half a body: an upload place, not a slot
    waiting = HeldUpload(url, "/split", keras_lstm)
    waiting.socket.sendall(waiting.rest)  # its whole body is in: it waits in line for the slot
    _poll(lambda: _metric(url, "rnnbridge_http_requests_waiting") == 1, "waiting")
    uploading.socket.sendall(uploading.rest)  # the line is full: refused once its body is in
    status, headers, body = uploading.finish(send_rest=False)
    problem = _problem(503, headers, body, "overloaded")
    assert "RNNBRIDGE_MAX_QUEUED" in problem["detail"]
    assert converting.finish().status_code in (200, 404, 422)  # whatever it found, it read the file
    status, _, content = waiting.finish(send_rest=False)  # its turn came when the slot was free
    assert status == 200 and "lstm/l0/forward/W_xi" in np.load(io.BytesIO(content)).files
    assert _metric(url, "rnnbridge_http_requests_waiting") == 0


def test_a_request_waits_in_line_at_most_queue_timeout(tmp_path, keras_lstm):
    env = {"RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_MAX_CONCURRENT": "1", "RNNBRIDGE_QUEUE_TIMEOUT": "0.5"}
    with running_server(tmp_path, env) as server:
        converting = SlowRead(server.url)
        _poll(lambda: any(tmp_path.glob("rnnbridge-read-*")), "the slow read began")  # it holds the slot
        refused = httpx.post(f"{server.url}/split", files={"file": ("m.h5", keras_lstm.read_bytes())}, timeout=30)
        _problem(503, refused.headers, refused.json(), "overloaded")
        assert refused.headers["retry-after"] == "5"
        assert converting.finish().status_code in (200, 404, 422)
        assert _metric(server.url, "rnnbridge_http_requests_waiting") == 0


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[Any]:
    env = {"RNNBRIDGE_REQUEST_TIMEOUT": "1", "RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_SHUTDOWN_TIMEOUT": "60"}
    with running_server(tmp_path, env) as server:
        yield server


def test_a_body_that_does_not_arrive_in_time_is_408(impatient_server, keras_lstm):
    held = HeldUpload(impatient_server.url, "/split", keras_lstm)
    _, headers, body = held.finish(send_rest=False)  # the server answers on its own
    _problem(408, headers, body, "request_timeout")
    assert [p.name for p in impatient_server.log.parent.iterdir()] == ["server.log"]


def test_sigterm_lets_the_request_in_flight_finish(tmp_path, keras_lstm):
    env = {"RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_SHUTDOWN_TIMEOUT": "60"}
    with running_server(tmp_path, env) as server:
        held = HeldUpload(server.url, "/split", keras_lstm)
        _poll(lambda: _metric(server.url, "rnnbridge_http_requests_in_flight", endpoint="/split") == 1, "in flight")
        server.process.send_signal(signal.SIGTERM)
        _poll(lambda: b"Shutting down" in server.log.read_bytes(), "shutdown began")
        with pytest.raises(httpx.TransportError):  # no new connections
            httpx.get(f"{server.url}/healthz")
        status, _, body = held.finish()
        assert status == 200 and body[:2] == b"PK"
        assert server.process.wait(timeout=30) == 0
    log = server.log.read_text()
    assert '"message": "rnnbridge shut down"' in log and '"request_id"' in log


# --- docs -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_other_host(server_url, page):
    response = httpx.get(f"{server_url}{page}")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert not re.search(r"(https?:)?//[a-z0-9]", html, re.IGNORECASE), re.findall(r"\S*//\S+", html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/static/") for asset in assets)
    for asset in assets:
        served = httpx.get(f"{server_url}{asset}")
        assert served.status_code == 200 and len(served.content) > 500, asset


def test_openapi_lists_every_error_of_every_endpoint(server_url):
    paths = httpx.get(f"{server_url}/openapi.json").json()["paths"]
    assert {"/readyz", "/metrics"} <= set(paths)
    for path, operations in paths.items():
        for operation in operations.values():
            errors = {int(s): r for s, r in operation["responses"].items() if s[0] in "45"}
            assert 500 in errors, path
            for response in errors.values():
                assert list(response["content"]) == [PROBLEM_JSON], path
    for path in ("/inspect", "/split", "/convert"):
        statuses = set(map(int, paths[path]["post"]["responses"]))
        assert {400, 408, 413, 415, 422, 500, 503} <= statuses, path
        assert "Retry-After" in paths[path]["post"]["responses"]["503"]["headers"]
    assert "not_ready" in paths["/readyz"]["get"]["responses"]["503"]["description"]


# --- problem+json for every status a client can provoke -------------------------------


def _post(url: str, path: str, content: bytes, **data: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", files={"file": ("m.h5", content)}, data=data, timeout=60)


@pytest.mark.parametrize(
    ("status", "code", "send"),
    [
        (
            400,
            "bad_request",
            lambda url, _: httpx.post(
                f"{url}/split", content=b"--x\r\nnope", headers={"Content-Type": "multipart/form-data; boundary=x"}
            ),
        ),
        (400, "malformed_file", lambda url, h5: _post(url, "/inspect", h5[: len(h5) // 2])),
        (404, "layer_not_found", lambda url, h5: _post(url, "/split", h5, layer="decoder")),
        (404, "not_found", lambda url, _: httpx.get(f"{url}/nowhere")),
        (405, "method_not_allowed", lambda url, _: httpx.get(f"{url}/convert")),
        (413, "limit_exceeded", lambda url, _: _post(url, "/split", bytes(TEST_UPLOAD_LIMIT + 1))),
        (415, "unsupported_format", lambda url, _: _post(url, "/split", b"garbage" * 64)),
        (422, "invalid_field", lambda url, h5: _post(url, "/convert", h5, target="caffe")),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_error_status_is_problem_json(server_url, keras_lstm, status, code, send):
    response = send(server_url, keras_lstm.read_bytes())
    assert response.status_code == status, response.text
    _problem(status, response.headers, response.json(), code)


# --- streaming and threads ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["npz", "safetensors", "json", "h5"])
def test_every_output_format_comes_out_whole(server_url, keras_lstm, fmt):
    response = _post(server_url, "/convert", keras_lstm.read_bytes(), target="keras", format=fmt)
    assert response.status_code == 200, response.text
    assert len(response.content) > 1000
    if fmt == "safetensors":
        header = int.from_bytes(response.content[:8], "little")
        assert len(response.content) > 8 + header and b'"__metadata__"' in response.content[8 : 8 + header]
    if fmt == "h5":
        assert int(response.headers["content-length"]) == len(response.content)


def test_parallel_hdf5_conversions_agree(tmp_path, fixtures_dir):
    """Several HDF5 files read and written at once, each in its own worker thread."""
    env = {"RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_MAX_CONCURRENT": "8"}
    uploads = [fixtures_dir / "k2_lstm_seq" / "m.h5", fixtures_dir / "k2_gru_reset_before" / "m.h5"] * 3
    with running_server(tmp_path, env) as server:

        def convert(path: Path) -> bytes:
            response = _post(server.url, "/convert", path.read_bytes(), target="keras", format="h5")
            assert response.status_code == 200, response.text
            return response.content

        with ThreadPoolExecutor(6) as pool:
            outputs = list(pool.map(convert, uploads))
    assert outputs[0::2] == [outputs[0]] * 3 and outputs[1::2] == [outputs[1]] * 3
