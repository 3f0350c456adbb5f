"""Admission control: at most ``max_concurrent`` heavy requests converting per worker, a short
line of ``max_queued`` more waiting for a slot, and at most ``max_uploads`` bodies arriving.

A conversion holds its upload, the arrays it read and the arrays it writes in memory at
once; letting every request in would trade a slow answer for an out-of-memory kill.
``ConcurrencyLimit`` counts the requests to the heavy paths (``/inspect``, ``/split``,
``/convert``) in two stages:

1. **Upload.** At most ``max_uploads`` requests may be sending their bodies at once (by
   default ``max_concurrent + max_queued``); one more is answered 503 at once. A body
   arrives straight into the request's workspace on disk, and ``uploads.BodyLimits`` drops
   one that arrives too slowly (``RNNBRIDGE_MIN_BODY_RATE``) or too late.
2. **Conversion.** A slot is granted only when the *last* byte of the body has arrived (the
   app's ``receive`` returns the final body message only once the request holds a slot),
   so a client trickling its body holds no conversion slot: two slow uploads cannot
   starve every other request, as they could when slots were granted before the body.
   Beyond the limit the request waits in line (first come, first served) with its body on
   disk; one that finds the line full, or waits ``queue_timeout`` seconds without a slot,
   is answered 503 problem+json ``overloaded`` with ``Retry-After``, and a load balancer
   or a client retries it, typically on another replica or worker.

A small body (up to ``DRAIN_BYTES``) refused at the upload stage is read and dropped before
the 503: a server that closes a connection with unread data on it makes the client's TCP
stack see a reset instead of the answer.

One event loop runs the middleware, so the counters need no lock. A finishing request
hands its slot straight to the first one in line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import anyio
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rnnbridge.service.errors import problem
from rnnbridge.service.metrics import Registry
from rnnbridge.service.uploads import _Refusal

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
        max_uploads: int | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.paths = frozenset(paths)
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.registry = registry
        self.max_uploads = max_uploads if max_uploads is not None else limit + max_queued
        self.in_flight = 0
        self.uploading = 0
        self._line: deque[anyio.Event] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.uploading >= self.max_uploads:
            await self._refuse(scope, receive, send, self._uploads_detail())
            return
        self.uploading += 1
        stage = {"uploading": True, "admitted": False}
        refusal = _Refusal()

        async def admitting_receive() -> Message:
            message = await receive()
            if stage["uploading"] and (message["type"] != "http.request" or not message.get("more_body", False)):
                self._uploaded(stage)
                if message["type"] == "http.request":  # the whole body is here: take a slot for the work
                    if not await self._admit():
                        raise refusal.set(self._overloaded(scope["path"]))
                    stage["admitted"] = True
            return message

        try:
            await refusal.run(self.app, scope, admitting_receive, send)
        finally:
            self._uploaded(stage)
            if stage["admitted"]:
                self._release()

    def _uploaded(self, stage: dict[str, bool]) -> None:
        if stage["uploading"]:
            stage["uploading"] = False
            self.uploading -= 1

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

    def _overloaded(self, path: str, detail: str | None = None) -> Response:
        detail = detail or (
            f"this worker is serving {self.limit} conversions (RNNBRIDGE_MAX_CONCURRENT) with "
            f"{len(self._line)} more waiting (RNNBRIDGE_MAX_QUEUED, RNNBRIDGE_QUEUE_TIMEOUT); "
            f"retry in {self.retry_after} s"
        )
        response = problem(503, "Service Unavailable", detail, path, "overloaded")
        response.headers["Retry-After"] = str(self.retry_after)
        return response

    def _uploads_detail(self) -> str:
        return (
            f"this worker is receiving {self.uploading} uploads, its limit (RNNBRIDGE_MAX_UPLOADS, by default "
            f"RNNBRIDGE_MAX_CONCURRENT + RNNBRIDGE_MAX_QUEUED = {self.limit} + {self.max_queued}); "
            f"retry in {self.retry_after} s"
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        response = self._overloaded(scope["path"], detail)
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
