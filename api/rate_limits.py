"""Per-API-key rate limits on writes (pure ASGI middleware over the ``limits`` library).

Every ``POST``/``PUT``/``PATCH``/``DELETE`` is counted against its caller — the SHA-256 of the
``Authorization`` header (an enterprise API key or the governance token), or the client address when
there is none — in a moving window per limit of ``TRACELEDGER_WRITE_RATE_LIMIT`` (``limits`` notation,
default ``"300/second"``; empty disables). Over the limit the answer is **429** with a
``Retry-After`` header (whole seconds, RFC 9110 §10.2.3) and ``{"detail": [{"field": "header.Authorization",
"rule": "write_rate_limit", "message": …}]}``, before the body is read or anything else is done.
Reads are not limited here (they are cached and cheap; put a reverse proxy in front for those).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.json_reader import WRITE_METHODS, ASGIApp, Receive, Scope, Send


def caller_key(scope: Scope) -> str:
    """Who is writing: ``key:<sha256 of the Authorization header>`` or ``ip:<client address>``."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return "key:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class WriteRateLimit:
    """ASGI middleware enforcing ``limit`` (``limits`` notation, e.g. ``"300/second"``) per caller."""

    def __init__(self, app: ASGIApp, *, limit: str) -> None:
        self.app = app
        self.items: list[RateLimitItem] = parse_many(limit) if limit.strip() else []
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.limit = limit

    def retry_after(self, key: str) -> int | None:
        """None when the write may proceed (and is counted), else the seconds to wait."""
        for item in self.items:
            if not self.limiter.hit(item, key):
                reset = self.limiter.get_window_stats(item, key).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.items or scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        wait = self.retry_after(caller_key(scope))
        if wait is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": [{"field": "header.Authorization", "rule": "write_rate_limit",
                                       "message": f"write rate limit {self.limit} exceeded for this API key; "
                                                  f"retry after {wait} s"}]}).encode()
        headers: list[Any] = [(b"content-type", b"application/json"), (b"retry-after", str(wait).encode()),
                              (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
