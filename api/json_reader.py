"""One strict, bounded JSON reader in front of every write (pure ASGI middleware).

Every ``POST``/``PUT``/``PATCH``/``DELETE`` body is read here **before** routing, authentication or
any other work, counting the bytes actually received (a chunked body or a lying ``Content-Length``
is caught), and parsed with :func:`provenance.strict_json.loads`. Refusals carry the API's error shape
``{"detail": [{"field": "body", "rule": <limit>, "message": …}]}``:

====================== ========================================================= ======= ==========
rule                   what                                                      status  default
====================== ========================================================= ======= ==========
``max_body_bytes``     body bytes actually streamed (per route, below)           413     1 MiB
``max_depth``          array/object nesting                                      422     32
``max_string_chars``   characters in one string or member name                   422     65,536
``max_array_items``    items in one array                                        422     100,000
``max_int_digits``     digits of one integer literal                             422     80
``duplicate_keys``     the same member name twice in one object (RFC 7493 §2.3)  422     refused
``finite_numbers``     ``NaN``, ``Infinity``, overflowing numbers (RFC 8259 §6)  422     refused
``unicode``            invalid UTF-8, lone surrogates (RFC 7493 §2.1)            422     refused
``syntax``             not JSON at all                                           422     —
====================== ========================================================= ======= ==========

Per-route body limits: ``POST /v1/coils/certificates`` 2 MiB, ``POST /v1/epcis/capture`` and ``POST /capture`` 16 MiB,
``POST /v1/coils/certificates/batch`` 32 MiB; every other write ``max_body_bytes`` (settings
``TRACELEDGER_MAX_BODY_BYTES``). The parsed bytes are then replayed unchanged to the application, and the
parsed value is left in the ASGI scope under :data:`PARSED_BODY` so a route can take it instead of parsing
the body a second time (:func:`parsed_body`; ``POST /v1/epcis/capture`` and ``POST /v1/coils/certificates`` do).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from provenance import strict_json
from provenance.strict_json import JsonLimits, StrictJsonError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Body limits (bytes) of the bulk routes; exact path match.
ROUTE_BODY_LIMITS: dict[str, int] = {
    "/v1/coils/certificates": 2 * 1024 * 1024,
    "/v1/epcis/capture": 16 * 1024 * 1024,
    "/capture": 16 * 1024 * 1024,  # the EPCIS 2.0 REST binding (GS1-EPCIS-Capture-File-Size-Limit)
    "/v1/coils/certificates/batch": 32 * 1024 * 1024,
}
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: ASGI scope key of the value parsed from a JSON write body (absent when the body was not JSON or empty)
PARSED_BODY = "traceledger.json_body"
#: bodies up to this size are checked on the event loop (well under a millisecond); larger ones in a thread
INLINE_PARSE_BYTES = 64 * 1024


def _declares_json(scope: Scope) -> bool:
    """True when the request's ``Content-Type`` is absent or JSON (``application/json``, ``…+json``)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True


def parsed_body(scope: Scope) -> tuple[bool, Any]:
    """``(True, value)`` when :class:`StrictJsonBody` parsed this request's body (the same value ``json.loads``
    gives: the reader only refuses more), else ``(False, None)`` (not JSON, empty, or no reader in front)."""
    if PARSED_BODY in scope:
        return True, scope[PARSED_BODY]
    return False, None


class BodyRefused(Exception):
    """A body refused by the reader: HTTP ``status``, ``rule`` (the limit's name) and ``message``."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule
        self.message = message


def problem(status: int, rule: str, message: str) -> tuple[int, bytes]:
    """The error body: ``{"detail": [{"field": "body", "rule", "message"}]}`` as UTF-8 JSON."""
    body = {"detail": [{"field": "body", "rule": rule, "message": message}]}
    return status, json.dumps(body, ensure_ascii=True).encode()


class StrictJsonBody:
    """ASGI middleware: bounded read + strict parse of every write body (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 limits: JsonLimits | None = None, route_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits = limits or JsonLimits()
        self.route_limits = ROUTE_BODY_LIMITS if route_limits is None else route_limits

    def body_limit(self, path: str) -> int:
        """Bytes allowed for a write to ``path``."""
        return self.route_limits.get(path.rstrip("/") or "/", self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            if not _declares_json(scope):
                pass  # another media type: the route answers it (e.g. 415 for XML); the size limit still held
            elif len(body) > INLINE_PARSE_BYTES:  # large bodies (bulk ingest) are parsed off the event loop
                scope[PARSED_BODY] = await anyio.to_thread.run_sync(strict_json.loads, body, self.limits)
            elif body.strip():
                scope[PARSED_BODY] = strict_json.loads(body, self.limits)
        except BodyRefused as exc:
            await self._refuse(send, exc.status, exc.rule, exc.message)
            return
        except StrictJsonError as exc:
            await self._refuse(send, 422, exc.limit, exc.message)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect once the client goes away

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.body_limit(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise BodyRefused(400, "content_length", "Content-Length is not a number") from None
                if declared > limit:
                    raise BodyRefused(413, "max_body_bytes", f"body of {declared} bytes exceeds the limit of "
                                                             f"{limit} bytes for {scope['path']} (max_body_bytes)")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyRefused(400, "incomplete_body", "the client disconnected before the body ended")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, "max_body_bytes", f"body exceeds the limit of {limit} bytes for "
                                                         f"{scope['path']} (max_body_bytes; bytes counted as "
                                                         "received, chunked included)")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    @staticmethod
    async def _refuse(send: Send, status: int, rule: str, message: str) -> None:
        status, body = problem(status, rule, message)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
