"""Cost of /explain, /run and /init in the engine (no HTTP): seconds and peak RSS.

* ``explain``: the gate map and a PyTorch recipe of a layer described by sizes (no data);
* ``run``: a float32 forward pass of a PyTorch LSTM (T steps, batch B), with and without
  the trace;
* ``init``: a PyTorch LSTM with orthogonal recurrent blocks (one QR per gate block) and
  its npz encoding.

    python -m bench.layers                 # units 256 and 1024
    python -m bench.layers --units 2048
"""

from __future__ import annotations

import argparse
import io
import resource
import time

from rnnbridge import outputs, pipeline, verbs


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: str, fn) -> None:
    started = time.perf_counter()
    fn()
    print(f"  {label:<44} {time.perf_counter() - started:8.3f} s   peak RSS {_peak_mb():7.0f} MB")


def bench(units: int, steps: int, batch: int) -> None:
    print(f"LSTM, input_size = units = {units}, {8 * units * units + 8 * units:,} weights")
    sizes = {"convention": "tf1.lstm", "input_size": units, "units": units}
    _timed("explain (sizes, target pytorch)", lambda: verbs.explain(None, target="pytorch", **sizes))
    layer = verbs.init("pytorch", cell="lstm", input_size=units, units=units, seed=0)
    _timed("init (orthogonal per gate block)", lambda: verbs.init("pytorch", input_size=units, units=units))
    _timed("init + npz encoding", lambda: outputs.write(layer, "npz", io.BytesIO()))
    stream = io.BytesIO()
    outputs.write(layer, "npz", stream)
    path = "/tmp/bench-layers.npz"
    with open(path, "wb") as out:
        out.write(stream.getvalue())
    model = pipeline.read([path], source="pytorch")
    _timed(f"run float32, T={steps}, B={batch}", lambda: verbs.run(model, steps=steps, batch=batch))
    _timed(f"run float32 + trace, T={steps}, B={batch}", lambda: verbs.run(model, steps=steps, batch=batch, trace=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    for units in args.units:
        bench(units, args.steps, args.batch)


if __name__ == "__main__":
    main()
