"""A layer's forward pass as its own framework lays it out, a gate-by-gate trace, and where
a hand-written forward pass first departs from it.

The outputs come from ``rnnbridge.engine.reference`` (each convention's own equations on
its own tensors). ``OUTPUT_LAYOUTS`` says, per framework, what its layer returns and in
which axis order: this is data, and a framework whose layout is not described gets PyTorch's
form under neutral names (``y`` [T, B, D·Hout], ``h_n``, ``c_n`` [L·D, B, ·]).

The trace runs the canonical per-gate arrays (``to_canonical``: every run-time constant
folded in) through the canonical equations, step by step, and keeps every gate's
pre-activation and activation under the framework's own gate letters, the cell state and
the hidden output. It is a second, independent computation of the same outputs (the
canonical arrays hold TF1's run-time forget bias folded in the stored dtype, so a TF1
trace may differ from the outputs in the last bits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rnnbridge.engine import reference
from rnnbridge.engine.canonical import to_canonical
from rnnbridge.engine.conventions import native_letter
from rnnbridge.engine.model import Direction, Layer, NativeLayer

Axes = tuple[str, ...]


def _tf1_state(level: int, levels: int, direction: str, directions: int, part: str) -> str:
    where = ("_fw" if direction == "forward" else "_bw") if directions > 1 else ""
    cell = f"_cell_{level}" if levels > 1 else ""
    return f"state{where}{cell}" + (f"_{part}" if part else "")


def _keras_state(level: int, levels: int, direction: str, directions: int, part: str) -> str:
    head = f"l{level}/" if levels > 1 else ""
    return head + (direction if directions > 1 else "state") + f"_{part}"


def _flax_state(level: int, levels: int, direction: str, directions: int, part: str) -> str:
    where = ("_fw" if direction == "forward" else "_bw") if directions > 1 else ""
    return f"carry{where}" + (f"_{part}" if part else "")


def _haiku_state(level: int, levels: int, direction: str, directions: int, part: str) -> str:
    return f"state{level}" + {"h": "_hidden", "c": "_cell", "": ""}[part]


@dataclass(frozen=True)
class OutputLayout:
    """What a framework's recurrent layer returns.

    ``sequence``: the output sequence's name; ``time_major``: the framework's default axis
    order (``True``: [T, B, ...]); ``direction_axis``: directions on their own axis
    ([T, D, B, H], ONNX) instead of concatenated features; ``split_directions``: names of
    the two top-level output sequences when directions are independent stacks (TF1
    ``bidirectional_dynamic_rnn``); ``reading_order``: a layer that only reads backwards
    returns its sequence in reading order (Keras ``go_backwards``); ``states``: ``None``
    for stacked final states ``h``/``c`` [L·D, B, ·], else a function naming one cell's
    state part (``h`` or ``c``).
    """

    sequence: str
    time_major: bool
    h: str = "h_n"
    c: str = "c_n"
    direction_axis: bool = False
    split_directions: tuple[str, str] | None = None
    reading_order: bool = False
    states: Callable[[int, int, str, int, str], str] | None = None
    gru_state_part: str = "h"


OUTPUT_LAYOUTS: dict[str, OutputLayout] = {
    # dynamic_rnn(time_major=False): outputs [B, T, H]; state LSTMStateTuple(c, h) per cell
    "tf1": OutputLayout(
        "outputs", False, split_directions=("outputs_fw", "outputs_bw"), states=_tf1_state, gru_state_part=""
    ),
    # keras.layers.LSTM(return_sequences=True, return_state=True): [sequence, h, c]
    "keras": OutputLayout("sequence", False, reading_order=True, states=_keras_state),
    # torch.nn.LSTM(batch_first=False): output, (h_n, c_n)
    "pytorch": OutputLayout("output", True),
    # ONNX LSTM (layout=0): Y [T, D, B, H], Y_h, Y_c [D, B, H]
    "onnx": OutputLayout("Y", True, h="Y_h", c="Y_c", direction_axis=True),
}
GENERIC_LAYOUT = OutputLayout("y", True)
OUTPUT_LAYOUTS.update(
    {
        # paddle.nn.LSTM(time_major=False): outputs [B, T, D·H], (h, c) [L·D, B, H]
        "paddle": OutputLayout("outputs", False, h="h", c="c"),
        # a jax.lax.scan of an eqx cell over the batch-major input, final states stacked
        "equinox": OutputLayout("outputs", False, h="final_h", c="final_c"),
        # nn.RNN(cell, return_carry=True): carry (c, h) per cell, "carry" alone for a GRU
        "flax": OutputLayout("outputs", False, states=_flax_state, gru_state_part=""),
        # hk.dynamic_unroll of an hk.DeepRNN: one state per core (hidden, cell), a GRU's alone
        "haiku": OutputLayout("outputs", False, states=_haiku_state, gru_state_part=""),
        # not described yet (MLX returns every step's cell state too, OpenVINO [B, D, T, H]):
        # PyTorch's form under neutral names, stated here so that every framework has an entry
        "mlx": GENERIC_LAYOUT,
        "openvino": GENERIC_LAYOUT,
    }
)


def layout_of(native: NativeLayer) -> OutputLayout:
    return OUTPUT_LAYOUTS[native.convention.framework]


def forward(
    native: NativeLayer,
    x: np.ndarray,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    *,
    time_major: bool,
    dtype: np.dtype,
) -> tuple[dict[str, np.ndarray], dict[str, Axes]]:
    """Run ``native`` on the time-major ``x`` [T, B, I]; lay the outputs out time-major or not.

    ``h0``, ``c0``: initial states [L·D, B, Hout] / [L·D, B, H] (PyTorch's ``h_0`` layout),
    zeros if ``None``. Returns the framework's outputs by name and each one's axes.
    """
    y, h_n, c_n = reference.run(native, x, h0, c0, dtype=dtype.type)
    return framework_outputs(native, y, h_n, c_n, time_major=time_major)


def framework_outputs(
    native: NativeLayer, y: np.ndarray, h_n, c_n, *, time_major: bool
) -> tuple[dict[str, np.ndarray], dict[str, Axes]]:
    """``reference.run``'s results (``y`` [T, B, D·Hout] in input time) in the framework's layout."""
    layout = layout_of(native)
    directions = native.directions
    out: dict[str, np.ndarray] = {}
    axes: dict[str, Axes] = {}
    if layout.reading_order and directions == ("backward",):
        y = y[::-1]
    sequences = {layout.sequence: y}
    if layout.split_directions and native.config.independent_directions and len(directions) == 2:
        width = y.shape[-1] // 2
        sequences = dict(zip(layout.split_directions, (y[..., :width], y[..., width:])))
    for name, seq in sequences.items():
        if layout.direction_axis:
            seq = seq.reshape(*seq.shape[:2], len(directions), -1).transpose(0, 2, 1, 3)  # [T, D, B, H]
            out[name] = seq if time_major else seq.transpose(2, 0, 1, 3)
            axes[name] = ("T", "D", "B", "H") if time_major else ("B", "T", "D", "H")
        else:
            feature = "D*Hout" if len(sequences) == 1 else "Hout"
            out[name] = seq if time_major else np.swapaxes(seq, 0, 1)
            axes[name] = ("T", "B", feature) if time_major else ("B", "T", feature)
    states = [("h", h_n)] + ([("c", c_n)] if c_n is not None else [])
    for part, stacked in states:
        out.update(_states(native, layout, part, stacked, time_major, axes))
    return {k: np.ascontiguousarray(v) for k, v in out.items()}, axes


def _states(native: NativeLayer, layout: OutputLayout, part: str, stacked, time_major: bool, axes: dict) -> dict:
    levels, directions = native.num_levels, native.directions
    if layout.states is None:
        name = layout.h if part == "h" else layout.c
        if isinstance(stacked, list):  # levels of different sizes
            found = {f"{name}/{k}": a for k, a in enumerate(stacked)}
            axes.update(dict.fromkeys(found, ("B", "Hout" if part == "h" else "H")))
            return found
        if layout.direction_axis and not time_major:
            axes[name] = ("B", "L*D", "Hout" if part == "h" else "H")
            return {name: np.swapaxes(stacked, 0, 1)}
        axes[name] = ("L*D", "B", "Hout" if part == "h" else "H")
        return {name: stacked}
    found = {}
    for index, array in enumerate(stacked):
        level, direction = divmod(index, len(directions))
        label = part if native.convention.cell == "lstm" else layout.gru_state_part
        name = layout.states(level, levels, directions[direction], len(directions), label)
        found[name] = array
        axes[name] = ("B", "Hout" if part == "h" else "H")
    return found


# --- trace --------------------------------------------------------------------------------


def trace(
    native: NativeLayer, xs: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None, dtype: np.dtype
) -> dict[str, np.ndarray]:
    """Every step of every cell: ``l{k}/{direction}/pre/{g}``, ``.../act/{g}`` [T, B, H] per
    gate (the framework's letters), ``.../cell_state`` [T, B, H] (LSTM) and ``.../hidden``
    [T, B, Hout], all in input time order. ``xs`` is time-major."""
    layer = to_canonical(native)
    out: dict[str, np.ndarray] = {}
    inputs = dict.fromkeys(layer.directions, np.asarray(xs, dtype))
    index = 0
    for level in range(layer.num_levels):
        outputs = {}
        for direction in layer.directions:
            steps = _trace_cell(layer, level, direction, inputs[direction], h0, c0, index, dtype)
            index += 1
            for name, array in steps.items():
                key = name
                if name.startswith(("pre/", "act/")):
                    key = name[:4] + native_letter(native.convention, name[4:])
                out[f"l{level}/{direction}/{key}"] = array
            outputs[direction] = steps["hidden"]
        y = np.concatenate([outputs[d] for d in layer.directions], axis=-1)
        inputs = outputs if layer.config.independent_directions else dict.fromkeys(layer.directions, y)
    return out


def _initial(given, index: int, shape: tuple[int, int], dtype) -> np.ndarray:
    return np.zeros(shape, dtype) if given is None else np.asarray(given[index], dtype)


def _trace_cell(layer: Layer, level: int, direction: Direction, xs, h0, c0, index: int, dtype) -> dict[str, np.ndarray]:
    weights = {k: v.astype(dtype) for k, v in layer.cells[(level, direction)].items()}
    dims = layer.dims(level)
    batch = xs.shape[1]
    h = _initial(h0, index, (batch, dims["R"]), dtype)
    c = _initial(c0, index, (batch, dims["H"]), dtype)
    step = _lstm_step if layer.cell == "lstm" else _gru_step
    order = range(len(xs) - 1, -1, -1) if direction == "backward" else range(len(xs))
    records: list[dict[str, np.ndarray]] = [{}] * len(xs)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in order:
            record = step(layer, weights, xs[t], h, c)
            h, c = record["hidden"], record.get("cell_state", c)
            records[t] = record
    return {name: np.stack([r[name] for r in records]) for name in records[0]}


def _mv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("bi,hi->bh", x, w)


def _clip(v: np.ndarray, bound: float | None) -> np.ndarray:
    return v if bound is None else np.clip(v, -bound, bound)


def _lstm_step(layer: Layer, w: Mapping[str, np.ndarray], x, h, c) -> dict[str, np.ndarray]:
    cfg = layer.config
    gate, cand, out = (reference.activation(name) for name in cfg.activations)
    pre = {g: _mv(x, w["W_x" + g]) + _mv(h, w["W_h" + g]) + w["b_x" + g] + w["b_h" + g] for g in "ifgo"}
    if "p_i" in w:
        pre["i"] = pre["i"] + w["p_i"] * c
        pre["f"] = pre["f"] + w["p_f"] * c
    act = {"i": gate(_clip(pre["i"], cfg.clip)), "g": cand(_clip(pre["g"], cfg.clip))}
    act["f"] = 1.0 - act["i"] if cfg.input_forget else gate(_clip(pre["f"], cfg.clip))
    c = act["f"] * c + act["i"] * act["g"]
    if "p_o" in w:
        pre["o"] = pre["o"] + w["p_o"] * c
    act["o"] = gate(_clip(pre["o"], cfg.clip))
    hidden = act["o"] * out(c)
    if "W_proj" in w:
        hidden = _mv(hidden, w["W_proj"])
    record = {f"pre/{g}": pre[g] for g in "ifgo"} | {f"act/{g}": act[g] for g in "ifgo"}
    return record | {"cell_state": c, "hidden": hidden}


def _gru_step(layer: Layer, w: Mapping[str, np.ndarray], x, h, c) -> dict[str, np.ndarray]:
    cfg = layer.config
    gate, cand = (reference.activation(name) for name in cfg.activations[:2])
    pre = {g: _mv(x, w["W_x" + g]) + w["b_x" + g] + _mv(h, w["W_h" + g]) + w["b_h" + g] for g in "rz"}
    act = {g: gate(_clip(pre[g], cfg.clip)) for g in "rz"}
    if layer.reset_after:
        pre["n"] = _mv(x, w["W_xn"]) + w["b_xn"] + act["r"] * (_mv(h, w["W_hn"]) + w["b_hn"])
    else:
        pre["n"] = _mv(x, w["W_xn"]) + w["b_xn"] + _mv(act["r"] * h, w["W_hn"]) + w["b_hn"]
    act["n"] = cand(_clip(pre["n"], cfg.clip))
    hidden = act["z"] * h + (1.0 - act["z"]) * act["n"]
    return {f"pre/{g}": pre[g] for g in "rzn"} | {f"act/{g}": act[g] for g in "rzn"} | {"hidden": hidden}


# --- divergence ---------------------------------------------------------------------------


def first_divergence(
    computed: Mapping[str, np.ndarray],
    axes: Mapping[str, Axes],
    expected: Mapping[str, np.ndarray],
    tolerance: float,
    units: Sequence[int],
) -> dict[str, object]:
    """Where ``expected`` (the user's arrays, by output name) first departs from ``computed``.

    For each array both hold: the largest difference and, if it is over ``tolerance``, the
    first time step (along ``T``) where any difference is, and at that step the element of
    the largest difference, by axis (a ``D*Hout`` feature index is also told as direction
    and unit, from ``units``: each direction's output width). ``first`` names the array
    and step of the earliest divergence of all.
    """
    report: dict[str, object] = {"tolerance": tolerance, "arrays": {}, "first": None}
    arrays: dict[str, dict[str, object]] = {}
    for name, want in expected.items():
        if name not in computed:
            arrays[name] = {"status": "unknown", "detail": f"no output is named {name!r}; outputs: {sorted(computed)}"}
            continue
        got = computed[name]
        if np.shape(want) != got.shape:
            arrays[name] = {
                "status": "shape",
                "detail": f"expected shape {list(np.shape(want))}, computed {list(got.shape)}",
            }
            continue
        arrays[name] = _compare(got, np.asarray(want), axes[name], tolerance, units)
    report["arrays"] = arrays
    diverged = [(info.get("step"), name) for name, info in arrays.items() if info.get("status") == "diverges"]
    if diverged:
        _, name = min(diverged, key=lambda item: (item[0] is None, item[0] or 0))
        report["first"] = {"array": name, **arrays[name]}
    return report


def _compare(got: np.ndarray, want: np.ndarray, axes: Axes, tolerance: float, units: Sequence[int]) -> dict:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(diff.max()) if diff.size else 0.0
    if not worst > tolerance:
        return {"status": "matches", "max_abs_diff": worst}
    info: dict[str, object] = {"status": "diverges", "max_abs_diff": worst}
    region, step = diff, None
    if "T" in axes:
        t_axis = axes.index("T")
        over = np.moveaxis(diff > tolerance, t_axis, 0).reshape(diff.shape[t_axis], -1).any(axis=1)
        step = int(np.argmax(over))
        info["step"] = step
        region = np.take(diff, step, axis=t_axis)
    where = np.unravel_index(int(np.argmax(region)), region.shape)
    rest = [a for a in axes if a != "T"]
    position = dict(zip(rest, (int(i) for i in where)))
    if step is not None:
        position["T"] = step
    info["at"] = position
    full = tuple(position[a] for a in axes)
    info.update(expected=float(want[full]), computed=float(got[full]), abs_diff=float(diff[full]))
    if "D*Hout" in position and units:
        feature, direction = position["D*Hout"], 0
        while direction + 1 < len(units) and feature >= units[direction]:
            feature -= units[direction]
            direction += 1
        info.update(direction=direction, unit=feature)
    for name in ("H", "Hout"):
        if name in position:
            info["unit"] = position[name]
    return info
