"""The compiled transpose (``rnnbridge.engine._transpose``) is bit-exact and refuses what it cannot do.

Every result is compared as raw bits (``.view(uintN)``) with ``np.ascontiguousarray(src.T)``,
over random bit patterns that include signalling NaNs with payloads, -0.0 and subnormals,
odd shapes (not multiples of the register block, the cache line or the band), and targets
that are column slices of a wider array, each row at another skew from a cache line
(nothing outside the slice may change). Then ``layout.fuse_tensor`` and
``canonical.from_canonical`` must give the same bits with the kernel and with the NumPy
fallback.

The extension is optional: without it these tests skip, unless ``RNNBRIDGE_REQUIRE_NATIVE=1``
(CI, which has a compiler) makes its absence a failure.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnbridge.engine import from_canonical, layout, to_canonical
from rnnbridge.engine.exactness import select_target

from .test_canonical import layer_dims, native_layer

try:
    from rnnbridge.engine._transpose import transpose_into
except ImportError:
    if os.environ.get("RNNBRIDGE_REQUIRE_NATIVE") == "1":
        raise
    pytest.skip("rnnbridge.engine._transpose is not built (no C compiler at install time)", allow_module_level=True)

#: every item size, as the dtypes conversions meet (and integers of the other sizes)
DTYPES = [np.int8, np.float16, np.float32, np.float64, np.uint16, np.int32, np.int64]
#: 1 x N, N x 1, primes, one past a block / line / band (512 rows), and wider than a band
SHAPES = [(1, 1), (1, 37), (37, 1), (2, 3), (13, 17), (17, 67), (65, 33), (127, 257), (513, 31), (9, 1031)]
SENTINEL = 0x5A


def random_bits(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Random bit patterns of ``dtype``; for floats also signalling NaNs with payloads, -0.0, a subnormal."""
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(seed).integers(0, 256, size=(*shape, dtype.itemsize), dtype=np.uint8)
    array = raw.view(dtype).reshape(shape)
    if dtype.kind == "f":
        flat = array.reshape(-1)
        bits = flat.view(f"u{dtype.itemsize}")
        info = np.finfo(dtype)
        mantissa = info.nmant
        exponent_all_ones = ((1 << (8 * dtype.itemsize - 1 - mantissa)) - 1) << mantissa
        specials = [
            exponent_all_ones | 1,  # signalling NaN, payload 1
            exponent_all_ones | ((1 << (mantissa - 2)) + 5),  # signalling NaN, another payload
            (1 << (8 * dtype.itemsize - 1)) | exponent_all_ones | 3,  # negative signalling NaN
            1 << (8 * dtype.itemsize - 1),  # -0.0
            1,  # the smallest subnormal
        ]
        for k, pattern in enumerate(specials[: bits.size]):
            bits[(k * 7) % bits.size] = pattern
    return array


def as_bits(array: np.ndarray) -> np.ndarray:
    return array.view(f"u{array.itemsize}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_numpy_bit_for_bit(dtype: type, shape: tuple[int, int]) -> None:
    source = random_bits(shape, dtype, seed=shape[0] * 1000 + shape[1])
    target = np.empty(shape[::-1], dtype)
    transpose_into(target, source)
    np.testing.assert_array_equal(as_bits(target), as_bits(np.ascontiguousarray(source.T)))


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("left", [0, 1, 3, 8])
@pytest.mark.parametrize("width", [83, 128], ids=["rows-skewed-apart", "rows-in-step"])
def test_a_column_slice_is_written_and_nothing_around_it(dtype: type, left: int, width: int) -> None:
    source = random_bits((70, 45), dtype, seed=left)
    # rows of 83 items start at different distances past a cache line, rows of 128 items
    # all at the same one
    wide = np.empty((45, width), dtype)
    wide.view(np.uint8)[...] = SENTINEL
    before = wide.copy()
    transpose_into(wide[:, left : left + 70], source)
    np.testing.assert_array_equal(as_bits(wide[:, left : left + 70]), as_bits(source.T))
    outside = np.ones(wide.shape, bool)
    outside[:, left : left + 70] = False
    np.testing.assert_array_equal(as_bits(wide)[outside], as_bits(before)[outside])


def test_a_source_with_a_row_stride_and_a_misaligned_target() -> None:
    base = random_bits((40, 100), np.float32, seed=9)
    source = base[3:40:2, 5:66]  # rows 2 apart, starting mid-row
    raw = np.zeros(source.size * 4 + 3, np.uint8)
    target = raw[3:].view(np.float32).reshape(source.shape[::-1])  # not even item-aligned
    transpose_into(target, source)
    np.testing.assert_array_equal(as_bits(target), as_bits(np.ascontiguousarray(source.T)))


def test_empty_arrays() -> None:
    transpose_into(np.empty((0, 5), np.float32), np.empty((5, 0), np.float32))
    transpose_into(np.empty((5, 0), np.float32), np.empty((0, 5), np.float32))


@pytest.mark.parametrize(
    ("target", "source"),
    [
        (np.empty((3, 4), np.float32), np.empty((3, 4), np.float32)),  # not transposed shapes
        (np.empty((4, 3), np.float32), np.empty((3, 4), np.float64)),  # item sizes differ
        (np.empty((4, 3), np.float32), np.empty((3, 8), np.float32)[:, ::2]),  # source rows strided
        (np.empty((4, 6), np.float32)[:, ::2], np.empty((3, 4), np.float32)),  # target rows strided
        (np.empty((4, 3), np.float32), np.empty((4, 3), np.float32).T),  # source column-major
        (np.empty(12, np.float32), np.empty(12, np.float32)),  # 1-D
        (np.empty((2, 2, 3), np.float32), np.empty((3, 2, 2), np.float32)),  # 3-D
        (np.empty((4, 3), np.complex128), np.empty((3, 4), np.complex128)),  # 16-byte items
    ],
    ids=["shapes", "itemsizes", "source-strided", "target-strided", "source-fortran", "1d", "3d", "16-bytes"],
)
def test_refuses_what_it_cannot_copy(target: np.ndarray, source: np.ndarray) -> None:
    with pytest.raises(ValueError):
        transpose_into(target, source)


def test_refuses_a_read_only_target() -> None:
    target = np.zeros((4, 3), np.float32)
    target.flags.writeable = False
    with pytest.raises((ValueError, TypeError)):
        transpose_into(target, np.ones((3, 4), np.float32))
    assert not target.any()
    with pytest.raises(TypeError):
        transpose_into(bytes(48), np.ones((3, 4), np.float32))


def test_refuses_overlapping_buffers_and_non_buffers() -> None:
    square = np.arange(16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(ValueError):
        transpose_into(square, square)
    with pytest.raises(TypeError):
        transpose_into([[1.0]], np.ones((1, 1)))
    with pytest.raises(TypeError):
        transpose_into(np.ones((1, 1)))


@pytest.fixture(params=["kernel", "numpy"])
def kernel_calls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]] | None:
    """Run the test with the kernel (the shapes of the targets it was called on) and with
    the NumPy fallback (``None``)."""
    calls: list[tuple[int, ...]] = []
    if request.param == "numpy":
        monkeypatch.setattr(layout, "transpose_into", None)
        return None
    else:
        assert layout.transpose_into is transpose_into

        def counted(target: np.ndarray, source: np.ndarray) -> None:
            calls.append(target.shape)
            transpose_into(target, source)

        monkeypatch.setattr(layout, "transpose_into", counted)
    return calls


def converted_bits(canon) -> dict[tuple, np.ndarray]:
    """Every tensor of the layer converted to every framework, as raw bits."""
    bits = {}
    for framework in ("tf1", "keras", "pytorch", "onnx"):
        conv = select_target(canon, framework)
        # no forget-bias fold: it is not what this compares (and float16 may refuse it)
        for key, tensors in from_canonical(canon, conv, 0.0)[0].cells.items():
            bits.update({(framework, key, name): as_bits(array).copy() for name, array in tensors.items()})
    return bits


@pytest.mark.parametrize("source_key", ["pytorch.lstm", "keras.lstm", "tf1.cudnn_gru", "onnx.gru_lbr"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_conversions_give_the_same_bits_with_and_without_the_kernel(
    source_key: str, dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = native_layer(source_key, layer_dims(37, 19, 0), dtype, seed=11)
    tensors = native.cells[(0, "forward")]
    for name, array in tensors.items():  # special values in every matrix (biases are summed: kept finite)
        if array.ndim == 2 and "bias" not in name and name != "B":
            tensors[name] = random_bits(array.shape, dtype, seed=len(name))
    canon = to_canonical(native)
    with_kernel = converted_bits(canon)
    monkeypatch.setattr(layout, "transpose_into", None)
    monkeypatch.setattr(layout, "TILE_ROWS", 3)  # the fallback's tiles and panels cut through every block
    monkeypatch.setattr(layout, "TILE_COLUMNS", 5)
    monkeypatch.setattr(layout, "PANEL_BYTES", 7 * 8)
    with_numpy = converted_bits(canon)
    assert with_kernel.keys() == with_numpy.keys()
    for key, bits in with_kernel.items():
        np.testing.assert_array_equal(bits, with_numpy[key], err_msg=str(key))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_fuse_tensor_uses_the_kernel_and_matches_the_fallback(dtype: type, kernel_calls: list | None) -> None:
    keras_kernel = layout.Tensor("kernel", "ifgo", ("W_x",), gate_axis=1)
    dims = {"H": 67, "I": 45, "R": 67, "P": 0}
    arrays = {f"W_x{g}": random_bits((67, 45), dtype, seed=k) for k, g in enumerate("ifgo")}
    fused = layout.fuse_tensor(keras_kernel, arrays, dims, np.dtype(dtype))
    expected = np.concatenate([arrays[f"W_x{g}"].T for g in "ifgo"], axis=1)
    assert fused.flags.c_contiguous
    np.testing.assert_array_equal(as_bits(fused), as_bits(expected))
    if kernel_calls is not None:  # every block went through the kernel (one panel: one call each)
        assert kernel_calls == [(45, 67)] * 4
