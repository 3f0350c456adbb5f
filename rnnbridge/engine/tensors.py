"""The description of one stored tensor as a grid of canonical gate blocks: pure data.

The registry (``rnnbridge.engine.conventions``) describes every framework's tensors with
``Tensor``; ``rnnbridge.engine.layout`` cuts and fuses arrays by these descriptions. This
module imports nothing beyond the standard library, so that the registry can be read (the
CLI's choices, the service's enums) without loading NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

#: canonical shape of every part, in symbols: H units, I input size, R recurrent size, P projection size
PART_SHAPES: dict[str, tuple[str, ...]] = {
    "W_x": ("H", "I"),
    "W_h": ("H", "R"),
    "b_x": ("H",),
    "b_h": ("H",),
    "p_": ("H",),
    "W_proj": ("P", "H"),
}

Transform = Literal["N", "T", "R"]
Group = Literal["core", "bias", "peephole", "projection"]


@dataclass(frozen=True)
class Tensor:
    """One stored tensor, described as a grid of canonical blocks.

    Parameters
    ----------
    name : the tensor's name below the cell scope or without the level suffix
        (``kernel``, ``gates/bias``, ``weight_ih``, ``W``).
    gates : gate letters along the gate axis, in stored order (``"igfo"``); ``""`` for a
        tensor that is one ungated block (``W_proj``).
    parts : parts along the other axis (matrices) or concatenated / stacked (vectors).
    gate_axis : 0 for row form ``[G*H, in]``, 1 for column form ``[in, G*H]``.
    transforms : per part, ``N``/``T``/``R``; default ``N`` in row form, ``T`` in column form.
    rows : vectors only: stack the parts as rows of a 2-D tensor instead of concatenating.
    group : ``core`` tensors are required; the others are optional and their absence
        means the layer has no biases, no peepholes or no projection.
    negated : gate letters whose blocks are stored negated (Haiku's GRU keeps the update
        gate's complement: its blocks are the canonical ``z`` blocks times −1, exactly).
    """

    name: str
    gates: str
    parts: tuple[str, ...]
    gate_axis: int = 0
    transforms: tuple[Transform, ...] | None = None
    rows: bool = False
    group: Group = "core"
    negated: str = ""

    @property
    def is_vector(self) -> bool:
        return len(PART_SHAPES[self.parts[0]]) == 1

    @property
    def ndim(self) -> int:
        return 2 if (self.rows or not self.is_vector) else 1

    def transform(self, part_index: int) -> Transform:
        if self.transforms is not None:
            return self.transforms[part_index]
        return "T" if self.gate_axis == 1 and not self.is_vector else "N"

    def stored_negated(self, name: str) -> bool:
        """Whether the block of canonical array ``name`` is stored negated."""
        return bool(self.negated and self.gates) and name[-1] in self.negated

    def names(self) -> list[str]:
        """Canonical names of the blocks, parts outermost."""
        return [part + gate for part in self.parts for gate in (self.gates or [""])]

    def blocks(self, dims: Mapping[str, int]) -> Iterator[tuple[str, tuple[slice, ...], Transform]]:
        """Yield ``(canonical name, index into the stored tensor, transform)`` per block."""
        gate_len = dims["P"] if self.gates == "" else dims["H"]
        offset = 0
        for k, part in enumerate(self.parts):
            width = 1 if self.is_vector else dims[PART_SHAPES[part][1]]
            for j, gate in enumerate(self.gates or [""]):
                if self.ndim == 1:
                    index: tuple[slice, ...] = (slice(offset, offset + gate_len),)
                    offset += gate_len
                else:
                    along_gates = slice(j * gate_len, (j + 1) * gate_len)
                    along_parts = slice(offset, offset + width)
                    index = (along_gates, along_parts) if self.gate_axis == 0 else (along_parts, along_gates)
                yield part + gate, index, self.transform(k)
            if self.ndim == 2:
                offset += width

    def shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """The stored shape for the given sizes."""
        gate_len = dims["P"] if self.gates == "" else dims["H"] * len(self.gates)
        if self.ndim == 1:
            return (gate_len * len(self.parts),)
        if self.is_vector:
            across = len(self.parts)
        else:
            across = sum(dims[PART_SHAPES[part][1]] for part in self.parts)
        return (gate_len, across) if self.gate_axis == 0 else (across, gate_len)

    def equations(self) -> list[tuple[int, dict[str, int]]]:
        """Per axis, the symbols whose (weighted) sum is that axis' length."""
        gate_syms = {"P": 1} if self.gates == "" else {"H": len(self.gates)}
        if self.ndim == 1:
            return [(0, {k: v * len(self.parts) for k, v in gate_syms.items()})]
        across: dict[str, int] = {}
        if not self.is_vector:
            for part in self.parts:
                sym = PART_SHAPES[part][1]
                across[sym] = across.get(sym, 0) + 1
        eqs = [(self.gate_axis, gate_syms)]
        if across:
            eqs.append((1 - self.gate_axis, across))
        return eqs
