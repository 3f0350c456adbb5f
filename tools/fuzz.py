"""Long fuzz runs of every reader: mutated real files, the property of ``tests/fuzz/harness.py``.

    python tools/fuzz.py --seconds 300                 # all readers, 300 s each
    python tools/fuzz.py --reader onnx --seconds 60 --out /tmp/crashes
    python tools/fuzz.py --seconds 60 --zip            # the same, each upload wrapped in a zip
    python tools/fuzz.py --long 30 --max-rss 512       # 30 minutes over every reader and bomb

Each reader gets its share of the time; every input is a random stack of byte mutations
(flip, overwrite, insert, delete, truncate, splice) of a real file. A failure is any
exception other than an ``RnnBridgeError`` (``VerificationFailed`` included): its input is
written to ``--out`` (``<reader>-<n>/``, one file per upload file) with the traceback, to
become a corpus file. Prints, per reader: inputs tried, outcomes by error code, failures.
An input that makes a library spin (a C call cannot be interrupted) is caught by a
watchdog: each reader runs in a child process, and when it makes no progress for
``--hang`` seconds the input it was reading is saved as a hang and the child restarted.
The same watchdog bounds memory: a child whose resident memory passes ``--max-rss`` MiB
while reading one input is killed and the input saved as a memory failure (the readers
bound what a few bytes can allocate; the bound is what a reader may cost in all).

``--bombs`` adds the structural bombs of issue 13 (``tests/hostile/bombs.py``, sized by
``tests/fuzz/harness.BOMB_SIZES``) as seeds of their own; ``--long MINUTES`` is the long-run
mode: every reader and every bomb, the minutes shared between them, with the watchdogs.
Exits 1 if anything failed, hung or passed the memory bound.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz import harness  # noqa: E402


def fuzz_reader(seed: harness.Seed, seconds: float, rng_seed: int, out: Path, zipped: bool, progress, result) -> None:
    """Fuzz one reader for ``seconds`` (in a child process); ``progress`` counts inputs tried."""
    warnings.simplefilter("error")  # as under pytest: a NumPy/h5py warning on bad input is a bug too
    rng = random.Random(rng_seed)
    outcomes: Counter = Counter()
    failures = 0
    deadline = time.monotonic() + seconds
    current = out / f"{seed.reader}-current"
    while time.monotonic() < deadline:
        files = harness.mutated(seed, rng.choice(seed.victims), harness.random_ops(rng))
        if zipped:
            files = [("upload.zip", harness.as_zip(files))]
        _save(current, files, "")  # what the watchdog keeps if this input hangs
        with tempfile.TemporaryDirectory() as folder:
            try:
                outcomes[harness.outcome(files, Path(folder), seed.source)] += 1
            except Exception as exc:  # the property: nothing but RnnBridgeError escapes
                failures += 1
                outcomes[f"FAIL {type(exc).__name__}"] += 1
                _save(out / f"{seed.reader}-{rng_seed}-{failures}", files, traceback.format_exc())
        progress.value += 1
    result.put((dict(outcomes), failures))


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def supervise(
    seed: harness.Seed, seconds: float, rng_seed: int, out: Path, zipped: bool, hang: float, max_rss: float = 1024.0
) -> tuple[int, Counter, int, float]:
    """Run :func:`fuzz_reader` in children until ``seconds`` are spent; catch hangs and memory
    over ``max_rss`` MiB. Returns inputs tried, outcomes, failures and the peak RSS (MiB)."""
    tried, outcomes, failures, peak = 0, Counter(), 0, 0.0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0.5:
        progress, result = multiprocessing.Value("q", 0), multiprocessing.Queue()
        child = multiprocessing.Process(target=fuzz_reader, args=(seed, left, rng_seed, out, zipped, progress, result))
        child.start()
        seen, stalled_since, hung = -1, time.monotonic(), False
        while child.is_alive():
            child.join(0.05)
            rss = _rss_mib(child.pid)
            peak = max(peak, rss)
            if rss > max_rss:
                child.kill()
                child.join()
                hung = True
                failures += 1
                outcomes["MEMORY"] += 1
                (out / f"{seed.reader}-current").rename(out / f"{seed.reader}-{rng_seed}-memory")
                break
            if progress.value != seen:
                seen, stalled_since = progress.value, time.monotonic()
            elif time.monotonic() - stalled_since > hang:
                child.kill()
                child.join()
                hung = True
                failures += 1
                outcomes["HANG"] += 1
                (out / f"{seed.reader}-current").rename(out / f"{seed.reader}-{rng_seed}-hang")
        tried += progress.value + hung
        if child.exitcode == 0:
            got, fails = result.get(timeout=5)
            outcomes.update(got)
            failures += fails
        elif not hung:  # the interpreter itself died (a segfault in a C library, an abort)
            failures += 1
            outcomes[f"CRASH exit {child.exitcode}"] += 1
            (out / f"{seed.reader}-current").rename(out / f"{seed.reader}-{rng_seed}-crash")
        rng_seed += 1_000_003
    return tried, outcomes, failures, peak


def _save(folder: Path, files: harness.Upload, trace: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (folder / Path(name).name).write_bytes(data)
    (folder / "traceback.txt").write_text(trace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time per reader")
    parser.add_argument("--reader", action="append", help="only these readers (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--zip", action="store_true", help="wrap every upload in a zip archive")
    parser.add_argument("--hang", type=float, default=10.0, help="seconds without progress that make a hang")
    parser.add_argument("--max-rss", type=float, default=1024.0, help="MiB a reading child may reach")
    parser.add_argument("--bombs", action="store_true", help="add the structural bombs as seeds")
    parser.add_argument("--long", type=float, metavar="MINUTES", help="every reader and bomb, sharing MINUTES")
    args = parser.parse_args(argv)
    bombs_asked = any(name.startswith("bomb-") for name in args.reader or ())
    seeds = harness.available_seeds(with_bombs=args.bombs or bombs_asked or args.long is not None)
    chosen = args.reader or sorted(seeds)
    seconds = args.seconds if args.long is None else args.long * 60 / len(chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    total_failures = 0
    started = time.monotonic()
    print(f"{'reader':36s} {'inputs':>8s} {'failures':>8s} {'peak MiB':>8s}  outcomes")
    for name in chosen:
        tried, outcomes, failures, peak = supervise(
            seeds[name], seconds, args.seed, args.out, args.zip, args.hang, args.max_rss
        )
        (args.out / f"{name}-current").mkdir(exist_ok=True)
        shutil.rmtree(args.out / f"{name}-current")
        total_failures += failures
        summary = ", ".join(f"{k}={v}" for k, v in outcomes.most_common())
        print(f"{name:36s} {tried:8d} {failures:8d} {peak:8.0f}  {summary}", flush=True)
    print(f"wall time: {time.monotonic() - started:.0f} s")
    print(f"failures: {total_failures}" + (f" (inputs in {args.out})" if total_failures else ""))
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
