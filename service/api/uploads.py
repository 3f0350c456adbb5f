"""Uploads: the request-size guard and the per-request working directory.

``UploadLimit`` (ASGI middleware) refuses a body over ``max_upload_bytes`` with 413 as
early as the size is known: at once when ``Content-Length`` declares it, otherwise the
moment the bytes received pass the limit, before the rest is read.

``Workspace`` is one temporary directory per request, inside ``Settings.tmp_dir``. The
uploaded files are copied into it under sanitised names (``InputFile.name`` keeps the
client's name, for messages and for formats that pair files by name); outputs are
written there too. ``Workspace.close`` removes it; an open output keeps its bytes
readable until it is closed, so the directory can go before the response is streamed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import LimitExceeded
from ..formats.base import InputFile
from .errors import error_response

_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, default: str = "upload") -> str:
    """A file name made of ``[A-Za-z0-9._-]`` only, without directories or leading dots.

    >>> safe_filename('../../etc/pass wd"'), safe_filename("..")
    ('pass_wd_', 'upload')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[:120]
    return cleaned or default


def _too_large(limit: int, size: int | None = None) -> LimitExceeded:
    said = f" ({size} bytes)" if size is not None else ""
    return LimitExceeded(
        f"the request body{said} is over the upload limit of {limit} bytes (RNNBRIDGE_MAX_UPLOAD_BYTES)",
        limit=limit,
    )


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class UploadLimit:
    """ASGI middleware answering 413 problem+json to a body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(_too_large(self.max_bytes, declared), scope["path"])(scope, receive, send)
            return
        await self._counting(scope, receive, send)

    async def _counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        exceeded: LimitExceeded | None = None
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = _too_large(self.max_bytes)
                    raise exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded is None:  # whatever the app makes of the interrupted body is dropped
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if exceeded is None:
                raise
        if exceeded is not None and not started:
            await error_response(exceeded, scope["path"])(scope, receive, send)


class Workspace:
    """A temporary directory for one request; ``close()`` removes it."""

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rnnbridge-", dir=tmp_dir))

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def spool(self, uploads: Sequence[UploadFile]) -> list[InputFile]:
        """Move the uploaded files into the workspace, one sub-directory per file.

        Each upload is copied out of Starlette's spool and its spool closed at once, so
        that the disk holds at most one file twice.
        """
        inputs = []
        for index, upload in enumerate(uploads):
            client_name = upload.filename or f"upload-{index}"
            path = self.path / str(index) / safe_filename(client_name)
            path.parent.mkdir()
            upload.file.seek(0)
            with path.open("wb") as out:
                shutil.copyfileobj(upload.file, out, _CHUNK)
            upload.file.close()  # frees Starlette's spool now: the bytes live here once
            inputs.append(InputFile(client_name, path))
        return inputs

    def output(self, name: str) -> Path:
        """A path for an output file inside the workspace."""
        return self.path / f"out-{safe_filename(name)}"


def iter_file(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield ``stream`` in chunks and close it at the end (or when the iterator is dropped)."""
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk
