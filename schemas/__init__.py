"""The HTTP contract: pydantic models and enumerated fields, imported by the transports only."""

from rnnbridge.schemas.fields import Direction, Framework, Orientation, OutputFormat, SplitFormat, TargetFramework
from rnnbridge.schemas.layers import ExplainResponse, RunResponse
from rnnbridge.schemas.problems import PROBLEM_MEDIA_TYPE, Problem
from rnnbridge.schemas.responses import (
    ArrayPayload,
    ArraysResponse,
    ConventionInfo,
    ConventionsResponse,
    Health,
    InspectResponse,
    LayerInfo,
    Readiness,
    TensorInfo,
    TensorLayout,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ArrayPayload",
    "ArraysResponse",
    "ConventionInfo",
    "ConventionsResponse",
    "Direction",
    "ExplainResponse",
    "Framework",
    "TargetFramework",
    "Health",
    "InspectResponse",
    "LayerInfo",
    "Orientation",
    "OutputFormat",
    "SplitFormat",
    "Problem",
    "Readiness",
    "RunResponse",
    "TensorInfo",
    "TensorLayout",
]
