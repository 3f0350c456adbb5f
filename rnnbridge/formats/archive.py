"""Expanding uploaded zip and tar archives into their regular files, safely.

An upload may be one archive of a checkpoint folder instead of its files. ``expand`` replaces
each archive by its regular-file members, extracted under a directory the caller owns, and
passes every other file through unchanged. Archives are recognised by their bytes:

* zip: ``PK\\x03\\x04`` at offset 0 — unless the zip *is* a weight container (NumPy ``.npz``,
  Keras 3 ``.keras``, ``torch.save``), which its reader opens itself;
* tar: ``ustar`` at offset 257, either directly or after gzip (``\\x1f\\x8b``) decompression.

Contract: nothing is written outside ``dest``; ``extractall`` is never used. A member with an
absolute path, a ``..`` segment or a drive letter, and any symlink, hardlink, device or fifo is
refused with ``UnsafeInput`` naming it. More than ``MAX_MEMBERS`` members per archive, or
more than ``Limits.expansion(archive bytes)`` of extracted bytes in one call (at most
``max_total_bytes``; 16 x the archives' size + 64 MiB), is ``LimitExceeded``:
bytes are counted as they are written, so a lying header or a zip bomb stops at the limit.
Tar headers (pax records, long names) read through gzip are bounded too. Archives inside
archives are not expanded. On error, what was already extracted stays in ``dest``, for
the caller to delete with it.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, open_zip

MAX_MEMBERS = 10_000

_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_TAR_MAGIC_OFFSET = 257
_CHUNK = 1 << 20
#: tar bytes that are not member data (headers, padding, pax records) allowed per archive
_TAR_HEADER_BUDGET = 8 << 20


def is_archive(file: InputFile) -> bool:
    """Whether ``file`` is a zip or (gzipped) tar archive that ``expand`` would open.

    Parameters
    ----------
    file : InputFile

    Returns
    -------
    bool
        False for non-archives and for zips that are weight containers themselves.
    """
    return _kind(file.path) is not None


def expand(files: Sequence[InputFile], limits: Limits, dest: Path) -> list[InputFile]:
    """Replace every archive among ``files`` by its extracted regular files.

    Parameters
    ----------
    files : sequence of InputFile
        The upload.
    limits : Limits
        ``max_total_bytes`` bounds the bytes extracted from all archives together.
    dest : Path
        An existing, empty directory owned by the caller. Archive ``i`` of ``files`` is
        extracted below ``dest / str(i)``, each member at its (validated) relative path.

    Returns
    -------
    list of InputFile
        Non-archives as given; for each archive, its regular files in archive order, named
        by their path inside the archive (``a/b/model.ckpt.index``).

    Raises
    ------
    UnsafeInput
        A member with an unsafe path or of an unsafe type (link, device, fifo).
    LimitExceeded
        Too many members, or too many extracted bytes.
    MalformedFile
        A corrupt archive, or two members that collide.
    """
    packed = sum(f.path.stat().st_size for f in files if _kind(f.path) is not None)
    budget = _Budget(limits.expansion(packed))
    out: list[InputFile] = []
    for i, file in enumerate(files):
        kind = _kind(file.path)
        if kind is None:
            out.append(file)
            continue
        root = dest / str(i)
        root.mkdir()
        if kind == "zip":
            out.extend(_expand_zip(file, root, budget))
        else:
            out.extend(_expand_tar(file, kind == "tar.gz", root, budget))
    return out


class _Budget:
    """Extracted bytes left for the whole call."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def take(self, member: str, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise LimitExceeded(f"archive member {member!r}: extracted files exceed {self.total} bytes in total")


# ---------------------------------------------------------------------- recognising


def _kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"``, ``"tar.gz"`` or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(_TAR_MAGIC_OFFSET + 5)
        if head.startswith(_ZIP_MAGIC):
            return None if _is_weight_container(path) else "zip"
        if head.startswith(_GZIP_MAGIC):
            with gzip.open(path, "rb") as g:
                head = g.read(_TAR_MAGIC_OFFSET + 5)
            return "tar.gz" if _has_tar_magic(head) else None
        return "tar" if _has_tar_magic(head) else None
    except (OSError, EOFError, zlib.error):
        return None


def _has_tar_magic(head: bytes) -> bool:
    return head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"


def _is_weight_container(path: Path) -> bool:
    """A zip that some reader opens as a whole: ``.npz``, ``.keras``, ``torch.save``."""
    try:
        with open_zip(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return False  # corrupt (or a zip version zipfile lacks): ``expand`` reports it
    npz = bool(names) and all(n.endswith(".npy") for n in names)
    keras = "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names)
    torch = any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names)
    return npz or keras or torch


# -------------------------------------------------------------------------- members


def _member_path(archive: str, member: str, directory: bool = False) -> str:
    """The member's relative path with ``/`` separators, or ``UnsafeInput``; ``""`` for the
    archive's own root folder (``.``), which ``tar -C dir .`` writes first."""
    parts = member.replace("\\", "/").split("/")
    where = f"archive {archive!r}: member {member!r}"
    if member.startswith(("/", "\\")) or (parts[0][1:2] == ":" and parts[0][:1].isalpha()):
        raise UnsafeInput(f"{where} has an absolute path")
    if ".." in parts:
        raise UnsafeInput(f"{where} climbs out of the archive with '..'")
    if "\x00" in member:
        raise UnsafeInput(f"{where} has a NUL byte in its name")
    kept = [p for p in parts if p not in ("", ".")]
    if not kept and not directory:
        raise MalformedFile(f"{where} has an empty path")
    return "/".join(kept)


def _write_member(source: IO[bytes], archive: str, name: str, root: Path, budget: _Budget) -> InputFile:
    """Stream one member to ``root / name``, counting every byte against ``budget``."""
    target = root.joinpath(*name.split("/"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := source.read(min(_CHUNK, budget.left + 1)):
                budget.take(name, len(chunk))
                out.write(chunk)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise MalformedFile(f"archive {archive!r}: member {name!r} collides with another member") from None
    return InputFile(name=name, path=target)


def _count(archive: str, n: int) -> None:
    if n > MAX_MEMBERS:
        raise LimitExceeded(f"archive {archive!r} has more than {MAX_MEMBERS} members")


# ---------------------------------------------------------------------------- zip


def _expand_zip(file: InputFile, root: Path, budget: _Budget) -> list[InputFile]:
    try:
        with open_zip(file.path) as z:
            members = z.infolist()
            _count(file.name, len(members))
            regular = [info for info in members if _check_zip_member(file.name, info)]
            declared = sum(info.file_size for info in regular)
            if declared > budget.left:
                raise LimitExceeded(f"archive {file.name!r} declares {declared} bytes of members")
            return [_extract_zip_member(z, file.name, info, root, budget) for info in regular]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, NotImplementedError) as exc:
        raise MalformedFile(f"archive {file.name!r} is not a readable zip: {exc}") from exc


def _check_zip_member(archive: str, info: zipfile.ZipInfo) -> bool:
    """Validate one entry; True for a regular file, False for a directory."""
    # not ``info.is_dir()``: it raises IndexError on an empty name, which _member_path refuses
    _member_path(archive, info.filename, directory=info.filename.endswith("/"))
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    kind = stat.S_IFMT(mode)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a symlink" if stat.S_ISLNK(mode) else f"a special file (mode {oct(mode)})"
        raise UnsafeInput(f"archive {archive!r}: member {info.filename!r} is {what}")
    if info.flag_bits & 0x1:
        raise UnsupportedFormat(f"archive {archive!r}: member {info.filename!r} is encrypted")
    return not (info.is_dir() or kind == stat.S_IFDIR)


def _extract_zip_member(
    z: zipfile.ZipFile, archive: str, info: zipfile.ZipInfo, root: Path, budget: _Budget
) -> InputFile:
    name = _member_path(archive, info.filename)
    try:
        with z.open(info) as source:
            return _write_member(source, archive, name, root, budget)
    except NotImplementedError as exc:  # compression methods zipfile lacks
        raise UnsupportedFormat(f"archive {archive!r}: member {name!r}: {exc}") from None


# ---------------------------------------------------------------------------- tar


def _expand_tar(file: InputFile, gzipped: bool, root: Path, budget: _Budget) -> list[InputFile]:
    opener = gzip.open if gzipped else open
    try:
        with opener(file.path, "rb") as raw:
            stream = _BoundedStream(raw, file.name)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return list(_tar_members(tar, stream, file.name, root, budget))
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise MalformedFile(f"archive {file.name!r} is not a readable tar: {exc}") from exc


def _tar_members(
    tar: tarfile.TarFile, stream: _BoundedStream, archive: str, root: Path, budget: _Budget
) -> Iterator[InputFile]:
    for count, member in enumerate(tar, start=1):
        _count(archive, count)
        name = _member_path(archive, member.name, directory=member.isdir())
        if member.isdir():
            continue
        if not member.isreg():
            what = "a link" if member.issym() or member.islnk() else "a device, fifo or special file"
            raise UnsafeInput(f"archive {archive!r}: member {member.name!r} is {what}")
        source = tar.extractfile(member)
        if source is None:
            raise MalformedFile(f"archive {archive!r}: member {member.name!r} has no data")
        stream.allow(member.size + tarfile.BLOCKSIZE)  # its data and padding
        yield _write_member(source, archive, name, root, budget)


class _BoundedStream:
    """Tar bytes as ``tarfile`` reads them, capped at member data plus a header budget.

    ``tarfile`` reads a pax header or GNU long name into memory whole, whatever size its
    header declares; behind gzip that size is not bounded by the upload's size.
    """

    def __init__(self, raw: io.BufferedIOBase, archive: str) -> None:
        self.raw, self.archive = raw, archive
        self.left = _TAR_HEADER_BUDGET

    def allow(self, nbytes: int) -> None:
        self.left += nbytes

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left + 1:
            size = self.left + 1
        data = self.raw.read(size)
        self.left -= len(data)
        if self.left < 0:
            raise LimitExceeded(f"archive {self.archive!r}: tar headers exceed {_TAR_HEADER_BUDGET} bytes")
        return data

    # the rest of a file object, as ``tarfile`` declares it; in stream mode ("r|") it only reads

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, pos: int) -> int:
        raise io.UnsupportedOperation("a tar in an upload is read as a stream")

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("a tar in an upload is read, not written")

    def close(self) -> None:
        """The caller closes ``raw``."""
