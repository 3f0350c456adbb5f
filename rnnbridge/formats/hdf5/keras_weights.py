"""Write converted Keras layers as a Keras 3 ``.weights.h5`` file, for ``model.load_weights``.

Keras 3 (``keras/src/saving/saving_lib.py``, ``H5IOStore``) keys a weights file by object
structure, not by layer names::

    /vars                                   attrs name=<model name>
    /layers/<key>/vars                      attrs name=<layer name>
    /layers/<key>/cell/vars/0, 1, 2         kernel [I, G*H], recurrent_kernel [H, G*H], bias
    /layers/bidirectional/forward_layer/cell/vars/0 ...   (and backward_layer)

where ``<key>`` is the snake_case class name made unique in order of appearance (``lstm``,
``lstm_1``, ``gru``, ``bidirectional``, ...). Each level of a converted layer becomes one
Keras layer, so the model that loads the file is a ``keras.Sequential`` holding, in order,
one ``LSTM``/``GRU`` (or ``Bidirectional`` of one) per level with the arguments given in
the metadata's ``target.module``, and no other layer with weights.

The result's tensor names are found through the target convention's ``naming`` in the
registry (``rnnbridge.engine.conventions``), the one place that spells them.

Layers of one result must chain (each reads what the one before it gives, ``units ×
directions``): a result whose layers do not (an encoder and a decoder) is refused with a
422 asking for ``layer=``, one loadable file per layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

import h5py
import numpy as np

from rnnbridge.engine.conventions import CONVENTIONS, Convention
from rnnbridge.errors import InvalidField

#: the target framework whose layers this writer writes
TARGET = "keras"


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write the Keras layers of a ``/convert`` result (``meta["target"] == "keras"``)."""
    if meta.get("target") != TARGET:
        raise InvalidField("format=h5 writes Keras weights: use it with target=keras", field="format")
    _check_chain(arrays, meta["layers"])
    keys: Counter[str] = Counter()
    with h5py.File(stream, "w") as h5:
        h5.create_group("vars").attrs["name"] = "sequential"
        layers = h5.create_group("layers")
        for layer in meta["layers"]:
            target = layer["target"]
            conv = CONVENTIONS[target["convention"]]
            cell = conv.cell
            for level in range(target["num_layers"]):
                cells = {d: _cell(arrays, conv, target["names_start"], level, d) for d in target["directions"]}
                name = f"{layer['name']}_l{level}" if target["num_layers"] > 1 else layer["name"]
                if len(cells) == 2:
                    group = layers.create_group(_unique("bidirectional", keys))
                    group.create_group("vars").attrs["name"] = name
                    for direction, tensors in cells.items():
                        side = group.create_group(f"{direction}_layer")
                        _write_rnn(side, f"{direction}_{cell}", cell, tensors)
                else:
                    (tensors,) = cells.values()
                    _write_rnn(layers.create_group(_unique(cell, keys)), name, cell, tensors)


def _check_chain(arrays: Mapping[str, np.ndarray], layers: list[dict[str, Any]]) -> None:
    """Refuse layers that cannot follow one another in one Sequential."""
    for before, after in zip(layers, layers[1:]):
        first, last = after["target"], before["target"]
        first_conv, last_conv = CONVENTIONS[first["convention"]], CONVENTIONS[last["convention"]]
        reads = _cell(arrays, first_conv, first["names_start"], 0, first["directions"][0])[0].shape[0]
        top = _cell(arrays, last_conv, last["names_start"], last["num_layers"] - 1, last["directions"][0])[1]
        gives = top.shape[0] * len(last["directions"])
        if reads != gives:
            names = [layer["name"] for layer in layers]
            raise InvalidField(
                f"format=h5 holds one keras.Sequential, but layer {after['name']!r} reads {reads} inputs and "
                f"{before['name']!r} before it gives {gives}: these layers do not chain. Convert one at a time "
                f"with layer= (one of {names}) to get one loadable file per layer",
                field="layer",
            )


def _cell(
    arrays: Mapping[str, np.ndarray], conv: Convention, start: str, level: int, direction: str
) -> list[np.ndarray]:
    """The cell's kernel, recurrent kernel and bias (if any), in the convention's order."""
    names = [start + conv.naming.format(level=level, direction=direction, tensor=t.name) for t in conv.tensors]
    return [arrays[n] for n in names if n in arrays]


def _write_rnn(group: h5py.Group, name: str, cell: str, tensors: list[np.ndarray]) -> None:
    group.create_group("vars").attrs["name"] = name
    variables = group.create_group("cell").create_group("vars")
    variables.attrs["name"] = f"{cell}_cell"
    for index, array in enumerate(tensors):
        variables.create_dataset(str(index), data=array)


def _unique(key: str, seen: Counter[str]) -> str:
    count = seen[key]
    seen[key] += 1
    return key if count == 0 else f"{key}_{count}"
