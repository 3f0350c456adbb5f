"""The safetensors reader and writer: the shared fixtures, write/read round trips for every
dtype and memory layout, and headers built by hand to be malformed."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats.safetensors import file as safetensors_file
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES
from ..fixtures_index import SHARED_MANIFEST as MANIFEST
from ..fixtures_index import needs_shared_fixtures as needs_fixtures

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # hypothesis is in the [test] extra; the rest runs without it
    given = None

TORCH_FIXTURES = [f for f in MANIFEST if f["id"].startswith("torch_")]

#: every dtype the writer stores natively
DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
]


def _read(path: Path, limits: Limits | None = None):
    return safetensors_file.read([InputFile(path.name, path)], limits or Limits())


def _same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype.newbyteorder("=")
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected)
    assert actual.tobytes() == np.ascontiguousarray(expected, actual.dtype).tobytes()


def _write(path: Path, tensors: dict, **kwargs) -> Path:
    with open(path, "wb") as stream:
        safetensors_file.write(stream, tensors, **kwargs)
    return path


def _raw(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def _sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


# --------------------------------------------------------------------------- #
# Real files
# --------------------------------------------------------------------------- #


@needs_fixtures
@pytest.mark.parametrize("fixture", TORCH_FIXTURES, ids=lambda f: f["id"])
def test_fixture_reads_bit_identically(fixture: dict) -> None:
    folder = FIXTURES / fixture["dir"]
    assert safetensors_file.sniff([InputFile("model.safetensors", folder / "model.safetensors")])
    weights = _read(folder / "model.safetensors")
    for layer in fixture["layers"]:
        native = np.load(folder / layer["native_npz"])
        for role, spec in layer["weights"].items():
            actual = weights.tensors[spec["in_files"]["model.safetensors"]]
            assert actual.dtype == native[role].dtype and actual.shape == native[role].shape
            assert actual.tobytes() == native[role].tobytes()
    assert weights.format == "safetensors"


@needs_fixtures
@pytest.mark.parametrize(
    "relative",
    [
        "torch_lstm_1l/model.pt",
        "k3_lstm/m.keras",
        "k3_lstm/m.h5",
        "torch_lstm_1l/rnn0.native.npz",
        "onnx_lstm_forward/model.onnx",
    ],
)
def test_sniff_rejects_other_formats(relative: str) -> None:
    path = FIXTURES / relative
    assert not safetensors_file.sniff([InputFile(path.name, path)])


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x02\x00\x00\x00\x00\x00\x00\x00{",
        struct.pack("<Q", 1) + b"{",
        struct.pack("<Q", 2**40) + b"{}",
        struct.pack("<Q", 2) + b"[]",
    ],
    ids=["empty", "header-past-end", "header-too-short", "giant-length", "not-an-object"],
)
def test_sniff_rejects_junk(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    assert not safetensors_file.sniff([InputFile(path.name, path)])


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "layout", ["contiguous", "transposed", "strided", "big-endian", "scalar", "empty"]
)
def test_round_trip(tmp_path: Path, dtype: str, layout: str) -> None:
    base = _sample(dtype, (5, 6, 3))
    array = {
        "contiguous": base,
        "transposed": base.transpose(2, 0, 1),
        "strided": base[::2, 1::2, ::-1],
        "big-endian": base.astype(np.dtype(dtype).newbyteorder(">")),
        "scalar": base[1, 2, 0],
        "empty": base[:0],
    }[layout]
    tensors = {"x": np.asarray(array), "y": base}
    path = _write(tmp_path / "m.safetensors", tensors, metadata={"format": "pt"})
    weights = _read(path)
    assert list(weights.tensors) == ["x", "y"]
    for name, expected in tensors.items():
        _same(weights.tensors[name], expected)
    assert weights.attrs == {"metadata": {"format": "pt"}}
    assert path.stat().st_size == safetensors_file.encoded_size(tensors, {"format": "pt"})


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_chunks_concatenate_to_the_file(chunk_bytes: int) -> None:
    base = _sample("float32", (40, 30))
    tensors = {"a": base.T, "b": base[::3, ::-2], "c": base[:, 0]}
    whole = io.BytesIO()
    safetensors_file.write(whole, tensors)
    chunks = list(safetensors_file.iter_chunks(tensors, chunk_bytes=chunk_bytes))
    assert b"".join(chunks) == whole.getvalue()
    # chunks stay near the target size: a piece is at most one row over it
    assert max(map(len, chunks)) <= max(chunk_bytes, 8 + 256) + 30 * 4


def test_header_is_padded_to_eight_bytes() -> None:
    content = b"".join(safetensors_file.iter_chunks({"abc": np.zeros(3, np.float32)}))
    (length,) = struct.unpack_from("<Q", content)
    assert length % 8 == 0
    assert json.loads(content[8 : 8 + length]) == {
        "abc": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}
    }


def test_bfloat16_round_trip(tmp_path: Path) -> None:
    exact = np.array([[1.0, -2.5], [3.140625, np.inf]], dtype=np.float32)
    path = _write(tmp_path / "m.safetensors", {"b": exact.T}, bfloat16=["b"])
    header_length = struct.unpack_from("<Q", path.read_bytes())[0]
    assert json.loads(path.read_bytes()[8 : 8 + header_length])["b"]["dtype"] == "BF16"
    weights = _read(path)
    _same(weights.tensors["b"], exact.T)
    assert any("BF16" in note for note in weights.notes)


@pytest.mark.parametrize(
    ("tensors", "bfloat16", "message"),
    [
        ({"b": np.array([1.1], np.float32)}, ["b"], "cannot represent exactly"),
        ({"b": np.array([1.0], np.float64)}, ["b"], "only float32"),
        ({"b": np.array([1.0], np.float32)}, ["c"], "not tensors"),
        ({"c": np.array([1 + 2j])}, [], "complex128"),
        ({"__metadata__": np.zeros(1)}, [], "cannot name"),
    ],
)
def test_writer_refuses_bad_input(tensors: dict, bfloat16: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        safetensors_file.iter_chunks(tensors, bfloat16=bfloat16)


def test_shards_are_merged(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.safetensors", {"a": np.ones(2)}, metadata={"shard": "1"})
    second = _write(tmp_path / "b.safetensors", {"b": np.zeros(3, np.int8)})
    (tmp_path / "config.json").write_text("{}")
    files = [InputFile(p.name, p) for p in (first, second, tmp_path / "config.json")]
    weights = safetensors_file.read(files, Limits())
    assert sorted(weights.tensors) == ["a", "b"]
    assert weights.attrs["metadata"] == {"shard": "1"}


def test_shards_with_the_same_name_are_malformed(tmp_path: Path) -> None:
    files = [InputFile(n, _write(tmp_path / n, {"a": np.ones(2)})) for n in ("a.st", "b.st")]
    with pytest.raises(MalformedFile, match="two files"):
        safetensors_file.read(files, Limits())


if given is not None:

    @settings(max_examples=60, deadline=None)
    @given(
        array=hnp.arrays(
            dtype=st.sampled_from(DTYPES).map(np.dtype)
            | st.sampled_from(DTYPES[:-1]).map(lambda d: np.dtype(d).newbyteorder(">")),
            shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        ),
        view=st.sampled_from(["as-is", "transpose", "reverse", "step"]),
        chunk_bytes=st.integers(1, 64),
    )
    def test_round_trip_property(
        tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, view: str, chunk_bytes: int
    ) -> None:
        if array.ndim:
            array = {
                "as-is": array,
                "transpose": array.T,
                "reverse": array[::-1],
                "step": array[::2],
            }[view]
        path = tmp_path_factory.mktemp("prop") / "m.safetensors"
        path.write_bytes(
            b"".join(safetensors_file.iter_chunks({"t": array}, chunk_bytes=chunk_bytes))
        )
        actual = _read(path).tensors["t"]
        assert actual.dtype == array.dtype.newbyteorder("=") and actual.shape == array.shape
        assert actual.tobytes() == np.ascontiguousarray(array, actual.dtype).tobytes()

else:

    def test_round_trip_property() -> None:
        pytest.skip("hypothesis is not installed")


# --------------------------------------------------------------------------- #
# Against the safetensors package
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", DTYPES)
def test_files_load_with_the_safetensors_package(tmp_path: Path, dtype: str) -> None:
    numpy_api = pytest.importorskip("safetensors.numpy")
    base = _sample(dtype, (4, 3, 2))
    tensors = {"t": base.transpose(1, 2, 0), "s": base[1:, ::2], "scalar": base[0, 0, 0]}
    path = _write(tmp_path / "m.safetensors", tensors)
    loaded = numpy_api.load_file(str(path))
    for name, expected in tensors.items():
        _same(loaded[name], expected)


def test_files_of_the_safetensors_package_read_back(tmp_path: Path) -> None:
    numpy_api = pytest.importorskip("safetensors.numpy")
    tensors = {dtype: _sample(dtype, (3, 2)) for dtype in DTYPES}
    numpy_api.save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    weights = _read(tmp_path / "m.safetensors")
    assert weights.attrs["metadata"] == {"k": "v"}
    for name, expected in tensors.items():
        _same(weights.tensors[name], expected)


# --------------------------------------------------------------------------- #
# Malformed headers
# --------------------------------------------------------------------------- #


def _entry(dtype: object = "F32", shape: tuple = (2,), offsets: tuple = (0, 8)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"a": _entry(), "b": _entry(offsets=(4, 12))}, bytes(16), "overlaps 'a'"),
        ({"a": _entry(offsets=(8, 16))}, bytes(12), "past the end"),
        ({"a": _entry(shape=(3,))}, bytes(12), "needs 12 bytes"),
        ({"a": _entry(dtype="F8_E4M3")}, bytes(8), "dtype 'F8_E4M3'"),
        ({"a": _entry(dtype=3)}, bytes(8), "dtype 3"),
        ({"a": _entry(shape=(-2,))}, bytes(8), "shape"),
        ({"a": _entry(shape=(2.0,))}, bytes(8), "shape"),
        ({"a": _entry(shape=(True, 2))}, bytes(8), "shape"),
        ({"a": _entry(offsets=(8, 0))}, bytes(8), "out of form"),
        ({"a": _entry(offsets=(0, 4, 8))}, bytes(8), "out of form"),
        ({"a": _entry(shape=(1,) * 65, offsets=(0, 4))}, bytes(8), "out of form"),
        ({"a": [1, 2]}, bytes(8), "not an object"),
        ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "data_offsets"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
        ([1, 2], b"", "not an object"),
        (b'{"a": ', b"", "not valid JSON"),
        (b'{"a": 1, "a": 2}', b"", "twice"),
        (b"\xff\xfe{}", b"", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, b"", "nested too deeply"),
        (b'{"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}}', b"", "shape"),
    ],
    ids=[
        "overlap",
        "past-eof",
        "size-mismatch",
        "unknown-dtype",
        "dtype-not-str",
        "negative-dim",
        "float-dim",
        "bool-dim",
        "reversed-offsets",
        "three-offsets",
        "too-many-dims",
        "entry-not-object",
        "missing-offsets",
        "metadata-not-str",
        "header-not-object",
        "bad-json",
        "duplicate-key",
        "not-utf8",
        "deep-nesting",
        "huge-number",
    ],
)
def test_malformed_header(tmp_path: Path, header: object, data: bytes, message: str) -> None:
    path = _raw(tmp_path / "m.safetensors", header, data)
    with pytest.raises(MalformedFile, match=message):
        _read(path)


@pytest.mark.parametrize("length", [2**63, 100 * 1024**2 + 1, 1, 0, 10**6])
def test_header_length_out_of_bounds(tmp_path: Path, length: int) -> None:
    path = _raw(tmp_path / "m.safetensors", {"a": _entry()}, bytes(8), length=length)
    with pytest.raises(MalformedFile, match="header length"):
        _read(path)


def test_truncated_file(tmp_path: Path) -> None:
    content = b"".join(safetensors_file.iter_chunks({"a": np.arange(10.0)}))
    path = tmp_path / "m.safetensors"
    path.write_bytes(content[:-1])
    with pytest.raises(MalformedFile, match="past the end"):
        _read(path)


def test_zero_sized_tensors_may_share_an_offset(tmp_path: Path) -> None:
    header = {
        "a": _entry(shape=(0,), offsets=(0, 0)),
        "b": _entry(),
        "c": _entry(shape=(0, 5), offsets=(8, 8)),
    }
    weights = _read(_raw(tmp_path / "m.safetensors", header, np.ones(2, "<f4").tobytes()))
    assert weights.tensors["a"].shape == (0,) and weights.tensors["c"].shape == (0, 5)
    _same(weights.tensors["b"], np.ones(2, np.float32))


def test_bool_bytes_other_than_one_are_true(tmp_path: Path) -> None:
    header = {"a": _entry(dtype="BOOL", shape=(3,), offsets=(0, 3))}
    weights = _read(_raw(tmp_path / "m.safetensors", header, bytes([0, 1, 7])))
    _same(weights.tensors["a"], np.array([False, True, True]))


@pytest.mark.parametrize(
    ("limits", "message"),
    [(Limits(max_tensor_elements=9), "10 elements"), (Limits(max_total_bytes=79), "79 bytes")],
)
def test_limits(tmp_path: Path, limits: Limits, message: str) -> None:
    path = _write(tmp_path / "m.safetensors", {"a": np.arange(10.0)})
    with pytest.raises(LimitExceeded, match=message):
        _read(path, limits)


def test_no_file() -> None:
    with pytest.raises(UnsupportedFormat):
        safetensors_file.read([], Limits())
