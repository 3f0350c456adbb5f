"""Adding a framework is its registry entries, its reference step, its finder, its recipe and
its fixtures: every table keyed by framework or convention is complete, and no module decides
anything by comparing a framework's name outside those tables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rnnbridge import describe, discovery, formats
from rnnbridge.engine import conventions, reference
from rnnbridge.engine.conventions import CONVENTIONS, FORGET_BIAS_RULES, FRAMEWORK_TABLE, FRAMEWORKS, targets

ROOT = Path(__file__).resolve().parents[1]
TARGET_FRAMEWORKS = [f for f in FRAMEWORKS if targets(f, "lstm") or targets(f, "gru")]


def test_target_frameworks_are_those_with_a_convention_to_write() -> None:
    assert list(conventions.TARGET_FRAMEWORKS) == TARGET_FRAMEWORKS


def test_every_convention_belongs_to_a_framework_entry() -> None:
    assert {c.framework for c in CONVENTIONS.values()} == set(FRAMEWORK_TABLE)
    assert all(key == entry.key for key, entry in FRAMEWORK_TABLE.items())


@pytest.mark.parametrize("key", sorted(CONVENTIONS))
def test_every_convention_states_its_forget_bias_rule(key: str) -> None:
    conv = CONVENTIONS[key]
    assert conv.forget_bias_rule in FORGET_BIAS_RULES
    assert conv.forget_bias_rule == "none" or conv.cell == "lstm"
    if conv.forget_bias_rule == "none":
        assert conv.forget_bias == 0.0


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        pytest.param(reference.STEPS, set(CONVENTIONS), id="reference.STEPS"),
        pytest.param(reference.CELL_DIMS, set(CONVENTIONS), id="reference.CELL_DIMS"),
        pytest.param(describe.RECIPES, set(TARGET_FRAMEWORKS), id="describe.RECIPES"),
        pytest.param(discovery.FINDERS, set(FRAMEWORKS), id="discovery.FINDERS"),
        pytest.param(discovery.FORMAT_FRAMEWORK, set(formats.FORMATS), id="discovery.FORMAT_FRAMEWORK"),
    ],
)
def test_every_table_has_every_key(table: dict, keys: set[str]) -> None:
    assert set(table) == keys


@pytest.mark.parametrize("fmt", sorted(discovery.FORMAT_FRAMEWORK))
def test_formats_name_known_frameworks_and_a_way_to_choose(fmt: str) -> None:
    written = discovery.FORMAT_FRAMEWORK[fmt]
    assert set(written.by) <= set(FRAMEWORKS)
    assert len(written.by) <= 1 or written.guess is not None


def _framework_literals(node: ast.AST) -> list[str]:
    values = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [v.value for v in values if isinstance(v, ast.Constant) and v.value in FRAMEWORKS]


def _branches_on_a_framework(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} compares with {name!r}"
                    for name in _framework_literals(operand)
                ]
    return found


SOURCES = sorted(p for folder in ("rnnbridge", "service", "schemas") for p in (ROOT / folder).rglob("*.py"))


def test_no_module_branches_on_a_framework_name() -> None:
    found = [hit for path in SOURCES for hit in _branches_on_a_framework(path)]
    assert found == []


# explain's tables (issue 14) and verification's recipe readers are keyed by framework too

from rnnbridge.engine import init as init_engine  # noqa: E402
from rnnbridge.engine import loading, run  # noqa: E402
from rnnbridge.engine.conventions import NATIVE_GATE_LETTERS  # noqa: E402


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        pytest.param(run.OUTPUT_LAYOUTS, set(FRAMEWORKS), id="run.OUTPUT_LAYOUTS"),
        pytest.param(NATIVE_GATE_LETTERS, set(CONVENTIONS), id="conventions.NATIVE_GATE_LETTERS"),
        pytest.param(init_engine.DEFAULT_RESET_AFTER, set(TARGET_FRAMEWORKS), id="init.DEFAULT_RESET_AFTER"),
        pytest.param(describe.FRAMEWORK_VERSIONS, set(TARGET_FRAMEWORKS), id="describe.FRAMEWORK_VERSIONS"),
        pytest.param(loading._INTERPRETERS, set(TARGET_FRAMEWORKS), id="loading.INTERPRETERS"),
    ],
)
def test_every_explain_and_verification_table_has_every_key(table: dict, keys: set[str]) -> None:
    assert set(table) == keys


#: target frameworks whose own initialisation ``init`` does not describe: ``default`` is refused
NO_DEFAULT_INITIALISER = {"onnx", "haiku"}


def test_every_target_framework_has_its_own_initialiser_or_is_listed_without() -> None:
    assert set(init_engine.FRAMEWORK_DEFAULTS) == set(TARGET_FRAMEWORKS) - NO_DEFAULT_INITIALISER


@pytest.mark.parametrize("framework", sorted(init_engine.DEFAULT_RESET_AFTER))
def test_the_default_gru_variant_is_one_the_framework_writes(framework: str) -> None:
    assert any(c.reset_after == init_engine.DEFAULT_RESET_AFTER[framework] for c in targets(framework, "gru"))


@pytest.mark.parametrize("key", sorted(NATIVE_GATE_LETTERS))
def test_native_letters_rename_only_gates_the_cell_has(key: str) -> None:
    gates = "ifgo" if CONVENTIONS[key].cell == "lstm" else "zrn"
    assert set(NATIVE_GATE_LETTERS[key]) <= set(gates)
