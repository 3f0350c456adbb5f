"""``rnnbridge explain``, ``run`` and ``init``: ``main(argv)`` in process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from rnnbridge import pipeline, verbs
from rnnbridge.cli import main


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_explain_prints_text_by_default(keras_lstm, capsys) -> None:
    assert main(["explain", str(keras_lstm), "--target", "pytorch", "--snippet", "torch"]) == 0
    out = capsys.readouterr().out
    assert "layer 'lstm': keras.lstm" in out and "C_t = f ⊙ C_(t-1) + i ⊙ c" in out
    assert "kernel[:, :6].T" in out and "to pytorch: pytorch.lstm" in out and "torch (split by hand)" in out


def test_explain_json_is_the_http_document(capsys) -> None:
    argv = [
        "explain",
        "--convention",
        "onnx.lstm",
        "--input-size",
        "3",
        "--units",
        "2",
        "--peepholes",
        "--format",
        "json",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = verbs.explain(None, convention="onnx.lstm", input_size=3, units=2, peepholes=True)
    assert printed == json.loads(json.dumps(expected))


def test_run_summarises_and_finds_the_divergence(keras_lstm, in_tmp, capsys) -> None:
    clean = verbs.run(pipeline.read([keras_lstm]), steps=4, batch=2, seed=5)
    wrong = clean.arrays["sequence"].copy()
    wrong[0, 2:, 1] -= 0.05
    np.save(in_tmp / "mine.npy", wrong)
    argv = ["run", str(keras_lstm), "--steps", "4", "--batch", "2", "--seed", "5", "--expected", "mine.npy"]
    assert main([*argv, "-o", "out.npz"]) == 0
    out = capsys.readouterr().out
    assert "sequence first diverges at step 2" in out and "D*Hout=1" in out
    with np.load(in_tmp / "out.npz", allow_pickle=False) as archive:
        assert np.array_equal(archive["sequence"], clean.arrays["sequence"])


def test_run_reads_x_from_json(keras_lstm, in_tmp, capsys) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 4))
    (in_tmp / "x.json").write_text(json.dumps(x.tolist()))
    assert main(["run", str(keras_lstm), "--x", "x.json", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["input_shape"] == [1, 3, 4] and meta["axes"]["state_c"] == ["B", "H"]


def test_init_writes_the_same_bytes_for_the_same_seed(in_tmp) -> None:
    argv = ["init", "--target", "tf1", "--input-size", "3", "--units", "4", "--peepholes", "--seed", "2"]
    assert main(argv) == 0
    first = (in_tmp / "init.to-tf1.npz").read_bytes()
    assert main([*argv, "-o", "again.npz"]) == 0
    assert (in_tmp / "again.npz").read_bytes() == first
    with np.load(io.BytesIO(first), allow_pickle=False) as archive:
        assert archive["lstm/l0/forward/kernel"].shape == (7, 16)


@pytest.mark.parametrize(
    "argv",
    [
        ["init", "--target", "pytorch", "--input-size", "50000", "--units", "50000"],
        ["init", "--target", "pytorch", "--input-size", "3", "--units", "4", "--bias-initializer", "chrono(1)"],
        ["explain"],
        ["run", "missing.h5", "--steps", "2", "--batch", "1"],
    ],
    ids=["too-large", "bad-chrono", "nothing-to-explain", "no-file"],
)
def test_errors_are_one_line_and_exit_1(argv, in_tmp, capsys) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnbridge: error: ") and "\n" not in err


def test_the_choices_spelled_in_the_cli_are_the_library_ones() -> None:
    from rnnbridge import cli_layers, outputs
    from rnnbridge.engine.expressions import DIALECTS

    assert cli_layers.FORMATS == outputs.FORMATS
    assert cli_layers.DIALECTS == DIALECTS
    assert cli_layers.DTYPES == verbs.DTYPES


@pytest.mark.parametrize(
    "output, target, written",
    [("model.onnx", "onnx", "model.onnx"), ("ckpt.tar", "tf1", "ckpt.tar"), ("out/", "keras", "out/init.to-keras.npz")],
)
def test_init_takes_the_format_from_the_output_name(output, target, written, in_tmp) -> None:
    argv = ["init", "--target", target, "--input-size", "3", "--units", "4", "-o", output]
    assert main(argv) == 0
    model = pipeline.read([in_tmp / written], source=target)
    assert [layer.convention.framework for layer in model.layers] == [target]


def test_init_refuses_a_format_its_target_cannot_hold(in_tmp, capsys) -> None:
    assert main(["init", "--target", "pytorch", "--input-size", "3", "--units", "4", "--format", "onnx"]) == 1
    assert "format onnx holds onnx weights only" in capsys.readouterr().err
