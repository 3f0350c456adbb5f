"""NumPy reference forward passes: each convention's own equations on its own tensors.

Verification (``rnnbridge.engine.verify``) runs a source layer and its conversion each through
*its own framework's* equations and compares the outputs. So this module knows nothing of
``rnnbridge.engine.layout``: every step function below reads the native tensors with the
slicing its framework documents (source cited in each docstring), the way
``onnx/reference/ops/op_lstm.py`` does, and a mistake in the registry's layouts cannot be
repeated here.

Shapes: ``x`` is time-major ``[T, B, I]``. A cell's state is ``(h [B, R], c [B, H])`` for an
LSTM (``R`` the projection size, else ``H``) and ``(h [B, H],)`` for a GRU.

A step function ``step(t, config, x_t, state, units=None) -> (h_out, new_state)`` takes the
cell's native tensors by name (an optional tensor that is missing means zeros, or no
peepholes / projection) and the ``LayerConfig``. ``units`` (``None``: all) restricts the step
to those unit indices: every gated tensor is cut down to the units' rows of each gate block
*before* any arithmetic, so a large layer can be checked on a sample at the cost of the
sample. ``h_out`` and ``new_state`` then hold only those units; a reset-before GRU still
computes its reset gate for every unit (``r ⊙ h`` feeds a full matrix product), and a
projected LSTM ignores ``units`` (the projection mixes all units).

Activations are named as in ``rnnbridge.engine.conventions``; ``hard_sigmoid(a,b)`` is
``clip(a·x + b, 0, 1)``. ``config.forget_bias`` is added to every convention's forget-gate
pre-activation; ``config.clip`` bounds the inputs of the gate and candidate activations
(not the cell output, as onnxruntime does); ``config.input_forget`` sets ``f = 1 − i``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import overload

import numpy as np

from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.errors import InvalidField

Tensors = dict[str, np.ndarray]
State = tuple[np.ndarray, ...]
Step = Callable[..., tuple[np.ndarray, State]]
#: initial states, or final ones: one array [cells, B, ·], or one [B, ·] per cell when their sizes differ
States = np.ndarray | Sequence[np.ndarray]
Dims = Callable[[Tensors, int], tuple[int, int, int]]

_HARD_SIGMOID = re.compile(r"hard_sigmoid\(([^,()]+),([^,()]+)\)")


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a small batch ``a`` [B, n], on this thread.

    ``@`` hands the product to BLAS, whose worker threads cost far more than a [2, n]
    product itself (tens of milliseconds when the cores are busy, as they are on a
    loaded server); ``einsum`` without ``optimize`` computes it here, without BLAS.
    """
    return np.einsum("bi,ij->bj", a, b)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -v))  # no overflow for large |v|


_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "linear": lambda v: v,
}


def activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The activation function of a canonical activation name."""
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    match = _HARD_SIGMOID.fullmatch(name.replace(" ", ""))
    if match is None:
        raise InvalidField(f"unknown activation {name!r}")
    alpha, beta = float(match[1]), float(match[2])
    return lambda v: np.clip(alpha * v + beta, 0.0, 1.0)


class _Take:
    """Cuts fused tensors down to a set of units and casts them to the compute dtype."""

    def __init__(self, units: np.ndarray | None, dtype: np.dtype) -> None:
        self.units, self.dtype = units, dtype

    @overload
    def __call__(self, a: np.ndarray, gates: int, axis: int = 0) -> np.ndarray: ...

    @overload
    def __call__(self, a: np.ndarray | None, gates: int, axis: int = 0) -> np.ndarray | float: ...

    def __call__(self, a: np.ndarray | None, gates: int, axis: int = 0) -> np.ndarray | float:
        """The units' rows of each of the ``gates`` blocks along ``axis``; 0.0 for ``None``."""
        if a is None:
            return 0.0
        if self.units is not None:
            size = a.shape[axis] // gates
            a = _gather(a, (np.arange(gates)[:, None] * size + self.units).ravel(), axis)
        return a.astype(self.dtype, copy=False)

    def state(self, a: np.ndarray) -> np.ndarray:
        return a if self.units is None else a[:, self.units]


def _gather(a: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """``a`` restricted to ``index`` along ``axis`` (``np.take``, without its whole copy).

    Verification samples units in runs of consecutive units (``verify._sample_units``),
    and such a run is copied as one slice: element by element, a column-form kernel
    [in, G*H] costs a strided read, and NumPy's per-element indexing overhead, per item.
    """
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    if len(breaks) + 1 > max(1, index.size // 8):  # scattered: plain indexing
        return a[(slice(None),) * axis + (index,)]  # not np.take: it copies a strided array whole
    out = np.empty(a.shape[:axis] + (index.size,) + a.shape[axis + 1 :], a.dtype)
    lead = (slice(None),) * axis
    for run in np.split(np.arange(index.size), breaks):
        first, size = index[run[0]], len(run)
        out[lead + (slice(run[0], run[0] + size),)] = a[lead + (slice(first, first + size),)]
    return out


@overload
def _split(a: np.ndarray, parts: int, axis: int = 0) -> list[np.ndarray]: ...


@overload
def _split(a: np.ndarray | None, parts: int, axis: int = 0) -> list[np.ndarray] | list[None]: ...


def _split(a: np.ndarray | None, parts: int, axis: int = 0) -> list[np.ndarray] | list[None]:
    """``a`` in ``parts`` equal pieces along ``axis``; as many ``None`` for an absent tensor."""
    if a is None:
        return [None] * parts
    return list(np.split(a, parts, axis=axis))


def _clip(v: np.ndarray, bound: float | None) -> np.ndarray:
    return v if bound is None else np.clip(v, -bound, bound)


def _lstm(cfg: LayerConfig, i, f, g, o, c, peep=(0.0, 0.0, 0.0), proj=None) -> tuple[np.ndarray, State]:
    """The LSTM update from gate pre-activations; peepholes ``(p_i, p_f, p_o)`` act on
    ``c_{t-1}``, ``c_{t-1}``, ``c_t``; ``proj`` [H, P] maps ``o ⊙ act(c_t)`` to ``h_t``."""
    gate, cand, out = (activation(name) for name in cfg.activations)
    p_i, p_f, p_o = peep
    i = gate(_clip(i + p_i * c, cfg.clip))
    f = 1.0 - i if cfg.input_forget else gate(_clip(f + cfg.forget_bias + p_f * c, cfg.clip))
    c = f * c + i * cand(_clip(g, cfg.clip))
    h = gate(_clip(o + p_o * c, cfg.clip)) * out(c)
    if proj is not None:
        h = _dot(h, proj)
    return h, (h, c)


def _gru(cfg: LayerConfig, z, n, h) -> tuple[np.ndarray, State]:
    """The GRU update ``h' = z ⊙ h + (1 − z) ⊙ n`` from pre-activations of z and n."""
    gate, cand = (activation(name) for name in cfg.activations)
    z = gate(_clip(z, cfg.clip))
    h = z * h + (1.0 - z) * cand(_clip(n, cfg.clip))
    return h, (h,)


def _gate(cfg: LayerConfig, v: np.ndarray) -> np.ndarray:
    return activation(cfg.activations[0])(_clip(v, cfg.clip))


# --- TensorFlow 1 -------------------------------------------------------------------------


def _tf1_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``LSTMCell`` / ``BasicLSTMCell`` / ``LSTMBlockCell`` / ``CudnnCompatibleLSTMCell``:
    ``i, j, f, o = split([x, h] @ kernel + bias, 4)``, ``σ(f + forget_bias)``; peepholes
    ``w_i_diag``, ``w_f_diag`` on ``c``, ``w_o_diag`` on the new ``c``; ``m @ projection/kernel``
    (tensorflow/python/ops/rnn_cell_impl.py)."""
    h, c = state
    proj = t.get("projection/kernel")
    take = _Take(None if proj is not None else units, x.dtype)
    gates = _dot(np.concatenate([x, h], axis=1), take(t["kernel"], 4, 1)) + take(t.get("bias"), 4)
    i, j, f, o = np.split(gates, 4, axis=-1)
    peep = tuple(take(t.get(f"w_{g}_diag"), 1) for g in "ifo")
    return _lstm(cfg, i, f, j, o, take.state(c), peep, None if proj is None else proj.astype(x.dtype))


def _tf1_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUCell``: ``r, u = split(σ([x, h] @ gates/kernel + gates/bias), 2)``,
    ``c = act([x, r ⊙ h] @ candidate/kernel + candidate/bias)``, ``h' = u ⊙ h + (1 − u) ⊙ c``."""
    (h,) = state
    take, every = _Take(units, x.dtype), _Take(None, x.dtype)
    (k_r, k_u), (b_r, b_u) = _split(t["gates/kernel"], 2, 1), _split(t.get("gates/bias"), 2)
    xh = np.concatenate([x, h], axis=1)
    r = _gate(cfg, _dot(xh, every(k_r, 1, 1)) + every(b_r, 1))
    u = _dot(xh, take(k_u, 1, 1)) + take(b_u, 1)
    n = _dot(np.concatenate([x, r * h], axis=1), take(t["candidate/kernel"], 1, 1))
    return _gru(cfg, u, n + take(t.get("candidate/bias"), 1), take.state(h))


def _tf1_cudnn_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``CudnnCompatibleGRUCell``: gates as ``GRUCell``; ``c = tanh(x W_i + b_i + r ⊙
    (h W_h + b_h))`` from ``candidate/{input,hidden}_projection`` (contrib cudnn_rnn_ops.py)."""
    (h,) = state
    take = _Take(units, x.dtype)
    gates = _dot(np.concatenate([x, h], axis=1), take(t["gates/kernel"], 2, 1)) + take(t.get("gates/bias"), 2)
    r, u = np.split(gates, 2, axis=-1)
    hidden = _dot(h, take(t["candidate/hidden_projection/kernel"], 1, 1))
    hidden = hidden + take(t.get("candidate/hidden_projection/bias"), 1)
    n = _dot(x, take(t["candidate/input_projection/kernel"], 1, 1))
    n = n + take(t.get("candidate/input_projection/bias"), 1) + _gate(cfg, r) * hidden
    return _gru(cfg, u, n, take.state(h))


# --- Keras --------------------------------------------------------------------------------


def _keras_lstm_eq(kernel, recurrent, bias, cfg, x, state, take: _Take):
    h, c = state
    i, f, g, o = np.split(_dot(x, kernel) + _dot(h, recurrent) + bias, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c))


def _keras_gru_after_eq(kernel, recurrent, bias, cfg, x, state, take: _Take):
    (h,) = state
    b_x, b_h = (0.0, 0.0) if np.ndim(bias) == 0 else bias
    x_z, x_r, x_n = np.split(_dot(x, kernel) + b_x, 3, axis=-1)
    h_z, h_r, h_n = np.split(_dot(h, recurrent) + b_h, 3, axis=-1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


def _keras_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``LSTMCell``: ``i, f, c, o = split(x @ kernel + h @ recurrent_kernel + bias, 4)``
    (keras/src/layers/rnn/lstm.py)."""
    take = _Take(units, x.dtype)
    kernel, recurrent = take(t["kernel"], 4, 1), take(t["recurrent_kernel"], 4, 1)
    return _keras_lstm_eq(kernel, recurrent, take(t.get("bias"), 4), cfg, x, state, take)


def _keras_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUCell(reset_after=False)``: blocks z, r, h; bias [3H];
    ``hh = act(x W_h + b_h + (r ⊙ h) U_h)`` (keras/src/layers/rnn/gru.py)."""
    (h,) = state
    take, every = _Take(units, x.dtype), _Take(None, x.dtype)
    (k_z, k_r, k_h), (u_z, u_r, u_h) = _split(t["kernel"], 3, 1), _split(t["recurrent_kernel"], 3, 1)
    b_z, b_r, b_h = _split(t.get("bias"), 3)
    r = _gate(cfg, _dot(x, every(k_r, 1, 1)) + every(b_r, 1) + _dot(h, every(u_r, 1, 1)))
    z = _dot(x, take(k_z, 1, 1)) + take(b_z, 1) + _dot(h, take(u_z, 1, 1))
    n = _dot(x, take(k_h, 1, 1)) + take(b_h, 1) + _dot(r * h, take(u_h, 1, 1))
    return _gru(cfg, z, n, take.state(h))


def _keras_gru_reset_after(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUCell(reset_after=True)``: bias [2, 3H] = input row, recurrent row;
    ``hh = act(x W_h + b_h + r ⊙ (h U_h + b'_h))`` (keras/src/layers/rnn/gru.py)."""
    take = _Take(units, x.dtype)
    kernel, recurrent = take(t["kernel"], 3, 1), take(t["recurrent_kernel"], 3, 1)
    return _keras_gru_after_eq(kernel, recurrent, take(t.get("bias"), 3, 1), cfg, x, state, take)


def _from_cudnn(t: Tensors, gates: int, units: np.ndarray | None, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The plain Keras kernels of a Keras 2 CuDNN layer's, for ``units``.

    tf_keras ``hdf5_format._convert_rnn_weights`` turns each input block ``k`` into
    ``k.T.reshape(k.shape, order="F")``: the block's C-order memory read as cuDNN's row-major
    ``[H, I]`` matrix ``W``, transposed. Rows ``u`` of ``W`` sit at offsets ``u·I .. u·I + I − 1``
    of that memory, which is what is gathered here. Each recurrent block is cuDNN's
    ``[H, H]`` matrix, so the plain block is its transpose.
    """
    kernel, recurrent = t["kernel"], t["recurrent_kernel"]
    inputs, size = kernel.shape[0], recurrent.shape[0]
    rows = np.arange(size) if units is None else np.asarray(units)
    flat = rows[:, None] * inputs + np.arange(inputs)
    plain_x = [block[flat // size, flat % size].T for block in np.split(kernel, gates, axis=1)]
    plain_h = [block[rows].T for block in np.split(recurrent, gates, axis=1)]
    return np.concatenate(plain_x, axis=1).astype(dtype), np.concatenate(plain_h, axis=1).astype(dtype)


def _keras_cudnn_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``CuDNNLSTM`` (Keras 2): cuDNN blocks i, f, c, o; bias [8H] = input | recurrent,
    both applied (tf_keras/layers/rnn/cudnn_lstm.py)."""
    take = _Take(units, x.dtype)
    kernel, recurrent = _from_cudnn(t, 4, units, x.dtype)
    b_x, b_h = _split(t.get("bias"), 2)
    return _keras_lstm_eq(kernel, recurrent, take(b_x, 4) + take(b_h, 4), cfg, x, state, take)


def _keras_cudnn_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``CuDNNGRU`` (Keras 2): cuDNN blocks z, r, h; bias [6H] = input z, r, h | recurrent
    z, r, h; reset after (tf_keras/layers/rnn/cudnn_gru.py)."""
    take = _Take(units, x.dtype)
    kernel, recurrent = _from_cudnn(t, 3, units, x.dtype)
    bias = t.get("bias")
    bias = None if bias is None else bias.reshape(2, -1)
    return _keras_gru_after_eq(kernel, recurrent, take(bias, 3, 1), cfg, x, state, take)


# --- PyTorch ------------------------------------------------------------------------------


def _torch_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``nn.LSTM`` / ``nn.LSTMCell``: ``i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)``;
    with ``proj_size``, ``h = W_hr (o ⊙ tanh(c))`` (torch/nn/modules/rnn.py)."""
    h, c = state
    proj = t.get("weight_hr")
    take = _Take(None if proj is not None else units, x.dtype)
    gates = _dot(x, take(t["weight_ih"], 4).T) + take(t.get("bias_ih"), 4)
    gates = gates + _dot(h, take(t["weight_hh"], 4).T) + take(t.get("bias_hh"), 4)
    i, f, g, o = np.split(gates, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c), proj=None if proj is None else proj.astype(x.dtype).T)


def _torch_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``nn.GRU`` / ``nn.GRUCell``: r, z, n; ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
    ``h' = (1 − z) ⊙ n + z ⊙ h`` (torch/nn/modules/rnn.py)."""
    (h,) = state
    take = _Take(units, x.dtype)
    x_r, x_z, x_n = np.split(_dot(x, take(t["weight_ih"], 3).T) + take(t.get("bias_ih"), 3), 3, axis=-1)
    h_r, h_z, h_n = np.split(_dot(h, take(t["weight_hh"], 3).T) + take(t.get("bias_hh"), 3), 3, axis=-1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


# --- ONNX ---------------------------------------------------------------------------------


def _onnx_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """ONNX LSTM: ``i, o, f, c = split(x W^T + h R^T + Wb + Rb, 4)``, ``P = [P_i, P_o, P_f]``
    (onnx/defs/rnn/defs.cc, kDoc_LSTM_ver14)."""
    h, c = state
    take = _Take(units, x.dtype)
    w_b, r_b = _split(t.get("B"), 2)
    gates = _dot(x, take(t["W"], 4).T) + _dot(h, take(t["R"], 4).T) + take(w_b, 4) + take(r_b, 4)
    i, o, f, g = np.split(gates, 4, axis=-1)
    p_i, p_o, p_f = (take(p, 1) for p in _split(t.get("P"), 3))
    return _lstm(cfg, i, f, g, o, take.state(c), (p_i, p_f, p_o))


def _onnx_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """ONNX GRU, ``linear_before_reset=0``: z, r, h;
    ``ht = g(x W_h^T + (r ⊙ h) R_h^T + Rb_h + Wb_h)`` (kDoc_GRU_ver14)."""
    (h,) = state
    take, every = _Take(units, x.dtype), _Take(None, x.dtype)
    (w_z, w_r, w_h), (r_z, r_r, r_h) = np.split(t["W"], 3), np.split(t["R"], 3)
    w_b, r_b = _split(t.get("B"), 2)
    (wb_z, wb_r, wb_h), (rb_z, rb_r, rb_h) = _split(w_b, 3), _split(r_b, 3)
    r = _gate(cfg, _dot(x, every(w_r, 1).T) + _dot(h, every(r_r, 1).T) + every(wb_r, 1) + every(rb_r, 1))
    z = _dot(x, take(w_z, 1).T) + _dot(h, take(r_z, 1).T) + take(wb_z, 1) + take(rb_z, 1)
    n = _dot(x, take(w_h, 1).T) + _dot(r * h, take(r_h, 1).T) + take(rb_h, 1) + take(wb_h, 1)
    return _gru(cfg, z, n, take.state(h))


def _onnx_gru_lbr(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """ONNX GRU, ``linear_before_reset=1``: ``ht = g(x W_h^T + r ⊙ (h R_h^T + Rb_h) + Wb_h)``."""
    (h,) = state
    take = _Take(units, x.dtype)
    w_b, r_b = _split(t.get("B"), 2)
    x_z, x_r, x_n = np.split(_dot(x, take(t["W"], 3).T) + take(w_b, 3), 3, axis=-1)
    h_z, h_r, h_n = np.split(_dot(h, take(t["R"], 3).T) + take(r_b, 3), 3, axis=-1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


# --- MLX ----------------------------------------------------------------------------------


def _mlx_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``nn.LSTM`` (MLX >= 0.18): ``i, f, g, o = split(x Wx^T + bias + h Wh^T, 4)``
    (ml-explore/mlx python/mlx/nn/layers/recurrent.py)."""
    h, c = state
    take = _Take(units, x.dtype)
    gates = _dot(x, take(t["Wx"], 4).T) + take(t.get("bias"), 4) + _dot(h, take(t["Wh"], 4).T)
    i, f, g, o = np.split(gates, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c))


def _mlx_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``nn.GRU`` (MLX >= 0.18): r, z, n; ``x' = x Wx^T + b``, ``h' = h Wh^T`` with ``bhn``
    added to its n block; ``n = tanh(x'_n + r ⊙ h'_n)``, ``h = (1 − z) ⊙ n + z ⊙ h``."""
    (h,) = state
    take = _Take(units, x.dtype)
    x_r, x_z, x_n = np.split(_dot(x, take(t["Wx"], 3).T) + take(t.get("b"), 3), 3, axis=-1)
    h_r, h_z, h_n = np.split(_dot(h, take(t["Wh"], 3).T), 3, axis=-1)
    h_n = h_n + take(t.get("bhn"), 1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


# --- Haiku --------------------------------------------------------------------------------


def _haiku_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``hk.LSTM``: ``i, g, f, o = split([x, h] @ linear/w + linear/b, 4)``, ``σ(f + 1)``: the +1
    comes with ``config.forget_bias`` (dm-haiku haiku/_src/recurrent.py)."""
    h, c = state
    take = _Take(units, x.dtype)
    gates = _dot(np.concatenate([x, h], axis=1), take(t["linear/w"], 4, 1)) + take(t.get("linear/b"), 4)
    i, g, f, o = np.split(gates, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c))


def _haiku_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``hk.GRU``: blocks z, r, a of ``w_i`` [I, 3H], ``w_h`` [H, 3H], ``b``;
    ``a = tanh(x W_ia + (r ⊙ h) W_ha + b_a)``, ``h' = (1 − z) ⊙ h + z ⊙ a`` (reset before)."""
    (h,) = state
    take, every = _Take(units, x.dtype), _Take(None, x.dtype)
    (w_z, w_r, w_a), (u_z, u_r, u_a) = _split(t["w_i"], 3, 1), _split(t["w_h"], 3, 1)
    b_z, b_r, b_a = _split(t.get("b"), 3)
    r = _gate(cfg, _dot(x, every(w_r, 1, 1)) + _dot(h, every(u_r, 1, 1)) + every(b_r, 1))
    z = _gate(cfg, _dot(x, take(w_z, 1, 1)) + _dot(h, take(u_z, 1, 1)) + take(b_z, 1))
    a = _dot(x, take(w_a, 1, 1)) + _dot(r * h, take(u_a, 1, 1)) + take(b_a, 1)
    a = activation(cfg.activations[1])(_clip(a, cfg.clip))
    h = (1.0 - z) * take.state(h) + z * a
    return h, (h,)


# --- PaddlePaddle ---------------------------------------------------------------------------


def _paddle_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``LSTMCell``: ``i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)``; with
    ``proj_size``, ``h = (o ⊙ tanh(c)) @ weight_ho`` (paddle/nn/layer/rnn.py)."""
    h, c = state
    proj = t.get("weight_ho")
    take = _Take(None if proj is not None else units, x.dtype)
    gates = _dot(x, take(t["weight_ih"], 4).T) + take(t.get("bias_ih"), 4)
    gates = gates + _dot(h, take(t["weight_hh"], 4).T) + take(t.get("bias_hh"), 4)
    i, f, g, o = np.split(gates, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c), proj=None if proj is None else proj.astype(x.dtype))


def _paddle_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUCell``: r, z, c; ``c = tanh(x_c + r ⊙ (W_hc h + b_hc))``, ``h = (h − c) ⊙ z + c``."""
    (h,) = state
    take = _Take(units, x.dtype)
    x_r, x_z, x_c = np.split(_dot(x, take(t["weight_ih"], 3).T) + take(t.get("bias_ih"), 3), 3, axis=-1)
    h_r, h_z, h_c = np.split(_dot(h, take(t["weight_hh"], 3).T) + take(t.get("bias_hh"), 3), 3, axis=-1)
    return _gru(cfg, x_z + h_z, x_c + _gate(cfg, x_r + h_r) * h_c, take.state(h))


# --- Flax ---------------------------------------------------------------------------------


def _flax_lstm(forget: str) -> Step:
    """linen ``LSTMCell`` / ``OptimizedLSTMCell``, NNX ``LSTMCell`` (forget Dense ``forget``):
    each gate ``act(x @ i?/kernel + h @ h?/kernel + h?/bias)``, ``c' = f c + i g``,
    ``h' = o tanh(c')`` (flax/linen/recurrent.py, flax/nnx/nn/recurrent.py)."""

    def step(t: Tensors, cfg: LayerConfig, x, state, units=None):
        h, c = state
        take = _Take(units, x.dtype)
        pre = {
            g: _dot(x, take(t[f"{name}/kernel"], 1, 1))
            + _dot(h, take(t[f"h{g}/kernel"], 1, 1))
            + take(t.get(f"h{g}/bias"), 1)
            for g, name in zip("ifgo", ("ii", forget, "ig", "io"))
        }
        return _lstm(cfg, pre["i"], pre["f"], pre["g"], pre["o"], take.state(c))

    return step


def _flax_nnx_optimized_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """NNX ``OptimizedLSTMCell``: ``i, f, g, o = split(dense_i(x) + dense_h(h), 4)``."""
    h, c = state
    take = _Take(units, x.dtype)
    gates = _dot(x, take(t["dense_i/kernel"], 4, 1)) + _dot(h, take(t["dense_h/kernel"], 4, 1))
    i, f, g, o = np.split(gates + take(t.get("dense_h/bias"), 4), 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c))


def _flax_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """linen ``GRUCell``: ``r = σ(ir(x) + hr(h))``, ``z = σ(iz(x) + hz(h))``,
    ``n = tanh(in(x) + r ⊙ hn(h))``, ``h' = (1 − z) ⊙ n + z ⊙ h``; ``hr``, ``hz`` have no bias."""
    (h,) = state
    take = _Take(units, x.dtype)

    def side(name: str, v, bias: bool = True):
        out = _dot(v, take(t[f"{name}/kernel"], 1, 1))
        return out + take(t.get(f"{name}/bias"), 1) if bias else out

    r = _gate(cfg, side("ir", x) + side("hr", h, bias=False))
    z = side("iz", x) + side("hz", h, bias=False)
    return _gru(cfg, z, side("in", x) + r * side("hn", h), take.state(h))


def _flax_nnx_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """NNX ``GRUCell``: ``xr, xz, xn = split(dense_i(x), 3)``, ``hr, hz, hn = split(dense_h(h), 3)``
    (no bias), ``n = tanh(xn + r ⊙ hn)``, ``h' = (1 − z) ⊙ n + z ⊙ h``."""
    (h,) = state
    take = _Take(units, x.dtype)
    x_r, x_z, x_n = np.split(_dot(x, take(t["dense_i/kernel"], 3, 1)) + take(t.get("dense_i/bias"), 3), 3, axis=-1)
    h_r, h_z, h_n = np.split(_dot(h, take(t["dense_h/kernel"], 3, 1)), 3, axis=-1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


# --- Equinox ------------------------------------------------------------------------------


def _renamed(step: Step, names: dict[str, str]) -> Step:
    """``step`` on a cell whose tensors carry other names (the same equations)."""

    def renamed(t: Tensors, cfg: LayerConfig, x, state, units=None):
        return step({names.get(k, k): v for k, v in t.items()}, cfg, x, state, units)

    renamed.__doc__ = step.__doc__
    return renamed


#: equinox/nn/_rnn.py computes what MLX does (LSTMCell: weight_ih @ x + weight_hh @ h + bias;
#: GRUCell: n = tanh(x_n + r ⊙ (h_n + bias_n)), h' = n + z ⊙ (h − n)), on its own names
_EQUINOX_NAMES = {"weight_ih": "Wx", "weight_hh": "Wh", "bias_n": "bhn"}


# --- OpenVINO -----------------------------------------------------------------------------


def _openvino_lstm(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``LSTMSequence``: ``f, i, c, o = split(x W^T + h R^T + B, 4)`` (OpenVINO LSTMCell spec)."""
    h, c = state
    take = _Take(units, x.dtype)
    gates = _dot(x, take(t["W"], 4).T) + _dot(h, take(t["R"], 4).T) + take(t.get("B"), 4)
    f, i, g, o = np.split(gates, 4, axis=-1)
    return _lstm(cfg, i, f, g, o, take.state(c))


def _openvino_gru(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUSequence``, ``linear_before_reset=false``: z, r, h;
    ``h~ = g(x W_h + (r ⊙ h) R_h + B_h)``, ``H = (1 − z) ⊙ h~ + z ⊙ h`` (GRUCell spec)."""
    (h,) = state
    take, every = _Take(units, x.dtype), _Take(None, x.dtype)
    (w_z, w_r, w_h), (r_z, r_r, r_h) = np.split(t["W"], 3), np.split(t["R"], 3)
    b_z, b_r, b_h = _split(t.get("B"), 3)
    r = _gate(cfg, _dot(x, every(w_r, 1).T) + _dot(h, every(r_r, 1).T) + every(b_r, 1))
    z = _dot(x, take(w_z, 1).T) + _dot(h, take(r_z, 1).T) + take(b_z, 1)
    n = _dot(x, take(w_h, 1).T) + _dot(r * h, take(r_h, 1).T) + take(b_h, 1)
    return _gru(cfg, z, n, take.state(h))


def _openvino_gru_lbr(t: Tensors, cfg: LayerConfig, x, state, units=None):
    """``GRUSequence``, ``linear_before_reset=true``: ``h~ = g(x W_h + r ⊙ (h R_h + Rb_h) + Wb_h)``,
    B's Wb_h here as ``B``'s third block and Rb_h as ``Rb_h``."""
    (h,) = state
    take = _Take(units, x.dtype)
    x_z, x_r, x_n = np.split(_dot(x, take(t["W"], 3).T) + take(t.get("B"), 3), 3, axis=-1)
    h_z, h_r, h_n = np.split(_dot(h, take(t["R"], 3).T), 3, axis=-1)
    h_n = h_n + take(t.get("Rb_h"), 1)
    return _gru(cfg, x_z + h_z, x_n + _gate(cfg, x_r + h_r) * h_n, take.state(h))


STEPS: dict[str, Step] = {
    "tf1.lstm": _tf1_lstm,
    "tf1.cudnn_lstm": _tf1_lstm,  # LSTMBlockCell maths; its forget_bias 0 comes with the config
    "tf1.gru": _tf1_gru,
    "tf1.cudnn_gru": _tf1_cudnn_gru,
    "keras.lstm": _keras_lstm,
    "keras.gru": _keras_gru,
    "keras.gru_reset_after": _keras_gru_reset_after,
    "keras.cudnn_lstm": _keras_cudnn_lstm,
    "keras.cudnn_gru": _keras_cudnn_gru,
    "pytorch.lstm": _torch_lstm,
    "pytorch.gru": _torch_gru,
    "pytorch.lstm_cell": _torch_lstm,
    "pytorch.gru_cell": _torch_gru,
    "onnx.lstm": _onnx_lstm,
    "onnx.gru": _onnx_gru,
    "onnx.gru_lbr": _onnx_gru_lbr,
    "mlx.lstm": _mlx_lstm,
    "mlx.gru": _mlx_gru,
    "haiku.lstm": _haiku_lstm,
    "haiku.gru": _haiku_gru,
    "paddle.lstm": _paddle_lstm,
    "paddle.gru": _paddle_gru,
    "flax.lstm": _flax_lstm("if"),
    "flax.gru": _flax_gru,
    "flax.nnx_lstm": _flax_lstm("if_"),
    "flax.nnx_optimized_lstm": _flax_nnx_optimized_lstm,
    "flax.nnx_gru": _flax_nnx_gru,
    "equinox.lstm": _renamed(_mlx_lstm, _EQUINOX_NAMES),
    "equinox.gru": _renamed(_mlx_gru, {**_EQUINOX_NAMES, "bias": "b"}),
    "openvino.lstm": _openvino_lstm,
    "openvino.gru": _openvino_gru,
    "openvino.gru_lbr": _openvino_gru_lbr,
}


def _rows_dims(w_x: str, w_h: str) -> Dims:
    """Sizes of a cell whose matrices are row form ``[G·H, I]`` / ``[G·H, R]``."""

    def dims(t: Tensors, gates: int) -> tuple[int, int, int]:
        return t[w_x].shape[1], t[w_x].shape[0] // gates, t[w_h].shape[1]

    return dims


def _keras_dims(t: Tensors, gates: int) -> tuple[int, int, int]:
    return t["kernel"].shape[0], t["recurrent_kernel"].shape[0], t["recurrent_kernel"].shape[0]


def _tf1_dims(t: Tensors, gates: int) -> tuple[int, int, int]:
    """``[x, h]`` rows: the kernel is ``[I + R, 4H]`` (LSTM) or ``gates/kernel [I + H, 2H]``."""
    kernel = t["kernel"] if gates == 4 else t["gates/kernel"]
    units = kernel.shape[1] // (4 if gates == 4 else 2)
    recurrent = t["projection/kernel"].shape[1] if "projection/kernel" in t else units
    return kernel.shape[0] - recurrent, units, recurrent


_TORCH_DIMS, _ONNX_DIMS, _MLX_DIMS = _rows_dims("weight_ih", "weight_hh"), _rows_dims("W", "R"), _rows_dims("Wx", "Wh")


def _haiku_dims(t: Tensors, gates: int) -> tuple[int, int, int]:
    """``linear/w`` [I + H, 4H] (LSTM); ``w_i`` [I, 3H], ``w_h`` [H, 3H] (GRU)."""
    if gates == 4:
        units = t["linear/w"].shape[1] // 4
        return t["linear/w"].shape[0] - units, units, units
    return t["w_i"].shape[0], t["w_h"].shape[0], t["w_h"].shape[0]


def _paddle_dims(t: Tensors, gates: int) -> tuple[int, int, int]:
    units = t["weight_ih"].shape[0] // gates
    return t["weight_ih"].shape[1], units, t["weight_hh"].shape[1]


def _columns_dims(w_x: str, w_h: str) -> Dims:
    """Sizes of a cell whose matrices are column form ``[I, G·H]`` / ``[H, G·H]``."""

    def dims(t: Tensors, gates: int) -> tuple[int, int, int]:
        return t[w_x].shape[0], t[w_h].shape[0], t[w_h].shape[0]

    return dims


#: per convention: ``(I, H, R)`` of one cell from its native tensors and its gate count
CELL_DIMS: dict[str, Dims] = {
    "tf1.lstm": _tf1_dims,
    "tf1.cudnn_lstm": _tf1_dims,
    "tf1.gru": _tf1_dims,
    "tf1.cudnn_gru": _tf1_dims,
    "keras.lstm": _keras_dims,
    "keras.gru": _keras_dims,
    "keras.gru_reset_after": _keras_dims,
    "keras.cudnn_lstm": _keras_dims,
    "keras.cudnn_gru": _keras_dims,
    "pytorch.lstm": _TORCH_DIMS,
    "pytorch.gru": _TORCH_DIMS,
    "pytorch.lstm_cell": _TORCH_DIMS,
    "pytorch.gru_cell": _TORCH_DIMS,
    "onnx.lstm": _ONNX_DIMS,
    "onnx.gru": _ONNX_DIMS,
    "onnx.gru_lbr": _ONNX_DIMS,
    "mlx.lstm": _MLX_DIMS,
    "mlx.gru": _MLX_DIMS,
    "haiku.lstm": _haiku_dims,
    "haiku.gru": _haiku_dims,
    "paddle.lstm": _paddle_dims,
    "paddle.gru": _paddle_dims,
    "flax.lstm": _columns_dims("ii/kernel", "hi/kernel"),
    "flax.gru": _columns_dims("ir/kernel", "hr/kernel"),
    "flax.nnx_lstm": _columns_dims("ii/kernel", "hi/kernel"),
    "flax.nnx_optimized_lstm": _columns_dims("dense_i/kernel", "dense_h/kernel"),
    "flax.nnx_gru": _columns_dims("dense_i/kernel", "dense_h/kernel"),
    "equinox.lstm": _rows_dims("weight_ih", "weight_hh"),
    "equinox.gru": _rows_dims("weight_ih", "weight_hh"),
    "openvino.lstm": _ONNX_DIMS,
    "openvino.gru": _ONNX_DIMS,
    "openvino.gru_lbr": _ONNX_DIMS,
}


def cell_dims(layer: NativeLayer, level: int, direction: Direction) -> tuple[int, int, int]:
    """``(I, H, R)`` of one cell from its native tensors: input size, units, recurrent size."""
    gates = 4 if layer.convention.cell == "lstm" else 3
    return CELL_DIMS[layer.convention.key](layer.cells[(level, direction)], gates)


def step_cell(
    layer: NativeLayer,
    level: int,
    direction: Direction,
    x_t: np.ndarray,
    state: State,
    *,
    units: np.ndarray | None = None,
    dtype: type[np.floating] = np.float64,
) -> tuple[np.ndarray, State]:
    """One time step of one cell: ``x_t`` [B, I], ``state`` full-size ``(h, c)`` or ``(h,)``.

    Returns ``h_out`` and the new state, restricted to ``units`` when given (see the module
    docstring). Used by verification to check a sample of a large layer's units.
    """
    step, tensors = STEPS[layer.convention.key], layer.cells[(level, direction)]
    state = tuple(np.asarray(s, dtype=dtype) for s in state)
    with np.errstate(over="ignore", invalid="ignore"):
        return step(tensors, layer.config, np.asarray(x_t, dtype=dtype), state, units)


def _initial(given: States | None, index: int, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    return np.zeros(shape, dtype) if given is None else np.asarray(given[index], dtype=dtype)


def _stack(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return np.stack(arrays) if len({a.shape for a in arrays}) == 1 else arrays


def run(
    layer: NativeLayer,
    x: np.ndarray,
    h0: States | None = None,
    c0: States | None = None,
    *,
    dtype: type[np.floating] = np.float64,
) -> tuple[np.ndarray, States, States | None]:
    """Run a layer over a sequence with its framework's own equations.

    Parameters
    ----------
    layer : the layer in its native tensors.
    x : [T, B, I], time-major.
    h0, c0 : initial states in the layouts of ``h_n`` / ``c_n`` (zeros if ``None``); for a
        layer whose levels differ in size, a sequence of ``[B, ·]`` arrays, one per level·D + d.
    dtype : compute dtype (float64: the verification wants the conversion's error, not
        float32 noise).

    Returns
    -------
    y : [T, B, D·Hout], forward | backward on the last axis, both aligned to input time (the
        backward output at index t is the one computed after reading x_t).
    h_n : [L·D, B, Hout]; c_n : [L·D, B, H] for an LSTM, else ``None`` (lists when the levels
        differ in size). Level k > 0 reads the concatenated y of level k − 1, or, with
        ``config.independent_directions``, each direction its own level k − 1 output.
    """
    x = np.asarray(x, dtype=dtype)
    inputs = dict.fromkeys(layer.directions, x)
    h_n: list[np.ndarray] = []
    c_n: list[np.ndarray] = []
    for level in range(layer.num_levels):
        outputs = {}
        for direction in layer.directions:
            index = len(h_n)
            outputs[direction], state = _run_cell(layer, level, direction, inputs[direction], h0, c0, index)
            h_n.append(state[0])
            c_n.extend(state[1:])
        y = np.concatenate([outputs[d] for d in layer.directions], axis=-1)
        inputs = outputs if layer.config.independent_directions else dict.fromkeys(layer.directions, y)
    return y, _stack(h_n), _stack(c_n) if layer.convention.cell == "lstm" else None


def _run_cell(
    layer: NativeLayer,
    level: int,
    direction: Direction,
    xs: np.ndarray,
    h0: States | None,
    c0: States | None,
    index: int,
) -> tuple[np.ndarray, State]:
    """One cell over the whole sequence (reading it backwards for a backward cell)."""
    _, units, recurrent = cell_dims(layer, level, direction)
    batch, dtype = xs.shape[1], xs.dtype
    state: State = (_initial(h0, index, (batch, recurrent), dtype),)
    if layer.convention.cell == "lstm":
        state += (_initial(c0, index, (batch, units), dtype),)
    t = {name: a.astype(dtype) for name, a in layer.cells[(level, direction)].items()}
    step, ys = STEPS[layer.convention.key], {}
    order = range(len(xs) - 1, -1, -1) if direction == "backward" else range(len(xs))
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite outputs are the caller's to judge
        for k in order:
            ys[k], state = step(t, layer.config, xs[k], state)
    return np.stack([ys[k] for k in range(len(xs))]), state
