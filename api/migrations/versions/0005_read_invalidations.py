"""Invalidations of cached record answers: table ``read_invalidations`` (api/read_cache.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

One row per change of a cached fact (a replacement certificate sets ``superseded_by`` of the record it
replaces), written in that change's transaction; every API process follows the table to drop its
cached resolution, Handle values, ``/id`` data and verdict of that identifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateTable

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METADATA = sa.MetaData()

READ_INVALIDATIONS = sa.Table(
    "read_invalidations",
    _METADATA,
    # BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY is SQLite's auto-incrementing rowid)
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("identifier", sa.String(length=300), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def upgrade() -> None:
    """Create ``read_invalidations`` unless it exists."""
    if context.is_offline_mode():
        op.execute(CreateTable(READ_INVALIDATIONS))
        return
    READ_INVALIDATIONS.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop ``read_invalidations`` (caches then only expire by age)."""
    op.drop_table("read_invalidations")
