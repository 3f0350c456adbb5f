"""CRC-32C: the compiled implementation (google-crc32c, where installed) and the NumPy
fallback give the same checksums, equal to published check values."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.formats.tf import crc32c as module

# RFC 3720 (iSCSI) B.4 and the usual check value of the Castagnoli polynomial
KNOWN = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]

IMPLEMENTATIONS = {
    "numpy": (module._crc32c_bytes, module._crc32c_numpy),
    "public": (module.crc32c, module.crc32c_array),  # compiled where google-crc32c is installed
}


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize(("data", "expected"), KNOWN, ids=[f"{len(d)}B" for d, _ in KNOWN])
def test_known_check_values(name, data, expected):
    small, array = IMPLEMENTATIONS[name]
    assert small(data) == expected
    assert array(np.frombuffer(data, np.uint8)) == expected


@pytest.mark.parametrize("size", [1, 1000, (1 << 20) - 1, (1 << 20) + 7, 3 << 20])
def test_compiled_and_numpy_agree_across_chunk_boundaries(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    assert module.crc32c_array(data) == module._crc32c_numpy(data)
    assert module.crc32c_array(data[1:]) == module._crc32c_numpy(data[1:])  # an unaligned view


def test_the_compiled_implementation_is_used_where_installed():
    google_crc32c = pytest.importorskip("google_crc32c")
    assert module.COMPILED == (google_crc32c.implementation == "c")


def test_mask_is_leveldbs():
    # crc32c::Mask of LevelDB: rotate right by 15, add 0xa282ead8
    assert module.mask(0) == 0xA282EAD8
    assert module.mask(1) == (0x00020000 + 0xA282EAD8) & 0xFFFFFFFF
    assert module.mask(1 << 15) == 0xA282EAD9
