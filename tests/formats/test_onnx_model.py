"""The ONNX reader: real models from the shared fixtures and from ``data/onnx``, and
models built byte by byte to be malformed or hostile."""

from __future__ import annotations

import builtins
import struct
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, RnnBridgeError, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.onnx import model as onnx_model
from rnnbridge.formats.onnx import graph as onnx_graph
from rnnbridge.formats.base import InputFile, Limits

from ..fixtures_index import SHARED_FIXTURES as FIXTURES
from ..fixtures_index import SHARED_MANIFEST as MANIFEST
from ..fixtures_index import needs_shared_fixtures as needs_fixtures
from .wire import varint

DATA = Path(__file__).resolve().parent / "data" / "onnx"

ONNX_FIXTURES = [f for f in MANIFEST if f["source"] == "onnx"]
LAYERS = [(f, layer) for f in ONNX_FIXTURES for layer in f["layers"]]
WEIGHTS = [(f, layer, role) for f, layer in LAYERS for role in layer["weights"]]
OTHER_FILES = [
    FIXTURES / f["dir"] / entry["name"]
    for f in MANIFEST
    if f["source"] != "onnx"
    for entry in f["files"]
    if (FIXTURES / f["dir"] / entry["name"]).is_file()
]


def read_fixture(fixture: dict):
    path = FIXTURES / fixture["dir"] / "model.onnx"
    return onnx_model.read([InputFile("model.onnx", path)], Limits())


# --------------------------------------------------------------------------- protobuf writer


def f_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def f_len(number: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return varint(number << 3 | 2) + varint(len(data)) + data


def f_float(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


def tensor(name: str, dims, data_type: int = 1, raw: bytes | None = None, extra: bytes = b"") -> bytes:
    out = b"".join(f_int(1, d) for d in dims) + f_int(2, data_type) + f_len(8, name)
    return out + (f_len(9, raw) if raw is not None else b"") + extra


def float_tensor(name: str, array: np.ndarray) -> bytes:
    return tensor(name, array.shape, 1, array.astype("<f4").tobytes())


def external(name: str, dims, location: str, offset: int | None = None, length: int | None = None) -> bytes:
    entries = {"location": location, "offset": offset, "length": length}
    extra = b"".join(
        f_len(13, f_len(1, key) + f_len(2, str(value))) for key, value in entries.items() if value is not None
    )
    return tensor(name, dims, 1, None, extra + f_int(14, 1))


def attr(name: str, **value) -> bytes:
    ((kind, v),) = value.items()
    body = {
        "i": lambda: f_int(3, v) + f_int(20, 2),
        "f": lambda: f_float(2, v) + f_int(20, 1),
        "s": lambda: f_len(4, v) + f_int(20, 3),
        "t": lambda: f_len(5, v) + f_int(20, 4),
        "g": lambda: f_len(6, v) + f_int(20, 5),
        "ints": lambda: f_len(8, b"".join(varint(x) for x in v)) + f_int(20, 7),
        "ints_unpacked": lambda: b"".join(f_int(8, x) for x in v) + f_int(20, 7),
        "floats": lambda: f_len(7, struct.pack(f"<{len(v)}f", *v)) + f_int(20, 6),
        "floats_unpacked": lambda: b"".join(f_float(7, x) for x in v) + f_int(20, 6),
        "strings": lambda: b"".join(f_len(9, x) for x in v) + f_int(20, 8),
    }[kind]()
    return f_len(1, name) + body


def node(op_type: str, inputs, outputs, name: str = "", attrs=(), domain: str | None = None) -> bytes:
    out = b"".join(f_len(1, i) for i in inputs) + b"".join(f_len(2, o) for o in outputs)
    out += (f_len(3, name) if name else b"") + f_len(4, op_type)
    out += b"".join(f_len(5, a) for a in attrs)
    return out + (f_len(7, domain) if domain is not None else b"")


def graph(nodes=(), inits=(), sparse=()) -> bytes:
    out = b"".join(f_len(1, n) for n in nodes) + f_len(2, "g")
    return out + b"".join(f_len(5, t) for t in inits) + b"".join(f_len(15, s) for s in sparse)


def model(graph_bytes: bytes, ir_version: int = 8) -> bytes:
    opset = f_len(8, f_len(1, "") + f_int(2, 14))
    return f_int(1, ir_version) + f_len(2, "handmade") + f_len(7, graph_bytes) + opset


W = np.arange(24, dtype=np.float32).reshape(1, 8, 3) / 8
R = -np.arange(16, dtype=np.float32).reshape(1, 8, 2) / 4
LSTM = node("LSTM", ["X", "W", "R", "B"], ["Y"], name="rnn", attrs=[attr("hidden_size", i=2)])


def lstm_model(*extra_inits: bytes, b: bytes | None = None) -> bytes:
    b = float_tensor("B", np.ones((1, 16), np.float32)) if b is None else b
    return model(graph([LSTM], [float_tensor("W", W), float_tensor("R", R), b, *extra_inits]))


def read_bytes(tmp_path: Path, data: bytes, limits: Limits | None = None, *side: tuple[str, bytes]):
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    files = [InputFile("model.onnx", path)]
    for name, content in side:
        (tmp_path / name).write_bytes(content)
        files.append(InputFile(name, tmp_path / name))
    return onnx_model.read(files, limits or Limits())


# --------------------------------------------------------------------------- shared fixtures


@needs_fixtures
@pytest.mark.parametrize("fixture", ONNX_FIXTURES, ids=lambda f: f["id"])
def test_sniff_claims_every_onnx_fixture(fixture):
    assert onnx_model.sniff([InputFile("model.onnx", FIXTURES / fixture["dir"] / "model.onnx")])


@needs_fixtures
@pytest.mark.parametrize("path", OTHER_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sniff_rejects_every_other_fixture_file(path):
    assert not onnx_model.sniff([InputFile(path.name, path)])


@needs_fixtures
@pytest.mark.parametrize(("fixture", "layer"), LAYERS, ids=lambda x: x.get("id", x.get("key")))
def test_fixture_nodes_match_the_manifest(fixture, layer):
    nodes = {n["name"]: n for n in read_fixture(fixture).attrs["nodes"]}
    assert len(nodes) == len(fixture["layers"])
    found = nodes[layer["name"]]
    assert found["op_type"] == layer["native_type"].removeprefix("onnx.")
    assert found["inputs"] == layer["onnx_node_inputs"]
    for key, value in layer.get("onnx_node_attributes", {}).items():
        assert found["attributes"][key] == value


@needs_fixtures
@pytest.mark.parametrize(
    ("fixture", "layer", "role"),
    WEIGHTS,
    ids=lambda x: x if isinstance(x, str) else x.get("id", x.get("key")),
)
def test_fixture_weights_equal_the_native_arrays_bit_for_bit(fixture, layer, role):
    tensors = read_fixture(fixture).tensors
    native = np.load(FIXTURES / fixture["dir"] / layer["native_npz"])[role]
    found = tensors[layer["weights"][role]["in_files"]["model.onnx"]]
    assert found.dtype == native.dtype
    assert found.shape == tuple(layer["weights"][role]["shape"]) == native.shape
    assert found.tobytes() == native.tobytes()


@needs_fixtures
@pytest.mark.parametrize("fixture", ONNX_FIXTURES, ids=lambda f: f["id"])
def test_fixture_opset_and_producer(fixture):
    attrs = read_fixture(fixture).attrs
    assert attrs["opset"] == fixture["framework"]["opset"]
    # the manifest says IR 8 for every ONNX fixture, but torch.onnx.export wrote IR 7
    assert attrs["ir_version"] in (7, 8)
    assert isinstance(attrs["producer"], str) and attrs["producer"]


@needs_fixtures
def test_torch_export_keeps_its_constant_nodes_as_tensors():
    fixture = next(f for f in ONNX_FIXTURES if f["id"] == "onnx_torch_export_gru")
    tensors = read_fixture(fixture).tensors
    assert tensors["/Constant_1_output_0"].shape == ()
    assert tensors["/Constant_1_output_0"].dtype == np.int64


# --------------------------------------------------------------------------- data/onnx models

DATA_NODES = {
    "lstm_external": {
        "name": "lstm_ext",
        "op_type": "LSTM",
        "inputs": ["X", "W", "R", "B"],
        "attributes": {"hidden_size": 2},
    },
    "gru_float16": {
        "name": "gru_f16",
        "op_type": "GRU",
        "inputs": ["X", "W", "R", "B"],
        "attributes": {"hidden_size": 2, "linear_before_reset": 1},
    },
    "lstm_float64": {
        "name": "lstm_f64",
        "op_type": "LSTM",
        "inputs": ["X", "W", "R", "B"],
        "attributes": {"hidden_size": 2},
    },
    "lstm_peephole_no_bias": {
        "name": "lstm",
        "op_type": "LSTM",
        "inputs": ["X", "W", "R", "", "", "", "", "P"],
        "attributes": {"hidden_size": 2},
    },
    "lstm_activations_clip": {
        "name": "LSTM_0",
        "op_type": "LSTM",
        "inputs": ["X", "W", "R", "B"],
        "attributes": {
            "hidden_size": 2,
            "direction": "bidirectional",
            "clip": 2.5,
            "input_forget": 1,
            "activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Tanh", "Tanh"],
            "activation_alpha": [0.25],
            "activation_beta": [0.5],
        },
    },
    "lstm_constant_weight": {
        "name": "lstm",
        "op_type": "LSTM",
        "inputs": ["X", "W_const", "R", "B"],
        "attributes": {"hidden_size": 2},
    },
}


def read_data_model(stem: str):
    files = [InputFile(f"{stem}.onnx", DATA / f"{stem}.onnx")]
    files += [InputFile(p.name, p) for p in DATA.glob(f"{stem}.weights")]
    return onnx_model.read(files, Limits())


@pytest.mark.parametrize("stem", sorted(DATA_NODES))
def test_data_model_tensors_equal_the_expected_arrays(stem):
    tensors = read_data_model(stem).tensors
    expected = np.load(DATA / f"{stem}.expected.npz")
    assert sorted(tensors) == sorted(expected.files)
    for name in expected.files:
        assert tensors[name].dtype == expected[name].dtype, name
        assert tensors[name].shape == expected[name].shape, name
        assert tensors[name].tobytes() == expected[name].tobytes(), name


@pytest.mark.parametrize("stem", sorted(DATA_NODES))
def test_data_model_nodes(stem):
    (found,) = read_data_model(stem).attrs["nodes"]
    assert {k: found[k] for k in DATA_NODES[stem]} == DATA_NODES[stem]


@pytest.mark.parametrize(("stem", "dtype"), [("gru_float16", np.float16), ("lstm_float64", np.float64)])
def test_data_model_keeps_the_stored_dtype(stem, dtype):
    assert {a.dtype for a in read_data_model(stem).tensors.values()} == {np.dtype(dtype)}


def test_bfloat16_is_widened_with_a_note():
    result = read_data_model("lstm_constant_weight")
    assert result.tensors["extra_bf16"].dtype == np.float32
    assert any("extra_bf16" in note and "bfloat16" in note for note in result.notes)


def test_external_data_side_file_is_matched_by_base_name(tmp_path):
    side = tmp_path / "elsewhere"
    side.mkdir()
    (side / "lstm_external.weights").write_bytes((DATA / "lstm_external.weights").read_bytes())
    files = [
        InputFile("lstm_external.onnx", DATA / "lstm_external.onnx"),
        InputFile("uploads/lstm_external.weights", side / "lstm_external.weights"),
    ]
    tensors = onnx_model.read(files, Limits()).tensors
    np.testing.assert_array_equal(tensors["W"], np.load(DATA / "lstm_external.expected.npz")["W"])


def test_external_data_without_its_side_file_is_refused():
    with pytest.raises(UnsafeInput) as info:
        onnx_model.read([InputFile("lstm_external.onnx", DATA / "lstm_external.onnx")], Limits())
    assert info.value.code == "external_data_outside_upload"
    assert info.value.tensor == "W"


def test_sniff_does_not_claim_the_external_data_file():
    assert not onnx_model.sniff([InputFile("w", DATA / "lstm_external.weights")])


# --------------------------------------------------------------------------- hand-built models


def test_hand_built_model_reads(tmp_path):
    result = read_bytes(tmp_path, lstm_model())
    assert result.format == onnx_model.NAME == "onnx"
    np.testing.assert_array_equal(result.tensors["W"], W)
    assert result.attrs["producer"] == "handmade"
    assert result.attrs["opset_imports"] == {"": 14}


@pytest.mark.parametrize(
    ("data_type", "dtype"),
    [
        (1, "<f4"),
        (2, "u1"),
        (3, "i1"),
        (4, "<u2"),
        (5, "<i2"),
        (6, "<i4"),
        (7, "<i8"),
        (10, "<f2"),
        (11, "<f8"),
        (12, "<u4"),
        (13, "<u8"),
    ],
)
def test_raw_data_of_every_numeric_type(tmp_path, data_type, dtype):
    expected = (
        (np.arange(6) * 3 - 5 if np.dtype(dtype).kind != "u" else np.arange(6) * 40)
        .astype(dtype)
        .reshape(2, 3)
    )
    found = read_bytes(tmp_path, lstm_model(tensor("t", [2, 3], data_type, expected.tobytes()))).tensors["t"]
    assert found.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(found, expected)


def test_raw_bool_and_bfloat16(tmp_path):
    bf16 = np.array([1.0, -2.5, 3.0e38], np.float32)
    bits = (bf16.view(np.uint32) >> 16).astype("<u2").tobytes()
    data = lstm_model(tensor("flag", [3], 9, b"\x00\x01\x01"), tensor("bf", [3], 16, bits))
    tensors = read_bytes(tmp_path, data).tensors
    assert tensors["flag"].tolist() == [False, True, True]
    assert tensors["bf"].dtype == np.float32
    assert tensors["bf"].tobytes() == (bf16.view(np.uint32) & 0xFFFF0000).tobytes()


TYPED_CASES = [
    # name, data_type, field, wire of one unpacked value, values, expected dtype
    ("f", 1, 4, "f", [1.5, -2.0, 0.25], np.float32),
    ("d", 11, 10, "d", [1e300, -0.5], np.float64),
    ("i8", 3, 5, "v", [-3, 127, 0], np.int8),
    ("u16", 4, 5, "v", [65535, 1], np.uint16),
    ("i32", 6, 5, "v", [-(2**31), 2**31 - 1], np.int32),
    ("l", 7, 7, "v", [-(2**40), 5], np.int64),
    ("u32", 12, 11, "v", [2**32 - 1, 0], np.uint32),
    ("u64", 13, 11, "v", [2**64 - 1, 3], np.uint64),
    ("h", 10, 5, "v", np.array([0.5, -1.0], np.float16).view(np.uint16).tolist(), np.float16),
]


def typed_field(field: int, wire: str, values: list, packed: bool) -> bytes:
    encode = {"f": lambda v: struct.pack("<f", v), "d": lambda v: struct.pack("<d", v), "v": varint}[wire]
    if packed:
        return f_len(field, b"".join(encode(v) for v in values))
    tag = varint(field << 3 | {"f": 5, "d": 1, "v": 0}[wire])
    return b"".join(tag + encode(v) for v in values)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize(
    ("name", "data_type", "field", "wire", "values", "dtype"), TYPED_CASES, ids=[c[0] for c in TYPED_CASES]
)
def test_typed_fields_packed_and_unpacked(tmp_path, packed, name, data_type, field, wire, values, dtype):
    init = tensor(name, [len(values)], data_type, extra=typed_field(field, wire, values, packed))
    found = read_bytes(tmp_path, lstm_model(init)).tensors[name]
    assert found.dtype == dtype
    if dtype is np.float16:
        assert found.view(np.uint16).tolist() == values
    else:
        assert found.tolist() == values


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_dims_and_list_attributes_packed_and_unpacked(tmp_path, packed):
    dims = f_len(1, varint(2) + varint(3)) if packed else f_int(1, 2) + f_int(1, 3)
    init = f_int(2, 1) + dims + f_len(8, "t") + f_len(9, np.zeros(6, "<f4").tobytes())
    attrs = [
        attr("ints", **{"ints" if packed else "ints_unpacked": [-1, 7]}),
        attr("floats", **{"floats" if packed else "floats_unpacked": [0.5, -4.0]}),
    ]
    gru = node("GRU", ["X", "W", "R"], ["Y"], name="g", attrs=attrs)
    result = read_bytes(tmp_path, model(graph([gru], [init, float_tensor("W", W), float_tensor("R", R)])))
    assert result.tensors["t"].shape == (2, 3)
    assert result.attrs["nodes"][0]["attributes"] == {"ints": [-1, 7], "floats": [0.5, -4.0]}


def test_attribute_without_type_field_is_inferred(tmp_path):
    legacy = f_len(1, "hidden_size") + f_int(3, 2)
    rnn = node("RNN", ["X", "W", "R"], ["Y"], name="r", attrs=[legacy, attr("activations", strings=["Relu"])])
    result = read_bytes(tmp_path, model(graph([rnn], [float_tensor("W", W), float_tensor("R", R)])))
    assert result.attrs["nodes"][0]["attributes"] == {"hidden_size": 2, "activations": ["Relu"]}


def test_unnamed_nodes_take_their_index_and_foreign_domains_are_ignored(tmp_path):
    nodes = [
        node("Identity", ["X"], ["X1"]),
        node("GRU", ["X1", "W", "R"], ["Y"]),
        node("LSTM", ["X1", "W", "R"], ["Z"], name="custom", domain="com.example"),
        node("LSTM", ["X1", "W", "R"], ["Z2"], domain="ai.onnx"),
    ]
    result = read_bytes(tmp_path, model(graph(nodes, [float_tensor("W", W), float_tensor("R", R)])))
    assert [n["name"] for n in result.attrs["nodes"]] == ["GRU_1", "LSTM_3"]


def test_constant_nodes_become_tensors(tmp_path):
    nodes = [
        node("Constant", [], ["Wc"], attrs=[attr("value", t=float_tensor("inner", W))]),
        node("Constant", [], ["k"], attrs=[attr("value_ints", ints=[1, -2])]),
        node("Constant", [], ["eps"], attrs=[attr("value_float", f=0.5)]),
        node("LSTM", ["X", "Wc", "R"], ["Y"], name="rnn"),
    ]
    tensors = read_bytes(tmp_path, model(graph(nodes, [float_tensor("R", R)]))).tensors
    np.testing.assert_array_equal(tensors["Wc"], W)
    assert "inner" not in tensors
    assert tensors["k"].tolist() == [1, -2] and tensors["k"].dtype == np.int64
    assert tensors["eps"].dtype == np.float32 and float(tensors["eps"]) == 0.5


def test_subgraphs_are_searched_for_recurrent_nodes(tmp_path):
    body = graph([node("LSTM", ["a", "W", "R"], ["b"], name="inner")], [float_tensor("inner_w", W)])
    loop = node("Loop", ["M", "", "v"], ["out"], name="loop", attrs=[attr("body", g=body)])
    result = read_bytes(
        tmp_path,
        model(graph([loop, LSTM], [float_tensor("W", W), float_tensor("R", R), float_tensor("B", W)])),
    )
    assert [n["name"] for n in result.attrs["nodes"]] == ["rnn", "inner"]
    assert "inner_w" in result.tensors
    assert any("subgraph" in note for note in result.notes)


def test_subgraphs_nested_too_deep_are_refused(tmp_path):
    body = graph([LSTM])
    for _ in range(onnx_graph.MAX_SUBGRAPH_DEPTH + 1):
        body = graph([node("Loop", ["M", "", "v"], ["out"], attrs=[attr("body", g=body)])])
    with pytest.raises(MalformedFile, match="nested"):
        read_bytes(tmp_path, model(body))


@pytest.mark.parametrize("feeds_rnn", [False, True], ids=["unused", "rnn_weight"])
def test_sparse_initializer(tmp_path, feeds_rnn):
    name = "B" if feeds_rnn else "unused"
    sparse = (
        f_len(1, tensor(name, [2], 1, np.ones(2, "<f4").tobytes()))
        + f_len(2, tensor("", [2], 7, np.arange(2, dtype="<i8").tobytes()))
        + f_int(3, 16)
    )
    data = model(graph([LSTM], [float_tensor("W", W), float_tensor("R", R)], sparse=[sparse]))
    if feeds_rnn:
        with pytest.raises(UnsupportedFormat, match="sparse") as info:
            read_bytes(tmp_path, data)
        assert info.value.tensor == "B"
    else:
        result = read_bytes(tmp_path, data)
        assert "unused" not in result.tensors
        assert any("sparse" in note and "unused" in note for note in result.notes)


@pytest.mark.parametrize(
    "data_type", [8, 14, 17, 0], ids=["STRING", "COMPLEX64", "FLOAT8E4M3FN", "UNDEFINED"]
)
@pytest.mark.parametrize("feeds_rnn", [False, True], ids=["unused", "rnn_weight"])
def test_unreadable_data_types(tmp_path, data_type, feeds_rnn):
    name = "B" if feeds_rnn else "odd"
    odd = tensor(name, [1], data_type, b"\x00" * 8)
    data = model(graph([LSTM], [float_tensor("W", W), float_tensor("R", R), odd]))
    if feeds_rnn:
        with pytest.raises(UnsupportedFormat) as info:
            read_bytes(tmp_path, data)
        assert info.value.tensor == "B"
    else:
        result = read_bytes(tmp_path, data)
        assert "odd" not in result.tensors
        assert any("'odd'" in note for note in result.notes)


# --------------------------------------------------------------------------- malformed


@needs_fixtures
@pytest.mark.parametrize("keep", [2, 3, 10, 100, 0.5, -1], ids=lambda k: f"keep{k}")
def test_truncated_fixture_is_malformed(tmp_path, keep):
    data = (FIXTURES / "onnx_lstm_forward" / "model.onnx").read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    with pytest.raises(MalformedFile):
        read_bytes(tmp_path, data[:cut])


@pytest.mark.parametrize("cut", range(2, len(lstm_model()), 7))
def test_every_truncation_is_a_clean_error(tmp_path, cut):
    with pytest.raises(MalformedFile):
        read_bytes(tmp_path, lstm_model()[:cut])


@pytest.mark.parametrize("seed", range(40))
def test_random_corruption_raises_only_service_errors(tmp_path, seed):
    rng = np.random.default_rng(seed)
    data = bytearray(lstm_model())
    for at in rng.integers(0, len(data), size=3):
        data[at] = rng.integers(0, 256)
    try:
        read_bytes(tmp_path, bytes(data))
    except RnnBridgeError:
        pass


def test_length_prefix_past_the_end(tmp_path):
    bad_graph = f_len(1, LSTM) + varint(5 << 3 | 2) + varint(10**6) + b"short"
    with pytest.raises(MalformedFile, match=r"declares 1000000 bytes but only 5 remain"):
        read_bytes(tmp_path, model(bad_graph))


def test_packed_floats_longer_than_the_message(tmp_path):
    # a float_data field whose length runs past its tensor but not past the file
    tensor_body = f_int(1, 4) + f_int(2, 1) + f_len(8, "W") + varint(4 << 3 | 2) + varint(16)
    data = model(f_len(5, tensor_body) + f_len(1, LSTM) + f_len(2, "padding" * 4))
    with pytest.raises(MalformedFile, match="declares 16 bytes but only 0 remain"):
        read_bytes(tmp_path, data)


@pytest.mark.parametrize(
    ("dims", "raw_size", "message"),
    [
        ([1, 8, 3], 95, "needs 96 raw_data bytes, found 95"),
        ([1, 8, 3], 100, "needs 96 raw_data bytes, found 100"),
        ([2**40, 2**40], 96, "needs 4835703278458516698824704 raw_data bytes"),
        ([2**62, 2**62, 2**62], 96, "raw_data bytes"),
        ([-1, 24], 96, "negative dimension"),
    ],
    ids=["short", "long", "absurd", "absurd3", "negative"],
)
def test_dims_contradicting_the_data(tmp_path, dims, raw_size, message):
    bad_w = tensor("W", dims, 1, b"\x00" * raw_size)
    data = model(graph([LSTM], [bad_w, float_tensor("R", R)]))
    with pytest.raises(MalformedFile, match=message) as info:
        read_bytes(tmp_path, data)
    assert info.value.tensor == "W"


def test_typed_count_contradicting_dims(tmp_path):
    bad = tensor("P", [4], 1, extra=f_len(4, struct.pack("<3f", 1, 2, 3)))
    with pytest.raises(MalformedFile, match="needs 4 float values, found 3"):
        read_bytes(tmp_path, lstm_model(bad))


@pytest.mark.parametrize(
    ("data_type", "value"), [(3, 200), (2, -1), (9, 2), (10, 70000)], ids=["int8", "uint8", "bool", "float16"]
)
def test_int32_data_out_of_range(tmp_path, data_type, value):
    bad = tensor("v", [1], data_type, extra=f_int(5, value))
    with pytest.raises(MalformedFile, match="out of range"):
        read_bytes(tmp_path, lstm_model(bad))


def test_values_in_two_places_are_malformed(tmp_path):
    bad = tensor("v", [1], 1, np.ones(1, "<f4").tobytes(), extra=f_float(4, 1.0))
    with pytest.raises(MalformedFile, match="more than one place"):
        read_bytes(tmp_path, lstm_model(bad))


def test_duplicate_tensor_names_are_malformed(tmp_path):
    with pytest.raises(MalformedFile, match="'W' twice"):
        read_bytes(tmp_path, lstm_model(float_tensor("W", W)))


@pytest.mark.parametrize(
    "field",
    [f_float(1, 1.0), f_int(7, 3), f_len(1, "x")],
    ids=["ir_version_as_float", "graph_as_varint", "ir_version_as_bytes"],
)
def test_wrong_wire_type_is_malformed(tmp_path, field):
    with pytest.raises(MalformedFile):
        read_bytes(tmp_path, lstm_model() + field)


def test_model_without_graph_is_not_claimed(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(f_int(1, 8) + f_len(2, "p"))
    assert not onnx_model.sniff([InputFile("x.onnx", path)])
    with pytest.raises(MalformedFile, match="has 0 graphs, not one"):
        onnx_model.read([InputFile("x.onnx", path)], Limits())


@pytest.mark.parametrize("seed", range(5))
def test_sniff_rejects_random_bytes_starting_like_a_model(tmp_path, seed):
    path = tmp_path / "r.bin"
    path.write_bytes(b"\x08" + np.random.default_rng(seed).bytes(4096))
    assert not onnx_model.sniff([InputFile("r.bin", path)])
    with pytest.raises((UnsupportedFormat, MalformedFile)):
        onnx_model.read([InputFile("r.bin", path)], Limits())


@pytest.mark.parametrize(
    "data", [b"", b"\x08", b"\x08\x00", b"\x08\xff", b"\x10\x08"], ids=["empty", "tag", "ir0", "cut", "other"]
)
def test_bytes_that_do_not_start_like_a_model_are_unsupported(tmp_path, data):
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(UnsupportedFormat, match="none of the uploaded files"):
        onnx_model.read([InputFile("model.onnx", path)], Limits())


def test_sniff_rejects_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert not onnx_model.sniff(
        [InputFile("empty.onnx", tmp_path / "empty.onnx"), InputFile("gone", tmp_path / "gone")]
    )


def test_two_models_in_one_upload_are_refused(tmp_path):
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(lstm_model())
    files = [InputFile(n, tmp_path / n) for n in ("a.onnx", "b.onnx")]
    with pytest.raises(UnsupportedFormat, match="2 ONNX models"):
        onnx_model.read(files, Limits())


# --------------------------------------------------------------------------- limits


def test_tensor_over_the_element_limit(tmp_path):
    with pytest.raises(LimitExceeded, match="24 elements, over the limit of 20") as info:
        read_bytes(tmp_path, lstm_model(), Limits(max_tensor_elements=20))
    assert info.value.tensor == "W"


def test_model_file_over_the_byte_limit(tmp_path):
    with pytest.raises(LimitExceeded, match="over the limit of 100"):
        read_bytes(tmp_path, lstm_model(), Limits(max_total_bytes=100))


def test_external_data_counts_towards_the_byte_limit(tmp_path):
    # every tensor points at the same 96 side-file bytes
    inits = [external(name, [1, 8, 3], "w.bin", 0, 96) for name in ("W", "R", "B", "D1", "D2")]
    data = model(graph([LSTM], inits))
    with pytest.raises(LimitExceeded, match="bytes read in all"):
        read_bytes(tmp_path, data, Limits(max_total_bytes=400), ("w.bin", W.tobytes()))


# --------------------------------------------------------------------------- external data


def external_model(location: str, offset: int | None = 0, length: int | None = 96) -> bytes:
    return model(graph([LSTM], [external("W", [1, 8, 3], location, offset, length), float_tensor("R", R)]))


@pytest.mark.parametrize("location", ["w.bin", "./w.bin", "sub/w.bin", "sub\\w.bin"])
def test_external_data_in_the_upload(tmp_path, location):
    tensors = read_bytes(tmp_path, external_model(location), Limits(), ("w.bin", W.tobytes())).tensors
    assert tensors["W"].tobytes() == W.tobytes()


def test_external_data_at_an_offset_without_length(tmp_path):
    side = b"\xff" * 16 + W.tobytes() + b"\xee" * 8
    tensors = read_bytes(tmp_path, external_model("w.bin", 16, None), Limits(), ("w.bin", side)).tensors
    assert tensors["W"].tobytes() == W.tobytes()


@pytest.mark.parametrize(
    "location",
    [
        "/etc/passwd",
        "../x",
        "../w.bin",
        "sub/../../w.bin",
        "C:\\w.bin",
        "\\\\server\\w.bin",
        "~/w.bin",
        "w.bin\x00",
        "",
        "other.bin",
    ],
    ids=[
        "etc_passwd",
        "dotdot",
        "dotdot_known_name",
        "nested_dotdot",
        "drive",
        "unc",
        "home",
        "nul",
        "empty",
        "not_uploaded",
    ],
)
def test_external_data_outside_the_upload_is_refused(tmp_path, monkeypatch, location):
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    with pytest.raises(UnsafeInput) as info:
        read_bytes(tmp_path, external_model(location), Limits(), ("w.bin", W.tobytes()))
    assert info.value.code == "external_data_outside_upload"
    assert info.value.tensor == "W"
    assert opened and set(opened) <= {str(tmp_path / "model.onnx"), str(tmp_path / "w.bin")}


def test_external_data_at_an_absolute_path_is_not_opened(tmp_path, monkeypatch):
    secret = tmp_path / "secret" / "w.bin"
    secret.parent.mkdir()
    secret.write_bytes(W.tobytes())
    opened: list[str] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(UnsafeInput):
        read_bytes(tmp_path, external_model(str(secret)))
    assert str(secret) not in opened


@pytest.mark.parametrize(
    ("offset", "length", "side_size", "message"),
    [
        (0, 96, 95, r"spans bytes \[0, 96\) of 'w.bin', which has 95 bytes"),
        (10, 96, 100, r"spans bytes \[10, 106\)"),
        (2**62, 96, 100, "spans bytes"),
        (0, 95, 96, "needs 96 bytes of external data"),
    ],
    ids=["short_file", "offset_past", "absurd_offset", "length_mismatch"],
)
def test_external_data_ranges_are_checked(tmp_path, offset, length, side_size, message):
    with pytest.raises(MalformedFile, match=message) as info:
        read_bytes(
            tmp_path, external_model("w.bin", offset, length), Limits(), ("w.bin", b"\x00" * side_size)
        )
    assert info.value.tensor == "W"


@pytest.mark.parametrize("offset", ["-1", "0x10", "12abc", "１"])
def test_external_data_offset_must_be_a_byte_count(tmp_path, offset):
    extra = b"".join(
        f_len(13, f_len(1, k) + f_len(2, v)) for k, v in [("location", "w.bin"), ("offset", offset)]
    )
    data = model(graph([LSTM], [tensor("W", [1, 8, 3], 1, None, extra + f_int(14, 1)), float_tensor("R", R)]))
    with pytest.raises(MalformedFile, match="not a byte count"):
        read_bytes(tmp_path, data, Limits(), ("w.bin", W.tobytes()))
