"""The OpenAPI document explains itself: Bearer auth, an example per request body, every schema and field described."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from api.main import create_app
from api.settings import Settings
from provenance.work_tickets import validate_ticket_document


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: ANN401
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("oa"), anchoring_enabled=False,
                               bootstrap_enabled=False))


@pytest.fixture(scope="module")
def spec(app: Any) -> dict[str, Any]:
    return app.openapi()


def test_bearer_scheme_says_where_the_key_goes(spec: dict[str, Any]) -> None:
    bearer = spec["components"]["securitySchemes"]["HTTPBearer"]
    assert bearer["type"] == "http" and bearer["scheme"] == "bearer"
    assert "Authorization: Bearer" in bearer["description"] and "admin" in bearer["description"]
    secured = [op for ops in spec["paths"].values() for op in ops.values() if op.get("security")]
    assert len(secured) >= 10 and all(op["security"] == [{"HTTPBearer": []}] for op in secured)


def test_every_request_body_has_an_example(spec: dict[str, Any]) -> None:
    missing = [f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m, op in ops.items()
               for media in op.get("requestBody", {}).get("content", {}).values()
               if not media.get("examples") and not media.get("example")]
    assert not missing, f"no example body for {missing} (api/openapi_docs.BODY_EXAMPLES)"


def test_examples_match_their_request_schemas(spec: dict[str, Any]) -> None:
    checked = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for media in op.get("requestBody", {}).get("content", {}).values():
                # the whole document as root so that "#/components/schemas/…" references resolve
                root = {**spec, "$ref": "#/x-body", "x-body": media["schema"]}
                errors = list(Draft202012Validator(root).iter_errors(media["examples"]["example"]["value"]))
                assert not errors, f"{method.upper()} {path}: {errors[0].message}"
                checked += 1
    assert checked >= 15
    body = spec["paths"]["/v1/work-tickets"]["post"]["requestBody"]["content"]["application/json"]
    validate_ticket_document(body["examples"]["example"]["value"]["document"])  # the domain rules, too
    wrong = {**body["examples"]["example"]["value"], "crew": "4"}
    assert list(Draft202012Validator({**spec, "$ref": "#/x-body", "x-body": body["schema"]}).iter_errors(wrong))


def test_every_schema_and_field_is_described_in_the_document_itself(spec: dict[str, Any]) -> None:
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("description"), name
        for prop, sub in schema.get("properties", {}).items():
            assert "$ref" in sub or sub.get("description"), f"{name}.{prop}"
    text = str(spec)
    assert "see provenance" not in text and "provenance.work_tickets" not in text
    document = spec["components"]["schemas"]["TicketCreate"]["properties"]["document"]
    assert set(document["required"]) == {"equipment", "work_content", "safety_measures", "isolation_points",
                                         "planned_start", "planned_end"}
    assert "UTC offset" in document["properties"]["planned_start"]["description"]


def test_the_description_points_to_the_quickstarts(spec: dict[str, Any]) -> None:
    assert "docs/quickstart-" in spec["info"]["description"]
