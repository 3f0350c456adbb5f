"""Start-up: a server imports everything it serves before its first request, and refuses to
start on a spool directory that cannot hold uploads.

The import check is the real failure it guards against: a server runs from an installed copy
of the package, the copy is deleted under it (as an upgrade or an editable reinstall that
moves modules does), and every format still reads and writes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from rnnbridge.service import startup

from ..conftest import FIXTURES, ROOT, running_server

UPLOADS = {
    "keras_zip": [FIXTURES / "k3_lstm" / "m.keras"],
    "torch": [FIXTURES / "torch_lstm_1l" / "model.pt"],
    "safetensors": [FIXTURES / "torch_lstm_1l" / "model.safetensors"],
    "onnx": [FIXTURES / "onnx_lstm_forward" / "model.onnx"],
    "tf_checkpoint": [FIXTURES / "tf1_lstm" / n for n in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")],
}


def _installed_copy(site: Path) -> None:
    """The package laid out as an install lays it out: ``rnnbridge/{service,schemas}``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "rnnbridge", site / "rnnbridge", ignore=ignore)
    shutil.copytree(ROOT / "service", site / "rnnbridge" / "service", ignore=ignore)
    shutil.copytree(ROOT / "schemas", site / "rnnbridge" / "schemas", ignore=ignore)


def _zip(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in paths:
            archive.write(path, path.name)
    return buffer.getvalue()


def test_a_server_whose_package_is_removed_under_it_still_serves_every_format(tmp_path):
    site = tmp_path / "site"
    _installed_copy(site)
    env = {"PYTHONPATH": str(site), "RNNBRIDGE_TMP_DIR": str(tmp_path)}
    # run from the temp folder: from the checkout, ``python -m`` would import its ./rnnbridge
    with running_server(tmp_path, env, cwd=tmp_path) as server:
        # the HDF5 reader process is a separate interpreter: have it started before the removal
        warm = httpx.post(
            f"{server.url}/inspect", files={"file": ("m.h5", (FIXTURES / "k2_lstm_seq" / "m.h5").read_bytes())}
        )
        assert warm.status_code == 200, warm.text
        shutil.rmtree(site / "rnnbridge")
        for name, paths in UPLOADS.items():
            files = [("file", (p.name, p.read_bytes())) for p in paths]
            answer = httpx.post(f"{server.url}/inspect", files=files, timeout=60)
            assert answer.status_code == 200, f"{name}: {answer.text}"
        archive = [("file", ("ckpt.zip", _zip(UPLOADS["tf_checkpoint"])))]
        assert httpx.post(f"{server.url}/inspect", files=archive, timeout=60).status_code == 200
        keras = [("file", ("m.keras", UPLOADS["keras_zip"][0].read_bytes()))]
        for target, fmt in [("pytorch", "safetensors"), ("pytorch", "json"), ("keras", "h5"), ("onnx", "npz")]:
            answer = httpx.post(f"{server.url}/convert", files=keras, data={"target": target, "format": fmt})
            assert answer.status_code == 200, f"{target}/{fmt}: {answer.text}"
        assert "ModuleNotFoundError" not in server.log.read_text()
        assert not (site / "rnnbridge").exists()


def test_import_served_reaches_every_reader_and_writer():
    imported = set(startup.import_served())
    from rnnbridge import formats

    assert set(formats.FORMATS.values()) <= imported
    assert {"rnnbridge.formats.archive", "rnnbridge.formats.hdf5.keras_weights", "rnnbridge.outputs"} <= imported


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rnnbridge", "serve", "--port", "0"]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("spool", "says"),
    [
        ("missing", "does not exist"),
        ("a-file", "is not a directory"),
        ("/proc", "is not writable"),  # not even root can create a file there
    ],
)
def test_serve_refuses_a_spool_directory_that_cannot_hold_uploads(tmp_path, spool, says):
    (tmp_path / "a-file").write_bytes(b"")
    path = spool if spool.startswith("/") else str(tmp_path / spool)
    run = _serve({"RNNBRIDGE_TMP_DIR": path})
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"RNNBRIDGE_TMP_DIR={path} {says}" in lines[0]
