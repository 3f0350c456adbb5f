"""The torch.save reader: the shared fixtures, the files of ``data/torch`` and
torch-like zips whose pickles are assembled opcode by opcode to be hostile or malformed.

Only the tests marked ``torch`` need PyTorch; everything else runs with NumPy alone.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.torch import pickle as torch_pickle
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES
from ..fixtures_index import SHARED_MANIFEST as MANIFEST
from ..fixtures_index import needs_shared_fixtures as needs_fixtures

DATA = Path(__file__).resolve().parent / "data" / "torch"

TORCH_FIXTURES = [f for f in MANIFEST if f["id"].startswith("torch_")]


def _read(path: Path, limits: Limits | None = None):
    return torch_pickle.read([InputFile(path.name, path)], limits or Limits())


def _same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# --------------------------------------------------------------------------- #
# Pickles assembled by hand (no torch needed)
# --------------------------------------------------------------------------- #


@dataclass
class T:
    """A tensor as torch pickles it: a _rebuild_tensor_v2 call over a storage."""

    key: str
    numel: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int = 0
    storage: str = "FloatStorage"


def _lit(obj: object) -> bytes:
    """The opcodes of a plain value, without PROTO/STOP and without memo entries."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.fast = True
    pickler.dump(obj)
    return buffer.getvalue()[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _ops(value: object) -> bytes:
    if isinstance(value, T):
        pid = (
            b"("
            + _lit("storage")
            + _global("torch", value.storage)
            + _lit(value.key)
            + _lit("cpu")
            + _lit(value.numel)
            + b"tQ"
        )
        hooks = _global("collections", "OrderedDict") + b")R"
        args = pid + _lit(value.offset) + _lit(value.size) + _lit(value.stride) + b"\x89" + hooks
        return _global("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"
    if isinstance(value, dict):
        return b"}(" + b"".join(_lit(k) + _ops(v) for k, v in value.items()) + b"u"
    return _lit(value)


def _pickle(obj: object) -> bytes:
    return b"\x80\x02" + _ops(obj) + b"."


def _zip(path: Path, pkl: bytes, storages: dict[str, bytes], **extra: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        for name, content in extra.items():
            archive.writestr(f"archive/{name}", content)
        for key, content in storages.items():
            archive.writestr(f"archive/data/{key}", content)
        archive.writestr("archive/version", b"3\n")
    return path


def _legacy(path: Path, obj_pkl: bytes, storages: dict[str, bytes], numels: dict[str, int]) -> Path:
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 8},
    }
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, 2),
        pickle.dumps(1001, 2),
        pickle.dumps(sys_info, 2),
        obj_pkl,
        pickle.dumps(sorted(storages), 2),
    ]
    for key in sorted(storages):
        parts += [struct.pack("<q", numels[key]), storages[key]]
    path.write_bytes(b"".join(parts))
    return path


F32 = np.arange(24, dtype="<f4")


# --------------------------------------------------------------------------- #
# Real files
# --------------------------------------------------------------------------- #


@needs_fixtures
@pytest.mark.parametrize("fixture", TORCH_FIXTURES, ids=lambda f: f["id"])
def test_fixture_reads_bit_identically(fixture: dict) -> None:
    folder = FIXTURES / fixture["dir"]
    weights = _read(folder / "model.pt")
    for layer in fixture["layers"]:
        native = np.load(folder / layer["native_npz"])
        for role, spec in layer["weights"].items():
            _same(weights.tensors[spec["in_files"]["model.pt"]], native[role])
    assert weights.format == "torch"
    assert weights.attrs == {"container_key": None, "ignored_entries": []}


@pytest.mark.parametrize(
    "case", ["checkpoint", "dtypes", "views", "nested", "dataparallel", "legacy"]
)
def test_static_file_reads_as_torch_does(case: str) -> None:
    weights = _read(DATA / f"{case}.pt")
    expected = np.load(DATA / f"{case}.expected.npz")
    assert sorted(weights.tensors) == sorted(expected.files)
    for name in expected.files:
        _same(weights.tensors[name], expected[name])


def test_checkpoint_dict_uses_model_state_dict() -> None:
    weights = _read(DATA / "checkpoint.pt")
    assert weights.attrs == {
        "container_key": "model_state_dict",
        "ignored_entries": ["epoch", "optimizer", "loss"],
    }
    assert any("model_state_dict" in note for note in weights.notes)


def test_nested_dicts_are_flattened_and_leaves_listed() -> None:
    weights = _read(DATA / "nested.pt")
    assert "encoder.rnn.weight_ih_l0" in weights.tensors
    assert "decoder.cell.weight" in weights.tensors
    assert weights.attrs["ignored_entries"] == ["decoder.steps", "name", "scale", "nothing", "lrs"]


def test_dataparallel_prefix_is_stripped_with_a_note() -> None:
    weights = _read(DATA / "dataparallel.pt")
    assert all(not name.startswith("module.") for name in weights.tensors)
    assert any("module." in note for note in weights.notes)


def test_bfloat16_is_widened_with_a_note() -> None:
    weights = _read(DATA / "dtypes.pt")
    assert weights.tensors["bfloat16"].dtype == np.float32
    assert any("bfloat16" in note for note in weights.notes)


def test_custom_class_is_refused() -> None:
    with pytest.raises(UnsafeInput) as info:
        _read(DATA / "custom_class.pt")
    assert info.value.code == "unsafe_pickle"
    assert info.value.extra["refused"] == "__main__.Config"


@pytest.mark.parametrize(
    "path",
    [DATA / "views.pt", DATA / "legacy.pt"]
    + [FIXTURES / f["dir"] / "model.pt" for f in TORCH_FIXTURES],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_accepts_torch_files(path: Path) -> None:
    assert torch_pickle.sniff([InputFile(path.name, path)])


@needs_fixtures
@pytest.mark.parametrize(
    "relative",
    [
        "torch_lstm_1l/model.safetensors",
        "k3_lstm/m.keras",
        "k3_lstm/m.h5",
        "torch_lstm_1l/rnn0.native.npz",
        "onnx_lstm_forward/model.onnx",
    ],
)
def test_sniff_rejects_other_formats(relative: str) -> None:
    path = FIXTURES / relative
    assert not torch_pickle.sniff([InputFile(path.name, path)])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04", b"\x80\x02K\x01.", os.urandom(64)])
def test_sniff_rejects_junk(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert not torch_pickle.sniff([InputFile(path.name, path)])


# --------------------------------------------------------------------------- #
# Hostile pickles: refused, and nothing runs
# --------------------------------------------------------------------------- #


class _Payload:
    def __init__(self, call: object, args: tuple) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple:
        return self.call, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.eval": _Payload(eval, (f"open({str(marker)!r}, 'w').close()",)),
        "builtins.exec": _Payload(exec, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
    }


@pytest.mark.parametrize(
    "payload", ["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"]
)
@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_reduce_payload_is_refused(
    tmp_path: Path, payload: str, protocol: int, container: str
) -> None:
    marker = tmp_path / "pwned"
    pkl = pickle.dumps({"x": _payloads(marker)[payload]}, protocol=protocol)
    if container == "zip":
        path = _zip(tmp_path / "model.pt", pkl, {})
    else:
        path = _legacy(tmp_path / "model.pt", pkl, {}, {})
    with pytest.raises(UnsafeInput) as info:
        _read(path)
    assert info.value.code == "unsafe_pickle"
    assert not marker.exists()


def test_payload_after_a_valid_tensor_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pkl = _pickle({"w": T("0", 4, (4,), (1,))})[:-2]  # drop SETITEMS and STOP
    pkl += _lit("x") + pickle.dumps(_payloads(marker)["os.system"], 2)[2:-1] + b"u."
    path = _zip(tmp_path / "model.pt", pkl, {"0": F32[:4].tobytes()})
    with pytest.raises(UnsafeInput, match="posix.system|os.system"):
        _read(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "pkl",
    [
        b"(S'touch pwned'\nios\nsystem\n.",  # INST
        b"\x80\x02" + _global("builtins", "object") + b")\x81.",  # NEWOBJ
        b"\x80\x02\x82\x01.",  # EXT1
    ],
    ids=["INST", "NEWOBJ", "EXT1"],
)
def test_object_building_opcodes_are_refused(tmp_path: Path, pkl: bytes) -> None:
    with pytest.raises(UnsafeInput) as info:
        _read(_zip(tmp_path / "model.pt", pkl, {}))
    assert info.value.code == "unsafe_pickle"


def test_stack_global_goes_through_the_allow_list(tmp_path: Path) -> None:
    pkl = b"\x80\x04" + _lit("os") + _lit("system") + b"\x93" + _lit(("true",)) + b"R."
    with pytest.raises(UnsafeInput, match="os.system"):
        _read(_zip(tmp_path / "model.pt", pkl, {}))


# --------------------------------------------------------------------------- #
# Hand-built files that are valid
# --------------------------------------------------------------------------- #


def test_shared_storage_with_offsets_and_strides(tmp_path: Path) -> None:
    base = F32.reshape(4, 6)
    obj = {
        "base": T("0", 24, (4, 6), (6, 1)),
        "transposed": T("0", 24, (6, 4), (1, 6)),
        "window": T("0", 24, (2, 3), (6, 1), offset=8),
        "column": T("0", 24, (4,), (6,), offset=5),
        "broadcast": T("0", 24, (3, 2), (0, 1), offset=22),
    }
    weights = _read(_zip(tmp_path / "m.pt", _pickle(obj), {"0": F32.tobytes()}))
    expected = {
        "base": base,
        "transposed": base.T,
        "window": base[1:3, 2:5],
        "column": base[:, 5],
        "broadcast": np.tile(F32[22:], (3, 1)),
    }
    for name, array in expected.items():
        _same(weights.tensors[name], np.ascontiguousarray(array))


def test_big_endian_storages_are_read_in_native_order(tmp_path: Path) -> None:
    obj = {"w": T("0", 24, (4, 6), (6, 1)), "i": T("1", 3, (3,), (1,), storage="LongStorage")}
    storages = {"0": F32.astype(">f4").tobytes(), "1": np.arange(3, dtype=">i8").tobytes()}
    weights = _read(_zip(tmp_path / "m.pt", _pickle(obj), storages, byteorder=b"big"))
    _same(weights.tensors["w"], F32.reshape(4, 6))
    _same(weights.tensors["i"], np.arange(3, dtype=np.int64))


def test_bfloat16_and_bool_storages(tmp_path: Path) -> None:
    bf16 = np.array([1.0, -2.5, 3.140625, np.inf], dtype="<f4")
    bits = (bf16.view("<u4") >> 16).astype("<u2")
    obj = {
        "b": T("0", 4, (2, 2), (1, 2), storage="BFloat16Storage"),
        "flag": T("1", 3, (3,), (1,), storage="BoolStorage"),
    }
    storages = {"0": bits.tobytes(), "1": bytes([0, 1, 2])}
    weights = _read(_zip(tmp_path / "m.pt", _pickle(obj), storages))
    _same(weights.tensors["b"], bf16.reshape(2, 2).T.copy())
    _same(weights.tensors["flag"], np.array([False, True, True]))
    assert any("bfloat16" in note and "b" in note for note in weights.notes)


@pytest.mark.parametrize(
    ("obj", "key", "names"),
    [
        (
            {"model": {"a": T("0", 1, (), ())}, "state_dict": {"b": T("0", 1, (), ())}},
            "state_dict",
            ["b"],
        ),
        ({"model": "resnet", "net": {"a": T("0", 1, (), ())}}, "net", ["a"]),
        ({"model": {"steps": 3}, "w": T("0", 1, (), ())}, None, ["w"]),
        ({"module": {"a": {"b": T("0", 1, (), ())}}}, "module", ["a.b"]),
    ],
    ids=["state_dict-first", "net", "container-without-tensors", "module-key"],
)
def test_checkpoint_container_choice(
    tmp_path: Path, obj: dict, key: str | None, names: list
) -> None:
    weights = _read(_zip(tmp_path / "m.pt", _pickle(obj), {"0": F32[:1].tobytes()}))
    assert weights.attrs["container_key"] == key
    assert sorted(weights.tensors) == names


@pytest.mark.parametrize(
    ("names", "stripped"),
    [(["module.a", "module.b"], ["a", "b"]), (["module.a", "b"], ["b", "module.a"])],
)
def test_module_prefix_only_stripped_from_every_key(
    tmp_path: Path, names: list, stripped: list
) -> None:
    obj = {name: T("0", 1, (), ()) for name in names}
    weights = _read(_zip(tmp_path / "m.pt", _pickle(obj), {"0": F32[:1].tobytes()}))
    assert sorted(weights.tensors) == stripped


def test_legacy_hand_built(tmp_path: Path) -> None:
    obj = {"w": T("k1", 24, (6, 4), (1, 6)), "d": T("k2", 2, (2,), (1,), storage="DoubleStorage")}
    pid_pkl = _pickle(obj).replace(_lit("cpu") + _lit(24) + b"t", _lit("cpu") + _lit(24) + b"Nt")
    pid_pkl = pid_pkl.replace(_lit("cpu") + _lit(2) + b"t", _lit("cpu") + _lit(2) + b"Nt")
    storages = {"k1": F32.tobytes(), "k2": np.array([0.5, 2.0]).tobytes()}
    weights = _read(_legacy(tmp_path / "m.pt", pid_pkl, storages, {"k1": 24, "k2": 2}))
    _same(weights.tensors["w"], F32.reshape(4, 6).T.copy())
    _same(weights.tensors["d"], np.array([0.5, 2.0]))


# --------------------------------------------------------------------------- #
# Malformed files
# --------------------------------------------------------------------------- #


@needs_fixtures
@pytest.mark.parametrize("keep", [0.5, 0.9, 120])
def test_truncated_zip(tmp_path: Path, keep: float) -> None:
    content = (FIXTURES / "torch_lstm_1l" / "model.pt").read_bytes()
    path = tmp_path / "model.pt"
    path.write_bytes(content[: int(len(content) * keep) if keep < 1 else int(keep)])
    assert torch_pickle.sniff([InputFile(path.name, path)])
    with pytest.raises(MalformedFile):
        _read(path)


def test_truncated_legacy(tmp_path: Path) -> None:
    content = (DATA / "legacy.pt").read_bytes()
    for cut in (20, 200, len(content) - 3):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(content[:cut])
        with pytest.raises(MalformedFile):
            _read(path)


@pytest.mark.parametrize(
    ("obj", "storages", "message"),
    [
        ({"w": T("0", 6, (6,), (1,))}, {}, "no member"),
        ({"w": T("0", 6, (6,), (1,))}, {"0": F32[:5].tobytes()}, "holds 20 bytes"),
        ({"w": T("0", 6, (2, 4), (4, 1))}, {"0": F32[:6].tobytes()}, "reaches element 7"),
        ({"w": T("0", 6, (2,), (1,), offset=5)}, {"0": F32[:6].tobytes()}, "reaches element 6"),
        ({"w": T("0", 6, (2, 3), (3, -1))}, {"0": F32[:6].tobytes()}, "not an int >= 0"),
        ({"w": T("0", 6, (2, 3), (3,))}, {"0": F32[:6].tobytes()}, "differ in length"),
        (
            {"w": T("0", 6, (6,), (1,)), "v": T("0", 3, (3,), (1,), storage="DoubleStorage")},
            {"0": F32[:6].tobytes()},
            "declared twice",
        ),
        (
            {"w": T("0", 6, (6,), (1,), storage="ShortStorage")},
            {"0": F32[:6].tobytes()},
            "holds 24 bytes",
        ),
        (
            {"a.b": T("0", 1, (), ()), "a": {"b": T("0", 1, (), ())}},
            {"0": F32[:1].tobytes()},
            "two tensors",
        ),
    ],
    ids=[
        "missing-member",
        "short-member",
        "stride-past-end",
        "offset-past-end",
        "negative-stride",
        "size-stride-mismatch",
        "dtype-conflict",
        "member-size-mismatch",
        "duplicate-name",
    ],
)
def test_malformed_tensor_layout(tmp_path: Path, obj: dict, storages: dict, message: str) -> None:
    with pytest.raises(MalformedFile, match=message):
        _read(_zip(tmp_path / "m.pt", _pickle(obj), storages))


@pytest.mark.parametrize(
    ("pkl", "message"),
    [
        (b"not a pickle at all", "opcode"),
        (b"\x80\x02}q\x00(", "STOP"),
        (b"\x80\x02]r\xff\xff\xff\x7f.", "memo index"),
        (b"\x80\x02" + _global("torch", "FloatStorage") + b"}b.", "sets state"),
        (b"\x80\x02(X\x06\x00\x00\x00moduleK\x01tQ.", "persistent id"),
        (
            b"\x80\x02" + _global("torch._utils", "_rebuild_tensor_v2") + b"(K\x01K\x00))\x89)tR.",
            "not a storage",
        ),
        (b"\x80\x02" + b"}q\x00" + _lit("self") + b"h\x00s.", "nested deeper"),
        (
            b"\x80\x02" + (b"}" + _lit("k")) * 100_000 + b"}" + b"s" * 100_000 + b".",
            "nested deeper",
        ),
        (b"\x80\x02" + b"X\xff\xff\xff\x7fabc.", "bytes"),
    ],
    ids=[
        "garbage",
        "no-stop",
        "memo-skip",
        "build-on-storage-type",
        "bad-persistent-id",
        "rebuild-without-storage",
        "cycle",
        "deep-nesting",
        "length-past-end",
    ],
)
def test_malformed_pickles(tmp_path: Path, pkl: bytes, message: str) -> None:
    with pytest.raises(MalformedFile, match=message):
        _read(_zip(tmp_path / "m.pt", pkl, {}))


def test_deep_nesting_is_malformed(tmp_path: Path) -> None:
    obj: object = {"w": T("0", 1, (), ())}
    for _ in range(100):
        obj = {"k": obj}
    with pytest.raises(MalformedFile, match="nested deeper"):
        _read(_zip(tmp_path / "m.pt", _pickle(obj), {"0": F32[:1].tobytes()}))


def test_bad_byteorder(tmp_path: Path) -> None:
    obj = {"w": T("0", 1, (), ())}
    with pytest.raises(MalformedFile, match="byteorder"):
        _read(_zip(tmp_path / "m.pt", _pickle(obj), {"0": F32[:1].tobytes()}, byteorder=b"middle"))


def test_legacy_object_pickle_larger_than_the_first_window(tmp_path: Path) -> None:
    obj = {"w": T("k", 4, (4,), (1,)), "notes": "x" * 300_000}
    pid_pkl = _pickle(obj).replace(b"K\x04t", b"K\x04Nt")
    weights = _read(_legacy(tmp_path / "m.pt", pid_pkl, {"k": F32[:4].tobytes()}, {"k": 4}))
    _same(weights.tensors["w"], F32[:4])
    assert weights.attrs["ignored_entries"] == ["notes"]


def test_legacy_storage_count_mismatch(tmp_path: Path) -> None:
    pid_pkl = _pickle({"w": T("k", 4, (4,), (1,))}).replace(b"K\x04t", b"K\x04Nt")
    path = _legacy(tmp_path / "m.pt", pid_pkl, {"k": F32[:4].tobytes()}, {"k": 5})
    with pytest.raises(MalformedFile, match="holds 5 elements"):
        _read(path)


@pytest.mark.parametrize(
    ("pkl", "extra"),
    [
        (_pickle([1, 2]), {}),
        (_pickle({"w": T("0", 1, (), ())}), {"code/__torch__.py": b""}),
        (b"\x80\x02" + _global("torch._utils", "_rebuild_sparse_tensor") + b".", {}),
    ],
    ids=["top-level-list", "torchscript", "sparse"],
)
def test_unsupported(tmp_path: Path, pkl: bytes, extra: dict) -> None:
    with pytest.raises(UnsupportedFormat):
        _read(_zip(tmp_path / "m.pt", pkl, {"0": F32[:1].tobytes()}, **extra))


def test_float8_v3_tensor_is_unsupported(tmp_path: Path) -> None:
    pid = (
        b"("
        + _lit("storage")
        + _global("torch.storage", "UntypedStorage")
        + _lit("0")
        + _lit("cpu")
        + _lit(4)
        + b"tQ"
    )
    hooks = _global("collections", "OrderedDict") + b")R"
    args = (
        pid
        + _lit(0)
        + _lit((4,))
        + _lit((1,))
        + b"\x89"
        + hooks
        + _global("torch", "float8_e4m3fn")
    )
    pkl = (
        b"\x80\x02}("
        + _lit("w")
        + _global("torch._utils", "_rebuild_tensor_v3")
        + b"("
        + args
        + b"tRu."
    )
    with pytest.raises(UnsupportedFormat, match="float8_e4m3fn"):
        _read(_zip(tmp_path / "m.pt", pkl, {"0": bytes(4)}))


@pytest.mark.parametrize(
    ("limits", "message"),
    [(Limits(max_tensor_elements=23), "24 elements"), (Limits(max_total_bytes=95), "96 bytes")],
)
def test_limits(tmp_path: Path, limits: Limits, message: str) -> None:
    path = _zip(tmp_path / "m.pt", _pickle({"w": T("0", 24, (4, 6), (6, 1))}), {"0": F32.tobytes()})
    with pytest.raises(LimitExceeded, match=message):
        _read(path, limits)


def test_two_torch_files_are_refused() -> None:
    files = [InputFile(p.name, p) for p in (DATA / "views.pt", DATA / "legacy.pt")]
    with pytest.raises(UnsupportedFormat, match="found 2"):
        torch_pickle.read(files, Limits())


# --------------------------------------------------------------------------- #
# Against torch itself
# --------------------------------------------------------------------------- #


def _torch_expected(obj: object) -> dict[str, np.ndarray]:
    import torch

    out = {}
    for name, tensor in obj.items():
        tensor = tensor.detach()
        out[name] = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    return out


@pytest.mark.torch
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_against_torch_views_and_dtypes(tmp_path: Path, zipped: bool) -> None:
    torch = pytest.importorskip("torch")
    base = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    obj = {
        "transposed": base.t(),
        "window": base[2:4, 1:6:2],
        "half": base.half(),
        "double": base.double()[1:],
        "bf16": base.bfloat16(),
        "param": torch.nn.Parameter(base[3]),
    }
    torch.save(obj, tmp_path / "m.pt", _use_new_zipfile_serialization=zipped)
    weights = _read(tmp_path / "m.pt")
    for name, expected in _torch_expected(obj).items():
        _same(weights.tensors[name], np.ascontiguousarray(expected))


@pytest.mark.torch
def test_against_torch_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.GRU(3, 2, num_layers=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 3))[0].sum().backward()
    optimizer.step()
    state = model.state_dict()
    ckpt = {"model_state_dict": state, "epoch": 3, "optimizer": optimizer.state_dict()}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    weights = _read(tmp_path / "ckpt.pt")
    assert weights.attrs["container_key"] == "model_state_dict"
    assert weights.attrs["ignored_entries"] == ["epoch", "optimizer"]
    for name, expected in _torch_expected(state).items():
        _same(weights.tensors[name], expected)


class _Custom:
    pass


@pytest.mark.torch
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_against_torch_custom_class_is_refused(tmp_path: Path, zipped: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.save(
        {"w": torch.ones(2), "c": _Custom()},
        tmp_path / "m.pt",
        _use_new_zipfile_serialization=zipped,
    )
    with pytest.raises(UnsafeInput, match="_Custom"):
        _read(tmp_path / "m.pt")
