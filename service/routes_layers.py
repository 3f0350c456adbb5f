"""``/explain``, ``/run`` and ``/init``: form fields to a call of ``rnnbridge.explain``,
``rnnbridge.run`` or ``rnnbridge.init`` (``rnnbridge/verbs.py``), its result to a response.
Registered by ``app.create_app`` beside ``routes``; like them, plain ``def`` endpoints that
run in the threadpool.

The user's arrays for /run (``x``, ``h0``, ``c0``, ``expected``) are files of the same form,
read by ``rnnbridge.load_arrays`` (by content, ``allow_pickle=False``, sizes checked before
anything is read). The weights are read as for /convert, with the same fields (``routes``),
and every assumed fact is listed in the ``RNNBridge-Assumed`` header. Arrays are answered
as ``routes`` answers /split and /convert (``Result.save``'s encodings, through the
``rnnbridge.outputs`` registry).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

import rnnbridge
from rnnbridge.engine.conventions import CONVENTIONS
from rnnbridge.errors import (
    InvalidField,
    LayerNotFound,
    LimitExceeded,
    MalformedFile,
    UnsafeInput,
    UnsupportedFormat,
)
from rnnbridge.outputs import check_format, jsonable
from rnnbridge.schemas import ArraysResponse, ExplainResponse, Orientation, OutputFormat, RunResponse, TargetFramework
from rnnbridge.service.errors import openapi_responses
from rnnbridge.service.forms import SpooledUpload, SpoolingRoute
from rnnbridge.service.routes import (
    Activations,
    Clip,
    DirectionField,
    InputForget,
    Layer,
    Names,
    ResetAfter,
    SettingsDep,
    Source,
    SourceForgetBias,
    Strict,
    WorkspaceDep,
    _inputs,
    _respond,
    _with_assumptions,
)
from rnnbridge.service.settings import Settings
from rnnbridge.service.uploads import safe_filename

router = APIRouter(route_class=SpoolingRoute)

_READ_ERRORS = openapi_responses(
    MalformedFile, UnsafeInput, UnsupportedFormat, LayerNotFound, LimitExceeded, InvalidField, upload=True
)
ConventionKey = Literal[tuple(sorted(CONVENTIONS))]  # type: ignore[valid-type]
_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
UserArray = Annotated[UploadFile | None, File(description="A .npy, .npz or JSON array file.")]


def bounds(settings: Settings) -> rnnbridge.Bounds:
    return rnnbridge.Bounds(
        max_weights=settings.max_init_weights,
        max_elements=settings.max_run_elements,
        max_steps_weights=settings.max_run_work,
        max_bytes=min(settings.max_upload_bytes, 64 * settings.max_run_elements),
    )


@router.post(
    "/explain",
    summary="Which slice of which stored tensor is which gate",
    response_model=None,
    responses={
        200: {
            "model": ExplainResponse,
            "description": "JSON, or text/plain with format=text",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **_READ_ERRORS,
    },
)
def explain(
    settings: SettingsDep,
    file: Annotated[list[UploadFile] | None, File(description="The weight file(s); omit to explain sizes.")] = None,
    source: Source = None,
    layer: Layer = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
    activations: Activations = None,
    clip: Clip = None,
    input_forget: InputForget = None,
    names: Names = None,
    strict: Strict = False,
    target: Annotated[TargetFramework | None, Form(description="Also show how /convert builds this target.")] = None,
    output_format: Annotated[
        OutputFormat | None,
        Form(
            description="The target's output format, checked as /convert checks it; tf_checkpoint adds each "
            "target tensor's variable name in the checkpoint."
        ),
    ] = None,
    scope: Annotated[str | None, Form(description="TF1 variable scope in a tf_checkpoint.")] = None,
    orientation: Annotated[Orientation, Form(description="out_in: W·x ([H, in]); in_out: x·W.")] = "out_in",
    source_forget_bias: SourceForgetBias = None,
    target_forget_bias: Annotated[float | None, Form(description="TF1 target run-time forget_bias.")] = None,
    prefix: Annotated[str | None, Form(description="PyTorch target key prefix (default: layer name + '.').")] = None,
    format: Annotated[Literal["json", "text"], Form(description="json, or text for a person.")] = "json",
    convention: Annotated[ConventionKey | None, Form(description="Without a file: the convention.")] = None,
    input_size: Annotated[int | None, Form(description="Without a file: input size I.")] = None,
    units: Annotated[int | None, Form(description="Without a file: units H.")] = None,
    proj_size: Annotated[int, Form(description="Without a file: LSTM projection size P (0: none).")] = 0,
    num_layers: Annotated[int, Form(description="Without a file: levels.")] = 1,
    bidirectional: Annotated[bool, Form(description="Without a file: two directions.")] = False,
    peepholes: Annotated[bool, Form(description="Without a file: LSTM peepholes.")] = False,
    bias: Annotated[bool, Form(description="Without a file: biases stored.")] = True,
    dtype: Annotated[Literal["float16", "float32", "float64"], Form(description="Without a file: dtype.")] = "float32",
) -> Response:
    sizes = {}
    reading = {}
    if file:
        if convention is not None or input_size is not None or units is not None:
            raise InvalidField(
                "convention, input_size and units describe a layer without a file: send one or the other",
                field="convention",
            )
        reading = dict(
            source=source,
            direction=direction,
            reset_after=reset_after,
            limits=settings.limits(),
            activations=activations,
            clip=clip,
            input_forget=input_forget,
            names=names,
        )
    else:
        sizes = dict(
            convention=convention,
            input_size=input_size,
            units=units,
            proj_size=proj_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            peepholes=peepholes,
            bias=bias,
            dtype=dtype,
        )
    doc = rnnbridge.explain(
        _inputs(file) if file else None,
        layer=layer,
        target=target,
        orientation=orientation,
        source_forget_bias=source_forget_bias,
        target_forget_bias=target_forget_bias,
        prefix=prefix,
        format=output_format,
        scope=scope,
        strict=strict,
        bounds=bounds(settings),
        **reading,
        **sizes,
    )
    response: Response
    if format == "text":
        response = PlainTextResponse(rnnbridge.explanation_text(doc))
    else:
        response = JSONResponse(jsonable(doc))
    return _with_assumptions(response, doc["layers"])


def _user_arrays(upload: UploadFile | None, what: str, settings: Settings) -> dict:
    if upload is None:
        return {}
    assert isinstance(upload, SpooledUpload), "upload routes use SpoolingRoute"
    return rnnbridge.load_arrays(upload.path, what, bounds(settings), settings.limits())


def _one(arrays: dict, what: str):
    """The array named ``what``, or the file's only array; None without a file."""
    if what in arrays:
        return arrays[what]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if arrays:
        raise InvalidField(f"{what}: expected one array (or one named {what!r}), found {sorted(arrays)}", field=what)
    return None


@router.post(
    "/run",
    summary="The forward pass of a layer, in its own framework's convention and output layout",
    response_model=None,
    responses={
        200: {"model": RunResponse, "description": "JSON (default), npz or safetensors", "content": _BINARY},
        **_READ_ERRORS,
    },
)
def run(
    settings: SettingsDep,
    workspace: WorkspaceDep,
    file: Annotated[list[UploadFile], File(description="The weight file(s).")],
    x: UserArray = None,
    h0: UserArray = None,
    c0: UserArray = None,
    expected: Annotated[
        UploadFile | None, File(description="Your own outputs, by the framework's names (one array: the sequence).")
    ] = None,
    source: Source = None,
    layer: Layer = None,
    direction: DirectionField = None,
    reset_after: ResetAfter = None,
    activations: Activations = None,
    clip: Clip = None,
    input_forget: InputForget = None,
    names: Names = None,
    strict: Strict = False,
    steps: Annotated[int | None, Form(description="Without x: time steps of a random N(0, 1) input.")] = None,
    batch: Annotated[int | None, Form(description="Without x: batch size of the random input.")] = None,
    seed: Annotated[int, Form(description="Seed of the random input.")] = 0,
    time_major: Annotated[bool | None, Form(description="x and outputs [T, B, ...]; default: the framework's.")] = None,
    dtype: Annotated[Literal["float32", "float64"], Form(description="Compute dtype.")] = "float32",
    trace: Annotated[bool, Form(description="Every step's gate pre-activations, activations and states.")] = False,
    tolerance: Annotated[float | None, Form(description="Divergence threshold for expected.")] = None,
    source_forget_bias: SourceForgetBias = None,
    format: Annotated[
        OutputFormat, Form(description="Output encoding: json, npz or safetensors (not one framework's weights).")
    ] = "json",
) -> Response:
    output = check_format(format)  # before the work: h5, onnx, tf_checkpoint hold weights only
    inputs = _user_arrays(x, "x", settings)
    result = rnnbridge.run(
        _inputs(file),
        layer=layer,
        x=_one(inputs, "x"),
        steps=steps,
        batch=batch,
        seed=seed,
        h0=_one(_user_arrays(h0, "h0", settings), "h0") if h0 is not None else inputs.get("h0"),
        c0=_one(_user_arrays(c0, "c0", settings), "c0") if c0 is not None else inputs.get("c0"),
        time_major=time_major,
        dtype=dtype,
        trace=trace,
        expected=_user_arrays(expected, "expected", settings) or None,
        tolerance=tolerance,
        source_forget_bias=source_forget_bias,
        bounds=bounds(settings),
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
    result.format = output.name
    response = _respond(workspace, result)
    if output.name != "json":  # not the weights' ``<stem>.gates`` name: these are a run's outputs
        filename = safe_filename(f"run.{output.extension}", "run")
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return _with_assumptions(response, [{"name": result.meta["layer"], "assumed": result.meta["assumed"]}])


@router.post(
    "/init",
    summary="Freshly initialised weights, gate block by gate block, in a framework's own tensors",
    response_model=None,
    responses={
        200: {
            "model": ArraysResponse,
            "description": "npz (default), JSON, safetensors, h5 (Keras), onnx (ONNX) or tf_checkpoint (TF1)",
            "content": {
                **_BINARY,
                "application/x-hdf5": {"schema": {"type": "string", "format": "binary"}},
                "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **openapi_responses(LimitExceeded, InvalidField),
    },
)
def init(
    settings: SettingsDep,
    workspace: WorkspaceDep,
    target: Annotated[
        str,
        Form(description="A target framework (a value of target in /convert) or a convention key."),
    ],
    input_size: Annotated[int, Form(description="Input size I.")],
    units: Annotated[int, Form(description="Units H.")],
    cell: Annotated[Literal["lstm", "gru"], Form(description="The cell.")] = "lstm",
    num_layers: Annotated[int, Form(description="Levels.")] = 1,
    bidirectional: Annotated[bool, Form(description="Two directions.")] = False,
    reset_after: Annotated[bool | None, Form(description="GRU variant; default: the framework's.")] = None,
    proj_size: Annotated[int, Form(description="LSTM projection size (PyTorch, TF1).")] = 0,
    peepholes: Annotated[bool, Form(description="LSTM peepholes (TF1, ONNX).")] = False,
    input_initializer: Annotated[
        str, Form(description="glorot_uniform (default), glorot_normal, he_*, lecun_*, uniform(a), default.")
    ] = "glorot_uniform",
    recurrent_initializer: Annotated[
        str, Form(description="orthogonal(gain) (default), identity(gain), an input initializer, default.")
    ] = "orthogonal",
    bias_initializer: Annotated[
        str | None, Form(description="zeros, unit_forget_bias (LSTM default), chrono(T_max), uniform(a), default.")
    ] = None,
    seed: Annotated[int, Form(description="Random seed; the same seed gives the same bytes.")] = 0,
    dtype: Annotated[Literal["float16", "float32", "float64"], Form(description="Stored dtype.")] = "float32",
    name: Annotated[str | None, Form(description="Layer name (default: the cell).")] = None,
    prefix: Annotated[str | None, Form(description="PyTorch key prefix (default: name + '.').")] = None,
    scope: Annotated[str | None, Form(description="TF1 variable scope of the layer in a tf_checkpoint.")] = None,
    target_forget_bias: Annotated[float | None, Form(description="TF1 target run-time forget_bias.")] = None,
    format: Annotated[OutputFormat, Form(description="Output encoding.")] = "npz",
) -> Response:
    if name is not None and (not name or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name)):
        raise InvalidField("name is a layer name: no '/', '\\' or control characters", field="name")
    result = rnnbridge.init(
        target,
        cell=cell,
        input_size=input_size,
        units=units,
        num_layers=num_layers,
        bidirectional=bidirectional,
        reset_after=reset_after,
        proj_size=proj_size,
        peepholes=peepholes,
        input_initializer=input_initializer,
        recurrent_initializer=recurrent_initializer,
        bias_initializer=bias_initializer,
        seed=seed,
        dtype=dtype,
        name=name,
        prefix=prefix,
        scope=scope,
        target_forget_bias=target_forget_bias,
        format=format,
        bounds=bounds(settings),
    )
    return _respond(workspace, result)
