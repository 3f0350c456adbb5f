"""split ∘ fuse is the identity, bit for bit, for every convention and random sizes.

Arrays are fingerprinted (every element distinct), so a block cut from the wrong place, a
missing transpose or a swapped gate changes the result.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnbridge.engine import CONVENTIONS, LayerConfig, NativeLayer, from_canonical, to_canonical
from rnnbridge.engine.layout import Tensor, fuse_tensor, solve_dims, split_tensor
from rnnbridge.errors import MalformedFile

DTYPES = [np.float16, np.float32, np.float64]


def fingerprinted(shape: tuple[int, ...], dtype: type, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """Distinct values (a shuffled ``start + arange``) in ``dtype``; exact in float16 below 2048."""
    size = int(np.prod(shape))
    values = (start + 1 + rng.permutation(size)).astype(dtype)
    return values.reshape(shape) / dtype(8)


def native_layer(conv_key: str, dims: dict[str, int], dtype: type, seed: int, levels: int = 1,
                 directions: tuple[str, ...] = ("forward",), groups: frozenset[str] = frozenset({"bias"})) -> NativeLayer:
    """A random native layer of ``conv_key`` with the optional tensor groups in ``groups``."""
    conv = CONVENTIONS[conv_key]
    rng = np.random.default_rng(seed)
    cells = {}
    start = 0
    for level in range(levels):
        level_dims = dict(dims)
        if level:
            level_dims["I"] = dims["R"] * len(directions)
        for direction in directions:
            tensors = {}
            for spec in conv.tensors:
                if spec.group == "core" or spec.group in groups:
                    tensors[spec.name] = fingerprinted(spec.shape(level_dims), dtype, rng, start)
                    start += tensors[spec.name].size
            cells[(level, direction)] = tensors
    return NativeLayer("layer", conv, LayerConfig(conv.default_activations), cells)


def layer_dims(draw_h: int, draw_i: int, draw_p: int) -> dict[str, int]:
    return {"H": draw_h, "I": draw_i, "P": draw_p, "R": draw_p or draw_h}


def groups_of(conv_key: str, with_projection: bool) -> frozenset[str]:
    conv = CONVENTIONS[conv_key]
    groups = {spec.group for spec in conv.tensors} - {"core"}
    if not with_projection:
        groups.discard("projection")
    return frozenset(groups)


@pytest.mark.parametrize("conv_key", sorted(CONVENTIONS))
@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 6),
    i=st.integers(1, 7),
    p=st.integers(1, 4),
    dtype=st.sampled_from(DTYPES),
    projected=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_split_then_fuse_is_bit_exact(conv_key: str, h: int, i: int, p: int, dtype: type, projected: bool, seed: int) -> None:
    conv = CONVENTIONS[conv_key]
    projected = projected and any(spec.group == "projection" for spec in conv.tensors)
    dims = layer_dims(h, i, p if projected else 0)
    native = native_layer(conv_key, dims, dtype, seed, groups=groups_of(conv_key, projected))

    canonical = to_canonical(native)
    back, folded = from_canonical(canonical, conv)

    assert folded == []
    for key, tensors in native.cells.items():
        assert back.cells[key].keys() == tensors.keys()
        for name, array in tensors.items():
            assert back.cells[key][name].dtype == array.dtype
            np.testing.assert_array_equal(back.cells[key][name], array, err_msg=f"{conv_key} {name}")


@pytest.mark.parametrize("conv_key", sorted(CONVENTIONS))
def test_every_block_lands_in_its_canonical_slot(conv_key: str) -> None:
    """Each canonical array comes from exactly the block the layout draws for it (with its sign
    flipped where the convention stores the block negated)."""
    conv = CONVENTIONS[conv_key]
    dims = layer_dims(3, 5, 2 if any(s.group == "projection" for s in conv.tensors) else 0)
    native = native_layer(conv_key, dims, np.float64, seed=1, groups=groups_of(conv_key, True))
    gates = to_canonical(native).cells[(0, "forward")]
    seen: set[float] = set()
    for spec in conv.tensors:
        for name in spec.names():
            sign = -1 if spec.stored_negated(name) else 1
            values = set((sign * np.asarray(gates[name])).ravel().tolist())
            assert not values & seen, f"{conv_key}: {name} overlaps another block"
            seen |= values
    stored = {float(v) for tensors in native.cells.values() for a in tensors.values() for v in a.ravel()}
    assert seen == stored


@pytest.mark.parametrize(
    ("conv_key", "gate_order"),
    [
        ("tf1.lstm", "igfo"),
        ("keras.lstm", "ifgo"),
        ("pytorch.lstm", "ifgo"),
        ("onnx.lstm", "iofg"),
        ("keras.gru", "zrn"),
        ("pytorch.gru", "rzn"),
        ("onnx.gru", "zrn"),
    ],
)
def test_gate_order_along_the_fused_axis(conv_key: str, gate_order: str) -> None:
    """The frameworks' documented orders (conventions.md), pinned independently of the registry."""
    conv = CONVENTIONS[conv_key]
    first = conv.tensors[0]
    assert first.gates == gate_order


def test_tf1_kernel_stacks_input_rows_over_recurrent_rows() -> None:
    spec = CONVENTIONS["tf1.lstm"].tensor("kernel")
    dims = {"H": 2, "I": 3, "R": 2, "P": 0}
    kernel = np.arange(5 * 8, dtype=np.float32).reshape(5, 8)
    gates = split_tensor(spec, kernel, dims)
    np.testing.assert_array_equal(gates["W_xi"], kernel[:3, 0:2].T)
    np.testing.assert_array_equal(gates["W_hg"], kernel[3:, 2:4].T)  # TF1's second block is j (= g)
    np.testing.assert_array_equal(gates["W_xf"], kernel[:3, 4:6].T)
    np.testing.assert_array_equal(fuse_tensor(spec, gates, dims, np.dtype(np.float32)), kernel)


def test_keras_cudnn_kernel_blocks_are_reinterpreted_memory() -> None:
    """tf_keras converts a CuDNNLSTM kernel block k [I, H] to the plain block k.reshape(H, I).T."""
    spec = CONVENTIONS["keras.cudnn_lstm"].tensor("kernel")
    dims = {"H": 2, "I": 3, "R": 2, "P": 0}
    kernel = np.arange(3 * 8, dtype=np.float32).reshape(3, 8)
    gates = split_tensor(spec, kernel, dims)
    block = kernel[:, 2:4]  # forget gate
    np.testing.assert_array_equal(gates["W_xf"].T, np.ascontiguousarray(block).reshape(2, 3).T)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"weight_ih": (8, 3), "weight_hh": (8, 3)}, "weight_hh"),
        ({"weight_ih": (7, 3), "weight_hh": (8, 2)}, "weight_ih"),
        ({"weight_ih": (8,), "weight_hh": (8, 2)}, "dimensions"),
    ],
)
def test_contradicting_shapes_are_named(shapes: dict[str, tuple[int, ...]], message: str) -> None:
    conv = CONVENTIONS["pytorch.lstm"]
    specs: dict[str, Tensor] = {name: conv.tensor(name) for name in shapes}
    with pytest.raises(MalformedFile, match=message):
        solve_dims(specs, shapes)


def test_forget_bias_is_folded_in_and_out() -> None:
    native = native_layer("tf1.lstm", layer_dims(2, 3, 0), np.float64, seed=3)
    native = NativeLayer(native.name, native.convention, native.config.with_(forget_bias=1.0), native.cells)
    stored = native.cells[(0, "forward")]["bias"]
    canonical = to_canonical(native)
    np.testing.assert_array_equal(canonical.cells[(0, "forward")]["b_xf"], stored[4:6] + 1.0)
    np.testing.assert_array_equal(canonical.cells[(0, "forward")]["b_xi"], stored[0:2])
    back, folded = from_canonical(canonical, native.convention, forget_bias=1.0)
    np.testing.assert_allclose(back.cells[(0, "forward")]["bias"], stored, rtol=0, atol=1e-15)
    assert any("forget_bias" in note for note in folded)


def test_two_biases_sum_into_one() -> None:
    native = native_layer("pytorch.gru", layer_dims(2, 3, 0), np.float64, seed=4)
    cell = native.cells[(0, "forward")]
    out, folded = from_canonical(to_canonical(native), CONVENTIONS["tf1.cudnn_gru"])
    tf = out.cells[(0, "forward")]
    np.testing.assert_array_equal(tf["gates/bias"], (cell["bias_ih"] + cell["bias_hh"])[:4])
    np.testing.assert_array_equal(tf["candidate/input_projection/bias"], cell["bias_ih"][4:])
    np.testing.assert_array_equal(tf["candidate/hidden_projection/bias"], cell["bias_hh"][4:])
    assert folded == ["input and recurrent biases summed into one"]


def test_a_missing_bias_is_zeros() -> None:
    native = native_layer("pytorch.lstm", layer_dims(2, 3, 0), np.float32, seed=5, groups=frozenset())
    canonical = to_canonical(native)
    assert not canonical.has_bias
    assert not np.any(canonical.cells[(0, "forward")]["b_xo"])
    out, _ = from_canonical(canonical, CONVENTIONS["tf1.lstm"])
    assert not np.any(out.cells[(0, "forward")]["bias"])
