"""``format=tf_checkpoint``: a tensor bundle under TF1's own variable names, read back bit for bit.

(TensorFlow itself restored these checkpoints into the matching ``tf.compat.v1`` graphs by
hand: ``tools/tf_checkpoint_proof.py``.) Here: the variable names per topology, the
``scope`` field, the tar's members, and our reader reading every byte the writer wrote.
"""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.cli import main
from rnnbridge.errors import InvalidField
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.formats.tf import checkpoint, writer
from rnnbridge.formats.tf.sstable import read_table

from ..fixtures_index import FIXTURE_LAYERS
from ..test_round_trips import source_model

NAMES = {
    "torch_lstm_1l:rnn0": ["rnn/lstm_cell/bias", "rnn/lstm_cell/kernel"],
    "tf1_multi_lstm2:rnn0": [f"rnn/multi_rnn_cell/cell_{k}/lstm_cell/{t}" for k in (0, 1) for t in ("bias", "kernel")],
    "tf1_bidi_lstm:rnn0": [f"bidirectional_rnn/{d}/lstm_cell/{t}" for d in ("bw", "fw") for t in ("bias", "kernel")],
    "tf1_bidi_multi_lstm:rnn0": [
        f"bidirectional_rnn/{d}/multi_rnn_cell/cell_{k}/lstm_cell/{t}"
        for d in ("bw", "fw")
        for k in (0, 1)
        for t in ("bias", "kernel")
    ],
    "torch_lstm_2l_bi:rnn0": [
        f"stack_bidirectional_rnn/cell_{k}/bidirectional_rnn/{d}/lstm_cell/{t}"
        for k in (0, 1)
        for d in ("bw", "fw")
        for t in ("bias", "kernel")
    ],
    "tf1_gru:rnn0": [f"rnn/gru_cell/{p}/{t}" for p in ("candidate", "gates") for t in ("bias", "kernel")],
    "torch_gru_in1:rnn0": [
        f"rnn/cudnn_compatible_gru_cell/{t}"
        for t in (
            "candidate/hidden_projection/bias",
            "candidate/hidden_projection/kernel",
            "candidate/input_projection/bias",
            "candidate/input_projection/kernel",
            "gates/bias",
            "gates/kernel",
        )
    ],
    "tf1_lstm_peephole_proj:rnn0": [
        f"rnn/lstm_cell/{t}" for t in ("bias", "kernel", "projection/kernel", "w_f_diag", "w_i_diag", "w_o_diag")
    ],
}


def checkpoint_of(fixture_id: str, tmp_path, **options) -> tuple[pipeline.Result, dict[str, bytes]]:
    fx = next(f for f in FIXTURE_LAYERS if f.id == fixture_id)
    result = pipeline.convert(source_model(fx), "tf1", **options)
    buffer = io.BytesIO()
    outputs.write(result, "tf_checkpoint", buffer)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return result, members


def read_back(members: dict[str, bytes], tmp_path):
    files = []
    for name, data in members.items():
        (tmp_path / name).write_bytes(data)
        files.append(InputFile(name, tmp_path / name))
    return checkpoint.read(files, Limits())


@pytest.mark.parametrize("fixture", sorted(NAMES))
def test_variables_carry_the_names_tf1_gives_the_cell(fixture, tmp_path):
    result, members = checkpoint_of(fixture, tmp_path)
    back = read_back(members, tmp_path)
    assert sorted(back.tensors) == NAMES[fixture]
    by_name = writer.variable_names(result.meta)
    for name, array in result.arrays.items():  # bit for bit, dtype for dtype
        stored = back.tensors[by_name[name]]
        assert stored.dtype == array.dtype and stored.tobytes() == np.ascontiguousarray(array).tobytes()


def test_the_tar_holds_the_bundle_and_its_checkpoint_file(tmp_path):
    result, members = checkpoint_of("torch_lstm_1l:rnn0", tmp_path)
    assert sorted(members) == ["checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    assert members["checkpoint"].decode().startswith('model_checkpoint_path: "model.ckpt"\n')
    entries = read_table(members["model.ckpt.index"], "index")
    assert list(entries) == sorted(entries) and entries[b""]  # the header first, keys in byte order
    back = read_back(members, tmp_path)
    meta = back.attrs["metadata"]["rnnbridge"]
    assert '"checkpoint":{"variables":{"rnn/lstm_cell/kernel":"encoder.rnn"' in meta


def test_scope_sets_the_prefix(tmp_path):
    _, members = checkpoint_of("tf1_bidi_lstm:rnn0", tmp_path, scope="encoder/birnn")
    assert "encoder/birnn/fw/lstm_cell/kernel" in read_back(members, tmp_path).tensors


@pytest.mark.parametrize(
    ("target", "scope", "message"),
    [("pytorch", "rnn", "target=tf1 only"), ("tf1", "/rnn", "not a TF variable scope"), ("tf1", "a b", "not a TF")],
)
def test_a_bad_scope_is_refused(target, scope, message):
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_lstm_1l:rnn0")
    with pytest.raises(InvalidField, match=message):
        pipeline.convert(source_model(fx), target, scope=scope)


def test_the_service_and_the_cli_write_checkpoints(client, tmp_path, monkeypatch):
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_lstm_1l:rnn0")
    with open(fx.dir / "model.pt", "rb") as upload:
        response = client.post(
            "/convert",
            files={"file": ("model.pt", upload)},
            data={"target": "tf1", "format": "tf_checkpoint", "scope": "enc"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].endswith('.to-tf1.tar"')
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        assert "model.ckpt.index" in tar.getnames()
    monkeypatch.chdir(tmp_path)
    assert main(["convert", str(fx.dir / "model.pt"), "--target", "tf1", "--format", "tf_checkpoint"]) == 0
    model = pipeline.read([tmp_path / "model.to-tf1.tar"])
    assert [layer.name for layer in model.layers] == ["encoder.rnn"]
