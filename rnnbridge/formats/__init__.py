"""File formats: bytes in, named arrays out (``WeightFile``). See ``base`` for the contract.

``FORMATS`` maps a format name to the module that reads it; modules are imported on first
use. A format is recognised by its bytes, never by the file name: each module's ``sniff``
is asked in the order of ``FORMATS`` (the more specific zip-based formats first). A zip or
tar that no format claims is expanded safely (``archive``) and the members are sniffed
again, so a TF checkpoint folder or a SavedModel can be uploaded as one archive.

With ``Limits.isolate`` (the service's setting) the whole of :func:`read`, sniffing
included, runs in a reader process (``hdf5.isolation``): bounded in time and resident
memory, and never holding the caller's GIL.
"""

from __future__ import annotations

import dataclasses
import importlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from rnnbridge.errors import UnsupportedFormat
from rnnbridge.formats import diagnose
from rnnbridge.formats.base import InputFile, Limits, WeightFile

#: format name -> module, in sniffing order
FORMATS: dict[str, str] = {
    "keras_zip": "rnnbridge.formats.hdf5.keras_zip",
    "torch": "rnnbridge.formats.torch.pickle",
    "numpy_pickle": "rnnbridge.formats.numpy_pickle",
    "npz": "rnnbridge.formats.npz",
    "eqx_leaves": "rnnbridge.formats.equinox.leaves",
    "tf_checkpoint": "rnnbridge.formats.tf.checkpoint",
    "keras_h5": "rnnbridge.formats.hdf5.keras_h5",
    "safetensors": "rnnbridge.formats.safetensors.file",
    "onnx": "rnnbridge.formats.onnx.model",
    "flax_msgpack": "rnnbridge.formats.flax.serialization",
    "openvino_ir": "rnnbridge.formats.openvino.ir",
    "json": "rnnbridge.formats.json_arrays",
}

DESCRIPTIONS: dict[str, str] = {
    "keras_zip": "Keras 3 .keras archive (config.json + model.weights.h5)",
    "torch": "PyTorch torch.save file (.pt/.pth/.bin), read without torch and without unpickling objects",
    "numpy_pickle": "pickle of NumPy arrays in nested dicts (Haiku params.pkl), read without running it",
    "npz": "NumPy .npz of arrays named as the source framework names them (needs source=)",
    "eqx_leaves": "Equinox .eqx (eqx.tree_serialise_leaves: unnamed .npy leaves in pytree order)",
    "tf_checkpoint": "TensorFlow checkpoint: .index + .data-* shards (several file fields, or one zip/tar)",
    "keras_h5": "Keras HDF5: Keras 2 / tf.keras model.save or save_weights, Keras 3 .weights.h5 or legacy .h5",
    "safetensors": "safetensors file of a PyTorch state_dict",
    "onnx": "ONNX model (.onnx) with LSTM/GRU nodes; external data only from inside the upload",
    "flax_msgpack": "Flax .msgpack (flax.serialization.to_bytes of linen variables or an NNX state)",
    "openvino_ir": "OpenVINO IR (model.xml + model.bin) with LSTMSequence/GRUSequence ops",
    "json": "JSON arrays, as rnnbridge writes them (needs source=)",
}


def module(name: str) -> ModuleType:
    return importlib.import_module(FORMATS[name])


def detect(files: Sequence[InputFile]) -> str | None:
    """The first format whose ``sniff`` claims the files, or None."""
    for name in FORMATS:
        if module(name).sniff(files):
            return name
    return None


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read an upload into named arrays, expanding an archive that no format claims."""
    if not files:
        raise UnsupportedFormat(
            "no file was uploaded: send it as multipart, curl -F file=@model.h5", understood=sorted(FORMATS)
        )
    if limits.isolate:
        from rnnbridge.formats.hdf5.isolation import read_files_isolated

        return read_files_isolated("rnnbridge.formats:read", list(files), dataclasses.replace(limits, isolate=False))
    name = detect(files)
    if name is not None:
        return module(name).read(files, limits)
    archive = importlib.import_module("rnnbridge.formats.archive")
    if any(archive.is_archive(f) for f in files):
        # Readers may memory-map the extracted members; on POSIX a mapping outlives the
        # unlinked file, so the folder can go as soon as the arrays are read.
        with tempfile.TemporaryDirectory(prefix="rnnbridge-archive-", dir=limits.tmp_dir) as dest:
            members = archive.expand(files, limits, Path(dest))
            name = detect(members)
            if name is not None:
                return module(name).read(members, limits)
    raise diagnose.unrecognised(files, sorted(FORMATS))  # what was seen, then the short list of what is read
