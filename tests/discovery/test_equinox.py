"""Equinox leaves: cells inferred from consecutive shapes, the inference stated."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.discovery import find_layers
from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput
from rnnbridge.formats import detect
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.equinox import leaves


def file_of(*arrays: np.ndarray) -> WeightFile:
    return WeightFile("eqx_leaves", {f"#{k}": a for k, a in enumerate(arrays)})


def z(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def test_a_linear_then_two_cells_then_a_head() -> None:
    found = find_layers(file_of(z(8, 2), z(8), z(16, 8), z(16, 4), z(16), z(9, 4), z(9, 3), z(9), z(3), z(1, 3)))
    assert [(lay.name, lay.convention.key) for lay in found.layers] == [("#2", "equinox.lstm"), ("#5", "equinox.gru")]
    assert all([a.fact for a in lay.config.assumed] == ["structure"] and lay.notes for lay in found.layers)
    assert found.other_tensors == 3


def test_cells_without_biases_and_a_lone_gru_bias() -> None:
    layers = find_layers(file_of(z(9, 4), z(9, 3), z(9))).layers  # a GRUCell has bias and bias_n, or neither
    assert list(layers[0].cells[(0, "forward")]) == ["weight_ih", "weight_hh"]


def write(tmp_path: Path, data: bytes) -> InputFile:
    (tmp_path / "m.eqx").write_bytes(data)
    return InputFile("m.eqx", tmp_path / "m.eqx")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_leaves_round_trip(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.ones(4, np.float16)}
    buffer = io.BytesIO()
    leaves.write(arrays, {}, buffer)
    file = write(tmp_path, buffer.getvalue())
    assert detect([file]) == "eqx_leaves"
    read = leaves.read([file], Limits())
    assert list(read.tensors) == ["#0", "#1"]
    for got, want in zip(read.tensors.values(), arrays.values()):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


def test_an_object_leaf_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeInput):
        leaves.read([write(tmp_path, npy(z(2)) + npy(np.array([1, "x"], dtype=object)))], Limits())


def test_a_truncated_leaf_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="past the end"):
        leaves.read([write(tmp_path, npy(z(100))[:-8])], Limits())


def test_junk_after_the_leaves_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="not a .npy"):
        leaves.read([write(tmp_path, npy(z(2)) + b"junk")], Limits())


def test_the_element_bound_holds(tmp_path: Path) -> None:
    with pytest.raises(LimitExceeded):
        leaves.read([write(tmp_path, npy(z(100)))], Limits(max_tensor_elements=99))


def test_strict_refuses_the_inferred_structure_no_field_can_state() -> None:
    from rnnbridge import pipeline
    from rnnbridge.errors import InvalidField

    path = Path(__file__).resolve().parents[1] / "fixtures" / "eqx_lstm" / "model.eqx"
    model = pipeline.read([path])
    (assumption,) = model.layers[0].config.assumed
    assert assumption.fact == "structure" and assumption.field is None
    with pytest.raises(InvalidField) as refused:
        pipeline.convert(model, "pytorch", strict=True)
    assert refused.value.code == "assumption_required"
    assert "no field can state it" in refused.value.detail
