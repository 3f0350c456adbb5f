"""Request ids, structured logs and per-request metrics.

``RequestObserver`` (the outermost ASGI middleware) gives every HTTP request an id — the
client's ``X-Request-ID`` when it is 1 to 128 visible ASCII characters, a fresh UUID
otherwise — returns it in the ``X-Request-ID`` response header, and makes it available
to every log record emitted while the request is served (``request_id()``; context
variables follow the work into the threadpool). A valid W3C ``traceparent`` header (Trace
Context, version ``00``) is passed through the same way: every JSON log line of the request
carries its ``trace_id`` and ``parent_id``, so the lines join the caller's trace. When the response is complete it
records the request in the metrics ``Registry`` and logs one access line.

``log_config(level, fmt)`` is the ``logging.config.dictConfig`` that ``rnnbridge serve``
hands to uvicorn: one line per record on stderr, JSON objects (``fmt="json"``:
``time``, ``level``, ``logger``, ``message``, ``request_id`` and the record's ``fields``)
or plain text (``TextFormatter``: control characters, such as a CR LF decoded from a URL's
``%0d%0a``, are written as ``\\r``/``\\n``/``\\xNN`` escapes, so a client cannot forge a line).
uvicorn's own access log is off: the observer's line carries the request
id, the duration and the byte counts.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rnnbridge.service.metrics import Registry

HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[\x21-\x7e]{1,128}")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rnnbridge_request_id", default=None)
#: W3C Trace Context: version 00, a non-zero 16-byte trace id and 8-byte parent id, flags
_TRACEPARENT = re.compile(r"00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-[0-9a-f]{2}")
_trace: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("rnnbridge_trace", default=None)
access_log = logging.getLogger("rnnbridge.access")


def request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return _request_id.get()


def trace() -> dict[str, str] | None:
    """``{"trace_id", "parent_id"}`` of the request's valid ``traceparent`` header, if it sent one."""
    return _trace.get()


def _incoming_trace(scope: Scope) -> dict[str, str] | None:
    for key, value in scope.get("headers", ()):
        if key == b"traceparent":
            match = _TRACEPARENT.fullmatch(value.decode("latin-1").strip())
            return {"trace_id": match[1], "parent_id": match[2]} if match else None
    return None


def _incoming_id(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _VALID_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware: request id, access log, request metrics (see the module)."""

    def __init__(self, app: ASGIApp, registry: Registry, endpoints: frozenset[str]) -> None:
        self.app = app
        self.registry = registry
        self.endpoints = endpoints

    def endpoint(self, path: str) -> str:
        """The metrics label of a path: a route's path, ``/static`` or ``other`` (bounded cardinality)."""
        if path in self.endpoints:
            return path
        return "/static" if path.startswith("/static/") else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ident = _incoming_id(scope)
        token, trace_token = _request_id.set(ident), _trace.set(_incoming_trace(scope))
        exchange = _Exchange(scope, self.endpoint(scope["path"]), ident)
        self._in_flight(exchange, +1)
        try:
            await self.app(scope, exchange.receive(receive), exchange.send(send))
        finally:
            self._in_flight(exchange, -1)
            self._record(exchange)
            _request_id.reset(token)
            _trace.reset(trace_token)

    def _in_flight(self, exchange: _Exchange, change: int) -> None:
        self.registry.inc("rnnbridge_http_requests_in_flight", {"endpoint": exchange.endpoint}, change)
        if change > 0:
            self.registry.publish()

    def _record(self, exchange: _Exchange) -> None:
        elapsed = time.perf_counter() - exchange.started
        labels = {"endpoint": exchange.endpoint}
        status = exchange.status or 500  # no response: the connection broke or the app crashed
        self.registry.inc("rnnbridge_http_requests_total", {**labels, "method": exchange.method, "status": str(status)})
        self.registry.observe("rnnbridge_http_request_duration_seconds", labels, elapsed)
        self.registry.inc("rnnbridge_http_request_bytes_total", labels, exchange.bytes_in)
        self.registry.inc("rnnbridge_http_response_bytes_total", labels, exchange.bytes_out)
        self.registry.publish()
        fields = {
            "method": exchange.method,
            "path": exchange.path,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "bytes_in": exchange.bytes_in,
            "bytes_out": exchange.bytes_out,
            "client": exchange.client,
        }
        access_log.info("%s %s %d", exchange.method, exchange.path, status, extra={"fields": fields})


class _Exchange:
    """What one request sent and received."""

    def __init__(self, scope: Scope, endpoint: str, ident: str) -> None:
        self.started = time.perf_counter()
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.client = f"{scope['client'][0]}:{scope['client'][1]}" if scope.get("client") else None
        self.endpoint = endpoint
        self.header = (HEADER.lower().encode(), ident.encode())
        self.status: int | None = None
        self.bytes_in = self.bytes_out = 0

    def receive(self, receive: Receive) -> Receive:
        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.bytes_in += len(message.get("body", b""))
            return message

        return counting_receive

    def send(self, send: Send) -> Send:
        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                headers = [pair for pair in message.get("headers", []) if pair[0].lower() != self.header[0]]
                message = {**message, "headers": [*headers, self.header]}
            elif message["type"] == "http.response.body":
                self.bytes_out += len(message.get("body", b""))
            await send(message)

        return observed_send


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id(),
            **(trace() or {}),
        }
        document.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return (
        {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\x{ord(char):02x}"
        if ord(char) < 256
        else f"\\u{ord(char):04x}"
    )


class TextFormatter(logging.Formatter):
    """``%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s``, one line per record:
    control characters (from a URL, a header, a file name) are escaped, never written."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().format(record))


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """The ``dictConfig`` for uvicorn and rnnbridge's loggers (see the module)."""
    level = "DEBUG" if level == "trace" else level.upper()
    formatter = {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"()": f"{__name__}.TextFormatter"}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"stderr": {**handler, "filters": ["request_id"]}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "rnnbridge": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
