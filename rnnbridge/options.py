"""The values of the verbs' enumerated options, importable without NumPy.

With the registries (``rnnbridge.engine.conventions.FRAMEWORKS``,
``rnnbridge.outputs.FORMATS``) they are the CLI's choices and the service's enums.
"""

from __future__ import annotations

from typing import Literal, get_args

#: ``out_in``: matrices for ``W · x`` ([H, in]); ``in_out``: their transposes, for ``x · W``
Orientation = Literal["out_in", "in_out"]
ORIENTATIONS: tuple[Orientation, ...] = get_args(Orientation)
#: the direction of a one-direction array input the file cannot tell (ONNX ``W`` of shape
#: [1, ...], a Keras ``go_backwards`` layer in a weights-only file); ``backward`` is ``reverse``
Direction = Literal["forward", "reverse", "backward"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
