"""Every output format, for every target, reads back into rnnbridge without ``source``.

A converted file names its layers' conventions in its metadata (``rnnbridge.formats.meta``);
the reader of each format must find it there, so that A → B → A works from the files
alone. Keras ``.weights.h5`` carries no metadata, but it is a Keras file: it reads back as
Keras, one layer per converted level.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import rnnbridge
from rnnbridge.engine.conventions import TARGET_FRAMEWORKS, targets
from rnnbridge.formats.tf.writer import variable_names
from rnnbridge.outputs import OUTPUTS, check_format

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOURCES = {
    "keras_stacked_bilstm": FIXTURES / "k2_stacked_bilstm" / "m.h5",
    "torch_bigru_2_levels": FIXTURES / "torch_gru_2l_bi_ckpt" / "model.pt",
    "torch_lstm_one_level": FIXTURES / "torch_lstm_no_bias" / "model.pt",
}
#: the sources with several levels and both directions, which single-cell and one-direction
#: targets (MLX, Equinox, Haiku) refuse
STACKED = {"keras_stacked_bilstm", "torch_bigru_2_levels"}


def holds_stacks(target: str) -> bool:
    one_way = {"single_cell", "one_direction"}
    return all(any(not (one_way & c.features) for c in targets(target, cell)) for cell in ("lstm", "gru"))


CASES = [
    pytest.param(source, target, fmt, id=f"{source}-{target}-{fmt}")
    for source in SOURCES
    for target in TARGET_FRAMEWORKS
    if source not in STACKED or holds_stacks(target)
    for fmt, output in OUTPUTS.items()
    if output.targets is None or target in output.targets
]


def gate_values(model: rnnbridge.Model) -> Counter[tuple[str, bytes]]:
    """Every per-gate array of ``model`` by gate name and bytes, whatever its layer is called."""
    split = rnnbridge.split(model)
    return Counter((name.rsplit("/", 1)[1], np.ascontiguousarray(a).tobytes()) for name, a in split.arrays.items())


@pytest.mark.parametrize(("source", "target", "fmt"), CASES)
def test_every_output_reads_back_without_source(source: str, target: str, fmt: str, tmp_path: Path) -> None:
    result = rnnbridge.convert(SOURCES[source], target, format=fmt)
    path = result.save(f"{tmp_path}/out/")  # a str: a Path cannot end in "/"
    assert path is not None and path.parent == tmp_path / "out"
    model = rnnbridge.read(path)
    assert {layer.convention.framework for layer in model.layers} == {target}
    assert {layer.convention.key for layer in model.layers} == {
        layer.target.key for layer in result.layers if layer.target
    }
    if fmt in ("h5", "eqx"):  # no metadata: the same gates as the npz round trip (eqx: no names either)
        npz = result.save(tmp_path / "ref.npz", "npz")
        assert gate_values(model) == gate_values(rnnbridge.read(npz))
        return
    assert [layer.name for layer in model.layers] == [layer.name for layer in result.layers]
    read_back = set()
    # a TF checkpoint stores its variables under TF's names (``rnn/.../lstm_cell/kernel``)
    result_name = {tf: name for name, tf in variable_names(result.meta).items()} if fmt == "tf_checkpoint" else {}
    for layer in model.layers:
        for (level, direction, tensor), stored_as in layer.origin.items():
            name = result_name.get(stored_as, stored_as)
            expected = result.arrays[name]
            if layer.convention.stack_directions:  # ONNX: [directions, ...]
                expected = expected[layer.directions.index(direction)]
            stored = layer.cells[(level, direction)][tensor]
            assert stored.dtype == expected.dtype, name
            np.testing.assert_array_equal(stored, expected, err_msg=name)
            read_back.add(name)
    assert read_back == set(result.arrays)


def test_format_h5_is_for_keras_only() -> None:
    for target in TARGET_FRAMEWORKS:
        if target == "keras":
            assert check_format("h5", target).extension == "weights.h5"
        else:
            with pytest.raises(rnnbridge.InvalidField, match="target=keras"):
                check_format("h5", target)


@pytest.mark.parametrize(("fmt", "only"), [("pdparams", "paddle"), ("eqx", "equinox")])
def test_framework_formats_are_for_their_framework_only(fmt: str, only: str) -> None:
    assert check_format(fmt, only).name == fmt
    for target in [None, *TARGET_FRAMEWORKS]:
        if target != only:
            with pytest.raises(rnnbridge.InvalidField, match=f"target={only}"):
                check_format(fmt, target)
