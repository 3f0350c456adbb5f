"""Multipart uploads parsed straight into the request's workspace.

Starlette's form parser spools every uploaded file to a ``SpooledTemporaryFile`` in
``TMPDIR``, from which the routes would have to copy it again. Routes declared with
``route_class=SpoolingRoute`` instead get a ``Workspace`` per request and a
``SpoolingRequest`` whose ``form()`` feeds the body to python-multipart's streaming parser
and appends every file part to its final file in the workspace as the bytes arrive:

* an upload is on disk once, and memory holds at most ``FLUSH_BYTES`` of it per request;
* the disk writes run in worker threads, never on the event loop;
* the body limit is enforced while the body streams (``uploads.UploadLimit`` wraps
  ``receive``), so an oversized upload stops being written at the limit.

The endpoints receive ``SpooledUpload`` objects: FastAPI ``UploadFile`` values with the
``path`` of the bytes. The workspace is removed when the endpoint has returned, whatever
happened; a response that still needs a workspace file keeps it open (see
``routes._respond``).
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException

from rnnbridge.service import form_fields
from rnnbridge.service.uploads import Workspace, is_spool_full, safe_filename, spool_full

#: file bytes buffered per part before they are handed to a thread for writing
FLUSH_BYTES = 1024 * 1024
#: bounds on the parts of one form (a TF checkpoint sends its index and its shards)
MAX_FILES = 256
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024


class SpooledUpload(UploadFile):
    """An uploaded file already in its final place in the workspace, at ``path``.

    ``file`` is the handle it was written through, closed once the part was complete:
    open ``path`` to read it.
    """

    def __init__(self, path: Path, file: IO[bytes], filename: str, headers: Headers) -> None:
        super().__init__(file, size=0, filename=filename, headers=headers)
        self.path = path


@dataclass(eq=False)
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)
    upload: SpooledUpload | None = None
    name: str = ""


def _bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=f"malformed multipart body: {detail}")


class FormSpooler:
    """Parse one ``multipart/form-data`` body, writing its files into ``workspace``."""

    def __init__(self, workspace: Workspace, charset: str = "utf-8") -> None:
        self.workspace = workspace
        self.charset = charset
        self.items: list[tuple[str, str | UploadFile]] = []
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._open: list[_Part] = []  # file parts with bytes not yet written
        self._finished: list[_Part] = []
        self._files = self._fields = 0
        self._ended = False

    async def parse(self, boundary: bytes, chunks: AsyncIterator[bytes]) -> FormData:
        """Consume ``chunks`` and return the form; on any error, close what was opened."""
        parser = MultipartParser(boundary, self._callbacks())
        try:
            async for chunk in chunks:
                parser.write(chunk)
                await self._write_pending()
            parser.finalize()
            await self._write_pending(final=True)
        except MultipartParseError as exc:
            await self._close_all()
            raise _bad_request(str(exc)) from None
        except OSError as exc:
            await self._close_all()
            if is_spool_full(exc):
                raise spool_full(exc) from None
            raise
        except BaseException:
            await self._close_all()
            raise
        if not self._ended:
            await self._close_all()
            raise _bad_request("the body ended before its closing boundary")
        return FormData(self.items)

    def _callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_end": self._on_end,
        }

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_end(self) -> None:
        self._part.headers.append((bytes(self._header_name).lower(), bytes(self._header_value)))
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = dict(self._part.headers).get(b"content-disposition")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise _bad_request('a part has no Content-Disposition "name"')
        self._part.name = self._decode(options[b"name"])
        if b"filename" in options:
            self._files += 1
            if self._files > MAX_FILES:
                raise _bad_request(f"more than {MAX_FILES} files")
            self._part.upload = self._create_file(self._decode(options[b"filename"]))
            self._open.append(self._part)
            self.items.append((self._part.name, self._part.upload))
        else:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise _bad_request(f"more than {MAX_FIELDS} fields")

    def _create_file(self, client_name: str) -> SpooledUpload:
        index = self._files - 1
        path = self.workspace.path / str(index) / safe_filename(client_name)
        path.parent.mkdir()
        stream = path.open("wb")
        return SpooledUpload(path, stream, client_name or f"upload-{index}", Headers(raw=self._part.headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._part.pending.extend(data[start:end])
        if self._part.upload is None and len(self._part.pending) > MAX_FIELD_BYTES:
            raise _bad_request(f"field {self._part.name!r} is over {MAX_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        if self._part.upload is None:
            self.items.append((self._part.name, self._decode(bytes(self._part.pending))))
        else:
            self._finished.append(self._part)

    def _on_end(self) -> None:
        self._ended = True

    async def _write_pending(self, final: bool = False) -> None:
        """Write buffered file bytes: a part's buffer once it is large, and finished parts whole."""
        for part in self._open:
            done = final or part in self._finished
            if done or len(part.pending) >= FLUSH_BYTES:
                data, part.pending = part.pending, bytearray()
                assert part.upload is not None
                await anyio.to_thread.run_sync(_append, part.upload.file, data, done)
                part.upload.size = (part.upload.size or 0) + len(data)
        self._open = [part for part in self._open if part not in self._finished]

    async def _close_all(self) -> None:
        for _, value in self.items:
            if isinstance(value, UploadFile):
                await value.close()

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.charset)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")


def _append(stream: IO[bytes], data: bytearray, last: bool) -> None:
    stream.write(data)
    if last:  # the readers open the file by its path
        stream.close()


class SpoolingRequest(Request):
    """A request whose multipart form is written into its ``workspace`` (see the module)."""

    def __init__(self, request: Request, workspace: Workspace, fields: frozenset[str] = frozenset()) -> None:
        super().__init__(request.scope, request.receive)
        self.workspace = workspace
        self.fields = fields  # the form fields the endpoint declares: any other is refused
        self._spooled: FormData | None = None

    async def form(self, **_limits: Any) -> FormData:  # type: ignore[override]
        """The form; file parts are ``SpooledUpload``. Parsed once, then cached."""
        if self._spooled is not None:
            return self._spooled
        media_type, options = parse_options_header(self.headers.get("Content-Type"))
        if media_type == b"application/x-www-form-urlencoded":
            # fields only (``/explain`` of a convention and sizes, ``/init``): a file cannot travel so
            form = await super().form()
            if form_fields.FILE_FIELD in form:
                raise form_fields.not_multipart(media_type.decode("latin-1"))
            form_fields.check(form, self.fields)
            self._spooled = form
            return form
        if media_type != b"multipart/form-data":
            raise form_fields.not_multipart(media_type.decode("latin-1"))
        if b"boundary" not in options:
            raise _bad_request("no boundary in the Content-Type")
        charset = options.get(b"charset", b"utf-8").decode("latin-1")
        try:
            charset = codecs.lookup(charset).name
        except LookupError:
            charset = "latin-1"
        spooler = FormSpooler(self.workspace, charset)
        self._spooled = await spooler.parse(options[b"boundary"], self.stream())
        form_fields.check(self._spooled, self.fields)
        return self._spooled


def _form_fields(dependant: Dependant) -> set[str]:
    """The names of the form fields an endpoint and its dependencies declare."""
    names = {param.alias for param in dependant.body_params}
    for dependency in dependant.dependencies:
        names |= _form_fields(dependency)
    return names


class SpoolingRoute(APIRoute):
    """An ``APIRoute`` whose requests get a ``Workspace`` under ``Settings.tmp_dir``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        fields = frozenset(_form_fields(self.dependant))

        async def spooling_handler(request: Request) -> Response:
            workspace = Workspace(request.app.state.settings.tmp_dir)  # one mkdir, like a part's below
            try:
                spooling = SpoolingRequest(request, workspace, fields)
                # parsed here, not inside FastAPI's handler, which would turn a refusal of the
                # form (unknown field, text for a file, not multipart) into a bare 400
                await spooling.form()
                return await handler(spooling)
            finally:
                await anyio.to_thread.run_sync(workspace.close)

        return spooling_handler
