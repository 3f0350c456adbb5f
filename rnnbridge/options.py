"""The values of the verbs' enumerated options, importable without NumPy.

With the registries (``rnnbridge.engine.conventions.FRAMEWORKS``,
``rnnbridge.outputs.FORMATS``) they are the CLI's choices and the service's enums.
"""

from __future__ import annotations

from typing import Literal

Orientation = Literal["out_in", "in_out"]
#: ``out_in``: matrices for ``W · x`` ([H, in]); ``in_out``: their transposes, for ``x · W``
ORIENTATIONS: tuple[Orientation, ...] = ("out_in", "in_out")
#: the direction of a one-direction array input the file cannot tell; ``backward`` is ``reverse``
DIRECTIONS = ("forward", "reverse", "backward")
