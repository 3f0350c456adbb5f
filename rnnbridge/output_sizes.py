"""The byte size of an encoded output, known before it is written: a streamed download's
``Content-Length``, so that clients show progress and know a download arrived whole.

``encoded_size(result, fmt)`` is the exact size that ``outputs.write`` will
produce on a stream that cannot seek (how the service streams), or None where it is not
known in advance (JSON, HDF5, ONNX, TF checkpoints) or not worth computing (an npz whose members or offsets need
ZIP64 sizes in its central directory, over 2 GiB).

* safetensors: the writer's own header plus the tensor bytes (``safetensors.encoded_size``).
* npz (stored, streamed): per member, a local header with the ZIP64 extra that
  ``force_zip64`` writes (30 + name + 20 bytes), the ``.npy`` header (``numpy.lib.format``),
  the array bytes and a ZIP64 data descriptor (24 bytes); then a central directory entry per
  member (46 + name) and the end record (22). ``tests/test_output_sizes.py`` holds this
  against the bytes ``zipfile`` writes.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from rnnbridge.formats.meta import META_KEY, dumps

if TYPE_CHECKING:
    from rnnbridge.result import Result

_LOCAL_HEADER, _ZIP64_EXTRA, _DESCRIPTOR, _CENTRAL, _END = 30, 20, 24, 46, 22


def encoded_size(result: Result, fmt: str) -> int | None:
    """Bytes ``outputs.write(result, fmt, stream)`` writes to a non-seekable stream, or None."""
    if fmt == "safetensors":
        from rnnbridge.formats.safetensors import writer

        metadata, exact = writer.result_header(result.arrays, result.meta)
        try:
            return writer.encoded_size(result.arrays, metadata, bfloat16=exact)
        except ValueError:  # the writer will refuse it: no length to promise
            return None
    if fmt == "npz":  # the members of ``formats.npz.write``
        return _npz_size({**result.arrays, META_KEY: np.array(dumps(result.meta))})
    return None


def _npz_size(members: dict[str, np.ndarray]) -> int | None:
    offset = central = 0
    for name, array in members.items():
        header = _npy_header_size(np.asarray(array))
        if header is None:
            return None
        entry = len(f"{name}.npy".encode())
        size = header + np.asarray(array).nbytes
        if size > zipfile.ZIP64_LIMIT or offset > zipfile.ZIP64_LIMIT:
            return None  # the central directory would carry ZIP64 sizes or offsets
        offset += _LOCAL_HEADER + entry + _ZIP64_EXTRA + size + _DESCRIPTOR
        central += _CENTRAL + entry
    if offset > zipfile.ZIP64_LIMIT or len(members) >= 0xFFFF:
        return None
    return offset + central + _END


def _npy_header_size(array: np.ndarray) -> int | None:
    """The size of the ``.npy`` header ``numpy.lib.format.write_array`` writes for ``array``."""
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    except ValueError:  # a header over 64 KiB: format 2.0, not worth the bookkeeping
        return None
    return buffer.tell()
