"""The importable Python API: read a file, inspect it, split it, convert it.

The HTTP routes and the CLI are thin translations of these four functions::

    >>> from rnnbridge import pipeline
    >>> model = pipeline.read(["model.h5"])
    >>> pipeline.inspect(model)["layers"][0]["convention"]
    'keras.lstm'
    >>> result = pipeline.convert(model, "pytorch")
    >>> sorted(result.arrays)[:2]
    ['lstm.bias_hh_l0', 'lstm.bias_ih_l0']

Nothing here knows about HTTP. Errors are ``rnnbridge.errors.RnnBridgeError`` subclasses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnbridge import discovery, formats
from rnnbridge.describe import describe_config, describe_layer, module_recipe
from rnnbridge.engine import canonical, exactness, naming, verify
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORK_TABLE, FRAMEWORKS, TARGET_FRAMEWORKS, Convention
from rnnbridge.engine.model import CellKey, Layer, NativeLayer, cell_order
from rnnbridge.errors import InvalidField, LayerNotFound
from rnnbridge.formats.base import InputFile, Limits

Orientation = Literal["out_in", "in_out"]
OutputFormat = Literal["npz", "json", "safetensors", "h5"]

#: ``convert(..., consume=True)`` converts layers of more weights than this one cell at a time
BY_CELL_ABOVE = 2**22


@dataclass
class Model:
    """The recurrent layers found in an upload, in their native form."""

    format: str
    layers: list[NativeLayer]
    other_tensors: int
    notes: list[str] = field(default_factory=list)
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    bfloat16: set[str] = field(default_factory=set)  # file tensors stored as bfloat16

    def stored_as_bfloat16(self, layer: NativeLayer) -> bool:
        """Whether every tensor of ``layer`` was bfloat16 in the file (now widened to float32)."""
        return bool(layer.origin) and set(layer.origin.values()) <= self.bfloat16


@dataclass
class Result:
    """Named output arrays and the JSON-able metadata that travels with them."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def read(
    files: Sequence[str | os.PathLike[str] | InputFile],
    *,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
) -> Model:
    """Read an upload (one or several files) and find its recurrent layers.

    ``source`` (a framework of ``FRAMEWORKS``) is required for array-only inputs (npz,
    JSON) and checked against the file otherwise; ``direction`` and ``reset_after`` give
    what bare arrays cannot say (ONNX ``W`` of one direction, a Keras GRU bias).
    """
    if source is not None and source not in FRAMEWORKS:
        raise InvalidField(f"source must be one of {list(FRAMEWORKS)}, not {source!r}", field="source")
    if direction not in (None, "forward", "reverse", "backward"):
        raise InvalidField(f"direction must be forward or reverse, not {direction!r}", field="direction")
    direction = "reverse" if direction == "backward" else direction
    inputs = [f if isinstance(f, InputFile) else InputFile(Path(f).name, Path(f)) for f in files]
    weights = formats.read(inputs, limits or Limits())
    found = discovery.find_layers(weights, source=source, direction=direction, reset_after=reset_after)
    return Model(
        format=weights.format,
        layers=found.layers,
        other_tensors=found.other_tensors,
        notes=weights.notes + found.notes,
        unsupported=found.unsupported,
        bfloat16=weights.bfloat16,
    )


def inspect(model: Model) -> dict[str, Any]:
    """The ``/inspect`` document: every recurrent layer with its convention, sizes and tensors."""
    return {
        "format": model.format,
        "layers": [describe_layer(layer) for layer in model.layers],
        "unsupported_layers": model.unsupported,
        "other_tensors": model.other_tensors,
        "notes": model.notes,
    }


def split(
    model: Model,
    *,
    layer: str | None = None,
    source_forget_bias: float | None = None,
    orientation: Orientation = "out_in",
) -> Result:
    """Per-gate arrays ``{layer}/l{k}/{direction}/{name}`` of the chosen layers.

    Names: ``W_x{g}``, ``W_h{g}``, ``b_x{g}``, ``b_h{g}`` for gates ``i f g o`` (LSTM) or
    ``r z n`` (GRU), ``p_{g}`` peepholes, ``W_proj``. ``orientation="out_in"`` gives
    matrices for ``W · x`` ([H, in]); ``"in_out"`` their transposes, for ``x · W``. A TF1
    run-time forget bias is folded into ``b_xf``.
    """
    if orientation not in ("out_in", "in_out"):
        raise InvalidField(f"orientation must be 'out_in' or 'in_out', not {orientation!r}", field="orientation")

    def split_layer(native: NativeLayer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        canon = canonical.to_canonical(native)
        arrays = {}
        for (level, direction), gates in sorted(canon.cells.items(), key=lambda item: cell_order(item[0])):
            for name, array in gates.items():
                if orientation == "in_out" and array.ndim == 2:
                    array = array.T
                arrays[f"{canon.name}/l{level}/{direction}/{name}"] = array
        return arrays, _split_meta(native, canon, orientation)

    return _assemble(model, layer, source_forget_bias, split_layer)


def convert(
    model: Model,
    target: str,
    *,
    layer: str | None = None,
    source_forget_bias: float | None = None,
    target_forget_bias: float | None = None,
    verify_result: bool = True,
    prefix: str | None = None,
    order: Literal["C", "K"] = "C",
    consume: bool = False,
) -> Result:
    """Re-fuse the chosen layers in ``target``'s convention, refusing inexact conversions.

    Output names: PyTorch ``{prefix}{state_dict key}`` (``prefix`` defaults to the layer
    name + "."); ONNX ``{layer}/l{k}/{W|R|B|P}`` with the direction axis first; Keras and
    TF1 ``{layer}/l{k}/{direction}/{tensor}``.

    ``order="K"`` lets a matrix that is its source's transpose come out in Fortran order
    (a plain copy instead of a transposition), for outputs that keep the memory order (npz,
    JSON); the default gives C order. ``consume=True`` hands the model's arrays over to the
    conversion: a large layer is then converted and verified one cell (level, direction) at
    a time, each source cell released as soon as its target exists, so that the source and
    the result are never both whole in memory. The model cannot be used again after that.
    """
    if target not in TARGET_FRAMEWORKS:
        raise InvalidField(f"target must be one of {list(TARGET_FRAMEWORKS)}, not {target!r}", field="target")
    if prefix is not None and not FRAMEWORK_TABLE[target].prefix:
        takers = [key for key, framework in FRAMEWORK_TABLE.items() if framework.prefix]
        raise InvalidField(f"prefix applies to target={' or '.join(takers)} only", field="prefix")
    forbids = FRAMEWORK_TABLE[target].prefix_forbids
    if prefix and (
        any(c in prefix for c in forbids)
        or any(ord(c) < 32 for c in prefix)
        or ".." in prefix.split("/")
        or len(prefix) > 256
    ):
        shown = ", ".join(repr(c) for c in forbids)
        raise InvalidField(f"prefix starts every output name: no {shown}, '..' or control characters", field="prefix")

    def convert_layer(native: NativeLayer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        canon = canonical.to_canonical(native)
        conv = exactness.select_target(canon, target)
        exactness.check(canon, conv)
        forget_bias = _target_forget_bias(conv, target_forget_bias, native.name)
        if consume and _weights(native) > BY_CELL_ABOVE:
            del canon  # its views would keep every source cell alive
            out, folded, report = _convert_by_cell(native, conv, forget_bias, order, verify_result)
        else:
            out, folded = canonical.from_canonical(canon, conv, forget_bias, order=order)
            report = verify.verify(native, out) if verify_result else None
        meta = _convert_meta(native, out, folded, report, naming.head(out.name, out.convention, prefix))
        arrays = naming.tensor_names(out, prefix, consume=consume)  # last: it may empty ``out``
        meta["tensors"] = list(arrays)
        return arrays, meta

    return _assemble(model, layer, source_forget_bias, convert_layer, target=target)


def _assemble(
    model: Model,
    layer: str | None,
    source_forget_bias: float | None,
    per_layer: Callable[[NativeLayer], tuple[dict[str, np.ndarray], dict[str, Any]]],
    **head: Any,
) -> Result:
    """Run ``per_layer`` on each chosen layer and gather the arrays and the metadata."""
    arrays: dict[str, np.ndarray] = {}
    layers_meta = []
    bfloat16: list[str] = []
    for native in _select(model, layer):
        native = _with_forget_bias(native, source_forget_bias)
        named, meta = per_layer(native)
        clash = sorted(arrays.keys() & named.keys())
        if clash:
            raise InvalidField(
                f"two layers would both write {clash[0]!r} (an explicit prefix names every layer's "
                "tensors alike): convert them one at a time with layer=",
                field="prefix",
                layer=native.name,
            )
        arrays.update(named)
        layers_meta.append(meta)
        if model.stored_as_bfloat16(native):
            bfloat16 += list(named)
    return Result(arrays, {**head, "layers": layers_meta, "notes": model.notes, "bfloat16": bfloat16})


def _weights(native: NativeLayer) -> int:
    return sum(array.size for cell in native.cells.values() for array in cell.values())


def _convert_by_cell(
    native: NativeLayer, conv: Convention, forget_bias: float, order: Literal["C", "K"], verify_result: bool
) -> tuple[NativeLayer, list[str], dict[str, Any] | None]:
    """Convert (and verify) one cell at a time, emptying ``native`` as it goes.

    Large layers are verified cell by cell anyway (``verify`` samples units of each cell on
    its own), so checking each cell as it is converted is the same check.
    """
    cells: dict[CellKey, dict[str, np.ndarray]] = {}
    folded: set[str] = set()
    reports = []
    for key in sorted(native.cells, key=cell_order):
        alone = NativeLayer(native.name, native.convention, native.config, {(0, key[1]): native.cells.pop(key)})
        out, notes = canonical.from_canonical(canonical.to_canonical(alone), conv, forget_bias, order=order)
        if verify_result:
            reports.append(verify.verify(alone, out))
        cells[key] = out.cells[(0, key[1])]
        folded.update(notes)
        del alone, out
    config = native.config.with_(forget_bias=forget_bias)
    report = None
    if reports:
        report = {**reports[0], "max_abs_err": max(r["max_abs_err"] for r in reports), "cells_checked": len(reports)}
        report["tolerance"] = min(r["tolerance"] for r in reports)
    return NativeLayer(native.name, conv, config, cells, notes=list(native.notes)), sorted(folded), report


def _select(model: Model, layer: str | None) -> list[NativeLayer]:
    if not model.layers:
        raise LayerNotFound("the file holds no LSTM or GRU layer that rnnbridge can read")
    if layer is None or layer == "":
        return model.layers
    chosen = [native for native in model.layers if native.name == layer]
    if not chosen:
        names = [native.name for native in model.layers]
        raise LayerNotFound(f"no recurrent layer named {layer!r}; the file has {names}", layer=layer)
    return chosen


def _with_forget_bias(native: NativeLayer, forget_bias: float | None) -> NativeLayer:
    if forget_bias is None:
        return native
    if native.convention.forget_bias_rule != "stated":
        raise InvalidField(
            f"source_forget_bias applies to LSTM cells whose file does not record it ({_stated()}); "
            f"{native.convention.native} {_forget_bias_known(native.convention)}",
            field="source_forget_bias",
            layer=native.name,
        )
    return NativeLayer(
        native.name, native.convention, native.config.with_(forget_bias=forget_bias), native.cells, native.notes
    )


def _target_forget_bias(conv: Convention, stated: float | None, layer: str) -> float:
    """The run-time forget-gate constant of the target: its default, or the one stated for
    a target whose constant is a constructor argument."""
    if stated is None or conv.cell != "lstm":
        return conv.forget_bias
    if conv.forget_bias_rule != "stated":
        raise InvalidField(
            f"target_forget_bias applies to targets whose forget-gate constant is a setting ({_stated()}); "
            f"{conv.native} {_forget_bias_known(conv)}",
            field="target_forget_bias",
            layer=layer,
        )
    return stated


def _forget_bias_known(conv: Convention) -> str:
    if conv.forget_bias_rule == "fixed":
        return f"always adds {conv.forget_bias:g} to its forget gate"
    if conv.forget_bias_rule == "stored":
        return "records its forget-gate constant in the file"
    return "adds no constant to its forget gate"


def _stated() -> str:
    return ", ".join(key for key, conv in CONVENTIONS.items() if conv.forget_bias_rule == "stated")


def _layer_meta(native: NativeLayer) -> dict[str, Any]:
    return {"name": native.name, "convention": native.convention.key, **describe_config(native)}


def _split_meta(native: NativeLayer, canon: Layer, orientation: str) -> dict[str, Any]:
    meta = _layer_meta(native)
    meta["orientation"] = orientation
    if native.config.forget_bias:
        meta["folded"] = [f"forget_bias {native.config.forget_bias:g} added to b_xf"]
    return meta


def _convert_meta(
    native: NativeLayer,
    out: NativeLayer,
    folded: list[str],
    report: dict[str, Any] | None,
    start: str,
) -> dict[str, Any]:
    meta = {
        "name": native.name,
        "source": _layer_meta(native),
        "target": {
            "convention": out.convention.key,
            "native": out.convention.native,
            "num_layers": out.num_levels,
            "directions": list(out.directions),
            "names_start": start,
            "module": module_recipe(out),
            **describe_config(out),
        },
        "folded": (
            [f"source forget_bias {native.config.forget_bias:g} added to the forget-gate bias"]
            if native.config.forget_bias
            else []
        )
        + folded,
        "tensors": [],
        "verification": report,
    }
    return meta


__all__ = ["Model", "Result", "read", "inspect", "split", "convert", "CONVENTIONS", "FRAMEWORKS"]
