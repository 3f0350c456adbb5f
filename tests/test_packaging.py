"""What ``pip install rnnbridge`` installs: one import package, ``rnnbridge``, and its version.

The wheel is built from a copy of the files the build reads (setup.py, pyproject.toml,
README.md and the three package folders), so that the check also proves nothing else is
needed, and nothing is left in the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["setup.py", "pyproject.toml", "README.md", "rnnbridge", "service", "schemas"]
OFFLINE = ("No matching distribution", "Could not find a version", "Failed to establish a new connection")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if build.returncode != 0 and any(sign in build.stderr for sign in OFFLINE):
        pytest.skip("the build backend (setuptools) cannot be fetched: no package index")
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("rnnbridge-*.whl")
    return zipfile.ZipFile(built)


def test_the_only_top_level_import_name_is_rnnbridge(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"rnnbridge"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert wheel.read(top_level).decode().split() == ["rnnbridge"]


@pytest.mark.parametrize(
    "member",
    [
        "rnnbridge/py.typed",
        "rnnbridge/__main__.py",
        "rnnbridge/service/app.py",
        "rnnbridge/service/routes.py",
        "rnnbridge/service/static/swagger-ui-bundle.js",
        "rnnbridge/service/static/redoc.standalone.js",
        "rnnbridge/service/page.py",
        "rnnbridge/service/static/page/index.html",
        "rnnbridge/service/static/page/app.js",
        "rnnbridge/schemas/__init__.py",
        "rnnbridge/formats/hdf5/keras_h5.py",
        "rnnbridge/engine/_transpose.pyi",
    ],
)
def test_the_wheel_holds(wheel: zipfile.ZipFile, member: str) -> None:
    assert member in wheel.namelist()


def test_the_wheel_holds_no_tests_and_no_c_source(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".c")]


def test_the_version_is_written_once(wheel: zipfile.ZipFile) -> None:
    """pyproject.toml states it; the metadata carries it; the package reads it from there."""
    tomllib = pytest.importorskip("tomllib")

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    assert f"\nVersion: {declared}\n" in wheel.read(metadata).decode()
    sources = [p for p in (ROOT / "rnnbridge").rglob("*.py") if declared in p.read_text()]
    assert not sources, f"the version is written in {sources}"


def test_python_m_rnnbridge_version() -> None:
    import rnnbridge

    run = subprocess.run([sys.executable, "-m", "rnnbridge", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"rnnbridge {rnnbridge.__version__}\n"
    assert rnnbridge.__version__ != "0+unknown"
