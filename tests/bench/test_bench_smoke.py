"""Each benchmark script runs end to end on a tiny size and prints a full table.

No figure is checked against a target (timings belong to ``bench/``, not to CI); what
is checked is that every script still runs against the current code, produces one row
per case and numbers where numbers belong.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bench import convert_http, engine, frameworks, small
from bench.common import SOURCES
from rnnbridge.engine.conventions import CONVENTIONS, candidates
from rnnbridge.engine.conventions import TARGET_FRAMEWORKS as FRAMEWORKS


def table_rows(output: str) -> list[list[str]]:
    """The data rows of the Markdown table in ``output``."""
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def number(cell: str) -> bool:
    """A figure: a finite number >= 0 (a tiny run may round a ratio to 0.00)."""
    return 0 <= float(cell) < float("inf")


def test_engine_every_pair(capsys: pytest.CaptureFixture[str]) -> None:
    engine.main(["--sizes", "0.5", "--repeat", "1"])
    rows = table_rows(capsys.readouterr().out)
    pairs = {
        (key, f)
        for keys in SOURCES.values()
        for key in keys
        for f in FRAMEWORKS
        if candidates(f, CONVENTIONS[key].cell, CONVENTIONS[key].reset_after)
    }
    assert len(rows) == len(pairs)
    assert {(row[2], row[3]) for row in rows} == pairs
    assert all(number(cell) for row in rows for cell in row[4:])


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the HTTP benchmark drives curl")


@needs_curl
def test_http_against_echo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    convert_http.main(["--sizes", "0.5", "--repeat", "1", "--workdir", str(tmp_path), "--cases", "keras npz,onnx npz"])
    rows = table_rows(capsys.readouterr().out)
    assert [row[1] for row in rows] == ["keras npz", "onnx npz"]
    assert all(number(cell) for row in rows for cell in row[2:7])


def test_small_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small.main(["--workers", "1", "--clients", "1", "--requests", "3", "--workdir", str(tmp_path)])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[:4] == ["1", "1", "default", "3"] and row[-1] == "0"
    assert number(row[4]) and number(row[5])


@pytest.mark.torch
def test_frameworks_against_torch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    frameworks.main(["--sizes", "0.5", "--repeat", "1", "--workdir", str(tmp_path), "--frameworks", "torch"])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[0] == "torch"
    assert all(number(cell) for cell in row[1:])


def test_frameworks_against_tf_keras(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs where an interpreter with tf_keras is given (``RNNBRIDGE_BENCH_TF_PYTHON``) or is this one."""
    python = os.environ.get("RNNBRIDGE_BENCH_TF_PYTHON", sys.executable)
    if frameworks.framework_version(python, "tf_keras") is None:
        pytest.skip(f"{python} cannot import tf_keras")
    argv = ["--sizes", "0.5", "--repeat", "1", "--workdir", str(tmp_path), "--frameworks", "tf_keras"]
    frameworks.main([*argv, "--tf-python", python])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[0] == "tf_keras"
    assert all(number(cell) for cell in row[1:])


def test_frameworks_skip_a_missing_framework(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-python"
    frameworks.main(["--sizes", "0.5", "--frameworks", "tf_keras", "--tf-python", str(missing)])
    output = capsys.readouterr().out
    assert f"tf_keras: skipped, {missing} cannot import tf_keras" in output
    assert table_rows(output) == []
