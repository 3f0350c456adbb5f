"""The layers import inward only: the engine knows NumPy, the readers add h5py, and only
the transports (``rnnbridge.service``, ``rnnbridge.cli``, ``rnnbridge.schemas``) know
pydantic and FastAPI.

The import checks run in a fresh interpreter and list what landed in ``sys.modules``; the
rules on which rnnbridge module may import which are read from the source (``ast``):

* the transports reach the library through its public verbs and the registries only
  (``PUBLIC``), never a reader, a finder or the engine's internals;
* readers and writers (``rnnbridge.formats``) know nothing of conventions but the
  registry's public names (``REGISTRY_NAMES``), and nothing of what sits above them.
"""

from __future__ import annotations

import ast
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

#: what the transports may import from the library: the verbs, their arguments and
#: results, the errors, and the registries of conventions, output formats and option values
PUBLIC = {
    "rnnbridge",
    "rnnbridge.pipeline",
    "rnnbridge.result",
    "rnnbridge.errors",
    "rnnbridge.outputs",
    "rnnbridge.options",
    "rnnbridge.engine.conventions",
    "rnnbridge.formats.base",  # InputFile and Limits, the verbs' argument types
}
TRANSPORT_PACKAGES = ("rnnbridge.service", "rnnbridge.schemas")
#: what readers and writers may take from the engine: the registry's public names
REGISTRY_NAMES = {"CONVENTIONS", "FRAMEWORKS", "Convention"}
#: the folders as installed (setup.py maps service/ and schemas/ below rnnbridge)
FOLDERS = {
    "rnnbridge": ROOT / "rnnbridge",
    "rnnbridge.service": ROOT / "service",
    "rnnbridge.schemas": ROOT / "schemas",
}


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
    leaked = _imported_top_levels("rnnbridge.service", "rnnbridge.cli", "rnnbridge.schemas") & FRAMEWORKS
    assert not leaked, f"the transports pull in {sorted(leaked)}"


@pytest.mark.parametrize("module", ["rnnbridge.cli", "rnnbridge.engine.conventions", "rnnbridge.outputs"])
def test_the_choices_load_without_numpy(module):
    """``rnnbridge --help`` and the registries it lists import neither NumPy nor the web stack."""
    leaked = _imported_top_levels(module) & (WEB | FRAMEWORKS | {"numpy", "h5py"})
    assert not leaked, f"{module} pulls in {sorted(leaked)}"


# ------------------------------------------------------------------- who imports whom


def _modules(package: str) -> dict[str, Path]:
    """Every module below ``package`` (as installed) and its source file."""
    folder = FOLDERS[package]
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    if package == "rnnbridge":  # the service and schemas have their own folders
        found = {name: path for name, path in found.items() if not name.startswith(TRANSPORT_PACKAGES)}
    return found


def _imports(module: str, path: Path) -> list[tuple[str, str | None]]:
    """``(module imported, name taken from it or None)`` for every import in ``path``."""
    found: list[tuple[str, str | None]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up ``level - 1`` packages from this one
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            found += [(base, alias.name) for alias in node.names]
    return found


def _library_module(imported: str, name: str | None) -> str:
    """The library module an import reaches (``from rnnbridge import pipeline``: rnnbridge.pipeline)."""
    candidate = f"{imported}.{name}" if name else imported
    return candidate if candidate in ALL_MODULES else imported


ALL_MODULES = {**_modules("rnnbridge"), **_modules("rnnbridge.service"), **_modules("rnnbridge.schemas")}
TRANSPORTS = {
    name: path
    for name, path in ALL_MODULES.items()
    if name.startswith(TRANSPORT_PACKAGES)
    or name in ("rnnbridge.cli", "rnnbridge.cli_layers", "rnnbridge.terminal", "rnnbridge.__main__")
}
FORMATS = {name: path for name, path in ALL_MODULES.items() if name.startswith("rnnbridge.formats")}


@pytest.mark.parametrize("module", sorted(TRANSPORTS))
def test_transports_use_the_public_verbs_only(module):
    reached = {
        _library_module(imported, name)
        for imported, name in _imports(module, TRANSPORTS[module])
        if imported.split(".")[0] == "rnnbridge"
    }
    internal = sorted(m for m in reached if m not in PUBLIC and m not in TRANSPORTS)
    assert not internal, f"{module} imports library internals {internal}: add a public verb instead"


@pytest.mark.parametrize("module", sorted(FORMATS))
def test_readers_and_writers_know_conventions_only_through_the_registry(module):
    above = ("rnnbridge.discovery", "rnnbridge.pipeline", "rnnbridge.result", "rnnbridge.outputs", "rnnbridge.cli")
    for imported, name in _imports(module, FORMATS[module]):
        target = _library_module(imported, name)
        assert not target.startswith(above + TRANSPORT_PACKAGES), f"{module} imports {target}, which sits above it"
        if target.startswith("rnnbridge.engine"):
            assert target == "rnnbridge.engine.conventions" and name in REGISTRY_NAMES, (
                f"{module} imports {name} from {imported}: readers and writers know conventions only "
                f"through the registry's {sorted(REGISTRY_NAMES)}"
            )


def test_the_rules_see_the_modules():
    """The scans above would pass vacuously if the module lists were wrong."""
    assert {"rnnbridge.cli", "rnnbridge.service.routes", "rnnbridge.schemas"} <= TRANSPORTS.keys()
    assert {"rnnbridge.formats.npz", "rnnbridge.formats.hdf5.keras_weights"} <= FORMATS.keys()
    routes = "rnnbridge.service.routes"
    assert "rnnbridge.pipeline" in {_library_module(m, n) for m, n in _imports(routes, TRANSPORTS[routes])}
