"""The ``rnnbridge`` command: ``main(argv)`` in process, and the console script once."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnbridge.cli import Progress, main

TORCH_KEYS = ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]


def _npz(source: Path | bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("__meta__")))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_inspect_prints_json(keras_lstm, capsys):
    assert main(["inspect", str(keras_lstm)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(layer["name"], layer["convention"]) for layer in document["layers"]] == [("lstm", "keras.lstm")]


def test_split_writes_the_default_name_in_the_current_directory(keras_lstm, in_tmp, capsys):
    assert main(["split", str(keras_lstm)]) == 0
    arrays, meta = _npz(in_tmp / "m.gates.npz")
    assert len(arrays) == 16 and meta["layers"][0]["orientation"] == "out_in"
    captured = capsys.readouterr()
    assert captured.out == "" and "m.gates.npz" in captured.err
    assert [p.name for p in in_tmp.iterdir()] == ["m.gates.npz"]


@pytest.mark.parametrize(("fmt", "ext"), [("npz", "npz"), ("json", "json"), ("safetensors", "safetensors")])
def test_convert_default_name_per_format(keras_lstm, in_tmp, fmt, ext):
    assert main(["convert", str(keras_lstm), "--target", "onnx", "--format", fmt]) == 0
    assert (in_tmp / f"m.to-onnx.{ext}").stat().st_size > 0


def test_json_output_matches_the_http_encoding(keras_lstm, in_tmp):
    assert main(["split", str(keras_lstm), "--format", "json", "-o", "gates.json"]) == 0
    document = json.loads((in_tmp / "gates.json").read_text())
    arrays, _ = _npz(_run_split_npz(keras_lstm, in_tmp))
    for name, payload in document["arrays"].items():
        decoded = np.array(payload["data"], dtype=payload["dtype"]).reshape(payload["shape"])
        assert decoded.tobytes() == arrays[name].tobytes()


def _run_split_npz(keras_lstm: Path, folder: Path) -> Path:
    assert main(["split", str(keras_lstm), "-o", str(folder / "ref.npz")]) == 0
    return folder / "ref.npz"


def test_output_to_stdout(keras_lstm, capsysbinary):
    assert main(["convert", str(keras_lstm), "--target", "pytorch", "--prefix", "", "-o", "-"]) == 0
    arrays, meta = _npz(capsysbinary.readouterr().out)
    assert sorted(arrays) == TORCH_KEYS and meta["target"] == "pytorch"


@pytest.mark.parametrize(
    ("extra", "keys"),
    [
        ([], [f"lstm.{k}" for k in TORCH_KEYS]),
        (["--prefix", ""], TORCH_KEYS),
        (["--prefix=m."], [f"m.{k}" for k in TORCH_KEYS]),
    ],
    ids=["absent", "empty", "given"],
)
def test_prefix(keras_lstm, in_tmp, extra, keys):
    assert main(["convert", str(keras_lstm), "--target", "pytorch", "-o", "out.npz", *extra]) == 0
    assert sorted(_npz(in_tmp / "out.npz")[0]) == keys


def test_json_flag_prints_the_metadata(keras_lstm, in_tmp, capsys):
    assert main(["convert", str(keras_lstm), "--target", "keras", "--no-verify", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["target"] == "keras" and meta["layers"][0]["verification"] is None
    assert meta == _npz(in_tmp / "m.to-keras.npz")[1]


def test_in_out_orientation(keras_lstm, in_tmp):
    assert main(["split", str(keras_lstm), "--orientation", "in_out", "-o", "t.npz"]) == 0
    assert _npz(in_tmp / "t.npz")[0]["lstm/l0/forward/W_xi"].shape == (4, 6)


@pytest.mark.parametrize("spelling", ["--source-forget-bias", "--source_forget_bias"])
def test_form_field_spellings_are_accepted(keras_lstm, in_tmp, capsys, spelling):
    """Both spellings reach the pipeline, which refuses a forget bias for a Keras layer."""
    assert main(["split", str(keras_lstm), spelling, "1.0"]) == 1
    assert capsys.readouterr().err.startswith("rnnbridge: error: invalid_field: source_forget_bias")


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["split", "{junk}"], "unsupported_format"),
        (["split", "{lstm}", "--layer", "decoder"], "layer_not_found"),
        (["convert", "{gru}", "--target", "pytorch"], None),
        (["split", "{lstm}", "--format", "h5"], "invalid_field"),
        (["split", "{missing}"], "invalid_field"),
        (["split", "{lstm}", "--json", "-o", "-"], "invalid_field"),
    ],
    ids=["garbage", "layer", "inexact", "h5", "missing", "two_stdouts"],
)
def test_errors_exit_1_with_one_line(argv, code, keras_lstm, fixtures_dir, in_tmp, capsys):
    junk = in_tmp / "junk.bin"
    junk.write_bytes(b"definitely not weights" * 10)
    paths = {
        "{junk}": junk,
        "{lstm}": keras_lstm,
        "{gru}": fixtures_dir / "k2_gru_reset_before" / "m.h5",
        "{missing}": in_tmp / "missing.h5",
    }
    assert main([str(paths.get(arg, arg)) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"rnnbridge: error: {code or ''}")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["junk.bin"]  # no partial output


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["split"],
        ["convert", "m.h5"],
        ["convert", "m.h5", "--target", "caffe"],
        ["split", "m.h5", "--format", "xml"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage: rnnbridge" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


def test_console_script_exit_codes(keras_lstm, tmp_path):
    """The installed ``rnnbridge`` entry point (``pip install -e .``): 0, 1 and 2."""
    exe = shutil.which("rnnbridge")
    if exe is None:
        pytest.skip("the rnnbridge console script is not installed (pip install -e .)")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk" * 64)
    runs = {
        0: [exe, "split", str(keras_lstm), "-o", str(tmp_path / "g.npz")],
        1: [exe, "inspect", str(junk)],
        2: [exe, "split", str(keras_lstm), "--format", "xml"],
    }
    for expected, command in runs.items():
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert run.returncode == expected, (command, run.stderr)
        assert "Traceback" not in run.stderr
    assert _npz(tmp_path / "g.npz")[1]["layers"][0]["name"] == "lstm"


def test_progress_on_request_shows_phases_and_a_full_bar(keras_lstm, in_tmp, capsys):
    assert main(["convert", str(keras_lstm), "--target", "onnx", "--progress"]) == 0
    err = capsys.readouterr().err
    phases = [line.strip() for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert phases[0].startswith("rnnbridge: reading") and "rnnbridge: converting..." in phases
    bars = [line for line in phases if line.startswith("rnnbridge: writing [")]
    assert bars[-1].endswith("100%") and "#" * Progress.WIDTH in bars[-1]
    percents = [int(line.rsplit(" ", 1)[1].rstrip("%")) for line in bars]
    assert percents == sorted(percents)
    assert phases[-1] == "rnnbridge: wrote 3 arrays to m.to-onnx.npz"


def test_no_progress_for_small_files_or_when_not_a_terminal(keras_lstm, in_tmp, capsys):
    assert main(["split", str(keras_lstm)]) == 0
    assert capsys.readouterr().err == "rnnbridge: wrote 16 arrays to m.gates.npz\n"
    assert not Progress.for_inputs([str(keras_lstm)], None).enabled


def test_the_cli_and_the_api_give_the_same_error(keras_lstm, client, in_tmp, capsys):
    assert main(["split", str(keras_lstm), "--layer", "decoder"]) == 1
    err = capsys.readouterr().err.strip()
    response = client.post("/split", files={"file": ("m.h5", keras_lstm.read_bytes())}, data={"layer": "decoder"})
    body = response.json()
    assert err == f"rnnbridge: error: {body['code']}: {body['detail']}"
