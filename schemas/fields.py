"""The enumerated request fields, derived from the library so that they never drift.

FastAPI turns these ``Literal`` types into OpenAPI enums (and an unknown value into a 422).
The CLI takes the same values from the same places (the registries and
``rnnbridge.options``), without loading pydantic.
"""

from __future__ import annotations

from typing import Literal

from rnnbridge.engine.conventions import FRAMEWORKS, TARGET_FRAMEWORKS
from rnnbridge.options import Direction, Orientation
from rnnbridge.outputs import FORMATS, TARGETS_OF

#: a framework convention family: the values of ``source`` and ``target``
Framework = Literal[FRAMEWORKS]  # type: ignore[valid-type]
#: the values of ``target``: the frameworks rnnbridge writes
TargetFramework = Literal[TARGET_FRAMEWORKS]  # type: ignore[valid-type]
#: output encodings of /split and /convert
OutputFormat = Literal[FORMATS]  # type: ignore[valid-type]
#: output encodings of /split: those that no target restricts (h5, onnx, tf_checkpoint are /convert only)
SplitFormat = Literal[tuple(f for f in FORMATS if f not in TARGETS_OF)]  # type: ignore[valid-type]
#: ``Orientation`` (out_in, in_out) and ``Direction`` (forward, reverse, backward) are the library's
__all__ = ["Direction", "Framework", "Orientation", "OutputFormat", "SplitFormat", "TargetFramework"]
