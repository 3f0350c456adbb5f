"""Which paths ``RNNBRIDGE_AUTH_EXEMPT`` serves without a key: an entry is exact, unless it
ends in ``*`` or in ``/`` (``/`` alone excepted); then it is a prefix."""

from __future__ import annotations

import warnings

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rnnbridge.service.auth import ApiKeys

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def _client(exempt: set[str]) -> TestClient:
    async def ok(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{path:path}", ok)])
    return TestClient(ApiKeys(app, keys=[b"k" * 32], exempt=exempt))


@pytest.mark.parametrize(
    "exempt, path, status",
    [
        ({"/"}, "/", 200),
        ({"/"}, "/inspect", 401),
        ({"/"}, "/static/page/app.js", 401),
        ({"/static/"}, "/static/page/app.js", 200),
        ({"/static/"}, "/static", 401),
        ({"/static*"}, "/static", 200),
        ({"/static*"}, "/staticky", 200),
        ({"/healthz"}, "/healthz", 200),
        ({"/healthz"}, "/healthz/x", 401),
        (set(), "/", 401),
    ],
)
def test_exempt_entries_are_exact_unless_they_end_in_a_star_or_a_slash(exempt, path, status):
    assert _client(exempt).get(path).status_code == status


def test_a_key_opens_what_is_not_exempt():
    assert _client({"/"}).get("/inspect", headers={"X-API-Key": "k" * 32}).status_code == 200
