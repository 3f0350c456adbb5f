"""Guards shared by the readers that open HDF5 files (``keras_h5``, ``keras_zip``).

An HDF5 file can ask its reader to do far more than read its own bytes: an external link
opens another file, external raw storage reads an arbitrary file as a dataset's data, a
virtual dataset maps datasets of other files, a filter other than the built-in ones makes
HDF5 load a plugin library, and a deflate chunk can inflate without bound inside HDF5
(its filter grows the output buffer until the stream ends). :func:`inventory` walks the
whole file through hard links only, looking at metadata only, and refuses every one of
these before the caller reads a single value:

=========================  ===================================================
code                       refused
=========================  ===================================================
``hdf5_external_link``     an external (or user-defined) link anywhere
``hdf5_external_storage``  a dataset whose raw data lives in another file
``hdf5_virtual_dataset``   a virtual dataset
``hdf5_filter``            a filter other than deflate, shuffle, fletcher32,
                           lzf, or a pipeline with them in an odd order
=========================  ===================================================

Soft links are never followed by the walk: every object a soft link can reach is also
reached through hard links (a soft link is a path, resolved through links of this file,
and the walk has already refused any external link), so the walk records them and
moves on. Hard links may form cycles or aliases; each object is visited once, under the
first path that reaches it (the walk checks a group's links, in name order, before it
descends into its subgroups). The number of links visited, the elements of each dataset
and the bytes of all datasets are bounded, and compressed chunks are inflated once in
Python with a bounded output before HDF5 is allowed to decompress them.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
from h5py import h5d, h5l, h5o

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput
from rnnbridge.formats.base import Limits

#: HDF5 filter id -> name, for the filters HDF5 (or h5py, for lzf) implements itself
ALLOWED_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
DEFLATE, SHUFFLE, FLETCHER32, LZF = 1, 2, 3, 32000
#: links visited in one file before the walk gives up
MAX_OBJECTS = 100_000

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: superblock offsets probed by :func:`has_signature` (HDF5 also allows 2048, 4096, ...)
SIGNATURE_OFFSETS = (0, 512)


@dataclass
class Inventory:
    """What :func:`inventory` found, keyed by path without the leading ``/``.

    ``datasets`` and ``groups`` hold each object once, under the first path that
    reaches it through hard links (the root group is ``""``); ``paths_by_addr`` maps an
    object's address in the file to that path, so that an object reached another way
    (a soft link, a Keras weight name) finds its key; ``soft_links`` maps a soft
    link's path to its target.
    """

    datasets: dict[str, h5py.Dataset] = field(default_factory=dict)
    groups: dict[str, h5py.Group] = field(default_factory=dict)
    paths_by_addr: dict[int, str] = field(default_factory=dict)
    soft_links: dict[str, str] = field(default_factory=dict)


def has_signature(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file, at least 520) starts an HDF5 file."""
    return any(head[o : o + len(SIGNATURE)] == SIGNATURE for o in SIGNATURE_OFFSETS)


@contextlib.contextmanager
def open_hdf5(path: Path) -> Iterator[h5py.File]:
    """Open ``path`` read-only without file locking; any failure is ``MalformedFile``."""
    try:
        h5 = h5py.File(path, "r", locking=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise MalformedFile(f"truncated or corrupt HDF5 file: {exc}") from exc
    try:
        yield h5
    finally:
        h5.close()


def object_address(obj: h5py.HLObject) -> int:
    """The address of ``obj``'s header in its file: the identity of an HDF5 object."""
    return int(h5o.get_info(obj.id).addr)


def inventory(h5: h5py.File, limits: Limits, *, max_objects: int = MAX_OBJECTS) -> Inventory:
    """Walk every link of ``h5`` and check every dataset, reading no dataset values.

    Parameters
    ----------
    h5 : h5py.File
        An open file.
    limits : Limits
        ``max_tensor_elements`` bounds each dataset, ``max_total_bytes`` all of them.
    max_objects : int
        The number of links visited before ``LimitExceeded``.

    Returns
    -------
    Inventory

    Raises
    ------
    UnsafeInput
        An external or user-defined link, external storage, a virtual dataset, a
        filter outside :data:`ALLOWED_FILTERS` or a chunk that inflates past its size.
    LimitExceeded
        Too many links, or a dataset (or all of them) over ``limits``.
    MalformedFile
        Metadata HDF5 cannot read.
    """
    inv = Inventory()
    walk = _Walk(inv, limits, max_objects)
    try:
        inv.paths_by_addr[object_address(h5)] = ""
        walk.group("", h5)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise MalformedFile(f"truncated or corrupt HDF5 file: {exc}") from exc
    return inv


@dataclass
class _Walk:
    inv: Inventory
    limits: Limits
    max_objects: int
    links: int = 0
    nbytes: int = 0

    def group(self, path: str, root: h5py.Group) -> None:
        # iterative depth-first walk: a deep (or cyclic) tree cannot exhaust the stack
        stack = [(path, root)]
        while stack:
            path, group = stack.pop()
            self.inv.groups[path] = group
            subgroups = []
            for name in group.id:  # link names as bytes, in name order
                child = self.link(path, group, name)
                if child is not None:
                    subgroups.append(child)
            stack.extend(reversed(subgroups))

    def link(self, parent: str, group: h5py.Group, name: bytes) -> tuple[str, h5py.Group] | None:
        """Check one link; return ``(path, group)`` when it leads to a group to walk."""
        self.links += 1
        if self.links > self.max_objects:
            raise LimitExceeded(f"HDF5 file has more than {self.max_objects} links")
        path = _join(parent, name)
        kind = group.id.links.get_info(name).type  # does not traverse the link
        if kind == h5l.TYPE_SOFT:
            self.inv.soft_links[path] = _decode(group.id.links.get_val(name))
            return None
        if kind != h5l.TYPE_HARD:
            raise UnsafeInput(
                f"HDF5 {'external' if kind == h5l.TYPE_EXTERNAL else 'user-defined'} link "
                f"at '/{path}' points outside the file; refused",
                code="hdf5_external_link",
                tensor=path,
            )
        obj = group.get(name)
        if obj is None:
            raise MalformedFile(f"HDF5 link '/{path}' leads to no object", tensor=path)
        addr = object_address(obj)
        if addr in self.inv.paths_by_addr:
            return None  # an alias (or a cycle) of an object already walked
        self.inv.paths_by_addr[addr] = path
        if isinstance(obj, h5py.Group):
            return path, obj
        if isinstance(obj, h5py.Dataset):
            self.dataset(path, obj)
        return None

    def dataset(self, path: str, dset: h5py.Dataset) -> None:
        check_dataset(dset, path)
        elements = math.prod(dset.shape) if dset.shape is not None else 0
        if elements > self.limits.max_tensor_elements:
            raise LimitExceeded(
                f"dataset '/{path}' declares {elements} elements, more than the limit "
                f"of {self.limits.max_tensor_elements}",
                tensor=path,
            )
        self.nbytes += elements * dset.id.get_type().get_size()
        if self.nbytes > self.limits.max_total_bytes:
            raise LimitExceeded(
                f"datasets up to '/{path}' declare {self.nbytes} bytes, more than the "
                f"limit of {self.limits.max_total_bytes}",
                tensor=path,
            )
        check_chunks(dset, path, self.limits)
        self.inv.datasets[path] = dset


def check_dataset(dset: h5py.Dataset, path: str) -> None:
    """Refuse external storage, a virtual layout, or filters outside the allowed set."""
    plist = dset.id.get_create_plist()
    if plist.get_layout() == h5d.VIRTUAL:
        raise UnsafeInput(
            f"dataset '/{path}' is a virtual dataset mapping other files; refused",
            code="hdf5_virtual_dataset",
            tensor=path,
        )
    if plist.get_external_count() > 0:
        raise UnsafeInput(
            f"dataset '/{path}' keeps its data in external files; refused",
            code="hdf5_external_storage",
            tensor=path,
        )
    _check_pipeline(filter_ids(dset), path)


def filter_ids(dset: h5py.Dataset) -> list[int]:
    """The dataset's filter pipeline, in the order the writer applied it."""
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def _check_pipeline(filters: list[int], path: str) -> None:
    unknown = [f for f in filters if f not in ALLOWED_FILTERS]
    if unknown:
        raise UnsafeInput(
            f"dataset '/{path}' uses HDF5 filter(s) {unknown}; only {sorted(ALLOWED_FILTERS.items())} are allowed",
            code="hdf5_filter",
            tensor=path,
        )
    compressors = [i for i, f in enumerate(filters) if f in (DEFLATE, LZF)]
    # one compressor, after which only a checksum may be applied: that is what
    # :func:`check_chunks` knows how to bound (h5py writes shuffle, compress, fletcher32)
    if len(compressors) > 1 or (compressors and any(f != FLETCHER32 for f in filters[compressors[0] + 1 :])):
        raise UnsafeInput(
            f"dataset '/{path}' has an unsupported filter pipeline {[ALLOWED_FILTERS[f] for f in filters]}",
            code="hdf5_filter",
            tensor=path,
        )


def check_chunks(dset: h5py.Dataset, path: str, limits: Limits) -> None:
    """Inflate each compressed chunk with a bounded output before HDF5 may.

    HDF5's deflate filter (and h5py's lzf filter) grow their buffers until the stream
    ends, so a chunk of a few kilobytes can claim gigabytes of memory. Each stored
    chunk is decoded here, up to one byte past the chunk's size, and refused if it
    would be longer.
    """
    filters = filter_ids(dset)
    compressor = next((f for f in filters if f in (DEFLATE, LZF)), None)
    if compressor is None or dset.chunks is None:
        return
    chunk_bytes = math.prod(dset.chunks) * dset.id.get_type().get_size()
    if chunk_bytes > limits.max_total_bytes:
        raise LimitExceeded(f"dataset '/{path}' declares chunks of {chunk_bytes} bytes", tensor=path)
    skip_bit = 1 << filters.index(compressor)
    for index in range(dset.id.get_num_chunks()):
        offset = dset.id.get_chunk_info(index).chunk_offset
        mask, raw = dset.id.read_direct_chunk(offset)
        if mask & skip_bit:
            continue  # the writer stored this chunk uncompressed
        size = _inflated_size(raw, compressor, chunk_bytes)
        if size > chunk_bytes:
            raise UnsafeInput(
                f"dataset '/{path}': chunk at {offset} inflates past its {chunk_bytes} bytes",
                code="hdf5_filter",
                tensor=path,
            )


def _inflated_size(raw: bytes, compressor: int, bound: int) -> int:
    """Decoded length of one chunk, or ``bound + 1`` as soon as it is known to exceed it."""
    if compressor == DEFLATE:
        try:
            return len(zlib.decompressobj().decompress(raw, bound + 1))
        except zlib.error:
            return 0  # HDF5 will report the corrupt stream when the data are read
    return _lzf_size(raw, bound)


def _lzf_size(raw: bytes, bound: int) -> int:
    """Length of the output of an LZF stream (liblzf format), without producing it."""
    size, pos = 0, 0
    while pos < len(raw) and size <= bound:
        ctrl = raw[pos]
        pos += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            size += ctrl + 1
            pos += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += raw[pos] if pos < len(raw) else 0
            pos += 1
        size += length + 2
        pos += 1  # low byte of the back-reference offset
    return size


def _join(parent: str, name: bytes) -> str:
    text = _decode(name)
    return f"{parent}/{text}" if parent else text


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")
