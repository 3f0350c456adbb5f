"""The web page: ``GET /`` shows where every gate of an uploaded file lives, and converts it.

The page is one HTML file with its own script and style sheet in ``static/page/``
(hand-written, no build step, no third-party code), served from ``/static`` like the
offline docs. It talks to the service only through the public API (``/inspect``,
``/conventions``, ``/convert``) with relative URLs, so it works under any root path and
behind the same limits as every other client. Its Content-Security-Policy allows nothing
from another origin: the page cannot load a font, a script or an image from elsewhere, nor
send a file anywhere but to this service.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).resolve().parent / "static" / "page" / "index.html"

#: same origin only; inline styles for the computed geometry of the SVG gate map
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False, response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The gate map page."""
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers=headers)
