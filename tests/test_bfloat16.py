"""bfloat16 weights: widened exactly for NumPy, and stored as bfloat16 again where the
output format has it (safetensors)."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.formats.safetensors import file as safetensors_file

from .fixtures_index import FIXTURE_LAYERS


def to_bfloat16_values(array: np.ndarray) -> np.ndarray:
    return (array.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def header(data: bytes) -> dict:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length])


@pytest.fixture
def bfloat16_state_dict(tmp_path):
    fx = next(f for f in FIXTURE_LAYERS if f.layer["native_type"] == "torch.nn.LSTM" and f.layer["directions"] == 2)
    with np.load(fx.dir / fx.layer["native_npz"]) as npz:
        state = {f"rnn.{k}": to_bfloat16_values(v) for k, v in npz.items()}
    path = tmp_path / "bf16.safetensors"
    with path.open("wb") as stream:
        safetensors_file.write(stream, state, bfloat16=list(state))
    assert {entry["dtype"] for name, entry in header(path.read_bytes()).items() if name != "__metadata__"} == {"BF16"}
    return path, state


@pytest.mark.parametrize("target", ["pytorch", "keras", "onnx"])
def test_bfloat16_survives_a_conversion_into_safetensors(bfloat16_state_dict, target: str) -> None:
    path, state = bfloat16_state_dict
    model = pipeline.read([path])
    assert model.bfloat16 == set(state) and any("BF16" in note for note in model.notes)
    result = pipeline.convert(model, target)
    assert set(result.meta["bfloat16"]) == set(result.arrays)
    buffer = io.BytesIO()
    outputs.write(result, "safetensors", buffer)
    dtypes = {name: entry["dtype"] for name, entry in header(buffer.getvalue()).items() if name != "__metadata__"}
    for name, array in result.arrays.items():
        exact = not np.any(array.view(np.uint32) & 0xFFFF)
        assert dtypes[name] == ("BF16" if exact else "F32"), name
    if target == "pytorch":  # nothing summed: every tensor is bfloat16 again
        assert set(dtypes.values()) == {"BF16"}


def test_float32_weights_stay_float32(tmp_path) -> None:
    fx = next(f for f in FIXTURE_LAYERS if f.layer["native_type"] == "torch.nn.LSTM")
    result = pipeline.convert(pipeline.read([fx.dir / "model.safetensors"]), "pytorch")
    assert result.meta["bfloat16"] == []
    buffer = io.BytesIO()
    outputs.write(result, "safetensors", buffer)
    assert {e["dtype"] for n, e in header(buffer.getvalue()).items() if n != "__metadata__"} == {"F32"}
