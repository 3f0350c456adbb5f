"""Keras HDF5 files: Keras 2 / tf.keras ``.h5``, Keras 3 ``.weights.h5`` and legacy ``.h5``.

Three layouts share the container (conventions.md §4.2, §4.3)::

    keras2   model.save('m.h5')         / attrs model_config, keras_version, backend
                                        /model_weights attrs layer_names [...]
                                        /model_weights/<layer> attrs weight_names [...]
                                        /model_weights/<layer>/<weight name>  (dataset)
             model.save_weights('w.h5') the same tree rooted at /
             Keras 3 model.save('m.h5') the same tree, weight names without ':0'
    keras3   save_weights('x.weights.h5')
                                        /layers/<class key>/vars       attrs name=<layer>
                                        /layers/<class key>/cell/vars/{0,1,2}
    plain    any other HDF5 file of arrays

The reader returns every numeric dataset under its path (without the leading ``/``) in
its stored dtype and native byte order, and the structure Keras recorded, in
``WeightFile.attrs``:

* ``model_config`` (parsed JSON or None), ``keras_version``, ``backend`` (or None),
  ``layout`` (above), ``skipped`` (string and other non-numeric datasets);
* keras2: ``layers`` = ``[{"name", "weight_names", "weights"}]`` in ``layer_names``
  order, each weight name resolved through ``group[layer][weight_name]`` as tf_keras's
  ``load_weights_from_hdf5_group`` does, ``weights`` being the dataset paths;
* keras3: ``objects`` = ``[{"path", "name", "layer", "layer_name", "vars"}]`` for every
  group with a ``vars`` subgroup holding datasets (``vars`` in numeric order), and
  ``layer_names`` = ``{"layers/<key>": <name attr of its vars group>}``.

It knows containers, not gates: which of these layers are recurrent is decided elsewhere.
Every guard of :mod:`.safety` runs on the whole file before any value is read.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5a

from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.hdf5.isolation import read_isolated
from rnnbridge.formats.hdf5.safety import Inventory, has_signature, inventory, object_address, open_hdf5
from rnnbridge.formats.json_arrays import loads_bounded

NAME = "keras_h5"
#: the largest attribute read (``model_config`` is the big one)
MAX_ATTR_BYTES = 64 * 1024**2
#: Keras configs nest deeper than arrays documents (models inside models)
CONFIG_MAX_DEPTH = 256
_NUMERIC_KINDS = "biufc"
_LAYER_GROUP = re.compile(r"(?:^|/)layers/[^/]+$")
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError)


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` carries the HDF5 signature (at byte 0 or 512)."""
    return len(_hdf5_files(files)) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """Read the arrays and the Keras structure of one HDF5 file.

    Parameters
    ----------
    files : sequence of InputFile
        The upload; exactly one file must be HDF5.
    limits : Limits
        Bounds on each dataset and on all of them.

    Returns
    -------
    WeightFile
        ``format="keras_h5"``; see the module docstring for ``tensors`` and ``attrs``.

    Raises
    ------
    UnsafeInput
        External links or storage, virtual datasets, unknown filters, inflating chunks.
    MalformedFile
        A truncated or corrupt file, or a Keras weight name that resolves to nothing.
    LimitExceeded
        A dataset or attribute over ``limits``.

    The file is read in a reader process under ``limits.read_timeout`` (``isolation``): a
    corrupt file can make libhdf5 loop or crash.
    """
    return read_isolated("rnnbridge.formats.hdf5.keras_h5:read_hdf5", _the_file(files).path, limits)


def read_hdf5(path: Path, limits: Limits, *, format_name: str = NAME) -> WeightFile:
    """Read the HDF5 file at ``path`` (see :func:`read`), labelled ``format_name``."""
    with open_hdf5(path) as h5:
        inv = inventory(h5, limits)
        with h5_errors(f"'{path.name}'"):
            tensors, skipped, widened = _read_tensors(inv)
            attrs = _metadata(h5)
            attrs["skipped"] = skipped
            attrs.update(_structure(h5, inv, tensors))
    notes = [f"bfloat16 datasets widened exactly to float32: {widened}"] if widened else []
    return WeightFile(format_name, tensors, attrs, notes, bfloat16=set(widened))


@contextlib.contextmanager
def h5_errors(what: str, tensor: str | None = None) -> Iterator[None]:
    """Turn h5py's exceptions while handling ``what`` into ``MalformedFile``."""
    try:
        yield
    except RnnBridgeError:
        raise
    except _H5_ERRORS as exc:
        raise MalformedFile(f"truncated or corrupt HDF5: {what}: {exc}", tensor=tensor) from exc


# -- arrays ---------------------------------------------------------------------------


def _read_tensors(inv: Inventory) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    tensors: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    widened: list[str] = []
    for path, dset in inv.datasets.items():
        with h5_errors(f"dataset '/{path}'", tensor=path):
            kind = _kind(dset)
            if kind is None:
                skipped.append(path)
                continue
            array = np.asarray(dset[()])
        if kind == "bfloat16":
            array = _widen_bfloat16(array)
            widened.append(path)
        tensors[path] = _native(array)
    return tensors, skipped, widened


def _kind(dset: h5py.Dataset) -> str | None:
    """``"numeric"``, ``"bfloat16"`` (Keras 3 stores it opaque, tagged by an attribute) or None."""
    dtype = dset.dtype
    if dset.shape is None or dtype.fields is not None or dtype.subdtype is not None:
        return None
    if dtype.kind in _NUMERIC_KINDS:
        return "numeric"
    if dtype.kind == "V" and dtype.itemsize == 2 and _attr_text(dset, "dtype") == "bfloat16":
        return "bfloat16"
    return None


def _widen_bfloat16(array: np.ndarray) -> np.ndarray:
    # ml_dtypes writes the two bytes little-endian, as x86 and ARM hold them
    bits = np.ascontiguousarray(array).view("<u2")
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _native(array: np.ndarray) -> np.ndarray:
    """The same values in native byte order (downstream code may view raw bytes)."""
    if array.dtype.byteorder not in "=|":
        return array.astype(array.dtype.newbyteorder("="))
    return array


# -- attributes -----------------------------------------------------------------------


def _metadata(h5: h5py.File) -> dict[str, Any]:
    weights_group = h5.get("model_weights")
    holders = [h5] + ([weights_group] if isinstance(weights_group, h5py.Group) else [])
    config = _attr_text(h5, "model_config")
    return {
        "model_config": None if config is None else _parse_config(config),
        "keras_version": next(filter(None, (_attr_text(g, "keras_version") for g in holders)), None),
        "backend": next(filter(None, (_attr_text(g, "backend") for g in holders)), None),
    }


def _parse_config(text: str) -> Any:
    return loads_bounded(text, what="HDF5 attribute 'model_config'", max_depth=CONFIG_MAX_DEPTH)


def _attr(obj: h5py.HLObject, name: str) -> Any:
    """The attribute ``name`` of ``obj`` (None if absent), after bounding its size."""
    with h5_errors(f"attribute '{name}' of '{obj.name}'"):
        if name not in obj.attrs:
            return None
        attr_id = h5a.open(obj.id, name.encode("utf-8"))
        size = math.prod(attr_id.shape or ()) * attr_id.get_type().get_size()
        if size > MAX_ATTR_BYTES:
            raise LimitExceeded(f"HDF5 attribute '{name}' of '{obj.name}' has {size} bytes")
        return obj.attrs[name]


def _attr_text(obj: h5py.HLObject, name: str) -> str | None:
    value = _attr(obj, name)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bytes):
        return _decode(value, name, obj)
    return value if isinstance(value, str) else None


def _attr_strings(obj: h5py.HLObject, name: str) -> list[str]:
    """A list-of-names attribute, joined from ``name0``, ``name1``, ... when Keras split it."""
    if name in obj.attrs:
        chunks = [_attr(obj, name)]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in obj.attrs:
            chunks.append(_attr(obj, f"{name}{len(chunks)}"))
    names = []
    for chunk in chunks:
        for item in np.asarray(chunk, dtype=object).reshape(-1):
            if isinstance(item, bytes):
                item = _decode(item, name, obj)
            if not isinstance(item, str):
                raise MalformedFile(f"attribute '{name}' of '{obj.name}' holds {item!r}, not a name")
            names.append(item)
    return names


def _decode(value: bytes, name: str, obj: h5py.HLObject) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"attribute '{name}' of '{obj.name}' is not UTF-8 (byte offset {exc.start})") from exc


# -- structure ------------------------------------------------------------------------


def _structure(h5: h5py.File, inv: Inventory, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    root = _keras2_root(h5)
    if root is not None:
        return {"layout": "keras2", "layers": _keras2_layers(root, inv, tensors)}
    if "layers" in inv.groups and any(_LAYER_GROUP.search(p) for p in inv.groups):
        objects, layer_names = _keras3_objects(inv, tensors)
        return {"layout": "keras3", "objects": objects, "layer_names": layer_names}
    return {"layout": "plain"}


def _keras2_root(h5: h5py.File) -> h5py.Group | None:
    """The group carrying ``layer_names``: / for save_weights, /model_weights for save."""
    for group in (h5, h5.get("model_weights")):
        if isinstance(group, h5py.Group) and ("layer_names" in group.attrs or "layer_names0" in group.attrs):
            return group
    return None


def _keras2_layers(root: h5py.Group, inv: Inventory, tensors: dict[str, np.ndarray]) -> list[dict]:
    layers = []
    for layer_name in _attr_strings(root, "layer_names"):
        group = _resolve(root, layer_name, h5py.Group, f"layer '{layer_name}'")
        weight_names = _attr_strings(group, "weight_names")
        weights = [_weight_path(group, layer_name, w, inv, tensors) for w in weight_names]
        layers.append({"name": layer_name, "weight_names": weight_names, "weights": weights})
    return layers


def _weight_path(
    group: h5py.Group, layer: str, weight_name: str, inv: Inventory, tensors: dict[str, np.ndarray]
) -> str:
    what = f"weight '{weight_name}' of layer '{layer}'"
    dset = _resolve(group, weight_name, h5py.Dataset, what)
    with h5_errors(what, tensor=weight_name):
        path = inv.paths_by_addr.get(object_address(dset))
    if path is None or path not in tensors:
        raise MalformedFile(f"{what} is not a numeric dataset", tensor=weight_name)
    return path


def _resolve(group: h5py.Group, name: str, kind: type, what: str) -> Any:
    # path resolution may cross soft links; inventory() has refused every external one
    with h5_errors(what, tensor=name):
        obj = group.get(name)
    if not isinstance(obj, kind):
        found = "nothing" if obj is None else f"a {type(obj).__name__}"
        raise MalformedFile(
            f"{what}: '{group.name}/{name}' resolves to {found}, not a {kind.__name__}",
            tensor=name,
        )
    return obj


def _keras3_objects(inv: Inventory, tensors: dict[str, np.ndarray]) -> tuple[list[dict], dict[str, str]]:
    layer_names = {}
    for path in inv.groups:
        name = _vars_name(inv, path) if _LAYER_GROUP.search(path) else None
        if name is not None:
            layer_names[path] = name
    children = _datasets_by_group(tensors)
    objects = [
        _keras3_object(inv, path, children[_join(path, "vars")], layer_names)
        for path in inv.groups
        if _join(path, "vars") in inv.groups and children.get(_join(path, "vars"))
    ]
    return objects, layer_names


def _keras3_object(inv: Inventory, path: str, var_names: list[str], layer_names: dict[str, str]) -> dict[str, Any]:
    layer = _enclosing_layer(path, layer_names)
    return {
        "path": path,
        "name": _nearest_vars_name(inv, path),
        "layer": layer,
        "layer_name": layer_names.get(layer) if layer else None,
        "vars": [_join(path, f"vars/{n}") for n in sorted(var_names, key=_var_order)],
    }


def _datasets_by_group(tensors: dict[str, np.ndarray]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    for path in tensors:
        parent, _, name = path.rpartition("/")
        children.setdefault(parent, []).append(name)
    return children


def _vars_name(inv: Inventory, path: str) -> str | None:
    group = inv.groups.get(_join(path, "vars"))
    return None if group is None else _attr_text(group, "name")


def _nearest_vars_name(inv: Inventory, path: str) -> str | None:
    """The ``name`` of the first ``vars`` group found walking up from ``path``."""
    while True:
        name = _vars_name(inv, path)
        if name is not None or not path:
            return name
        path = path.rpartition("/")[0]


def _enclosing_layer(path: str, layer_names: dict[str, str]) -> str | None:
    prefixes = [p for p in layer_names if path == p or path.startswith(p + "/")]
    return max(prefixes, key=len, default=None)


def _var_order(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


# -- input files ----------------------------------------------------------------------


def _hdf5_files(files: Sequence[InputFile]) -> list[InputFile]:
    return [f for f in files if _head_is_hdf5(f.path)]


def _head_is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return has_signature(fh.read(520))
    except OSError:
        return False


def _the_file(files: Sequence[InputFile]) -> InputFile:
    """The one file that sniffs as this format, else the only file of the upload."""
    found = _hdf5_files(files) or list(files)
    if len(found) != 1:
        raise UnsupportedFormat(f"expected one HDF5 file in the upload, found {len(found)}")
    return found[0]
