"""The process metrics Prometheus users expect, for every worker, and the build info.

``process_samples(pids)`` reads each live worker's ``/proc/<pid>`` at scrape time (Linux):
resident and virtual memory, CPU seconds, open and maximum file descriptors, start time, the
names and meanings of Prometheus's own process collector, labelled by ``pid`` because one
scrape reports every worker of the server (sum them for the whole server). Where ``/proc``
is missing (macOS, Windows) the worker reports its own CPU time and peak memory only, from
``resource``. ``build_samples()`` is ``rnnbridge_build_info``: 1, with the versions and which
compiled speed-ups are in use as labels.

Why not ``prometheus_client``'s multiprocess mode: its custom collectors (process metrics
among them) do not work in that mode, it needs ``PROMETHEUS_MULTIPROC_DIR`` set before the
library is imported in every worker, and counting a request costs 37 µs against about 1 ms
for the snapshot this registry writes (measured on a loaded 2-core machine), while a scrape
costs about the same (1.5 against 1.1 ms). The published snapshot keeps a restarted worker's
counts and is what the two-worker tests check; the scrape-time cost of one file per request
start and end was judged the better trade than a second metrics system.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rnnbridge import pipeline

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES: dict[str, tuple[str, str]] = {
    "process_cpu_seconds_total": ("counter", "User and system CPU time of the worker, in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory of the worker, in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory of the worker, in bytes."),
    "process_open_fds": ("gauge", "Open file descriptors of the worker."),
    "process_max_fds": ("gauge", "The worker's limit on open file descriptors."),
    "process_start_time_seconds": ("gauge", "Start time of the worker since the Unix epoch, in seconds."),
    "rnnbridge_build_info": ("gauge", "1, labelled with the versions and the compiled speed-ups in use."),
}

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def process_samples(pids: Iterable[int]) -> Samples:
    """The process metrics of each pid (see the module); a pid gone meanwhile is left out."""
    if not (_PROC / "self" / "stat").is_file():
        return _own_resource_usage()
    samples: Samples = {}
    boot = _boot_time()
    for pid in sorted(set(pids)):
        try:
            samples.update(_proc_samples(pid, boot))
        except (OSError, ValueError, IndexError):  # exited, or not ours to read
            continue
    return samples


def _proc_samples(pid: int, boot: float) -> Samples:
    folder = _PROC / str(pid)
    # fields after the parenthesised command name, which may itself hold spaces or parentheses
    stat = (folder / "stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, start_ticks, vsize, rss_pages = (int(stat[k]) for k in (11, 12, 19, 20, 21))
    labels = (("pid", str(pid)),)
    samples = {
        ("process_cpu_seconds_total", labels): (utime + stime) / _TICKS,
        ("process_resident_memory_bytes", labels): float(rss_pages * _PAGE),
        ("process_virtual_memory_bytes", labels): float(vsize),
        ("process_start_time_seconds", labels): boot + start_ticks / _TICKS,
        ("process_open_fds", labels): float(len(os.listdir(folder / "fd"))),
    }
    for line in (folder / "limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            if soft.isdigit():
                samples[("process_max_fds", labels)] = float(soft)
    return samples


def _boot_time() -> float:
    for line in (_PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def _own_resource_usage() -> Samples:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    labels = (("pid", str(os.getpid())),)
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere
    return {
        ("process_cpu_seconds_total", labels): usage.ru_utime + usage.ru_stime,
        ("process_resident_memory_bytes", labels): float(peak),
    }


def build_samples(version: str) -> Samples:
    """``rnnbridge_build_info`` (see the module)."""
    compiled = pipeline.speedups()
    labels = {
        "version": version,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "compiled_transpose": str(compiled["transpose"]).lower(),
        "compiled_crc32c": str(compiled["crc32c"]).lower(),
    }
    return {("rnnbridge_build_info", tuple(sorted(labels.items()))): 1.0}
