"""The layers import inward only: the engine knows NumPy, the readers add h5py, and only
the transports (``rnnbridge.service``, ``rnnbridge.cli``, ``schemas``) know pydantic and FastAPI.

Each check imports modules in a fresh interpreter and lists what landed in ``sys.modules``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import rnnbridge.engine

ROOT = Path(__file__).resolve().parents[1]
WEB = {"fastapi", "starlette", "pydantic", "pydantic_settings", "uvicorn", "multipart", "python_multipart", "httpx"}
FRAMEWORKS = {"torch", "tensorflow", "keras", "onnx", "onnxruntime", "safetensors", "jax", "flax", "haiku", "equinox"}
FRAMEWORKS |= {"mlx", "paddle", "openvino", "msgpack", "coremltools", "tflite_runtime"}
ENGINE_MODULES = ["rnnbridge.engine"] + [
    f"rnnbridge.engine.{info.name}" for info in pkgutil.iter_modules(rnnbridge.engine.__path__)
]


def _imported_top_levels(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout))


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_imports_numpy_only(module):
    leaked = _imported_top_levels(module) & (WEB | FRAMEWORKS | {"h5py"})
    assert not leaked, f"{module} pulls in {sorted(leaked)}"


@pytest.mark.parametrize("module", ["rnnbridge.pipeline", "rnnbridge.outputs", "rnnbridge.errors"])
def test_library_api_imports_no_web_stack(module):
    leaked = _imported_top_levels(module) & (WEB | FRAMEWORKS)
    assert not leaked, f"{module} pulls in {sorted(leaked)}"


def test_the_transports_import_no_framework():
    leaked = _imported_top_levels("rnnbridge.service", "rnnbridge.cli", "schemas") & FRAMEWORKS
    assert not leaked, f"the transports pull in {sorted(leaked)}"
