"""Keras 3 ``.keras`` archives (``keras.src.saving.saving_lib``).

A ``.keras`` file is a zip::

    metadata.json      {"keras_version": "3.15.1", "date_saved": "..."}
    config.json        the serialised model (class names, layer names, layer configs)
    model.weights.h5   the weights, in the Keras 3 ``.weights.h5`` layout (conventions.md §4.3)
    assets/...         optional

The reader parses both JSON members with bounded size and depth, copies
``model.weights.h5`` (within ``Limits.expansion`` of its packed size) to a temporary file in
``Limits.tmp_dir`` and reads it with :func:`.keras_h5.read_hdf5`, so every HDF5 guard
applies. The result is what ``keras_h5`` returns for a ``.weights.h5`` (tensor keys are
HDF5 paths such as ``layers/lstm/cell/vars/0``, without the ``model.weights.h5:`` member
prefix) with ``format="keras_zip"``, ``attrs["model_config"]`` = ``config.json``,
``attrs["keras_version"]`` from ``metadata.json`` and ``attrs["member"]`` naming the
weights member. The ``model.weights.npz`` variant stores pickled dicts, which are never
loaded: it is refused as ``UnsafeInput``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile, open_zip
from rnnbridge.formats.hdf5.isolation import read_isolated
from rnnbridge.formats.hdf5.keras_h5 import CONFIG_MAX_DEPTH
from rnnbridge.formats.json_arrays import MAX_META_BYTES, loads_bounded

NAME = "keras_zip"
CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS_H5 = "model.weights.h5"
WEIGHTS_NPZ = "model.weights.npz"
#: the largest ``config.json`` / ``metadata.json`` read (and ``MAX_META_VALUES`` values)
MAX_JSON_BYTES = MAX_META_BYTES
_COPY_CHUNK = 1024**2
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError)


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` is a zip holding ``config.json`` and model weights."""
    return len(_keras_files(files)) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read the weights and the model config of a ``.keras`` archive.

    Parameters
    ----------
    files : sequence of InputFile
        The upload; exactly one file must be a ``.keras`` archive.
    limits : Limits
        Bounds on the weights member, each dataset and all of them; ``tmp_dir`` is
        where the weights member is copied while it is read.

    Returns
    -------
    WeightFile
        ``format="keras_zip"``; ``tensors`` and ``attrs`` as :func:`.keras_h5.read`
        returns them for the keras3 layout.

    Raises
    ------
    MalformedFile
        A bad zip, a missing member, invalid JSON, or a corrupt weights file.
    UnsafeInput
        The pickled ``model.weights.npz`` variant, or any HDF5 guard.
    LimitExceeded
        A member, dataset or all of them over ``limits``.
    """
    path = _the_file(files).path
    try:
        with open_zip(path) as archive:
            config = _json_member(archive, CONFIG)
            metadata = _json_member(archive, METADATA) if METADATA in archive.namelist() else {}
            with _extracted_weights(archive, limits) as weights:
                result = read_isolated("rnnbridge.formats.hdf5.keras_h5:read_hdf5", weights, limits, format_name=NAME)
    except _ZIP_ERRORS as exc:
        raise MalformedFile(f".keras: not a readable zip archive: {exc}") from exc
    result.attrs["model_config"] = config
    result.attrs["keras_version"] = metadata.get("keras_version") if isinstance(metadata, dict) else None
    result.attrs["member"] = WEIGHTS_H5
    return result


def _json_member(archive: zipfile.ZipFile, name: str) -> Any:
    info = _member(archive, name)
    if info.file_size > MAX_JSON_BYTES:
        raise LimitExceeded(f".keras member '{name}' has {info.file_size} bytes, more than {MAX_JSON_BYTES}")
    with archive.open(info) as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    return loads_bounded(data, what=f".keras member '{name}'", max_depth=CONFIG_MAX_DEPTH)


@contextmanager
def _extracted_weights(archive: zipfile.ZipFile, limits: Limits) -> Iterator[Path]:
    """Copy ``model.weights.h5`` to a temporary file, deleted on exit."""
    names = archive.namelist()
    if WEIGHTS_H5 not in names and WEIGHTS_NPZ in names:
        raise UnsafeInput(
            f".keras weights are in '{WEIGHTS_NPZ}', whose entries are pickled dicts; "
            "re-save the model with weights_format='h5'",
            code="object_array",
        )
    info = _member(archive, WEIGHTS_H5)
    bound = limits.expansion(info.compress_size)
    if info.file_size > bound:
        raise LimitExceeded(
            f".keras member '{WEIGHTS_H5}' inflates from {info.compress_size} to {info.file_size} bytes, more than "
            f"the limit of {bound} (at most {limits.max_total_bytes}, and 16 x its packed size + 64 MiB)"
        )
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=limits.tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as src:
            # zipfile stops at the member's declared size and checks its CRC
            shutil.copyfileobj(src, out, _COPY_CHUNK)
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    try:
        return archive.getinfo(name)
    except KeyError:
        raise MalformedFile(f".keras archive has no member '{name}'") from None


def _keras_files(files: Sequence[InputFile]) -> list[InputFile]:
    return [f for f in files if _is_keras_zip(f.path)]


def _is_keras_zip(path: Path) -> bool:
    try:
        with open_zip(path) as archive:
            names = set(archive.namelist())
    except _ZIP_ERRORS:
        return False
    return CONFIG in names and bool({WEIGHTS_H5, WEIGHTS_NPZ} & names)


def _the_file(files: Sequence[InputFile]) -> InputFile:
    """The one file that sniffs as this format, else the only file of the upload."""
    found = _keras_files(files) or list(files)
    if len(found) != 1:
        raise UnsupportedFormat(f"expected one .keras archive in the upload, found {len(found)}")
    return found[0]
