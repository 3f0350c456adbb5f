"""The application factory.

``create_app(settings)`` assembles the routes, the offline docs, the error handlers and
the middleware; tests build their own app with their own ``Settings``, and ``rnnbridge
serve`` runs uvicorn on this factory (``uvicorn --factory rnnbridge.service.app:create_app``),
once per worker process.

Middleware, outermost first: ``RequestObserver`` (request id, access log, metrics: it sees
every answer, refusals included), ``HeadAsGet`` (``HEAD`` wherever ``GET``),
``InternalErrors`` (a bug becomes a logged 500),
``ApiKeys`` (401 without a key, only when ``RNNBRIDGE_API_KEYS`` is set), ``BodyLimits``
(413 and 408 while the body arrives, 408 for a body slower than ``min_body_rate``),
``ConcurrencyLimit`` (503 beyond ``max_uploads`` bodies arriving; a conversion slot once the
body is in, 503 beyond ``max_concurrent`` + ``max_queued``), then the routes.

The lifespan marks the worker ready once started and not ready when it begins to shut
down; uvicorn then stops accepting connections and lets the requests in flight finish
(``rnnbridge serve`` gives them ``RNNBRIDGE_SHUTDOWN_TIMEOUT`` seconds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from rnnbridge import pipeline
from rnnbridge.service import docs, errors, page, routes, routes_layers, startup
from rnnbridge.service.admission import ConcurrencyLimit
from rnnbridge.service.auth import ApiKeys
from rnnbridge.service.head import HeadAsGet
from rnnbridge.service.metrics import Registry
from rnnbridge.service.observability import RequestObserver
from rnnbridge.service.settings import Settings
from rnnbridge.service.uploads import BodyLimits

logger = logging.getLogger("rnnbridge.api")

DESCRIPTION = """\
Split fused LSTM/GRU gate tensors from TensorFlow 1, Keras, PyTorch and ONNX files into
per-gate arrays, or re-fuse them in another framework's convention, exactly: every
conversion computes the same function as the source or is refused with 422.

Every error is `application/problem+json` (RFC 9457) with a stable `code`. Every response
carries `X-Request-ID` (the client's, or a new one), which the logs record.
"""

#: the paths whose requests carry uploads and do the heavy work
HEAVY_PATHS = ("/inspect", "/split", "/convert", "/explain", "/run", "/init")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    threading.Thread(target=_start_reader, name="rnnbridge-reader-start", daemon=True).start()
    app.state.ready = True
    app.state.metrics.publish()  # every worker is visible in /metrics from the start
    logger.info("rnnbridge %s ready", app.version)
    try:
        yield
    finally:
        app.state.ready = False
        app.state.metrics.publish()
        pipeline.stop_readers()  # a read still running past the shutdown timeout is ended
        logger.info("rnnbridge shut down")


def _start_reader() -> None:
    try:
        pipeline.prepare()
    except Exception:  # noqa: BLE001 - the first HDF5 request will try again, and report it
        logger.exception("could not start an HDF5 reader process")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the rnnbridge application; ``settings`` default to the environment's."""
    settings = settings or Settings()
    startup.check_spool(settings.tmp_dir)
    startup.import_served()
    app = FastAPI(
        title="rnnbridge",
        version=routes.version(),
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # a POST to /convert/ is a 404, not a 307 that clients re-send without the upload
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.ready = False
    app.state.metrics = Registry(settings.metrics_dir, version=routes.version())
    app.include_router(routes.router)
    app.include_router(routes.ops)
    app.include_router(routes_layers.router)
    docs.install(app)
    app.include_router(page.router)
    # each add_middleware wraps the ones before it; ConcurrencyLimit is inside BodyLimits, so
    # that waiting in line for a slot (once the body is in) does not count as body time
    app.add_middleware(
        ConcurrencyLimit,
        limit=settings.max_concurrent,
        retry_after=settings.retry_after,
        paths=HEAVY_PATHS,
        max_queued=settings.max_queued,
        queue_timeout=settings.queue_timeout,
        registry=app.state.metrics,
        max_uploads=settings.upload_slots(),
    )
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_upload_bytes,
        timeout=settings.request_timeout,
        min_rate=settings.min_body_rate,
        grace=settings.body_rate_grace,
    )
    if settings.keys():  # optional authentication (issue 13): before any limit is spent on the request
        app.add_middleware(ApiKeys, keys=settings.keys(), exempt=settings.exempt_paths())
    errors.install(app)  # the handlers, and InternalErrors around the limits
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestObserver, registry=app.state.metrics, endpoints=_endpoints(app))
    _document_problems(app)
    return app


def _endpoints(app: FastAPI) -> frozenset[str]:
    """The paths the metrics label by name (any other path counts as ``other``)."""
    paths = {route.path for router in (routes.router, routes.ops, routes_layers.router) for route in router.routes}  # type: ignore[attr-defined]
    return frozenset({*paths, app.openapi_url or "", "/docs", "/redoc", "/"})


def _document_problems(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return errors.problem_media_type(build())

    app.openapi = openapi  # type: ignore[method-assign]
