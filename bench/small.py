"""Small requests: a 1 MB Keras file through ``/convert`` with concurrent clients.

A real uvicorn (``bench.server``) with 1 and then 2 workers; ``--clients`` concurrent
clients (asyncio + httpx, keep-alive, in this process: they share the machine's cores
with the server) each send ``--requests`` conversions of the same Keras 3
``.weights.h5`` (one LSTM layer, about 1 MB) to PyTorch, npz out, verification on.
Targets: p50 <= 10 ms with one client; >= 100 requests/s with 2 workers and 8 clients.
Refusals (503 beyond ``RNNBRIDGE_MAX_CONCURRENT`` requests in flight per worker, or a
connection closed mid-upload) are counted under ``errors`` and left out of the rates;
several clients run with the default limit and with ``--max-concurrent``.

    python -m bench.small
    python -m bench.small --requests 5 --clients 1,2 --workers 1
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np

from .common import Server, floats, machine, parser, table, torch_lstm_state

HEADERS = ("workers", "clients", "max_concurrent", "ok requests", "ok req/s", "p50 ms", "p99 ms", "errors")


def keras_file(workdir: Path, units: int = 208, inputs: int = 104) -> Path:
    """A Keras 3 ``.weights.h5`` of one LSTM (about 1 MB at the default sizes), written by
    converting a PyTorch state_dict with rnnbridge itself."""
    from service import outputs, pipeline
    from service.formats.base import InputFile

    path = workdir / f"keras_lstm_h{units}_i{inputs}.weights.h5"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    state = torch_lstm_state(units, inputs, 1, False)
    source = workdir / "small_state.npz"
    np.savez(source, **state)
    model = pipeline.read([InputFile(source.name, source)], source="pytorch")
    buffer = io.BytesIO()
    outputs.write(pipeline.convert(model, "keras"), "h5", buffer)
    path.write_bytes(buffer.getvalue())
    return path


async def _client(http: httpx.AsyncClient, url: str, body: bytes, name: str, count: int, latencies: list, errors: list) -> None:
    for _ in range(count):
        start = time.perf_counter()
        try:
            response = await http.post(url, files={"file": (name, body)}, data={"target": "pytorch"})
        except httpx.TransportError as error:  # e.g. a refusal that closed the connection mid-upload
            errors.append(type(error).__name__)
            continue
        if response.status_code == 200:
            latencies.append(time.perf_counter() - start)
        else:
            errors.append(response.status_code)


async def _load(url: str, path: Path, clients: int, requests: int) -> tuple[float, list[float], list[int]]:
    body, latencies, errors = path.read_bytes(), [], []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await _client(http, url, body, path.name, 2, [], [])  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, url, body, path.name, requests, latencies, errors) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, errors


def run(workers: int, clients: int, requests: int, path: Path, max_concurrent: int | None) -> tuple:
    env = {} if max_concurrent is None else {"RNNBRIDGE_MAX_CONCURRENT": str(max_concurrent)}
    with Server(workers=workers, tmp_dir=path.parent, env=env) as server:
        if workers > 1:
            asyncio.run(_load(server.url + "/convert", path, workers * 4, 4))  # every worker imports and warms up
        elapsed, latencies, errors = asyncio.run(_load(server.url + "/convert", path, clients, requests))
    p50, p99 = np.percentile(np.array(latencies or [np.nan]) * 1000, [50, 99])
    kinds = ", ".join(f"{kind} x{errors.count(kind)}" for kind in sorted(set(errors), key=str))
    limit = "default" if max_concurrent is None else max_concurrent
    return workers, clients, limit, len(latencies), len(latencies) / elapsed, float(p50), float(p99), kinds or "0"


def main(argv: list[str] | None = None) -> None:
    p = parser("Small /convert requests with concurrent clients.")
    p.add_argument("--workers", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    p.add_argument("--clients", type=lambda s: [int(v) for v in floats(s)], default=[1, 8])
    p.add_argument("--requests", type=int, default=100, help="per client")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/rnnbridge-bench"))
    p.add_argument("--max-concurrent", type=lambda s: [None if v == "default" else int(v) for v in s.split(",")],
                   default=[None, 8], help="RNNBRIDGE_MAX_CONCURRENT values to run with ('default': unset)")
    args = p.parse_args(argv)
    path = keras_file(args.workdir)
    rows = [
        run(w, c, args.requests, path, limit)
        for w in args.workers
        for c in args.clients
        for limit in (args.max_concurrent if c > 1 else [None])
    ]
    print(f"# small /convert requests: {path.stat().st_size / 1e6:.2f} MB Keras file -> pytorch npz ({machine()})")
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
