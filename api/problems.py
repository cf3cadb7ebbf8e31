"""RFC 7807 / RFC 9457 problem details (``application/problem+json``) for the standards bindings.

Used by the GS1 Digital Link resolver and the EPCIS 2.0 REST binding, whose specifications ask for
problem bodies (``{type, title, status, detail, instance}``); the ``/v1`` endpoints keep their
``{"detail": …}`` bodies.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    """A JSON response with media type ``application/problem+json``."""

    media_type = PROBLEM_JSON


def problem(status: int, type_: str, title: str, detail: str, *, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> ProblemResponse:
    """Problem details ``{type, title, status, detail[, instance], …extra}`` with HTTP ``status``."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)
