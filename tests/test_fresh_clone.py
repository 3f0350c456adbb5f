"""The suite runs from the repository alone.

``.ci/run`` runs the README's test command in a fresh clone with nothing beside it (its main
run). These tests keep that true between CI runs: a representative subset runs from a copy of
the repository's files in a temporary folder, with no ``../shared``, and no test reaches for
the shared fixtures except through ``tests/fixtures_index.py``, whose committed copy is
``tests/fixtures/shared``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .fixtures_index import BESIDE_FIXTURES, SHARED_FIXTURES, SHARED_MANIFEST

ROOT = Path(__file__).resolve().parents[1]
#: test modules that read the committed copy of the shared fixtures
SUBSET = ["tests/test_keras_weights.py", "tests/formats/test_keras_zip.py", "tests/formats/test_diagnose.py"]


def _repository_files() -> list[str]:
    """The files a clone would have (tracked, plus new ones not ignored), or None outside git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: .ci/run's fresh clone is the check")
    return [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_a_copy_without_shared_beside_it_runs_the_fixture_tests(tmp_path):
    copy = tmp_path / "rnnbridge"
    for name in _repository_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    assert not (tmp_path / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *SUBSET],
        cwd=copy, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\d+ passed", run.stdout) and " failed" not in run.stdout
    assert "shared fixtures" not in run.stdout, run.stdout[-4000:]  # nothing skipped for want of them


def test_the_committed_copy_holds_every_shared_fixture_it_lists():
    assert SHARED_MANIFEST, f"no manifest at {SHARED_FIXTURES}"
    for fixture in SHARED_MANIFEST:
        for entry in fixture["files"]:
            assert (SHARED_FIXTURES / fixture["dir"] / entry["name"]).is_file(), (fixture["id"], entry["name"])


def test_no_test_reads_the_shared_folder_beside_the_checkout_directly():
    beside = re.compile(r"""parents?\[\d\]\.parent\s*/\s*["']shared["']|\.\./shared""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if path.name not in ("fixtures_index.py", Path(__file__).name) and beside.search(path.read_text())
    ]
    assert offenders == [], f"read ../shared through tests/fixtures_index.py instead: {offenders}"
    assert BESIDE_FIXTURES == ROOT.parent / "shared" / "fixtures"
