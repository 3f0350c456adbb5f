"""Where every gate lives: the /explain document of one layer.

Everything here is derived from the registry's layout data (``Tensor.blocks`` of each
convention's tensors, ``Convention.forget_bias``, ``NATIVE_GATE_LETTERS``), never from a
framework's name, so a convention added to the registry is explained for free.

For each cell (level, direction) of a layer:

* ``gates``: every per-gate array of /split (``W_x{g}``, ``W_h{g}``, ``b_x{g}``, ``b_h{g}``,
  ``p_{g}``, ``W_proj``, canonical letters ``i f g o`` / ``r z n``), as an expression over the
  stored tensors: ``kernel[:3, 10:15].T`` (a column-form block, transposed to ``[H, in]``),
  ``bias[10:15] + np.float32(1.0)`` (TF1's run-time forget bias folded in, as /split does),
  ``np.zeros(5, dtype=np.float32)`` (a bias the file does not store);
* ``target`` (with a target convention): for every tensor of the target, each block as an
  assignment ``new_weight_ih[5:10, :] = kernel[:3, 10:15].T`` whose right-hand side is a sum of
  source slices and constants, in the order /convert computes it.

Expressions name the stored tensors by identifiers (``kernel``, ``gates_kernel``; with a
level / direction suffix when the layer has several cells); ``variables`` maps each
identifier to the tensor's name in the file. ONNX tensors keep their leading direction
axis, so their expressions index it (``W[1, :5, :]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnbridge.engine import naming
from rnnbridge.engine.canonical import gate_letters
from rnnbridge.engine.conventions import Convention, native_letter
from rnnbridge.engine.expressions import DIALECTS, Expr, Index, Slice, empty, identifier, render_index
from rnnbridge.engine.layout import solve_dims
from rnnbridge.engine.model import CellKey, Layer, NativeLayer, cell_order
from rnnbridge.engine.tensors import PART_SHAPES, Tensor
from rnnbridge.errors import InexactConversion


@dataclass(frozen=True)
class Cell:
    """What the gate map of one cell needs: its sizes, stored tensors and identifiers."""

    key: CellKey
    dims: dict[str, int]
    present: tuple[Tensor, ...]
    variables: dict[str, str]  # tensor role -> identifier in the expressions
    stacked: int | None  # position on a leading direction axis (ONNX), else None
    dtype: str
    directions: int = 1


def cells_of(native: NativeLayer) -> list[Cell]:
    """The cells of a layer, in level, direction order."""
    conv = native.convention
    several_levels = native.num_levels > 1
    several_directions = len(native.directions) > 1 and not conv.stack_directions
    cells = []
    for key, tensors in sorted(native.cells.items(), key=lambda item: cell_order(item[0])):
        present = tuple(spec for spec in conv.tensors if spec.name in tensors)
        dims = solve_dims({s.name: s for s in present}, {s.name: tensors[s.name].shape for s in present})
        suffix = (f"_l{key[0]}" if several_levels else "") + (f"_{key[1][:1]}w" if several_directions else "")
        variables = {spec.name: identifier(spec.name) + suffix for spec in present}
        stacked = native.directions.index(key[1]) if conv.stack_directions else None
        dtype = np.result_type(*tensors.values()).name
        cells.append(Cell(key, dims, present, variables, stacked, dtype, len(native.directions)))
    return cells


def file_names(native: NativeLayer, cells: list[Cell]) -> dict[str, str]:
    """Identifier -> the tensor's name in the file (``origin``), else its output name."""
    conv, out = native.convention, {}
    for cell in cells:
        level, direction = cell.key
        for spec in cell.present:
            default = naming.head(native.name, conv) + naming.output_key(
                conv, level, direction, native.directions, spec.name
            )
            out[cell.variables[spec.name]] = native.origin.get((level, direction, spec.name), default)
    return out


def _stored_shape(spec: Tensor, cell: Cell) -> tuple[int, ...]:
    shape = spec.shape(cell.dims)
    return shape if cell.stacked is None else (cell.directions, *shape)


def _place(spec: Tensor, index: tuple[slice, ...], stacked: int | None) -> Index:
    """A block's index into its stored tensor: a vector stacked as rows (Keras' GRU bias
    [2, 3H]) is indexed by its row; a tensor with a leading direction axis (ONNX) by the
    direction's position first."""
    out: Index = index
    if spec.is_vector and spec.ndim == 2:
        along_parts = 1 - spec.gate_axis
        out = tuple(s.start if axis == along_parts else s for axis, s in enumerate(index))
    return out if stacked is None else (stacked, *out)


def canonical_shape(name: str, dims: Mapping[str, int]) -> tuple[int, ...]:
    """The shape of canonical array ``name`` (``W_xi`` [H, I], ``b_hf`` [H], ``W_proj`` [P, H])."""
    part = name if name == "W_proj" else name[:-1]
    return tuple(dims[sym] for sym in PART_SHAPES[part])


def source_exprs(cell: Cell, cell_type: str, forget_bias: float) -> dict[str, Expr]:
    """Every canonical array of the cell as an expression over its stored tensors (/split)."""
    exprs: dict[str, Expr] = {}
    for spec in cell.present:
        stored = _stored_shape(spec, cell)
        for name, index, transform in spec.blocks(cell.dims):
            shape = canonical_shape(name, cell.dims)
            as_stored = shape[::-1] if transform in ("T", "R") else shape
            block = Slice(cell.variables[spec.name], _place(spec, index, cell.stacked), stored, shape=as_stored)
            expr = Expr(block.then(transform, shape), cell.dtype)
            exprs[name] = expr.negate() if spec.stored_negated(name) else expr
    for g in gate_letters(cell_type):
        for side in ("b_x", "b_h"):
            exprs.setdefault(side + g, Expr(Slice(None, shape=(cell.dims["H"],)), cell.dtype))
    if cell_type == "lstm" and forget_bias:
        exprs["b_xf"] = exprs["b_xf"].plus(float(forget_bias))
    return exprs


def _gate_entry(name: str, expr: Expr, variables: Mapping[str, str], orientation: str) -> dict[str, Any]:
    if orientation == "in_out" and len(expr.first.shape) == 2:
        expr = expr.then("T")
    slices = expr.slices()
    return {
        "array": name,
        "shape": list(expr.first.shape),
        "from": [
            {
                "tensor": variables.get(s.variable or "", None),
                "variable": s.variable,
                "index": render_index(s.index, s.stored_shape) if s.variable else None,
                "transposed": s.transposed,
                "reshaped": list(s.reshape) if s.reshape else None,
            }
            for s in slices
        ],
        "constants": expr.constants(),
        **{dialect: expr.render(dialect) for dialect in DIALECTS},
    }


def gate_map(
    native: NativeLayer, *, orientation: str = "out_in", split_prefix: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The per-cell gate maps of a layer and its ``variables`` (identifier -> file name)."""
    cells = cells_of(native)
    variables = file_names(native, cells)
    prefix = native.name if split_prefix is None else split_prefix
    return [_cell_doc(native, cell, variables, orientation, prefix) for cell in cells], variables


def _cell_doc(
    native: NativeLayer, cell: Cell, variables: Mapping[str, str], orientation: str, prefix: str
) -> dict[str, Any]:
    """One cell: its sizes, its stored tensors and every /split array's expression."""
    conv = native.convention
    level, direction = cell.key
    exprs = source_exprs(cell, conv.cell, native.config.forget_bias)
    gates = []
    for name in _canonical_order(exprs, conv.cell):
        entry = _gate_entry(name, exprs[name], variables, orientation)
        entry["gate"] = _gate_of(name)
        entry["letter"] = None if entry["gate"] is None else native_letter(conv, entry["gate"])
        entry["split_name"] = f"{prefix}/l{level}/{direction}/{name}"
        gates.append(entry)
    tensors = [
        {
            "role": spec.name,
            "variable": cell.variables[spec.name],
            "name": variables[cell.variables[spec.name]],
            "shape": list(_stored_shape(spec, cell)),
            "gate_axis": spec.gate_axis + (cell.stacked is not None),
            "gates": [native_letter(conv, g) for g in spec.gates],
        }
        for spec in cell.present
    ]
    sizes = {k: cell.dims[k] for k in ("I", "H", "P")}
    return {
        "level": level,
        "direction": direction,
        "sizes": sizes,
        "dtype": cell.dtype,
        "tensors": tensors,
        "gates": gates,
    }


def _gate_of(name: str) -> str | None:
    return None if name == "W_proj" else name[-1]


def _canonical_order(exprs: Mapping[str, Expr], cell_type: str) -> list[str]:
    order = [p + g for p in ("W_x", "W_h", "b_x", "b_h", "p_") for g in gate_letters(cell_type)] + ["W_proj"]
    return [name for name in order if name in exprs]


# --- target recipes -----------------------------------------------------------------------


def recipe(
    native: NativeLayer,
    layer: Layer,
    conv: Convention,
    forget_bias: float,
    *,
    prefix: str | None = None,
    data: bool = True,
) -> list[dict[str, Any]]:
    """How /convert assembles each tensor of ``conv`` from the source's stored tensors.

    Mirrors ``canonical.from_canonical``: the target's tensor groups, a recurrent bias the
    target does not store summed into the input bias (skipped, as /convert skips it, when
    ``data`` and that bias is all zeros), the target's run-time forget bias subtracted.
    Returns one entry per output tensor: its name, shape, dtype and assignments.
    """
    groups = {"core"} | _groups_needed(layer, conv)
    specs = [spec for spec in conv.tensors if spec.group in groups]
    stored = {name for spec in specs for name in spec.names()}
    start = naming.head(layer.name, conv, prefix)
    tensors: dict[str, dict[str, Any]] = {}
    for cell in cells_of(native):
        level, direction = cell.key
        exprs = source_exprs(cell, native.convention.cell, native.config.forget_bias)
        exprs = _fold(exprs, stored, layer, cell, native.cells[cell.key] if data else None)
        if conv.cell == "lstm" and forget_bias and "b_xf" in stored:
            exprs["b_xf"] = exprs["b_xf"].plus(float(forget_bias), "-")
        stacked = native.directions.index(direction) if conv.stack_directions else None
        for spec in specs:
            name = start + naming.output_key(conv, level, direction, native.directions, spec.name)
            entry = tensors.setdefault(name, _target_tensor(name, spec, conv, cell, stacked, len(native.directions)))
            for block, index, transform in spec.blocks(cell.dims):
                place = render_index(_place(spec, index, stacked), tuple(entry["shape"]))
                expr = exprs[block].then(transform)
                entry["blocks"].append(
                    _block_doc(cell, block, place, expr.negate() if spec.stored_negated(block) else expr)
                )
    return list(tensors.values())


def _target_tensor(
    name: str, spec: Tensor, conv: Convention, cell: Cell, stacked: int | None, directions: int
) -> dict[str, Any]:
    shape = list(spec.shape(cell.dims))
    return {
        "name": name,
        "role": spec.name,
        "variable": "new_" + identifier(spec.name),
        "shape": shape if stacked is None else [directions, *shape],
        "dtype": cell.dtype,
        "gate_axis": spec.gate_axis + (stacked is not None),
        "gates": [native_letter(conv, g) for g in spec.gates],
        "blocks": [],
    }


def _block_doc(cell: Cell, array: str, index: str, expr: Expr) -> dict[str, Any]:
    """One assignment ``variable[index] = expr`` of a target tensor."""
    slices = expr.slices()
    return {
        "level": cell.key[0],
        "direction": cell.key[1],
        "array": array,
        "gate": _gate_of(array),
        "index": index,
        "from": [s.variable for s in slices if s.variable],
        "transposed": any(s.transposed for s in slices),
        "summed": len(slices) > 1,
        "constants": expr.constants(),
        **{dialect: expr.render(dialect) for dialect in DIALECTS},
    }


def _groups_needed(layer: Layer, conv: Convention) -> set[str]:
    """The optional tensor groups the target writes (as ``canonical.from_canonical``)."""
    groups = set()
    if layer.has_bias or "no_bias" not in conv.features:
        groups.add("bias")
    if layer.has_peepholes:
        groups.add("peephole")
    if layer.has_projection:
        groups.add("projection")
    return groups


def _fold(
    exprs: dict[str, Expr], stored: set[str], layer: Layer, cell: Cell, tensors: Mapping[str, np.ndarray] | None
) -> dict[str, Expr]:
    """Recurrent biases the target does not store, summed into the input-side bias.

    With the cell's ``tensors``, a recurrent bias that is all zeros is left out, as
    /convert leaves it out (adding it would turn a ``-0.0`` into ``0.0``).
    """
    roles = {variable: role for role, variable in cell.variables.items()}
    out = dict(exprs)
    for g in gate_letters(layer.cell):
        recurrent = out.pop("b_h" + g)
        piece = recurrent.first
        if "b_h" + g in stored:
            out["b_h" + g] = recurrent
            continue
        if piece.variable is None:
            continue
        if tensors is not None:
            index = piece.index if cell.stacked is None else piece.index[1:]
            if not np.any(tensors[roles[piece.variable]][index]):
                continue
        if g == "n" and layer.reset_after:
            raise InexactConversion(
                f"layer {layer.name!r}: the target keeps no recurrent candidate bias, which a "
                "reset-after GRU applies inside the reset gate",
                code="gru_variant_mismatch",
                layer=layer.name,
            )
        if "b_x" + g not in stored:
            raise InexactConversion(
                f"layer {layer.name!r} has biases and the target stores none", code="bias_unsupported", layer=layer.name
            )
        out["b_x" + g] = out["b_x" + g].plus(piece)
    return out


# --- snippets -----------------------------------------------------------------------------

_IMPORTS = {
    "numpy": "import numpy as np",
    "torch": "import torch",
    "tensorflow": "import numpy as np\nimport tensorflow as tf",
}


def split_snippet(cells: list[dict[str, Any]], variables: Mapping[str, str], dialect: str) -> str:
    """A ready-to-paste program cutting the fused tensors into ``gates[...]``, in ``dialect``."""
    lines = [_IMPORTS[dialect], ""]
    lines.append("# the layer's stored tensors, as you loaded them:")
    shapes = {t["variable"]: t["shape"] for cell in cells for t in cell["tensors"]}
    for variable, name in variables.items():
        lines.append(f"# {variable} = ...  # {name!r} {shapes.get(variable)}")
    lines += ["", "gates = {}"]
    for cell in cells:
        for gate in cell["gates"]:
            lines.append(f"gates[{gate['split_name']!r}] = {gate[dialect]}")
    return "\n".join(lines) + "\n"


def target_snippet(tensors: list[dict[str, Any]], dialect: str) -> str:
    """A program assembling every target tensor from the source's stored tensors."""
    lines = [_IMPORTS[dialect], "", "out = {}"]
    for tensor in tensors:
        var = tensor["variable"]
        lines.append(empty(var, tuple(tensor["shape"]), tensor["dtype"], dialect))
        for block in tensor["blocks"]:
            lines.append(f"{var}{block['index']} = {block[dialect]}")
        final = f"tf.constant({var})" if dialect == "tensorflow" else var
        lines.append(f"out[{tensor['name']!r}] = {final}")
    return "\n".join(lines) + "\n"
