"""EPCIS REST capture jobs: table ``epcis_capture_jobs`` (api/capture_jobs.py, ``POST /capture``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Created only when absent: builds after d71c67f made it with ``create_all`` before migrations existed,
and such a database is adopted at 0001 and then passes through here unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METADATA = sa.MetaData()
sa.Table("enterprises", _METADATA, sa.Column("id", sa.Integer(), primary_key=True))  # FK target only, not created

CAPTURE_JOBS = sa.Table(
    "epcis_capture_jobs",
    _METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("capture_id", sa.String(length=40), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.Column("behaviour", sa.String(length=8), nullable=False),
    sa.Column("running", sa.Boolean(), nullable=False),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.Column("event_count", sa.Integer(), nullable=False),
    sa.Column("errors", sa.JSON(), nullable=False),
    sa.Column("events", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.Index("ix_epcis_capture_jobs_capture_id", "capture_id", unique=True),
    sa.Index("ix_epcis_capture_jobs_enterprise_id", "enterprise_id"),
)


def upgrade() -> None:
    """Create ``epcis_capture_jobs`` and its two indexes unless the table exists."""
    if context.is_offline_mode():
        op.execute(CreateTable(CAPTURE_JOBS))
        for index in sorted(CAPTURE_JOBS.indexes, key=lambda i: str(i.name)):
            op.execute(CreateIndex(index))
        return
    CAPTURE_JOBS.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop ``epcis_capture_jobs`` (its jobs are lost)."""
    op.drop_table("epcis_capture_jobs")
