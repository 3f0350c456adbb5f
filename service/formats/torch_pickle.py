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
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from service.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from service.formats.base import InputFile, Limits, WeightFile

NAME = "torch"

#: how ``pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`` starts every legacy file
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
_LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
#: the largest pickle stream read; real state_dict pickles are a few MB at most
MAX_PICKLE_BYTES = 64 * 1024**2
_MAX_DEPTH = 64
_MAX_NODES = 1_000_000
_MAX_IGNORED_LISTED = 100
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_UNSAFE = "unsafe_pickle"

#: storage classes of torch.save, by name, and the element type they hold
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
#: ``torch.<dtype>`` globals (arguments of _rebuild_tensor_v3); None = no NumPy type
_TORCH_DTYPES: dict[str, str | None] = {
    **{name: name for name in ("float16", "float32", "float64", "bfloat16", "bool")},
    **{name: name for name in ("int8", "int16", "int32", "int64", "complex64", "complex128")},
    **{name: name for name in ("uint8", "uint16", "uint32", "uint64")},
    **dict.fromkeys(
        ("float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "complex32")
    ),
}

#: opcodes a torch.save pickle uses, plus harmless literals; anything else is refused
_ALLOWED_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID "
    "PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET NONE NEWTRUE NEWFALSE "
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT "
    "STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 "
    "BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 "
    "EMPTY_LIST LIST APPEND APPENDS EMPTY_DICT DICT SETITEM SETITEMS "
    "EMPTY_SET ADDITEMS FROZENSET".split()
)
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})

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


# --------------------------------------------------------------------------- #
# What the pickle may build: plain descriptions, never torch objects.
# --------------------------------------------------------------------------- #


class _Refuses:
    """BUILD on one of our objects would set attributes chosen by the file.

    (The subclasses are dataclasses without ``slots=True``: frozen slotted dataclasses
    get a generated ``__setstate__`` that would take precedence over this one.)
    """

    def __setstate__(self, state: object) -> None:
        raise MalformedFile(f"the pickle sets state on a {type(self).__name__[1:]}")


@dataclass(frozen=True)
class _StorageType(_Refuses):
    dtype: str


@dataclass(frozen=True)
class _Storage(_Refuses):
    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class _Tensor(_Refuses):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str


class _OrderedDict(dict):  # type: ignore[type-arg]
    """collections.OrderedDict; torch BUILDs a ``_metadata`` attribute on it, dropped."""

    def __setstate__(self, state: object) -> None:
        pass


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > 64:
        raise MalformedFile(f"tensor {what} is {value!r}, not a tuple of at most 64 ints")
    if not all(type(v) is int and v >= 0 for v in value):
        raise MalformedFile(f"tensor {what} {value!r} holds a value that is not an int >= 0")
    return tuple(value)


def _tensor(storage: object, offset: object, size: object, stride: object, dtype: str | None):
    if not isinstance(storage, _Storage):
        raise MalformedFile(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    if type(offset) is not int or offset < 0:
        raise MalformedFile(f"tensor storage offset {offset!r} is not an int >= 0")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise MalformedFile(f"tensor size {shape} and stride {strides} differ in length")
    return _Tensor(storage, offset, shape, strides, dtype or storage.dtype)


def _rebuild_tensor(storage, storage_offset, size, stride):  # type: ignore[no-untyped-def]
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(  # type: ignore[no-untyped-def]
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
):
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(  # type: ignore[no-untyped-def]
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None
):
    if not isinstance(dtype, _StorageType):
        raise MalformedFile(f"_rebuild_tensor_v3 names dtype {dtype!r}, not a torch dtype")
    if isinstance(storage, _Storage) and storage.dtype != "uint8":
        raise MalformedFile(f"_rebuild_tensor_v3 over a typed {storage.dtype} storage")
    return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks):  # type: ignore[no-untyped-def]
    if not isinstance(data, _Tensor):
        raise MalformedFile(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(  # type: ignore[no-untyped-def]
    data, requires_grad, backward_hooks, state
):
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_REBUILDERS = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


def _allowed_global(module: str, name: str) -> object:
    """The local stand-in for ``module.name``, or None when it is not allowed."""
    if (module, name) == ("collections", "OrderedDict"):
        return _OrderedDict
    if module == "torch._utils" and name in _REBUILDERS:
        return _REBUILDERS[name]
    if module == "torch._utils" and name.startswith("_rebuild_"):
        raise UnsupportedFormat(
            f"the file holds tensors rebuilt by torch._utils.{name} (sparse, quantized or "
            "device tensors), which are not supported"
        )
    if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
        return _StorageType(_STORAGE_DTYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:
        return _StorageType(_TORCH_DTYPES[name] or name)
    return None


def _refuse_unless_allowed(module: str, name: str) -> object:
    found = _allowed_global(module, name)
    if found is None:
        raise UnsafeInput(
            f"the pickle asks for the global {module}.{name}, which is not a tensor "
            "building block; nothing from the file was run",
            code=_UNSAFE,
            refused=f"{module}.{name}",
        )
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals, to local factories; records storages."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        return _refuse_unless_allowed(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise MalformedFile(f"unknown persistent id {pid!r:.200}")
        _, storage_type, key, _location, numel, *view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise MalformedFile(f"persistent id {pid!r:.200} names no storage type and key")
        if type(numel) is not int or numel < 0 or view not in ([], [None]):
            raise MalformedFile(f"persistent id {pid!r:.200} has a bad size or a storage view")
        storage = _Storage(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise MalformedFile(
                f"storage {key!r} is declared twice, as {storage_type.dtype} "
                f"and {self.storages[key].dtype}"
            )
        return storage


# --------------------------------------------------------------------------- #
# Pickle streams
# --------------------------------------------------------------------------- #


def _scan_opcodes(data: bytes, where: str) -> int:
    """Check every opcode of the pickle at the start of ``data``; return where it ends."""
    stream = io.BytesIO(data)
    puts = 0
    for opcode, arg, pos in pickletools.genops(stream):
        if opcode.name not in _ALLOWED_OPCODES:
            raise UnsafeInput(
                f"{where}: pickle opcode {opcode.name} at byte {pos} would build an "
                "arbitrary object; refused, nothing from the file was run",
                code=_UNSAFE,
                refused=opcode.name,
            )
        if opcode.name == "GLOBAL":
            _refuse_unless_allowed(*str(arg).partition(" ")[::2])
        elif opcode.name in _MEMO_PUTS:
            # picklers number the memo from 0; a far index only serves to allocate
            if type(arg) is not int or arg > puts:
                raise MalformedFile(f"{where}: memo index {arg} at byte {pos} skips ahead")
            puts += 1
        elif opcode.name == "MEMOIZE":
            puts += 1
    return stream.tell()


def _unpickle(data: bytes, where: str) -> tuple[Any, dict[str, _Storage]]:
    end = _scan_opcodes(data, where)
    unpickler = _RestrictedUnpickler(io.BytesIO(data[:end]))
    return unpickler.load(), unpickler.storages


@contextmanager
def _malformed(where: str) -> Iterator[None]:
    """Turn whatever parsing hostile bytes raises into MalformedFile."""
    try:
        yield
    except (MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded):
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedFile(f"{where}: {type(exc).__name__}: {exc}"[:1000]) from exc


# --------------------------------------------------------------------------- #
# Choosing the tensors
# --------------------------------------------------------------------------- #


@dataclass
class _Walk:
    tensors: dict[str, _Tensor]
    ignored: list[str]
    nodes: int = 0


def _join(prefix: str, key: object) -> str | None:
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        return None
    return f"{prefix}.{key}" if prefix else str(key)


def _walk(node: object, path: str, walk: _Walk, depth: int) -> bool:
    """Add the tensors under ``node`` to ``walk``; return whether there were any."""
    walk.nodes += 1
    if walk.nodes > _MAX_NODES or depth > _MAX_DEPTH:
        raise MalformedFile(
            f"the pickled object is nested deeper than {_MAX_DEPTH} levels "
            f"or has more than {_MAX_NODES} entries (at {path!r:.200})"
        )
    if isinstance(node, _Tensor):
        if path in walk.tensors:
            raise MalformedFile(f"two tensors are named {path!r}", tensor=path)
        walk.tensors[path] = node
        return True
    if not isinstance(node, dict):
        walk.ignored.append(path)
        return False
    ignored_before = len(walk.ignored)
    found = False
    for key, value in node.items():
        child = _join(path, key)
        if child is None:
            walk.ignored.append(f"{path}[{key!r:.50}]")
        else:
            found = _walk(value, child, walk, depth + 1) or found
    if not found and path:
        del walk.ignored[ignored_before:]  # one entry for a subtree without tensors
        walk.ignored.append(path)
    return found


def _flatten(node: object) -> _Walk:
    walk = _Walk({}, [])
    _walk(node, "", walk, 0)
    return walk


def _select(obj: object) -> tuple[dict[str, _Tensor], str | None, list[str]]:
    """The tensors to read, the checkpoint key they came from, and what was ignored."""
    if not isinstance(obj, dict):
        what = "single tensor" if isinstance(obj, _Tensor) else type(obj).__name__
        raise UnsupportedFormat(f"the file holds a {what}, not a state_dict or checkpoint dict")
    for key in _CONTAINER_KEYS:
        if isinstance(obj.get(key), dict):
            walk = _flatten(obj[key])
            if walk.tensors:
                others = [str(k) for k in obj if k != key]
                return walk.tensors, key, others + walk.ignored
    walk = _flatten(obj)
    return walk.tensors, None, walk.ignored


def _strip_module_prefix(tensors: dict[str, _Tensor]) -> bool:
    prefix = "module."
    if not tensors or not all(name.startswith(prefix) for name in tensors):
        return False
    stripped = {name[len(prefix) :]: t for name, t in tensors.items()}
    tensors.clear()
    tensors.update(stripped)
    return True


# --------------------------------------------------------------------------- #
# Storages and tensors
# --------------------------------------------------------------------------- #


def _numpy_dtype(dtype: str, name: str, big_endian: bool) -> np.dtype:
    if _TORCH_DTYPES.get(dtype, dtype) is None:
        raise UnsupportedFormat(
            f"tensor {name!r} has dtype torch.{dtype}, which NumPy cannot hold", tensor=name
        )
    stored = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return stored.newbyteorder(">" if big_endian else "<")


def _storage_nbytes(storage: _Storage) -> int:
    return storage.numel * _numpy_dtype(storage.dtype, storage.key, False).itemsize


def _check_tensor(name: str, t: _Tensor, limits: Limits) -> None:
    """Check shape, strides and offset against the storage and the limits."""
    count = math.prod(t.size)
    if count > limits.max_tensor_elements:
        raise LimitExceeded(
            f"tensor {name!r} has {count} elements, more than the limit of "
            f"{limits.max_tensor_elements}",
            tensor=name,
        )
    itemsize = _numpy_dtype(t.dtype, name, False).itemsize
    available = _storage_nbytes(t.storage) // itemsize
    if _storage_nbytes(t.storage) % itemsize:
        raise MalformedFile(
            f"tensor {name!r}: storage {t.storage.key!r} of "
            f"{_storage_nbytes(t.storage)} bytes is no whole number of {t.dtype}",
            tensor=name,
        )
    if count == 0:
        return
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
    if last >= available:
        raise MalformedFile(
            f"tensor {name!r} (size {t.size}, stride {t.stride}, offset {t.offset}) reaches "
            f"element {last} of storage {t.storage.key!r}, which holds {available}",
            tensor=name,
        )


def _materialise(name: str, t: _Tensor, raw: np.ndarray, big_endian: bool) -> np.ndarray:
    """The array for ``t`` from its storage's bytes (``raw``, uint8), as checked above."""
    stored = _numpy_dtype(t.dtype, name, big_endian)
    if math.prod(t.size) == 0:
        array = np.empty(t.size, dtype=stored)
    else:
        elements = raw[: raw.size - raw.size % stored.itemsize].view(stored)
        strides = tuple(s * stored.itemsize for s in t.stride)
        array = np.lib.stride_tricks.as_strided(elements[t.offset :], t.size, strides)
    if t.dtype == "bfloat16":
        return (array.astype("<u4") << 16).view(np.float32)
    if t.dtype == "bool":  # bytes other than 0 and 1 would make odd NumPy bools
        return array.view(np.uint8) != 0
    if big_endian or not array.flags.c_contiguous:
        return array.astype(stored.newbyteorder("="))
    return array


def _read_into(stream: BinaryIO, nbytes: int, what: str) -> np.ndarray:
    buffer = np.empty(nbytes, dtype=np.uint8)
    got = stream.readinto(memoryview(buffer))
    if got != nbytes:
        raise MalformedFile(f"{what}: expected {nbytes} bytes, found {got}")
    return buffer


def _check_all(tensors: dict[str, _Tensor], limits: Limits) -> None:
    for name, t in tensors.items():
        _check_tensor(name, t, limits)
    used = {t.storage.key: t.storage for t in tensors.values()}
    total = sum(_storage_nbytes(s) for s in used.values())
    if total > limits.max_total_bytes:
        raise LimitExceeded(
            f"the tensors' storages hold {total} bytes, more than the limit of "
            f"{limits.max_total_bytes}"
        )


# --------------------------------------------------------------------------- #
# The two containers
# --------------------------------------------------------------------------- #


@dataclass
class _Loaded:
    obj: Any
    read_storage: Callable[[_Storage], np.ndarray]  # the storage's bytes, as uint8
    big_endian: bool = False


def _zip_root(names: Sequence[str]) -> str | None:
    roots = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return roots[0] if len(roots) == 1 else None


def _load_zip(archive: zipfile.ZipFile, where: str) -> _Loaded:
    names = archive.namelist()
    root = _zip_root(names)
    if root is None:
        raise MalformedFile(f"{where}: no single <root>/data.pkl member in the zip")
    if any(n.startswith((f"{root}/code/", f"{root}/constants.pkl")) for n in names):
        raise UnsupportedFormat(
            f"{where} is a TorchScript archive (torch.jit.save); "
            "save the model's state_dict with torch.save instead"
        )
    info = archive.getinfo(f"{root}/data.pkl")
    if info.file_size > MAX_PICKLE_BYTES:
        raise LimitExceeded(
            f"{where}: data.pkl is {info.file_size} bytes, more than {MAX_PICKLE_BYTES}"
        )
    obj, storages = _unpickle(archive.read(info), f"{where}: {root}/data.pkl")
    del storages  # every storage is found by its key in the zip
    return _Loaded(
        obj, lambda s: _read_zip_storage(archive, root, s), _zip_big_endian(archive, root)
    )


def _zip_big_endian(archive: zipfile.ZipFile, root: str) -> bool:
    try:
        info = archive.getinfo(f"{root}/byteorder")
    except KeyError:
        return False
    order = archive.read(info) if info.file_size <= 8 else b"(too long)"
    if order not in (b"little", b"big"):
        raise MalformedFile(f"{root}/byteorder says {order!r}, not 'little' or 'big'")
    return order == b"big"


def _read_zip_storage(archive: zipfile.ZipFile, root: str, storage: _Storage) -> np.ndarray:
    member = f"{root}/data/{storage.key}"
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise MalformedFile(f"storage {storage.key!r} has no member {member}") from None
    nbytes = _storage_nbytes(storage)
    if info.file_size != nbytes:
        raise MalformedFile(
            f"storage {storage.key!r} declares {storage.numel} {storage.dtype} "
            f"({nbytes} bytes) but {member} holds {info.file_size} bytes"
        )
    with archive.open(info) as stream:
        return _read_into(stream, nbytes, member)


def _next_pickle(stream: BinaryIO, where: str) -> tuple[Any, dict[str, _Storage]]:
    """Unpickle the pickle at the stream position and move past it."""
    start, size = stream.tell(), 1 << 16
    while True:
        stream.seek(start)
        window = stream.read(size)
        try:
            end = _scan_opcodes(window, f"{where} at byte {start}")
            break
        except ValueError:  # the pickle may go on past the window: widen it
            if len(window) < size or size >= MAX_PICKLE_BYTES:
                raise
            size *= 4
    stream.seek(start + end)
    return _unpickle(window[:end], f"{where} at byte {start}")


def _load_legacy(stream: BinaryIO, size: int, where: str) -> _Loaded:
    """The five pickles, then the storage table: key -> byte offset of its data."""
    header = [_next_pickle(stream, where)[0] for _ in range(3)]
    magic, version, sys_info = header
    if magic != 0x1950A86A20F9469CFC6C or version != _LEGACY_PROTOCOL_VERSION:
        raise UnsupportedFormat(
            f"{where}: legacy torch file of protocol {version!r}; "
            "re-save it with torch >= 1.6 (zip serialization)"
        )
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise UnsupportedFormat(
            f"{where}: big-endian legacy torch file; re-save it with "
            "torch >= 1.6 (zip serialization)"
        )
    obj, storages = _next_pickle(stream, where)
    keys = _next_pickle(stream, where)[0]
    if not isinstance(keys, list) or sorted(keys, key=str) != sorted(storages):
        raise MalformedFile(
            f"{where}: the storage key list does not match the storages the object uses"
        )
    offsets = _legacy_offsets(stream, size, keys, storages, where)

    def read_storage(storage: _Storage) -> np.ndarray:
        stream.seek(offsets[storage.key])
        return _read_into(stream, _storage_nbytes(storage), f"{where}: storage {storage.key!r}")

    return _Loaded(obj, read_storage)


def _legacy_offsets(
    stream: BinaryIO, size: int, keys: list[str], storages: dict[str, _Storage], where: str
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
        position += 8 + _storage_nbytes(storage)
        if position > size:
            raise MalformedFile(
                f"{where}: storage {key!r} ends at byte {position}, past the "
                f"end of the file ({size} bytes)"
            )
    return offsets


# --------------------------------------------------------------------------- #
# Public entry points
# --------------------------------------------------------------------------- #


def _first_member_is_data_pkl(head: bytes) -> bool:
    """torch writes data.pkl first: its local header names it even when the zip is cut."""
    if len(head) < 30 or not head.startswith(_ZIP_MAGIC):
        return False
    (name_length,) = struct.unpack_from("<H", head, 26)
    name = head[30 : 30 + name_length].decode("utf-8", "replace")
    return _zip_root([name]) is not None


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
            with zipfile.ZipFile(file.path) as archive:
                return "zip" if _zip_root(archive.namelist()) is not None else None
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
            return _build(_load_legacy(stream, size, file.name), limits, file.name)
        with zipfile.ZipFile(stream) as archive:
            return _build(_load_zip(archive, file.name), limits, file.name)


def _build(loaded: _Loaded, limits: Limits, where: str) -> WeightFile:
    selected, container_key, ignored = _select(loaded.obj)
    notes = []
    if container_key is not None:
        notes.append(f"{where}: read the tensors under the checkpoint key {container_key!r}.")
    if _strip_module_prefix(selected):
        notes.append(f"{where}: removed the 'module.' prefix (DataParallel) from every key.")
    _check_all(selected, limits)
    raw: dict[str, np.ndarray] = {}
    tensors = {}
    for name, t in selected.items():
        if t.storage.key not in raw:
            raw[t.storage.key] = loaded.read_storage(t.storage)
        tensors[name] = _materialise(name, t, raw[t.storage.key], loaded.big_endian)
    widened = [name for name, t in selected.items() if t.dtype == "bfloat16"]
    if widened:
        notes.append(f"{where}: bfloat16 widened exactly to float32: {', '.join(widened)}.")
    if len(ignored) > _MAX_IGNORED_LISTED:
        ignored = ignored[:_MAX_IGNORED_LISTED] + [
            f"... and {len(ignored) - _MAX_IGNORED_LISTED} more"
        ]
    attrs = {"container_key": container_key, "ignored_entries": ignored}
    return WeightFile(format=NAME, tensors=tensors, attrs=attrs, notes=notes, bfloat16=set(widened))
