"""The application factory.

``create_app(settings)`` assembles the routes, the error handlers and the upload guard;
tests build their own app with their own ``Settings``, and ``rnnbridge serve`` runs
uvicorn on this factory (``uvicorn --factory service.api.app:create_app``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..settings import Settings
from . import errors, routes
from .uploads import UploadLimit

DESCRIPTION = """\
Split fused LSTM/GRU gate tensors from TensorFlow 1, Keras, PyTorch and ONNX files into
per-gate arrays, or re-fuse them in another framework's convention, exactly: every
conversion computes the same function as the source or is refused with 422.

Every error is `application/problem+json` (RFC 9457) with a stable `code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the rnnbridge application; ``settings`` default to the environment's."""
    settings = settings or Settings()
    app = FastAPI(title="rnnbridge", version=routes.version(), description=DESCRIPTION)
    app.state.settings = settings
    app.include_router(routes.router)
    errors.install(app)
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)  # outermost: refuse before parsing
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return errors.problem_media_type(build())

    app.openapi = openapi  # type: ignore[method-assign]
