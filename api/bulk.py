"""Bulk writes and reads: many rows per statement (multi-row INSERT … RETURNING, chunked ``IN``), one commit.

SQLAlchemy 2's "insertmanyvalues" turns ``connection.execute(insert(t).returning(t.c.id), rows)`` into
multi-row ``INSERT … VALUES (…), (…) RETURNING id`` on PostgreSQL (psycopg 3) and SQLite ≥ 3.35, with
``sort_by_parameter_order=True`` so returned ids line up with ``rows``. Used by EPCIS capture and the
certificate batch endpoint; the caller owns the transaction and commits once (durable before the 2xx).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlmodel import Session

CHUNK = 1000
"""Rows per INSERT statement (bounded memory and parameter counts on both backends)."""

IN_CHUNK = 500
"""Values per ``IN (…)`` list of a chunked read."""


def in_chunks(items: Sequence[Any], n: int = IN_CHUNK) -> Iterator[list[Any]]:
    """``items`` in consecutive lists of at most ``n`` (for ``col.in_(chunk)`` reads of thousands of keys)."""
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, returning_id: bool = False
) -> list[int]:
    """Insert ``rows`` (dicts of column values) into ``table`` in chunks of :data:`CHUNK`.

    Returns the new primary keys in the order of ``rows`` when ``returning_id`` (else ``[]``).
    Raises IntegrityError on a unique violation (nothing of this transaction should then be committed).
    """
    ids: list[int] = []
    conn = session.connection()
    for i in range(0, len(rows), CHUNK):
        chunk = list(rows[i:i + CHUNK])
        if returning_id:
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids.extend(int(r[0]) for r in conn.execute(stmt, chunk).all())
        else:
            conn.execute(insert(table), chunk)
    return ids
