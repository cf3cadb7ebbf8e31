"""api.bulk.copy_rows (PostgreSQL COPY, SQLite executemany): ids line up with the rows, values are stored as
the ORM stores them, and a unique violation is SQLAlchemy's IntegrityError with nothing kept after rollback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api import migrations
from api.bulk import copy_rows
from api.epcis.models import EpcisEvent
from api.models import Enterprise, Record


def _record(i: int, ent: int) -> dict:
    return {"identifier": f"88.1.1/cp-{i}", "kind": "epcis_event", "enterprise_id": ent, "document": "{}",
            "record_digest": "0x" + f"{i:064x}", "signature": "0x" + "11" * 65, "signer": "0x" + "22" * 20,
            "signed_by_client": False, "chain_id": 1337, "status": "pending", "batch_id": None, "leaf_index": None,
            "supersedes": None, "superseded_by": None, "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)}


def test_ids_values_and_unique_violation(db_url: str) -> None:
    engine = create_engine(db_url)
    migrations.upgrade(engine)
    with Session(engine) as s:
        ent = Enterprise(name="Copy Mill", prefix="88.1.1", address="0x" + "22" * 20, keystore="{}", api_key_hash="h",
                         roles=["manufacturer"])
        s.add(ent)
        s.commit()
        assert ent.id is not None
        ids = copy_rows(s, Record.__table__, [_record(i, ent.id) for i in range(1, 1201)], returning_id=True)
        ev_ids = copy_rows(s, EpcisEvent.__table__, [{
            "record_id": ids[0], "event_hash": "ni:///sha-256;" + "ab" * 32 + "?ver=CBV2.0", "is_declaration": True,
            "event_id": None, "event_type": "ObjectEvent", "action": "ADD", "biz_step": None, "disposition": None,
            "event_time": datetime(2026, 1, 1, tzinfo=UTC), "biz_location": None, "read_point": None,
            "enterprise_id": ent.id, "retracted": True, "error_reason": "incorrect_data",
            "corrective_event_ids": ["ni:///sha-256;" + "cd" * 32 + "?ver=CBV2.0"],
            "created_at": datetime(2026, 1, 1, tzinfo=UTC)}], returning_id=True)
        s.commit()
        by_id = {r.id: r for r in s.exec(select(Record)).all()}
        assert [by_id[i].identifier for i in ids] == [f"88.1.1/cp-{i}" for i in range(1, 1201)]
        assert by_id[ids[5]].created_at.replace(tzinfo=UTC) == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        ev = s.get(EpcisEvent, ev_ids[0])
        assert ev is not None and ev.corrective_event_ids == ["ni:///sha-256;" + "cd" * 32 + "?ver=CBV2.0"]
        with pytest.raises(IntegrityError):  # 88.1.1/cp-7 is taken: the whole write fails
            copy_rows(s, Record.__table__, [_record(5000, ent.id), _record(7, ent.id)], returning_id=True)
        s.rollback()
        assert s.exec(select(Record).where(Record.identifier == "88.1.1/cp-5000")).first() is None
    engine.dispose()


def test_batch_leaves_assigned_in_record_order(db_url: str, tmp_path: Path) -> None:
    """create_batch sets batch_id and leaf_index of thousands of records in one statement (PostgreSQL unnest)."""
    from api.anchoring.worker import AnchoringWorker
    from api.models import Batch
    from api.security import KeyCache
    from tests.api.conftest import make_settings

    engine = create_engine(db_url)
    migrations.upgrade(engine)
    with Session(engine) as s:
        ent = Enterprise(name="Leaf Mill", prefix="88.1.1", address="0x" + "33" * 20, keystore="{}",
                         api_key_hash="h2", roles=["manufacturer"])
        s.add(ent)
        s.commit()
        assert ent.id is not None
        ids = copy_rows(s, Record.__table__, [_record(i, ent.id) for i in range(1, 2501)], returning_id=True)
        s.commit()
    settings = make_settings(db_url, tmp_path, anchor_max_batch=10_000)
    worker = AnchoringWorker(engine=engine, settings=settings, chain=None, keys=KeyCache())
    batch_id = worker.create_batch()
    with Session(engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.size == 2500
        rows = {r.id: r for r in s.exec(select(Record)).all()}
        assert [rows[i].leaf_index for i in ids] == list(range(2500))
        assert all(rows[i].batch_id == batch_id for i in ids)
        assert batch.leaf_digests == [rows[i].record_digest for i in ids]
    engine.dispose()


def test_insert_new_rows_skips_stored_keys_only(db_url: str) -> None:
    """insert_new_rows: a row whose key is stored is skipped, the others are inserted; a clash on another unique
    column is still an IntegrityError (nothing kept after rollback)."""
    from api.bulk import insert_new_rows
    from api.epcis.models import EpcisObject

    engine = create_engine(db_url)
    migrations.upgrade(engine)
    with Session(engine) as s:
        ent = Enterprise(name="Object Mill", prefix="88.1.1", address="0x" + "44" * 20, keystore="{}",
                         api_key_hash="h3", roles=["manufacturer"])
        s.add(ent)
        s.commit()
        assert ent.id is not None

        def obj(key: str, ident: str) -> dict:
            return {"key": key, "identifier": ident, "raw": key, "kind": "instance", "enterprise_id": ent.id}

        insert_new_rows(s, EpcisObject.__table__, [obj("k2", "88.1.1/b"), obj("k1", "88.1.1/a")], key="key")
        s.commit()
        insert_new_rows(s, EpcisObject.__table__, [obj("k3", "88.1.1/c"), obj("k1", "88.1.1/other")], key="key")
        s.commit()
        got = {o.key: o.identifier for o in s.exec(select(EpcisObject)).all()}
        assert got == {"k1": "88.1.1/a", "k2": "88.1.1/b", "k3": "88.1.1/c"}
        with pytest.raises(IntegrityError):  # a new key whose identifier is taken: not silently dropped
            insert_new_rows(s, EpcisObject.__table__, [obj("k4", "88.1.1/a")], key="key")
        s.rollback()
        assert s.exec(select(EpcisObject).where(EpcisObject.key == "k4")).first() is None
    engine.dispose()
