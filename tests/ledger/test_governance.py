"""Validator governance: vote tallying (pure), votes in headers, validator-set changes on a Ledger, the
node's pending votes and its QBFT JSON-RPC methods."""

from __future__ import annotations

import pytest
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from ledger.chain import Ledger, VoteTally, apply_vote, encode_block
from ledger.consensus.errors import InvalidBlock
from ledger.node import Node
from ledger.rpc import dispatch
from provenance.qbft_header import ExtraData, Vote, decode_extra_data, encode_extra_data
from tests.ledger.helpers import KEY_BY_ADDRESS, SORTED_KEYS, VALIDATORS, free_port, make_genesis, seals_for

NEWCOMER_KEY = keys.PrivateKey(keccak(b"newcomer"))
NEWCOMER = NEWCOMER_KEY.public_key.to_canonical_address()
A, B, C, D = VALIDATORS
EPOCH = 30_000


def tally4() -> VoteTally:
    return VoteTally(VALIDATORS, {})


# ------------------------------------------------------------------------------------------ pure tally
def test_add_needs_more_than_half_of_validators() -> None:
    t = tally4()
    t = apply_vote(t, 1, A, Vote(NEWCOMER, True), EPOCH)
    t = apply_vote(t, 2, B, Vote(NEWCOMER, True), EPOCH)
    assert NEWCOMER not in t.validators and t.count(NEWCOMER, True) == 2  # 2 of 4 is not more than half
    t = apply_vote(t, 3, C, Vote(NEWCOMER, True), EPOCH)
    assert t.validators == tuple(sorted((*VALIDATORS, NEWCOMER)))
    assert t.votes == {}  # votes about the candidate are discarded once applied


def test_drop_needs_more_than_half_and_discards_votes_by_the_dropped() -> None:
    t = apply_vote(tally4(), 1, D, Vote(NEWCOMER, True), EPOCH)  # D votes for someone, then is dropped
    for number, voter in enumerate((A, B, C), start=2):
        t = apply_vote(t, number, voter, Vote(D, False), EPOCH)
    assert t.validators == (A, B, C)
    assert (D, NEWCOMER) not in t.votes


def test_repeated_vote_of_one_voter_counts_once_and_can_change() -> None:
    t = tally4()
    for number in range(1, 5):
        t = apply_vote(t, number, A, Vote(NEWCOMER, True), EPOCH)
    assert t.count(NEWCOMER, True) == 1 and NEWCOMER not in t.validators
    t = apply_vote(t, 5, A, Vote(NEWCOMER, False), EPOCH)  # meaningless: NEWCOMER is not a validator
    assert t.votes == {(A, NEWCOMER): True}


def test_meaningless_and_non_validator_votes_are_ignored() -> None:
    t = tally4()
    assert apply_vote(t, 1, A, Vote(B, True), EPOCH) == t  # B already a validator
    assert apply_vote(t, 1, NEWCOMER, Vote(NEWCOMER, True), EPOCH) == t  # voter not a validator


def test_epoch_block_resets_votes() -> None:
    t = apply_vote(tally4(), 9, A, Vote(NEWCOMER, True), 10)
    t = apply_vote(t, 10, B, Vote(NEWCOMER, True), 10)
    assert t.votes == {} and t.validators == VALIDATORS
    t = apply_vote(t, 11, B, Vote(NEWCOMER, True), 10)
    t = apply_vote(t, 12, C, Vote(NEWCOMER, True), 10)
    assert NEWCOMER not in t.validators  # A's vote from the previous epoch no longer counts


def test_last_validator_is_never_dropped() -> None:
    t = apply_vote(VoteTally((A,), {}), 1, A, Vote(A, False), EPOCH)
    assert t.validators == (A,)


# ------------------------------------------------------------------------------------ on a real Ledger
def commit_with_vote(ledger: Ledger, proposer: bytes, vote: Vote | None, signers=None) -> bytes:
    # dated one block period after the parent (genesis is in 2023), as an honest proposer waiting for the
    # period would: blocks built back to back at "now" would run ahead of the clock (block validity rule)
    block = ledger.build_block([], proposer, timestamp=ledger.head.timestamp + 1, vote=vote)
    raw = encode_block(block)
    signers = signers or [KEY_BY_ADDRESS[v] for v in ledger.validators(block.number)][:3]
    ledger.commit(raw, 0, seals_for(ledger, raw, 0, signers))
    return raw


def test_voted_in_validator_is_in_extradata_and_seals_next_blocks(tmp_path) -> None:
    ledger = Ledger(tmp_path / "a", make_genesis())
    follower = Ledger(tmp_path / "b", make_genesis())
    try:
        raws = [commit_with_vote(ledger, p, Vote(NEWCOMER, True)) for p in (A, B, C)]
        assert decode_extra_data(ledger.header_at(2).extra_data).validators == VALIDATORS
        # Besu's rule: block 3 carries the deciding vote but lists (and is sealed by) the set before it;
        # the change takes effect from block 4, whose extraData lists the new set
        assert decode_extra_data(ledger.header_at(3).extra_data).validators == VALIDATORS
        assert decode_extra_data(ledger.header_at(1).extra_data).vote == Vote(NEWCOMER, True)
        assert ledger.validators(3) == VALIDATORS
        assert ledger.validators(4) == tuple(sorted((*VALIDATORS, NEWCOMER)))
        # 5 validators: quorum 4; the newcomer's seal now counts, 3 seals no longer suffice
        block = ledger.build_block([], NEWCOMER)
        assert decode_extra_data(block.header.extra_data).validators == tuple(sorted((*VALIDATORS, NEWCOMER)))
        raw = encode_block(block)
        with pytest.raises(InvalidBlock, match="quorum"):
            ledger.verify_seals(block, 0, seals_for(ledger, raw, 0, SORTED_KEYS[:3]))
        ledger.verify_seals(block, 0, seals_for(ledger, raw, 0, [*SORTED_KEYS[:3], NEWCOMER_KEY]))
        # a syncing peer re-checks the tally of every block it imports
        for raw in raws:
            h = ledger.seal_record(ledger.chain.get_block_header_by_hash(keccak_hash(raw)).hash)
            follower.import_sealed(raw, h.round, h.seals)
        assert follower.validators(4) == ledger.validators(4)
    finally:
        ledger.close()
        follower.close()


def keccak_hash(raw: bytes) -> bytes:
    from ledger.chain import decode_block

    return decode_block(raw).hash


def test_voted_out_validator_seal_is_refused(tmp_path) -> None:
    ledger = Ledger(tmp_path / "a", make_genesis())
    try:
        for p in (A, B, C):
            commit_with_vote(ledger, p, Vote(D, False))
        assert ledger.validators(4) == (A, B, C)
        block = ledger.build_block([], ledger.validators(4)[0])
        raw = encode_block(block)
        with pytest.raises(InvalidBlock, match="non-validator"):
            ledger.verify_seals(block, 0, seals_for(ledger, raw, 0, [KEY_BY_ADDRESS[x] for x in (A, B, D)]))
        ledger.verify_seals(block, 0, seals_for(ledger, raw, 0, [KEY_BY_ADDRESS[x] for x in (A, B)]))  # quorum(3)=2
    finally:
        ledger.close()


def test_proposal_with_wrong_validator_list_is_refused(tmp_path) -> None:
    ledger = Ledger(tmp_path / "a", make_genesis())
    other = Ledger(tmp_path / "b", make_genesis())
    try:
        for p in (A, B):
            raw = commit_with_vote(ledger, p, Vote(NEWCOMER, True))
            other.import_sealed(raw, 0, ledger.seal_record(keccak_hash(raw)).seals)
        # C casts the deciding vote but applies it to its own block's list at once (the old, non-Besu rule):
        # block 3 must list the set *before* its vote, so the early newcomer is refused
        honest = ledger.build_block([], C, vote=Vote(NEWCOMER, True))
        extra = decode_extra_data(honest.header.extra_data)
        assert extra.validators == VALIDATORS
        early = tuple(sorted((*VALIDATORS, NEWCOMER)))
        forged_extra = encode_extra_data(ExtraData(extra.vanity, early, extra.vote), include_round=False)
        forged = honest.copy(header=honest.header.copy(extra_data=forged_extra))
        with pytest.raises(InvalidBlock, match="vote tally"):
            other.validate_block(3, C, encode_block(forged))
        assert other.validate_block(3, C, encode_block(honest)) == honest.hash
    finally:
        ledger.close()
        other.close()


def test_epoch_block_carries_no_vote_and_resets(tmp_path) -> None:
    ledger = Ledger(tmp_path / "a", make_genesis(epoch_length=3))
    try:
        commit_with_vote(ledger, A, Vote(NEWCOMER, True))
        commit_with_vote(ledger, B, Vote(NEWCOMER, True))
        commit_with_vote(ledger, C, Vote(NEWCOMER, True))  # block 3 is an epoch block: vote dropped
        assert decode_extra_data(ledger.header_at(3).extra_data).vote is None
        assert ledger.validators(4) == VALIDATORS
        assert ledger.tally_at(ledger.head).votes == {}
        ledger._tally_cache.clear()  # recomputed from headers (as after a restart)
        assert ledger.tally_at(ledger.header_at(2)).count(NEWCOMER, True) == 2
        commit_with_vote(ledger, D, None)
        commit_with_vote(ledger, A, None)
        block = ledger.build_block([], B)  # block 6: the next epoch block
        bad_extra = encode_extra_data(ExtraData(validators=VALIDATORS, vote=Vote(NEWCOMER, True)),
                                      include_round=False)
        forged = block.copy(header=block.header.copy(extra_data=bad_extra))
        with pytest.raises(InvalidBlock, match="epoch block 6 must not carry"):
            ledger.validate_block(6, B, encode_block(forged))
        assert ledger.validate_block(6, B, encode_block(block)) == block.hash
    finally:
        ledger.close()


def test_genesis_epoch_length_roundtrips() -> None:
    genesis = make_genesis(epoch_length=100)
    assert type(genesis).from_json(genesis.to_json()).epoch_length == 100
    assert type(genesis).from_json({**make_genesis().to_json()}).epoch_length == 30_000


# --------------------------------------------------------------------------------------- node + RPC
@pytest.fixture
def node(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("0x" + KEY_BY_ADDRESS[A].to_bytes().hex())
    config = {
        "name": "validator-1", "data_dir": str(tmp_path / "data"), "key_file": str(key_file),
        "genesis": make_genesis().to_json(), "p2p": {"host": "127.0.0.1", "port": free_port()},
        "rpc": {"host": "127.0.0.1", "port": free_port()}, "peers": [], "observers": [],
        "permissioning": {"registry": None},
    }
    built = Node(config)
    yield built
    built.ledger.close()


def call(node: Node, method: str, *params):
    answer = dispatch(node, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                      node.rpc_methods())
    return answer


def test_vote_rpc_methods(node: Node) -> None:
    newcomer = to_checksum_address(NEWCOMER)
    assert call(node, "qbft_proposeValidatorVote", newcomer, True)["result"] is True
    assert call(node, "qbft_proposeValidatorVote", to_checksum_address(D), False)["result"] is True
    assert call(node, "qbft_getPendingVotes")["result"] == {newcomer: True, to_checksum_address(D): False}
    assert call(node, "qbft_proposeValidatorVote", newcomer, "yes")["error"]["code"] == -32602
    assert call(node, "qbft_proposeValidatorVote", "0x1234", True)["error"]["code"] == -32602
    assert call(node, "qbft_discardValidatorVote", newcomer)["result"] is True
    assert call(node, "qbft_discardValidatorVote", newcomer)["result"] is False
    assert call(node, "qbft_getPendingVotes")["result"] == {to_checksum_address(D): False}


def test_node_casts_pending_vote_into_its_block(node: Node) -> None:
    node.propose_vote(NEWCOMER, True)
    node.propose_vote(B, True)  # meaningless (already a validator): never cast
    vote = node.choose_vote(1)
    assert vote == Vote(NEWCOMER, True)
    block = node.ledger.build_block([], A, vote=vote)
    assert decode_extra_data(block.header.extra_data).vote == Vote(NEWCOMER, True)
    assert node.choose_vote(30_000) is None  # epoch block
    node.discard_vote(NEWCOMER)
    assert node.choose_vote(1) is None


def test_validators_by_block_number_reflects_changes(node: Node) -> None:
    for p in (A, B, C):
        commit_with_vote(node.ledger, p, Vote(NEWCOMER, True))
    before = call(node, "qbft_getValidatorsByBlockNumber", "0x2")["result"]
    deciding = call(node, "qbft_getValidatorsByBlockNumber", "0x3")["result"]
    assert to_checksum_address(NEWCOMER) not in before
    # Besu semantics: a block's validators are those that seal it; the deciding block 3 is sealed by the old set
    assert to_checksum_address(NEWCOMER) not in deciding and len(deciding) == 4
    commit_with_vote(node.ledger, D, None, signers=SORTED_KEYS[:4])  # quorum(5) = 4 of the old validators
    after = call(node, "qbft_getValidatorsByBlockNumber", "latest")["result"]
    assert to_checksum_address(NEWCOMER) in after and len(after) == 5
    assert NEWCOMER in node._allowed_peers()  # node permissioning admits the latest set


# ----------------------------------------------- trusting a later validator set (offline verifiers)
def _served(ledger: Ledger, number: int) -> dict:
    from ledger.rpc import block_json

    return block_json(ledger, ledger.chain.get_canonical_block_by_number(number), False)


def test_a_verifier_follows_an_add_and_a_remove_from_the_genesis_set(tmp_path) -> None:
    """Besu's rule makes each block list its sealers, so a verifier that trusts only the genesis set can
    move its trust to each new set through the first block that lists it (sealed by > 1/3 of the old)."""
    from provenance.qbft_header import advance_trusted_validators, verify_sealed_block

    ledger = Ledger(tmp_path / "a", make_genesis())
    try:
        for p in (A, B, C):
            commit_with_vote(ledger, p, Vote(NEWCOMER, True))
        five = [*SORTED_KEYS, NEWCOMER_KEY]
        commit_with_vote(ledger, D, None, signers=SORTED_KEYS)  # block 4: first block of the 5-validator set
        for p in (A, B, C):  # blocks 5-7 vote D out; block 8 is the first without D
            commit_with_vote(ledger, p, Vote(D, False), signers=five[:4])
        commit_with_vote(ledger, A, None, signers=[KEY_BY_ADDRESS[x] for x in (A, B, C)])
        genesis = [to_checksum_address(v) for v in VALIDATORS]
        assert verify_sealed_block(_served(ledger, 8), genesis).notes  # block 8 lists another set than genesis
        five_set = advance_trusted_validators(genesis, _served(ledger, 4))
        assert to_checksum_address(NEWCOMER) in five_set and len(five_set) == 5
        four_set = advance_trusted_validators(five_set, _served(ledger, 8))
        assert sorted(four_set) == sorted(to_checksum_address(x) for x in (A, B, C, NEWCOMER))
        assert verify_sealed_block(_served(ledger, 8), four_set).ok
    finally:
        ledger.close()


def test_a_validator_set_not_vouched_for_by_the_trusted_set_is_refused(tmp_path) -> None:
    """A forger who holds new keys can seal a block listing only them; without > 1/3 of the trusted
    validators' seals that list is not accepted."""
    from provenance.qbft_header import UntrustedValidatorChange, advance_trusted_validators

    strangers = [keys.PrivateKey(keccak(b"stranger%d" % i)) for i in range(4)]
    forged_genesis = make_genesis()
    forged_genesis = type(forged_genesis)(**{**forged_genesis.__dict__, "validators": tuple(
        sorted(k.public_key.to_canonical_address() for k in strangers))})
    forged = Ledger(tmp_path / "forged", forged_genesis)
    try:
        block = forged.build_block([], sorted(k.public_key.to_canonical_address() for k in strangers)[0])
        raw = encode_block(block)
        forged.commit(raw, 0, seals_for(forged, raw, 0, strangers[:3]))
        with pytest.raises(UntrustedValidatorChange, match="trusted set"):
            advance_trusted_validators([to_checksum_address(v) for v in VALIDATORS], _served(forged, 1))
    finally:
        forged.close()
