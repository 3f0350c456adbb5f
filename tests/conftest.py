"""Shared fixtures: the real framework files, an in-process client, and a real server.

``client`` drives ``create_app(test_settings)`` in process (Starlette's TestClient);
``server_url`` starts the real ``python -m rnnbridge serve`` on a free loopback port once
per session, with a small upload limit and one conversion at a time, and stops it at the
end; ``two_worker_server`` is the same with ``--workers 2`` and a known metrics directory.
``running_server`` starts one for a single test (e.g. to stop it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from rnnbridge.service.settings import Settings

#: the committed copy of the shared fixtures (tests/fixtures_index.py)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shared"
ROOT = Path(__file__).resolve().parents[1]

#: the upload limit of the test app and the test server: far above the fixtures, cheap to exceed
TEST_UPLOAD_LIMIT = 256 * 1024


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"the shared fixtures are missing: {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def keras_lstm(fixtures_dir: Path) -> Path:
    """A Keras 2 ``model.save`` file holding one LSTM layer named ``lstm``."""
    return fixtures_dir / "k2_lstm_seq" / "m.h5"


@pytest.fixture
def test_settings(tmp_path: Path) -> Settings:
    # imported here, not at the top, so that a broken transport fails its own tests only
    from rnnbridge.service.settings import Settings

    spool = tmp_path / "spool"
    spool.mkdir()
    return Settings(max_upload_bytes=TEST_UPLOAD_LIMIT, tmp_dir=spool)


@pytest.fixture
def client(test_settings: Settings) -> Iterator[TestClient]:
    from rnnbridge.service import create_app

    with warnings.catch_warnings():
        # Starlette >= 1.x prefers httpx2 for its TestClient; plain httpx still works.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    with TestClient(create_app(test_settings)) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server_spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RNNBRIDGE_TMP_DIR of the real server: it must be empty between requests."""
    return tmp_path_factory.mktemp("server-spool")


@dataclass
class Server:
    """A running ``rnnbridge serve``: its base URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_server(folder: Path, env: dict[str, str], workers: int = 1, cwd: Path = ROOT) -> Iterator[Server]:
    """Run ``python -m rnnbridge serve`` (in ``cwd``) on a free loopback port until the block ends."""
    port = _free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "rnnbridge", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory, server_spool: Path) -> Iterator[str]:
    """Base URL of a real ``python -m rnnbridge serve`` on a free loopback port."""
    env = {
        "RNNBRIDGE_MAX_UPLOAD_BYTES": str(TEST_UPLOAD_LIMIT),
        "RNNBRIDGE_TMP_DIR": str(server_spool),
        "RNNBRIDGE_MAX_CONCURRENT": "1",
        "RNNBRIDGE_MAX_QUEUED": "0",
        "RNNBRIDGE_RETRY_AFTER": "7",
    }
    with running_server(tmp_path_factory.mktemp("server"), env) as server:
        yield server.url


@pytest.fixture(scope="session")
def two_worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``rnnbridge serve --workers 2``; its metrics directory is ``<log dir>/metrics``."""
    folder = tmp_path_factory.mktemp("server2")
    env = {"RNNBRIDGE_METRICS_DIR": str(folder / "metrics"), "RNNBRIDGE_TMP_DIR": str(folder)}
    with running_server(folder, env, workers=2) as server:
        yield server
