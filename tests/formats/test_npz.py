"""npz: real archives written by NumPy, and hand-made broken or hostile ones."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats import npz
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES

NATIVE_NPZ = sorted(FIXTURES.glob("*/rnn*.native.npz")) + sorted(
    FIXTURES.glob("*/rnn*.canonical.npz")
)
needs_fixtures = pytest.mark.skipif(
    not NATIVE_NPZ, reason=f"shared fixtures not found at {FIXTURES}"
)


def read(path: Path, limits: Limits | None = None):
    return npz.read([InputFile(path.name, path)], limits or Limits())


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@needs_fixtures
@pytest.mark.parametrize("path", NATIVE_NPZ, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_archives_match_numpy(path):
    result = read(path)
    with np.load(path, allow_pickle=False) as expected:
        assert list(result.tensors) == list(expected.keys())
        for key in expected:
            assert result.tensors[key].dtype == expected[key].dtype
            assert result.tensors[key].tobytes() == expected[key].tobytes()
    assert npz.sniff([InputFile("upload", path)])


def test_savez_compressed_with_meta_and_mixed_dtypes(tmp_path):
    arrays = {
        "encoder.rnn.weight_ih_l0": np.arange(12, dtype=np.float32).reshape(4, 3),
        "half": np.arange(4, dtype=np.float16),
        "big_endian": np.arange(3, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "steps": np.int64(7),
        "labels": np.array(["a", "b"]),
    }
    path = tmp_path / "w.npz"
    np.savez_compressed(
        path, __meta__=np.array(json.dumps({"source": "rnnbridge", "n": 2})), **arrays
    )
    result = read(path)
    assert result.attrs["meta"] == {"source": "rnnbridge", "n": 2}
    assert result.attrs["skipped"] == ["labels"]
    assert set(result.tensors) == set(arrays) - {"labels"}
    for key, array in result.tensors.items():
        np.testing.assert_array_equal(array, arrays[key])
        assert array.dtype == arrays[key].dtype.newbyteorder("=") and array.dtype.isnative


def test_object_arrays_are_refused_before_unpickling(tmp_path):
    path = make_zip(
        tmp_path / "o.npz",
        {
            "ok.npy": npy_bytes(np.zeros(2)),
            "evil.npy": npy_bytes(np.array([{"a": 1}], dtype=object)),
        },
    )
    with pytest.raises(UnsafeInput) as info:
        read(path)
    assert info.value.code == "object_array" and info.value.tensor == "evil"


def _raw_npy(header: str, data: bytes = b"", version: bytes = b"\x01\x00") -> bytes:
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return npz.NPY_MAGIC + version + len(text).to_bytes(2, "little") + text + data


@pytest.mark.parametrize(
    ("member", "error", "match"),
    [
        (
            _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"),
            LimitExceeded,
            "elements",
        ),
        (
            _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }", b"\0" * 40),
            MalformedFile,
            "400",
        ),
        (
            _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"),
            MalformedFile,
            "negative",
        ),
        (
            _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os'), }"),
            MalformedFile,
            "header",
        ),
        (_raw_npy("not a dict"), MalformedFile, "header"),
        (
            _raw_npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, b"\x09\x00"
            ),
            MalformedFile,
            "version",
        ),
        (npz.NPY_MAGIC + b"\x01\x00\xff\xff" + b"{" * 100, MalformedFile, "header"),
    ],
    ids=[
        "huge_shape",
        "short_data",
        "negative",
        "not_literal",
        "not_dict",
        "bad_version",
        "truncated_header",
    ],
)
def test_bad_headers(tmp_path, member, error, match):
    path = make_zip(tmp_path / "h.npz", {"w.npy": member})
    with pytest.raises(error, match=match) as info:
        read(path)
    assert info.value.tensor == "w"


def test_total_bytes_are_bounded(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, a=np.zeros(100), b=np.zeros(100))
    with pytest.raises(LimitExceeded, match="bytes"):
        read(path, Limits(max_total_bytes=1000))


def test_member_with_corrupt_compressed_data_is_malformed(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, w=np.arange(10_000, dtype=np.float64))
    data = bytearray(path.read_bytes())
    data[400:800] = bytes(400)
    path.write_bytes(bytes(data))
    with pytest.raises(MalformedFile):
        read(path)


@pytest.mark.parametrize(
    "members",
    [
        {"w.npy": npy_bytes(np.zeros(2)), "notes.txt": b"hello"},
        {"w.npy": b"not npy at all"},
    ],
    ids=["foreign_member", "bad_magic"],
)
def test_archives_that_are_not_npz(tmp_path, members):
    path = make_zip(tmp_path / "x.npz", members)
    assert not npz.sniff([InputFile(path.name, path)])
    with pytest.raises(MalformedFile):
        read(path)


def test_duplicate_members_are_malformed(tmp_path):
    path = tmp_path / "d.npz"
    with pytest.warns(UserWarning, match="Duplicate"), zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_bytes(np.zeros(2)))
        archive.writestr("w.npy", npy_bytes(np.ones(2)))
    with pytest.raises(MalformedFile, match="duplicate"):
        read(path)


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04garbage", b"\x93NUMPY"], ids=["empty", "cut_zip", "bare_npy"]
)
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    assert not npz.sniff([InputFile(path.name, path)])
    with pytest.raises(MalformedFile, match="zip"):
        read(path)


def test_meta_must_be_one_json_string(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, __meta__=np.zeros(3), w=np.zeros(1))
    with pytest.raises(MalformedFile, match="__meta__"):
        read(path)


def test_read_needs_one_archive(tmp_path):
    files = []
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, w=np.zeros(1))
        files.append(InputFile(name, tmp_path / name))
    with pytest.raises(UnsupportedFormat):
        npz.read(files, Limits())
