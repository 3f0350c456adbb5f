"""Errors over HTTP: one table from error class to status, and the problem+json bodies.

Every error response is ``application/problem+json`` (RFC 9457)::

    {"type": "urn:rnnbridge:problem:layer_not_found", "title": "No such layer",
     "status": 404, "detail": "no recurrent layer named 'x'; ...", "instance": "/split",
     "code": "layer_not_found", "layer": "x", "request_id": "3f2a..."}

``STATUS`` is looked up along the exception's MRO, so a subclass added later inherits its
parent's status. FastAPI's own request validation errors become 422 ``invalid_field``
naming the field. Anything else is a bug: it is logged with its traceback and answered
500 ``internal_error`` with no exception text in the body.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rnnbridge.errors import (
    InexactConversion,
    InvalidField,
    LayerNotFound,
    LimitExceeded,
    MalformedFile,
    RnnBridgeError,
    UnsafeInput,
    UnsupportedFormat,
    VerificationFailed,
)
from rnnbridge.schemas import PROBLEM_MEDIA_TYPE, Problem
from rnnbridge.service.observability import request_id

logger = logging.getLogger("rnnbridge.api")

STATUS: dict[type[RnnBridgeError], int] = {
    RnnBridgeError: 400,
    MalformedFile: 400,
    UnsafeInput: 400,
    LayerNotFound: 404,
    LimitExceeded: 413,
    UnsupportedFormat: 415,
    InvalidField: 422,
    InexactConversion: 422,
    VerificationFailed: 500,
}


def status_of(exc: RnnBridgeError) -> int:
    """The HTTP status of an rnnbridge error: the ``STATUS`` entry of its nearest class."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


#: a client's value is echoed up to this many characters (a 60 KB layer name is not sent back whole)
ECHO_LIMIT = 200
DETAIL_LIMIT = 4000
_QUOTED = re.compile(r"'([^'\\]|\\.){" + str(ECHO_LIMIT) + ",}'")


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, cut to ``limit`` characters with its length said."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _clip_detail(detail: str) -> str:
    """``detail`` with every long quoted value in it clipped, and bounded as a whole."""
    return clip(
        _QUOTED.sub(lambda m: clip(m[0], ECHO_LIMIT) + ("'" if len(m[0]) > ECHO_LIMIT else ""), detail), DETAIL_LIMIT
    )


def problem(status: int, title: str, detail: str, instance: str, code: str, **members: Any) -> JSONResponse:
    """A problem+json response; ``request_id`` is the id of the request being served. Values a
    client sent (in ``detail``, ``instance`` and the members) are clipped to ``ECHO_LIMIT``."""
    body = {
        "type": f"urn:rnnbridge:problem:{code}",
        "title": title,
        "status": status,
        "detail": _clip_detail(detail),
        "instance": clip(instance),
        "code": code,
        **{k: clip(v) if isinstance(v, str) else v for k, v in members.items() if v is not None},
        "request_id": request_id(),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def error_response(exc: RnnBridgeError, instance: str) -> JSONResponse:
    """The problem+json response of an ``RnnBridgeError``."""
    fields = exc.fields()
    code = fields.pop("code")
    return problem(status_of(exc), exc.title, exc.detail, instance, code, **fields)


def _on_rnnbridge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RnnBridgeError)
    if isinstance(exc, VerificationFailed):
        logger.error("verification failed on %s: %s", request.url.path, exc.detail)
    return error_response(exc, request.url.path)


def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    fields = [_field_name(error.get("loc", ())) for error in errors]
    detail = "; ".join(f"{name}: {error.get('msg', 'invalid')}" for name, error in zip(fields, errors, strict=True))
    return problem(
        422, InvalidField.title, detail, request.url.path, InvalidField.code, field=fields[0] if fields else None
    )


def _field_name(loc: Any) -> str:
    names = [str(part) for part in loc if part not in ("body", "query", "path", "header", "form")]
    return ".".join(names) or "body"


def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = str(exc.detail)
    path = request.url.path
    if exc.status_code == 404 and path.endswith("/") and path.rstrip("/") in request.app.openapi()["paths"]:
        detail = f"no endpoint {path}: the endpoint is {path.rstrip('/')}, without the trailing slash"
    response = problem(exc.status_code, phrase, detail, path, phrase.lower().replace(" ", "_").replace("-", "_"))
    response.headers.update(exc.headers or {})
    return response


class InternalErrors:
    """ASGI middleware: any exception no handler took becomes a logged 500 ``internal_error``.

    Unlike Starlette's server-error handler it does not re-raise, so the traceback is
    logged once, here, and never reaches the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            detail = "an internal error occurred; it has been logged"
            response = problem(500, "Internal Server Error", detail, scope.get("path", ""), "internal_error")
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Add the exception handlers and the internal-error boundary to ``app``."""
    app.add_exception_handler(RnnBridgeError, _on_rnnbridge_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_middleware(InternalErrors)


#: errors the transport itself answers, by status: (code, description, extra OpenAPI members)
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
TRANSPORT_ERRORS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("bad_request", "malformed multipart body", {}),
    408: ("request_timeout", "the body did not arrive within RNNBRIDGE_REQUEST_TIMEOUT", {}),
    413: (LimitExceeded.code, "the body is over RNNBRIDGE_MAX_UPLOAD_BYTES", {}),
    500: ("internal_error", "a bug; logged with the request id", {}),
    503: (
        "overloaded",
        "RNNBRIDGE_MAX_CONCURRENT requests already in flight on this worker",
        {"headers": _RETRY_AFTER},
    ),
}
_NOT_READY = ("not_ready", "starting, shutting down or no writable spool directory", {"headers": _RETRY_AFTER})


def openapi_responses(
    *errors: type[RnnBridgeError], validation: bool = True, upload: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: its possible error statuses, with their codes.

    ``upload``: the route reads a multipart body, so the transport's own refusals (400,
    408, 413, 503) apply too. Every route can answer 500 ``internal_error``.

    FastAPI documents ``model`` as ``application/json``; ``problem_media_type`` moves the
    error bodies to ``application/problem+json`` once the document is built.
    """
    by_status: dict[int, dict[str, str]] = {}
    extra: dict[int, dict[str, Any]] = {}
    for cls in errors:
        by_status.setdefault(STATUS[cls], {})[cls.code] = f"`{cls.code}` ({cls.title.lower()})"
    if validation:
        by_status.setdefault(422, {}).setdefault(InvalidField.code, f"`{InvalidField.code}` (invalid field)")
    for status in (400, 408, 413, 503, 500) if upload else (500,):
        code, description, members = TRANSPORT_ERRORS[status]
        by_status.setdefault(status, {}).setdefault(code, f"`{code}` ({description})")
        extra.setdefault(status, {}).update(members)
    return {
        status: {"model": Problem, "description": ", ".join(codes.values()), **extra.get(status, {})}
        for status, codes in sorted(by_status.items())
    }


def service_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route without a body: 500, and 503 ``not_ready`` if asked."""
    responses = openapi_responses(validation=False)
    if 503 in statuses:
        code, description, members = _NOT_READY
        responses[503] = {"model": Problem, "description": f"`{code}` ({description})", **members}
    return responses


def problem_media_type(openapi: dict[str, Any]) -> dict[str, Any]:
    """Document every error response (status >= 400) as ``application/problem+json``."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in "45" and content:  # whatever the route's own media type
                    response["content"] = {PROBLEM_MEDIA_TYPE: next(iter(content.values()))}
    return openapi
