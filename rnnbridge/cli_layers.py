"""``rnnbridge explain``, ``rnnbridge run`` and ``rnnbridge init``: the /explain, /run and
/init endpoints offline (``rnnbridge.explain``, ``rnnbridge.run``, ``rnnbridge.init``),
registered as ``Command`` entries of ``rnnbridge.cli.COMMANDS``::

    rnnbridge explain [FILE...] [--target T] [--format text|json] [--snippet numpy|torch|tensorflow]
    rnnbridge explain --convention tf1.lstm --input-size 6 --units 10
    rnnbridge run FILE... [--x X.npy | --steps T --batch B --seed S] [--h0 H] [--c0 C]
                  [--expected Y.npy] [--trace] [--dtype float32|float64] [--time-major] [-o OUT]
    rnnbridge init --target T --input-size I --units H [--cell lstm|gru] [...] [-o OUT]

``explain`` prints text for a person by default (``--format json`` or ``--json``: the HTTP
document). ``run`` prints a summary (each output's name, layout and first values, and where
``--expected`` first diverges); ``-o`` writes the arrays (npz, json or safetensors, by
``--format`` or the extension). ``init`` writes ``init.<target>.<ext>`` unless ``-o`` says
otherwise, in any output format the target has (``h5`` Keras, ``onnx``, ``tf_checkpoint``).
The reading options are ``inspect``'s; the bounds are the service's
``RNNBRIDGE_MAX_INIT_WEIGHTS``, ``RNNBRIDGE_MAX_RUN_ELEMENTS`` and ``RNNBRIDGE_MAX_RUN_WORK``
where set. Like the other commands, these import NumPy only when they run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbridge.cli import (
    _check_output_options,
    _emit,
    _option,
    _reading,
    _reading_options,
    _report_assumptions,
    _settings,
)
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS
from rnnbridge.errors import InvalidField
from rnnbridge.options import ORIENTATIONS
from rnnbridge.outputs import FORMATS, OUTPUTS
from rnnbridge.terminal import PROG, Progress

if TYPE_CHECKING:
    import numpy as np

    import rnnbridge

# the choices, spelled here so that ``rnnbridge --help`` loads no NumPy
DIALECTS = ("numpy", "torch", "tensorflow")
DTYPES = ("float16", "float32", "float64")
#: what /run's arrays can be written as: the formats that are not one framework's weights
RUN_FORMATS = tuple(name for name, output in OUTPUTS.items() if output.targets is None)
#: the ``RNNBRIDGE_*`` variables that bound explain, run and init (``Settings``)
BOUND_VARIABLES = ("RNNBRIDGE_MAX_INIT_WEIGHTS", "RNNBRIDGE_MAX_RUN_ELEMENTS", "RNNBRIDGE_MAX_RUN_WORK")


# ------------------------------------------------------------------- the options


def explain_options(p: argparse.ArgumentParser) -> None:
    _reading_options(p, files="*")
    p.add_argument("--layer", help="one layer by name (default: all)")
    _option(p, "source_forget_bias", type=float, metavar="BIAS", help="TF1 LSTM run-time forget_bias, source")
    p.add_argument("--strict", action="store_true", help="refuse every assumption (exit 1, assumption_required)")
    p.add_argument("--target", choices=FRAMEWORKS, help="also show how convert builds this target")
    _option(p, "target_forget_bias", type=float, metavar="BIAS", help="TF1 target run-time forget_bias")
    p.add_argument("--prefix", help="PyTorch target key prefix (default: layer name + '.')")
    p.add_argument(
        "--output-format",
        dest="output_format",
        choices=FORMATS,
        help="the target's output format (tf_checkpoint: each tensor's variable name)",
    )
    p.add_argument("--scope", help="TF1 variable scope in a tf_checkpoint (with --output-format tf_checkpoint)")
    p.add_argument("--orientation", choices=ORIENTATIONS, default="out_in", help="out_in: W·x; in_out: x·W")
    p.add_argument("--format", choices=("text", "json"), default="text", help="default text (--json: json)")
    p.add_argument("--snippet", choices=DIALECTS, action="append", help="snippets to print (text; default numpy)")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), help="without a file: the convention")
    _option(p, "input_size", type=int, help="without a file: input size I")
    p.add_argument("--units", type=int, help="without a file: units H")
    _option(p, "proj_size", type=int, default=0, help="without a file: LSTM projection size")
    _option(p, "num_layers", type=int, default=1, help="without a file: levels")
    p.add_argument("--bidirectional", action="store_true", help="without a file: two directions")
    p.add_argument("--peepholes", action="store_true", help="without a file: LSTM peepholes")
    _option(p, "no_bias", action="store_true", help="without a file: no biases stored")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="without a file: dtype")


def run_options(p: argparse.ArgumentParser) -> None:
    _reading_options(p)
    p.add_argument("--layer", help="the layer to run (required if the file has several)")
    _option(p, "source_forget_bias", type=float, metavar="BIAS", help="TF1 LSTM run-time forget_bias, source")
    p.add_argument("--strict", action="store_true", help="refuse every assumption (exit 1, assumption_required)")
    p.add_argument("--x", metavar="X", help="the input (.npy, .npz or JSON); [B, T, I], or [T, B, I] time-major")
    p.add_argument("--h0", metavar="H0", help="initial hidden state [L*D, B, Hout]")
    p.add_argument("--c0", metavar="C0", help="initial cell state [L*D, B, H]")
    p.add_argument("--expected", metavar="Y", help="your own outputs: one array (the sequence) or npz by name")
    p.add_argument("--steps", type=int, help="without --x: steps of a random N(0, 1) input")
    p.add_argument("--batch", type=int, help="without --x: batch of the random input")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    _option(p, "time_major", action=argparse.BooleanOptionalAction, help="default: the framework's own")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="compute dtype")
    p.add_argument("--trace", action="store_true", help="every step's gates and states")
    p.add_argument("--tolerance", type=float, help="divergence threshold for --expected")
    p.add_argument("--format", choices=RUN_FORMATS, help="encoding of -o (default: its extension, else npz)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the arrays here ('-': standard output)")


def init_options(p: argparse.ArgumentParser) -> None:
    required = p.add_argument_group("required options")
    required.add_argument("--target", required=True, help=f"a framework {list(FRAMEWORKS)} or a convention key")
    # checked by rnnbridge.init (argparse would also require the hidden --input_size spelling)
    _option(required, "input_size", type=int, help="input size I")
    required.add_argument("--units", type=int, help="units H")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    _option(p, "num_layers", type=int, default=1, help="levels")
    p.add_argument("--bidirectional", action="store_true")
    _option(p, "reset_after", action=argparse.BooleanOptionalAction, help="GRU variant (default: the framework's)")
    _option(p, "proj_size", type=int, default=0, help="LSTM projection size (PyTorch, TF1)")
    p.add_argument("--peepholes", action="store_true", help="LSTM peepholes (TF1, ONNX)")
    _option(p, "input_initializer", default="glorot_uniform", help="glorot_*, he_*, lecun_*, uniform(a), default")
    _option(p, "recurrent_initializer", default="orthogonal", help="orthogonal(gain), identity(gain), ..., default")
    _option(p, "bias_initializer", help="zeros, unit_forget_bias (LSTM default), chrono(T_max), uniform(a), default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--name", help="layer name (default: the cell)")
    p.add_argument("--prefix", help="PyTorch key prefix (default: name + '.')")
    p.add_argument("--scope", help="TF1 variable scope of the layer in a tf_checkpoint (default: rnn, ...)")
    _option(p, "target_forget_bias", type=float, metavar="BIAS", help="TF1 target run-time forget_bias")
    p.add_argument(
        "--format", choices=FORMATS, help="output encoding (default: the one -o's extension names; else npz)"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file, or folder ending in '/' (default: init.<target>.<ext> here); '-' for standard output",
    )
    p.add_argument("--json", action="store_true", help="print the result's metadata as JSON on standard output")


# ------------------------------------------------------------------- the commands


def _bounds() -> rnnbridge.Bounds:
    """The service's bounds where the environment sets them, else the library's defaults."""
    import rnnbridge

    if not any(name in os.environ for name in BOUND_VARIABLES):
        return rnnbridge.Bounds()
    env = _settings()
    return rnnbridge.Bounds(env.max_init_weights, env.max_run_elements, env.max_run_work, 64 * env.max_run_elements)


def explain_command(args: argparse.Namespace) -> int:
    import json

    import rnnbridge
    from rnnbridge.outputs import jsonable

    sizes: dict[str, Any] = {}
    reading: dict[str, Any] = {}
    if args.files:
        reading = _reading(args)
    else:
        sizes = {
            "convention": args.convention,
            "input_size": args.input_size,
            "units": args.units,
            "proj_size": args.proj_size,
            "num_layers": args.num_layers,
            "bidirectional": args.bidirectional,
            "peepholes": args.peepholes,
            "bias": not args.no_bias,
            "dtype": args.dtype,
        }
    doc = rnnbridge.explain(
        args.files or None,
        layer=args.layer,
        target=args.target,
        orientation=args.orientation,
        source_forget_bias=args.source_forget_bias,
        target_forget_bias=args.target_forget_bias,
        prefix=args.prefix,
        format=args.output_format,
        scope=args.scope,
        strict=args.strict,
        bounds=_bounds(),
        **reading,
        **sizes,
    )
    _report_assumptions(doc["layers"])
    if args.json or args.format == "json":
        print(json.dumps(jsonable(doc), indent=2))
    else:
        sys.stdout.write(rnnbridge.explanation_text(doc, snippets=tuple(args.snippet or ("numpy",))))
    return 0


def _arrays(path: str | None, what: str, bounds: rnnbridge.Bounds) -> dict[str, np.ndarray]:
    import rnnbridge

    if path is None:
        return {}
    if not Path(path).is_file():
        raise InvalidField(f"no such file: {path}", field=what)
    return rnnbridge.load_arrays(path, what, bounds)


def _single(arrays: dict[str, np.ndarray], what: str) -> np.ndarray | None:
    """The array named ``what``, or the file's only array; None without a file."""
    if what in arrays:
        return arrays[what]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if arrays:
        raise InvalidField(f"--{what}: expected one array (or one named {what!r}), found {sorted(arrays)}")
    return None


def run_command(args: argparse.Namespace) -> int:
    import rnnbridge

    if args.output:
        _check_output_options(args)
    bounds = _bounds()
    inputs = _arrays(args.x, "x", bounds)
    result = rnnbridge.run(
        args.files,
        layer=args.layer,
        x=_single(inputs, "x"),
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        h0=_single(_arrays(args.h0, "h0", bounds), "h0") if args.h0 else inputs.get("h0"),
        c0=_single(_arrays(args.c0, "c0", bounds), "c0") if args.c0 else inputs.get("c0"),
        time_major=args.time_major,
        dtype=args.dtype,
        trace=args.trace,
        expected=_arrays(args.expected, "expected", bounds) or None,
        tolerance=args.tolerance,
        source_forget_bias=args.source_forget_bias,
        bounds=bounds,
        strict=args.strict,
        **_reading(args),
    )
    _report_assumptions([{"name": result.meta["layer"], "assumed": result.meta["assumed"]}])
    if args.output == "-":
        result.save(sys.stdout.buffer, args.format)
        sys.stdout.buffer.flush()
    elif args.output:
        path = result.save(args.output, args.format)
        print(f"{PROG}: wrote {len(result.arrays)} arrays to {path}", file=sys.stderr)
    if args.json:
        print(result.meta_json())
    elif args.output != "-":
        sys.stdout.write(summary(result))
    return 0


def summary(result: rnnbridge.Result) -> str:
    """The outputs of a /run for a person: names, axes, shapes, first values; divergence."""
    import numpy as np

    meta = result.meta
    order = "time-major" if meta["time_major"] else "batch-major"
    lines = [f"{meta['layer']}: {meta['convention']} ({meta['native']}), {meta['dtype']}, {order}"]
    for name, array in result.arrays.items():
        axes = meta["axes"].get(name)
        head = np.array2string(array.ravel()[:4], precision=6, separator=", ")
        lines.append(f"  {name:<24} {list(array.shape)!s:<14} {'[' + ', '.join(axes) + ']' if axes else ''}  {head}")
    divergence = meta.get("divergence")
    if divergence:
        first = divergence["first"]
        statuses = {info["status"] for info in divergence["arrays"].values()}
        if statuses == {"matches"}:
            lines.append(f"expected: every array matches within {divergence['tolerance']:g}")
        elif first is not None:
            where = ", ".join(f"{axis}={index}" for axis, index in first["at"].items())
            lines.append(
                f"expected: {first['array']} first diverges at step {first.get('step', '-')} ({where}): "
                f"expected {first['expected']:.7g}, computed {first['computed']:.7g} "
                f"(|diff| {first['abs_diff']:.3g} > {divergence['tolerance']:g})"
            )
        for name, info in divergence["arrays"].items():
            if info["status"] in ("unknown", "shape"):
                lines.append(f"expected: {name}: {info['detail']}")
    return "\n".join(lines) + "\n"


def init_command(args: argparse.Namespace) -> int:
    import rnnbridge

    _check_output_options(args)
    result = rnnbridge.init(
        args.target,
        cell=args.cell,
        input_size=args.input_size,
        units=args.units,
        num_layers=args.num_layers,
        bidirectional=args.bidirectional,
        reset_after=args.reset_after,
        proj_size=args.proj_size,
        peepholes=args.peepholes,
        input_initializer=args.input_initializer,
        recurrent_initializer=args.recurrent_initializer,
        bias_initializer=args.bias_initializer,
        seed=args.seed,
        dtype=args.dtype,
        name=args.name,
        prefix=args.prefix,
        scope=args.scope,
        target_forget_bias=args.target_forget_bias,
        format=args.format,
        bounds=_bounds(),
    )
    return _emit(args, result, Progress(enabled=False))
