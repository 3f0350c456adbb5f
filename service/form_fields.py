"""Checks of an upload form against the fields its endpoint declares, before any work.

FastAPI ignores fields it does not know, so ``fromat=json`` or ``taget=pytorch`` would run
with the defaults and hand back something the client did not ask for; and a file sent as
text (``curl -F file=model.h5``, without the ``@``) or a JSON body would only be "field
required". ``check(form, known)`` refuses both with a 422 that says what was seen and what
to send: the unknown field and the closest known name (``difflib``), or the ``curl -F
file=@...`` form of the upload.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from starlette.datastructures import FormData, UploadFile

from rnnbridge.errors import InvalidField

#: the field that carries the weight files
FILE_FIELD = "file"
#: longest piece of a client's value or field name repeated in an error
ECHO = 60


def check(form: FormData, known: Iterable[str]) -> None:
    """Raise ``InvalidField`` for an unknown field or a file field that holds text."""
    known = sorted(set(known))
    for name in dict.fromkeys(form.keys()):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidField(
                f"unknown field {_shown(name)}: {hint}this endpoint takes {', '.join(known)}", field=_shown(name, False)
            )
    for value in form.getlist(FILE_FIELD):
        if not isinstance(value, UploadFile):
            raise InvalidField(
                f"the field 'file' holds the text {_shown(value)}, not a file: send the file as multipart: "
                f"curl -F file=@{_example(value)}",
                field=FILE_FIELD,
            )


def not_multipart(media_type: str) -> InvalidField:
    """The 422 of a body that is not ``multipart/form-data`` (JSON, urlencoded, none)."""
    sent = f"the body is {media_type}" if media_type else "the body has no Content-Type"
    return InvalidField(
        f"{sent}: send the file as multipart: curl -F file=@model.h5 (plus -F name=value for the other fields)",
        field=FILE_FIELD,
    )


def _shown(text: str, quoted: bool = True) -> str:
    clipped = text if len(text) <= ECHO else f"{text[:ECHO]}... ({len(text)} characters)"
    return repr(clipped) if quoted else clipped


def _example(value: str) -> str:
    """The value as a path for the curl example, if it looks like one."""
    path = value.strip()
    return path if path and len(path) <= ECHO and path.isprintable() and " " not in path else "model.h5"
