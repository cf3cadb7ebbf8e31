"""Persistence functions (keyword-only arguments; the caller owns the transaction unless noted)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.models import Batch, Enterprise, PrefixCounter, Record


def get_enterprise(session: Session, *, enterprise_id: int) -> Enterprise | None:
    """Enterprise by primary key, or None."""
    return session.get(Enterprise, enterprise_id)


def get_enterprise_by_api_key_hash(session: Session, *, api_key_hash: str) -> Enterprise | None:
    """Enterprise owning the API key with this SHA-256 hex hash, or None."""
    return session.exec(select(Enterprise).where(Enterprise.api_key_hash == api_key_hash)).first()


def get_enterprise_by_prefix(session: Session, *, prefix: str) -> Enterprise | None:
    """Enterprise owning ``prefix`` (exact match), or None."""
    return session.exec(select(Enterprise).where(Enterprise.prefix == prefix)).first()


def get_service_enterprise(session: Session) -> Enterprise | None:
    """The anchoring service's own enterprise row, or None before bootstrap."""
    return session.exec(select(Enterprise).where(col(Enterprise.is_service).is_(True))).first()


def next_prefix(session: Session, *, industry: str) -> str:
    """Reserve the next free prefix ``88.<industry>.<n>`` (n from 1), skipping taken ones.

    Locks the counter row (``SELECT … FOR UPDATE`` on PostgreSQL); the caller commits.
    """
    counter = session.exec(select(PrefixCounter).where(PrefixCounter.industry == industry).with_for_update()).first()
    if counter is None:
        counter = PrefixCounter(industry=industry, next_value=1)
        session.add(counter)
    while True:
        candidate = f"88.{industry}.{counter.next_value}"
        counter.next_value += 1
        if get_enterprise_by_prefix(session, prefix=candidate) is None:
            session.add(counter)
            return candidate


def create_enterprise(
    session: Session,
    *,
    name: str,
    roles: Sequence[str],
    prefix: str,
    address: str,
    api_key_hash: str,
    keystore: str,
    is_service: bool = False,
) -> Enterprise:
    """Add an enterprise row and flush it (id assigned; unique violations raise IntegrityError)."""
    ent = Enterprise(
        name=name,
        roles=list(roles),
        prefix=prefix,
        address=address,
        api_key_hash=api_key_hash,
        keystore=keystore,
        is_service=is_service,
    )
    session.add(ent)
    session.flush()
    return ent


def get_record(session: Session, *, identifier: str) -> Record | None:
    """Record by identifier (exact), or None."""
    return session.exec(select(Record).where(Record.identifier == identifier)).first()


def record_revisions(session: Session, *, base: Record, limit: int = 1000) -> list[Record]:
    """``base`` followed by its replacement certificates, oldest first (follows ``superseded_by``)."""
    out = [base]
    while out[-1].superseded_by and len(out) < limit:
        nxt = get_record(session, identifier=out[-1].superseded_by)
        if nxt is None:
            break
        out.append(nxt)
    return out


def count_pending(session: Session) -> int:
    """Number of records not yet anchored (including those in a submitted batch)."""
    return session.exec(select(func.count()).select_from(Record).where(Record.status == "pending")).one()


def count_unbatched(session: Session) -> int:
    """Number of pending records not yet assigned to a batch."""
    stmt = select(func.count()).select_from(Record).where(Record.status == "pending", col(Record.batch_id).is_(None))
    return session.exec(stmt).one()


def unbatched_records(session: Session, *, limit: int) -> list[Record]:
    """Pending records without a batch, in id (= ingestion) order, at most ``limit``."""
    stmt = (
        select(Record)
        .where(Record.status == "pending", col(Record.batch_id).is_(None))
        .order_by(col(Record.id))
        .limit(limit)
    )
    return list(session.exec(stmt).all())


def batch_records(session: Session, *, batch_id: int) -> list[Record]:
    """Records of a batch in leaf order."""
    stmt = select(Record).where(Record.batch_id == batch_id).order_by(col(Record.leaf_index))
    return list(session.exec(stmt).all())


def get_batch(session: Session, *, batch_id: int) -> Batch | None:
    """Batch by id, or None."""
    return session.get(Batch, batch_id)


def unfinished_batches(session: Session) -> list[Batch]:
    """Batches persisted but not final (status ``submitted``), oldest first."""
    stmt = select(Batch).where(Batch.status == "submitted").order_by(col(Batch.id))
    return list(session.exec(stmt).all())
