"""Engine throughput: every source -> target pair, as a fraction of ``np.copy`` bandwidth.

For each cell (LSTM, GRU), layer size and pair among tf1 / keras / pytorch / onnx, the
conversion (``to_canonical`` + ``from_canonical``) is timed side by side with ``np.copy``
of a contiguous float32 array of the same number of bytes (fresh output each time for
both). Columns:

* ``C``: C-ordered outputs (what safetensors and HDF5 need);
* ``K``: ``order="K"``, a transposed matrix comes out in Fortran order (what ``.npy``
  accepts): no transposition at all;
* ``C+names``: ``C`` plus ``naming.tensor_names`` (ONNX stacks the directions: one more copy);
* ``verify``: ``verify.verify`` time over the ``C`` conversion time (target: <= 0.20).

    python -m bench.engine                    # 64 MB and 1 GB layers, 3 repeats
    python -m bench.engine --sizes 4 --repeat 1
    python -m bench.engine --numpy-transpose  # without the compiled transpose kernel
"""

from __future__ import annotations

import numpy as np

from rnnbridge.engine import exactness, layout, naming, verify
from rnnbridge.engine.canonical import from_canonical, to_canonical
from rnnbridge.engine.conventions import TARGET_FRAMEWORKS as FRAMEWORKS
from rnnbridge.engine.conventions import candidates

from .common import MB, SOURCES, floats, layer_bytes, machine, parser, random_layer, side_by_side, table, timed, units_for

HEADERS = ("cell", "MB", "source", "target", "copy GB/s", "C", "K", "C+names", "verify")


def convert(native, framework: str, order: str = "C"):
    canon = to_canonical(native)
    conv = exactness.select_target(canon, framework)
    return from_canonical(canon, conv, conv.forget_bias, order=order)[0]


def rows_for(cell: str, megabytes: float, repeat: int) -> list[tuple]:
    units, inputs = units_for(megabytes, cell)
    rows = []
    for key in SOURCES[cell]:
        native = random_layer(key, units, inputs)
        nbytes = layer_bytes(native)
        reference = np.ones(nbytes // 4, np.float32)
        for framework in FRAMEWORKS:
            if not candidates(framework, native.convention.cell, native.convention.reset_after):
                continue  # no module of this GRU variant: refused, nothing to time
            copy_t, c_t = side_by_side(lambda: np.copy(reference), lambda: convert(native, framework), repeat)
            _, k_t = side_by_side(lambda: None, lambda: convert(native, framework, "K"), repeat)
            _, named_t = side_by_side(lambda: None, lambda: naming.tensor_names(convert(native, framework)), repeat)
            out = convert(native, framework)
            verify_t = min(timed(lambda: verify.verify(native, out)) for _ in range(repeat))
            rows.append((cell, nbytes / MB, key, framework, nbytes / copy_t / 1e9,
                         copy_t / c_t, copy_t / k_t, copy_t / named_t, verify_t / c_t))
            del out
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    compiled = layout.transpose_into
    kernel = "NumPy tiles" if args.numpy_transpose or compiled is None else "compiled kernel"
    layout.transpose_into = None if args.numpy_transpose else compiled
    rows = []
    try:
        for megabytes in args.sizes:
            for cell in args.cells:
                rows += rows_for(cell, megabytes, args.repeat)
    finally:
        layout.transpose_into = compiled
    print(f"# engine throughput / np.copy ({machine()}; C-order transposes: {kernel})")
    print(table(HEADERS, rows))
    worst = min(rows, key=lambda r: r[5])
    print(f"\nworst C ratio {worst[5]:.2f} ({worst[2]} -> {worst[3]}, {worst[1]} MB); "
          f"worst K ratio {min(r[6] for r in rows):.2f}; largest verify share {max(r[8] for r in rows):.3f}")


def _args(argv):
    p = parser("Engine throughput as a fraction of np.copy bandwidth.")
    p.add_argument("--sizes", type=floats, default=[64.0, 1024.0], help="layer sizes in MB, comma-separated")
    p.add_argument("--cells", type=lambda s: s.split(","), default=["lstm", "gru"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--numpy-transpose", action="store_true", help="copy transposes with NumPy, not the C kernel")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
