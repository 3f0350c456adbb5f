"""The streaming multipart parser (uploads written once, into the workspace) and the
streamed responses (encoded while they are sent), in process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import anyio
import pytest
from starlette.exceptions import HTTPException

from rnnbridge.service import forms
from rnnbridge.service.forms import FormSpooler, SpooledUpload
from rnnbridge.service.streaming import CHUNK_BYTES, EncodedResponse
from rnnbridge.service.uploads import Workspace
from rnnbridge.errors import InvalidField

BOUNDARY = b"b0undary"


def _body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += b"--" + BOUNDARY + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _parse(tmp_path: Path, body: bytes, chunk: int = 65536) -> tuple[Workspace, list[tuple[str, object]]]:
    workspace = Workspace(tmp_path)

    async def run() -> list[tuple[str, object]]:
        form = await FormSpooler(workspace).parse(BOUNDARY, _chunks(body, chunk))
        return list(form.multi_items())

    return workspace, anyio.run(run)


def test_files_are_written_into_the_workspace_as_they_arrive(tmp_path, monkeypatch):
    writes: list[int] = []
    original = forms._append
    monkeypatch.setattr(
        forms, "_append", lambda stream, data, last: (writes.append(len(data)), original(stream, data, last))
    )
    big = os.urandom(3 * forms.FLUSH_BYTES + 12345)
    workspace, items = _parse(
        tmp_path,
        _body(("source", None, b"keras"), ("file", "../a b.h5", big), ("file", "x.npz", b"small")),
        chunk=50_000,
    )
    assert [(name, type(value).__name__) for name, value in items] == [
        ("source", "str"),
        ("file", "SpooledUpload"),
        ("file", "SpooledUpload"),
    ]
    first, second = items[1][1], items[2][1]
    assert isinstance(first, SpooledUpload) and isinstance(second, SpooledUpload)
    assert first.filename == "../a b.h5" and first.path == workspace.path / "0" / "a_b.h5"
    assert first.path.read_bytes() == big and first.size == len(big)
    assert second.path.read_bytes() == b"small"
    assert max(writes) < forms.FLUSH_BYTES + 50_000 and len(writes) >= 4  # written as it came, never whole
    workspace.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_body(("f", None, b"x" * (forms.MAX_FIELD_BYTES + 1))), "over"),
        (_body(*[("file", f"{i}.h5", b"") for i in range(forms.MAX_FILES + 1)]), "more than"),
        (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; filename="x"\r\n\r\nx\r\n', "name"),
        (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nxyz', "ended"),
    ],
    ids=["long_field", "too_many_files", "no_name", "truncated"],
)
def test_malformed_bodies_are_400_and_close_their_files(tmp_path, body, message):
    with pytest.raises(HTTPException) as caught:
        _parse(tmp_path, body)
    assert caught.value.status_code == 400 and message in caught.value.detail


def _encoded_route(client, write):
    client.app.add_api_route(
        "/encoded", lambda: EncodedResponse(write, "application/octet-stream", {}), methods=["GET"]
    )


def test_an_encoded_response_streams_in_chunks(client):
    payload = os.urandom(2 * CHUNK_BYTES + 7)

    def write(stream: IO[bytes]) -> None:
        for start in range(0, len(payload), 1000):
            stream.write(payload[start : start + 1000])
        stream.write(memoryview(payload)[: 3 * CHUNK_BYTES // 2])

    _encoded_route(client, write)
    with client.stream("GET", "/encoded") as response:
        assert "content-length" not in response.headers
        chunks = list(response.iter_raw())
    assert b"".join(chunks) == payload + payload[: 3 * CHUNK_BYTES // 2]


def test_an_encoder_failing_before_the_first_byte_is_problem_json(client):
    def write(stream: IO[bytes]) -> None:
        stream.write(b"header")  # buffered, not yet sent
        raise InvalidField("cannot encode this", field="format")

    _encoded_route(client, write)
    response = client.get("/encoded")
    assert response.status_code == 422 and response.json()["code"] == "invalid_field"
    assert response.headers["content-type"] == "application/problem+json"


def test_an_encoder_failing_mid_stream_breaks_the_connection(client):
    def write(stream: IO[bytes]) -> None:
        stream.write(bytes(CHUNK_BYTES))
        raise ValueError("disk on fire")

    _encoded_route(client, write)
    with pytest.raises(RuntimeError, match="after the response started"):
        client.get("/encoded")
