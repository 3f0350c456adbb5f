"""The endpoints. Each one translates form fields to a ``service.pipeline`` call and the
result to a response; nothing else.

Routes are plain ``def``: FastAPI runs them in its threadpool, so the NumPy and h5py work
never blocks the event loop. Uploads live in a per-request ``Workspace`` that is removed
before the response is sent (a binary output stays readable through its open handle).
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from schemas import (
    ArraysResponse,
    ConventionInfo,
    ConventionsResponse,
    Direction,
    Framework,
    Health,
    InspectResponse,
    Orientation,
    OutputFormat,
    TensorLayout,
)

from .. import outputs, pipeline
from ..engine.conventions import CONVENTIONS, FRAMEWORKS, Convention
from ..errors import (
    InexactConversion,
    InvalidField,
    LayerNotFound,
    LimitExceeded,
    MalformedFile,
    UnsafeInput,
    UnsupportedFormat,
    VerificationFailed,
)
from ..settings import Settings
from .errors import openapi_responses
from .uploads import Workspace, iter_file, safe_filename

router = APIRouter()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def raw_prefix(request: Request) -> str | None:
    """``prefix`` as sent, keeping an empty value (FastAPI treats an empty form field as absent)."""
    value = (await request.form()).get("prefix")
    return value if isinstance(value, str) else None


SettingsDep = Annotated[Settings, Depends(get_settings)]
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

_READ_ERRORS = (MalformedFile, UnsafeInput, UnsupportedFormat, LimitExceeded, InvalidField)
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_ARRAYS_200 = {200: {"model": ArraysResponse, "description": "npz (default), JSON or safetensors", "content": _BINARY}}


def _read(
    workspace: Workspace,
    files: list[UploadFile],
    settings: Settings,
    source: str | None,
    direction: str | None,
    reset_after: bool | None,
) -> pipeline.Model:
    inputs = workspace.spool(files)
    return pipeline.read(inputs, source=source, direction=direction, reset_after=reset_after, limits=settings.limits())


def _respond(workspace: Workspace, result: pipeline.Result, fmt: str, filename: str) -> Response:
    """Encode ``result``: JSON in memory, binary formats through a file in the workspace."""
    if fmt == "json":
        return JSONResponse(outputs.to_json(result))
    path = workspace.output(filename)
    with path.open("wb") as out:
        outputs.write(result, fmt, out)
    stream = path.open("rb")
    headers = {
        "Content-Disposition": f'attachment; filename="{safe_filename(filename, "weights")}"',
        "Content-Length": str(path.stat().st_size),
    }
    return StreamingResponse(iter_file(stream), media_type=outputs.MEDIA_TYPES[fmt], headers=headers)


@router.post(
    "/inspect",
    summary="List the recurrent layers of a weight file",
    response_model=None,
    responses={200: {"model": InspectResponse}, **openapi_responses(*_READ_ERRORS)},
)
def inspect(
    settings: SettingsDep,
    file: Files,
    source: Source = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
) -> JSONResponse:
    with Workspace(settings.tmp_dir) as workspace:
        model = _read(workspace, file, settings, source, direction, reset_after)
    return JSONResponse(outputs.jsonable(pipeline.inspect(model)))


@router.post(
    "/split",
    summary="Split fused gate tensors into per-gate arrays",
    response_model=None,
    responses={**_ARRAYS_200, **openapi_responses(*_READ_ERRORS, LayerNotFound)},
)
def split(
    settings: SettingsDep,
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
    with Workspace(settings.tmp_dir) as workspace:
        model = _read(workspace, file, settings, source, direction, reset_after)
        result = pipeline.split(model, layer=layer, source_forget_bias=source_forget_bias, orientation=orientation)
        return _respond(workspace, result, format, outputs.output_name(file[0].filename or "", format))


@router.post(
    "/convert",
    summary="Re-fuse the weights in another framework's convention",
    response_model=None,
    responses={
        **_ARRAYS_200,
        **openapi_responses(*_READ_ERRORS, LayerNotFound, InexactConversion, VerificationFailed),
    },
)
def convert(
    settings: SettingsDep,
    file: Files,
    target: Annotated[Framework, Form(description="The target framework.")],
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
    with Workspace(settings.tmp_dir) as workspace:
        model = _read(workspace, file, settings, source, direction, reset_after)
        result = pipeline.convert(
            model,
            target,
            layer=layer,
            source_forget_bias=source_forget_bias,
            target_forget_bias=target_forget_bias,
            verify_result=verify,
            prefix=sent_prefix,  # ``prefix`` itself is declared for the OpenAPI document
        )
        return _respond(workspace, result, format, outputs.output_name(file[0].filename or "", format, target))


@router.get("/conventions", summary="The registry of framework conventions")
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


@router.get("/healthz", summary="Liveness")
def healthz() -> Health:
    return Health(status="ok", version=version())


def version() -> str:
    try:
        return metadata.version("rnnbridge")
    except metadata.PackageNotFoundError:
        return "0+unknown"
