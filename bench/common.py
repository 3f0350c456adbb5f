"""What every benchmark shares: the machine, timing side by side, tables, test layers.

Every figure is a ratio to a reference measured in the same run, interleaved with it
(reference, subject, reference, subject, ...), and each side keeps its best time, so a
noisy neighbour on the machine slows both or neither.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import numpy as np

from rnnbridge.engine import CONVENTIONS, LayerConfig, NativeLayer
from rnnbridge.engine.model import DIRECTIONS

#: one convention per framework and cell: every pair among them is a conversion users make
SOURCES = {
    "lstm": ("tf1.lstm", "keras.lstm", "pytorch.lstm", "onnx.lstm"),
    "gru": ("tf1.cudnn_gru", "keras.gru_reset_after", "pytorch.gru", "onnx.gru_lbr"),
}
MB = 1024**2
ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """One line: cores, memory, CPU, Python and NumPy versions."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return (
        f"{os.cpu_count()} cores, {total_kb / 1024**2:.1f} GiB, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
    )


def side_by_side(reference: Callable[[], object], subject: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall times of ``reference`` and ``subject``, run alternately ``repeat`` times each."""
    best_ref = best_sub = math.inf
    for _ in range(repeat):
        best_ref = min(best_ref, timed(reference))
        best_sub = min(best_sub, timed(subject))
    return best_ref, best_sub


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats with 2 decimals."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[k]) for r in cells)) if cells else len(str(h)) for k, h in enumerate(headers)]
    lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def units_for(megabytes: float, cell: str, inputs_per_unit: float = 0.5) -> tuple[int, int]:
    """``(H, I)`` of a one-direction, one-level layer of about ``megabytes`` of float32,
    with ``I = inputs_per_unit * H`` (both multiples of 8)."""
    gates = 4 if cell == "lstm" else 3
    per_unit_sq = gates * (1 + inputs_per_unit) * 4  # bytes per H**2
    units = int(math.sqrt(megabytes * MB / per_unit_sq)) // 8 * 8
    return units, max(8, int(units * inputs_per_unit) // 8 * 8)


def random_layer(
    key: str, units: int, inputs: int, *, levels: int = 1, directions: int = 1, seed: int = 0, dtype=np.float32
) -> NativeLayer:
    """A native layer of convention ``key`` with normal random weights and biases."""
    conv = CONVENTIONS[key]
    rng = np.random.default_rng(seed)
    cells = {}
    for level in range(levels):
        dims = {"H": units, "I": inputs if level == 0 else units * directions, "P": 0, "R": units}
        for direction in DIRECTIONS[:directions]:
            cells[(level, direction)] = {
                spec.name: rng.standard_normal(spec.shape(dims), dtype=np.float32).astype(dtype, copy=False)
                for spec in conv.tensors
                if spec.group in ("core", "bias")
            }
    return NativeLayer(key.split(".")[1], conv, LayerConfig(conv.default_activations), cells)


def layer_bytes(layer: NativeLayer) -> int:
    return sum(a.nbytes for cell in layer.cells.values() for a in cell.values())


def torch_lstm_state(units: int, inputs: int, levels: int, bidirectional: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """The ``state_dict`` of ``nn.LSTM(inputs, units, levels, bidirectional=...)``, made with
    NumPy (same names, shapes and dtype as PyTorch's)."""
    rng = np.random.default_rng(seed)
    state = {}
    for level in range(levels):
        fan_in = inputs if level == 0 else units * (2 if bidirectional else 1)
        for suffix in ("", "_reverse") if bidirectional else ("",):
            shapes = {"weight_ih": (4 * units, fan_in), "weight_hh": (4 * units, units), "bias_ih": (4 * units,), "bias_hh": (4 * units,)}
            for name, shape in shapes.items():
                state[f"{name}_l{level}{suffix}"] = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)
    return state


def write_safetensors(path: Path, state: dict[str, np.ndarray]) -> Path:
    """``state`` as a safetensors file, with rnnbridge's own writer."""
    from rnnbridge.formats.safetensors import file as safetensors_file

    with path.open("wb") as out:
        safetensors_file.write(out, state)
    return path


def state_for_megabytes(megabytes: float, levels: int = 1, bidirectional: bool = False) -> tuple[int, int]:
    """``(H, I)`` of an ``nn.LSTM`` with I = H/2 whose state_dict is about ``megabytes``."""
    per_level_sq = 4 * (1.5 + 1) * 4 * (2 if bidirectional else 1)
    units = int(math.sqrt(megabytes * MB / (per_level_sq * levels))) // 8 * 8
    return units, max(8, units // 2 // 8 * 8)


def parser(description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


class Server:
    """A real uvicorn running ``bench.server:create_app`` on a free loopback port.

    ``with Server(workers=1) as server:`` starts it and waits for ``/healthz``;
    ``server.url``; ``server.pid`` is the process that serves (workers=1) or the
    supervisor; ``env`` adds ``RNNBRIDGE_*`` settings. Leaving the block stops it
    (SIGTERM, then SIGKILL).
    """

    def __init__(
        self, workers: int = 1, tmp_dir: Path | None = None, log: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.workers, self.tmp_dir, self.env = workers, tmp_dir, env or {}
        self.log = log or Path(os.environ.get("TMPDIR", "/tmp")) / "rnnbridge-bench-server.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Server:
        env = {**os.environ, "RNNBRIDGE_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT), **self.env}
        if self.tmp_dir is not None:
            env["RNNBRIDGE_TMP_DIR"] = str(self.tmp_dir)
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.server:create_app", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        if os.environ.get("RNNBRIDGE_BENCH_HTTP"):  # another protocol class, e.g. the guarded one `serve` runs
            run = (f"import uvicorn; uvicorn.run('bench.server:create_app', factory=True, host='127.0.0.1', "
                   f"port={self.port}, log_level='warning', access_log=False, workers={self.workers}, "
                   f"http={os.environ['RNNBRIDGE_BENCH_HTTP']!r})")
            command = [sys.executable, "-c", run]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait()
        return self

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited: see {self.log}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer /healthz in {timeout} s: see {self.log}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def reset_peak_rss(self) -> None:
        """Make the kernel's peak-RSS counter (VmHWM) start again from the current RSS."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def rss(self) -> tuple[int, int]:
        """``(current, peak)`` resident bytes of the serving process."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def curl_post(url: str, path: Path, fields: dict[str, str] | None = None) -> tuple[float, int, int]:
    """POST ``path`` as multipart ``file`` (plus ``fields``) with curl, the body to /dev/null;
    returns ``(seconds, HTTP status, bytes received)``."""
    command = ["curl", "-s", "-o", "/dev/null", "-H", "Expect:", "-w", "%{http_code} %{size_download}", "-F", f"file=@{path}"]
    for name, value in (fields or {}).items():
        command += ["-F", f"{name}={value}"]
    start = time.perf_counter()
    done = subprocess.run(command + [url], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    status, size = done.stdout.split()
    return elapsed, int(status), int(size)
