"""Write the small torch.save files of this folder, and the arrays they must read as.

Run with torch installed (``pip install torch==2.13.0``) from the repository root::

    python tests/formats/data/torch/make_torch_data.py

Each case ``<name>.pt`` gets ``<name>.expected.npz``: the tensors the reader must return,
keyed by their final names, as ``torch.Tensor.numpy()`` gives them (bfloat16 widened to
float32 by torch itself). ``custom_class.pt`` has no expected arrays: it must be refused.
The zip files are not byte-reproducible (torch writes a random serialization id).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


class Config:
    """A user class pickled by reference, as any checkpoint holding one would be."""

    def __init__(self) -> None:
        self.hidden = 3


def _lstm_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.LSTM(2, 3).state_dict()


def checkpoint() -> dict[str, object]:
    torch.manual_seed(0)
    model = torch.nn.LSTM(2, 3)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 1, 2))[0].sum().backward()
    optimizer.step()
    return {
        "epoch": 3,
        "model_state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "loss": 0.25,
    }


def dtypes() -> dict[str, torch.Tensor]:
    values = torch.tensor([[0.5, -1.25, 3.0], [1e-3, 65504.0, -0.0]])
    return {
        "half": values.to(torch.float16),
        "double": values.to(torch.float64) / 3,
        "bfloat16": values.to(torch.bfloat16),
        "int64": torch.arange(-3, 3, dtype=torch.int64),
        "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False, True]),
        "uint16": torch.tensor([0, 1, 65535], dtype=torch.int32).to(torch.uint16),
    }


def views() -> dict[str, torch.Tensor]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "base": base,
        "transposed": base.t(),
        "window": base[1:3, 2:5],
        "row": base[2],
        "every_other": base[:, ::2],
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }


def nested() -> dict[str, object]:
    return {
        "encoder": {"rnn": _lstm_state()},
        "decoder": {"cell": {"weight": torch.eye(2)}, "steps": 7},
        "name": "toy",
        "scale": 0.5,
        "nothing": None,
        "lrs": [0.1, 0.01],
    }


def dataparallel() -> dict[str, torch.Tensor]:
    return {f"module.rnn.{k}": v for k, v in _lstm_state().items()}


def legacy() -> dict[str, object]:
    state = dict(views())
    state["double"] = torch.linspace(0, 1, 5, dtype=torch.float64)
    return state


def custom_class() -> dict[str, object]:
    return {"weight": torch.ones(2), "config": Config()}


def _expected(obj: object, prefix: str = "") -> dict[str, np.ndarray]:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach()
        return {prefix: (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()}
    if isinstance(obj, dict):
        out: dict[str, np.ndarray] = {}
        for key, value in obj.items():
            out.update(_expected(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def main() -> None:
    cases = {
        "checkpoint": (checkpoint, True),
        "dtypes": (dtypes, True),
        "views": (views, True),
        "nested": (nested, True),
        "dataparallel": (dataparallel, True),
        "legacy": (legacy, False),
        "custom_class": (custom_class, True),
    }
    for name, (make, zipped) in cases.items():
        obj = make()
        torch.save(obj, HERE / f"{name}.pt", _use_new_zipfile_serialization=zipped)
        if name == "custom_class":
            continue
        if name == "checkpoint":
            obj = obj["model_state_dict"]
        expected = _expected(obj)
        if name == "dataparallel":
            expected = {k.removeprefix("module."): v for k, v in expected.items()}
        np.savez(HERE / f"{name}.expected.npz", **expected)


if __name__ == "__main__":
    main()
