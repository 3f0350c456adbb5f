"""A real headless Chromium (Debian's) driven by Playwright, against the real server.

``chromium`` is started once per session with the flags a sandbox-less CI needs; where it
cannot start (no ``playwright`` package, no browser binary) the browser tests are skipped,
except in CI (``CI=true``), where they fail. ``page`` is a fresh tab that refuses, and
records, every request that is not for the server on loopback; the test fails at teardown
if there was one. Screenshots go to ``$RNNBRIDGE_TEST_ARTIFACTS`` (default
``tests/artifacts/``, ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: Debian's chromium; Playwright cannot download its own browsers here
CHROMIUM = os.environ.get("RNNBRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("RNNBRIDGE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"the browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium, or set RNNBRIDGE_CHROMIUM)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"chromium did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def _context(chromium: Any, server_url: str, **options: Any) -> tuple[Any, list[str]]:
    """A browser context that lets requests reach the server only, and lists the others."""
    context = chromium.new_context(accept_downloads=True, **options)
    leaked: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(server_url + "/") or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            leaked.append(url)
            route.abort()

    context.route("**/*", guard)
    context.on("request", lambda request: _check_host(request.url, leaked))
    return context, leaked


def _check_host(url: str, leaked: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname not in LOOPBACK:
        leaked.append(url)


@pytest.fixture
def page_factory(chromium: Any, server_url: str) -> Iterator[Any]:
    """``page_factory(**context_options)``: a new tab on the page; all requests stay on loopback."""
    opened: list[tuple[Any, list[str], list[str]]] = []

    def open_page(path: str = "/", **options: Any) -> Any:
        options.setdefault("viewport", {"width": 1366, "height": 900})
        context, leaked = _context(chromium, server_url, **options)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))  # uncaught exceptions of the page's script
        opened.append((context, leaked, errors))
        page.goto(server_url + path)
        if path == "/":
            page.wait_for_selector("body[data-ready=true]")
        page.errors = errors
        return page

    yield open_page
    for context, _, _ in opened:
        context.close()
    assert not [url for _, leaked, _ in opened for url in leaked], "requests left loopback"


@pytest.fixture
def page(page_factory: Any) -> Any:
    return page_factory()
