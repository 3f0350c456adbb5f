"""The two containers of ``torch.save``: where the pickle and the storages' bytes are.

Zip (torch >= 1.6, the default)::

    <root>/data.pkl          the pickle of the saved object
    <root>/data/<key>        the raw bytes of storage <key>
    <root>/byteorder         "little" or "big" (optional; absent means little)
    <root>/code/, constants.pkl   present in TorchScript archives, which are refused

Legacy (``_use_new_zipfile_serialization=False``): one stream holding five pickles
(:data:`LEGACY_MAGIC`'s number, protocol version 1001, sys_info, the object, the sorted
list of storage keys), then for each key an int64 element count and the raw storage.

Both loaders return a :class:`Loaded`: the unpickled object and a function that reads a
storage's bytes once its size was checked against what the container holds.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.torch.storage import read_into, storage_nbytes
from rnnbridge.formats.torch.unpickler import MAX_PICKLE_BYTES, Storage, next_pickle, unpickle

#: how ``pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`` starts every legacy file
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
_LEGACY_PROTOCOL_VERSION = 1001


@dataclass
class Loaded:
    """The unpickled object, and how to read a storage's bytes (as uint8)."""

    obj: Any
    read_storage: Callable[[Storage], np.ndarray]
    big_endian: bool = False


def zip_root(names: Sequence[str]) -> str | None:
    """The ``<root>`` of the one ``<root>/data.pkl`` among zip member ``names``, if one."""
    roots = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return roots[0] if len(roots) == 1 else None


def load_zip(archive: zipfile.ZipFile, where: str) -> Loaded:
    """Unpickle ``<root>/data.pkl``; storages are read from ``<root>/data/<key>``."""
    names = archive.namelist()
    root = zip_root(names)
    if root is None:
        raise MalformedFile(f"{where}: no single <root>/data.pkl member in the zip")
    if any(n.startswith((f"{root}/code/", f"{root}/constants.pkl")) for n in names):
        raise UnsupportedFormat(
            f"{where} is a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead"
        )
    info = archive.getinfo(f"{root}/data.pkl")
    if info.file_size > MAX_PICKLE_BYTES:
        raise LimitExceeded(f"{where}: data.pkl is {info.file_size} bytes, more than {MAX_PICKLE_BYTES}")
    obj, storages = unpickle(archive.read(info), f"{where}: {root}/data.pkl")
    del storages  # every storage is found by its key in the zip
    return Loaded(obj, lambda s: _read_zip_storage(archive, root, s), _zip_big_endian(archive, root))


def _zip_big_endian(archive: zipfile.ZipFile, root: str) -> bool:
    try:
        info = archive.getinfo(f"{root}/byteorder")
    except KeyError:
        return False
    order = archive.read(info) if info.file_size <= 8 else b"(too long)"
    if order not in (b"little", b"big"):
        raise MalformedFile(f"{root}/byteorder says {order!r}, not 'little' or 'big'")
    return order == b"big"


def _read_zip_storage(archive: zipfile.ZipFile, root: str, storage: Storage) -> np.ndarray:
    member = f"{root}/data/{storage.key}"
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise MalformedFile(f"storage {storage.key!r} has no member {member}") from None
    nbytes = storage_nbytes(storage)
    if info.file_size != nbytes:
        raise MalformedFile(
            f"storage {storage.key!r} declares {storage.numel} {storage.dtype} "
            f"({nbytes} bytes) but {member} holds {info.file_size} bytes"
        )
    with archive.open(info) as stream:  # a zipfile.ZipExtFile, which typeshed calls IO[bytes]
        return read_into(cast(io.BufferedIOBase, stream), nbytes, member)


def load_legacy(stream: io.BufferedIOBase, size: int, where: str) -> Loaded:
    """The five pickles, then the storage table: key -> byte offset of its data."""
    header = [next_pickle(stream, where)[0] for _ in range(3)]
    magic, version, sys_info = header
    if magic != 0x1950A86A20F9469CFC6C or version != _LEGACY_PROTOCOL_VERSION:
        raise UnsupportedFormat(
            f"{where}: legacy torch file of protocol {version!r}; re-save it with torch >= 1.6 (zip serialization)"
        )
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise UnsupportedFormat(
            f"{where}: big-endian legacy torch file; re-save it with torch >= 1.6 (zip serialization)"
        )
    obj, storages = next_pickle(stream, where)
    keys = next_pickle(stream, where)[0]
    if not isinstance(keys, list) or sorted(keys, key=str) != sorted(storages):
        raise MalformedFile(f"{where}: the storage key list does not match the storages the object uses")
    offsets = _legacy_offsets(stream, size, keys, storages, where)

    def read_storage(storage: Storage) -> np.ndarray:
        stream.seek(offsets[storage.key])
        return read_into(stream, storage_nbytes(storage), f"{where}: storage {storage.key!r}")

    return Loaded(obj, read_storage)


def _legacy_offsets(
    stream: io.BufferedIOBase, size: int, keys: list[str], storages: dict[str, Storage], where: str
) -> dict[str, int]:
    offsets = {}
    position = stream.tell()
    for key in keys:
        stream.seek(position)
        (numel,) = struct.unpack("<q", stream.read(8))
        storage = storages[key]
        if numel != storage.numel:
            raise MalformedFile(
                f"{where}: storage {key!r} at byte {position} holds {numel} "
                f"elements, its tensors declare {storage.numel}"
            )
        offsets[key] = position + 8
        position += 8 + storage_nbytes(storage)
        if position > size:
            raise MalformedFile(
                f"{where}: storage {key!r} ends at byte {position}, past the end of the file ({size} bytes)"
            )
    return offsets
