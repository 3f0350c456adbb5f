"""Kilobytes must not take the server down (issue 13), against a real ``rnnbridge serve``.

Every observation of the issue is replayed from a generator (``bombs``) while ``Watch``
samples the resident memory of the server's whole process tree and the answer time of
``/healthz``. Asserted: the answer is a short 4xx problem+json (never a 500, never an
echo of the input), the tree's peak memory stays within the documented bound (README,
"Hostile input and resource bounds")::

    peak <= idle + RNNBRIDGE_READ_MEMORY_BASE + (RNNBRIDGE_READ_MEMORY_FACTOR + 2) x upload + SLACK

and ``/healthz`` answers within ``HEALTH_BOUND`` (100 ms) meanwhile (``HEALTH_SHARE`` of the
probes, every one within ``HEALTH_CEILING``: the CI machine is shared). The
server runs with a 256 MiB reader base so that the bound is tight enough to mean something.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import Server, running_server
from tests.hostile import bombs
from tests.hostile.watch import HEALTH_BOUND, HEALTH_CEILING, HEALTH_SHARE, Watch, children, tree_rss

READ_MEMORY_BASE = 256 * 1024**2
READ_MEMORY_FACTOR = 4
#: the server's own memory for one request besides the arrays: buffers, the response
SLACK = 64 * 1024**2
#: no error body quotes more than this much of the input
MAX_PROBLEM_BYTES = 4096

ENV = {
    "RNNBRIDGE_MAX_UPLOAD_BYTES": str(32 * 1024**2),
    "RNNBRIDGE_READ_MEMORY_BASE": str(READ_MEMORY_BASE),
    "RNNBRIDGE_READ_MEMORY_FACTOR": str(READ_MEMORY_FACTOR),
    "RNNBRIDGE_READ_TIMEOUT": "20",
    "RNNBRIDGE_HEADER_TIMEOUT": "2",
    "RNNBRIDGE_MIN_BODY_RATE": "16384",
    "RNNBRIDGE_BODY_RATE_GRACE": "2",
    "RNNBRIDGE_MAX_UPLOADS": "8",
    "RNNBRIDGE_MAX_CONCURRENT": "1",
}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("attacked")
    with running_server(folder, {**ENV, "RNNBRIDGE_TMP_DIR": str(folder)}) as server:
        yield server


def _bound(idle: int, upload: int) -> int:
    return idle + READ_MEMORY_BASE + (READ_MEMORY_FACTOR + 2) * upload + SLACK


def _post(url: str, name: str, data: bytes, **fields: str) -> httpx.Response:
    return httpx.post(f"{url}/inspect", files={"file": (name, data)}, data=fields, timeout=60)


def _assert_responsive(watch: Watch) -> None:
    """``/healthz`` answered within 100 ms during the attack (see ``watch.HEALTH_SHARE``)."""
    assert not watch.failures, watch.failures[:3]
    assert watch.health, "no /healthz probe answered during the attack"
    slow = sorted(round(t * 1000) for t in watch.health if t >= HEALTH_BOUND)
    assert watch.responsive(), f"probes over 100 ms: {slow} of {len(watch.health)} (share {HEALTH_SHARE})"
    assert watch.slowest < HEALTH_CEILING, f"/healthz took {watch.slowest * 1000:.0f} ms during the attack"


#: what each bomb must get; json_floats is legitimate, only large: any answer but a 5xx
EXPECTED = {
    "json_unterminated_escapes": {400},
    "keras_unterminated_escapes": {400},
    "npz_meta_bomb": {413},
    "sstable_prefix_bomb": {413},
    "torch_empty_sets": {413},
    "keras_config_lists": {413},
    "onnx_empty_nodes": {413},
    "json_floats": {200, 404, 413, 422},
    "keras_zero_weights": {413},
    "pickle_echo": {400},
    "onnx_many_dims": {400},
    "safetensors_huge_empty_shape": {400},
    "json_huge_empty_shape": {400},
}


@pytest.mark.parametrize("bomb", sorted(bombs.BOMBS))
def test_a_structural_bomb_is_refused_within_the_memory_bound_and_healthz_stays_fast(attacked, bomb):
    name, data = bombs.BOMBS[bomb]()
    fields = {"source": "pytorch"} if name.endswith((".json", ".npz")) else {}
    idle = tree_rss(attacked.process.pid)
    with Watch(attacked.process.pid, attacked.url) as watch:
        response = _post(attacked.url, name, data, **fields)
    assert response.status_code in EXPECTED[bomb], response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert len(response.content) < MAX_PROBLEM_BYTES, f"a {len(response.content)}-byte error body"
    assert watch.peak_rss <= _bound(idle, len(data)), (watch.peak_rss >> 20, idle >> 20, len(data))
    _assert_responsive(watch)


def test_the_reader_is_ended_when_it_passes_its_memory_budget(tmp_path):
    """The parsers' caps keep every bomb above far below the budget; the watchdog is the
    backstop: with a budget below what a legitimate large JSON needs, the read is ended."""
    env = {**ENV, "RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_READ_MEMORY_BASE": str(96 * 1024**2)}
    env["RNNBRIDGE_READ_MEMORY_FACTOR"] = "0"
    name, data = bombs.json_floats(3_000_000)
    with running_server(tmp_path, env) as server:
        idle = tree_rss(server.process.pid)
        with Watch(server.process.pid, server.url) as watch:
            response = _post(server.url, name, data, source="pytorch")
        assert response.status_code == 413 and response.json()["code"] == "read_memory_exceeded"
        assert "RNNBRIDGE_READ_MEMORY_BASE" in response.json()["detail"]
        assert watch.peak_rss <= idle + 96 * 1024**2 + 2 * len(data) + SLACK
        _assert_responsive(watch)
        assert httpx.get(f"{server.url}/healthz").status_code == 200


# ------------------------------------------------------------- HTTP heads (observation 3)


def _raw(url: str, data: bytes, wait: float = 10.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        try:
            conn.sendall(data)
        except OSError:
            pass  # the server may close before reading everything
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: y\r\n" * 5000 + b"\r\n",
    ],
    ids=["8 MiB header", "5000 headers"],
)
def test_an_oversized_request_head_is_431(attacked, head):
    idle = tree_rss(attacked.process.pid)
    with Watch(attacked.process.pid, attacked.url) as watch:
        answer = _raw(attacked.url, head)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert watch.peak_rss <= idle + SLACK
    _assert_responsive(watch)


def test_trickled_request_heads_are_dropped_after_the_header_timeout(attacked):
    sockets = []
    host, port = attacked.url.removeprefix("http://").split(":")
    with Watch(attacked.process.pid, attacked.url) as watch:
        for _ in range(50):
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            sockets.append(conn)
        started = time.monotonic()
        answers = [conn.recv(1024) for conn in sockets]  # RNNBRIDGE_HEADER_TIMEOUT=2: 408, then closed
        waited = time.monotonic() - started
    for conn in sockets:
        conn.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:2]
    assert waited < 10  # dropped by the server, not by our socket timeout
    _assert_responsive(watch)


# ----------------------------------------------------------- slow bodies (observation 4)


class _Trickle(threading.Thread):
    """An upload sent at ``rate`` bytes a second; ``answer`` is what the server said."""

    def __init__(self, url: str, rate: int = 200) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.address, self.rate, self.answer = (host, int(port)), rate, b""

    def run(self) -> None:
        body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.h5\r\n\r\n" + b"\0" * 100_000
        head = "POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        head += f"Content-Length: {len(body) + 8}\r\n\r\n"
        with socket.create_connection(self.address, timeout=30) as conn:
            conn.sendall(head.encode())
            conn.settimeout(1.0 / (self.rate / 50))
            for start in range(0, len(body), 50):
                try:
                    conn.sendall(body[start : start + 50])
                    self.answer += conn.recv(4096)
                    break
                except TimeoutError:
                    continue  # nothing to read yet: send the next bytes
                except OSError:
                    break
            conn.settimeout(5)
            try:
                while chunk := conn.recv(4096):
                    self.answer += chunk
            except OSError:
                pass


def test_slow_bodies_hold_no_conversion_slot_and_are_dropped(attacked, keras_lstm):
    slow = [_Trickle(attacked.url) for _ in range(2)]
    for client in slow:
        client.start()
    time.sleep(0.5)  # both are sending their bodies
    response = httpx.post(
        f"{attacked.url}/convert", files={"file": ("m.h5", keras_lstm.read_bytes())}, data={"target": "pytorch"}
    )
    assert response.status_code == 200  # the one conversion slot was free
    for client in slow:
        client.join(timeout=30)
    for client in slow:
        assert client.answer.startswith(b"HTTP/1.1 408 ") and b"body_too_slow" in client.answer


# -------------------------------------------------------------------------- shutdown


def test_sigterm_stops_the_server_within_the_shutdown_timeout_during_an_attack(tmp_path):
    env = {**ENV, "RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_SHUTDOWN_TIMEOUT": "2"}
    name, data = bombs.json_floats(3_000_000)
    with running_server(tmp_path, env) as server:
        attack = threading.Thread(target=_ignore_errors, args=(_post, server.url, name, data), daemon=True)
        attack.start()
        deadline = time.monotonic() + 30
        while not any(tmp_path.glob("rnnbridge-read-*")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the read is under way
        readers = children(server.process.pid)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(timeout=30)
        stopped = time.monotonic() - started
    assert status == 0 and stopped < 2 + 3, f"stopped after {stopped:.1f} s"
    time.sleep(0.5)
    assert not [pid for pid in readers if Path(f"/proc/{pid}").exists()], "a reader outlived the server"


def _ignore_errors(function: Any, *args: Any) -> None:
    try:
        function(*args)
    except httpx.HTTPError:
        pass


# --------------------------------------------------------------- smaller (observation 7)


def test_text_logs_escape_control_characters(tmp_path):
    env = {"RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_LOG_FORMAT": "text"}
    with running_server(tmp_path, env) as server:
        httpx.get(f"{server.url}/x%0d%0a2026-01-01 00:00:00,000 INFO rnnbridge.access [-] forged%1b[31m")
        httpx.get(f"{server.url}/healthz")
    lines = server.log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")], "a forged log line"
    assert any("\\r\\n2026-01-01" in line and "\\x1b[31m" in line for line in lines)


def test_readyz_reports_a_spool_without_room(tmp_path):
    env = {"RNNBRIDGE_TMP_DIR": str(tmp_path), "RNNBRIDGE_SPOOL_MIN_FREE": str(2**62)}
    with running_server(tmp_path, env) as server:
        response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 503 and "RNNBRIDGE_SPOOL_MIN_FREE" in response.json()["detail"]


def test_a_full_spool_is_507_with_a_log_line(client, keras_lstm, monkeypatch, caplog):
    """A real full disk cannot be made in a test: the spool's write fails as it would (ENOSPC)."""
    from rnnbridge.service import forms

    def full(stream: Any, data: bytearray, last: bool) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(forms, "_append", full)
    response = client.post("/inspect", files={"file": ("m.h5", keras_lstm.read_bytes())})
    assert response.status_code == 507 and response.json()["code"] == "insufficient_storage"
    assert "retry-after" in response.headers
    assert any("spool directory is full" in r.getMessage() for r in caplog.records)


def test_output_names_drop_bidi_controls_and_characters_unsafe_in_file_names(attacked):
    name, data = bombs.npz_named_lstm("ev\u202eil:<x>")
    response = httpx.post(f"{attacked.url}/split", files={"file": (name, data)}, data={"source": "pytorch"})
    assert response.status_code == 200, response.text[:300]
    names = np.load(io.BytesIO(response.content), allow_pickle=False).files
    assert names and not [n for n in names if set(n) & set('\u202e:<>"|?*')]


@pytest.mark.parametrize("dtype", ["int64", "uint64", "bool", "int8"])
def test_integer_and_bool_weights_are_refused(attacked, dtype):
    name, data = bombs.npz_integer_lstm(dtype)
    response = httpx.post(
        f"{attacked.url}/convert", files={"file": (name, data)}, data={"source": "pytorch", "target": "keras"}
    )
    assert response.status_code == 422 and response.json()["code"] == "non_float_weights"
    assert dtype in response.json()["detail"]


# ------------------------------------------------------------------- authentication


KEYS = "first-key-0123456789abcdef,second-key-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("guarded")
    with running_server(folder, {"RNNBRIDGE_TMP_DIR": str(folder), "RNNBRIDGE_API_KEYS": KEYS}) as server:
        yield server


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-key-0123456789abcdef"}, 401),
        ({"Authorization": "Basic Zmlyc3Qta2V5"}, 401),
        ({"Authorization": "Bearer first-key-0123456789abcdef"}, 200),
        ({"X-API-Key": "second-key-0123456789abcdef"}, 200),
    ],
)
def test_api_keys_guard_the_endpoints(guarded, keras_lstm, headers, status):
    response = httpx.post(f"{guarded.url}/inspect", files={"file": ("m.h5", keras_lstm.read_bytes())}, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "unauthorized" and response.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{guarded.url}/conventions", headers=headers).status_code == status


def test_probes_and_metrics_need_no_key_and_keys_are_never_logged(guarded):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 200
    httpx.get(f"{guarded.url}/conventions", headers={"Authorization": "Bearer first-key-0123456789abcdef"})
    httpx.get(f"{guarded.url}/conventions", headers={"X-API-Key": "not-a-key-but-secret-looking"})
    log = guarded.log.read_text()
    assert "first-key" not in log and "second-key" not in log and "not-a-key" not in log


def test_the_web_page_and_its_assets_need_no_key_the_api_does(guarded):
    """A browser opens the page without a header; the page then sends the key itself."""
    page = httpx.get(f"{guarded.url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    script = httpx.get(f"{guarded.url}/static/page/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert httpx.post(f"{guarded.url}/inspect").status_code == 401
    for path in ("/explain", "/run", "/init"):
        assert httpx.post(f"{guarded.url}{path}").status_code == 401
    # "/" exempts the page only, not every path under it
    assert httpx.get(f"{guarded.url}/conventions").status_code == 401
    assert httpx.get(f"{guarded.url}/openapi.json").status_code == 401


# ------------------------------------------------- valid uploads: the same memory bound


def _torch_state(hidden: int = 512, inputs: int = 512) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        "lstm.weight_ih_l0": (4 * hidden, inputs),
        "lstm.weight_hh_l0": (4 * hidden, hidden),
        "lstm.bias_ih_l0": (4 * hidden,),
        "lstm.bias_hh_l0": (4 * hidden,),
    }
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def _valid_npz() -> tuple[str, bytes]:
    buffer = io.BytesIO()
    np.savez(buffer, **_torch_state())
    return "lstm.npz", buffer.getvalue()


def _valid_safetensors() -> tuple[str, bytes]:
    from tests.hostile.make_corpus import safetensors_bytes

    return "lstm.safetensors", safetensors_bytes(_torch_state())


def _valid_json() -> tuple[str, bytes]:
    state = _torch_state(hidden=128, inputs=128)
    arrays = {k: {"dtype": "float32", "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in state.items()}
    return "lstm.json", json.dumps({"arrays": arrays}).encode()


@pytest.mark.parametrize("make", [_valid_npz, _valid_safetensors, _valid_json], ids=["npz", "safetensors", "json"])
def test_a_valid_conversion_stays_within_the_memory_bound(attacked, make):
    name, data = make()
    fields = {"target": "keras", "source": "pytorch"} if not name.endswith(".safetensors") else {"target": "keras"}
    idle = tree_rss(attacked.process.pid)
    with Watch(attacked.process.pid, attacked.url) as watch:
        response = httpx.post(f"{attacked.url}/convert", files={"file": (name, data)}, data=fields, timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert watch.peak_rss <= _bound(idle, len(data)), (watch.peak_rss >> 20, idle >> 20, len(data) >> 20)
    _assert_responsive(watch)


@pytest.mark.parametrize(
    "headers, said",
    [(b"X-Pad: " + b"a" * 100_000 + b"\r\n", "Maximum header size"), (b"X-Pad: a\r\n" * 40, "Maximum header count")],
    ids=["100 KB part header", "40 part headers"],
)
def test_a_part_head_over_its_bounds_is_400(attacked, headers, said):
    """python-multipart bounds a part's header lines and their count; the bounds hold here."""
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.h5\r\n" + headers
    body += b"\r\ndata\r\n--b--\r\n"
    response = httpx.post(
        f"{attacked.url}/inspect", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400 and said in response.json()["detail"]
