"""Admission control: at most ``max_concurrent`` heavy requests in flight per worker.

A conversion holds its upload, the arrays it read and the arrays it writes in memory at
once; letting every request in would trade a slow answer for an out-of-memory kill.
``ConcurrencyLimit`` counts the requests to the heavy paths (``/inspect``, ``/split``,
``/convert``) from their first byte to their last, and answers the one over the limit at
once, before reading its body, with 503 problem+json ``overloaded`` and ``Retry-After``.
A load balancer or a client retries it, typically on another replica or worker. A small
body (up to ``DRAIN_BYTES``) is read and dropped first: a server that closes a connection
with unread data on it makes the client's TCP stack see a reset instead of the 503.

One event loop runs the middleware, so the counter needs no lock.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import problem

#: bodies up to this size are read (and dropped) before the 503, so that clients receive it
DRAIN_BYTES = 8 * 1024**2


class ConcurrencyLimit:
    """ASGI middleware refusing requests to ``paths`` beyond ``limit`` in flight."""

    def __init__(self, app: ASGIApp, limit: int, retry_after: int, paths: Collection[str]) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.paths = frozenset(paths)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"this worker is already serving {self.limit} conversions (RNNBRIDGE_MAX_CONCURRENT); "
            f"retry in {self.retry_after} s"
        )
        response = problem(503, "Service Unavailable", detail, scope["path"], "overloaded")
        response.headers["Retry-After"] = str(self.retry_after)
        if not await _drain(scope, receive):
            response.headers["Connection"] = "close"  # a large unread body is not worth reading
        await response(scope, receive, send)


async def _drain(scope: Scope, receive: Receive) -> bool:
    """Read and drop the request body if it is at most ``DRAIN_BYTES``; True if all of it was."""
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > DRAIN_BYTES):
        return False
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        seen += len(message.get("body", b""))
        if seen > DRAIN_BYTES:
            return False
        if not message.get("more_body", False):
            return True
