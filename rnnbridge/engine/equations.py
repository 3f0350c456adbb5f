"""A cell's equations, written with its framework's own gate letters.

One template per cell kind (LSTM; GRU reset-after or reset-before), filled from the
convention (gate letters from ``NATIVE_GATE_LETTERS``, the run-time forget bias) and the
layer's configuration (activations, clip, coupled input-forget gate, peepholes,
projection). Weights are named like /split's arrays, with the framework's letter:
TF1's ``W_xj`` is /split's ``W_xg``. Where a gate letter is ``c`` or ``h`` (Keras, ONNX),
the cell state and hidden state are written ``C`` and ``H``.
"""

from __future__ import annotations

from rnnbridge.engine.conventions import Convention, native_letter
from rnnbridge.engine.model import LayerConfig


def equations(conv: Convention, config: LayerConfig, *, peepholes: bool, projection: bool) -> list[str]:
    """The cell's update, one equation per line (``⊙``: elementwise product)."""
    letters = {g: native_letter(conv, g) for g in ("ifgo" if conv.cell == "lstm" else "rzn")}
    if conv.cell == "lstm":
        return _lstm(letters, config, config.forget_bias, peepholes, projection)
    return _gru(letters, config, bool(conv.reset_after))


def _states(letters: dict[str, str]) -> tuple[str, str]:
    used = set(letters.values())
    return ("H" if "h" in used else "h"), ("C" if "c" in used else "c")


def _act(name: str, inner: str, clip: float | None) -> str:
    if clip is not None:
        inner = f"clip({inner}, ±{clip:g})"
    return f"{name}({inner})"


def _affine(letter: str, h: str, *, peephole: str = "") -> str:
    text = f"W_x{letter}·x_t + W_h{letter}·{h}_(t-1) + b_x{letter} + b_h{letter}"
    return text + (f" + p_{letter} ⊙ {peephole}" if peephole else "")


def _lstm(
    letters: dict[str, str], config: LayerConfig, forget_bias: float, peepholes: bool, projection: bool
) -> list[str]:
    gate, cand, out = config.activations
    h, c = _states(letters)
    i, f, g, o = (letters[k] for k in "ifgo")
    previous, current = f"{c}_(t-1)", f"{c}_t"
    forget = _affine(f, h, peephole=previous if peepholes else "")
    note = ""
    if forget_bias:
        forget += " + forget_bias"
        note = f"   (forget_bias = {forget_bias:g}, added at run time, stored in no file)"
    lines = [f"{i} = {_act(gate, _affine(i, h, peephole=previous if peepholes else ''), config.clip)}"]
    lines.append(
        f"{f} = 1 - {i}   (coupled input-forget gate)"
        if config.input_forget
        else f"{f} = {_act(gate, forget, config.clip)}{note}"
    )
    lines.append(f"{g} = {_act(cand, _affine(g, h), config.clip)}")
    lines.append(f"{current} = {f} ⊙ {previous} + {i} ⊙ {g}")
    lines.append(f"{o} = {_act(gate, _affine(o, h, peephole=current if peepholes else ''), config.clip)}")
    if projection:
        lines += [f"m_t = {o} ⊙ {out}({current})", f"{h}_t = W_proj·m_t"]
    else:
        lines.append(f"{h}_t = {o} ⊙ {out}({current})")
    return lines


def _gru(letters: dict[str, str], config: LayerConfig, reset_after: bool) -> list[str]:
    gate, cand = config.activations[:2]
    h, _ = _states(letters)
    r, z, n = (letters[k] for k in "rzn")
    lines = [f"{r} = {_act(gate, _affine(r, h), config.clip)}", f"{z} = {_act(gate, _affine(z, h), config.clip)}"]
    if reset_after:
        inner = f"W_x{n}·x_t + b_x{n} + {r} ⊙ (W_h{n}·{h}_(t-1) + b_h{n})"
    else:
        inner = f"W_x{n}·x_t + b_x{n} + W_h{n}·({r} ⊙ {h}_(t-1)) + b_h{n}"
    lines.append(f"{n} = {_act(cand, inner, config.clip)}")
    lines.append(f"{h}_t = {z} ⊙ {h}_(t-1) + (1 - {z}) ⊙ {n}")
    return lines
