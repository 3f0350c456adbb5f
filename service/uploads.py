"""Uploads: the request-body guard and the per-request working directory.

``BodyLimits`` (ASGI middleware) refuses a body over ``max_upload_bytes`` with 413 as
early as the size is known: at once when ``Content-Length`` declares it, otherwise the
moment the bytes received pass the limit, before the rest is read; a body that takes
longer than ``request_timeout`` to arrive with 408; and, after ``grace`` seconds, a body
arriving at less than ``min_rate`` bytes a second on average with 408 too (a client
trickling its body would otherwise hold an upload place for the whole request timeout).
A client that closes the connection before its body is complete is logged as such and
recorded with status 499 (nginx's "client closed request"), not as a malformed body.

``Workspace`` is one temporary directory per request, inside ``Settings.tmp_dir``. The
multipart parser (``forms``) writes the uploaded files into it under sanitised names;
outputs that must be written whole before they are sent (HDF5) go there too.
``Workspace.close`` removes it; an open output keeps its bytes readable until it is
closed, so the directory can go before the response is streamed.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rnnbridge.errors import LimitExceeded
from rnnbridge.service.errors import error_response, problem

logger = logging.getLogger("rnnbridge.api")

_CHUNK = 1024 * 1024
#: what writing to a full spool raises
_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, default: str = "upload") -> str:
    """A file name made of ``[A-Za-z0-9._-]`` only, without directories or leading dots.

    >>> safe_filename('../../etc/pass wd"'), safe_filename("..")
    ('pass_wd_', 'upload')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[:120]
    return cleaned or default


def content_disposition(name: str) -> str:
    """``attachment`` with ``name``: ``filename="..."`` made safe ASCII (``safe_filename``) and,
    for a name with other characters, ``filename*=UTF-8''...`` (RFC 6266) with the name itself,
    minus directories, quotes and control or format characters.

    >>> content_disposition("m.gates.npz")
    'attachment; filename="m.gates.npz"'
    >>> print(content_disposition("модель.gates.npz"))
    attachment; filename="weights.gates.npz"; filename*=UTF-8''%D0%BC%D0%BE%D0%B4%D0%B5%D0%BB%D1%8C.gates.npz
    """
    ascii_name = safe_filename(name, "weights")
    if name.isascii():
        return f'attachment; filename="{ascii_name}"'
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    readable = "".join(c for c in base if c != '"' and unicodedata.category(c)[0] not in "CZ" or c == " ")
    readable = readable.strip().lstrip(".")[:120] or ascii_name
    if not _UNSAFE.sub("", ascii_name.split(".", 1)[0]).strip("_"):
        ascii_name = "weights" + ascii_name[ascii_name.index(".") :] if "." in ascii_name else "weights"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(readable, safe='')}"


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


class BodyLimits:
    """ASGI middleware bounding request bodies: ``max_bytes`` (413) and ``timeout`` (408).

    A body over ``max_bytes`` is refused before it is read when ``Content-Length`` declares
    it, otherwise the moment the bytes received pass the limit. A client that has not sent
    its whole body within ``timeout`` seconds of the request's start gets 408. Either way
    the app's own reaction to the interrupted body is dropped and the problem+json sent
    instead (if the response has not started).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float, min_rate: int = 0, grace: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.min_rate = min_rate
        self.grace = grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(_too_large(self.max_bytes, declared), scope["path"])(scope, receive, send)
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _Refusal()
        start = anyio.current_time()
        deadline = start + self.timeout
        received = 0
        complete = False

        def slow_after() -> float:
            """When the average rate falls below ``min_rate`` if nothing more arrives."""
            if not self.min_rate:
                return deadline
            return start + max(self.grace, received / self.min_rate)

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:  # e.g. waiting for http.disconnect while a response streams
                return await receive()
            with anyio.move_on_after(min(deadline, slow_after()) - anyio.current_time()) as scope_:
                message = await receive()
            if scope_.cancelled_caught:
                if anyio.current_time() < deadline:
                    raise refusal.set(_too_slow(self.min_rate, self.grace, received, scope["path"]))
                raise refusal.set(_timed_out(self.timeout, scope["path"]))
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise refusal.set(error_response(_too_large(self.max_bytes), scope["path"]))
            elif message["type"] == "http.disconnect":
                raise refusal.set(_client_aborted(received, _declared_length(scope)))
            return message

        await refusal.run(self.app, scope, guarded_receive, send)


class _Refusal(Exception):
    """The body was refused: ``response`` replaces whatever the app would answer."""

    def __init__(self) -> None:
        super().__init__("request body refused")
        self.response: Response | None = None

    def set(self, response: Response) -> _Refusal:
        self.response = response
        return self

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if self.response is None:  # whatever the app makes of the interrupted body is dropped
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await app(scope, receive, guarded_send)
        except Exception:
            if self.response is None:
                raise
        if self.response is not None and not started:
            await self.response(scope, receive, send)


#: the status recorded for a request whose client went away before its body was complete (as
#: nginx logs it): nobody receives it, but the access log and the metrics say what happened
CLIENT_CLOSED_REQUEST = 499


def _client_aborted(received: int, declared: int | None) -> Response:
    of = f" of {declared}" if declared is not None else ""
    logger.info("the client closed the connection during the upload, after %d%s bytes", received, of)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def _timed_out(timeout: float, path: str) -> Response:
    detail = f"the request body did not arrive within {timeout:g} s (RNNBRIDGE_REQUEST_TIMEOUT)"
    response = problem(408, "Request Timeout", detail, path, "request_timeout")
    response.headers["Connection"] = "close"
    return response


def _too_slow(min_rate: int, grace: float, received: int, path: str) -> Response:
    detail = (
        f"the request body arrives more slowly than {min_rate} bytes/s on average after {grace:g} s "
        f"({received} bytes so far; RNNBRIDGE_MIN_BODY_RATE, RNNBRIDGE_BODY_RATE_GRACE)"
    )
    response = problem(408, "Request Timeout", detail, path, "body_too_slow")
    response.headers["Connection"] = "close"
    return response


def is_spool_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the spool directory's file system is full."""
    return isinstance(exc, OSError) and exc.errno in _FULL


def spool_full(exc: OSError, retry_after: int = 5) -> HTTPException:
    """The 507 for an upload that did not fit in the spool directory; logged as an error
    (an operator must make room, or send fewer or smaller uploads to this replica)."""
    logger.error("the spool directory is full: %s (RNNBRIDGE_TMP_DIR)", exc.strerror)
    detail = "the server has no room left to store the upload; retry later or on another replica"
    return HTTPException(507, detail=detail, headers={"Retry-After": str(retry_after), "Connection": "close"})


def spool_free_bytes(spool: Path) -> int:
    """Free bytes in the spool directory's file system (for ``/readyz``)."""
    return shutil.disk_usage(spool).free


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

    def output(self, name: str) -> Path:
        """A path for an output file inside the workspace."""
        return self.path / f"out-{safe_filename(name)}"


def iter_file(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield ``stream`` in chunks and close it at the end (or when the iterator is dropped)."""
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk
