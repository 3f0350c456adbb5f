"""Optional authentication: API keys from the settings.

With ``RNNBRIDGE_API_KEYS`` set (comma-separated; each key 16 characters or more is
advised), every request must present one of them, as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``; others are answered 401 problem+json ``unauthorized`` with
``WWW-Authenticate: Bearer``. The paths of ``RNNBRIDGE_AUTH_EXEMPT`` are served without a
key: by default the probes and the metrics (``/healthz,/readyz,/metrics``), so that an
orchestrator and a Prometheus scraper need none, and the web page with its assets
(``/,/static/``), which a browser opens without a header and which hold no data (the page
sends the key as ``X-API-Key`` on its API calls). Set it to the empty string to protect
them all.

An entry is an exact path, unless it ends in ``*`` (a prefix: ``/static/*``) or in ``/``
and is longer than ``/`` (a prefix too: ``/static/``). ``/`` alone is the page only, never
a prefix of every path.

A presented key is compared with every configured key in constant time
(``hmac.compare_digest``), and neither is ever logged or echoed. Without keys the
middleware is not installed.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from rnnbridge.service.errors import problem

#: the longest credential header looked at (a longer one is refused unread)
_MAX_KEY = 1024


class ApiKeys:
    """ASGI middleware: 401 unless the request presents one of ``keys`` (see the module)."""

    def __init__(self, app: ASGIApp, keys: Collection[bytes], exempt: Collection[str] = ()) -> None:
        self.app = app
        self.keys = tuple(keys)
        self.exact = frozenset(p for p in exempt if not _is_prefix(p))
        self.prefixes = tuple(p.removesuffix("*") for p in exempt if _is_prefix(p))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]) or self._presents_a_key(scope):
            await self.app(scope, receive, send)
            return
        detail = "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        response = problem(401, "Unauthorized", detail, scope["path"], "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rnnbridge"'
        await response(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)

    def _presents_a_key(self, scope: Scope) -> bool:
        presented = [_credential(name, value) for name, value in scope.get("headers", ())]
        found = False
        for candidate in presented:
            if candidate is None or len(candidate) > _MAX_KEY:
                continue
            for key in self.keys:  # every key is compared: the time does not say which matched
                found |= hmac.compare_digest(candidate, key)
        return found


def _is_prefix(entry: str) -> bool:
    """Whether an ``RNNBRIDGE_AUTH_EXEMPT`` entry names a prefix (see the module)."""
    return entry.endswith("*") or (entry.endswith("/") and entry != "/")


def _credential(name: bytes, value: bytes) -> bytes | None:
    if name == b"x-api-key":
        return value.strip()
    if name == b"authorization":
        scheme, _, token = value.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            return token.strip()
    return None
