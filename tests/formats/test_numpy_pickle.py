"""Pickles of NumPy arrays in nested dicts (Haiku ``params.pkl``): read as NumPy pickled them,
at every protocol, and refused when they ask for anything but the array building blocks."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats import detect, numpy_pickle
from rnnbridge.formats.base import InputFile, Limits

PARAMS = {
    "lstm/linear": {"w": np.arange(40, dtype=np.float32).reshape(5, 8), "b": np.ones(8, np.float32)},
    "gru": {"w_i": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)), "b": np.zeros(3, ">f4")},
    "step": np.int64(3),
    "note": "text",
}


def write(tmp_path: Path, obj: object, protocol: int = 4, name: str = "params.pkl") -> InputFile:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return InputFile(name, path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_protocol_reads_the_arrays_bit_for_bit(tmp_path: Path, protocol: int) -> None:
    file = write(tmp_path, PARAMS, protocol)
    assert detect([file]) == "numpy_pickle"
    weights = numpy_pickle.read([file], Limits())
    expected = {"lstm/linear/w", "lstm/linear/b", "gru/w_i", "gru/b"}
    assert set(weights.tensors) == expected
    for name in expected:
        module, param = name.rsplit("/", 1)
        source = PARAMS[module][param]
        np.testing.assert_array_equal(weights.tensors[name], source)
        assert weights.tensors[name].dtype == source.dtype.newbyteorder("=")
    assert weights.attrs["strings"] == {"note": "text"}
    assert weights.attrs["ignored_entries"] == ["step"]


def test_an_ordered_dict_is_a_dict(tmp_path: Path) -> None:
    weights = numpy_pickle.read([write(tmp_path, OrderedDict(w=np.ones(2, np.float32)))], Limits())
    assert list(weights.tensors) == ["w"]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_payload_is_refused_and_never_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    file = write(tmp_path, {"w": np.ones(2, np.float32), "x": _Payload(marker)}, protocol)
    with pytest.raises(UnsafeInput) as refused:
        numpy_pickle.read([file], Limits())
    assert refused.value.code == "unsafe_pickle"
    assert not marker.exists()


def test_an_object_array_is_unsupported(tmp_path: Path) -> None:
    file = write(tmp_path, {"w": np.array([1, "a"], dtype=object)})
    with pytest.raises((UnsupportedFormat, UnsafeInput)):
        numpy_pickle.read([file], Limits())


def test_a_string_array_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="not a plain number"):
        numpy_pickle.read([write(tmp_path, {"w": np.array(["ab"])})], Limits())


def test_declared_sizes_must_match_the_bytes(tmp_path: Path) -> None:
    data = pickle.dumps({"w": np.arange(4, dtype=np.float32)}, protocol=4)
    forged = data.replace(b"K\x04\x85", b"K\x05\x85", 1)  # shape (4,) -> (5,)
    assert forged != data
    (tmp_path / "p.pkl").write_bytes(forged)
    with pytest.raises(MalformedFile, match="bytes of data"):
        numpy_pickle.read([InputFile("p.pkl", tmp_path / "p.pkl")], Limits())


def test_the_element_bound_is_checked_before_the_array_exists(tmp_path: Path) -> None:
    file = write(tmp_path, {"w": np.zeros(100, np.float32)})
    with pytest.raises(LimitExceeded):
        numpy_pickle.read([file], Limits(max_tensor_elements=99))


def test_the_file_size_is_bounded(tmp_path: Path) -> None:
    file = write(tmp_path, {"w": np.zeros(100, np.float32)})
    with pytest.raises(LimitExceeded):
        numpy_pickle.read([file], Limits(max_total_bytes=100))


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    obj: dict = {"w": np.ones(1, np.float32)}
    for _ in range(numpy_pickle.MAX_DEPTH + 1):
        obj = {"d": obj}
    with pytest.raises(LimitExceeded, match="deeper"):
        numpy_pickle.read([write(tmp_path, obj)], Limits())


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_a_truncated_pickle_is_malformed(tmp_path: Path, keep: float) -> None:
    data = pickle.dumps(PARAMS, protocol=4)
    (tmp_path / "p.pkl").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MalformedFile):
        numpy_pickle.read([InputFile("p.pkl", tmp_path / "p.pkl")], Limits())


def test_a_pickle_of_a_list_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="not a dict"):
        numpy_pickle.read([write(tmp_path, [np.ones(2)])], Limits())


def test_a_safetensors_file_whose_header_length_looks_like_a_pickle_is_not_one(tmp_path) -> None:
    """A 1152-byte safetensors header starts with ``0x80 0x04``, a pickle's protocol-4 mark."""
    import json
    import struct

    from rnnbridge import formats as formats_module

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (0x480 - len(header))
    path = tmp_path / "out.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + np.float32(1.5).tobytes())
    files = [InputFile(path.name, path)]
    assert not numpy_pickle.sniff(files)
    assert formats_module.read(files, Limits()).format == "safetensors"
