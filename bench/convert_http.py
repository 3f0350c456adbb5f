"""End to end over HTTP: ``/convert`` against an echo of the same bytes, and server memory.

A real uvicorn (``bench.server``: the product app plus ``/__echo``) serves on loopback;
curl POSTs a safetensors file of a 2-level bidirectional PyTorch LSTM and discards the
answer. For each file size, the conversions to Keras (a transposition) and to ONNX (no
transposition), as npz and as safetensors, are timed alternately with the echo of the
same file, best of ``--repeat``. ``echo/convert`` is the echo's time over the
conversion's (target: >= 0.5 at 100 MB and 1 GB). ``peak RSS`` is the serving process's
peak resident memory during that one request (VmHWM, reset before it); the target is
``1.5 x file + 150 MB``.

    python -m bench.convert_http                      # 10 MB, 100 MB, 1 GB; files in /tmp/rnnbridge-bench
    python -m bench.convert_http --sizes 2 --repeat 1
"""

from __future__ import annotations

from pathlib import Path

from .common import (
    MB,
    Server,
    curl_post,
    floats,
    machine,
    parser,
    state_for_megabytes,
    table,
    torch_lstm_state,
    write_safetensors,
)
from .server import ECHO_PATH

CASES = {  # name -> form fields of /convert
    "keras npz": {"target": "keras", "format": "npz"},
    "keras safetensors": {"target": "keras", "format": "safetensors"},
    "onnx npz": {"target": "onnx", "format": "npz"},
    "keras npz verify=false": {"target": "keras", "format": "npz", "verify": "false"},
}
HEADERS = ("file MB", "case", "convert s", "echo s", "echo/convert", "peak RSS MB", "RSS target MB", "RSS ok")


def model_file(workdir: Path, megabytes: float) -> Path:
    """A safetensors 2-level bidirectional LSTM state_dict of about ``megabytes`` (made once)."""
    units, inputs = state_for_megabytes(megabytes, levels=2, bidirectional=True)
    path = workdir / f"lstm2bi_h{units}_i{inputs}.safetensors"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        write_safetensors(path, torch_lstm_state(units, inputs, 2, True))
    return path


def measure(server: Server, path: Path, fields: dict[str, str] | None) -> tuple[float, int]:
    """Seconds and peak RSS of one request (``fields=None``: the echo)."""
    server.reset_peak_rss()
    url = server.url + (ECHO_PATH if fields is None else "/convert")
    seconds, status, received = curl_post(url, path, fields)
    if status != 200 or received == 0:
        raise RuntimeError(f"{url} answered {status} ({received} bytes) for {path.name} {fields}")
    return seconds, server.rss()[1]


def rows_for(server: Server, path: Path, repeat: int, cases: dict[str, dict[str, str]]) -> list[tuple]:
    size = path.stat().st_size
    rows = []
    for name, fields in cases.items():
        best_echo = best = float("inf")
        peak = 0
        for _ in range(repeat):
            best_echo = min(best_echo, measure(server, path, None)[0])
            seconds, rss = measure(server, path, fields)
            best, peak = min(best, seconds), max(peak, rss)
        target = 1.5 * size + 150 * MB
        rows.append((size / MB, name, best, best_echo, best_echo / best, round(peak / MB), round(target / MB),
                     "yes" if peak <= target else "NO"))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = parser("/convert over HTTP against an echo of the same bytes.")
    p.add_argument("--sizes", type=floats, default=[10.0, 100.0, 1024.0], help="file sizes in MB")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/rnnbridge-bench"))
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    args = p.parse_args(argv)
    cases = {name: CASES[name] for name in args.cases.split(",")}
    spool = args.workdir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    rows = []
    with Server(workers=1, tmp_dir=spool) as server:
        idle = server.rss()[0]
        curl_post(server.url + "/convert", model_file(args.workdir, 1), CASES["keras npz"])  # warm up
        for megabytes in args.sizes:
            rows += rows_for(server, model_file(args.workdir, megabytes), args.repeat, cases)
    print(f"# /convert over HTTP vs echo ({machine()}; server idle RSS {idle / MB:.0f} MB)")
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
