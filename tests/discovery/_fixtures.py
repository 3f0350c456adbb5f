"""The generated fixtures the discovery tests read (``tests/fixtures/manifest.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnbridge import formats
from rnnbridge.formats.base import InputFile, Limits, WeightFile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(fid: str) -> dict:
    """The manifest entry of fixture ``fid`` (the test is skipped if it is absent)."""
    manifest = FIXTURES / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text())["fixtures"]:
            if entry["id"] == fid:
                return entry
    pytest.skip(f"fixture {fid} not generated")


def paths(entry: dict, name: str) -> list[Path]:
    """The files to upload for ``name`` (every file of a TF checkpoint bundle)."""
    folder = FIXTURES / entry["dir"]
    if name == "model.ckpt":
        return [folder / f["name"] for f in entry["files"]]
    return [folder / name]


def read_weights(files: list[Path]) -> WeightFile:
    """What the service's readers make of ``files``."""
    return formats.read([InputFile(p.name, p) for p in files], Limits())


def unsupported_cases(fid: str) -> list:
    """``pytest.param(entry, expected, file)`` for every unsupported layer in every file."""
    entry = fixture(fid)
    return [
        pytest.param(entry, expected, name, id=f"{fid}:{name}:{expected['name']}")
        for expected in entry["unsupported_layers"]
        for name in expected["in_files"]
    ]
