"""What an upload that no reader claims looks like, said first in its 415.

``unrecognised(files)`` builds the ``UnsupportedFormat`` of such an upload: what was seen,
file by file ("an empty upload (0 bytes)", "a checkpoint data shard without its .index",
"an ONNX model cut off at byte N", "a text file", "a single .npy array", ...) with the way
out, then the short list of what rnnbridge reads. The guesses look at names and the first
bytes only; they explain a refusal and never make a reader accept anything.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Sequence

from rnnbridge.errors import RnnBridgeError, UnsupportedFormat
from rnnbridge.formats.base import InputFile

#: what rnnbridge reads, short: the refusal's last words
READS = (
    "rnnbridge reads Keras .h5/.keras/.weights.h5, PyTorch .pt/.pth/.bin, safetensors, ONNX, "
    "TensorFlow checkpoints (.index + .data-* files, or one zip/tar of the folder), and npz or JSON "
    "arrays with source="
)
_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")
_HEAD = 512


def unrecognised(files: Sequence[InputFile], understood: list[str]) -> UnsupportedFormat:
    """The 415 of an upload no format claims (see the module); ``understood``: the format names."""
    seen = [f"{_quoted(f.name)} is {what}" for f in files if (what := describe(f, files)) is not None]
    if not seen:
        sizes = ", ".join(f"{_quoted(f.name)} ({_size(f)} bytes)" for f in files)
        seen = [f"none of the formats rnnbridge reads matched {sizes}"]
    return UnsupportedFormat(f"{'; '.join(seen)}. {READS}.", understood=understood)


def describe(file: InputFile, upload: Sequence[InputFile]) -> str | None:
    """What ``file`` looks like and what to send instead, or None when nothing is recognised."""
    size = _size(file)
    if size == 0:
        return "an empty upload (0 bytes): send the file itself, curl -F file=@PATH (with the @)"
    name = file.name.rsplit("/", 1)[-1]
    if _DATA_SHARD.search(name) and not any(f.name.endswith(".index") for f in upload):
        prefix = _DATA_SHARD.sub("", name)
        return f"a checkpoint data shard without its .index: send {prefix}.index with it"
    if name.endswith(".meta"):
        return "a .meta, which holds the graph, not the weights: send the .index and .data-* files"
    head = _head(file)
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array, without names: save the arrays with np.savez under their names, send source="
    if head.startswith(b"\x08"):
        return _onnx(file, size)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive holding none of these formats"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file without Keras weights in it"
    text = _text(head)
    if text is not None:
        if text.startswith("model_checkpoint_path"):
            return "TensorFlow's 'checkpoint' bookkeeping file: send the .index and .data-* files it names"
        snippet = text[:40] + ("..." if len(text) > 40 else "")
        return f"a text file (it starts {snippet!r})"
    return None


def _onnx(file: InputFile, size: int) -> str | None:
    """A file that opens like an ONNX ModelProto but did not read: cut off, most often."""
    from rnnbridge.formats.onnx.graph import parse_model

    try:
        with open(file.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            header = parse_model(mm)
    except (RnnBridgeError, ValueError):
        return f"an ONNX model cut off at byte {size}: its last field runs past the end (an incomplete copy?)"
    except OSError:
        return None
    return None if header.graph.stop > header.graph.start else "an ONNX model without a graph"


def _head(file: InputFile) -> bytes:
    try:
        with open(file.path, "rb") as fh:
            return fh.read(_HEAD)
    except OSError:
        return b""


def _text(head: bytes) -> str | None:
    """``head`` as text, if it is printable UTF-8 (a character cut at the end of a full head allowed)."""
    for cut in range(4 if len(head) == _HEAD else 1):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return text if text and all(c.isprintable() or c in "\t\r\n" for c in text) else None
    return None


def _size(file: InputFile) -> int:
    try:
        return file.path.stat().st_size
    except OSError:
        return -1


def _quoted(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")
