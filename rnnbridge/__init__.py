"""rnnbridge: split and re-fuse LSTM/GRU weights between TF1, Keras, PyTorch and ONNX.

The Python API for pipelines (the HTTP service and the CLI are thin layers over it)::

    import rnnbridge
    model = rnnbridge.read(["model.h5"])
    rnnbridge.inspect(model)
    result = rnnbridge.convert(model, "pytorch", prefix="")   # result.arrays, result.meta
    rnnbridge.explain(model, target="keras")                  # where every gate lives
    rnnbridge.run(model, steps=5, batch=2)                    # the forward pass, framework layout
    rnnbridge.init("pytorch", cell="lstm", input_size=8, units=16)  # per-gate-block init

Importing this package loads NumPy only; readers import h5py on first use, and nothing
here imports FastAPI.
"""

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
from rnnbridge.pipeline import Model, Result, convert, inspect, read, split
from rnnbridge.verbs import Bounds, explain, explanation_text, init, load_arrays, run

__version__ = "0.1.0"

__all__ = [
    "Bounds",
    "CONVENTIONS",
    "FRAMEWORKS",
    "InexactConversion",
    "InvalidField",
    "LayerNotFound",
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
