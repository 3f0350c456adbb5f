"""The HTTP/1.1 connection protocol ``rnnbridge serve`` runs: uvicorn's httptools protocol
with bounds on what a client may make the server hold before a request reaches the app.

uvicorn + httptools bound neither the request head nor the time it takes: httptools
gathers a header value of any length (re-concatenating it as it arrives, quadratically, on
the event loop), accepts any number of headers, and a connection that sends nothing, or a
byte now and then, is held for ever. ``GuardedHttpToolsProtocol`` keeps httptools (the
fastest parser uvicorn has) and adds, per connection:

* ``max_header_bytes``: the request line and headers together; the parser is fed at most
  that many bytes of a request head, and a longer head is answered 431 and closed;
* ``max_headers``: header fields per request; more: 431;
* ``header_timeout``: seconds from a connection's first byte (or its opening, or the end
  of the previous response) to the end of the request head; then 408 and closed. The
  keep-alive timeout (``idle_timeout``) still bounds the time between requests.

The bounds come from the ``RNNBRIDGE_*`` settings (``Settings``), read once per process:
uvicorn builds its protocols itself, from a class, in every worker.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rnnbridge.service.settings import Settings


@cache
def _settings() -> Settings:
    return Settings()


def _answer(status: bytes, reason: str) -> bytes:
    body = reason.encode("ascii")
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with bounded request heads (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.header_timeout = settings.header_timeout
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_header_bytes - self._head_bytes
        head, rest = data[:room], data[room:]
        self._head_bytes += len(head)
        super().data_received(head)
        if self._refused or self.transport.is_closing():
            return
        if self._header_count > self.max_headers:
            self._refuse(b"431 Request Header Fields Too Large", f"more than {self.max_headers} header fields")
        elif self._in_head and self._head_bytes >= self.max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large", f"a request head over {self.max_header_bytes} bytes")
        elif rest:
            self.data_received(rest)

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count = True, 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= self.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        if self._header_count > self.max_headers:
            self._refuse(b"431 Request Header Fields Too Large", f"more than {self.max_headers} header fields")
        else:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

    # the head timer
    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                self._refuse(
                    b"408 Request Timeout", f"the request head did not arrive within {self.header_timeout:g} s"
                )
            else:
                self.transport.close()  # an idle connection that never sent a byte

    def _refuse(self, status: bytes, reason: str) -> None:
        if self._refused:
            return
        self._refused = True
        self.logger.warning("refused a request head: %s", reason)
        self._disarm_head_timer()
        self.transport.write(_answer(status, reason))
        self.transport.close()
