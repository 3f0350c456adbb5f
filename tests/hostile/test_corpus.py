"""Every file of the hostile corpus, through the real app: the right 4xx, nothing read or
written outside the upload, no stack trace, no temp file left behind.

Each entry is sent to ``POST /convert`` (``target=keras``: every read, discovery and
conversion step runs) in process (``client``) and to the real server (``server_url``).
Entries that point outside the upload are rebuilt with this test's own marker folder
(``make_corpus.build(entry, markers.dir)``); the others are sent as committed.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.hostile import make_corpus
from tests.hostile.conftest import Markers

ENTRIES = {e.name: e for e in make_corpus.ENTRIES}

UNSAFE = ("unsafe_input", 400)
MALFORMED = ("malformed_file", 400)
LIMIT = ("limit_exceeded", 413)
UNSUPPORTED = ("unsupported_format", 415)

#: entry -> (error code, status) of POST /convert target=keras; None: 200
EXPECTED: dict[str, tuple[str, int] | None] = {
    "h5_external_link.h5": ("hdf5_external_link", 400),
    "h5_external_storage.h5": ("hdf5_external_storage", 400),
    "h5_virtual_dataset.h5": ("hdf5_virtual_dataset", 400),
    "h5_filter_plugin.h5": ("hdf5_filter", 400),
    "h5_scaleoffset.h5": ("hdf5_filter", 400),
    "h5_chunk_bomb.h5": ("hdf5_filter", 400),
    "h5_declared_bomb.h5": LIMIT,
    "h5_huge_shape.h5": LIMIT,
    "h5_deep_config.h5": MALFORMED,
    "h5_deep_groups.h5": ("layer_not_found", 404),
    "h5_bad_layer_names.h5": None,
    "torch_reduce.pt": ("unsafe_pickle", 400),
    "torch_legacy_reduce.pt": ("unsafe_pickle", 400),
    "torch_eval.pt": ("unsafe_pickle", 400),
    "torch_zip_version.pt": MALFORMED,
    "torch_zip_encrypted.pt": MALFORMED,
    "zip_empty_name.zip": MALFORMED,
    "npz_object_array.npz": ("object_array", 400),
    "npz_huge_shape.npz": LIMIT,
    "npz_negative_shape.npz": MALFORMED,
    "npz_bomb.npz": LIMIT,
    "zip_bomb.zip": LIMIT,
    "zip_lying_size.zip": MALFORMED,
    "tar_gz_bomb.tar.gz": LIMIT,
    "gzip_bomb.gz": UNSUPPORTED,
    "tar_gz_pax_bomb.tar.gz": LIMIT,
    "zip_dotdot.zip": UNSAFE,
    "zip_absolute.zip": UNSAFE,
    "zip_symlink.zip": UNSAFE,
    "tar_dotdot.tar": UNSAFE,
    "tar_absolute.tar": UNSAFE,
    "tar_symlink.tar": UNSAFE,
    "tar_hardlink.tar": UNSAFE,
    "tar_device.tar": UNSAFE,
    "tar_fifo.tar": UNSAFE,
    "tf_offset_past_end": MALFORMED,
    "tf_negative_offset": MALFORMED,
    "tf_overflowing_size": MALFORMED,
    "tf_huge_shape": LIMIT,
    "tf_shape_size_mismatch": MALFORMED,
    "onnx_external_absolute": ("external_data_outside_upload", 400),
    "onnx_external_dotdot": ("external_data_outside_upload", 400),
    "onnx_giant_field.onnx": MALFORMED,
    "onnx_huge_dims.onnx": MALFORMED,
    "onnx_negative_dims.onnx": MALFORMED,
    "st_header_too_long.safetensors": UNSUPPORTED,
    "st_offsets_past_end.safetensors": MALFORMED,
    "st_negative_offsets.safetensors": MALFORMED,
    "st_deep_header.safetensors": MALFORMED,
    "json_deep.json": MALFORMED,
    "json_huge_shape.json": LIMIT,
    "nan_inf.safetensors": None,
    "names_dotdot.safetensors": None,
    "names_absolute.safetensors": None,
    "names_nul.safetensors": None,
    "names_long.safetensors": None,
    "names_crlf.safetensors": None,  # found, and its name made safe (no CR/LF reaches a header)
}

#: entries whose names from the file must be made safe before they become npz members
UNSAFE_NAMES = {
    "h5_bad_layer_names.h5",
    "names_dotdot.safetensors",
    "names_absolute.safetensors",
    "names_nul.safetensors",
    "names_long.safetensors",
    "names_crlf.safetensors",
}


def _entry_params() -> list:
    return sorted(EXPECTED)


def _upload(entry: make_corpus.Entry, markers: Markers) -> list[tuple[str, tuple[str, bytes]]]:
    files = make_corpus.build(entry, markers.dir) if entry.uses_markers else make_corpus.load(entry)
    assert files, f"{entry.name} is missing: run python tests/hostile/make_corpus.py"
    return [("file", (name, data)) for name, data in files.items()]


def _check_response(response: httpx.Response, expected: tuple[str, int] | None) -> None:
    assert b"Traceback" not in response.content and b'File "/' not in response.content
    if expected is None:
        assert response.status_code == 200, response.text
        return
    code, status = expected
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_every_entry_has_an_expectation():
    from tests.hostile.test_hangs import HANGS

    assert set(EXPECTED) | HANGS == set(ENTRIES) and not set(EXPECTED) & HANGS


def test_the_corpus_is_what_the_generator_writes():
    assert make_corpus.stale() == []


def test_the_readme_names_every_entry():
    text = (make_corpus.CORPUS / "README.md").read_text()
    assert all(f"`{name}`" in text for name in ENTRIES)


def test_uploads_fit_the_test_upload_limit():
    from tests.conftest import TEST_UPLOAD_LIMIT

    for entry in make_corpus.ENTRIES:
        assert sum(map(len, make_corpus.load(entry).values())) < TEST_UPLOAD_LIMIT - 4096, entry.name


@pytest.mark.parametrize("name", _entry_params())
def test_entry_in_process(name, client, markers, test_settings):
    response = client.post("/convert", files=_upload(ENTRIES[name], markers), data={"target": "keras"})
    _check_response(response, EXPECTED[name])
    markers.assert_untouched(response.content)
    assert list(test_settings.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("name", _entry_params())
def test_entry_on_the_real_server(name, server_url, server_spool, markers):
    response = httpx.post(
        f"{server_url}/convert", files=_upload(ENTRIES[name], markers), data={"target": "keras"}, timeout=60
    )
    _check_response(response, EXPECTED[name])
    markers.assert_untouched(response.content)
    assert list(server_spool.iterdir()) == []


def test_nan_and_inf_travel_exactly(client, markers):
    response = client.post(
        "/convert", files=_upload(ENTRIES["nan_inf.safetensors"], markers), data={"target": "pytorch", "prefix": ""}
    )
    with np.load(io.BytesIO(response.content), allow_pickle=False) as npz:
        w, b = npz["weight_ih_l0"], npz["bias_hh_l0"]
    assert np.isnan(w[0]).all() and np.isposinf(w[1]).all() and np.isneginf(b[2])


def _member_names_are_safe(names: list[str], expected: int) -> None:
    assert len(names) == len(set(names)) == expected
    for name in names:
        parts = name.replace("\\", "/").split("/")
        assert "\x00" not in name and not name.startswith(("/", "\\")), name
        assert ".." not in parts and (parts[0][1:2] != ":"), name
        assert len(name.encode()) < 4096


@pytest.mark.parametrize("endpoint", ["/split", "/convert"])
@pytest.mark.parametrize("name", sorted(UNSAFE_NAMES))
def test_npz_member_names_from_the_file_are_sanitised(name, endpoint, client, markers):
    data = {"target": "keras"} if endpoint == "/convert" else {}
    response = client.post(endpoint, files=_upload(ENTRIES[name], markers), data=data)
    assert response.status_code == 200, response.text
    as_json = client.post(endpoint, files=_upload(ENTRIES[name], markers), data={**data, "format": "json"}).json()
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = [info.filename for info in archive.infolist()]
    _member_names_are_safe(names, len(as_json["arrays"]) + 1)  # + __meta__: no two names collide


HOSTILE_FILENAMES = ["../../../pwned.h5", "/abs/pwned.h5", 'q"\r\nX-Evil: 1\r\n.h5', "n\x00ul.h5", "x" * 4000 + ".h5", "..", "C:\\evil\\m.h5"]


@pytest.mark.parametrize("filename", HOSTILE_FILENAMES, ids=range(len(HOSTILE_FILENAMES)))
def test_hostile_upload_file_names(filename, client, keras_lstm, tmp_path, test_settings):
    before = sorted(p.name for p in tmp_path.iterdir())
    response = client.post("/convert", files={"file": (filename, keras_lstm.read_bytes())}, data={"target": "pytorch"})
    assert response.status_code == 200, response.text
    assert "x-evil" not in response.headers
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('"')
    sent = disposition[len('attachment; filename="') : -1]
    assert sent and set(sent) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert not sent.startswith(".") and len(sent) <= 255
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(test_settings.tmp_dir.iterdir()) == []
