"""JSON outputs write each float as the shortest decimal that reads back to the same value in
the array's own dtype: bit-exact round trips, and no float64 noise digits for float32."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rnnbridge import outputs
from rnnbridge.pipeline import Result

from .fixtures_index import SHARED_FIXTURES


def _written(arrays: dict[str, np.ndarray]) -> dict:
    return json.loads(json.dumps(outputs.to_json(Result(arrays, {})), allow_nan=False))


def _read_back(payload: dict) -> np.ndarray:
    data = [{"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(v, v) for v in payload["data"]]
    return np.array(data, np.float64).astype(payload["dtype"]).reshape(payload["shape"])


def test_float32_values_are_written_as_their_shortest_repr():
    values = np.array([0.3, 0.1, 1 / 3, 1e-5, 3.4e38, -0.0, 2.5], np.float32)
    text = json.dumps(outputs.to_json(Result({"w": values}, {})))
    assert '"data": [0.3, 0.1, 0.33333334, 1e-05, 3.4e+38, -0.0, 2.5]' in text
    assert [float(str(v)) for v in values] == _written({"w": values})["arrays"]["w"]["data"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@given(data=st.data())
def test_every_value_round_trips_bit_for_bit(dtype, data):
    array = data.draw(hnp.arrays(dtype, hnp.array_shapes(max_dims=2, max_side=6), elements=hnp.from_dtype(np.dtype(dtype))))
    back = _read_back(_written({"a": array})["arrays"]["a"])
    assert back.dtype == array.dtype and back.shape == array.shape
    nan = np.isnan(array)
    assert np.array_equal(np.isnan(back), nan)
    bits = f"u{array.itemsize}"
    assert np.array_equal(back[~nan].view(bits), array[~nan].view(bits))  # -0.0 and subnormals included


def test_real_fixture_weights_shrink_and_round_trip():
    with np.load(SHARED_FIXTURES / "k3_lstm" / "rnn0.native.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert all(a.dtype == np.float32 for a in arrays.values())
    written = _written(arrays)["arrays"]
    for name, array in arrays.items():
        assert np.array_equal(_read_back(written[name]).view(np.uint32), array.view(np.uint32))
    shortest = len(json.dumps(written))
    float64_digits = len(json.dumps({n: a.ravel().tolist() for n, a in arrays.items()}))
    assert shortest < 0.75 * float64_digits
