"""The web page at ``/``, in a real Chromium against the real server.

What the page shows is checked against independent sources: the layer table against the
fixtures' manifest, the gate map's source blocks against the engine's own
``Tensor.blocks`` applied to ``/inspect``'s shapes, its target tensors against the names
and shapes of a real ``/convert`` result, and the downloaded file against the bytes
``/convert`` returns for the same form.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rnnbridge.engine.conventions import CONVENTIONS, Convention, candidates, native_letter
from rnnbridge.engine.layout import Tensor, solve_dims

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MANIFEST = {f["id"]: f for f in json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]}
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@dataclass(frozen=True)
class Upload:
    """A fixture as the page receives it: its id and the files a user would pick."""

    id: str
    files: tuple[str, ...]
    target: str  # a target it converts to

    @property
    def paths(self) -> list[Path]:
        return [FIXTURES / self.id / name for name in self.files]

    def multipart(self) -> list[tuple[str, tuple[str, bytes]]]:
        return [("file", (path.name, path.read_bytes())) for path in self.paths]


#: one fixture per source framework; the TF1 checkpoint is an index with its data shard
UPLOADS = [
    Upload("tf1_lstm_forget_bias_half", ("model.ckpt.index", "model.ckpt.data-00000-of-00001"), "pytorch"),
    Upload("k2_stacked_bilstm", ("m.h5",), "onnx"),
    Upload("k3_gru_go_backwards", ("m.keras",), "onnx"),
    Upload("torch_lstm_proj_2l_bi", ("model.pt",), "tf1"),
    Upload("onnx_gru_bidirectional_lbr1", ("model.onnx",), "keras"),
    # cuDNN memory reread as a Keras kernel (transform R), and a GRU bias of two stacked rows
    Upload("k2_cudnn_gru", ("m.h5",), "keras"),
]
BY_ID = {upload.id: upload for upload in UPLOADS}
ids = [upload.id for upload in UPLOADS]


def load(page: Any, upload: Upload) -> None:
    """Pick the fixture's files and wait until the page has shown what /inspect answered."""
    done = int(page.evaluate("document.body.dataset.inspected || 0"))
    page.set_input_files("#files", [str(path) for path in upload.paths])
    page.wait_for_selector(f'body[data-inspected="{done + 1}"]')
    page.wait_for_selector("#gatemap .block")


def inspect(server_url: str, upload: Upload) -> dict[str, Any]:
    response = httpx.post(f"{server_url}/inspect", files=upload.multipart(), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def drawn_blocks(page: Any, side: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f'#gatemap .block[data-side="{side}"]',
        """nodes => nodes.map(n => ({block: n.dataset.block, letter: n.dataset.letter,
                                     slice: n.dataset.slice, shape: JSON.parse(n.dataset.shape)}))""",
    )


def drawn_tensors(page: Any, side: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f'#gatemap .tensor[data-side="{side}"]',
        "nodes => nodes.map(n => ({name: n.dataset.tensor, role: n.dataset.role, shape: JSON.parse(n.dataset.shape)}))",
    )


# ---------------------------------------------------------------- expected, from the engine


def _slice(name: str, spec: Tensor, index: tuple[slice, ...], shape: tuple[int, ...], stack: int | None) -> str:
    axes = []
    for axis, part in enumerate(index):
        if spec.rows and spec.is_vector and axis == 1 - spec.gate_axis:
            axes.append(str(part.start))
        elif part.start == 0 and part.stop == shape[axis]:
            axes.append(":")
        else:
            axes.append(f"{part.start}:{part.stop}")
    return f"{name}[{', '.join(([str(stack)] if stack is not None else []) + axes)}]"


def _grid(conv: Convention, spec: Tensor, name: str, dims: dict[str, int], stack: int | None) -> list[dict[str, Any]]:
    shape = spec.shape(dims)
    blocks = []
    for block, index, _ in spec.blocks(dims):
        sizes = [part.stop - part.start for part in index]
        gate = block[-1] if spec.gates else ""
        blocks.append(
            {
                "block": block,
                "letter": native_letter(conv, gate) if gate else "",
                "slice": _slice(name, spec, index, shape, stack),
                "shape": [sizes[spec.gate_axis]] if spec.rows and spec.is_vector else sizes,
            }
        )
    return blocks


def _stack(conv: Convention, direction: str, directions: int) -> int | None:
    if not conv.stack_directions:
        return None
    return 1 if directions == 2 and direction == "backward" else 0


def expected_source(layer: dict[str, Any], level: int, direction: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The source blocks of one cell, by the engine's layout code on /inspect's shapes."""
    conv = CONVENTIONS[layer["convention"]]
    stored = [t for t in layer["tensors"] if t["level"] == level and t["direction"] == direction]
    specs = {t["role"]: conv.tensor(t["role"]) for t in stored}
    dims = solve_dims(specs, {t["role"]: tuple(t["shape"]) for t in stored})
    stack = _stack(conv, direction, layer["directions"])
    blocks = [b for t in stored for b in _grid(conv, specs[t["role"]], t["name"], dims, stack)]
    return blocks, dims


# ---------------------------------------------------------------- the tests


def test_page_loads_offline_with_its_own_assets(page: Any, server_url: str) -> None:
    assert page.title() == "rnnbridge — see the gates"
    assert page.locator("h1").inner_text().startswith("rnnbridge")
    assert page.is_visible("label[for=files]")
    # /convert's options as the service declares them: `strict` only where the form has it
    form = httpx.get(f"{server_url}/openapi.json").json()["components"]["schemas"]["ConvertForm"]["properties"]
    page.set_input_files("#files", [str(path) for path in BY_ID["torch_lstm_proj_2l_bi"].paths])
    page.wait_for_selector("#convert")
    assert page.is_visible("#strict") == ("strict" in form)
    holds = httpx.get(f"{server_url}/conventions").json()["formats"]
    formats = [f for f in form["format"]["enum"] if "tf1" in holds[f]]  # h5 is for target=keras only
    assert page.input_value("#convert-target") == "tf1"
    assert page.locator("#format option").all_inner_texts() == formats
    assert "tf_checkpoint" in formats and "onnx" not in formats  # a format offered for its targets only
    page.select_option("#convert-target", "onnx")
    assert page.locator("#format option").all_inner_texts() == [f for f in form["format"]["enum"] if "onnx" in holds[f]]
    assert page.errors == []


@pytest.mark.parametrize("upload", UPLOADS, ids=ids)
def test_layer_table_matches_the_manifest(page: Any, upload: Upload) -> None:
    load(page, upload)
    rows = page.locator("#layers tbody tr")
    layers = MANIFEST[upload.id]["layers"]
    assert rows.count() == len(layers)
    for k, expected in enumerate(layers):
        row = rows.nth(k)
        assert row.locator("th").inner_text() == expected["name"]
        assert row.locator("td.cell").inner_text() == expected["cell"].upper()
        sizes = row.locator("td.sizes").inner_text()
        assert f"in {expected['input_size']}" in sizes and f"units {expected['units']}" in sizes
        assert row.locator("td.levels").inner_text() == str(expected["num_layers"])
        assert row.locator("td.directions").inner_text().startswith(str(expected["directions"]))
        assert row.locator("td.dtype").inner_text() == MANIFEST[upload.id]["dtype"]
        if expected["cell"] == "gru":
            variant = "reset after" if expected["flags"].get("reset_after", True) else "reset before"
            assert variant in row.locator("td.variant").inner_text()
    assert page.errors == []


def test_assumptions_are_visible_warnings(page: Any, server_url: str) -> None:
    """A TF1 checkpoint stores no activations and no forget_bias: the page says what it assumed."""
    upload = BY_ID["tf1_lstm_forget_bias_half"]
    load(page, upload)
    assumed = inspect(server_url, upload)["layers"][0]["assumed"]
    assert assumed, "the fixture should carry assumptions"
    cell = page.locator("#layers tbody tr").first.locator("td.assumptions li")
    texts = cell.all_inner_texts()
    for item in assumed:
        value = item["value"]
        value = int(value) if isinstance(value, float) and value.is_integer() else value  # as JavaScript prints it
        shown = f"⚠ {item['fact']} assumed: {value} ({item['because']}); state it with {item['field']}"
        assert shown in texts, texts
    assert "forget_bias" in page.locator("#file-notes").inner_text()


def test_unsupported_layers_are_listed_with_their_reason(page: Any, server_url: str) -> None:
    upload = Upload("torch_rnn_unsupported", ("model.pt",), "keras")
    load(page, upload)
    unsupported = inspect(server_url, upload)["unsupported_layers"]
    items = page.locator("#unsupported li").all_inner_texts()
    assert len(items) == len(unsupported) > 0
    for item, layer in zip(items, unsupported):
        assert item == f"{layer['name']} ({layer['kind']}): {layer['reason']}"


@pytest.mark.parametrize("upload", UPLOADS, ids=ids)
def test_gate_map_source_blocks_are_the_engines(page: Any, server_url: str, upload: Upload) -> None:
    """Every cell of every layer: the blocks drawn, their letters, slices and shapes."""
    load(page, upload)
    inspection = inspect(server_url, upload)
    for k, layer in enumerate(inspection["layers"]):
        page.locator("#layers tbody tr").nth(k).get_by_role("button").click()
        options = page.locator("#cell option")
        cells = sorted(
            {(t["level"], t["direction"]) for t in layer["tensors"]}, key=lambda c: (c[0], c[1] != "forward")
        )
        assert options.count() == len(cells)
        for index, (level, direction) in enumerate(cells):
            assert options.nth(index).inner_text() == f"level {level}, {direction}"
            page.select_option("#cell", str(index))
            expected, _ = expected_source(layer, level, direction)
            assert drawn_blocks(page, "source") == expected


@pytest.mark.parametrize("upload", UPLOADS, ids=ids)
def test_gate_map_target_is_what_convert_writes(page: Any, server_url: str, upload: Upload) -> None:
    """The target side names the tensors /convert writes, with their shapes, split by the engine."""
    load(page, upload)
    page.select_option("#target", upload.target)
    inspection = inspect(server_url, upload)
    layer = inspection["layers"][0]
    fields = {"target": upload.target, "format": "json", "layer": layer["name"]}
    converted = httpx.post(f"{server_url}/convert", files=upload.multipart(), data=fields, timeout=30).json()
    arrays = converted["arrays"]
    meta = converted["meta"]["layers"][0]
    conv = CONVENTIONS[meta["target"]["convention"]]
    assert conv == candidates(upload.target, layer["cell"], CONVENTIONS[layer["convention"]].reset_after)[0]
    level, direction = layer["tensors"][0]["level"], layer["tensors"][0]["direction"]
    _, dims = expected_source(layer, level, direction)
    tensors = drawn_tensors(page, "target")
    assert tensors, "the target side is drawn"
    expected_blocks = []
    for tensor in tensors:
        written = [name for name in arrays if name.endswith(("/" + tensor["name"], "." + tensor["name"]))]
        assert len(written) == 1, (tensor["name"], list(arrays))
        shape = arrays[written[0]]["shape"]
        assert tensor["shape"] == (shape[1:] if conv.stack_directions else shape)
        spec = conv.tensor(tensor["role"])
        expected_blocks += _grid(conv, spec, tensor["name"], dims, _stack(conv, direction, layer["directions"]))
    assert drawn_blocks(page, "target") == expected_blocks
    assert len(tensors) == len({name for name in arrays if name.startswith(meta["target"]["names_start"])}) // (
        layer["num_layers"] * (1 if conv.stack_directions else layer["directions"])
    )


def test_hover_and_focus_show_the_slice(page: Any) -> None:
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    page.select_option("#target", "keras")
    forget = page.locator('#gatemap .block[data-side="source"][data-block="W_xf"]')
    forget.hover()
    assert "encoder.rnn.weight_ih_l0[4:8, :]" in page.inner_text("#detail")
    assert "shape [4, 3]" in page.inner_text("#detail")
    assert "lands in l0/forward/kernel[:, 4:8]" in page.inner_text("#detail")
    assert "transposed" in page.inner_text("#detail")
    # keyboard: every block is in the tab order and focusing one explains it
    page.focus("#files")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('block')"):
            break
    assert page.evaluate("document.activeElement.dataset.block") == "W_xi"
    assert "encoder.rnn.weight_ih_l0[0:4, :]" in page.inner_text("#detail")
    summed = page.locator('#gatemap .block[data-side="source"][data-block="b_hf"]')
    summed.focus()
    assert "lands in l0/forward/bias[4:8]" in page.inner_text("#detail")
    assert "summed into the input bias" in page.inner_text("#detail")


def test_folded_constants_and_zeros_are_marked(page: Any) -> None:
    """Torch → TF1: TF1 adds forget_bias 1 at run time, which the written bias must subtract."""
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    page.select_option("#target", "tf1")
    forget = page.locator('#gatemap .block[data-side="target"][data-block="b_xf"]')
    assert "−1 (target forget_bias)" in forget.get_attribute("aria-label")
    forget.focus()
    assert "folded constant: −1 (target forget_bias)" in page.inner_text("#detail")
    # TF1 → PyTorch: the recurrent biases PyTorch stores receive zeros, the forget_bias is added
    load(page, BY_ID["tf1_lstm_forget_bias_half"])
    page.select_option("#target", "pytorch")
    zeros = page.locator('#gatemap .block.zeros[data-side="target"]')
    assert sorted(zeros.evaluate_all("nodes => nodes.map(n => n.dataset.block)")) == ["b_hf", "b_hg", "b_hi", "b_ho"]
    assert "+1 (source forget_bias)" in page.locator(
        '#gatemap .block[data-side="target"][data-block="b_xf"]'
    ).get_attribute("aria-label")


def test_switching_targets_redraws_the_target_only(page: Any) -> None:
    load(page, BY_ID["k2_stacked_bilstm"])
    source = drawn_blocks(page, "source")
    seen = {}
    for framework in ("tf1", "pytorch", "onnx"):
        page.select_option("#target", framework)
        assert drawn_blocks(page, "source") == source
        seen[framework] = [t["name"] for t in drawn_tensors(page, "target")]
        assert page.input_value("#convert-target") == framework
    assert seen == {
        "tf1": ["l0/forward/kernel", "l0/forward/bias"],
        "pytorch": ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"],
        "onnx": ["l0/W", "l0/R", "l0/B"],
    }


def test_a_target_without_the_cell_is_refused_on_the_map(page: Any) -> None:
    load(page, Upload("k2_bigru_reset_before", ("m.h5",), "tf1"))
    page.select_option("#target", "pytorch")
    assert page.locator('#gatemap .block[data-side="target"]').count() == 0
    assert "pytorch has no reset-before GRU" in page.inner_text("#map-notes")


@pytest.mark.parametrize(
    ("upload", "fmt", "options"),
    [
        (BY_ID["torch_lstm_proj_2l_bi"], "npz", {}),
        (BY_ID["onnx_gru_bidirectional_lbr1"], "safetensors", {}),
        (BY_ID["k2_stacked_bilstm"], "npz", {"target": "pytorch", "bare": True, "layer": "bilstm_1"}),
        (BY_ID["tf1_lstm_forget_bias_half"], "h5", {"target": "keras", "source_forget_bias": "0.5"}),
        (BY_ID["onnx_gru_bidirectional_lbr1"], "onnx", {"target": "onnx"}),
        (BY_ID["torch_lstm_proj_2l_bi"], "tf_checkpoint", {}),
    ],
    ids=["torch-npz", "onnx-safetensors", "keras-bare-prefix", "tf1-keras-h5", "onnx-model", "tf1-checkpoint"],
)
def test_convert_downloads_the_bytes_convert_returns(
    page: Any, server_url: str, upload: Upload, fmt: str, options: dict[str, Any]
) -> None:
    load(page, upload)
    target = options.get("target", upload.target)
    page.select_option("#convert-target", target)
    page.select_option("#format", fmt)
    fields = {"target": target, "format": fmt, "verify": "true"}
    if "layer" in options:
        page.select_option("#convert-layer", options["layer"])
        fields["layer"] = options["layer"]
    if options.get("bare"):
        page.check("#bare")
        fields["prefix"] = ""
    if "source_forget_bias" in options:
        page.fill("#source_forget_bias", options["source_forget_bias"])
        fields["source_forget_bias"] = options["source_forget_bias"]
    page.click("#convert")
    link = page.wait_for_selector("#download")
    with page.expect_download() as info:
        link.click()
    download = info.value
    direct = httpx.post(f"{server_url}/convert", files=upload.multipart(), data=fields, timeout=30)
    assert direct.status_code == 200, direct.text
    assert Path(download.path()).read_bytes() == direct.content
    assert f'filename="{download.suggested_filename}"' in direct.headers["content-disposition"]
    report = json.loads(direct.headers["x-rnnbridge-verification"])
    verified = page.inner_text("#result .verified")
    assert verified.startswith("✔ Verification passed")
    shown = [float(number) for number in re.findall(r"\d\.\d\de[-+]\d+", verified)]
    assert shown == pytest.approx([report["max_abs_err"], report["tolerance"]], rel=0.01)
    assert page.evaluate("document.querySelector('#progress').value") == 1  # the upload reported progress
    assert page.errors == []


def test_a_refusal_shows_its_reason_and_the_way_out(page: Any, server_url: str) -> None:
    """TF1 peepholes have no place in Keras: /convert refuses, and the page says why and what to do."""
    upload = Upload("tf1_lstm_peephole_proj", ("model.ckpt.index", "model.ckpt.data-00000-of-00001"), "keras")
    load(page, upload)
    page.select_option("#convert-target", "keras")
    page.click("#convert")
    problem = page.wait_for_selector("#result .problem")
    direct = httpx.post(f"{server_url}/convert", files=upload.multipart(), data={"target": "keras"}, timeout=30)
    body = direct.json()
    assert direct.status_code == 422
    assert page.inner_text("#result .problem-detail") == body["detail"]
    assert "convert to tf1 or onnx" in body["detail"]  # the way out
    assert body["code"] in page.inner_text("#result .problem-code")
    assert problem.get_attribute("role") == "alert"
    # the map said so before the request was made
    page.select_option("#target", "keras")
    assert "has no place for the peephole" in page.inner_text("#map-notes")


def test_strict_refuses_what_the_file_does_not_record(page: Any, server_url: str) -> None:
    """A TF1 checkpoint records no activations: with `strict` checked, /convert names the field to send."""
    upload = BY_ID["tf1_lstm_forget_bias_half"]
    load(page, upload)
    page.select_option("#convert-target", "pytorch")
    page.check("#strict")
    page.click("#convert")
    page.wait_for_selector("#result .problem")
    fields = {"target": "pytorch", "strict": "true"}
    direct = httpx.post(f"{server_url}/convert", files=upload.multipart(), data=fields, timeout=30)
    body = direct.json()
    assert (direct.status_code, body["code"]) == (422, "assumption_required")
    assert page.inner_text("#result .problem-detail") == body["detail"]
    assert "assumption_required" in page.inner_text("#result .problem-code")
    page.uncheck("#strict")
    page.click("#convert")
    page.wait_for_selector("#download")
    assert page.errors == []


def test_a_checkpoint_without_its_shard_is_refused_with_a_reason(page: Any) -> None:
    page.set_input_files("#files", [str(FIXTURES / "tf1_bidi_multi_lstm" / "model.ckpt.index")])
    page.wait_for_selector("#status .problem")
    assert "data" in page.inner_text("#status .problem-detail")
    assert page.is_hidden("#layers-section")


def test_no_request_leaves_loopback(page_factory: Any, server_url: str) -> None:
    """A whole session, every request recorded (page_factory also aborts and fails on others)."""
    page = page_factory()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    page.click("#convert")
    page.wait_for_selector("#download")
    page.goto(server_url + "/docs")
    page.wait_for_selector(".opblock")
    assert requests and all(url.startswith((server_url + "/", "blob:", "data:")) for url in requests), requests
    assert {url.split("?")[0].removeprefix(server_url) for url in requests} >= {"/inspect", "/convert", "/conventions"}


def test_no_serious_accessibility_violations(page_factory: Any, artifacts: Path) -> None:
    """axe-core (vendored, injected by the test only) on the page with a file loaded and converted."""
    page = page_factory(bypass_csp=True)  # the product's CSP rightly refuses the injected script
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    page.click("#convert")
    page.wait_for_selector("#download")
    page.locator('#gatemap .block[data-side="source"]').first.focus()
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [v for v in results["violations"] if v["impact"] in {"serious", "critical"}]
    (artifacts / "axe-violations.json").write_text(json.dumps(results["violations"], indent=1))
    assert serious == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in serious]


@pytest.mark.parametrize("width", [1280, 420])
def test_usable_on_a_laptop_and_a_narrow_window(page_factory: Any, width: int) -> None:
    page = page_factory(viewport={"width": width, "height": 800})
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page scrolls sideways; only the map and the table may"
    for selector in ("#convert", "#target", "#cell", "label[for=files]"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    page.locator('#gatemap .block[data-side="source"]').first.focus()
    assert page.is_visible("#detail code")


@pytest.mark.parametrize(
    ("upload", "target"), [(BY_ID["torch_lstm_proj_2l_bi"], "tf1"), (BY_ID["k2_stacked_bilstm"], "pytorch")]
)
def test_gate_map_screenshots(page: Any, artifacts: Path, upload: Upload, target: str) -> None:
    load(page, upload)
    page.select_option("#target", target)
    page.locator('#gatemap .block[data-side="source"][data-block="W_xf"]').first.focus()
    path = artifacts / f"gate-map-{upload.id}-to-{target}.png"
    page.locator("#map-section").screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def test_cudnn_memory_reread_and_row_stacked_biases(page: Any) -> None:
    """Keras 2 CuDNNGRU → Keras GRU(reset_after=True): kernels reread, the bias becomes two rows."""
    load(page, BY_ID["k2_cudnn_gru"])
    page.select_option("#target", "keras")
    page.locator('#gatemap .block[data-side="source"][data-block="W_xr"]').focus()
    detail = page.inner_text("#detail")
    assert "cuDNN memory reread in canonical shape" in detail
    assert page.locator(".link-mark.mark-copy", has_text="≋").count() == 3  # W_x: r, z, n
    recurrent = page.locator('#gatemap .block[data-side="target"][data-block="b_hn"]')
    assert recurrent.get_attribute("data-slice") == "l0/forward/bias[1, 6:9]"


def test_an_api_key_goes_with_every_request_of_the_page(page: Any) -> None:
    """For a server with RNNBRIDGE_API_KEYS: the key the user enters is sent as X-API-Key."""
    sent: dict[str, str | None] = {}
    page.on("request", lambda request: sent.update({request.url.rsplit("/", 1)[-1]: request.headers.get("x-api-key")}))
    page.locator("#access summary").click()
    page.fill("#api-key", "a-key-of-sixteen-chars")
    page.press("#api-key", "Tab")
    load(page, BY_ID["torch_lstm_proj_2l_bi"])
    page.click("#convert")
    page.wait_for_selector("#download")
    assert sent["inspect"] == sent["convert"] == "a-key-of-sixteen-chars"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert sent["conventions"] == "a-key-of-sixteen-chars"  # kept for the tab
