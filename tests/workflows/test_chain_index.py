"""The chain-event index on the real network (one QBFT validator, the API process with its indexer).

* the bank check served from the index says exactly what the chain-only check says, and so does
  ``GET /v1/receivables/{id}``;
* a poisoned index table never changes a fact the bank relies on (the answer then comes from the chain);
* kill -9 of the indexer process in the middle of a catch-up, restart: the same rows, none twice;
* under ``confirmations:N`` a block that is not yet final is not indexed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.chain import ChainClient
from api.chain_index import ChainIndexer
from api.chain_index.models import IndexedEvent, IndexedToken
from api.db import init_db, make_engine
from api.devnet import Stack
from api.main import create_app
from api.settings import Settings

from .conftest import Chain, auth, gov

pytestmark = pytest.mark.integration

TABLES = ("chain_index_events", "receivable_index_tokens", "receivable_index_payables", "receivable_index_discounts",
          "receivable_index_settlements", "receivable_index_offers", "work_ticket_index_tickets",
          "work_ticket_index_steps")
#: fields that depend on the latest block's time (one second apart between two reads)
CLOCK_FIELDS = ("seconds_to_maturity", "price_at_100_bps", "chain_facts")


def _settings_of(stack: Stack, **overrides: Any) -> Settings:
    env = stack.api_env()
    fields = {k: env[k] for k in ("TRACELEDGER_DATA_DIR", "TRACELEDGER_RPC_URL", "TRACELEDGER_ENTERPRISE_REGISTRY",
                                  "TRACELEDGER_ANCHOR_REGISTRY", "TRACELEDGER_WORK_TICKET",
                                  "TRACELEDGER_RECEIVABLE_TOKEN", "TRACELEDGER_CHAIN_ID", "TRACELEDGER_ADMIN_TOKEN")}
    fields.update({k: v for k, v in overrides.items() if k in fields})  # an alias beats the field's name
    return Settings(**fields, **{"database_url": None, "anchoring_enabled": False, "bootstrap_enabled": False,
                                 **{k: v for k, v in overrides.items() if k not in fields}})


@pytest.fixture(scope="module")
def chain_only(stack: Stack) -> Iterator[TestClient]:
    """The same API (same database, same chain) without an indexer: every check from the chain alone."""
    with TestClient(create_app(_settings_of(stack, chain_index_enabled=False))) as client:
        yield client


def _enterprise(api: httpx.Client, stack: Stack, name: str, roles: list[str]) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers=gov(stack), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def story(api: httpx.Client, stack: Stack, chain: Chain) -> dict[str, Any]:
    """A payable of an automaker, split twice down to a mill, offered to a bank, part of it discounted."""
    core = _enterprise(api, stack, "Index Automaker", ["core_enterprise"])
    tier1 = _enterprise(api, stack, "Index Tier-1", ["supplier"])
    tier2 = _enterprise(api, stack, "Index Tier-2", ["supplier"])
    bank = _enterprise(api, stack, "Index Bank", ["bank"])
    other = _enterprise(api, stack, "Index Outsider", ["supplier"])
    chain.nonces.pop(chain.admin.address, None)  # the API registered them with the admin account: nonce moved on
    r = api.post("/v1/receivables", headers=auth(core), json={
        "to_enterprise_id": tier1["id"], "currency": "CNY", "amount": "500000.00",
        "maturity": chain.block_time() + 30 * 86_400, "invoice_digest": "0x" + "5e" * 32})
    assert r.status_code == 201, r.text
    root = r.json()["id"]
    r = api.post(f"/v1/receivables/{root}/split", headers=auth(tier1),
                 json={"to_enterprise_id": tier2["id"], "amount": "200000.00"})
    assert r.status_code == 201, r.text
    t2 = r.json()["token_id"]
    r = api.post(f"/v1/receivables/{t2}/approve", headers=auth(tier2),
                 json={"operator_enterprise_id": bank["id"], "amount": "150000.00", "max_rate_bps": 800})
    assert r.status_code == 200, r.text
    r = api.post(f"/v1/receivables/{t2}/discount", headers=auth(bank),
                 json={"amount": "50000.00", "rate_bps": 700, "payment_reference": "IDX-BANK-1"})
    assert r.status_code == 201, r.text
    financed = r.json()["id"]
    return {"core": core, "tier1": tier1, "tier2": tier2, "bank": bank, "other": other, "root": root, "t2": t2,
            "financed": financed}


def _indexed_check(api: httpx.Client, token: int, who: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    """``/check`` once the API's indexer has caught up with ``token``."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(f"/v1/receivables/{token}/check", headers=auth(who))
        assert r.status_code == 200, r.text
        if r.json()["chain_facts"]["source"] == "index+chain" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.5)


def _same(indexed: dict[str, Any], chain: dict[str, Any]) -> None:
    assert {k: v for k, v in indexed.items() if k not in CLOCK_FIELDS} == {
        k: v for k, v in chain.items() if k not in CLOCK_FIELDS}
    assert abs(indexed["seconds_to_maturity"] - chain["seconds_to_maturity"]) <= 30


def test_bank_check_from_the_index_says_what_the_chain_says(api: httpx.Client, story: dict[str, Any],
                                                             chain_only: TestClient) -> None:
    bank, t2, financed = story["bank"], story["t2"], story["financed"]
    for token, who in ((t2, bank), (financed, bank), (story["root"], story["core"]), (t2, story["tier1"])):
        indexed = _indexed_check(api, token, who)
        assert indexed["chain_facts"]["source"] == "index+chain", indexed["chain_facts"]
        from_chain = chain_only.get(f"/v1/receivables/{token}/check", headers=auth(who)).json()
        assert from_chain["chain_facts"] == {"source": "chain", "indexed_to_block": None, "confirmed_at_block": None}
        assert indexed["chain_facts"]["confirmed_at_block"] >= indexed["chain_facts"]["indexed_to_block"]
        _same(indexed, from_chain)
    health = api.get("/healthz").json()["chain_index"]
    assert health["enabled"] and health["alive"] and health["last_error"] is None
    assert health["indexed_to_block"] >= indexed["chain_facts"]["indexed_to_block"]
    offered = _indexed_check(api, t2, bank)
    assert offered["offered_to_you"] == 10_000_000 and offered["offer_to_you"]["max_rate_bps"] == 800
    assert offered["free_to_finance"] == 15_000_000 and offered["genuine"] is True
    assert [(c["kind"], c["holder"]["name"]) for c in offered["chain"]] == [
        ("issued", "Index Tier-1"), ("split", "Index Tier-2")]
    fin = _indexed_check(api, financed, bank)
    assert fin["already_financed"] is True and fin["free_to_finance"] == 0
    last_hop = fin["chain"][-1]
    assert last_hop["kind"] == "discounted" and last_hop["discount"]["payment_reference"] == "IDX-BANK-1"
    # still invisible to anyone else, as on the chain path
    assert api.get(f"/v1/receivables/{t2}/check", headers=auth(story["other"])).status_code == 404
    assert chain_only.get(f"/v1/receivables/{t2}/check", headers=auth(story["other"])).status_code == 404


def test_ticket_histories_from_the_index_say_what_the_chain_says(api: httpx.Client, chain: Chain,
                                                                   chain_only: TestClient) -> None:
    """Every work ticket on this chain (test_api_workflows.py issues them): the same view from the index."""
    count = chain.tickets.functions.ticketCount().call()
    if count == 0:
        pytest.skip("no work tickets on this chain (run with tests/workflows/test_api_workflows.py)")
    for ticket_id in range(1, count + 1):
        deadline = time.monotonic() + 90
        while (indexed := api.get(f"/v1/work-tickets/{ticket_id}").json())["history_from"] != "index+chain":
            assert time.monotonic() < deadline, indexed
            time.sleep(0.5)
        from_chain = chain_only.get(f"/v1/work-tickets/{ticket_id}").json()
        assert from_chain["history_from"] == "chain"
        assert {**indexed, "history_from": None} == {**from_chain, "history_from": None}
        assert indexed["history"][0]["action"] == "issue"


def _poison(db: Path, sql: str, *args: Any) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(sql, args)


@pytest.mark.parametrize("column,value", [
    ("owner", "0x000000000000000000000000000000000000dEaD"),  # the bank would pay the wrong holder
    ("balance", "900000000"),  # more value than there is
    ("financed", 1),  # hide or invent a financing
    ("slot", str((0xB0B << 96) | (int.from_bytes(b"USD", "big") << 64) | 4_000_000_000)),  # another issuer
])
def test_a_poisoned_token_row_never_reaches_the_bank(api: httpx.Client, stack: Stack, story: dict[str, Any],
                                                     column: str, value: Any) -> None:
    db = stack.data_dir / "api" / "api.db"
    t2, bank = story["t2"], story["bank"]
    honest = _indexed_check(api, t2, bank)
    with sqlite3.connect(db, timeout=30) as conn:
        (before,) = conn.execute(f"SELECT {column} FROM receivable_index_tokens WHERE token_id = ?", (t2,)).fetchone()
    _poison(db, f"UPDATE receivable_index_tokens SET {column} = ? WHERE token_id = ?", value, t2)
    try:
        answer = api.get(f"/v1/receivables/{t2}/check", headers=auth(bank)).json()
        assert answer["chain_facts"]["source"] == "chain"
        _same(answer, honest)
    finally:
        _poison(db, f"UPDATE receivable_index_tokens SET {column} = ? WHERE token_id = ?", before, t2)
    assert _indexed_check(api, t2, bank)["chain_facts"]["source"] == "index+chain"


def test_a_poisoned_history_never_reaches_the_bank(api: httpx.Client, stack: Stack, story: dict[str, Any]) -> None:
    """Earlier hops are confirmed too: a rewritten upstream holder or value, a dropped or rewritten discount."""
    db = stack.data_dir / "api" / "api.db"
    root, financed, bank = story["root"], story["financed"], story["bank"]
    honest = _indexed_check(api, financed, bank)
    with sqlite3.connect(db, timeout=30) as conn:
        owner, value = conn.execute("SELECT owner, original_value FROM receivable_index_tokens WHERE token_id = ?",
                                    (root,)).fetchone()
        discount = conn.execute("SELECT * FROM receivable_index_discounts WHERE token_id = ?", (financed,)).fetchone()
    attacks = [
        ("UPDATE receivable_index_tokens SET owner = ? WHERE token_id = ?", (story["bank"]["address"], root),
         "UPDATE receivable_index_tokens SET owner = ? WHERE token_id = ?", (owner, root)),
        ("UPDATE receivable_index_tokens SET original_value = ? WHERE token_id = ?", ("1", root),
         "UPDATE receivable_index_tokens SET original_value = ? WHERE token_id = ?", (value, root)),
        ("UPDATE receivable_index_discounts SET rate_bps = ? WHERE token_id = ?", (1, financed),
         "UPDATE receivable_index_discounts SET rate_bps = ? WHERE token_id = ?", (discount[5], financed)),
        ("DELETE FROM receivable_index_discounts WHERE token_id = ?", (financed,),
         f"INSERT INTO receivable_index_discounts VALUES ({', '.join('?' * len(discount))})", discount),
    ]
    for poison, args, restore, restore_args in attacks:
        _poison(db, poison, *args)
        try:
            answer = api.get(f"/v1/receivables/{financed}/check", headers=auth(bank)).json()
            assert answer["chain_facts"]["source"] == "chain", poison
            _same(answer, honest)
        finally:
            _poison(db, restore, *restore_args)
    assert _indexed_check(api, financed, bank)["chain_facts"]["source"] == "index+chain"


def test_a_poisoned_payable_never_reaches_the_bank(api: httpx.Client, stack: Stack, story: dict[str, Any]) -> None:
    db = stack.data_dir / "api" / "api.db"
    t2, bank, root = story["t2"], story["bank"], story["root"]
    honest = _indexed_check(api, t2, bank)
    other_core = story["tier1"]["address"]  # claim the payable was confirmed by someone else
    with sqlite3.connect(db, timeout=30) as conn:
        issuer, digest = conn.execute("SELECT issuer, invoice_digest FROM receivable_index_payables "
                                      "WHERE root_token_id = ?", (root,)).fetchone()
    for sql, value in (("UPDATE receivable_index_payables SET issuer = ? WHERE root_token_id = ?", other_core),
                       ("UPDATE receivable_index_payables SET invoice_digest = ? WHERE root_token_id = ?",
                        "0x" + "66" * 32)):
        _poison(db, sql, value, root)
        try:
            answer = api.get(f"/v1/receivables/{t2}/check", headers=auth(bank)).json()
            assert answer["chain_facts"]["source"] == "chain"
            _same(answer, honest)
        finally:
            _poison(db, "UPDATE receivable_index_payables SET issuer = ?, invoice_digest = ? WHERE root_token_id = ?",
                    issuer, digest, root)


def _indexed_view(api: httpx.Client, token: int, who: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    """``GET /v1/receivables/{id}`` once the API's indexer has caught up with ``token``."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(f"/v1/receivables/{token}", headers=auth(who))
        assert r.status_code == 200, r.text
        if r.json()["chain_facts"]["source"] == "index+chain" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.5)


def _same_view(answer: dict[str, Any], honest: dict[str, Any]) -> None:
    assert {k: v for k, v in answer.items() if k != "chain_facts"} == {
        k: v for k, v in honest.items() if k != "chain_facts"}


def test_receivable_view_from_the_index_says_what_the_chain_says(api: httpx.Client, story: dict[str, Any],
                                                                 chain_only: TestClient) -> None:
    """``GET /v1/receivables/{id}`` from the index + one batch equals the per-hop chain reads, for the holder, an
    upstream holder, the bank with an offer, the bank's financed token and the issuer (with every holder)."""
    s = story
    for token, who in ((s["t2"], s["tier2"]), (s["t2"], s["tier1"]), (s["t2"], s["bank"]),
                       (s["financed"], s["bank"]), (s["root"], s["core"]), (s["t2"], s["core"])):
        indexed = _indexed_view(api, token, who)
        assert indexed["chain_facts"]["source"] == "index+chain", (token, who["name"], indexed["chain_facts"])
        assert indexed["chain_facts"]["confirmed_at_block"] >= indexed["chain_facts"]["indexed_to_block"]
        from_chain = chain_only.get(f"/v1/receivables/{token}", headers=auth(who)).json()
        assert from_chain["chain_facts"]["source"] == "chain"
        _same_view(indexed, from_chain)
    root_view = _indexed_view(api, s["root"], s["core"])
    assert {h["token_id"] for h in root_view["holders"]} == {s["root"], s["t2"], s["financed"]}
    fin = _indexed_view(api, s["financed"], s["bank"])
    assert fin["financed"] is True and fin["discount"]["payment_reference"] == "IDX-BANK-1"
    assert api.get(f"/v1/receivables/{s['t2']}", headers=auth(s["other"])).status_code == 404
    assert chain_only.get(f"/v1/receivables/{s['t2']}", headers=auth(s["other"])).status_code == 404


def test_a_poisoned_index_never_reaches_the_receivable_view(api: httpx.Client, stack: Stack,
                                                            story: dict[str, Any]) -> None:
    """A rewritten holder, a dropped discount or a holder dropped from the payable's tokens: the view answers
    from the chain, unchanged."""
    db = stack.data_dir / "api" / "api.db"
    s = story
    with sqlite3.connect(db, timeout=30) as conn:
        owner = conn.execute("SELECT owner FROM receivable_index_tokens WHERE token_id = ?", (s["t2"],)).fetchone()[0]
        discount = conn.execute("SELECT * FROM receivable_index_discounts WHERE token_id = ?",
                                (s["financed"],)).fetchone()
        t2_row = conn.execute("SELECT * FROM receivable_index_tokens WHERE token_id = ?", (s["t2"],)).fetchone()
    attacks = [
        ((s["t2"], s["tier2"]), "UPDATE receivable_index_tokens SET owner = ? WHERE token_id = ?",
         (s["other"]["address"], s["t2"]), "UPDATE receivable_index_tokens SET owner = ? WHERE token_id = ?",
         (owner, s["t2"])),
        ((s["financed"], s["bank"]), "DELETE FROM receivable_index_discounts WHERE token_id = ?", (s["financed"],),
         f"INSERT INTO receivable_index_discounts VALUES ({', '.join('?' * len(discount))})", discount),
        ((s["root"], s["core"]), "DELETE FROM receivable_index_tokens WHERE token_id = ?", (s["t2"],),
         f"INSERT INTO receivable_index_tokens VALUES ({', '.join('?' * len(t2_row))})", t2_row),
    ]
    for (token, who), poison, args, restore, restore_args in attacks:
        honest = _indexed_view(api, token, who)
        assert honest["chain_facts"]["source"] == "index+chain"
        _poison(db, poison, *args)
        try:
            answer = api.get(f"/v1/receivables/{token}", headers=auth(who)).json()
            assert answer["chain_facts"]["source"] == "chain", poison
            _same_view(answer, honest)
        finally:
            _poison(db, restore, *restore_args)
        assert _indexed_view(api, token, who)["chain_facts"]["source"] == "index+chain"


# --------------------------------------------------------------------------- crash / resume, finality


def _rows(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db, timeout=30) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}


def _cursor(db: Path) -> int | None:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            row = conn.execute("SELECT block_number FROM chain_index_cursor").fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return None
    return None if row is None else row[0]


def _indexer_process(stack: Stack, data_dir: Path, until: int) -> subprocess.Popen[bytes]:
    env = {**stack.api_env(), "TRACELEDGER_DATA_DIR": str(data_dir), "TRACELEDGER_CHAIN_INDEX_BATCH_BLOCKS": "1"}
    env.pop("DATABASE_URL", None)
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "api.chain_index", "--once", "--until", str(until)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_indexer_killed_mid_catch_up_resumes_with_the_same_rows(stack: Stack, story: dict[str, Any],
                                                                 chain: Chain, tmp_path: Path) -> None:
    head = chain.w3.eth.block_number
    reference = _indexer_process(stack, tmp_path / "reference", head)
    out, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, out.decode()
    expected = _rows(tmp_path / "reference" / "api.db")

    crashed = tmp_path / "crashed"
    proc = _indexer_process(stack, crashed, head)
    deadline = time.monotonic() + 300
    while (_cursor(crashed / "api.db") or 0) < head // 3:
        assert proc.poll() is None, "the indexer finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid catch-up: one block per batch, a third of the way
    proc.wait(30)
    killed_at = _cursor(crashed / "api.db")
    assert killed_at is not None and killed_at < head

    again = _indexer_process(stack, crashed, head)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out.decode()
    assert _cursor(crashed / "api.db") == head
    assert _rows(crashed / "api.db") == expected
    # every log of the indexed contracts once, and only those
    addresses = [stack.spec.receivable_token, stack.spec.work_ticket, stack.spec.warehouse_receipt]
    logs = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": head, "address": addresses})
    assert len(expected["chain_index_events"]) == len(logs) > 0
    assert len({(e[0], e[1]) for e in expected["chain_index_events"]}) == len(logs)


def test_a_block_not_final_under_confirmations_is_not_indexed(api: httpx.Client, stack: Stack,
                                                               story: dict[str, Any], chain: Chain,
                                                               tmp_path: Path) -> None:
    required = 15
    settings = _settings_of(stack, TRACELEDGER_DATA_DIR=str(tmp_path), finality=f"confirmations:{required}")
    engine = make_engine(settings)
    init_db(engine)
    client = ChainClient.from_url(settings.rpc_url)
    indexer = ChainIndexer(engine=engine, settings=settings, chain=client)
    r = api.post("/v1/receivables", headers=auth(story["core"]), json={
        "to_enterprise_id": story["tier1"]["id"], "currency": "CNY", "amount": "10.00",
        "maturity": chain.block_time() + 86_400, "invoice_digest": "0x" + "f1" * 32})
    assert r.status_code == 201, r.text
    token, block = r.json()["id"], r.json()["block_number"]
    latest = client.block_number()
    indexed = indexer.run_once()
    assert indexed is not None and indexed <= latest - required + 1 < block <= latest  # not final: not read
    with Session(engine) as s:
        assert s.get(IndexedToken, token) is None
        assert s.exec(select(IndexedEvent).where(IndexedEvent.block_number > indexed)).first() is None
    chain_head = block + required - 1  # the block's N-th confirmation
    deadline = time.monotonic() + 120
    while client.block_number() < chain_head:
        assert time.monotonic() < deadline, "the chain stopped producing blocks"
        time.sleep(0.5)
    assert indexer.run_once() >= block
    with Session(engine) as s:
        row = s.get(IndexedToken, token)
        assert row is not None and row.created_block == block and row.balance == "1000"
    engine.dispose()
