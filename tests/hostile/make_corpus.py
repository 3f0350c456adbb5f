"""Write the hostile-input corpus of ``tests/hostile/corpus/``, deterministically.

Every entry of ``ENTRIES`` is one upload (one file, or a folder of files sent together)
built from scratch with the standard library, NumPy and h5py: no framework is needed.
Entries that point *outside* the upload (HDF5 external links and storage, virtual
datasets, ONNX external data, archive members with absolute paths, pickles that would
run a command) point into a *marker directory*: the tests build those entries again
with a marker directory inside their ``tmp_path`` and check that nothing there was read
or written. The committed files use :data:`DEFAULT_MARKERS`.

Usage::

    python tests/hostile/make_corpus.py            # (re)write the corpus and its README
    python tests/hostile/make_corpus.py --check    # exit 1 if the committed corpus is stale

The same call always writes the same bytes (fixed seeds, no timestamps: HDF5 files are
written with ``track_order`` off and no times, zip and tar members with a fixed date).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pickle
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
#: the marker directory the committed corpus points at (nothing needs to exist there)
DEFAULT_MARKERS = Path("/tmp/rnnbridge-hostile-markers")

#: what a marker holds: if these bytes ever show up in a response, a marker was read
SECRET = b"RNNBRIDGE-SECRET-MARKER-" * 4
SECRET_VALUES = np.full((12, 3), 4242.4242, np.float32)  # an LSTM-shaped weight, for h5 markers
#: files an entry would create in the marker directory if it were extracted or executed
WRITTEN_MARKERS = ("pwned", "pwned.index", "pwned-by-pickle")

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_H = 3  # hidden size of the small valid layers
_I = 2  # input size


@dataclass(frozen=True)
class Entry:
    """One corpus upload: ``build(markers)`` returns ``{file name: bytes}``."""

    name: str
    how: str
    build: Callable[[Path], dict[str, bytes]]
    uses_markers: bool = False


def write_markers(markers: Path) -> dict[str, bytes]:
    """Create the read markers in ``markers``; return ``{file name: bytes}`` written."""
    markers.mkdir(parents=True, exist_ok=True)
    (markers / "secret.bin").write_bytes(SECRET * 64)
    with h5py.File(markers / "secret.h5", "w", track_order=False) as h5:
        h5.create_dataset("secret", data=SECRET_VALUES, track_times=False)
    return {p.name: p.read_bytes() for p in sorted(markers.iterdir())}


# ------------------------------------------------------------------------ helpers


def _h5(fill: Callable[[h5py.File], None], libver: str | tuple[str, str] = "earliest") -> bytes:
    """An in-memory HDF5 file written by ``fill``."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=False, libver=libver) as h5:
        fill(h5)
    return buffer.getvalue()


def _lstm_arrays(prefix: str = "rnn.", fill: float | None = None) -> dict[str, np.ndarray]:
    """A one-level PyTorch ``nn.LSTM`` state dict (seeded), keys starting with ``prefix``."""
    rng = np.random.default_rng(0)
    arrays = {
        f"{prefix}weight_ih_l0": rng.uniform(-0.5, 0.5, (4 * _H, _I)).astype(np.float32),
        f"{prefix}weight_hh_l0": rng.uniform(-0.5, 0.5, (4 * _H, _H)).astype(np.float32),
        f"{prefix}bias_ih_l0": rng.uniform(-0.5, 0.5, 4 * _H).astype(np.float32),
        f"{prefix}bias_hh_l0": rng.uniform(-0.5, 0.5, 4 * _H).astype(np.float32),
    }
    if fill is not None:
        arrays[f"{prefix}weight_ih_l0"][0, :] = fill
    return arrays


def safetensors_bytes(arrays: dict[str, np.ndarray], header: dict | None = None) -> bytes:
    """A safetensors file of float32 ``arrays``; ``header`` replaces the computed header."""
    offset, entries, data = 0, {}, b""
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array, "<f4").tobytes()
        entries[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        offset, data = offset + len(raw), data + raw
    text = json.dumps(header if header is not None else entries).encode()
    return struct.pack("<Q", len(text)) + text + data


def _zip(members: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for info, data in members:
            if isinstance(info, str):
                info = zipfile.ZipInfo(info, _ZIP_DATE)
                info.compress_type = compression
            z.writestr(info, data)
    return buffer.getvalue()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def _tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _npy(header: str, data: bytes = b"") -> bytes:
    """A ``.npy`` v1.0 member with a hand-written header (padded as NumPy pads it)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


# ------------------------------------------------------------------------- protobuf


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pb(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _onnx_tensor(name: str, dims: list[int], raw: bytes | None = None, extra: bytes = b"") -> bytes:
    body = b"".join(_pb(1, d) for d in dims) + _pb(2, 1) + _pb(8, name)
    return body + (b"" if raw is None else _pb(9, raw)) + extra


def _onnx_model(initializers: list[bytes], hidden: int = _H) -> bytes:
    """A ModelProto with one forward LSTM node reading initializers W, R."""
    attr = _pb(1, "hidden_size") + _pb(3, hidden) + _pb(20, 2)
    node = _pb(1, "X") + _pb(1, "W") + _pb(1, "R") + _pb(2, "Y") + _pb(4, "LSTM") + _pb(3, "lstm") + _pb(5, attr)
    graph = _pb(1, node) + b"".join(_pb(5, t) for t in initializers)
    return _pb(1, 7) + _pb(7, graph) + _pb(8, _pb(2, 14))


def _onnx_valid_tensors() -> list[bytes]:
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (1, 4 * _H, _I)).astype("<f4")
    r = rng.uniform(-1, 1, (1, 4 * _H, _H)).astype("<f4")
    return [_onnx_tensor("W", list(w.shape), w.tobytes()), _onnx_tensor("R", list(r.shape), r.tobytes())]


# --------------------------------------------------------------- TF tensor bundle


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    block = body + struct.pack("<II", 0, 1)
    return block + b"\x00" + struct.pack("<I", _masked_crc(block + b"\x00"))


def tf_index(entries: dict[bytes, bytes]) -> bytes:
    """An uncompressed SSTable (a TF ``.index``) holding the bundle header and ``entries``."""
    entries = {b"": _pb(1, 1) + _pb(3, _pb(1, 1)), **entries}
    data = _block(sorted(entries.items()))
    meta = _block([])
    index = _block([(max(entries), _varint(0) + _varint(len(data) - 5))])
    footer = _varint(len(data)) + _varint(len(meta) - 5) + _varint(len(data) + len(meta)) + _varint(len(index) - 5)
    return data + meta + index + footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)


def _tf_entry(dims: list[int], offset: int, size: int) -> bytes:
    """A float32 ``BundleEntryProto`` (no checksum)."""
    shape = b"".join(_pb(2, _pb(1, d)) for d in dims)
    return _pb(1, 1) + _pb(2, shape) + _pb(4, offset) + _pb(5, size)


def _tf_bundle(entries: dict[bytes, bytes], data: bytes = b"\0" * 64) -> dict[str, bytes]:
    return {"model.ckpt.index": tf_index(entries), "model.ckpt.data-00000-of-00001": data}


# ------------------------------------------------------------------------- pickles


class _Command:
    """A pickle payload: unpickling it runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (self.command,))


def _touch(path: Path) -> str:
    return f"touch '{path}'"


def _reduce_pickle(markers: Path) -> bytes:
    return pickle.dumps({"rnn.weight_ih_l0": _Command(_touch(markers / "pwned-by-pickle"))}, protocol=2)


def _torch_zip(pkl: bytes) -> bytes:
    return _zip([("archive/data.pkl", pkl), ("archive/version", b"3\n")], zipfile.ZIP_STORED)


def _legacy_torch(pkl: bytes) -> bytes:
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    return magic + pkl


def _eval_pickle() -> bytes:
    """``builtins.eval("__import__('os').getpid()")`` written by hand (GLOBAL + REDUCE)."""
    return b"\x80\x02cbuiltins\neval\nq\x00X\x1f\x00\x00\x00__import__('os').getpid() + 0 q\x01\x85q\x02Rq\x03."


# ------------------------------------------------------------------- HDF5 builders


def _h5_external_link(markers: Path) -> bytes:
    def fill(h5: h5py.File) -> None:
        h5["lstm"] = h5py.ExternalLink(str(markers / "secret.h5"), "/secret")

    return _h5(fill)


def _h5_external_storage(markers: Path) -> bytes:
    def fill(h5: h5py.File) -> None:
        size = SECRET_VALUES.nbytes
        h5.create_dataset("kernel", (12, 3), "f4", external=[(str(markers / "secret.bin"), 0, size)], track_times=False)

    return _h5(fill)


def _h5_virtual(markers: Path) -> bytes:
    def fill(h5: h5py.File) -> None:
        space = h5py.h5s.create_simple((12, 3))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        dcpl.set_virtual(space, str(markers / "secret.h5").encode(), b"secret", space)
        h5py.h5d.create(h5.id, b"kernel", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)

    return _h5(fill, libver=("v110", "latest"))


def _h5_filter_plugin() -> bytes:
    def fill(h5: h5py.File) -> None:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        dcpl.set_chunk((4, 3))
        dcpl.set_filter(32001, h5py.h5z.FLAG_OPTIONAL, (0, 0, 0, 0, 5, 1, 1))  # blosc: a plugin library
        space = h5py.h5s.create_simple((12, 3))
        h5py.h5d.create(h5.id, b"kernel", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)

    return _h5(fill)


def _h5_scaleoffset() -> bytes:
    """A lossy built-in filter (scale-offset, id 6) that rnnbridge does not allow."""

    def fill(h5: h5py.File) -> None:
        h5.create_dataset("kernel", data=np.ones((12, 3), "f4"), chunks=(4, 3), scaleoffset=2, track_times=False)

    return _h5(fill)


def _h5_chunk_bomb() -> bytes:
    """A (4, 3) float32 dataset whose one deflate chunk inflates to 64 MiB of zeros."""

    def fill(h5: h5py.File) -> None:
        dset = h5.create_dataset("kernel", (4, 3), "f4", chunks=(4, 3), compression="gzip", track_times=False)
        bomb = gzip.zlib.compress(b"\0" * (64 << 20), 9)
        dset.id.write_direct_chunk((0, 0), bomb)

    return _h5(fill)


def _h5_declared_bomb() -> bytes:
    """A legitimately compressed dataset of 128 MiB of zeros (about 130 KiB on disk)."""

    def fill(h5: h5py.File) -> None:
        h5.create_dataset(
            "kernel", data=np.zeros((4096, 8192), "f4"), chunks=(512, 8192), compression="gzip",
            compression_opts=9, track_times=False,
        )

    return _h5(fill)


def _h5_huge_shape() -> bytes:
    """A dataset declaring 2**62 elements, with no chunk ever written."""

    def fill(h5: h5py.File) -> None:
        h5.create_dataset("kernel", (2**31, 2**31), "f4", chunks=(1, 16), track_times=False)

    return _h5(fill)


def _h5_deep_config() -> bytes:
    """A Keras 2 ``model.save`` file whose ``model_config`` nests 100 000 lists."""

    def fill(h5: h5py.File) -> None:
        h5.attrs["model_config"] = "[" * 100_000 + "]" * 100_000
        h5.attrs["keras_version"] = "2.15.0"
        h5.create_group("model_weights")

    return _h5(fill)


def _h5_deep_groups() -> bytes:
    """150 nested groups and a soft-link cycle, with no weights."""

    def fill(h5: h5py.File) -> None:
        group = h5
        for _ in range(150):
            group = group.create_group("g")
        group["loop"] = h5py.SoftLink("/g")

    return _h5(fill)


def _h5_bad_layer_names() -> bytes:
    """Keras 2 ``save_weights`` layout whose layer and weight names climb out of any folder."""

    def fill(h5: h5py.File) -> None:
        h5.attrs["layer_names"] = np.array([b"..\\..\\evil"])
        h5.attrs["keras_version"] = b"2.15.0"
        group = h5.create_group("..\\..\\evil")
        arrays = {"kernel:0": (_I, 4 * _H), "recurrent_kernel:0": (_H, 4 * _H), "bias:0": (4 * _H,)}
        rng = np.random.default_rng(2)
        names = []
        for name, shape in arrays.items():
            group.create_dataset(f"..\\..\\evil/{name}", data=rng.uniform(-1, 1, shape).astype("f4"), track_times=False)
            names.append(f"..\\..\\evil/{name}".encode())
        group.attrs["weight_names"] = np.array(names)

    return _h5(fill)


# --------------------------------------------------------------- more builders


def _nan_inf_arrays() -> dict[str, np.ndarray]:
    arrays = _lstm_arrays(fill=float("nan"))
    arrays["rnn.weight_ih_l0"][1, :] = np.inf
    arrays["rnn.bias_hh_l0"][2] = -np.inf
    return arrays


def _weights_only(prefix: str) -> dict[str, np.ndarray]:
    """An ``nn.LSTM(bias=False)`` state dict: two tensors, so a long name appears twice."""
    return {k: v for k, v in _lstm_arrays(prefix).items() if "weight" in k}


def _deep_safetensors() -> bytes:
    text = b'{"__metadata__": ' + b'{"a": ' * 30_000 + b"1" + b"}" * 30_000 + b"}"
    return struct.pack("<Q", len(text)) + text


def _onnx_external(location: str) -> bytes:
    external = _pb(13, _pb(1, "location") + _pb(2, location)) + _pb(13, _pb(1, "length") + _pb(2, "144")) + _pb(14, 1)
    w = _onnx_valid_tensors()[0]
    return _onnx_model([w, _onnx_tensor("R", [1, 4 * _H, _H], None, external)])


def _onnx_giant_field() -> bytes:
    """A well-framed model whose initializer W holds a raw_data field claiming 2**40 bytes."""
    w = _onnx_tensor("W", [1, 4 * _H, _I]) + _varint(9 << 3 | 2) + _varint(2**40) + b"\0" * 16
    return _onnx_model([w, _onnx_valid_tensors()[1]])


def _zip_symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _ZIP_DATE)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return info


def _tar_device(name: str) -> tuple[tarfile.TarInfo, None]:
    info, _ = _tar_special(name, tarfile.CHRTYPE)
    info.devmajor, info.devminor = 1, 3
    return info, None


def _pax_bomb() -> bytes:
    """A tar whose first header is a pax header declaring 64 MiB of records (all zeros)."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size, info.mtime = tarfile.XHDTYPE, 64 << 20, 0
    return info.tobuf(tarfile.USTAR_FORMAT) + b"\0" * (64 << 20)


def _h5_global_heap_hang() -> bytes:
    """Keras-2-like string attributes; one global-heap object's size raised from 6 to 1542.

    Found by ``tools/fuzz.py`` (one byte of a real Keras 2 ``model.save`` file): libhdf5
    then loops for ever, holding the GIL, when h5py reads the attribute ``backend``.
    """

    def fill(h5: h5py.File) -> None:
        for key, value in (("model_config", '{"class_name": "Sequential"}'), ("backend", "tensorflow"), ("keras_version", "2.21.0")):
            h5.attrs[key] = value
        h5.create_group("model_weights")

    data = bytearray(_h5(fill))
    at = data.index(b"2.21.0") - 8  # the 8-byte size of that heap object
    assert data[at] == 6 and data[at + 1] == 0
    data[at + 1] = 6
    return bytes(data)


def _central_patch(data: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes at ``offset`` of every central-directory header (found by signature)."""
    out, at = bytearray(data), data.find(b"PK\x01\x02")
    while at >= 0:
        out[at + offset : at + offset + len(value)] = value
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def _torch_zip_valid() -> bytes:
    """A torch.save zip whose data.pkl is a plain dict and one storage member."""
    pkl = pickle.dumps({"w": 1}, protocol=2)
    return _zip([("archive/data.pkl", pkl), ("archive/data/0", b"\0" * 16), ("archive/version", b"3\n")], zipfile.ZIP_STORED)


def _torch_zip_version() -> bytes:
    """Found by tools/fuzz.py: 'version needed to extract' 16.4 made zipfile raise NotImplementedError."""
    return _central_patch(_torch_zip_valid(), 6, struct.pack("<H", 164))


def _torch_zip_encrypted() -> bytes:
    """Found by tools/fuzz.py: the encrypted flag on a storage member made zipfile raise RuntimeError."""
    return _central_patch(_torch_zip_valid(), 8, struct.pack("<H", 1))


def _zip_empty_name() -> bytes:
    """Found by tools/fuzz.py: an empty member name made ZipInfo.is_dir raise IndexError."""
    return _zip([("model.ckpt.index", b"x"), ("", b"y")])


SHARED_KERAS2 = HERE.parents[2] / "shared" / "fixtures" / "k2_lstm_seq" / "m.h5"


def _h5_segfault() -> bytes:
    """Found by ``tools/fuzz.py``: the real Keras 2 file ``k2_lstm_seq/m.h5`` (shared
    fixtures) with byte 7561 changed from 1 to 5; libhdf5 segfaults when h5py reads the
    string-array attribute ``weight_names``, which kills the whole server process.
    Without the shared fixtures the committed bytes are kept."""
    if not SHARED_KERAS2.is_file():
        return (CORPUS / "h5_segfault.h5").read_bytes()
    data = bytearray(SHARED_KERAS2.read_bytes())
    assert data[7561] == 1
    data[7561] = 5
    return bytes(data)


# ---------------------------------------------------------------------- the table


def _one(name: str, build: Callable[[], bytes]) -> Callable[[Path], dict[str, bytes]]:
    return lambda markers: {name: build()}


def _one_m(name: str, build: Callable[[Path], bytes]) -> Callable[[Path], dict[str, bytes]]:
    return lambda markers: {name: build(markers)}


def _zip_bomb() -> bytes:
    return _zip([("model.ckpt.index", b"\0" * (100 << 20))])


def _zip_lying_size() -> bytes:
    """A zip member whose headers say 64 bytes but whose deflate stream holds 64 MiB."""
    data = _zip([("model.ckpt.index", b"\0" * (64 << 20))])
    real = struct.pack("<I", 64 << 20)
    return data.replace(real, struct.pack("<I", 64))


def _npz(members: dict[str, bytes]) -> bytes:
    return _zip([(f"{k}.npy", v) for k, v in members.items()])


def _npz_object(markers: Path) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    return _npz({"rnn.weight_ih_l0": _npy(header, pickle.dumps([_Command(_touch(markers / "pwned-by-pickle"))]))})


ENTRIES: list[Entry] = [
    # HDF5: reads outside the file, plugins, bombs
    Entry("h5_external_link.h5", "HDF5 external link /lstm -> <markers>/secret.h5:/secret", _one_m("h5_external_link.h5", _h5_external_link), True),
    Entry("h5_external_storage.h5", "dataset /kernel with external=[(<markers>/secret.bin, 0, 144)]", _one_m("h5_external_storage.h5", _h5_external_storage), True),
    Entry("h5_virtual_dataset.h5", "virtual dataset /kernel mapping <markers>/secret.h5:/secret", _one_m("h5_virtual_dataset.h5", _h5_virtual), True),
    Entry("h5_filter_plugin.h5", "dataset with optional filter 32001 (blosc, a plugin library)", _one("h5_filter_plugin.h5", _h5_filter_plugin)),
    Entry("h5_scaleoffset.h5", "dataset with the lossy built-in scale-offset filter", _one("h5_scaleoffset.h5", _h5_scaleoffset)),
    Entry("h5_chunk_bomb.h5", "(4, 3) float32 dataset whose raw deflate chunk inflates to 64 MiB", _one("h5_chunk_bomb.h5", _h5_chunk_bomb)),
    Entry("h5_declared_bomb.h5", "gzip dataset of 4096x8192 float32 zeros (128 MiB) in ~130 KiB", _one("h5_declared_bomb.h5", _h5_declared_bomb)),
    Entry("h5_huge_shape.h5", "chunked dataset of shape (2**31, 2**31), nothing written", _one("h5_huge_shape.h5", _h5_huge_shape)),
    Entry("h5_deep_config.h5", "model_config attribute of 100 000 nested JSON lists", _one("h5_deep_config.h5", _h5_deep_config)),
    Entry("h5_deep_groups.h5", "150 nested groups ending in a soft link back to the top", _one("h5_deep_groups.h5", _h5_deep_groups)),
    Entry("h5_global_heap_hang.h5", "string attributes; one global-heap object size byte 0 -> 6 (libhdf5 loops for ever)", _one("h5_global_heap_hang.h5", _h5_global_heap_hang)),
    Entry("h5_segfault.h5", "shared fixture k2_lstm_seq/m.h5 with byte 7561 1 -> 5 (libhdf5 segfaults reading weight_names)", _one("h5_segfault.h5", _h5_segfault)),
    Entry("h5_bad_layer_names.h5", "Keras 2 save_weights layout, LSTM layer named '..\\..\\evil'", _one("h5_bad_layer_names.h5", _h5_bad_layer_names)),
    # pickles
    Entry("torch_reduce.pt", "torch.save zip whose data.pkl is os.system('touch <markers>/pwned-by-pickle') via __reduce__", _one_m("torch_reduce.pt", lambda m: _torch_zip(_reduce_pickle(m))), True),
    Entry("torch_legacy_reduce.pt", "legacy torch.save (magic number + pickle) with the same __reduce__ payload", _one_m("torch_legacy_reduce.pt", lambda m: _legacy_torch(_reduce_pickle(m))), True),
    Entry("torch_zip_version.pt", "torch.save zip whose central directory asks for zip version 16.4 (fuzz find)", _one("torch_zip_version.pt", _torch_zip_version)),
    Entry("torch_zip_encrypted.pt", "torch.save zip whose members carry the encrypted flag (fuzz find)", _one("torch_zip_encrypted.pt", _torch_zip_encrypted)),
    Entry("zip_empty_name.zip", "zip with a member whose name is empty (fuzz find)", _one("zip_empty_name.zip", _zip_empty_name)),
    Entry("torch_eval.pt", "torch.save zip whose data.pkl calls builtins.eval (GLOBAL + REDUCE)", _one("torch_eval.pt", lambda: _torch_zip(_eval_pickle()))),
    Entry("npz_object_array.npz", "npz member with dtype object holding the __reduce__ payload", _one_m("npz_object_array.npz", _npz_object), True),
    # npz and zip bombs, lying headers
    Entry("npz_huge_shape.npz", "npz member declaring shape (2**62,) with 4 bytes of data", _one("npz_huge_shape.npz", lambda: _npz({"w": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", b"\0" * 4)}))),
    Entry("npz_negative_shape.npz", "npz member declaring shape (-1, 4)", _one("npz_negative_shape.npz", lambda: _npz({"w": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }", b"\0" * 16)}))),
    Entry("npz_bomb.npz", "npz member of 25 Mi float32 zeros (100 MiB), deflated to ~100 KiB", _one("npz_bomb.npz", lambda: _npz({"w": _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (26214400,), }", b"\0" * (100 << 20))}))),
    Entry("zip_bomb.zip", "zip of one 100 MiB member of zeros (~100 KiB)", _one("zip_bomb.zip", _zip_bomb)),
    Entry("zip_lying_size.zip", "zip member declaring 64 bytes whose deflate stream inflates to 64 MiB", _one("zip_lying_size.zip", _zip_lying_size)),
    Entry("tar_gz_bomb.tar.gz", "gzipped tar with one 100 MiB member of zeros", _one("tar_gz_bomb.tar.gz", lambda: _tar([_tar_file("model.ckpt.index", b"\0" * (100 << 20))], gz=True))),
    Entry("gzip_bomb.gz", "gzip of 100 MiB of zeros (no tar inside)", _one("gzip_bomb.gz", lambda: gzip.compress(b"\0" * (100 << 20), 9, mtime=0))),
    Entry("tar_gz_pax_bomb.tar.gz", "gzipped tar whose pax header declares 64 MiB of records", _one("tar_gz_pax_bomb.tar.gz", lambda: gzip.compress(_pax_bomb(), 9, mtime=0))),
    # archive members that climb out
    Entry("zip_dotdot.zip", "zip member '../../../pwned.index'", _one("zip_dotdot.zip", lambda: _zip([("../../../pwned.index", b"x")]))),
    Entry("zip_absolute.zip", "zip member '<markers>/pwned' (absolute path)", _one_m("zip_absolute.zip", lambda m: _zip([(str(m / "pwned"), b"x")])), True),
    Entry("zip_symlink.zip", "zip member 'model.ckpt.index' that is a symlink to <markers>/secret.bin", _one_m("zip_symlink.zip", lambda m: _zip([(_zip_symlink("model.ckpt.index"), str(m / "secret.bin").encode())])), True),
    Entry("tar_dotdot.tar", "tar member '../../pwned'", _one("tar_dotdot.tar", lambda: _tar([_tar_file("../../pwned", b"x")]))),
    Entry("tar_absolute.tar", "tar member '<markers>/pwned'", _one_m("tar_absolute.tar", lambda m: _tar([_tar_file(str(m / "pwned"), b"x")])), True),
    Entry("tar_symlink.tar", "tar symlink 'model.ckpt.index' -> <markers>/secret.bin", _one_m("tar_symlink.tar", lambda m: _tar([_tar_special("model.ckpt.index", tarfile.SYMTYPE, str(m / "secret.bin"))])), True),
    Entry("tar_hardlink.tar", "tar hard link 'model.ckpt.index' -> <markers>/secret.bin", _one_m("tar_hardlink.tar", lambda m: _tar([_tar_special("model.ckpt.index", tarfile.LNKTYPE, str(m / "secret.bin"))])), True),
    Entry("tar_device.tar", "tar character device 'model.ckpt.index' (1, 3: /dev/null)", _one("tar_device.tar", lambda: _tar([_tar_device("model.ckpt.index")]))),
    Entry("tar_fifo.tar", "tar fifo 'model.ckpt.index'", _one("tar_fifo.tar", lambda: _tar([_tar_special("model.ckpt.index", tarfile.FIFOTYPE)]))),
    # TF checkpoints with lying index entries
    Entry("tf_offset_past_end", "index entry at offset 2**40 of a 64-byte shard", lambda m: _tf_bundle({b"rnn/lstm_cell/kernel": _tf_entry([5, 12], 2**40, 240)})),
    Entry("tf_negative_offset", "index entry at offset -8", lambda m: _tf_bundle({b"rnn/lstm_cell/kernel": _tf_entry([2], -8, 8)})),
    Entry("tf_overflowing_size", "index entry of size 2**64-1 at offset 1", lambda m: _tf_bundle({b"rnn/lstm_cell/kernel": _tf_entry([2], 1, 2**64 - 1)})),
    Entry("tf_huge_shape", "index entry of shape (2**62,) and size 8", lambda m: _tf_bundle({b"rnn/lstm_cell/kernel": _tf_entry([2**62], 0, 8)})),
    Entry("tf_shape_size_mismatch", "index entry of shape (5, 12) (240 bytes) declaring size 8", lambda m: _tf_bundle({b"rnn/lstm_cell/kernel": _tf_entry([5, 12], 0, 8)})),
    # ONNX
    Entry("onnx_external_absolute", "ONNX initializer R with external data at <markers>/secret.bin", _one_m("model.onnx", lambda m: _onnx_external(str(m / "secret.bin"))), True),
    Entry("onnx_external_dotdot", "ONNX initializer R with external data at ../../../secret.bin", _one("model.onnx", lambda: _onnx_external("../../../secret.bin"))),
    Entry("onnx_giant_field.onnx", "ONNX raw_data field declaring 2**40 bytes", _one("onnx_giant_field.onnx", _onnx_giant_field)),
    Entry("onnx_huge_dims.onnx", "ONNX initializer with dims (2**31, 2**31) and 4 bytes of raw_data", _one("onnx_huge_dims.onnx", lambda: _onnx_model([_onnx_tensor("W", [2**31, 2**31], b"\0" * 4), _onnx_valid_tensors()[1]]))),
    Entry("onnx_negative_dims.onnx", "ONNX initializer with dims (-1, 12, 2)", _one("onnx_negative_dims.onnx", lambda: _onnx_model([_onnx_tensor("W", [-1, 12, 2], b"\0" * 96), _onnx_valid_tensors()[1]]))),
    # safetensors
    Entry("st_header_too_long.safetensors", "safetensors header length 2**63 - 1", _one("st_header_too_long.safetensors", lambda: struct.pack("<Q", 2**63 - 1) + b"{}")),
    Entry("st_offsets_past_end.safetensors", "safetensors tensor with data_offsets [0, 2**40]", _one("st_offsets_past_end.safetensors", lambda: safetensors_bytes(_lstm_arrays(), {"rnn.weight_ih_l0": {"dtype": "F32", "shape": [2**18, 2**20], "data_offsets": [0, 2**40]}}))),
    Entry("st_negative_offsets.safetensors", "safetensors tensor with data_offsets [-8, 0]", _one("st_negative_offsets.safetensors", lambda: safetensors_bytes(_lstm_arrays(), {"rnn.weight_ih_l0": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}))),
    Entry("st_deep_header.safetensors", "safetensors header of 30 000 nested JSON objects", _one("st_deep_header.safetensors", lambda: _deep_safetensors())),
    # JSON
    Entry("json_deep.json", "JSON arrays document nested 100 000 lists deep", _one("json_deep.json", lambda: b'{"arrays": {"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")),
    Entry("json_huge_shape.json", "JSON arrays entry declaring shape [2**62]", _one("json_huge_shape.json", lambda: json.dumps({"arrays": {"rnn.weight_ih_l0": {"dtype": "float32", "shape": [2**62], "data": [0.0]}}}).encode())),
    # payloads and names
    Entry("nan_inf.safetensors", "valid PyTorch LSTM state dict; weight_ih_l0 row 0 is NaN, row ... Inf", _one("nan_inf.safetensors", lambda: safetensors_bytes(_nan_inf_arrays()))),
    Entry("names_dotdot.safetensors", "valid LSTM state dict whose module is named '../../etc/x'", _one("names_dotdot.safetensors", lambda: safetensors_bytes(_lstm_arrays("../../etc/x.")))),
    Entry("names_absolute.safetensors", "valid LSTM state dict whose module is named '/abs/x'", _one("names_absolute.safetensors", lambda: safetensors_bytes(_lstm_arrays("/abs/x.")))),
    Entry("names_nul.safetensors", "valid LSTM state dicts of two modules named 'a\\0b' and 'a\\0c'", _one("names_nul.safetensors", lambda: safetensors_bytes({**_lstm_arrays("a\0b."), **_lstm_arrays("a\0c.")}))),
    Entry("names_long.safetensors", "valid LSTM state dict whose module name is 70 000 characters (bias=False)", _one("names_long.safetensors", lambda: safetensors_bytes(_weights_only("x" * 70_000 + ".")))),
    Entry("names_crlf.safetensors", "LSTM state dict whose module name holds a quote and CR LF (not a state-dict key)", _one("names_crlf.safetensors", lambda: safetensors_bytes(_lstm_arrays('a"\r\nSet-Cookie: x=1\r\n.')))),
]


# ------------------------------------------------------------------------- writing


def build(entry: Entry, markers: Path = DEFAULT_MARKERS) -> dict[str, bytes]:
    """The files of ``entry`` with outside references pointing into ``markers``."""
    return entry.build(markers)


def corpus_path(entry: Entry) -> Path:
    """Where ``entry`` lives: a file, or a folder for a multi-file upload or a fixed file name."""
    return CORPUS / entry.name


def _on_disk(entry: Entry) -> dict[str, bytes]:
    path = corpus_path(entry)
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return {path.name: path.read_bytes()} if path.is_file() else {}


def _is_folder(entry: Entry, files: dict[str, bytes]) -> bool:
    return len(files) > 1 or next(iter(files)) != entry.name


def write(entry: Entry) -> None:
    files = build(entry)
    path = corpus_path(entry)
    if _is_folder(entry, files):
        path.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (path / name).write_bytes(data)
    else:
        path.write_bytes(files[entry.name])


def load(entry: Entry) -> dict[str, bytes]:
    """The committed files of ``entry``."""
    return _on_disk(entry)


def readme() -> str:
    lines = [
        "# Hostile-input corpus",
        "",
        "Written by `python tests/hostile/make_corpus.py` (deterministic; `--check` verifies).",
        "Each entry is one upload; a folder is a multi-file upload, or keeps a fixed file name.",
        f"Paths outside the upload point into `{DEFAULT_MARKERS}` (the tests rebuild those",
        "entries with a marker folder of their own and check it is never read or written).",
        "Expected status and error code per entry: `tests/hostile/test_corpus.py`.",
        "",
        "| entry | how it was made |",
        "| --- | --- |",
    ]
    lines += [f"| `{e.name}` | {e.how.replace('|', '/')} |" for e in ENTRIES]
    return "\n".join(lines) + "\n"


def stale() -> list[str]:
    """Entries whose committed bytes differ from what the generator writes."""
    out = [e.name for e in ENTRIES if load(e) != build(e)]
    readme_path = HERE / "corpus" / "README.md"
    if not readme_path.is_file() or readme_path.read_text() != readme():
        out.append("README.md")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the corpus is up to date")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        print("stale: " + ", ".join(bad) if bad else "corpus up to date")
        return 1 if bad else 0
    CORPUS.mkdir(exist_ok=True)
    for entry in ENTRIES:
        write(entry)
    (CORPUS / "README.md").write_text(readme())
    print(f"wrote {len(ENTRIES)} entries to {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
