"""Bulk writes and reads: PostgreSQL ``COPY`` / SQLite ``executemany`` (:func:`copy_rows`), multi-row INSERT …
RETURNING (:func:`insert_rows`), chunked ``IN`` reads; the caller commits once.

:func:`copy_rows` is the ingest path (EPCIS capture, certificate batches): on PostgreSQL the new ids are
taken from the table's sequence first (``nextval`` over ``generate_series``) and the rows streamed with
psycopg 3 ``cursor.copy`` (``COPY … FROM STDIN``); on SQLite one ``executemany`` inside the caller's
transaction, whose write lock makes the new rowids consecutive (``last_insert_rowid()`` gives the last).
Values go through each column's SQLAlchemy bind processor, so rows are stored exactly as the ORM stores
them; a unique violation is raised as SQLAlchemy's ``IntegrityError`` (the caller rolls back: nothing of
the transaction is kept).

SQLAlchemy 2's "insertmanyvalues" turns ``connection.execute(insert(t).returning(t.c.id), rows)`` into
multi-row ``INSERT … VALUES (…), (…) RETURNING id`` on PostgreSQL (psycopg 3) and SQLite ≥ 3.35, with
``sort_by_parameter_order=True`` so returned ids line up with ``rows``. Used by EPCIS capture and the
certificate batch endpoint; the caller owns the transaction and commits once (durable before the 2xx).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
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


def insert_new_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *, key: str) -> None:
    """Insert the ``rows`` whose ``key`` column value is not stored yet: ``INSERT … ON CONFLICT (key) DO NOTHING``
    (PostgreSQL: one ``INSERT … SELECT FROM unnest(<one array per column>)``; SQLite ≥ 3.24: executemany in chunks
    of :data:`CHUNK`), rows sorted by ``key``.

    For rows that concurrent transactions may insert too (e.g. the identifier mapping of an EPC two captures
    name at once): a row another transaction inserted and committed is skipped, one it holds uncommitted makes
    this statement wait for its outcome (PostgreSQL), so neither fails. Sorting by ``key`` makes every
    transaction take the unique-index entries in the same order (no deadlock between two such inserts). A
    violation of any *other* unique constraint still raises ``IntegrityError``. Other backends: plain INSERT.
    """
    if not rows:
        return
    conn = session.connection()
    backend = conn.dialect.name
    ordered = sorted(rows, key=lambda r: r[key])
    names = list(ordered[0])
    if backend == "postgresql" and not any(isinstance(table.c[n].type, JSON) for n in names):
        # one statement, one array per column: INSERT … SELECT FROM unnest(…) WITH ORDINALITY (rows in key order)
        quote = conn.dialect.identifier_preparer.quote
        arrays = ", ".join(f"CAST(:c{i} AS {table.c[n].type.compile(conn.dialect)}[])" for i, n in enumerate(names))
        cols = ", ".join(quote(n) for n in names)
        sql = (f"INSERT INTO {conn.dialect.identifier_preparer.format_table(table)} ({cols}) "
               f"SELECT {cols} FROM unnest({arrays}) WITH ORDINALITY AS v({cols}, ord) ORDER BY ord "
               f"ON CONFLICT ({quote(key)}) DO NOTHING")
        conn.execute(text(sql), {f"c{i}": [r[n] for r in ordered] for i, n in enumerate(names)})
        return
    if backend == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=[table.c[key]])
    elif backend == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=[table.c[key]])
    else:
        stmt = insert(table)
    for i in range(0, len(ordered), CHUNK):
        conn.execute(stmt, ordered[i:i + CHUNK])


def copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *,
              returning_id: bool = False) -> list[int]:
    """Insert ``rows`` (dicts with the same keys) into ``table`` the fastest way the backend offers.

    PostgreSQL: ids from the table's sequence, then ``COPY table (…) FROM STDIN`` (psycopg 3); SQLite:
    one ``executemany``; any other backend: :func:`insert_rows`. Returns the new primary keys in the
    order of ``rows`` when ``returning_id`` (else ``[]``). Runs in the session's transaction (the caller
    commits). Raises ``sqlalchemy.exc.IntegrityError`` on a unique or foreign-key violation.
    """
    if not rows:
        return []
    conn = session.connection()
    dialect = conn.dialect
    backend = dialect.name
    names = list(rows[0])
    if backend not in ("postgresql", "sqlite") or (backend == "postgresql" and dialect.driver != "psycopg"):
        return insert_rows(session, table, rows, returning_id=returning_id)
    missing = [c for c in table.columns if c.name not in names and c.name != "id"
               and c.default is not None and not c.default.is_scalar]
    if missing:  # a Python-side callable default: let SQLAlchemy apply it
        return insert_rows(session, table, rows, returning_id=returning_id)
    procs = [table.c[n].type.bind_processor(dialect) for n in names]
    # psycopg's JSON binds are adapted by the driver (no processor): COPY takes the JSON text
    procs = [json.dumps if p is None and isinstance(table.c[n].type, JSON) else p for n, p in zip(names, procs,
                                                                                                  strict=True)]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cols = ", ".join(dialect.identifier_preparer.quote(n) for n in names)
    name = dialect.identifier_preparer.format_table(table)

    converted = [(i, p) for i, p in enumerate(procs) if p is not None]

    def values(row: dict[str, Any]) -> list[Any]:
        vals = [row[n] for n in names]
        for i, p in converted:
            if vals[i] is not None:
                vals[i] = p(vals[i])
        return vals

    try:
        if backend == "postgresql":
            return _copy_pg(raw, table, name, cols, names, rows, values, returning_id)
        return _executemany_sqlite(raw, name, cols, names, rows, values, returning_id)
    except dialect.dbapi.IntegrityError as exc:  # type: ignore[union-attr]
        raise IntegrityError(f"INSERT INTO {name}", None, exc) from exc


def _copy_pg(raw: Any, table: Table, name: str, cols: str, names: list[str], rows: Sequence[dict[str, Any]],
             values: Any, returning_id: bool) -> list[int]:
    ids: list[int] = []
    with raw.cursor() as cur:
        if returning_id:
            cur.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                        (table.name, len(rows)))
            ids = [int(r[0]) for r in cur.fetchall()]
            cols = "id, " + cols
        with cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
            if returning_id:
                for rid, row in zip(ids, rows, strict=True):
                    copy.write_row([rid, *values(row)])
            else:
                for row in rows:
                    copy.write_row(values(row))
    return ids


def _executemany_sqlite(raw: Any, name: str, cols: str, names: list[str], rows: Sequence[dict[str, Any]],
                        values: Any, returning_id: bool) -> list[int]:
    marks = ", ".join("?" for _ in names)
    cur = raw.cursor()
    try:
        cur.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})", [values(r) for r in rows])
        if not returning_id:
            return []
        last = int(cur.execute("SELECT last_insert_rowid()").fetchone()[0])
        first = last - len(rows) + 1
        # the transaction holds SQLite's write lock since the first row: the rowids are max+1, max+2, …
        got = int(cur.execute(f"SELECT count(*) FROM {name} WHERE id BETWEEN ? AND ?", (first, last)).fetchone()[0])
        if got != len(rows):
            raise RuntimeError(f"{name}: rowids of a bulk insert are not consecutive ({got} of {len(rows)})")
        return list(range(first, last + 1))
    finally:
        cur.close()
