"""SQLModel tables: enterprises, records, anchoring batches and prefix counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Dialect, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def utc_iso(dt: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` and always six fraction digits, e.g. ``2026-11-30T12:00:00.000000Z``
    (27 characters, so string order is time order); naive values are taken as UTC."""
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return aware.isoformat(timespec="microseconds").replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always stores and reads back aware UTC datetimes.

    SQLite keeps no offset (SQLAlchemy writes the wall time and reads a naive value); stored values
    are therefore converted to UTC first and read values marked UTC, so every ``created_at`` the API
    answers serialises as ``…Z`` on both backends. Naive values given to it are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: object) -> Column:
    return Column(UTCDateTime(), **kw)


ROLE_BITS: dict[str, int] = {
    "manufacturer": 1,
    "supplier": 2,
    "core_enterprise": 4,
    "bank": 8,
    "auditor": 16,
    "regulator": 32,
    "warehouse": 64,
    "price_publisher": 128,
}
"""Role names and their EnterpriseRegistry bit flags."""

#: API-level enterprise roles without a flag of their own in EnterpriseRegistry, and the on-chain role
#: they hold. ``plant_operator``: a power or process plant operator (a utility) that issues GB 26860 work
#: tickets to its own staff and maintenance contractors and confirms their payables; on chain it is a
#: core enterprise until EnterpriseRegistry gets a PLANT_OPERATOR flag.
ROLE_ALIASES: dict[str, str] = {"plant_operator": "core_enterprise"}


def enterprise_role_bits(roles: list[str]) -> int:
    """EnterpriseRegistry role flags (bitwise OR) of API role names (:data:`ROLE_BITS`, :data:`ROLE_ALIASES`)."""
    bits = 0
    for role in roles:
        bits |= ROLE_BITS[ROLE_ALIASES.get(role, role)]
    return bits

RECORD_KIND_COIL = "coil_certificate"


class Enterprise(SQLModel, table=True):
    """An enterprise (or the anchoring service itself, ``is_service``) with its own account.

    ``keystore`` is the eth-account V3 keystore JSON (scrypt) of the account key; ``api_key_hash``
    the hex SHA-256 of the API key, which itself is shown once and never stored.
    """

    __tablename__ = "enterprises"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    prefix: str = Field(max_length=64, unique=True, index=True)
    address: str = Field(max_length=42, unique=True, index=True)
    api_key_hash: str = Field(max_length=64, unique=True, index=True)
    keystore: str = Field(sa_column=Column(Text, nullable=False))
    active: bool = True
    is_service: bool = False
    registered_on_chain: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Record(SQLModel, table=True):
    """An ingested record. ``document`` holds the exact RFC 8785 canonical JSON that was hashed."""

    __tablename__ = "records"

    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(max_length=300, unique=True, index=True)
    kind: str = Field(default=RECORD_KIND_COIL, max_length=64)
    enterprise_id: int = Field(foreign_key="enterprises.id", index=True)
    document: str = Field(sa_column=Column(Text, nullable=False))
    record_digest: str = Field(max_length=66)
    signature: str = Field(max_length=132)
    signer: str = Field(max_length=42)
    signed_by_client: bool = False
    chain_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default="pending", max_length=16, index=True)
    batch_id: int | None = Field(default=None, foreign_key="batches.id", index=True)
    leaf_index: int | None = None
    #: identifier of the certificate this one replaces (EN 10204 replacement certificate), if any
    supersedes: str | None = Field(default=None, max_length=300)
    #: identifier of the replacement certificate, once one was issued
    superseded_by: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Batch(SQLModel, table=True):
    """An RFC 9162 Merkle batch of record digests, anchored with one AnchorRegistry.anchor tx.

    ``leaf_digests`` are the 0x-hex record digests in leaf order (leaf hash = hash_leaf(digest)), possibly followed by
    one padding entry (:func:`api.anchoring.worker.padding_entry`) that keeps the root unique; ``size`` counts it.
    Status ``submitted`` = persisted and possibly sent; ``final`` = receipt in a committed block.
    """

    __tablename__ = "batches"

    id: int | None = Field(default=None, primary_key=True)
    root: str = Field(max_length=66, unique=True, index=True)
    size: int
    leaf_digests: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metadata_digest: str = Field(default="0x" + "00" * 32, max_length=66)
    tx_hash: str | None = Field(default=None, max_length=66)
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    block_hash: str | None = Field(default=None, max_length=66)
    submitter: str | None = Field(default=None, max_length=42)
    status: str = Field(default="submitted", max_length=16, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    anchored_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class PrefixCounter(SQLModel, table=True):
    """Next enterprise number per industry code for assigned prefixes ``88.<industry>.<n>``."""

    __tablename__ = "prefix_counters"

    industry: str = Field(primary_key=True, max_length=32)
    next_value: int = 1
