"""The output formats: one registry entry per format, its writer beside its reader.

===============  ============================================================================
format           layout
===============  ============================================================================
``npz``          a NumPy zip archive, one ``<name>.npy`` member per array, plus ``__meta__``:
                 a 0-d unicode array holding the metadata as a JSON string. Everything
                 loads with ``np.load(path, allow_pickle=False)``. (``formats.npz``)
``json``         ``{"arrays": {name: {"dtype", "shape", "data"}}, "meta": {...}}``; ``data``
                 is the flat C-order list of exact values, each written as the shortest
                 decimal that reads back to the same value *in the array's dtype* (``0.3``
                 for float32 0.3, not ``0.30000001192092896``), NaN and infinities as the
                 strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. (``formats.json_arrays``)
``safetensors``  the tensors, with the metadata JSON under ``__metadata__["rnnbridge"]``.
                 (``formats.safetensors.writer``)
``h5``           conversions to Keras only: the Keras 3 ``.weights.h5`` layout that
                 ``model.load_weights`` reads. (``formats.hdf5.keras_weights``)
``onnx``         conversions to ONNX only: a model onnxruntime runs as it is, the metadata
                 in ``metadata_props["rnnbridge"]``. (``formats.onnx.writer``)
``tf_checkpoint`` conversions to TF1 only: a tar of a tensor bundle (``.index``, ``.data``)
                 and its ``checkpoint`` file. (``formats.tf.writer``)
``pdparams``     conversions to Paddle only: the pickled ``{key: ndarray}`` dict that
                 ``paddle.load`` returns, plus ``__meta__``. (``formats.numpy_pickle``)
``eqx``          conversions to Equinox only: the tensors as consecutive ``.npy`` leaves, in
                 order, that ``eqx.tree_deserialise_leaves`` loads (no metadata: it does not
                 read back into rnnbridge without ``source``). (``formats.equinox.leaves``)
===============  ============================================================================

Every format but h5 and eqx reads back into rnnbridge without ``source`` (``formats.meta``). Arrays
keep their dtype. Writers write to a binary stream and know nothing of HTTP or of files on
disk (``Result.save`` does the files). This module imports no writer until one is used, so
that the CLI can offer the formats as choices without loading NumPy.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from rnnbridge.errors import InvalidField
from rnnbridge.filenames import file_name

if TYPE_CHECKING:
    import numpy as np

    from rnnbridge.result import Result

Writer = Callable[["Mapping[str, np.ndarray]", Mapping[str, Any], IO[bytes]], None]


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its name, file extension, media type and writer.

    ``writer`` is ``"module:function"``, a function ``(arrays, meta, stream) -> None``.
    ``any_order``: the format records each array's memory order (or lists values), so
    a conversion may hand it Fortran-order matrices instead of transposing them.
    ``targets``: the conversion targets the format can hold (None: splits and every target).
    ``seeks``: the writer needs a seekable stream (it is staged in memory otherwise).
    """

    name: str
    extension: str
    media_type: str
    writer: str
    description: str
    any_order: bool = False
    targets: tuple[str, ...] | None = None
    seeks: bool = False

    def write(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
        module, function = self.writer.split(":")
        write: Writer = getattr(importlib.import_module(module), function)
        if not self.seeks or stream.seekable():
            write(arrays, meta, stream)
            return
        buffer = io.BytesIO()  # e.g. HDF5 must seek: stage the (weights-sized) file in memory
        write(arrays, meta, buffer)
        stream.write(buffer.getbuffer())


OUTPUTS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat(
            "npz",
            "npz",
            "application/octet-stream",
            "rnnbridge.formats.npz:write",
            "NumPy .npz: one array per member, the metadata in __meta__",
            any_order=True,
        ),
        OutputFormat(
            "json",
            "json",
            "application/json",
            "rnnbridge.formats.json_arrays:write",
            "JSON: exact values as flat C-order lists, with the metadata",
            any_order=True,
        ),
        OutputFormat(
            "safetensors",
            "safetensors",
            "application/octet-stream",
            "rnnbridge.formats.safetensors.writer:write_result",
            "safetensors: the tensors, the metadata in __metadata__",
        ),
        OutputFormat(
            "h5",
            "weights.h5",
            "application/x-hdf5",
            "rnnbridge.formats.hdf5.keras_weights:write",
            "Keras 3 .weights.h5 for model.load_weights (Keras targets only)",
            targets=("keras",),
            seeks=True,
        ),
        OutputFormat(
            "onnx",
            "onnx",
            "application/octet-stream",
            "rnnbridge.formats.onnx.writer:write",
            "ONNX model that onnxruntime runs as it is (ONNX targets only)",
            targets=("onnx",),
        ),
        OutputFormat(
            "tf_checkpoint",
            "tar",
            "application/x-tar",
            "rnnbridge.formats.tf.writer:write",
            "tar of a TF tensor-bundle checkpoint (.index, .data, checkpoint; TF1 targets only)",
            targets=("tf1",),
        ),
        OutputFormat(
            "pdparams",
            "pdparams",
            "application/octet-stream",
            "rnnbridge.formats.numpy_pickle:write",
            "Paddle .pdparams: the pickled dict paddle.load returns, the metadata in __meta__ (Paddle targets only)",
            targets=("paddle",),
        ),
        OutputFormat(
            "eqx",
            "eqx",
            "application/octet-stream",
            "rnnbridge.formats.equinox.leaves:write",
            "Equinox .eqx leaves for eqx.tree_deserialise_leaves, no metadata (Equinox targets only)",
            targets=("equinox",),
        ),
    )
}
FORMATS = tuple(OUTPUTS)

#: derived views, for callers that want one property of every format
EXTENSIONS = {name: f.extension for name, f in OUTPUTS.items()}
MEDIA_TYPES = {name: f.media_type for name, f in OUTPUTS.items()}
ANY_ORDER = frozenset(name for name, f in OUTPUTS.items() if f.any_order)
TARGETS_OF = {name: f.targets for name, f in OUTPUTS.items() if f.targets is not None}


def check_format(fmt: str, target: str | None = None) -> OutputFormat:
    """The output format ``fmt``, if it can hold a result for ``target`` (None: a split);
    ``InvalidField`` otherwise. Call it before the work."""
    output = OUTPUTS.get(fmt)
    if output is None:
        raise InvalidField(f"format must be one of {list(OUTPUTS)}, not {fmt!r}", field="format")
    if output.targets is not None and target not in output.targets:
        holds = " or ".join(output.targets)
        raise InvalidField(
            f"format {fmt} holds {holds} weights only: convert with target={output.targets[0]} to use it",
            field="format",
        )
    return output


def write(result: Result, fmt: str, stream: IO[bytes]) -> None:
    """Write ``result`` in output format ``fmt`` to a binary ``stream``."""
    check_format(fmt, result.target).write(result.arrays, result.meta, stream)


def output_name(first_input: str, fmt: str, target: str | None = None) -> str:
    """The default output file name, ``<stem>.gates.<ext>`` (split) or ``<stem>.to-<target>.<ext>``,
    with the extension of format ``fmt``; the naming rules are ``rnnbridge.filenames``'.

    >>> output_name("dir/model.h5", "npz"), output_name("m.h5", "json", "pytorch")
    ('model.gates.npz', 'm.to-pytorch.json')
    >>> output_name("m.h5", "h5", "keras"), output_name("model.ckpt.index", "tf_checkpoint", "tf1")
    ('m.to-keras.weights.h5', 'model.to-tf1.tar')
    """
    return file_name(first_input, EXTENSIONS[fmt], target)


def encoded_size(result: Result, fmt: str) -> int | None:
    """The bytes ``write(result, fmt, stream)`` will write, where known in advance
    (``rnnbridge.output_sizes``); None otherwise."""
    from rnnbridge.output_sizes import encoded_size

    return encoded_size(result, fmt)


# Thin aliases of the writers, by their former names here.


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (``rnnbridge.formats.meta.jsonable``)."""
    from rnnbridge.formats.meta import jsonable

    return jsonable(value)


def meta_json(result: Result) -> str:
    """The metadata of ``result`` as one compact JSON string."""
    from rnnbridge.formats.meta import dumps

    return dumps(result.meta)


def to_json(result: Result) -> dict[str, Any]:
    """``result`` as the JSON document ``{"arrays": {...}, "meta": {...}}``."""
    from rnnbridge.formats.json_arrays import to_json

    return to_json(result.arrays, result.meta)


def write_npz(result: Result, stream: IO[bytes]) -> None:
    write(result, "npz", stream)
