"""A 415 says first what the upload looked like, and how to send what rnnbridge reads."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from rnnbridge import formats
from rnnbridge.errors import UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES

TF1 = SHARED_FIXTURES / "tf1_lstm"
ONNX = (SHARED_FIXTURES / "onnx_lstm_forward" / "model.onnx").read_bytes()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3, np.float32))
    return buffer.getvalue()


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "nothing to see")
    return buffer.getvalue()


CASES = {
    "empty": ("model.h5", b"", "'model.h5' is an empty upload (0 bytes)"),
    "meta": ("model.ckpt.meta", (TF1 / "model.ckpt.meta").read_bytes(), "a .meta, which holds the graph, not the weights: send the .index and .data-* files"),
    "shard": (
        "model.ckpt.data-00000-of-00001",
        (TF1 / "model.ckpt.data-00000-of-00001").read_bytes(),
        "a checkpoint data shard without its .index: send model.ckpt.index with it",
    ),
    "onnx_cut": ("model.onnx", ONNX[: len(ONNX) // 2], f"an ONNX model cut off at byte {len(ONNX) // 2}"),
    "text": ("weights.h5", b"version https://git-lfs.github.com/spec/v1\noid sha256:...\n", "a text file (it starts 'version https://git-lfs"),
    "npy": ("gates.npy", _npy(), "a single .npy array, without names"),
    "tf_bookkeeping": ("checkpoint", (TF1 / "checkpoint").read_bytes(), "TensorFlow's 'checkpoint' bookkeeping file"),
    "zip": ("bundle.zip", _zip_of_text(), "a zip archive holding none of these formats"),
    "bytes": ("x.bin", bytes(range(256)) * 4, "none of the formats rnnbridge reads matched 'x.bin' (1024 bytes)"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_refusal_says_what_was_seen_first_and_stays_short(tmp_path, case):
    name, data, seen = CASES[case]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UnsupportedFormat) as info:
        formats.read([InputFile(name, tmp_path / name)], Limits(tmp_dir=tmp_path))
    detail = info.value.detail
    assert seen in detail and detail.index(seen) < 70, detail
    assert detail.endswith("npz or JSON arrays with source=.")
    assert len(detail) < 400  # the list of formats is one short sentence, not 900 characters


def test_each_file_of_a_multi_file_upload_is_described(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.h5").write_bytes(b"")
    files = [InputFile("a.txt", tmp_path / "a.txt"), InputFile("b.h5", tmp_path / "b.h5")]
    with pytest.raises(UnsupportedFormat, match=r"'a.txt' is a text file .*; 'b.h5' is an empty upload"):
        formats.read(files, Limits(tmp_dir=tmp_path))


def test_a_shard_with_its_index_is_read_not_refused():
    files = [InputFile(n, TF1 / n) for n in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")]
    assert formats.read(files, Limits()).tensors
