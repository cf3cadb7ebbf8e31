"""Ledger: genesis, building, validating, sealing, committing and importing QBFT blocks on py-evm."""

from __future__ import annotations

import time

import pytest
import rlp

from ledger.chain import Ledger, decode_block, encode_block
from ledger.consensus.errors import InvalidBlock
from provenance.qbft_header import (
    BFT_MIX_HASH,
    ExtraData,
    decode_extra_data,
    encode_extra_data,
    recover_seal_signer,
)
from tests.ledger.helpers import (
    CHAIN_ID,
    FUNDED,
    FUNDED_BALANCE,
    FUNDED_KEY,
    RECIPIENT,
    SORTED_KEYS,
    STRANGER_KEY,
    VALIDATORS,
    make_genesis,
    seal,
    seals_for,
    sign_tx,
)

N_TXS = 50
ROUND = 2


@pytest.fixture(scope="module")
def transfers():
    return [sign_tx(FUNDED_KEY, n, value=1000 + n) for n in range(N_TXS)]


@pytest.fixture
def ledgers(tmp_path):
    """Two validators' ledgers with the same genesis (closed afterwards)."""
    opened: list[Ledger] = []

    def open_ledger(name: str, genesis=None) -> Ledger:
        ledger = Ledger(tmp_path / name, genesis or make_genesis())
        opened.append(ledger)
        return ledger

    yield open_ledger
    for ledger in opened:
        try:
            ledger.close()
        except Exception:
            pass


@pytest.fixture
def proposed(ledgers, transfers):
    """Ledger A built block 1 with 50 transfers (proposer VALIDATORS[0]); ledger B is fresh."""
    a, b = ledgers("a"), ledgers("b")
    block = a.build_block(transfers, VALIDATORS[0])
    return a, b, block, encode_block(block)


def rebuild(block, **header_changes) -> bytes:
    return encode_block(block.copy(header=block.header.copy(**header_changes)))


# ------------------------------------------------------------------ genesis
def test_same_genesis_same_hash(ledgers):
    a, b = ledgers("a"), ledgers("b")
    assert a.genesis_hash == b.genesis_hash
    assert a.height == b.height == 0
    genesis = a.header_at(0)
    assert genesis.mix_hash == BFT_MIX_HASH
    assert genesis.difficulty == 0
    assert decode_extra_data(genesis.extra_data) == ExtraData(validators=VALIDATORS)
    assert a.chain.get_vm(a.head).state.get_balance(FUNDED) == FUNDED_BALANCE


def test_different_genesis_different_hash(ledgers):
    base = ledgers("base").genesis_hash
    assert ledgers("alloc", make_genesis(alloc={FUNDED: 1})).genesis_hash != base
    assert ledgers("validators", make_genesis(validators=VALIDATORS[:3])).genesis_hash != base
    assert ledgers("time", make_genesis(timestamp=1_700_000_001)).genesis_hash != base


def test_same_genesis_other_chain_id_same_block_hash(ledgers):
    # as in Ethereum, the genesis header does not commit to the chain id (the data dir stores it beside)
    assert ledgers("a").genesis_hash == ledgers("b", make_genesis(chain_id=CHAIN_ID + 1)).genesis_hash


def test_reopen_with_other_genesis_raises(tmp_path):
    Ledger(tmp_path / "d", make_genesis()).close()
    with pytest.raises(RuntimeError, match="holds another chain"):
        Ledger(tmp_path / "d", make_genesis(alloc={FUNDED: 5}))


def test_reopen_with_other_chain_id_raises(tmp_path):
    Ledger(tmp_path / "d", make_genesis()).close()
    with pytest.raises(RuntimeError, match="holds another chain"):
        Ledger(tmp_path / "d", make_genesis(chain_id=CHAIN_ID + 1))


def test_reopen_with_same_genesis_succeeds(tmp_path):
    first = Ledger(tmp_path / "d", make_genesis())
    genesis_hash = first.genesis_hash
    first.close()
    again = Ledger(tmp_path / "d", make_genesis())
    try:
        assert again.genesis_hash == genesis_hash and again.height == 0
    finally:
        again.close()


def test_genesis_validators_are_sorted(ledgers):
    ledger = ledgers("a", make_genesis(validators=tuple(reversed(VALIDATORS))))
    assert ledger.validators(1) == VALIDATORS
    assert ledger.genesis_hash == ledgers("b").genesis_hash


# ------------------------------------------------------------------ build / validate / commit
def test_build_block_contents(proposed):
    a, _, block, _ = proposed
    assert block.number == 1
    assert len(block.transactions) == N_TXS
    assert block.header.gas_used == 21_000 * N_TXS
    assert bytes(block.header.coinbase) == VALIDATORS[0]
    assert block.header.parent_hash == a.genesis_hash
    assert block.header.mix_hash == BFT_MIX_HASH
    extra = decode_extra_data(block.header.extra_data)
    assert (extra.validators, extra.round, extra.seals) == (VALIDATORS, 0, ())
    assert a.height == 0  # building does not persist
    assert decode_block(encode_block(block)).hash == block.hash
    assert a.block_digest(encode_block(block)) == block.hash


def test_validate_and_commit_on_two_ledgers(proposed):
    a, b, block, raw = proposed
    assert b.validate_block(1, VALIDATORS[0], raw) == block.hash
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[:3])
    assert seals == seals_for(b, raw, ROUND, SORTED_KEYS[:3])
    a.verify_seals(block, ROUND, seals)
    committed_a = a.commit(raw, ROUND, seals)
    committed_b = b.commit(raw, ROUND, seals)
    assert a.height == b.height == 1
    assert a.head.hash == b.head.hash == block.hash == committed_a.hash == committed_b.hash
    assert a.head.state_root == b.head.state_root == block.header.state_root
    for ledger in (a, b):
        state = ledger.chain.get_vm(ledger.head).state
        assert state.get_balance(RECIPIENT) == sum(1000 + n for n in range(N_TXS))
        assert state.get_nonce(FUNDED) == N_TXS
        assert ledger.chain.get_canonical_block_by_number(1).transactions[7].hash == block.transactions[7].hash
        assert ledger.validators(2) == VALIDATORS
        assert ledger.previous_proposer(2) == VALIDATORS[0]
    assert a.previous_proposer(1) is None


def test_full_extra_data_carries_round_and_seals(proposed):
    a, _, block, raw = proposed
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[:3])
    a.commit(raw, ROUND, seals)
    assert a.full_extra_data(block.header) != block.header.extra_data
    full = decode_extra_data(a.full_extra_data(a.head))
    assert full.round == ROUND
    assert full.seals == tuple(seals)
    assert full.validators == VALIDATORS
    # the stored header itself keeps round 0 and no seals so its hash is the QBFT block hash
    assert decode_extra_data(a.head.extra_data).seals == ()
    record = a.seal_record(block.hash)
    assert record is not None and record.round == ROUND and record.seals == tuple(seals)
    # a header without a seal record (genesis) is served unchanged
    assert a.full_extra_data(a.header_at(0)) == a.header_at(0).extra_data
    sealed = a.sealed_header_fields(a.head)
    assert sealed[12] == a.full_extra_data(a.head)
    assert sealed[:12] == list(rlp.decode(rlp.encode(a.head)))[:12]


def test_restart_keeps_height_head_and_seals(tmp_path, transfers):
    genesis = make_genesis()
    a = Ledger(tmp_path / "a", genesis)
    block = a.build_block(transfers[:3], VALIDATORS[0])
    raw = encode_block(block)
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[:3])
    a.commit(raw, ROUND, seals)
    head, root = a.head.hash, a.head.state_root
    a.close()
    reopened = Ledger(tmp_path / "a", genesis)
    try:
        assert reopened.height == 1
        assert reopened.head.hash == head
        assert reopened.head.state_root == root
        assert reopened.seal_record(head).seals == tuple(seals)
        assert reopened.chain.get_vm(reopened.head).state.get_nonce(FUNDED) == 3
        # and it keeps building on top
        nxt = reopened.build_block([sign_tx(FUNDED_KEY, 3)], VALIDATORS[1])
        assert nxt.number == 2 and nxt.header.parent_hash == head
    finally:
        reopened.close()


def test_second_block_extends_first(proposed, transfers):
    a, b, block, raw = proposed
    seals = seals_for(a, raw, 0, SORTED_KEYS[1:])
    a.commit(raw, 0, seals)
    b.commit(raw, 0, seals)  # b commits without having validated first: it checks and executes itself
    block2 = a.build_block([sign_tx(FUNDED_KEY, N_TXS)], VALIDATORS[1])
    raw2 = encode_block(block2)
    assert block2.header.timestamp > block.header.timestamp
    assert b.validate_block(2, VALIDATORS[1], raw2) == block2.hash
    b.commit(raw2, 0, seals_for(b, raw2, 0, SORTED_KEYS[:3]))
    assert b.height == 2 and b.head.hash == block2.hash


# ------------------------------------------------------------------ validate_block refusals
def test_validate_refuses_wrong_proposer(proposed):
    _, b, _, raw = proposed
    with pytest.raises(InvalidBlock, match="proposer"):
        b.validate_block(1, VALIDATORS[1], raw)


@pytest.mark.parametrize("height", [0, 2, 5])
def test_validate_refuses_wrong_height(proposed, height):
    _, b, _, raw = proposed
    with pytest.raises(InvalidBlock, match="block number"):
        b.validate_block(height, VALIDATORS[0], raw)


def test_validate_refuses_tampered_state_root(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock):
        b.validate_block(1, VALIDATORS[0], rebuild(block, state_root=b"\x12" * 32))
    assert b.height == 0
    # the untampered block is still fine afterwards
    assert b.validate_block(1, VALIDATORS[0], encode_block(block)) == block.hash


@pytest.mark.parametrize("field", ["gas_used", "receipt_root", "transaction_root"])
def test_validate_refuses_tampered_execution_fields(proposed, field):
    _, b, block, _ = proposed
    value = block.header.gas_used - 1 if field == "gas_used" else b"\x34" * 32
    with pytest.raises(InvalidBlock):
        b.validate_block(1, VALIDATORS[0], rebuild(block, **{field: value}))


def test_validate_refuses_dropped_transaction(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock):
        b.validate_block(1, VALIDATORS[0], encode_block(block.copy(transactions=block.transactions[:-1])))


def test_validate_refuses_nonzero_round(proposed):
    _, b, block, _ = proposed
    extra = encode_extra_data(ExtraData(validators=VALIDATORS, round=1), include_seals=False)
    with pytest.raises(InvalidBlock, match="round 0"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, extra_data=extra))


def test_validate_refuses_seals_in_proposal(proposed):
    _, b, block, _ = proposed
    extra = encode_extra_data(ExtraData(validators=VALIDATORS, seals=(seal(SORTED_KEYS[0], block.hash),)))
    with pytest.raises(InvalidBlock, match="no seals"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, extra_data=extra))


def test_validate_refuses_other_validator_set(proposed):
    _, b, block, _ = proposed
    extra = encode_extra_data(ExtraData(validators=VALIDATORS[:3]), include_round=False)
    with pytest.raises(InvalidBlock, match="validator set"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, extra_data=extra))


def test_validate_refuses_garbage_extra_data(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock, match="extraData"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, extra_data=b"\x01\x02"))


def test_validate_refuses_wrong_mix_hash(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock, match="mixHash"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, mix_hash=b"\x00" * 32))


def test_validate_refuses_wrong_parent(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock, match="head"):
        b.validate_block(1, VALIDATORS[0], rebuild(block, parent_hash=b"\x77" * 32))


def test_validate_refuses_future_timestamp(ledgers, transfers):
    a, b = ledgers("a"), ledgers("b")
    block = a.build_block(transfers[:2], VALIDATORS[0], timestamp=int(time.time()) + 3600)
    with pytest.raises(InvalidBlock, match="future"):
        b.validate_block(1, VALIDATORS[0], encode_block(block))


def test_validate_checks_proposer_even_for_a_block_it_built(proposed):
    a, _, _, raw = proposed
    with pytest.raises(InvalidBlock, match="proposer"):
        a.validate_block(1, VALIDATORS[1], raw)


def test_validate_refuses_malformed_bytes(ledgers):
    with pytest.raises(InvalidBlock, match="RLP"):
        ledgers("b").validate_block(1, VALIDATORS[0], b"\xc0\x01garbage")


def test_validate_refuses_unfunded_transaction(ledgers):
    a, b = ledgers("a"), ledgers("b")
    block = a.build_block([], VALIDATORS[0])
    # smuggle a transaction whose sender has no funds into an otherwise valid header
    bad = block.copy(transactions=[sign_tx(STRANGER_KEY, 0)])
    with pytest.raises(InvalidBlock):
        b.validate_block(1, VALIDATORS[0], encode_block(bad))
    assert b.height == 0


def test_commit_refuses_invalid_block_it_did_not_execute(proposed):
    _, b, block, _ = proposed
    with pytest.raises(InvalidBlock):
        b.commit(rebuild(block, state_root=b"\x12" * 32), 0, [])
    assert b.height == 0


# ------------------------------------------------------------------ seals
def test_verify_seals_accepts_quorum_and_all(proposed):
    a, _, block, raw = proposed
    a.verify_seals(block, ROUND, seals_for(a, raw, ROUND, SORTED_KEYS[:3]))
    a.verify_seals(block, ROUND, seals_for(a, raw, ROUND, SORTED_KEYS))
    a.verify_seals(block, ROUND, seals_for(a, raw, ROUND, SORTED_KEYS[1:]))


def test_verify_seals_refuses_below_quorum(proposed):
    a, _, block, raw = proposed
    with pytest.raises(InvalidBlock, match="quorum is 3"):
        a.verify_seals(block, ROUND, seals_for(a, raw, ROUND, SORTED_KEYS[:2]))
    with pytest.raises(InvalidBlock, match="quorum"):
        a.verify_seals(block, ROUND, [])


def test_verify_seals_refuses_non_validator(proposed):
    a, _, block, raw = proposed
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[:3] + [STRANGER_KEY])
    with pytest.raises(InvalidBlock, match="non-validator"):
        a.verify_seals(block, ROUND, seals)


def test_verify_seals_counts_duplicates_once(proposed):
    a, _, block, raw = proposed
    s0, s1, _, _ = seals_for(a, raw, ROUND, SORTED_KEYS)
    with pytest.raises(InvalidBlock, match="2 distinct seals"):
        a.verify_seals(block, ROUND, [s0, s0, s1])
    with pytest.raises(InvalidBlock, match="2 distinct seals"):
        a.verify_seals(block, ROUND, [s0, s1, s1, s0])
    # the same signature with v as 27/28 is other bytes but the same signer: still counted once
    s0_v27 = s0[:64] + bytes([s0[64] + 27])
    assert s0_v27 != s0
    with pytest.raises(InvalidBlock, match="2 distinct seals"):
        a.verify_seals(block, ROUND, [s0, s0_v27, s1])


def test_verify_seals_refuses_seals_of_other_round(proposed):
    a, _, block, raw = proposed
    seals = seals_for(a, raw, ROUND + 1, SORTED_KEYS[:3])
    with pytest.raises(InvalidBlock, match="non-validator"):
        a.verify_seals(block, ROUND, seals)


def test_verify_seals_refuses_malformed_seal(proposed):
    a, _, block, raw = proposed
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[:3])
    with pytest.raises(InvalidBlock):
        a.verify_seals(block, ROUND, seals[:2] + [seals[2][:64]])
    with pytest.raises(InvalidBlock):
        a.verify_seals(block, ROUND, seals[:2] + [b"\x00" * 65])


def test_seal_hash_per_round_recovers_signer(proposed):
    a, _, block, raw = proposed
    hashes = {a.seal_hash(raw, r) for r in range(5)}
    assert len(hashes) == 5
    assert block.hash not in {a.seal_hash(raw, r) for r in range(1, 5)}
    assert a.seal_hash(raw, 0) == block.hash  # round 0 and no seals: exactly the block hash
    digest = a.seal_hash(raw, 3)
    for key in SORTED_KEYS:
        assert recover_seal_signer(digest, seal(key, digest)) == key.public_key.to_canonical_address()
        assert recover_seal_signer(a.seal_hash(raw, 4), seal(key, digest)) != key.public_key.to_canonical_address()


# ------------------------------------------------------------------ import
def test_import_sealed_on_fresh_ledger(proposed, ledgers):
    a, b, block, raw = proposed
    seals = seals_for(a, raw, ROUND, SORTED_KEYS[1:])
    a.commit(raw, ROUND, seals)
    c = ledgers("c")
    imported = c.import_sealed(raw, ROUND, seals)
    assert imported.hash == block.hash
    assert c.height == 1 and c.head.hash == a.head.hash and c.head.state_root == a.head.state_root
    assert c.full_extra_data(c.head) == a.full_extra_data(a.head)


def test_import_sealed_refuses_bad_seals_and_keeps_height(proposed):
    a, b, _, raw = proposed
    with pytest.raises(InvalidBlock, match="quorum"):
        b.import_sealed(raw, ROUND, seals_for(a, raw, ROUND, SORTED_KEYS[:2]))
    with pytest.raises(InvalidBlock, match="non-validator"):
        b.import_sealed(raw, ROUND + 1, seals_for(a, raw, ROUND, SORTED_KEYS[:3]))
    assert b.height == 0
    assert b.seal_record(decode_block(raw).hash) is None


def test_import_sealed_refuses_tampered_block(proposed):
    a, b, block, raw = proposed
    tampered = rebuild(block, state_root=b"\x12" * 32)
    with pytest.raises(InvalidBlock):
        b.import_sealed(tampered, ROUND, seals_for(a, tampered, ROUND, SORTED_KEYS[:3]))
    assert b.height == 0
