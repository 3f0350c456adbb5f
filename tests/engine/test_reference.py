"""The reference forwards against what the frameworks themselves computed (real fixtures)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge.engine.conventions import CONVENTIONS
from rnnbridge.engine.model import NativeLayer
from rnnbridge.engine.reference import STEPS, activation, cell_dims, run, step_cell
from rnnbridge.errors import InvalidField
from tests.fixtures_index import FIXTURE_LAYERS, UNMAPPED, FixtureLayer, fixture_params

TOLERANCE = 1e-5


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def test_every_convention_has_a_step() -> None:
    assert set(STEPS) == set(CONVENTIONS)


def test_every_fixture_layer_maps_to_a_convention() -> None:
    assert UNMAPPED == {}


@pytest.mark.parametrize("key", sorted(STEPS))
def test_every_step_is_checked_against_its_framework(key: str) -> None:
    if not FIXTURE_LAYERS:
        pytest.skip("no fixtures")
    assert key in {f.native.convention.key for f in FIXTURE_LAYERS}, f"no fixture runs {key}"


@pytest.mark.parametrize("fx", fixture_params())
def test_reference_reproduces_the_framework(fx: FixtureLayer) -> None:
    y, h_n, c_n = run(fx.native, fx.x, fx.h0, fx.c0)
    assert y.shape == fx.y.shape and h_n.shape == fx.h_n.shape
    assert (c_n is None) == (fx.c_n is None)
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(h_n, fx.h_n, rtol=0, atol=TOLERANCE)
    if c_n is not None:
        np.testing.assert_allclose(c_n, fx.c_n, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("fx", fixture_params())
def test_cell_dims_match_the_manifest(fx: FixtureLayer) -> None:
    inputs, units, _ = cell_dims(fx.native, 0, fx.native.directions[0])
    assert (inputs, units) == (fx.layer["input_size"], fx.layer["units"])


def _swap_first_two_gates(layer: NativeLayer) -> NativeLayer:
    """A copy of the layer with gate blocks 0 and 1 of its first fused tensor swapped (or,
    for a convention with one tensor per gate, its first two input kernels)."""
    spec = next((t for t in layer.convention.tensors if len(t.gates) > 1), None)
    if spec is None:
        first, second = [t.name for t in layer.convention.tensors if t.parts == ("W_x",)][:2]
        swapped = {key: dict(t, **{first: t[second], second: t[first]}) for key, t in layer.cells.items()}
        return NativeLayer(layer.name, layer.convention, layer.config, swapped)
    cells = {}
    for key, tensors in layer.cells.items():
        a = np.moveaxis(tensors[spec.name].copy(), spec.gate_axis, 0)
        size = a.shape[0] // len(spec.gates)
        a[: 2 * size] = np.concatenate([a[size : 2 * size], a[:size]])
        cells[key] = dict(tensors, **{spec.name: np.moveaxis(a, 0, spec.gate_axis)})
    return NativeLayer(layer.name, layer.convention, layer.config, cells)


@pytest.mark.parametrize("fx", fixture_params())
def test_swapped_gates_change_the_output(fx: FixtureLayer) -> None:
    y, _, _ = run(_swap_first_two_gates(fx.native), fx.x, fx.h0, fx.c0)
    assert _max_diff(y, fx.y) > 1e-3


def _random_state(layer: NativeLayer, level: int, direction: str, rng: np.random.Generator):
    inputs, units, recurrent = cell_dims(layer, level, direction)
    state = (rng.normal(0, 0.5, (2, recurrent)), rng.normal(0, 0.5, (2, units)))
    return rng.standard_normal((2, inputs)), state[: 2 if layer.convention.cell == "lstm" else 1]


@pytest.mark.parametrize("fx", fixture_params())
def test_a_unit_sample_is_the_full_step_restricted(fx: FixtureLayer) -> None:
    rng = np.random.default_rng(0)
    for (level, direction), tensors in fx.native.cells.items():
        x, state = _random_state(fx.native, level, direction, rng)
        units = cell_dims(fx.native, level, direction)[1]
        chosen = np.sort(rng.choice(units, size=max(1, units // 2), replace=False))
        _, full = step_cell(fx.native, level, direction, x, state)
        _, part = step_cell(fx.native, level, direction, x, state, units=chosen)
        projected = "weight_hr" in tensors or "projection/kernel" in tensors
        for whole, sampled in zip(full, part):
            expected = whole if projected else whole[:, chosen]
            np.testing.assert_allclose(sampled, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "x", "expected"),
    [
        ("sigmoid", [-800.0, 0.0, 800.0], [0.0, 0.5, 1.0]),
        ("tanh", [0.0], [0.0]),
        ("relu", [-1.0, 2.0], [0.0, 2.0]),
        ("linear", [-1.5], [-1.5]),
        ("hard_sigmoid(0.2,0.5)", [-3.0, 1.0, 3.0], [0.0, 0.7, 1.0]),
        ("hard_sigmoid(0.16666667,0.5)", [-4.0, 1.5, 4.0], [0.0, 0.75, 1.0]),
    ],
)
def test_activations(name: str, x: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(activation(name)(np.array(x)), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["softplus", "hard_sigmoid(0.2)", "hard_sigmoid(a,b)"])
def test_unknown_activation_is_refused(name: str) -> None:
    with pytest.raises((InvalidField, ValueError)):
        activation(name)(np.zeros(1))
