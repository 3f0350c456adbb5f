"""The HTTP contract: pydantic models and enumerated fields, imported by the transports only."""

from .fields import Direction, Framework, Orientation, OutputFormat
from .problems import PROBLEM_MEDIA_TYPE, Problem
from .responses import (
    ArrayPayload,
    ArraysResponse,
    ConventionInfo,
    ConventionsResponse,
    Health,
    InspectResponse,
    LayerInfo,
    TensorInfo,
    TensorLayout,
)

__all__ = [
    "ArrayPayload",
    "ArraysResponse",
    "ConventionInfo",
    "ConventionsResponse",
    "Direction",
    "Framework",
    "Health",
    "InspectResponse",
    "LayerInfo",
    "Orientation",
    "OutputFormat",
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "TensorInfo",
    "TensorLayout",
]
