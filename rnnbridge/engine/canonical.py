"""Native layers to canonical per-gate arrays and back: the two halves of every conversion.

``to_canonical`` cuts each stored tensor into its gate blocks (views where possible), fills
absent biases with zeros and folds the run-time forget bias into ``b_xf``. ``from_canonical``
writes the blocks of a target convention into freshly allocated tensors: a bias the target
keeps on one side only receives the sum ``b_x + b_h``, and the target's own run-time forget
bias is subtracted from its forget-gate bias. Both keep the source dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnbridge.engine.conventions import Convention
from rnnbridge.engine.layout import Order, Tensor, fuse_tensor, solve_dims, split_tensor
from rnnbridge.engine.model import CellKey, Layer, NativeLayer, cell_order
from rnnbridge.errors import InexactConversion, MalformedFile

_OPTIONAL_GROUPS = ("bias", "peephole", "projection")


def gate_letters(cell: str) -> str:
    return "ifgo" if cell == "lstm" else "rzn"


def to_canonical(native: NativeLayer) -> Layer:
    """The canonical ``Layer`` of a native one; ``b_xf`` absorbs ``config.forget_bias``."""
    conv = native.convention
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    has_bias = False
    for key, tensors in sorted(native.cells.items(), key=lambda item: cell_order(item[0])):
        present = _present_specs(conv, tensors, native.name, key)
        dims = _solve(present, tensors, native.name, key)
        gates: dict[str, np.ndarray] = {}
        for spec in present.values():
            gates.update(split_tensor(spec, tensors[spec.name], dims))
        has_bias |= any(spec.group == "bias" for spec in present.values())
        _fill_biases(gates, conv.cell, dims["H"])
        cells[key] = gates
    forget_bias = native.config.forget_bias
    if conv.cell == "lstm" and forget_bias:
        for gates in cells.values():
            gates["b_xf"] = gates["b_xf"] + gates["b_xf"].dtype.type(forget_bias)
    layer = Layer(
        name=native.name,
        cell=conv.cell,
        reset_after=conv.reset_after,
        config=native.config.with_(forget_bias=0.0),
        cells=cells,
        has_bias=has_bias,
        source=conv.key,
    )
    check_topology(layer)
    return layer


def from_canonical(
    layer: Layer, conv: Convention, forget_bias: float = 0.0, *, order: Order = "C"
) -> tuple[NativeLayer, list[str]]:
    """Fuse a canonical layer into ``conv``'s tensors; returns the layer and what was folded.

    ``forget_bias`` is the run-time constant the target adds to its forget gate (TF1); it is
    subtracted from the stored forget-gate bias so that the function stays the same.
    ``order="K"`` lets a matrix that is the transpose of its source come out in Fortran
    order, a plain copy instead of a transposition (see ``layout.fuse_tensor``): for
    outputs that keep the memory order, such as ``.npy``; the default gives C order.
    """
    groups = {"core"} | _groups_needed(layer, conv)
    specs = [spec for spec in conv.tensors if spec.group in groups]
    stored = {name for spec in specs for name in spec.names()}
    folded: set[str] = set()
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    for (level, direction), gates in sorted(layer.cells.items(), key=lambda item: cell_order(item[0])):
        arrays = _fold_biases(dict(gates), stored, layer, folded)
        if conv.cell == "lstm" and forget_bias and "b_xf" in stored:
            arrays["b_xf"] = _exact_fold(arrays["b_xf"], forget_bias, layer.name)
            folded.add(f"target forget_bias {forget_bias:g} subtracted from the forget-gate bias")
        dims = layer.dims(level)
        dtype = np.result_type(*arrays.values())
        cells[(level, direction)] = {spec.name: fuse_tensor(spec, arrays, dims, dtype, order) for spec in specs}
    config = layer.config.with_(forget_bias=forget_bias)
    return NativeLayer(layer.name, conv, config, cells), sorted(folded)


#: the largest change of a forget-gate pre-activation that folding a run-time constant into
#: the stored bias may cause (float32 rounding stays far below; float16 does not)
FOLD_TOLERANCE = 1e-6


def check_fold(layer: Layer, conv: Convention, forget_bias: float) -> None:
    """Refuse (``inexact_fold``) as ``from_canonical`` would, without converting: for
    /explain, which describes a conversion without making it."""
    if conv.cell == "lstm" and forget_bias:
        for cell in layer.cells.values():
            if "b_xf" in cell:
                _exact_fold(cell["b_xf"], forget_bias, layer.name)


def _exact_fold(bias: np.ndarray, forget_bias: float, layer: str) -> np.ndarray:
    """``bias − forget_bias`` in the bias' dtype, refused when the target's run-time
    ``+ forget_bias`` would not give the values back to within ``FOLD_TOLERANCE``
    (float16 rounds ``b − 1`` by up to 2⁻¹¹)."""
    constant = bias.dtype.type(forget_bias)
    folded = bias - constant
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs((folded + constant).astype(np.float64) - bias.astype(np.float64))
    if np.any(error[np.isfinite(error)] > FOLD_TOLERANCE):
        raise InexactConversion(
            f"layer {layer!r}: the target adds {forget_bias:g} to the forget gate at run time, and "
            f"{bias.dtype} cannot hold the stored forget-gate bias minus {forget_bias:g} closely enough "
            f"(off by up to {float(np.max(error[np.isfinite(error)])):.2g}); convert a float32 copy, or "
            "into a target without a run-time forget-gate constant",
            code="inexact_fold",
            layer=layer,
        )
    return folded


def _present_specs(conv: Convention, tensors: Mapping[str, np.ndarray], layer: str, key: CellKey) -> dict[str, Tensor]:
    known = {spec.name for spec in conv.tensors}
    where = f"layer {layer!r} level {key[0]} {key[1]}"
    for name in tensors:
        if name not in known:
            raise MalformedFile(f"{where}: {name!r} is not a tensor of {conv.native}", layer=layer, tensor=name)
    present = {spec.name: spec for spec in conv.tensors if spec.name in tensors}
    for spec in conv.tensors:
        if spec.group == "core" and spec.name not in present:
            raise MalformedFile(
                f"{where}: tensor {spec.name!r} of {conv.native} is missing", layer=layer, tensor=spec.name
            )
    for group in ("peephole",):
        members = [spec.name for spec in conv.tensors if spec.group == group]
        found = [name for name in members if name in present]
        if found and len(found) != len(members):
            missing = sorted(set(members) - set(found))
            raise MalformedFile(f"{where}: {group} tensors {missing} are missing", layer=layer, tensor=missing[0])
    return present


def _solve(present: dict[str, Tensor], tensors: Mapping[str, np.ndarray], layer: str, key: CellKey) -> dict[str, int]:
    try:
        return solve_dims(present, {name: tensors[name].shape for name in present})
    except MalformedFile as exc:
        raise MalformedFile(
            f"layer {layer!r} level {key[0]} {key[1]}: {exc.detail}", layer=layer, tensor=exc.tensor
        ) from None


def _fill_biases(gates: dict[str, np.ndarray], cell: str, units: int) -> None:
    dtype = gates["W_x" + gate_letters(cell)[0]].dtype
    for g in gate_letters(cell):
        for side in ("b_x", "b_h"):
            if side + g not in gates:
                gates[side + g] = np.zeros(units, dtype=dtype)


def _groups_needed(layer: Layer, conv: Convention) -> set[str]:
    groups = set()
    if layer.has_bias or "no_bias" not in conv.features:
        groups.add("bias")
    if layer.has_peepholes:
        groups.add("peephole")
    if layer.has_projection:
        groups.add("projection")
    return groups


def _fold_biases(
    arrays: dict[str, np.ndarray], stored: set[str], layer: Layer, folded: set[str]
) -> dict[str, np.ndarray]:
    """Move recurrent biases the target does not store into the input-side bias."""
    for g in gate_letters(layer.cell):
        recurrent = arrays.pop("b_h" + g)
        if "b_h" + g in stored:
            arrays["b_h" + g] = recurrent
        elif not np.any(recurrent):
            continue
        elif g == "n" and layer.reset_after:
            raise InexactConversion(
                f"layer {layer.name!r}: the target keeps no recurrent candidate bias, which a "
                "reset-after GRU applies inside the reset gate",
                code="gru_variant_mismatch",
                layer=layer.name,
            )
        elif "b_x" + g in stored:
            arrays["b_x" + g] = arrays["b_x" + g] + recurrent
            folded.add("input and recurrent biases summed into one")
        else:
            raise InexactConversion(
                f"layer {layer.name!r} has biases and the target stores none", code="bias_unsupported", layer=layer.name
            )
    return arrays


def check_topology(layer: Layer) -> None:
    """Every level has every direction, and reads what the level below it produces."""
    directions = layer.directions
    for level in range(layer.num_levels):
        for direction in directions:
            if (level, direction) not in layer.cells:
                raise MalformedFile(
                    f"layer {layer.name!r}: level {level} has no {direction} direction", layer=layer.name
                )
        if level == 0:
            continue
        below = layer.dims(level - 1)["R"]
        fan_in = below if layer.config.independent_directions else below * len(directions)
        for direction in directions:
            reads = layer.cells[(level, direction)]["W_x" + gate_letters(layer.cell)[0]].shape[1]
            if reads != fan_in:
                raise MalformedFile(
                    f"layer {layer.name!r}: level {level} {direction} reads {reads} inputs, but level "
                    f"{level - 1} produces {fan_in}",
                    layer=layer.name,
                )
