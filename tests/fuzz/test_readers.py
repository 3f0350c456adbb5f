"""A CI-sized fuzz run of every reader (hypothesis): mutated real files give a result or
an ``RnnBridgeError``, never another exception. ``tools/fuzz.py`` runs the same property
for as long as you like."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import harness

SEEDS = harness.available_seeds()
BOMBS = harness.bomb_seeds()

ops = st.lists(
    st.tuples(
        st.sampled_from(harness.KINDS),
        st.floats(0, 1, exclude_max=True, allow_nan=False),
        st.one_of(st.sampled_from(harness.INTERESTING), st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("reader", sorted(SEEDS))
def test_the_seed_reads(reader, tmp_path):
    seed = SEEDS[reader]
    assert harness.outcome(seed.files(), tmp_path, seed.source) == "ok"


@pytest.mark.parametrize("reader", sorted(SEEDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(data=st.data())
def test_mutated_input_never_crashes(reader, data):
    seed = SEEDS[reader]
    victim = data.draw(st.sampled_from(seed.victims), label="victim")
    files = harness.mutated(seed, victim, data.draw(ops, label="ops"))
    with tempfile.TemporaryDirectory() as folder:
        harness.outcome(files, Path(folder), seed.source)


@settings(max_examples=40, deadline=None, database=None)
@given(reader=st.sampled_from(sorted(SEEDS)), mutations=ops)
def test_mutated_input_inside_a_zip_never_crashes(reader, mutations):
    seed = SEEDS[reader]
    files = harness.mutated(seed, seed.victims[0], mutations)
    with tempfile.TemporaryDirectory() as folder:
        harness.outcome([("upload.zip", harness.as_zip(files))], Path(folder), seed.source)


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_structural_bomb_is_an_rnnbridge_error_or_a_result(bomb, tmp_path):
    seed = BOMBS[bomb]
    assert harness.outcome(seed.files(), tmp_path, seed.source) in {
        "ok",
        "limit_exceeded",
        "malformed_file",
        "unsupported_format",
        "layer_not_found",
    }


@settings(max_examples=30, deadline=None, database=None)
@given(bomb=st.sampled_from(sorted(BOMBS)), mutations=ops)
def test_mutated_bombs_never_crash(bomb, mutations):
    seed = BOMBS[bomb]
    files = harness.mutated(seed, 0, mutations)
    with tempfile.TemporaryDirectory() as folder:
        harness.outcome(files, Path(folder), seed.source)


def _npz_with_unbalanced_header() -> harness.Upload:
    """An npz whose ``.npy`` header leaves a parenthesis open: NumPy's header tokenizer
    raised ``tokenize.TokenError`` (found by ``tools/fuzz.py --long``)."""
    import io
    import struct
    import zipfile

    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + b"\0" * 12
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("w.npy", npy)
    return [("w.npz", buffer.getvalue())]


def _keras_with_corrupt_deflate() -> harness.Upload:
    """A deflated ``.keras`` whose ``config.json`` stream is corrupt: ``zlib.error`` escaped
    (found by ``tools/fuzz.py --long`` on the bomb seeds, which are the first deflated ones)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b'{"a": "' + b"x" * 5000 + b'"}')
        archive.writestr("model.weights.h5", b"\0" * 64)
    data = bytearray(buffer.getvalue())
    start = data.index(b"config.json") + len("config.json")  # the deflate stream follows the local header
    data[start + 4 : start + 12] = b"\xff" * 8
    return [("m.keras", bytes(data))]


@pytest.mark.parametrize("make", [_npz_with_unbalanced_header, _keras_with_corrupt_deflate])
def test_regressions_of_the_long_run_are_malformed_files(make, tmp_path):
    assert harness.outcome(make(), tmp_path, "pytorch") == "malformed_file"
