"""Load test: many concurrent clients mixing valid conversions and hostile uploads.

    python -m bench.load_test                       # 32 clients, 60 s, loopback only
    python -m bench.load_test --clients 8 --seconds 10

Starts the real service (``python -m rnnbridge serve``) on a free 127.0.0.1 port with its
own spool folder and a 1 MiB upload limit, then runs ``--clients`` threads for
``--seconds`` (and at most ``--max-requests`` requests in all). Each request is, in turn,
a valid ``/convert`` of a real fixture (checked: 200 and the expected arrays), a hostile
corpus file (checked: the expected status), an oversized body (413), or a client that
disconnects in the middle of its upload. A 503 (the service shedding load beyond
``RNNBRIDGE_MAX_CONCURRENT``) is expected and counted; the client backs off 0.1 s. Prints: requests, answers by status, unexpected
answers, p50/p99 latency, the server's peak RSS (``VmHWM``) and RSS before/after, its
open file descriptors before/after, and files left in the spool before/after.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ would come first on sys.path and bench/http.py hide the stdlib's
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hostile import make_corpus  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"
UPLOAD_LIMIT = 1 << 20
VALID = [
    (FIXTURES / "k2_lstm_seq" / "m.h5", "pytorch"),
    (FIXTURES / "torch_lstm_2l_bi" / "model.safetensors", "keras"),
    (FIXTURES / "onnx_gru_lbr1" / "model.onnx", "pytorch"),
    (FIXTURES / "k3_gru_reset_after" / "m.keras", "onnx"),
]
HOSTILE = {  # corpus entry -> expected status
    "h5_external_link.h5": 400, "h5_chunk_bomb.h5": 400, "h5_declared_bomb.h5": 413, "torch_reduce.pt": 400,
    "npz_bomb.npz": 413, "zip_bomb.zip": 413, "tar_gz_bomb.tar.gz": 413, "tar_gz_pax_bomb.tar.gz": 413,
    "zip_dotdot.zip": 400, "json_deep.json": 400, "onnx_external_absolute": 400, "tf_huge_shape": 413,
}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    requests: int = 0

    def add(self, kind: str, status: str, expected: bool, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            self.latencies.append(seconds)
            if not expected:
                self.unexpected[f"{kind}: {status}"] += 1


# ------------------------------------------------------------------------ the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(spool: Path, markers: Path, concurrent: int | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "RNNBRIDGE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "RNNBRIDGE_TMP_DIR": str(spool),
           "RNNBRIDGE_LOG_LEVEL": "warning"}
    if concurrent is not None:
        env["RNNBRIDGE_MAX_CONCURRENT"] = str(concurrent)
    command = [sys.executable, "-m", "rnnbridge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = open(markers.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not start; see {log.name}")


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (kB) and the open descriptors of process ``pid``."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


def leftovers(spool: Path) -> int:
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(spool))


# ------------------------------------------------------------------------ the clients


def valid_request(http: httpx.Client, url: str, rng: random.Random) -> tuple[str, bool]:
    path, target = rng.choice(VALID)
    response = http.post(f"{url}/convert", files={"file": (path.name, path.read_bytes())}, data={"target": target})
    ok = response.status_code == 200 and response.content[:2] == b"PK"
    return str(response.status_code), ok


def hostile_uploads(markers: Path) -> dict[str, list[tuple[str, tuple[str, bytes]]]]:
    """The ``HOSTILE`` corpus entries, built once, pointing into ``markers``."""
    entries = {e.name: e for e in make_corpus.ENTRIES}
    return {
        name: [("file", (n, data)) for n, data in make_corpus.build(entries[name], markers).items()] for name in HOSTILE
    }


def hostile_request(http: httpx.Client, url: str, rng: random.Random, uploads: dict) -> tuple[str, bool]:
    name = rng.choice(sorted(HOSTILE))
    response = http.post(f"{url}/convert", files=uploads[name], data={"target": "keras"})
    return str(response.status_code), response.status_code == HOSTILE[name]


def oversized_request(http: httpx.Client, url: str) -> tuple[str, bool]:
    response = http.post(f"{url}/inspect", files={"file": ("big.bin", b"\0" * (UPLOAD_LIMIT + 1))})
    return str(response.status_code), response.status_code == 413


def disconnecting_request(url: str) -> tuple[str, bool]:
    """Declare a 512 KiB multipart body, send half of it, and hang up."""
    host, port = url.removeprefix("http://").split(":")
    boundary = "rnnbridge-load-test"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.h5"\r\n\r\n'.encode()
    length = 512 * 1024
    request = (
        f"POST /convert HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request + head + b"\x89HDF\r\n\x1a\n" + b"\0" * (length // 2))
    return "disconnect", True


def client_loop(url: str, deadline: float, budget: list[int], tally: Tally, uploads: dict, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(timeout=120) as http:
        while time.monotonic() < deadline:
            with tally.lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            kind = rng.choices(["valid", "hostile", "oversized", "disconnect"], weights=[10, 8, 1, 1])[0]
            start = time.perf_counter()
            try:
                if kind == "valid":
                    status, ok = valid_request(http, url, rng)
                elif kind == "hostile":
                    status, ok = hostile_request(http, url, rng, uploads)
                elif kind == "oversized":
                    status, ok = oversized_request(http, url)
                else:
                    status, ok = disconnecting_request(url)
            except httpx.HTTPError as exc:
                status, ok = type(exc).__name__, False
            if status == "503":  # load shedding (``overloaded``, documented): back off, as Retry-After asks
                ok = True
                time.sleep(0.1)
            tally.add(kind, status, ok, time.perf_counter() - start)


# ------------------------------------------------------------------------ report


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def settle(spool: Path, seconds: float = 10.0) -> None:
    """Wait (bounded) for the server to finish requests whose clients hung up."""
    deadline = time.monotonic() + seconds
    while leftovers(spool) and time.monotonic() < deadline:
        time.sleep(0.2)


def run(clients: int, seconds: float, max_requests: int, concurrent: int | None) -> int:
    with tempfile.TemporaryDirectory(prefix="rnnbridge-load-") as folder:
        spool, markers = Path(folder) / "spool", Path(folder) / "markers"
        spool.mkdir()
        marker_files = make_corpus.write_markers(markers)
        uploads = hostile_uploads(markers)
        process, url = start_server(spool, markers, concurrent)
        try:
            before = proc_status(process.pid) | {"spool": leftovers(spool)}
            tally, budget = Tally(), [max_requests]
            deadline = time.monotonic() + seconds
            threads = [
                threading.Thread(target=client_loop, args=(url, deadline, budget, tally, uploads, i)) for i in range(clients)
            ]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            settle(spool)
            after = proc_status(process.pid) | {"spool": leftovers(spool)}
            markers_intact = {p.name: p.read_bytes() for p in sorted(markers.iterdir())} == marker_files
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=10)
    report(tally, clients, elapsed, before, after, markers_intact, alive)
    return 0 if not tally.unexpected and markers_intact and alive and after["spool"] == 0 else 1


def report(tally: Tally, clients: int, elapsed: float, before: dict, after: dict, markers_intact: bool, alive: bool) -> None:
    print(f"clients {clients}, {elapsed:.1f} s, requests {tally.requests} ({tally.requests / elapsed:.1f}/s)")
    print("answers: " + ", ".join(f"{k}={v}" for k, v in sorted(tally.statuses.items())))
    print("unexpected: " + (", ".join(f"{k} x{v}" for k, v in tally.unexpected.items()) or "none"))
    print(f"latency p50 {percentile(tally.latencies, 0.5) * 1000:.0f} ms, p99 {percentile(tally.latencies, 0.99) * 1000:.0f} ms")
    print(f"server RSS before {before['VmRSS'] / 1024:.0f} MiB, after {after['VmRSS'] / 1024:.0f} MiB, "
          f"peak {after['VmHWM'] / 1024:.0f} MiB")
    print(f"server open fds before {before['fds']}, after {after['fds']}")
    print(f"spool entries before {before['spool']}, after {after['spool']}")
    print(f"markers intact: {markers_intact}; server alive: {alive}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--max-concurrent", type=int, help="RNNBRIDGE_MAX_CONCURRENT of the server (default: its own)")
    args = parser.parse_args(argv)
    return run(args.clients, args.seconds, args.max_requests, args.max_concurrent)


if __name__ == "__main__":
    sys.exit(main())
