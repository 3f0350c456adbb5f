"""What the ``rnnbridge`` command shows a person: the layer table and the progress line."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

PROG = "rnnbridge"
#: inputs at least this large get a progress display when stderr is a terminal
PROGRESS_MIN_BYTES = 64 * 1024**2


def layer_table(document: dict[str, Any], source: str) -> str:
    """An ``inspect`` document as a table for a person to read.

    >>> print(layer_table({"format": "npz", "layers": [], "other_tensors": 2}, "m.npz"))
    m.npz: npz, 0 recurrent layers, 2 other tensors
    """
    import textwrap

    layers = document.get("layers", [])
    lines = [
        f"{source}: {document['format']}, {len(layers)} recurrent layer{'s' * (len(layers) != 1)}, "
        f"{document.get('other_tensors', 0)} other tensors"
    ]
    if layers:
        head = ("LAYER", "CONVENTION", "INPUT", "UNITS", "LEVELS", "DIRECTION", "DTYPE")
        rows = [
            (
                str(layer["name"]),
                str(layer["convention"]),
                str(layer["input_size"]),
                str(layer["units"]) + (f" (proj {layer['proj_size']})" if layer.get("proj_size") else ""),
                str(layer["num_layers"]),
                str(layer["direction"]),
                str(layer["dtype"]),
            )
            for layer in layers
        ]
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        lines.append("")
        for row in [head, *rows]:
            lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for title, entries in (("not supported", document.get("unsupported_layers")), ("notes", document.get("notes"))):
        if entries:
            lines += ["", f"{title}:"]
            lines += [textwrap.fill(_entry(e), 100, initial_indent="  - ", subsequent_indent="    ") for e in entries]
    return "\n".join(lines)


def _entry(entry: object) -> str:
    if isinstance(entry, dict):
        return "; ".join(f"{key}: {value}" for key, value in entry.items())
    return str(entry)


class Progress:
    """What a long command is doing, on one line of stderr: each phase (reading, splitting
    or converting, writing) as its name, then a bar of its progress.

    A phase that cannot report its progress as it goes (reading: the readers work in one
    call, or in a reader process) shows the seconds it has been running, once a second.
    """

    WIDTH = 30
    TICK_SECONDS = 1.0

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._width = 0
        self._shown: tuple[str, int] = ("", -1)
        self._lock = threading.Lock()
        self._ticking: tuple[threading.Thread, threading.Event] | None = None

    @classmethod
    def for_inputs(cls, files: Sequence[str], wanted: bool | None) -> Progress:
        """On when asked; by default when stderr is a terminal and the input is large."""
        if wanted is not None:
            return cls(wanted)
        size = sum(_size_of(Path(name)) for name in files)
        return cls(sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES)

    def update(self, phase: str, done: int, total: int) -> None:
        """Show ``phase``: its name when it starts, then a bar of ``done`` out of ``total``."""
        if not self.enabled:
            return
        self._stop_ticking()
        with self._lock:
            if self._shown[0] != phase:
                self._shown = (phase, -1)
                size = f" {_human(total)}" if phase == "reading" else ""
                self._show(f"{phase}{size}...")
                if done <= 0:
                    if phase == "reading":
                        self._start_ticking(f"{phase}{size}...")
                    return
            fraction = min(done / total, 1.0) if total > 0 else 1.0
            percent = int(fraction * 100)
            if percent != self._shown[1]:
                self._shown = (phase, percent)
                filled = int(fraction * self.WIDTH)
                self._show(f"{phase} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}%")

    def finish(self) -> None:
        self._stop_ticking()
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _show(self, text: str) -> None:
        line = f"{PROG}: {text}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def _start_ticking(self, text: str) -> None:
        stop, start = threading.Event(), time.monotonic()

        def tick() -> None:
            while not stop.wait(self.TICK_SECONDS):
                with self._lock:
                    if not stop.is_set():
                        self._show(f"{text} {time.monotonic() - start:.0f} s")

        thread = threading.Thread(target=tick, name="rnnbridge-progress", daemon=True)
        self._ticking = (thread, stop)
        thread.start()

    def _stop_ticking(self) -> None:
        if self._ticking is not None:
            thread, stop = self._ticking
            stop.set()
            thread.join()
            self._ticking = None


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    index = path.with_name(path.name + ".index")
    shards = path.parent.glob(path.name + ".data-*") if path.name else []
    return sum(p.stat().st_size for p in [index, *shards] if p.is_file())


def _human(size: int) -> str:
    """``size`` bytes for people: ``12.3 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    raise AssertionError("unreachable")
