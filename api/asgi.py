"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: that wraps every request in extra tasks and streams)."""

from __future__ import annotations

from typing import Any

from api import metrics


class RequestCounter:
    """Counts every HTTP request in ``traceledger_http_requests_total{route, method, status}``.

    ``route`` is the matched route template (``/v1/identifiers/{identifier:path}``) or ``unmatched``;
    an exception escaping the app counts as status 500 and is re-raised.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.REQUESTS.labels(route=template, method=scope.get("method", ""), status=str(status[0])).inc()
