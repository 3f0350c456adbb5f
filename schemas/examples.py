"""One example per endpoint, for the interactive documentation (``/docs``, ``/redoc``).

``FORMS`` holds the form fields of an upload endpoint besides ``file`` (Swagger UI fills
them in for "Try it out"); ``RESPONSES`` a successful JSON body per path. The examples are
what the service answers for the PyTorch fixture ``torch_lstm_proj_2l_bi/model.pt``
(trimmed to its first tensors); tests check each against its response model.
"""

from __future__ import annotations

from typing import Any

_LAYER: dict[str, Any] = {
    "name": "encoder.rnn",
    "cell": "lstm",
    "convention": "pytorch.lstm",
    "native": "torch.nn.LSTM",
    "input_size": 3,
    "units": 4,
    "proj_size": 2,
    "num_layers": 2,
    "directions": 2,
    "direction": "bidirectional",
    "flags": {
        "activations": {"gate": "sigmoid", "cell": "tanh", "hidden": "tanh"},
        "peepholes": False,
        "projection": True,
        "bias": True,
    },
    "runtime_constants": {},
    "assumed": [],
    "notes": [],
    "dtype": "float32",
    "tensors": [
        {
            "name": "encoder.rnn.weight_ih_l0",
            "role": "weight_ih",
            "level": 0,
            "direction": "forward",
            "shape": [16, 3],
            "dtype": "float32",
        },
        {
            "name": "encoder.rnn.weight_hh_l0",
            "role": "weight_hh",
            "level": 0,
            "direction": "forward",
            "shape": [16, 2],
            "dtype": "float32",
        },
    ],
}

FORMS: dict[str, dict[str, Any]] = {
    "/inspect": {},
    "/split": {"format": "npz", "orientation": "out_in"},
    "/convert": {"target": "keras", "format": "npz", "verify": True},
}

RESPONSES: dict[str, Any] = {
    "/inspect": {"format": "torch", "layers": [_LAYER], "unsupported_layers": [], "other_tensors": 0, "notes": []},
    "/healthz": {"status": "ok", "version": "0.1.0"},
    "/readyz": {"status": "ready"},
    "/conventions": {
        "frameworks": ["tf1", "keras", "pytorch", "onnx"],
        "gates": {"lstm": ["i", "f", "g", "o"], "gru": ["r", "z", "n"]},
        "conventions": {
            "pytorch.gru": {
                "framework": "pytorch",
                "cell": "gru",
                "native": "torch.nn.GRU",
                "reset_after": True,
                "forget_bias": 0.0,
                "features": ["no_bias"],
                "source_only": False,
                "tensors": [
                    {
                        "name": "weight_ih",
                        "gates": "rzn",
                        "parts": ["W_x"],
                        "gate_axis": 0,
                        "group": "core",
                        "transforms": ["N"],
                        "rows": False,
                    },
                    {
                        "name": "weight_hh",
                        "gates": "rzn",
                        "parts": ["W_h"],
                        "gate_axis": 0,
                        "group": "core",
                        "transforms": ["N"],
                        "rows": False,
                    },
                    {
                        "name": "bias_ih",
                        "gates": "rzn",
                        "parts": ["b_x"],
                        "gate_axis": 0,
                        "group": "bias",
                        "transforms": ["N"],
                        "rows": False,
                    },
                    {
                        "name": "bias_hh",
                        "gates": "rzn",
                        "parts": ["b_h"],
                        "gate_axis": 0,
                        "group": "bias",
                        "transforms": ["N"],
                        "rows": False,
                    },
                ],
                "naming": "{tensor}_l{level}{reverse}",
                "source": "torch/nn/modules/rnn.py RNNBase.__init__ (W_ir|W_iz|W_in)",
                "letters": {"r": "r", "z": "z", "n": "n"},
                "stack_directions": False,
            }
        },
        "formats": {
            "npz": ["tf1", "keras", "pytorch", "onnx", "mlx", "haiku", "paddle", "equinox"],
            "json": ["tf1", "keras", "pytorch", "onnx", "mlx", "haiku", "paddle", "equinox"],
            "safetensors": ["tf1", "keras", "pytorch", "onnx", "mlx", "haiku", "paddle", "equinox"],
            "h5": ["keras"],
            "onnx": ["onnx"],
            "tf_checkpoint": ["tf1"],
            "pdparams": ["paddle"],
            "eqx": ["equinox"],
        },
    },
}
