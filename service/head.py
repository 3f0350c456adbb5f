"""``HEAD`` answered wherever ``GET`` is (RFC 9110 §9.3.2): load balancers and uptime checks
probe ``HEAD /healthz`` and ``HEAD /readyz``.

FastAPI routes declare ``GET`` only, so a ``HEAD`` would be a 405. ``HeadAsGet`` serves it
as the ``GET`` of the same path, with the same status and headers (``Content-Length``
included) and no body: the body is dropped here, so it holds in process as well as behind
any server.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request is served as ``GET`` and its body is not sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
