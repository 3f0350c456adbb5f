"""What ``split`` and ``convert`` return: named arrays, their metadata, and how to save them."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from rnnbridge import outputs

if TYPE_CHECKING:
    import numpy as np

    from rnnbridge.engine.conventions import Convention


@dataclass(frozen=True)
class LayerResult:
    """One layer of a result: its name, the convention it was read in, the convention it
    was written in (None for a split) and the names of its arrays."""

    name: str
    source: Convention
    target: Convention | None
    tensors: tuple[str, ...]


@dataclass
class Result:
    """Named output arrays and the JSON-able metadata that travels with them.

    ``layers`` describes each layer with its conventions as registry objects; ``meta`` is
    the same as a document for people and files. ``format`` is the output format the
    result was prepared for (already checked against the target, and the arrays' memory
    order chosen for it); ``input_name`` is the name of the file it was read from, for the
    default output name.
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    layers: list[LayerResult] = field(default_factory=list)
    format: str | None = None
    input_name: str = "weights"

    @property
    def target(self) -> str | None:
        """The target framework of a conversion; None for a split."""
        target = self.meta.get("target")
        return target if isinstance(target, str) else None

    def default_name(self, format: str | None = None) -> str:
        """``<input stem>.gates.<ext>`` for a split, ``<input stem>.<target>.<ext>`` for a conversion."""
        return outputs.output_name(self.input_name, format or self.format or "npz", self.target)

    def output_format(self, format: str | None = None) -> outputs.OutputFormat:
        """The output format to write: ``format``, else the one the result was prepared for, else npz."""
        chosen = format or self.format or "npz"
        if chosen == self.format:
            return outputs.OUTPUTS[chosen]  # checked when the result was made
        return outputs.check_format(chosen, self.target)

    def write(self, stream: IO[bytes], format: str | None = None) -> None:
        """Encode the result in ``format`` (default: ``self.format``, else npz) to a binary stream."""
        self.output_format(format).write(self.arrays, self.meta, stream)

    def save(
        self,
        destination: str | os.PathLike[str] | IO[bytes] | None = None,
        format: str | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> Path | None:
        """Write the result to a file, a folder or a binary stream; return the file's path.

        ``destination``: a file path; an existing folder, or a ``str`` ending in ``/``
        (the folder is created), to write ``default_name()`` into; a binary stream; None for
        ``default_name()`` in the current directory. A file is written through a
        temporary file beside it and renamed, so that a failure leaves nothing behind; it
        gets the permissions of any new file (``0o666`` less the umask).

        ``progress(done, total)`` is called as bytes are written (``total``: the arrays'
        size; an encoding's overhead can take ``done`` past it).
        """
        output = self.output_format(format)
        if destination is not None and not isinstance(destination, (str, os.PathLike)):
            self._encode(output, destination, progress)
            return None
        path = Path(os.fspath(destination)) if destination is not None else Path(self.default_name(output.name))
        if path.is_dir() or str(destination).endswith(("/", os.sep)):
            path.mkdir(parents=True, exist_ok=True)
            path = path / self.default_name(output.name)
        _write_atomically(path, lambda stream: self._encode(output, stream, progress))
        return path

    def _encode(
        self, output: outputs.OutputFormat, stream: IO[bytes], progress: Callable[[int, int], None] | None
    ) -> None:
        if progress is None:
            output.write(self.arrays, self.meta, stream)
            return
        total = sum(array.nbytes for array in self.arrays.values())
        counted = cast(IO[bytes], _Counted(stream, lambda done: progress(done, total)))
        output.write(self.arrays, self.meta, counted)

    def to_json(self) -> dict[str, Any]:
        """The result as the JSON document ``{"arrays": {...}, "meta": {...}}``."""
        from rnnbridge.formats.json_arrays import to_json

        return to_json(self.arrays, self.meta)

    def meta_json(self) -> str:
        """The metadata as one compact JSON string."""
        from rnnbridge.formats.meta import dumps

        return dumps(self.meta)


class _Counted:
    """A binary stream passing writes (and seeks) to ``raw`` and reporting the bytes written."""

    def __init__(self, raw: IO[bytes], report: Callable[[int], None]) -> None:
        self._raw = raw
        self._report = report
        self._count = 0

    def __getattr__(self, name: str) -> Any:  # seek, tell, seekable, flush, ... of the raw stream
        return getattr(self._raw, name)

    def write(self, data: bytes) -> int:
        written = self._raw.write(data)
        self._count += written
        self._report(self._count)
        return written


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a new temporary file beside ``path``, then rename it over ``path``.

    The temporary file is created like any file (mode ``0o666`` less the umask), not with
    ``mkstemp``'s ``0o600``, so the result has the permissions a user expects.
    """
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
