"""``inspect`` of a large safetensors file reads its header, not its tensors: the tensors are
memory-mapped and only conversion touches their bytes."""

from __future__ import annotations

import tracemalloc

import numpy as np

from rnnbridge import pipeline
from rnnbridge.formats.safetensors import file as safetensors_file


def _lstm_file(path, hidden: int = 1024, inputs: int = 2048) -> int:
    rng = np.random.default_rng(0)
    tensors = {
        "lstm.weight_ih_l0": rng.standard_normal((4 * hidden, inputs), np.float32),
        "lstm.weight_hh_l0": rng.standard_normal((4 * hidden, hidden), np.float32),
        "lstm.bias_ih_l0": rng.standard_normal(4 * hidden, np.float32),
        "lstm.bias_hh_l0": rng.standard_normal(4 * hidden, np.float32),
    }
    with open(path, "wb") as stream:
        safetensors_file.write(stream, tensors)
    return sum(t.nbytes for t in tensors.values())


def test_inspect_allocates_next_to_nothing_for_a_48_mb_file(tmp_path):
    size = _lstm_file(tmp_path / "big.safetensors")
    assert size > 48e6
    _lstm_file(tmp_path / "small.safetensors", hidden=4, inputs=3)
    pipeline.inspect(pipeline.read([tmp_path / "small.safetensors"]))  # first-use imports are not the file's cost
    tracemalloc.start()
    try:
        document = pipeline.inspect(pipeline.read([tmp_path / "big.safetensors"]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [layer["name"] for layer in document["layers"]] == ["lstm"]
    assert peak < 2e6, f"inspect allocated {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


def test_the_mapped_tensors_convert_exactly(tmp_path):
    _lstm_file(tmp_path / "m.safetensors", hidden=8, inputs=5)
    with open(tmp_path / "m.safetensors", "rb") as stream:  # the reference: plain reads
        header = stream.read()
    from rnnbridge.formats.base import InputFile, Limits

    stored = safetensors_file.read([InputFile("m.safetensors", tmp_path / "m.safetensors")], Limits()).tensors
    assert all(not a.flags.writeable for a in stored.values())  # mapped read-only: nothing can write into the upload
    result = pipeline.convert(pipeline.read([tmp_path / "m.safetensors"]), "pytorch", prefix="lstm.")
    assert result.arrays.keys() == stored.keys()
    for name, array in result.arrays.items():
        assert np.array_equal(array.view(np.uint32), stored[name].view(np.uint32)), name
        assert stored[name].tobytes() in header
