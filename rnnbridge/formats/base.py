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

import math
import reprlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile

#: the largest tensor a reader materialises, unless the service configures another bound
DEFAULT_MAX_TENSOR_ELEMENTS = 2**31
#: the largest zip central directory opened: ``zipfile`` makes a ~500-byte ``ZipInfo`` of
#: every 46-byte entry before anyone can count them (8 MiB: ~180,000 entries, ~90 MB)
MAX_ZIP_DIRECTORY_BYTES = 8 * 1024**2
#: extracted archive members may be this many times their archive's size, plus EXPANSION_BASE
MAX_EXPANSION_RATIO = 16
EXPANSION_BASE = 64 * 1024**2
#: what an error message quotes of a value taken from a file, at most (characters)
MAX_QUOTED = 200


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
    #: read the whole upload in a reader process (``formats.read``), as the service does:
    #: no parser then shares the caller's GIL, and the reader is bounded in time and memory
    isolate: bool = False
    #: the reader process's memory budget (resident bytes): ``read_memory_base`` plus
    #: ``read_memory_factor`` times the upload's size; a reader that passes it is ended (413)
    read_memory_base: int = 512 * 1024**2
    read_memory_factor: float = 4.0

    def expansion(self, packed_bytes: int) -> int:
        """The most bytes compressed members of ``packed_bytes`` may inflate to on disk:
        ``EXPANSION_BASE`` + ``MAX_EXPANSION_RATIO`` x their size, within ``max_total_bytes``
        (weights compress barely; 200 MiB of zeros packed into 200 KB are a bomb, and the
        spool may be a tmpfs, i.e. memory)."""
        return min(self.max_total_bytes, EXPANSION_BASE + MAX_EXPANSION_RATIO * packed_bytes)

    def read_memory(self, upload_bytes: int) -> int:
        """The resident memory a reader process may reach while it reads ``upload_bytes``."""
        return self.read_memory_base + int(self.read_memory_factor * upload_bytes)


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


_QUOTE = reprlib.Repr()
for _name, _bound in {"maxlevel": 2, "maxtuple": 8, "maxlist": 8, "maxdict": 4, "maxset": 4}.items():
    setattr(_QUOTE, _name, _bound)
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 60


def quote(value: object, limit: int = MAX_QUOTED) -> str:
    """A short ``repr`` of a value read from a file, for an error message.

    Bounded in time and size whatever ``value`` is (a list of millions of numbers, a
    self-referencing structure): long containers and strings are elided with ``...``.

    >>> quote(list(range(1000)))
    '[0, 1, 2, 3, 4, 5, 6, 7, ...]'
    """
    text = _QUOTE.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_shape(shape: tuple[int, ...] | list[int], itemsize: int, what: str, tensor: str | None = None) -> None:
    """Refuse a shape no NumPy array can have (the product of its non-zero dimensions times
    ``itemsize`` must fit in 63 bits, even when another dimension is 0)."""
    if math.prod(max(n, 1) for n in shape) * max(itemsize, 1) >= 2**63:
        raise MalformedFile(f"{what}: shape {quote(list(shape))} is larger than any array can be", tensor=tensor)


def open_zip(file: str | Path | IO[bytes]) -> zipfile.ZipFile:
    """``zipfile.ZipFile(file)``, once its central directory is known to be at most
    ``MAX_ZIP_DIRECTORY_BYTES`` (``LimitExceeded``); ``zipfile.BadZipFile`` as zipfile raises it."""
    stream = open(file, "rb") if isinstance(file, (str, Path)) else file
    try:
        # the standard library's own locator of the directory (private, hence untyped)
        end = zipfile._EndRecData(stream)  # type: ignore[attr-defined]  # noqa: SLF001
        directory = 0 if end is None else end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]  # noqa: SLF001
        if directory > MAX_ZIP_DIRECTORY_BYTES:
            raise LimitExceeded(
                f"the zip's central directory has {directory} bytes, more than {MAX_ZIP_DIRECTORY_BYTES}"
            )
        stream.seek(0)
        return zipfile.ZipFile(stream if stream is file else file)
    finally:
        if stream is not file:
            stream.close()
