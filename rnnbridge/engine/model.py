"""The two shapes a recurrent layer takes inside rnnbridge.

``NativeLayer``: the layer as a framework stores it: per level and direction, the
convention's tensors by name (``weight_ih``, ``kernel``, ``gates/bias``, ONNX ``W`` with
the direction axis already taken off).

``Layer``: the canonical hub every conversion passes through: per level and direction,
the per-gate arrays ``W_x{g}`` [H, in], ``W_h{g}`` [H, R], ``b_x{g}``, ``b_h{g}`` [H],
``p_{g}`` [H], ``W_proj`` [P, H] (see ``rnnbridge.engine.layout``), with every run-time
constant already folded in, so that the arrays alone define the function.

A "layer" is one recurrent layer as its framework defines it: a TF1 cell scope (a
``MultiRNNCell`` stack or a bidirectional pair is one layer), a Keras layer (a
``Bidirectional`` wrapper is one layer with two directions), a PyTorch module (all its
levels and directions), an ONNX node. Levels are 0, 1, ...; level k > 0 reads the
concatenated forward | backward output of level k − 1, unless ``independent_directions``
(a TF1 bidirectional pair of two separate stacks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rnnbridge.engine.conventions import Convention

if TYPE_CHECKING:
    from rnnbridge.engine.facts import Assumption

Direction = Literal["forward", "backward"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "backward")
CellKey = tuple[int, Direction]
#: ``(level, direction, tensor)`` -> the array's name in the file it was read from
Origin = dict[tuple[int, Direction, str], str]


def cell_order(key: CellKey) -> tuple[int, int]:
    """Sort key of cells: by level, forward before backward (PyTorch's state_dict order)."""
    return key[0], DIRECTIONS.index(key[1])


@dataclass(frozen=True)
class LayerConfig:
    """What defines the layer's function beyond its arrays.

    ``activations``: (gates, candidate, cell output) for LSTM, (gates, candidate) for GRU,
    by canonical name (``rnnbridge.engine.conventions``). ``forget_bias``: the run-time
    constant the framework adds to the forget gate (TF1 cells); 0 in a canonical ``Layer``.
    ``clip``: ONNX ``clip``. ``input_forget``: ONNX coupled input-forget gate.
    ``assumed``: the facts taken from a documented default of the framework version that
    wrote the file (``rnnbridge.engine.facts.Assumption``), listed in the metadata.
    """

    activations: tuple[str, ...]
    forget_bias: float = 0.0
    clip: float | None = None
    input_forget: bool = False
    independent_directions: bool = False
    assumed: tuple[Assumption, ...] = ()

    def with_(self, **changes: Any) -> LayerConfig:
        return replace(self, **changes)


class _Cells:
    """What both layer shapes derive from ``cells[(level, direction)]``."""

    cells: dict[CellKey, dict[str, np.ndarray]]

    @property
    def num_levels(self) -> int:
        return 1 + max(level for level, _ in self.cells)

    @property
    def directions(self) -> tuple[Direction, ...]:
        present = {d for _, d in self.cells}
        return tuple(d for d in DIRECTIONS if d in present)

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(*(a for cell in self.cells.values() for a in cell.values()))


@dataclass
class NativeLayer(_Cells):
    """One layer in a framework's own tensors. ``cells[(level, direction)][tensor]``.

    ``origin`` maps ``(level, direction, tensor)`` to the array's name in the file it was
    read from, for messages and ``/inspect``.
    """

    name: str
    convention: Convention
    config: LayerConfig
    cells: dict[CellKey, dict[str, np.ndarray]]
    notes: list[str] = field(default_factory=list)
    origin: Origin = field(default_factory=dict)


@dataclass
class Layer(_Cells):
    """One layer in canonical per-gate arrays. ``cells[(level, direction)][name]``."""

    name: str
    cell: str  # "lstm" | "gru"
    reset_after: bool | None
    config: LayerConfig
    cells: dict[CellKey, dict[str, np.ndarray]]
    has_bias: bool = True
    source: str = ""  # convention key the layer was read from

    def dims(self, level: int) -> dict[str, int]:
        """Sizes of one level: H units, I input size, R recurrent size, P projection (0: none)."""
        gates = self.cells[(level, self.directions[0])]
        first = "W_xi" if self.cell == "lstm" else "W_xr"
        units, inputs = gates[first].shape
        proj = gates["W_proj"].shape[0] if "W_proj" in gates else 0
        return {"H": units, "I": inputs, "P": proj, "R": proj or units}

    @property
    def has_peepholes(self) -> bool:
        return any("p_i" in gates for gates in self.cells.values())

    @property
    def has_projection(self) -> bool:
        return any("W_proj" in gates for gates in self.cells.values())

    @property
    def reverse_only(self) -> bool:
        return self.directions == ("backward",)
