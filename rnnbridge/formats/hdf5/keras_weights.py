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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

import h5py
import numpy as np

from rnnbridge.errors import InvalidField

#: the target framework whose layers this writer writes
TARGET = "keras"
_ROLES = ("kernel", "recurrent_kernel", "bias")


def write(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], stream: IO[bytes]) -> None:
    """Write the Keras layers of a ``/convert`` result (``meta["target"] == "keras"``)."""
    if meta.get("target") != TARGET:
        raise InvalidField("format=h5 writes Keras weights: use it with target=keras", field="format")
    keys: Counter[str] = Counter()
    with h5py.File(stream, "w") as h5:
        h5.create_group("vars").attrs["name"] = "sequential"
        layers = h5.create_group("layers")
        for layer in meta["layers"]:
            target = layer["target"]
            cell = "lstm" if target["convention"].endswith("lstm") else "gru"
            for level in range(target["num_layers"]):
                cells = {d: _cell(arrays, target["names_start"], level, d) for d in target["directions"]}
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


def _cell(arrays: Mapping[str, np.ndarray], start: str, level: int, direction: str) -> list[np.ndarray]:
    names = [f"{start}l{level}/{direction}/{role}" for role in _ROLES]
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
