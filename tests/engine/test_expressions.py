"""The expressions /explain prints: rendering per dialect, and what evaluating them gives."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.engine.expressions import Expr, Slice, identifier, render_index


@pytest.mark.parametrize(
    ("index", "shape", "text"),
    [
        ((slice(0, 6), slice(10, 20)), (16, 40), "[:6, 10:20]"),
        ((slice(0, 16), slice(30, 40)), (16, 40), "[:, 30:40]"),
        ((1, slice(5, 10), slice(0, 3)), (2, 20, 3), "[1, 5:10, :]"),
        ((0, slice(0, 5)), (2, 15), "[0, :5]"),
    ],
)
def test_indices_are_written_as_numpy_would(index, shape, text) -> None:
    assert render_index(index, shape) == text


def test_two_transposes_cancel_and_reshapes_keep_their_shape() -> None:
    block = Slice("kernel", (slice(0, 3), slice(0, 5)), (8, 20), shape=(3, 5))
    assert block.then("T").then("T") == block
    reshaped = block.then("R", (5, 3)).then("T")
    assert reshaped.ops == ("R", "T") and reshaped.shape == (3, 5)


def test_each_dialect_spells_the_same_operations() -> None:
    kernel = Slice("kernel", (slice(0, 3), slice(10, 15)), (8, 20), shape=(3, 5)).then("T")
    bias = Slice("bias_hh", (slice(5, 10),), (20,), shape=(5,))
    expr = Expr(kernel, "float32")
    assert expr.render("numpy") == "kernel[:3, 10:15].T"
    assert expr.render("torch") == "kernel[:3, 10:15].T"
    assert expr.render("tensorflow") == "tf.transpose(kernel[:3, 10:15])"
    summed = Expr(Slice("bias_ih", (slice(5, 10),), (20,), shape=(5,)), "float16").plus(1.0).plus(bias).plus(1.0, "-")
    assert summed.render("numpy") == "bias_ih[5:10] + np.float16(1.0) + bias_hh[5:10] - np.float16(1.0)"
    assert summed.constants() == [1.0, -1.0]
    zeros = Expr(Slice(None, shape=(4,)), "float64")
    assert zeros.render("torch") == "torch.zeros(4, dtype=torch.float64)"
    assert zeros.render("tensorflow") == "tf.zeros([4], dtype=tf.float64)"


def test_evaluating_keeps_the_order_of_the_additions() -> None:
    """Floating-point addition is not associative: (b + 3) + b_h, as the engine computes."""
    bias_ih = np.array([3.0, -0.0, 3.0], np.float32)
    bias_hh = np.array([1e8, 0.0, 0.5], np.float32)
    expr = Expr(Slice("bias_ih", (slice(0, 3),), (3,), shape=(3,)), "float32")
    expr = expr.plus(3.0).plus(Slice("bias_hh", (slice(0, 3),), (3,), shape=(3,)))
    got = eval(expr.render("numpy"), {"np": np, "bias_ih": bias_ih, "bias_hh": bias_hh})
    want = (bias_ih + np.float32(3.0)) + bias_hh
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
    assert got[0] != bias_ih[0] + (np.float32(3.0) + bias_hh[0])  # 1e8 + 8 against 1e8


@pytest.mark.parametrize(("name", "ident"), [("kernel", "kernel"), ("gates/kernel", "gates_kernel"), ("0w", "t_0w")])
def test_identifiers(name, ident) -> None:
    assert identifier(name) == ident and ident.isidentifier()
