"""Append-only audit log of authenticated writes: who, what, when, outcome.

Every ``POST``/``PUT``/``PATCH``/``DELETE`` whose caller authenticated (an enterprise API key or the
governance token) becomes one ``audit_log`` row: ``at`` (UTC), ``actor`` (``enterprise`` /
``governance``), ``enterprise_id``, ``method``, ``path``, ``route`` (template), ``status`` and
``outcome`` (``ok`` 2xx/3xx, ``refused`` 4xx, ``error`` 5xx). Rows are written by one background
thread per process in batches (every ``FLUSH_S`` seconds, one transaction), so a write request never
waits for the audit insert; the queue is bounded and, when full, the request's own thread writes its
row. The API has no route that updates or deletes rows (append-only); industrial-internet security
guidance (zero trust, least privilege) asks for kept audit logs.

``GET /v1/audit`` (:func:`router`): an enterprise reads its own rows; an enterprise with the
``auditor`` or ``regulator`` role reads every row (its scope: the whole ledger). Newest first, paged
with ``before_id``.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import BigInteger, Column, DateTime, Integer, insert
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, select

from api.deps import CurrentEnterprise, SessionDep
from api.json_reader import WRITE_METHODS, ASGIApp, Receive, Scope, Send
from api.models import utcnow

log = logging.getLogger(__name__)

#: ``request.state`` attribute (``scope["state"]`` key) where :mod:`api.deps` leaves ``(actor, enterprise_id)``
ACTOR_KEY = "audit_actor"
FLUSH_S = 0.25
QUEUE_MAX = 10_000
AUDIT_ROLES = frozenset({"auditor", "regulator"})


class AuditEntry(SQLModel, table=True):
    """One authenticated write (append-only)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                          primary_key=True, autoincrement=True))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    actor: str = Field(max_length=16)
    enterprise_id: int | None = Field(default=None, index=True)
    method: str = Field(max_length=8)
    path: str = Field(max_length=512)
    route: str = Field(max_length=200)
    status: int
    outcome: str = Field(max_length=8)


def outcome_of(status: int) -> str:
    """``ok`` (< 400), ``refused`` (4xx) or ``error`` (5xx)."""
    return "ok" if status < 400 else "refused" if status < 500 else "error"


_AUDIT_LOG = AuditEntry.__table__  # type: ignore[attr-defined]


class AuditWriter:
    """Batches audit rows into the database from one daemon thread (started on first use)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[AuditEntry | dict[str, Any]] = queue.Queue(maxsize=QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def put(self, entry: AuditEntry | dict[str, Any]) -> None:
        """Queue ``entry`` (an :class:`AuditEntry` or its row as a dict of its columns but ``id``; written within
        ``FLUSH_S``); writes it at once when the queue is full."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._write([entry])

    def flush(self) -> int:
        """Write every queued row now; returns how many."""
        batch: list[AuditEntry | dict[str, Any]] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            self._write(batch)
        return len(batch)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the database may be briefly unavailable; retry next round
                log.exception("audit log flush failed")

    def _write(self, batch: list[AuditEntry | dict[str, Any]]) -> None:
        """One transaction, one Core multi-row INSERT (no ORM unit of work per row)."""
        rows = [e if isinstance(e, dict) else e.model_dump(exclude={"id"}) for e in batch]
        with self.engine.begin() as conn:
            conn.execute(insert(_AUDIT_LOG), rows)


class AuditMiddleware:
    """ASGI middleware: after each write, queue an :class:`AuditEntry` when the caller authenticated."""

    def __init__(self, app: ASGIApp, *, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            actor = (scope.get("state") or {}).get(ACTOR_KEY)
            if actor is not None:
                template = getattr(scope.get("route"), "path", None) or "unmatched"
                self.writer.put({"at": utcnow(), "actor": actor[0], "enterprise_id": actor[1],
                                 "method": scope["method"], "path": scope["path"][:512], "route": template[:200],
                                 "status": status[0], "outcome": outcome_of(status[0])})  # an AuditEntry row


router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
def read_audit(
    enterprise: CurrentEnterprise,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    enterprise_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="auditors: one enterprise")] = None,
) -> dict[str, Any]:
    """Audit rows, newest first: ``{entries: [{id, at, actor, enterprise_id, method, path, route, status,
    outcome}], next_before_id}``. Own rows; every row (or ``enterprise_id``'s) for auditors/regulators.
    Errors: 401 API key; 422 query."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)  # type: ignore[union-attr]
    if AUDIT_ROLES.isdisjoint(enterprise.roles or []):
        stmt = stmt.where(AuditEntry.enterprise_id == enterprise.id)
    elif enterprise_id is not None:
        stmt = stmt.where(AuditEntry.enterprise_id == enterprise_id)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)  # type: ignore[operator]
    rows = session.exec(stmt).all()
    entries = [{"id": r.id, "at": _utc(r.at), "actor": r.actor, "enterprise_id": r.enterprise_id,
                "method": r.method, "path": r.path, "route": r.route, "status": r.status, "outcome": r.outcome}
               for r in rows]
    return {"entries": entries, "next_before_id": rows[-1].id if len(rows) == limit else None}


def _utc(at: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (SQLite returns naive datetimes; they were stored as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
