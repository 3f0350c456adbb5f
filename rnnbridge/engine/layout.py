"""Stored tensors as grids of canonical per-gate blocks.

Every fused tensor a framework stores is a grid: along its *gate axis* one block per gate
(each ``H`` long), along the other axis one segment per *part* (the input matrix, the
recurrent matrix, ...). A block holds one canonical array, named part + gate::

    TF1 LSTMCell kernel [I+H, 4H], column form (gate_axis=1)
                 i        j(g)      f         o
             +---------+---------+---------+---------+
      x: I   | W_xi.T  | W_xg.T  | W_xf.T  | W_xo.T  |
             +---------+---------+---------+---------+
      h: H   | W_hi.T  | W_hg.T  | W_hf.T  | W_ho.T  |
             +---------+---------+---------+---------+

    PyTorch weight_ih_l0 [4H, I], row form (gate_axis=0): blocks W_xi, W_xf, W_xg, W_xo stacked
    down the rows, each [H, I] as it is.

Canonical arrays are in "out_in" orientation (``W · x``): ``W_x{g}`` [H, I], ``W_h{g}``
[H, R] (R = projection size P, else H), ``b_x{g}`` and ``b_h{g}`` [H], peepholes ``p_{g}``
[H], ``W_proj`` [P, H]. Vectors (biases, peepholes) are concatenated part by part in a 1-D
tensor, or stacked as rows of a 2-D one (Keras' GRU bias [2, 3H]).

The per-part ``transform`` says how a block relates to its canonical array:
``"N"`` it is the array, ``"T"`` it is the transpose, ``"R"`` it is the array's C-order
memory reinterpreted with the transposed shape (Keras 2 CuDNN kernels, cuDNN row-major
[H, I] read as [I, H]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np

from rnnbridge.engine.tensors import Tensor, Transform
from rnnbridge.errors import MalformedFile


def _compiled_transpose() -> Callable[[np.ndarray, np.ndarray], None] | None:
    """The optional compiled transpose (setup.py); without it, the NumPy tile path below."""
    try:
        from rnnbridge.engine._transpose import transpose_into
    except ImportError:
        return None
    return transpose_into


transpose_into = _compiled_transpose()

Order = Literal["C", "K"]

#: ``fuse_tensor`` writes a matrix in panels of rows of about this many bytes
PANEL_BYTES = 4 * 1024**2
#: a transposed block is copied in tiles of this shape (a buffer of 256 KiB of float32)
TILE_ROWS, TILE_COLUMNS = 64, 1024


def split_tensor(spec: Tensor, array: np.ndarray, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Cut one stored tensor into its canonical arrays (views where the layout allows)."""
    out: dict[str, np.ndarray] = {}
    for name, index, transform in spec.blocks(dims):
        block = array[index]
        if spec.is_vector and block.ndim == 2:
            block = block.reshape(-1)
        out[name] = _to_canonical(np.negative(block) if spec.stored_negated(name) else block, transform)
    return out


def fuse_tensor(
    spec: Tensor,
    arrays: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    dtype: np.dtype,
    order: Order = "C",
) -> np.ndarray:
    """Write canonical arrays into one freshly allocated stored tensor.

    Parameters
    ----------
    spec, arrays, dims : the tensor's grid, its canonical arrays by block name, the sizes.
    dtype : the stored dtype (assignment casting, as ``out[...] = array``).
    order : ``"C"`` gives a C-contiguous tensor. ``"K"`` keeps the canonical arrays' own
        memory order: a matrix whose blocks are mostly transposes of their (C-ordered)
        arrays is allocated in Fortran order, so that every block is a plain copy. Use
        ``"K"`` only where the consumer accepts either order (an ``.npy`` does; safetensors
        and HDF5 hold C order).

    Returns
    -------
    numpy.ndarray
        The stored tensor, bit for bit the same values whatever ``order``.
    """
    shape = spec.shape(dims)
    if spec.is_vector:
        return _fuse_vector(spec, arrays, dims, shape, dtype)
    placed = [
        (index, _from_canonical(_stored_sign(spec, name, arrays), transform, _sliced_shape(index, shape)))
        for name, index, transform in spec.blocks(dims)
    ]
    if order == "K" and _mostly_transposed(placed):
        out = np.empty(shape[::-1], dtype=dtype)
        copy_blocks(out, [(index[::-1], source.T) for index, source in placed])
        return out.T
    out = np.empty(shape, dtype=dtype)
    copy_blocks(out, placed)
    return out


def _fuse_vector(
    spec: Tensor, arrays: Mapping[str, np.ndarray], dims: Mapping[str, int], shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    out = np.empty(shape, dtype=dtype)
    for name, index, transform in spec.blocks(dims):
        target = out[index].reshape(-1)  # a view: the block is one row or column
        target[...] = _from_canonical(_stored_sign(spec, name, arrays), transform, target.shape)
    return out


def _stored_sign(spec: Tensor, name: str, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.negative(arrays[name]) if spec.stored_negated(name) else arrays[name]


def _sliced_shape(index: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(n))) for s, n in zip(index, shape))


def _mostly_transposed(placed: list[tuple[tuple[slice, ...], np.ndarray]]) -> bool:
    """Whether most bytes of the blocks would be transposed copies into a C-ordered tensor."""
    transposed = sum(source.nbytes for _, source in placed if _column_major(source))
    return 2 * transposed > sum(source.nbytes for _, source in placed)


def _column_major(a: np.ndarray) -> bool:
    """A 2-D array whose first axis is the one that is contiguous in memory."""
    return a.ndim == 2 and min(a.shape) > 1 and abs(a.strides[0]) < abs(a.strides[1])


def copy_blocks(out: np.ndarray, placed: list[tuple[tuple[slice, ...], np.ndarray]]) -> None:
    """``out[index] = source`` for every block, writing ``out`` panel by panel in memory order.

    ``out`` is a C-contiguous matrix and every ``index`` two unit-step slices. Filling the
    output in the order of its memory keeps the writes sequential (a fresh tensor's pages
    are touched once, in order); a transposed source is read through a small buffer
    (``_transposed_copy``) instead of one strided element at a time.
    """
    rows = max(TILE_ROWS, PANEL_BYTES // max(1, out.strides[0]))
    for start in range(0, out.shape[0], rows):
        stop = start + rows
        for (along_rows, along_cols), source in placed:
            lo, hi = max(start, along_rows.start), min(stop, along_rows.stop)
            if lo < hi:
                offset = along_rows.start
                _copy(out[lo:hi, along_cols], source[lo - offset : hi - offset])


def _copy(target: np.ndarray, source: np.ndarray) -> None:
    if _column_major(source):
        _transposed_copy(target, source)
    else:
        np.copyto(target, source, casting="unsafe")


def _transposed_copy(target: np.ndarray, source: np.ndarray) -> None:
    """``target[...] = source`` for a ``source`` whose columns are contiguous.

    NumPy copies such an array one strided element at a time, touching a new cache line
    (and often a new page) for each. The compiled kernel, where it is built, does the whole
    copy in cache-sized tiles. Otherwise each tile of ``TILE_ROWS`` x ``TILE_COLUMNS`` is
    first copied, as rows of ``source.T``, into a buffer that stays in cache, and the
    target's rows are then filled from the buffer.
    """
    if transpose_into is not None and _kernel_applies(target, source):
        transpose_into(target, source.T)
        return
    rows, cols = source.shape
    buffer = np.empty((min(TILE_COLUMNS, cols), min(TILE_ROWS, rows)), dtype=source.dtype)
    for top in range(0, rows, TILE_ROWS):
        for left in range(0, cols, TILE_COLUMNS):
            part = source[top : top + TILE_ROWS, left : left + TILE_COLUMNS]
            tile = buffer[: part.shape[1], : part.shape[0]]
            np.copyto(tile, part.T)
            np.copyto(target[top : top + TILE_ROWS, left : left + TILE_COLUMNS], tile.T, casting="unsafe")


def _kernel_applies(target: np.ndarray, source: np.ndarray) -> bool:
    """Whether ``transpose_into`` can copy ``source`` into ``target``: same dtype, and
    ``target``'s rows and ``source``'s columns contiguous."""
    size = target.itemsize
    return target.dtype == source.dtype and size in (1, 2, 4, 8) and target.strides[1] == size == source.strides[0]


def _to_canonical(block: np.ndarray, transform: Transform) -> np.ndarray:
    if transform == "T":
        return block.T
    if transform == "R":
        return np.ascontiguousarray(block).reshape(block.shape[::-1])
    return block


def _from_canonical(array: np.ndarray, transform: Transform, shape: tuple[int, ...]) -> np.ndarray:
    if transform == "T":
        return array.T
    if transform == "R":
        return array.reshape(shape)
    return array


def solve_dims(specs: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """Find the sizes H, I, R, P from the stored shapes, and check every shape against them.

    ``specs`` and ``shapes`` are keyed by tensor name and hold only the tensors present.
    The recurrent size R is P when a projection tensor is present, else H (and P = 0).
    Raises ``MalformedFile`` naming the first tensor whose shape contradicts the others.
    """
    projected = any(spec.group == "projection" for spec in specs.values())
    r_sym = "P" if projected else "H"
    equations = []
    for name, spec in specs.items():
        shape = tuple(shapes[name])
        if len(shape) != spec.ndim:
            raise MalformedFile(f"tensor {name!r} has {len(shape)} dimensions, expected {spec.ndim}", tensor=name)
        for axis, coeffs in spec.equations():
            merged: dict[str, int] = {}
            for sym, c in coeffs.items():
                merged[r_sym if sym == "R" else sym] = merged.get(r_sym if sym == "R" else sym, 0) + c
            equations.append((name, merged, shape[axis]))
    dims: dict[str, int] = {} if projected else {"P": 0}
    _solve(equations, dims)
    dims["R"] = dims.get(r_sym, 0)
    for name, spec in specs.items():
        known = all(s in dims for _, coeffs in spec.equations() for s in coeffs)
        expected = spec.shape(dims) if known else None
        if expected != tuple(shapes[name]):
            raise MalformedFile(
                f"tensor {name!r} has shape {list(shapes[name])}, which does not fit the layer's "
                f"other tensors (expected {list(expected) if expected else 'sizes they cannot define'})",
                tensor=name,
            )
    return dims


def _solve(equations: list[tuple[str, dict[str, int], int]], dims: dict[str, int]) -> None:
    """Solve ``sum(coeff * sym) = length`` equations that have one unknown, until none has."""
    progress = True
    while progress:
        progress = False
        for name, coeffs, length in equations:
            unknown = [s for s in coeffs if s not in dims]
            if len(unknown) != 1:
                continue
            rest = length - sum(c * dims[s] for s, c in coeffs.items() if s in dims)
            sym = unknown[0]
            if rest <= 0 or rest % coeffs[sym]:
                raise MalformedFile(
                    f"tensor {name!r}: a length of {length} cannot be split into its gate blocks",
                    tensor=name,
                )
            dims[sym] = rest // coeffs[sym]
            progress = True
