"""Run a reader in a separate process, so that a fault in a C library cannot take the service down.

libhdf5 trusts the file it reads: a corrupt attribute heap can make it spin for ever while
holding the GIL, or crash the process (both found by ``tools/fuzz.py``; reproducers in
``tests/hostile``). HDF5 files are therefore read in a reader process under a wall-clock
bound (``Limits.read_timeout``): a reader that runs out of time is killed, one that dies is
reported as a corrupt file, and either is replaced by a fresh one for the next file.

The service reads *every* upload this way (``Limits.isolate``, see ``rnnbridge.formats.read``):
parsers of untrusted structure (JSON, pickles, protobuf, SSTables, zip directories) then
never hold the server's GIL, so the event loop answers ``/healthz`` whatever a file makes
them do, and each read is bounded in wall-clock time (``Limits.read_timeout``) and in
resident memory: the caller samples the reader's RSS every ``WATCH_INTERVAL`` seconds and
ends it (``LimitExceeded``, 413) once it passes ``Limits.read_memory(upload bytes)``. Inside
a reader, nested ``read_isolated`` calls (the HDF5 readers') run in process.

Reader processes are fresh interpreters of our own (``python -I -c``, NumPy and h5py
loaded once: ``PRELOAD``), at most ``MAX_READERS`` per process, reused from one file to the next: a read
costs what it costs in process plus about a millisecond to hand the arrays over (a fork
per file cost 10-15 ms, most of it copy-on-write faults in the child). ``multiprocessing`` is
not used: its fork and forkserver modes fork a process that has threads, or re-import the
caller's ``__main__`` (re-running a pipeline script without a main guard). A reader is
retired after ``MAX_READS`` files, or when a read left it larger than ``RETIRE_RSS``. What
this buys is fault isolation, not a sandbox: a reader runs as the same user as the service,
as the forked children did.

Nothing a reader sends back is unpickled: requests are JSON lines on its standard input;
it writes the arrays as raw bytes into a private temp file the caller names, and answers
with one JSON line (at most ``MAX_ANSWER_BYTES``) on a pipe of its own: the arrays' names,
dtypes, shapes and offsets in that file and the rest of the ``WeightFile``, or the error it
raised. The caller maps that file copy-on-write, so the arrays are not copied again.
``ValueError``, ``OverflowError`` and ``RecursionError`` escaping a reader are reported as
a malformed file, ``MemoryError`` as a limit; error details are cut to ``MAX_DETAIL``
characters.
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import importlib
import json
import mmap
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
from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError
from rnnbridge.formats.base import InputFile, Limits, WeightFile, quote

#: files a reader process reads before it is replaced by a fresh one
MAX_READS = 500
#: reader processes per process at most: more files at once wait for one (no churn of
#: processes started and ended under load), and as many are kept for the next files
MAX_READERS = 4
#: what a reader process imports before it says it is ready (the readers' own modules are
#: imported by the first request that names them; this module imports none of them)
PRELOAD = ("numpy", "h5py")
#: a reader whose resident memory is above this after a read is ended, not kept
RETIRE_RSS = 384 * 1024**2
#: seconds between two samples of a working reader's resident memory
WATCH_INTERVAL = 0.01
#: the longest answer line accepted from a reader (names, shapes, attributes; not arrays)
MAX_ANSWER_BYTES = 16 * 1024**2
#: the longest error detail passed on (it may quote names taken from the file)
MAX_DETAIL = 600
_START_TIMEOUT = 120.0
_ALIGN = 64
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: True inside a reader process: nested reads run in process
_IN_READER = False


def read_isolated(reader: str, path: Path, limits: Limits, **kwargs: Any) -> WeightFile:
    """``reader(path, limits, **kwargs)`` (``"module:function"``) run in a reader process."""
    if _IN_READER:
        return _call(reader, path, limits, kwargs)
    request = {"reader": reader, "path": str(path), "kwargs": kwargs}
    return _run_isolated(request, repr(path.name), limits, _size(path))


def read_files_isolated(reader: str, files: list[InputFile], limits: Limits) -> WeightFile:
    """``reader(files, limits)`` run in a reader process (``formats.read`` with ``Limits.isolate``)."""
    if _IN_READER:
        return _call(reader, files, limits, {})
    request = {"reader": reader, "files": [[f.name, str(f.path)] for f in files], "kwargs": {}}
    names = ", ".join(repr(f.name[:100]) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    return _run_isolated(request, names, limits, sum(_size(f.path) for f in files))


def _run_isolated(request: dict[str, Any], name: str, limits: Limits, upload_bytes: int) -> WeightFile:
    descriptor, out = tempfile.mkstemp(prefix="rnnbridge-read-", suffix=".bin", dir=limits.tmp_dir)
    os.close(descriptor)
    try:
        request = {**request, "limits": _plain_limits(limits), "out": out}
        budget = limits.read_memory(upload_bytes)
        answer = json.loads(_POOL.run(request, name, limits.read_timeout, budget))
        if "error" in answer:
            raise _error(answer["error"])
        return _load(answer["weights"], Path(out))
    finally:
        Path(out).unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _TimedOut(Exception):
    """The reader did not answer in time."""


class _OverBudget(Exception):
    """The reader's resident memory, or its answer, passed its bound."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def resident_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


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

    def run(self, request: dict[str, Any], timeout: float, budget: int | None = None) -> str | None:
        """Send ``request``; the answer line, or None when the process died.

        Raises ``_TimedOut``, or ``_OverBudget`` when the reader's resident memory passes
        ``budget`` bytes or its answer ``MAX_ANSWER_BYTES``.
        """
        assert self.process.stdin is not None
        self.reads += 1
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            return None
        return self._answer(timeout, budget)

    def _answer(self, timeout: float, budget: int | None = None) -> str | None:
        deadline, size = time.monotonic() + timeout, 0
        parts: list[bytes] = []
        while not (parts and parts[-1].endswith(b"\n")):
            left = deadline - time.monotonic()
            if left <= 0:
                raise _TimedOut
            wait = left if budget is None else min(left, WATCH_INTERVAL)
            ready, _, _ = select.select([self._replies], [], [], wait)
            if budget is not None and (rss := self.resident()) > budget:
                raise _OverBudget(f"{rss >> 20} MiB of memory, more than its budget of {budget >> 20} MiB")
            if not ready:
                continue
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                return None
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise _OverBudget(f"an answer over {MAX_ANSWER_BYTES >> 20} MiB (names and attributes)")
        return b"".join(parts).decode()

    def resident(self) -> int:
        """The reader's resident memory in bytes."""
        return resident_bytes(self.process.pid)

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
        self._busy: set[_Reader] = set()
        self._slots = threading.BoundedSemaphore(MAX_READERS)

    def run(self, request: dict[str, Any], name: str, timeout: float, budget: int | None = None) -> str:
        """Run ``request`` in a reader; its answer. Raises MalformedFile on a crash or time-out,
        LimitExceeded when the reader passes ``budget`` bytes of resident memory.

        ``timeout`` counts from the moment a reader has the request, not while waiting for one.
        """
        with self._slots:
            return self._run(request, name, timeout, budget)

    def _run(self, request: dict[str, Any], name: str, timeout: float, budget: int | None) -> str:
        reader = self._take()
        with self._lock:
            self._busy.add(reader)
        try:
            return self._read(reader, request, name, timeout, budget)
        finally:
            with self._lock:
                self._busy.discard(reader)

    def _read(self, reader: _Reader, request: dict[str, Any], name: str, timeout: float, budget: int | None) -> str:
        try:
            answer = reader.run(request, timeout, budget)
        except _OverBudget as exc:
            reader.end(kill=True)
            raise LimitExceeded(
                f"reading {name} needed {exc.what} (RNNBRIDGE_READ_MEMORY_BASE + RNNBRIDGE_READ_MEMORY_FACTOR x "
                "the upload's size); the file makes far more objects than its size suggests",
                code="read_memory_exceeded",
            ) from None
        except _TimedOut:
            reader.end(kill=True)
            raise MalformedFile(
                f"reading {name} did not finish within {timeout:g} s: the file is corrupt or "
                "pathological (its library loops on it)"
            ) from None
        except BaseException:
            reader.end(kill=True)
            raise
        if answer is None:
            status = reader.end(kill=True)
            raise MalformedFile(f"the library reading {name} crashed on it ({status}): the file is corrupt")
        if reader.resident() > RETIRE_RSS:
            reader.end()  # what a large read left allocated goes with the process
        else:
            self._give_back(reader)
        return answer

    def start_one(self) -> None:
        """Start a reader ahead of the first file, unless one is idle already."""
        with self._lock:
            if self._idle:
                return
        self._give_back(_Reader())

    def close(self) -> None:
        """End the idle readers, and kill the busy ones (the process is exiting)."""
        with self._lock:
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for reader in busy:
            reader.process.kill()
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


def stop_readers() -> None:
    """End every reader process, killing those still reading (a server shutting down)."""
    _POOL.close()


def serve(replies_fd: int) -> None:
    """A reader process's loop: one JSON request per line of standard input, one answer per request."""
    global _IN_READER
    _IN_READER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the caller's to handle
    for library in PRELOAD:
        importlib.import_module(library)
    _import_readers()
    with os.fdopen(replies_fd, "wb", buffering=0) as replies:
        replies.write(b"ready\n")
        for line in sys.stdin.buffer:
            replies.write(_serve_one(json.loads(line)).encode() + b"\n")


def _import_readers() -> None:
    """Import every module of ``rnnbridge.formats`` now, as the server does at start-up: a
    package replaced on disk under a running server cannot break a reader started before."""
    import pkgutil

    formats = importlib.import_module("rnnbridge.formats")
    for info in pkgutil.walk_packages(formats.__path__, prefix="rnnbridge.formats."):
        importlib.import_module(info.name)


def _serve_one(request: dict[str, Any]) -> str:
    """Read one file, its arrays into ``request["out"]``; the JSON answer (one line).

    ``ValueError``, ``OverflowError`` and ``RecursionError`` are a malformed file, ``MemoryError``
    a limit; any other exception that is not an ``RnnBridgeError`` ends the process: its
    caller reports a crash.
    """
    try:
        limits = Limits(**{**request["limits"], "tmp_dir": _path(request["limits"]["tmp_dir"])})
        if "files" in request:
            argument: Any = [InputFile(name, Path(path)) for name, path in request["files"]]
        else:
            argument = Path(request["path"])
        weights = _call(request["reader"], argument, limits, request["kwargs"])
        answer: dict[str, Any] = {"weights": _save(weights, Path(request["out"]))}
        del weights  # the arrays are in the file: free them before the caller maps it
    except RnnBridgeError as exc:
        answer = {"error": {"class": type(exc).__name__, "detail": exc.detail, "fields": exc.fields()}}
    except (ValueError, OverflowError, RecursionError) as exc:
        detail = f"the file could not be read: {type(exc).__name__}: {quote(str(exc))}"
        answer = {"error": {"class": "MalformedFile", "detail": detail, "fields": {"code": "malformed_file"}}}
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        detail = "there is no room left in the spool directory to read the file; retry later"
        answer = {"error": {"class": "LimitExceeded", "detail": detail, "fields": {"code": "spool_full"}}}
    except MemoryError:
        detail = "reading the file needed more memory than the reader process may have"
        answer = {"error": {"class": "LimitExceeded", "detail": detail, "fields": {"code": "read_memory_exceeded"}}}
    return json.dumps(answer, default=_plain)


def _call(reader: str, argument: Any, limits: Limits, kwargs: dict[str, Any]) -> WeightFile:
    module, function = reader.split(":")
    weights: WeightFile = getattr(importlib.import_module(module), function)(argument, limits, **kwargs)
    return weights


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
    """The arrays of ``out``, mapped copy-on-write (the file can be unlinked at once)."""
    tensors = {}
    with out.open("rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        mapped = mmap.mmap(stream.fileno(), size, access=mmap.ACCESS_COPY) if size else b""
    for name, entry in zip(meta["names"], meta["arrays"]):
        dtype = np.lib.format.descr_to_dtype(entry["descr"])
        assert not dtype.hasobject, "readers never send object arrays"
        count = int(np.prod(entry["shape"], dtype=np.int64))
        if entry["offset"] + count * dtype.itemsize > size:
            raise RuntimeError(f"the reader process wrote {name!r} short")
        array = np.frombuffer(mapped, dtype, count, entry["offset"]) if count else np.empty(0, dtype)
        tensors[name] = array.reshape(entry["shape"])
    return WeightFile(meta["format"], tensors, meta["attrs"], meta["notes"], bfloat16=set(meta["bfloat16"]))


def _error(record: dict[str, Any]) -> RnnBridgeError:
    cls = getattr(errors, record["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, RnnBridgeError)):
        cls = MalformedFile
    fields = {key: _cut(value) for key, value in record["fields"].items()}
    code = fields.pop("code", None)
    layer, tensor = fields.pop("layer", None), fields.pop("tensor", None)
    return cls(_cut(record["detail"], MAX_DETAIL), code=code, layer=layer, tensor=tensor, **fields)


def _cut(value: Any, limit: int = 200) -> Any:
    """A string field at most ``limit`` characters long (others as they are)."""
    return value[: limit - 3] + "..." if isinstance(value, str) and len(value) > limit else value


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
