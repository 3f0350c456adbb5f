"""The package's public surface is what ``__all__`` says, and it imports light."""

from __future__ import annotations

import subprocess
import sys

import rnnbridge


def test_all_names_exist() -> None:
    for name in rnnbridge.__all__:
        assert hasattr(rnnbridge, name), name


def test_the_api_functions_are_the_pipeline_ones() -> None:
    from rnnbridge import pipeline

    assert rnnbridge.convert is pipeline.convert and rnnbridge.read is pipeline.read


def test_importing_the_package_loads_no_web_stack_and_no_h5py() -> None:
    code = "import sys, rnnbridge; print(sorted(m for m in ('fastapi', 'starlette', 'pydantic', 'h5py', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
