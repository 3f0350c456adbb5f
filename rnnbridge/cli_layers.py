"""``rnnbridge explain``, ``rnnbridge run`` and ``rnnbridge init``: the /explain, /run and
/init endpoints offline (``rnnbridge.verbs``), registered by ``rnnbridge.cli``::

    rnnbridge explain [FILE...] [--target T] [--format text|json] [--snippet numpy|torch|tensorflow]
    rnnbridge explain --convention tf1.lstm --input-size 6 --units 10
    rnnbridge run FILE... [--x X.npy | --steps T --batch B --seed S] [--h0 H] [--c0 C]
                  [--expected Y.npy] [--trace] [--dtype float32|float64] [--time-major] [-o OUT]
    rnnbridge init --target T --input-size I --units H [--cell lstm|gru] [...] [-o OUT]

``explain`` prints text for a person by default (``--format json``: the HTTP document).
``run`` prints a summary (each output's name, layout and first values, and where
``--expected`` first diverges); ``-o`` writes the arrays (npz, json or safetensors, by
``--format``). ``init`` writes ``init.<target>.<ext>`` unless ``-o`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS
from rnnbridge.errors import InvalidField

if TYPE_CHECKING:
    import numpy as np

    import rnnbridge

# the choices, spelled here so that ``rnnbridge --help`` loads no NumPy
DIALECTS = ("numpy", "torch", "tensorflow")
DTYPES = ("float16", "float32", "float64")
FORMATS = ("npz", "json", "safetensors", "h5")

Sub = argparse._SubParsersAction


def add_parsers(sub: Sub) -> None:
    _explain_parser(sub)
    _run_parser(sub)
    _init_parser(sub)


def _option(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """``--a-b`` with its form-field spelling ``--a_b`` as an alias."""
    spellings = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])
    parser.add_argument(*spellings, dest=name, **kwargs)


def _reading(parser: argparse.ArgumentParser, files: str) -> None:
    parser.add_argument("files", nargs=files, metavar="FILE", help="the weight file(s) of one model")
    parser.add_argument("--source", choices=FRAMEWORKS, help="source framework (required for npz/JSON)")
    parser.add_argument("--direction", choices=("forward", "reverse", "backward"), help="of a one-direction array")
    _option(parser, "reset_after", action=argparse.BooleanOptionalAction, help="GRU variant of an array input")
    parser.add_argument("--layer", help="one layer by name (default: all)")
    _option(parser, "source_forget_bias", type=float, help="TF1 LSTM run-time forget_bias")


def _explain_parser(sub: Sub) -> None:
    p = sub.add_parser("explain", help="which slice of which tensor is which gate (text, or --format json)")
    _reading(p, "*")
    p.add_argument("--target", choices=FRAMEWORKS, help="also show how convert builds this target")
    _option(p, "target_forget_bias", type=float, help="TF1 target run-time forget_bias")
    p.add_argument("--prefix", help="PyTorch target key prefix (default: layer name + '.')")
    p.add_argument("--orientation", choices=("out_in", "in_out"), default="out_in", help="out_in: W·x; in_out: x·W")
    p.add_argument("--format", choices=("text", "json"), default="text", help="default text")
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
    p.set_defaults(command=explain_command)


def _run_parser(sub: Sub) -> None:
    p = sub.add_parser("run", help="the forward pass of a layer, as its framework computes it")
    _reading(p, "+")
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
    p.add_argument("--format", choices=("npz", "json", "safetensors"), default="npz", help="encoding of -o")
    p.add_argument("-o", "--output", metavar="OUT", help="write the arrays here ('-': standard output)")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON instead of the summary")
    p.set_defaults(command=run_command)


def _init_parser(sub: Sub) -> None:
    p = sub.add_parser("init", help="freshly initialised weights, gate block by gate block")
    p.add_argument("--target", required=True, help=f"a framework {list(FRAMEWORKS)} or a convention key")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    _option(p, "input_size", type=int, required=True, help="input size I")
    p.add_argument("--units", type=int, required=True, help="units H")
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
    _option(p, "target_forget_bias", type=float, help="TF1 target run-time forget_bias")
    p.add_argument("--format", choices=FORMATS, default="npz")
    p.add_argument("-o", "--output", metavar="OUT", help="output path; '-' for standard output")
    p.set_defaults(command=init_command)


def _settings():  # the RNNBRIDGE_* bounds, as the service reads them
    from rnnbridge.cli import _settings as settings

    return settings()


def _bounds() -> rnnbridge.Bounds:
    import rnnbridge

    env = _settings()
    return rnnbridge.Bounds(env.max_init_weights, env.max_run_elements, env.max_run_work, 64 * env.max_run_elements)


def _model(args: argparse.Namespace) -> rnnbridge.Model:
    import rnnbridge

    for name in args.files:
        if not Path(name).is_file():
            raise InvalidField(f"no such file: {name}", field="file")
    return rnnbridge.read(
        args.files,
        source=args.source,
        direction=args.direction,
        reset_after=args.reset_after,
        limits=_settings().limits(),
    )


def explain_command(args: argparse.Namespace) -> int:
    import rnnbridge
    from rnnbridge import outputs

    sizes: dict[str, Any] = {}
    model = _model(args) if args.files else None
    if model is None:
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
        model,
        layer=args.layer,
        target=args.target,
        orientation=args.orientation,
        source_forget_bias=args.source_forget_bias,
        target_forget_bias=args.target_forget_bias,
        prefix=args.prefix,
        bounds=_bounds(),
        **sizes,
    )
    if args.format == "json":
        print(json.dumps(outputs.jsonable(doc), indent=2))
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
    from rnnbridge import outputs

    bounds = _bounds()
    inputs = _arrays(args.x, "x", bounds)
    result = rnnbridge.run(
        _model(args),
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
    )
    if args.output:
        _write(result, args.format, args.output)
    if args.json:
        print(outputs.meta_json(result))
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
    from rnnbridge import outputs

    target = CONVENTIONS[args.target].framework if args.target in CONVENTIONS else args.target
    outputs.check_format(args.format, target)
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
        target_forget_bias=args.target_forget_bias,
        bounds=_bounds(),
    )
    destination = args.output or f"init.{target}.{outputs.EXTENSIONS[args.format]}"
    _write(result, args.format, destination)
    if destination != "-":
        print(f"rnnbridge: wrote {len(result.arrays)} arrays to {destination}", file=sys.stderr)
    return 0


def _write(result: rnnbridge.Result, fmt: str, destination: str) -> None:
    from rnnbridge import outputs

    if destination == "-":
        outputs.write(result, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    path = Path(destination)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with temporary.open("wb") as stream:
            outputs.write(result, fmt, stream)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
