"""keras_h5: real tf_keras / Keras 3 files, hand-built layouts and hostile HDF5 files."""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.hdf5 import safety as hdf5_safety
from rnnbridge.formats.hdf5 import keras_h5
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES

DATA = Path(__file__).resolve().parent / "data" / "keras"
needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "manifest.json").is_file(), reason=f"shared fixtures not found at {FIXTURES}"
)


def _keras_cases() -> list:
    if not (FIXTURES / "manifest.json").is_file():
        return []
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    files = {"k2_": ("m.h5", "w.h5"), "k3_": ("m.h5", "m.weights.h5")}
    return [
        pytest.param(fx, name, id=f"{fx['id']}/{name}")
        for fx in manifest["fixtures"]
        for prefix, names in files.items()
        if fx["id"].startswith(prefix)
        for name in names
    ]


CASES = _keras_cases()


def read(path: Path, limits: Limits | None = None):
    return keras_h5.read([InputFile(path.name, path)], limits or Limits())


def assert_bit_identical(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# -- real files ----------------------------------------------------------------------


@needs_fixtures
@pytest.mark.parametrize(("fixture", "name"), CASES)
def test_every_manifest_location_is_read_bit_identical(fixture, name):
    result = read(FIXTURES / fixture["dir"] / name)
    assert result.format == "keras_h5"
    for layer in fixture["layers"]:
        native = np.load(FIXTURES / fixture["dir"] / layer["native_npz"])
        for role, weight in layer["weights"].items():
            assert_bit_identical(result.tensors[weight["in_files"][name]], native[role])


@needs_fixtures
@pytest.mark.parametrize(
    ("fixture", "name"), [c for c in CASES if c.values[1].endswith("m.h5") or c.values[1] == "w.h5"]
)
def test_keras2_layers_list_weights_in_keras_order(fixture, name):
    result = read(FIXTURES / fixture["dir"] / name)
    assert result.attrs["layout"] == "keras2"
    layers = {entry["name"]: entry for entry in result.attrs["layers"]}
    for layer in fixture["layers"]:
        expected = [
            w["in_files"][name] for w in layer["weights"].values()
        ]  # kernel, recurrent, bias; fw, bw
        assert layers[layer["name"]]["weights"] == expected
        assert len(layers[layer["name"]]["weight_names"]) == len(expected)


@needs_fixtures
@pytest.mark.parametrize(("fixture", "name"), [c for c in CASES if c.values[1] == "m.weights.h5"])
def test_keras3_objects_carry_vars_in_order_and_layer_names(fixture, name):
    result = read(FIXTURES / fixture["dir"] / name)
    assert result.attrs["layout"] == "keras3"
    objects = {tuple(o["vars"]): o for o in result.attrs["objects"]}
    for layer in fixture["layers"]:
        for direction in _directions(layer):
            roles = [r for r in layer["weights"] if r.startswith(direction)]
            found = objects[tuple(layer["weights"][r]["in_files"][name] for r in roles)]
            assert found["layer_name"] == layer["name"]
            assert result.attrs["layer_names"][found["layer"]] == layer["name"]
            assert f"{direction.rstrip('/')}_layer" in found["path"] if direction else True


def _directions(layer: dict) -> list[str]:
    return ["forward/", "backward/"] if layer["wrapper"] == "keras.Bidirectional" else [""]


@needs_fixtures
@pytest.mark.parametrize(("fixture", "name"), [c for c in CASES if c.values[1] == "m.h5"])
def test_model_save_files_carry_parsed_model_config(fixture, name):
    attrs = read(FIXTURES / fixture["dir"] / name).attrs
    assert attrs["keras_version"] == fixture["framework"]["version"]
    assert attrs["backend"] in {"tensorflow", "torch"}
    config_text = json.dumps(attrs["model_config"])
    assert all(f'"name": "{layer["name"]}"' in config_text for layer in fixture["layers"])


@needs_fixtures
@pytest.mark.parametrize(("fixture", "name"), CASES)
def test_sniff_accepts_fixture(fixture, name):
    path = FIXTURES / fixture["dir"] / name
    assert keras_h5.sniff([InputFile("upload.bin", path)])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (hdf5_safety.SIGNATURE + b"\0" * 600, True),
        (b"\0" * 512 + hdf5_safety.SIGNATURE + b"\0" * 100, True),  # user block
        (b"PK\x03\x04" + b"\0" * 600, False),
        (b'{"arrays": {}}', False),
        (b"", False),
    ],
    ids=["offset0", "offset512", "zip", "json", "empty"],
)
def test_sniff_is_by_bytes(tmp_path, content, expected):
    path = tmp_path / "weights.h5"  # the name never decides
    path.write_bytes(content)
    assert keras_h5.sniff([InputFile(path.name, path)]) is expected


def test_read_of_a_file_that_is_not_hdf5_is_malformed(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(MalformedFile):
        read(path)


def test_read_needs_one_hdf5_file(tmp_path):
    files = [InputFile(name, DATA / name) for name in ("split_names.h5", "bfloat16.weights.h5")]
    with pytest.raises(UnsupportedFormat):
        keras_h5.read(files, Limits())
    assert not keras_h5.sniff(files)


# -- hand-built layouts ---------------------------------------------------------------


def test_split_attributes_bytes_names_and_soft_links():
    result = read(DATA / "split_names.h5")
    assert result.attrs["layout"] == "keras2"
    assert result.attrs["keras_version"] == "2.3.1"
    assert [entry["name"] for entry in result.attrs["layers"]] == ["input_1", "lstm_1", "dense_1"]
    lstm = result.attrs["layers"][1]
    assert lstm["weight_names"] == ["lstm_1/kernel:0", "lstm_1/recurrent_kernel:0", "lstm_1/bias:0"]
    assert lstm["weights"] == ["lstm_1/" + n for n in lstm["weight_names"]]
    # the soft-linked bias is listed under the dataset's own (hard-link) path, once
    assert result.attrs["layers"][2]["weights"] == [
        "dense_1/dense_1/kernel:0",
        "dense_1/shared/bias",
    ]
    assert "dense_1/dense_1/bias:0" not in result.tensors
    assert result.attrs["skipped"] == ["notes"]


@pytest.mark.parametrize(
    ("path", "dtype", "base"),
    [
        ("lstm_1/lstm_1/kernel:0", np.float32, 1),  # gzip + shuffle + fletcher32
        ("lstm_1/lstm_1/recurrent_kernel:0", np.float32, 2),
        ("lstm_1/lstm_1/bias:0", np.float32, 3),  # stored big-endian
        ("dense_1/dense_1/kernel:0", np.float64, 4),
        ("dense_1/shared/bias", np.float16, 5),
    ],
)
def test_hand_built_values_keep_stored_dtype_in_native_order(path, dtype, base):
    array = read(DATA / "split_names.h5").tensors[path]
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    expected = (base + np.arange(array.size) / 1000).astype(np.float32).astype(dtype)
    np.testing.assert_array_equal(array.reshape(-1), expected)


def test_bfloat16_is_widened_exactly_with_a_note():
    result = read(DATA / "bfloat16.weights.h5")
    kernel = result.tensors["layers/lstm/cell/vars/0"]
    assert kernel.dtype == np.float32 and kernel.shape == (3, 8)
    fingerprint = (1 + np.arange(24) / 1000).astype(np.float32)
    truncated = (fingerprint.view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(kernel.reshape(-1), truncated)
    assert any("bfloat16" in note for note in result.notes)
    [obj] = result.attrs["objects"]
    assert obj["name"] == "lstm_cell" and obj["layer_name"] == "my_lstm"
    assert obj["vars"] == [f"layers/lstm/cell/vars/{i}" for i in range(3)]


def test_keras3_vars_are_in_numeric_order(tmp_path):
    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "d"
        for i in (0, 1, 2, 10, 11):
            f[f"layers/dense/vars/{i}"] = np.full(2, i, np.float32)
    [obj] = read(path).attrs["objects"]
    assert obj["vars"] == [f"layers/dense/vars/{i}" for i in (0, 1, 2, 10, 11)]


def test_plain_hdf5_of_arrays(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["a/b"] = np.arange(6, dtype=np.int16).reshape(2, 3)
        f["scalar"] = np.float64(2.5)
    result = read(path)
    assert result.attrs["layout"] == "plain" and result.attrs["model_config"] is None
    assert result.tensors["a/b"].dtype == np.int16 and result.tensors["scalar"].shape == ()


@pytest.mark.parametrize("missing", ["lstm_1/kernel:0", "no_such_layer"])
def test_unresolvable_keras2_name_is_malformed_and_named(tmp_path, missing):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        layer = "no_such_layer" if missing == "no_such_layer" else "lstm_1"
        f.attrs["layer_names"] = np.array([layer.encode()])
        f.create_group("lstm_1").attrs["weight_names"] = np.array([b"lstm_1/kernel:0"])
    with pytest.raises(MalformedFile, match=missing):
        read(path)


def test_hard_link_cycles_and_aliases_are_walked_once(tmp_path):
    path = tmp_path / "cycle.h5"
    with h5py.File(path, "w") as f:
        f["g/x"] = np.arange(3.0)
        f["g/loop"] = f["/"]  # a hard link back to the root
        f["alias"] = f["g/x"]
        f["soft"] = h5py.SoftLink("/g")
        f["dangling"] = h5py.SoftLink("/nowhere")
    # one dataset, under the path met first: a group's links come before its subgroups'
    assert list(read(path).tensors) == ["alias"]


# -- hostile files --------------------------------------------------------------------


@pytest.fixture
def marker(tmp_path):
    """An HDF5 file outside the upload, with its access time set far in the past."""
    path = tmp_path / "outside" / "secret.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f["secret"] = np.arange(16, dtype=np.float64)
    os.utime(path, (0, time.time()))
    return path


def _atime_moves_when_read(path: Path) -> bool:
    """Positive control: whether reading ``path`` updates its atime on this filesystem."""
    probe = path.with_name("probe.h5")
    shutil.copy(path, probe)
    os.utime(probe, (0, time.time()))
    with h5py.File(probe, "r") as f:
        f["secret"][()]
    return os.stat(probe).st_atime > 0


def _external_link(upload: Path, marker: Path) -> None:
    with h5py.File(upload, "w") as f:
        f["a/fine"] = np.zeros(2)
        f["a/z_link"] = h5py.ExternalLink(str(marker), "/secret")
        f["b_soft"] = h5py.SoftLink("/a/z_link")


def _external_storage(upload: Path, marker: Path) -> None:
    with h5py.File(upload, "w") as f:
        f.create_dataset("raw", shape=(16,), dtype=np.float64, external=[(str(marker), 0, 128)])


def _virtual(upload: Path, marker: Path) -> None:
    layout = h5py.VirtualLayout(shape=(16,), dtype=np.float64)
    layout[:] = h5py.VirtualSource(str(marker), "secret", shape=(16,))
    with h5py.File(upload, "w") as f:
        f.create_virtual_dataset("virtual", layout)


@pytest.mark.parametrize(
    ("build", "code", "where"),
    [
        (_external_link, "hdf5_external_link", "a/z_link"),
        (_external_storage, "hdf5_external_storage", "raw"),
        (_virtual, "hdf5_virtual_dataset", "virtual"),
    ],
    ids=["external_link", "external_storage", "virtual_dataset"],
)
def test_references_outside_the_file_are_refused_unread(tmp_path, marker, build, code, where):
    upload = tmp_path / "upload.h5"
    build(upload, marker)
    content = marker.read_bytes()
    os.utime(marker, (0, time.time()))
    with pytest.raises(UnsafeInput) as info:
        read(upload)
    assert info.value.code == code and info.value.tensor == where and where in info.value.detail
    assert marker.read_bytes() == content
    if _atime_moves_when_read(marker):
        # read_bytes above updated the atime; reset it and read the upload again
        os.utime(marker, (0, time.time()))
        with pytest.raises(UnsafeInput):
            read(upload)
        assert os.stat(marker).st_atime == 0


@pytest.mark.parametrize(
    "options",
    [{"compression": 32004, "allow_unknown_filter": True}, {"scaleoffset": 0}],
    ids=["plugin_filter", "scaleoffset"],
)
def test_filters_outside_the_allowed_set_are_refused(tmp_path, options):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(8,), dtype=np.int32, chunks=(4,), **options)
    with pytest.raises(UnsafeInput) as info:
        read(path)
    assert info.value.code == "hdf5_filter" and info.value.tensor == "x"


def test_a_chunk_that_inflates_past_its_size_is_refused(tmp_path):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset(
            "x", shape=(16,), dtype=np.float32, chunks=(16,), compression="gzip"
        )
        dset.id.write_direct_chunk(
            (0,), zlib.compress(b"\0" * 10_000_000, 9)
        )  # 10 MB for a 64 B chunk
    assert path.stat().st_size < 100_000
    with pytest.raises(UnsafeInput, match="inflates"):
        read(path)


@pytest.mark.parametrize(
    ("size", "limits", "match"),
    [
        (10**12, Limits(), "elements"),
        (1000, Limits(max_tensor_elements=10), "elements"),
        (1000, Limits(max_total_bytes=100), "bytes"),
    ],
)
def test_declared_sizes_are_bounded_before_reading(tmp_path, size, limits, match):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("huge", shape=(size,), dtype=np.float32, chunks=(64,))  # nothing written
    with pytest.raises(LimitExceeded, match=match):
        read(path, limits)


def test_the_number_of_links_is_bounded(tmp_path):
    path = tmp_path / "wide.h5"
    with h5py.File(path, "w") as f:
        for i in range(50):
            f.create_group(f"g{i}")
    with h5py.File(path, "r") as f, pytest.raises(LimitExceeded, match="links"):
        hdf5_safety.inventory(f, Limits(), max_objects=20)


@needs_fixtures
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("name", ["k2_bilstm/m.h5", "k3_stacked_gru/m.weights.h5"])
def test_truncated_copies_are_malformed(tmp_path, name, fraction):
    data = (FIXTURES / name).read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(MalformedFile, match="truncated or corrupt"):
        read(path)


def test_garbage_after_the_signature_is_malformed(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(hdf5_safety.SIGNATURE + bytes(range(256)) * 8)
    with pytest.raises(MalformedFile):
        read(path)
