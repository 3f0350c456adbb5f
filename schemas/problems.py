"""The error body of every failed request: RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document plus rnnbridge's stable ``code``.

    ``layer`` and ``tensor`` are present when the error concerns one; other members an
    error carries (e.g. ``field`` of an invalid field) are added as they are.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI of the problem type: `urn:rnnbridge:problem:<code>`")
    title: str = Field(description="Short summary of the problem type")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What was wrong and where, for people")
    instance: str = Field(description="The request path")
    code: str = Field(description="Stable machine code, e.g. `inexact_conversion`")
    layer: str | None = Field(default=None, description="The layer concerned, if any")
    tensor: str | None = Field(default=None, description="The tensor concerned, if any")
    request_id: str | None = Field(
        default=None, description="The request's id, as in the `X-Request-ID` header and the logs"
    )
