"""The one error hierarchy of rnnbridge, shared by the engine, the readers and the transports.

Every error carries a stable machine ``code`` and, where it helps, the ``layer`` and
``tensor`` it concerns. Nothing below the transports knows about HTTP: the API maps
classes to statuses with one table (``rnnbridge.service.errors.STATUS``) and the CLI maps
every ``RnnBridgeError`` to exit code 1.

::

    RnnBridgeError
    ├── MalformedFile          400  bytes that contradict themselves (truncated, bad offsets, shapes)
    ├── UnsafeInput            400  a file that asks us to execute, follow or expand something
    ├── UnsupportedFormat      415  bytes of no format we know
    ├── LayerNotFound          404  ``layer=`` names no recurrent layer of the file
    ├── LimitExceeded          413  an upload, tensor or archive member over a configured limit
    ├── InvalidField           422  a request field (or CLI option) with an invalid value
    ├── InexactConversion      422  the target cannot compute the source's function
    └── VerificationFailed     500  the converted weights do not reproduce the source: a bug
"""

from __future__ import annotations

from typing import Any


class RnnBridgeError(Exception):
    """Base class. ``code`` is stable and documented; ``detail`` is for people."""

    code = "rnnbridge_error"
    title = "rnnbridge error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        layer: str | None = None,
        tensor: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.layer = layer
        self.tensor = tensor
        self.extra = extra

    def __str__(self) -> str:
        return self.detail

    def fields(self) -> dict[str, Any]:
        """The structured members of the error, as they appear in a problem+json body."""
        out: dict[str, Any] = {"code": self.code}
        if self.layer is not None:
            out["layer"] = self.layer
        if self.tensor is not None:
            out["tensor"] = self.tensor
        out.update(self.extra)
        return out


class MalformedFile(RnnBridgeError):
    code = "malformed_file"
    title = "Malformed file"


class UnsafeInput(RnnBridgeError):
    code = "unsafe_input"
    title = "Unsafe input refused"


class UnsupportedFormat(RnnBridgeError):
    code = "unsupported_format"
    title = "Unsupported file format"


class LayerNotFound(RnnBridgeError, LookupError):
    code = "layer_not_found"
    title = "No such layer"


class LimitExceeded(RnnBridgeError):
    code = "limit_exceeded"
    title = "Limit exceeded"


class InvalidField(RnnBridgeError, ValueError):
    code = "invalid_field"
    title = "Invalid field"


class InexactConversion(RnnBridgeError):
    code = "inexact_conversion"
    title = "Conversion would change the function"


class VerificationFailed(RnnBridgeError):
    code = "verification_failed"
    title = "Verification failed"
