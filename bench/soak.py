"""A bounded soak of the real server: N minutes of mixed valid, hostile and disconnecting
traffic from a few clients on loopback, with the server's resources sampled throughout.

    python -m bench.soak                       # 10 minutes, 4 clients
    python -m bench.soak --minutes 1 --clients 2

It starts ``python -m rnnbridge serve`` (defaults, a 64 MiB upload limit, a private spool
directory) and runs ``--clients`` threads until the time is up. Each request is drawn from:

* valid (50 %): ``/convert`` (Keras -> PyTorch, verified), ``/split`` and ``/inspect`` of a
  ~1 MB Keras file (``bench.small.keras_file``);
* hostile (30 %): one of the structural bombs of issue 13 (``tests/hostile/bombs.py`` at the
  sizes of ``tests/fuzz/harness.BOMB_SIZES``);
* disconnecting (20 %): a client that sends its head and part of a body and hangs up, one
  that trickles its head and hangs up, and one that leaves a connection open silent.

Every 2 seconds it samples the server's process tree: resident memory (server and reader
processes), open file descriptors, threads, reader processes, and entries left in the spool
directory. At the end (after the clients stop and a few seconds of quiet) it prints those
at start, peak and end, and the answers by kind and status; it exits 1 if the server gave
a 5xx, stopped answering, or left spool entries behind. It stops by itself; loopback only.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.small import keras_file  # noqa: E402
from tests.fuzz.harness import BOMB_SIZES  # noqa: E402
from tests.hostile import bombs  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for tasks in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(k) for k in tasks.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample(pid: int, spool: Path) -> dict[str, int]:
    """The server tree's resources now."""
    readers = _descendants(pid)
    tree = [pid, *readers]
    return {
        "rss_mib": sum(_status(p, "VmRSS") for p in tree) // 1024,
        "server_rss_mib": _status(pid, "VmRSS") // 1024,
        "fds": sum(_fds(p) for p in tree),
        "threads": sum(_status(p, "Threads") for p in tree),
        "readers": len(readers),
        "spool_entries": len(os.listdir(spool)),
    }


class Soak:
    def __init__(self, url: str, valid: Path, deadline: float, seed: int) -> None:
        self.url, self.deadline = url, deadline
        self.valid = valid.read_bytes()
        self.bombs = {name: bombs.BOMBS[name](**sizes) for name, sizes in BOMB_SIZES.items()}
        self.answers: Counter[tuple[str, str]] = Counter()
        self.server_errors: list[str] = []
        self.seed = seed
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))

    def client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while time.monotonic() < self.deadline:
                draw = rng.random()
                try:
                    if draw < 0.5:
                        kind, status = self._valid(http, rng)
                    elif draw < 0.8:
                        kind, status = self._hostile(http, rng)
                    else:
                        kind, status = self._disconnect(rng)
                except (httpx.HTTPError, OSError) as exc:
                    kind, status = "transport", type(exc).__name__
                self.answers[(kind, str(status))] += 1
                if str(status).startswith("5") and status != 503:
                    self.server_errors.append(f"{kind} {status}")

    def _valid(self, http: httpx.Client, rng: random.Random) -> tuple[str, int]:
        path, fields = rng.choice([("/convert", {"target": "pytorch"}), ("/split", {}), ("/inspect", {})])
        response = http.post(path, files={"file": ("lstm.weights.h5", self.valid)}, data=fields)
        return f"valid {path}", response.status_code

    def _hostile(self, http: httpx.Client, rng: random.Random) -> tuple[str, int]:
        name = rng.choice(sorted(self.bombs))
        file_name, data = self.bombs[name]
        fields = {"source": "pytorch"} if file_name.endswith((".json", ".npz")) else {}
        response = http.post("/inspect", files={"file": (file_name, data)}, data=fields)
        return f"bomb {name}", response.status_code

    def _disconnect(self, rng: random.Random) -> tuple[str, str]:
        how = rng.choice(["mid-body", "mid-head", "silent"])
        with socket.create_connection(self.address, timeout=10) as conn:
            if how == "mid-body":
                body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.h5\r\n\r\n" + self.valid[:50_000]
                head = "POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                conn.sendall(f"{head}Content-Length: {len(self.valid) + 200}\r\n\r\n".encode() + body)
            elif how == "mid-head":
                conn.sendall(b"POST /convert HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            time.sleep(rng.uniform(0.1, 1.0))
        return f"disconnect {how}", "closed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rnnbridge-soak-"))
    spool = work / "spool"
    spool.mkdir()
    valid = keras_file(work / "inputs")
    port = _free_port()
    env = {
        **os.environ,
        "RNNBRIDGE_TMP_DIR": str(spool),
        "RNNBRIDGE_MAX_UPLOAD_BYTES": str(64 * 1024**2),
        "RNNBRIDGE_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "rnnbridge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url)
        time.sleep(2)  # the first reader process is up
        samples = [sample(server.pid, spool)]
        soak = Soak(url, valid, time.monotonic() + args.minutes * 60, args.seed)
        clients = [threading.Thread(target=soak.client, args=(i,)) for i in range(args.clients)]
        for client in clients:
            client.start()
        while any(c.is_alive() for c in clients):
            time.sleep(2)
            samples.append(sample(server.pid, spool))
        time.sleep(6)  # quiet: idle connections time out, workspaces go
        end = sample(server.pid, spool)
        alive = httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    _report(samples, end, soak, alive, args, work)
    failed = soak.server_errors or not alive or end["spool_entries"]
    return 1 if failed else 0


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def _report(samples: list[dict[str, int]], end: dict[str, int], soak: Soak, alive: bool, args, work: Path) -> None:
    print(f"soak: {args.minutes:g} min, {args.clients} clients, {sum(soak.answers.values())} requests; log in {work}")
    print(f"{'resource':16s} {'start':>8s} {'peak':>8s} {'end':>8s}")
    for key in samples[0]:
        print(f"{key:16s} {samples[0][key]:8d} {max(s[key] for s in samples):8d} {end[key]:8d}")
    print("answers (kind, status: count):")
    for (kind, status), count in sorted(soak.answers.items()):
        print(f"  {kind:40s} {status:>18s} {count:6d}")
    print(f"server errors (5xx other than 503): {len(soak.server_errors)}; /healthz at the end: {alive}")


if __name__ == "__main__":
    sys.exit(main())
