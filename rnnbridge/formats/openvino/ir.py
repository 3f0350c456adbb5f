"""OpenVINO IR (``model.xml`` + ``model.bin``), read without OpenVINO: its LSTM/GRU sequence ops.

``openvino.save_model`` writes the graph as XML (``<net><layers><layer id name type
version>`` with ``<data>`` attributes and ``<input>/<output>`` ports, then ``<edges>``) and
every constant's bytes into ``model.bin`` (``Const`` ``<data element_type shape offset
size>``). An ``LSTMSequence`` takes W, R, B on input ports 4, 5, 6 and a ``GRUSequence`` on
3, 4, 5. The reader follows each of those ports along its edge back to a ``Const``, through
a ``Convert`` (``save_model`` stores float32 constants as float16 by default and converts
them back at run time: the float16 values are what the model computes with, so they are
kept as float16).

Contract: the XML is at most ``MAX_XML_BYTES`` and may hold no DTD (so no entity can be
declared, let alone expanded: ``<!DOCTYPE`` is refused before parsing), at most
``MAX_LAYERS`` layers. Only the constants that feed a recurrent op are read, each checked
before it is: a float element type, a shape whose byte size equals ``size``, and
``offset + size`` inside ``model.bin``. Arrays are views of the ``.bin`` bytes. Nothing else
of the graph is interpreted.

Arrays are named by their ``Const`` layer's name; ``attrs["openvino_nodes"]`` lists the ops:
``{"name", "op_type", "inputs": {W, R, B: const name}, "attributes"}``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnbridge.errors import LimitExceeded, MalformedFile, UnsafeInput, UnsupportedFormat
from rnnbridge.formats.base import InputFile, Limits, WeightFile
from rnnbridge.formats.wire.elements import check_element_count

NAME = "openvino_ir"
MAX_XML_BYTES = 64 * 1024**2
MAX_LAYERS = 100_000
#: the ports of W, R, B on each recurrent sequence op
PORTS = {"LSTMSequence": {"W": 4, "R": 5, "B": 6}, "GRUSequence": {"W": 3, "R": 4, "B": 5}}
_ELEMENTS: dict[str, np.dtype] = {"f16": np.dtype("<f2"), "f32": np.dtype("<f4"), "f64": np.dtype("<f8")}


def _head(file: InputFile, size: int = 512) -> bytes:
    try:
        with open(file.path, "rb") as stream:
            return stream.read(size)
    except OSError:
        return b""


def _is_xml(file: InputFile) -> bool:
    head = _head(file).lstrip()
    return head.startswith((b"<?xml", b"<net")) and b"<net" in head


def sniff(files: Sequence[InputFile]) -> bool:
    """Whether exactly one of ``files`` is an OpenVINO IR ``.xml`` (``<net ...>``)."""
    return sum(_is_xml(f) for f in files) == 1


def read(files: Sequence[InputFile], limits: Limits) -> WeightFile:
    """The W, R, B constants of every LSTM/GRU sequence op of the IR among ``files``."""
    xml_file = next(f for f in files if _is_xml(f))
    bins = [f for f in files if f is not xml_file]
    if len(bins) != 1:
        raise UnsupportedFormat("an OpenVINO IR is two files: upload the model.xml together with its model.bin")
    root = _parse(xml_file)
    layers, edges = _graph(root)
    weights = WeightFile(NAME, {}, {"openvino_nodes": []})
    data = _bin(bins[0], limits)
    for layer_id, layer in layers.items():
        op = layer.get("type")
        if op not in PORTS:
            continue
        inputs = {}
        for role, port in PORTS[op].items():
            const = _const_feeding(layers, edges, layer_id, port, f"{layer.get('name')} {role}")
            name = const.get("name", f"const{const.get('id')}")
            inputs[role] = name
            if name not in weights.tensors:
                weights.tensors[name] = _array(const, name, data, limits)
        node_data = layer.find("data")
        weights.attrs["openvino_nodes"].append(
            {
                "name": layer.get("name", f"layer{layer_id}"),
                "op_type": op,
                "inputs": inputs,
                "attributes": dict(node_data.attrib) if node_data is not None else {},
            }
        )
    return weights


def _parse(file: InputFile) -> ET.Element:
    size = file.path.stat().st_size
    if size > MAX_XML_BYTES:
        raise LimitExceeded(f"{file.name}: {size} bytes of XML, more than {MAX_XML_BYTES}")
    text = file.path.read_bytes()
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        raise UnsafeInput(f"{file.name} declares a DTD or entities, which an OpenVINO IR never does", code="xml_dtd")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MalformedFile(f"{file.name} is not well-formed XML: {exc}") from None
    if root.tag != "net":
        raise UnsupportedFormat(f"{file.name} is XML but not an OpenVINO IR (<{root.tag[:40]}>)")
    return root


def _graph(root: ET.Element) -> tuple[dict[str, ET.Element], dict[tuple[str, str], tuple[str, str]]]:
    """Layers by id, and edges as ``(to layer, to port) -> (from layer, from port)``."""
    layers: dict[str, ET.Element] = {}
    for layer in root.iterfind("layers/layer"):
        if len(layers) >= MAX_LAYERS:
            raise LimitExceeded(f"the IR has more than {MAX_LAYERS} layers")
        layers[layer.get("id", "")] = layer
    edges = {
        (e.get("to-layer", ""), e.get("to-port", "")): (e.get("from-layer", ""), e.get("from-port", ""))
        for e in root.iterfind("edges/edge")
    }
    return layers, edges


def _const_feeding(layers: dict[str, ET.Element], edges: dict, layer_id: str, port: int, what: str) -> ET.Element:
    """The ``Const`` whose value reaches ``port`` of layer ``layer_id``, through at most one ``Convert``."""
    source = edges.get((layer_id, str(port)))
    for _ in range(2):
        if source is None or source[0] not in layers:
            raise MalformedFile(f"the IR connects nothing to {what} (port {port})")
        node = layers[source[0]]
        if node.get("type") == "Const":
            return node
        if node.get("type") != "Convert":
            break
        first_input = node.find("input/port")
        source = edges.get((source[0], first_input.get("id", "0") if first_input is not None else "0"))
    raise UnsupportedFormat(f"{what} is computed in the graph, not a constant (or a converted constant)")


def _bin(file: InputFile, limits: Limits) -> memoryview:
    size = file.path.stat().st_size
    if size > limits.max_total_bytes:
        raise LimitExceeded(f"{file.name}: {size} bytes, more than the {limits.max_total_bytes} read at most")
    return memoryview(file.path.read_bytes())


def _array(const: ET.Element, name: str, data: memoryview, limits: Limits) -> np.ndarray:
    element = const.find("data")
    attrs: dict[str, Any] = dict(element.attrib) if element is not None else {}
    dtype = _ELEMENTS.get(attrs.get("element_type", ""))
    if dtype is None:
        raise UnsupportedFormat(
            f"constant {name!r} has element type {attrs.get('element_type')!r:.20}, not f16/f32/f64"
        )
    try:
        shape = tuple(int(d) for d in attrs.get("shape", "").split(",") if d.strip())
        offset, size = int(attrs["offset"]), int(attrs["size"])
    except (KeyError, ValueError):
        raise MalformedFile(f"constant {name!r} has no readable shape, offset and size", tensor=name) from None
    if any(d < 0 for d in shape) or offset < 0:
        raise MalformedFile(f"constant {name!r} has a negative shape or offset", tensor=name)
    count = math.prod(shape)
    check_element_count(name, count, limits)
    if count * dtype.itemsize != size or offset + size > len(data):
        raise MalformedFile(
            f"constant {name!r}: {count} × {dtype.itemsize} bytes at offset {offset} do not fit size {size} "
            f"in a .bin of {len(data)} bytes",
            tensor=name,
        )
    return (
        np.frombuffer(data[offset : offset + size], dtype=dtype)
        .reshape(shape)
        .astype(dtype.newbyteorder("="), copy=False)
    )
