"""Anchoring and verification against a real EVM (eth-tester + py-evm, in process).

The same code paths run against any JSON-RPC endpoint; the QBFT seal check fails cleanly here
(eth-tester blocks carry no QBFT extraData and there is no ``qbft_*`` RPC).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.chain import ChainClient, ChainError, deploy_contracts_with
from api.main import create_app
from api.models import Batch, Record
from tests.api.conftest import auth, create_enterprise, gov, make_settings, sample

eth_tester = pytest.importorskip("eth_tester")
IDENT = "88.1.1/HK52791-CNW24-118734"


@pytest.fixture
def evm() -> tuple[ChainClient, str, dict[str, str]]:
    """(client without registries, admin key hex, deployed registry addresses)."""
    from web3 import EthereumTesterProvider, Web3

    backend = eth_tester.PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(eth_tester.EthereumTester(backend)))
    admin_key = str(backend.account_keys[0])
    bare = ChainClient(w3)
    addrs = deploy_contracts_with(bare, admin_key)
    assert deploy_contracts_with(bare, admin_key) == addrs  # idempotent
    client = ChainClient(w3, enterprise_registry=addrs["EnterpriseRegistry"], anchor_registry=addrs["AnchorRegistry"])
    return client, admin_key, addrs


@pytest.fixture
def chain_app(evm: tuple[ChainClient, str, dict[str, str]], tmp_path: Path) -> Iterator[TestClient]:
    chain, admin_key, addrs = evm
    settings = make_settings(
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}",
        tmp_path,
        chain_id=None,
        admin_private_key=admin_key,
        enterprise_registry_address=addrs["EnterpriseRegistry"],
        anchor_registry_address=addrs["AnchorRegistry"],
        fund_wei=10**18,
        anchoring_enabled=False,
    )
    with TestClient(create_app(settings, chain=chain)) as c:
        yield c


def _state(c: TestClient) -> Any:
    return c.app.state.tl  # type: ignore[attr-defined]


def test_enterprise_registered_and_funded(chain_app: TestClient) -> None:
    chain = _state(chain_app).chain
    ent = create_enterprise(chain_app)
    assert ent["registered_on_chain"] is True
    on_chain = chain.get_enterprise(ent["address"])
    assert on_chain == {"name": ent["name"], "roles": 1, "prefix": "88.1.1", "active": True}
    assert chain.balance(ent["address"]) == 10**18
    # the operator was bootstrapped at startup (prefix 88.0.0)
    service = chain.get_enterprise(_service_address(chain_app))
    assert service is not None and service["prefix"] == "88.0.0"


def _service_address(c: TestClient) -> str:
    from api import crud

    with Session(_state(c).engine) as s:
        svc = crud.get_service_enterprise(s)
        assert svc is not None
        return svc.address


def test_prefix_taken_on_chain_is_409(chain_app: TestClient) -> None:
    chain = _state(chain_app).chain
    admin_key = _state(chain_app).settings.admin_private_key
    from eth_account import Account

    squatter = Account.create().address
    chain.register_enterprise(admin_key, account=squatter, name="Squatter", roles=2, prefix="88.4.4", fund_wei=0)
    resp = chain_app.post(
        "/v1/enterprises", json={"name": "Late", "roles": ["manufacturer"], "prefix": "88.4.4"}, headers=gov()
    )
    assert resp.status_code == 409
    # the DB row was rolled back: the prefix is free in the DB again, still taken on chain
    assert chain_app.get("/v1/enterprises/2").status_code == 404


def test_anchor_and_verify_end_to_end(chain_app: TestClient) -> None:
    ent = create_enterprise(chain_app)
    for name in ("s355mc_coil_nw24-118734", "dd13_coil_nw24-119052", "s235jr_coil_nw24-120377"):
        r = chain_app.post("/v1/coils/certificates", json=sample(name), headers=auth(ent["api_key"]))
        assert r.status_code == 201, r.text
    worker = _state(chain_app).worker
    finalized = worker.run_once()
    assert len(finalized) == 1 and worker.last_error is None
    body = chain_app.get(f"/v1/verify/{IDENT}").json()
    ok = {c["name"]: c for c in body["checks"]}
    for name in ("record_digest", "signature", "inclusion_proof", "anchored_on_chain"):
        assert ok[name]["ok"], ok[name]
    assert ok["finality_seals"]["ok"] is False and ok["finality_seals"]["detail"]
    assert body["verified"] is False
    assert body["anchor"]["block_number"] > 0 and body["anchor"]["tx_hash"].startswith("0x")
    assert body["proof"]["tree_size"] == 3
    res = chain_app.get(f"/v1/identifiers/{IDENT}").json()
    assert res["status"] == "anchored"
    # nothing left to anchor
    assert worker.run_once() == []


def test_resume_after_crash_before_send(chain_app: TestClient) -> None:
    ent = create_enterprise(chain_app)
    chain_app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
    worker = _state(chain_app).worker
    batch_id = worker.create_batch()  # persisted, never sent ("crash")
    assert batch_id is not None
    assert worker.run_once() == [batch_id]
    with Session(_state(chain_app).engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status == "final" and batch.tx_hash
        assert all(r.status == "anchored" for r in s.exec(select(Record)).all())


def test_resume_after_crash_after_send(chain_app: TestClient) -> None:
    ent = create_enterprise(chain_app)
    chain_app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
    st = _state(chain_app)
    worker = st.worker
    worker.run_once()  # bootstrap + anchor the first record
    chain_app.post("/v1/coils/certificates", json=sample("dd13_coil_nw24-119052"), headers=auth(ent["api_key"]))
    batch_id = worker.create_batch()
    assert batch_id is not None
    with Session(st.engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None
        root, size, meta = bytes.fromhex(batch.root[2:]), batch.size, bytes.fromhex(batch.metadata_digest[2:])
    # the tx went out but the process died before recording anything
    receipt = st.chain.anchor_root(worker._operator_key(), root, size, meta)
    count_before = st.chain.anchor_registry.functions.anchorCount().call()
    assert worker.run_once() == [batch_id]
    assert st.chain.anchor_registry.functions.anchorCount().call() == count_before  # not re-anchored
    with Session(st.engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None and batch.status == "final"
        assert batch.block_number == receipt["blockNumber"]
        assert batch.tx_hash == "0x" + bytes(receipt["transactionHash"]).hex()
    with pytest.raises(ChainError) as exc:
        st.chain.anchor_root(worker._operator_key(), root, size, meta)
    assert exc.value.reason == "RootAlreadyAnchored"
    body = chain_app.get("/v1/verify/88.1.1/HK53016-CNW24-119052").json()
    assert {c["name"]: c["ok"] for c in body["checks"]}["anchored_on_chain"] is True


def test_worker_thread_anchors(chain_app: TestClient) -> None:
    import time

    ent = create_enterprise(chain_app)
    st = _state(chain_app)
    st.worker.settings.anchor_interval_s = 0.05
    st.worker.start()
    try:
        chain_app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if chain_app.get(f"/v1/identifiers/{IDENT}").json()["status"] == "anchored":
                break
            time.sleep(0.1)
        assert chain_app.get(f"/v1/identifiers/{IDENT}").json()["status"] == "anchored"
        assert chain_app.get("/healthz").json()["anchoring"]["alive"] is True
    finally:
        st.worker.stop()
