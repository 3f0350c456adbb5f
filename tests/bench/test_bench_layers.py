"""``bench.layers`` runs end to end on a tiny size and prints one row per operation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import layers


def test_layers_every_operation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layers.main(["--units", "8", "--steps", "3", "--batch", "2", "--workdir", str(tmp_path)])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[2].split(" ")[0] for row in rows] == ["explain", "init", "init", "run", "run"]
    assert all(float(row[3]) >= 0 and float(row[4]) > 0 for row in rows)
