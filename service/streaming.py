"""Responses whose body an encoder writes while the client reads it.

``EncodedResponse(write)`` runs ``write(stream)`` (e.g. ``Result.write``) in one
worker thread; ``stream`` is a non-seekable binary file whose ``write`` hands the bytes,
in ``CHUNK_BYTES`` pieces, to the event loop, which sends them. A bounded buffer between
the two makes the encoder wait for a slow client, so the response never holds more than
a few chunks in memory, and nothing is staged in a temporary file.

The status line and headers are sent with the first chunk: an encoder that fails before
writing anything raises its error to the app's exception handlers (a problem+json
answer); one that fails later aborts the connection, and the client sees a truncated
body. A client that goes away makes the encoder's next ``write`` raise, which stops it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import IO

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK_BYTES = 1024 * 1024


class _ChunkWriter(io.RawIOBase):
    """A write-only stream that sends ``CHUNK_BYTES`` pieces through ``sender``.

    It must be used from a worker thread started by ``anyio.to_thread``.
    """

    def __init__(self, sender: MemoryObjectSendStream[bytes]) -> None:
        super().__init__()
        self._sender = sender
        self._buffer = bytearray()
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # zipfile records offsets in a stream it cannot seek
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        self._written += size
        if self._buffer:  # top up the pending chunk first
            taken = min(CHUNK_BYTES - len(self._buffer), size)
            self._buffer += view[:taken]
            view = view[taken:]
            if len(self._buffer) == CHUNK_BYTES:
                self._send(bytes(self._buffer))
                self._buffer.clear()
        while len(view) >= CHUNK_BYTES:  # large writes go out in slices, without buffering
            self._send(bytes(view[:CHUNK_BYTES]))
            view = view[CHUNK_BYTES:]
        self._buffer += view
        return size

    def flush_all(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()

    def _send(self, chunk: bytes) -> None:
        anyio.from_thread.run(self._sender.send, chunk)


class EncodedResponse(Response):
    """A 200 response whose body ``write(stream)`` produces; see the module."""

    def __init__(self, write: Callable[[IO[bytes]], None], media_type: str, headers: Mapping[str, str]) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)  # no ``body``: no Content-Length, the body is chunked
        self._write = write
        self._error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender, chunks = anyio.create_memory_object_stream[bytes](max_buffer_size=2)
        relay = _Relay(send, self.status_code, self.raw_headers)
        async with anyio.create_task_group() as tasks:  # neither task raises into the group
            tasks.start_soon(self._produce, sender)
            await relay.run(chunks)
        if relay.error is not None:  # the client went away
            raise relay.error
        if self._error is not None and not relay.started:
            raise self._error
        if self._error is not None:
            raise RuntimeError("the encoder failed after the response started") from self._error
        await relay.finish()

    async def _produce(self, sender: MemoryObjectSendStream[bytes]) -> None:
        async with sender:
            try:
                await anyio.to_thread.run_sync(self._encode, sender)
            except Exception as exc:  # noqa: BLE001  # re-raised by __call__, outside the task group
                self._error = exc

    def _encode(self, sender: MemoryObjectSendStream[bytes]) -> None:
        stream = _ChunkWriter(sender)
        self._write(stream)
        stream.flush_all()


class _Relay:
    """Sends the chunks as body messages, the status line with the first one."""

    def __init__(self, send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.send = send
        self.start = {"type": "http.response.start", "status": status, "headers": headers}
        self.started = False
        self.error: Exception | None = None

    async def run(self, chunks: MemoryObjectReceiveStream[bytes]) -> None:
        """Relay every chunk; a failed ``send`` is kept in ``error`` and closes ``chunks``,
        which makes the encoder's next write fail."""
        async with chunks:
            try:
                async for chunk in chunks:
                    await self._body(chunk, more=True)
            except Exception as exc:  # noqa: BLE001  # re-raised by EncodedResponse.__call__
                self.error = exc

    async def finish(self) -> None:
        await self._body(b"", more=False)

    async def _body(self, chunk: bytes, more: bool) -> None:
        if not self.started:
            await self.send(self.start)
            self.started = True
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})
