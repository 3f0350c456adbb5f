"""ConcurrencyLimit: slots, the line, and what leaving the line gives back."""

from __future__ import annotations

import anyio
import pytest

from rnnbridge.service.admission import ConcurrencyLimit
from rnnbridge.service.metrics import Registry


class Gate:
    """An ASGI app that answers 200 once ``opened``; counts the requests it has started."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.started = 0

    async def __call__(self, scope, receive, send) -> None:
        await receive()  # the whole body: a slot is granted only then
        self.started += 1
        await self.opened.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _request(app, statuses: list[int]) -> None:
    scope = {"type": "http", "path": "/convert", "headers": [(b"content-length", b"0")], "method": "POST"}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the backend uvicorn runs the service on


def _limit(gate: Gate, **kwargs) -> ConcurrencyLimit:
    return ConcurrencyLimit(gate, limit=1, retry_after=5, paths={"/convert"}, registry=Registry(), **kwargs)


def _waiting(limit: ConcurrencyLimit) -> float:
    return limit.registry.snapshot().get(("rnnbridge_http_requests_waiting", ()), 0.0)


@pytest.mark.anyio
async def test_the_line_is_first_come_first_served_and_bounded() -> None:
    gate, statuses = Gate(), []
    limit = _limit(gate, max_queued=2)
    async with anyio.create_task_group() as tasks:
        for _ in range(4):
            tasks.start_soon(_request, limit, statuses)
            await anyio.wait_all_tasks_blocked()
        assert (gate.started, _waiting(limit), statuses) == (1, 2, [503])
        gate.opened.set()
    assert statuses == [503, 200, 200, 200] and gate.started == 3
    assert (limit.in_flight, _waiting(limit)) == (0, 0)


@pytest.mark.anyio
async def test_leaving_the_line_gives_back_what_it_held() -> None:
    gate, statuses = Gate(), []
    limit = _limit(gate, max_queued=1)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_request, limit, statuses)
        await anyio.wait_all_tasks_blocked()
        waiting = anyio.CancelScope()
        tasks.start_soon(_cancellable, limit, statuses, waiting)
        await anyio.wait_all_tasks_blocked()
        assert _waiting(limit) == 1
        waiting.cancel()
        await anyio.wait_all_tasks_blocked()
        assert _waiting(limit) == 0
        gate.opened.set()
    assert statuses == [200] and (limit.in_flight, _waiting(limit)) == (0, 0)


async def _cancellable(limit, statuses, scope: anyio.CancelScope) -> None:
    with scope:
        await _request(limit, statuses)
