"""Against what users do today: the same conversion by loading the file in its framework.

Two cases, each a 2-level bidirectional LSTM of about the requested size:

* ``torch``: PyTorch -> Keras for an ``nn.LSTM`` saved with ``torch.save`` (a
  ``state_dict``). What users write today: ``torch.load``, then for each level and
  direction ``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``, ``bias = bias_ih
  + bias_hh`` (PyTorch's gate order i, f, g, o is Keras's), ``np.savez``.
* ``tf_keras``: Keras 2 -> PyTorch for two stacked ``Bidirectional(LSTM)`` layers saved
  whole with ``model.save("....h5")``. What users write today:
  ``tf_keras.models.load_model(path, compile=False)``, then for each layer and direction
  ``get_weights()``, ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``,
  ``bias_ih = bias``, ``bias_hh = zeros`` (Keras's gate order i, f, c, o is PyTorch's),
  ``np.savez``. TensorFlow need not be installed where rnnbridge runs: this side runs in
  the interpreter given by ``--tf-python`` (e.g. a venv's ``bin/python``), which also
  writes the ``.h5`` file.

rnnbridge: ``rnnbridge convert FILE --target keras|pytorch -o OUT.npz`` (no framework,
verification on). Both outputs are checked equal. Two figures per case and size, each
``framework time / rnnbridge time`` (> 1: rnnbridge is faster):

* ``process``: each as a fresh ``python`` process (imports included: what a pipeline
  step pays), best of ``--repeat``;
* ``work``: the conversion alone, imports excluded, best of ``--repeat``. rnnbridge runs
  its CLI's ``main`` in this process, torch's script too; the tf_keras script runs in a
  fresh ``--tf-python`` process that imports tf_keras, starts TensorFlow's runtime and
  then times the conversion (printed as JSON on its standard output).

A framework that is not installed (torch here, tf_keras in ``--tf-python``) is skipped
with a note.

    python -m bench.frameworks --tf-python /path/to/venv/bin/python   # 64 MB and 512 MB
    python -m bench.frameworks --sizes 2 --repeat 1 --frameworks torch
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import MB, ROOT, floats, machine, parser, state_for_megabytes, table, timed, torch_lstm_state

HEADERS = (
    "framework", "file MB", "framework process s", "rnnbridge process s", "process ratio",
    "framework work s", "rnnbridge work s", "work ratio",
)  # fmt: skip
FRAMEWORKS = ("torch", "tf_keras")
#: quiets TensorFlow's C++ start-up log in every tf_keras process (timings are unaffected)
TF_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

#: the hand-written conversion users do with PyTorch installed
TORCH_SCRIPT = """
import sys, numpy as np, torch

def convert(source, target):
    state = torch.load(source, map_location="cpu", weights_only=True)
    out = {}
    levels = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state)
    for level in range(levels):
        for suffix, direction in (("", "forward"), ("_reverse", "backward")):
            get = lambda name: state[f"{name}_l{level}{suffix}"].numpy()
            out[f"lstm/l{level}/{direction}/kernel"] = np.ascontiguousarray(get("weight_ih").T)
            out[f"lstm/l{level}/{direction}/recurrent_kernel"] = np.ascontiguousarray(get("weight_hh").T)
            out[f"lstm/l{level}/{direction}/bias"] = get("bias_ih") + get("bias_hh")
    np.savez(target, **out)

if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
"""

#: the hand-written conversion users do with tf_keras installed (one nn.LSTM per Keras layer)
TF_KERAS_SCRIPT = """
import sys, numpy as np, tf_keras

def convert(source, target):
    model = tf_keras.models.load_model(source, compile=False)
    out = {}
    for layer in model.layers:
        weights = layer.get_weights()  # forward kernel, recurrent_kernel, bias, then backward
        for suffix, (kernel, recurrent_kernel, bias) in zip(("", "_reverse"), (weights[:3], weights[3:])):
            out[f"{layer.name}.weight_ih_l0{suffix}"] = np.ascontiguousarray(kernel.T)
            out[f"{layer.name}.weight_hh_l0{suffix}"] = np.ascontiguousarray(recurrent_kernel.T)
            out[f"{layer.name}.bias_ih_l0{suffix}"] = bias
            out[f"{layer.name}.bias_hh_l0{suffix}"] = np.zeros_like(bias)
    np.savez(target, **out)

if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
"""

#: runs a script's ``convert`` once after its imports and TensorFlow's start; prints the seconds
TF_TIMER = """
import json, runpy, sys, time
namespace = runpy.run_path(sys.argv[1])
import tensorflow as tf
tf.zeros(1).numpy()
start = time.perf_counter()
namespace["convert"](sys.argv[2], sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

#: writes the tf_keras model: argv = path, units, inputs; weights as ``torch_lstm_state``'s
TF_KERAS_WRITER = """
import sys, numpy as np, tf_keras
path, units, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers = tf_keras.layers
model = tf_keras.Sequential([
    tf_keras.Input((None, inputs)),
    layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
    layers.Bidirectional(layers.LSTM(units, return_sequences=True)),
])
rng = np.random.default_rng(0)
model.set_weights([rng.standard_normal(w.shape, dtype=np.float32) * np.float32(0.05) for w in model.weights])
model.save(path)
"""


@dataclass(frozen=True)
class Case:
    """One framework's side of the comparison.

    ``make_file(workdir, megabytes)`` writes (or finds) the source file; ``work(script,
    source, out)`` runs the hand-written ``script`` and returns the seconds of its
    conversion, imports excluded; ``tail(name)`` is the end of the rnnbridge output name
    that holds the script's tensor ``name``.
    """

    framework: str
    target: str
    python: str
    script: str
    make_file: Callable[[Path, float], Path]
    work: Callable[[Path, Path, Path], float]
    tail: Callable[[str], str]
    env: dict[str, str] | None = None


def torch_case() -> Case:
    """PyTorch -> Keras; the script names a tensor ``lstm/l<k>/<direction>/<name>``, rnnbridge
    ``<layer>/l<k>/<direction>/<name>``."""
    return Case("torch", "keras", sys.executable, TORCH_SCRIPT, torch_file, _torch_work, _after_first_segment)


def _after_first_segment(name: str) -> str:
    return name.split("/", 1)[1]


def tf_keras_case(python: str) -> Case:
    """Keras 2 h5 -> PyTorch, the tf_keras side run by ``python``; both name a tensor
    ``<keras layer>.<pytorch name>``."""
    return Case(
        "tf_keras",
        "pytorch",
        python,
        TF_KERAS_SCRIPT,
        lambda workdir, megabytes: tf_keras_file(python, workdir, megabytes),
        lambda script, source, out: _timed_in(python, script, source, out),
        lambda name: name,
        TF_ENV,
    )


def torch_file(workdir: Path, megabytes: float) -> Path:
    import torch

    units, inputs = state_for_megabytes(megabytes, levels=2, bidirectional=True)
    path = workdir / f"lstm2bi_h{units}_i{inputs}.pt"
    if not path.exists():
        state = {k: torch.from_numpy(v) for k, v in torch_lstm_state(units, inputs, 2, True).items()}
        torch.save(state, path)
    return path


def tf_keras_file(python: str, workdir: Path, megabytes: float) -> Path:
    """A 2-level bidirectional LSTM Keras 2 model saved whole as ``.h5``, written once per ``workdir``."""
    units, inputs = state_for_megabytes(megabytes, levels=2, bidirectional=True)
    path = workdir / f"lstm2bi_h{units}_i{inputs}.tf_keras.h5"
    if not path.exists():
        partial = path.with_name(f"partial-{path.name}")
        _process(python, ["-c", TF_KERAS_WRITER, str(partial), str(units), str(inputs)], TF_ENV)
        partial.replace(path)
    return path


def _process(python: str, args: list[str], env: dict[str, str] | None = None) -> str:
    """Run ``python args`` from the repository root; its standard output."""
    try:
        done = subprocess.run([python, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{python} {' '.join(args[:2])} failed:\n{exc.stderr[-2000:]}") from None
    return done.stdout


def _timed_in(python: str, script: Path, source: Path, out: Path) -> float:
    """Seconds of ``script``'s conversion in a fresh ``python``, as ``TF_TIMER`` prints them."""
    printed = _process(python, ["-c", TF_TIMER, str(script), str(source), str(out)], TF_ENV)
    return float(json.loads(printed.splitlines()[-1])["seconds"])


def _torch_work(script: Path, source: Path, out: Path) -> float:
    namespace: dict = {"__name__": "torch_script"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    return timed(lambda: namespace["convert"](source, out))


def _rnnbridge_work(source: Path, target: str, out: Path) -> float:
    """Seconds of ``rnnbridge convert`` run in this process (its "wrote ..." line dropped)."""
    from rnnbridge import cli

    def convert() -> None:
        with contextlib.redirect_stderr(io.StringIO()) as stderr:
            status = cli.main(["convert", str(source), "--target", target, "-o", str(out)])
        if status != 0:
            raise RuntimeError(f"rnnbridge convert {source} --target {target}: {stderr.getvalue()}")

    return timed(convert)


def best_of(reference: Callable[[], float], subject: Callable[[], float], repeat: int) -> tuple[float, float]:
    """Best seconds each call reports, run alternately ``repeat`` times each (as ``common.side_by_side``)."""
    best_ref = best_sub = math.inf
    for _ in range(repeat):
        best_ref = min(best_ref, reference())
        best_sub = min(best_sub, subject())
    return best_ref, best_sub


def row(case: Case, path: Path, workdir: Path, repeat: int) -> tuple:
    """The table row of ``case`` on the file ``path``."""
    ours, theirs = workdir / "ours.npz", workdir / "theirs.npz"
    script = workdir / f"{case.framework}_convert.py"
    script.write_text(case.script)
    framework_cli = [str(script), str(path), str(theirs)]
    rnnbridge_cli = ["-m", "rnnbridge", "convert", str(path), "--target", case.target, "-o", str(ours)]
    their_p, ours_p = best_of(
        lambda: timed(lambda: _process(case.python, framework_cli, case.env)),
        lambda: timed(lambda: _process(sys.executable, rnnbridge_cli)),
        repeat,
    )
    _check_same(ours, theirs, case.tail)
    their_w, ours_w = best_of(
        lambda: case.work(script, path, theirs), lambda: _rnnbridge_work(path, case.target, ours), repeat
    )
    _check_same(ours, theirs, case.tail)
    size = path.stat().st_size / MB
    return (case.framework, size, their_p, ours_p, their_p / ours_p, their_w, ours_w, their_w / ours_w)


def _check_same(ours: Path, theirs: Path, tail: Callable[[str], str]) -> None:
    """Both conversions hold the same tensors (rnnbridge's names end with ``tail(name)``)."""
    with np.load(ours, allow_pickle=False) as a, np.load(theirs, allow_pickle=False) as b:
        if len(a.files) - 1 != len(b.files):  # rnnbridge adds __meta__
            raise AssertionError(f"rnnbridge wrote {len(a.files) - 1} tensors, the script {len(b.files)}")
        for name in b.files:
            match = [key for key in a.files if key.endswith(tail(name))]
            if len(match) != 1 or not np.array_equal(a[match[0]], b[name]):
                raise AssertionError(f"rnnbridge and the hand-written conversion differ on {name}")


def cases(frameworks: list[str], tf_python: str) -> tuple[list[Case], list[str]]:
    """The cases of ``frameworks`` that can run here, and a note for each that cannot."""
    found, notes = [], []
    for name in frameworks:
        version = framework_version(sys.executable if name == "torch" else tf_python, name)
        where = "this interpreter" if name == "torch" else tf_python
        if version is None:
            notes.append(f"{name}: skipped, {where} cannot import {name}")
            continue
        found.append(torch_case() if name == "torch" else tf_keras_case(tf_python))
        notes.append(f"{name} {version} ({where})")
    return found, notes


def framework_version(python: str, module: str) -> str | None:
    """``module.__version__`` as ``python`` imports it, or None when it cannot."""
    probe = f"import {module}; print({module}.__version__)"
    try:
        done = subprocess.run([python, "-c", probe], env=TF_ENV, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else None


def framework_names(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    unknown = sorted(set(names) - set(FRAMEWORKS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {','.join(FRAMEWORKS)}, not {text!r}")
    return names


def main(argv: list[str] | None = None) -> None:
    p = parser("rnnbridge against hand-written conversions that load the file in its framework.")
    p.add_argument("--sizes", type=floats, default=[64.0, 512.0], help="file sizes in MB")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--frameworks", type=framework_names, default=list(FRAMEWORKS), help="comma-separated")
    p.add_argument("--tf-python", default=sys.executable, help="the interpreter that has tf_keras")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    args = p.parse_args(argv)
    found, notes = cases(args.frameworks, args.tf_python)
    with tempfile.TemporaryDirectory(prefix="rnnbridge-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [row(case, case.make_file(workdir, mb), workdir, args.repeat) for case in found for mb in args.sizes]
    print(f"# Framework + hand-written reordering vs rnnbridge ({machine()})")
    print("# torch: PyTorch state_dict -> Keras; tf_keras: Keras 2 .h5 model -> PyTorch")
    print("\n".join(f"# {note}" for note in notes))
    if rows:
        print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
