"""The size promised before a streamed output is written (its Content-Length) is the size
written, byte for byte, for every real fixture and target."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.output_sizes import encoded_size

from .fixtures_index import SHARED_FIXTURES


class Unseekable(io.RawIOBase):
    """A write-only stream that counts, as the service's streaming body does."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data) -> int:  # type: ignore[override]
        size = memoryview(data).nbytes
        self.written += size
        return size


def _written(result: pipeline.Result, fmt: str) -> int:
    stream = Unseekable()
    outputs.write(result, fmt, stream)
    return stream.written


S = SHARED_FIXTURES
FILES = {
    "keras2_h5": [S / "k2_lstm_seq" / "m.h5"],
    "keras3_stacked_gru": [S / "k3_stacked_gru" / "m.keras"],
    "torch_2l_bi": [S / "torch_lstm_2l_bi" / "model.pt"],
    "onnx_bidirectional": [S / "onnx_lstm_bidirectional_init" / "model.onnx"],
    "tf1_bidi": [S / "tf1_bidi_lstm" / n for n in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")],
}


@pytest.mark.parametrize("files", FILES.values(), ids=list(FILES))
@pytest.mark.parametrize("target", ["pytorch", "keras", "onnx", "tf1", None])
@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_the_promised_size_is_the_written_size(files, target, fmt):
    model = pipeline.read(files)
    try:
        result = pipeline.split(model) if target is None else pipeline.convert(model, target)
    except Exception as exc:  # a refused conversion has nothing to measure
        pytest.skip(f"{type(exc).__name__}: {exc}")
    assert encoded_size(result, fmt) == _written(result, fmt)


@pytest.mark.parametrize("name", ["lstm", "модель/слой", "a" * 300])
@pytest.mark.parametrize("shape", [(), (0,), (3, 4), (1, 2, 3, 4, 5, 6, 7, 8)])
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<f2", "<i8"])
def test_npz_sizes_for_names_shapes_dtypes_and_memory_order(name, shape, dtype):
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    for candidate in (array, np.asfortranarray(array)):
        result = pipeline.Result({name: candidate}, {"note": "ü" * 50})
        assert encoded_size(result, "npz") == _written(result, "npz")


def test_json_and_h5_sizes_are_not_promised():
    result = pipeline.split(pipeline.read([SHARED_FIXTURES / "k2_lstm_seq" / "m.h5"]))
    assert encoded_size(result, "json") is None and encoded_size(result, "h5") is None
