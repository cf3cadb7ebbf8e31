"""Baseline: the schema of the last release without migrations (commit d71c67f, ``create_all``).

Revision ID: 0001
Revises:
Create Date: 2026-11-30

The tables are a frozen copy of the models as they were then (not imported from ``api.models``, which
moves on). :func:`upgrade` creates each table and its indexes only when the table is absent, exactly as
``SQLModel.metadata.create_all`` did: on an empty database it creates all ten; on a database made by
an earlier release it creates none (or the ones that release lacked) and only records this revision,
which is how such a database is adopted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BASELINE_METADATA = sa.MetaData()

sa.Table(
    "batches",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("root", sa.String(length=66), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("leaf_digests", sa.JSON(), nullable=False),
    sa.Column("metadata_digest", sa.String(length=66), nullable=False),
    sa.Column("tx_hash", sa.String(length=66), nullable=True),
    sa.Column("block_number", sa.BigInteger(), nullable=True),
    sa.Column("block_hash", sa.String(length=66), nullable=True),
    sa.Column("submitter", sa.String(length=42), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_batches_root", "root", unique=True),
    sa.Index("ix_batches_status", "status"),
)

sa.Table(
    "enterprises",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("roles", sa.JSON(), nullable=False),
    sa.Column("prefix", sa.String(length=64), nullable=False),
    sa.Column("address", sa.String(length=42), nullable=False),
    sa.Column("api_key_hash", sa.String(length=64), nullable=False),
    sa.Column("keystore", sa.Text(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("is_service", sa.Boolean(), nullable=False),
    sa.Column("registered_on_chain", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_enterprises_address", "address", unique=True),
    sa.Index("ix_enterprises_api_key_hash", "api_key_hash", unique=True),
    sa.Index("ix_enterprises_prefix", "prefix", unique=True),
)

sa.Table(
    "prefix_counters",
    BASELINE_METADATA,
    sa.Column("industry", sa.String(length=32), nullable=False),
    sa.Column("next_value", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("industry"),
)

sa.Table(
    "epcis_objects",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(length=300), nullable=False),
    sa.Column("identifier", sa.String(length=300), nullable=False),
    sa.Column("raw", sa.String(length=300), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.Index("ix_epcis_objects_identifier", "identifier", unique=True),
    sa.Index("ix_epcis_objects_key", "key", unique=True),
)

sa.Table(
    "persons",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=200), nullable=False),
    sa.Column("roles", sa.JSON(), nullable=False),
    sa.Column("qualification", sa.String(length=500), nullable=False),
    sa.Column("address", sa.String(length=42), nullable=False),
    sa.Column("keystore", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.Index("ix_persons_address", "address", unique=True),
    sa.Index("ix_persons_enterprise_id", "enterprise_id"),
)

sa.Table(
    "records",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("identifier", sa.String(length=300), nullable=False),
    sa.Column("kind", sa.String(length=64), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.Column("document", sa.Text(), nullable=False),
    sa.Column("record_digest", sa.String(length=66), nullable=False),
    sa.Column("signature", sa.String(length=132), nullable=False),
    sa.Column("signer", sa.String(length=42), nullable=False),
    sa.Column("signed_by_client", sa.Boolean(), nullable=False),
    sa.Column("chain_id", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("batch_id", sa.Integer(), nullable=True),
    sa.Column("leaf_index", sa.Integer(), nullable=True),
    sa.Column("supersedes", sa.String(length=300), nullable=True),
    sa.Column("superseded_by", sa.String(length=300), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.Index("ix_records_batch_id", "batch_id"),
    sa.Index("ix_records_enterprise_id", "enterprise_id"),
    sa.Index("ix_records_identifier", "identifier", unique=True),
    sa.Index("ix_records_status", "status"),
)

sa.Table(
    "work_ticket_documents",
    BASELINE_METADATA,
    sa.Column("ticket_id", sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column("equipment", sa.String(length=300), nullable=False),
    sa.Column("document", sa.Text(), nullable=False),
    sa.Column("digest", sa.String(length=66), nullable=False),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.Column("tx_hash", sa.String(length=66), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("ticket_id"),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.Index("ix_work_ticket_documents_enterprise_id", "enterprise_id"),
    sa.Index("ix_work_ticket_documents_equipment", "equipment"),
)

sa.Table(
    "epcis_events",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("record_id", sa.Integer(), nullable=False),
    sa.Column("event_hash", sa.String(length=120), nullable=False),
    sa.Column("is_declaration", sa.Boolean(), nullable=False),
    sa.Column("event_id", sa.String(length=300), nullable=True),
    sa.Column("event_type", sa.String(length=32), nullable=False),
    sa.Column("action", sa.String(length=8), nullable=True),
    sa.Column("biz_step", sa.String(length=200), nullable=True),
    sa.Column("disposition", sa.String(length=200), nullable=True),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("biz_location", sa.String(length=300), nullable=True),
    sa.Column("read_point", sa.String(length=300), nullable=True),
    sa.Column("enterprise_id", sa.Integer(), nullable=False),
    sa.Column("retracted", sa.Boolean(), nullable=False),
    sa.Column("error_reason", sa.String(length=200), nullable=True),
    sa.Column("corrective_event_ids", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["enterprise_id"], ["enterprises.id"]),
    sa.ForeignKeyConstraint(["record_id"], ["records.id"]),
    sa.Index("ix_epcis_events_biz_location", "biz_location"),
    sa.Index("ix_epcis_events_biz_step", "biz_step"),
    sa.Index("ix_epcis_events_disposition", "disposition"),
    sa.Index("ix_epcis_events_enterprise_id", "enterprise_id"),
    sa.Index("ix_epcis_events_event_hash", "event_hash"),
    sa.Index("ix_epcis_events_event_id", "event_id"),
    sa.Index("ix_epcis_events_event_time", "event_time"),
    sa.Index("ix_epcis_events_event_type", "event_type"),
    sa.Index("ix_epcis_events_record_id", "record_id", unique=True),
    sa.Index("ix_epcis_events_retracted", "retracted"),
)

sa.Table(
    "epcis_event_epcs",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("event_pk", sa.Integer(), nullable=False),
    sa.Column("epc", sa.String(length=300), nullable=False),
    sa.Column("role", sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["event_pk"], ["epcis_events.id"]),
    sa.Index("ix_epcis_event_epcs_epc", "epc"),
    sa.Index("ix_epcis_event_epcs_event_pk", "event_pk"),
)

sa.Table(
    "lineage_edges",
    BASELINE_METADATA,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("src", sa.String(length=300), nullable=False),
    sa.Column("dst", sa.String(length=300), nullable=False),
    sa.Column("event_pk", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.ForeignKeyConstraint(["event_pk"], ["epcis_events.id"]),
    sa.Index("ix_lineage_edges_dst", "dst"),
    sa.Index("ix_lineage_edges_event_pk", "event_pk"),
    sa.Index("ix_lineage_edges_src", "src"),
)


def upgrade() -> None:
    """Create the baseline tables that are absent (all of them on an empty database)."""
    if context.is_offline_mode():  # ``alembic upgrade --sql``: no database to inspect, print every table
        for table in BASELINE_METADATA.sorted_tables:
            op.execute(CreateTable(table))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                op.execute(CreateIndex(index))
        return
    BASELINE_METADATA.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop every baseline table (all data is lost)."""
    BASELINE_METADATA.drop_all(op.get_bind(), checkfirst=True)
