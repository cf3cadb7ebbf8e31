"""The OpenAPI document as a newcomer needs it: how to authenticate, an example per request body, every
schema and field described in the document itself (OpenAPI 3.1 §4.8.10 Request Body, §4.8.24 Security
Scheme; examples per Media Type Object §4.8.14).

:func:`install_openapi_docs` wraps ``app.openapi`` and, once per process, adds to what FastAPI generates:

* the ``HTTPBearer`` scheme's description (API key of an enterprise or the governance token, sent as
  ``Authorization: Bearer …``) and a top-level description of the groups of endpoints;
* ``examples`` for every JSON request body (:data:`BODY_EXAMPLES`, keyed by method and path template;
  the quickstarts in ``docs/`` use the same bodies and CI runs them);
* a full JSON Schema of the GB 26860 work-ticket ``document`` (:data:`TICKET_DOCUMENT_SCHEMA`, the rules
  of :func:`provenance.work_tickets.validate_ticket_document`);
* descriptions of schemas and fields that have none (:data:`FIELD_DESCRIPTIONS`).

The route modules stay the source of truth for shapes; this module only documents them.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

BEARER_DESCRIPTION = (
    "Send `Authorization: Bearer <key>`. The key is either an enterprise's API key (the `api_key` of "
    "`POST /v1/enterprises`, shown once) or, for governance endpoints such as `POST /v1/enterprises`, the "
    "governance (admin) token (`TRACELEDGER_ADMIN_TOKEN`; `make up` prints it and writes it to `data/admin-token`)."
)

API_DESCRIPTION = """\
Steel-coil certificate ingestion (EN 10168), GS1 EPCIS 2.0 events and parts lineage, GB 26860 electronic
work tickets and ERC-3525 supply-chain receivables, anchored in RFC 9162 Merkle batches on a QBFT chain,
with end-to-end verification.

**Authentication.** Writes take `Authorization: Bearer <key>`: the governance (admin) token for
`POST /v1/enterprises`, otherwise the calling enterprise's API key. Reads of records, identifiers,
verification and lineage are public. Receivables are visible only to the parties involved (404 otherwise).

**Errors.** 422 lists every problem with its field path; a refusal by a contract answers
`{detail: {reason, message, arguments}}`: `reason` is the contract's custom error (e.g. `WrongStatus`),
`message` a sentence, `arguments` its arguments by meaning (statuses and roles by name).

Quickstarts per user group (factory, auditor, bank, power operator, operator): `docs/quickstart-*.md`.
"""

#: GB 26860 ticket document, as checked by provenance.work_tickets.validate_ticket_document
TICKET_DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The work ticket document (GB 26860). Its SHA-256 over RFC 8785 canonical JSON goes on chain; further "
        "keys (e.g. `location`, `notes`) are kept and hashed. A 422 names each bad field as `document.<field>`."),
    "required": ["equipment", "work_content", "safety_measures", "isolation_points", "planned_start", "planned_end"],
    "properties": {
        "equipment": {"type": "string", "pattern": r"^88\.\d+\.\d+/.+$",
                      "description": "Handle-style identifier of the equipment, `88.<industry>.<ent>/<suffix>`"},
        "work_content": {"type": "string", "minLength": 1, "description": "what is done (工作内容)"},
        "safety_measures": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                            "description": "safety measures taken before work (安全措施), at least one"},
        "isolation_points": {"type": "array", "items": {"type": "string", "minLength": 1},
                             "description": "breakers / disconnectors isolated and earthed; may be empty"},
        "planned_start": {"type": "string", "format": "date-time",
                          "description": "ISO 8601 with a UTC offset, e.g. `2026-05-01T08:00:00+08:00`"},
        "planned_end": {"type": "string", "format": "date-time",
                        "description": "ISO 8601 with a UTC offset, after planned_start"},
    },
    "additionalProperties": True,
    "example": {
        "equipment": "88.2.7/XZ-110kV-T1", "work_content": "Replace bushing of main transformer T1",
        "safety_measures": ["Open breaker 101", "Earth both sides of T1"],
        "isolation_points": ["Breaker 101", "Disconnector 101-1"],
        "planned_start": "2026-05-01T08:00:00+08:00", "planned_end": "2026-05-01T18:00:00+08:00",
    },
}

_EPCIS_EXAMPLE: dict[str, Any] = {
    "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
    "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-05-01T08:00:00+08:00",
    "epcisBody": {"eventList": [{
        "type": "ObjectEvent", "eventTime": "2026-05-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:4012345.011111.1001"], "action": "OBSERVE",
        "bizStep": "inspecting", "disposition": "conformant",
        "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"}}]},
}


def _certificate_example() -> dict[str, Any]:
    from provenance.samples import load_samples

    for _, doc in load_samples():
        return doc
    return {}


#: (method, path template) → example request body
_SM2_KEY_BINDING_EXAMPLE = {  # a real key; the signature covers another account's binding statement
    "public_key": "0x041963387f1ac798a1b5dd77cf01c3357f9642e8063a8cb3253729d627bfc1ec453743e93c91034c33bf5a57cfc8fc"
                  "d635dcbab1352f3bc669289c306c36daf19c",
    "signature": "0x30440220380bd46c60cc4481a149792b7c1396428b9d190e7c6b2fe54df464e79c25a80002207b096432e1fd300810"
                 "3a8bb027aba0db33ac361fc1703a3eb3c10f35f96dd3db"}

BODY_EXAMPLES: dict[tuple[str, str], Any] = {
    ("post", "/v1/enterprises"): {"name": "Nordstahl Walzwerk GmbH", "roles": ["manufacturer"]},
    ("post", "/v1/persons"): {"name": "Li Na", "roles": ["permitting_officer"],
                              "qualification": "permits on 110 kV Xinzhuang substation"},
    ("post", "/v1/work-tickets"): {"document": TICKET_DOCUMENT_SCHEMA["example"], "issuer": 1, "permitter": 2,
                                   "leader": 3, "crew": [4, 5]},
    ("post", "/v1/work-tickets/typed-data"): {"document": TICKET_DOCUMENT_SCHEMA["example"], "issuer": 1,
                                              "permitter": 2, "leader": 3, "crew": [4, 5]},
    ("post", "/v1/work-tickets/{ticket_id}/steps"): {"action": "permit", "person_id": 2},
    ("post", "/v1/work-tickets/{ticket_id}/typed-data"): {"action": "permit", "person_id": 2},
    ("post", "/v1/work-tickets/{ticket_id}/sm2-statement"): {"action": "permit", "person_id": 2},
    ("put", "/v1/enterprises/{enterprise_id}/sm2-key"): _SM2_KEY_BINDING_EXAMPLE,
    ("put", "/v1/persons/{person_id}/sm2-key"): _SM2_KEY_BINDING_EXAMPLE,
    ("post", "/v1/receivables"): {"to_enterprise_id": 3, "currency": "CNY", "amount": "1000000.00",
                                  "maturity": "2027-03-31T00:00:00+08:00",
                                  "invoice": {"number": "INV-2026-0042", "date": "2026-04-30", "total": "1000000.00"}},
    ("post", "/v1/receivables/{token_id}/split"): {"to_enterprise_id": 4, "amount": "400000.00"},
    ("post", "/v1/receivables/{token_id}/transfer"): {"to_enterprise_id": 4},
    ("post", "/v1/receivables/{token_id}/approve"): {"operator_enterprise_id": 5, "amount": "150000.00",
                                                     "max_rate_bps": 500},
    ("post", "/v1/receivables/{token_id}/dispute-settlement"): {"reason": "no payment received on account 6222-0001"},
    ("post", "/v1/persons/typed-data"): {"name": "Zhao Lei", "roles": ["crew_member"],
                                         "qualification": "crew, 110 kV Xinzhuang substation",
                                         "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"},
    ("post", "/v1/receivables/{token_id}/discount"): {"amount": "150000.00", "rate_bps": 450,
                                                      "payment_reference": "CQB-2026-88120"},
    ("post", "/v1/receivables/{token_id}/settle"): {"payment_reference": "PAY-2027-0331-01"},
    ("post", "/v1/epcis/capture"): _EPCIS_EXAMPLE,
    ("post", "/v1/price-index"): {"day": "2026-11-30", "prices": [
        {"grade": "S355MC", "currency": "CNY", "price_per_tonne": "4125.50"},
        {"grade": "Q355B", "currency": "CNY", "price_per_tonne": "3860.00"}]},
    ("post", "/v1/warehouse-receipts"): {
        "depositor_enterprise_id": 4, "location": "urn:epc:id:sgln:6901234.00001.0", "grade": "S355MC",
        "insurance_reference": "PICC-2026-0001", "storage_until": "2027-05-31T00:00:00+08:00",
        "coils": [{"identifier": "88.1.1/HK52791-CNW24-118734"},
                  {"identifier": "88.1.1/HK52791-CNW24-118735", "net_weight_kg": 24310,
                   "dimensions": "2.0 x 1250 mm"}]},
    ("post", "/v1/warehouse-receipts/{receipt_id}/pledge"): {
        "bank_enterprise_id": 5, "amount": "150000.00", "currency": "CNY", "maturity": "2027-02-28T00:00:00+08:00"},
    ("post", "/v1/warehouse-receipts/{receipt_id}/transfer"): {"to_enterprise_id": 6},
}

#: field name → description, for schema properties that carry none
FIELD_DESCRIPTIONS: dict[str, str] = {
    "id": "numeric id in this API", "name": "display name", "roles": "role names (see the enum)",
    "prefix": "identifier prefix `88.<industry>.<n>`", "address": "Ethereum account (0x + 40 hex, EIP-55)",
    "active": "whether the enterprise is active in EnterpriseRegistry",
    "registered_on_chain": "whether EnterpriseRegistry holds it already",
    "created_at": "ISO 8601 UTC time of creation", "api_key": "the enterprise's API key, shown only in this answer",
    "to_enterprise_id": "id of the receiving enterprise", "operator_enterprise_id": "id of the bank asked to finance",
    "payment_reference": "payment reference of the bank transfer (unique on chain)",
    "action": "GB 26860 step", "person_id": "id of the person doing the step (POST /v1/persons)",
    "enterprise_id": "id of the person's enterprise", "qualification": "what the person is qualified for",
    "key_custody": "`keystore` (the API signs) or `device` (the person signs)",
    "detail": "list of validation problems", "loc": "location of the problem (body, query, path…)",
    "msg": "what is wrong", "type": "error type", "input": "the offending input", "ctx": "error context",
}

SCHEMA_DESCRIPTIONS: dict[str, str] = {
    "HTTPValidationError": "422 answer of FastAPI's request validation: `detail` lists each problem.",
    "ValidationError": "One request validation problem.",
}


def document_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the security description, body examples, the ticket document schema and missing descriptions to
    a FastAPI-generated OpenAPI ``schema`` (returns a new dict)."""
    out = copy.deepcopy(schema)
    out["info"]["description"] = API_DESCRIPTION
    components = out.setdefault("components", {})
    bearer = components.setdefault("securitySchemes", {}).setdefault("HTTPBearer", {"type": "http",
                                                                                   "scheme": "bearer"})
    bearer["description"] = BEARER_DESCRIPTION
    for path, ops in out.get("paths", {}).items():
        for method, op in ops.items():
            body = op.get("requestBody")
            example = BODY_EXAMPLES.get((method, path))
            if body is None or example is None:
                continue
            for media in body.get("content", {}).values():
                media["examples"] = {"example": {"summary": "a typical body", "value": example}}
    cert_body = out.get("paths", {}).get("/v1/coils/certificates", {}).get("post", {}).get("requestBody")
    if cert_body:
        for media in cert_body.get("content", {}).values():
            media["examples"] = {"example": {"summary": "an EN 10168 mill test certificate (3.1)",
                                             "value": _certificate_example()}}
    batch = out.get("paths", {}).get("/v1/coils/certificates/batch", {}).get("post", {}).get("requestBody")
    if batch:
        for media in batch.get("content", {}).values():
            media["examples"] = {"example": {"summary": "one certificate (up to 5,000)",
                                             "value": {"certificates": [_certificate_example()]}}}
    schemas = components.get("schemas", {})
    for name, model in schemas.items():
        if not model.get("description"):
            model["description"] = SCHEMA_DESCRIPTIONS.get(name, name)
        for prop, prop_schema in model.get("properties", {}).items():
            if not prop_schema.get("description") and "$ref" not in prop_schema:
                prop_schema["description"] = FIELD_DESCRIPTIONS.get(prop, prop.replace("_", " "))
    if "TicketCreate" in schemas and "document" in schemas["TicketCreate"].get("properties", {}):
        schemas["TicketCreate"]["properties"]["document"] = {**TICKET_DOCUMENT_SCHEMA, "title": "Document"}
    return out


def install_openapi_docs(app: FastAPI) -> None:
    """Make ``app.openapi()`` return :func:`document_openapi` of the document ``app.openapi`` gave so far
    (the truthful error shapes of :func:`api.errors.install_handlers`, itself FastAPI's generated schema):
    built once, cached. Install after :func:`api.errors.install_handlers`."""
    previous = app.openapi
    documented: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "doc" not in documented:
            documented["doc"] = document_openapi(previous())
        return documented["doc"]

    app.openapi = openapi  # type: ignore[method-assign]
