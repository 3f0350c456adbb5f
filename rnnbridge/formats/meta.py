"""rnnbridge's metadata inside its own output files: where each format keeps it, and its encoding.

===============  ==============================================================
format           where the metadata JSON is
===============  ==============================================================
``npz``          the member ``__meta__.npy``: a 0-d unicode array (``META_KEY``)
``json``         the key ``"meta"`` beside ``"arrays"`` (``JSON_KEY``)
``safetensors``  ``__metadata__["rnnbridge"]``, a JSON string (``SAFETENSORS_KEY``)
``h5``           nowhere: a Keras ``.weights.h5`` file is for ``model.load_weights``
===============  ==============================================================

Each reader puts what it finds there in ``WeightFile.attrs["meta"]``, which is where
``rnnbridge.discovery`` looks for it, so that every output but h5 can be uploaded again
without ``source``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

META_KEY = "__meta__"
JSON_KEY = "meta"
SAFETENSORS_KEY = "rnnbridge"

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays made plain and non-finite floats as strings,
    so that ``json.dumps(..., allow_nan=False)`` accepts it.

    >>> jsonable({"err": np.float32(0.5), "odd": [float("nan"), -math.inf], 3: (1, 2)})
    {'err': 0.5, 'odd': ['NaN', '-Infinity'], '3': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def dumps(meta: Mapping[str, Any]) -> str:
    """The metadata as one compact JSON string (no NaN literals)."""
    return json.dumps(jsonable(meta), allow_nan=False, separators=(",", ":"))
