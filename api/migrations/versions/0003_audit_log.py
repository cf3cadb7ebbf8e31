"""Audit log of authenticated writes: table ``audit_log`` (api/audit.py, ``GET /v1/audit``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Created only when absent: builds between d71c67f and this revision made it with ``create_all``, and such
a database passes through here unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METADATA = sa.MetaData()

AUDIT_LOG = sa.Table(
    "audit_log",
    _METADATA,
    # BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY is SQLite's auto-incrementing rowid)
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(length=16), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=True),
    sa.Column("method", sa.String(length=8), nullable=False),
    sa.Column("path", sa.String(length=512), nullable=False),
    sa.Column("route", sa.String(length=200), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("outcome", sa.String(length=8), nullable=False),
    sa.Index("ix_audit_log_enterprise_id", "enterprise_id"),
)


def upgrade() -> None:
    """Create ``audit_log`` and its index unless the table exists."""
    if context.is_offline_mode():
        op.execute(CreateTable(AUDIT_LOG))
        for index in sorted(AUDIT_LOG.indexes, key=lambda i: str(i.name)):
            op.execute(CreateIndex(index))
        return
    AUDIT_LOG.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop ``audit_log`` (the audit entries are lost)."""
    op.drop_table("audit_log")
