"""The ``rnnbridge`` command: ``main(argv)`` in process, and the console script once."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
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
    assert main(["inspect", str(keras_lstm), "--json"]) == 0
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


# ------------------------------------------------------------------- issue 16: a friendly CLI

REPO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO_H5 = REPO_FIXTURES / "k2_stacked_bilstm" / "m.h5"  # two BiLSTM layers, in the repository


def test_version(capsys):
    import rnnbridge

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"rnnbridge {rnnbridge.__version__}\n"


def test_help_lists_every_command_with_a_line_and_an_example(capsys):
    from rnnbridge.cli import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"    {name}" in out and command.help in out
        assert command.example.startswith(f"rnnbridge {name} ") and command.example in out


@pytest.mark.parametrize("command", ["inspect", "split", "convert", "serve"])
def test_each_command_has_a_description_and_an_example(command, capsys):
    from rnnbridge.cli import COMMANDS

    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert COMMANDS[command].help[1:] in out  # the description, capitalised
    assert f"example:\n  {COMMANDS[command].example}" in out


def test_required_options_are_shown_as_required(capsys):
    assert main(["convert", "--help"]) == 0
    out = capsys.readouterr().out
    required = out.split("required options:\n", 1)[1]
    assert required.lstrip().startswith("--target")


@pytest.mark.parametrize("command", ["inspect", "split", "convert"])
def test_each_option_is_shown_in_one_spelling(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--reset_after" not in out and "--no-reset_after" not in out and "_forget_bias" not in out
    options = out.split("options:\n", 1)[1]
    assert options.count("--reset-after, --no-reset-after") == 1


def test_the_form_spellings_still_work(keras_lstm, capsys):
    assert main(["inspect", str(keras_lstm), "--json", "--no-reset_after"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"]


def test_inspect_prints_a_table_for_people(capsys):
    assert main(["inspect", str(REPO_H5)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{REPO_H5}: keras_h5, 2 recurrent layers, 0 other tensors"
    header = lines[2].split()
    assert header == ["LAYER", "CONVENTION", "INPUT", "UNITS", "LEVELS", "DIRECTION", "DTYPE"]
    rows = [line.split() for line in lines[3:5]]
    assert [row[1] for row in rows] == ["keras.lstm", "keras.lstm"] and {row[5] for row in rows} == {"bidirectional"}


@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["inspect"], "layers"),
        (["split"], "layers"),
        (["convert", "--target", "onnx"], "target"),
    ],
)
def test_json_works_the_same_on_every_command(argv, key, in_tmp, capsys):
    assert main([argv[0], str(REPO_H5), *argv[1:], "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert key in document and [layer["name"] for layer in document["layers"]] == ["bilstm_0", "bilstm_1"]


@pytest.mark.parametrize("spelling", ["out/", "out"], ids=["trailing slash (created)", "existing folder"])
def test_output_into_a_folder_under_the_default_name(spelling, in_tmp):
    if not spelling.endswith("/"):
        (in_tmp / "out").mkdir()
    assert main(["convert", str(REPO_H5), "--target", "pytorch", "-o", spelling]) == 0
    assert [p.name for p in (in_tmp / "out").iterdir()] == ["m.to-pytorch.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_output_files_get_the_permissions_of_new_files(umask, in_tmp):
    old = os.umask(umask)
    try:
        assert main(["split", str(REPO_H5), "-o", "g.npz"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((in_tmp / "g.npz").stat().st_mode) == 0o666 & ~umask


def _on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str, bytes]:
    """Run the command with standard output on a pseudo-terminal: exit code, stderr, what the terminal got.

    The terminal is drained while the command runs: a pty holds a few KiB, and a command
    that fills it waits for a reader."""
    import pty
    import select

    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "rnnbridge", *argv]
    seen = b""
    with subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, cwd=cwd) as process:
        os.close(follower)
        try:
            while True:  # read as it writes: a full terminal buffer would block the command
                ready, _, _ = select.select([leader], [], [], 120)
                if not ready:
                    raise TimeoutError("the command wrote nothing for 120 s")
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the command has closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            assert process.stderr is not None
            err = process.stderr.read().decode()
            code = process.wait(timeout=120)
        except BaseException:
            process.kill()
            raise
        finally:
            os.close(leader)
    return code, err, seen


def test_binary_to_a_terminal_is_refused(in_tmp):
    code, err, seen = _on_a_terminal(["split", str(REPO_H5), "-o", "-"], in_tmp)
    assert code == 1 and seen == b""
    assert err.startswith("rnnbridge: error: invalid_field: -o - would write binary npz to the terminal")


def test_json_to_a_terminal_is_fine(in_tmp):
    code, err, seen = _on_a_terminal(["split", str(REPO_H5), "--format", "json", "-o", "-"], in_tmp)
    assert code == 0, err
    assert json.loads(seen.replace(b"\r\n", b"\n"))["arrays"]


def test_progress_covers_reading_converting_and_writing(in_tmp, capsys):
    assert main(["convert", str(REPO_H5), "--target", "onnx", "--progress"]) == 0
    shown = [s.strip() for s in capsys.readouterr().err.replace("\r", "\n").splitlines() if s.strip()]
    for phase in ("reading", "converting", "writing"):
        bars = [s for s in shown if s.startswith(f"rnnbridge: {phase} [")]
        assert bars and bars[-1].endswith("100%"), (phase, shown)
    order = [next(i for i, s in enumerate(shown) if s.startswith(f"rnnbridge: {p}")) for p in ("reading", "converting")]
    assert order == sorted(order)
    converting = [int(s.rsplit(" ", 1)[1].rstrip("%")) for s in shown if s.startswith("rnnbridge: converting [")]
    assert converting[0] < 100  # two layers: a step between


@pytest.mark.parametrize(
    "name",
    ["model.ckpt", "model.ckpt.index", "."],
    ids=["checkpoint prefix", "index", "checkpoint folder"],
)
def test_a_checkpoint_by_its_prefix_index_or_folder(name, capsys):
    folder = REPO_FIXTURES / "tf1_lstm_forget_bias_half"
    assert main(["inspect", str(folder / name), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "tf_checkpoint" and len(document["layers"]) == 1


@pytest.mark.parametrize(
    ("argv", "says", "never"),
    [
        (["split", "{npz}"], "--source", "source="),
        (["split", "{h5}", "--format", "h5"], "--target keras", "/convert"),
        (["convert", "{h5}", "--target", "keras", "--prefix", "p."], "--target pytorch", "target="),
    ],
    ids=["source", "h5 format", "prefix"],
)
def test_messages_use_the_cli_s_terms(argv, says, never, in_tmp, capsys):
    npz = in_tmp / "bare.npz"
    np.savez(npz, kernel=np.zeros((4, 12), np.float32))
    paths = {"{npz}": str(npz), "{h5}": str(REPO_H5)}
    assert main([paths.get(arg, arg) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert says in err and never not in err and "/split" not in err and "/inspect" not in err


def test_a_missing_file_is_one_line(in_tmp, capsys):
    assert main(["inspect", "nowhere.h5"]) == 1
    assert capsys.readouterr().err == "rnnbridge: error: invalid_field: no such file: nowhere.h5\n"


LOCAL = Path(__file__).resolve().parents[1] / "fixtures"
W224 = LOCAL / "exactness" / "k2_lstm_hard_sigmoid_w224" / "w.h5"


@pytest.mark.parametrize("command", [["inspect"], ["split"], ["convert", "--target", "onnx"]])
def test_every_assumption_is_reported_on_stderr(command, in_tmp, capsys):
    assert main([command[0], str(W224), *command[1:]]) == 0
    err = capsys.readouterr().err
    assert "rnnbridge: assumed: layer 'lstm_2': activations = hard_sigmoid_keras2,tanh,tanh" in err
    assert "state it with --activations" in err
    assert "rnnbridge: assumed: layer 'lstm_2': direction = forward" in err


def test_strict_exits_1_naming_the_option(in_tmp, capsys):
    assert main(["convert", str(W224), "--target", "onnx", "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnbridge: error: assumption_required:") and "activations" in err


def test_stated_activations_convert_without_assumptions(in_tmp, capsys):
    argv = ["convert", str(W224), "--target", "pytorch", "--activations", "sigmoid,tanh", "--direction", "forward"]
    assert main([*argv, "--strict", "-o", "out.npz"]) == 0
    assert "assumed" not in capsys.readouterr().err


def test_target_forget_bias_is_refused_where_the_target_has_none(in_tmp, capsys):
    torch_lstm = LOCAL / "torch_lstm_no_bias" / "model.pt"
    assert main(["convert", str(torch_lstm), "--target", "keras", "--target-forget-bias", "2"]) == 1
    assert "target_forget_bias" in capsys.readouterr().err


def test_the_library_commands_start_without_the_http_stack(tmp_path):
    code = (
        "import sys\n"
        "from rnnbridge.cli import main\n"
        f"assert main(['split', {str(REPO_H5)!r}, '-o', {str(tmp_path / 'g.npz')!r}]) == 0\n"
        "web = ('pydantic', 'fastapi', 'starlette', 'rnnbridge.service.settings')\n"
        "print(sorted(m for m in web if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_reading_shows_the_seconds_it_runs(monkeypatch):
    """The readers cannot report as they go: reading shows it is alive, then its full bar."""
    monkeypatch.setattr(Progress, "TICK_SECONDS", 0.01)
    stream = io.StringIO()
    progress = Progress(True, stream)
    progress.update("reading", 0, 2048)
    deadline = time.monotonic() + 10
    while "s" not in stream.getvalue().rsplit("...", 1)[-1] and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.update("reading", 2048, 2048)
    shown = stream.getvalue()
    time.sleep(0.05)
    assert stream.getvalue() == shown  # no tick after the phase moved on
    progress.finish()
    lines = [line.strip() for line in stream.getvalue().split("\r") if line.strip()]
    assert lines[0] == "rnnbridge: reading 2.0 KiB..."
    assert re.fullmatch(r"rnnbridge: reading 2\.0 KiB\.\.\. \d+ s", lines[1])
    assert lines[-1] == f"rnnbridge: reading [{'#' * Progress.WIDTH}] 100%"


def test_serve_takes_json_as_its_log_format():
    from rnnbridge.cli import build_parser

    assert build_parser(only="serve").parse_args(["serve", "--json"]).log_format == "json"
    assert build_parser(only="serve").parse_args(["serve", "--log-format", "text"]).log_format == "text"
