"""The restricted unpickler of ``torch.save`` pickles, and what it may build.

A torch pickle names its tensors as REDUCE calls of ``torch._utils._rebuild_tensor_v2``
(and kin) over persistent ids ``('storage', <torch.FloatStorage>, '<key>', 'cpu', numel)``;
legacy files add a sixth item, the storage view (always None since torch 1.0).

Contract: ``find_class`` maps a short allow-list of torch names to local factories that
only *describe* tensors (:class:`Storage`, :class:`Tensor`: storage, offset, shape and
strides, all type-checked) and refuses every other global with ``UnsafeInput`` (code
``unsafe_pickle``); tensor kinds torch rebuilds otherwise (sparse, quantized, device) are
``UnsupportedFormat``. Every stream is scanned by :mod:`~rnnbridge.formats.torch.pickle_scan`
before it is unpickled. Nothing from the file is executed.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any, BinaryIO

from rnnbridge.errors import MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import quote
from rnnbridge.formats.torch.pickle_scan import UNSAFE_PICKLE, scan_opcodes

#: the largest pickle stream read; real state_dict pickles are a few MB at most
MAX_PICKLE_BYTES = 64 * 1024**2

#: storage classes of torch.save, by name, and the element type they hold
STORAGE_DTYPES = {
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
TORCH_DTYPES: dict[str, str | None] = {
    **{name: name for name in ("float16", "float32", "float64", "bfloat16", "bool")},
    **{name: name for name in ("int8", "int16", "int32", "int64", "complex64", "complex128")},
    **{name: name for name in ("uint8", "uint16", "uint32", "uint64")},
    **dict.fromkeys(("float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "complex32")),
}


# --------------------------------------------------------------------------- #
# What the pickle may build: plain descriptions, never torch objects.
# --------------------------------------------------------------------------- #


class _Refuses:
    """BUILD on one of our objects would set attributes chosen by the file.

    (The subclasses are dataclasses without ``slots=True``: frozen slotted dataclasses
    get a generated ``__setstate__`` that would take precedence over this one.)
    """

    def __setstate__(self, state: object) -> None:
        raise MalformedFile(f"the pickle sets state on a {type(self).__name__}")


@dataclass(frozen=True)
class StorageType(_Refuses):
    """A ``torch.<X>Storage`` class or a ``torch.<dtype>``: the element type it names."""

    dtype: str


@dataclass(frozen=True)
class Storage(_Refuses):
    """A storage a persistent id declares: its key in the file, element type and count."""

    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class Tensor(_Refuses):
    """A view of ``storage``: element offset, size and strides (in elements), dtype."""

    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: str


class _OrderedDict(dict[object, object]):
    """collections.OrderedDict; torch BUILDs a ``_metadata`` attribute on it, dropped."""

    def __setstate__(self, state: object) -> None:
        pass


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > 64:
        raise MalformedFile(f"tensor {what} is {quote(value)}, not a tuple of at most 64 ints")
    if not all(type(v) is int and v >= 0 for v in value):
        raise MalformedFile(f"tensor {what} {quote(value)} holds a value that is not an int >= 0")
    return tuple(value)


def _tensor(storage: object, offset: object, size: object, stride: object, dtype: str | None) -> Tensor:
    if not isinstance(storage, Storage):
        raise MalformedFile(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    if type(offset) is not int or offset < 0:
        raise MalformedFile(f"tensor storage offset {quote(offset)} is not an int >= 0")
    shape, strides = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(strides):
        raise MalformedFile(f"tensor size {shape} and stride {strides} differ in length")
    return Tensor(storage, offset, shape, strides, dtype or storage.dtype)


def _rebuild_tensor(storage: object, storage_offset: object, size: object, stride: object) -> Tensor:
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    metadata: object = None,
) -> Tensor:
    return _tensor(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    dtype: object,
    metadata: object = None,
) -> Tensor:
    if not isinstance(dtype, StorageType):
        raise MalformedFile(f"_rebuild_tensor_v3 names dtype {quote(dtype)}, not a torch dtype")
    if isinstance(storage, Storage) and storage.dtype != "uint8":
        raise MalformedFile(f"_rebuild_tensor_v3 over a typed {storage.dtype} storage")
    return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object) -> Tensor:
    if not isinstance(data, Tensor):
        raise MalformedFile(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(data: object, requires_grad: object, backward_hooks: object, state: object) -> Tensor:
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_REBUILDERS = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


# --------------------------------------------------------------------------- #
# The allow-list and the unpickler
# --------------------------------------------------------------------------- #


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
    if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
        return StorageType(STORAGE_DTYPES[name])
    if module == "torch" and name in TORCH_DTYPES:
        return StorageType(TORCH_DTYPES[name] or name)
    return None


def refuse_unless_allowed(module: str, name: str) -> object:
    """The local stand-in for the global ``module.name``; ``UnsafeInput`` if there is none."""
    found = _allowed_global(module, name)
    if found is None:
        raise UnsafeInput(
            f"the pickle asks for the global {module}.{name}, which is not a tensor "
            "building block; nothing from the file was run",
            code=UNSAFE_PICKLE,
            refused=f"{module}.{name}",
        )
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals, to local factories; records storages."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        return refuse_unless_allowed(module, name)

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise MalformedFile(f"unknown persistent id {quote(pid)}")
        _, storage_type, key, _location, numel, *view = pid
        if not isinstance(storage_type, StorageType) or not isinstance(key, str):
            raise MalformedFile(f"persistent id {quote(pid)} names no storage type and key")
        if type(numel) is not int or numel < 0 or view not in ([], [None]):
            raise MalformedFile(f"persistent id {quote(pid)} has a bad size or a storage view")
        storage = Storage(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise MalformedFile(
                f"storage {key!r} is declared twice, as {storage_type.dtype} and {self.storages[key].dtype}"
            )
        return storage


def unpickle(data: bytes, where: str) -> tuple[Any, dict[str, Storage]]:
    """Scan, then unpickle, the pickle at the start of ``data``.

    Returns the object and the storages its persistent ids declared, by key.
    """
    end = scan_opcodes(data, where, refuse_unless_allowed)
    unpickler = _RestrictedUnpickler(io.BytesIO(data[:end]))
    return unpickler.load(), unpickler.storages


def next_pickle(stream: io.BufferedIOBase, where: str) -> tuple[Any, dict[str, Storage]]:
    """Unpickle the pickle at the stream position and move past it (as :func:`unpickle`)."""
    start, size = stream.tell(), 1 << 16
    while True:
        stream.seek(start)
        window = stream.read(size)
        try:
            end = scan_opcodes(window, f"{where} at byte {start}", refuse_unless_allowed)
            break
        except ValueError:  # the pickle may go on past the window: widen it
            if len(window) < size or size >= MAX_PICKLE_BYTES:
                raise
            size *= 4
    stream.seek(start + end)
    return unpickle(window[:end], f"{where} at byte {start}")
