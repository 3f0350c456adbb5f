"""Start-up of the ``rnnbridge`` command: ``--help`` against a bare interpreter.

Each command runs ``--repeat`` times in a fresh interpreter (``python -m rnnbridge``, as
the console script does); the table gives the median and the best wall-clock time and the
median CPU time (user + system) of the child, which a busy machine disturbs less than the
wall clock. Target: ``rnnbridge --help`` well under 200 ms. ``--help`` imports neither
NumPy nor the HTTP stack (``rnnbridge.cli``); ``convert --help`` adds the registries'
choices; ``--version`` reads the installed metadata.

    python -m bench.cli_startup
    python -m bench.cli_startup --repeat 5
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from .common import machine, parser, table

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "rnnbridge --help": ["-m", "rnnbridge", "--help"],
    "rnnbridge convert --help": ["-m", "rnnbridge", "convert", "--help"],
    "rnnbridge --version": ["-m", "rnnbridge", "--version"],
    "python -c 'import numpy'": ["-c", "import numpy"],
}


def run_once(arguments: Sequence[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run of ``python arguments``."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> None:
    cli = parser(__doc__.split("\n")[0])
    cli.add_argument("--repeat", type=int, default=20, help="runs per command")
    args = cli.parse_args(argv)
    rows = []
    for name, arguments in COMMANDS.items():
        runs = [run_once(arguments) for _ in range(args.repeat)]
        walls = [wall * 1000 for wall, _ in runs]
        cpus = [cpu * 1000 for _, cpu in runs]
        rows.append((name, statistics.median(walls), min(walls), statistics.median(cpus)))
    print(machine())
    print(f"load average {os.getloadavg()[0]:.2f}, {args.repeat} runs each\n")
    print(table(("command", "median ms", "best ms", "median CPU ms"), rows))


if __name__ == "__main__":
    main()
