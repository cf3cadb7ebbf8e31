"""Pipelined anchoring (api/anchoring/worker.py) against a real EVM (eth-tester + py-evm, in process).

Batches are sent with explicit nonces from a local counter, their tx hash committed before the node
sees them (two transactions in flight need a real node: eth-tester refuses a second pending nonce, so
tests/integration/test_scale_out.py shows the pipeline on QBFT validators). A crash between any two
steps is resumed exactly: the same root is never anchored twice, no record is left in a batch that never
completes, and a stale local nonce is re-synced from the node.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.anchoring.worker import MIN_INTERVAL_S, AnchoringWorker, batch_interval
from api.chain import ChainError
from api.models import Batch, Record
from tests.api.conftest import auth, create_enterprise, sample
from tests.api.test_chain_anchoring import chain_app, evm  # noqa: F401 - fixtures

pytest.importorskip("eth_tester")
NAMES = ("s355mc_coil_nw24-118734", "dd13_coil_nw24-119052", "s235jr_coil_nw24-120377")


def _state(c: TestClient) -> Any:
    return c.app.state.tl  # type: ignore[attr-defined]


def _tester(c: TestClient) -> Any:
    return _state(c).chain.w3.provider.ethereum_tester


def _post(c: TestClient, key: str, name: str) -> None:
    r = c.post("/v1/coils/certificates", json=sample(name), headers=auth(key))
    assert r.status_code == 201, r.text


def _restarted(c: TestClient) -> AnchoringWorker:
    """A fresh worker on the same database and chain: what the process is after a kill -9 and a restart."""
    st = _state(c)
    return AnchoringWorker(engine=st.engine, settings=st.settings, chain=st.chain, keys=st.keys)


def _anchor_count(c: TestClient) -> int:
    return int(_state(c).chain.anchor_registry.functions.anchorCount().call())


def test_interval_adapts_to_the_backlog() -> None:
    assert batch_interval(1.0, 1, 1000) == 1.0  # one record: the configured interval
    assert batch_interval(1.0, 101, 1000) == pytest.approx(0.5)
    assert batch_interval(1.0, 999, 1000) < 0.11  # a large backlog: batches follow each other
    assert batch_interval(1.0, 1000, 1000) == 0.0  # a full batch waits for nothing
    assert batch_interval(0.01, 5, 1000) == MIN_INTERVAL_S


def test_crash_after_send_before_receipt_resumes_with_the_same_transaction(chain_app: TestClient) -> None:  # noqa: F811
    ent = create_enterprise(chain_app)
    worker = _state(chain_app).worker
    _post(chain_app, ent["api_key"], NAMES[0])
    worker.run_once()
    tester = _tester(chain_app)
    tester.disable_auto_mine_transactions()
    try:
        _post(chain_app, ent["api_key"], NAMES[1])
        batch_id = worker.create_batch()
        assert batch_id is not None
        tx_hash = worker.send_batch(batch_id)  # in the pool, no receipt: the process dies here
        tester.mine_blocks(1)  # the chain goes on without it
    finally:
        tester.enable_auto_mine_transactions()
    count = _anchor_count(chain_app)
    assert _restarted(chain_app).run_once() == [batch_id]
    assert _anchor_count(chain_app) == count  # found on chain, not anchored a second time
    with Session(_state(chain_app).engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status == "final" and batch.tx_hash == tx_hash


def test_crash_after_hash_committed_before_send_resends_once(chain_app: TestClient) -> None:  # noqa: F811
    ent = create_enterprise(chain_app)
    worker = _state(chain_app).worker
    _post(chain_app, ent["api_key"], NAMES[0])
    worker.run_once()
    _post(chain_app, ent["api_key"], NAMES[1])
    batch_id = worker.create_batch()
    assert batch_id is not None
    st = _state(chain_app)
    # signed and its hash committed, then killed before eth_sendRawTransaction
    with Session(st.engine) as s:
        b = s.get(Batch, batch_id)
        assert b is not None
        root, size, meta = bytes.fromhex(b.root[2:]), b.size, bytes.fromhex(b.metadata_digest[2:])
    key = worker._operator_key()
    from eth_account import Account

    lost_hash, _raw = st.chain.sign_anchor(key, root, size, meta, nonce=st.chain.pending_nonce(
        Account.from_key(key).address))
    worker._set_tx_hash(batch_id, lost_hash)
    count = _anchor_count(chain_app)
    assert _restarted(chain_app).run_once() == [batch_id]
    assert _anchor_count(chain_app) == count + 1  # sent exactly once
    with Session(st.engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status == "final" and batch.tx_hash  # same nonce: maybe same hash
    with pytest.raises(ChainError) as exc:
        st.chain.anchor_root(key, root, size, meta)
    assert exc.value.reason == "RootAlreadyAnchored"


def test_stale_local_nonce_is_resynced_from_the_chain(chain_app: TestClient) -> None:  # noqa: F811
    ent = create_enterprise(chain_app)
    worker = _state(chain_app).worker
    _post(chain_app, ent["api_key"], NAMES[0])
    worker.run_once()
    _post(chain_app, ent["api_key"], NAMES[1])
    batch_id = worker.create_batch()
    assert batch_id is not None
    worker._nonce = 0  # stale: the operator's nonce 0 was used long ago
    with pytest.raises(ChainError):
        worker.send_batch(batch_id)
    assert worker._nonce is None  # re-synced from the node on next use
    assert worker.run_once() == [batch_id]
    with Session(_state(chain_app).engine) as s:
        assert all(r.status == "anchored" for r in s.exec(select(Record)).all())
