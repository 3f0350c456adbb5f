"""Check that a converted layer computes its source's function.

Both layers run on the same seeded random input and initial states, each through its own
framework's equations (``rnnbridge.engine.reference``) in float64, so the error measured is
the conversion's own rounding (bias sums and constants folded in the stored dtype), not
float32 noise. The tolerance follows the *stored* dtype of the source: float16 1e-2,
float32 1e-5, float64 1e-10, times ``max(1, max |y_source|)``.

A layer with more than ``SAMPLE_ABOVE`` weights (a 64-unit LSTM has 33 k) is checked on
ONE time step of every cell (level, direction) on its own, each with its own random input
and random initial state, for a random sample of at most ``SAMPLE_UNITS`` units (the same
for source and target): only the sampled rows of each gate are computed, so the cost is
that of the sample, not of the layer. One step from a random state reads every input and
recurrent weight of the sampled units and every bias, so it exercises every gate mapping;
steps after it would only feed the same mapping its own output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnbridge.engine import reference
from rnnbridge.engine.model import NativeLayer
from rnnbridge.errors import VerificationFailed

SAMPLE_ABOVE = 2**16
SAMPLE_UNITS = 64
TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}

Pairs = dict[str, list[tuple[np.ndarray, np.ndarray]]]


def verify(source: NativeLayer, target: NativeLayer, *, seed: int = 0, steps: int = 5, batch: int = 2) -> dict:
    """Compare ``target`` with ``source`` on seeded random data.

    Parameters
    ----------
    source, target : the layer before and after conversion.
    seed, steps, batch : the random input ``x ~ N(0, 1)`` [steps, batch, I]; initial states
        ``~ N(0, 0.5)``.

    Returns
    -------
    ``{"max_abs_err", "tolerance", "seed", "steps", "batch", "compared"}`` (and
    ``"sampled_units"`` for a large layer, checked on one step).

    Raises
    ------
    VerificationFailed
        If the error is above the tolerance, if the two layers do not have the same cells or
        output shapes, or if either has a NaN/Inf where the other has a finite value.
    """
    _check_shape(source, target)
    large = sum(a.size for cell in source.cells.values() for a in cell.values()) > SAMPLE_ABOVE
    _check_finite(source, target, whole=not large)
    rng = np.random.default_rng(seed)
    report: dict = {"seed": seed, "steps": steps, "batch": batch}
    if large:
        pairs, report["steps"], report["sampled_units"] = _sampled(source, target, rng, batch)
    else:
        pairs = _full(source, target, rng, steps, batch)
    error, scale = _compare(source, pairs)
    tolerance = TOLERANCE.get(np.dtype(source.dtype), 1e-5) * max(1.0, scale)
    report.update(max_abs_err=error, tolerance=tolerance, compared=list(pairs))
    if error > tolerance:
        raise _failed(
            source,
            f"the converted layer differs from the source by {error:.3g} (tolerance {tolerance:.3g})",
            **report,
        )
    return report


def _check_shape(source: NativeLayer, target: NativeLayer) -> None:
    if source.convention.cell != target.convention.cell:
        raise _failed(source, f"the target is a {target.convention.cell}, the source a {source.convention.cell}")
    if set(source.cells) != set(target.cells):
        raise _failed(source, f"the target has cells {sorted(target.cells)}, the source {sorted(source.cells)}")


def _check_finite(source: NativeLayer, target: NativeLayer, *, whole: bool) -> None:
    """A result whose source is finite must be finite: its run-time constants, and every
    array (``whole``) or every vector (biases, peepholes; the sampled run reads the rest)."""
    for layer in (source, target):
        constants = (layer.config.forget_bias, 0.0 if layer.config.clip is None else layer.config.clip)
        if not all(np.isfinite(constants)):
            raise _failed(source, f"the {'source' if layer is source else 'target'} has a non-finite constant")
    checked = [(name, a) for cell in source.cells.values() for name, a in cell.items() if whole or a.ndim < 2]
    if not all(np.isfinite(a).all() for _, a in checked):
        return
    for (level, direction), cell in target.cells.items():
        for name, array in cell.items():
            if (whole or array.ndim < 2) and not np.isfinite(array).all():
                raise _failed(
                    source,
                    f"NaN/Inf in the target's {name} (level {level}, {direction}) where the source is finite",
                )


def _failed(layer: NativeLayer, detail: str, **extra: Any) -> VerificationFailed:
    return VerificationFailed(detail, layer=layer.name, **extra)


def _initial_states(layer: NativeLayer, rng: np.random.Generator, batch: int) -> tuple[list, list]:
    h0, c0 = [], []
    for level in range(layer.num_levels):
        for direction in layer.directions:
            _, units, recurrent = reference.cell_dims(layer, level, direction)
            h0.append(rng.normal(0.0, 0.5, (batch, recurrent)))
            c0.append(rng.normal(0.0, 0.5, (batch, units)))
    return h0, c0


def _guarded(target: NativeLayer, call, *args, **kwargs):
    """Run the target; a target whose tensors do not fit the source's data fails verification."""
    try:
        return call(target, *args, **kwargs)
    except (KeyError, ValueError, IndexError) as error:
        raise _failed(target, f"the converted layer cannot run on the source's data: {error!r}") from error


def _full(source: NativeLayer, target: NativeLayer, rng, steps: int, batch: int) -> Pairs:
    inputs, _, _ = reference.cell_dims(source, 0, source.directions[0])
    x = rng.standard_normal((steps, batch, inputs))
    h0, c0 = _initial_states(source, rng, batch)
    expected = reference.run(source, x, h0, c0)
    actual = _guarded(target, reference.run, x, h0, c0)
    names = ("y", "h_n", "c_n") if source.convention.cell == "lstm" else ("y", "h_n")
    # h_n / c_n per cell: an array [L*D, B, .] or, for levels of different sizes, a list
    return {
        name: list(zip(_per_cell(e, k), _per_cell(a, k))) for k, (name, e, a) in enumerate(zip(names, expected, actual))
    }


def _per_cell(a: reference.States | None, k: int) -> list[np.ndarray]:
    """``y`` whole (``k == 0``); ``h_n`` or ``c_n`` cell by cell."""
    if a is None:
        return []
    return [np.asarray(a)] if k == 0 else list(a)


def _sample_units(rng: np.random.Generator, units: int, runs: int = 2) -> np.ndarray:
    """``SAMPLE_UNITS`` units in ``runs`` runs of consecutive units at random places.

    Runs, not scattered units: in column-form kernels ([in, G*H], TF1 and Keras) a unit is
    a column, and a scattered sample touches a cache line of nearly every row, i.e. most of
    the matrix; a run of 32 float32 units is two cache lines of one page per row and gate.
    Reading such a kernel costs about one TLB miss per row, gate and run, hence few runs.
    """
    if units <= SAMPLE_UNITS:
        return np.arange(units)
    length = SAMPLE_UNITS // runs
    starts = np.sort(rng.choice(units // length, size=runs, replace=False)) * length
    return (starts[:, None] + np.arange(length)).ravel()


def _sampled(source: NativeLayer, target: NativeLayer, rng, batch: int) -> tuple[Pairs, int, int]:
    """One step of every cell on its own random data, for a sample of its units."""
    lstm = source.convention.cell == "lstm"
    pairs: Pairs = {"h_n": [], "c_n": []} if lstm else {"h_n": []}
    sample = 0
    for level in range(source.num_levels):
        for direction in source.directions:
            inputs, units, recurrent = reference.cell_dims(source, level, direction)
            chosen = _sample_units(rng, units)
            x = rng.standard_normal((batch, inputs))
            state = (rng.normal(0.0, 0.5, (batch, recurrent)), rng.normal(0.0, 0.5, (batch, units)))
            args = (level, direction, x, state[: 2 if lstm else 1])
            expected = reference.step_cell(source, *args, units=chosen)[1]
            actual = _guarded(target, reference.step_cell, *args, units=chosen)[1]
            for name, e, a in zip(pairs, expected, actual):
                pairs[name].append((e, a))
            sample = max(sample, len(chosen))
    return pairs, 1, sample


def _compare(source: NativeLayer, pairs: Pairs) -> tuple[float, float]:
    """Max abs error over all pairs, and max |y| of the source (the first pairs)."""
    error, scale = 0.0, 0.0
    for name, arrays in pairs.items():
        for expected, actual in arrays:
            if np.shape(expected) != np.shape(actual):
                raise _failed(
                    source,
                    f"{name}: the target's shape {np.shape(actual)} is not the source's {np.shape(expected)}",
                )
            finite = np.isfinite(expected)
            if not np.array_equal(finite, np.isfinite(actual)):
                raise _failed(
                    source,
                    f"{name}: NaN/Inf differ, {np.count_nonzero(~np.isfinite(actual))} in "
                    f"the target, {np.count_nonzero(~finite)} in the source",
                )
            if finite.any():
                error = max(error, float(np.max(np.abs(expected[finite] - actual[finite]))))
                if name == next(iter(pairs)):
                    scale = max(scale, float(np.max(np.abs(expected[finite]))))
    return error, scale
