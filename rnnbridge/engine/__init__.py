"""The stateless NumPy engine: conventions as data, canonical per-gate arrays as the hub.

It knows nothing of files or HTTP: ``rnnbridge.formats`` reads bytes into arrays,
``rnnbridge.discovery`` names the layers, and the transports translate requests.

The names below are imported on first use, so that reading the registry
(``rnnbridge.engine.conventions``) does not load NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbridge.engine.canonical import from_canonical, to_canonical
    from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, Convention
    from rnnbridge.engine.exactness import check, select_target
    from rnnbridge.engine.model import Layer, LayerConfig, NativeLayer

_HOMES = {
    "CONVENTIONS": "conventions",
    "FRAMEWORKS": "conventions",
    "Convention": "conventions",
    "Layer": "model",
    "LayerConfig": "model",
    "NativeLayer": "model",
    "check": "exactness",
    "select_target": "exactness",
    "from_canonical": "canonical",
    "to_canonical": "canonical",
}

__all__ = [
    "CONVENTIONS",
    "FRAMEWORKS",
    "Convention",
    "Layer",
    "LayerConfig",
    "NativeLayer",
    "check",
    "from_canonical",
    "select_target",
    "to_canonical",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
