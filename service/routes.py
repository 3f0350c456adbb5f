"""The endpoints. Each one translates form fields to one ``rnnbridge.pipeline`` call and the
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
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from rnnbridge import outputs, pipeline, version
from rnnbridge.engine.conventions import CONVENTIONS, FRAMEWORKS, TARGET_FRAMEWORKS, Convention, native_letter
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
from rnnbridge.outputs import encoded_size, jsonable
from rnnbridge.pipeline import InputFile
from rnnbridge.result import Result
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
    SplitFormat,
    TargetFramework,
    TensorLayout,
)
from rnnbridge.service import metrics
from rnnbridge.service.errors import openapi_responses, problem, service_responses
from rnnbridge.service.forms import SpooledUpload, SpoolingRoute
from rnnbridge.service.settings import Settings
from rnnbridge.service.streaming import EncodedResponse
from rnnbridge.service.uploads import Workspace, content_disposition, iter_file, spool_free_bytes

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
Activations = Annotated[
    str | None,
    Form(
        description=(
            "Activations a file does not record: 'gates,candidate[,cell]' of sigmoid, tanh, relu, linear, "
            "hard_sigmoid_keras2 (0.2x+0.5), hard_sigmoid_keras3 (x/6+0.5), hard_sigmoid(alpha,beta). "
            "A value the file contradicts is refused."
        )
    ),
]
Clip = Annotated[
    str | None, Form(description="ONNX clip of an array-only input: 'none' or a number > 0 (a file's record wins).")
]
InputForget = Annotated[bool | None, Form(description="ONNX input_forget of an array-only LSTM input.")]
Strict = Annotated[
    bool, Form(description="Refuse every assumption (422 assumption_required naming the field to send).")
]
#: the response header listing every assumed fact: a JSON array of {layer, fact, value, field}
ASSUMED_HEADER = "RNNBridge-Assumed"
Names = Annotated[
    str | None,
    Form(description='Rename the arrays first: a JSON object {"enc_w_ih": "encoder.weight_ih_l0"} or old=new pairs.'),
]
Format = Annotated[OutputFormat, Form(description="Output encoding.")]

#: results up to this many bytes of arrays are encoded in the endpoint's thread and sent with
#: a Content-Length; larger ones stream from an encoder thread (``streaming.EncodedResponse``)
INLINE_BYTES = 8 * 1024 * 1024
#: the canonical gate letters per cell
GATES = {"lstm": "ifgo", "gru": "rzn"}
#: /convert's summary of its verification: the least margin over the layers, as JSON
VERIFICATION_HEADER = "X-Rnnbridge-Verification"

_READ_ERRORS = (MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded, InvalidField)
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_ARRAYS_200 = {200: {"model": ArraysResponse, "description": "npz (default), JSON or safetensors", "content": _BINARY}}


def _inputs(files: list[UploadFile]) -> list[InputFile]:
    inputs = []
    for upload in files:
        assert isinstance(upload, SpooledUpload), "upload routes use SpoolingRoute"
        inputs.append(InputFile(upload.filename or upload.path.name, upload.path))
    return inputs


def _with_assumptions(response: Response, layers: list[dict]) -> Response:
    """Set ``RNNBridge-Assumed``: every assumed fact of ``layers`` (metadata entries)."""
    listed = [{k: item[k] for k in ("layer", "fact", "value", "field")} for item in pipeline.assumptions_of(layers)]
    response.headers[ASSUMED_HEADER] = json.dumps(jsonable(listed), separators=(",", ":"))
    return response


def _with_verification(response: Response, layers: list[dict]) -> Response:
    """Set ``X-Rnnbridge-Verification``: the verified layer with the least margin, for clients
    that cannot read the metadata inside the file (the web page); absent without verification."""
    checked = [layer["verification"] for layer in layers if layer.get("verification")]
    if checked:
        worst = max(checked, key=lambda report: report["max_abs_err"] / (report["tolerance"] or 1.0))
        response.headers[VERIFICATION_HEADER] = json.dumps(jsonable({**worst, "layers": len(checked)}))
    return response


def _respond(workspace: Workspace, result: Result) -> Response:
    """Encode ``result`` in its format: JSON and small results in memory, a format that
    seeks (HDF5) through a workspace file, the rest streamed (with a Content-Length where
    the size is known in advance)."""
    output = result.output_format()
    if output.name == "json":
        return JSONResponse(result.to_json())
    filename = result.default_name()
    headers = {"Content-Disposition": content_disposition(filename)}
    if not output.seeks:
        if sum(array.nbytes for array in result.arrays.values()) > INLINE_BYTES:
            size = encoded_size(result, output.name)
            headers.update({} if size is None else {"Content-Length": str(size)})
            return EncodedResponse(result.write, output.media_type, headers)
        buffer = io.BytesIO()
        result.write(buffer)
        return Response(buffer.getvalue(), media_type=output.media_type, headers=headers)
    path = workspace.output(filename)
    with path.open("wb") as out:
        result.write(out)
    headers["Content-Length"] = str(path.stat().st_size)
    return StreamingResponse(iter_file(path.open("rb")), media_type=output.media_type, headers=headers)


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
    activations: Activations = None,
    clip: Clip = None,
    input_forget: InputForget = None,
    names: Names = None,
) -> Response:
    document = pipeline.inspect(
        _inputs(file),
        source=source,
        direction=direction,
        reset_after=reset_after,
        limits=settings.limits(),
        activations=activations,
        clip=clip,
        input_forget=input_forget,
        names=names,
    )
    document = jsonable(document)
    return _with_assumptions(JSONResponse(document), document["layers"])


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
    format: Annotated[SplitFormat, Form(description="Output encoding.")] = "npz",
    orientation: Annotated[Orientation, Form(description="out_in: W·x ([H, in]); in_out: x·W.")] = "out_in",
    source_forget_bias: SourceForgetBias = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
    activations: Activations = None,
    clip: Clip = None,
    input_forget: InputForget = None,
    strict: Strict = False,
    names: Names = None,
) -> Response:
    result = pipeline.split(
        _inputs(file),
        layer=layer,
        source_forget_bias=source_forget_bias,
        orientation=orientation,
        format=format,
        source=source,
        direction=direction,
        reset_after=reset_after,
        limits=settings.limits(),
        strict=strict,
        activations=activations,
        clip=clip,
        input_forget=input_forget,
        names=names,
    )
    return _with_assumptions(_respond(workspace, result), result.meta["layers"])


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
    target_forget_bias: Annotated[
        float | None, Form(description="Run-time forget_bias of a TF1 LSTMCell target (422 for targets without one).")
    ] = None,
    verify: Annotated[bool, Form(description="Check the result against the source on a random input.")] = True,
    prefix: Annotated[
        str | None, Form(description="PyTorch key prefix; default: the layer name + '.'; empty: bare keys.")
    ] = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
    activations: Activations = None,
    clip: Clip = None,
    input_forget: InputForget = None,
    strict: Strict = False,
    scope: Annotated[str | None, Form(description="TF1 variable scope of the layer in a tf_checkpoint.")] = None,
    names: Names = None,
) -> Response:
    result = pipeline.convert(
        _inputs(file),  # read and consumed here: the source arrays go while the result streams out
        target,
        layer=layer,
        source_forget_bias=source_forget_bias,
        target_forget_bias=target_forget_bias,
        verify_result=verify,
        prefix=sent_prefix,  # ``prefix`` itself is declared for the OpenAPI document
        format=format,
        source=source,
        direction=direction,
        reset_after=reset_after,
        limits=settings.limits(),
        strict=strict,
        activations=activations,
        clip=clip,
        input_forget=input_forget,
        names=names,
        scope=scope,
    )
    _count_conversion(registry, result, target)
    layers = result.meta["layers"]
    return _with_assumptions(_with_verification(_respond(workspace, result), layers), layers)


def _count_conversion(registry: metrics.Registry, result: Result, target: str) -> None:
    for source in sorted({layer.source.framework for layer in result.layers}):
        registry.inc("rnnbridge_conversions_total", {"source": source, "target": target})


@ops.get("/conventions", summary="The registry of framework conventions", responses=service_responses())
def conventions() -> ConventionsResponse:
    return ConventionsResponse(
        frameworks=list(FRAMEWORKS),
        gates={cell: list(letters) for cell, letters in GATES.items()},
        conventions={key: convention_info(conv) for key, conv in CONVENTIONS.items()},
        formats={fmt: list(outputs.TARGETS_OF.get(fmt, TARGET_FRAMEWORKS)) for fmt in outputs.FORMATS},
    )


def convention_info(conv: Convention) -> ConventionInfo:
    """One registry entry as its /conventions document."""
    tensors = [
        TensorLayout(
            name=t.name,
            gates=t.gates,
            parts=list(t.parts),
            gate_axis=t.gate_axis,
            group=t.group,
            transforms=[t.transform(k) for k in range(len(t.parts))],
            rows=t.rows,
        )
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
        letters={gate: native_letter(conv, gate) for gate in GATES[conv.cell]},
        stack_directions=conv.stack_directions,
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
    free = spool_free_bytes(spool)
    if free < settings.spool_min_free:
        return f"the spool directory {spool} has {free} bytes free, less than RNNBRIDGE_SPOOL_MIN_FREE"
    return None


@ops.get(
    "/metrics",
    summary="Prometheus metrics of all workers (text exposition format 0.0.4)",
    response_class=PlainTextResponse,
    responses={200: {"content": {metrics.MEDIA_TYPE: {}}}, **service_responses()},
)
def prometheus_metrics(registry: MetricsDep) -> PlainTextResponse:
    return PlainTextResponse(registry.exposition(), media_type=metrics.MEDIA_TYPE)
