"""Equinox itself loads rnnbridge's ``.eqx`` and reproduces the source framework's outputs.

Marked ``equinox``: runs where ``jax`` and ``equinox`` are installed (seconds, with jax) and is
skipped elsewhere. One fixture layer per source convention is converted with
``target=equinox``, written with ``format=eqx``, loaded by ``eqx.tree_deserialise_leaves``
into the recipe's cell and scanned over the sequence.
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
eqx = pytest.importorskip("equinox")

pytestmark = pytest.mark.equinox


def one_per_kind() -> list[FixtureLayer]:
    chosen: dict[str, FixtureLayer] = {}
    for fx in FIXTURE_LAYERS:
        if fx.native.num_levels == 1 and len(fx.native.directions) == 1 and fx.y.dtype == np.float32:
            chosen.setdefault(fx.native.convention.key, fx)
    return list(chosen.values())


def first_upload(fx: FixtureLayer) -> str:
    return next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in one_per_kind()])
def test_equinox_loads_the_cell_and_reproduces_the_outputs(fx: FixtureLayer) -> None:
    model = read(fx.id, first_upload(fx))
    try:
        result = pipeline.convert(model, "equinox", layer=layer_name(fx), source_forget_bias=forget_bias(fx))
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    buffer = io.BytesIO()
    outputs.write(result, "eqx", buffer)
    buffer.seek(0)
    recipe = result.meta["layers"][0]["target"]["module"]
    like = getattr(eqx.nn, recipe["class"].split(".")[-1])(**recipe["kwargs"], key=jax.random.PRNGKey(0))
    cell = eqx.tree_deserialise_leaves(buffer, like)

    lstm = fx.layer["cell"] == "lstm"
    units = recipe["kwargs"]["hidden_size"]
    batch = fx.x.shape[1]
    h = np.zeros((batch, units), np.float32) if fx.h0 is None else fx.h0[0]
    c = np.zeros((batch, units), np.float32) if fx.c0 is None else fx.c0[0]

    def step(carry, x_t):
        state = jax.vmap(cell)(x_t, carry)
        return state, state[0] if lstm else state

    final, ys = jax.lax.scan(step, (h, c) if lstm else h, fx.x)
    np.testing.assert_allclose(np.asarray(ys), fx.y, rtol=0, atol=1e-5)
    h_n = final[0] if lstm else final
    np.testing.assert_allclose(np.asarray(h_n)[None], fx.h_n, rtol=0, atol=1e-5)
    if lstm:
        np.testing.assert_allclose(np.asarray(final[1])[None], fx.c_n, rtol=0, atol=1e-5)
