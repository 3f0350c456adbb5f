"""Small requests: a 1 MB Keras file through ``/convert`` with concurrent clients.

A real uvicorn (``bench.server``) with 1 and then 2 workers; ``--clients`` concurrent
clients (raw asyncio streams, keep-alive, one pre-encoded request: see ``Connection``;
in this process, so they share the machine's cores with the server) each send
``--requests`` conversions of the same Keras 3 ``.weights.h5`` (one LSTM layer, about
1 MB) to PyTorch, npz out, verification on.
Targets: p50 <= 10 ms with one client; >= 100 requests/s with 2 workers and 8 clients.
Requests beyond ``RNNBRIDGE_MAX_CONCURRENT`` in flight per worker wait in the worker's
line; refusals (503 when the line is full, or a connection closed mid-upload) are
counted under ``errors`` and left out of the rates. ``--max-concurrent`` runs the
several-client rows with other limits as well.

    python -m bench.small
    python -m bench.small --requests 5 --clients 1,2 --workers 1
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import numpy as np

from .common import Server, floats, machine, parser, table, torch_lstm_state

HEADERS = ("workers", "clients", "max_concurrent", "ok requests", "ok req/s", "p50 ms", "p99 ms", "errors")


def keras_file(workdir: Path, units: int = 208, inputs: int = 104) -> Path:
    """A Keras 3 ``.weights.h5`` of one LSTM (about 1 MB at the default sizes), written by
    converting a PyTorch state_dict with rnnbridge itself."""
    from rnnbridge import outputs, pipeline
    from rnnbridge.formats.base import InputFile

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


def multipart(name: str, body: bytes, fields: dict[str, str]) -> tuple[bytes, bytes]:
    """``(content type, body)`` of a ``multipart/form-data`` form with one file and ``fields``."""
    boundary = b"rnnbridge-bench-boundary"
    parts = [b'--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n\r\n' % (boundary, name.encode())]
    parts += [body, b"\r\n"]
    for key, value in fields.items():
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (boundary, key.encode(), value.encode())
        )
    parts.append(b"--%s--\r\n" % boundary)
    return b"multipart/form-data; boundary=" + boundary, b"".join(parts)


class Connection:
    """A keep-alive HTTP/1.1 connection that POSTs one pre-encoded request again and again.

    As lean as a client can be in Python (the clients share the cores with the server):
    the request bytes are built once, the response is read by its Content-Length or its
    chunks, and its body is discarded.
    """

    def __init__(self, url: str, content_type: bytes, body: bytes) -> None:
        host_port, self.path = url.removeprefix("http://").split("/", 1)
        self.host, port = host_port.split(":")
        self.port = int(port)
        head = (
            f"POST /{self.path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Content-Type: "
            + content_type
            + b"\r\n\r\n"
        )
        self.request = head + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> int:
        """Send the request; the response's status (the connection is reopened when the server closed it)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        assert self.reader is not None
        self.writer.write(self.request)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("the server closed the connection")
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        await self._skip_body(headers)
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split()[1])

    async def _skip_body(self, headers: dict[str, str]) -> None:
        assert self.reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _client(connection: Connection, count: int, latencies: list, errors: list) -> None:
    for _ in range(count):
        start = time.perf_counter()
        try:
            status = await connection.post()
        except (ConnectionError, asyncio.IncompleteReadError) as error:  # e.g. a refusal that closed the connection
            errors.append(type(error).__name__)
            continue
        if status == 200:
            latencies.append(time.perf_counter() - start)
        else:
            errors.append(status)


async def _load(url: str, path: Path, clients: int, requests: int) -> tuple[float, list[float], list[int]]:
    content_type, body = multipart(path.name, path.read_bytes(), {"target": "pytorch"})
    connections = [Connection(url, content_type, body) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[object] = []
    await _client(connections[0], 2, [], [])  # warm up
    start = time.perf_counter()
    await asyncio.gather(*(_client(connection, requests, latencies, errors) for connection in connections))
    elapsed = time.perf_counter() - start
    for connection in connections:
        await connection.close()
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
    p.add_argument(
        "--max-concurrent",
        type=lambda s: [None if v == "default" else int(v) for v in s.split(",")],
        default=[None, 8],
        help="RNNBRIDGE_MAX_CONCURRENT values to run with ('default': unset)",
    )
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
