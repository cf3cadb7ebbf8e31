"""Crash-safe delivery of a warehouse receipt (api/routes/warehouse_receipts.py ``deliver_receipt``).

The shipping event is owed exactly once per delivered receipt, whatever step a crash interrupts: before
the transaction (nothing delivered, nothing captured, a retry works), between the transaction and the
commit (the injected failure below: the event is captured later, by the next read or the start-up sweep),
after the commit (nothing left to do). The chain and the EPCIS capture are stand-ins: the capture writes
one row in the caller's transaction and is idempotent on the same document, like
``api.epcis.capture.capture_document`` (same document → same event hash ID → ``duplicate``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import to_checksum_address
from sqlalchemy import func
from sqlmodel import Session, select

from api.chain import ChainError
from api.db import make_engine
from api.migrations import upgrade
from api.models import Enterprise
from api.read_cache import ReadInvalidation
from api.routes import warehouse_receipts as wr_routes
from api.workflows.models import ReceiptDelivery
from tests.api.conftest import make_settings

RID = 7
WAREHOUSE = to_checksum_address("0x" + "e5" * 20)


class FakeReceipts:
    """The receipt's chain status (``live`` until a ``deliver`` transaction succeeds)."""

    def __init__(self) -> None:
        self.status = "live"
        self.sent = 0
        self.refuse = False
        self.functions = SimpleNamespace(deliver=lambda rid: ("deliver", rid))

    def coils(self, _rid: int) -> list[Any]:
        return [SimpleNamespace(identifier="88.1/COIL-1")]

    def receipt(self, _rid: int) -> Any:
        return SimpleNamespace(status_name=self.status)

    def send(self, _key: Any, _fn: Any) -> dict[str, Any]:
        if self.refuse:
            raise ChainError("reverted: Pledged", "Pledged")
        self.sent += 1
        self.status = "delivered"
        return {"transactionHash": "0x" + "11" * 32, "blockNumber": 9}


def shipping_rows(session: Session) -> int:
    return session.exec(select(func.count()).select_from(ReadInvalidation)
                        .where(ReadInvalidation.identifier.startswith("shipping:"))).one()  # type: ignore[union-attr]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FakeReceipts, Any]]:
    engine = make_engine(make_settings(f"sqlite:///{(tmp_path / 'd.db').as_posix()}", tmp_path))
    upgrade(engine)
    with Session(engine) as s:
        s.add(Enterprise(name="WH", prefix="88.9", address=WAREHOUSE, api_key_hash="h" * 64, keystore="{}"))
        s.commit()
    fake = FakeReceipts()

    def capture(session: Session, _state: Any, _warehouse: Any, doc: dict[str, Any]) -> Any:
        key = "shipping:" + json.dumps(doc, sort_keys=True)[-120:]
        seen = session.exec(select(ReadInvalidation).where(ReadInvalidation.identifier == key)).first()
        if seen is None:
            session.add(ReadInvalidation(identifier=key))
            session.flush()
        return SimpleNamespace(event_ids=["ni:///sha-256;x"], created=0 if seen else 1,
                               events=[{"status": "duplicate" if seen else "created"}])

    monkeypatch.setattr(wr_routes, "_load_visible", lambda *_: (fake, SimpleNamespace(
        warehouse=WAREHOUSE, location="urn:x", status_name=fake.status, live=fake.status in ("live", "pledged"))))
    monkeypatch.setattr(wr_routes, "_reader", lambda _state: fake)
    monkeypatch.setattr(wr_routes, "require_chain", lambda _state: fake)
    monkeypatch.setattr(wr_routes, "enterprise_key", lambda *_: None)
    monkeypatch.setattr(wr_routes, "_capture_shipping", capture)
    monkeypatch.setattr(wr_routes, "announce", lambda *_: None)
    monkeypatch.setattr(wr_routes, "_view", lambda *_: {})
    monkeypatch.setattr(wr_routes, "_with_tx", lambda view, receipt: {**view, "block_number": receipt["blockNumber"]})
    state = SimpleNamespace(chain=fake, settings=SimpleNamespace(warehouse_receipt_address="0x" + "01" * 20))
    yield engine, fake, state
    engine.dispose()


def test_a_delivery_captures_one_shipping_event(setup: Any) -> None:
    engine, fake, state = setup
    with Session(engine) as s:
        out = wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
        assert out["shipping_event"]["status"] == "created" and fake.sent == 1
        assert shipping_rows(s) == 1 and s.get(ReceiptDelivery, RID).status == "captured"
        assert wr_routes.finish_pending_deliveries(s, state) == 0 and shipping_rows(s) == 1
    fake.refuse = True  # delivering again: the chain refuses (ReceiptClosed); the captured delivery stays as it is
    with Session(engine) as s, pytest.raises(Exception, match="Pledged|409"):
        wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
    with Session(engine) as s:
        assert shipping_rows(s) == 1 and s.get(ReceiptDelivery, RID).status == "captured"


def test_a_crash_between_the_transaction_and_the_commit_is_finished_later(setup: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine, fake, state = setup
    real_commit = Session.commit

    def failing_commit(self: Session) -> None:
        if fake.sent:  # the deliver transaction is on chain: this commit (the capture's) fails
            self.rollback()
            raise ConnectionError("database went away after the transaction")
        real_commit(self)

    monkeypatch.setattr(Session, "commit", failing_commit)
    with Session(engine) as s, pytest.raises(ConnectionError):
        wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
    monkeypatch.setattr(Session, "commit", real_commit)
    assert fake.status == "delivered"
    with Session(engine) as s:  # the process restarted: nothing captured yet, the delivery is owed
        assert shipping_rows(s) == 0 and s.get(ReceiptDelivery, RID).status == "pending"
        assert wr_routes.finish_pending_deliveries(s, state) == 1
        assert wr_routes.finish_pending_deliveries(s, state) == 0  # twice: still one
        assert shipping_rows(s) == 1 and s.get(ReceiptDelivery, RID).status == "captured"
        assert wr_routes.finish_delivery(s, state, RID, "delivered") is None


def test_a_crash_before_the_transaction_leaves_nothing_delivered_and_a_retry_works(
        setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, fake, state = setup

    def crash(*_: Any) -> None:
        raise ConnectionError("process killed before sending")

    monkeypatch.setattr(fake, "send", crash)
    with Session(engine) as s, pytest.raises(ConnectionError):
        wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
    with Session(engine) as s:  # chain says live: a pending row, no event, the sweep leaves it
        assert wr_routes.finish_pending_deliveries(s, state) == 0 and shipping_rows(s) == 0
    monkeypatch.undo()
    monkeypatch.setattr(wr_routes, "_load_visible", lambda *_: (fake, SimpleNamespace(
        warehouse=WAREHOUSE, location="urn:x", status_name=fake.status, live=fake.status in ("live", "pledged"))))
    monkeypatch.setattr(wr_routes, "require_chain", lambda _state: fake)
    monkeypatch.setattr(wr_routes, "enterprise_key", lambda *_: None)
    monkeypatch.setattr(wr_routes, "_capture_shipping", lambda s, *_a: SimpleNamespace(
        event_ids=["e"], created=1, events=[{"status": "created"}]) if s.add(ReadInvalidation(
            identifier="shipping:retry")) is None else None)
    monkeypatch.setattr(wr_routes, "announce", lambda *_: None)
    monkeypatch.setattr(wr_routes, "_view", lambda *_: {})
    monkeypatch.setattr(wr_routes, "_with_tx", lambda view, receipt: view)
    with Session(engine) as s:
        wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
        assert shipping_rows(s) == 1 and s.get(ReceiptDelivery, RID).status == "captured"


def test_a_refused_delivery_owes_nothing(setup: Any) -> None:
    engine, fake, state = setup
    fake.refuse = True
    with Session(engine) as s, pytest.raises(Exception, match="Pledged|409"):
        wr_routes.deliver_receipt(RID, None, s, state)  # type: ignore[arg-type]
    with Session(engine) as s:
        assert s.get(ReceiptDelivery, RID) is None and shipping_rows(s) == 0
