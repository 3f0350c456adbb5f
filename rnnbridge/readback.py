"""Verification of what a ``/convert`` result hands out, not of what the conversion meant.

``verify_output`` builds the target layer the way its framework will
(``rnnbridge.engine.loading``: the module recipe read in the target framework's
vocabulary, the tensors found under their output names) and runs it against the source
(``rnnbridge.engine.verify``). With an ``encoding`` (the output format), a layer of up to
``verify.SAMPLE_ABOVE`` weights is first encoded in that format by the same writer the
response uses, and its arrays are read back from those bytes with rnnbridge's own readers:
a writer that misplaces, truncates or reorders a tensor fails verification. Larger layers
are checked on the output arrays themselves (verification samples them anyway), so the
check costs no second encoding of a large result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnbridge import formats, outputs
from rnnbridge.engine import loading, verify
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import RnnBridgeError, VerificationFailed
from rnnbridge.formats.base import InputFile, Limits, WeightFile


def verify_output(
    source: NativeLayer,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    target: str,
    encoding: str | None = None,
    bfloat16: list[str] | None = None,
) -> dict[str, Any]:
    """Verify one converted layer (``arrays`` and ``meta`` of its result) against ``source``.

    ``bfloat16`` names the arrays the result stores as bfloat16 where the format has it,
    as ``Result.meta["bfloat16"]`` does.
    """
    small = sum(a.size for cell in source.cells.values() for a in cell.values()) <= verify.SAMPLE_ABOVE
    if encoding is not None and small:
        arrays = _reread(arrays, meta, target, encoding, bfloat16 or [])
        how = f"re-read from the {encoding} bytes, with the module recipe"
    else:
        how = "the output arrays, with the module recipe"
    loaded = loading.from_arrays(arrays, source.name, meta["target"], target)
    report = verify.verify(source, loaded)
    report["target_from"] = how
    return report


def _reread(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], target: str, fmt: str, bfloat16: list[str]
) -> dict[str, np.ndarray]:
    """``arrays`` encoded as ``fmt`` (one layer's result) and read back from the bytes."""
    head = {"target": target, "layers": [meta], "notes": [], "bfloat16": bfloat16}
    output = outputs.OUTPUTS[fmt]
    with tempfile.NamedTemporaryFile(prefix="rnnbridge-readback-", suffix=f".{output.extension}") as file:
        output.write(arrays, head, file)
        file.flush()
        path = Path(file.name)
        try:
            weights = _read(path, fmt)
        except RnnBridgeError as error:
            raise VerificationFailed(f"the {fmt} output cannot be read back: {error.detail}") from None
        tensors = {name: np.array(array) for name, array in weights.tensors.items()}
    if fmt == "h5":
        return _from_keras_h5(tensors, meta)
    if fmt == "eqx":  # leaves hold no names: ``#k`` is the k-th array written
        return {name: tensors[f"#{k}"] for k, name in enumerate(arrays) if f"#{k}" in tensors}
    if fmt == "tf_checkpoint":  # TF variable names back to the result's names
        from rnnbridge.formats.tf.writer import variable_names

        return {name: tensors[tf_name] for name, tf_name in variable_names(head).items() if tf_name in tensors}
    return tensors


def _read(path: Path, fmt: str) -> WeightFile:
    """Read back bytes rnnbridge has just written: HDF5 in this process (the reader processes
    guard against hostile files; these are our own), the rest with the readers' own caps but
    in this process too (``Limits()``: ``isolate`` off, whatever the service's limits say)."""
    if fmt == "h5":
        from rnnbridge.formats.hdf5.keras_h5 import read_hdf5

        return read_hdf5(path, Limits())
    return formats.read([InputFile(path.name, path)], Limits())


def _from_keras_h5(tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Output names of a Keras 3 ``.weights.h5``'s tensors: each level is one Keras layer
    (``layers/<key>[/forward_layer|/backward_layer]/cell/vars/<k>``), in the file's order
    of levels, which Keras loads by position."""
    target = meta["target"]
    roles = ("kernel", "recurrent_kernel", "bias")
    groups = sorted({name.split("/")[1] for name in tensors if name.startswith("layers/")}, key=_creation_order)
    out: dict[str, np.ndarray] = {}
    for level, key in enumerate(groups):
        for name, array in tensors.items():
            parts = name.split("/")
            if parts[:2] != ["layers", key] or parts[-2] != "vars" or parts[-3] != "cell":
                continue
            side = parts[2] if len(parts) == 6 else ""
            direction = {"forward_layer": "forward", "backward_layer": "backward"}.get(side)
            if direction is None:
                direction = target["directions"][0]
            out[f"{target['names_start']}l{level}/{direction}/{roles[int(parts[-1])]}"] = array
    return out


def _creation_order(key: str) -> tuple[int, str]:
    """Keras 3 keys layers ``lstm``, ``lstm_1``, ... in order of creation."""
    stem, _, number = key.rpartition("_")
    return (int(number), stem) if number.isdigit() and stem else (0, key)
