"""NumPy ``.npz`` archives: a zip of ``.npy`` members, one array each.

Each member ``<key>.npy`` is the NumPy format: ``\\x93NUMPY``, a version byte pair, a
header length, a Python-literal header ``{'descr', 'fortran_order', 'shape'}`` and the
raw data. The reader does what ``np.load(path, allow_pickle=False)`` does, one member at
a time, but looks at every header before it loads any data:

* the header length is bounded (``MAX_HEADER_SIZE``) and parsed by
  ``numpy.lib.format`` without evaluating anything;
* an object dtype (which would need unpickling) is ``UnsafeInput`` ("object_array");
* the declared element count is checked against ``Limits`` and the member's declared
  uncompressed size must hold the whole array (zip itself bounds what a member inflates
  to by that size, and checks its CRC);
* other non-numeric members (strings, structured records) are skipped and listed in
  ``attrs["skipped"]``.

A member ``__meta__.npy`` (a JSON string written by rnnbridge) is not an array: its parsed
JSON goes to ``attrs["meta"]``. Arrays keep their dtype, in native byte order.

The writer (``write``) is the inverse: an uncompressed archive, one ``<name>.npy`` per
array plus ``__meta__``, that ``np.load(path, allow_pickle=False)`` reads whole.
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from rnnbridge.errors import InvalidField, LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile, open_zip
from rnnbridge.formats.json_arrays import MAX_META_BYTES, loads_bounded
from rnnbridge.formats.meta import META_KEY, dumps

NAME = "npz"
NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_SIZE = 10_000
#: members whose magic :func:`sniff` checks (the names of all are checked)
SNIFF_MEMBERS = 16
#: the timestamp of every member written (zip's earliest), so that an archive's bytes depend
#: on its arrays and metadata only: the same result gives the same file
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_NUMERIC_KINDS = "biufc"


@dataclass(frozen=True)
class _Header:
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data_offset: int


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` is a zip whose members are all ``.npy`` arrays."""
    return len([f for f in files if _is_npz(f.path)]) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read every numeric array of an ``.npz`` archive.

    Parameters
    ----------
    files : sequence of InputFile
        The upload; exactly one file must be an ``.npz``.
    limits : Limits
        Bounds on each array and on all of them.

    Returns
    -------
    WeightFile
        ``tensors`` keyed by member name without ``.npy``; ``attrs["meta"]`` (the
        ``__meta__`` JSON or None) and ``attrs["skipped"]`` (non-numeric keys).

    Raises
    ------
    UnsafeInput
        A member with an object dtype.
    MalformedFile
        A bad zip, member or header, or data shorter than the header declares.
    LimitExceeded
        An array, or all of them, over ``limits``.
    """
    path = _the_file(files).path
    try:
        with open_zip(path) as archive:
            headers = [_checked_header(archive, info, limits) for info in _members(archive)]
            _check_total(headers, limits)
            return _load(archive, headers, limits)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression
        raise MalformedFile(f"npz: not a readable zip archive: {exc}") from exc


def _is_npz(path: Path) -> bool:
    try:
        with open_zip(path) as archive:
            infos = archive.infolist()
            if not infos or not all(i.filename.endswith(".npy") for i in infos):
                return False
            return all(_member_magic(archive, i) == NPY_MAGIC for i in infos[:SNIFF_MEMBERS])
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return False


def _member_magic(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as fh:
        return fh.read(len(NPY_MAGIC))


def _the_file(files: Sequence[InputFile]) -> InputFile:
    """The one file that sniffs as an npz, else the only file of the upload."""
    found = [f for f in files if _is_npz(f.path)] or list(files)
    if len(found) != 1:
        raise UnsupportedFormat(f"expected one .npz archive in the upload, found {len(found)}")
    return found[0]


def _members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    names = [i.filename for i in infos]
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise MalformedFile(f"npz: duplicate members {duplicates}")
    odd = [n for n in names if not n.endswith(".npy")]
    if odd:
        raise MalformedFile(f"npz: members {odd[:5]} are not .npy arrays")
    return infos


def _checked_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> _Header:
    """Parse one member's header; check it against the limits and the member's size."""
    key = info.filename[: -len(".npy")]
    header = _parse_header(archive, info, key)
    if header.dtype.hasobject:
        raise UnsafeInput(
            f"npz member '{key}' holds Python objects (dtype {header.dtype}); reading it would unpickle the upload",
            code="object_array",
            tensor=key,
        )
    elements = math.prod(header.shape)
    if elements > limits.max_tensor_elements:
        raise LimitExceeded(
            f"npz member '{key}' declares {elements} elements, more than the limit of {limits.max_tensor_elements}",
            tensor=key,
        )
    data_bytes = elements * header.dtype.itemsize
    if key == META_KEY and data_bytes > MAX_META_BYTES:
        raise LimitExceeded(f"npz '{META_KEY}' declares {data_bytes} bytes, more than {MAX_META_BYTES}", tensor=key)
    if info.file_size < header.data_offset + data_bytes:
        raise MalformedFile(
            f"npz member '{key}': header declares {header.shape} {header.dtype}, "
            f"{data_bytes} data bytes from byte offset {header.data_offset}, but the member "
            f"has {info.file_size} bytes",
            tensor=key,
        )
    return header


def _parse_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> _Header:
    try:
        with archive.open(info) as fh:
            version = npy_format.read_magic(fh)
            shape, _fortran_order, dtype = _read_header(fh, version)
            if any(n < 0 for n in shape):
                raise ValueError(f"negative dimension in shape {shape}")
            return _Header(key, tuple(shape), dtype, fh.tell())
    except (ValueError, TypeError, SyntaxError, EOFError, tokenize.TokenError) as exc:
        raise MalformedFile(f"npz member '{key}': bad .npy header: {exc}", tensor=key) from exc


def _read_header(fh: IO[bytes], version: tuple[int, int]) -> tuple:
    if version == (1, 0):
        return npy_format.read_array_header_1_0(fh, max_header_size=MAX_HEADER_SIZE)
    if version in ((2, 0), (3, 0)):
        return npy_format.read_array_header_2_0(fh, max_header_size=MAX_HEADER_SIZE)
    raise ValueError(f"unknown .npy format version {version}")


def _check_total(headers: list[_Header], limits: Limits) -> None:
    total = 0
    for h in headers:
        total += math.prod(h.shape) * h.dtype.itemsize
        if total > limits.max_total_bytes:
            raise LimitExceeded(
                f"npz arrays up to '{h.key}' declare {total} bytes, more than the limit of {limits.max_total_bytes}",
                tensor=h.key,
            )


def _load(archive: zipfile.ZipFile, headers: list[_Header], limits: Limits) -> WeightFile:
    tensors: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    meta = None
    for h in headers:
        if h.key == META_KEY:
            meta = _meta(_load_member(archive, h))
        elif h.dtype.kind in _NUMERIC_KINDS and h.dtype.fields is None:
            tensors[h.key] = _native(_load_member(archive, h))
        else:
            skipped.append(h.key)
    return WeightFile(NAME, tensors, {"meta": meta, "skipped": skipped})


def _load_member(archive: zipfile.ZipFile, header: _Header) -> np.ndarray:
    try:
        with archive.open(header.key + ".npy") as fh:
            return npy_format.read_array(fh, allow_pickle=False, max_header_size=MAX_HEADER_SIZE)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError) as exc:
        raise MalformedFile(f"npz member '{header.key}': truncated or corrupt: {exc}", tensor=header.key) from exc


def _meta(array: np.ndarray) -> object:
    if array.dtype.kind not in "US" or array.size != 1:
        raise MalformedFile(f"npz '{META_KEY}' must hold one JSON string", tensor=META_KEY)
    text = array.reshape(-1)[0]
    return loads_bounded(bytes(text) if isinstance(text, bytes) else str(text), what=f"npz '{META_KEY}'")


def _native(array: np.ndarray) -> np.ndarray:
    """The same values in native byte order (downstream code may view raw bytes)."""
    if array.dtype.byteorder not in "=|":
        return array.astype(array.dtype.newbyteorder("="))
    return array


# ------------------------------------------------------------------- writing


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write ``arrays`` and ``meta`` as an uncompressed npz archive to a binary ``stream``.

    The stream need not be seekable. ``np.load(stream, allow_pickle=False)`` reads every
    array back (in the memory order it had), and ``json.loads(str(npz["__meta__"]))`` the
    metadata. Members carry a fixed timestamp (``ZIP_DATE``): the same arrays and metadata
    give the same bytes.
    """
    if META_KEY in arrays:
        raise InvalidField(f"an output array may not be named {META_KEY!r}", field="format")
    for name in arrays:
        _check_member_name(name)
    members = {**arrays, META_KEY: np.array(dumps(meta))}
    with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            with archive.open(info, mode="w", force_zip64=True) as member:
                npy_format.write_array(member, np.asarray(array), allow_pickle=False)


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
