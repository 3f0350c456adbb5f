"""Inputs that make a library loop for ever or crash: each read runs in a child process with a
wall-clock bound, so that the suite (and this test's verdict) survives the hang.

``h5_global_heap_hang.h5`` (found by ``tools/fuzz.py``): libhdf5 spins, holding the GIL,
when h5py reads a string attribute whose global-heap object claims more bytes than its
collection holds. In the service this freezes the whole worker (every request, not just
this one). The readers cannot interrupt a C call: the fix needs either a validation of
the global heap before h5py reads a variable-length value, or HDF5 reads in a child
process with a timeout.

``h5_segfault.h5`` (found by ``tools/fuzz.py``): one byte of a real Keras 2 file makes
libhdf5 segfault while h5py reads the string-array attribute ``weight_names``; in the
service the worker process dies with every request in flight. Only a child process
(or a validation of the attribute's heap before reading it) protects the server.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.hostile import make_corpus

BOUND_SECONDS = 10
#: entries that hang (libhdf5 spins) or kill the interpreter (libhdf5 segfaults)
HANGS = {"h5_global_heap_hang.h5", "h5_segfault.h5"}

_READ = """
import sys
from rnnbridge import pipeline
from rnnbridge.errors import RnnBridgeError
from rnnbridge.formats.base import Limits
try:
    pipeline.read([sys.argv[1]], limits=Limits(read_timeout=3))
except RnnBridgeError as exc:
    print(exc.code)
"""


@pytest.mark.parametrize("name", sorted(HANGS))
def test_read_ends(name):
    path = make_corpus.corpus_path(next(e for e in make_corpus.ENTRIES if e.name == name))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _READ, str(path)], capture_output=True, timeout=BOUND_SECONDS, cwd=make_corpus.HERE.parents[1]
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {name} did not end within {BOUND_SECONDS} s")
    assert done.returncode == 0 and done.stdout.strip() == b"malformed_file", done.stderr
