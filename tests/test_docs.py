"""Every ``>>>`` example in the code runs, and says what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rnnbridge

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(rnnbridge.__path__, "rnnbridge.")
    if not info.name.startswith("rnnbridge.service")  # listed below: its folder is service/
    and info.name != "rnnbridge.__main__"  # runs the CLI when imported
)
SERVICE = ["rnnbridge.service.uploads"]


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module) if test.examples]


@pytest.mark.parametrize("name", [m for m in MODULES + SERVICE if _examples(m)])
def test_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed, f"{failed} of {attempted} examples of {name} failed"


def test_the_examples_are_found() -> None:
    with_examples = {m for m in MODULES + SERVICE if _examples(m)}
    assert {"rnnbridge.outputs", "rnnbridge.cli", "rnnbridge.formats.json_arrays"} <= with_examples
