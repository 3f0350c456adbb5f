"""Prometheus metrics that stay right across several worker processes.

Each process counts in its own ``Registry`` and publishes a snapshot of it to
``<metrics_dir>/<pid>.json`` (written to a temporary name, then renamed: a reader never
sees half a file) whenever a request starts or ends. ``GET /metrics``, whichever worker
answers it, adds up the snapshots of every process: counters and histograms of all
processes that ever published (a worker that was restarted keeps its counts), gauges of
the processes still alive. Without a directory the registry exposes its own process only.
Each scrape also reads the process metrics of every live worker and adds the build info
(``process_metrics``).

No client library is needed for this: the samples are plain sums, and the text
exposition format (version 0.0.4) is a few lines of formatting.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Literal

from rnnbridge.service import process_metrics

MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]
#: (sample name, labels) -> value
Samples = dict[tuple[str, Labels], float]

#: family name -> (type, help)
FAMILIES: dict[str, tuple[Kind, str]] = {
    "rnnbridge_http_requests_total": ("counter", "HTTP requests answered, by endpoint, method and status."),
    "rnnbridge_http_request_duration_seconds": ("histogram", "Time from request start to the last body byte."),
    "rnnbridge_http_request_bytes_total": ("counter", "Request body bytes received, by endpoint."),
    "rnnbridge_http_response_bytes_total": ("counter", "Response body bytes sent, by endpoint."),
    "rnnbridge_http_requests_in_flight": ("gauge", "Requests being served, by endpoint."),
    "rnnbridge_http_requests_waiting": ("gauge", "Conversion requests waiting in line for a slot."),
    "rnnbridge_conversions_total": ("counter", "Successful conversions, by source and target framework."),
    **process_metrics.FAMILIES,  # type: ignore[dict-item]
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Registry:
    """The metrics of this process; thread-safe (routes count from worker threads)."""

    def __init__(self, directory: Path | None = None, version: str = "0+unknown") -> None:
        self.directory = directory
        self.version = version
        self._samples: Samples = defaultdict(float)
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def inc(self, family: str, labels: dict[str, str], amount: float = 1.0) -> None:
        """Add ``amount`` to a counter or gauge sample."""
        key = (family, _labels(labels))
        with self._lock:
            self._samples[key] += amount

    def observe(self, family: str, labels: dict[str, str], value: float) -> None:
        """Record ``value`` in a histogram (cumulative buckets, ``_sum`` and ``_count``)."""
        base = _labels(labels)
        with self._lock:
            for bound in (*LATENCY_BUCKETS, math.inf):
                if value <= bound:
                    self._samples[(f"{family}_bucket", (*base, ("le", _number(bound))))] += 1
            self._samples[(f"{family}_sum", base)] += value
            self._samples[(f"{family}_count", base)] += 1

    def snapshot(self) -> Samples:
        with self._lock:
            return dict(self._samples)

    def publish(self) -> None:
        """Write this process's snapshot to the shared directory (if any)."""
        if self.directory is None:
            return
        rows = [[name, list(map(list, labels)), value] for (name, labels), value in self.snapshot().items()]
        target = self.directory / f"{os.getpid()}.json"
        temporary = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(rows))
        os.replace(temporary, target)

    def collect(self) -> Samples:
        """The samples of every process (see the module): published snapshots plus this one's."""
        if self.directory is None:
            total, workers = self.snapshot(), [os.getpid()]
        else:
            self.publish()
            total, workers = defaultdict(float), []
            for path in self.directory.glob("*.json"):
                alive = _alive(int(path.stem)) if path.stem.isdigit() else False
                workers += [int(path.stem)] if alive else []
                for (name, labels), value in _read_snapshot(path).items():
                    if alive or _kind_of(name) != "gauge":
                        total[(name, labels)] += value
        return {**total, **process_metrics.process_samples(workers), **process_metrics.build_samples(self.version)}

    def exposition(self) -> str:
        """The text exposition format of ``collect()``."""
        return render(self.collect())


def clear(directory: Path) -> None:
    """Forget the snapshots of a previous run of the service."""
    for path in directory.glob("*.json"):
        path.unlink(missing_ok=True)


def render(samples: Samples) -> str:
    """Samples as Prometheus text, family by family, histogram buckets in ascending order."""
    lines: list[str] = []
    for family, (kind, help_text) in FAMILIES.items():
        lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
        mine = [(name, labels, value) for (name, labels), value in samples.items() if _family_of(name) == family]
        lines += [_line(name, labels, value) for name, labels, value in sorted(mine, key=_order)]
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted((key, str(value)) for key, value in labels.items()))


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _family_of(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        stem = name.removesuffix(suffix)
        if stem != name and FAMILIES.get(stem, ("",))[0] == "histogram":
            return stem
    return name


def _kind_of(name: str) -> str:
    return FAMILIES.get(_family_of(name), ("untyped",))[0]


def _order(sample: tuple[str, Labels, float]) -> tuple[Labels, int, float]:
    name, labels, _ = sample
    le = dict(labels).get("le")
    rest = tuple(pair for pair in labels if pair[0] != "le")
    suffix_rank = 0 if name.endswith("_bucket") else 1 if name.endswith("_sum") else 2
    return rest, suffix_rank, float(le) if le is not None else 0.0


def _line(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    inner = ",".join(f'{key}="{_escape(text)}"' for key, text in labels)
    return f"{name}{{{inner}}} {_number(value)}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _read_snapshot(path: Path) -> Samples:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):  # removed or replaced while listing
        return {}
    return {(name, tuple(tuple(pair) for pair in labels)): float(value) for name, labels, value in rows}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
