"""Interactive documentation that works without internet access.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their JavaScript, CSS and favicon from
``/static``, which serves the files in ``service/api/static`` (unmodified npm releases;
see the README there). No page references another host: deployments often have no way
out, and a CDN is one more party that sees who reads the docs. Swagger UI's online
validator badge is switched off for the same reason.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    """Add ``/static``, ``/docs`` and ``/redoc`` to ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    title = f"{app.title} {app.version}"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{root}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            redoc_js_url=f"{root}/static/redoc.standalone.js",
            redoc_favicon_url=f"{root}/static/favicon-32x32.png",
            with_google_fonts=False,
        )
