"""JSON arrays: rnnbridge's own JSON output, or a plain object of nested lists.

Two shapes are accepted::

    {"arrays": {"<name>": {"dtype": "float32", "shape": [4, 24], "data": [0.1, ...]}},
     "meta": {...}}                                  # data flat, C order

    {"<name>": [[0.1, 0.2], [0.3, 0.4]], ...}        # nested lists, read as float32

In the first shape non-finite values may be written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (Python's bare ``NaN`` / ``Infinity`` literals are
accepted too). ``dtype`` is one of float16, float32, float64; Python parses every number
to float64 and the reader casts it to the declared dtype, which reproduces the stored
value exactly when the writer printed the shortest repr of that dtype (float64 carries
more than twice the precision of float32 and float16, so the double rounding is exact).

The document is bounded before it is parsed, by one linear-time pass over the raw text
(:func:`json_census`): its size (``MAX_JSON_BYTES``), its nesting depth (``MAX_DEPTH``, so
that ``json.loads`` never recurses deeper) and the number of values it would create
(``MAX_JSON_VALUES``: every value costs ``json.loads`` a Python object of 24 to 100 bytes
however few bytes of text it takes, ``[]`` two, ``0,`` two). :func:`loads_bounded` is
shared with the readers of JSON metadata (npz ``__meta__``, ``.keras`` config, HDF5
``model_config``), which pass tighter bounds (``MAX_META_VALUES``).

Memory: reading a JSON arrays document of ``n`` bytes takes at most about ``3 n`` bytes of
text copies plus ~50 bytes per value (``MAX_JSON_VALUES`` x 50 = 210 MB at most).

The writer (``write``, ``to_json``) produces the first shape: ``data`` is the flat C-order
list of exact values, each the shortest decimal that reads back to the same value *in the
array's dtype* (``0.3`` for float32 0.3, not float64's ``0.30000001192092896``), non-finite
values as the strings above.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile, check_shape, quote
from rnnbridge.formats.meta import JSON_KEY, jsonable

NAME = "json"
#: the largest JSON document read (a float costs ~10 bytes of text and ~32 of Python)
MAX_JSON_BYTES = 256 * 1024**2
#: the deepest nesting of arrays and objects accepted in an arrays document
MAX_DEPTH = 64
#: the most values (numbers, strings, literals, arrays, objects) in an arrays document
MAX_JSON_VALUES = 2**22
#: the most values in a metadata document (a model config of a thousand layers has ~5 x 10**4)
MAX_META_VALUES = 2**18
#: the largest metadata document (model configs, ``__meta__``)
MAX_META_BYTES = 8 * 1024**2
DTYPES = ("float16", "float32", "float64")
SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_JSON_WHITESPACE = b" \t\r\n"
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
#: a string, or (when no closing quote follows) everything from an opening quote to the end:
#: each quote starts at most one attempt, so the scan is linear (the string alone would be
#: retried from every quote of an unterminated ``"\\"\\"...``, which is quadratic). The
#: quantifiers are possessive (Python >= 3.11): a backtracking one keeps a state per
#: escape, ~100 bytes each, 40 times the text; Python 3.10 falls back to that.
try:
    _STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|"[\s\S]*')
except re.error:  # pragma: no cover - Python 3.10
    _STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"[\s\S]*')


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` starts, after whitespace, with ``{``."""
    return len(_json_files(files)) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read the arrays of a JSON document.

    Parameters
    ----------
    files : sequence of InputFile
        The upload; exactly one file must be a JSON object.
    limits : Limits
        Bounds on each array and on the document's size.

    Returns
    -------
    WeightFile
        ``format="json"``; ``attrs["shape"]`` is ``"arrays"`` (rnnbridge's output, whose
        ``meta`` goes to ``attrs["meta"]``) or ``"plain"``.

    Raises
    ------
    MalformedFile
        Invalid JSON, too deep, ragged lists, a bad dtype, a length that contradicts
        the shape, or a value that is not a number.
    LimitExceeded
        The document or an array over ``limits``.
    """
    doc = loads_bounded(_read_text(_the_file(files), limits), what="JSON arrays", max_values=MAX_JSON_VALUES)
    if not isinstance(doc, dict):
        raise MalformedFile(f"JSON arrays: the document is a {type(doc).__name__}, not an object")
    if isinstance(doc.get("arrays"), dict):
        tensors = {name: _declared_array(name, entry, limits) for name, entry in doc["arrays"].items()}
        return WeightFile(NAME, tensors, {"shape": "arrays", "meta": doc.get(JSON_KEY)})
    tensors = {name: _nested_array(name, value, limits) for name, value in doc.items()}
    return WeightFile(NAME, tensors, {"shape": "plain", "meta": None})


def loads_bounded(
    data: bytes | str, *, what: str, max_depth: int = MAX_DEPTH, max_values: int = MAX_META_VALUES
) -> Any:
    """``json.loads`` after checking the nesting depth and the number of values on the raw text.

    Parameters
    ----------
    data : bytes or str
        The document; bytes must be UTF-8.
    what : str
        Names the document in error messages.
    max_depth : int
        The deepest nesting of ``[`` / ``{`` allowed.
    max_values : int
        The most values (hence Python objects) the document may create; a metadata
        document (``max_values`` at most ``MAX_META_VALUES``) is at most ``MAX_META_BYTES``.

    Raises
    ------
    MalformedFile
        Not UTF-8, nested deeper than ``max_depth``, or not JSON.
    LimitExceeded
        More than ``max_values`` values.
    """
    if max_values <= MAX_META_VALUES and len(data) > MAX_META_BYTES:
        raise LimitExceeded(f"{what}: a JSON document of {len(data)} bytes, more than {MAX_META_BYTES}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"{what}: not UTF-8 at byte offset {exc.start}") from exc
    outside, values = _outside_strings(text)
    if values > max_values:
        raise LimitExceeded(f"{what}: JSON of about {values} values, more than the limit of {max_values}")
    depth = _depth(outside)
    if depth > max_depth:
        raise MalformedFile(f"{what}: JSON nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedFile(f"{what}: invalid JSON: {exc}") from exc


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, ignoring string contents.

    >>> json_depth('{"a": [[1], "]]]"]}')
    3
    """
    return json_census(text)[0]


def json_census(text: str) -> tuple[int, int]:
    """The nesting depth of ``text`` and an upper bound on the values it holds, in linear time.

    Values are bounded by strings + arrays + objects + commas + 1 (every scalar but the
    first of a container follows a comma).

    >>> json_census('{"a": [[1, 2], "]]]"], "b": {}}')
    (3, 11)
    """
    outside, values = _outside_strings(text)
    return _depth(outside), values


def _outside_strings(text: str) -> tuple[bytes, int]:
    """``text`` without its strings, and the upper bound on its values (see ``json_census``)."""
    outside, strings = _STRING.subn("", text)
    raw = outside.encode("utf-8", "surrogatepass")
    containers = raw.count(b"[") + raw.count(b"{")
    return raw, strings + containers + raw.count(b",") + 1


def _depth(outside: bytes) -> int:
    brackets = np.frombuffer(outside.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(steps.cumsum(dtype=np.int32).max())


def _json_files(files: Sequence[InputFile]) -> list[InputFile]:
    return [f for f in files if _first_byte(f.path) == b"{"]


def _first_byte(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).lstrip(_JSON_WHITESPACE)[:1]
    except OSError:
        return b""


def _the_file(files: Sequence[InputFile]) -> InputFile:
    """The one file that sniffs as this format, else the only file of the upload."""
    found = _json_files(files) or list(files)
    if len(found) != 1:
        raise UnsupportedFormat(f"expected one JSON document in the upload, found {len(found)}")
    return found[0]


def _read_text(file: InputFile, limits: Limits) -> bytes:
    bound = min(MAX_JSON_BYTES, limits.max_total_bytes)
    size = file.path.stat().st_size
    if size > bound:
        raise LimitExceeded(f"JSON document '{file.name}' has {size} bytes, more than {bound}")
    return file.path.read_bytes()


def _declared_array(name: str, entry: Any, limits: Limits) -> np.ndarray:
    """One ``{"dtype", "shape", "data"}`` entry of rnnbridge's output."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data"} <= entry.keys():
        raise MalformedFile(f"array '{name}' needs an object with dtype, shape and data", tensor=name)
    dtype, shape, data = entry["dtype"], entry["shape"], entry["data"]
    if dtype not in DTYPES:
        raise MalformedFile(f"array '{name}': dtype {dtype!r} is not one of {DTYPES}", tensor=name)
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise MalformedFile(f"array '{name}': shape {quote(shape)} is not a list of counts", tensor=name)
    elements = math.prod(shape)
    _check_elements(name, elements, limits)
    check_shape(shape, np.dtype(dtype).itemsize, f"array '{name}'", tensor=name)
    if not isinstance(data, list) or len(data) != elements:
        found = len(data) if isinstance(data, list) else type(data).__name__
        raise MalformedFile(f"array '{name}': shape {shape} needs {elements} values, data has {found}", tensor=name)
    return _to_float64(data, name).astype(dtype).reshape(shape)


def _nested_array(name: str, value: Any, limits: Limits) -> np.ndarray:
    """A nested list of numbers, read as float32."""
    shape, leaves = _flatten(name, value, limits)
    return _to_float64(leaves, name).astype(np.float32).reshape(shape)


def _flatten(name: str, value: Any, limits: Limits) -> tuple[list[int], list[Any]]:
    """Shape and C-order leaves of a rectangular nest of lists."""
    shape: list[int] = []
    level = [value]
    while level and any(isinstance(v, list) for v in level):
        lengths = {len(v) if isinstance(v, list) else -1 for v in level}
        if len(lengths) != 1 or -1 in lengths:
            raise MalformedFile(
                f"array '{name}' is ragged at depth {len(shape)}: lengths "
                f"{sorted(n for n in lengths if n >= 0)}{' and scalars' if -1 in lengths else ''}",
                tensor=name,
            )
        shape.append(lengths.pop())
        _check_elements(name, math.prod(shape), limits)
        level = [item for v in level for item in v]
    return shape, level


def _to_float64(values: list[Any], name: str) -> np.ndarray:
    kinds = set(map(type, values))
    if str in kinds:
        values = [SPECIAL_FLOATS.get(v, v) if isinstance(v, str) else v for v in values]
        kinds = set(map(type, values))
    if not kinds <= {int, float}:
        odd = next(v for v in values if type(v) not in (int, float))
        raise MalformedFile(f"array '{name}' holds {quote(odd)}, which is not a number", tensor=name)
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError as exc:
        raise MalformedFile(f"array '{name}': a value is out of float64 range", tensor=name) from exc


def _check_elements(name: str, elements: int, limits: Limits) -> None:
    if elements > limits.max_tensor_elements:
        raise LimitExceeded(
            f"array '{name}' declares {elements} elements, more than the limit of {limits.max_tensor_elements}",
            tensor=name,
        )


def _is_count(n: Any) -> bool:
    return type(n) is int and n >= 0


# ------------------------------------------------------------------- writing


def to_json(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document ``{"arrays": {name: {"dtype", "shape", "data"}}, "meta": {...}}``.

    >>> to_json({"b": np.array([1.5, np.nan], np.float32)}, {})["arrays"]["b"]
    {'dtype': 'float32', 'shape': [2], 'data': [1.5, 'NaN']}
    """
    return {"arrays": {name: array_payload(array) for name, array in arrays.items()}, JSON_KEY: jsonable(meta)}


_SHORTEST = (np.dtype(np.float32), np.dtype(np.float16))


def array_payload(array: np.ndarray) -> dict[str, Any]:
    """One array as ``{"dtype", "shape", "data"}`` with ``data`` flat in C order."""
    array = np.asarray(array)
    data = array.ravel(order="C")
    if array.dtype in _SHORTEST:
        # the shortest decimal that reads back to the same float32/float16 (NumPy's Dragon4), as
        # the Python float of that decimal: JSON gets "0.3", not float64's "0.30000001192092896"
        data = data.astype(str).astype(np.float64)
    data = data.tolist()
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        data = jsonable(data)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": data}


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write ``to_json(arrays, meta)`` as UTF-8 to a binary ``stream``."""
    stream.write(json.dumps(to_json(arrays, meta), allow_nan=False, separators=(",", ":")).encode())
