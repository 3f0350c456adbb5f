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
