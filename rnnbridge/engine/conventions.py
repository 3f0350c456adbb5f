"""Every framework convention rnnbridge knows, as data: the one place to add a framework.

A ``Convention`` says how one framework stores one kind of recurrent cell: its tensors as
grids of canonical gate blocks (``rnnbridge.engine.layout``), the GRU variant, the run-time
forget-gate constant, what it can express (peepholes, projection, clipping, a reverse-only
layer, activations) and how its tensors are named per level and direction.

Canonical gate letters: LSTM ``i f g o`` (input, forget, cell candidate, output); GRU
``r z n`` (reset, update, candidate), where z multiplies h_{t-1}: h' = z·h + (1−z)·n.

What a framework shares across its conventions (how its output names start, whether a
caller may choose their prefix, how it flags a backward-only layer) is one ``Framework``
entry in ``FRAMEWORK_TABLE``; ``FRAMEWORKS`` is its keys.

To add a convention: add one entry to ``CONVENTIONS`` with ``source`` naming the file or
document that states its layout, then add a reference cell for its equations in
``rnnbridge.engine.reference`` and a real fixture for it. Everything else (the service's
enums, ``GET /conventions``, the CLI's choices, the parametrised tests) derives from here.
Every table keyed by framework or convention elsewhere has a test that fails until the new
key is in it (README, "Adding a framework").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnbridge.engine.tensors import Tensor


@dataclass(frozen=True)
class Framework:
    """What every convention of one framework shares.

    ``names_start``: how the output names of a layer's tensors start (``{layer}`` is the
    layer's name); ``prefix``: whether a caller may replace that start with a prefix of its
    own (state_dict keys), and ``prefix_forbids`` the characters such a prefix may not hold;
    ``reverse_flag``: the metadata flag of a backward-only layer.
    """

    key: str
    title: str
    names_start: str = "{layer}/"
    prefix: bool = False
    reverse_flag: str = "reverse_only"
    prefix_forbids: str = "/\\"  # characters a caller's prefix may not hold


FRAMEWORK_TABLE: dict[str, Framework] = {
    f.key: f
    for f in (
        Framework("tf1", "TensorFlow 1"),
        Framework("keras", "Keras", reverse_flag="go_backwards"),
        Framework("pytorch", "PyTorch", names_start="{layer}.", prefix=True),
        Framework("onnx", "ONNX"),
        Framework("mlx", "MLX", names_start="{layer}.", prefix=True),
        # Haiku names a module created inside module ``m`` ``m/~/<name>``
        Framework("haiku", "Haiku", names_start="{layer}/~/", prefix=True, prefix_forbids="\\"),
        Framework("paddle", "PaddlePaddle", names_start="{layer}.", prefix=True),
        Framework("flax", "Flax"),
        Framework("equinox", "Equinox"),
        Framework("openvino", "OpenVINO"),
    )
}
FRAMEWORKS = tuple(FRAMEWORK_TABLE)

#: how a convention's run-time forget-gate constant (``Convention.forget_bias``) is known:
#: ``none`` it has none; ``fixed`` the framework always adds it; ``stated`` a constructor
#: argument the file does not record (``source_forget_bias`` / ``target_forget_bias`` may
#: state it, the default is assumed); ``stored`` a setting the file records
FORGET_BIAS_RULES = ("none", "fixed", "stated", "stored")

#: canonical activation names; hard_sigmoid carries its (alpha, beta), float32-rounded
SIGMOID, TANH, RELU, LINEAR = "sigmoid", "tanh", "relu", "linear"
HARD_SIGMOID_KERAS2 = "hard_sigmoid(0.2,0.5)"  # clip(0.2x + 0.5, 0, 1): Keras 2, ONNX default
HARD_SIGMOID_KERAS3 = "hard_sigmoid(0.16666667,0.5)"  # clip(x/6 + 0.5, 0, 1): Keras 3
ANY_HARD_SIGMOID = "hard_sigmoid(*)"

LSTM_DEFAULT_ACTIVATIONS = (SIGMOID, TANH, TANH)  # gates, cell candidate, cell output
GRU_DEFAULT_ACTIVATIONS = (SIGMOID, TANH)  # gates, candidate


@dataclass(frozen=True)
class Activations:
    """Which activations a convention can express: per slot, the allowed names (``None``:
    only the default); ``tied`` when the cell candidate and cell output share one setting."""

    gate: frozenset[str] | None = None
    cell: frozenset[str] | None = None
    tied: bool = False


@dataclass(frozen=True)
class Convention:
    key: str
    framework: str
    cell: str  # "lstm" | "gru"
    native: str  # the framework's class, for people
    tensors: tuple[Tensor, ...]
    naming: str  # output name of a tensor at one level and direction
    reset_after: bool | None = None
    forget_bias: float = 0.0  # run-time constant the framework adds to the forget gate
    features: frozenset[str] = frozenset()
    activations: Activations = Activations()
    stack_directions: bool = False  # directions stacked on a leading axis (ONNX)
    source_only: bool = False
    source: str = ""
    forget_bias_rule: str = "none"  # one of FORGET_BIAS_RULES

    @property
    def runtime_constants(self) -> frozenset[str]:
        """The run-time constants the framework takes as constructor arguments, which the
        file does not record (a ``target_<name>`` field may set them): derived from
        ``forget_bias_rule`` (``stated``: ``forget_bias``), the one place that states it."""
        return frozenset({"forget_bias"}) if self.forget_bias_rule == "stated" else frozenset()

    @property
    def default_activations(self) -> tuple[str, ...]:
        return LSTM_DEFAULT_ACTIVATIONS if self.cell == "lstm" else GRU_DEFAULT_ACTIVATIONS

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)


def _t(name: str, gates: str, *parts: str, **kw: Any) -> Tensor:
    return Tensor(name, gates, parts, **kw)


_COMMON = frozenset({SIGMOID, TANH, RELU, LINEAR})
# Keras output is for Keras 3, whose hard_sigmoid is x/6 + 0.5; it has no 0.2x + 0.5 activation
_KERAS_ACTIVATIONS = Activations(gate=_COMMON | {HARD_SIGMOID_KERAS3}, cell=_COMMON, tied=True)
_ONNX_ACTIVATIONS = Activations(gate=_COMMON | {ANY_HARD_SIGMOID}, cell=_COMMON | {ANY_HARD_SIGMOID})
_TF1_ACTIVATIONS = Activations(cell=_COMMON, tied=True)

_TORCH_NAMING = "{tensor}_l{level}{reverse}"
_PER_DIRECTION = "l{level}/{direction}/{tensor}"
_ONNX_NAMING = "l{level}/{tensor}"

_TF1_LSTM = (
    _t("kernel", "igfo", "W_x", "W_h", gate_axis=1),
    _t("bias", "igfo", "b_x", group="bias"),
)
_TF1_PEEPHOLES = tuple(_t(f"w_{g}_diag", g, "p_", group="peephole") for g in "ifo")
_TF1_GRU_GATES = (
    _t("gates/kernel", "rz", "W_x", "W_h", gate_axis=1),
    _t("gates/bias", "rz", "b_x", group="bias"),
)
_TORCH_LSTM = (
    _t("weight_ih", "ifgo", "W_x"),
    _t("weight_hh", "ifgo", "W_h"),
    _t("bias_ih", "ifgo", "b_x", group="bias"),
    _t("bias_hh", "ifgo", "b_h", group="bias"),
)
_TORCH_GRU = (
    _t("weight_ih", "rzn", "W_x"),
    _t("weight_hh", "rzn", "W_h"),
    _t("bias_ih", "rzn", "b_x", group="bias"),
    _t("bias_hh", "rzn", "b_h", group="bias"),
)
_KERAS_KERNELS_LSTM = (
    _t("kernel", "ifgo", "W_x", gate_axis=1),
    _t("recurrent_kernel", "ifgo", "W_h", gate_axis=1),
)
_KERAS_KERNELS_GRU = (
    _t("kernel", "zrn", "W_x", gate_axis=1),
    _t("recurrent_kernel", "zrn", "W_h", gate_axis=1),
)
# Keras 2 CuDNN layers keep cuDNN's row-major [H, I] input blocks reinterpreted as [I, H]
# and its [H, H] recurrent blocks as they are (tf_keras hdf5_format._convert_rnn_weights).
_CUDNN_X = {"gate_axis": 1, "transforms": ("R",)}
_CUDNN_H = {"gate_axis": 1, "transforms": ("N",)}

_CONVENTION_LIST: tuple[Convention, ...] = (
    Convention(
        key="tf1.lstm",
        framework="tf1",
        cell="lstm",
        native="tf.nn.rnn_cell.LSTMCell / BasicLSTMCell / LSTMBlockCell",
        tensors=_TF1_LSTM + _TF1_PEEPHOLES + (_t("projection/kernel", "", "W_proj", gate_axis=1, group="projection"),),
        naming=_PER_DIRECTION,
        forget_bias=1.0,
        forget_bias_rule="stated",
        features=frozenset({"peepholes", "projection", "independent_directions", "nonuniform_levels"}),
        activations=_TF1_ACTIVATIONS,
        source="tensorflow/python/ops/rnn_cell_impl.py LSTMCell.build/call (kernel [I+P, 4H], split i, j, f, o)",
    ),
    Convention(
        key="tf1.cudnn_lstm",
        framework="tf1",
        cell="lstm",
        native="tf.contrib.cudnn_rnn.CudnnCompatibleLSTMCell",
        tensors=_TF1_LSTM,
        naming=_PER_DIRECTION,
        forget_bias=0.0,  # LSTMBlockCell(forget_bias=0): not an argument of this class
        features=frozenset({"independent_directions", "nonuniform_levels"}),
        source=(
            "tensorflow/contrib/cudnn_rnn/python/ops/cudnn_rnn_ops.py CudnnLSTMSaveable (LSTMBlockCell, forget_bias=0)"
        ),
    ),
    Convention(
        key="tf1.gru",
        framework="tf1",
        cell="gru",
        native="tf.nn.rnn_cell.GRUCell",
        tensors=_TF1_GRU_GATES
        + (
            _t("candidate/kernel", "n", "W_x", "W_h", gate_axis=1),
            _t("candidate/bias", "n", "b_x", group="bias"),
        ),
        naming=_PER_DIRECTION,
        reset_after=False,
        features=frozenset({"independent_directions", "nonuniform_levels"}),
        activations=Activations(cell=_COMMON),
        source="tensorflow/python/ops/rnn_cell_impl.py GRUCell (gates r, u; candidate on [x, r*h])",
    ),
    Convention(
        key="tf1.cudnn_gru",
        framework="tf1",
        cell="gru",
        native="tf.contrib.cudnn_rnn.CudnnCompatibleGRUCell",
        tensors=_TF1_GRU_GATES
        + (
            _t("candidate/input_projection/kernel", "n", "W_x", gate_axis=1),
            _t("candidate/input_projection/bias", "n", "b_x", group="bias"),
            _t("candidate/hidden_projection/kernel", "n", "W_h", gate_axis=1),
            _t("candidate/hidden_projection/bias", "n", "b_h", group="bias"),
        ),
        naming=_PER_DIRECTION,
        reset_after=True,
        features=frozenset({"independent_directions", "nonuniform_levels"}),
        source="tensorflow/contrib/cudnn_rnn/python/ops/cudnn_rnn_ops.py CudnnCompatibleGRUCell, CudnnGRUSaveable",
    ),
    Convention(
        key="keras.lstm",
        framework="keras",
        cell="lstm",
        native="keras.layers.LSTM",
        tensors=_KERAS_KERNELS_LSTM + (_t("bias", "ifgo", "b_x", group="bias"),),
        naming=_PER_DIRECTION,
        features=frozenset({"reverse_only", "nonuniform_levels", "no_bias"}),
        activations=_KERAS_ACTIVATIONS,
        source="keras/src/layers/rnn/lstm.py LSTMCell.build (kernel [I, 4H], gates i, f, c, o)",
    ),
    Convention(
        key="keras.gru",
        framework="keras",
        cell="gru",
        native="keras.layers.GRU(reset_after=False)",
        tensors=_KERAS_KERNELS_GRU + (_t("bias", "zrn", "b_x", group="bias"),),
        naming=_PER_DIRECTION,
        reset_after=False,
        features=frozenset({"reverse_only", "nonuniform_levels", "no_bias"}),
        activations=_KERAS_ACTIVATIONS,
        source="keras/src/layers/rnn/gru.py GRUCell (gates z, r, h; bias [3H])",
    ),
    Convention(
        key="keras.gru_reset_after",
        framework="keras",
        cell="gru",
        native="keras.layers.GRU(reset_after=True)",
        tensors=_KERAS_KERNELS_GRU + (_t("bias", "zrn", "b_x", "b_h", rows=True, gate_axis=1, group="bias"),),
        naming=_PER_DIRECTION,
        reset_after=True,
        features=frozenset({"reverse_only", "nonuniform_levels", "no_bias"}),
        activations=_KERAS_ACTIVATIONS,
        source="keras/src/layers/rnn/gru.py GRUCell (bias [2, 3H]: input row, recurrent row)",
    ),
    Convention(
        key="keras.cudnn_lstm",
        framework="keras",
        cell="lstm",
        native="tf.compat.v1.keras.layers.CuDNNLSTM (Keras 2)",
        tensors=(
            _t("kernel", "ifgo", "W_x", **_CUDNN_X),
            _t("recurrent_kernel", "ifgo", "W_h", **_CUDNN_H),
            _t("bias", "ifgo", "b_x", "b_h", group="bias"),
        ),
        naming=_PER_DIRECTION,
        features=frozenset({"reverse_only", "nonuniform_levels", "no_bias"}),
        source_only=True,
        source="tf_keras/layers/rnn/cudnn_lstm.py; tf_keras/saving/legacy/hdf5_format.py _convert_rnn_weights",
    ),
    Convention(
        key="keras.cudnn_gru",
        framework="keras",
        cell="gru",
        native="tf.compat.v1.keras.layers.CuDNNGRU (Keras 2)",
        tensors=(
            _t("kernel", "zrn", "W_x", **_CUDNN_X),
            _t("recurrent_kernel", "zrn", "W_h", **_CUDNN_H),
            _t("bias", "zrn", "b_x", "b_h", group="bias"),
        ),
        naming=_PER_DIRECTION,
        reset_after=True,
        features=frozenset({"reverse_only", "nonuniform_levels", "no_bias"}),
        source_only=True,
        source="tf_keras/layers/rnn/cudnn_gru.py; tf_keras/saving/legacy/hdf5_format.py _convert_rnn_weights",
    ),
    Convention(
        key="pytorch.lstm",
        framework="pytorch",
        cell="lstm",
        native="torch.nn.LSTM",
        tensors=_TORCH_LSTM + (_t("weight_hr", "", "W_proj", group="projection"),),
        naming=_TORCH_NAMING,
        features=frozenset({"projection", "no_bias"}),
        source="torch/nn/modules/rnn.py RNNBase.__init__ (W_ii|W_if|W_ig|W_io)",
    ),
    Convention(
        key="pytorch.gru",
        framework="pytorch",
        cell="gru",
        native="torch.nn.GRU",
        tensors=_TORCH_GRU,
        naming=_TORCH_NAMING,
        reset_after=True,
        features=frozenset({"no_bias"}),
        source="torch/nn/modules/rnn.py RNNBase.__init__ (W_ir|W_iz|W_in)",
    ),
    Convention(
        key="pytorch.lstm_cell",
        framework="pytorch",
        cell="lstm",
        native="torch.nn.LSTMCell",
        tensors=_TORCH_LSTM,
        naming="{tensor}",
        features=frozenset({"single_cell", "no_bias"}),
        source="torch/nn/modules/rnn.py LSTMCell",
    ),
    Convention(
        key="pytorch.gru_cell",
        framework="pytorch",
        cell="gru",
        native="torch.nn.GRUCell",
        tensors=_TORCH_GRU,
        naming="{tensor}",
        reset_after=True,
        features=frozenset({"single_cell", "no_bias"}),
        source="torch/nn/modules/rnn.py GRUCell",
    ),
    Convention(
        key="onnx.lstm",
        framework="onnx",
        cell="lstm",
        native="ONNX LSTM",
        tensors=(
            _t("W", "iofg", "W_x"),
            _t("R", "iofg", "W_h"),
            _t("B", "iofg", "b_x", "b_h", group="bias"),
            _t("P", "iof", "p_", group="peephole"),
        ),
        naming=_ONNX_NAMING,
        stack_directions=True,
        features=frozenset({"peepholes", "clip", "reverse_only", "input_forget", "nonuniform_levels", "no_bias"}),
        activations=_ONNX_ACTIVATIONS,
        source="onnx/defs/rnn/defs.cc, onnx/defs/doc_strings.cc kDoc_LSTM_ver14 (W/R/B iofc, P iof)",
    ),
    Convention(
        key="onnx.gru",
        framework="onnx",
        cell="gru",
        native="ONNX GRU(linear_before_reset=0)",
        tensors=(
            _t("W", "zrn", "W_x"),
            _t("R", "zrn", "W_h"),
            _t("B", "zrn", "b_x", "b_h", group="bias"),
        ),
        naming=_ONNX_NAMING,
        reset_after=False,
        stack_directions=True,
        features=frozenset({"clip", "reverse_only", "nonuniform_levels", "no_bias"}),
        activations=_ONNX_ACTIVATIONS,
        source="onnx/defs/doc_strings.cc kDoc_GRU_ver14 (W/R/B zrh, linear_before_reset=0)",
    ),
    Convention(
        key="onnx.gru_lbr",
        framework="onnx",
        cell="gru",
        native="ONNX GRU(linear_before_reset=1)",
        tensors=(
            _t("W", "zrn", "W_x"),
            _t("R", "zrn", "W_h"),
            _t("B", "zrn", "b_x", "b_h", group="bias"),
        ),
        naming=_ONNX_NAMING,
        reset_after=True,
        stack_directions=True,
        features=frozenset({"clip", "reverse_only", "nonuniform_levels", "no_bias"}),
        activations=_ONNX_ACTIVATIONS,
        source="onnx/defs/doc_strings.cc kDoc_GRU_ver14 (linear_before_reset=1)",
    ),
)

# MLX >= 0.18 (python/mlx/nn/layers/recurrent.py): one level, one direction per module;
# Wx [G*H, I] and Wh [G*H, H] used as x @ Wx.T; the GRU's b is input-side, bhn inside r.
_MLX_CONVENTIONS = (
    Convention(
        key="mlx.lstm",
        framework="mlx",
        cell="lstm",
        native="mlx.nn.LSTM",
        tensors=(_t("Wx", "ifgo", "W_x"), _t("Wh", "ifgo", "W_h"), _t("bias", "ifgo", "b_x", group="bias")),
        naming="{tensor}",
        features=frozenset({"single_cell", "no_bias"}),
        source="ml-explore/mlx python/mlx/nn/layers/recurrent.py LSTM (Wx, Wh, bias; i, f, g, o; MLX >= 0.18)",
    ),
    Convention(
        key="mlx.gru",
        framework="mlx",
        cell="gru",
        native="mlx.nn.GRU",
        tensors=(
            _t("Wx", "rzn", "W_x"),
            _t("Wh", "rzn", "W_h"),
            _t("b", "rzn", "b_x", group="bias"),
            _t("bhn", "n", "b_h", group="bias"),
        ),
        naming="{tensor}",
        reset_after=True,
        features=frozenset({"single_cell", "no_bias"}),
        source="ml-explore/mlx python/mlx/nn/layers/recurrent.py GRU (b input side, bhn inside r; MLX >= 0.18)",
    ),
)
_CONVENTION_LIST += _MLX_CONVENTIONS

# dm-haiku haiku/_src/recurrent.py: an hk.LSTM / hk.GRU per level, auto-named lstm, lstm_1, ...
# (hk.DeepRNN adds no scope); no bidirectional module. The GRU keeps the complement of the
# canonical update gate (h' = (1 - z) h + z a): its z blocks are the canonical ones negated.
_HAIKU_CONVENTIONS = (
    Convention(
        key="haiku.lstm",
        framework="haiku",
        cell="lstm",
        native="hk.LSTM",
        tensors=(
            _t("linear/w", "igfo", "W_x", "W_h", gate_axis=1),
            _t("linear/b", "igfo", "b_x", group="bias"),
        ),
        naming="lstm{level_suffix}/{tensor}",
        forget_bias=1.0,
        forget_bias_rule="fixed",
        features=frozenset({"one_direction", "nonuniform_levels"}),
        source="dm-haiku haiku/_src/recurrent.py LSTM.__call__ (Linear(4H) on [x, h]; i, g, f, o; sigmoid(f + 1))",
    ),
    Convention(
        key="haiku.gru",
        framework="haiku",
        cell="gru",
        native="hk.GRU",
        tensors=(
            _t("w_i", "zrn", "W_x", gate_axis=1, negated="z"),
            _t("w_h", "zrn", "W_h", gate_axis=1, negated="z"),
            _t("b", "zrn", "b_x", group="bias", negated="z"),
        ),
        naming="gru{level_suffix}/{tensor}",
        reset_after=False,
        features=frozenset({"one_direction", "nonuniform_levels"}),
        source="dm-haiku haiku/_src/recurrent.py GRU.__call__ (z, r, a; reset before; h' = (1 - z) h + z a)",
    ),
)
_CONVENTION_LIST += _HAIKU_CONVENTIONS

# paddle/nn/layer/rnn.py: an RNNBase holds per level an RNN (one direction, ``cell``) or a
# BiRNN (``cell_fw``, ``cell_bw``) whose cells keep PyTorch's layout and gate order; the
# projection ``weight_ho`` [H, P] is applied as ``h = m @ weight_ho``. The flat keys of the
# same parameters (``weight_ih_l0``, ...) are aliases, numbered wrongly with projection.
_PADDLE_NAMING = "{level}.cell{direction_suffix}.{tensor}"
_PADDLE_CONVENTIONS = (
    Convention(
        key="paddle.lstm",
        framework="paddle",
        cell="lstm",
        native="paddle.nn.LSTM",
        tensors=_TORCH_LSTM + (_t("weight_ho", "", "W_proj", gate_axis=1, group="projection"),),
        naming=_PADDLE_NAMING,
        features=frozenset({"projection", "no_bias"}),
        source="paddle/nn/layer/rnn.py LSTMCell (i, f, g, o; weight_ho [H, P], h = m @ weight_ho), RNNBase",
    ),
    Convention(
        key="paddle.gru",
        framework="paddle",
        cell="gru",
        native="paddle.nn.GRU",
        tensors=_TORCH_GRU,
        naming=_PADDLE_NAMING,
        reset_after=True,
        features=frozenset({"no_bias"}),
        source="paddle/nn/layer/rnn.py GRUCell (r, z, c; c = tanh(x_c + r * (W_hc h + b_hc)))",
    ),
)
_CONVENTION_LIST += _PADDLE_CONVENTIONS

# flax/linen/recurrent.py, flax/nnx/nn/recurrent.py: cells of one level and direction (nn.RNN
# and nn.Bidirectional add scopes, not parameters). linen LSTMCell / OptimizedLSTMCell: one
# Dense per gate, kernels [in, H], the bias on the h side; GRUCell: ir, iz, in with bias, hr,
# hz without, hn with (inside r). NNX LSTMCell spells the forget Dense ``if_``; NNX
# OptimizedLSTMCell / GRUCell fuse the gates in dense_i / dense_h (GRU: no recurrent bias).
_FLAX_NAMING = "{tensor}"


def _per_gate(prefix: str, gates: str, part: str, suffix: str = "kernel", **kw: object) -> tuple[Tensor, ...]:
    names = {"f": "if_"} if prefix == "nnx_i" else {}
    side = "i" if prefix.endswith("i") else "h"
    return tuple(_t(f"{names.get(g, side + g)}/{suffix}", g, part, **kw) for g in gates)


_FLAX_LINEN_LSTM = (
    _per_gate("i", "ifgo", "W_x", gate_axis=1)
    + _per_gate("h", "ifgo", "W_h", gate_axis=1)
    + _per_gate("h", "ifgo", "b_x", "bias", group="bias")
)
_FLAX_CONVENTIONS = (
    Convention(
        key="flax.lstm",
        framework="flax",
        cell="lstm",
        native="flax.linen.LSTMCell / OptimizedLSTMCell",
        tensors=_FLAX_LINEN_LSTM,
        naming=_FLAX_NAMING,
        features=frozenset({"single_cell"}),
        source_only=True,
        source="flax/linen/recurrent.py LSTMCell (ii if ig io: kernel [I, H]; hi hf hg ho: kernel [H, H] + bias)",
    ),
    Convention(
        key="flax.gru",
        framework="flax",
        cell="gru",
        native="flax.linen.GRUCell",
        tensors=_per_gate("i", "rzn", "W_x", gate_axis=1)
        + _per_gate("i", "rzn", "b_x", "bias", group="bias")
        + _per_gate("h", "rzn", "W_h", gate_axis=1)
        + (_t("hn/bias", "n", "b_h", group="bias"),),
        naming=_FLAX_NAMING,
        reset_after=True,
        features=frozenset({"single_cell"}),
        source_only=True,
        source="flax/linen/recurrent.py GRUCell (n = tanh(in(x) + r * hn(h)); h' = (1 - z) n + z h)",
    ),
    Convention(
        key="flax.nnx_lstm",
        framework="flax",
        cell="lstm",
        native="flax.nnx.LSTMCell",
        tensors=_per_gate("nnx_i", "ifgo", "W_x", gate_axis=1)
        + _per_gate("h", "ifgo", "W_h", gate_axis=1)
        + _per_gate("h", "ifgo", "b_x", "bias", group="bias"),
        naming=_FLAX_NAMING,
        features=frozenset({"single_cell"}),
        source_only=True,
        source="flax/nnx/nn/recurrent.py LSTMCell (ii, if_, ig, io; hi, hf, hg, ho with bias)",
    ),
    Convention(
        key="flax.nnx_optimized_lstm",
        framework="flax",
        cell="lstm",
        native="flax.nnx.OptimizedLSTMCell",
        tensors=(
            _t("dense_i/kernel", "ifgo", "W_x", gate_axis=1),
            _t("dense_h/kernel", "ifgo", "W_h", gate_axis=1),
            _t("dense_h/bias", "ifgo", "b_x", group="bias"),
        ),
        naming=_FLAX_NAMING,
        features=frozenset({"single_cell"}),
        source_only=True,
        source="flax/nnx/nn/recurrent.py OptimizedLSTMCell (dense_i [I, 4H], dense_h [H, 4H] + bias; i, f, g, o)",
    ),
    Convention(
        key="flax.nnx_gru",
        framework="flax",
        cell="gru",
        native="flax.nnx.GRUCell",
        tensors=(
            _t("dense_i/kernel", "rzn", "W_x", gate_axis=1),
            _t("dense_i/bias", "rzn", "b_x", group="bias"),
            _t("dense_h/kernel", "rzn", "W_h", gate_axis=1),
        ),
        naming=_FLAX_NAMING,
        reset_after=True,
        features=frozenset({"single_cell"}),
        source_only=True,
        source="flax/nnx/nn/recurrent.py GRUCell (dense_i [I, 3H] + bias, dense_h [H, 3H] no bias; r, z, n)",
    ),
)
_CONVENTION_LIST += _FLAX_CONVENTIONS

# equinox/nn/_rnn.py: a cell (one level, one direction; the user's module scans it);
# weight_ih [G*H, I], weight_hh [G*H, H], bias input side, the GRU's bias_n inside r.
_EQUINOX_CONVENTIONS = (
    Convention(
        key="equinox.lstm",
        framework="equinox",
        cell="lstm",
        native="eqx.nn.LSTMCell",
        tensors=(
            _t("weight_ih", "ifgo", "W_x"),
            _t("weight_hh", "ifgo", "W_h"),
            _t("bias", "ifgo", "b_x", group="bias"),
        ),
        naming="{tensor}",
        features=frozenset({"single_cell", "no_bias"}),
        source="equinox/nn/_rnn.py LSTMCell (weight_ih @ x + weight_hh @ h + bias; i, f, g, o)",
    ),
    Convention(
        key="equinox.gru",
        framework="equinox",
        cell="gru",
        native="eqx.nn.GRUCell",
        tensors=(
            _t("weight_ih", "rzn", "W_x"),
            _t("weight_hh", "rzn", "W_h"),
            _t("bias", "rzn", "b_x", group="bias"),
            _t("bias_n", "n", "b_h", group="bias"),
        ),
        naming="{tensor}",
        reset_after=True,
        features=frozenset({"single_cell", "no_bias"}),
        source="equinox/nn/_rnn.py GRUCell (bias input side; n = tanh(x_n + r * (h_n + bias_n)))",
    ),
)
_CONVENTION_LIST += _EQUINOX_CONVENTIONS

# OpenVINO opset5 LSTMSequence / GRUSequence (docs.openvino.ai, operation specs): W [D, G*H, I],
# R [D, G*H, H], one bias B; LSTM blocks f, i, c, o; GRU z, r, h. With linear_before_reset
# B is [D, 4H] = [z, r, Wb_h, Rb_h]: the finder cuts it into B [3H] and Rb_h [H] per direction.
_OPENVINO_FEATURES = frozenset({"clip", "reverse_only"})
_OPENVINO_CONVENTIONS = (
    Convention(
        key="openvino.lstm",
        framework="openvino",
        cell="lstm",
        native="OpenVINO LSTMSequence (opset5)",
        tensors=(_t("W", "figo", "W_x"), _t("R", "figo", "W_h"), _t("B", "figo", "b_x", group="bias")),
        naming="l{level}/{tensor}",
        features=_OPENVINO_FEATURES,
        activations=Activations(gate=_COMMON, cell=_COMMON),
        source_only=True,
        source="OpenVINO LSTMSequence-5 spec (W, R [D, 4H, ·], B [D, 4H]; gates f, i, c, o)",
    ),
    Convention(
        key="openvino.gru",
        framework="openvino",
        cell="gru",
        native="OpenVINO GRUSequence (opset5, linear_before_reset=false)",
        tensors=(_t("W", "zrn", "W_x"), _t("R", "zrn", "W_h"), _t("B", "zrn", "b_x", group="bias")),
        naming="l{level}/{tensor}",
        reset_after=False,
        features=_OPENVINO_FEATURES,
        activations=Activations(gate=_COMMON, cell=_COMMON),
        source_only=True,
        source="OpenVINO GRUSequence-5 spec (z, r, h; h~ = g(x W_h + (r * h) R_h + B_h))",
    ),
    Convention(
        key="openvino.gru_lbr",
        framework="openvino",
        cell="gru",
        native="OpenVINO GRUSequence (opset5, linear_before_reset=true)",
        tensors=(
            _t("W", "zrn", "W_x"),
            _t("R", "zrn", "W_h"),
            _t("B", "zrn", "b_x", group="bias"),
            _t("Rb_h", "n", "b_h", group="bias"),
        ),
        naming="l{level}/{tensor}",
        reset_after=True,
        features=_OPENVINO_FEATURES,
        activations=Activations(gate=_COMMON, cell=_COMMON),
        source_only=True,
        source="OpenVINO GRUSequence-5 spec (B [D, 4H] = z, r, Wb_h, Rb_h; h~ = g(x W_h + r * (h R_h + Rb_h) + Wb_h))",
    ),
)
_CONVENTION_LIST += _OPENVINO_CONVENTIONS

CONVENTIONS: dict[str, Convention] = {c.key: c for c in _CONVENTION_LIST}


#: the frameworks rnnbridge writes (the others are sources only: their conventions are all
#: ``source_only``), in ``FRAMEWORKS`` order
TARGET_FRAMEWORKS = tuple(
    f for f in FRAMEWORKS if any(c.framework == f and not c.source_only for c in _CONVENTION_LIST)
)


def targets(framework: str, cell: str) -> list[Convention]:
    """The conventions of ``framework`` a layer of ``cell`` may convert into (not source-only),
    preferred first: modules that hold levels and directions before single cells, which
    ``exactness`` refuses for anything but one level in one direction."""
    found = [c for c in _CONVENTION_LIST if c.framework == framework and c.cell == cell and not c.source_only]
    return sorted(found, key=lambda c: "single_cell" in c.features)


def candidates(framework: str, cell: str, reset_after: bool | None) -> list[Convention]:
    """Target conventions of ``framework`` for this cell and GRU variant, preferred first."""
    return [c for c in targets(framework, cell) if cell == "lstm" or c.reset_after == reset_after]


def frameworks_with(feature: str) -> str:
    """The target frameworks some convention of which has ``feature``, for messages."""
    found = [
        f
        for f in FRAMEWORKS
        if any(feature in c.features for c in _CONVENTION_LIST if c.framework == f and not c.source_only)
    ]
    return _or(found)


def frameworks_with_bidirectional() -> str:
    """The target frameworks with a bidirectional module, for messages."""
    one_way = {"single_cell", "one_direction"}
    found = [f for f in FRAMEWORKS if any(not (one_way & c.features) for c in targets(f, "lstm") + targets(f, "gru"))]
    return _or(found)


def _or(names: list[str]) -> str:
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "none"


#: per convention, the framework's own letters for the canonical gates where they differ (as
#: its source names them: TF1 ``i, j, f, o`` and ``r, u`` + candidate ``c``; Keras ``i, f, c, o``
#: and ``z, r, h``; ONNX and OpenVINO ``i, o, f, c`` / ``f, i, c, o`` and ``z, r, h``; Haiku's
#: GRU candidate ``a``, Paddle's ``c``), for /explain equations and /run traces; ``{}`` where
#: the framework uses the canonical letters. Every convention has an entry (tests/test_registry.py).
NATIVE_GATE_LETTERS: dict[str, dict[str, str]] = {
    "tf1.lstm": {"g": "j"},
    "tf1.cudnn_lstm": {"g": "j"},
    "tf1.gru": {"z": "u", "n": "c"},
    "tf1.cudnn_gru": {"z": "u", "n": "c"},
    "keras.lstm": {"g": "c"},
    "keras.cudnn_lstm": {"g": "c"},
    "keras.gru": {"n": "h"},
    "keras.gru_reset_after": {"n": "h"},
    "keras.cudnn_gru": {"n": "h"},
    "pytorch.lstm": {},
    "pytorch.gru": {},
    "pytorch.lstm_cell": {},
    "pytorch.gru_cell": {},
    "onnx.lstm": {"g": "c"},
    "onnx.gru": {"n": "h"},
    "onnx.gru_lbr": {"n": "h"},
    "mlx.lstm": {},
    "mlx.gru": {},
    "haiku.lstm": {},
    "haiku.gru": {"n": "a"},
    "paddle.lstm": {},
    "paddle.gru": {"n": "c"},
    "flax.lstm": {},
    "flax.gru": {},
    "flax.nnx_lstm": {},
    "flax.nnx_optimized_lstm": {},
    "flax.nnx_gru": {},
    "equinox.lstm": {},
    "equinox.gru": {},
    "openvino.lstm": {"g": "c"},
    "openvino.gru": {"n": "h"},
    "openvino.gru_lbr": {"n": "h"},
}


def native_letter(conv: Convention, gate: str) -> str:
    """The framework's own letter of canonical gate ``gate`` (``tf1.lstm``: ``g`` -> ``j``)."""
    return NATIVE_GATE_LETTERS[conv.key].get(gate, gate)
