"""Database engine and sessions (SQLite with WAL + synchronous=FULL, or PostgreSQL via psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from api.settings import Settings

PG_POOL_SIZE = 20
"""PostgreSQL connections one process keeps open once a load needed them (32 bench users on 2 workers: ~17)."""
PG_POOL_OVERFLOW = 10
"""Further connections for bursts, closed on return; at most 30 per process as before (10 + 20 overflow)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + synchronous=FULL: a COMMIT returns only after the WAL is fsync'ed, so a record
    # acknowledged with 201 survives a crash or power loss.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    """Create the SQLAlchemy engine for ``settings.sqlalchemy_url``.

    SQLite: allows use from worker threads and sets the durability
    pragmas on every connection. PostgreSQL: psycopg 3 driver with ``pool_pre_ping`` and a pool that keeps
    up to :data:`PG_POOL_SIZE` connections open once opened, plus :data:`PG_POOL_OVERFLOW` more for bursts
    (an overflow connection is closed on return: with the former 10 kept, 16 concurrent requests per process
    opened — forked a server process — and closed a connection every few requests).
    """
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=PG_POOL_OVERFLOW)


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration revision (idempotent; see :mod:`api.migrations`).

    An empty database gets every table; one made by ``create_all`` before migrations existed is adopted
    at the baseline and upgraded in place, its rows untouched. Not safe to run from two processes at
    once by itself: the API start-up calls it under :func:`api.anchoring.lease.serialized`. Raises
    ``alembic.util.CommandError`` when the database is recorded at a revision this code does not know.
    """
    from api import migrations

    migrations.upgrade(engine)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that is closed on exit; the caller commits explicitly (rollback on error)."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
