"""Problem bodies and exception handlers: every 422 is ``{"detail": [Issue…]}``; never a bare 500.

Shapes (declared in the OpenAPI document by :func:`install_handlers`):

* **422** :class:`ValidationProblem` ``{"detail": [{field, rule, message, event_index?}]}`` — one
  :class:`provenance.errors.Issue` per problem, whether FastAPI's request parsing found it
  (:class:`fastapi.exceptions.RequestValidationError`, its ``loc`` turned into a dotted ``field``) or a
  handler raised :class:`UnprocessableError`;
* **other 4xx/5xx** :class:`Problem` ``{"detail": <message string | [Issue…] | {reason, message}>}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.chain import ChainError, ChainUnavailable
from provenance.errors import Issue

log = logging.getLogger(__name__)

MAX_ISSUES = 1000
"""At most this many issues are listed in one 422 body (the rest are cut off)."""


def issue(field: str, rule: str, message: str) -> Issue:
    """One entry of a 422 ``detail`` list (shorthand for :class:`provenance.errors.Issue`)."""
    return Issue(field, rule, message)


class UnprocessableError(Exception):
    """Raise from handlers and services to answer 422 ``{"detail": [issues…]}``.

    ``issues``: :class:`Issue` objects (``{field, rule, message[, event_index]}`` mappings are converted).
    """

    def __init__(self, issues: Iterable[Issue | Mapping[str, Any]]) -> None:
        self.issues: list[Issue] = [Issue.coerce(i) for i in issues]
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in self.issues[:5]))


class ConflictError(Exception):
    """Raise to answer 409 ``{"detail": detail}``; ``detail`` is a message or a list of :class:`Issue`.

    ``headers`` are added to the answer (e.g. ``X-Current-Certificate``).
    """

    def __init__(self, detail: str | Sequence[Issue], *, headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail if isinstance(detail, str) else "; ".join(i.message for i in detail))


def unprocessable_response(issues: Iterable[Issue | Mapping[str, Any]]) -> JSONResponse:
    """The one 422 builder: ``{"detail": [{field, rule, message[, event_index]}…]}`` (≤ :data:`MAX_ISSUES`)."""
    items = [Issue.coerce(i).as_dict() for i in issues][:MAX_ISSUES]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": items})


# ------------------------------------------------------------------------------------ OpenAPI shapes
class IssueSchema(BaseModel):
    """One validation problem (:class:`provenance.errors.Issue`)."""

    field: str = Field(description="path of the offending value, e.g. `Certificate.Inspection[0].TensileTest.C11."
                                   "Value`, `header.X-Record-Signature`, `query.supersedes`, `body`")
    rule: str = Field(description="machine-readable rule id, e.g. `schema.required`, `signer`, `json_invalid`")
    message: str = Field(description="human-readable explanation")
    event_index: int | None = Field(None, description="EPCIS capture only: 0-based index of the event")


class ValidationProblem(BaseModel):
    """422 body: every problem found, each naming its field."""

    detail: list[IssueSchema]


class RefusalDetail(BaseModel):
    """Why the chain refused a workflow step: the contract's custom error name and a message."""

    reason: str | None = Field(description="Solidity custom error name, e.g. `SamePerson`, `NotMember`")
    message: str


class ChainRefusal(BaseModel):
    """403/404/409/422 body of a work-ticket or receivable step the contract refused."""

    detail: RefusalDetail


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


CHAIN_REFUSAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"description": "Validation problems, or a step the contract refused as invalid",
          "content": {"application/json": {"schema": {"anyOf": [_ref("ValidationProblem"), _ref("ChainRefusal")]}}}},
}
"""``responses=`` for routers whose handlers may answer a :class:`ChainRefusal` 422 (a route-declared 422 is
kept by :func:`truthful_openapi`)."""


class Problem(BaseModel):
    """Any other error body (401, 403, 404, 409, 413, 502, 503, 500)."""

    detail: str | list[IssueSchema] | dict[str, Any] = Field(
        description="a message; a list of issues (409 of the certificate batch); or `{reason, message}` (chain "
                    "refusals of the work-ticket and receivable workflows)")


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def _request_issues(exc: RequestValidationError) -> list[Issue]:
    found = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        rule = str(err.get("type", "invalid"))
        if rule == "json_invalid":
            loc = ("body",)
            msg = f"request body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
        else:
            msg = str(err.get("msg", "invalid value"))
        found.append(Issue(_loc_to_field(loc), rule, msg))
    return found


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the real error shapes.

    FastAPI declares ``HTTPValidationError`` (``{detail: [{loc, msg, type}]}``) as the 422 of every
    operation with parameters; our handlers answer :class:`ValidationProblem` instead. This replaces
    that default 422 with ``ValidationProblem`` (a 422 a route declares itself, e.g.
    :data:`CHAIN_REFUSAL_RESPONSES`, is kept), adds ``Problem`` as the ``default`` (any other error) response
    of every operation, and drops the unused FastAPI schemas (in place, once: cached on ``app.openapi_schema``).
    """
    doc = FastAPI.openapi(app)  # FastAPI's document, generated once and cached on app.openapi_schema
    if "ValidationProblem" in doc.get("components", {}).get("schemas", {}):
        return doc
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (IssueSchema, ValidationProblem, Problem, ChainRefusal):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(found.pop("$defs", {}))
        schemas[found.get("title", model.__name__)] = found
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            has_input = bool(operation.get("parameters") or operation.get("requestBody"))
            own_422 = "422" in responses and "HTTPValidationError" not in json.dumps(responses["422"])
            if (has_input or "422" in responses) and not own_422:
                responses["422"] = {"description": "Validation problems, each naming its field",
                                    "content": {"application/json": {"schema": _ref("ValidationProblem")}}}
            responses.setdefault("default", {"description": "Error (message or issues)",
                                              "content": {"application/json": {"schema": _ref("Problem")}}})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def install_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app`` and its truthful OpenAPI document (:func:`truthful_openapi`)."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return unprocessable_response(_request_issues(exc))

    @app.exception_handler(UnprocessableError)
    async def _unprocessable(_: Request, exc: UnprocessableError) -> JSONResponse:
        return unprocessable_response(exc.issues)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else [Issue.coerce(i).as_dict() for i in exc.detail]
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": detail}, headers=exc.headers)

    @app.exception_handler(ChainUnavailable)
    async def _chain_down(_: Request, exc: ChainUnavailable) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content={"detail": str(exc)})

    @app.exception_handler(ChainError)
    async def _chain_error(_: Request, exc: ChainError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_502_BAD_GATEWAY, content={"detail": f"chain refused: {exc}"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            content={"detail": f"internal error ({type(exc).__name__}); see server log"},
        )

    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
