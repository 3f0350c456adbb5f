"""rnnbridge: split and re-fuse LSTM/GRU weights between TF1, Keras, PyTorch and ONNX.

The Python API for pipelines (the HTTP service and the CLI are thin layers over it)::

    import rnnbridge
    rnnbridge.inspect("model.h5")                                 # the recurrent layers
    result = rnnbridge.convert("model.h5", "pytorch", prefix="")  # result.arrays, result.meta
    result.save("model.pt.safetensors", "safetensors")
    rnnbridge.explain(rnnbridge.read(["model.h5"]), target="keras")  # where every gate lives
    rnnbridge.run(rnnbridge.read(["model.h5"]), steps=5, batch=2)    # the forward pass
    rnnbridge.init("pytorch", cell="lstm", input_size=8, units=16)    # per-gate-block init

Importing this package loads nothing but the standard library: the names below are
imported on first use (NumPy with the verbs, h5py with the first HDF5 file), and nothing
here imports FastAPI. ``__version__`` is the installed distribution's version.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS
    from rnnbridge.errors import (
        InexactConversion,
        InvalidField,
        LayerNotFound,
        LimitExceeded,
        MalformedFile,
        RnnBridgeError,
        UnsafeInput,
        UnsupportedFormat,
        VerificationFailed,
    )
    from rnnbridge.pipeline import Model, convert, inspect, read, split
    from rnnbridge.result import LayerResult, Result
    from rnnbridge.verbs import Bounds, explain, explanation_text, init, load_arrays, run

_HOMES = {
    "CONVENTIONS": "rnnbridge.engine.conventions",
    "FRAMEWORKS": "rnnbridge.engine.conventions",
    **dict.fromkeys(
        [
            "InexactConversion",
            "InvalidField",
            "LayerNotFound",
            "LimitExceeded",
            "MalformedFile",
            "RnnBridgeError",
            "UnsafeInput",
            "UnsupportedFormat",
            "VerificationFailed",
        ],
        "rnnbridge.errors",
    ),
    **dict.fromkeys(["Model", "convert", "inspect", "read", "split"], "rnnbridge.pipeline"),
    **dict.fromkeys(["LayerResult", "Result"], "rnnbridge.result"),
    **dict.fromkeys(["Bounds", "explain", "explanation_text", "init", "load_arrays", "run"], "rnnbridge.verbs"),
}

__all__ = [
    "Bounds",
    "CONVENTIONS",
    "FRAMEWORKS",
    "InexactConversion",
    "InvalidField",
    "LayerNotFound",
    "LayerResult",
    "LimitExceeded",
    "MalformedFile",
    "Model",
    "Result",
    "RnnBridgeError",
    "UnsafeInput",
    "UnsupportedFormat",
    "VerificationFailed",
    "__version__",
    "convert",
    "explain",
    "explanation_text",
    "init",
    "inspect",
    "load_arrays",
    "read",
    "run",
    "split",
]


def version() -> str:
    """The installed version of rnnbridge (``pyproject.toml`` is where it is written)."""
    from importlib import metadata

    try:
        return metadata.version("rnnbridge")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return version()
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
