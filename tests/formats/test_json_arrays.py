"""json_arrays: both accepted shapes, exact round trips, and hostile documents."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsupportedFormat
from rnnbridge.formats import json_arrays
from rnnbridge.formats.base import InputFile, Limits


def write(tmp_path: Path, doc, name: str = "w.json") -> Path:
    path = tmp_path / name
    path.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    return path


def read(path: Path, limits: Limits | None = None):
    return json_arrays.read([InputFile(path.name, path)], limits or Limits())


def shortest_repr_doc(arrays: dict[str, np.ndarray]) -> dict:
    """rnnbridge's output shape, each value the shortest repr of its own dtype.

    ``float(str(v))`` is the float64 nearest that decimal; ``json.dumps`` prints it back
    as the same shortest decimal, so the file holds e.g. ``0.1`` for float32 0.1.
    """
    specials = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

    def value(v):
        return float(str(v)) if np.isfinite(v) else specials[str(v)]

    return {
        "arrays": {
            name: {
                "dtype": str(a.dtype),
                "shape": list(a.shape),
                "data": [value(v) for v in a.reshape(-1)],
            }
            for name, a in arrays.items()
        },
        "meta": {"written_by": "test"},
    }


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_shortest_repr_round_trips_bit_exactly(tmp_path, dtype):
    rng = np.random.default_rng(7)
    array = (rng.standard_normal((5, 7)) * 10.0 ** rng.integers(-6, 4, (5, 7))).astype(dtype)
    array[0, :3] = [np.nan, np.inf, -np.inf]
    result = read(write(tmp_path, shortest_repr_doc({"kernel": array})))
    kernel = result.tensors["kernel"]
    assert kernel.dtype == array.dtype and kernel.shape == array.shape
    assert kernel.tobytes() == array.tobytes()
    assert result.attrs == {"shape": "arrays", "meta": {"written_by": "test"}}


def test_bare_nan_and_infinity_literals_are_accepted(tmp_path):
    path = write(
        tmp_path,
        b'{"arrays": {"b": {"dtype": "float64", "shape": [3], '
        b'"data": [NaN, Infinity, -Infinity]}}}',
    )
    values = read(path).tensors["b"]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ([[1, 2.5], [3, 4]], (2, 2)),
        ([[[1], [2]], [[3], [4]]], (2, 2, 1)),
        ([], (0,)),
        ([[], []], (2, 0)),
        (1.5, ()),
    ],
    ids=["matrix", "rank3", "empty", "empty_rows", "scalar"],
)
def test_plain_nested_lists_are_float32(tmp_path, value, shape):
    result = read(write(tmp_path, {"w": value}))
    array = result.tensors["w"]
    assert array.dtype == np.float32 and array.shape == shape
    np.testing.assert_array_equal(array, np.array(value, dtype=np.float32))
    assert result.attrs["shape"] == "plain"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"w": [[1, 2], [3]]}, "ragged"),
        ({"w": [1, [2]]}, "ragged"),
        ({"w": [[1, "x"], [2, 3]]}, "not a number"),
        ({"w": [True, 1.0]}, "not a number"),
        ({"w": {"x": 1}}, "not a number"),
        ({"arrays": {"w": {"dtype": "int8", "shape": [1], "data": [1]}}}, "dtype"),
        (
            {"arrays": {"w": {"dtype": "float32", "shape": [2, 2], "data": [1, 2, 3]}}},
            "needs 4 values",
        ),
        ({"arrays": {"w": {"dtype": "float32", "shape": [-1], "data": []}}}, "shape"),
        ({"arrays": {"w": {"dtype": "float32", "shape": [1.5], "data": [1]}}}, "shape"),
        ({"arrays": {"w": {"dtype": "float32", "shape": [2]}}}, "dtype, shape and data"),
        ({"arrays": {"w": {"dtype": "float32", "shape": [1], "data": ["nan"]}}}, "not a number"),
        (
            {"arrays": {"w": {"dtype": "float32", "shape": [1], "data": [10**400]}}},
            "out of float64 range",
        ),
        ([1, 2], "not an object"),
    ],
    ids=[
        "ragged_rows",
        "ragged_depth",
        "string_leaf",
        "bool_leaf",
        "object_leaf",
        "bad_dtype",
        "length_mismatch",
        "negative_dim",
        "float_dim",
        "missing_field",
        "lowercase_nan",
        "huge_int",
        "top_level_list",
    ],
)
def test_malformed_documents(tmp_path, doc, match):
    with pytest.raises(MalformedFile, match=match):
        read(write(tmp_path, doc))


@pytest.mark.parametrize(
    "text",
    [
        b"[" * 100_000,
        b'{"w": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}",
        b'{"w": [1, 2',
        b'{"w": [\xff]}',
    ],
    ids=["100k_brackets", "depth_66", "cut", "not_utf8"],
)
def test_deep_or_broken_text_is_malformed_without_recursing(tmp_path, text):
    with pytest.raises(MalformedFile):
        read(write(tmp_path, text))


def test_brackets_inside_strings_do_not_count_towards_depth(tmp_path):
    meta = {"note": "[" * 1000 + '\\"' + "{" * 1000}
    doc = {"arrays": {"w": {"dtype": "float32", "shape": [1], "data": [1.0]}}, "meta": meta}
    assert read(write(tmp_path, doc)).attrs["meta"] == meta


@pytest.mark.parametrize(
    ("doc", "limits"),
    [
        ({"arrays": {"w": {"dtype": "float32", "shape": [10**9, 10**9], "data": []}}}, Limits()),
        ({"w": [[0.0] * 10] * 10}, Limits(max_tensor_elements=50)),
        ({"w": [0.0] * 100}, Limits(max_total_bytes=100)),
    ],
    ids=["declared_shape", "nested_lists", "file_size"],
)
def test_limits(tmp_path, doc, limits):
    with pytest.raises(LimitExceeded):
        read(write(tmp_path, doc), limits)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b'  \n{"a": [1]}', True), (b"[1, 2]", False), (b"", False), (b"\x89HDF\r\n\x1a\n", False)],
    ids=["object", "list", "empty", "hdf5"],
)
def test_sniff_is_by_first_byte(tmp_path, content, expected):
    path = write(tmp_path, content, name="weights.bin")
    assert json_arrays.sniff([InputFile(path.name, path)]) is expected


def test_read_needs_one_document(tmp_path):
    files = [InputFile(n, write(tmp_path, {"w": [1]}, n)) for n in ("a.json", "b.json")]
    with pytest.raises(UnsupportedFormat):
        json_arrays.read(files, Limits())


@pytest.mark.parametrize(
    ("text", "depth"), [("1", 0), ("[]", 1), ('{"a": [[1], "]]]"]}', 3), ('["\\\\", [2]]', 2)]
)
def test_json_depth(text, depth):
    assert json_arrays.json_depth(text) == depth
