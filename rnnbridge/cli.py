"""The ``rnnbridge`` command: the library's verbs on files, and ``serve`` to run the service.

::

    rnnbridge inspect FILE... [--json]
    rnnbridge split FILE... [--format F] [-o OUT] [--json]
    rnnbridge convert FILE... --target T [--format F] [-o OUT] [--json]
    rnnbridge explain [FILE...] [--target T] [--format text|json]
    rnnbridge run FILE... [--x X | --steps T --batch B] [--expected Y] [-o OUT]
    rnnbridge init --target T --input-size I --units H [--format F] [-o OUT]
    rnnbridge serve [--host H] [--port P] [--workers N]
    rnnbridge --version

Each command translates its options to one ``rnnbridge.pipeline`` call and the errors to
one line; the choices come from the registries (``rnnbridge.engine.conventions``,
``rnnbridge.outputs``). A FILE may be a TensorFlow checkpoint prefix (``model.ckpt``) or
index, which brings its data shards, or a folder (``rnnbridge.inputs``). The output goes to
``<first input stem>.gates.<ext>`` (split) or ``<stem>.to-<target>.<ext>`` (convert) in the
current directory, into a folder with ``-o DIR/``, or to standard output with ``-o -``
(not a terminal, unless the format is JSON). ``--json`` prints the command's document
(``inspect``: the layers; ``split``/``convert``: the metadata) as JSON on standard output;
``serve``, which has no document, takes it as ``--log-format json`` (one JSON object per log line).
``explain``, ``run`` and ``init`` are defined in ``rnnbridge.cli_layers``, imported when
one of them is built or run.

Options are named as the HTTP form fields; the form spelling (``--source_forget_bias``)
is accepted too, and not shown. Only ``serve`` imports the HTTP stack: the other commands
start without pydantic or FastAPI, and ``rnnbridge --help`` without NumPy. The readers'
bounds are the service's ``RNNBRIDGE_MAX_TENSOR_ELEMENTS``, ``RNNBRIDGE_MAX_UPLOAD_BYTES``,
``RNNBRIDGE_TMP_DIR`` and ``RNNBRIDGE_READ_TIMEOUT`` where set.

Exit codes: 0 success; 1 bad input or refused conversion (one line on stderr,
``rnnbridge: error: <code>: <detail>``); 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbridge.engine.conventions import FRAMEWORKS, TARGET_FRAMEWORKS
from rnnbridge.errors import InvalidField, RnnBridgeError
from rnnbridge.options import DIRECTIONS, ORIENTATIONS
from rnnbridge.outputs import FORMATS
from rnnbridge.terminal import PROG, PROGRESS_MIN_BYTES, Progress, layer_table

if TYPE_CHECKING:
    from rnnbridge.pipeline import Limits
    from rnnbridge.result import Result
    from rnnbridge.service.settings import Settings

#: the ``RNNBRIDGE_*`` variables that bound the readers (``Settings.limits``)
LIMIT_VARIABLES = (
    "RNNBRIDGE_MAX_TENSOR_ELEMENTS",
    "RNNBRIDGE_MAX_UPLOAD_BYTES",
    "RNNBRIDGE_TMP_DIR",
    "RNNBRIDGE_READ_TIMEOUT",
)


@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help, an example, its options and what it runs."""

    name: str
    help: str
    example: str
    options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_command_named(argv) or "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 after --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        result: int = args.run(args)
        return result
    except RnnBridgeError as exc:
        # the command's own options, and the conversion's, which messages point to
        options = _option_names(parser) | _option_names(build_parser(only="convert"))
        return _fail(exc.code, in_cli_terms(exc.detail, options))
    except FileNotFoundError as exc:
        return _fail("invalid_field", f"no such file: {exc.filename}")
    except OSError as exc:
        return _fail("io_error", f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def _fail(code: str, detail: str) -> int:
    for line in detail.splitlines() or [""]:
        print(f"{PROG}: error: {code}: {line}", file=sys.stderr)
    return 1


_FIELD = re.compile(r"\b([a-z][a-z_]*)=(?=\S)")
_BARE_FIELD = re.compile(r"\b([a-z][a-z_]*)=(?=\s|$)")
_ENDPOINT = re.compile(r"(?<![\w/])/(inspect|split|convert|explain|run|init)\b")


def in_cli_terms(detail: str, options: set[str]) -> str:
    """A library message with the form-field spellings of ``options`` as options:
    ``source=`` becomes ``--source``, ``target=keras`` ``--target keras``, ``/convert``
    ``convert``.

    >>> in_cli_terms("say which framework named them with source= (tf1, keras)", {"source"})
    'say which framework named them with --source (tf1, keras)'
    >>> in_cli_terms("format h5: use it with /convert and target=keras", {"target"})
    'format h5: use it with convert and --target keras'
    """

    def option(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"--{name.replace('_', '-')} " if name in options else match.group(0)

    detail = _BARE_FIELD.sub(lambda match: option(match).rstrip(), detail)
    return _ENDPOINT.sub(r"\1", _FIELD.sub(option, detail))


def _option_names(parser: argparse.ArgumentParser) -> set[str]:
    """The destinations of the options built into ``parser`` (those of the command that ran)."""
    names = set()
    for action in _subparsers(parser):
        for sub in action.choices.values():
            names |= {a.dest for a in sub._actions if a.option_strings}
    return names


# ------------------------------------------------------------------- the parser


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of every command, or of the command named ``only``.

    ``main`` builds only the options of the command that runs: ``rnnbridge --help`` builds
    none, and ``serve``'s (which come from the service's settings) are built for ``serve``
    alone.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Split and re-fuse LSTM/GRU weights between TF1, Keras, PyTorch and ONNX, exactly.",
        epilog="examples:\n"
        + "".join(f"  {c.example:<52} {c.help}\n" for c in COMMANDS.values())
        + f"\n'{PROG} COMMAND --help' describes a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for name, spec in COMMANDS.items():
        command_parser = sub.add_parser(
            name,
            help=spec.help,
            description=spec.help[:1].upper() + spec.help[1:] + ".",
            epilog=f"example:\n  {spec.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or name == only:
            spec.options(command_parser)
        command_parser.set_defaults(run=spec.run)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction[argparse.ArgumentParser]]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from rnnbridge import version

        print(f"{PROG} {version()}")
        parser.exit()


def _option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs: Any) -> None:
    """Add ``--a-b``; its form-field spelling ``--a_b`` is accepted but not shown."""
    shown = f"--{name.replace('_', '-')}"
    parser.add_argument(shown, dest=name, **kwargs)
    if shown != f"--{name}":
        parser.add_argument(f"--{name}", dest=name, **{**kwargs, "help": argparse.SUPPRESS, "default": None})


def _reading_options(parser: argparse.ArgumentParser, files: str = "+") -> None:
    parser.add_argument(
        "files", nargs=files, metavar="FILE", help="the weight file(s) of one model, a checkpoint prefix or a folder"
    )
    parser.add_argument("--source", choices=FRAMEWORKS, help="the framework that wrote the file (needed for npz/JSON)")
    parser.add_argument("--direction", choices=DIRECTIONS, help="direction of a one-direction array input")
    _option(parser, "reset_after", action=argparse.BooleanOptionalAction, help="GRU variant of an array input")
    parser.add_argument("--json", action="store_true", help="print the result's document as JSON on standard output")
    parser.add_argument(
        "--activations",
        help="activations the file does not record: gates,candidate[,cell] (e.g. hard_sigmoid_keras2,tanh)",
    )
    parser.add_argument("--clip", help="ONNX clip of an array input: 'none' or a number > 0")
    _option(parser, "input_forget", action=argparse.BooleanOptionalAction, help="ONNX input_forget of an array input")
    parser.add_argument(
        "--names", help="rename the file's arrays first: a JSON object or old=new pairs (enc_w_ih=encoder.weight_ih_l0)"
    )


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", help="one layer by name (default: all)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output encoding (default: the one -o's extension names, e.g. model.onnx; else npz)",
    )
    _option(parser, "source_forget_bias", type=float, metavar="BIAS", help="TF1 LSTM run-time forget_bias, source")
    parser.add_argument("--strict", action="store_true", help="refuse every assumption (exit 1, assumption_required)")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file, or folder ending in '/' (default: the current directory); '-' for standard output",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help=(
            "progress on stderr (default: when stderr is a terminal and the input is over "
            f"{PROGRESS_MIN_BYTES >> 20} MiB)"
        ),
    )


def _inspect_options(parser: argparse.ArgumentParser) -> None:
    _reading_options(parser)


def _split_options(parser: argparse.ArgumentParser) -> None:
    _reading_options(parser)
    _output_options(parser)
    parser.add_argument(
        "--orientation", choices=ORIENTATIONS, default="out_in", help="out_in: W·x ([H, in]); in_out: x·W"
    )


def _convert_options(parser: argparse.ArgumentParser) -> None:
    required = parser.add_argument_group("required options")
    required.add_argument("--target", required=True, choices=TARGET_FRAMEWORKS, help="the framework to convert to")
    _reading_options(parser)
    _output_options(parser)
    _option(
        parser,
        "target_forget_bias",
        type=float,
        metavar="BIAS",
        help="run-time forget_bias of a target that takes one (TF1 LSTMCell)",
    )
    parser.add_argument(
        "--verify", action=argparse.BooleanOptionalAction, default=True, help="check the result (default: on)"
    )
    parser.add_argument(
        "--prefix", help="prefix of the output names (PyTorch, MLX, Paddle, Haiku; default: the layer name + '.')"
    )
    parser.add_argument("--scope", help="TF1 variable scope of the layer in a tf_checkpoint (default: rnn, ...)")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    from typing import get_args

    from rnnbridge.service.settings import LogFormat, LogLevel

    parser.add_argument("--host", help="address to bind (default: RNNBRIDGE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: RNNBRIDGE_PORT or 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default: RNNBRIDGE_WORKERS or 1)")
    _option(parser, "log_level", choices=get_args(LogLevel), help="default: RNNBRIDGE_LOG_LEVEL or info")
    _option(parser, "log_format", choices=get_args(LogFormat), help="default: RNNBRIDGE_LOG_FORMAT or json")
    parser.add_argument(
        "--json", action="store_const", dest="log_format", const="json", help="machine-readable: --log-format json"
    )


# ------------------------------------------------------------------- the commands


def inspect_command(args: argparse.Namespace) -> int:
    import json

    from rnnbridge import pipeline
    from rnnbridge.outputs import jsonable

    document = jsonable(
        pipeline.inspect(
            args.files,
            **_reading(args),
        )
    )
    _report_assumptions(document["layers"])
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(layer_table(document, " ".join(args.files)))
    return 0


def split_command(args: argparse.Namespace) -> int:
    from rnnbridge import pipeline

    _check_output_options(args)
    progress = Progress.for_inputs(args.files, args.progress)
    try:
        result = pipeline.split(
            args.files,
            layer=args.layer,
            source_forget_bias=args.source_forget_bias,
            orientation=args.orientation,
            format=args.format,
            **_reading(args),
            progress=progress.update,
            strict=args.strict,
        )
        _report_assumptions(result.meta["layers"])
        return _emit(args, result, progress)
    finally:
        progress.finish()


def convert_command(args: argparse.Namespace) -> int:
    from rnnbridge import pipeline

    _check_output_options(args)
    progress = Progress.for_inputs(args.files, args.progress)
    try:
        result = pipeline.convert(
            args.files,
            args.target,
            layer=args.layer,
            source_forget_bias=args.source_forget_bias,
            target_forget_bias=args.target_forget_bias,
            verify_result=args.verify,
            prefix=args.prefix,
            scope=args.scope,
            format=args.format,
            **_reading(args),
            progress=progress.update,
            strict=args.strict,
        )
        _report_assumptions(result.meta["layers"])
        return _emit(args, result, progress)
    finally:
        progress.finish()


def _reading(args: argparse.Namespace) -> dict[str, Any]:
    """The reading options of ``args``, as keyword arguments of the verbs."""
    return {
        "source": args.source,
        "direction": args.direction,
        "reset_after": args.reset_after,
        "limits": _limits(),
        "activations": args.activations,
        "clip": args.clip,
        "input_forget": args.input_forget,
        "names": args.names,
    }


def _check_output_options(args: argparse.Namespace) -> None:
    if args.format is None:
        args.format = _format_of(args.output)
    if args.output != "-":
        return
    if args.json:
        raise InvalidField("--json and -o - both write to standard output; choose one", field="json")
    if args.format != "json" and sys.stdout.isatty():
        raise InvalidField(
            f"-o - would write binary {args.format} to the terminal: redirect standard output "
            "(-o - > FILE, or | another command), or name a file with -o",
            field="output",
        )


def _format_of(output: str | None) -> str:
    """The output format an output file name asks for by its extension (``model.onnx``,
    ``ckpt.tar``, ``lstm.weights.h5``), else npz."""
    from rnnbridge.outputs import OUTPUTS

    name = (output or "").lower()
    by_extension = sorted(OUTPUTS.values(), key=lambda f: -len(f.extension))
    return next((f.name for f in by_extension if name.endswith("." + f.extension)), "npz")


def _emit(args: argparse.Namespace, result: Result, progress: Progress) -> int:
    if args.output == "-":
        result.save(sys.stdout.buffer, progress=lambda done, total: progress.update("writing", done, total))
        sys.stdout.buffer.flush()
    else:
        path = result.save(args.output, progress=lambda done, total: progress.update("writing", done, total))
        progress.finish()
        print(f"{PROG}: wrote {len(result.arrays)} arrays to {path}", file=sys.stderr)
    if args.json:
        print(result.meta_json())
    return 0


def serve_command(args: argparse.Namespace) -> int:
    import math
    import shutil
    import signal

    import uvicorn

    from rnnbridge.service.observability import log_config
    from rnnbridge.service.startup import check_spool

    env = _settings()
    check_spool(env.tmp_dir)  # one line and exit 1, not a worker that answers every upload 500
    level = args.log_level or env.log_level
    metrics_dir, created = _metrics_dir(env)
    os.environ["RNNBRIDGE_METRICS_DIR"] = str(metrics_dir)  # every worker builds its Settings from the environment
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal: end with
    # status 0 instead of dying from it, so that the clean-up below runs
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    try:
        uvicorn.run(
            "rnnbridge.service.app:create_app",
            factory=True,
            host=env.host if args.host is None else args.host,
            port=env.port if args.port is None else args.port,
            workers=args.workers or env.workers,
            log_level=level,
            log_config=log_config(level, args.log_format or env.log_format),
            access_log=False,  # the app logs each request with its id
            timeout_graceful_shutdown=math.ceil(env.shutdown_timeout),
            http="rnnbridge.service.protocol:GuardedHttpToolsProtocol",  # bounded request heads (issue 13)
            timeout_keep_alive=math.ceil(env.idle_timeout),
        )
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _metrics_dir(env: Settings) -> tuple[Path, bool]:
    """The directory the workers publish their metrics to, emptied; and whether it was created here."""
    import tempfile

    from rnnbridge.service.metrics import clear

    if env.metrics_dir is None:
        return Path(tempfile.mkdtemp(prefix="rnnbridge-metrics-")), True
    env.metrics_dir.mkdir(parents=True, exist_ok=True)
    clear(env.metrics_dir)
    return env.metrics_dir, False


def _settings() -> Settings:
    """The ``RNNBRIDGE_*`` settings; an invalid variable is a bad input, not a traceback."""
    from rnnbridge.service.settings import Settings, problems

    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per invalid variable
        raise InvalidField("\n".join(problems(exc)), field="environment") from None


def _limits() -> Limits:
    """The readers' bounds: the service's settings where the environment sets them, else the defaults."""
    if any(name in os.environ for name in LIMIT_VARIABLES):
        return _settings().limits()
    from rnnbridge.pipeline import Limits

    return Limits()


def _from_layers(function: str) -> Callable[[Any], Any]:
    """``rnnbridge.cli_layers.<function>`` (explain, run, init), imported when it is called."""

    def call(argument: Any) -> Any:
        from rnnbridge import cli_layers

        return getattr(cli_layers, function)(argument)

    call.__name__ = function
    return call


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "inspect",
            "list the recurrent layers of a weight file",
            f"{PROG} inspect model.h5",
            _inspect_options,
            inspect_command,
        ),
        Command(
            "split",
            "write each layer's per-gate arrays",
            f"{PROG} split model.ckpt --format json",
            _split_options,
            split_command,
        ),
        Command(
            "convert",
            "re-fuse the weights in another framework's convention",
            f"{PROG} convert model.h5 --target pytorch -o out/",
            _convert_options,
            convert_command,
        ),
        Command(
            "explain",
            "say which slice of which tensor is which gate (text, or --format json)",
            f"{PROG} explain model.h5 --target pytorch",
            _from_layers("explain_options"),
            _from_layers("explain_command"),
        ),
        Command(
            "run",
            "run a layer forward as its framework computes it",
            f"{PROG} run model.h5 --steps 5 --batch 2",
            _from_layers("run_options"),
            _from_layers("run_command"),
        ),
        Command(
            "init",
            "write freshly initialised weights, gate block by gate block",
            f"{PROG} init --target tf1 --input-size 8 --units 4",
            _from_layers("init_options"),
            _from_layers("init_command"),
        ),
        Command(
            "serve",
            "run the HTTP service",
            f"{PROG} serve --port 8000",
            _serve_options,
            serve_command,
        ),
    )
}


def _report_assumptions(layers: list[dict[str, Any]]) -> None:
    """One stderr line per assumed fact, with the option that would state it."""
    from rnnbridge.pipeline import assumptions_of

    for item in assumptions_of(layers):
        option = "--" + item["field"].replace("_", "-")
        value = item["value"]
        value = str(value).lower() if isinstance(value, bool) else value
        print(
            f"{PROG}: assumed: layer {item['layer']!r}: {item['fact']} = {value} ({item['because']}); "
            f"state it with {option}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
