"""Reads served from immutable facts: resolution, Handle values, ``/id`` data and verdicts of anchored records.

Once a record is **anchored** (its batch final under QBFT, immediate finality) nothing it resolves to can
change except one thing: a replacement certificate sets its ``superseded_by`` (EN 10204 revision, once).
So the rendered answers of an anchored record are kept in a bounded in-process LRU
(:class:`api.caches.BoundedCache` ``record_views``), keyed by ``(view, identifier)`` and stamped with the
record's **revision** (``status``, batch root, ``superseded_by``), which is part of every strong ``ETag``;
a hit costs no database round trip and no ORM object. A miss costs one Core SQL query
(:data:`FACTS_QUERY`: record + owner + batch, without the batch's leaf list).

What is never cached as final: a pending record (its anchor state will change), an unknown identifier
(404), a verdict that is not ``verified`` (no chain, chain unreachable, tampered rows: recomputed every
time), any verdict outside the ``qbft`` finality model.

Invalidation (each one has a test in ``tests/api/test_read_cache.py``):

* a replacement certificate: in the same transaction as ``superseded_by`` a row goes into
  ``read_invalidations`` (:func:`record_invalidation`); the process that committed drops its entries at
  once, every other API process within ``TRACELEDGER_READ_CACHE_POLL_S`` (a poller thread reads new rows);
* a fill that raced with an invalidation is discarded: :meth:`ReadCache.put` only stores when no
  invalidation happened since the fill's database read began (:meth:`ReadCache.epoch`);
* a row changed behind the API's back (by hand, with SQL): database triggers (migration ``0006``) write the
  ``read_invalidations`` rows in that change's transaction — an anchored record updated or deleted, a final
  batch updated or deleted (all its records), an owner's name/prefix/address changed (all its anchored
  records), a TRUNCATE on PostgreSQL (:data:`ALL`) — so every process drops the answers at its next poll,
  and a cached ``verified`` verdict is served without reading the row again;
* defence in depth: every entry expires after ``TRACELEDGER_READ_CACHE_TTL_S`` seconds, so even a change
  made with the triggers dropped or disabled (only the database owner can) is seen again within that bound;
* an entry is only ever returned for the identifier and view it was stored under (checked on every hit).

HTTP: answers carry ``ETag`` (strong, ``"<32 hex>"`` of SHA-256 over view, identifier and body) and
``Cache-Control: public, no-cache`` (shared caches may store, but must revalidate: a replacement can come at
any time); ``If-None-Match`` (RFC 9110 §13.1.2, weak comparison) answers **304** with the same headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, bindparam, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel

from api.caches import BoundedCache
from api.models import Batch, Enterprise, Record, UTCDateTime, utcnow

log = logging.getLogger(__name__)

RESOLUTION = "resolution"
"""View: ``GET /v1/identifiers/{identifier}`` body."""
VERIFY = "verify"
"""View: ``GET /v1/verify/{identifier}`` body (verified verdicts only)."""
HANDLE = "handle"
"""View: the Handle values of ``GET /api/handles/{handle}`` (filters applied per request)."""
PAGE = "page"
"""View: ``/id/{identifier}`` data ``{identifier, summary, resolution, verification}``."""
QR = "qr"
"""View: what the QR code of an identifier encodes (``data``: the URL); registered identifiers never vanish."""
DIGITAL_LINK = "digital_link"
"""View: the object a GS1 Digital Link's most specific key names (``data``: ``(identifier, key)``); objects are
insert-only, so the answer never changes once that key was captured."""
VIEWS = (RESOLUTION, VERIFY, HANDLE, PAGE, QR)
ALL = "*"
"""The identifier of an invalidation that clears every cached answer (written by the PostgreSQL TRUNCATE
trigger; never a valid identifier)."""

CACHE_CONTROL = "public, no-cache"
"""Stored by shared caches, revalidated with ``If-None-Match`` each time (a replacement may come at any time)."""


class ReadInvalidation(SQLModel, table=True):
    """One change to a cached fact: the identifier whose answers changed (:data:`ALL`: every identifier).

    Written in the transaction that changes the record: by the API for a replacement certificate, by the
    database's triggers (migration ``0006``) for any other change of a cached row; read by every API
    process's poller."""

    __tablename__ = "read_invalidations"

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True, autoincrement=True))
    identifier: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def record_invalidation(session: Session, identifier: str) -> None:
    """Add the invalidation of ``identifier`` to the caller's transaction (commit it with the change)."""
    session.add(ReadInvalidation(identifier=identifier))


# ----------------------------------------------------------------------------------- rows of one query
@dataclass(frozen=True)
class OwnerRow:
    """The owner enterprise columns an answer needs (attribute names as :class:`api.models.Enterprise`)."""

    id: int
    name: str
    prefix: str
    address: str


@dataclass
class BatchRow:
    """The batch columns an answer needs (names as :class:`api.models.Batch`); ``leaf_digests`` is read
    with a second query only when first asked for (the batch tree is usually cached already)."""

    id: int
    root: str
    size: int
    tx_hash: str | None
    block_number: int | None
    block_hash: str | None
    submitter: str | None
    status: str
    anchored_at: datetime | None
    load_leaves: Callable[[int], list[str]] | None = field(default=None, repr=False, compare=False)
    _leaves: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def leaf_digests(self) -> list[str]:
        """The batch's 0x-hex record digests in leaf order (one query on first use)."""
        if self._leaves is None:
            if self.load_leaves is None:
                raise LookupError(f"batch {self.id}: leaf digests not loaded")
            self._leaves = self.load_leaves(self.id)
        return self._leaves


@dataclass(frozen=True)
class RecordRow:
    """The record columns an answer needs (names as :class:`api.models.Record`)."""

    id: int
    identifier: str
    kind: str
    enterprise_id: int
    document: str
    record_digest: str
    signature: str
    chain_id: int
    status: str
    batch_id: int | None
    leaf_index: int | None
    supersedes: str | None
    superseded_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class RecordFacts:
    """One row of :data:`FACTS_QUERY`: a record, its owner and its batch (None while unbatched)."""

    record: RecordRow
    owner: OwnerRow
    batch: BatchRow | None

    @property
    def final(self) -> bool:
        """True when the record is anchored in a final batch: only ``superseded_by`` can still change."""
        return self.record.status == "anchored" and self.batch is not None and self.batch.status == "final"

    @property
    def revision(self) -> str:
        """What distinguishes one state of the record from another: status, batch root, replacement."""
        root = self.batch.root if self.batch is not None else "-"
        return f"{self.record.status}|{root}|{self.record.leaf_index}|{self.record.superseded_by or '-'}"


_R, _E, _B = Record.__table__, Enterprise.__table__, Batch.__table__  # type: ignore[attr-defined]
_FACTS_BASE = (
    select(_R.c.id, _R.c.identifier, _R.c.kind, _R.c.enterprise_id, _R.c.document, _R.c.record_digest,
           _R.c.signature, _R.c.chain_id, _R.c.status, _R.c.batch_id, _R.c.leaf_index, _R.c.supersedes,
           _R.c.superseded_by, _R.c.created_at,
           _E.c.id, _E.c.name, _E.c.prefix, _E.c.address,
           _B.c.id, _B.c.root, _B.c.size, _B.c.tx_hash, _B.c.block_number, _B.c.block_hash, _B.c.submitter,
           _B.c.status, _B.c.anchored_at)
    .select_from(_R.join(_E, _E.c.id == _R.c.enterprise_id).outerjoin(_B, _B.c.id == _R.c.batch_id))
)
FACTS_QUERY = _FACTS_BASE.where(_R.c.identifier == bindparam("identifier"))
"""Record + owner + batch (no leaf list) of one identifier: the only query of a cache miss."""

_LEAVES_QUERY = select(_B.c.leaf_digests).where(_B.c.id == bindparam("batch_id"))


def load_facts(engine: Engine, identifier: str) -> RecordFacts | None:
    """The :class:`RecordFacts` of ``identifier`` (exact match) with one query, or None when unknown."""
    with engine.connect() as conn:
        row = conn.execute(FACTS_QUERY, {"identifier": identifier}).first()
    if row is None:
        return None
    v = tuple(row)
    record = RecordRow(*v[0:14])
    owner = OwnerRow(*v[14:18])
    batch = None
    if v[18] is not None:
        def leaves(batch_id: int) -> list[str]:
            with engine.connect() as c:
                return list(c.execute(_LEAVES_QUERY, {"batch_id": batch_id}).scalar_one())

        batch = BatchRow(*v[18:27], load_leaves=leaves)
    return RecordFacts(record, owner, batch)


def load_facts_many(conn: Connection, identifiers: Sequence[str], *, chunk: int = 1000) -> dict[str, RecordFacts]:
    """:class:`RecordFacts` of many identifiers (one :data:`FACTS_QUERY` with ``IN`` per ``chunk``), by
    identifier; unknown ones are absent. Rows of one batch share one :class:`BatchRow` (leaves read once),
    read on ``conn`` (the caller's transaction)."""
    stmt = _FACTS_BASE.where(_R.c.identifier.in_(bindparam("identifiers", expanding=True)))
    out: dict[str, RecordFacts] = {}
    batches: dict[int, BatchRow] = {}

    def leaves(batch_id: int) -> list[str]:
        return list(conn.execute(_LEAVES_QUERY, {"batch_id": batch_id}).scalar_one())

    wanted = list(dict.fromkeys(identifiers))
    for i in range(0, len(wanted), chunk):
        part = wanted[i:i + chunk]
        for row in conn.execute(stmt, {"identifiers": part}).all():
            v = tuple(row)
            batch = None
            if v[18] is not None:
                batch = batches.get(v[18]) or batches.setdefault(v[18], BatchRow(*v[18:27], load_leaves=leaves))
            out[v[1]] = RecordFacts(RecordRow(*v[0:14]), OwnerRow(*v[14:18]), batch)
    return out


# ----------------------------------------------------------------------------------- HTTP helpers
def etag_of(view: str, identifier: str, body: bytes) -> str:
    """Strong entity tag ``"<32 hex>"``: SHA-256 over view, identifier and the exact body bytes."""
    h = hashlib.sha256(view.encode() + b"\0" + identifier.encode("utf-8") + b"\0" + body)
    return '"' + h.hexdigest()[:32] + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: True when ``If-None-Match`` lists ``etag`` (weak comparison) or is ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    for candidate in if_none_match.split(","):
        c = candidate.strip()
        if c.startswith("W/"):
            c = c[2:]
        if c == opaque:
            return True
    return False


def json_bytes(body: Any) -> bytes:
    """The bytes FastAPI's ``JSONResponse`` would send for ``body`` (compact, UTF-8, no NaN)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class CachedView:
    """A rendered answer: ``body`` bytes (or ``data`` for views rendered per request), its ETag and revision."""

    view: str
    identifier: str
    revision: str
    body: bytes
    etag: str
    data: Any = None
    stored_at: float = 0.0


def make_view(view: str, identifier: str, revision: str, data: Any, *, keep_data: bool = False) -> CachedView:
    """A :class:`CachedView` of ``data`` rendered as JSON bytes, with its ETag; ``data`` itself is kept only
    with ``keep_data`` (views rendered again per request), so an entry costs its body bytes, not twice that."""
    body = json_bytes(data)
    return CachedView(view, identifier, revision, body, etag_of(view, identifier, body),
                      data if keep_data else None, time.monotonic())


# ----------------------------------------------------------------------------------- the cache
class ReadCache:
    """Bounded LRU of :class:`CachedView` per ``(view, identifier)``, with invalidation by identifier.

    ``maxsize`` entries (``TRACELEDGER_READ_CACHE_ENTRIES``; an entry is one answer's bytes, 1–8 KB), each at
    most ``ttl_s`` seconds old
    (``TRACELEDGER_READ_CACHE_TTL_S``); :meth:`start_poller` follows ``read_invalidations`` every ``poll_s``.
    Thread-safe.
    """

    LOOKBACK = 1000
    """Rows re-read below the highest seen invalidation id (transactions commit out of id order)."""

    def __init__(self, maxsize: int = 20_000, ttl_s: float = 300.0, poll_s: float = 0.5) -> None:
        self._views: BoundedCache[CachedView] = BoundedCache("record_views", maxsize)
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self._epoch = 0
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._high = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def epoch(self) -> int:
        """Invalidation counter; read it before a fill's database read and pass it to :meth:`put`."""
        return self._epoch

    def get(self, view: str, identifier: str) -> CachedView | None:
        """The cached answer of ``identifier`` for ``view``, or None (missing, expired)."""
        entry = self._views.get((view, identifier))
        if entry is None:
            return None
        if entry.view != view or entry.identifier != identifier:  # never another identifier's answer
            return None
        if time.monotonic() - entry.stored_at > self.ttl_s:
            self._views.pop((view, identifier))
            return None
        return entry

    def put(self, entry: CachedView, epoch: int) -> bool:
        """Store ``entry`` unless an invalidation happened since ``epoch`` was read; True when stored."""
        with self._lock:
            if epoch != self._epoch:
                return False
            self._views[(entry.view, entry.identifier)] = entry
            return True

    def invalidate(self, identifier: str) -> None:
        """Drop every view of ``identifier`` and void fills in flight (any identifier)."""
        with self._lock:
            self._epoch += 1
            for view in VIEWS:
                self._views.pop((view, identifier))

    def clear(self) -> None:
        """Drop every entry and void fills in flight (used when invalidations cannot be followed)."""
        with self._lock:
            self._epoch += 1
            self._views.clear()

    def __len__(self) -> int:
        return len(self._views)

    # -- following other processes' invalidations
    def poll(self, engine: Engine) -> int:
        """Apply invalidations committed since the last poll (by any process); returns how many were new."""
        table = ReadInvalidation.__table__  # type: ignore[attr-defined]
        low = max(0, self._high - self.LOOKBACK)
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.id, table.c.identifier).where(table.c.id > low)
                                .order_by(table.c.id)).all()
        new = 0
        for rid, identifier in rows:
            if rid in self._seen:
                continue
            self._seen.add(rid)
            self._high = max(self._high, rid)
            if identifier == ALL:
                self.clear()
            else:
                self.invalidate(identifier)
            new += 1
        floor = self._high - self.LOOKBACK
        self._seen = {i for i in self._seen if i > floor}
        return new

    def start_poller(self, engine: Engine) -> None:
        """Follow ``read_invalidations`` in a daemon thread (first poll before returning: ids already there
        are old news to an empty cache)."""
        if self._thread is not None:
            return
        try:
            self.poll(engine)
        except Exception as exc:  # noqa: BLE001 - the database may be down at start; the thread retries
            log.warning("read cache: first invalidation poll failed: %s", exc)

        def run() -> None:
            while not self._stop.wait(self.poll_s):
                try:
                    self.poll(engine)
                except Exception as exc:  # noqa: BLE001 - keep following; meanwhile serve nothing stale
                    log.warning("read cache: invalidation poll failed, cache cleared: %s", exc)
                    self.clear()

        self._thread = threading.Thread(target=run, name="read-cache-invalidations", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poller thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
