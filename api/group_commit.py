"""Group commit of single-record writes: concurrent requests share one durable commit.

A single certificate POST used to pay one whole transaction each: INSERT, then a COMMIT that waits for
the disk (SQLite WAL with ``synchronous=FULL`` fsyncs; PostgreSQL flushes its WAL). Under concurrency
the requests now queue their prepared rows; one of them (the leader) writes everything queued in one
transaction and one COMMIT, then wakes every request of the group. Nothing waits on a timer: the
first request is committed at once, and the requests that arrive while that commit is on disk form the
next group, so the group size follows the load (classic group commit; PostgreSQL's ``commit_delay``
does the same inside the server). The leader is a request thread, not a dedicated one: under the
interpreter lock a separate committer thread would add a hand-off per group.

Guarantees, each tested in ``tests/api/test_group_commit.py``:

* a request is answered only after the commit that holds its row returned (durable before the 2xx);
* a group is all or nothing on the database: when one row violates a constraint (a concurrent request
  stored the same identifier), the group is rolled back and each request of it is committed on its own,
  so only the conflicting request sees the ``IntegrityError``;
* a replacement's ``superseded_by`` update and its read-cache invalidation row
  (:func:`api.read_cache.record_invalidation`) commit in the same transaction as its new record.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.models import Record, utcnow
from api.read_cache import ReadInvalidation

log = logging.getLogger(__name__)

_RECORDS = Record.__table__  # type: ignore[attr-defined]
_INVALIDATIONS = ReadInvalidation.__table__  # type: ignore[attr-defined]


@dataclass
class Write:
    """One request's share of a group: its new ``records`` rows and, for a replacement certificate, the id
    and identifier of the record it supersedes; :meth:`result` gives the new record ids once committed."""

    rows: list[dict[str, Any]]
    replaced_id: int | None = None
    replaced_identifier: str | None = None
    ids: list[int] | None = None
    error: BaseException | None = None
    lead: bool = False
    wake: threading.Event = field(default_factory=threading.Event)

    def result(self) -> list[int]:
        """The new record ids (row order), or raise what failed this write."""
        if self.error is not None:
            raise self.error
        assert self.ids is not None, "write not committed yet"
        return self.ids


class GroupCommitter:
    """Leader/follower group commit: :meth:`submit` blocks the calling request until its group is durable.

    The first request to arrive while no commit is running leads: it commits everything queued (itself
    included) in its own thread, then hands the lead to the oldest request that queued meanwhile, whose group
    then holds every request that arrived during that commit. No extra thread, no timer, one thread hand-off
    per group. ``max_group``: most requests per transaction (bounds a rollback's cost).
    """

    def __init__(self, engine: Engine, *, max_group: int = 256) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: list[Write] = []
        self._lock = threading.Lock()
        self._leading = False
        self._stopping = False
        self.groups = 0
        """Transactions committed."""
        self.writes = 0
        """Requests committed."""

    def submit(self, write: Write) -> list[int]:
        """Queue ``write`` and wait until it is committed; returns the new record ids in row order.

        Raises:
            IntegrityError: a row of this write violates a constraint (nothing of it was stored).
            RuntimeError: the committer is stopped.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError("group committer stopped")
            self._queue.append(write)
            if not self._leading:
                self._leading = True
                write.lead = True
                write.wake.set()
        write.wake.wait()
        if write.lead and write.ids is None and write.error is None:
            self._lead()
        return write.result()

    def stop(self) -> None:
        """Refuse new writes (those queued are committed by their leader)."""
        with self._lock:
            self._stopping = True

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[:self.max_group]
            del self._queue[:self.max_group]
        self._commit_group(group)
        with self._lock:
            if not self._queue:
                self._leading = False
                return
            successor = self._queue[0]  # arrived during this commit: leads the next group
            successor.lead = True
        successor.wake.set()

    def _commit_group(self, group: list[Write]) -> None:
        try:
            with self.engine.begin() as conn:
                results = _apply(conn, group)
        except IntegrityError as exc:
            if len(group) == 1:
                _finish(group[0], error=exc)
                return
            for w in group:  # find the conflicting request(s): each on its own
                self._commit_group([w])
            return
        except BaseException as exc:  # noqa: BLE001 - every waiting request must be released
            log.exception("group commit failed")
            for w in group:
                _finish(w, error=exc)
            return
        self.groups += 1
        self.writes += len(group)
        for w, ids in zip(group, results, strict=True):
            _finish(w, ids=ids)


def _finish(write: Write, *, ids: list[int] | None = None, error: BaseException | None = None) -> None:
    write.ids, write.error = ids, error
    write.wake.set()


def _apply(conn: Connection, group: list[Write]) -> list[list[int]]:
    """Write a group inside one transaction: every row in one multi-row ``INSERT … RETURNING`` (one round trip
    whatever the group size: the committer thread holds the interpreter lock as little as possible), then the
    replacements' ``superseded_by`` updates and invalidation rows. The new record ids, per write."""
    rows = [row for w in group for row in w.rows]
    stmt = insert(_RECORDS).returning(_RECORDS.c.id, sort_by_parameter_order=True)
    ids = [int(r[0]) for r in conn.execute(stmt, rows).all()]
    out: list[list[int]] = []
    at = 0
    for w in group:
        out.append(ids[at:at + len(w.rows)])
        at += len(w.rows)
        if w.replaced_id is not None:
            new_identifier = w.rows[0]["identifier"]
            conn.execute(update(_RECORDS).where(_RECORDS.c.id == w.replaced_id).values(superseded_by=new_identifier))
            conn.execute(insert(_INVALIDATIONS).values(identifier=w.replaced_identifier, created_at=utcnow()))
    return out
