"""Election of the one anchoring worker among several API processes sharing a database.

Every API process (each uvicorn worker, each replica behind a load balancer) runs an
:class:`~api.anchoring.worker.AnchoringWorker` thread, but only the process holding the **anchoring lease**
batches and anchors; the others stand by and take over within about a second when the holder dies.

* **PostgreSQL**: ``pg_try_advisory_lock(key)`` on a dedicated autocommit connection (not from the
  pool), held for as long as that connection lives. PostgreSQL releases the lock when the session
  ends, so a SIGKILLed or partitioned holder loses it as soon as the server notices the dead
  connection (immediately for a killed process; TCP keepalive otherwise). ``key`` is a signed 64-bit
  hash of ``traceledger.anchoring`` and ``current_schema()``, so API instances on different schemas
  of one database (tests, tenants) do not contend.
* **SQLite**: an exclusive ``fcntl.flock`` on ``<database file>.anchor-lock`` — the same code path
  with a file lock, released by the kernel when the process dies. An in-memory database has one
  process by definition and is always the leader.

The holder re-checks its PostgreSQL connection before each anchoring round (:meth:`AnchorLease.still_held`);
a lost connection means a lost lease and the worker steps down before touching any batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

LOCK_NAME = "traceledger.anchoring"


def advisory_key(schema: str) -> int:
    """Signed 64-bit advisory-lock key for ``schema`` (PostgreSQL ``bigint``)."""
    raw = hashlib.sha256(f"{LOCK_NAME}:{schema}".encode()).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


class AnchorLease:
    """The anchoring lease of one process: :meth:`try_acquire`, :meth:`still_held`, :meth:`release`.

    Thread-safe; never raises from :meth:`try_acquire` / :meth:`still_held` (a database that cannot be
    reached simply means "not the leader", with the reason in :attr:`last_error`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.url.get_backend_name()
        self.held = False
        self.last_error: str | None = None
        self.key: int | None = None
        self._conn: Any = None  # psycopg.Connection (PostgreSQL)
        self._fd: int | None = None  # lock file descriptor (SQLite)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- public
    def try_acquire(self) -> bool:
        """Take the lease if it is free (non-blocking); True when this process holds it."""
        with self._lock:
            if self.held:
                return True
            try:
                self.held = self._acquire_pg() if self.backend == "postgresql" else self._acquire_file()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - "not the leader" is the safe answer
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._close_pg()
                self.held = False
            if self.held:
                log.info("process %d holds the anchoring lease (%s)", os.getpid(), self.backend)
            return self.held

    def still_held(self) -> bool:
        """True when the lease is still ours (PostgreSQL: the lock connection answers)."""
        with self._lock:
            if not self.held:
                return False
            if self.backend != "postgresql":
                return True
            try:
                self._conn.execute("SELECT 1").fetchone()
                return True
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"anchoring lease lost: {type(exc).__name__}: {exc}"
                log.warning("process %d lost the anchoring lease: %s", os.getpid(), exc)
                self._close_pg()
                self.held = False
                return False

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        with self._lock:
            if self.backend == "postgresql":
                if self._conn is not None and self.held and self.key is not None:
                    try:
                        self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                    except Exception:  # noqa: BLE001 - closing the session releases it anyway
                        pass
                self._close_pg()
            elif self._fd is not None:
                import fcntl

                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                finally:
                    os.close(self._fd)
                    self._fd = None
            self.held = False

    # ----------------------------------------------------------------------------- backends
    def _pg_conninfo(self) -> str:
        url = self.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _acquire_pg(self) -> bool:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._pg_conninfo(), autocommit=True, connect_timeout=5,
                                         application_name="traceledger-anchoring-lease")
            schema = self._conn.execute("SELECT current_schema()").fetchone()[0] or "public"
            self.key = advisory_key(str(schema))
        got = bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
        if not got:
            self._close_pg()
        return got

    def _close_pg(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None

    def lock_path(self) -> Path | None:
        """The SQLite lock file (None for an in-memory database)."""
        db = self.engine.url.database
        if self.backend != "sqlite" or db in (None, "", ":memory:") or str(db).startswith("file::memory:"):
            return None
        return Path(str(db) + ".anchor-lock")

    def _acquire_file(self) -> bool:
        path = self.lock_path()
        if path is None:
            return True
        import fcntl

        if self._fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return True


def serialized(engine: Engine, fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` while holding the database-wide **start-up lock**, and return its result.

    Several uvicorn workers start at the same moment; migrating the schema (:mod:`api.migrations`) and
    creating the operator enterprise must not race (PostgreSQL refuses concurrent ``CREATE TABLE`` of one
    name with a unique violation on ``pg_type``; two workers could both create an operator). PostgreSQL: a blocking
    ``pg_advisory_lock`` (key from ``traceledger.startup`` and the schema) on a dedicated connection;
    SQLite: a blocking ``flock`` on ``<database>.startup-lock``; in-memory SQLite: no lock.
    """
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        import psycopg

        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0] or "public"
            key = advisory_key(f"startup:{schema}")
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                return fn(*args)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    db = engine.url.database
    if backend != "sqlite" or db in (None, "", ":memory:") or str(db).startswith("file::memory:"):
        return fn(*args)
    import fcntl

    path = Path(str(db) + ".startup-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fn(*args)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
