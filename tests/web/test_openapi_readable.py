"""The OpenAPI document read by people (``/docs``, ``/redoc``), and the page's route; no browser."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from rnnbridge.engine.conventions import TARGET_FRAMEWORKS
from rnnbridge.schemas import ConventionsResponse, Health, InspectResponse, Readiness, examples
from rnnbridge.service.docs import TAGS

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ASSETS = ("app.js", "gatemap.js", "render.js", "style.css")
MODELS = {"/inspect": InspectResponse, "/conventions": ConventionsResponse, "/healthz": Health, "/readyz": Readiness}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, op) for path, ops in document["paths"].items() for op in ops.values()]


def test_every_operation_has_one_known_tag(document: dict[str, Any]) -> None:
    names = [tag["name"] for tag in TAGS]
    assert [tag["name"] for tag in document["tags"]] == names
    for path, op in operations(document):
        assert len(op["tags"]) == 1 and op["tags"][0] in names, path
        uploads = "multipart/form-data" in op.get("requestBody", {}).get("content", {})
        assert (op["tags"][0] == "weights") == uploads, path


def test_forms_have_readable_names_and_file_pickers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert not [name for name in schemas if name.startswith("Body_")]
    for path, op in operations(document):
        form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if form is None:
            continue
        name = form["schema"]["$ref"].rsplit("/", 1)[-1]
        assert name.endswith("Form") and name in schemas, path
        files = schemas[name]["properties"]["file"]
        assert files["type"] == "array" and files["items"]["format"] == "binary"


@pytest.mark.parametrize("path", sorted(examples.RESPONSES))
def test_response_examples_are_valid_and_documented(document: dict[str, Any], path: str) -> None:
    example = examples.RESPONSES[path]
    MODELS[path].model_validate(example)
    documented = document["paths"][path]
    assert next(iter(documented.values()))["responses"]["200"]["content"]["application/json"]["example"] == example


@pytest.mark.parametrize("path", sorted(examples.FORMS))
def test_form_examples_use_the_forms_fields(document: dict[str, Any], path: str) -> None:
    form = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    fields = document["components"]["schemas"][form["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert form["example"] == examples.FORMS[path]
    assert set(form["example"]) <= set(fields)


@pytest.mark.parametrize(
    ("form", "fields"),
    [
        ("InspectForm", {"activations", "clip", "input_forget", "names"}),
        ("SplitForm", {"activations", "clip", "input_forget", "names", "strict"}),
        ("ConvertForm", {"activations", "clip", "input_forget", "names", "strict", "scope"}),
    ],
)
def test_optional_fields_start_empty_in_try_it_out(document: dict[str, Any], form: str, fields: set[str]) -> None:
    """Every optional field without a default starts empty (Swagger UI would otherwise send a
    value nobody chose), the fact, naming and scope fields among them; defaults start as themselves."""
    schema = document["components"]["schemas"][form]
    properties = schema["properties"]
    assert fields <= set(properties)
    example = next(
        op["requestBody"]["content"]["multipart/form-data"]["example"]
        for op in (ops["post"] for ops in document["paths"].values() if "post" in ops)
        if op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].endswith(f"/{form}")
    )
    assert example in examples.FORMS.values()
    for name, prop in properties.items():
        if name in example:
            assert prop["examples"] == [example[name]], name
        elif name not in schema.get("required", ()) and "default" not in prop:
            assert prop["examples"] == [""], name
            assert "anyOf" not in prop, name  # one type: a text box or a select, never null


def test_conventions_example_lists_every_output_format(client: TestClient) -> None:
    assert examples.RESPONSES["/conventions"]["formats"] == client.get("/conventions").json()["formats"]


def test_the_page_is_served_with_a_same_origin_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "static/page/app.js" in response.text and "static/page/style.css" in response.text
    for text in (response.text, *(client.get(f"/static/page/{name}").text for name in ASSETS)):
        # no absolute URL (the one exception names the SVG namespace): nothing from elsewhere
        assert set(re.findall(r"https?://[^\s\"'`)]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert client.head("/").status_code == 200


def test_conventions_give_the_layout_the_page_draws(client: TestClient) -> None:
    """Letters per canonical gate, transforms per part, row-stacked vectors, stacked directions,
    and the targets each output format holds."""
    document = client.get("/conventions").json()
    assert document["formats"]["h5"] == ["keras"] and document["formats"]["npz"] == list(TARGET_FRAMEWORKS)
    registry = document["conventions"]
    assert registry["tf1.lstm"]["letters"] == {"i": "i", "f": "f", "g": "j", "o": "o"}
    assert registry["onnx.lstm"]["stack_directions"] is True
    kernel = next(t for t in registry["keras.cudnn_lstm"]["tensors"] if t["name"] == "kernel")
    assert kernel["transforms"] == ["R"]
    bias = next(t for t in registry["keras.gru_reset_after"]["tensors"] if t["name"] == "bias")
    assert bias["rows"] is True
