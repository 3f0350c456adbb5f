"""The tensor-bundle reader against checkpoints written by TensorFlow, and against their
bytes mutated or rebuilt by hand (``_table`` writes an index independently of the reader)."""

from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsupportedFormat
from rnnbridge.formats.tf import checkpoint as tf_checkpoint
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES

from .wire import varint as _varint

PARTITIONED = Path(__file__).resolve().parent / "data" / "tf_partitioned"
NO_FIXTURES = pytest.mark.skip(reason=f"shared fixtures not found at {FIXTURES}")
DATA = "model.ckpt.data-00000-of-00001"


def _tf1_fixtures() -> list[dict]:
    if not (FIXTURES / "manifest.json").is_file():
        return []
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [f for f in manifest["fixtures"] if f["source"] == "tf1_checkpoint"]


def _variable_cases() -> list:
    cases = [
        pytest.param(
            f["dir"], layer["native_npz"], role, w["in_files"]["model.ckpt"], id=f"{f['id']}-{role}"
        )
        for f in _tf1_fixtures()
        for layer in f["layers"]
        for role, w in layer["weights"].items()
    ]
    return cases or [pytest.param(None, None, None, None, marks=NO_FIXTURES)]


def _fixture_ids() -> list:
    return [f["dir"] for f in _tf1_fixtures()] or [pytest.param(None, marks=NO_FIXTURES)]


def _files(folder: Path) -> list[InputFile]:
    return [InputFile(p.name, p) for p in sorted(folder.iterdir())]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A writable copy of the ``tf1_lstm`` checkpoint (index and data only)."""
    if not (FIXTURES / "tf1_lstm").is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    for name in ("model.ckpt.index", DATA):
        shutil.copy(FIXTURES / "tf1_lstm" / name, tmp_path / name)
    return tmp_path


# --------------------------------------------------------- test-side CRC32C and SSTable


def _crc_byte(crc: int) -> int:
    for _ in range(8):
        crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc


CRC_TABLE = [_crc_byte(i) for i in range(256)]


def _crc_update(crc: int, data: bytes) -> int:
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _masked_crc(data: bytes) -> int:
    return _mask(_crc_update(0xFFFFFFFF, data) ^ 0xFFFFFFFF)


def _blocks(index: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each block of a real index, found by its valid 5-byte trailer."""
    blocks, start, end, crc = [], 0, 0, 0xFFFFFFFF
    while end + 5 <= len(index) - 48:
        stored = int.from_bytes(index[end + 1 : end + 5], "little")
        with_type = _crc_update(crc, index[end : end + 1]) ^ 0xFFFFFFFF
        if index[end] == 0 and _mask(with_type) == stored:
            blocks.append((start, end))
            start = end = end + 5
            crc = 0xFFFFFFFF
        else:
            crc, end = _crc_update(crc, index[end : end + 1]), end + 1
    return blocks


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _patch(index: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the one occurrence of ``old`` by ``new`` (same length) and re-sign its block."""
    assert len(old) == len(new) and index.count(old) == 1
    pos = index.index(old)
    out = bytearray(index.replace(old, new))
    for start, end in _blocks(index):
        if start <= pos < end:
            out[end + 1 : end + 5] = struct.pack("<I", _masked_crc(bytes(out[start : end + 1])))
    return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<I", value)


def _entry(
    dtype: int, dims: list[int], offset: int = 0, size: int = 0, slices: tuple = ()
) -> bytes:
    """A ``BundleEntryProto``; each of ``slices`` is a list of ``Extent`` messages."""
    shape = b"".join(_field(2, _field(1, d)) for d in dims)
    body = _field(1, dtype) + _field(2, shape) + _field(4, offset) + _field(5, size)
    return body + b"".join(_field(7, b"".join(_field(1, e) for e in s)) for s in slices)


def _extent(start: int | None = None, length: int | None = None) -> bytes:
    return (b"" if start is None else _field(1, start)) + (
        b"" if length is None else _field(2, length)
    )


def _block(entries: list[tuple[bytes, bytes]], tail: bytes = b"", restarts: int = 1) -> bytes:
    """Entries without prefix sharing, ``tail`` (raw entry bytes), the restart array, trailer."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    block = body + tail + struct.pack("<II", 0, restarts)
    return block + b"\x00" + struct.pack("<I", _masked_crc(block + b"\x00"))


def _table(entries: dict[bytes, bytes], tail: bytes = b"", restarts: int = 1) -> bytes:
    """An uncompressed SSTable: one data block, an empty metaindex, an index, the footer."""
    data = _block(sorted(entries.items()), tail, restarts)
    meta = _block([])
    index = _block([(max(entries), _varint(0) + _varint(len(data) - 5))])
    footer = _varint(len(data)) + _varint(len(meta) - 5)
    footer += _varint(len(data) + len(meta)) + _varint(len(index) - 5)
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return data + meta + index + footer


HEADER = _field(1, 1) + _field(3, _field(1, 1))


def _read_with(folder: Path, entries: dict[bytes, bytes], **limits: int):
    (folder / "model.ckpt.index").write_bytes(_table({b"": HEADER, **entries}))
    return tf_checkpoint.read(_files(folder), Limits(**limits))


# ----------------------------------------------------------------- real checkpoints


@pytest.mark.parametrize(("folder", "npz", "role", "variable"), _variable_cases())
def test_every_fixture_variable_is_read_bit_identically(folder, npz, role, variable):
    weights = tf_checkpoint.read(_files(FIXTURES / folder), Limits())
    expected = np.load(FIXTURES / folder / npz)[role]
    got = weights.tensors[variable]
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("folder", _fixture_ids())
def test_fixture_attrs(folder):
    weights = tf_checkpoint.read(_files(FIXTURES / folder), Limits())
    assert weights.format == tf_checkpoint.NAME == "tf_checkpoint"
    assert weights.attrs == {"skipped": [], "num_shards": 1, "partitioned": []}
    assert weights.notes == []
    assert tf_checkpoint.sniff(_files(FIXTURES / folder))


@pytest.mark.parametrize("folder", _fixture_ids())
@pytest.mark.parametrize("name", [DATA, "model.ckpt.meta", "checkpoint", "x.npy"])
def test_sniff_ignores_everything_but_the_index(folder, name):
    assert not tf_checkpoint.sniff([InputFile(name, FIXTURES / folder / name)])


def test_sniff_goes_by_bytes_not_names(ckpt):
    (ckpt / "model.ckpt.index").rename(ckpt / "weights.bin")
    assert tf_checkpoint.sniff([InputFile("weights.bin", ckpt / "weights.bin")])
    (ckpt / "empty.index").write_bytes(b"")
    assert not tf_checkpoint.sniff([InputFile("empty.index", ckpt / "empty.index")])


def test_index_and_shard_prefixes_may_differ(ckpt):
    (ckpt / "model.ckpt.index").rename(ckpt / "upload.index")
    weights = tf_checkpoint.read(_files(ckpt), Limits())
    assert set(weights.tensors) == {"rnn/lstm_cell/kernel", "rnn/lstm_cell/bias"}


@pytest.fixture
def partitioned() -> tuple:
    weights = tf_checkpoint.read(_files(PARTITIONED), Limits())
    return weights, np.load(PARTITIONED / "expected.npz")


@pytest.mark.parametrize(
    "name", ["rnn/lstm_cell/kernel", "rnn/lstm_cell/bias", "extra/half", "extra/i64", "extra/bf16"]
)
def test_partitioned_two_shard_checkpoint(partitioned, name):
    weights, expected = partitioned
    assert weights.tensors[name].dtype == expected[name].dtype
    assert weights.tensors[name].tobytes() == expected[name].tobytes()


def test_partitioned_checkpoint_attrs(partitioned):
    weights, expected = partitioned
    assert sorted(weights.tensors) == sorted(expected.files)
    assert weights.attrs == {
        "skipped": ["extra/words"],
        "num_shards": 2,
        "partitioned": ["rnn/lstm_cell/bias", "rnn/lstm_cell/kernel"],
    }
    assert weights.notes == ["bfloat16 tensors widened exactly to float32: extra/bf16"]


# ------------------------------------------------------------- mutated real bytes


def test_test_helpers_find_the_blocks_of_a_real_index(ckpt):
    index = (ckpt / "model.ckpt.index").read_bytes()
    assert len(_blocks(index)) == 3  # data, metaindex, index


def test_shape_size_mismatch(ckpt):
    index = (ckpt / "model.ckpt.index").read_bytes()  # kernel shape [10, 24] -> [11, 24]
    shape = _field(2, _field(1, 10)) + _field(2, _field(1, 24))
    (ckpt / "model.ckpt.index").write_bytes(_patch(index, shape, shape.replace(b"\x0a", b"\x0b")))
    with pytest.raises(MalformedFile, match="960 bytes stored for shape") as err:
        tf_checkpoint.read(_files(ckpt), Limits())
    assert err.value.tensor == "rnn/lstm_cell/kernel"


@pytest.mark.parametrize("kind", [1, 2, 0x7F])
def test_compressed_block_is_refused(ckpt, kind):
    index = bytearray((ckpt / "model.ckpt.index").read_bytes())
    start, end = _blocks(bytes(index))[0]
    index[end] = kind
    index[end + 1 : end + 5] = struct.pack("<I", _masked_crc(bytes(index[start : end + 1])))
    (ckpt / "model.ckpt.index").write_bytes(bytes(index))
    with pytest.raises(MalformedFile, match="compress"):
        tf_checkpoint.read(_files(ckpt), Limits())


def test_block_checksum_is_verified(ckpt):
    index = bytearray((ckpt / "model.ckpt.index").read_bytes())
    index[20] ^= 0x01  # inside the data block
    (ckpt / "model.ckpt.index").write_bytes(bytes(index))
    with pytest.raises(MalformedFile, match="crc32c"):
        tf_checkpoint.read(_files(ckpt), Limits())


def test_tensor_checksum_is_verified(ckpt):
    data = bytearray((ckpt / DATA).read_bytes())
    data[-1] ^= 0x80
    (ckpt / DATA).write_bytes(bytes(data))
    with pytest.raises(MalformedFile, match="crc32c") as err:
        tf_checkpoint.read(_files(ckpt), Limits())
    assert err.value.tensor is not None


@pytest.mark.parametrize("cut", [1, 4, 95, 1055])
def test_data_past_the_end_of_the_shard(ckpt, cut):
    data = (ckpt / DATA).read_bytes()
    (ckpt / DATA).write_bytes(data[: len(data) - cut])
    with pytest.raises(
        MalformedFile, match=r"run past the end of model\.ckpt\.data-00000-of-00001"
    ):
        tf_checkpoint.read(_files(ckpt), Limits())


def test_bad_magic_is_not_a_checkpoint(ckpt):
    index = bytearray((ckpt / "model.ckpt.index").read_bytes())
    index[-1] ^= 0xFF
    (ckpt / "model.ckpt.index").write_bytes(bytes(index))
    assert not tf_checkpoint.sniff(_files(ckpt))
    with pytest.raises(UnsupportedFormat):
        tf_checkpoint.read(_files(ckpt), Limits())


@pytest.mark.parametrize("keep", range(0, 169, 7))
def test_truncated_index_tail(ckpt, keep):
    index = (ckpt / "model.ckpt.index").read_bytes()
    (ckpt / "model.ckpt.index").write_bytes(index[:keep])
    with pytest.raises(UnsupportedFormat):  # the magic went with the tail
        tf_checkpoint.read(_files(ckpt), Limits())


@pytest.mark.parametrize("drop", range(1, 170, 6))
def test_truncated_index_head(ckpt, drop):
    index = (ckpt / "model.ckpt.index").read_bytes()
    (ckpt / "model.ckpt.index").write_bytes(index[drop:])
    with pytest.raises(RnnBridgeError) as err:
        tf_checkpoint.read(_files(ckpt), Limits())
    assert isinstance(err.value, (MalformedFile, UnsupportedFormat))


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_any_flipped_byte_gives_a_clean_answer(ckpt, flip):
    index = (ckpt / "model.ckpt.index").read_bytes()
    for pos in range(len(index)):
        mutated = bytearray(index)
        mutated[pos] ^= flip
        (ckpt / "model.ckpt.index").write_bytes(bytes(mutated))
        try:
            tf_checkpoint.read(_files(ckpt), Limits())
        except RnnBridgeError:
            pass


def test_missing_shard_is_named(ckpt):
    (ckpt / DATA).unlink()
    with pytest.raises(MalformedFile, match=r"'model\.ckpt\.data-00000-of-00001' is missing"):
        tf_checkpoint.read(_files(ckpt), Limits())


def test_missing_second_shard_is_named():
    files = [f for f in _files(PARTITIONED) if not f.name.endswith("00001-of-00002")]
    with pytest.raises(MalformedFile, match=r"'model\.ckpt\.data-00001-of-00002' is missing"):
        tf_checkpoint.read(files, Limits())


def test_two_indexes_are_ambiguous(ckpt):
    shutil.copy(ckpt / "model.ckpt.index", ckpt / "other.index")
    with pytest.raises(MalformedFile, match="2 checkpoint indexes"):
        tf_checkpoint.read(_files(ckpt), Limits())


def test_no_index_at_all(ckpt):
    with pytest.raises(UnsupportedFormat):
        tf_checkpoint.read([InputFile(DATA, ckpt / DATA)], Limits())


def test_index_over_the_byte_limit(ckpt):
    with pytest.raises(LimitExceeded):
        tf_checkpoint.read(_files(ckpt), Limits(max_total_bytes=100))


def test_tensor_over_the_element_limit(ckpt):
    with pytest.raises(LimitExceeded) as err:
        tf_checkpoint.read(_files(ckpt), Limits(max_tensor_elements=239))
    assert err.value.tensor == "rnn/lstm_cell/kernel"


# ------------------------------------------------------------ hand-built indexes


def test_hand_built_index_reads_the_real_bytes(ckpt):
    kernel = np.load(FIXTURES / "tf1_lstm" / "rnn0.native.npz")["kernel"]
    offset = (ckpt / DATA).read_bytes().index(kernel.tobytes())
    weights = _read_with(ckpt, {b"k": _entry(1, [10, 24], offset, 960)})
    assert weights.tensors["k"].tobytes() == kernel.tobytes()


@pytest.mark.parametrize("dims", [[2**31, 2**31], [2**62], [2**40, 2**40, 2**40]])
def test_absurd_shape_is_refused_before_allocating(ckpt, dims):
    tracemalloc.start()  # NumPy reports its allocations to tracemalloc
    try:
        with pytest.raises(LimitExceeded) as err:
            _read_with(ckpt, {b"huge": _entry(1, dims, 0, 4)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.tensor == "huge"
    assert peak < 2**20


BAD_ENTRIES = {
    "unknown rank": _field(1, 1) + _field(2, _field(3, 1)),
    "unknown dimension": _entry(1, [-1, 4]),
    "negative offset": _entry(1, [1], -4, 4),
    "shard out of range": _entry(1, [1], 0, 4) + _field(3, 5),
    "truncated varint": _entry(1, [1], 0, 4) + b"\x20\xff",
    "field overruns message": _entry(1, [1], 0, 4) + b"\x12\x40\x00",
    "group wire type": _entry(1, [1], 0, 4) + b"\x0b",
    "shape is an integer": _field(1, 1) + _field(2, 7),
    "slice missing from index": _entry(1, [2], slices=[[_extent(0, 2)]]),
    "slice outside shape": _entry(1, [2], slices=[[_extent(1, 2)]]),
    "slice of the wrong rank": _entry(1, [2], slices=[[_extent(), _extent()]]),
}


@pytest.mark.parametrize("value", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_malformed_entry(ckpt, value):
    with pytest.raises(MalformedFile) as err:
        _read_with(ckpt, {b"bad": value})
    assert err.value.tensor == "bad"
    assert "'bad'" in err.value.detail


def test_partitioned_variable_from_a_hand_built_index(ckpt):
    data = (ckpt / DATA).read_bytes()  # two slices of a [2, 3] float32: row 0, row 1
    slices = [[_extent(length=1), _extent()], [_extent(1, 1), _extent()]]
    entries = {
        b"v": _entry(1, [2, 3], slices=slices),
        b"\x00v\x00\x01\x01\x02\x80\x81\x80\x7f": _entry(1, [1, 3], 12, 12),
        b"\x00v\x00\x01\x01\x02\x81\x81\x80\x7f": _entry(1, [1, 3], 0, 12),
    }
    weights = _read_with(ckpt, entries)
    expected = np.frombuffer(data[12:24] + data[:12], "<f4").reshape(2, 3)
    assert weights.tensors["v"].tobytes() == expected.tobytes()
    assert weights.attrs["partitioned"] == ["v"]


# slices "bad"[0:2] and "bad"[0:1], both stored: only their tiling is wrong
SLICE_0_2 = b"\x00bad\x00\x01\x01\x01\x80\x82"
SLICE_0_1 = b"\x00bad\x00\x01\x01\x01\x80\x81"
BAD_TILINGS = {
    "overlap": (3, [[_extent(0, 2)], [_extent(length=1)]]),
    "gap": (3, [[_extent(0, 2)]]),
    "twice the same": (2, [[_extent(0, 2)], [_extent(0, 2)]]),
}


@pytest.mark.parametrize(("rows", "slices"), BAD_TILINGS.values(), ids=BAD_TILINGS.keys())
def test_slices_must_tile_the_variable(ckpt, rows, slices):
    entries = {
        b"bad": _entry(1, [rows], slices=slices),
        SLICE_0_2: _entry(1, [2], 0, 8),
        SLICE_0_1: _entry(1, [1], 0, 4),
    }
    with pytest.raises(MalformedFile, match="overlap|cover") as err:
        _read_with(ckpt, entries)
    assert err.value.tensor == "bad"


def test_slice_of_another_dtype(ckpt):
    entries = {b"bad": _entry(1, [2], slices=[[_extent(0, 2)]]), SLICE_0_2: _entry(3, [2], 0, 8)}
    with pytest.raises(MalformedFile, match=r"slice bad\[0:2\] is stored as dtype 3"):
        _read_with(ckpt, entries)


BAD_BLOCKS = {
    "value overruns": (_varint(0) + _varint(1) + _varint(100) + b"z", 1, "overruns"),
    "key overruns": (_varint(0) + _varint(90) + _varint(0) + b"z", 1, "overruns"),
    "shares more than the last key": (_varint(50) + _varint(1) + _varint(0) + b"z", 1, "overruns"),
    "truncated entry header": (b"\x00\x80", 1, "varint"),
    "absurd restart count": (b"", 2**31, "restart points"),
}


@pytest.mark.parametrize(
    ("tail", "restarts", "message"), BAD_BLOCKS.values(), ids=BAD_BLOCKS.keys()
)
def test_malformed_block(ckpt, tail, restarts, message):
    index = _table({b"": HEADER, b"a": _entry(1, [1], 0, 4)}, tail, restarts)
    (ckpt / "model.ckpt.index").write_bytes(index)
    with pytest.raises(MalformedFile, match=message):
        tf_checkpoint.read(_files(ckpt), Limits())


@pytest.mark.parametrize(
    ("dtype", "kept"),
    [(3, np.int32), (4, np.uint8), (5, np.int16), (6, np.int8), (2, np.float64), (10, np.bool_)],
)
def test_numeric_dtypes_are_kept(ckpt, dtype, kept):
    itemsize = np.dtype(kept).itemsize
    weights = _read_with(ckpt, {b"t": _entry(dtype, [8 // itemsize], 0, 8)})
    assert weights.tensors["t"].dtype == kept
    assert weights.tensors["t"].tobytes() == (ckpt / DATA).read_bytes()[:8]


@pytest.mark.parametrize("dtype", [7, 8, 20, 21, 99])
def test_non_numeric_entries_are_skipped(ckpt, dtype):
    weights = _read_with(ckpt, {b"s": _entry(dtype, [3], 0, 8)})
    assert weights.tensors == {}
    assert weights.attrs["skipped"] == ["s"]


def test_bfloat16_is_widened_exactly(ckpt):
    raw = np.array([0x3F80, 0xC020, 0x7F80, 0x0001], "<u2")  # 1, -2.5, inf, tiny subnormal
    (ckpt / DATA).write_bytes(raw.tobytes())
    weights = _read_with(ckpt, {b"b": _entry(14, [4], 0, 8)})
    got = weights.tensors["b"]
    assert got.dtype == np.float32
    assert got.view("<u4").tolist() == [v << 16 for v in raw.tolist()]
    assert weights.notes == ["bfloat16 tensors widened exactly to float32: b"]


def test_big_endian_bundle(ckpt):
    (ckpt / DATA).write_bytes(np.array([1.5, -2.0], ">f4").tobytes())
    header = _field(1, 1) + _field(2, 1)
    entries = {b"": header, b"x": _entry(1, [2], 0, 8)}
    (ckpt / "model.ckpt.index").write_bytes(_table(entries))
    got = tf_checkpoint.read(_files(ckpt), Limits()).tensors["x"]
    assert got.dtype == np.float32 and got.tolist() == [1.5, -2.0]


@pytest.mark.parametrize(
    "header", [b"", _field(1, 0), b"\x08"], ids=["absent", "zero shards", "garbage"]
)
def test_bad_header(ckpt, header):
    entries = {b"x": _entry(1, [1], 0, 4)}
    if header != b"":
        entries[b""] = header
    (ckpt / "model.ckpt.index").write_bytes(_table(entries))
    with pytest.raises(MalformedFile):
        tf_checkpoint.read(_files(ckpt), Limits())


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 65537, 300_007])
def test_data_crc_matches_a_plain_implementation(ckpt, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (ckpt / DATA).write_bytes(data)
    value, crc = _entry(4, [size], 0, size), _masked_crc(data)
    weights = _read_with(ckpt, {b"u": value + _fixed32(6, crc)})
    assert weights.tensors["u"].tobytes() == data
    with pytest.raises(MalformedFile, match="crc32c"):
        _read_with(ckpt, {b"u": value + _fixed32(6, crc ^ 1)})
