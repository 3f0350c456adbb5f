"""The stateless NumPy engine: conventions as data, canonical per-gate arrays as the hub.

It knows nothing of files or HTTP: ``service.formats`` reads bytes into arrays,
``service.discovery`` names the layers, and the transports translate requests.
"""

from .canonical import from_canonical, to_canonical
from .conventions import CONVENTIONS, FRAMEWORKS, Convention
from .exactness import check, select_target
from .model import Layer, LayerConfig, NativeLayer

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
