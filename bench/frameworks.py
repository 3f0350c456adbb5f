"""Against what users do today: the same conversion by loading the file in its framework.

PyTorch -> Keras for a 2-level bidirectional ``nn.LSTM`` saved with ``torch.save`` (a
``state_dict``). What users write today: ``torch.load``, then for each level and direction
``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``, ``bias = bias_ih + bias_hh``
(PyTorch's gate order i, f, g, o is Keras's), ``np.savez``. rnnbridge: ``rnnbridge convert
FILE --target keras -o OUT.npz`` (reading the pickle without torch, verification on).

Two figures per size, each ``framework time / rnnbridge time`` (> 1: rnnbridge is faster):

* ``process``: each as a fresh ``python`` process (imports included: what a pipeline
  step pays), best of ``--repeat``;
* ``in-process``: the work alone, imports excluded, best of ``--repeat``.

Skipped (with a note) when torch is not installed.

    python -m bench.frameworks                # 64 MB and 512 MB
    python -m bench.frameworks --sizes 2 --repeat 1
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import MB, ROOT, floats, machine, parser, side_by_side, state_for_megabytes, table, timed, torch_lstm_state

HEADERS = ("file MB", "torch process s", "rnnbridge process s", "process ratio", "torch work s", "rnnbridge work s", "work ratio")

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


def torch_file(workdir: Path, megabytes: float) -> Path:
    import torch

    units, inputs = state_for_megabytes(megabytes, levels=2, bidirectional=True)
    path = workdir / f"lstm2bi_h{units}_i{inputs}.pt"
    if not path.exists():
        state = {k: torch.from_numpy(v) for k, v in torch_lstm_state(units, inputs, 2, True).items()}
        torch.save(state, path)
    return path


def _process(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)


def _rnnbridge_work(path: Path, out: Path) -> None:
    from service import outputs, pipeline

    result = pipeline.convert(pipeline.read([path]), "keras")
    with out.open("wb") as stream:
        outputs.write(result, "npz", stream)


def _torch_work(path: Path, out: Path) -> None:
    namespace: dict = {"__name__": "torch_script"}
    exec(compile(TORCH_SCRIPT, "torch_script", "exec"), namespace)
    namespace["convert"](path, out)


def row(path: Path, workdir: Path, repeat: int) -> tuple:
    ours, theirs = workdir / "ours.npz", workdir / "theirs.npz"
    script = workdir / "torch_convert.py"
    script.write_text(TORCH_SCRIPT)
    torch_p, ours_p = side_by_side(
        lambda: _process([str(script), str(path), str(theirs)]),
        lambda: _process(["-m", "service", "convert", str(path), "--target", "keras", "-o", str(ours)]),
        repeat,
    )
    torch_w, ours_w = side_by_side(lambda: _torch_work(path, theirs), lambda: _rnnbridge_work(path, ours), repeat)
    _check_same(ours, theirs)
    return (path.stat().st_size / MB, torch_p, ours_p, torch_p / ours_p, torch_w, ours_w, torch_w / ours_w)


def _check_same(ours: Path, theirs: Path) -> None:
    """Both conversions hold the same Keras tensors (rnnbridge names them ``<layer>/l<k>/...``)."""
    with np.load(ours, allow_pickle=False) as a, np.load(theirs, allow_pickle=False) as b:
        for name in b.files:
            match = [key for key in a.files if key.endswith(name.split("/", 1)[1])]
            if len(match) != 1 or not np.array_equal(a[match[0]], b[name]):
                raise AssertionError(f"rnnbridge and the hand-written conversion differ on {name}")


def main(argv: list[str] | None = None) -> None:
    p = parser("rnnbridge against a hand-written torch conversion.")
    p.add_argument("--sizes", type=floats, default=[64.0, 512.0], help="file sizes in MB")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: nothing to compare against")
        return
    with tempfile.TemporaryDirectory(prefix="rnnbridge-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [row(torch_file(workdir, mb), workdir, args.repeat) for mb in args.sizes]
    print(f"# PyTorch -> Keras: torch.load + hand-written reordering vs rnnbridge ({machine()})")
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
