"""The benchmark's server: the product app plus ``POST /__echo``, mounted only here.

``/__echo`` is the reference for the HTTP figures: it receives one multipart ``file``
through the same stack as ``/convert`` (uvicorn, FastAPI's form parsing and spooling, the
app's middleware) and sends the same bytes back, streamed from the spool. Run it with

    python -m uvicorn --factory bench.server:create_app --port 8765
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import FastAPI, File, UploadFile
from fastapi.responses import StreamingResponse

from rnnbridge.service import create_app as create_product_app

ECHO_PATH = "/__echo"
_CHUNK = 1024 * 1024


def create_app() -> FastAPI:
    """The product app (settings from the environment) with the echo route added."""
    app = create_product_app()
    app.add_api_route(ECHO_PATH, echo, methods=["POST"], include_in_schema=False)
    return app


def echo(file: UploadFile = File(...)) -> StreamingResponse:
    """Send the uploaded file back as it came."""
    spool = file.file
    spool.seek(0, os.SEEK_END)
    size = spool.tell()
    descriptor = os.dup(spool.fileno())  # the spool may be closed before the body is sent
    return StreamingResponse(
        _chunks(descriptor, size), media_type="application/octet-stream", headers={"Content-Length": str(size)}
    )


def _chunks(descriptor: int, size: int) -> Iterator[bytes]:
    try:
        for offset in range(0, size, _CHUNK):
            yield os.pread(descriptor, min(_CHUNK, size - offset), offset)
    finally:
        os.close(descriptor)
