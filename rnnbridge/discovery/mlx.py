"""MLX parameter paths: ``{module path}.{Wx|Wh|bias}`` (``nn.LSTM``), ``{module path}.{Wx|Wh|b|bhn}``
(``nn.GRU``), as ``Module.save_weights`` writes them to ``.safetensors`` or ``.npz``.

An MLX recurrent module is one level in one direction with fixed activations (sigmoid,
tanh), so each module path is one layer. The cell kind comes from ``Wh`` [G·H, H]: G = 4
for an LSTM, 3 for a GRU. MLX before 0.18 stored the transposes (``Wh`` [H, G·H]); such a
module is listed as unsupported with the way out, never read with the wrong orientation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from rnnbridge.discovery.common import Found, count_other
from rnnbridge.engine.conventions import CONVENTIONS, GRU_DEFAULT_ACTIVATIONS, LSTM_DEFAULT_ACTIVATIONS
from rnnbridge.engine.model import Direction, LayerConfig, NativeLayer
from rnnbridge.errors import MalformedFile
from rnnbridge.formats.base import WeightFile

_KEY = re.compile(r"^(?P<module>(?:.*\.)?)(?P<tensor>Wx|Wh|bias|b|bhn)\Z", re.DOTALL)
_GATES = {4: "lstm", 3: "gru"}


def looks_like_mlx(names: Iterable[str]) -> bool:
    """Whether a file's names are MLX parameter paths (``….Wx`` beside ``….Wh``)."""
    known = set(names)
    return any(n.endswith("Wx") and n[:-2] + "Wh" in known for n in known if _KEY.match(n))


def find_mlx(weights: WeightFile, *, direction: str | None = None, **_: object) -> Found:
    """MLX ``nn.LSTM`` / ``nn.GRU`` modules; ``direction="reverse"`` says they read their
    sequence backwards (MLX has no such setting: the caller reversed the input)."""
    found = Found()
    groups: dict[str, dict[str, str]] = {}
    for key in weights.tensors:
        m = _KEY.match(key)
        if m is not None:
            groups.setdefault(m["module"], {})[m["tensor"]] = key
    used: set[str] = set()
    side: Direction = "backward" if direction in ("reverse", "backward") else "forward"
    for module, keys in groups.items():
        if "Wx" not in keys and "Wh" not in keys:
            continue  # a bias of some other module (a Linear's ``bias``)
        layer = _layer(module.rstrip("."), keys, weights.tensors, side, found)
        if layer is not None:
            found.layers.append(layer)
            used.update(keys.values())
    found.other_tensors = count_other(weights.tensors, used)
    return found


def _layer(
    name: str, keys: dict[str, str], tensors: dict[str, np.ndarray], side: Direction, found: Found
) -> NativeLayer | None:
    for needed in ("Wx", "Wh"):
        if needed not in keys:
            raise MalformedFile(f"MLX module {name or '(root)'!r} has no {needed}", layer=name, tensor=needed)
    hh = tensors[keys["Wh"]]
    rows, cols = hh.shape if hh.ndim == 2 else (0, 0)
    cell = _GATES.get(rows // cols if cols and rows % cols == 0 else 0)
    if cell is None:
        older = cols and rows and cols % rows == 0 and cols // rows in _GATES
        found.refuse(
            name or "(root)",
            "mlx module",
            f"Wh of shape {list(hh.shape)} is "
            + (
                "the pre-0.18 MLX layout (Wx [I, G·H], Wh [H, G·H]); load it in MLX >= 0.18 and save it again"
                if older
                else "neither an LSTM's [4H, H] nor a GRU's [3H, H]"
            ),
        )
        return None
    activations = LSTM_DEFAULT_ACTIVATIONS if cell == "lstm" else GRU_DEFAULT_ACTIVATIONS
    return NativeLayer(
        name=name or cell,
        convention=CONVENTIONS[f"mlx.{cell}"],
        config=LayerConfig(activations),
        cells={(0, side): {tensor: tensors[key] for tensor, key in keys.items()}},
        origin={(0, side, tensor): key for tensor, key in keys.items()},
    )
