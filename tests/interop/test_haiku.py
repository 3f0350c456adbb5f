"""Haiku itself loads rnnbridge's ``params.npz`` and reproduces the source framework's outputs.

Marked ``haiku``: runs where ``jax`` and ``dm-haiku`` are installed (``pip install jax
dm-haiku``, about 40 s here) and is skipped elsewhere. Every fixture layer, whatever its
source framework, is converted with ``target=haiku`` and ``prefix=""``, travels as a real
npz file, becomes the params dict the metadata's ``load`` recipe describes, and runs in the
recipe's cores (``hk.DeepRNN`` for several levels) with ``hk.dynamic_unroll``: one fixture
layer per source convention and stacking.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InexactConversion

from ..fixtures_index import FIXTURE_LAYERS, FixtureLayer
from ..test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
hk = pytest.importorskip("haiku")

pytestmark = pytest.mark.haiku


def first_upload(fx: FixtureLayer) -> str:
    return next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))


def params_from_npz(data: bytes) -> dict:
    """The metadata's ``load`` recipe, as a user would type it."""
    params: dict = {}
    with np.load(io.BytesIO(data)) as npz:
        for key, value in npz.items():
            if key != "__meta__":
                module, name = key.rsplit("/", 1)
                params.setdefault(module, {})[name] = value
    return params


def initial_state(fx: FixtureLayer, cell: str, levels: int):
    if fx.h0 is None:
        return None
    if cell == "lstm":
        states = [hk.LSTMState(hidden=fx.h0[k], cell=fx.c0[k]) for k in range(levels)]
    else:
        states = [fx.h0[k] for k in range(levels)]
    return tuple(states) if levels > 1 else states[0]


def one_per_kind() -> list[FixtureLayer]:
    """One fixture layer per source convention and stacking (JAX traces each run: every
    fixture would take minutes)."""
    chosen: dict[tuple[str, bool], FixtureLayer] = {}
    for fx in FIXTURE_LAYERS:
        chosen.setdefault((fx.native.convention.key, fx.native.num_levels > 1), fx)
    return list(chosen.values())


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in one_per_kind()])
def test_haiku_runs_the_result_and_reproduces_the_outputs(fx: FixtureLayer) -> None:
    if fx.y.dtype == np.float64:
        pytest.skip("JAX computes in float32 unless x64 is enabled process-wide")
    model = read(fx.id, first_upload(fx))
    try:
        result = pipeline.convert(model, "haiku", layer=layer_name(fx), prefix="", source_forget_bias=forget_bias(fx))
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    buffer = io.BytesIO()
    outputs.write(result, "npz", buffer)
    params = params_from_npz(buffer.getvalue())

    target = result.meta["layers"][0]["target"]
    recipe, cell = target["module"], fx.layer["cell"]
    levels = recipe["levels"]
    core_class = getattr(hk, recipe["class"].split(".")[-1])
    sizes = [int(core.split("(")[1].rstrip(")")) for core in recipe["cores"]]

    def unroll(x):
        cores = [core_class(size) for size in sizes]
        core = hk.DeepRNN(cores) if levels > 1 else cores[0]
        state = initial_state(fx, cell, levels)
        if state is None:
            state = core.initial_state(x.shape[1])
        return hk.dynamic_unroll(core, x, state)

    forward = hk.without_apply_rng(hk.transform(unroll))
    assert set(params) == set(forward.init(jax.random.PRNGKey(0), jnp.asarray(fx.x)))
    y, state = forward.apply(params, jnp.asarray(fx.x))
    np.testing.assert_allclose(np.asarray(y), fx.y, rtol=0, atol=1e-5)
    finals = state if levels > 1 else (state,)
    h_n = np.stack([np.asarray(s.hidden if cell == "lstm" else s) for s in finals])
    np.testing.assert_allclose(h_n, fx.h_n, rtol=0, atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(np.stack([np.asarray(s.cell) for s in finals]), fx.c_n, rtol=0, atol=1e-5)
