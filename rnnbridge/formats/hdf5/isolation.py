"""Run a reader in a separate process, so that a fault in a C library cannot take the service down.

libhdf5 trusts the file it reads: a corrupt attribute heap can make it spin for ever while
holding the GIL, or crash the process (both found by ``tools/fuzz.py``; reproducers in
``tests/hostile``). HDF5 files are therefore read in a reader process under a wall-clock
bound (``Limits.read_timeout``): a reader that runs out of time is killed, one that dies is
reported as a corrupt file, and either is replaced by a fresh one for the next file.

Reader processes are fresh interpreters of our own (``python -I -c``, NumPy and h5py
loaded once: ``PRELOAD``), at most ``MAX_READERS`` per process, reused from one file to the next: a read
costs what it costs in process plus about a millisecond to hand the arrays over (a fork
per file cost 10-15 ms, most of it copy-on-write faults in the child). ``multiprocessing`` is
not used: its fork and forkserver modes fork a process that has threads, or re-import the
caller's ``__main__`` (re-running a pipeline script without a main guard). A reader is
retired after ``MAX_READS`` files. What this buys is fault isolation, not a sandbox: a
reader runs as the same user as the service, as the forked children did.

Nothing a reader sends back is unpickled: requests are JSON lines on its standard input;
it writes the arrays as raw bytes into a private temp file the caller names, and answers
with one JSON line on a pipe of its own: the arrays' names, dtypes, shapes and offsets in
that file and the rest of the ``WeightFile``, or the error it raised.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnbridge import errors
from rnnbridge.errors import MalformedFile, RnnBridgeError
from rnnbridge.formats.base import Limits, WeightFile

#: files a reader process reads before it is replaced by a fresh one
MAX_READS = 500
#: reader processes per process at most: more files at once wait for one (no churn of
#: processes started and ended under load), and as many are kept for the next files
MAX_READERS = 4
#: what a reader process imports before it says it is ready (the readers' own modules are
#: imported by the first request that names them; this module imports none of them)
PRELOAD = ("numpy", "h5py")
_START_TIMEOUT = 120.0
_ALIGN = 64


def read_isolated(reader: str, path: Path, limits: Limits, **kwargs: Any) -> WeightFile:
    """``reader(path, limits, **kwargs)`` (``"module:function"``) run in a reader process."""
    descriptor, name = tempfile.mkstemp(prefix="rnnbridge-read-", suffix=".bin", dir=limits.tmp_dir)
    os.close(descriptor)
    out = Path(name)
    try:
        request = {"reader": reader, "path": str(path), "limits": _plain_limits(limits), "kwargs": kwargs, "out": name}
        answer = json.loads(_POOL.run(request, path.name, limits.read_timeout))
        if "error" in answer:
            raise _error(answer["error"])
        return _load(answer["weights"], out)
    finally:
        out.unlink(missing_ok=True)


class _TimedOut(Exception):
    """The reader did not answer in time."""


class _Reader:
    """One reader process, its request pipe (standard input) and the pipe it answers on."""

    def __init__(self) -> None:
        replies, replies_in = os.pipe()
        # -I: neither the working directory nor PYTHON* variables can shadow rnnbridge; the
        # only path added is the folder this rnnbridge was imported from
        root = str(Path(__file__).resolve().parents[3])
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            f"from rnnbridge.formats.hdf5.isolation import serve; serve({replies_in})"
        )
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, pass_fds=[replies_in]
            )
        finally:
            os.close(replies_in)
        self._replies, self.reads = replies, 0
        try:
            answer = self._answer(_START_TIMEOUT)
        except _TimedOut:
            answer = None
        if answer != "ready\n":
            raise RuntimeError(f"the reader process did not start ({self.end(kill=True)})")

    def run(self, request: dict[str, Any], timeout: float) -> str | None:
        """Send ``request``; the answer line, or None when the process died. Raises ``_TimedOut``."""
        assert self.process.stdin is not None
        self.reads += 1
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            return None
        return self._answer(timeout)

    def _answer(self, timeout: float) -> str | None:
        deadline, line = time.monotonic() + timeout, b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise _TimedOut
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                return None
            line += chunk
        return line.decode()

    def end(self, kill: bool = False) -> str:
        """End the process (closing its input ends its loop) and say how it ended."""
        if kill:
            self.process.kill()
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass  # it died with the pipe full
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        if self._replies >= 0:
            os.close(self._replies)
            self._replies = -1
        return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


class _Pool:
    """At most ``MAX_READERS`` reader processes; a read takes an idle one (or starts one) and
    gives it back if it is sound."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Reader] = []
        self._slots = threading.BoundedSemaphore(MAX_READERS)

    def run(self, request: dict[str, Any], name: str, timeout: float) -> str:
        """Run ``request`` in a reader; its answer. Raises MalformedFile on a crash or time-out.

        ``timeout`` counts from the moment a reader has the request, not while waiting for one.
        """
        with self._slots:
            return self._run(request, name, timeout)

    def _run(self, request: dict[str, Any], name: str, timeout: float) -> str:
        reader = self._take()
        try:
            answer = reader.run(request, timeout)
        except _TimedOut:
            reader.end(kill=True)
            raise MalformedFile(
                f"reading {name!r} did not finish within {timeout:g} s: the file is corrupt or "
                "pathological (its library loops on it)"
            ) from None
        except BaseException:
            reader.end(kill=True)
            raise
        if answer is None:
            status = reader.end(kill=True)
            raise MalformedFile(f"the library reading {name!r} crashed on it ({status}): the file is corrupt")
        self._give_back(reader)
        return answer

    def start_one(self) -> None:
        """Start a reader ahead of the first file, unless one is idle already."""
        with self._lock:
            if self._idle:
                return
        self._give_back(_Reader())

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.end()

    def forget(self) -> None:
        """In a forked child: the readers belong to the parent."""
        self._reset()

    def _take(self) -> _Reader:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Reader()

    def _give_back(self, reader: _Reader) -> None:
        with self._lock:
            if reader.reads < MAX_READS and len(self._idle) < MAX_READERS:
                self._idle.append(reader)
                return
        reader.end()


_POOL = _Pool()
atexit.register(_POOL.close)
os.register_at_fork(after_in_child=_POOL.forget)


def start_reader() -> None:
    """Have a reader process ready, so that the first HDF5 file does not wait for one to start
    (a fresh interpreter importing NumPy and h5py takes a few hundred milliseconds)."""
    _POOL.start_one()


def serve(replies_fd: int) -> None:
    """A reader process's loop: one JSON request per line of standard input, one answer per request."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the caller's to handle
    for library in PRELOAD:
        importlib.import_module(library)
    with os.fdopen(replies_fd, "wb", buffering=0) as replies:
        replies.write(b"ready\n")
        for line in sys.stdin.buffer:
            replies.write(_serve_one(json.loads(line)).encode() + b"\n")


def _serve_one(request: dict[str, Any]) -> str:
    """Read one file, its arrays into ``request["out"]``; the JSON answer (one line).

    Any exception other than an ``RnnBridgeError`` ends the process: its caller reports a crash.
    """
    try:
        module, function = request["reader"].split(":")
        limits = Limits(**{**request["limits"], "tmp_dir": _path(request["limits"]["tmp_dir"])})
        weights = getattr(importlib.import_module(module), function)(Path(request["path"]), limits, **request["kwargs"])
        answer: dict[str, Any] = {"weights": _save(weights, Path(request["out"]))}
    except RnnBridgeError as exc:
        answer = {"error": {"class": type(exc).__name__, "detail": exc.detail, "fields": exc.fields()}}
    return json.dumps(answer, default=_plain)


def _save(weights: WeightFile, out: Path) -> dict[str, Any]:
    """The arrays as raw bytes at 64-byte aligned offsets of ``out``; the rest, as JSON-able data."""
    entries, offset = [], 0
    with out.open("wb") as stream:
        for name, array in weights.tensors.items():
            array = np.asarray(array, order="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d
            if array.dtype.hasobject:
                raise MalformedFile(f"tensor {name!r} holds {array.dtype} values, not numbers", tensor=name)
            stream.write(bytes(-offset % _ALIGN))
            offset += -offset % _ALIGN
            stream.write(array.reshape(-1).view(np.uint8).data)
            entries.append({"descr": np.lib.format.dtype_to_descr(array.dtype), "shape": array.shape, "offset": offset})
            offset += array.nbytes
    return {
        "format": weights.format,
        "names": list(weights.tensors),
        "arrays": entries,
        "attrs": weights.attrs,
        "notes": weights.notes,
        "bfloat16": sorted(weights.bfloat16),
    }


def _load(meta: dict[str, Any], out: Path) -> WeightFile:
    tensors = {}
    with out.open("rb", buffering=0) as stream:
        for name, entry in zip(meta["names"], meta["arrays"]):
            dtype = np.lib.format.descr_to_dtype(entry["descr"])
            assert not dtype.hasobject, "readers never send object arrays"
            array = np.empty(entry["shape"], dtype)
            stream.seek(entry["offset"])
            if stream.readinto(array.reshape(-1).view(np.uint8).data) != array.nbytes:
                raise RuntimeError(f"the reader process wrote {name!r} short")
            tensors[name] = array
    return WeightFile(meta["format"], tensors, meta["attrs"], meta["notes"], bfloat16=set(meta["bfloat16"]))


def _error(record: dict[str, Any]) -> RnnBridgeError:
    cls = getattr(errors, record["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, RnnBridgeError)):
        cls = MalformedFile
    fields = dict(record["fields"])
    code = fields.pop("code", None)
    layer, tensor = fields.pop("layer", None), fields.pop("tensor", None)
    return cls(record["detail"], code=code, layer=layer, tensor=tensor, **fields)


def _plain_limits(limits: Limits) -> dict[str, Any]:
    fields = dataclasses.asdict(limits)
    fields["tmp_dir"] = None if limits.tmp_dir is None else str(limits.tmp_dir)
    return fields


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _plain(value: Any) -> Any:
    """JSON for the NumPy scalars and arrays that HDF5 attributes come back as."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
