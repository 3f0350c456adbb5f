"""ONNX external data: tensor values kept in a side file, read only from the upload.

``external_data`` names ``location`` (a relative path), ``offset`` and ``length`` (decimal
byte counts). The location is never opened: an absolute path, a drive letter, ``~``,
``..`` or a NUL is refused outright, and otherwise only an uploaded file with the same
base name is read, from ``offset``, after the span was checked against its size.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from rnnbridge.errors import MalformedFile, UnsafeInput
from rnnbridge.formats.base import InputFile
from rnnbridge.formats.onnx.tensor_proto import Context, Tensor, charge, check_size

_DRIVE = re.compile(r"^[A-Za-z]:")

_DIGITS = re.compile(r"[0-9]+")


def external_bytes(tensor: Tensor, count: int, itemsize: int, ctx: Context) -> bytes:
    """The bytes of an external-data tensor, from an uploaded side file only."""
    nbytes = count * itemsize
    upload = _side_file(tensor, ctx.files)
    offset = _external_int(tensor, "offset", 0)
    length = _external_int(tensor, "length", nbytes)
    check_size(tensor, length, nbytes, "bytes of external data (length)")
    size = upload.path.stat().st_size
    if offset + nbytes > size:
        raise MalformedFile(
            f"ONNX: external data of tensor {tensor.name!r} spans bytes [{offset}, {offset + nbytes}) "
            f"of {upload.name!r}, which has {size} bytes",
            tensor=tensor.name,
        )
    charge(tensor, count, nbytes, ctx)
    with open(upload.path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(nbytes)
    check_size(tensor, len(data), nbytes, f"bytes of {upload.name!r} from offset {offset}")
    return data


def _side_file(tensor: Tensor, files: Sequence[InputFile]) -> InputFile:
    """The uploaded file a ``location`` names; anything else is refused unopened."""
    location = tensor.external.get("location", "")
    parts = location.replace("\\", "/").split("/")
    unsafe = not location or "\x00" in location or location[0] in "/\\~" or _DRIVE.match(location) or ".." in parts
    wanted = "" if unsafe else posixpath.basename(posixpath.normpath("/".join(parts)))
    for upload in files:
        if wanted and posixpath.basename(upload.name.replace("\\", "/")) == wanted:
            return upload
    raise UnsafeInput(
        f"ONNX: tensor {tensor.name!r} keeps its data at {location!r}, which is not a file of this upload; "
        "upload the model's external data files with it",
        code="external_data_outside_upload",
        tensor=tensor.name,
    )


def _external_int(tensor: Tensor, key: str, default: int) -> int:
    text = tensor.external.get(key)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        raise MalformedFile(
            f"ONNX: external data {key} {text!r} of tensor {tensor.name!r} is not a byte count",
            tensor=tensor.name,
        )
    return int(text)
