"""Admission control: at most ``max_concurrent`` heavy requests in flight per worker.

A conversion holds its upload, the arrays it read and the arrays it writes in memory at
once; letting every request in would trade a slow answer for an out-of-memory kill.
``ConcurrencyLimit`` counts the requests to the heavy paths (``/inspect``, ``/split``,
``/convert``) from their first byte to their last, and answers the one over the limit at
once, before reading its body, with 503 problem+json ``overloaded`` and ``Retry-After``.
A load balancer or a client retries it, typically on another replica or worker.

One event loop runs the middleware, so the counter needs no lock.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import problem


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
        response.headers["Connection"] = "close"  # the unread body is not worth draining
        await response(scope, receive, send)
