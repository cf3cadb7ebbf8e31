"""Group commit of single-record writes: concurrent requests share one durable commit.

A single certificate POST used to pay one whole transaction each: INSERT, then a COMMIT that waits for
the disk (SQLite WAL with ``synchronous=FULL`` fsyncs; PostgreSQL flushes its WAL). Under concurrency
the requests now hand their prepared rows to one committer thread, which writes everything queued in
one transaction and one COMMIT, then wakes every request of the group. Nothing waits on a timer: the
first request is committed at once, and the requests that arrive while that commit is on disk form the
next group, so the group size follows the load (classic group commit; PostgreSQL's ``commit_delay``
does the same inside the server).

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
from concurrent.futures import Future
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
    and identifier of the record it supersedes. ``done`` resolves to the new record ids (or raises)."""

    rows: list[dict[str, Any]]
    replaced_id: int | None = None
    replaced_identifier: str | None = None
    done: Future[list[int]] = field(default_factory=Future)


class GroupCommitter:
    """One committer thread per process; :meth:`submit` blocks the calling request until its group is durable.

    ``max_group``: most requests per transaction (bounds a rollback's cost). The thread starts on first use.
    """

    def __init__(self, engine: Engine, *, max_group: int = 256) -> None:
        self.engine = engine
        self.max_group = max_group
        self._queue: list[Write] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.groups = 0
        """Transactions committed (for tests and ``/metrics``-style curiosity)."""
        self.writes = 0
        """Requests committed."""

    def submit(self, write: Write) -> list[int]:
        """Queue ``write`` and wait until it is committed; returns the new record ids in row order.

        Raises:
            IntegrityError: a row of this write violates a constraint (nothing of it was stored).
            RuntimeError: the committer is stopped.
        """
        with self._cond:
            if self._stopping:
                raise RuntimeError("group committer stopped")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.append(write)
            self._cond.notify()
        return write.done.result()

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                group = self._queue[:self.max_group]
                del self._queue[:self.max_group]
            self._commit_group(group)

    def _commit_group(self, group: list[Write]) -> None:
        try:
            with self.engine.begin() as conn:
                results = _apply(conn, group)
        except IntegrityError as exc:
            if len(group) == 1:
                group[0].done.set_exception(exc)
                return
            for w in group:  # find the conflicting request(s): each on its own
                self._commit_group([w])
            return
        except BaseException as exc:  # noqa: BLE001 - every waiting request must be released
            log.exception("group commit failed")
            for w in group:
                w.done.set_exception(exc)
            return
        self.groups += 1
        self.writes += len(group)
        for w, ids in zip(group, results, strict=True):
            w.done.set_result(ids)


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
