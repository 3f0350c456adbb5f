"""HDF5 files are read in a reader process that cannot take the caller down or re-run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import MalformedFile
from rnnbridge.formats.hdf5 import isolation
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.hdf5.isolation import read_isolated

from ..fixtures_index import SHARED_FIXTURES

KERAS_FILE = SHARED_FIXTURES / "k2_lstm_seq" / "m.h5"
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = f"""
import rnnbridge
print("script ran")
model = rnnbridge.read([{str(KERAS_FILE)!r}])
print("layers", [layer.name for layer in model.layers])
"""


def abort(path: Path, limits: Limits) -> None:
    """A reader that crashes the way a segfaulting library does."""
    os.abort()


def spin(path: Path, limits: Limits) -> None:
    """A reader that never ends, the way libhdf5 spins on a corrupt heap."""
    while True:
        time.sleep(0.01)


def process_id(path: Path, limits: Limits) -> WeightFile:
    """A reader that tells which process ran it."""
    return WeightFile("test", {}, {"pid": os.getpid()})


def slow_process_id(path: Path, limits: Limits) -> WeightFile:
    time.sleep(0.2)
    return process_id(path, limits)


#: arrays a reader process must hand back bit for bit, with their dtypes and shapes
ARRAYS = {
    "float16": np.arange(-6, 6, dtype=np.float16).reshape(3, 4) / 3,
    "big-endian float32": np.linspace(-1, 1, 7, dtype=">f4"),
    "float64 column view": np.arange(12.0).reshape(3, 4).T,
    "signalling NaN": np.array([0x7FA00001, 0x80000000], np.uint32).view(np.float32),
    "int8": np.arange(-5, 5, dtype=np.int8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(2.5, np.float32),
    "empty": np.zeros((0, 3), np.float32),
}


def arrays(path: Path, limits: Limits) -> WeightFile:
    return WeightFile("test", dict(ARRAYS), {"shape": [3, 4]}, ["a note"])


def objects(path: Path, limits: Limits) -> WeightFile:
    return WeightFile("test", {"strings": np.array(["a", None], dtype=object)})


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
        read_isolated("tests.formats.test_isolation:abort", KERAS_FILE, Limits())


def test_a_child_that_runs_too_long_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="did not finish within 0.5 s"):
        read_isolated("tests.formats.test_isolation:spin", KERAS_FILE, Limits(read_timeout=0.5))


def test_errors_come_back_as_the_same_class(tmp_path: Path) -> None:
    garbage = tmp_path / "x.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    from rnnbridge.formats.hdf5 import keras_h5

    with pytest.raises(MalformedFile):
        keras_h5.read([InputFile("x.h5", garbage)], Limits())


def test_arrays_come_back_bit_for_bit() -> None:
    weights = read_isolated("tests.formats.test_isolation:arrays", KERAS_FILE, Limits())
    assert list(weights.tensors) == list(ARRAYS)
    for name, expected in ARRAYS.items():
        got = weights.tensors[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert got.tobytes() == np.ascontiguousarray(expected).tobytes(), name
    assert (weights.attrs, weights.notes) == ({"shape": [3, 4]}, ["a note"])


def test_object_arrays_are_refused() -> None:
    with pytest.raises(MalformedFile, match="'strings' holds object values"):
        read_isolated("tests.formats.test_isolation:objects", KERAS_FILE, Limits())


def test_a_reader_process_serves_one_file_after_another() -> None:
    first, second = (read_isolated("tests.formats.test_isolation:process_id", KERAS_FILE, Limits()) for _ in "ab")
    assert first.attrs["pid"] == second.attrs["pid"] != os.getpid()


def test_a_reader_process_is_retired_after_max_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "MAX_READS", 1)
    first, second = (read_isolated("tests.formats.test_isolation:process_id", KERAS_FILE, Limits()) for _ in "ab")
    assert first.attrs["pid"] != second.attrs["pid"]


@pytest.mark.parametrize(("reader", "timeout"), [("abort", 60.0), ("spin", 0.5)])
def test_the_next_file_is_read_by_a_sound_process(reader: str, timeout: float) -> None:
    before = read_isolated("tests.formats.test_isolation:process_id", KERAS_FILE, Limits()).attrs["pid"]
    with pytest.raises(MalformedFile):
        read_isolated(f"tests.formats.test_isolation:{reader}", KERAS_FILE, Limits(read_timeout=timeout))
    after = read_isolated("tests.formats.test_isolation:process_id", KERAS_FILE, Limits())
    assert after.attrs["pid"] != before  # the pool held one reader: the failed one, now gone
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)


def test_files_read_at_once_share_at_most_max_readers_processes() -> None:
    def read(_: int) -> int:
        return read_isolated("tests.formats.test_isolation:slow_process_id", KERAS_FILE, Limits()).attrs["pid"]

    with ThreadPoolExecutor(2 * isolation.MAX_READERS) as pool:
        pids = set(pool.map(read, range(4 * isolation.MAX_READERS)))
    assert 1 <= len(pids) <= isolation.MAX_READERS
