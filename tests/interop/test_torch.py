"""PyTorch itself loads rnnbridge's output and reproduces the source framework's outputs.

Marked ``interop`` and ``torch``: runs where ``torch==2.13.0`` and ``safetensors``
are installed (the ``interop`` extra, which ``.ci/run`` installs), skipped elsewhere.
The result travels as a real safetensors file and is loaded with
``safetensors.torch.load_file`` + ``load_state_dict(strict=True)`` into a module built
from the metadata's recipe.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from rnnbridge import outputs, pipeline
from rnnbridge.errors import InexactConversion

from ..fixtures_index import FIXTURE_LAYERS, FixtureLayer
from ..test_pipeline import NO_CONFIG_FILES, forget_bias, layer_name, non_default_activations, read, uploads

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

pytestmark = [pytest.mark.interop, pytest.mark.torch]


def first_upload(fx: FixtureLayer) -> str:
    """The name of the first of the fixture's files that says everything about the layer."""
    return next(n for n, _ in uploads(fx) if not (n in NO_CONFIG_FILES and non_default_activations(fx)))


@pytest.mark.parametrize("fx", [pytest.param(f, id=f.id) for f in FIXTURE_LAYERS])
def test_pytorch_loads_the_result_strictly_and_reproduces_the_outputs(fx: FixtureLayer, tmp_path) -> None:
    model = read(fx.id, first_upload(fx))
    try:
        result = pipeline.convert(model, "pytorch", layer=layer_name(fx), prefix="", source_forget_bias=forget_bias(fx))
    except InexactConversion as refused:
        pytest.skip(f"refused as it must be: {refused.code}")
    path = tmp_path / "weights.safetensors"
    with path.open("wb") as stream:
        outputs.write(result, "safetensors", stream)
    state = safetensors_torch.load_file(str(path))

    recipe = result.meta["layers"][0]["target"]["module"]
    module_class = getattr(torch.nn, recipe["class"].split(".")[-1])
    module = module_class(**recipe["kwargs"]).double()
    module.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)

    with torch.no_grad():
        y, h_n, c_n = run(module, fx)
    atol = 1e-12 if fx.y.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, fx.y, rtol=0, atol=atol)
    np.testing.assert_allclose(h_n, fx.h_n, rtol=0, atol=atol)
    if fx.c_n is not None:
        np.testing.assert_allclose(c_n, fx.c_n, rtol=0, atol=atol)


def run(module, fx: FixtureLayer):
    x = torch.from_numpy(fx.x).double()
    if isinstance(module, (torch.nn.LSTMCell, torch.nn.GRUCell)):
        return run_cell(module, fx, x)
    state = None
    if fx.h0 is not None:
        h0 = torch.from_numpy(fx.h0).double()
        state = (h0, torch.from_numpy(fx.c0).double()) if fx.c0 is not None else h0
    if isinstance(module, torch.nn.LSTM):
        y, (h_n, c_n) = module(x, state)
        return y.numpy(), h_n.numpy(), c_n.numpy()
    y, h_n = module(x, state)
    return y.numpy(), h_n.numpy(), None


def run_cell(module, fx: FixtureLayer, x):
    batch = x.shape[1]
    h = (
        torch.zeros(batch, module.hidden_size, dtype=torch.float64)
        if fx.h0 is None
        else torch.from_numpy(fx.h0[0]).double()
    )
    c = torch.zeros_like(h) if fx.c0 is None else torch.from_numpy(fx.c0[0]).double()
    ys = []
    for x_t in x:
        if isinstance(module, torch.nn.LSTMCell):
            h, c = module(x_t, (h, c))
        else:
            h = module(x_t, h)
        ys.append(h)
    y = torch.stack(ys).numpy()
    return y, h.numpy()[None], (c.numpy()[None] if isinstance(module, torch.nn.LSTMCell) else None)


def test_the_metadata_travels_in_the_safetensors_header(tmp_path) -> None:
    fx = next(f for f in FIXTURE_LAYERS if f.id.startswith("k2_lstm_seq"))
    result = pipeline.convert(read(fx.id, first_upload(fx)), "pytorch", prefix="")
    buffer = io.BytesIO()
    outputs.write(result, "safetensors", buffer)
    path = tmp_path / "w.safetensors"
    path.write_bytes(buffer.getvalue())
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        assert sorted(handle.keys()) == sorted(result.arrays)
    meta = json.loads(next(iter(metadata.values())))
    assert meta["target"] == "pytorch"
