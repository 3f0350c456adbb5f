"""HDF5 files are read in a child process that cannot take the caller down or re-run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.errors import MalformedFile
from service.formats.base import InputFile, Limits
from service.formats.isolation import read_in_child

from ..fixtures_index import SHARED_FIXTURES

KERAS_FILE = SHARED_FIXTURES / "k2_lstm_seq" / "m.h5"
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = f"""
import service
print("script ran")
model = service.read([{str(KERAS_FILE)!r}])
print("layers", [layer.name for layer in model.layers])
"""


def abort(path: Path, limits: Limits) -> None:
    """A reader that crashes the way a segfaulting library does."""
    os.abort()


def spin(path: Path, limits: Limits) -> None:
    """A reader that never ends, the way libhdf5 spins on a corrupt heap."""
    while True:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def needs_the_fixture() -> None:
    if not KERAS_FILE.is_file():
        pytest.skip(f"{KERAS_FILE} is not here")


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    script = tmp_path / "pipeline_step.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("script ran") == 1
    assert "layers ['lstm']" in done.stdout


def test_reading_works_from_standard_input() -> None:
    done = subprocess.run([sys.executable, "-"], input=SCRIPT, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "layers ['lstm']" in done.stdout


def test_a_crash_in_the_child_is_a_malformed_file() -> None:
    with pytest.raises(MalformedFile, match=f"crashed on it \\(killed by signal {signal.SIGABRT}\\)"):
        read_in_child("tests.formats.test_isolation:abort", KERAS_FILE, Limits())


def test_a_child_that_runs_too_long_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="did not finish within 0.5 s"):
        read_in_child("tests.formats.test_isolation:spin", KERAS_FILE, Limits(read_timeout=0.5))


def test_errors_come_back_as_the_same_class(tmp_path: Path) -> None:
    garbage = tmp_path / "x.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    from service.formats import keras_h5

    with pytest.raises(MalformedFile):
        keras_h5.read([InputFile("x.h5", garbage)], Limits())
