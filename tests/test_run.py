"""/run: a layer's forward pass reproduces what its framework recorded, in the framework's
own output layout; the trace recomputes the outputs; ``expected=`` finds where a
hand-written forward pass first departs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnbridge import pipeline, verbs
from rnnbridge.errors import InvalidField, LimitExceeded
from tests.fixtures_index import FixtureLayer, fixture_params

TOLERANCE = {"float32": 1e-5, "float64": 1e-6}


def own_time_major(fx: FixtureLayer) -> bool:
    """Whether the framework was fed time-major input when the fixture was made."""
    flags = fx.layer["flags"]
    if "time_major" in flags:
        return bool(flags["time_major"])
    if flags.get("batch_first") is not None:
        return not flags["batch_first"]
    return fx.native.convention.framework in ("onnx", "pytorch")


def run_fixture(fx: FixtureLayer, dtype: str, *, flip: bool = False, **kwargs) -> pipeline.Result:
    """Run the fixture's layer on its input, laid out as its framework was fed (``flip``:
    the other way round, which only changes the layout of inputs and outputs)."""
    time_major = own_time_major(fx) != flip
    x = fx.x if time_major else np.swapaxes(fx.x, 0, 1)
    model = pipeline.Model("npz", [fx.native], 0)
    return verbs.run(model, x=x, h0=fx.h0, c0=fx.c0, time_major=time_major, dtype=dtype, **kwargs)


def to_common(result: pipeline.Result) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The framework-layout outputs back in the fixtures' common layout: y [T, B, D·Hout]
    in input time, h_n [L·D, B, Hout], c_n [L·D, B, H] (using only ``meta["axes"]``)."""
    axes, meta = result.meta["axes"], result.meta
    sequences = [name for name, a in axes.items() if "T" in a]
    parts = []
    for name in sequences:
        seq, a = result.arrays[name], axes[name]
        if "D" in a:  # ONNX [T, D, B, H] / [B, T, D, H]: directions side by side
            seq = seq.transpose([a.index(axis) for axis in ("T", "B", "D", "H")])
            seq = np.ascontiguousarray(seq).reshape(*seq.shape[:2], -1)
        elif a[0] == "B":
            seq = np.swapaxes(seq, 0, 1)
        parts.append(seq)
    y = np.concatenate(parts, axis=-1)
    if meta["flags"].get("go_backwards"):
        y = y[::-1]  # Keras returns the sequence in reading order
    states: dict[str, list[np.ndarray]] = {"h": [], "c": []}
    for name, a in axes.items():
        array = result.arrays[name]
        if a[:2] == ["B", "L*D"]:
            array = np.swapaxes(array, 0, 1)
        if "T" in a:
            continue
        part = "c" if a[-1] == "H" else "h"  # the hidden state's last axis is Hout
        states[part].extend(array if array.ndim == 3 else [array])
    c_n = np.stack(states["c"]) if states["c"] else None
    return y, np.stack(states["h"]), c_n


@pytest.mark.parametrize("fx", fixture_params())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("flip", [False, True], ids=["own-layout", "other-layout"])
def test_run_reproduces_the_framework(fx: FixtureLayer, dtype: str, flip: bool) -> None:
    result = run_fixture(fx, dtype, flip=flip)
    assert result.meta["time_major"] == (own_time_major(fx) != flip)
    y, h_n, c_n = to_common(result)
    tolerance = TOLERANCE[dtype]
    assert all(a.dtype == np.dtype(dtype) for a in result.arrays.values())
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=tolerance)
    np.testing.assert_allclose(h_n, fx.h_n, rtol=0, atol=tolerance)
    assert (c_n is None) == (fx.c_n is None)
    if c_n is not None:
        np.testing.assert_allclose(c_n, fx.c_n, rtol=0, atol=tolerance)


#: frameworks whose own output layout ``run.OUTPUT_LAYOUTS`` does not describe yet (MLX
#: returns every step's cell state; OpenVINO's Y is [B, D, T, H]): the generic layout
UNDESCRIBED_LAYOUTS = {"mlx", "openvino"}


def _named_output_params() -> list:
    gap = pytest.mark.xfail(strict=True, reason="the framework's output layout is not described (generic names)")
    return [
        pytest.param(*p.values, id=p.id, marks=gap if p.values[0].native.convention.framework in UNDESCRIBED_LAYOUTS else ())
        for p in fixture_params()
    ]


@pytest.mark.parametrize("fx", _named_output_params())
def test_outputs_carry_the_framework_names(fx: FixtureLayer) -> None:
    """Where the fixture recorded the framework's own output structure under the names
    rnnbridge uses, every such array matches, in that layout."""
    recorded = dict(np.load(fx.dir / fx.layer["framework_outputs"]["file"]))
    result = run_fixture(fx, "float32")
    shared = set(recorded) & set(result.arrays)
    differently_recorded = {
        "onnx_torch_export_gru",
        "tf1_cudnn_compatible_gru",
        "tf1_cudnn_compatible_lstm",
        "tf1_gru_block_cell_v1_names",
    }
    if fx.fixture["id"] in differently_recorded:
        pytest.skip("the fixture records another program's outputs (a graph, a raw op), not the layer's")
    assert shared == set(recorded)
    for name in shared:
        np.testing.assert_allclose(result.arrays[name], recorded[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("fx", fixture_params())
def test_the_trace_recomputes_the_outputs(fx: FixtureLayer) -> None:
    result = run_fixture(fx, "float64", trace=True)
    arrays, letters = result.arrays, result.meta["letters"]
    y, _, _ = to_common(result)
    native = fx.native
    top = native.num_levels - 1
    hidden = [arrays[f"trace/l{top}/{d}/hidden"] for d in native.directions]
    # the trace runs the canonical arrays, whose folded TF1 forget bias is rounded to float32
    np.testing.assert_allclose(np.concatenate(hidden, axis=-1), y, rtol=0, atol=TOLERANCE["float64"])
    for level, direction in native.cells:
        act = {g: arrays[f"trace/l{level}/{direction}/act/{letters[g]}"] for g in letters}
        pre = {g: arrays[f"trace/l{level}/{direction}/pre/{letters[g]}"] for g in letters}
        order = list(range(len(y)))[:: -1 if direction == "backward" else 1]
        if native.convention.cell == "lstm":
            c = arrays[f"trace/l{level}/{direction}/cell_state"]
            for k, t in enumerate(order[1:], 1):
                previous = c[order[k - 1]]
                np.testing.assert_array_equal(c[t], act["f"][t] * previous + act["i"][t] * act["g"][t])
        else:
            h = arrays[f"trace/l{level}/{direction}/hidden"]
            for k, t in enumerate(order[1:], 1):
                z, n = act["z"][t], act["n"][t]
                np.testing.assert_array_equal(h[t], z * h[order[k - 1]] + (1.0 - z) * n)
        if native.config.activations[0] == "sigmoid" and native.config.clip is None:
            gate = "r" if native.convention.cell == "gru" else "o"
            np.testing.assert_allclose(act[gate], 1 / (1 + np.exp(-pre[gate])), rtol=0, atol=1e-12)


@pytest.mark.parametrize("fx", fixture_params(lambda f: f.x.shape[0] >= 3))
def test_expected_finds_an_injected_divergence(fx: FixtureLayer) -> None:
    clean = run_fixture(fx, "float32")
    axes = clean.meta["axes"]
    sequence = next(name for name, a in axes.items() if "T" in a)
    wanted = clean.arrays[sequence].copy()
    a = axes[sequence]
    t_axis = a.index("T")
    index = [0] * wanted.ndim
    index[t_axis] = 2
    last = wanted.shape[-1] - 1
    index[-1] = last
    if "B" in a:
        index[a.index("B")] = wanted.shape[a.index("B")] - 1
    wanted[tuple(index)] += 0.01
    later = [slice(None)] * wanted.ndim
    later[t_axis] = slice(3, None)
    wanted[tuple(later)] += 0.5  # a hand-written pass that went wrong stays wrong
    report = run_fixture(fx, "float32", expected={sequence: wanted}).meta["divergence"]
    first = report["first"]
    assert first["array"] == sequence and first["step"] == 2
    assert first["at"][a[-1]] == last and first["abs_diff"] == pytest.approx(0.01, abs=1e-6)
    if "D*Hout" in a:
        width = wanted.shape[-1] // len(fx.native.directions)
        assert (first["direction"], first["unit"]) == (len(fx.native.directions) - 1, width - 1)
    else:
        assert first["unit"] == last
    matching = run_fixture(fx, "float32", expected={sequence: clean.arrays[sequence]}).meta["divergence"]
    assert matching["first"] is None and matching["arrays"][sequence]["status"] == "matches"


def test_a_random_input_is_reproducible_and_returned() -> None:
    model = pipeline.Model(
        "sizes", [verbs.layer_from_sizes(verbs.Bounds(), convention="pytorch.gru", input_size=3, units=4)], 0
    )
    first = verbs.run(model, steps=5, batch=2, seed=7)
    again = verbs.run(model, steps=5, batch=2, seed=7)
    assert first.arrays["x"].shape == (5, 2, 3)  # PyTorch's default: time-major
    assert all(np.array_equal(first.arrays[k], again.arrays[k]) for k in first.arrays)
    assert first.meta["random_input"]["seed"] == 7


def test_runs_are_bounded() -> None:
    layer = verbs.layer_from_sizes(verbs.Bounds(), convention="keras.lstm", input_size=64, units=64)
    model = pipeline.Model("sizes", [layer], 0)
    with pytest.raises(LimitExceeded):
        verbs.run(model, steps=1000, batch=1000, bounds=verbs.Bounds(max_elements=10**12))
    with pytest.raises(LimitExceeded):
        verbs.run(model, steps=10, batch=2, trace=True, bounds=verbs.Bounds(max_elements=1000))
    with pytest.raises(InvalidField):
        verbs.run(model, x=np.zeros((2, 5, 3)))  # I = 64
    with pytest.raises(InvalidField):
        verbs.run(model, steps=2, batch=1, h0=np.zeros((2, 1, 64)))


GRU_BARE = Path(__file__).resolve().parent / "fixtures" / "exactness" / "torch_onnx_gru_bare"


def test_run_lists_what_it_assumed_and_strict_refuses_it() -> None:
    """Bare ONNX arrays of a PyTorch GRU (reset-after): the facts the arrays do not record
    are assumptions of /run too, listed with the field that states them; stated, the run
    reproduces PyTorch's outputs."""
    x, y, h_n = (np.load(GRU_BARE / name) for name in ("x.npy", "y.npy", "h_n.npy"))
    bare = [GRU_BARE / "bare.npz"]
    guessed = verbs.run(bare, x=x, source="onnx", dtype="float64")
    assert {a["field"] for a in guessed.meta["assumed"]} >= {"reset_after", "clip"}
    assert np.max(np.abs(guessed.arrays["Y"][:, 0] - y)) > 1e-2  # ONNX's default variant is not this layer's
    stated = verbs.run(
        bare,
        x=x,
        source="onnx",
        reset_after=True,
        activations="sigmoid,tanh",
        clip="none",
        direction="forward",
        dtype="float64",
        strict=True,
    )
    assert stated.meta["assumed"] == []
    assert np.max(np.abs(stated.arrays["Y"][:, 0] - y)) < 1e-5
    assert np.max(np.abs(stated.arrays["Y_h"] - h_n)) < 1e-5
    with pytest.raises(InvalidField) as refused:
        verbs.run(bare, x=x, source="onnx", strict=True)
    assert refused.value.code == "assumption_required"
