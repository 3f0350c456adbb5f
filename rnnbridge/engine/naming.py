"""Output names of a converted layer's tensors, and their inverse.

The convention's ``naming`` template names a tensor at one level and direction:

* PyTorch ``{prefix}{tensor}_l{level}{_reverse}`` (``weight_ih_l0``, ``bias_hh_l1_reverse``),
  cells ``{prefix}{tensor}``; ``prefix`` defaults to the layer name + ``.``;
* ONNX ``{layer}/l{level}/{W|R|B|P}``, both directions stacked on a leading axis;
* Keras and TF1 ``{layer}/l{level}/{direction}/{tensor}``;
* MLX ``{prefix}{tensor}`` like a PyTorch cell;
* Paddle ``{prefix}{level}.cell[_fw|_bw].{tensor}``;
* Haiku ``{prefix}lstm{_k}/linear/w``, the prefix defaulting to ``{layer}/~/``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnbridge.engine.conventions import FRAMEWORK_TABLE, Convention
from rnnbridge.engine.model import CellKey, Direction, NativeLayer, Origin, cell_order
from rnnbridge.errors import MalformedFile


def head(layer: str, conv: Convention, prefix: str | None = None) -> str:
    """How the output names of ``layer``'s tensors start: the framework's ``names_start``,
    or ``prefix`` where the framework lets a caller choose it."""
    framework = FRAMEWORK_TABLE[conv.framework]
    if prefix is not None and framework.prefix:
        return prefix
    return framework.names_start.format(layer=layer)


def level_suffix(level: int) -> str:
    """How auto-named modules tell levels apart: ``lstm``, ``lstm_1``, ``lstm_2`` (Haiku)."""
    return f"_{level}" if level else ""


def direction_suffix(direction: str, directions: tuple[str, ...]) -> str:
    """``_fw`` / ``_bw`` in a two-direction layer, nothing in a one-direction one (Paddle's
    ``cell_fw`` / ``cell_bw`` beside ``cell``)."""
    return "" if len(directions) == 1 else "_fw" if direction == "forward" else "_bw"


def output_key(conv: Convention, level: int, direction: str, directions: tuple[str, ...], tensor: str) -> str:
    """The output name of one stored tensor after the layer's ``head``, by the convention's
    ``naming`` template (directions stacked on an axis: the direction is not in the name)."""
    return conv.naming.format(
        level=level,
        level_suffix=level_suffix(level),
        direction_suffix=direction_suffix(direction, directions),
        direction=direction,
        tensor=tensor,
        reverse="_reverse" if direction == "backward" else "",
    )


def tensor_names(layer: NativeLayer, prefix: str | None = None, *, consume: bool = False) -> dict[str, np.ndarray]:
    """The layer's tensors under their output names, in level, direction, tensor order.

    Conventions that stack directions (ONNX) get one new array per level and tensor;
    ``consume=True`` releases each direction's array as soon as it is stacked.
    """
    conv = layer.convention
    start = head(layer.name, conv, prefix)
    names: dict[str, np.ndarray] = {}
    if conv.stack_directions:
        for level in range(layer.num_levels):
            for spec in conv.tensors:
                stacked = _stack(layer, level, spec.name, consume)
                if stacked is not None:
                    names[start + conv.naming.format(level=level, tensor=spec.name)] = stacked
        return names
    for (level, direction), tensors in sorted(layer.cells.items(), key=lambda item: cell_order(item[0])):
        for spec in conv.tensors:
            if spec.name in tensors:
                names[start + output_key(conv, level, direction, layer.directions, spec.name)] = tensors[spec.name]
    return names


def _stack(layer: NativeLayer, level: int, tensor: str, consume: bool) -> np.ndarray | None:
    cells = [layer.cells[(level, d)] for d in layer.directions if tensor in layer.cells[(level, d)]]
    if not cells:
        return None
    first = cells[0][tensor]
    stacked = np.empty((len(cells), *first.shape), dtype=first.dtype)
    for d, cell in enumerate(cells):
        stacked[d] = cell.pop(tensor) if consume else cell[tensor]
    return stacked


def parse_names(
    arrays: Mapping[str, np.ndarray],
    conv: Convention,
    start: str,
    num_levels: int,
    directions: tuple[Direction, ...],
) -> tuple[dict[CellKey, dict[str, np.ndarray]], Origin]:
    """Inverse of ``tensor_names``: the cells of one layer, and where each tensor came from."""
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    origin: Origin = {}
    for level in range(num_levels):
        for spec in conv.tensors:
            if conv.stack_directions:
                name = start + conv.naming.format(level=level, tensor=spec.name)
                if name in arrays:
                    stacked = arrays[name]
                    if stacked.shape[:1] != (len(directions),):
                        raise MalformedFile(f"{name!r} should have {len(directions)} direction(s) first", tensor=name)
                    for d, direction in enumerate(directions):
                        cells.setdefault((level, direction), {})[spec.name] = stacked[d]
                        origin[(level, direction, spec.name)] = name
                continue
            for direction in directions:
                reverse = "_reverse" if direction == "backward" else ""
                key = conv.naming.format(
                    level=level,
                    level_suffix=level_suffix(level),
                    direction_suffix=direction_suffix(direction, directions),
                    direction=direction,
                    tensor=spec.name,
                    reverse=reverse,
                )
                name = start + key
                if name in arrays:
                    cells.setdefault((level, direction), {})[spec.name] = arrays[name]
                    origin[(level, direction, spec.name)] = name
    return cells, origin
