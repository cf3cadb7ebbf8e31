"""The OpenAPI document declares the error bodies the API really sends.

FastAPI declares its own 422 shape (``{detail: [{loc, msg, type}]}``), but :mod:`api.errors` answers
``{"detail": [{field, rule, message, event_index?}]}`` (and the strict JSON reader and rate limiter use
the same shape). :func:`declare_error_shapes` rewrites the two component schemas every 422 refers to.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ISSUE_SCHEMA: dict[str, Any] = {
    "title": "Issue", "type": "object", "required": ["field", "rule", "message"],
    "properties": {
        "field": {"type": "string", "description": "where: body.x.y, query.q, header.H or a document path"},
        "rule": {"type": "string", "description": "which rule or limit, e.g. max_depth, less_than_equal"},
        "message": {"type": "string"},
        "event_index": {"type": "integer", "description": "EPCIS capture: 0-based index in eventList"},
    },
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object", "required": ["detail"],
    "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}},
}


def declare_error_shapes(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the real 422 body (components ``ValidationError``/``HTTPValidationError``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ValidationError"] = ISSUE_SCHEMA
        components["HTTPValidationError"] = PROBLEM_SCHEMA
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
