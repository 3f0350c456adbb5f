"""keras_zip: real Keras 3 ``.keras`` archives and broken or hostile ones."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.hdf5 import keras_zip
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES

MEMBER = "model.weights.h5:"


def _keras3_fixtures() -> list:
    if not (FIXTURES / "manifest.json").is_file():
        return []
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    return [
        pytest.param(fx, id=fx["id"]) for fx in manifest["fixtures"] if fx["id"].startswith("k3_")
    ]


K3 = _keras3_fixtures()
needs_fixtures = pytest.mark.skipif(not K3, reason=f"shared fixtures not found at {FIXTURES}")


def read(path: Path, limits: Limits | None = None):
    return keras_zip.read([InputFile(path.name, path)], limits or Limits())


def _class_names_and_names(config) -> tuple[set[str], set[str]]:
    classes, names = set(), set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            classes.add(node.get("class_name"))
            if isinstance(node.get("name"), str):
                names.add(node["name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return classes, names


@needs_fixtures
@pytest.mark.parametrize("fixture", K3)
def test_every_manifest_location_is_read_bit_identical(fixture):
    result = read(FIXTURES / fixture["dir"] / "m.keras")
    assert result.format == "keras_zip" and result.attrs["layout"] == "keras3"
    assert result.attrs["member"] == "model.weights.h5"
    for layer in fixture["layers"]:
        native = np.load(FIXTURES / fixture["dir"] / layer["native_npz"])
        for role, weight in layer["weights"].items():
            location = weight["in_files"]["m.keras"]
            assert location.startswith(MEMBER)
            array = result.tensors[location[len(MEMBER) :]]
            assert array.dtype == native[role].dtype and array.tobytes() == native[role].tobytes()
            assert array.shape == native[role].shape


@needs_fixtures
@pytest.mark.parametrize("fixture", K3)
def test_config_and_metadata_are_parsed(fixture):
    attrs = read(FIXTURES / fixture["dir"] / "m.keras").attrs
    assert attrs["keras_version"] == fixture["framework"]["version"]
    classes, names = _class_names_and_names(attrs["model_config"])
    assert {layer["name"] for layer in fixture["layers"]} <= names
    cells = {"lstm": "LSTM", "gru": "GRU"}
    assert {cells[layer["cell"]] for layer in fixture["layers"]} <= classes
    layer_names = set(attrs["layer_names"].values())
    assert {layer["name"] for layer in fixture["layers"]} <= layer_names


@needs_fixtures
@pytest.mark.parametrize("fixture", K3)
def test_temporary_copy_is_removed(tmp_path, fixture):
    read(FIXTURES / fixture["dir"] / "m.keras", Limits(tmp_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "expected"), [("m.keras", True), ("m.weights.h5", False), ("rnn0.native.npz", False)]
)
def test_sniff(name, expected):
    path = FIXTURES / K3[0].values[0]["dir"] / name
    assert keras_zip.sniff([InputFile("upload", path)]) is expected


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _h5_bytes(tmp_path: Path, build) -> bytes:
    path = tmp_path / "member.h5"
    with h5py.File(path, "w") as f:
        build(f)
    return path.read_bytes()


@pytest.mark.parametrize("missing", ["config.json", "model.weights.h5"])
def test_missing_member_is_malformed_and_named(tmp_path, missing):
    members = {"config.json": b"{}", "metadata.json": b"{}", "model.weights.h5": b""}
    del members[missing]
    path = _zip(tmp_path / "x.keras", members)
    assert not keras_zip.sniff([InputFile(path.name, path)])
    with pytest.raises(MalformedFile, match=missing):
        read(path)


def test_weights_member_that_is_not_hdf5_is_malformed(tmp_path):
    path = _zip(tmp_path / "x.keras", {"config.json": b"{}", "model.weights.h5": b"nope"})
    with pytest.raises(MalformedFile, match="HDF5"):
        read(path, Limits(tmp_dir=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.keras"]


def test_npz_weights_variant_is_refused(tmp_path):
    path = _zip(tmp_path / "x.keras", {"config.json": b"{}", "model.weights.npz": b"PK"})
    with pytest.raises(UnsafeInput) as info:
        read(path)
    assert info.value.code == "object_array"


@pytest.mark.parametrize(
    "config", [b"[" * 100_000, b'{"a": ', b"\xff\xfe"], ids=["deep", "cut", "not_utf8"]
)
def test_bad_config_is_malformed(tmp_path, config):
    path = _zip(tmp_path / "x.keras", {"config.json": config, "model.weights.h5": b""})
    with pytest.raises(MalformedFile, match="config.json"):
        read(path)


def test_oversized_weights_member_is_refused_before_copying(tmp_path):
    weights = _h5_bytes(tmp_path, lambda f: f.create_dataset("x", data=np.zeros(1000)))
    path = _zip(tmp_path / "x.keras", {"config.json": b"{}", "model.weights.h5": weights})
    with pytest.raises(LimitExceeded, match="model.weights.h5"):
        read(path, Limits(max_total_bytes=1000))


def test_hdf5_guards_apply_inside_the_archive(tmp_path):
    def build(f):
        f["layers/lstm/cell/vars/0"] = np.zeros(3, np.float32)
        f["layers/lstm/cell/vars/1"] = h5py.ExternalLink("/etc/hostname", "/x")

    path = _zip(
        tmp_path / "x.keras", {"config.json": b"{}", "model.weights.h5": _h5_bytes(tmp_path, build)}
    )
    with pytest.raises(UnsafeInput) as info:
        read(path)
    assert info.value.code == "hdf5_external_link"


@needs_fixtures
def test_truncated_archive_is_not_read(tmp_path):
    data = (FIXTURES / K3[0].values[0]["dir"] / "m.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])  # the central directory is gone
    assert not keras_zip.sniff([InputFile(path.name, path)])
    with pytest.raises(MalformedFile, match="zip"):
        read(path)


def test_read_needs_one_archive(tmp_path):
    files = [InputFile(n, _zip(tmp_path / n, {"a": b""})) for n in ("a.zip", "b.zip")]
    with pytest.raises(UnsupportedFormat):
        keras_zip.read(files, Limits())


@needs_fixtures
def test_corrupt_member_is_malformed(tmp_path):
    source = FIXTURES / K3[0].values[0]["dir"] / "m.keras"
    with zipfile.ZipFile(source) as archive:
        offset = archive.getinfo("model.weights.h5").header_offset
    data = bytearray(source.read_bytes())
    data[offset + 200 : offset + 400] = bytes(200)  # inside the stored HDF5 bytes: CRC fails
    path = tmp_path / "bad.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(MalformedFile):
        read(path)
