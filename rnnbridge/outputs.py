"""Encoders of a ``pipeline.Result``: the bytes the routes and the CLI hand out.

===============  ============================================================================
format           layout
===============  ============================================================================
``npz``          a NumPy zip archive, one ``<name>.npy`` member per array, plus ``__meta__``:
                 a 0-d unicode array holding the metadata as a JSON string. Everything
                 loads with ``np.load(path, allow_pickle=False)``.
``json``         ``{"arrays": {name: {"dtype", "shape", "data"}}, "meta": {...}}``; ``data``
                 is the flat C-order list of exact values (Python floats round-trip
                 float16/32/64 through their shortest repr), NaN and infinities as the
                 strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
``safetensors``  the tensors, with the metadata JSON under ``__metadata__["rnnbridge"]``.
``h5``           ``/convert`` to Keras only: the Keras 3 ``.weights.h5`` layout that
                 ``model.load_weights`` reads (``rnnbridge.formats.hdf5.keras_weights``).
``eqx``          ``/convert`` to Equinox only: the tensors as consecutive ``.npy`` leaves, in
                 order, that ``eqx.tree_deserialise_leaves`` loads (no metadata).
``pdparams``     ``/convert`` to Paddle only: the pickled ``{key: ndarray}`` dict that
                 ``paddle.load`` returns, plus ``__meta__`` (``rnnbridge.formats.numpy_pickle``).
===============  ============================================================================

Arrays keep their dtype. Nothing here knows about HTTP or files on disk: encoders write
to a binary stream.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from rnnbridge.errors import InvalidField

if TYPE_CHECKING:  # the encoders only read ``.arrays`` and ``.meta``
    from rnnbridge.pipeline import Result

META_KEY = "__meta__"

#: file extension of every output format
EXTENSIONS = {
    "npz": "npz",
    "json": "json",
    "safetensors": "safetensors",
    "h5": "h5",
    "pdparams": "pdparams",
    "eqx": "eqx",
}

MEDIA_TYPES = {
    "npz": "application/octet-stream",
    "json": "application/json",
    "safetensors": "application/octet-stream",
    "h5": "application/x-hdf5",
    "pdparams": "application/octet-stream",
    "eqx": "application/octet-stream",
}

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays made plain and non-finite floats as strings,
    so that ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def meta_json(result: Result) -> str:
    """The metadata of ``result`` as one compact JSON string."""
    return json.dumps(jsonable(result.meta), allow_nan=False, separators=(",", ":"))


def write_npz(result: Result, stream: IO[bytes]) -> None:
    """Write ``result`` as an uncompressed npz archive to a binary ``stream``.

    The stream need not be seekable. ``np.load(stream, allow_pickle=False)`` reads every
    array back, and ``json.loads(str(npz["__meta__"]))`` the metadata.
    """
    if META_KEY in result.arrays:
        raise InvalidField(f"an output array may not be named {META_KEY!r}", field="format")
    for name in result.arrays:
        _check_member_name(name)
    members = {**result.arrays, META_KEY: np.array(meta_json(result))}
    with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _check_member_name(name: str) -> None:
    """Layer names are made safe where they are read (``rnnbridge.discovery``); this is the
    last guard before a name becomes a path that someone will unzip."""
    segments = name.split("/")
    unsafe = (
        name.startswith("/")
        or "\\" in name
        or ".." in segments
        or any(ord(c) < 32 for c in name)
        or len(name.encode()) > 4096
    )
    if unsafe:
        raise InvalidField(f"output name {name[:200]!r} cannot be a zip member name", field="layer")


def to_json(result: Result) -> dict[str, Any]:
    """``result`` as the JSON document ``{"arrays": {...}, "meta": {...}}``.

    >>> from rnnbridge.pipeline import Result
    >>> to_json(Result({"b": np.array([1.5, np.nan], np.float32)}, {}))["arrays"]["b"]
    {'dtype': 'float32', 'shape': [2], 'data': [1.5, 'NaN']}
    """
    arrays = {name: array_payload(array) for name, array in result.arrays.items()}
    return {"arrays": arrays, "meta": jsonable(result.meta)}


def array_payload(array: np.ndarray) -> dict[str, Any]:
    """One array as ``{"dtype", "shape", "data"}`` with ``data`` flat in C order."""
    array = np.asarray(array)
    data = array.ravel(order="C").tolist()
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        data = jsonable(data)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": data}


def write_json(result: Result, stream: IO[bytes]) -> None:
    """Write ``to_json(result)`` as UTF-8 to a binary ``stream``."""
    stream.write(json.dumps(to_json(result), allow_nan=False, separators=(",", ":")).encode())


def write_safetensors(result: Result, stream: IO[bytes]) -> None:
    """Write ``result`` as a safetensors file, the metadata JSON in ``__metadata__["rnnbridge"]``."""
    from rnnbridge.formats.safetensors import file as safetensors_file

    exact = [name for name in result.meta.get("bfloat16", ()) if _fits_bfloat16(result.arrays[name])]
    try:
        safetensors_file.write(stream, result.arrays, {"rnnbridge": meta_json(result)}, bfloat16=exact)
    except ValueError as exc:  # a dtype or name safetensors cannot hold
        raise InvalidField(f"the result cannot be written as safetensors: {exc}", field="format") from exc


def _fits_bfloat16(array: np.ndarray) -> bool:
    """A float32 array whose values are all bfloat16 values (its low 16 bits are zero)."""
    if array.dtype != np.float32:
        return False
    return not np.any(np.ascontiguousarray(array).view(np.uint32) & np.uint32(0xFFFF))


def write_h5(result: Result, stream: IO[bytes]) -> None:
    """Write a Keras ``/convert`` result as a Keras 3 ``.weights.h5`` file."""
    from rnnbridge.formats.hdf5 import keras_weights

    if stream.seekable():
        keras_weights.write(result.arrays, result.meta, stream)
        return
    buffer = io.BytesIO()  # HDF5 needs to seek: stage the (weights-sized) file in memory
    keras_weights.write(result.arrays, result.meta, buffer)
    stream.write(buffer.getbuffer())


def write_pdparams(result: Result, stream: IO[bytes]) -> None:
    """Write a Paddle ``/convert`` result as the pickled dict ``paddle.load`` reads."""
    from rnnbridge.formats import numpy_pickle

    try:
        numpy_pickle.write(result.arrays, meta_json(result), stream)
    except ValueError as exc:
        raise InvalidField(f"the result cannot be written as pdparams: {exc}", field="format") from exc


def write_eqx(result: Result, stream: IO[bytes]) -> None:
    """Write an Equinox ``/convert`` result as ``.eqx`` leaves, in the order of its tensors
    (no metadata: the format has no place for it)."""
    from rnnbridge.formats.equinox import leaves

    leaves.write(result.arrays, stream)


#: formats whose arrays may be in either memory order (``.npy`` records it; JSON lists values)
ANY_ORDER = frozenset({"npz", "json"})

WRITERS = {
    "npz": write_npz,
    "json": write_json,
    "safetensors": write_safetensors,
    "h5": write_h5,
    "pdparams": write_pdparams,
    "eqx": write_eqx,
}
FORMATS = tuple(WRITERS)
#: formats only some targets have
TARGETS_OF = {"h5": ("keras",), "pdparams": ("paddle",), "eqx": ("equinox",)}


def check_format(fmt: str, target: str | None = None) -> None:
    """Raise ``InvalidField`` unless ``fmt`` can be written for ``target`` (None: /split);
    call it before the work."""
    if fmt not in WRITERS:
        raise InvalidField(f"format must be one of {list(WRITERS)}, not {fmt!r}", field="format")
    allowed = TARGETS_OF.get(fmt)
    if allowed is not None and target not in allowed:
        targets = " or ".join(allowed)
        raise InvalidField(
            f"format {fmt} holds {targets} weights: use it with /convert and target={targets}", field="format"
        )


def write(result: Result, fmt: str, stream: IO[bytes]) -> None:
    """Write ``result`` in output format ``fmt`` (a key of ``WRITERS``) to ``stream``."""
    check_format(fmt, result.meta.get("target"))
    WRITERS[fmt](result, stream)


def output_name(first_input: str, fmt: str, target: str | None = None) -> str:
    """The default output file name: ``<stem>.gates.<ext>`` (split) or ``<stem>.<target>.<ext>``.

    >>> output_name("dir/model.h5", "npz"), output_name("m.h5", "json", "pytorch")
    ('model.gates.npz', 'm.pytorch.json')
    """
    stem = first_input.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    return f"{stem or 'weights'}.{target or 'gates'}.{EXTENSIONS[fmt]}"
