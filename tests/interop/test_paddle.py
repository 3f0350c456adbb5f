"""PaddlePaddle itself loads rnnbridge's ``.pdparams`` and reproduces the source framework's outputs.

Marked ``paddle``: runs where ``paddlepaddle`` is installed (about 2 minutes to install here, so
CI leaves it out) and is skipped elsewhere. One fixture layer per source convention and
stacking is converted with ``target=paddle`` and ``prefix="rnn."``, written with
``format=pdparams``, read with ``paddle.load`` and given to ``set_state_dict`` of a layer
holding the recipe's module at ``rnn``.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InexactConversion

from ..fixtures_index import FIXTURE_LAYERS, FixtureLayer
from ..test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

paddle = pytest.importorskip("paddle")

pytestmark = pytest.mark.paddle


def one_per_kind() -> list[FixtureLayer]:
    chosen: dict[tuple[str, bool, int], FixtureLayer] = {}
    for fx in FIXTURE_LAYERS:
        chosen.setdefault((fx.native.convention.key, fx.native.num_levels > 1, len(fx.native.directions)), fx)
    return list(chosen.values())


def first_upload(fx: FixtureLayer) -> str:
    return next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in one_per_kind()])
def test_paddle_loads_the_result_and_reproduces_the_outputs(fx: FixtureLayer, tmp_path) -> None:
    model = read(fx.id, first_upload(fx))
    try:
        result = pipeline.convert(
            model, "paddle", layer=layer_name(fx), prefix="rnn.", source_forget_bias=forget_bias(fx)
        )
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    buffer = io.BytesIO()
    outputs.write(result, "pdparams", buffer)
    path = tmp_path / "model.pdparams"
    path.write_bytes(buffer.getvalue())

    recipe = result.meta["layers"][0]["target"]["module"]
    dtype = "float64" if fx.y.dtype == np.float64 else "float32"
    paddle.set_default_dtype(dtype)
    try:
        holder = paddle.nn.Layer()
        holder.rnn = getattr(paddle.nn, recipe["class"].split(".")[-1])(**recipe["kwargs"])
    finally:
        paddle.set_default_dtype("float32")
    state = paddle.load(str(path))
    state.pop("__meta__")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Paddle warns about the flat alias keys the file leaves out
        holder.set_state_dict(state)
    for key, value in holder.state_dict().items():  # every parameter, flat aliases included, was set
        source = state.get(key)
        if source is not None:
            np.testing.assert_array_equal(value.numpy(), source)
    holder.eval()
    x = paddle.to_tensor(fx.x.transpose(1, 0, 2).astype(dtype))
    initial = None
    if fx.h0 is not None:
        h0 = paddle.to_tensor(fx.h0.astype(dtype))
        initial = (h0, paddle.to_tensor(fx.c0.astype(dtype))) if fx.c0 is not None else h0
    with paddle.no_grad():
        y, final = holder.rnn(x, initial)
    atol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(y.numpy().transpose(1, 0, 2), fx.y, rtol=0, atol=atol)
    h_n, c_n = final if isinstance(final, tuple) else (final, None)
    np.testing.assert_allclose(h_n.numpy(), fx.h_n, rtol=0, atol=atol)
    if c_n is not None:
        np.testing.assert_allclose(c_n.numpy(), fx.c_n, rtol=0, atol=atol)
