"""The test suite's one view of the real fixtures (files written by the frameworks).

Reads ``tests/fixtures/shared/manifest.json`` (the committed copy of the project's shared
fixtures), ``tests/fixtures/manifest.json`` (the fixtures generated for this repository, same
schema) and, where a checkout has them beside it, ``../shared/fixtures/manifest.json``, whose
fixtures add coverage when they are not in the committed copy (same id: the copy wins). So the
suite runs from the repository alone, and a newer shared set only adds tests. Every recurrent
layer becomes a ``FixtureLayer``: its native tensors as a ``NativeLayer``, its input, initial states and the
framework's recorded outputs, time-major.

The mapping from the manifest's ``native_type``, ``flags`` and roles to a convention and
its tensors is written here on purpose, independently of the service's own discovery, so
that the two can check each other.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.engine import conventions as conv
from rnnbridge.engine.conventions import CONVENTIONS, Convention
from rnnbridge.engine.model import LayerConfig, NativeLayer

LOCAL_FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the committed copy of the shared fixtures (same folders and manifest as ``../shared/fixtures``)
SHARED_FIXTURES = LOCAL_FIXTURES / "shared"
#: the project's shared fixtures beside the checkout, where present: extra coverage only
BESIDE_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
MANIFESTS = tuple(root / "manifest.json" for root in (SHARED_FIXTURES, LOCAL_FIXTURES, BESIDE_FIXTURES))


def _shared_manifest() -> list[dict]:
    path = SHARED_FIXTURES / "manifest.json"
    return json.loads(path.read_text())["fixtures"] if path.is_file() else []


#: the shared manifest's fixture entries ([] where the shared fixtures are not beside the checkout)
SHARED_MANIFEST = _shared_manifest()
needs_shared_fixtures = pytest.mark.skipif(not SHARED_MANIFEST, reason=f"shared fixtures not found at {SHARED_FIXTURES}")

_NATIVE_TYPES = {
    "tf1.BasicLSTMCell": "tf1.lstm",
    "tf1.LSTMCell": "tf1.lstm",
    "tf1.LSTMBlockCell": "tf1.lstm",
    "tf1.GRUCell": "tf1.gru",
    "tf1.CudnnCompatibleLSTMCell": "tf1.cudnn_lstm",
    "tf1.CudnnCompatibleGRUCell": "tf1.cudnn_gru",
    "keras.LSTM": "keras.lstm",
    "keras.CuDNNLSTM": "keras.cudnn_lstm",
    "keras.CuDNNGRU": "keras.cudnn_gru",
    "torch.nn.LSTM": "pytorch.lstm",
    "torch.nn.GRU": "pytorch.gru",
    "torch.nn.LSTMCell": "pytorch.lstm_cell",
    "torch.nn.GRUCell": "pytorch.gru_cell",
    "onnx.LSTM": "onnx.lstm",
    "mlx.nn.LSTM": "mlx.lstm",
    "mlx.nn.GRU": "mlx.gru",
    "haiku.LSTM": "haiku.lstm",
    "haiku.GRU": "haiku.gru",
    "paddle.nn.LSTM": "paddle.lstm",
    "paddle.nn.GRU": "paddle.gru",
    "flax.linen.LSTMCell": "flax.lstm",
    "flax.linen.OptimizedLSTMCell": "flax.lstm",
    "flax.linen.GRUCell": "flax.gru",
    "flax.nnx.LSTMCell": "flax.nnx_lstm",
    "flax.nnx.OptimizedLSTMCell": "flax.nnx_optimized_lstm",
    "flax.nnx.GRUCell": "flax.nnx_gru",
    "equinox.nn.LSTMCell": "equinox.lstm",
    "equinox.nn.GRUCell": "equinox.gru",
    "openvino.LSTMSequence": "openvino.lstm",
}
#: the framework (``source=``) of each manifest ``source`` whose files include bare arrays (npz)
BARE_ARRAY_SOURCES = {"mlx_weights": "mlx", "haiku_params": "haiku"}
_ONNX_ACTIVATIONS = {"Sigmoid": conv.SIGMOID, "Tanh": conv.TANH, "Relu": conv.RELU}
_ONNX_DIRECTIONS = {
    "forward": ("forward",),
    "reverse": ("backward",),
    "bidirectional": ("forward", "backward"),
}
_TORCH_ROLE = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)(?:_l(\d+))?(_reverse)?")
_PADDLE_ROLE = re.compile(r"(\d+)\.cell(_fw|_bw)?\.(\w+)")
_CANONICAL_KEY = re.compile(r"l(\d+)\.(fw|bw)\.(.+)")


@dataclass
class FixtureLayer:
    """One recurrent layer of one fixture, with everything a test compares against."""

    id: str
    fixture: dict
    layer: dict
    dir: Path
    native: NativeLayer
    x: np.ndarray
    h0: np.ndarray | None
    c0: np.ndarray | None
    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    canonical: dict[tuple[int, str, str], np.ndarray] = field(repr=False)

    def files(self) -> list[Path]:
        """The fixture's weight files (for a TF checkpoint, every file of the bundle)."""
        return [self.dir / f["name"] for f in self.fixture["files"]]


def convention_key(layer: dict) -> str:
    """The convention of a manifest layer entry; KeyError for a native type we do not map."""
    native, flags = layer["native_type"], layer["flags"]
    if native == "keras.GRU":
        return "keras.gru_reset_after" if flags.get("reset_after") else "keras.gru"
    if native == "onnx.GRU":
        return "onnx.gru_lbr" if flags.get("linear_before_reset") else "onnx.gru"
    if native == "openvino.GRUSequence":
        return "openvino.gru_lbr" if flags.get("linear_before_reset") else "openvino.gru"
    return _NATIVE_TYPES[native]


def _keras_name(name: str, fixture: dict) -> str:
    if name != "hard_sigmoid":
        return name
    return conv.HARD_SIGMOID_KERAS3 if fixture["source"] == "keras3" else conv.HARD_SIGMOID_KERAS2


def _onnx_activations(flags: dict, count: int) -> tuple[str, ...]:
    """ONNX ``activations`` (+ ``activation_alpha`` / ``_beta``, consumed in order)."""
    names = flags.get("activations")
    if not isinstance(names, list):
        return conv.LSTM_DEFAULT_ACTIVATIONS if count == 3 else conv.GRU_DEFAULT_ACTIVATIONS
    alphas, betas = (flags.get(k) for k in ("activation_alpha", "activation_beta"))
    alphas, betas = (list(v) if isinstance(v, list) else [] for v in (alphas, betas))
    out = []
    for name in names[:count]:
        if name == "HardSigmoid":
            alpha = alphas.pop(0) if alphas else 0.2
            beta = betas.pop(0) if betas else 0.5
            alpha, beta = (np.format_float_positional(np.float32(v)) for v in (alpha, beta))
            out.append(f"hard_sigmoid({alpha},{beta})")
        else:
            out.append(_ONNX_ACTIVATIONS[name])
    return tuple(out)


def _config(fixture: dict, layer: dict, convention: Convention) -> LayerConfig:
    flags, count = layer["flags"], 3 if convention.cell == "lstm" else 2
    if convention.framework == "onnx":
        activations = _onnx_activations(flags, count)
    elif convention.framework == "openvino":
        activations = tuple(flags["activations"][:count])
    else:
        gate = _keras_name(flags.get("recurrent_activation", conv.SIGMOID), fixture)
        cell = _keras_name(flags.get("activation", conv.TANH), fixture)
        activations = (gate, cell, cell)[:count]
    return LayerConfig(
        activations=activations,
        forget_bias=float((layer.get("runtime_constants") or {}).get("forget_bias", 0.0)),
        clip=flags.get("clip") or None,  # OpenVINO writes clip=0 for none
        input_forget=bool(flags.get("input_forget", 0)),
        independent_directions=layer.get("wrapper") == "tf1.bidirectional_dynamic_rnn",
    )


def _role_cell(framework: str, role: str, default: str) -> tuple[tuple[int, str], str]:
    """``((level, direction), tensor name)`` of a native.npz role."""
    if framework == "paddle":
        match = _PADDLE_ROLE.fullmatch(role)
        if match is None:
            raise KeyError(f"unexpected Paddle role {role!r}")
        return (int(match[1]), "backward" if match[2] == "_bw" else "forward"), match[3]
    if framework == "pytorch":
        match = _TORCH_ROLE.fullmatch(role)
        if match is None:
            raise KeyError(f"unexpected PyTorch role {role!r}")
        return (int(match[2] or 0), "backward" if match[3] else "forward"), match[1]
    parts, level, direction = role.split("/"), 0, default
    while parts[0] in ("fw", "bw", "forward", "backward") or re.fullmatch(r"cell_\d+", parts[0]):
        head = parts.pop(0)
        if head.startswith("cell_"):
            level = int(head[5:])
        else:
            direction = "forward" if head in ("fw", "forward") else "backward"
    return (level, direction), "/".join(parts)


def _cells(convention: Convention, layer: dict, arrays: dict[str, np.ndarray]) -> dict:
    if convention.framework in ("onnx", "openvino"):
        directions = _ONNX_DIRECTIONS[layer["flags"].get("direction", layer["direction"])]
        cells = {(0, d): {role: a[k] for role, a in arrays.items()} for k, d in enumerate(directions)}
        if convention.key == "openvino.gru_lbr":  # B [4H] = z, r, Wb_h | Rb_h
            for cell in cells.values():
                units = cell["B"].shape[0] // 4
                cell["B"], cell["Rb_h"] = cell["B"][: 3 * units], cell["B"][3 * units :]
        return cells
    default = "backward" if layer["flags"].get("go_backwards") else "forward"
    cells: dict = defaultdict(dict)
    for role, array in arrays.items():
        key, name = _role_cell(convention.framework, role, default)
        cells[key][name] = array
    return dict(cells)


def _canonical_name(key: str) -> tuple[int, str, str]:
    level, direction, name = _CANONICAL_KEY.fullmatch(key).groups()
    name = "p_" + name[2:] if name.startswith("p.") else name.replace(".", "")
    return int(level), "forward" if direction == "fw" else "backward", name


def _load(folder: Path, name: str | None) -> np.ndarray | None:
    return None if name is None else np.load(folder / name)


def _time_major(a: np.ndarray, layout: str) -> np.ndarray:
    return a if layout.startswith(("time_major", "[T")) else a.transpose(1, 0, 2)


def _fixture_layer(root: Path, fixture: dict, layer: dict) -> FixtureLayer:
    folder = root / fixture["dir"]
    convention = CONVENTIONS[convention_key(layer)]
    with np.load(folder / layer["native_npz"]) as npz:
        arrays = dict(npz)
    native = NativeLayer(
        layer["name"], convention, _config(fixture, layer, convention), _cells(convention, layer, arrays)
    )
    source = fixture["inputs"][layer["input"]["ref"]]
    state, out = layer["initial_state"], layer["outputs"]
    with np.load(folder / layer["canonical_npz"]) as npz:
        canonical = {_canonical_name(k): v for k, v in npz.items()}
    return FixtureLayer(
        id=f"{fixture['id']}:{layer['key']}",
        fixture=fixture,
        layer=layer,
        dir=folder,
        native=native,
        x=_time_major(np.load(folder / source["file"]), source["layout"]),
        h0=_load(folder, state.get("h0")),
        c0=_load(folder, state.get("c0")),
        y=_time_major(np.load(folder / out["y"]["file"]), out["y"]["layout"]),
        h_n=np.load(folder / out["h_n"]["file"]),
        c_n=_load(folder, out.get("c_n", {}).get("file")),
        canonical=canonical,
    )


def _index() -> tuple[list[FixtureLayer], dict[str, str]]:
    layers, unmapped, seen = [], {}, set()
    for manifest in MANIFESTS:
        if not manifest.is_file():
            continue
        for fixture in json.loads(manifest.read_text())["fixtures"]:
            if fixture["id"] in seen:
                continue
            seen.add(fixture["id"])
            for layer in fixture["layers"]:
                try:
                    layers.append(_fixture_layer(manifest.parent, fixture, layer))
                except KeyError as error:
                    unmapped[f"{fixture['id']}:{layer['key']}"] = f"{layer['native_type']}: {error}"
    return sorted(layers, key=lambda f: f.id), unmapped


FIXTURE_LAYERS, UNMAPPED = _index()


def fixture_params(filter: Callable[[FixtureLayer], bool] | None = None) -> list:
    """``pytest.param``s of the fixture layers (those ``filter`` keeps), with their ids."""
    chosen = [f for f in FIXTURE_LAYERS if filter is None or filter(f)]
    if not chosen:
        reason = f"no fixture layer here (looked for {', '.join(map(str, MANIFESTS))})"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-fixtures")]
    return [pytest.param(f, id=f.id) for f in chosen]


def beside_only() -> list[str]:
    """Ids of the fixtures in ``../shared/fixtures`` that the repository's own sets lack."""
    committed = {
        fixture["id"]
        for manifest in MANIFESTS[:2]
        if manifest.is_file()
        for fixture in json.loads(manifest.read_text())["fixtures"]
    }
    beside = MANIFESTS[2]
    if not beside.is_file():
        return []
    return [f["id"] for f in json.loads(beside.read_text())["fixtures"] if f["id"] not in committed]


if __name__ == "__main__":  # `python tests/fixtures_index.py --beside-only`, for .ci/run
    import sys

    if sys.argv[1:] == ["--beside-only"]:
        print(" ".join(beside_only()))
