"""Fixtures made with the real Flax that ../shared/fixtures_more lacks (same schema).

    pip install flax==0.12.8 jax==0.10.2 && python tools/make_flax_fixtures.py

``flax_nnx_lstm``: ``nnx.RNN(nnx.LSTMCell(3, 4))`` with random uniform(-0.5, 0.5) parameters,
saved as ``flax.serialization.to_bytes(nnx.to_pure_dict(nnx.state(model, nnx.Param)))``, run on
``x.npy`` with ``return_carry=True``; the outputs recorded are Flax's own. The canonical
arrays are the per-gate kernels transposed (``W_x.g = (i{g}/kernel)ᵀ``), ``b_x.g = h{g}/bias``.
The entry is merged into tests/fixtures/manifest.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
LAYOUT_Y = "[B, T, D*Hout] batch-major; directions concatenated (forward | backward), both aligned to input time t"


def flax_nnx_lstm() -> dict:
    import flax
    import jax
    from flax import nnx, serialization

    fid, folder = "flax_nnx_lstm", OUT / "flax_nnx_lstm"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261208)
    model = nnx.RNN(nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0)), return_carry=True)
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    cell = pure["cell"]
    for dense in cell.values():
        for name, value in dense.items():
            dense[name] = rng.uniform(-0.5, 0.5, np.shape(value)).astype(np.float32)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    (folder / "params.msgpack").write_bytes(serialization.to_bytes(nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    np.save(folder / "x.npy", x)
    (c, h), y = model(jax.numpy.asarray(x))
    y, c, h = np.asarray(y), np.asarray(c), np.asarray(h)
    np.save(folder / "rnn0.y.npy", y)
    np.save(folder / "rnn0.h_n.npy", h[None])
    np.save(folder / "rnn0.c_n.npy", c[None])
    np.savez(folder / "rnn0.framework_outputs.npz", outputs=y, carry_c=c, carry_h=h)
    native = {f"{dense}/{name}": value for dense, params in cell.items() for name, value in params.items()}
    np.savez(folder / "rnn0.native.npz", **native)
    canonical = {}
    for g in "ifgo":
        canonical[f"l0.fw.W_x.{g}"] = native[f"{'if_' if g == 'f' else 'i' + g}/kernel"].T
        canonical[f"l0.fw.W_h.{g}"] = native[f"h{g}/kernel"].T
        canonical[f"l0.fw.b_x.{g}"] = native[f"h{g}/bias"]
        canonical[f"l0.fw.b_h.{g}"] = np.zeros(4, np.float32)
    np.savez(folder / "rnn0.canonical.npz", **canonical)
    weights = {
        role: {"shape": list(value.shape), "in_files": {"params.msgpack": f"cell/{role}"}} for role, value in native.items()
    }
    return {
        "id": fid,
        "source": "flax_msgpack",
        "dir": fid,
        "framework": {"name": "flax", "version": flax.__version__, "jax_version": jax.__version__, "api": "nnx"},
        "how_made": "flax.nnx module RNN(LSTMCell(3, 4)), input [B=2, T=5, F=3]; parameters replaced by random "
        "uniform(-0.5,0.5); saved with params.msgpack; outputs from model(x) with return_carry=True "
        "(tools/make_flax_fixtures.py)",
        "dtype": "float32",
        "files": [{"name": "params.msgpack", "description": "flax.serialization.to_bytes(nnx.to_pure_dict(...))"}],
        "inputs": {"x": {"file": "x.npy", "layout": "batch_major", "shape": [2, 5, 3]}},
        "layers": [
            {
                "key": "rnn0",
                "name": "cell",
                "cell": "lstm",
                "native_type": "flax.nnx.LSTMCell",
                "wrapper": "flax.nnx.RNN",
                "input_size": 3,
                "units": 4,
                "num_layers": 1,
                "directions": 1,
                "direction": "forward",
                "flags": {"activation": "tanh", "recurrent_activation": "sigmoid", "time_major": False},
                "runtime_constants": {},
                "weights": weights,
                "native_npz": "rnn0.native.npz",
                "input": {"ref": "x"},
                "initial_state": {"kind": "zeros"},
                "outputs": {
                    "y": {"file": "rnn0.y.npy", "layout": LAYOUT_Y},
                    "h_n": {"file": "rnn0.h_n.npy", "layout": "[L*D, B, Hout]"},
                    "c_n": {"file": "rnn0.c_n.npy", "layout": "[L*D, B, H]"},
                },
                "framework_outputs": {"file": "rnn0.framework_outputs.npz"},
                "canonical_npz": "rnn0.canonical.npz",
            }
        ],
    }


def main() -> None:
    path = OUT / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in (flax_nnx_lstm(),):
        manifest["fixtures"] = [f for f in manifest["fixtures"] if f["id"] != entry["id"]] + [entry]
    manifest["n_fixtures"] = len(manifest["fixtures"])
    manifest["n_recurrent_layers"] = sum(len(f["layers"]) for f in manifest["fixtures"])
    path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
