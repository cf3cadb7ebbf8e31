"""An offline bundle across validator changes (issue 11): the auditor trusts only the genesis validators and
follows each add and remove through the first block that lists the new set (Besu's validator rule)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from ledger.chain import Ledger
from ledger.rpc import block_json
from provenance.bundle import BUNDLE_FORMAT, HEADER_KEYS, prove_bundle
from provenance.qbft_header import Vote
from tests.ledger.helpers import KEY_BY_ADDRESS, SORTED_KEYS, VALIDATORS, make_genesis
from tests.ledger.test_governance import NEWCOMER, NEWCOMER_KEY, commit_with_vote

A, B, C, D = VALIDATORS
GENESIS_SET = [to_checksum_address(v) for v in VALIDATORS]


def _served(ledger: Ledger, number: int, *, header_only: bool = False) -> dict[str, Any]:
    raw = block_json(ledger, ledger.chain.get_canonical_block_by_number(number), True)
    keep = HEADER_KEYS - ({"transactions", "receipts"} if header_only else {"receipts"})
    return {k: v for k, v in raw.items() if k in keep}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """Blocks 1-3 vote the newcomer in (set of 5 from block 4); 5-7 vote D out (set of 4 from block 8); 9."""
    ledger = Ledger(tmp_path_factory.mktemp("chain"), make_genesis())
    for p in (A, B, C):
        commit_with_vote(ledger, p, Vote(NEWCOMER, True))
    five = [*SORTED_KEYS, NEWCOMER_KEY]
    commit_with_vote(ledger, D, None, signers=SORTED_KEYS)
    for p in (A, B, C):
        commit_with_vote(ledger, p, Vote(D, False), signers=five[:4])
    after = [KEY_BY_ADDRESS[x] for x in (A, B)] + [NEWCOMER_KEY]  # 3 of {A, B, C, newcomer}: no genesis quorum
    commit_with_vote(ledger, A, None, signers=after)
    commit_with_vote(ledger, B, None, signers=after)
    yield ledger
    ledger.close()


def _seal_check(bundle: dict[str, Any]) -> Any:
    report = prove_bundle(bundle, GENESIS_SET)
    return {c.place: c for c in report.checks}


def test_a_block_after_an_add_and_a_remove_verifies_from_the_genesis_set(chain: Ledger) -> None:
    bundle = {"format": BUNDLE_FORMAT, "blocks": [_served(chain, 9)],
              "validator_changes": [_served(chain, 4, header_only=True), _served(chain, 8, header_only=True)]}
    checks = _seal_check(bundle)
    assert checks["validator_changes[0]"].ok and checks["validator_changes[1]"].ok, checks
    assert checks["blocks[0].extraData.commitSeals"].ok, checks["blocks[0].extraData.commitSeals"]
    assert "validator_changes[1]" in checks and to_checksum_address(NEWCOMER) in checks["validator_changes[1]"].detail


def test_without_the_changes_the_newcomers_seal_is_an_outsiders(chain: Ledger) -> None:
    checks = _seal_check({"format": BUNDLE_FORMAT, "blocks": [_served(chain, 9)]})
    assert not checks["blocks[0].extraData.commitSeals"].ok


def test_changes_out_of_order_or_forged_are_refused(chain: Ledger, tmp_path) -> None:
    backwards = {"format": BUNDLE_FORMAT, "blocks": [_served(chain, 9)],
                 "validator_changes": [_served(chain, 8, header_only=True), _served(chain, 4, header_only=True)]}
    checks = _seal_check(backwards)
    assert not checks["validator_changes[1]"].ok and "not after" in checks["validator_changes[1]"].detail
    # a forger's chain whose validators are strangers: its "change" block is not vouched for by the genesis set
    strangers = [keys.PrivateKey(keccak(b"stranger%d" % i)) for i in range(4)]
    genesis = make_genesis()
    forged_genesis = type(genesis)(**{**genesis.__dict__, "validators": tuple(
        sorted(k.public_key.to_canonical_address() for k in strangers))})
    forged = Ledger(tmp_path / "forged", forged_genesis)
    try:
        by_address = {k.public_key.to_canonical_address(): k for k in strangers}
        commit_with_vote(forged, sorted(by_address)[0], None, signers=[by_address[a] for a in sorted(by_address)][:3])
        checks = _seal_check({"format": BUNDLE_FORMAT, "blocks": [],
                              "validator_changes": [_served(forged, 1, header_only=True)]})
        assert not checks["validator_changes[0]"].ok and "trusted set" in checks["validator_changes[0]"].detail
    finally:
        forged.close()


def test_a_tampered_change_block_is_refused(chain: Ledger) -> None:
    change = _served(chain, 4, header_only=True)
    change["gasUsed"] = hex(int(change["gasUsed"], 16) + 1)
    checks = _seal_check({"format": BUNDLE_FORMAT, "blocks": [], "validator_changes": [change]})
    assert not checks["validator_changes[0]"].ok
