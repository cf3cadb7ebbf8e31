"""The anchoring worker takes only its own enterprise's anchor as done (issue 13, roots bound to their anchorer).

Before: a root anchored first by another enterprise made ``anchor_root`` raise ``RootAlreadyAnchored``
and the worker completed the batch with the *front-runner's* anchor (its submitter, its size).
"""

from __future__ import annotations

from eth_account import Account
from sqlmodel import Session

from api.models import Batch
from tests.api.conftest import auth, create_enterprise, sample
from tests.api.test_chain_anchoring import _state, chain_app, evm  # noqa: F401 - fixtures


def test_a_front_run_root_is_not_taken_as_done(chain_app) -> None:  # noqa: F811 - fixture
    ent = create_enterprise(chain_app)
    chain_app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
    st = _state(chain_app)
    worker = st.worker
    worker.run_once()  # bootstraps the operator and anchors the first record
    chain_app.post("/v1/coils/certificates", json=sample("dd13_coil_nw24-119052"), headers=auth(ent["api_key"]))
    batch_id = worker.create_batch()
    with Session(st.engine) as s:
        batch = s.get(Batch, batch_id)
        root = bytes.fromhex(batch.root[2:])
    # another active member sees the pending root and anchors it first with a wrong size
    thief = Account.create()
    st.chain.register_enterprise(st.settings.admin_private_key, account=thief.address, name="Front-runner",
                                 roles=1, prefix="88.66.6", fund_wei=10**18)
    st.chain.anchor_root(thief.key, root, 999, b"\x01" * 32)
    operator = Account.from_key(worker._operator_key()).address
    assert st.chain.get_anchor_for(worker._operator_key(), root) is None
    assert worker.run_once() == [batch_id]
    with Session(st.engine) as s:
        batch = s.get(Batch, batch_id)
        assert batch.status == "final" and batch.submitter == operator  # our anchor, not the thief's
    ours = st.chain.get_anchor_for(worker._operator_key(), root)
    assert ours is not None and ours.size == batch.size and ours.block_number == batch.block_number
    # verification reads our enterprise's anchor too: the thief's earlier anchor (size 999) does not fail it
    assert st.chain.get_anchor(root).size == 999
    checks = {c["name"]: c for c in chain_app.get("/v1/verify/88.1.1/HK53016-CNW24-119052").json()["checks"]}
    assert checks["anchored_on_chain"]["ok"], checks["anchored_on_chain"]
