"""The ``names`` field maps a file's own array names onto a framework's, and ``/inspect``
says how when it finds no layer."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge import pipeline
from rnnbridge.cli import main
from rnnbridge.discovery.renames import parse_names
from rnnbridge.errors import InvalidField

from ..fixtures_index import FIXTURE_LAYERS


def torch_lstm() -> dict[str, np.ndarray]:
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_lstm_1l:rnn0")
    return {f"{name}_l0": array for name, array in fx.native.cells[(0, "forward")].items()}


def authored(tmp_path) -> tuple[str, dict[str, str]]:
    """The LSTM saved under its author's names, and the mapping back to PyTorch's."""
    arrays = torch_lstm()
    own = {f"enc_{name.replace('weight_', 'w_').replace('_l0', '')}": name for name in arrays}
    path = tmp_path / "weights.npz"
    np.savez(path, **{mine: arrays[theirs] for mine, theirs in own.items()})
    return str(path), {mine: f"encoder.{theirs}" for mine, theirs in own.items()}


@pytest.mark.parametrize("spelling", ["json", "pairs", "mapping"])
def test_renamed_arrays_convert_like_the_framework_file(tmp_path, spelling):
    path, mapping = authored(tmp_path)
    names = {
        "json": "{" + ",".join(f'"{k}": "{v}"' for k, v in mapping.items()) + "}",
        "pairs": "\n".join(f"{k} = {v}" for k, v in mapping.items()),
        "mapping": mapping,
    }[spelling]
    model = pipeline.read([path], source="pytorch", names=names)
    assert [layer.name for layer in model.layers] == ["encoder"]
    result = pipeline.convert(model, "pytorch", prefix="")
    for name, array in torch_lstm().items():
        assert result.arrays[name].tobytes() == array.tobytes()


def test_without_names_inspect_lists_the_fused_looking_arrays_and_how_to_name_them(tmp_path):
    path, mapping = authored(tmp_path)
    document = pipeline.inspect(pipeline.read([path], source="pytorch"))
    assert document["layers"] == []
    found = {entry["name"]: entry for entry in document["fused_looking_arrays"]}
    assert set(found) == {"enc_w_ih", "enc_w_hh"}  # biases are vectors: no shape says which
    assert found["enc_w_hh"]["looks_like"].startswith("LSTM recurrent")
    assert found["enc_w_hh"]["name_it"]["pytorch"] == "<module>.weight_hh_l0"
    assert "names" in document["how_to_name"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("enc_w_ih", "not old=new"),
        ("{not json", "not a valid JSON object"),
        ('{"a": 1}', "strings"),
        ("nothing_here=encoder.weight_ih_l0", "does not hold"),
        ("enc_w_ih=x, enc_w_hh=x", "the same name"),
        ("enc_w_ih=", "empty name"),
    ],
)
def test_bad_names_are_refused_with_the_reason(tmp_path, names, message):
    path, _ = authored(tmp_path)
    with pytest.raises(InvalidField, match=message) as caught:
        pipeline.read([path], source="pytorch", names=names)
    assert caught.value.fields()["field"] == "names"


def test_the_cli_and_the_service_take_names(tmp_path, client, capsys):
    path, mapping = authored(tmp_path)
    pairs = ",".join(f"{k}={v}" for k, v in mapping.items())
    assert main(["inspect", path, "--source", "pytorch", "--names", pairs, "--json"]) == 0
    assert '"name": "encoder"' in capsys.readouterr().out
    with open(path, "rb") as upload:
        response = client.post(
            "/inspect", files={"file": ("w.npz", upload)}, data={"source": "pytorch", "names": pairs}
        )
    assert response.status_code == 200, response.text
    assert [layer["name"] for layer in response.json()["layers"]] == ["encoder"]


def test_pairs_ignore_blank_entries():
    assert parse_names("a=b,, \n c=d ,") == {"a": "b", "c": "d"}
