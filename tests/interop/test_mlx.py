"""MLX itself loads rnnbridge's output and reproduces the source framework's outputs.

Marked ``mlx``: runs where MLX is installed (``pip install 'mlx[cpu]'`` on Linux, a few
seconds; ``.ci/run`` installs the ``interop`` extra) and is skipped elsewhere. Every fixture
layer, whatever its source framework, is converted with ``target=mlx``, travels as a real
``.safetensors`` file, and is loaded with ``Module.load_weights(strict=True)`` into the
module the metadata's recipe describes, placed at the recipe's ``path``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InexactConversion

from ..fixtures_index import FIXTURE_LAYERS, FixtureLayer
from ..test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

pytestmark = pytest.mark.mlx


def first_upload(fx: FixtureLayer) -> str:
    return next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))


def model_from_recipe(recipe: dict) -> tuple[nn.Module, nn.Module]:
    """A model holding the recipe's module at attribute path ``recipe["path"]``."""
    root = parent = nn.Module()
    *scopes, last = recipe["path"].split(".")
    for scope in scopes:
        setattr(parent, scope, nn.Module())
        parent = getattr(parent, scope)
    module = getattr(nn, recipe["class"].split(".")[-1])(**recipe["kwargs"])
    setattr(parent, last, module)
    return root, module


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_mlx_loads_the_result_strictly_and_reproduces_the_outputs(fx: FixtureLayer, tmp_path) -> None:
    model = read(fx.id, first_upload(fx))
    try:
        result = pipeline.convert(model, "mlx", layer=layer_name(fx), prefix="rnn.", source_forget_bias=forget_bias(fx))
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    float64 = fx.y.dtype == np.float64  # MLX's safetensors loader has no F64: the recipe says npz
    path = tmp_path / ("weights.npz" if float64 else "weights.safetensors")
    with path.open("wb") as stream:
        outputs.write(result, "npz" if float64 else "safetensors", stream)

    recipe = result.meta["layers"][0]["target"]["module"]
    assert recipe["path"] == layer_name(fx)
    root, module = model_from_recipe({**recipe, "path": "rnn"})
    if float64:
        assert ".npz" in recipe["load"]
        with np.load(path) as npz:
            root.load_weights([(k, mx.array(v)) for k, v in npz.items() if k != "__meta__"], strict=True)
    else:
        root.load_weights(str(path), strict=True)

    x = mx.array(fx.x.transpose(1, 0, 2))  # MLX runs batch-major [B, T, I]
    h0 = None if fx.h0 is None else mx.array(fx.h0[0])
    if isinstance(module, nn.LSTM):
        c0 = None if fx.c0 is None else mx.array(fx.c0[0])
        hidden, cell = module(x, hidden=h0, cell=c0)
        c_n = np.array(cell)[:, -1][None]
    else:
        hidden, c_n = module(x, hidden=h0), None
    y = np.array(hidden).transpose(1, 0, 2)
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=1e-5)
    np.testing.assert_allclose(y[-1][None], fx.h_n, rtol=0, atol=1e-5)
    if c_n is not None:
        np.testing.assert_allclose(c_n, fx.c_n, rtol=0, atol=1e-5)
