"""What ``pip install rnnbridge`` installs, and what it says about itself.

The wheel: one import package, ``rnnbridge``, and its version. It is built from a copy of
the files the build reads (setup.py, pyproject.toml, README.md, LICENSE and the three
package folders), so that the check also proves nothing else is needed, and nothing is
left in the repository.

The metadata: the Apache-2.0 text, an SPDX license expression (PEP 639), URLs, valid
classifiers and a changelog that knows the version.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["setup.py", "pyproject.toml", "README.md", "LICENSE", "rnnbridge", "service", "schemas"]
OFFLINE = ("No matching distribution", "Could not find a version", "Failed to establish a new connection")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if build.returncode != 0 and any(sign in build.stderr for sign in OFFLINE):
        pytest.skip("the build backend (setuptools) cannot be fetched: no package index")
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("rnnbridge-*.whl")
    return zipfile.ZipFile(built)


def test_the_only_top_level_import_name_is_rnnbridge(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"rnnbridge"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert wheel.read(top_level).decode().split() == ["rnnbridge"]


@pytest.mark.parametrize(
    "member",
    [
        "rnnbridge/py.typed",
        "rnnbridge/__main__.py",
        "rnnbridge/service/app.py",
        "rnnbridge/service/routes.py",
        "rnnbridge/service/static/swagger-ui-bundle.js",
        "rnnbridge/service/static/redoc.standalone.js",
        "rnnbridge/service/page.py",
        "rnnbridge/service/static/page/index.html",
        "rnnbridge/service/static/page/app.js",
        "rnnbridge/schemas/__init__.py",
        "rnnbridge/formats/hdf5/keras_h5.py",
        "rnnbridge/engine/_transpose.pyi",
    ],
)
def test_the_wheel_holds(wheel: zipfile.ZipFile, member: str) -> None:
    assert member in wheel.namelist()


def test_the_wheel_holds_no_tests_and_no_c_source(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".c")]


def test_the_version_is_written_once(wheel: zipfile.ZipFile) -> None:
    """pyproject.toml states it; the metadata carries it; the package reads it from there."""
    tomllib = pytest.importorskip("tomllib")

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (dist_metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    assert f"\nVersion: {declared}\n" in wheel.read(dist_metadata).decode()
    sources = [p for p in (ROOT / "rnnbridge").rglob("*.py") if declared in p.read_text()]
    assert not sources, f"the version is written in {sources}"


def test_python_m_rnnbridge_version() -> None:
    import rnnbridge

    run = subprocess.run([sys.executable, "-m", "rnnbridge", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"rnnbridge {rnnbridge.__version__}\n"
    assert rnnbridge.__version__ != "0+unknown"


#: MD5 of https://www.apache.org/licenses/LICENSE-2.0.txt, the canonical text
APACHE_2_0_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


@pytest.fixture(scope="module")
def project() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_the_full_apache_2_0_text():
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.md5(text).hexdigest() == APACHE_2_0_MD5
    assert b"TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_license_is_an_spdx_expression_with_its_file(project):
    meta = project["project"]
    assert meta["license"] == "Apache-2.0"  # a string: the TOML-table form is deprecated
    assert meta["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in meta["classifiers"])  # PEP 639: the expression says it
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in project["build-system"]["requires"])


def test_urls_and_classifiers(project):
    meta = project["project"]
    assert {"Homepage", "Source", "Changelog"} <= set(meta["urls"])
    assert all(url.startswith("https://") for url in meta["urls"].values())
    classifiers = meta["classifiers"]
    assert len(classifiers) == len(set(classifiers)) >= 5
    trove = pytest.importorskip("trove_classifiers", reason="trove-classifiers not installed")
    assert set(classifiers) <= trove.classifiers
    versions = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert min(versions, key=lambda v: tuple(map(int, v.split(".")))) == meta["requires-python"].removeprefix(">=")


def test_the_changelog_has_unreleased_and_the_current_version(project):
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(project['project']['version'])}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


def test_the_installed_metadata_carries_the_expression():
    try:
        installed = metadata.metadata("rnnbridge")
    except metadata.PackageNotFoundError:
        pytest.skip("rnnbridge is not installed")
    if installed.get("Metadata-Version", "0") < "2.4":
        pytest.skip(f"installed with metadata {installed.get('Metadata-Version')}: reinstall to refresh it")
    assert installed["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (installed.get_all("License-File") or [])
