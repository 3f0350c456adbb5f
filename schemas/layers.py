"""Bodies of /explain and /run (JSON).

/explain's document is meant to be read by programs as well as people: a web page can
draw each stored tensor as a grid and colour every block by gate from ``cells[].gates[]``
(which tensor, which index) and ``target.tensors[].blocks[]`` (where it lands).
Expressions are NumPy basic indexing on the stored tensors, named by ``variable``; a
block's ``index`` is the NumPy index into its tensor (``[:3, 5:10]``, ``[1, :5]``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SliceSource(_Open):
    """One stored-tensor slice an array is made of."""

    tensor: str | None = Field(description="the tensor's name in the file; null for a constant (zeros)")
    variable: str | None = Field(description="its identifier in the expressions (`kernel`, `gates_kernel_l1`)")
    index: str | None = Field(description="NumPy index into the stored tensor, e.g. `[:6, 10:20]`")
    transposed: bool = Field(description="the slice is transposed (column-form storage)")
    reshaped: list[int] | None = Field(description="the slice's C-order values read with this shape (Keras 2 CuDNN)")


class GateExpression(_Open):
    """One per-gate array of /split and how to cut it out of the stored tensors."""

    array: str = Field(description="canonical name: W_x{g}, W_h{g}, b_x{g}, b_h{g}, p_{g}, W_proj")
    gate: str | None = Field(description="canonical gate letter (LSTM i f g o, GRU r z n); null for W_proj")
    letter: str | None = Field(description="the framework's own letter for that gate (TF1 j, Keras c/h, ONNX c/h)")
    split_name: str = Field(description="the array's name in /split's output")
    shape: list[int]
    from_: list[SliceSource] = Field(alias="from", description="the slices, in the order they are summed")
    constants: list[float] = Field(description="constants added after the slices (TF1's forget bias)")
    numpy: str = Field(description="the NumPy expression, e.g. `kernel[:6, 10:20].T`")
    torch: str = Field(description="the same in PyTorch")
    tensorflow: str = Field(description="the same in TensorFlow")


class StoredTensor(_Open):
    role: str = Field(description="the tensor's role in its convention (`kernel`, `weight_ih`, `W`)")
    variable: str
    name: str = Field(description="the tensor's name in the file")
    shape: list[int]
    gate_axis: int = Field(description="the axis along which gate blocks follow each other")
    gates: list[str] = Field(description="the framework's gate letters in stored order along gate_axis")


class ExplainCell(_Open):
    level: int
    direction: str = Field(description="`forward` or `backward`")
    sizes: dict[str, int] = Field(description="I input size, H units, P projection size (0: none)")
    dtype: str
    tensors: list[StoredTensor]
    gates: list[GateExpression]


class TargetBlock(_Open):
    level: int
    direction: str
    array: str = Field(description="the canonical array this block holds")
    gate: str | None
    index: str = Field(description="NumPy index of the block in the target tensor")
    from_: list[str] = Field(alias="from", description="variables of the stored tensors it is read from")
    transposed: bool
    summed: bool = Field(description="input and recurrent biases added (the target keeps one bias)")
    constants: list[float] = Field(description="constants added (+) or subtracted (−) in order")
    numpy: str
    torch: str
    tensorflow: str


class TargetTensor(_Open):
    name: str = Field(description="the tensor's name in /convert's output")
    role: str
    variable: str
    shape: list[int]
    dtype: str
    gate_axis: int
    gates: list[str]
    blocks: list[TargetBlock] = Field(description="assignments `variable[index] = expression`, in order")
    checkpoint_variable: str | None = Field(
        default=None, description="with output_format=tf_checkpoint: the variable's name in the checkpoint"
    )


class TargetRecipe(_Open):
    framework: str
    convention: str | None = None
    native: str | None = None
    forget_bias: float | None = Field(default=None, description="the target's run-time forget bias, subtracted")
    names_start: str | None = Field(default=None, description="what every tensor name of the layer starts with")
    tensors: list[TargetTensor] = []
    snippets: dict[str, str] = Field(default={}, description="programs assembling every target tensor")
    refused: dict[str, str] | None = Field(default=None, description="`code` and `detail` when /convert refuses")


class ExplainLayer(_Open):
    name: str
    convention: str
    native: str
    cell: str
    letters: dict[str, str] = Field(description="canonical gate letter -> the framework's")
    equations: list[str] = Field(description="the cell's update in the framework's gate letters")
    variables: dict[str, str] = Field(description="expression identifier -> tensor name in the file")
    cells: list[ExplainCell]
    snippets: dict[str, str] = Field(description="`numpy`, `torch`, `tensorflow`: programs splitting by hand")
    target: TargetRecipe | None
    assumed: list[dict[str, Any]] = Field(
        default=[], description="facts taken from a documented default, not the file (header RNNBridge-Assumed)"
    )


class ExplainResponse(_Open):
    """`POST /explain` (format=json)."""

    layers: list[ExplainLayer]
    orientation: str = Field(description="out_in: matrices [H, in] for W·x; in_out: [in, H]")
    notes: list[str] = []


class RunResponse(_Open):
    """`POST /run` (format=json): the framework's outputs and, with trace=true, `trace/...` arrays."""

    arrays: dict[str, Any] = Field(description="name -> {dtype, shape, data}; names are the framework's own")
    meta: dict[str, Any] = Field(
        description="`axes` per array, `time_major`, `dtype`, `letters`, and `divergence` when `expected` was sent"
    )
