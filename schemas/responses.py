"""Bodies of the successful JSON responses: /inspect, /conventions, /healthz, /readyz, and the
JSON encoding of a /split or /convert result."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """A response object that may carry more members than documented."""

    model_config = ConfigDict(extra="allow")


class TensorInfo(_Open):
    name: str
    shape: list[int]
    dtype: str


class LayerInfo(_Open):
    """One recurrent layer found in an upload."""

    name: str
    cell: str = Field(description="`lstm` or `gru`")
    convention: str = Field(description="key of the convention it is stored in (see /conventions)")
    input_size: int | None = None
    units: int | None = None
    proj_size: int | None = None
    num_layers: int | None = Field(default=None, description="levels l0, l1, ...")
    directions: Any = Field(default=None, description="the directions present: forward, backward")
    direction: Any = None
    flags: Any = None
    runtime_constants: Any = Field(default=None, description="e.g. TF1's forget_bias, which files do not store")
    dtype: str | None = None
    tensors: list[TensorInfo] = []


class InspectResponse(_Open):
    format: str = Field(description="the file format that was read")
    layers: list[LayerInfo]
    other_tensors: int = Field(description="tensors that are not recurrent weights (ignored)")
    fused_looking_arrays: list[dict[str, Any]] | None = Field(
        None, description="no layer found: arrays shaped like fused gate tensors, and how to name them (names=)"
    )
    how_to_name: str | None = Field(None, description="present with fused_looking_arrays")


class TensorLayout(BaseModel):
    """One stored tensor as a grid of canonical gate blocks."""

    name: str = Field(description="name below the cell scope / without the level suffix")
    gates: str = Field(description="canonical gate letters in stored order along the gate axis")
    parts: list[str] = Field(description="canonical parts: W_x, W_h, b_x, b_h, p_, W_proj")
    gate_axis: int = Field(description="0: row form [G*H, in]; 1: column form [in, G*H]")
    group: str = Field(description="core tensors are required; bias, peephole, projection optional")
    transforms: list[str] = Field(
        default=[],
        description="per part, how a block holds its canonical array: N as it is, T transposed, "
        "R its C-order memory read with the transposed shape (Keras 2 CuDNN kernels)",
    )
    rows: bool = Field(default=False, description="vectors: the parts are rows of a 2-D tensor, not concatenated")


class ConventionInfo(BaseModel):
    framework: str
    cell: str
    native: str = Field(description="the framework's class")
    reset_after: bool | None = Field(description="GRU variant; null for LSTM")
    forget_bias: float = Field(description="run-time constant the framework adds to the forget gate")
    features: list[str]
    source_only: bool = Field(description="readable, never written")
    tensors: list[TensorLayout]
    naming: str = Field(description="output name of a tensor per level and direction")
    source: str = Field(description="where the layout is documented")
    letters: dict[str, str] = Field(default={}, description="the framework's own letter of each canonical gate")
    stack_directions: bool = Field(default=False, description="directions stacked on a leading axis (ONNX)")


class ConventionsResponse(BaseModel):
    frameworks: list[str] = Field(description="values of `source` and `target`")
    gates: dict[str, list[str]] = Field(description="canonical gate letters per cell")
    conventions: dict[str, ConventionInfo]
    formats: dict[str, list[str]] = Field(default={}, description="output formats of /convert: the targets each holds")


class Health(BaseModel):
    status: str = "ok"
    version: str


class Readiness(BaseModel):
    """`GET /readyz` when the worker takes traffic (otherwise 503 problem+json `not_ready`)."""

    status: str = "ready"


class ArrayPayload(BaseModel):
    dtype: str = Field(description="NumPy dtype name; the source dtype is kept")
    shape: list[int]
    data: list[float | int | bool | str] = Field(
        description='flat C-order values; NaN and infinities as "NaN", "Infinity", "-Infinity"'
    )


class ArraysResponse(BaseModel):
    """The `format=json` body of /split and /convert."""

    arrays: dict[str, ArrayPayload]
    meta: dict[str, Any] = Field(description="per layer: conventions, flags, what was folded, verification")
