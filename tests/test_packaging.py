"""The package's legal and descriptive metadata: the Apache-2.0 text, an SPDX license
expression (PEP 639), URLs, valid classifiers and a changelog that knows the version."""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
