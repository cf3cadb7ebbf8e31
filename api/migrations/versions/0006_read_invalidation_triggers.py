"""Database triggers that record an invalidation when a row a cached answer depends on changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

``api/read_cache.py`` serves a cached resolution or ``verified`` verdict of an anchored record without
reading the database. What those answers depend on can only change, once a record is anchored in a final
batch, by a replacement certificate (the API writes its ``read_invalidations`` row itself) or by someone
changing the rows behind the API's back (by hand, with SQL). These triggers make the database itself
write the ``read_invalidations`` rows for the second case, in the transaction that changes the row, so
every API process drops the answers at its next poll (``TRACELEDGER_READ_CACHE_POLL_S``):

* ``records``: UPDATE or DELETE of a row whose old ``status`` is ``anchored`` (pending rows are never
  cached; the anchoring worker's own updates touch pending rows only) — the old identifier, and the new
  one when the identifier itself changed;
* ``batches``: UPDATE or DELETE of a row whose old ``status`` is ``final`` (the worker never updates a
  final batch) — every record of that batch;
* ``enterprises``: DELETE, or UPDATE changing ``id``, ``name``, ``prefix`` or ``address`` (the owner
  columns answers show and verdicts check) — every anchored record of that enterprise;
* PostgreSQL only: TRUNCATE of any of the three — ``*`` (every process clears its whole cache).

Pending records and final batches are filtered in the trigger's WHEN clause, so the anchoring worker's bulk
updates write nothing. Limit: whoever can drop or disable these triggers (the database owner; on
PostgreSQL also ``session_replication_role = replica``) can still change a row unseen until the entry
expires (``TRACELEDGER_READ_CACHE_TTL_S``); online verification trusts the API operator, the offline
bundle does not. SQLite batch-mode revisions that copy one of these tables drop its triggers: such a
revision must create them again (``tests/api/test_read_cache.py`` checks they exist at head).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALL = "*"
"""The identifier of an invalidation that clears every cached answer (``api.read_cache.ALL``)."""

TRIGGERS = {
    "records": ("tl_read_invalidation_records",),
    "batches": ("tl_read_invalidation_batches",),
    "enterprises": ("tl_read_invalidation_enterprises",),
}
"""Trigger names per table (PostgreSQL; SQLite has one per operation: ``<name>_update`` and ``<name>_delete``)."""

_OWNER_CHANGED = ("OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name "
                  "OR OLD.prefix IS DISTINCT FROM NEW.prefix OR OLD.address IS DISTINCT FROM NEW.address")

_PG = [
    """
CREATE OR REPLACE FUNCTION tl_read_invalidation_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_invalidations (identifier, created_at) VALUES (OLD.identifier, now());
    IF TG_OP = 'UPDATE' AND NEW.identifier IS DISTINCT FROM OLD.identifier THEN
        INSERT INTO read_invalidations (identifier, created_at) VALUES (NEW.identifier, now());
    END IF;
    RETURN NULL;
END $$""",
    """
CREATE OR REPLACE FUNCTION tl_read_invalidation_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_invalidations (identifier, created_at)
        SELECT identifier, now() FROM records WHERE batch_id = OLD.id;
    RETURN NULL;
END $$""",
    f"""
CREATE OR REPLACE FUNCTION tl_read_invalidation_enterprises() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR {_OWNER_CHANGED} THEN
        INSERT INTO read_invalidations (identifier, created_at)
            SELECT identifier, now() FROM records WHERE enterprise_id = OLD.id AND status = 'anchored';
    END IF;
    RETURN NULL;
END $$""",
    f"""
CREATE OR REPLACE FUNCTION tl_read_invalidation_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_invalidations (identifier, created_at) VALUES ('{ALL}', now());
    RETURN NULL;
END $$""",
    "DROP TRIGGER IF EXISTS tl_read_invalidation_records ON records",
    "CREATE TRIGGER tl_read_invalidation_records AFTER UPDATE OR DELETE ON records FOR EACH ROW "
    "WHEN (OLD.status = 'anchored') EXECUTE FUNCTION tl_read_invalidation_records()",
    "DROP TRIGGER IF EXISTS tl_read_invalidation_batches ON batches",
    "CREATE TRIGGER tl_read_invalidation_batches AFTER UPDATE OR DELETE ON batches FOR EACH ROW "
    "WHEN (OLD.status = 'final') EXECUTE FUNCTION tl_read_invalidation_batches()",
    "DROP TRIGGER IF EXISTS tl_read_invalidation_enterprises ON enterprises",
    "CREATE TRIGGER tl_read_invalidation_enterprises AFTER UPDATE OR DELETE ON enterprises FOR EACH ROW "
    "EXECUTE FUNCTION tl_read_invalidation_enterprises()",
    *[stmt for table in TRIGGERS for stmt in (
        f"DROP TRIGGER IF EXISTS tl_read_invalidation_truncate ON {table}",
        f"CREATE TRIGGER tl_read_invalidation_truncate AFTER TRUNCATE ON {table} FOR EACH STATEMENT "
        "EXECUTE FUNCTION tl_read_invalidation_all()")],
]

_PG_DOWN = [
    *[f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, (name,) in TRIGGERS.items()],
    *[f"DROP TRIGGER IF EXISTS tl_read_invalidation_truncate ON {table}" for table in TRIGGERS],
    "DROP FUNCTION IF EXISTS tl_read_invalidation_records()",
    "DROP FUNCTION IF EXISTS tl_read_invalidation_batches()",
    "DROP FUNCTION IF EXISTS tl_read_invalidation_enterprises()",
    "DROP FUNCTION IF EXISTS tl_read_invalidation_all()",
]

# SQLite stores DATETIME as text; SQLAlchemy writes and parses 'YYYY-MM-DD HH:MM:SS.ffffff' (six digits)
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"


def _sqlite_trigger(name: str, op_: str, table: str, when: str, body: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}_{op_.lower()}",
            f"CREATE TRIGGER {name}_{op_.lower()} AFTER {op_} ON {table} FOR EACH ROW WHEN {when} BEGIN {body} END"]


def _insert_one(expr: str) -> str:
    return f"INSERT INTO read_invalidations (identifier, created_at) VALUES ({expr}, {_SQLITE_NOW});"


_SQLITE = [
    *_sqlite_trigger("tl_read_invalidation_records", "UPDATE", "records", "OLD.status = 'anchored'",
                     _insert_one("OLD.identifier")
                     + f" INSERT INTO read_invalidations (identifier, created_at) SELECT NEW.identifier, {_SQLITE_NOW}"
                     " WHERE NEW.identifier IS NOT OLD.identifier;"),
    *_sqlite_trigger("tl_read_invalidation_records", "DELETE", "records", "OLD.status = 'anchored'",
                     _insert_one("OLD.identifier")),
    *[stmt for op_ in ("UPDATE", "DELETE") for stmt in _sqlite_trigger(
        "tl_read_invalidation_batches", op_, "batches", "OLD.status = 'final'",
        f"INSERT INTO read_invalidations (identifier, created_at) SELECT identifier, {_SQLITE_NOW} FROM records"
        " WHERE batch_id = OLD.id;")],
    *[stmt for op_, when in (("UPDATE", _OWNER_CHANGED.replace("IS DISTINCT FROM", "IS NOT")), ("DELETE", "1"))
      for stmt in _sqlite_trigger(
        "tl_read_invalidation_enterprises", op_, "enterprises", f"({when})",
        f"INSERT INTO read_invalidations (identifier, created_at) SELECT identifier, {_SQLITE_NOW} FROM records"
        " WHERE enterprise_id = OLD.id AND status = 'anchored';")],
]

_SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {name}_{op_}" for (name,) in TRIGGERS.values() for op_ in ("update", "delete")]


def _statements(up: bool) -> list[str]:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        return _PG if up else _PG_DOWN
    if dialect == "sqlite":
        return _SQLITE if up else _SQLITE_DOWN
    raise NotImplementedError(f"read invalidation triggers for {dialect}")


def upgrade() -> None:
    """Create the triggers (replacing any of the same name: safe to run again)."""
    for stmt in _statements(True):
        op.execute(stmt)


def downgrade() -> None:
    """Drop the triggers and their functions (cached answers then see hand-made changes only at expiry)."""
    for stmt in _statements(False):
        op.execute(stmt)
