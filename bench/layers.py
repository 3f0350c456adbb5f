"""Cost of /explain, /run and /init in the engine (no HTTP): seconds and peak RSS.

Per LSTM size (input_size = units), one row per operation:

* ``explain``: the gate map and a PyTorch recipe of a layer described by sizes (no data);
* ``init``: a PyTorch LSTM, orthogonal recurrent blocks (one QR per gate block), then its
  npz encoding;
* ``run``: a float32 forward pass (T steps, batch B), then the same with the trace.

The QR goes through LAPACK, whose BLAS threads compete with every other process: on a
busy machine ``OPENBLAS_NUM_THREADS=1`` (or the like) is many times faster.

    python -m bench.layers                 # units 256 and 1024
    python -m bench.layers --units 64 --steps 5 --batch 2
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rnnbridge import outputs, pipeline, verbs

from .common import machine, table

HEADERS = ("units", "weights", "operation", "seconds", "peak RSS MB")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def rows_for(units: int, steps: int, batch: int, workdir: Path) -> list[tuple]:
    weights = 8 * units * units + 8 * units
    sizes = {"convention": "tf1.lstm", "input_size": units, "units": units}
    layer = verbs.init("pytorch", cell="lstm", input_size=units, units=units, seed=0)
    path = workdir / f"layers-{units}.npz"
    with path.open("wb") as stream:
        outputs.write(layer, "npz", stream)
    model = pipeline.read([path], source="pytorch")
    cases = [
        ("explain (sizes, target pytorch)", lambda: verbs.explain(None, target="pytorch", **sizes)),
        ("init (orthogonal per gate block)", lambda: verbs.init("pytorch", input_size=units, units=units)),
        ("init npz encoding", lambda: outputs.write(layer, "npz", io.BytesIO())),
        (f"run float32 T={steps} B={batch}", lambda: verbs.run(model, steps=steps, batch=batch)),
        (f"run float32 + trace T={steps} B={batch}", lambda: verbs.run(model, steps=steps, batch=batch, trace=True)),
    ]
    return [(units, weights, label, _timed(fn), _peak_mb()) for label, fn in cases]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None, help="where the npz of each size is written")
    args = parser.parse_args(argv)
    print(machine())
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        rows = [row for units in args.units for row in rows_for(units, args.steps, args.batch, Path(workdir))]
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
