"""Interactive documentation that works without internet access.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their JavaScript, CSS and favicon from
``/static``, which serves the files in ``service/api/static`` (unmodified npm releases;
see the README there). No page references another host: deployments often have no way
out, and a CDN is one more party that sees who reads the docs. Swagger UI's online
validator badge is switched off for the same reason.

The OpenAPI document is made readable for people (``readable``): operations grouped by
tag (``weights`` for every upload endpoint, ``registry``, ``service``), form schemas named
``<Operation>Form`` instead of FastAPI's ``Body_<name>_<path>_<method>``, uploaded files
typed ``format: binary`` (so that Swagger UI offers a file picker and "Try it out" sends
the file), and one example per endpoint from ``rnnbridge.schemas.examples``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rnnbridge.schemas import examples

STATIC = Path(__file__).resolve().parent / "static"

#: the tags, in the order /docs shows them; an operation with a multipart body is ``weights``
TAGS = [
    {"name": "weights", "description": "Upload a weight file: inspect it, split it into gates, convert it."},
    {"name": "registry", "description": "The framework conventions rnnbridge knows, as data."},
    {"name": "service", "description": "Health, readiness and metrics, for operators."},
]
_TAG_OF_PATH = {"/conventions": "registry"}
_FORM_NAME = re.compile(r"^Body_(?P<name>[a-z0-9_]+?)_[a-z0-9_]+_(?:post|put|patch)$")


def install(app: FastAPI) -> None:
    """Add ``/static``, ``/docs`` and ``/redoc`` to ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = readable(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
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


def readable(document: dict[str, Any]) -> dict[str, Any]:
    """Tags, form names, file pickers and examples (see the module docstring); changes ``document``."""
    schemas = document.get("components", {}).get("schemas", {})
    renamed = {}
    for name in list(schemas):
        match = _FORM_NAME.match(name)
        if match:
            new = "".join(word.capitalize() for word in match["name"].split("_")) + "Form"
            renamed[name] = new
            schemas[new] = schemas.pop(name)
            schemas[new]["title"] = new
    _rename_refs(document, renamed)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            operation["tags"] = ["weights" if form else _TAG_OF_PATH.get(path, "service")]
            if form:
                _form_fields(schemas, form)
                form["example"] = _form_example(schemas, form, examples.FORMS.get(path, {}))
            ok = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
            if ok is not None and path in examples.RESPONSES:
                ok["example"] = examples.RESPONSES[path]
    document["tags"] = TAGS
    return document


def _form_fields(schemas: dict[str, Any], form: dict[str, Any]) -> None:
    """Files typed ``format: binary`` (Swagger UI then offers a file picker), and optional
    fields as their one type (Swagger UI fills in an ``anyOf`` enum's first value, not nothing)."""
    schema = schemas.get(form["schema"].get("$ref", "").rsplit("/", 1)[-1], form["schema"])
    for key, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf", [])
        if len(options) == 2 and {"type": "null"} in options:  # an optional field: absent, never null
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = schema["properties"][key] = {**next(o for o in options if o != {"type": "null"}), **rest}
        for item in (prop, prop.get("items", {})):
            if item.get("type") == "string" and "contentMediaType" in item:
                item["format"] = "binary"


def _form_example(schemas: dict[str, Any], form: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The form's example: ``given``, every other optional field empty.

    Swagger UI starts each form field at its schema's example, else the first value of its
    enum: an optional field must start empty, or "Try it out" sends ``source=tf1``.
    """
    schema = schemas.get(form["schema"].get("$ref", "").rsplit("/", 1)[-1], {})
    required = set(schema.get("required", ()))
    example = {}
    for name, prop in schema.get("properties", {}).items():
        if name in given:
            example[name] = prop["examples"] = [given[name]]
        elif name not in required and "default" not in prop:
            prop["examples"] = [""]
    return {name: value[0] for name, value in example.items()}


def _rename_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[-1]
                node[key] = value[: -len(name)] + renamed.get(name, name)
            else:
                _rename_refs(value, renamed)
    elif isinstance(node, list):
        for value in node:
            _rename_refs(value, renamed)
    return node
