"""OpenVINO IR: W/R/B followed back to their constants, and hostile XML and .bin refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats import detect
from rnnbridge.formats.base import InputFile, Limits
from rnnbridge.formats.openvino import ir

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ov_lstm_bidirectional_fp16"


def ir_files(folder: Path, xml: str | None = None, bin_bytes: bytes | None = None) -> list[InputFile]:
    xml_path, bin_path = folder / "model.xml", folder / "model.bin"
    xml_path.write_text(xml if xml is not None else (FIXTURE / "model.xml").read_text())
    if bin_bytes is None:
        shutil.copy(FIXTURE / "model.bin", bin_path)
    else:
        bin_path.write_bytes(bin_bytes)
    return [InputFile("model.xml", xml_path), InputFile("model.bin", bin_path)]


def test_the_float16_constants_behind_the_converts_are_read_as_stored(tmp_path: Path) -> None:
    files = ir_files(tmp_path)
    assert detect(files) == "openvino_ir"
    weights = ir.read(files, Limits())
    (node,) = weights.attrs["openvino_nodes"]
    assert node["inputs"] == {"W": "W_compressed", "R": "R_compressed", "B": "B_compressed"}
    assert weights.tensors["W_compressed"].dtype == np.float16
    with np.load(FIXTURE / "rnn0.native.npz") as native:
        np.testing.assert_array_equal(weights.tensors["R_compressed"], native["R"].astype(np.float16))


def test_the_bin_is_needed(tmp_path: Path) -> None:
    files = ir_files(tmp_path)
    with pytest.raises(UnsupportedFormat, match="model.bin"):
        ir.read(files[:1], Limits())


def test_a_dtd_is_refused_before_parsing(tmp_path: Path) -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE net [<!ENTITY a "aaaa">]><net name="x"><layers/></net>'
    with pytest.raises(UnsafeInput):
        ir.read(ir_files(tmp_path, xml), Limits())


def test_a_constant_outside_the_bin_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(MalformedFile, match="do not fit"):
        ir.read(ir_files(tmp_path, bin_bytes=b"\0" * 100), Limits())


def test_the_element_bound_holds(tmp_path: Path) -> None:
    with pytest.raises(LimitExceeded):
        ir.read(ir_files(tmp_path), Limits(max_tensor_elements=10))


def test_a_weight_computed_in_the_graph_is_unsupported(tmp_path: Path) -> None:
    xml = (FIXTURE / "model.xml").read_text().replace('name="W" type="Convert"', 'name="W" type="Multiply"')
    with pytest.raises(UnsupportedFormat, match="computed in the graph"):
        ir.read(ir_files(tmp_path, xml), Limits())
