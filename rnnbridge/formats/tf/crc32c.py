"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), and LevelDB's masked form.

Where ``google-crc32c`` is installed with its compiled extension (a dependency of rnnbridge;
wheels for the usual platforms), :func:`crc32c` and :func:`crc32c_array` use it: about 2 GB/s
here, fed 1 MiB copies (it takes only ``bytes``), against about 46 MB/s for NumPy
(``python -m bench.crc32c``). Otherwise they fall back to pure Python and NumPy, with the same
results; ``COMPILED`` says which is in use.

The fallback: :func:`crc32c` runs byte by byte and suits small ``bytes`` (SSTable blocks);
:func:`crc32c_array` is vectorised with NumPy for tensor bytes. The "raw"
CRC (start 0, no final xor) is linear over GF(2) and blind to leading zero bytes, so the
bytes are front-padded to a (lanes, width) grid, all lanes advance one byte per step
together, and lanes are folded pairwise with raw(a + b) = shift(raw(a), len(b)) ^ raw(b),
where ``shift`` (feeding zero bytes) is a linear map kept as four 256-entry tables, one
per byte. :func:`mask` is ``crc32c::Mask`` of LevelDB / TensorFlow, how stored checksums
are written.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

_google_crc32c: ModuleType | None
try:
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover - an optional speed-up
    _google_crc32c = None

#: the compiled implementation, or None: google-crc32c without its C extension is pure Python
#: and slower than the NumPy code below
_COMPILED = _google_crc32c if getattr(_google_crc32c, "implementation", None) == "c" else None
COMPILED = _COMPILED is not None

_CHUNK = 1 << 26  # bytes per NumPy pass: bounds the padded copy
_COMPILED_CHUNK = 1 << 20  # bytes per copy handed to the compiled CRC: stays in cache


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)
#: _SHIFTS[i] feeds 2**i zero bytes; row j maps byte j of the state
_SHIFTS = [np.stack([_TABLE_NP, *(np.arange(256, dtype=np.uint32) << s for s in (0, 8, 16))])]


def crc32c(data: bytes) -> int:
    """CRC-32C of a small ``bytes`` object."""
    if _COMPILED is not None:
        return int(_COMPILED.value(bytes(data)))
    return _crc32c_bytes(data)


def _crc32c_bytes(data: bytes) -> int:
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c_array(data: np.ndarray) -> int:
    """CRC-32C of a ``uint8`` array: compiled where available, else vectorised with NumPy."""
    if _COMPILED is not None:
        crc = 0
        for start in range(0, data.size, _COMPILED_CHUNK):
            crc = _COMPILED.extend(crc, data[start : start + _COMPILED_CHUNK].tobytes())
        return int(crc)
    return _crc32c_numpy(data)


def _crc32c_numpy(data: np.ndarray) -> int:
    raw = 0
    for start in range(0, data.size, _CHUNK):
        chunk = data[start : start + _CHUNK]
        raw = int(_shift(np.uint32(raw), chunk.size)) ^ _raw_crc(chunk)
    return raw ^ int(_shift(np.uint32(0xFFFFFFFF), data.size)) ^ 0xFFFFFFFF


def _raw_crc(chunk: np.ndarray) -> int:
    width = 1 << max(4, (chunk.size.bit_length() + 1) // 2)
    lanes = -(-chunk.size // width)
    grid = np.zeros(lanes * width, np.uint8)
    grid[grid.size - chunk.size :] = chunk
    state, index, looked_up = (np.zeros(lanes, np.uint32) for _ in range(3))
    for column in np.ascontiguousarray(grid.reshape(lanes, width).T):
        np.bitwise_xor(state, column, out=index, casting="unsafe")
        np.bitwise_and(index, 0xFF, out=index)
        np.right_shift(state, 8, out=state)
        np.take(_TABLE_NP, index, out=looked_up)
        state ^= looked_up
    while state.size > 1:
        if state.size % 2:
            state = np.concatenate([np.zeros(1, np.uint32), state])
        state = _shift(state[0::2], width) ^ state[1::2]
        width *= 2
    return int(state[0])


def _shift(state: np.ndarray, nbytes: int) -> np.ndarray:
    """The CRC state after ``nbytes`` zero bytes, by squaring the one-byte map."""
    while len(_SHIFTS) < nbytes.bit_length():
        _SHIFTS.append(_apply(_SHIFTS[-1], _SHIFTS[-1]))
    for i in range(nbytes.bit_length()):
        if nbytes >> i & 1:
            state = _apply(_SHIFTS[i], state)
    return state


def _apply(tables: np.ndarray, state: np.ndarray) -> np.ndarray:
    return (
        tables[0][state & 0xFF]
        ^ tables[1][(state >> 8) & 0xFF]
        ^ tables[2][(state >> 16) & 0xFF]
        ^ tables[3][state >> 24]
    )


def mask(crc: int) -> int:
    """LevelDB's masked crc (``crc32c::Mask``), stored so that CRCs of CRCs stay distinct."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
