"""CRC-32C of TF checkpoint tensor bytes: the compiled path (google-crc32c) against the NumPy
fallback, in MB/s, on random bytes; ``np.copy`` of the same bytes as the reference.

    python -m bench.crc32c                  # 64 MB, 3 repeats (NumPy on 16 MB: it is slow)
    python -m bench.crc32c --mb 4 --repeat 1
"""

from __future__ import annotations

import numpy as np

from rnnbridge.formats.tf import crc32c

from .common import machine, parser, side_by_side, table, timed


def main() -> None:
    args = _args()
    data = np.random.default_rng(0).integers(0, 256, args.mb << 20, dtype=np.uint8)
    sample = data[: max(1, args.mb >> 2) << 20]
    copy, compiled = side_by_side(lambda: np.copy(data), lambda: crc32c.crc32c_array(data), args.repeat)
    numpy = min(timed(lambda: crc32c._crc32c_numpy(sample)) for _ in range(args.repeat))
    assert crc32c.crc32c_array(sample) == crc32c._crc32c_numpy(sample)
    rows = [
        ("np.copy (reference)", args.mb, args.mb / copy),
        (f"crc32c_array ({'google-crc32c' if crc32c.COMPILED else 'NumPy: google-crc32c absent'})", args.mb, args.mb / compiled),
        ("NumPy fallback", sample.size >> 20, (sample.size >> 20) / numpy),
    ]
    print(machine())
    print(table(("implementation", "MB", "MB/s"), rows))


def _args():
    arguments = parser("CRC-32C throughput: compiled against NumPy")
    arguments.add_argument("--mb", type=int, default=64, help="bytes to checksum, in MiB")
    arguments.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    return arguments.parse_args()


if __name__ == "__main__":
    main()
