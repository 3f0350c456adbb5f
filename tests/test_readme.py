"""The README stays true to the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnbridge.engine.conventions import CONVENTIONS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("key", sorted(CONVENTIONS))
def test_every_convention_is_in_the_readme_table(key: str) -> None:
    assert re.search(rf"^\| `{re.escape(key)}` \|", README, re.MULTILINE), f"{key} missing from README"


def test_the_readme_lists_no_convention_that_does_not_exist() -> None:
    listed = re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", README, re.MULTILINE)
    assert sorted(listed) == sorted(CONVENTIONS)


def test_the_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "python -m pip install -e '.[test]' && python -m pytest -q" in README
    assert "python -m pip install -e '.[test]'" in ci and "python -m pytest -q" in ci
