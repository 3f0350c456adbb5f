#!/usr/bin/env python
"""Write extra real-framework LSTM/GRU weight fixtures into ``tests/fixtures/``.

Each fixture is a folder of files written by a real framework (TF1 checkpoints, Keras 2
and Keras 3 HDF5 / ``.keras``, PyTorch ``.pt`` / ``.safetensors``, ONNX), an input, the
framework's own outputs for that input and the per-gate truth in the canonical form of
``/work/shared/fixtures`` (same ``manifest.json`` schema, ``format_version`` 1). The
fixtures cover variants the shared set lacks: reverse-only layers, hard-sigmoid and relu
activations, Keras 2 CuDNN layers, TF1 checkpoints with optimizer slots, old names,
partitioned variables and cuDNN-compatible names, ONNX ``clip`` / ``input_forget``, ...

How it works, per fixture: per-gate canonical weights are drawn (uniform(-0.5, 0.5),
seeded from the fixture id), placed into the framework's layer with the framework's own
API (``set_weights``, ``state_dict``, ``tf.compat.v1`` variables + ``Saver``, ONNX
initializers), the framework runs on a random normal input (batch 2, T 3-6) and its
outputs are recorded. A NumPy forward pass from the canonical arrays must reproduce those
outputs to <= 1e-5 (the self-check), and every ``weights[role].in_files`` location is read
back from the written file and compared with the stored array; a failure is a bug here.

Requirements (never needed by CI, which only reads the written files)::

    python -m venv /tmp/fxenv
    /tmp/fxenv/bin/pip install '.[fixtures]'      # or, pinned as used:
    /tmp/fxenv/bin/pip install tensorflow==2.21.0 tf_keras==2.21.0 keras==3.15.1 \
        onnx==1.23.2 onnxruntime==1.31.1 torch==2.13.0 safetensors numpy h5py

Usage::

    /tmp/fxenv/bin/python tools/make_fixtures.py            # all fixtures
    /tmp/fxenv/bin/python tools/make_fixtures.py ID [ID...] # some; manifest entries merged
    /tmp/fxenv/bin/python tools/make_fixtures.py --list

Each framework family runs in its own child process (Keras 2 and TF1 need
``TF_USE_LEGACY_KERAS=1``, Keras 3 must not have it). Output is deterministic (fixed
seeds) except ``m.keras`` zip timestamps and ``model.ckpt.meta`` serialisation order.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures"
SHARED_MANIFEST = ROOT.parent / "shared" / "fixtures" / "manifest.json"
TOL = 1e-5
BATCH = 2
GATES = {"lstm": "ifgo", "gru": "rzn"}
LAYOUT_Y = ("[B, T, D*Hout] batch-major; directions concatenated (forward | backward), "
            "both aligned to input time t")
LAYOUT_H = "[L*D, B, Hout]; index = layer*D + direction (0 forward, 1 backward)"
LAYOUT_C = "[L*D, B, H]; index = layer*D + direction"
HARD_SIGMOID_K2 = "clip(0.2*x + 0.5, 0, 1)"
HARD_SIGMOID_K3 = "clip(x/6 + 0.5, 0, 1)"
ACTIVATIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "hard_sigmoid_k2": lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0),
    "hard_sigmoid_k3": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),
}


# --------------------------------------------------------------------------- canonical maths


@dataclasses.dataclass
class Cfg:
    """Everything the NumPy reference forward needs to know about a recurrent layer."""

    cell: str
    input_size: int
    units: int
    num_layers: int = 1
    directions: int = 1
    direction: str = "forward"
    proj: int = 0
    peepholes: bool = False
    act: str = "tanh"
    rec_act: str = "sigmoid"
    forget_bias: float = 0.0
    variant: str = "reset_after"
    clip: float | None = None
    input_forget: bool = False
    independent: bool = False
    bias: str = "both"
    dtype: str = "float32"

    @property
    def hout(self) -> int:
        return self.proj or self.units

    @property
    def dirs(self) -> tuple[str, ...]:
        return ("fw", "bw")[: self.directions]

    def in_k(self, layer: int) -> int:
        if layer == 0:
            return self.input_size
        return self.hout if self.independent else self.directions * self.hout


def draw_canonical(cfg: Cfg, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-gate canonical weights, uniform(-0.5, 0.5); ``cfg.bias`` says which biases are zero."""
    out: dict[str, np.ndarray] = {}

    def u(*shape):
        return rng.uniform(-0.5, 0.5, size=shape).astype(cfg.dtype)

    for layer, d in itertools.product(range(cfg.num_layers), cfg.dirs):
        pre = f"l{layer}.{d}."
        for g in GATES[cfg.cell]:
            out[pre + f"W_x.{g}"] = u(cfg.units, cfg.in_k(layer))
            out[pre + f"W_h.{g}"] = u(cfg.units, cfg.hout)
            out[pre + f"b_x.{g}"] = u(cfg.units) if cfg.bias != "none" else np.zeros(cfg.units, cfg.dtype)
            out[pre + f"b_h.{g}"] = u(cfg.units) if cfg.bias == "both" else np.zeros(cfg.units, cfg.dtype)
        if cfg.peepholes:
            for g in "ifo":
                out[pre + f"p.{g}"] = u(cfg.units)
        if cfg.proj:
            out[pre + "W_proj"] = u(cfg.proj, cfg.units)
    return out


def _lstm_step(p, x, h, c, cfg: Cfg):
    act, sig = ACTIVATIONS[cfg.act], ACTIVATIONS[cfg.rec_act]
    clip = (lambda v: np.clip(v, -cfg.clip, cfg.clip)) if cfg.clip else (lambda v: v)
    pre = {g: x @ p[f"W_x.{g}"].T + p[f"b_x.{g}"] + h @ p[f"W_h.{g}"].T + p[f"b_h.{g}"]
           for g in "ifgo"}
    if "p.i" in p:
        pre["i"] = pre["i"] + p["p.i"] * c
        pre["f"] = pre["f"] + p["p.f"] * c
    i = sig(clip(pre["i"]))
    f = 1.0 - i if cfg.input_forget else sig(clip(pre["f"] + cfg.forget_bias))
    c_new = f * c + i * act(clip(pre["g"]))
    o_pre = pre["o"] + p["p.o"] * c_new if "p.o" in p else pre["o"]
    m = sig(clip(o_pre)) * act(c_new)
    return (m @ p["W_proj"].T if "W_proj" in p else m), c_new


def _gru_step(p, x, h, c, cfg: Cfg):
    act, sig = ACTIVATIONS[cfg.act], ACTIVATIONS[cfg.rec_act]
    r = sig(x @ p["W_x.r"].T + p["b_x.r"] + h @ p["W_h.r"].T + p["b_h.r"])
    z = sig(x @ p["W_x.z"].T + p["b_x.z"] + h @ p["W_h.z"].T + p["b_h.z"])
    if cfg.variant == "reset_after":
        n = act(x @ p["W_x.n"].T + p["b_x.n"] + r * (h @ p["W_h.n"].T + p["b_h.n"]))
    else:
        n = act(x @ p["W_x.n"].T + p["b_x.n"] + (r * h) @ p["W_h.n"].T + p["b_h.n"])
    return z * h + (1.0 - z) * n, c


def np_forward(canon, cfg: Cfg, x, h0=None, c0=None):
    """NumPy reference: ``x`` [B, T, F] -> y [B, T, D*Hout], h_n [L*D, B, Hout], c_n or None."""
    canon = {k: np.asarray(v, np.float64) for k, v in canon.items()}
    x = np.asarray(x, np.float64)
    batch, steps, _ = x.shape
    step = _lstm_step if cfg.cell == "lstm" else _gru_step
    h_n, c_n, layer_in, per_dir = [], [], x, {}
    for layer in range(cfg.num_layers):
        outs = []
        for di, d in enumerate(cfg.dirs):
            pre = f"l{layer}.{d}."
            p = {k[len(pre):]: v for k, v in canon.items() if k.startswith(pre)}
            src = per_dir[d] if (cfg.independent and layer > 0) else layer_in
            idx = layer * cfg.directions + di
            h = np.zeros((batch, cfg.hout)) if h0 is None else np.asarray(h0[idx], np.float64)
            c = np.zeros((batch, cfg.units)) if c0 is None else np.asarray(c0[idx], np.float64)
            reverse = d == "bw" or cfg.direction == "reverse"
            ys = np.zeros((batch, steps, cfg.hout))
            for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                h, c = step(p, src[:, t], h, c, cfg)
                ys[:, t] = h
            outs.append(ys)
            per_dir[d] = ys
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, np.stack(h_n), (np.stack(c_n) if cfg.cell == "lstm" else None)


def _swap_gates(canon, a, b):
    out = dict(canon)
    for k in canon:
        head, _, gate = k.rpartition(".")
        if gate == a and not head.endswith(".p"):
            out[k], out[f"{head}.{b}"] = canon[f"{head}.{b}"], canon[k]
    return out


def mutations(canon, cfg: Cfg, x, y, h0=None, c0=None) -> dict[str, float]:
    """How far typical conversion mistakes move ``y`` (all must be clearly > 1e-5)."""
    muts = {f"swap_gates_{a}_{b}": _swap_gates(canon, a, b)
            for a, b in itertools.combinations(GATES[cfg.cell], 2)}
    cfgs = {}
    zero = {k: (np.zeros_like(v) if ".b_" in k else v) for k, v in canon.items()}
    if any(np.any(v) for k, v in canon.items() if ".b_h." in k):
        muts["drop_b_h"] = {k: (np.zeros_like(v) if ".b_h." in k else v) for k, v in canon.items()}
    if any(np.any(v) for k, v in canon.items() if ".b_" in k):
        muts["drop_all_biases"] = zero
    if cfg.forget_bias:
        cfgs["drop_runtime_forget_bias"] = dataclasses.replace(cfg, forget_bias=0.0)
    if cfg.hout == cfg.units:
        muts["transpose_W_h"] = {k: (v.T if ".W_h." in k else v) for k, v in canon.items()}
    if cfg.rec_act != "sigmoid":
        cfgs["recurrent_activation_as_sigmoid"] = dataclasses.replace(cfg, rec_act="sigmoid")
    if cfg.rec_act.startswith("hard_sigmoid_"):
        other = "hard_sigmoid_k3" if cfg.rec_act == "hard_sigmoid_k2" else "hard_sigmoid_k2"
        cfgs["hard_sigmoid_other_keras_version"] = dataclasses.replace(cfg, rec_act=other)
    if cfg.act != "tanh":
        cfgs["activation_as_tanh"] = dataclasses.replace(cfg, act="tanh")
    if cfg.clip:
        cfgs["drop_clip"] = dataclasses.replace(cfg, clip=None)
    if cfg.input_forget:
        cfgs["drop_input_forget"] = dataclasses.replace(cfg, input_forget=False)
    if cfg.cell == "gru":
        flip = "reset_before" if cfg.variant == "reset_after" else "reset_after"
        cfgs["flip_reset_variant"] = dataclasses.replace(cfg, variant=flip)
    if cfg.directions == 2:
        muts["swap_directions"] = {k.replace(".fw.", ".tmp.").replace(".bw.", ".fw.")
                                   .replace(".tmp.", ".bw."): v for k, v in canon.items()}
    res = {name: np_forward(m, cfg, x, h0, c0)[0] for name, m in muts.items()}
    res.update({name: np_forward(canon, c, x, h0, c0)[0] for name, c in cfgs.items()})
    return {k: float(f"{np.max(np.abs(v - y)):.3g}") for k, v in res.items()}


# --------------------------------------------------------------------------- fixture writer


def seeded(fid: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(fid.encode()))


class Fixture:
    """Collects one fixture's files and manifest entry; checks everything it records."""

    def __init__(self, fid, source, framework, how_made, dtype="float32"):
        self.dir = OUT / fid
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.entry = {"id": fid, "source": source, "dir": fid, "framework": framework,
                      "how_made": how_made, "dtype": dtype, "files": [], "inputs": {},
                      "layers": []}
        self.arrays: dict[str, tuple[np.ndarray, str]] = {}

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def file(self, name, description):
        self.entry["files"].append({"name": name, "description": description})

    def input(self, name, arr, layout="batch_major", note=None):
        np.save(self.path(f"{name}.npy"), arr)
        spec = {"file": f"{name}.npy", "layout": layout, "shape": list(arr.shape)}
        if note:
            spec["note"] = note
        self.entry["inputs"][name] = spec
        self.arrays[name] = (arr, layout)

    def model_output(self, arr, note="model(x) of the whole saved model"):
        np.save(self.path("model_output.npy"), arr)
        self.entry["model_output"] = {"file": "model_output.npy", "note": note}

    def layer(self, key, name, cfg: Cfg, *, native_type, wrapper, flags, canonical, native,
              y, h_n, c_n, framework_outputs, input_ref="x", runtime_constants=None,
              h0=None, c0=None, expect_refused=None, extra=None):
        """Record one recurrent layer; ``native`` maps role -> (array, {file: location})."""
        np.savez(self.path(f"{key}.native.npz"), **{r: a for r, (a, _) in native.items()})
        np.savez(self.path(f"{key}.canonical.npz"), **canonical)
        outputs = {"y": {"file": f"{key}.y.npy", "layout": LAYOUT_Y},
                   "h_n": {"file": f"{key}.h_n.npy", "layout": LAYOUT_H}}
        np.save(self.path(f"{key}.y.npy"), y)
        np.save(self.path(f"{key}.h_n.npy"), h_n)
        if c_n is not None:
            outputs["c_n"] = {"file": f"{key}.c_n.npy", "layout": LAYOUT_C}
            np.save(self.path(f"{key}.c_n.npy"), c_n)
        np.savez(self.path(f"{key}.framework_outputs.npz"),
                 **{k: a for k, (a, _) in framework_outputs.items()})
        init = {"kind": "zeros"}
        if h0 is not None:
            init = {"kind": "given", "layout": "[L*D, B, H*] same indexing as h_n / c_n",
                    "h0": f"{key}.h0.npy"}
            np.save(self.path(f"{key}.h0.npy"), h0)
            if c0 is not None:
                init["c0"] = f"{key}.c0.npy"
                np.save(self.path(f"{key}.c0.npy"), c0)
        x, layout = self.arrays[input_ref]
        x_bm = np.swapaxes(x, 0, 1) if layout == "time_major" else x
        check = self_check(canonical, cfg, x_bm, y, h_n, c_n, h0, c0)
        entry = {
            "key": key, "name": name, "cell": cfg.cell, "native_type": native_type,
            "wrapper": wrapper, "input_size": cfg.input_size, "units": cfg.units,
            "num_layers": cfg.num_layers, "directions": cfg.directions,
            "direction": cfg.direction, "flags": flags,
            "runtime_constants": runtime_constants or {},
            "weights": {r: {"shape": list(a.shape), "in_files": locs}
                        for r, (a, locs) in native.items()},
            "native_npz": f"{key}.native.npz",
            "input": {"ref": input_ref} if input_ref == "x" else
                     {"ref": input_ref, "note": "this layer's input inside the model, computed by the framework"},
            "initial_state": init, "outputs": outputs,
            "framework_outputs": {"file": f"{key}.framework_outputs.npz",
                                  "arrays": {k: d for k, (_, d) in framework_outputs.items()}},
            "canonical_npz": f"{key}.canonical.npz",
        }
        if cfg.cell == "gru":
            entry["canonical_variant"] = cfg.variant
        if expect_refused:
            entry["expect_refused"] = expect_refused
        entry.update(extra or {})
        entry["self_check"] = check
        self.entry["layers"].append(entry)
        self._natives = getattr(self, "_natives", []) + [native]

    def finish(self, **extra):
        """Read every recorded location back from its file; add sizes; return the entry."""
        for native in getattr(self, "_natives", []):
            for role, (arr, locs) in native.items():
                for fname, loc in locs.items():
                    got = read_location(self.dir / fname, loc)
                    if got.shape != arr.shape or not np.array_equal(got, arr):
                        raise AssertionError(f"{self.entry['id']}: {fname}:{loc} != native {role}")
        self.entry.update(extra)
        self.entry["bytes"] = sum(p.stat().st_size for p in self.dir.iterdir())
        return self.entry


def self_check(canon, cfg, x, y, h_n, c_n, h0, c0):
    ry, rh, rc = np_forward(canon, cfg, x, h0, c0)
    errs = [np.max(np.abs(ry - y)), np.max(np.abs(rh - h_n))]
    if c_n is not None:
        errs.append(np.max(np.abs(rc - c_n)))
    err = float(max(errs))
    if not err <= TOL:
        raise AssertionError(f"self-check failed: max abs err {err:.3g} > {TOL}")
    muts = mutations(canon, cfg, x, y, h0, c0)
    low = min(muts.values())
    if low <= 10 * TOL:
        raise AssertionError(f"a mutation is indistinguishable: {muts}")
    return {"canonical_numpy_max_abs_err": err, "mutation_min_err": low, "mutations": muts}


def read_location(path: Path, loc: str) -> np.ndarray:
    """Read one stored array back from a written file (``path`` may be a checkpoint prefix)."""
    name = path.name
    if name.endswith(".h5"):
        import h5py
        with h5py.File(path, "r") as f:
            return f[loc][()]
    if name.endswith(".keras"):
        import h5py
        member, inner = loc.split(":", 1)
        with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read(member)), "r") as f:
            return f[inner][()]
    if name.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return load_file(str(path))[loc]
    if name.endswith(".pt"):
        import torch
        obj = torch.load(path, weights_only=True)
        for part in loc.split("/"):
            obj = obj[part]
        return obj.numpy()
    if name.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper
        inits = {t.name: t for t in onnx.load(str(path)).graph.initializer}
        return numpy_helper.to_array(inits[loc])
    import tensorflow as tf
    if name.endswith((".zip", ".tar.gz")):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.unpack_archive(str(path), tmp)
            index = next(Path(tmp).rglob("variables/variables.index"))
            return tf.train.load_variable(str(index.with_suffix("")), loc)
    return tf.train.load_variable(str(path), loc)


def lstm_flags_keras(cfg, **kw):
    return {"activation": cfg.act if cfg.act != "hard_sigmoid_k2" else "hard_sigmoid",
            "recurrent_activation": _act_name(cfg.rec_act), "use_bias": cfg.bias != "none",
            "return_sequences_in_model": True, "go_backwards": cfg.direction == "reverse",
            "unit_forget_bias": "initializer only (no runtime effect)",
            "use_peepholes": False, "proj_size": 0, **kw}


def gru_flags_keras(cfg, **kw):
    return {"activation": cfg.act, "recurrent_activation": _act_name(cfg.rec_act),
            "use_bias": cfg.bias != "none", "return_sequences_in_model": True,
            "go_backwards": cfg.direction == "reverse",
            "reset_after": cfg.variant == "reset_after", **kw}


def _act_name(a):
    return "hard_sigmoid" if a.startswith("hard_sigmoid") else a


def versions(*dists):
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = None
    return out


# --------------------------------------------------------------------------- Keras (2 and 3)


def keras_native(canon, cfg: Cfg, d: str, cudnn=False, layer=0):
    """Canonical -> Keras [kernel, recurrent_kernel, (bias)] of direction ``d``."""
    gates = "ifgo" if cfg.cell == "lstm" else "zrn"
    pre = f"l{layer}.{d}."
    x_blocks = [canon[pre + f"W_x.{g}"] for g in gates]
    h_blocks = [canon[pre + f"W_h.{g}"] for g in gates]
    if cudnn:
        kernel = np.concatenate([w.reshape(w.shape[1], w.shape[0]) for w in x_blocks], 1)
        rec = np.concatenate(h_blocks, 1)
    else:
        kernel = np.concatenate([w.T for w in x_blocks], 1)
        rec = np.concatenate([w.T for w in h_blocks], 1)
    out = [kernel, rec]
    bx = np.concatenate([canon[pre + f"b_x.{g}"] for g in gates])
    bh = np.concatenate([canon[pre + f"b_h.{g}"] for g in gates])
    if cudnn:
        out.append(np.concatenate([bx, bh]))
    elif cfg.bias != "none":
        if cfg.cell == "lstm" or cfg.variant == "reset_before":
            assert not np.any(bh), "Keras has a single bias vector here"
        out.append(np.stack([bx, bh]) if cfg.cell == "gru" and cfg.variant == "reset_after" else bx)
    return out


def _with_states(config):
    """A layer config (possibly Bidirectional) switched to return_sequences + return_state."""
    config = json.loads(json.dumps(config))

    def walk(c):
        if isinstance(c, dict):
            if "return_sequences" in c:
                c["return_sequences"] = True
                c["return_state"] = True
            for v in c.values():
                walk(v)
    walk(config)
    return config


def keras_probe(keras, lay, layer_in, weights):
    """Run a copy of ``lay`` with states returned; returns numpy outputs."""
    probe = type(lay).from_config(_with_states(lay.get_config()))
    probe(layer_in)
    probe.set_weights(weights)
    return [np.asarray(o) for o in probe(layer_in)]


def keras_common_outputs(cfg, outs, bidi):
    """Keras (seq, states...) -> y, h_n, c_n and the framework_outputs dict."""
    seq = outs[0]
    y = seq[:, ::-1] if cfg.direction == "reverse" else seq
    fo = {"sequence": (seq, "[B, T, D*H] merged (concat) output sequence"
                       + ("; go_backwards: index 0 is the output after reading x_{T-1}"
                          if cfg.direction == "reverse" else ""))}
    states = outs[1:]
    n = 2 if cfg.cell == "lstm" else 1
    names = ["h", "c"][:n]
    if bidi:
        fo.update({f"{side}_{s}": (a, "[B, H]") for side, group in
                   (("forward", states[:n]), ("backward", states[n:]))
                   for s, a in zip(names, group)})
        groups = [states[:n], states[n:]]
    else:
        fo.update({f"state_{s}": (a, "[B, H]") for s, a in zip(names, states)})
        groups = [states]
    h_n = np.stack([g[0] for g in groups])
    c_n = np.stack([g[1] for g in groups]) if cfg.cell == "lstm" else None
    return y, h_n, c_n, fo


def keras_fixture(fx, keras, specs, x, *, saver, loc_fn, native_type_of, rng, head=None):
    """Build, fill, run and save a Keras model of RNN layers; record every layer.

    ``specs``: list of dicts {key, layer, cfg, bidi, flags, expect_refused, [name]} (``name``:
    the layer name rnnbridge reports, when the file has no config). ``head``: optional
    non-recurrent layers after the last one. ``saver(model)`` writes the files;
    ``loc_fn(lay, i, n)`` gives {file: location} per weight.
    """
    inp = keras.Input(x.shape[1:])
    h = inp
    for spec in specs:
        h = spec["layer"](h)
    if head is not None:
        h = head(h)
    model = keras.Model(inp, h)
    for spec in specs:
        cfg = spec["cfg"]
        two_biases = spec.get("cudnn") or (cfg.cell == "gru" and cfg.variant == "reset_after")
        if cfg.bias == "both" and not two_biases:
            cfg.bias = "x"
        spec["canon"] = draw_canonical(cfg, rng)
        w = []
        for d in spec["cfg"].dirs:
            w += keras_native(spec["canon"], spec["cfg"], d, cudnn=spec.get("cudnn", False))
        spec["layer"].set_weights(w)
    fx.input("x", x)
    saver(model)
    run_model = specs[0].get("run_model", model)
    fx.model_output(np.asarray(run_model(x)), "model(x) of the whole saved model" if run_model is model
                    else "output of the plain model that loaded m.h5 (the CuDNN model cannot run on CPU)")
    for i, spec in enumerate(specs):
        lay, cfg = spec["layer"], spec["cfg"]
        run_lay = run_model.layers[model.layers.index(lay)]
        layer_in = x if i == 0 else np.asarray(keras.Model(run_model.input, run_lay.input)(x))
        if i:
            fx.input(f"{spec['key']}.x", layer_in)
        outs = keras_probe(keras, run_lay, layer_in, run_lay.get_weights())
        y, h_n, c_n, fo = keras_common_outputs(cfg, outs, spec["bidi"])
        weights = lay.get_weights()
        roles = (["kernel", "recurrent_kernel", "bias"] if cfg.bias != "none" or spec.get("cudnn")
                 else ["kernel", "recurrent_kernel"])
        if spec["bidi"]:
            roles = [f"forward/{r}" for r in roles] + [f"backward/{r}" for r in roles]
        native = {r: (np.asarray(a), loc_fn(lay, j, len(roles))) for j, (r, a) in
                  enumerate(zip(roles, weights))}
        flags = (lstm_flags_keras if cfg.cell == "lstm" else gru_flags_keras)(cfg, **spec["flags"])
        if i < len(specs) - 1 or spec.get("return_sequences", True):
            flags["return_sequences_in_model"] = True
        fx.layer(spec["key"], spec.get("name", lay.name), cfg, native_type=native_type_of(spec),
                 wrapper="keras.Bidirectional" if spec["bidi"] else None, flags=flags,
                 canonical=spec["canon"], native=native, y=y, h_n=h_n, c_n=c_n,
                 framework_outputs=fo, input_ref="x" if i == 0 else f"{spec['key']}.x",
                 expect_refused=spec.get("expect_refused"))


def k2_h5_paths(path, layer_name, root):
    """Dataset paths of a Keras 2 layer's weights, resolved through ``weight_names``."""
    import h5py
    with h5py.File(path, "r") as f:
        g = f[root][layer_name] if root else f[layer_name]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
        prefix = f"{root}/{layer_name}" if root else layer_name
        return [f"{prefix}/{n}" for n in names]


def keras2_fixture(fid, specs, x, how, *, cudnn_plain=None, rewrite=None):
    """A tf_keras model saved with model.save('m.h5') and save_weights('w.h5')."""
    import tensorflow as tf
    import tf_keras as keras
    fw = {"name": "tf_keras (tf.keras 2.x API)", "version": keras.__version__,
          "tensorflow_version": tf.__version__, "backend": "tensorflow"}
    fx = Fixture(fid, "keras2_h5", fw, how)
    fx.file("m.h5", "model.save('m.h5') (HDF5: model_config + /model_weights)")
    fx.file("w.h5", "model.save_weights('w.h5') (HDF5 weights only)")

    def saver(model):
        model.save(fx.path("m.h5"))
        model.save_weights(fx.path("w.h5"))
        if rewrite is not None:  # the truth then comes from the model loaded back from m.h5
            rewrite(fx.path("w.h5"), keras)
            specs[0]["run_model"] = rewrite(fx.path("m.h5"), keras)
        if cudnn_plain is not None:
            plain = cudnn_plain(keras, x)
            plain.load_weights(fx.path("m.h5"))
            specs[0]["run_model"] = plain

    def loc_fn(lay, j, n):
        return {"m.h5": k2_h5_paths(fx.path("m.h5"), lay.name, "model_weights")[j],
                "w.h5": k2_h5_paths(fx.path("w.h5"), lay.name, None)[j]}

    def native_type_of(spec):
        return spec.get("native_type") or ("keras.LSTM" if spec["cfg"].cell == "lstm" else "keras.GRU")

    keras_fixture(fx, keras, specs, x, saver=saver, loc_fn=loc_fn,
                  native_type_of=native_type_of, rng=seeded(fid))
    return fx.finish()


def _k2_single(fid, cell, units, T, F, kw, flags, how, cfg_kw, refused=None, bidi=False):
    import tf_keras as keras
    rng = seeded(fid + "/x")
    x = rng.normal(size=(BATCH, T, F)).astype("float32")
    cls = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    lay = cls(units, return_sequences=True, **kw)
    if bidi:
        lay = keras.layers.Bidirectional(lay, name=f"bidir_{cell}")
    cfg = Cfg(cell, F, units, directions=2 if bidi else 1,
              direction="bidirectional" if bidi else cfg_kw.pop("direction", "forward"), **cfg_kw)
    if bidi:
        flags = {**flags, "merge_mode": "concat"}
    spec = {"key": "rnn0", "layer": lay, "cfg": cfg, "bidi": bidi, "flags": flags,
            "expect_refused": refused}
    return keras2_fixture(fid, [spec], x, how)


K2_HOW = ("Keras 2 (tf_keras) functional model [{desc}], Input shape (T={T}, F={F}); all weights "
          "set to random uniform(-0.5,0.5) with set_weights; saved as m.h5, w.h5")


def k2_lstm_go_backwards():
    return _k2_single("k2_lstm_go_backwards", "lstm", 4, 5, 3, {"go_backwards": True}, {},
                      K2_HOW.format(desc="LSTM(units=4, go_backwards=True, return_sequences=True)", T=5, F=3)
                      + "; y is re-aligned to input time (framework_outputs.sequence is Keras' reversed order)",
                      {"direction": "reverse"},
                      refused={"pytorch": "reverse_only", "tf1": "reverse_only"})


def k2_lstm_no_bias():
    return _k2_single("k2_lstm_no_bias", "lstm", 5, 4, 3, {"use_bias": False}, {},
                      K2_HOW.format(desc="LSTM(units=5, use_bias=False)", T=4, F=3), {"bias": "none"})


def k2_lstm_hard_sigmoid():
    return _k2_single("k2_lstm_hard_sigmoid", "lstm", 4, 6, 3,
                      {"recurrent_activation": "hard_sigmoid"},
                      {"hard_sigmoid_formula": HARD_SIGMOID_K2},
                      K2_HOW.format(desc="LSTM(units=4, recurrent_activation='hard_sigmoid')", T=6, F=3)
                      + f"; Keras 2 hard_sigmoid = {HARD_SIGMOID_K2}",
                      {"rec_act": "hard_sigmoid_k2"},
                      refused={"pytorch": "activation", "tf1": "activation"})


def k2_lstm_relu():
    return _k2_single("k2_lstm_relu", "lstm", 3, 5, 4, {"activation": "relu"}, {},
                      K2_HOW.format(desc="LSTM(units=3, activation='relu')", T=5, F=4),
                      {"act": "relu"}, refused={"pytorch": "activation"})


def k2_bigru_reset_before():
    return _k2_single("k2_bigru_reset_before", "gru", 3, 4, 2, {"reset_after": False}, {},
                      K2_HOW.format(desc="Bidirectional(GRU(units=3, reset_after=False))", T=4, F=2),
                      {"variant": "reset_before", "bias": "x"}, bidi=True,
                      refused={"pytorch": "gru_variant"})


def k2_stacked_bilstm():
    import tf_keras as keras
    fid = "k2_stacked_bilstm"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    specs = []
    for i, (units, in_size) in enumerate([(3, 3), (2, 6)]):
        lay = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True),
                                         name=f"bilstm_{i}")
        cfg = Cfg("lstm", in_size, units, directions=2, direction="bidirectional")
        specs.append({"key": f"rnn{i}", "layer": lay, "cfg": cfg, "bidi": True,
                      "flags": {"merge_mode": "concat"}})
    how = K2_HOW.format(desc="Bidirectional(LSTM(3, return_sequences=True)); "
                        "Bidirectional(LSTM(2, return_sequences=True))", T=4, F=3)
    return keras2_fixture(fid, specs, x, how)


def _k2_cudnn(fid, cell, units, T, F):
    import tensorflow as tf
    x = seeded(fid + "/x").normal(size=(BATCH, T, F)).astype("float32")
    if cell == "lstm":
        lay = tf.compat.v1.keras.layers.CuDNNLSTM(units, return_sequences=True)
        plain_desc = "LSTM"
    else:
        lay = tf.compat.v1.keras.layers.CuDNNGRU(units, return_sequences=True)
        plain_desc = "GRU(reset_after=True, recurrent_activation='sigmoid')"

    def plain(keras, x):
        inp = keras.Input(x.shape[1:])
        cls = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        kw = {} if cell == "lstm" else {"reset_after": True, "recurrent_activation": "sigmoid"}
        return keras.Model(inp, cls(units, return_sequences=True, **kw)(inp))

    cfg = Cfg(cell, F, units, variant="reset_after")
    name = "CuDNNLSTM" if cell == "lstm" else "CuDNNGRU"
    layout = ("kernel [I, G*H]: each gate block is cuDNN's row-major [H, I] matrix reinterpreted "
              "(reshaped, not transposed) as [I, H]; recurrent_kernel [H, G*H]: each block is "
              f"cuDNN's [H, H] matrix (the transpose of the plain layer's); bias [{2 * len(GATES[cell])}H] "
              "= [input biases | recurrent biases]")
    flags = {"cudnn_weight_layout": layout}
    if cell == "gru":
        flags["stored_gate_order"] = "z, r, h (the layer reorders to cuDNN's r, z, h at run time)"
    spec = {"key": "rnn0", "layer": lay, "cfg": cfg, "bidi": False, "flags": flags,
            "cudnn": True, "native_type": f"keras.{name}"}
    how = (f"Keras 2 (tf_keras) functional model [tf.compat.v1.keras.layers.{name}(units={units}, "
           f"return_sequences=True)], Input shape (T={T}, F={F}), built and saved on CPU (m.h5, w.h5); "
           f"weights set with set_weights in cuDNN layout. {name} cannot run on CPU: the truth outputs "
           f"come from a plain {plain_desc} model that loaded m.h5 with load_weights, tf_keras's own "
           "_convert_rnn_weights producing the plain weights, and ran it")
    return keras2_fixture(fid, [spec], x, how, cudnn_plain=plain)


def k2_cudnn_lstm():
    return _k2_cudnn("k2_cudnn_lstm", "lstm", 3, 4, 2)


def k2_cudnn_gru():
    return _k2_cudnn("k2_cudnn_gru", "gru", 3, 5, 3)


def _k2_lstm_bigru_specs(keras):
    """LSTM(4) -> Bidirectional(GRU(3)), named as a TF2 object checkpoint names them."""
    specs = [{"key": "rnn0", "layer": keras.layers.LSTM(4, return_sequences=True, name="enc_lstm"),
              "cfg": Cfg("lstm", 3, 4), "bidi": False, "flags": {}, "name": "layer_with_weights-0"},
             {"key": "rnn1", "layer": keras.layers.Bidirectional(
                 keras.layers.GRU(3, return_sequences=True), name="bigru"),
              "cfg": Cfg("gru", 4, 3, directions=2, direction="bidirectional", variant="reset_after"),
              "bidi": True, "flags": {"merge_mode": "concat"}, "name": "layer_with_weights-1"}]
    return specs


def _object_key(j, spec, n):
    """The object-checkpoint key of weight ``j`` (of ``n``) of a layer with weights."""
    roles = ("kernel", "recurrent_kernel", "bias")
    side = ""
    if spec["bidi"]:
        side = "forward_layer/" if j < n // 2 else "backward_layer/"
    return f"{spec['name']}/{side}cell/{roles[j % 3]}/.ATTRIBUTES/VARIABLE_VALUE"


def _train_one_step(keras, model, x):
    """Compile with Adam(lr=0) and fit one batch: optimizer state is created, weights stay."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0), loss="mse")
    y = np.zeros((x.shape[0],) + tuple(model.output_shape[1:]), "float32")
    model.fit(x, y, epochs=1, batch_size=x.shape[0], verbose=0)


def _k2_object_fixture(fid, how, file_list, save):
    """A tf_keras LSTM + Bidirectional(GRU) + Dense model saved by ``save(fx, model, x)``."""
    import tensorflow as tf
    import tf_keras as keras
    fw = {"name": "tf_keras (tf.keras 2.x API)", "version": keras.__version__,
          "tensorflow_version": tf.__version__, "backend": "tensorflow"}
    fx = Fixture(fid, "keras2_tf", fw, how)
    for name, desc in file_list:
        fx.file(name, desc)
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    specs = _k2_lstm_bigru_specs(keras)
    where = {}

    def saver(model):
        _train_one_step(keras, model, x)
        where.update(save(fx, model, x))

    def loc_fn(lay, j, n):
        spec = next(s for s in specs if s["layer"] is lay)
        key = _object_key(j, spec, n)
        return {f: where.get(key, key) for f in where["__files__"]}

    keras_fixture(fx, keras, specs, x, saver=saver, loc_fn=loc_fn, rng=seeded(fid),
                  native_type_of=lambda s: "keras.LSTM" if s["cfg"].cell == "lstm" else "keras.GRU",
                  head=keras.layers.Dense(2, name="head"))
    return fx


def _bundle_others(prefix, fx):
    import tensorflow as tf
    known = {loc for lay in fx.entry["layers"] for w in lay["weights"].values()
             for loc in w["in_files"].values()}
    return sorted({n for n, _ in tf.train.list_variables(prefix)} - known)


def k2_tf_ckpt_lstm_bigru():
    fid = "k2_tf_ckpt_lstm_bigru"

    def save(fx, model, x):
        model.save_weights(fx.path("model.ckpt"))
        return {"__files__": ["model.ckpt"]}

    files = [("model.ckpt.index", "model.save_weights('model.ckpt') (TF format): tensor bundle index"),
             ("model.ckpt.data-00000-of-00001", "its data shard"),
             ("checkpoint", "CheckpointState text file written by save_weights")]
    how = ("Keras 2 (tf_keras) functional model [LSTM(4, name='enc_lstm'), Bidirectional(GRU(3), "
           "name='bigru'), Dense(2)], Input shape (T=4, F=3); weights set with set_weights; compiled "
           "with Adam(learning_rate=0.0) and fit on one batch (optimizer/_variables/* slots and "
           "_iterations filled, weights unchanged); saved with model.save_weights('model.ckpt') "
           "(TF object checkpoint: layer_with_weights-<k>/[forward_layer/|backward_layer/]cell/"
           "<weight>/.ATTRIBUTES/VARIABLE_VALUE). No model config: layers are named by their key "
           "path, activations are the defaults")
    fx = _k2_object_fixture(fid, how, files, save)
    return fx.finish(checkpoint_other_variables=_bundle_others(fx.path("model.ckpt"), fx))


def k2_savedmodel_lstm_bigru():
    import tensorflow as tf
    fid = "k2_savedmodel_lstm_bigru"

    def save(fx, model, x):
        folder = Path(fx.path("saved_model"))
        model.save(str(folder))  # tf_keras: a folder without .h5/.keras is a SavedModel
        prefix = str(folder / "variables" / "variables")
        graph = tf.train.load_checkpoint(prefix).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
        Path(fx.path("object_graph.pb")).write_bytes(graph)
        keys = _savedmodel_keys(prefix, graph)
        shutil.make_archive(str(folder), "zip", folder)  # members variables/..., saved_model.pb
        shutil.make_archive(str(folder), "gztar", folder.parent, folder.name)  # saved_model/...
        shutil.rmtree(folder)
        return {"__files__": ["saved_model.zip", "saved_model.tar.gz"], **keys}

    files = [("saved_model.zip", ("zip of the SavedModel folder written by model.save('saved_model') "
                                  "(saved_model.pb, keras_metadata.pb, fingerprint.pb, "
                                  "variables/variables.index + .data-00000-of-00001)")),
             ("saved_model.tar.gz", "the same folder as a gzipped tar (members saved_model/...)"),
             ("object_graph.pb", ("the bundle's _CHECKPOINTABLE_OBJECT_GRAPH entry (a serialised "
                                  "TrackableObjectGraph), as tf.train.load_checkpoint returns it"))]
    how = ("Keras 2 (tf_keras) functional model [LSTM(4, name='enc_lstm'), Bidirectional(GRU(3), "
           "name='bigru'), Dense(2)], Input shape (T=4, F=3); weights set with set_weights; compiled "
           "with Adam(learning_rate=0.0) and fit on one batch; saved with model.save('saved_model') "
           "(SavedModel) and archived as zip and tar.gz. The bundle keys the cell weights by their "
           "index in model.variables (variables/<k>/.ATTRIBUTES/VARIABLE_VALUE); only the object "
           "graph relates them to layer_with_weights-<k>/.../cell/<weight>")
    return _k2_object_fixture(fid, how, files, save).finish()


def _savedmodel_keys(prefix, graph):
    """{structured object-graph key: the key the SavedModel bundle stores it under}."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2 as pb
    og = pb.TrackableObjectGraph()
    og.ParseFromString(graph)
    flat = {"variables", "trainable_variables", "non_trainable_variables", "keras_api", "signatures"}
    paths, queue = {0: ""}, [0]
    while queue:
        node = queue.pop(0)
        for child in og.nodes[node].children:
            if child.local_name in flat or child.node_id in paths:
                continue
            paths[child.node_id] = f"{paths[node]}/{child.local_name}".lstrip("/")
            queue.append(child.node_id)
    out = {}
    for node, path in paths.items():
        for attr in og.nodes[node].attributes:
            out[f"{path}/.ATTRIBUTES/{attr.name}"] = attr.checkpoint_key
    return out


def k2_simple_rnn_convlstm():
    """Recurrent layers rnnbridge does not convert: SimpleRNN, ConvLSTM1D, ConvLSTM2D."""
    import tensorflow as tf
    import tf_keras as keras
    fid = "k2_simple_rnn_convlstm"
    fw = {"name": "tf_keras (tf.keras 2.x API)", "version": keras.__version__,
          "tensorflow_version": tf.__version__, "backend": "tensorflow"}
    how = ("Keras 2 (tf_keras) models of layers rnnbridge lists as unsupported, saved with "
           "model.save (HDF5) and save_weights (HDF5): rnn.h5 / rnn_w.h5 [SimpleRNN(4, name="
           "'simple_rnn'), Bidirectional(SimpleRNN(2), name='bi_simple_rnn'), LSTM(3, name='lstm')] "
           "on (T=5, F=3); conv.h5 [ConvLSTM1D(3, 3, name='conv_lstm1d'), Reshape, ConvLSTM2D(2, "
           "(1, 1), name='conv_lstm2d')] on (T=3, W=6, C=2). Default initial weights")
    fx = Fixture(fid, "keras2_h5", fw, how)
    for name, desc in [("rnn.h5", "model.save('rnn.h5')"), ("rnn_w.h5", "model.save_weights('rnn_w.h5')"),
                       ("conv.h5", "model.save('conv.h5')")]:
        fx.file(name, desc)
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 3))
    h = keras.layers.SimpleRNN(4, return_sequences=True, name="simple_rnn")(inp)
    h = keras.layers.Bidirectional(keras.layers.SimpleRNN(2, return_sequences=True), name="bi_simple_rnn")(h)
    rnn = keras.Model(inp, keras.layers.LSTM(3, name="lstm")(h))
    rnn.save(fx.path("rnn.h5"))
    rnn.save_weights(fx.path("rnn_w.h5"))
    inp = keras.Input((3, 6, 2))
    h = keras.layers.ConvLSTM1D(3, 3, return_sequences=True, name="conv_lstm1d")(inp)
    h = keras.layers.Reshape((3, 4, 3, 1))(h)
    conv = keras.Model(inp, keras.layers.ConvLSTM2D(2, (1, 1), name="conv_lstm2d")(h))
    conv.save(fx.path("conv.h5"))
    rnn_files, conv_files = ["rnn.h5", "rnn_w.h5"], ["conv.h5"]
    unsupported = [
        {"name": "simple_rnn", "native_type": "keras.SimpleRNN", "kind": "SimpleRNN", "in_files": rnn_files},
        {"name": "bi_simple_rnn", "native_type": "keras.SimpleRNN", "wrapper": "keras.Bidirectional",
         "kind": "SimpleRNN", "in_files": rnn_files},
        {"name": "conv_lstm1d", "native_type": "keras.ConvLSTM1D", "kind": "ConvLSTM/ConvGRU",
         "in_files": conv_files},
        {"name": "conv_lstm2d", "native_type": "keras.ConvLSTM2D", "kind": "ConvLSTM/ConvGRU",
         "in_files": conv_files},
    ]
    entry = fx.finish(unsupported_layers=unsupported,
                      other_recurrent_layers=[{"name": "lstm", "native_type": "keras.LSTM",
                                               "in_files": rnn_files, "units": 3, "input_size": 4}])
    return entry


def k2_standalone_names_hard_sigmoid():
    """Standalone Keras 2.x naming (``lstm_1/kernel:0``), written by rewriting a tf_keras file."""
    import tf_keras as keras
    fid = "k2_standalone_names_hard_sigmoid"
    x = seeded(fid + "/x").normal(size=(BATCH, 5, 3)).astype("float32")
    hs = {"hard_sigmoid_formula": HARD_SIGMOID_K2}
    specs = [{"key": "rnn0", "layer": keras.layers.LSTM(4, recurrent_activation="hard_sigmoid",
                                                        return_sequences=True, name="lstm_1"),
              "cfg": Cfg("lstm", 3, 4, rec_act="hard_sigmoid_k2"), "bidi": False, "flags": hs,
              "expect_refused": {"pytorch": "activation", "tf1": "activation"}},
             {"key": "rnn1", "layer": keras.layers.GRU(3, recurrent_activation="hard_sigmoid",
                                                       reset_after=False, return_sequences=True,
                                                       name="gru_1"),
              "cfg": Cfg("gru", 4, 3, rec_act="hard_sigmoid_k2", variant="reset_before", bias="x"),
              "bidi": False, "flags": hs,
              "expect_refused": {"pytorch": "gru_variant", "tf1": "activation"}}]
    how = ("SYNTHETIC LAYOUT, REAL OUTPUTS. Standalone Keras 2.0-2.3 cannot be installed here, so a "
           "tf_keras model [LSTM(4, recurrent_activation='hard_sigmoid', name='lstm_1'), "
           "GRU(3, recurrent_activation='hard_sigmoid', reset_after=False, name='gru_1')] on "
           "(T=5, F=3) was saved as m.h5 / w.h5 and rewritten with h5py to the layout standalone "
           "Keras 2.x wrote (conventions.md 4.2): weights at <layer>/<layer>/kernel:0 with no cell "
           "scope, weight_names to match, keras_version '2.2.4' (model_config stays tf_keras's). "
           "The truth outputs come from tf_keras.models.load_model of the rewritten m.h5 (which "
           f"resolves weights through weight_names); Keras 2 hard_sigmoid = {HARD_SIGMOID_K2}")
    return keras2_fixture(fid, specs, x, how, rewrite=_standalone_keras2_layout)


def _standalone_keras2_layout(path, keras):
    """Rewrite a tf_keras .h5 in place to standalone Keras 2.x names; return a model loaded from it."""
    import h5py
    with h5py.File(path, "r+") as f:
        root = f.get("model_weights", f)
        for holder in {f, root}:
            holder.attrs["keras_version"] = "2.2.4"
        for layer in (n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]):
            g = root[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            new = [f"{layer}/{n.rsplit('/', 1)[1]}" for n in names]
            for old, fresh in zip(names, new):
                if old != fresh:
                    g.move(old, fresh)
            for old in names:
                scope = old.rsplit("/", 1)[0]
                if scope in g and scope != layer and not len(g[scope]):
                    del g[scope]
            g.attrs["weight_names"] = [n.encode() for n in new]
    if path.endswith("w.h5"):
        return None
    return keras.models.load_model(path, compile=False)


# --------------------------------------------------------------------------- Keras 3


def keras3_fixture(fid, spec, x, how):
    import keras
    import tensorflow as tf
    fw = {"name": "keras", "version": keras.__version__, "backend": keras.backend.backend(),
          "backend_version": tf.__version__}
    fx = Fixture(fid, "keras3", fw, how)
    fx.file("m.keras", "model.save('m.keras') (zip: config.json, metadata.json, model.weights.h5)")
    fx.file("m.weights.h5", "model.save_weights('m.weights.h5')")
    fx.file("m.h5", "model.save('m.h5') (legacy HDF5 format, still written by Keras 3)")

    def saver(model):
        model.save(fx.path("m.keras"))
        model.save_weights(fx.path("m.weights.h5"))
        model.save(fx.path("m.h5"))

    def loc_fn(lay, j, n):
        import h5py
        with h5py.File(fx.path("m.weights.h5"), "r") as f:
            key = next(k for k in f["layers"] if f["layers"][k]["vars"].attrs.get("name") == lay.name)
        k3 = f"layers/{key}/cell/vars/{j}"
        return {"m.keras": f"model.weights.h5:{k3}", "m.weights.h5": k3,
                "m.h5": k2_h5_paths(fx.path("m.h5"), lay.name, "model_weights")[j]}

    keras_fixture(fx, keras, [spec], x, saver=saver, loc_fn=loc_fn,
                  native_type_of=lambda s: "keras.LSTM" if s["cfg"].cell == "lstm" else "keras.GRU",
                  rng=seeded(fid))
    return fx.finish()


def k3_gru_go_backwards():
    import keras
    fid = "k3_gru_go_backwards"
    x = seeded(fid + "/x").normal(size=(BATCH, 5, 3)).astype("float32")
    cfg = Cfg("gru", 3, 4, direction="reverse", variant="reset_after")
    spec = {"key": "rnn0", "layer": keras.layers.GRU(4, go_backwards=True, return_sequences=True,
                                                      name="gru_back"),
            "cfg": cfg, "bidi": False, "flags": {},
            "expect_refused": {"pytorch": "reverse_only", "tf1": "reverse_only"}}
    how = ("Keras 3 (tensorflow backend) functional model [GRU(units=4, go_backwards=True, "
           "return_sequences=True)], Input shape (T=5, F=3); weights set with set_weights; saved as "
           "m.keras, m.weights.h5, m.h5; y is re-aligned to input time")
    return keras3_fixture(fid, spec, x, how)


def k3_lstm_hard_sigmoid():
    import keras
    fid = "k3_lstm_hard_sigmoid"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 4, rec_act="hard_sigmoid_k3")
    spec = {"key": "rnn0", "layer": keras.layers.LSTM(4, recurrent_activation="hard_sigmoid",
                                                       return_sequences=True, name="lstm_hs"),
            "cfg": cfg, "bidi": False, "flags": {"hard_sigmoid_formula": HARD_SIGMOID_K3},
            "expect_refused": {"pytorch": "activation", "tf1": "activation"}}
    how = ("Keras 3 (tensorflow backend) functional model [LSTM(units=4, recurrent_activation="
           f"'hard_sigmoid')], Input shape (T=4, F=3); Keras 3 hard_sigmoid = {HARD_SIGMOID_K3}; "
           "weights set with set_weights; saved as m.keras, m.weights.h5, m.h5")
    return keras3_fixture(fid, spec, x, how)


# --------------------------------------------------------------------------- TF1 checkpoints


def tf1_lstm_native(canon, cfg, pre="l0.fw."):
    gates = "igfo"
    assert not any(np.any(canon[pre + f"b_h.{g}"]) for g in gates), "TF1 cells have one bias"
    kernel = np.concatenate([np.concatenate([canon[pre + f"W_x.{g}"].T, canon[pre + f"W_h.{g}"].T], 0)
                             for g in gates], 1)
    out = {"kernel": kernel,
           "bias": np.concatenate([canon[pre + f"b_x.{g}"] for g in gates])}
    if cfg.peepholes:
        out.update({f"w_{g}_diag": canon[pre + f"p.{g}"] for g in "ifo"})
    if cfg.proj:
        out["projection/kernel"] = canon[pre + "W_proj"].T
    return out


def tf1_gru_native(canon, pre="l0.fw."):
    assert not np.any(canon[pre + "b_h.r"]) and not np.any(canon[pre + "b_h.z"])
    gk = np.concatenate([np.concatenate([canon[pre + f"W_x.{g}"].T, canon[pre + f"W_h.{g}"].T], 0)
                         for g in "rz"], 1)
    return {"gates/kernel": gk,
            "gates/bias": np.concatenate([canon[pre + "b_x.r"], canon[pre + "b_x.z"]]),
            "candidate/kernel": np.concatenate([canon[pre + "W_x.n"].T, canon[pre + "W_h.n"].T], 0),
            "candidate/bias": canon[pre + "b_x.n"]}


def tf1_flags_lstm(cfg, time_major=False, **kw):
    return {"time_major": time_major, "activation": cfg.act, "recurrent_activation": "sigmoid",
            "forget_bias": cfg.forget_bias, "use_peepholes": cfg.peepholes,
            "num_proj": cfg.proj or None, "proj_size": cfg.proj, "state_is_tuple": True,
            "cell_clip": None, "proj_clip": None, **kw}


def tf1_flags_gru(cfg, time_major=False, **kw):
    return {"time_major": time_major, "activation": "tanh", "recurrent_activation": "sigmoid",
            "reset_after": cfg.variant == "reset_after", **kw}


TF1_FILES = [("model.ckpt.index", "TF checkpoint index (tensor bundle SSTable)"),
             ("model.ckpt.data-00000-of-00001", "TF checkpoint data shard"),
             ("model.ckpt.meta", "MetaGraphDef written by Saver"),
             ("checkpoint", "Saver's CheckpointState text file")]


def tf1_framework():
    import tensorflow as tf
    import tf_keras
    return {"name": "tensorflow", "version": tf.__version__,
            "api": "tf.compat.v1 graph mode; tf.compat.v1.nn.rnn_cell from tf_keras legacy cells",
            "tf_keras_version": tf_keras.__version__}


def tf1_graph_fixture(fid, how, x, build, layers, *, saver_vars=None, train=False):
    """Build a tf.compat.v1 graph, fill its variables, run it and save it with a Saver.

    ``build(x_ph)`` returns (fetches: dict name->tensor). ``layers``: list of dicts
    {key, name, cfg, native_type, wrapper, flags, roles: {role: var name}, canon, fetch -> fn}.
    """
    import tensorflow as tf
    v1 = tf.compat.v1
    fx = Fixture(fid, "tf1_checkpoint", tf1_framework(), how)
    for name, desc in TF1_FILES:
        fx.file(name, desc)
    fx.input("x", x)
    graph = tf.Graph()
    with graph.as_default():
        x_ph = v1.placeholder(tf.float32, x.shape, name="x")
        fetches = build(x_ph)
        if train:
            loss = tf.add_n([tf.reduce_sum(t) for t in tf.nest.flatten(fetches)])
            step = v1.train.get_or_create_global_step()
            train_op = v1.train.AdamOptimizer(learning_rate=0.0).minimize(loss, global_step=step)
        gvars = {v.op.name: v for v in v1.global_variables()}
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for lay in layers:
                for role, vname in lay["roles"].items():
                    _tf1_load(gvars, vname, lay["values"][role], sess)
            result = sess.run(fetches, {x_ph: x})
            if train:
                sess.run(train_op, {x_ph: x})
            saver = v1.train.Saver(var_list=saver_vars(gvars) if saver_vars else None)
            saver.save(sess, fx.path("model.ckpt"))
            stored = {v.op.name: v for v in v1.global_variables()}
    ckpt_names = [n for n, _ in tf.train.list_variables(fx.path("model.ckpt"))]
    for lay in layers:
        y, h_n, c_n, fo = lay["outputs"](result)
        native = {}
        for role, vname in lay["roles"].items():
            loc = lay.get("ckpt_names", {}).get(role, vname)
            native[role] = (tf.train.load_variable(fx.path("model.ckpt"), loc), {"model.ckpt": loc})
            if not np.array_equal(native[role][0], lay["values"][role]):
                raise AssertionError(f"{fid}: {loc} changed before saving")
        cfg = lay["cfg"]
        fx.layer(lay["key"], lay["name"], cfg, native_type=lay["native_type"],
                 wrapper=lay.get("wrapper"), flags=lay["flags"], canonical=lay["canon"],
                 native=native, y=y, h_n=h_n, c_n=c_n, framework_outputs=fo,
                 runtime_constants={"forget_bias": cfg.forget_bias} if cfg.cell == "lstm" else {},
                 expect_refused=lay.get("expect_refused"), extra=lay.get("extra"))
    known = {loc for lay in fx.entry["layers"] for w in lay["weights"].values()
             for loc in w["in_files"].values()}
    others = sorted(set(ckpt_names) - known)
    return fx.finish(checkpoint_other_variables=others) if others else fx.finish()


def _tf1_load(gvars, vname, value, sess):
    """Assign ``value`` to variable ``vname``, splitting it over partitions if needed."""
    if vname in gvars:
        gvars[vname].load(value, sess)
        return
    parts = sorted((n for n in gvars if n.startswith(vname + "/part_")),
                   key=lambda n: int(n.rsplit("_", 1)[1]))
    if not parts:
        raise KeyError(vname)
    start = 0
    for n in parts:
        size = gvars[n].shape[0]
        gvars[n].load(value[start:start + size], sess)
        start += size


def _lstm_state_fo(prefix, st):
    return {f"{prefix}_c": (st.c, "[B, H] LSTMStateTuple.c"),
            f"{prefix}_h": (st.h, "[B, Hout] LSTMStateTuple.h")}


def _tf1_single_lstm(fid, how, cfg, x, cell_fn, cell_scope, *, native_type="tf1.LSTMCell",
                     outer=None, rnn_scope=None, partitioner=None, **kw):
    """One dynamic_rnn over one LSTM/GRU cell."""
    import tensorflow as tf
    v1 = tf.compat.v1
    cfg.bias = "x" if cfg.bias == "both" else cfg.bias
    canon = draw_canonical(cfg, seeded(fid))
    values = tf1_lstm_native(canon, cfg) if cfg.cell == "lstm" else tf1_gru_native(canon)
    scope = "/".join(s for s in (outer, rnn_scope or "rnn", cell_scope) if s)

    def build(x_ph):
        def run():
            return v1.nn.dynamic_rnn(cell_fn(), x_ph, dtype=tf.float32, scope=rnn_scope)
        if outer or partitioner:
            with v1.variable_scope(outer or "", partitioner=partitioner):
                out, st = run()
        else:
            out, st = run()
        return {"outputs": out, "state": st}

    def outputs(r):
        st = r["state"]
        if cfg.cell == "lstm":
            fo = {"outputs": (r["outputs"], "[B, T, Hout]"), **_lstm_state_fo("state", st)}
            return r["outputs"], st.h[None], st.c[None], fo
        return r["outputs"], st[None], None, {"outputs": (r["outputs"], "[B, T, H]"),
                                              "state": (st, "[B, H]")}

    flags = (tf1_flags_lstm if cfg.cell == "lstm" else tf1_flags_gru)(cfg)
    layer = {"key": "rnn0", "name": scope, "cfg": cfg, "native_type": native_type,
             "flags": flags, "canon": canon, "values": values, "outputs": outputs,
             "roles": {r: f"{scope}/{r}" for r in values}, **kw}
    return layer, build


def tf1_lstm_forget_bias_half():
    import tensorflow as tf
    fid = "tf1_lstm_forget_bias_half"
    x = seeded(fid + "/x").normal(size=(BATCH, 5, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 4, forget_bias=0.5)
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.LSTMCell(
        4, forget_bias=0.5), "lstm_cell")
    how = ("tf.compat.v1 graph: dynamic_rnn(LSTMCell(4, forget_bias=0.5)), random uniform(-0.5,0.5) "
           "values assigned to all variables, run in a Session, saved with tf.compat.v1.train.Saver; "
           "forget_bias 0.5 is a runtime constant, not in the checkpoint")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def tf1_lstm_adam_slots():
    import tensorflow as tf
    fid = "tf1_lstm_adam_slots"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 5, forget_bias=1.0)
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.LSTMCell(5),
                                  "lstm_cell")
    how = ("tf.compat.v1 graph: dynamic_rnn(LSTMCell(5)), random uniform(-0.5,0.5) values assigned, "
           "outputs recorded, then one AdamOptimizer(learning_rate=0.0).minimize(sum of outputs, "
           "global_step) step (weights unchanged, slots .../kernel/Adam, .../kernel/Adam_1, "
           "beta1_power, beta2_power and global_step filled), saved with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay], train=True)


def tf1_gru_custom_scope():
    import tensorflow as tf
    fid = "tf1_gru_custom_scope"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 2)).astype("float32")
    cfg = Cfg("gru", 2, 3, variant="reset_before", bias="x")
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.GRUCell(3),
                                  "gru_cell", native_type="tf1.GRUCell", outer="encoder",
                                  rnn_scope="my_rnn", expect_refused={"pytorch": "gru_variant"})
    how = ("tf.compat.v1 graph: variable_scope('encoder') + dynamic_rnn(GRUCell(3), scope='my_rnn') "
           "(variables encoder/my_rnn/gru_cell/...), random uniform(-0.5,0.5) values assigned, saved "
           "with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def tf1_basic_lstm_pre12_names():
    import tensorflow as tf
    fid = "tf1_basic_lstm_pre12_names"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 4, forget_bias=1.0)
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.BasicLSTMCell(4),
                                  "basic_lstm_cell", native_type="tf1.BasicLSTMCell")
    old = {"kernel": "rnn/basic_lstm_cell/weights", "bias": "rnn/basic_lstm_cell/biases"}
    lay["ckpt_names"] = old
    lay["roles"] = {r: f"rnn/basic_lstm_cell/{r}" for r in ("kernel", "bias")}
    lay["extra"] = {"note": "pre-TF-1.2 variable names: the checkpoint keys are .../weights and "
                            ".../biases; the roles keep the modern names kernel / bias"}

    def saver_vars(gvars):
        return {old[r]: gvars[f"rnn/basic_lstm_cell/{r}"] for r in old}

    how = ("tf.compat.v1 graph: dynamic_rnn(BasicLSTMCell(4)), random uniform(-0.5,0.5) values "
           "assigned, saved with Saver(var_list={'rnn/basic_lstm_cell/weights': kernel, "
           "'rnn/basic_lstm_cell/biases': bias}) to reproduce the names TF < 1.2 wrote")
    return tf1_graph_fixture(fid, how, x, build, [lay], saver_vars=saver_vars)


def tf1_lstm_partitioned():
    import tensorflow as tf
    fid = "tf1_lstm_partitioned"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 4, forget_bias=1.0)
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.LSTMCell(4),
                                  "lstm_cell",
                                  partitioner=tf.compat.v1.fixed_size_partitioner(2))
    lay["extra"] = {"note": "partitioned variables (graph variables kernel/part_0, kernel/part_1, "
                            "bias/part_0, bias/part_1, split on axis 0); the checkpoint stores each "
                            "as one full-shape entry whose BundleEntryProto lists the slices, with "
                            "the slice data under separate encoded keys"}
    how = ("tf.compat.v1 graph: variable_scope(partitioner=fixed_size_partitioner(2)) + "
           "dynamic_rnn(LSTMCell(4)), random uniform(-0.5,0.5) values assigned part by part, saved "
           "with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def tf1_lstm_peephole_proj():
    import tensorflow as tf
    fid = "tf1_lstm_peephole_proj"
    x = seeded(fid + "/x").normal(size=(BATCH, 5, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 5, proj=2, peepholes=True, forget_bias=1.0)
    lay, build = _tf1_single_lstm(fid, "", cfg, x, lambda: tf.compat.v1.nn.rnn_cell.LSTMCell(
        5, use_peepholes=True, num_proj=2), "lstm_cell",
        expect_refused={"pytorch": "peepholes", "keras": "peepholes", "onnx": "projection"})
    how = ("tf.compat.v1 graph: dynamic_rnn(LSTMCell(5, use_peepholes=True, num_proj=2)), random "
           "uniform(-0.5,0.5) values assigned, saved with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def tf1_multi_gru2():
    import tensorflow as tf
    v1 = tf.compat.v1
    fid = "tf1_multi_gru2"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("gru", 3, 4, num_layers=2, variant="reset_before", bias="x")
    canon = draw_canonical(cfg, seeded(fid))
    values, roles = {}, {}
    for k in range(2):
        for r, v in tf1_gru_native(canon, f"l{k}.fw.").items():
            values[f"cell_{k}/{r}"] = v
            roles[f"cell_{k}/{r}"] = f"rnn/multi_rnn_cell/cell_{k}/gru_cell/{r}"

    def build(x_ph):
        cell = v1.nn.rnn_cell.MultiRNNCell([v1.nn.rnn_cell.GRUCell(4) for _ in range(2)])
        out, st = v1.nn.dynamic_rnn(cell, x_ph, dtype=tf.float32)
        return {"outputs": out, "state": st}

    def outputs(r):
        st = r["state"]
        fo = {"outputs": (r["outputs"], "[B, T, H]"),
              **{f"state_cell_{k}": (s, "[B, H]") for k, s in enumerate(st)}}
        return r["outputs"], np.stack(st), None, fo

    lay = {"key": "rnn0", "name": "rnn/multi_rnn_cell", "cfg": cfg, "native_type": "tf1.GRUCell",
           "wrapper": "tf1.MultiRNNCell", "flags": tf1_flags_gru(cfg), "canon": canon,
           "values": values, "roles": roles, "outputs": outputs,
           "expect_refused": {"pytorch": "gru_variant"}}
    how = ("tf.compat.v1 graph: dynamic_rnn(MultiRNNCell([GRUCell(4), GRUCell(4)])), random "
           "uniform(-0.5,0.5) values assigned, saved with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def tf1_bidi_multi_lstm():
    import tensorflow as tf
    v1 = tf.compat.v1
    fid = "tf1_bidi_multi_lstm"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 3, num_layers=2, directions=2, direction="bidirectional",
              independent=True, forget_bias=1.0, bias="x")
    canon = draw_canonical(cfg, seeded(fid))
    values, roles = {}, {}
    for d, k in itertools.product(("fw", "bw"), range(2)):
        for r, v in tf1_lstm_native(canon, cfg, f"l{k}.{d}.").items():
            values[f"{d}/cell_{k}/{r}"] = v
            roles[f"{d}/cell_{k}/{r}"] = f"bidirectional_rnn/{d}/multi_rnn_cell/cell_{k}/lstm_cell/{r}"

    def build(x_ph):
        def stack():
            return v1.nn.rnn_cell.MultiRNNCell([v1.nn.rnn_cell.LSTMCell(3) for _ in range(2)])
        (o_fw, o_bw), (s_fw, s_bw) = v1.nn.bidirectional_dynamic_rnn(stack(), stack(), x_ph,
                                                                     dtype=tf.float32)
        return {"fw": o_fw, "bw": o_bw, "s_fw": s_fw, "s_bw": s_bw}

    def outputs(r):
        y = np.concatenate([r["fw"], r["bw"]], -1)
        order = [(k, d) for k in range(2) for d in ("fw", "bw")]
        h_n = np.stack([r[f"s_{d}"][k].h for k, d in order])
        c_n = np.stack([r[f"s_{d}"][k].c for k, d in order])
        fo = {"outputs_fw": (r["fw"], "[B, T, H] forward outputs (top of the fw stack)"),
              "outputs_bw": (r["bw"], "[B, T, H] backward outputs (top of the bw stack), "
                                      "already in input time order")}
        for k, d in order:
            fo.update(_lstm_state_fo(f"state_{d}_cell_{k}", r[f"s_{d}"][k]))
        return y, h_n, c_n, fo

    flags = tf1_flags_lstm(cfg, stacking="independent per direction: fw cell_1 reads fw cell_0 "
                                         "only, bw cell_1 reads bw cell_0 only; y = concat(top fw, top bw)")
    lay = {"key": "rnn0", "name": "bidirectional_rnn", "cfg": cfg, "native_type": "tf1.LSTMCell",
           "wrapper": "tf1.bidirectional_dynamic_rnn", "flags": flags, "canon": canon,
           "values": values, "roles": roles, "outputs": outputs,
           "expect_refused": {"pytorch": "topology", "onnx": "topology", "keras": "topology"},
           "extra": {"note": "canonical l1.{fw,bw}.W_x has in_k = Hout (each stack reads only its "
                             "own direction), not D*Hout as in an interleaved stack"}}
    how = ("tf.compat.v1 graph: bidirectional_dynamic_rnn(MultiRNNCell([LSTMCell(3)]*2), "
           "MultiRNNCell([LSTMCell(3)]*2)) (two independent 2-layer stacks), random uniform(-0.5,0.5) "
           "values assigned, saved with tf.compat.v1.train.Saver")
    return tf1_graph_fixture(fid, how, x, build, [lay])


def _save_plain_vars(fx, named_values):
    """Write ``{name: array}`` as tf.compat.v1 variables with a Saver; return names as stored."""
    import tensorflow as tf
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        vs = {n: v1.get_variable(n, initializer=tf.constant(a)) for n, a in named_values.items()}
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver(var_list=vs).save(sess, fx.path("model.ckpt"))


def tf1_cudnn_compatible_lstm():
    import tensorflow as tf
    fid = "tf1_cudnn_compatible_lstm"
    x = seeded(fid + "/x").normal(size=(BATCH, 5, 3)).astype("float32")
    cfg = Cfg("lstm", 3, 4, num_layers=2, bias="x")
    canon = draw_canonical(cfg, seeded(fid))
    roles, values = {}, {}
    for k in range(2):
        nat = tf1_lstm_native(canon, cfg, f"l{k}.fw.")
        for r in ("kernel", "bias"):
            roles[f"cell_{k}/{r}"] = f"rnn/multi_rnn_cell/cell_{k}/cudnn_compatible_lstm_cell/{r}"
            values[f"cell_{k}/{r}"] = nat[r]
    how = ("CudnnCompatibleLSTMCell no longer exists in TF 2.21 (contrib removed; only docstrings "
           "mention it), so the checkpoint variables were written under the names "
           "CudnnLSTMSaveable documents (rnn/multi_rnn_cell/cell_<k>/cudnn_compatible_lstm_cell/"
           "{kernel,bias}; kernel [I+H, 4H] gates i,c,f,o, bias = b_W + b_R) as tf.compat.v1 "
           "variables + Saver; truth outputs from tf.raw_ops.BlockLSTM (forget_bias=0, cell_clip=-1, "
           "which is what CudnnCompatibleLSTMCell computes) layer by layer")
    fx = Fixture(fid, "tf1_checkpoint", tf1_framework(), how)
    for name, desc in TF1_FILES:
        fx.file(name, desc)
    fx.input("x", x)
    _save_plain_vars(fx, {roles[r]: values[r] for r in roles})
    seq = np.swapaxes(x, 0, 1)
    hs, cs, fo = [], [], {}
    for k in range(2):
        zeros = np.zeros((BATCH, 4), np.float32)
        res = tf.raw_ops.BlockLSTM(
            seq_len_max=np.int64(seq.shape[0]), x=seq, cs_prev=zeros, h_prev=zeros,
            w=values[f"cell_{k}/kernel"], wci=zeros[0], wcf=zeros[0], wco=zeros[0],
            b=values[f"cell_{k}/bias"], forget_bias=0.0, cell_clip=-1.0, use_peephole=False)
        seq = res.h.numpy()
        hs.append(seq[-1])
        cs.append(res.cs.numpy()[-1])
        fo[f"cell_{k}_h"] = (seq, "[T, B, H] BlockLSTM h")
        fo[f"cell_{k}_cs"] = (res.cs.numpy(), "[T, B, H] BlockLSTM cs")
    native = {r: (tf.train.load_variable(fx.path("model.ckpt"), loc), {"model.ckpt": loc})
              for r, loc in roles.items()}
    flags = {**tf1_flags_lstm(cfg), "forget_bias": 0.0,
             "cudnn_compatible": "CudnnLSTM checkpoint form (bias = b_W + b_R, no forget_bias)"}
    fx.layer("rnn0", "rnn/multi_rnn_cell", cfg, native_type="tf1.CudnnCompatibleLSTMCell",
             wrapper="tf1.MultiRNNCell", flags=flags, canonical=canon, native=native,
             y=np.swapaxes(seq, 0, 1), h_n=np.stack(hs), c_n=np.stack(cs), framework_outputs=fo,
             runtime_constants={"forget_bias": 0.0})
    return fx.finish()


def tf1_cudnn_compatible_gru():
    import tensorflow as tf
    import torch
    fid = "tf1_cudnn_compatible_gru"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("gru", 3, 3, num_layers=2, variant="reset_after")
    canon = draw_canonical(cfg, seeded(fid))
    for k in range(2):  # r, u biases are stored summed: keep them in b_x
        for g in "rz":
            canon[f"l{k}.fw.b_h.{g}"] = np.zeros(3, np.float32)
    roles, values = {}, {}
    base = "rnn/multi_rnn_cell/cell_{k}/cudnn_compatible_gru_cell/"
    for k in range(2):
        p = f"l{k}.fw."
        nat = {"gates/kernel": tf1_gru_native(canon, p)["gates/kernel"],
               "gates/bias": np.concatenate([canon[p + "b_x.r"], canon[p + "b_x.z"]]),
               "candidate/input_projection/kernel": canon[p + "W_x.n"].T,
               "candidate/input_projection/bias": canon[p + "b_x.n"],
               "candidate/hidden_projection/kernel": canon[p + "W_h.n"].T,
               "candidate/hidden_projection/bias": canon[p + "b_h.n"]}
        for r, v in nat.items():
            roles[f"cell_{k}/{r}"] = base.format(k=k) + r
            values[f"cell_{k}/{r}"] = v
    how = ("CudnnCompatibleGRUCell no longer exists in TF 2.21, so the checkpoint variables were "
           "written under the names CudnnGRUSaveable documents (rnn/multi_rnn_cell/cell_<k>/"
           "cudnn_compatible_gru_cell/{gates/{kernel,bias}, candidate/input_projection/{kernel,bias}, "
           "candidate/hidden_projection/{kernel,bias}}) as tf.compat.v1 variables + Saver; truth "
           "outputs from torch.nn.GRU(3, 3, num_layers=2) fed with the weights mapped as "
           "CudnnGRUSaveable._cudnn_to_tf_weights documents (gates/kernel = [w_r|w_u ; r_r|r_u]^T, "
           "input_projection/kernel = w_h^T, hidden_projection/kernel = r_h^T, gates/bias = summed "
           "r,u biases, candidate biases kept apart)")
    fx = Fixture(fid, "tf1_checkpoint", tf1_framework(), how)
    for name, desc in TF1_FILES:
        fx.file(name, desc)
    fx.input("x", x)
    _save_plain_vars(fx, {roles[r]: values[r] for r in roles})
    native = {r: (tf.train.load_variable(fx.path("model.ckpt"), loc), {"model.ckpt": loc})
              for r, loc in roles.items()}
    gru = torch.nn.GRU(3, 3, num_layers=2, batch_first=True)
    with torch.no_grad():
        for k in range(2):
            v = {r.split("/", 1)[1]: native[r][0] for r in native if r.startswith(f"cell_{k}/")}
            gk = v["gates/kernel"]
            n_in = gk.shape[0] - 3
            w_ih = np.concatenate([gk[:n_in, :3].T, gk[:n_in, 3:].T,
                                   v["candidate/input_projection/kernel"].T])
            w_hh = np.concatenate([gk[n_in:, :3].T, gk[n_in:, 3:].T,
                                   v["candidate/hidden_projection/kernel"].T])
            b_ih = np.concatenate([v["gates/bias"], v["candidate/input_projection/bias"]])
            b_hh = np.concatenate([np.zeros(6, np.float32), v["candidate/hidden_projection/bias"]])
            for name, arr in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih),
                              ("bias_hh", b_hh)):
                getattr(gru, f"{name}_l{k}").copy_(torch.from_numpy(np.ascontiguousarray(arr)))
        out, h_n = gru(torch.from_numpy(x))
    out, h_n = out.numpy(), h_n.numpy()
    flags = {**tf1_flags_gru(cfg), "cudnn_compatible": "CudnnGRU checkpoint form (reset after; "
             "gates/bias = b_W + b_R for r, u; candidate biases separate)"}
    fx.layer("rnn0", "rnn/multi_rnn_cell", cfg, native_type="tf1.CudnnCompatibleGRUCell",
             wrapper="tf1.MultiRNNCell", flags=flags, canonical=canon, native=native, y=out,
             h_n=h_n, c_n=None, framework_outputs={"output": (out, "[B, T, H] torch.nn.GRU output"),
                                                   "h_n": (h_n, "[L, B, H] torch.nn.GRU h_n")})
    return fx.finish()


# --------------------------------------------------------------------------- PyTorch


def torch_native(canon, cfg):
    """Canonical -> PyTorch state_dict entries (without the module prefix)."""
    out = {}
    for k, (di, d) in itertools.product(range(cfg.num_layers), enumerate(cfg.dirs)):
        sfx = f"_l{k}" + ("_reverse" if di else "")
        pre = f"l{k}.{d}."
        g = GATES[cfg.cell]
        out[f"weight_ih{sfx}"] = np.concatenate([canon[pre + f"W_x.{c}"] for c in g])
        out[f"weight_hh{sfx}"] = np.concatenate([canon[pre + f"W_h.{c}"] for c in g])
        if cfg.bias != "none":
            out[f"bias_ih{sfx}"] = np.concatenate([canon[pre + f"b_x.{c}"] for c in g])
            out[f"bias_hh{sfx}"] = np.concatenate([canon[pre + f"b_h.{c}"] for c in g])
        if cfg.proj:
            out[f"weight_hr{sfx}"] = canon[pre + "W_proj"]
    return out


def torch_fixture(fid, cfg, make, *, T, batch_first, how, ckpt=False, refused=None):
    import safetensors
    import torch
    from safetensors.torch import save_file

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = make()

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()

    fw = {"name": "pytorch", "version": torch.__version__,
          "safetensors_version": safetensors.__version__}
    fx = Fixture(fid, "pytorch", fw, how, dtype=cfg.dtype)
    fx.file("model.pt", "torch.save(model.state_dict()) (zip archive with pickled OrderedDict)")
    fx.file("model.safetensors", "safetensors.torch.save_file(model.state_dict())")
    model = Model()
    if cfg.dtype == "float64":
        model = model.double()
    canon = draw_canonical(cfg, seeded(fid))
    with torch.no_grad():
        for name, arr in torch_native(canon, cfg).items():
            getattr(model.encoder.rnn, name).copy_(torch.from_numpy(arr))
    x_bm = seeded(fid + "/x").normal(size=(BATCH, T, cfg.input_size)).astype(cfg.dtype)
    x = x_bm if batch_first else np.ascontiguousarray(np.swapaxes(x_bm, 0, 1))
    fx.input("x", x, "batch_major" if batch_first else "time_major")
    model.eval()
    with torch.no_grad():
        out, state = model.encoder.rnn(torch.from_numpy(x))
    h_n, c_n = (state if cfg.cell == "lstm" else (state, None))
    out = out.numpy()
    fo = {"output": (out, "[B, T, D*Hout]" if batch_first else "[T, B, D*Hout]"),
          "h_n": (h_n.numpy(), "[L*D, B, Hout]")}
    if c_n is not None:
        fo["c_n"] = (c_n.numpy(), "[L*D, B, H]")
    sd = model.state_dict()
    torch.save(sd, fx.path("model.pt"))
    save_file(sd, fx.path("model.safetensors"))
    files = ["model.pt", "model.safetensors"]
    if ckpt:
        opt = torch.optim.Adam(model.parameters(), lr=0.0)
        loss = model.encoder.rnn(torch.from_numpy(x))[0].sum()
        loss.backward()
        opt.step()
        torch.save({"model_state_dict": model.state_dict(), "epoch": 3,
                    "optimizer_state_dict": opt.state_dict()}, fx.path("ckpt.pt"))
        fx.file("ckpt.pt", "torch.save({'model_state_dict': sd, 'epoch': 3, 'optimizer_state_dict': "
                           "Adam(lr=0) state after one step}); locations are '/'-separated dict key paths")
    native = {}
    for key, t in sd.items():
        role = key.removeprefix("encoder.rnn.")
        locs = {f: key for f in files}
        if ckpt:
            locs["ckpt.pt"] = f"model_state_dict/{key}"
        native[role] = (t.numpy(), locs)
    flags = {"batch_first": batch_first, "bias": cfg.bias != "none", "activation": "tanh",
             "recurrent_activation": "sigmoid"}
    flags.update({"proj_size": cfg.proj, "use_peepholes": False} if cfg.cell == "lstm"
                 else {"reset_after": True})
    y = out if batch_first else np.swapaxes(out, 0, 1)
    fx.layer("rnn0", "encoder.rnn", cfg,
             native_type="torch.nn.LSTM" if cfg.cell == "lstm" else "torch.nn.GRU", wrapper=None,
             flags=flags, canonical=canon, native=native, y=y, h_n=h_n.numpy(),
             c_n=None if c_n is None else c_n.numpy(), framework_outputs=fo,
             expect_refused=refused)
    return fx.finish()


TORCH_HOW = ("torch nn.Module holding {what} at 'encoder.rnn'; parameters set to random "
             "uniform(-0.5,0.5); state_dict saved with torch.save and safetensors.torch.save_file; "
             "outputs from module forward (eval, no_grad)")


def torch_lstm_no_bias():
    import torch
    cfg = Cfg("lstm", 3, 4, bias="none")
    return torch_fixture("torch_lstm_no_bias", cfg, lambda: torch.nn.LSTM(3, 4, bias=False,
                                                                          batch_first=True),
                         T=5, batch_first=True,
                         how=TORCH_HOW.format(what="LSTM(3, 4, bias=False, batch_first=True)"))


def torch_lstm_proj_2l_bi():
    import torch
    cfg = Cfg("lstm", 3, 4, num_layers=2, directions=2, direction="bidirectional", proj=2)
    return torch_fixture("torch_lstm_proj_2l_bi", cfg,
                         lambda: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2),
                         T=4, batch_first=False, refused={"onnx": "projection", "keras": "projection"},
                         how=TORCH_HOW.format(what="LSTM(3, 4, num_layers=2, bidirectional=True, "
                                                   "proj_size=2)"))


def torch_gru_2l_bi_ckpt():
    import torch
    cfg = Cfg("gru", 2, 3, num_layers=2, directions=2, direction="bidirectional")
    return torch_fixture("torch_gru_2l_bi_ckpt", cfg,
                         lambda: torch.nn.GRU(2, 3, num_layers=2, bidirectional=True,
                                              batch_first=True),
                         T=5, batch_first=True, ckpt=True,
                         how=TORCH_HOW.format(what="GRU(2, 3, num_layers=2, bidirectional=True, "
                                                   "batch_first=True)")
                         + "; plus ckpt.pt, a full training checkpoint dict (model_state_dict, "
                           "epoch, optimizer_state_dict of Adam(lr=0) after one step)")


def torch_gru_float64():
    import torch
    cfg = Cfg("gru", 3, 4, dtype="float64")
    return torch_fixture("torch_gru_float64", cfg,
                         lambda: torch.nn.GRU(3, 4, batch_first=False),
                         T=4, batch_first=False,
                         how=TORCH_HOW.format(what="GRU(3, 4) converted with .double()")
                         + "; all arrays float64 (weights drawn in float64)")


# --------------------------------------------------------------------------- ONNX

def onnx_native(canon, cfg, has_b=True):
    gates = "iofg" if cfg.cell == "lstm" else "zrn"
    pre = [f"l0.{d}." for d in cfg.dirs]
    out = {"W": np.stack([np.concatenate([canon[p + f"W_x.{g}"] for g in gates]) for p in pre]),
           "R": np.stack([np.concatenate([canon[p + f"W_h.{g}"] for g in gates]) for p in pre])}
    if has_b:
        out["B"] = np.stack([np.concatenate([canon[p + f"b_{s}.{g}"] for s in "xh" for g in gates])
                             for p in pre])
    if cfg.peepholes:
        out["P"] = np.stack([np.concatenate([canon[p + f"p.{g}"] for g in "iof"]) for p in pre])
    return out


def onnx_fixture(fid, cfg, attrs, how, *, has_b=True, refused=None, T=4, flags_extra=None):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    canon = draw_canonical(cfg, seeded(fid))
    native = onnx_native(canon, cfg, has_b)
    x = seeded(fid + "/x").normal(size=(T, BATCH, cfg.input_size)).astype("float32")
    op = "LSTM" if cfg.cell == "lstm" else "GRU"
    slots = ["X", "W", "R", "B" if has_b else ""]
    if "P" in native:
        slots += ["", "", "", "P"]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, slots, outs, name="rnn_node", hidden_size=cfg.units,
                            direction=cfg.direction, **attrs)
    D, H = cfg.directions, cfg.units
    graph = helper.make_graph(
        [node], fid, [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, D, BATCH, H]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, BATCH, H])]
        + ([helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [D, BATCH, H])] if op == "LSTM" else []),
        initializer=[numpy_helper.from_array(a, n) for n, a in native.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    fx = Fixture(fid, "onnx", {"name": "onnx", "version": onnx.__version__, "opset": 14,
                               "ir_version": 8, "runtime": "onnxruntime",
                               "runtime_version": ort.__version__}, how)
    fx.file("model.onnx", f"ONNX model, one {op} node, weights as initializers")
    onnx.save(model, fx.path("model.onnx"))
    fx.input("x", x, "time_major")
    sess = ort.InferenceSession(fx.path("model.onnx"), providers=["CPUExecutionProvider"])
    res = dict(zip(outs, sess.run(outs, {"X": x})))
    y = res["Y"].transpose(2, 0, 1, 3).reshape(BATCH, T, D * H)
    fo = {"Y": (res["Y"], "[T, D, B, H] (layout=0)"), "Y_h": (res["Y_h"], "[D, B, H]")}
    if op == "LSTM":
        fo["Y_c"] = (res["Y_c"], "[D, B, H]")
    flags = {"direction": cfg.direction, "layout": 0, "clip": cfg.clip,
             "activations": attrs.get("activations", "default"), "activation": cfg.act,
             "recurrent_activation": _act_name(cfg.rec_act), "has_B": has_b}
    flags.update({"use_peepholes": cfg.peepholes, "input_forget": int(cfg.input_forget),
                  "proj_size": 0} if op == "LSTM" else
                 {"linear_before_reset": attrs.get("linear_before_reset", 0)})
    flags.update(flags_extra or {})
    fx.layer("rnn0", "rnn_node", cfg, native_type=f"onnx.{op}", wrapper=None, flags=flags,
             canonical=canon, native={k: (v, {"model.onnx": k}) for k, v in native.items()},
             y=y, h_n=res["Y_h"], c_n=res.get("Y_c"), framework_outputs=fo,
             expect_refused=refused,
             extra={"onnx_node_inputs": list(node.input),
                    "onnx_node_attributes": {a.name: _jsonable(helper.get_attribute_value(a))
                                             for a in node.attribute}})
    return fx.finish()


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [_jsonable(i) for i in v]
    return v


ONNX_HOW = ("onnx.helper single-node graph: {what}, opset 14, random uniform(-0.5,0.5) initializers; "
            "outputs from onnxruntime CPUExecutionProvider")


def onnx_lstm_clip():
    cfg = Cfg("lstm", 3, 4, clip=0.5)
    return onnx_fixture("onnx_lstm_clip", cfg, {"clip": 0.5},
                        ONNX_HOW.format(what="LSTM(hidden_size=4, clip=0.5)"),
                        refused={t: "clip" for t in ("tf1", "keras", "pytorch")})


def onnx_lstm_hard_sigmoid():
    cfg = Cfg("lstm", 3, 4, rec_act="hard_sigmoid_k2")
    return onnx_fixture("onnx_lstm_hard_sigmoid", cfg,
                        {"activations": ["HardSigmoid", "Tanh", "Tanh"]},
                        ONNX_HOW.format(what="LSTM(hidden_size=4, activations=[HardSigmoid, Tanh, "
                                             "Tanh]) with HardSigmoid's default alpha=0.2, beta=0.5"),
                        refused={"pytorch": "activation", "tf1": "activation"},
                        flags_extra={"hard_sigmoid_formula": HARD_SIGMOID_K2,
                                     "activation_alpha": "default (HardSigmoid 0.2)",
                                     "activation_beta": "default (HardSigmoid 0.5)"})


def onnx_gru_bidirectional_lbr1():
    cfg = Cfg("gru", 3, 4, directions=2, direction="bidirectional", variant="reset_after")
    return onnx_fixture("onnx_gru_bidirectional_lbr1", cfg, {"linear_before_reset": 1},
                        ONNX_HOW.format(what="GRU(hidden_size=4, direction=bidirectional, "
                                             "linear_before_reset=1)"), T=5)


def onnx_lstm_no_bias():
    cfg = Cfg("lstm", 2, 3, bias="none")
    return onnx_fixture("onnx_lstm_no_bias", cfg, {}, ONNX_HOW.format(
        what="LSTM(hidden_size=3) without the optional B input (biases are zero)"), has_b=False)


def onnx_lstm_bidirectional_peephole():
    cfg = Cfg("lstm", 3, 3, directions=2, direction="bidirectional", peepholes=True)
    return onnx_fixture("onnx_lstm_bidirectional_peephole", cfg, {},
                        ONNX_HOW.format(what="LSTM(hidden_size=3, direction=bidirectional) with "
                                             "peepholes P [2, 3H] (order i, o, f)"),
                        refused={"pytorch": "peepholes", "keras": "peepholes"})


def onnx_lstm_input_forget():
    cfg = Cfg("lstm", 3, 4, input_forget=True)
    return onnx_fixture("onnx_lstm_input_forget", cfg, {"input_forget": 1},
                        ONNX_HOW.format(what="LSTM(hidden_size=4, input_forget=1) (coupled gates: "
                                             "f = 1 - i; the stored f weights are unused)"),
                        refused={t: "input_forget" for t in ("tf1", "keras", "pytorch")})


# --------------------------------------------------------------------------- unsupported layers, old names

def torch_rnn_unsupported():
    """nn.RNN and nn.RNNCell next to an nn.GRU: the Elman modules are listed as unsupported."""
    import safetensors
    import torch
    from safetensors.torch import save_file
    fid = "torch_rnn_unsupported"
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"rnn": torch.nn.RNN(3, 4, num_layers=2, bidirectional=True),
                                 "cell": torch.nn.RNNCell(3, 2, nonlinearity="relu"),
                                 "gru": torch.nn.GRU(8, 3)})
    fw = {"name": "pytorch", "version": torch.__version__, "safetensors_version": safetensors.__version__}
    how = ("torch nn.ModuleDict {rnn: RNN(3, 4, num_layers=2, bidirectional=True), cell: "
           "RNNCell(3, 2, nonlinearity='relu'), gru: GRU(8, 3)} with default initial weights; "
           "state_dict saved with torch.save and safetensors.torch.save_file")
    fx = Fixture(fid, "pytorch", fw, how)
    fx.file("model.pt", "torch.save(model.state_dict())")
    fx.file("model.safetensors", "safetensors.torch.save_file(model.state_dict())")
    torch.save(model.state_dict(), fx.path("model.pt"))
    save_file(model.state_dict(), fx.path("model.safetensors"))
    files = ["model.pt", "model.safetensors"]
    return fx.finish(
        unsupported_layers=[{"name": "rnn", "native_type": "torch.nn.RNN", "kind": "torch.nn.RNN", "in_files": files},
                            {"name": "cell", "native_type": "torch.nn.RNNCell", "kind": "torch.nn.RNNCell",
                             "in_files": files}],
        other_recurrent_layers=[{"name": "gru", "native_type": "torch.nn.GRU", "in_files": files,
                                 "units": 3, "input_size": 8}])


LAYER_NORM_BASIC_LSTM = ("kernel", "input/gamma", "input/beta", "transform/gamma", "transform/beta",
                         "forget/gamma", "forget/beta", "output/gamma", "output/beta",
                         "state/gamma", "state/beta")


def tf1_basic_rnn_layer_norm():
    """TF1 cells rnnbridge does not convert, in a real Saver checkpoint."""
    import tensorflow as tf
    v1 = tf.compat.v1
    fid = "tf1_basic_rnn_layer_norm"
    how = ("tf.compat.v1 graph: dynamic_rnn(BasicRNNCell(4)) (scope rnn), dynamic_rnn(MultiRNNCell("
           "[LSTMCell(3), BasicRNNCell(3)]), scope='mixed') and dynamic_rnn(GRUCell(2), scope='gru') "
           "on x [2, 4, 3], default initialisers, saved with tf.compat.v1.train.Saver. "
           "LayerNormBasicLSTMCell (tf.contrib, gone in TF 2.21) could not be built: its variables "
           "were added as plain variables under the names its source writes (ln/rnn/"
           "layer_norm_basic_lstm_cell/{kernel [I+H, 4H], input|transform|forget|output|state/"
           "gamma|beta [H]}; no bias with layer_norm=True) to the same Saver checkpoint")
    fx = Fixture(fid, "tf1_checkpoint", tf1_framework(), how)
    for name, desc in TF1_FILES:
        fx.file(name, desc)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, (BATCH, 4, 3))
        cells = v1.nn.rnn_cell
        v1.nn.dynamic_rnn(cells.BasicRNNCell(4), x, dtype=tf.float32)
        v1.nn.dynamic_rnn(cells.MultiRNNCell([cells.LSTMCell(3), cells.BasicRNNCell(3)]), x,
                          dtype=tf.float32, scope="mixed")
        v1.nn.dynamic_rnn(cells.GRUCell(2), x, dtype=tf.float32, scope="gru")
        for name in LAYER_NORM_BASIC_LSTM:
            shape = (3 + 5, 4 * 5) if name == "kernel" else (5,)
            v1.get_variable(f"ln/rnn/layer_norm_basic_lstm_cell/{name}", shape)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, fx.path("model.ckpt"))
    files = ["model.ckpt"]
    return fx.finish(
        unsupported_layers=[
            {"name": "rnn/basic_rnn_cell", "native_type": "tf1.BasicRNNCell", "kind": "BasicRNNCell", "in_files": files},
            {"name": "mixed/multi_rnn_cell", "native_type": "tf1.BasicRNNCell", "wrapper": "tf1.MultiRNNCell",
             "kind": "BasicRNNCell", "in_files": files},
            {"name": "ln/rnn/layer_norm_basic_lstm_cell", "native_type": "tf1.LayerNormBasicLSTMCell",
             "kind": "LayerNormBasicLSTMCell", "in_files": files, "synthetic_names": True}],
        other_recurrent_layers=[{"name": "gru/gru_cell", "native_type": "tf1.GRUCell", "in_files": files,
                                 "units": 2, "input_size": 3}])


def tf1_gru_block_cell_v1_names():
    """contrib GRUBlockCell's own variable names (w_ru, b_ru, w_c, b_c), outputs from its op."""
    import tensorflow as tf
    fid = "tf1_gru_block_cell_v1_names"
    x = seeded(fid + "/x").normal(size=(BATCH, 4, 3)).astype("float32")
    cfg = Cfg("gru", 3, 4, variant="reset_before", bias="x")
    canon = draw_canonical(cfg, seeded(fid))
    nat = tf1_gru_native(canon)
    names = {"w_ru": "gates/kernel", "b_ru": "gates/bias", "w_c": "candidate/kernel", "b_c": "candidate/bias"}
    roles = {r: f"rnn/gru_cell/{r}" for r in names}
    values = {r: nat[names[r]] for r in names}
    how = ("tf.contrib.rnn.GRUBlockCell no longer exists in TF 2.21: its variables were written under "
           "the names it used (rnn/gru_cell/{w_ru [I+H, 2H], b_ru [2H], w_c [I+H, H], b_c [H]}) as "
           "tf.compat.v1 variables + Saver; truth outputs from tf.raw_ops.GRUBlockCell (the op the "
           "cell ran) stepped over time")
    fx = Fixture(fid, "tf1_checkpoint", tf1_framework(), how)
    for name, desc in TF1_FILES:
        fx.file(name, desc)
    fx.input("x", x)
    _save_plain_vars(fx, {roles[r]: values[r] for r in roles})
    h, ys = np.zeros((BATCH, 4), np.float32), []
    for t in range(x.shape[1]):
        h = tf.raw_ops.GRUBlockCell(x=x[:, t], h_prev=h, **values).h.numpy()
        ys.append(h)
    y = np.stack(ys, 1)
    native = {names[r]: (tf.train.load_variable(fx.path("model.ckpt"), loc), {"model.ckpt": loc})
              for r, loc in roles.items()}
    fx.layer("rnn0", "rnn/gru_cell", cfg, native_type="tf1.GRUCell", wrapper=None,
             flags={**tf1_flags_gru(cfg), "cell_class": "tf.contrib.rnn.GRUBlockCell (GRUCell maths)",
                    "variable_names": "GRUBlockCell v1 (w_ru, b_ru, w_c, b_c)"},
             canonical=canon, native=native, y=y, h_n=h[None], c_n=None,
             framework_outputs={"h": (y, "[B, T, H] tf.raw_ops.GRUBlockCell h per step")},
             expect_refused={"pytorch": "gru_variant"},
             extra={"note": "checkpoint keys are GRUBlockCell's w_ru, b_ru, w_c, b_c; the roles use "
                            "GRUCell's names (gates/kernel, gates/bias, candidate/kernel, candidate/bias)"})
    return fx.finish()


# --------------------------------------------------------------------------- driver

GROUPS = {
    "keras2": [k2_lstm_go_backwards, k2_lstm_no_bias, k2_lstm_hard_sigmoid, k2_lstm_relu,
               k2_bigru_reset_before, k2_stacked_bilstm, k2_cudnn_lstm, k2_cudnn_gru,
               k2_tf_ckpt_lstm_bigru, k2_savedmodel_lstm_bigru, k2_simple_rnn_convlstm,
               k2_standalone_names_hard_sigmoid],
    "tf1": [tf1_lstm_forget_bias_half, tf1_lstm_adam_slots, tf1_gru_custom_scope,
            tf1_basic_lstm_pre12_names, tf1_lstm_partitioned, tf1_lstm_peephole_proj,
            tf1_multi_gru2, tf1_bidi_multi_lstm, tf1_cudnn_compatible_lstm,
            tf1_cudnn_compatible_gru, tf1_basic_rnn_layer_norm, tf1_gru_block_cell_v1_names],
    "torch": [torch_lstm_no_bias, torch_lstm_proj_2l_bi, torch_gru_2l_bi_ckpt, torch_gru_float64,
              torch_rnn_unsupported],
    "onnx": [onnx_lstm_clip, onnx_lstm_hard_sigmoid, onnx_gru_bidirectional_lbr1,
             onnx_lstm_no_bias, onnx_lstm_bidirectional_peephole, onnx_lstm_input_forget],
    "keras3": [k3_gru_go_backwards, k3_lstm_hard_sigmoid],
}
ORDER = [f.__name__ for fns in GROUPS.values() for f in fns]
GROUP_OF = {f.__name__: g for g, fns in GROUPS.items() for f in fns}


def child_env(group):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
    env.pop("TF_USE_LEGACY_KERAS", None)
    if group in ("keras2", "tf1"):
        env["TF_USE_LEGACY_KERAS"] = "1"
    if group == "keras3":
        env["KERAS_BACKEND"] = "tensorflow"
    return env


def run_child(group, ids, out_json):
    """Child process: build ``ids`` of one group and dump their manifest entries."""
    import warnings
    warnings.filterwarnings("ignore")
    np.random.seed(0)
    fns = {f.__name__: f for f in GROUPS[group]}
    entries = [fns[i]() for i in ids]
    Path(out_json).write_text(json.dumps(entries))


def generated_with():
    v = versions("tensorflow", "tf_keras", "keras", "torch", "safetensors", "onnx", "onnxruntime",
                 "numpy", "h5py")
    return {"python": sys.version.split()[0], **v,
            "onnx_opset": 14, "onnx_ir_version": 8, "keras3_backend": "tensorflow"}


def write_manifest(entries):
    shared = json.loads(SHARED_MANIFEST.read_text()) if SHARED_MANIFEST.exists() else {}
    conventions = dict(shared.get("conventions", {}))
    conventions["expect_refused"] = (
        "optional per-layer {target: reason}: converting this layer to target (tf1, keras, pytorch, "
        "onnx) must be refused; reasons: gru_variant, peepholes, projection, clip, activation, "
        "reverse_only, topology, input_forget")
    conventions["pt_locations"] = ("in a .pt holding nested dicts (ckpt.pt) the location is the "
                                   "'/'-separated key path, e.g. model_state_dict/encoder.rnn.weight_ih_l0")
    conventions["reverse_only"] = ("a single-direction layer with direction 'reverse' (Keras "
                                   "go_backwards=True) keeps its canonical keys under l0.fw; its y "
                                   "is aligned to input time like a backward direction")
    manifest = {
        "format_version": shared.get("format_version", 1),
        "description": "Extra LSTM/GRU fixtures written by real frameworks (tools/make_fixtures.py); "
                       "same schema as /work/shared/fixtures/manifest.json",
        "generated_with": generated_with(),
        "conventions": conventions,
        "fixtures": entries,
        "n_fixtures": len(entries),
        "n_recurrent_layers": sum(len(e["layers"]) for e in entries),
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


README_HEAD = """\
# Extra LSTM / GRU fixtures (generated)

Written by `tools/make_fixtures.py` with real frameworks; **CI never runs the generator**,
tests only read these files (NumPy + h5py). Same schema as `/work/shared/fixtures`
(read its README for the layouts, roles and canonical form): one folder per fixture,
`manifest.json` (`format_version` {format_version}) describing every file, input, output
and stored array, and per layer `<key>.native.npz`, `<key>.canonical.npz`, `<key>.y.npy`,
`<key>.h_n.npy`, `<key>.c_n.npy` (LSTM) and `<key>.framework_outputs.npz`.

## How they were made

Per fixture: per-gate canonical weights drawn uniform(-0.5, 0.5) (seeded from the fixture
id; float32 except `torch_gru_float64`), placed into the framework's layer with its own API
(`set_weights`, `state_dict`, `tf.compat.v1` variables + `Saver`, ONNX initializers), the
framework run on a random normal input (batch 2, T 3-6) and its outputs recorded. The
generator then (1) re-runs a NumPy forward from the canonical arrays and requires it to
match the framework's `y`, `h_n`, `c_n` to <= 1e-5 (`self_check.canonical_numpy_max_abs_err`),
(2) checks that typical mistakes move the outputs clearly (`self_check.mutations`, all >
1e-4: swapped gates, dropped biases, transposed `W_h`, flipped GRU variant, swapped
directions, dropped forget_bias / clip / input_forget, wrong activation or hard-sigmoid
formula), and (3) reads every `weights[role].in_files` location back from the written
file and compares it bit for bit with `<key>.native.npz`.

Versions used: {versions}.

## Regenerating

```
python -m venv /tmp/fxenv
/tmp/fxenv/bin/pip install '.[fixtures]'    # or the pinned versions above
/tmp/fxenv/bin/python tools/make_fixtures.py            # all fixtures
/tmp/fxenv/bin/python tools/make_fixtures.py ID [ID...] # some (manifest entries merged)
/tmp/fxenv/bin/python tools/make_fixtures.py --list
```

Each framework family runs in its own child process (`TF_USE_LEGACY_KERAS=1` for Keras 2
and TF1, Keras 3 on the TensorFlow backend). Arrays are reproducible; `m.keras` (zip
timestamps) and `model.ckpt.meta` are not byte-reproducible.

## Additions to the shared schema

- `layers[].expect_refused` (optional): `{{target: reason}}` with target in `tf1`, `keras`,
  `pytorch`, `onnx`; converting the layer to that target must be refused. Reasons:
  `gru_variant`, `peepholes`, `projection`, `clip`, `activation`, `reverse_only`,
  `topology`, `input_forget`. Only clear-cut cases are listed (one reason per target);
  a target absent from the map is expected to convert.
- Reverse-only layers (Keras `go_backwards=True`): `directions` 1, `direction`
  `"reverse"`, canonical keys under `l0.fw`; `y` is aligned to input time like the
  shared fixtures' backward directions (`y[:, t]` is the output after reading `x_t`), while
  `framework_outputs.sequence` keeps Keras' own reversed order. `h_n` is the state after
  reading `x_0`.
- `flags.hard_sigmoid_formula`: Keras 2 / ONNX default `clip(0.2*x + 0.5, 0, 1)`,
  Keras 3 `clip(x/6 + 0.5, 0, 1)`.
- `native_type` values `keras.CuDNNLSTM`, `keras.CuDNNGRU`, `tf1.CudnnCompatibleLSTMCell`,
  `tf1.CudnnCompatibleGRUCell`.
- Locations in a `.pt` that holds nested dicts (`ckpt.pt`) are `/`-separated key paths,
  e.g. `model_state_dict/encoder.rnn.weight_ih_l0`.
- `checkpoint_other_variables` (fixture level, TF1): checkpoint entries that belong to no
  recurrent layer (Adam slots, `beta1_power`, `global_step`).
- `tf1_bidi_multi_lstm` has two *independent* stacks (`flags.stacking`): canonical
  `l1.{{fw,bw}}.W_x` is `[H, Hout]` because each direction's layer 1 reads only its own
  layer 0; `y` = concat(top fw, top bw); `h_n` index `layer*2 + direction` as usual.
- `tf1_lstm_partitioned`: the graph variables are `kernel/part_0`, `kernel/part_1`
  (and `bias/part_*`); in the checkpoint each is one full-shape entry
  (`rnn/lstm_cell/kernel`) whose `BundleEntryProto.slices` lists the parts, the slice data
  living under separate binary-encoded keys. The recorded location is the full name.
- `tf1_basic_lstm_pre12_names`: checkpoint keys `.../weights` and `.../biases`
  (TF < 1.2 spelling); roles keep the modern `kernel` / `bias`.
- `unsupported_layers` (fixture level): recurrent layers rnnbridge must list as unsupported
  (`name` as rnnbridge reports it, `kind`, `native_type`, `in_files`);
  `other_recurrent_layers`: convertible layers in the same files without recorded truth
  (`name`, `units`, `input_size`). Such fixtures may have `"layers": []`.
- `k2_savedmodel_lstm_bigru`: a Keras 2 SavedModel keys cell weights by their index in
  `model.variables` (`variables/<k>/...`), and only the bundle's
  `_CHECKPOINTABLE_OBJECT_GRAPH` (also copied to `object_graph.pb`) relates them to layers;
  the checkpoint reader decodes that entry into `attrs["object_graph"]`.
- `k2_standalone_names_hard_sigmoid` is a **synthetic layout** (real tf_keras weights and
  outputs, HDF5 rewritten with h5py to standalone Keras 2.x names, `lstm_1/kernel:0`);
  `tf1_gru_block_cell_v1_names`, `tf1_basic_rnn_layer_norm` (LayerNormBasicLSTMCell part)
  use documented names of classes TF 2.21 no longer has, written by a real Saver.

## Fixtures

| id | source | layers | how made |
|----|--------|--------|----------|
"""


def write_readme(entries, generated):
    rows = []
    for e in entries:
        lays = "; ".join(
            f"{l['key']}: {l['native_type']}{' in ' + l['wrapper'] if l['wrapper'] else ''} "
            f"{l['direction']} L{l['num_layers']} H{l['units']}"
            + (", refused: " + ", ".join(f"{t} {r}" for t, r in l["expect_refused"].items())
               if l.get("expect_refused") else "")
            for l in e["layers"])
        rows.append(f"| `{e['id']}` | {e['source']} | {lays} | {e['how_made']} |")
    vers = ", ".join(f"{k} {v}" for k, v in generated.items() if v)
    text = README_HEAD.format(format_version=1, versions=vers) + "\n".join(rows) + "\n"
    (OUT / "README.md").write_text(text)


def print_table(entries):
    print(f"{'fixture':34} {'layer':5} {'cell':4} {'self-check err':>14} {'min mutation':>12} "
          f"{'bytes':>7}  expect_refused")
    for e in entries:
        for lay in e["layers"]:
            sc = lay["self_check"]
            print(f"{e['id']:34} {lay['key']:5} {lay['cell']:4} "
                  f"{sc['canonical_numpy_max_abs_err']:14.2e} {sc['mutation_min_err']:12.3g} "
                  f"{e['bytes']:7d}  {lay.get('expect_refused', '')}")
    total = sum(e["bytes"] for e in entries)
    print(f"{len(entries)} fixtures, {total / 1e6:.2f} MB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", nargs="*", help="fixture ids (default: all)")
    ap.add_argument("--list", action="store_true", help="list fixture ids and exit")
    ap.add_argument("--exactness", action="store_true", help="write tests/fixtures/exactness (issue 10) and exit")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return run_child(args.child, args.ids, args.out)
    if args.exactness:  # self-contained: tools/exactness_fixtures.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        return __import__("exactness_fixtures").main(args.ids)
    if args.list:
        print("\n".join(f"{GROUP_OF[i]:7} {i}" for i in ORDER))
        return 0
    unknown = set(args.ids) - set(ORDER)
    if unknown:
        ap.error(f"unknown fixture ids: {sorted(unknown)}")
    ids = args.ids or ORDER
    built = {}
    with tempfile.TemporaryDirectory() as tmp:
        for group in GROUPS:
            todo = [i for i in ORDER if i in ids and GROUP_OF[i] == group]
            if not todo:
                continue
            out = Path(tmp) / f"{group}.json"
            subprocess.run([sys.executable, __file__, "--child", group, "--out", str(out), *todo],
                           env=child_env(group), check=True)
            built.update({e["id"]: e for e in json.loads(out.read_text())})
    old = {}
    if args.ids and (OUT / "manifest.json").exists():
        old = {e["id"]: e for e in json.loads((OUT / "manifest.json").read_text())["fixtures"]}
    merged = {**old, **built}
    entries = [merged[i] for i in ORDER if i in merged]
    write_manifest(entries)
    write_readme(entries, generated_with())
    print_table(entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
