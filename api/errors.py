"""Error bodies and exception handlers: 422 lists ``{field, rule, message}``; never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.chain import ChainError, ChainUnavailable

log = logging.getLogger(__name__)


def issue(field: str, rule: str, message: str) -> dict[str, str]:
    """One entry of a 422 ``detail`` list."""
    return {"field": field, "rule": rule, "message": message}


class UnprocessableError(Exception):
    """Raise from handlers to answer 422 ``{"detail": [issues…]}``."""

    def __init__(self, issues: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{i['field']}: {i['message']}" for i in issues))
        self.issues = issues


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def install_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            rule = str(err.get("type", "invalid"))
            if rule == "json_invalid":
                loc = ("body",)
                msg = f"request body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
            else:
                msg = str(err.get("msg", "invalid value"))
            details.append(issue(_loc_to_field(loc), rule, msg))
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": details})

    @app.exception_handler(UnprocessableError)
    async def _unprocessable(_: Request, exc: UnprocessableError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": exc.issues})

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
