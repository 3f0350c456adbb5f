"""Pickles of NumPy arrays in nested dicts: Haiku ``params.pkl``, Paddle ``.pdparams``.

``pickle.dump(params)`` of a Haiku params dict (``{module: {param: ndarray}}``) and
``paddle.save(state_dict)`` (``{key: ndarray}``, plus ``StructuredToParameterName@@``, a dict
of strings) both write arrays the way NumPy reduces them::

    numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')   then BUILD with
        (1, shape, numpy.dtype('f4', False, True) [BUILD (3, '<', ...)], fortran, raw bytes)
    numpy._core.numeric._frombuffer(bytearray, dtype, shape, order)   (protocol 5)
    numpy._core.multiarray.scalar(dtype, raw bytes)                   (a NumPy scalar)
    _codecs.encode(str, 'latin1')                                     (bytes, protocol 2)

(``numpy.core`` in files from NumPy 1.x.)

Contract, as for ``torch.save`` files (``rnnbridge.formats.torch``): every opcode is scanned
first (``pickle_scan``), and the unpickler's ``find_class`` resolves only the names above,
to local factories that describe arrays; any other global is ``UnsafeInput``
(``unsafe_pickle``). A described array is checked before it becomes an array: a plain
numeric dtype (``b i u f c``, one of ``_DTYPE_CODES``), at most 32 dimensions, a byte
length equal to its element count times its item size, and the element bound of
``Limits``. Arrays are read-only views of the pickle's own bytes (no copy). The whole file
is read into memory, so its size is bounded by ``Limits.max_total_bytes``.

Nested dicts are flattened with ``/`` (``lstm/linear/w``) down to ``MAX_DEPTH`` levels;
string leaves go to ``attrs["strings"]`` (Paddle's structured-name map), other leaves are
listed in ``attrs["ignored_entries"]``. A top-level ``__meta__`` string (rnnbridge's own
output, see ``write``) is parsed, bounded, into ``attrs["meta"]``.

``write`` writes the other way: a flat ``{name: ndarray}`` dict (Paddle's ``.pdparams``,
which ``paddle.load`` returns as that dict), pickled by NumPy's own reducers at protocol 4.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from rnnbridge.errors import InvalidField, LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.json_arrays import loads_bounded
from rnnbridge.formats.meta import dumps
from rnnbridge.formats.torch.pickle_scan import UNSAFE_PICKLE, scan_opcodes

NAME = "numpy_pickle"
META_KEY = "__meta__"
#: the target framework whose layers ``write`` writes
TARGET = "paddle"
MAX_DEPTH = 32
MAX_NDIM = 32
_PROTOCOLS = (2, 3, 4, 5)
#: dtype codes of plain numbers (NumPy's ``dtype.str`` without the byte order)
_DTYPE_CODES = re.compile(r"(?:b1|\?|[iu][1248]|f[248]|c(?:8|16))")
_NUMPY_CORES = ("numpy.core", "numpy._core")


class _Refuses:
    def __setstate__(self, state: object) -> None:
        raise MalformedFile(f"the pickle sets state on a {type(self).__name__}")


class _NDArrayClass(_Refuses):
    """``numpy.ndarray``: only ever an argument of ``_reconstruct``."""


class _DType:
    """``numpy.dtype(code, align, copy)``; BUILD gives its byte order."""

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        if not isinstance(code, str) or _DTYPE_CODES.fullmatch(code) is None:
            raise UnsupportedFormat(f"the pickle holds an array of dtype {code!r:.40}, not a plain number")
        self.code, self.order = code, "|"

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
            raise MalformedFile(f"a dtype's state {state!r:.80} has no byte order")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        return np.dtype(self.code).newbyteorder("=" if self.order == "|" else self.order)  # type: ignore[arg-type]


class _Array:
    """An array the pickle describes; ``array`` exists once its state is checked."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise MalformedFile(f"an ndarray's state {state!r:.80} is not (1, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, data = state
        self.array = _checked(data, dtype, shape, "F" if fortran else "C", self.limits)


def _checked(data: object, dtype: object, shape: object, order: object, limits: Limits) -> np.ndarray:
    """The array of ``data`` bytes, once every declared size was checked against them."""
    if not isinstance(dtype, _DType):
        raise MalformedFile(f"an array's dtype is {type(dtype).__name__}, not numpy.dtype")
    if not (isinstance(shape, tuple) and len(shape) <= MAX_NDIM and all(type(n) is int and n >= 0 for n in shape)):
        raise MalformedFile(f"an array's shape {shape!r:.80} is not a tuple of at most {MAX_NDIM} ints >= 0")
    if not isinstance(data, (bytes, bytearray)):
        raise UnsupportedFormat("the pickle holds an array whose data is not raw bytes (an object array)")
    count, kind = math.prod(shape), dtype.numpy()
    if count > limits.max_tensor_elements:
        raise LimitExceeded(f"an array of shape {list(shape)} has more than {limits.max_tensor_elements} elements")
    if count * kind.itemsize != len(data):
        raise MalformedFile(f"an array of shape {list(shape)} and dtype {kind} has {len(data)} bytes of data")
    array = np.frombuffer(data, dtype=kind).reshape(shape, order="F" if order == "F" else "C")
    return array if kind.isnative else array.astype(kind.newbyteorder("="))


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, limits: Limits) -> None:
        super().__init__(io.BytesIO(data))
        self.limits = limits

    def find_class(self, module: str, name: str) -> Any:
        return _allowed(module, name, self.limits)

    def persistent_load(self, pid: Any) -> Any:
        raise MalformedFile("the pickle refers to external storage (a persistent id)")


def _allowed(module: str, name: str, limits: Limits) -> Any:
    """The local stand-in for ``module.name``; ``UnsafeInput`` for any other global."""
    for core in _NUMPY_CORES:
        if module.startswith(core + "."):
            module = "numpy.core" + module[len(core) :]
    factories: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDArrayClass,
        ("numpy", "dtype"): _DType,
        ("numpy.core.multiarray", "_reconstruct"): lambda cls, shape, code: _reconstruct(cls, limits),
        ("numpy.core.numeric", "_frombuffer"): lambda data, dtype, shape, order: _checked(
            data, dtype, shape, order, limits
        ),
        ("numpy.core.multiarray", "scalar"): lambda dtype, data=b"": _checked(data, dtype, (), "C", limits),
        ("_codecs", "encode"): _latin1,
        ("collections", "OrderedDict"): dict,
    }
    if (module, name) not in factories:
        raise UnsafeInput(
            f"the pickle asks for the global {module}.{name}, which is not a NumPy array building "
            "block; nothing from the file was run",
            code=UNSAFE_PICKLE,
            refused=f"{module}.{name}",
        )
    return factories[(module, name)]


def _reconstruct(cls: object, limits: Limits) -> _Array:
    if cls is not _NDArrayClass:
        raise UnsafeInput("the pickle reconstructs an array subclass", code=UNSAFE_PICKLE, refused=str(cls)[:80])
    return _Array(limits)


def _latin1(text: object, encoding: object = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafeInput("the pickle calls _codecs.encode other than on latin-1 text", code=UNSAFE_PICKLE)
    return text.encode("latin1")


def _check_global(module: str, name: str) -> object:
    return _allowed(module, name, Limits())


def _is_pickle(file: InputFile) -> bool:
    try:
        with open(file.path, "rb") as stream:
            head = stream.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and head[1] in _PROTOCOLS


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` starts like a pickle (protocol 2 to 5) and is not a
    safetensors file whose header length happens to start with the same two bytes
    (``0x80 0x04``: a 1152-byte header)."""
    from rnnbridge.formats.safetensors import file as safetensors_file

    return sum(_is_pickle(f) and not safetensors_file.sniff([f]) for f in files) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """The arrays of the one pickle among ``files``, by their ``/``-joined dict path."""
    file = next(f for f in files if _is_pickle(f))
    size = file.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{file.name}: {size} bytes is more than the {limits.max_total_bytes} read at most")
    data = file.path.read_bytes()
    try:
        end = scan_opcodes(data, file.name, _check_global)
        obj = _Unpickler(data[:end], limits).load()
    except (ValueError, EOFError, pickle.UnpicklingError, TypeError, IndexError, KeyError) as exc:
        raise MalformedFile(f"{file.name} is not a readable pickle: {exc}"[:300]) from None
    if not isinstance(obj, dict):
        raise UnsupportedFormat(f"{file.name} pickles a {type(obj).__name__}, not a dict of arrays")
    meta = obj.pop(META_KEY, None)
    weights = WeightFile(NAME, {}, {"strings": {}, "ignored_entries": []})
    if isinstance(meta, str):
        weights.attrs["meta"] = loads_bounded(meta, what=f"pickle '{META_KEY}'")
    _flatten(obj, "", 0, weights)
    return weights


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Pickle ``{name: array, "__meta__": <meta as JSON>}`` (protocol 4; C-contiguous arrays,
    native byte order, as ``paddle.save`` writes them) to ``stream``: the ``pdparams`` output
    of a Paddle conversion, which ``paddle.load`` returns as a dict."""
    if meta.get("target") not in (None, TARGET):
        raise InvalidField("format=pdparams writes Paddle weights: use it with target=paddle", field="format")
    if META_KEY in arrays:
        raise InvalidField(f"an output array may not be named {META_KEY!r}", field="format")
    obj: dict[str, object] = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    obj[META_KEY] = dumps(meta)
    pickle.dump(obj, stream, protocol=4)


def _flatten(obj: dict, path: str, depth: int, weights: WeightFile) -> None:
    if depth >= MAX_DEPTH:
        raise LimitExceeded(f"the pickle nests dicts deeper than {MAX_DEPTH} levels (at {path[:200]!r})")
    for key, value in obj.items():
        name = f"{path}/{key}" if path else str(key)
        if isinstance(value, dict):
            _flatten(value, name, depth + 1, weights)
        elif isinstance(value, _Array) and value.array is not None:
            weights.tensors[name] = value.array
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            weights.tensors[name] = value
        elif isinstance(value, str):
            weights.attrs["strings"][name] = value
        else:
            weights.attrs["ignored_entries"].append(name)
