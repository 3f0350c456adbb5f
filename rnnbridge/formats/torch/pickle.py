"""PyTorch ``torch.save`` files, read without torch and without running the pickle.

Two layouts exist.

Zip (torch >= 1.6, the default)::

    <root>/data.pkl          pickle (protocol 2) of the saved object; tensors are
                             REDUCE calls of torch._utils._rebuild_tensor_v2 whose first
                             argument is a persistent id
                             ('storage', <torch.FloatStorage>, '<key>', 'cpu', numel)
    <root>/data/<key>        the raw bytes of storage <key>
    <root>/byteorder         "little" or "big" (optional; absent means little)
    <root>/version, ...      ignored

Legacy (``_use_new_zipfile_serialization=False``): one stream holding five pickles,
magic number 0x1950a86a20f9469cfc6c, protocol version, sys_info, the object, the sorted
list of storage keys, then for each key an int64 element count and the raw storage.
Its persistent ids carry a sixth item, the storage view (always None since torch 1.0).

Contract: the pickle is read by a restricted unpickler whose ``find_class`` maps a short
allow-list of torch names to local factories that only describe tensors (storage, offset,
shape and strides) and refuses every other global with ``UnsafeInput`` (code
``unsafe_pickle``). Before unpickling, every opcode is scanned: opcodes that build
arbitrary objects (INST, OBJ, NEWOBJ, EXT*, out-of-band buffers) are refused and
declared lengths must fit the bytes present. Nothing from the file is executed.
Storages are read only once the tensors are chosen and every size, offset and stride
was checked against the bytes present and ``Limits``.

The object may be a state_dict or a checkpoint dict: the first of ``state_dict``,
``model_state_dict``, ``model``, ``net``, ``module`` that holds tensors is used,
otherwise nested dicts are flattened with "." (non-tensor leaves are ignored and listed
in ``attrs["ignored_entries"]``). A ``module.`` prefix on every key (DataParallel)
is stripped.

This module holds the entry points; the parts live in ``pickle_scan`` (the opcode scan),
``torch_unpickler`` (the allow-list and the restricted unpickler), ``torch_containers``
(zip and legacy layouts), ``torch_state_dict`` (choosing the tensors) and
``torch_storage`` (checking strides and materialising arrays).
"""

from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile, open_zip
from rnnbridge.formats.torch.containers import LEGACY_MAGIC, Loaded, load_legacy, load_zip, zip_root
from rnnbridge.formats.torch.state_dict import select, strip_module_prefix
from rnnbridge.formats.torch.storage import check_all, materialise

NAME = "torch"

_ZIP_MAGIC = b"PK\x03\x04"
_MAX_IGNORED_LISTED = 100

#: what a malformed stream makes the stdlib raise; all of it becomes MalformedFile
_PARSE_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    struct.error,
    NotImplementedError,  # zipfile: a zip version or compression method it lacks
    RuntimeError,  # zipfile: an encrypted member
    OverflowError,
    RecursionError,
    MemoryError,
)


@contextmanager
def _malformed(where: str) -> Iterator[None]:
    """Turn whatever parsing hostile bytes raises into MalformedFile."""
    try:
        yield
    except (MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded):
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedFile(f"{where}: {type(exc).__name__}: {exc}"[:1000]) from exc


def _first_member_is_data_pkl(head: bytes) -> bool:
    """torch writes data.pkl first: its local header names it even when the zip is cut."""
    if len(head) < 30 or not head.startswith(_ZIP_MAGIC):
        return False
    (name_length,) = struct.unpack_from("<H", head, 26)
    name = head[30 : 30 + name_length].decode("utf-8", "replace")
    return zip_root([name]) is not None


def _kind(file: InputFile) -> str | None:
    """Which layout ``file`` has, "zip" or "legacy", or None if it is no torch file."""
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(30 + 1024)
        if head.startswith(LEGACY_MAGIC):
            return "legacy"
        if _first_member_is_data_pkl(head):
            return "zip"
        if head.startswith(_ZIP_MAGIC):
            with open_zip(file.path) as archive:
                return "zip" if zip_root(archive.namelist()) is not None else None
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, IndexError):
        return None  # IndexError: zipfile's ZipInfo.is_dir on an empty member name
    return None


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether one of ``files`` is a ``torch.save`` file (zip or legacy), by its bytes.

    Parameters
    ----------
    files : sequence of InputFile
        The upload.

    Returns
    -------
    bool
        True if a file is a zip with a ``<root>/data.pkl`` member or starts with the
        pickled legacy magic number.
    """
    return any(_kind(file) is not None for file in files)


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read the state_dict of the one ``torch.save`` file among ``files``.

    Parameters
    ----------
    files : sequence of InputFile
        The upload; exactly one of its files must be a torch file.
    limits : Limits
        Bounds on tensor elements and on the bytes read.

    Returns
    -------
    WeightFile
        ``tensors`` maps state_dict keys to arrays in the stored dtype (bfloat16 widened
        to float32). Arrays may share memory when their tensors share a storage.
        ``attrs`` has ``container_key`` (the checkpoint key used, or None) and
        ``ignored_entries`` (entries that held no tensor).

    Raises
    ------
    UnsafeInput
        The pickle asks for a global outside the allow-list (code ``unsafe_pickle``).
    MalformedFile
        The bytes contradict themselves: bad zip, pickle, storage size or strides.
    UnsupportedFormat, LimitExceeded
    """
    found = [(f, kind) for f in files if (kind := _kind(f)) is not None]
    if len(found) != 1:
        raise UnsupportedFormat(f"expected one torch.save file in the upload, found {len(found)}")
    file, kind = found[0]
    with open(file.path, "rb") as stream, _malformed(file.name):
        if kind == "legacy":
            size = file.path.stat().st_size
            return _build(load_legacy(stream, size, file.name), limits, file.name)
        with open_zip(stream) as archive:
            return _build(load_zip(archive, file.name), limits, file.name)


def _build(loaded: Loaded, limits: Limits, where: str) -> WeightFile:
    selected, container_key, ignored = select(loaded.obj)
    notes = []
    if container_key is not None:
        notes.append(f"{where}: read the tensors under the checkpoint key {container_key!r}.")
    if strip_module_prefix(selected):
        notes.append(f"{where}: removed the 'module.' prefix (DataParallel) from every key.")
    check_all(selected, limits)
    raw: dict[str, np.ndarray] = {}
    tensors = {}
    for name, t in selected.items():
        if t.storage.key not in raw:
            raw[t.storage.key] = loaded.read_storage(t.storage)
        tensors[name] = materialise(name, t, raw[t.storage.key], loaded.big_endian)
    widened = [name for name, t in selected.items() if t.dtype == "bfloat16"]
    if widened:
        notes.append(f"{where}: bfloat16 widened exactly to float32: {', '.join(widened)}.")
    if len(ignored) > _MAX_IGNORED_LISTED:
        ignored = ignored[:_MAX_IGNORED_LISTED] + [f"... and {len(ignored) - _MAX_IGNORED_LISTED} more"]
    attrs = {"container_key": container_key, "ignored_entries": ignored}
    return WeightFile(format=NAME, tensors=tensors, attrs=attrs, notes=notes, bfloat16=set(widened))
