"""Identical documents never share an anchor across records posted at different times (eth-tester chain).

The Merkle leaf of a record is its digest only, so two single-record batches of byte-identical documents have
the same root. The worker used to reuse the earlier batch for the later record: enterprise B, copying enterprise
A's certificate verbatim under its own prefix, then got A's anchor block and time -- a block before B was even
registered, where no owner of B's prefix (and, on an ``sm`` network, no SM2 key of B) exists, so B's record could
never verify, and A's anchor stood in for B's. Now every batch gets its own root (a padding leaf when needed):

* the dishonest copier B gets an anchor of its own, after its registration; A's original keeps its earlier anchor;
* identical documents of one owner under two identifiers: the second record gets its own, later anchor;
* an identical re-post is the stored record (200): nothing new is batched or anchored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.anchoring.worker import batch_metadata_digest, padding_entry
from api.chain import ChainClient
from api.main import create_app
from api.models import Batch, Record
from provenance.merkle import hash_leaf, root_from_leaf_hashes
from tests.api.conftest import auth, create_enterprise, make_settings, sample
from tests.api.test_chain_anchoring import evm  # noqa: F401 - fixture

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "en10168"
ANCHORED = ("record_digest", "signature", "inclusion_proof", "anchored_on_chain")


def _app(evm: Any, tmp_path: Path, profile: str = "standard") -> TestClient:  # noqa: F811
    chain, admin_key, addrs = evm
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None,
                             admin_private_key=admin_key, enterprise_registry_address=addrs["EnterpriseRegistry"],
                             anchor_registry_address=addrs["AnchorRegistry"], fund_wei=10**18,
                             anchoring_enabled=False, crypto_profile=profile)
    return TestClient(create_app(settings, chain=chain))


def _shared_copy() -> tuple[dict[str, Any], dict[str, Any]]:
    five, six = SHARED / "valid_certificate_5.json", SHARED / "valid_certificate_6.json"
    if not (five.is_file() and six.is_file()):
        pytest.skip(f"shared EN 10168 certificates not found at {SHARED} (../shared/data beside the project)")
    assert five.read_bytes() == six.read_bytes()  # the shared pair is byte-identical: the trigger
    return json.loads(five.read_text(encoding="utf-8")), json.loads(six.read_text(encoding="utf-8"))


def _checks(app: TestClient, ident: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    body = app.get(f"/v1/verify/{ident}").json()
    return body, {c["name"]: c for c in body["checks"]}


def _row(app: TestClient, ident: str) -> tuple[Record, Batch]:
    with Session(app.app.state.tl.engine) as s:  # type: ignore[attr-defined]
        rec = s.exec(select(Record).where(Record.identifier == ident)).one()
        batch = s.get(Batch, rec.batch_id)
        assert batch is not None
        return rec, batch


def _copy_attack(app: TestClient, original: dict[str, Any], copy: dict[str, Any], hash_alg: str) -> None:
    """A posts ``original`` and it is anchored; later B registers and posts the byte-identical ``copy``."""
    st = app.app.state.tl  # type: ignore[attr-defined]
    chain: ChainClient = st.chain
    a = create_enterprise(app, name="Nordstahl Walzwerk GmbH")
    r = app.post("/v1/coils/certificates", json=original, headers=auth(a["api_key"]))
    assert r.status_code == 201, r.text
    ident_a = r.json()["identifier"]
    assert len(st.worker.run_once()) == 1 and st.worker.last_error is None
    _, batch_a = _row(app, ident_a)

    b = create_enterprise(app, name="Copycat Stahlhandel", prefix="88.7.7")
    registered_b = chain.w3.eth.block_number
    assert batch_a.block_number is not None and batch_a.block_number < registered_b
    r = app.post("/v1/coils/certificates", json=copy, headers=auth(b["api_key"]))
    assert r.status_code == 201, r.text
    ident_b = r.json()["identifier"]
    assert ident_b.startswith("88.7.7/") and ident_b != ident_a
    assert r.json()["record_digest"] == app.get(f"/v1/verify/{ident_a}").json()["record_digest"]
    finalized = st.worker.run_once()
    assert st.worker.last_error is None

    rec_b, batch_b = _row(app, ident_b)
    _, checks_b = _checks(app, ident_b)
    assert checks_b["signature"]["ok"], checks_b["signature"]  # sm: B's SM2 key at B's anchor block (not A's)
    # B's copy has a batch and an anchor of its own, after B's registration; A's original keeps its own, earlier one
    assert batch_b.id != batch_a.id and batch_b.root != batch_a.root
    assert batch_b.block_number is not None and batch_b.block_number > registered_b > batch_a.block_number
    assert finalized == [batch_b.id]
    rec_a, batch_a_after = _row(app, ident_a)
    assert (rec_a.batch_id, batch_a_after.block_number, batch_a_after.root) == (batch_a.id, batch_a.block_number,
                                                                                 batch_a.root)
    # the padding leaf: a record leaf at index 0, then H(domain ‖ nonce) -- the digest of no record
    assert rec_b.leaf_index == 0 and batch_b.size == 2 and batch_b.leaf_digests[0] == rec_b.record_digest
    assert batch_b.leaf_digests[1] != rec_b.record_digest
    leaves = [hash_leaf(bytes.fromhex(d[2:]), hash_alg) for d in batch_b.leaf_digests]
    assert batch_b.root == "0x" + root_from_leaf_hashes(leaves, hash_alg=hash_alg).hex()
    assert batch_b.metadata_digest == "0x" + batch_metadata_digest(
        batch_id=int(batch_b.id or 0), size=2, first_record_id=int(rec_b.id or 0), hash_alg=hash_alg,
        padding_leaves=1).hex()
    anchored = chain.get_anchor_by(batch_b.submitter, bytes.fromhex(batch_b.root[2:]))
    assert anchored is not None and anchored.size == 2 and anchored.block_number == batch_b.block_number

    for ident, batch in ((ident_a, batch_a), (ident_b, batch_b)):
        body, checks = _checks(app, ident)
        for name in ANCHORED:
            assert checks[name]["ok"], (ident, checks[name])
        assert body["anchor"]["block_number"] == batch.block_number and body["proof"]["root"] == batch.root
    assert _checks(app, ident_b)[0]["proof"]["tree_size"] == 2


def test_copy_under_another_prefix_gets_its_own_later_anchor(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    original, copy = _shared_copy()
    with _app(evm, tmp_path) as app:
        _copy_attack(app, original, copy, "sha-256")


def test_copy_under_another_prefix_sm_signature_holds_at_its_own_anchor(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    # on an sm network the copier's SM2 key is checked at the anchor block: A's block precedes B's key
    doc = sample("s355mc_coil_nw24-118734")
    with _app(evm, tmp_path, "sm") as app:
        _copy_attack(app, doc, json.loads(json.dumps(doc)), "sm3")


def test_identical_documents_of_one_owner_get_separate_anchors(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    with _app(evm, tmp_path) as app:
        st = app.app.state.tl  # type: ignore[attr-defined]
        ent = create_enterprise(app)
        r = app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        assert r.status_code == 201, r.text
        first = r.json()["identifier"]
        assert len(st.worker.run_once()) == 1
        # the same owner stores the same document under a second identifier (any kind whose identifier is not
        # derived from the document can do this); it is a later record and must not take the first one's anchor
        with Session(st.engine) as s:
            rec = s.exec(select(Record).where(Record.identifier == first)).one()
            fields = rec.model_dump(exclude={"id", "batch_id", "leaf_index", "status", "identifier"})
            s.add(Record(**fields, identifier=first + "-dup", status="pending"))
            s.commit()
        second = first + "-dup"
        finalized = st.worker.run_once()
        assert st.worker.last_error is None
        (rec1, batch1), (rec2, batch2) = _row(app, first), _row(app, second)
        assert batch2.id != batch1.id and batch2.root != batch1.root
        assert finalized == [batch2.id]
        assert batch2.block_number is not None and batch1.block_number is not None
        assert batch2.block_number > batch1.block_number
        assert batch2.leaf_digests[0] == rec1.record_digest == rec2.record_digest and batch2.size == 2
        checks = _checks(app, second)[1]
        for name in ("record_digest", "inclusion_proof", "anchored_on_chain"):
            assert checks[name]["ok"], checks[name]
        assert _checks(app, first)[0]["anchor"]["block_number"] == batch1.block_number
        # a third copy gets yet another root: the padding nonce is fresh each time
        with Session(st.engine) as s:
            s.add(Record(**fields, identifier=first + "-dup2", status="pending"))
            s.commit()
        assert len(st.worker.run_once()) == 1
        _, batch3 = _row(app, first + "-dup2")
        assert len({batch1.root, batch2.root, batch3.root}) == 3


def test_identical_repost_is_the_stored_record_and_anchors_nothing(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    with _app(evm, tmp_path) as app:
        st = app.app.state.tl  # type: ignore[attr-defined]
        ent = create_enterprise(app)
        first = app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        assert first.status_code == 201
        assert len(st.worker.run_once()) == 1
        count = st.chain.anchor_registry.functions.anchorCount().call()
        again = app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        assert again.status_code == 200 and again.json()["identifier"] == first.json()["identifier"]
        assert st.worker.run_once() == []
        assert st.chain.anchor_registry.functions.anchorCount().call() == count
        with Session(st.engine) as s:
            assert len(s.exec(select(Batch)).all()) == 1 and len(s.exec(select(Record)).all()) == 1


def test_padding_entry_is_domain_separated() -> None:
    nonce = bytes(32)
    assert padding_entry(nonce) != padding_entry(nonce, "sm3")
    assert padding_entry(nonce) != padding_entry(bytes(31) + b"\x01")
    assert len(padding_entry(nonce)) == len(padding_entry(nonce, "sm3")) == 32


def test_a_root_anchored_outside_the_known_batches_is_not_borrowed(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    # the operator anchored a record's would-be root before (e.g. the database was restored from an older backup):
    # the registry refuses the root again, and that earlier anchor must not become the new record's
    with _app(evm, tmp_path) as app:
        st = app.app.state.tl  # type: ignore[attr-defined]
        ent = create_enterprise(app)
        r = app.post("/v1/coils/certificates", json=sample("s235jr_coil_nw24-120377"), headers=auth(ent["api_key"]))
        assert r.status_code == 201 and len(st.worker.run_once()) == 1  # bootstraps the operator, sets the gas
        key = st.worker._operator_key()
        for name in ("s355mc_coil_nw24-118734", "dd13_coil_nw24-119052"):
            r = app.post("/v1/coils/certificates", json=sample(name), headers=auth(ent["api_key"]))
            assert r.status_code == 201, r.text
            ident, digest = r.json()["identifier"], r.json()["record_digest"]
            root = root_from_leaf_hashes([hash_leaf(bytes.fromhex(digest[2:]))])
            earlier = st.chain.anchor_root(key, root, 1, bytes(32))
            # the gas estimate shows the refusal before sending (eth-tester raises at sending a reverting tx, so the
            # later path, a refusal in the receipt of a pipelined tx, is left to real nodes)
            st.worker._anchor_gas = None
            st.worker.run_once()
            assert st.worker.last_error is None
            rec, batch = _row(app, ident)
            assert rec.status == "anchored" and batch.status == "final"
            assert batch.root != "0x" + root.hex() and batch.size == 2 and batch.leaf_digests[0] == digest
            assert batch.block_number is not None and batch.block_number > earlier["blockNumber"]
            checks = _checks(app, ident)[1]
            for check in ANCHORED:
                assert checks[check]["ok"], (name, checks[check])
