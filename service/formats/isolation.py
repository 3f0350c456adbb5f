"""Run a reader in a child process, so that a fault in a C library cannot take the service down.

libhdf5 trusts the file it reads: a corrupt attribute heap can make it spin for ever while
holding the GIL, or crash the process (both found by ``tools/fuzz.py``; reproducers in
``tests/hostile``). HDF5 files are therefore read in a child process under a wall-clock
bound (``Limits.read_timeout``); a child that runs out of time is killed, one that dies is
reported as a corrupt file.

Children are forked by a small helper process of our own (started once per process with a
fresh interpreter that has NumPy and h5py loaded, so a fork costs a few milliseconds).
``multiprocessing``'s forkserver would re-import the caller's ``__main__`` in every child —
re-running a pipeline script without a main guard, failing outright from a REPL — and
forking the caller itself is unsafe once it has threads. The helper is single-threaded.

Nothing a child sends back is unpickled: it writes its arrays as an uncompressed npz (read
with ``allow_pickle=False``) and the rest as JSON, into a private temp folder, and marks
that folder ``done``; the helper writes ``exit`` there for a child that dies.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors
from ..errors import MalformedFile, RnnBridgeError
from .base import Limits, WeightFile

_ARRAYS, _META, _ERROR, _DONE, _EXIT, _PID = "arrays.npz", "meta.json", "error.json", "done", "exit", "pid"
_POLL_SECONDS = 0.001


def read_in_child(reader: str, path: Path, limits: Limits, **kwargs: Any) -> WeightFile:
    """``reader(path, limits, **kwargs)`` (``"module:function"``) run in a child process."""
    out = Path(tempfile.mkdtemp(prefix="rnnbridge-child-", dir=limits.tmp_dir))
    try:
        _HELPER.submit(
            {"reader": reader, "path": str(path), "limits": _plain_limits(limits), "kwargs": kwargs, "out": str(out)}
        )
        _wait(out, path, limits.read_timeout)
        if (out / _ERROR).exists():
            raise _error(json.loads((out / _ERROR).read_text()))
        return _load(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _wait(out: Path, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (out / _DONE).exists():
        if (out / _EXIT).exists():
            status = (out / _EXIT).read_text()
            raise MalformedFile(f"the library reading {path.name!r} crashed on it ({status}): the file is corrupt")
        if time.monotonic() > deadline:
            _kill(out)
            raise MalformedFile(
                f"reading {path.name!r} did not finish within {timeout:g} s: the file is corrupt or "
                "pathological (its library loops on it)"
            )
        time.sleep(_POLL_SECONDS)


def _kill(out: Path) -> None:
    try:
        os.kill(int((out / _PID).read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass  # not started yet, or gone already


class _Helper:
    """The forking helper process: one per process, started on first use, restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def submit(self, request: dict[str, Any]) -> None:
        line = (json.dumps(request) + "\n").encode()
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
                atexit.register(self.close)
            assert self._process.stdin is not None
            self._process.stdin.write(line)
            self._process.stdin.flush()

    def close(self) -> None:
        """End the helper: closing its input ends its loop."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        code = "from service.formats.isolation import serve; serve()"
        root = str(Path(__file__).resolve().parents[2])  # where ``service`` is importable from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, close_fds=True, env=env)


_HELPER = _Helper()


def serve() -> None:
    """The helper's loop: fork one child per request line; reap children as they end."""
    importlib.import_module("service.formats.keras_h5")  # loaded once, inherited by every child
    children: dict[int, Path] = {}

    def reap(*_: object) -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            out = children.pop(pid, None)
            if out is not None and status != 0:  # a child that exits 0 has written ``done``
                try:
                    _write(out / _EXIT, _describe(status))
                except OSError:
                    pass  # the caller gave up (timeout) and removed the folder

    signal.signal(signal.SIGCHLD, reap)
    for line in sys.stdin.buffer:
        request = json.loads(line)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # register before reaping
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            os._exit(_child(request))
        children[pid] = Path(request["out"])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        reap()


def _child(request: dict[str, Any]) -> int:
    out = Path(request["out"])
    try:
        _write(out / _PID, str(os.getpid()))
        module, function = request["reader"].split(":")
        limits = Limits(**{**request["limits"], "tmp_dir": _path(request["limits"]["tmp_dir"])})
        weights = getattr(importlib.import_module(module), function)(Path(request["path"]), limits, **request["kwargs"])
        _save(weights, out)
    except RnnBridgeError as exc:
        _write(
            out / _ERROR,
            json.dumps({"class": type(exc).__name__, "detail": exc.detail, "fields": exc.fields()}, default=str),
        )
    except BaseException:  # noqa: BLE001 - anything else is a crash, reported by the helper
        return 1
    _write(out / _DONE, "")
    return 0


def _save(weights: WeightFile, out: Path) -> None:
    with zipfile.ZipFile(out / _ARRAYS, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, array in enumerate(weights.tensors.values()):
            with archive.open(f"{index}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
    meta = {
        "format": weights.format,
        "names": list(weights.tensors),
        "attrs": weights.attrs,
        "notes": weights.notes,
        "bfloat16": sorted(weights.bfloat16),
    }
    _write(out / _META, json.dumps(meta, default=_plain))


def _load(folder: Path) -> WeightFile:
    meta = json.loads((folder / _META).read_text())
    with np.load(folder / _ARRAYS, allow_pickle=False) as npz:
        tensors = {name: npz[str(index)] for index, name in enumerate(meta["names"])}
    return WeightFile(meta["format"], tensors, meta["attrs"], meta["notes"], bfloat16=set(meta["bfloat16"]))


def _error(record: dict[str, Any]) -> RnnBridgeError:
    cls = getattr(errors, record["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, RnnBridgeError)):
        cls = MalformedFile
    fields = dict(record["fields"])
    code = fields.pop("code", None)
    layer, tensor = fields.pop("layer", None), fields.pop("tensor", None)
    return cls(record["detail"], code=code, layer=layer, tensor=tensor, **fields)


def _write(path: Path, text: str) -> None:
    """Write ``text`` so that a reader never sees it half written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


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
