"""The panel and tile copies of ``layout.fuse_tensor`` are exact across tile boundaries.

The tiles are shrunk (``TILE_ROWS`` 3, ``TILE_COLUMNS`` 5, panels of a few rows) so that
small layers cross every boundary: partial tiles, panels that end inside a gate block,
blocks that span two panels. Each conversion is compared bit for bit with a plain
``out[index] = array`` reference, in C order and with ``order="K"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.engine import CONVENTIONS, from_canonical, to_canonical
from rnnbridge.engine import layout
from rnnbridge.engine.exactness import select_target
from rnnbridge.errors import InexactConversion

from .test_canonical import layer_dims, native_layer

TARGETS = ("tf1", "keras", "pytorch", "onnx")


@pytest.fixture(autouse=True)
def tiny_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "TILE_ROWS", 3)
    monkeypatch.setattr(layout, "TILE_COLUMNS", 5)
    monkeypatch.setattr(layout, "PANEL_BYTES", 7 * 8)


def plain_fuse(spec: layout.Tensor, arrays: dict, dims: dict, dtype: np.dtype) -> np.ndarray:
    """The straightforward fuse: one assignment per block."""
    out = np.empty(spec.shape(dims), dtype=dtype)
    for name, index, transform in spec.blocks(dims):
        target = out[index].reshape(-1) if spec.is_vector else out[index]
        array = -arrays[name] if spec.stored_negated(name) else arrays[name]
        target[...] = array.T if transform == "T" else array.reshape(target.shape) if transform == "R" else array
    return out


@pytest.mark.parametrize("source", ["tf1.lstm", "keras.lstm", "pytorch.lstm", "onnx.lstm", "keras.gru", "pytorch.gru", "tf1.cudnn_gru"])
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_fused_tensors_match_plain_assignment(source: str, dtype: type) -> None:
    native = native_layer(source, layer_dims(11, 13, 0), dtype, seed=3, levels=2, directions=("forward", "backward"))
    canon = to_canonical(native)
    for framework in TARGETS:
        try:
            conv = select_target(canon, framework)
        except InexactConversion:  # a reset-before GRU has no PyTorch form
            continue
        c_order, _ = from_canonical(canon, conv, conv.forget_bias)
        k_order, _ = from_canonical(canon, conv, conv.forget_bias, order="K")
        for key, tensors in c_order.cells.items():
            for name, array in tensors.items():
                assert array.flags.c_contiguous, f"{source} -> {framework} {name}"
                np.testing.assert_array_equal(k_order.cells[key][name], array, err_msg=f"{source} -> {framework} {name}")
                assert k_order.cells[key][name].dtype == array.dtype


def test_order_k_writes_a_transposed_matrix_in_fortran_order() -> None:
    native = native_layer("pytorch.lstm", layer_dims(11, 13, 0), np.float32, seed=4)
    canon = to_canonical(native)
    keras = CONVENTIONS["keras.lstm"]
    cell = from_canonical(canon, keras, order="K")[0].cells[(0, "forward")]
    assert cell["kernel"].flags.f_contiguous and not cell["kernel"].flags.c_contiguous
    np.testing.assert_array_equal(cell["kernel"], native.cells[(0, "forward")]["weight_ih"].T)


@pytest.mark.parametrize("conv_key", sorted(CONVENTIONS))
def test_every_convention_against_plain_assignment(conv_key: str) -> None:
    conv = CONVENTIONS[conv_key]
    projected = any(spec.group == "projection" for spec in conv.tensors)
    dims = layer_dims(7, 9, 4 if projected else 0)
    native = native_layer(conv_key, dims, np.float32, seed=5, groups=frozenset({"bias", "peephole", "projection"}))
    gates = to_canonical(native).cells[(0, "forward")]
    solved = {**dims}
    for spec in conv.tensors:
        if all(name in gates for name in spec.names()):
            for order in ("C", "K"):
                fused = layout.fuse_tensor(spec, gates, solved, np.dtype(np.float32), order)
                np.testing.assert_array_equal(fused, plain_fuse(spec, gates, solved, np.dtype(np.float32)))
