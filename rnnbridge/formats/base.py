"""What a file reader receives and returns.

A reader turns the bytes of one upload (one or several files) into named arrays. It knows
containers, never gates: finding recurrent layers is ``rnnbridge.discovery``'s job.

Rules every reader follows:

* It reads only the files it is given (``InputFile.path``), never a path taken from the
  file's contents; it writes nothing except through ``tempfile`` inside ``Limits.tmp_dir``.
* It never unpickles, imports or evaluates anything taken from the upload.
* Every declared shape, offset and length is checked against the real bytes and against
  ``Limits`` *before* memory is allocated; a contradiction is ``MalformedFile`` naming the
  tensor and offset, an excess is ``LimitExceeded``.
* Arrays keep the stored dtype (float16/32/64); the one exception is bfloat16, which NumPy
  lacks: it is widened exactly to float32 and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the largest tensor a reader materialises, unless the service configures another bound
DEFAULT_MAX_TENSOR_ELEMENTS = 2**31


@dataclass(frozen=True)
class InputFile:
    """One uploaded file: the client's file name (untrusted, for messages and for
    multi-file formats that pair files by name) and where its bytes are on local disk."""

    name: str
    path: Path


@dataclass(frozen=True)
class Limits:
    max_tensor_elements: int = DEFAULT_MAX_TENSOR_ELEMENTS
    max_total_bytes: int = 2 * 1024**3
    tmp_dir: Path | None = None
    #: wall-clock bound on reading one file whose library runs in a child process (HDF5)
    read_timeout: float = 60.0


@dataclass
class WeightFile:
    """Named arrays read from an upload.

    ``format`` is a key of ``rnnbridge.formats.FORMATS``. ``tensors`` maps the name the
    file gives each array (HDF5 path, checkpoint variable, state_dict key, ONNX
    initializer) to the array in its stored dtype. ``attrs`` carries what the container
    says beyond arrays: a Keras ``model_config``, the ONNX graph's RNN nodes, ... .
    ``notes`` are sentences for the response metadata (e.g. a bfloat16 widening);
    ``bfloat16`` names the tensors that were stored as bfloat16 and widened to float32, so
    that an output format with bfloat16 can store them as they were.
    """

    format: str
    tensors: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    bfloat16: set[str] = field(default_factory=set)
