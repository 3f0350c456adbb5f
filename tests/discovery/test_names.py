"""Layer names come from files; they reach output names, zip members and headers only
after they are made safe."""

from __future__ import annotations

import pytest

from rnnbridge.discovery.common import Found, make_names_safe, safe_name
from rnnbridge.engine import CONVENTIONS, LayerConfig, NativeLayer


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("encoder.rnn", "encoder.rnn"),
        ("rnn/multi_rnn_cell", "rnn/multi_rnn_cell"),
        ("../../etc/passwd", "__/__/etc/passwd"),
        ("/abs/path", "abs/path"),
        ("a\\..\\b", "a/__/b"),
        ("./x/./y", "x/y"),
        ("a\x00b\r\nc", "a_b__c"),
        ("", "layer"),
        ("..", "__"),
    ],
)
def test_unsafe_names_become_relative_plain_paths(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_long_names_keep_a_hash_of_what_was_cut() -> None:
    a, b = "x" * 70_000 + "a", "x" * 70_000 + "b"
    assert len(safe_name(a)) == 128 and safe_name(a) != safe_name(b)


def test_names_that_become_equal_stay_distinct() -> None:
    conv = CONVENTIONS["pytorch.lstm"]
    found = Found(layers=[NativeLayer(n, conv, LayerConfig(conv.default_activations), {}) for n in ("a\x00", "a\x01", "a_")])
    make_names_safe(found)
    assert [layer.name for layer in found.layers] == ["a_", "a_~2", "a_~3"]
    assert len(found.notes) == 3


def test_a_module_path_with_a_newline_is_found_and_made_safe(tmp_path) -> None:
    import numpy as np

    from rnnbridge import pipeline
    from rnnbridge.formats.safetensors import file as safetensors_file

    rng = np.random.default_rng(0)
    state = {
        "enc\r\nx.weight_ih_l0": rng.standard_normal((8, 3), dtype=np.float32),
        "enc\r\nx.weight_hh_l0": rng.standard_normal((8, 2), dtype=np.float32),
    }
    path = tmp_path / "crlf.safetensors"
    with path.open("wb") as stream:
        safetensors_file.write(stream, state)
    model = pipeline.read([path])
    assert [layer.name for layer in model.layers] == ["enc__x"]
    assert "enc__x.weight_ih_l0" in pipeline.convert(model, "pytorch").arrays
