"""The endpoints. Each one translates form fields to a ``rnnbridge.pipeline`` call and the
result to a response; nothing else.

Routes are plain ``def``: FastAPI runs them in its threadpool, so the NumPy and h5py work
never blocks the event loop. An HDF5 file is opened, read and closed within one route
call, so no h5py object is ever used by two threads (h5py serialises its calls through
one global lock anyway; sharing objects across threads is what it does not promise).

``router`` holds the upload endpoints (``SpoolingRoute``: the multipart body is written
straight into the request's ``Workspace``, removed when the route returns); ``ops`` the
rest. JSON, and npz or safetensors results of up to ``INLINE_BYTES``, are encoded in the
route (one thread hop less, and a Content-Length); larger npz and safetensors outputs
stream out as the encoder writes them (``EncodedResponse``); HDF5, which must seek, is
written to the workspace first and streamed from its open handle.
"""

from __future__ import annotations

import io
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from rnnbridge import outputs, pipeline
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, Convention
from rnnbridge.errors import (
    InexactConversion,
    InvalidField,
    LayerNotFound,
    LimitExceeded,
    MalformedFile,
    UnsafeInput,
    UnsupportedFormat,
    VerificationFailed,
)
from rnnbridge.formats.base import InputFile
from rnnbridge.schemas import (
    ArraysResponse,
    ConventionInfo,
    ConventionsResponse,
    Direction,
    Framework,
    Health,
    InspectResponse,
    Orientation,
    OutputFormat,
    Readiness,
    TargetFramework,
    TensorLayout,
)
from rnnbridge.service import metrics
from rnnbridge.service.errors import openapi_responses, problem, service_responses
from rnnbridge.service.forms import SpooledUpload, SpoolingRoute
from rnnbridge.service.settings import Settings
from rnnbridge.service.streaming import EncodedResponse
from rnnbridge.service.uploads import Workspace, iter_file, safe_filename

router = APIRouter(route_class=SpoolingRoute)
ops = APIRouter()


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def raw_prefix(request: Request) -> str | None:
    """``prefix`` as sent, keeping an empty value (FastAPI treats an empty form field as absent)."""
    value = (await request.form()).get("prefix")
    return value if isinstance(value, str) else None


async def get_workspace(request: Request) -> Workspace:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]  # a SpoolingRequest
    return workspace


async def get_metrics(request: Request) -> metrics.Registry:
    registry: metrics.Registry = request.app.state.metrics
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
MetricsDep = Annotated[metrics.Registry, Depends(get_metrics)]
Files = Annotated[list[UploadFile], File(description="The weight file(s); repeat the field for multi-file formats.")]
Source = Annotated[
    Framework | None,
    Form(description="The source framework; required for array-only inputs (npz, JSON), checked otherwise."),
]
Layer = Annotated[str | None, Form(description="One layer by name (see /inspect); default: all layers.")]
SourceForgetBias = Annotated[
    float | None, Form(description="TF1 LSTM run-time forget_bias (not stored in checkpoints); default 1.0, cuDNN 0.")
]
DirectionField = Annotated[
    Direction | None, Form(description="Direction of a one-direction array-only input (e.g. ONNX W [1, ...]).")
]
ResetAfter = Annotated[bool | None, Form(description="GRU variant of an array-only input the arrays cannot tell.")]
Format = Annotated[OutputFormat, Form(description="Output encoding.")]

#: results up to this many bytes of arrays are encoded in the endpoint's thread and sent with
#: a Content-Length; larger ones stream from an encoder thread (``streaming.EncodedResponse``)
INLINE_BYTES = 8 * 1024 * 1024

_READ_ERRORS = (MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded, InvalidField)
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_ARRAYS_200 = {200: {"model": ArraysResponse, "description": "npz (default), JSON or safetensors", "content": _BINARY}}


def _read(
    files: list[UploadFile],
    settings: Settings,
    source: str | None,
    direction: str | None,
    reset_after: bool | None,
) -> pipeline.Model:
    inputs = []
    for upload in files:
        assert isinstance(upload, SpooledUpload), "upload routes use SpoolingRoute"
        inputs.append(InputFile(upload.filename or upload.path.name, upload.path))
    return pipeline.read(inputs, source=source, direction=direction, reset_after=reset_after, limits=settings.limits())


def _respond(workspace: Workspace, result: pipeline.Result, fmt: str, filename: str) -> Response:
    """Encode ``result``: JSON and small results in memory, HDF5 through a workspace file, the rest streamed."""
    if fmt == "json":
        return JSONResponse(outputs.to_json(result))
    headers = {"Content-Disposition": f'attachment; filename="{safe_filename(filename, "weights")}"'}
    if fmt != "h5":
        if sum(array.nbytes for array in result.arrays.values()) > INLINE_BYTES:
            return EncodedResponse(lambda stream: outputs.write(result, fmt, stream), outputs.MEDIA_TYPES[fmt], headers)
        buffer = io.BytesIO()
        outputs.write(result, fmt, buffer)
        return Response(buffer.getvalue(), media_type=outputs.MEDIA_TYPES[fmt], headers=headers)
    path = workspace.output(filename)
    with path.open("wb") as out:
        outputs.write(result, fmt, out)
    headers["Content-Length"] = str(path.stat().st_size)
    return StreamingResponse(iter_file(path.open("rb")), media_type=outputs.MEDIA_TYPES[fmt], headers=headers)


@router.post(
    "/inspect",
    summary="List the recurrent layers of a weight file",
    response_model=None,
    responses={200: {"model": InspectResponse}, **openapi_responses(*_READ_ERRORS, upload=True)},
)
def inspect(
    settings: SettingsDep,
    file: Files,
    source: Source = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
) -> JSONResponse:
    model = _read(file, settings, source, direction, reset_after)
    return JSONResponse(outputs.jsonable(pipeline.inspect(model)))


@router.post(
    "/split",
    summary="Split fused gate tensors into per-gate arrays",
    response_model=None,
    responses={**_ARRAYS_200, **openapi_responses(*_READ_ERRORS, LayerNotFound, upload=True)},
)
def split(
    settings: SettingsDep,
    workspace: WorkspaceDep,
    file: Files,
    source: Source = None,
    layer: Layer = None,
    format: Format = "npz",
    orientation: Annotated[Orientation, Form(description="out_in: W·x ([H, in]); in_out: x·W.")] = "out_in",
    source_forget_bias: SourceForgetBias = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
) -> Response:
    outputs.check_format(format)
    model = _read(file, settings, source, direction, reset_after)
    result = pipeline.split(model, layer=layer, source_forget_bias=source_forget_bias, orientation=orientation)
    return _respond(workspace, result, format, outputs.output_name(file[0].filename or "", format))


@router.post(
    "/convert",
    summary="Re-fuse the weights in another framework's convention",
    response_model=None,
    responses={
        **_ARRAYS_200,
        **openapi_responses(*_READ_ERRORS, LayerNotFound, InexactConversion, VerificationFailed, upload=True),
    },
)
def convert(
    settings: SettingsDep,
    workspace: WorkspaceDep,
    registry: MetricsDep,
    file: Files,
    target: Annotated[TargetFramework, Form(description="The target framework.")],
    sent_prefix: Annotated[str | None, Depends(raw_prefix)],
    source: Source = None,
    layer: Layer = None,
    format: Format = "npz",
    source_forget_bias: SourceForgetBias = None,
    target_forget_bias: Annotated[float | None, Form(description="TF1 target run-time forget_bias.")] = None,
    verify: Annotated[bool, Form(description="Check the result against the source on a random input.")] = True,
    prefix: Annotated[
        str | None, Form(description="PyTorch key prefix; default: the layer name + '.'; empty: bare keys.")
    ] = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
) -> Response:
    outputs.check_format(format, target)
    model = _read(file, settings, source, direction, reset_after)
    result = pipeline.convert(
        model,
        target,
        layer=layer,
        source_forget_bias=source_forget_bias,
        target_forget_bias=target_forget_bias,
        verify_result=verify,
        prefix=sent_prefix,  # ``prefix`` itself is declared for the OpenAPI document
        order="K" if format in outputs.ANY_ORDER else "C",
        consume=True,
    )
    del model  # the source arrays can go while the result streams out
    _count_conversion(registry, result, target)
    return _respond(workspace, result, format, outputs.output_name(file[0].filename or "", format, target))


def _count_conversion(registry: metrics.Registry, result: pipeline.Result, target: str) -> None:
    sources = {layer["source"]["convention"].split(".")[0] for layer in result.meta["layers"]}
    for source in sorted(sources):
        registry.inc("rnnbridge_conversions_total", {"source": source, "target": target})


@ops.get("/conventions", summary="The registry of framework conventions", responses=service_responses())
def conventions() -> ConventionsResponse:
    return ConventionsResponse(
        frameworks=list(FRAMEWORKS),
        gates={"lstm": list("ifgo"), "gru": list("rzn")},
        conventions={key: convention_info(conv) for key, conv in CONVENTIONS.items()},
    )


def convention_info(conv: Convention) -> ConventionInfo:
    """One registry entry as its /conventions document."""
    tensors = [
        TensorLayout(name=t.name, gates=t.gates, parts=list(t.parts), gate_axis=t.gate_axis, group=t.group)
        for t in conv.tensors
    ]
    return ConventionInfo(
        framework=conv.framework,
        cell=conv.cell,
        native=conv.native,
        reset_after=conv.reset_after,
        forget_bias=conv.forget_bias,
        features=sorted(conv.features),
        source_only=conv.source_only,
        tensors=tensors,
        naming=conv.naming,
        source=conv.source,
    )


@ops.get("/healthz", summary="Liveness: the process answers", responses=service_responses())
def healthz() -> Health:
    return Health(status="ok", version=version())


@ops.get(
    "/readyz",
    summary="Readiness: started, not shutting down, and the spool directory is writable",
    responses=service_responses(503),
)
def readyz(request: Request) -> Response:
    reason = not_ready_because(request.app.state)
    if reason is None:
        return JSONResponse(Readiness(status="ready").model_dump())
    settings: Settings = request.app.state.settings
    response = problem(503, "Service Unavailable", reason, request.url.path, "not_ready")
    response.headers["Retry-After"] = str(settings.retry_after)
    return response


def not_ready_because(state: object) -> str | None:
    """Why the app should get no traffic now, or None."""
    if not getattr(state, "ready", False):
        return "the service is starting or shutting down"
    settings: Settings = state.settings  # type: ignore[attr-defined]
    spool = settings.tmp_dir or Path(tempfile.gettempdir())
    if not (spool.is_dir() and os.access(spool, os.W_OK | os.X_OK)):
        return f"the spool directory {spool} is not a writable directory (RNNBRIDGE_TMP_DIR)"
    return None


@ops.get(
    "/metrics",
    summary="Prometheus metrics of all workers (text exposition format 0.0.4)",
    response_class=PlainTextResponse,
    responses={200: {"content": {metrics.MEDIA_TYPE: {}}}, **service_responses()},
)
def prometheus_metrics(registry: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(registry.exposition(), media_type=metrics.MEDIA_TYPE)


def version() -> str:
    try:
        return metadata.version("rnnbridge")
    except metadata.PackageNotFoundError:
        return "0+unknown"
