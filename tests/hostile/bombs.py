"""Generators of structural bombs: a few kilobytes that make a naive parser allocate or
compute without bound (issue 13). Each returns ``(file name, bytes)``; sizes are
parameters, so tests use small ones and ``tools/fuzz.py`` and ``bench/soak.py`` the same
shapes as seeds. Nothing large is committed: every input is built here, streaming where
the expanded form is big.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np

from rnnbridge.formats.tf.crc32c import crc32c, mask
from tests.hostile.make_corpus import _pb, _varint, safetensors_bytes

_DATE = (2024, 1, 1, 0, 0, 0)


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, _DATE)
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


def _zip_streamed(name: str, head: bytes, unit: bytes, repeat: int, tail: bytes = b"", others=None) -> bytes:
    """A deflated zip whose member ``name`` is ``head + unit * repeat + tail``, written in
    pieces (the expanded member is never held in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for other, data in (others or {}).items():
            archive.writestr(other, data)
        info = zipfile.ZipInfo(name, _DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(head)
            block = unit * max(1, (1 << 20) // len(unit))
            full, rest = divmod(repeat, (1 << 20) // len(unit) or 1)
            for _ in range(full):
                member.write(block)
            member.write(unit * rest + tail)
    return buffer.getvalue()


# ---------------------------------------------------------------- JSON (observation 1)


def json_unterminated_escapes(pairs: int = 100_000) -> tuple[str, bytes]:
    """``{"a":"`` + ``\\"`` x pairs: quadratic for a regex retried from every quote."""
    return "escapes.json", b'{"a":"' + b'\\"' * pairs


def keras_unterminated_escapes(pairs: int = 2_000_000) -> tuple[str, bytes]:
    """A ``.keras`` whose ``config.json`` is the same unterminated string (KBs zipped)."""
    data = _zip_streamed("config.json", b'{"a":"', b'\\"', pairs, others={"model.weights.h5": b"\0" * 64})
    return "escapes.keras", data


# ---------------------------------------------------------- memory bombs (observation 2)


def npz_meta_bomb(lists: int = 2_500_000) -> tuple[str, bytes]:
    """An npz whose ``__meta__`` member is ``[[],[],...]``: 3 bytes a list, 56+ bytes in Python."""
    body_len = 1 + 3 * lists + 2
    header = _npy_header(f"|S{body_len}", ())
    data = _zip_streamed("__meta__.npy", header + b"[", b"[],", lists, b"[]]")
    return "meta.npz", data


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def sstable_prefix_bomb(entries: int = 4_000, grow: int = 64) -> tuple[str, bytes]:
    """A TF checkpoint index whose every key keeps the whole previous key and adds ``grow``
    bytes: ``entries`` x (grow + 3) bytes declare entries**2 x grow / 2 bytes of keys."""
    body = bytearray()
    length = 0
    for i in range(entries):
        body += _varint(length) + _varint(grow) + _varint(0) + bytes([97 + i % 26]) * grow
        length += grow
    block = bytes(body) + struct.pack("<II", 0, 1)
    data = _block_with_trailer(block)
    meta = _block_with_trailer(struct.pack("<II", 0, 1))
    handle = _varint(0) + _varint(len(data) - 5)
    index = _block_with_trailer(
        _varint(0) + _varint(1) + _varint(len(handle)) + b"~" + handle + struct.pack("<II", 0, 1)
    )
    footer = _varint(len(data)) + _varint(len(meta) - 5) + _varint(len(data) + len(meta)) + _varint(len(index) - 5)
    index_bytes = data + meta + index + footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return "model.ckpt.index", index_bytes


def _block_with_trailer(block: bytes) -> bytes:
    return block + b"\x00" + struct.pack("<I", mask(crc32c(block + b"\x00")))


def torch_empty_sets(opcodes: int = 8_000_000) -> tuple[str, bytes]:
    """A torch zip whose ``data.pkl`` is ``opcodes`` EMPTY_SETs (1 byte each, 216 in Python)."""
    members = {"archive/version": b"3\n"}
    data = _zip_streamed("archive/data.pkl", b"\x80\x02", b"\x8f", opcodes, b"N.", others=members)
    return "sets.pt", data


def keras_config_lists(lists: int = 2_000_000) -> tuple[str, bytes]:
    """A ``.keras`` whose ``config.json`` is ``[[],[],...]``."""
    data = _zip_streamed("config.json", b"[", b"[],", lists, b"[]]", others={"model.weights.h5": b"\0" * 64})
    return "lists.keras", data


def onnx_empty_nodes(nodes: int = 1 << 20) -> tuple[str, bytes]:
    """A ModelProto whose graph holds ``nodes`` empty NodeProtos (2 bytes each)."""
    graph = b"\x0a\x00" * nodes
    return "nodes.onnx", _pb(1, 7) + _pb(7, graph) + _pb(8, _pb(2, 14))


def json_floats(values: int = 3_000_000) -> tuple[str, bytes]:
    """A plain JSON arrays document of ``values`` small floats (4 bytes of text each)."""
    return "floats.json", b'{"w": [' + b"0.5," * (values - 1) + b"0.5]}"


def keras_zero_weights(mib: int = 100) -> tuple[str, bytes]:
    """A ``.keras`` whose ``model.weights.h5`` inflates to ``mib`` MiB of zeros (~1000:1)."""
    zeros = b"\0" * (1 << 20)
    data = _zip_streamed("model.weights.h5", b"", zeros, mib, others={"config.json": b"{}"})
    return "zeros.keras", data


# --------------------------------------------------------------- echoes (observation 5)


def pickle_echo(items: int = 2_000) -> tuple[str, bytes]:
    """A torch zip whose tensor size is a list of ``items`` references to one list of
    ``items`` ints: ~8 KB of pickle whose ``repr`` is items**2 x 3 bytes."""
    inner = b"]q\x00(" + b"K\x00" * items + b"e"  # EMPTY_LIST BINPUT 0 MARK BININT1 0... APPENDS
    outer = b"](" + b"h\x00" * items + b"e"  # EMPTY_LIST MARK BINGET 0... APPENDS
    storage = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
    args = b"(" + storage + b"K\x00" + inner + b"0" + outer + b")\x89}t"  # POP drops the inner list
    pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R."
    data = _zip({"archive/data.pkl": pkl, "archive/data/0": b"\0" * 16, "archive/version": b"3\n"})
    return "echo.pt", data


def onnx_many_dims(dims: int = 500_000) -> tuple[str, bytes]:
    """An ONNX initializer listing ``dims`` dimensions (an error once printed them all)."""
    tensor = b"".join(_pb(1, 1) for _ in range(dims)) + _pb(2, 1) + _pb(8, "W")
    graph = _pb(5, tensor)
    return "dims.onnx", _pb(1, 7) + _pb(7, graph) + _pb(8, _pb(2, 14))


# ------------------------------------------------------------------ 500s (observation 6)


def safetensors_huge_empty_shape() -> tuple[str, bytes]:
    header = {"w": {"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}}
    return "empty.safetensors", safetensors_bytes({}, header)


def json_huge_empty_shape() -> tuple[str, bytes]:
    doc = {"arrays": {"w": {"dtype": "float32", "shape": [0, 2**62], "data": []}}}
    return "empty.json", json.dumps(doc).encode()


# ---------------------------------------------------------------- smaller (observation 7)


def npz_integer_lstm(dtype: str = "int64", hidden: int = 3, inputs: int = 2) -> tuple[str, bytes]:
    """A PyTorch-named LSTM (source=pytorch) whose weights are integers or bools."""
    rng = np.random.default_rng(0)
    shapes = {
        "weight_ih_l0": (4 * hidden, inputs),
        "weight_hh_l0": (4 * hidden, hidden),
        "bias_ih_l0": (4 * hidden,),
        "bias_hh_l0": (4 * hidden,),
    }
    buffer = io.BytesIO()
    high = 2 if dtype == "bool" else 2**62
    np.savez(buffer, **{f"lstm.{k}": rng.integers(0, high, s).astype(dtype) for k, s in shapes.items()})
    return "ints.npz", buffer.getvalue()


def npz_named_lstm(name: str, hidden: int = 3, inputs: int = 2) -> tuple[str, bytes]:
    """A float32 PyTorch-named LSTM under the module name ``name``."""
    rng = np.random.default_rng(0)
    shapes = {
        "weight_ih_l0": (4 * hidden, inputs),
        "weight_hh_l0": (4 * hidden, hidden),
        "bias_ih_l0": (4 * hidden,),
        "bias_hh_l0": (4 * hidden,),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{name}.{k}": rng.standard_normal(s).astype("float32") for k, s in shapes.items()})
    return "named.npz", buffer.getvalue()


#: every structural bomb, by name: the seeds of ``tools/fuzz.py`` and the hostile mix of ``bench/soak.py``
BOMBS = {
    "json_unterminated_escapes": json_unterminated_escapes,
    "keras_unterminated_escapes": keras_unterminated_escapes,
    "npz_meta_bomb": npz_meta_bomb,
    "sstable_prefix_bomb": sstable_prefix_bomb,
    "torch_empty_sets": torch_empty_sets,
    "keras_config_lists": keras_config_lists,
    "onnx_empty_nodes": onnx_empty_nodes,
    "json_floats": json_floats,
    "keras_zero_weights": keras_zero_weights,
    "pickle_echo": pickle_echo,
    "onnx_many_dims": onnx_many_dims,
    "safetensors_huge_empty_shape": safetensors_huge_empty_shape,
    "json_huge_empty_shape": json_huge_empty_shape,
}
