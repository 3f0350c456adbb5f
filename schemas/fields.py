"""The enumerated request fields, derived from the registries so that they never drift.

FastAPI turns these ``Literal`` types into OpenAPI enums (and an unknown value into a 422);
the CLI uses the same values as argparse ``choices``.
"""

from __future__ import annotations

from typing import Literal

from rnnbridge.engine.conventions import FRAMEWORKS, TARGET_FRAMEWORKS
from rnnbridge.outputs import FORMATS

#: a framework convention family: the values of ``source`` and ``target``
Framework = Literal[FRAMEWORKS]  # type: ignore[valid-type]
#: the values of ``target``: the frameworks rnnbridge writes
TargetFramework = Literal[TARGET_FRAMEWORKS]  # type: ignore[valid-type]
#: output encodings of /split and /convert
OutputFormat = Literal[FORMATS]  # type: ignore[valid-type]
#: ``out_in``: matrices for ``W · x`` ([H, in]); ``in_out``: their transposes, for ``x · W``
Orientation = Literal["out_in", "in_out"]
#: the direction of a one-direction input the file cannot tell (ONNX ``W`` of shape [1, ...],
#: a Keras ``go_backwards`` layer in a weights-only file); ``backward`` is ``reverse``
Direction = Literal["forward", "reverse", "backward"]
