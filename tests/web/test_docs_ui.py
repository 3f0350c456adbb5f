"""``/docs`` in a real browser: "Try it out" on ``/inspect`` sends a real file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "torch_lstm_proj_2l_bi" / "model.pt"


def test_try_it_out_inspects_a_real_file(page_factory: Any, server_url: str) -> None:
    page = page_factory("/docs")
    operation = page.locator("#operations-weights-inspect_inspect_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    picker = operation.locator('tr[data-property-name="file"] input[type=file]')
    assert picker.count() == 1, "the file field is a file picker"
    picker.set_input_files(str(FIXTURE))
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text() == "200"
    shown = json.loads(
        operation.locator(".live-responses-table tbody .response-col_description pre").first.inner_text()
    )
    direct = httpx.post(f"{server_url}/inspect", files={"file": (FIXTURE.name, FIXTURE.read_bytes())}, timeout=30)
    assert shown == direct.json()
    assert page.errors == []


def test_operations_are_grouped_by_tag(page_factory: Any) -> None:
    page = page_factory("/docs")
    page.wait_for_selector(".opblock-tag")
    names = page.locator(".opblock-tag-section h3").evaluate_all("nodes => nodes.map(n => n.dataset.tag)")
    assert names[:3] == ["weights", "registry", "service"]
    inspect_op = page.locator('.opblock-tag-section:has(h3[data-tag="weights"]) .opblock-summary-path')
    assert {"/inspect", "/split", "/convert"} <= set(inspect_op.all_inner_texts())
    schemas = page.locator("section.models").inner_text()
    assert all(name in schemas for name in ("InspectForm", "ConvertForm", "SplitForm"))
    assert "Body_" not in schemas
