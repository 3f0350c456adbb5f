"""verify(): the same function passes, any difference beyond the stored dtype's rounding fails."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.engine.conventions import CONVENTIONS
from rnnbridge.engine.model import LayerConfig, NativeLayer
from rnnbridge.engine.verify import SAMPLE_ABOVE, SAMPLE_UNITS, verify
from rnnbridge.errors import VerificationFailed
from tests.fixtures_index import FixtureLayer, fixture_params


def _with(layer: NativeLayer, change, *, config: LayerConfig | None = None) -> NativeLayer:
    """A copy of ``layer`` with ``change(name, array)`` applied to every tensor."""
    cells = {key: {name: change(name, a.copy()) for name, a in t.items()} for key, t in layer.cells.items()}
    return NativeLayer(layer.name, layer.convention, config or layer.config, cells)


def _bias_name(layer: NativeLayer) -> str:
    present = set().union(*(t.keys() for t in layer.cells.values()))
    names = [t.name for t in layer.convention.tensors if t.group == "bias" and t.name in present]
    return names[0] if names else layer.convention.tensors[0].name


@pytest.mark.parametrize("fx", fixture_params())
def test_a_layer_verifies_against_itself(fx: FixtureLayer) -> None:
    report = verify(fx.native, fx.native)
    assert report["max_abs_err"] == 0.0
    assert report["compared"] == (["y", "h_n", "c_n"] if fx.c_n is not None else ["y", "h_n"])
    assert report["tolerance"] >= (1e-10 if fx.native.dtype == np.float64 else 1e-5)
    assert (report["seed"], report["steps"], report["batch"]) == (0, 5, 2)


@pytest.mark.parametrize("fx", fixture_params())
def test_a_perturbed_bias_fails(fx: FixtureLayer) -> None:
    name = _bias_name(fx.native)
    target = _with(fx.native, lambda n, a: a + np.float32(1e-2) if n == name else a)
    with pytest.raises(VerificationFailed) as caught:
        verify(fx.native, target)
    assert caught.value.code == "verification_failed"
    assert caught.value.extra["max_abs_err"] > caught.value.extra["tolerance"]


def _poison(value: float):
    def change(name: str, a: np.ndarray) -> np.ndarray:
        a.flat[0] = value if name == "weight_ih" or name in ("kernel", "W", "gates/kernel") else a.flat[0]
        return a

    return change


@pytest.mark.parametrize(
    "fx", fixture_params(lambda f: f.fixture["id"] in ("torch_lstm_2l_bi", "k2_cudnn_gru", "tf1_gru"))
)
def test_nan_in_the_target_only_fails(fx: FixtureLayer) -> None:
    with pytest.raises(VerificationFailed, match="NaN/Inf"):
        verify(fx.native, _with(fx.native, _poison(np.nan)))


@pytest.mark.parametrize("fx", fixture_params(lambda f: f.fixture["id"] == "k2_lstm_relu"))
def test_inf_in_the_target_only_fails(fx: FixtureLayer) -> None:
    """An infinite candidate bias (Keras gates i, f, c, o) reaches relu's outputs as Inf."""

    def poison(name: str, a: np.ndarray) -> np.ndarray:
        if name == "bias":
            a[a.shape[0] // 2] = np.inf
        return a

    with pytest.raises(VerificationFailed, match="NaN/Inf"):
        verify(fx.native, _with(fx.native, poison))


@pytest.mark.parametrize("fx", fixture_params(lambda f: f.fixture["id"] == "torch_lstm_2l_bi"))
def test_the_same_non_finite_values_in_both_pass(fx: FixtureLayer) -> None:
    poisoned = _with(fx.native, _poison(np.nan))
    assert verify(poisoned, poisoned)["max_abs_err"] == 0.0


@pytest.mark.parametrize(("dtype", "base"), [(np.float16, 1e-2), (np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("fx", fixture_params(lambda f: f.fixture["id"] == "k2_bilstm"))
def test_tolerance_follows_the_stored_dtype(fx: FixtureLayer, dtype, base: float) -> None:
    layer = _with(fx.native, lambda n, a: a.astype(dtype))
    report = verify(layer, layer)
    assert base <= report["tolerance"] <= base * 2  # scaled by max(1, max|y|) and |y| < 1 here


def _fold_forget_bias(fx: FixtureLayer) -> NativeLayer:
    """TF1's run-time forget bias folded into the stored float32 bias (gates i, j, f, o)."""

    def fold(name: str, a: np.ndarray) -> np.ndarray:
        if name == "bias":
            size = a.shape[0] // 4
            a[2 * size : 3 * size] += np.float32(fx.native.config.forget_bias)
        return a

    return _with(fx.native, fold, config=fx.native.config.with_(forget_bias=0.0))


@pytest.mark.parametrize("fx", fixture_params(lambda f: f.native.convention.key == "tf1.lstm"))
def test_a_conversion_with_float32_rounding_passes(fx: FixtureLayer) -> None:
    report = verify(fx.native, _fold_forget_bias(fx))
    assert 0.0 < report["max_abs_err"] <= report["tolerance"]


@pytest.mark.parametrize("fx", fixture_params(lambda f: f.fixture["id"] == "torch_lstm_2l_bi"))
def test_missing_cells_fail(fx: FixtureLayer) -> None:
    forward = {key: t for key, t in fx.native.cells.items() if key[1] == "forward"}
    target = NativeLayer(fx.native.name, fx.native.convention, fx.native.config, forward)
    with pytest.raises(VerificationFailed, match="cells"):
        verify(fx.native, target)


@pytest.fixture(scope="module")
def big_lstm() -> NativeLayer:
    """A PyTorch LSTM with H = I = 1024: 8M weights, above the sampling threshold."""
    rng, units = np.random.default_rng(7), 1024
    shapes = {
        "weight_ih": (4 * units, units),
        "weight_hh": (4 * units, units),
        "bias_ih": (4 * units,),
        "bias_hh": (4 * units,),
    }
    cell = {name: rng.random(shape, dtype=np.float32) - np.float32(0.5) for name, shape in shapes.items()}
    cell["weight_ih"] *= np.float32(0.1)
    cell["weight_hh"] *= np.float32(0.1)
    layer = NativeLayer(
        "big", CONVENTIONS["pytorch.lstm"], LayerConfig(("sigmoid", "tanh", "tanh")), {(0, "forward"): cell}
    )
    assert sum(a.size for a in cell.values()) > SAMPLE_ABOVE
    return layer


def test_a_large_layer_is_checked_on_a_sample(big_lstm: NativeLayer) -> None:
    report = verify(big_lstm, big_lstm)
    assert report["sampled_units"] == SAMPLE_UNITS and report["steps"] == 1
    assert report["max_abs_err"] == 0.0 and report["compared"] == ["h_n", "c_n"]


def test_a_large_layer_with_swapped_gates_fails(big_lstm: NativeLayer) -> None:
    units = big_lstm.cells[(0, "forward")]["weight_hh"].shape[1]

    def swap_f_g(name: str, a: np.ndarray) -> np.ndarray:
        if name == "weight_ih":
            a[units : 2 * units], a[2 * units : 3 * units] = (
                a[2 * units : 3 * units].copy(),
                a[units : 2 * units].copy(),
            )
        return a

    with pytest.raises(VerificationFailed, match="differs"):
        verify(big_lstm, _with(big_lstm, swap_f_g))


def _uneven_stack() -> NativeLayer:
    """A TF1 MultiRNNCell of two LSTM cells of 4 and 2 units (input size 3)."""
    rng = np.random.default_rng(3)
    cells = {
        (level, "forward"): {
            "kernel": rng.random((inputs + units, 4 * units), dtype=np.float32) - np.float32(0.5),
            "bias": rng.random(4 * units, dtype=np.float32) - np.float32(0.5),
        }
        for level, (inputs, units) in enumerate([(3, 4), (4, 2)])
    }
    config = LayerConfig(("sigmoid", "tanh", "tanh"), forget_bias=1.0)
    return NativeLayer("uneven", CONVENTIONS["tf1.lstm"], config, cells)


def test_levels_of_different_sizes_are_compared_cell_by_cell() -> None:
    layer = _uneven_stack()
    assert verify(layer, layer)["max_abs_err"] == 0.0
    changed = _with(layer, lambda name, a: a + np.float32(1e-2) if a.shape == (8,) else a)
    with pytest.raises(VerificationFailed, match="differs"):
        verify(layer, changed)
