"""The object-graph walk that names a SavedModel's indexed variables (real TF-written bytes)."""

from __future__ import annotations

import pytest

from rnnbridge.discovery.object_graph import structured_keys
from rnnbridge.errors import MalformedFile

from ._fixtures import FIXTURES, fixture


def _save_weights_key(layer: str, role: str) -> str:
    """The key ``save_weights`` gives a Keras weight role (``forward/kernel``, ``bias``, ...)."""
    side, _, weight = role.rpartition("/")
    scope = f"{side}_layer/" if side else ""
    return f"{layer}/{scope}cell/{weight}/.ATTRIBUTES/VARIABLE_VALUE"


def test_indexed_cell_variables_get_the_keys_save_weights_writes() -> None:
    entry = fixture("k2_savedmodel_lstm_bigru")
    keys = structured_keys((FIXTURES / entry["dir"] / "object_graph.pb").read_bytes())
    expected = {
        spec["in_files"]["saved_model.zip"]: _save_weights_key(layer["name"], role)
        for layer in entry["layers"]
        for role, spec in layer["weights"].items()
    }
    assert all(old.startswith("variables/") for old in expected)
    assert {old: keys[old] for old in expected} == expected
    assert not any(new.startswith(("variables/", "trainable_variables/")) for new in keys.values())


def test_truncated_bytes_are_a_malformed_file() -> None:
    entry = fixture("k2_savedmodel_lstm_bigru")
    graph = (FIXTURES / entry["dir"] / "object_graph.pb").read_bytes()
    with pytest.raises(MalformedFile):
        structured_keys(graph[: len(graph) // 2])


def test_an_empty_graph_names_nothing() -> None:
    assert structured_keys(b"") == {}
