"""rnnbridge run from a folder with its own ``service/`` and ``schemas/`` packages.

Such folders are common (any web project has a ``service``), and ``python -m`` puts the
working directory first on ``sys.path``. rnnbridge installs one import name, so nothing
there can stand in for it, and its HDF5 reader processes start with ``python -I``, so they
do not see the folder at all. Both the CLI and the real server answer an HDF5 upload
correctly from there.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import running_server

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "k2_lstm_relu"
LAYER = "lstm_3"
SHADOWS = ["service", "schemas", "formats", "engine", "discovery"]


@pytest.fixture
def crowded_folder(tmp_path: Path) -> Path:
    """A working directory whose packages fail loudly if anything imports them."""
    folder = tmp_path / "project"
    for name in SHADOWS:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('the project folder\\'s own {name} was imported')\n"
        )
    return folder


def assert_the_gates_are_right(npz: bytes) -> None:
    with np.load(io.BytesIO(npz), allow_pickle=False) as got, np.load(FIXTURE / "rnn0.canonical.npz") as truth:
        assert json.loads(str(got["__meta__"]))["layers"][0]["name"] == LAYER
        for key in truth.files:  # l0.fw.W_x.f
            level, _, part, gate = key.split(".")
            np.testing.assert_array_equal(got[f"{LAYER}/{level}/forward/{part}{gate}"], truth[key], err_msg=key)


def test_the_cli(crowded_folder: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rnnbridge", "split", str(FIXTURE / "m.h5"), "-o", "gates.npz"],
        cwd=crowded_folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert_the_gates_are_right((crowded_folder / "gates.npz").read_bytes())


def test_the_reader_processes_do_not_see_the_folder(crowded_folder: Path) -> None:
    """With the console script (which, unlike ``python -m``, keeps the working directory off
    ``sys.path``), even a folder holding ``numpy`` and ``h5py`` packages only reaches the HDF5
    reader processes if they do not start isolated."""
    script = Path(sys.executable).with_name("rnnbridge")
    if not script.is_file():
        pytest.skip("the rnnbridge console script is not installed beside this Python")
    for name in ("numpy", "h5py"):
        (crowded_folder / name).mkdir()
        (crowded_folder / name / "__init__.py").write_text(f"raise ImportError('the folder\\'s own {name}')\n")
    run = subprocess.run(
        [str(script), "split", str(FIXTURE / "m.h5"), "-o", "gates.npz"],
        cwd=crowded_folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert_the_gates_are_right((crowded_folder / "gates.npz").read_bytes())


def test_the_server(crowded_folder: Path, tmp_path: Path) -> None:
    with running_server(tmp_path, {"RNNBRIDGE_TMP_DIR": str(tmp_path)}, cwd=crowded_folder) as server:
        files = {"file": ("m.h5", (FIXTURE / "m.h5").read_bytes())}
        response = httpx.post(f"{server.url}/split", files=files, timeout=60)
    assert response.status_code == 200, response.text
    assert_the_gates_are_right(response.content)
