"""Every output rnnbridge writes reads back with no ``source`` and converts again bit for bit.

For each real fixture layer: convert it, write the result in a format, read those bytes
back with no ``source``, convert again to the same target, and require the same arrays,
bit for bit and dtype for dtype. A ``/split`` result is a source too: its per-gate arrays
(edited or not) fuse into any target, and split ∘ convert equals convert.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.engine.conventions import TARGET_FRAMEWORKS
from rnnbridge.errors import InexactConversion, InvalidField, MalformedFile

from .fixtures_index import FIXTURE_LAYERS, FixtureLayer
from .test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

#: (format, target): every format, and safetensors for every target (it once lost the metadata)
WRITTEN = [
    ("npz", "pytorch"),
    ("json", "tf1"),
    ("safetensors", "keras"),
    ("safetensors", "onnx"),
    ("safetensors", "pytorch"),
    ("onnx", "onnx"),
    ("tf_checkpoint", "tf1"),
    ("pdparams", "paddle"),
    ("safetensors", "mlx"),
    ("npz", "haiku"),
]


def source_model(fx: FixtureLayer) -> pipeline.Model:
    name = next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))
    return read(fx.id, name)


def convert(model: pipeline.Model, fx: FixtureLayer | None, target: str, fmt: str = "npz") -> pipeline.Result:
    order = "K" if fmt in outputs.ANY_ORDER else "C"
    if fx is None:
        return pipeline.convert(model, target, order=order)
    try:
        return pipeline.convert(model, target, layer=layer_name(fx), source_forget_bias=forget_bias(fx), order=order)
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")


def written(result: pipeline.Result, fmt: str, folder: Path) -> Path:
    path = folder / f"out.{outputs.EXTENSIONS[fmt]}"
    with path.open("wb") as stream:
        outputs.write(result, fmt, stream)
    return path


def assert_same_arrays(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        assert np.ascontiguousarray(got[name]).tobytes() == np.ascontiguousarray(array).tobytes(), name


@pytest.mark.parametrize(("fmt", "target"), WRITTEN)
@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_a_written_result_reads_back_without_source_and_converts_again_bit_for_bit(fx, fmt, target, tmp_path):
    first = convert(source_model(fx), fx, target, fmt)
    back = pipeline.read([written(first, fmt, tmp_path)])
    assert [layer.name for layer in back.layers] == [layer["name"] for layer in first.meta["layers"]]
    again = convert(back, None, target, fmt)
    assert_same_arrays(again.arrays, first.arrays)
    assert again.meta["layers"][0]["target"]["config"] == first.meta["layers"][0]["target"]["config"]


SPLITS = [("npz", "out_in"), ("json", "in_out"), ("safetensors", "out_in")]


@pytest.mark.parametrize(("fmt", "orientation"), SPLITS)
@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_split_then_convert_is_convert(fx, fmt, orientation, tmp_path):
    model = source_model(fx)
    split = pipeline.split(model, layer=layer_name(fx), source_forget_bias=forget_bias(fx), orientation=orientation)
    back = pipeline.read([written(split, fmt, tmp_path)])
    assert [layer.name for layer in back.layers] == [layer_name(fx)]
    for target in TARGET_FRAMEWORKS:
        try:
            direct = pipeline.convert(model, target, layer=layer_name(fx), source_forget_bias=forget_bias(fx))
        except InexactConversion as refused:
            with pytest.raises(InexactConversion) as again:
                pipeline.convert(back, target)
            assert again.value.code == refused.code
            continue
        assert_same_arrays(pipeline.convert(back, target).arrays, direct.arrays)


def torch_gru_split() -> tuple[pipeline.Result, pipeline.Model]:
    fx = next(f for f in FIXTURE_LAYERS if f.id == "torch_gru_in1:rnn0")
    model = source_model(fx)
    return pipeline.split(model), model


def reread(result: pipeline.Result, arrays: dict[str, np.ndarray], tmp_path: Path) -> pipeline.Model:
    return pipeline.read([written(pipeline.Result(arrays, result.meta), "npz", tmp_path)])


def test_an_edited_gate_changes_exactly_that_block_of_the_fused_tensor(tmp_path):
    split, _ = torch_gru_split()
    name = next(n for n in split.arrays if n.endswith("/W_xz"))
    arrays = dict(split.arrays)
    arrays[name] = np.full_like(arrays[name], 0.25)
    fused = pipeline.convert(reread(split, arrays, tmp_path), "pytorch", prefix="")
    hidden = arrays[name].shape[0]
    weight = fused.arrays["weight_ih_l0"]  # PyTorch order r, z, n
    np.testing.assert_array_equal(weight[hidden : 2 * hidden], 0.25)
    np.testing.assert_array_equal(weight[:hidden], split.arrays[name.replace("W_xz", "W_xr")])


def test_a_split_missing_a_gate_is_refused_with_its_name(tmp_path):
    split, _ = torch_gru_split()
    arrays = {n: a for n, a in split.arrays.items() if not n.endswith("/W_hn")}
    with pytest.raises(MalformedFile, match="W_hn"):
        reread(split, arrays, tmp_path)


def test_a_split_gate_of_the_wrong_shape_is_refused(tmp_path):
    split, _ = torch_gru_split()
    name = next(n for n in split.arrays if n.endswith("/b_xr"))
    arrays = {**split.arrays, name: np.zeros(split.arrays[name].size + 1, split.arrays[name].dtype)}
    with pytest.raises(MalformedFile, match="b_xr has shape"):
        reread(split, arrays, tmp_path)


def test_onnx_and_tf_checkpoint_are_for_their_own_target():
    split, model = torch_gru_split()
    for fmt in ("onnx", "tf_checkpoint"):
        with pytest.raises(InvalidField, match="format"):
            outputs.write(split, fmt, io.BytesIO())


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_a_keras_h5_reads_back_as_one_keras_layer_per_level_with_the_same_bytes(fx, tmp_path):
    """The .weights.h5 carries no metadata (Keras reads every dataset it holds): it comes back
    as the Keras layers it is, one per level, each tensor bit for bit."""
    first = convert(source_model(fx), fx, "keras", "h5")
    back = pipeline.read([written(first, "h5", tmp_path)])
    assert len(back.layers) == first.meta["layers"][0]["target"]["num_layers"]
    again = pipeline.convert(back, "keras")

    def contents(arrays: dict[str, np.ndarray]) -> list[tuple]:
        return sorted((a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()) for a in arrays.values())

    assert contents(again.arrays) == contents(first.arrays)
