"""The ``rnnbridge`` command: the service's endpoints offline, and ``serve`` to run it.

::

    rnnbridge serve [--host H] [--port P] [--workers N] [--log-level L] [--log-format json|text]
    rnnbridge inspect FILE... [--source S]
    rnnbridge split FILE... [--source S] [--layer L] [--format npz|json|safetensors] [-o OUT] [--json]
    rnnbridge convert FILE... --target T [--prefix P] [--no-verify] [-o OUT] [--json]

Options are named as the HTTP form fields (``--source-forget-bias`` and
``--source_forget_bias`` both work) and call the same ``rnnbridge.pipeline`` and
``rnnbridge.outputs`` functions as the routes; no HTTP is involved. The output goes to
``<first input stem>.gates.<ext>`` (split) or ``<stem>.<target>.<ext>`` (convert) in the
current directory unless ``-o`` says otherwise (``-o -``: standard output).

Exit codes: 0 success; 1 bad input or refused conversion (one line on stderr,
``rnnbridge: error: <code>: <detail>``); 2 usage error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TextIO, get_args

import numpy as np

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InvalidField, RnnBridgeError
from rnnbridge.schemas import Direction, Framework, Orientation, OutputFormat, TargetFramework
from rnnbridge.service.settings import LogFormat, LogLevel, Settings

PROG = "rnnbridge"
#: inputs at least this large get a progress display when stderr is a terminal
PROGRESS_MIN_BYTES = 64 * 1024**2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 after --help
        return exc.code if isinstance(exc.code, int) else 2
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except RnnBridgeError as exc:
        return _fail(exc.code, exc.detail)
    except OSError as exc:
        return _fail("io_error", f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def _fail(code: str, detail: str) -> int:
    print(f"{PROG}: error: {code}: {detail}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Split and re-fuse LSTM/GRU weights, exactly.")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _inspect_parser(sub)
    _split_parser(sub)
    _convert_parser(sub)
    return parser


def _option(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    """Add ``--a-b`` with its form-field spelling ``--a_b`` as an alias."""
    spellings = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])
    parser.add_argument(*spellings, dest=name, **kwargs)  # type: ignore[arg-type]


def _serve_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", help="address to bind (default: RNNBRIDGE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: RNNBRIDGE_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: RNNBRIDGE_WORKERS or 1)")
    _option(serve, "log_level", choices=get_args(LogLevel), help="default: RNNBRIDGE_LOG_LEVEL or info")
    _option(serve, "log_format", choices=get_args(LogFormat), help="default: RNNBRIDGE_LOG_FORMAT or json")
    serve.set_defaults(command=serve_command)


def _reading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="the weight file(s) of one model")
    parser.add_argument("--source", choices=get_args(Framework), help="source framework (required for npz/JSON)")
    parser.add_argument("--direction", choices=get_args(Direction), help="direction of a one-direction array input")
    _option(parser, "reset_after", action=argparse.BooleanOptionalAction, help="GRU variant of an array input")


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", help="one layer by name (default: all)")
    parser.add_argument("--format", choices=get_args(OutputFormat), default="npz", help="output encoding (default npz)")
    _option(parser, "source_forget_bias", type=float, help="TF1 LSTM run-time forget_bias")
    parser.add_argument("-o", "--output", metavar="OUT", help="output path; '-' for standard output")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON on standard output")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help=(
            "progress on stderr (default: when stderr is a terminal and the input is over "
            f"{PROGRESS_MIN_BYTES >> 20} MiB)"
        ),
    )


def _inspect_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inspect = sub.add_parser("inspect", help="list the recurrent layers of a weight file (JSON)")
    _reading_options(inspect)
    inspect.set_defaults(command=inspect_command)


def _split_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    split = sub.add_parser("split", help="write per-gate arrays")
    _reading_options(split)
    _output_options(split)
    split.add_argument(
        "--orientation", choices=get_args(Orientation), default="out_in", help="out_in: W·x; in_out: x·W"
    )
    split.set_defaults(command=split_command)


def _convert_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    convert = sub.add_parser("convert", help="re-fuse the weights for another framework")
    _reading_options(convert)
    _output_options(convert)
    convert.add_argument("--target", required=True, choices=get_args(TargetFramework), help="target framework")
    _option(convert, "target_forget_bias", type=float, help="TF1 target run-time forget_bias")
    convert.add_argument(
        "--verify", action=argparse.BooleanOptionalAction, default=True, help="check the result (default: on)"
    )
    convert.add_argument("--prefix", help="PyTorch key prefix (default: layer name + '.'; '' for bare keys)")
    convert.set_defaults(command=convert_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from rnnbridge.service.observability import log_config

    env = _settings()
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
            timeout_graceful_shutdown=env.shutdown_timeout,  # type: ignore[arg-type]
        )
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _metrics_dir(env: Settings) -> tuple[Path, bool]:
    """The directory the workers publish their metrics to, emptied; and whether it was created here."""
    from rnnbridge.service.metrics import clear

    if env.metrics_dir is None:
        return Path(tempfile.mkdtemp(prefix="rnnbridge-metrics-")), True
    env.metrics_dir.mkdir(parents=True, exist_ok=True)
    clear(env.metrics_dir)
    return env.metrics_dir, False


def _settings() -> Settings:
    """The ``RNNBRIDGE_*`` settings; an invalid variable is a bad input, not a traceback."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError
        raise InvalidField(f"invalid RNNBRIDGE_* environment: {exc}".replace("\n", " "), field="environment") from None


def _read(args: argparse.Namespace, progress: Progress | None = None) -> pipeline.Model:
    for name in args.files:
        if not Path(name).is_file():
            raise InvalidField(f"no such file: {name}", field="file")
    if progress is not None:
        progress.phase(f"reading {_size(sum(Path(name).stat().st_size for name in args.files))}")
    return pipeline.read(
        args.files,
        source=args.source,
        direction=args.direction,
        reset_after=args.reset_after,
        limits=_settings().limits(),
    )


def inspect_command(args: argparse.Namespace) -> int:
    document = outputs.jsonable(pipeline.inspect(_read(args)))
    print(json.dumps(document, indent=2))
    return 0


def split_command(args: argparse.Namespace) -> int:
    _check_output_options(args)
    progress = Progress.for_inputs(args.files, args.progress)
    model = _read(args, progress)
    progress.phase("splitting")
    result = pipeline.split(
        model, layer=args.layer, source_forget_bias=args.source_forget_bias, orientation=args.orientation
    )
    del model
    return _emit(args, result, outputs.output_name(args.files[0], args.format), progress)


def convert_command(args: argparse.Namespace) -> int:
    _check_output_options(args)
    progress = Progress.for_inputs(args.files, args.progress)
    model = _read(args, progress)
    progress.phase("converting")
    result = pipeline.convert(
        model,
        args.target,
        layer=args.layer,
        source_forget_bias=args.source_forget_bias,
        target_forget_bias=args.target_forget_bias,
        verify_result=args.verify,
        prefix=args.prefix,
        order="K" if args.format in outputs.ANY_ORDER else "C",
        consume=True,
    )
    del model
    return _emit(args, result, outputs.output_name(args.files[0], args.format, args.target), progress)


def _check_output_options(args: argparse.Namespace) -> None:
    if args.output == "-" and args.json:
        raise InvalidField("--json and -o - both write to standard output; choose one", field="json")
    outputs.check_format(args.format, getattr(args, "target", None))


def _emit(args: argparse.Namespace, result: pipeline.Result, default_name: str, progress: Progress) -> int:
    destination = args.output or default_name
    total = sum(np.asarray(array).nbytes for array in result.arrays.values())

    def write(stream: IO[bytes]) -> None:
        counted = stream if args.format == "h5" else _Counted(stream, lambda done: progress.bar(done, total))
        progress.phase("writing")
        outputs.write(result, args.format, counted)  # type: ignore[arg-type]

    try:
        if destination == "-":
            write(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            _write_atomically(Path(destination), write)
    finally:
        progress.finish()
    if destination != "-":
        print(f"{PROG}: wrote {len(result.arrays)} arrays to {destination}", file=sys.stderr)
    if args.json:
        print(outputs.meta_json(result))
    return 0


class Progress:
    """What a long command is doing, on one line of stderr: its phase, then a bar of the
    bytes written (against the arrays' size; an encoding's overhead is clamped at 100%)."""

    WIDTH = 30

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._width = 0
        self._percent = -1

    @classmethod
    def for_inputs(cls, files: Sequence[str], wanted: bool | None) -> Progress:
        """On when asked; by default when stderr is a terminal and the input is large."""
        if wanted is not None:
            return cls(wanted)
        size = sum(Path(name).stat().st_size for name in files if Path(name).is_file())
        return cls(sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES)

    def phase(self, text: str) -> None:
        self._show(f"{text}...")

    def bar(self, done: int, total: int) -> None:
        fraction = min(done / total, 1.0) if total > 0 else 1.0
        percent = int(fraction * 100)
        if percent != self._percent:
            self._percent = percent
            filled = int(fraction * self.WIDTH)
            self._show(f"writing [{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}%")

    def finish(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _show(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"{PROG}: {text}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)


class _Counted(io.RawIOBase):
    """A binary stream passing writes (and seeks) to ``raw`` and reporting the bytes written."""

    def __init__(self, raw: IO[bytes], report: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._report = report
        self._count = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        written = self._raw.write(data)
        self._count += written
        self._report(self._count)
        return written


def _size(size: int) -> str:
    """``size`` bytes for people: ``12.3 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    raise AssertionError("unreachable")


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file beside ``path``, so that a failure leaves no partial output."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


if __name__ == "__main__":
    sys.exit(main())
