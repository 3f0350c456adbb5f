"""Admission control: at most ``max_concurrent`` heavy requests in flight per worker, and a
short line of ``max_queued`` more waiting for a slot.

A conversion holds its upload, the arrays it read and the arrays it writes in memory at
once; letting every request in would trade a slow answer for an out-of-memory kill.
``ConcurrencyLimit`` counts the requests to the heavy paths (``/inspect``, ``/split``,
``/convert``) from their first byte to their last. One over the limit waits in line
(first come, first served) before its body is read, so it holds only its connection; one
that finds the line full, or waits ``queue_timeout`` seconds without getting a slot, is
answered 503 problem+json ``overloaded`` with ``Retry-After``, and a load balancer or a
client retries it, typically on another replica or worker. A small body (up to
``DRAIN_BYTES``) is read and dropped before that 503: a server that closes a connection
with unread data on it makes the client's TCP stack see a reset instead of the answer.

One event loop runs the middleware, so the counters need no lock. A finishing request
hands its slot straight to the first one in line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from rnnbridge.service.errors import problem
from rnnbridge.service.metrics import Registry

#: bodies up to this size are read (and dropped) before the 503, so that clients receive it
DRAIN_BYTES = 8 * 1024**2


class ConcurrencyLimit:
    """ASGI middleware: ``limit`` requests to ``paths`` in flight, ``max_queued`` waiting, 503 beyond."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        retry_after: int,
        paths: Collection[str],
        max_queued: int = 0,
        queue_timeout: float = 30.0,
        registry: Registry | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.paths = frozenset(paths)
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.registry = registry
        self.in_flight = 0
        self._line: deque[anyio.Event] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if not await self._admit():
            await self._refuse(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _admit(self) -> bool:
        """Take a slot, waiting in line for one if the line is not full; False: refuse."""
        if self.in_flight < self.limit and not self._line:
            self.in_flight += 1
            return True
        if len(self._line) >= self.max_queued:
            return False
        turn = anyio.Event()
        self._line.append(turn)
        self._count_waiting(+1)
        try:
            with anyio.move_on_after(self.queue_timeout):
                await turn.wait()
        except BaseException:  # cancelled in line (shutdown): give back a slot handed over meanwhile
            self._leave(turn)
            raise
        if turn.is_set():
            return True
        self._leave(turn)
        return False

    def _release(self) -> None:
        if self._line:
            self._line.popleft().set()  # the slot passes on: in_flight stays
            self._count_waiting(-1)
        else:
            self.in_flight -= 1

    def _leave(self, turn: anyio.Event) -> None:
        """Step out of line: a slot handed over meanwhile is given back."""
        if turn.is_set():
            self._release()
        else:
            self._line.remove(turn)
            self._count_waiting(-1)

    def _count_waiting(self, change: int) -> None:
        if self.registry is not None:
            self.registry.inc("rnnbridge_http_requests_waiting", {}, change)
            self.registry.publish()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"this worker is serving {self.limit} conversions (RNNBRIDGE_MAX_CONCURRENT) with "
            f"{len(self._line)} more waiting (RNNBRIDGE_MAX_QUEUED, RNNBRIDGE_QUEUE_TIMEOUT); "
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
