"""The stateless NumPy engine: conventions as data, canonical per-gate arrays as the hub.

It knows nothing of files or HTTP: ``rnnbridge.formats`` reads bytes into arrays,
``rnnbridge.discovery`` names the layers, and the transports translate requests.
"""

from rnnbridge.engine.canonical import from_canonical, to_canonical
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, Convention
from rnnbridge.engine.exactness import check, select_target
from rnnbridge.engine.model import Layer, LayerConfig, NativeLayer

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
