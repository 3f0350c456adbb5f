"""The small arrays a user sends to /run: read by content, bounded, nothing unpickled."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput
from rnnbridge.formats.base import Limits
from rnnbridge.formats.hdf5 import isolation
from rnnbridge.formats.user_arrays import SINGLE, load, read_arrays

BOUNDS = {"max_bytes": 1 << 20, "max_elements": 10_000}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=allow_pickle)
    return stream.getvalue()


def test_npy_json_and_npz_by_content_not_name(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    stream = io.BytesIO()
    np.savez(stream, x=x, h0=np.ones((1, 2, 5)))
    for name, data in [
        ("a.json", _npy(x)),  # the name says JSON, the bytes say .npy
        ("b.npy", json.dumps(x.tolist()).encode()),
        ("c.bin", stream.getvalue()),
    ]:
        arrays = read_arrays(_write(tmp_path, name, data), "x", **BOUNDS)
        got = arrays.get(SINGLE, arrays.get("x"))
        assert got.dtype == np.float64 and np.array_equal(got, x.astype(np.float64))
    assert read_arrays(_write(tmp_path, "d", json.dumps({"x": [[1, 2]], "h0": [[3.5]]}).encode()), "x", **BOUNDS)[
        "h0"
    ].tolist() == [[3.5]]


def test_a_pickled_object_array_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.npy", _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True))
    with pytest.raises(UnsafeInput):
        read_arrays(path, "x", **BOUNDS)
    raw = _write(tmp_path, "p.npy", pickle.dumps([1.0, 2.0]))  # not an npy at all: read as JSON, refused
    with pytest.raises(MalformedFile):
        read_arrays(raw, "x", **BOUNDS)


def test_declared_sizes_are_checked_before_reading(tmp_path: Path) -> None:
    stream = io.BytesIO()  # a valid header declaring 10**16 elements, followed by 16 bytes
    np.lib.format.write_array_header_1_0(stream, {"descr": "<f4", "fortran_order": False, "shape": (10**8, 10**8)})
    with pytest.raises(LimitExceeded):
        read_arrays(_write(tmp_path, "huge.npy", stream.getvalue() + bytes(16)), "x", **BOUNDS)
    with pytest.raises(LimitExceeded):
        read_arrays(_write(tmp_path, "big.npy", _npy(np.zeros(20_000))), "x", **BOUNDS)
    with pytest.raises(MalformedFile):
        read_arrays(_write(tmp_path, "short.npy", _npy(np.zeros(100))[:-8]), "x", **BOUNDS)
    with pytest.raises(LimitExceeded):
        read_arrays(_write(tmp_path, "x.json", b"[" + b"0," * 600_000 + b"0]"), "x", **BOUNDS)


@pytest.mark.parametrize(
    "text",
    [b"[[1, 2], [3]]", b'[["a"]]', b"[" * 100 + b"]" * 100, b"{not json", b"\xff\xfe"],
    ids=["ragged", "strings", "deep", "invalid", "not-utf8"],
)
def test_bad_json_is_a_clear_error(tmp_path: Path, text: bytes) -> None:
    with pytest.raises(MalformedFile):
        read_arrays(_write(tmp_path, "x.json", text), "x", **BOUNDS)


def test_with_isolate_the_file_is_read_in_a_reader_process(tmp_path: Path, monkeypatch) -> None:
    """The service's reads (``Limits.isolate``) of x / h0 / c0 / expected go through a reader
    process, bounded like a weight file, and come back the same, errors included."""
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 3
    path = _write(tmp_path, "x.npy", _npy(x))
    readers: list[str] = []
    real = isolation.read_isolated  # watched, still run: the file is really read in a reader process
    monkeypatch.setattr(isolation, "read_isolated", lambda *a, **k: readers.append(a[0]) or real(*a, **k))
    isolated = load(path, "x", **BOUNDS, limits=Limits(isolate=True))
    assert readers == ["rnnbridge.formats.user_arrays:read_file"]
    assert np.array_equal(isolated[SINGLE], read_arrays(path, "x", **BOUNDS)[SINGLE])
    with pytest.raises(MalformedFile) as refused:
        load(_write(tmp_path, "x.json", b"[" * 100 + b"]" * 100), "x", **BOUNDS, limits=Limits(isolate=True))
    assert refused.value.detail.startswith("x: JSON nested")
