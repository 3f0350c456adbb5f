"""The importable Python API: read a file, inspect it, split it, convert it.

One call per job. ``split`` and ``convert`` take the files (or a ``Model`` already read),
check every option, the output format included, before the work, and return a
``Result`` that saves itself::

    import rnnbridge
    result = rnnbridge.convert("model.h5", "pytorch", format="safetensors")
    result.save("out/")                       # out/model.to-pytorch.safetensors
    rnnbridge.inspect("model.ckpt")           # a TF checkpoint prefix: index + shards

The HTTP routes and the CLI only translate their arguments to these calls and the errors
back. Paths may be ``str`` or ``os.PathLike`` (see ``rnnbridge.inputs`` for checkpoint
prefixes and folders); a missing one is ``FileNotFoundError``. Nothing here knows about
HTTP. Errors are ``rnnbridge.errors.RnnBridgeError`` subclasses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rnnbridge import discovery, formats, outputs, readback
from rnnbridge.describe import describe_config, describe_layer, module_recipe
from rnnbridge.discovery.renames import HOW_TO_NAME, apply_names, fused_candidates, parse_names
from rnnbridge.engine import canonical, exactness, facts, loading, naming, verify
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORK_TABLE, FRAMEWORKS, TARGET_FRAMEWORKS, Convention
from rnnbridge.engine.facts import assumptions_of
from rnnbridge.engine.model import CellKey, Layer, NativeLayer, cell_order
from rnnbridge.errors import InvalidField, LayerNotFound
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.inputs import Inputs, input_files
from rnnbridge.options import DIRECTIONS, ORIENTATIONS, Orientation
from rnnbridge.result import LayerResult, Result

#: ``progress(phase, done, total)``: phase ``"reading"`` (bytes), ``"splitting"`` or
#: ``"converting"`` (weights of the layers done)
Progress = Callable[[str, int, int], None]

_SCOPE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)*")

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
    input_name: str = "weights"  # the (first) file read, for default output names
    #: when no layer was found: arrays whose shapes look like fused gate tensors (``renames``)
    fused_looking: list[dict[str, Any]] = field(default_factory=list)

    def stored_as_bfloat16(self, layer: NativeLayer) -> bool:
        """Whether every tensor of ``layer`` was bfloat16 in the file (now widened to float32)."""
        return bool(layer.origin) and set(layer.origin.values()) <= self.bfloat16


def read(
    files: Inputs,
    *,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    activations: str | Sequence[str] | None = None,
    clip: str | float | None = None,
    input_forget: bool | None = None,
    names: str | Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Model:
    """Read an upload (one or several files, paths or ``InputFile``) and find its recurrent layers.

    ``source`` (a framework of ``FRAMEWORKS``) is required for array-only inputs (npz,
    JSON) and checked against the file otherwise; ``direction``, ``reset_after`` and
    ``activations`` (``"gates,candidate[,cell]"``, names of ``rnnbridge.engine.facts``),
    ``clip`` (``"none"`` or a number > 0) and ``input_forget`` state what a file does not
    record (ONNX ``W`` of one direction, a weights-only Keras file); one that contradicts
    what the file records is refused.
    ``names`` renames the file's arrays first (``{"enc_w_ih": "encoder.weight_ih_l0"}`` or
    ``"old=new, ..."``; see ``rnnbridge.discovery.renames``).
    """
    if source is not None and source not in FRAMEWORKS:
        raise InvalidField(f"source must be one of {list(FRAMEWORKS)}, not {source!r}", field="source")
    if direction is not None and direction not in DIRECTIONS:
        raise InvalidField(f"direction must be forward or reverse, not {direction!r}", field="direction")
    direction = "reverse" if direction == "backward" else direction
    stated_activations, stated_clip = _activations(activations), facts.parse_clip(clip)
    inputs = input_files(files)
    size = sum(f.path.stat().st_size for f in inputs)
    if progress is not None:
        progress("reading", 0, size)
    renames = None if names is None or names == "" else parse_names(names)
    weights = formats.read(inputs, limits or Limits())
    if renames:
        apply_names(weights, renames)
    found = discovery.find_layers(
        weights,
        source=source,
        direction=direction,
        reset_after=reset_after,
        activations=stated_activations,
        clip=stated_clip,
        input_forget=input_forget,
    )
    model = Model(
        format=weights.format,
        layers=found.layers,
        other_tensors=found.other_tensors,
        notes=weights.notes + found.notes,
        unsupported=found.unsupported,
        bfloat16=weights.bfloat16,
        input_name=inputs[0].name if inputs else "weights",
        fused_looking=[] if found.layers else fused_candidates(weights.tensors),
    )
    if progress is not None:
        progress("reading", size, size)
    return model


def _activations(activations: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if activations is None or activations == "":
        return None
    if isinstance(activations, str):
        return facts.parse_activations(activations)
    return facts.parse_activations(",".join(activations))


def inspect(
    model: Model | Inputs,
    *,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    **facts_stated: Any,
) -> dict[str, Any]:
    """The ``/inspect`` document: every recurrent layer with its convention, sizes and tensors.

    ``model`` is a ``Model`` or the files to read (with the options of ``read``).
    """
    model = _model(model, source, direction, reset_after, limits, None, facts_stated)
    document = {
        "format": model.format,
        "layers": [describe_layer(layer) for layer in model.layers],
        "unsupported_layers": model.unsupported,
        "other_tensors": model.other_tensors,
        "notes": model.notes,
    }
    if model.fused_looking:
        document["fused_looking_arrays"] = model.fused_looking
        document["how_to_name"] = HOW_TO_NAME
    return document


def split(
    model: Model | Inputs,
    *,
    layer: str | None = None,
    source_forget_bias: float | None = None,
    orientation: Orientation = "out_in",
    format: str | None = None,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    **facts_stated: Any,
) -> Result:
    """Per-gate arrays ``{layer}/l{k}/{direction}/{name}`` of the chosen layers.

    Names: ``W_x{g}``, ``W_h{g}``, ``b_x{g}``, ``b_h{g}`` for gates ``i f g o`` (LSTM) or
    ``r z n`` (GRU), ``p_{g}`` peepholes, ``W_proj``. ``orientation="out_in"`` gives
    matrices for ``W · x`` ([H, in]); ``"in_out"`` their transposes, for ``x · W``. A TF1
    run-time forget bias is folded into ``b_xf``.

    ``model`` is a ``Model`` or the files to read (with ``source``, ``direction``,
    ``reset_after`` and ``limits`` as for ``read``). ``format`` (a key of
    ``rnnbridge.outputs.OUTPUTS``) is checked before anything is read and becomes the
    result's default for ``Result.save``.
    """
    if orientation not in ORIENTATIONS:
        raise InvalidField(f"orientation must be 'out_in' or 'in_out', not {orientation!r}", field="orientation")
    if format is not None:
        outputs.check_format(format)
    model = _model(model, source, direction, reset_after, limits, progress, facts_stated)

    def split_layer(native: NativeLayer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        canon = canonical.to_canonical(native)
        arrays = {}
        for (level, direction), gates in sorted(canon.cells.items(), key=lambda item: cell_order(item[0])):
            for name, array in gates.items():
                if orientation == "in_out" and array.ndim == 2:
                    array = array.T
                arrays[f"{canon.name}/l{level}/{direction}/{name}"] = array
        return arrays, _split_meta(native, canon, orientation)

    result = _assemble(model, layer, source_forget_bias, split_layer, _ticker("splitting", model, progress), strict)
    result.format = format
    return result


def convert(
    model: Model | Inputs,
    target: str,
    *,
    layer: str | None = None,
    source_forget_bias: float | None = None,
    target_forget_bias: float | None = None,
    verify_result: bool = True,
    prefix: str | None = None,
    format: str | None = None,
    order: Literal["C", "K"] | None = None,
    consume: bool | None = None,
    source: str | None = None,
    direction: str | None = None,
    reset_after: bool | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    scope: str | None = None,
    **facts_stated: Any,
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

    ``model`` is a ``Model`` or the files to read (with ``source``, ``direction``,
    ``reset_after`` and ``limits`` as for ``read``); files read here are consumed by
    default. ``format`` (a key of ``rnnbridge.outputs.OUTPUTS``) is checked against the
    target before anything is read, chooses ``order`` unless it is given, and becomes the
    result's default for ``Result.save``.

    ``target_forget_bias`` sets a run-time constant of the target, accepted only where the
    target framework has that argument (TF1 ``LSTMCell(forget_bias)``). ``strict=True``
    refuses every assumption (422 ``assumption_required``). Verification runs the layer
    the target framework builds from the result (``rnnbridge.engine.loading``): the
    output arrays under their names with the module recipe; with ``format`` (the output
    format the result will be written in), a layer of up to ``verify.SAMPLE_ABOVE`` weights
    is encoded in that format and read back from the bytes with rnnbridge's own readers.
    ``scope`` (TF1 only) is the variable scope of the layer in a ``tf_checkpoint`` output.
    """
    target_forget_bias = facts.finite(target_forget_bias, "target_forget_bias")
    if target not in TARGET_FRAMEWORKS:
        raise InvalidField(f"target must be one of {list(TARGET_FRAMEWORKS)}, not {target!r}", field="target")
    _check_prefix(prefix, target)
    output = None if format is None else outputs.check_format(format, target)
    if order is None:
        order = "K" if output is not None and output.any_order else "C"
    if consume is None:
        consume = not isinstance(model, Model)
    model = _model(model, source, direction, reset_after, limits, progress, facts_stated)
    head = {"target": target} if scope is None else {"target": target, "scope": _checked_scope(scope, target)}

    def convert_layer(native: NativeLayer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        canon = canonical.to_canonical(native)
        conv = exactness.select_target(canon, target)
        exactness.check(canon, conv)
        forget_bias = _target_forget_bias(native, conv, target_forget_bias)
        report = None
        if consume and _weights(native) > BY_CELL_ABOVE:
            del canon  # its views would keep every source cell alive
            out, folded, report = _convert_by_cell(native, conv, forget_bias, order, verify_result)
        else:
            out, folded = canonical.from_canonical(canon, conv, forget_bias, order=order)
        meta = _convert_meta(native, out, folded, report, naming.head(out.name, out.convention, prefix))
        arrays = naming.tensor_names(out, prefix, consume=consume)  # last: it may empty ``out``
        meta["tensors"] = list(arrays)
        if verify_result and report is None:
            bfloat16 = list(arrays) if model.stored_as_bfloat16(native) else []
            meta["verification"] = readback.verify_output(native, arrays, meta, target, format, bfloat16)
        return arrays, meta

    ticker = _ticker("converting", model, progress)
    result = _assemble(model, layer, source_forget_bias, convert_layer, ticker, strict, **head)
    result.format = format
    return result


def prepare() -> None:
    """Start what the first file would otherwise wait for: an HDF5 reader process
    (``rnnbridge.formats.hdf5.isolation``), a fresh interpreter that loads NumPy and h5py."""
    from rnnbridge.formats.hdf5 import isolation

    isolation.start_reader()


def speedups() -> dict[str, bool]:
    """Which compiled speed-ups this process uses: the tiled transpose
    (``rnnbridge.engine._transpose``) and the CRC32C of TF checkpoints (``google-crc32c``)."""
    from rnnbridge.engine import layout
    from rnnbridge.formats.tf import crc32c

    return {"transpose": layout.transpose_into is not None, "crc32c": crc32c.COMPILED}


def stop_readers() -> None:
    """End the reader processes, a read still running included (a server shutting down)."""
    from rnnbridge.formats.hdf5 import isolation

    isolation.stop_readers()


def _model(
    model: Model | Inputs,
    source: str | None,
    direction: str | None,
    reset_after: bool | None,
    limits: Limits | None,
    progress: Progress | None,
    facts_stated: dict[str, Any],
) -> Model:
    """``model``, or the model read from the files ``model`` names (``facts_stated``: the
    ``activations``, ``clip``, ``input_forget`` and ``names`` options of ``read``)."""
    if not isinstance(model, Model):
        return read(
            model,
            source=source,
            direction=direction,
            reset_after=reset_after,
            limits=limits,
            progress=progress,
            **facts_stated,
        )
    stated = (source, direction, reset_after, limits, *facts_stated.values())
    if any(value is not None for value in stated):
        raise TypeError("source, direction, reset_after, limits and stated facts apply to files; the model is read")
    return model


def _ticker(phase: str, model: Model, progress: Progress | None) -> Callable[[NativeLayer], None]:
    """A function to call after each layer is done, reporting the weights done so far."""
    sizes = {id(native): _weights(native) for native in model.layers}  # before a consuming conversion
    total, done = sum(sizes.values()), 0
    if progress is not None:
        progress(phase, 0, total)

    def tick(native: NativeLayer) -> None:
        nonlocal done
        done += sizes.get(id(native), 0)
        if progress is not None:
            progress(phase, done, total)

    return tick


def _target_forget_bias(native: NativeLayer | Layer, conv: Convention, value: float | None) -> float:
    """The run-time forget-gate constant the target framework will add: its default, or
    ``value`` where the target's constant is a constructor argument (``forget_bias_rule``
    ``stated``, e.g. TF1 ``LSTMCell(forget_bias)``); 422 elsewhere, where it would be
    subtracted from the stored bias and never added back."""
    if value is None:
        return conv.forget_bias
    if "forget_bias" not in conv.runtime_constants:
        raise InvalidField(
            f"layer {native.name!r} converts to {conv.native}, which has no run-time forget bias argument "
            f"(it {_forget_bias_known(conv)}): "
            f"target_forget_bias={value:g} would be subtracted from the stored bias and never added "
            f"back; leave target_forget_bias out (only {_stated()} take one)",
            field="target_forget_bias",
            layer=native.name,
        )
    return value


def _check_prefix(prefix: str | None, target: str) -> None:
    """A caller's prefix of the output names, for targets whose names may start with one."""
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


def _checked_scope(scope: str, target: str) -> str:
    """A TF variable scope: what ``tf.compat.v1.variable_scope`` accepts, without a leading or trailing ``/``."""
    takers = outputs.OUTPUTS["tf_checkpoint"].targets or ()
    if target not in takers:
        raise InvalidField(f"scope applies to target={' or '.join(takers)} only", field="scope")
    if not _SCOPE.fullmatch(scope):
        raise InvalidField(
            f"scope {scope[:100]!r} is not a TF variable scope: letters, digits and . _ - separated by '/'",
            field="scope",
        )
    return scope


def _assemble(
    model: Model,
    layer: str | None,
    source_forget_bias: float | None,
    per_layer: Callable[[NativeLayer], tuple[dict[str, np.ndarray], dict[str, Any]]],
    tick: Callable[[NativeLayer], None],
    strict: bool = False,
    **head: Any,
) -> Result:
    """Run ``per_layer`` on each chosen layer and gather the arrays and the metadata."""
    arrays: dict[str, np.ndarray] = {}
    layers_meta = []
    layers = []
    bfloat16: list[str] = []
    source_forget_bias = facts.finite(source_forget_bias, "source_forget_bias")
    for chosen in _select(model, layer):
        native = _with_forget_bias(chosen, source_forget_bias)
        facts.required(native, strict, ambiguous="target" in head)
        named, meta = per_layer(native)
        tick(chosen)
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
        target = CONVENTIONS[meta["target"]["convention"]] if "target" in meta else None
        layers.append(LayerResult(native.name, native.convention, target, tuple(named)))
        if model.stored_as_bfloat16(native):
            bfloat16 += list(named)
    meta = {**head, "layers": layers_meta, "notes": model.notes, "bfloat16": bfloat16}
    return Result(arrays, meta, layers, input_name=model.input_name)


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
        if verify_result:  # the target as its framework builds it from the recipe, not ``out.config``
            reports.append(verify.verify(alone, loading.as_loaded(out, module_recipe(out))))
        cells[key] = out.cells[(0, key[1])]
        folded.update(notes)
        del alone, out
    config = native.config.with_(forget_bias=forget_bias)
    report = None
    if reports:
        report = {**reports[0], "max_abs_err": max(r["max_abs_err"] for r in reports), "cells_checked": len(reports)}
        report["tolerance"] = min(r["tolerance"] for r in reports)
        report["target_from"] = "the converted arrays with the module recipe, cell by cell"
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
    conv = native.convention
    if conv.forget_bias_rule != "stated" and forget_bias != conv.forget_bias:
        raise InvalidField(
            f"source_forget_bias applies to LSTM cells whose file does not record it ({_stated()}); "
            f"{conv.native} {_forget_bias_known(conv)}",
            field="source_forget_bias",
            layer=native.name,
        )
    kept = tuple(a for a in native.config.assumed if a.fact != "forget_bias")
    config = native.config.with_(forget_bias=forget_bias, assumed=kept)
    return NativeLayer(native.name, conv, config, native.cells, native.notes, native.origin)


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


__all__ = [
    "CONVENTIONS",
    "FRAMEWORKS",
    "InputFile",
    "LayerResult",
    "Limits",
    "Model",
    "Result",
    "convert",
    "inspect",
    "prepare",
    "read",
    "speedups",
    "stop_readers",
    "split",
    "assumptions_of",
]
