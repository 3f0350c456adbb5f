"""Run a reader in a child process, so that a fault in a C library cannot take the service down.

libhdf5 trusts the file it reads: a corrupt attribute heap can make it spin for ever while
holding the GIL, or crash the process (both found by ``tools/fuzz.py``; reproducers in
``tests/hostile``). HDF5 files are therefore read in a child process, forked from a clean
``forkserver`` process that already has NumPy and h5py loaded, under a wall-clock bound
(``Limits.read_timeout``). A child that runs out of time is killed; one that dies is
reported as a corrupt file.

Nothing the child sends back is unpickled: it writes its arrays as an uncompressed npz
(read with ``allow_pickle=False``) and the rest as JSON, into a private temp folder.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors
from ..errors import MalformedFile, RnnBridgeError
from .base import Limits, WeightFile

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["service.formats.keras_h5"])
_ARRAYS, _META, _ERROR = "arrays.npz", "meta.json", "error.json"


def read_in_child(reader: str, path: Path, limits: Limits, **kwargs: Any) -> WeightFile:
    """``reader(path, limits, **kwargs)`` (``"module:function"``) run in a child process."""
    out = Path(tempfile.mkdtemp(prefix="rnnbridge-child-", dir=limits.tmp_dir))
    try:
        child = _CONTEXT.Process(target=_child, args=(reader, str(path), limits, kwargs, str(out)), daemon=True)
        child.start()
        child.join(limits.read_timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise MalformedFile(
                f"reading {path.name!r} did not finish within {limits.read_timeout:g} s: the file is "
                "corrupt or pathological (its library loops on it)"
            )
        if (out / _ERROR).exists():
            raise _error(json.loads((out / _ERROR).read_text()))
        if child.exitcode != 0 or not (out / _META).exists():
            raise MalformedFile(
                f"the library reading {path.name!r} crashed on it (exit status {child.exitcode}): the file is corrupt"
            )
        return _load(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _child(reader: str, path: str, limits: Limits, kwargs: dict[str, Any], out: str) -> None:
    module, function = reader.split(":")
    folder = Path(out)
    try:
        weights = getattr(importlib.import_module(module), function)(Path(path), limits, **kwargs)
    except RnnBridgeError as exc:
        error = {"class": type(exc).__name__, "detail": exc.detail, "fields": exc.fields()}
        (folder / _ERROR).write_text(json.dumps(error, default=str))
        return
    with zipfile.ZipFile(folder / _ARRAYS, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
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
    (folder / _META).write_text(json.dumps(meta, default=_plain))


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


def _plain(value: Any) -> Any:
    """JSON for the NumPy scalars and arrays that HDF5 attributes come back as."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
