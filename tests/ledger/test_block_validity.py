"""Block validity a Byzantine proposer cannot slip past (issue 19): each crafted block is refused on the
proposal path (``Ledger.validate_block``, what consensus calls for a PROPOSAL) **and** on the sync path
(``CatchUpSync.import_response`` -> ``Ledger.import_sealed`` with a quorum of genuine commit seals); the
peer that sent it is penalised and no exception escapes. Where a rule can be switched off, the same block
is shown to be accepted without it (so the test proves the rule, not some other refusal)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth.vm.forks.shanghai.withdrawals import Withdrawal
from eth_account import Account
from prometheus_client import CollectorRegistry

from ledger.chain import MAX_FUTURE_BLOCK_S, Ledger, decode_block, encode_block
from ledger.consensus.errors import InvalidBlock
from ledger.sync import PENALTY_S, CatchUpSync
from tests.ledger.helpers import (
    CHAIN_ID,
    FUNDED,
    FUNDED_KEY,
    GENESIS_TIMESTAMP,
    RECIPIENT,
    SORTED_KEYS,
    STRANGER,
    STRANGER_KEY,
    VALIDATORS,
    make_genesis,
    seals_for,
    sign_raw,
    sign_tx,
)

PEER = b"\x42" * 20
KIND_REQ, KIND_RESP = 3, 4


class FakeTransport:
    """Records sends; one connected peer."""

    def __init__(self) -> None:
        self.peers = {PEER}
        self.sent: list[tuple[bytes, int, bytes]] = []

    def send(self, peer: bytes, kind: int, body: bytes) -> None:
        self.sent.append((peer, kind, body))


@pytest.fixture
def ledgers(tmp_path):
    opened: list[Ledger] = []

    def open_ledger(name: str, **kwargs: Any) -> Ledger:
        ledger = Ledger(tmp_path / name, kwargs.pop("genesis", None) or make_genesis(), **kwargs)
        opened.append(ledger)
        return ledger

    yield open_ledger
    for ledger in opened:
        ledger.close()


def make_sync(ledger: Ledger) -> tuple[CatchUpSync, FakeTransport, list[int], list[str]]:
    transport = FakeTransport()
    imported: list[int] = []
    dropped: list[str] = []
    sync = CatchUpSync("test", ledger, transport, request_kind=KIND_REQ, response_kind=KIND_RESP,
                       on_imported=imported.append, on_dropped=dropped.append, metrics=CollectorRegistry())
    return sync, transport, imported, dropped


def sealed_item(builder: Ledger, raw: bytes, round_: int = 0) -> list[Any]:
    return [raw, round_, seals_for(builder, raw, round_, SORTED_KEYS[:3])]


def assert_refused_on_both_paths(
    follower: Callable[[], Ledger], builder: Ledger, raw: bytes, proposer: bytes, match: str, round_: int = 0,
) -> None:
    """Proposal path and sync path (two followers at the same height) both refuse ``raw``."""
    number = decode_block(raw).number
    proposal_side = follower()
    with pytest.raises(InvalidBlock, match=match):
        proposal_side.validate_block(number, proposer, raw)
    assert proposal_side.height == number - 1
    sync_side = follower()
    with pytest.raises(InvalidBlock, match=match):
        sync_side.import_sealed(raw, round_, seals_for(builder, raw, round_, SORTED_KEYS[:3]))
    sync, transport, imported, dropped = make_sync(sync_side)
    sync.request(PEER)
    assert sync.import_response(PEER, rlp.encode([sealed_item(builder, raw, round_)])) == 0
    assert sync_side.height == number - 1 and imported == []
    assert not sync.usable(PEER) and "bad synced block" in dropped  # the sending peer is penalised


# ------------------------------------------------------------------------------------------ withdrawals
def build_with_withdrawal(ledger: Ledger, amount_gwei: int) -> bytes:
    """What a Byzantine proposer would build: a valid Shanghai block minting balance by a withdrawal."""
    header = ledger.new_header(VALIDATORS[0])
    vm = ledger.chain.get_vm(header)
    new_header, receipts, _ = vm.apply_all_transactions([], header)
    withdrawal = Withdrawal(index=0, validator_index=0, address=STRANGER, amount=amount_gwei)
    vm.apply_all_withdrawals([withdrawal])
    block = vm.set_block_transactions_and_withdrawals(vm.get_block(), new_header, [], receipts,
                                                      withdrawals=[withdrawal])
    return encode_block(vm.mine_block(block).block)


def test_withdrawal_minting_balance_is_refused_on_both_paths(ledgers, monkeypatch) -> None:
    builder = ledgers("builder")
    raw = build_with_withdrawal(builder, 10**15)  # 1,000,000 ETH in gwei to an outsider
    assert decode_block(raw).withdrawals
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}"), builder, raw, VALIDATORS[0], "withdrawals")
    # control: without the rule the block executes and the money appears (what issue 19 observed)
    monkeypatch.setattr(Ledger, "_check_body", lambda self, block: None)
    lenient = ledgers("lenient")
    lenient.import_sealed(raw, 0, seals_for(builder, raw, 0, SORTED_KEYS[:3]))
    assert lenient.chain.get_vm(lenient.head).state.get_balance(STRANGER) == 10**24


# ---------------------------------------------------------------------------------- unpermitted sender
def test_unpermitted_sender_is_refused_on_both_paths(ledgers, monkeypatch) -> None:
    builder = ledgers("builder")
    fund = sign_tx(FUNDED_KEY, 0, to=STRANGER, value=10**18)  # the stranger now has funds, not a permit
    raw1 = encode_block(builder.build_block([fund], VALIDATORS[0], timestamp=GENESIS_TIMESTAMP + 1))
    builder.commit(raw1, 0, seals_for(builder, raw1, 0, SORTED_KEYS[:3]))
    block2 = builder.build_block([sign_tx(STRANGER_KEY, 0, value=5)], VALIDATORS[1], timestamp=GENESIS_TIMESTAMP + 2)
    raw2 = encode_block(block2)
    assert not builder.is_permitted_sender(STRANGER) and builder.is_permitted_sender(FUNDED)

    def follower_at_1(name: str) -> Ledger:
        ledger = ledgers(name)
        ledger.import_sealed(raw1, 0, seals_for(builder, raw1, 0, SORTED_KEYS[:3]))
        return ledger

    names = iter(range(100))
    assert_refused_on_both_paths(lambda: follower_at_1(f"f{next(names)}"), builder, raw2, VALIDATORS[1],
                                 "not permitted to transact")
    monkeypatch.setattr(Ledger, "is_permitted_sender", lambda self, sender, parent=None: True)
    assert follower_at_1("lenient").validate_block(2, VALIDATORS[1], raw2) == block2.hash


def test_registry_without_code_permits_only_genesis_accounts(ledgers) -> None:
    ledger = ledgers("r", registry=b"\x99" * 20)
    assert ledger.is_permitted_sender(FUNDED)
    assert not ledger.is_permitted_sender(STRANGER)  # the call returns no data: not permitted


# -------------------------------------------------------------------------------------------- chain id
def legacy_raw_without_chain_id(nonce: int) -> bytes:
    tx = {"nonce": nonce, "gasPrice": 2 * 10**9, "gas": 21_000, "to": "0x" + RECIPIENT.hex(), "value": 1,
          "data": b""}
    return bytes(Account.sign_transaction(tx, FUNDED_KEY.to_bytes()).raw_transaction)


@pytest.mark.parametrize("kind", ["foreign chain 1", "foreign chain 1338", "legacy without chain id"])
def test_foreign_or_missing_chain_id_is_refused_on_both_paths(ledgers, monkeypatch, kind: str) -> None:
    builder = ledgers("builder")
    if kind.startswith("foreign"):
        raw_tx = sign_raw(FUNDED_KEY, 0, chain_id=int(kind.split()[-1]))
    else:
        raw_tx = legacy_raw_without_chain_id(0)
    tx = ShanghaiTransactionBuilder.decode(raw_tx)
    assert getattr(tx, "chain_id", None) != CHAIN_ID
    block = builder.build_block([tx], VALIDATORS[0])  # py-evm executes it: it does not check chain ids
    raw = encode_block(block)
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}"), builder, raw, VALIDATORS[0], "chain id")
    monkeypatch.setattr(Ledger, "check_chain_id", lambda self, tx: None)
    assert ledgers("lenient").validate_block(1, VALIDATORS[0], raw) == block.hash


# ------------------------------------------------------------------------------------------- timestamps
def test_backdated_block_is_refused_on_both_paths(ledgers) -> None:
    builder = ledgers("builder")  # a Byzantine proposer ignoring the 5 s block period of the network
    raw = encode_block(builder.build_block([], VALIDATORS[0], timestamp=GENESIS_TIMESTAMP + 2))
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}", block_period_s=5.0), builder, raw,
                                 VALIDATORS[0], "before parent timestamp")
    assert ledgers("ok", block_period_s=2.0).validate_block(1, VALIDATORS[0], raw)  # exactly parent + period


def test_future_block_is_refused_on_both_paths(ledgers) -> None:
    now = float(int(time.time()))
    builder = ledgers("builder")
    raw = encode_block(builder.build_block([], VALIDATORS[0], timestamp=int(now) + MAX_FUTURE_BLOCK_S + 1))
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}", clock=lambda: now), builder, raw,
                                 VALIDATORS[0], "future")
    assert ledgers("later", clock=lambda: now + 2).validate_block(1, VALIDATORS[0], raw)


def test_honest_builder_respects_the_period(ledgers) -> None:
    builder = ledgers("builder", block_period_s=3.0)
    block = builder.build_block([], VALIDATORS[0], timestamp=GENESIS_TIMESTAMP)  # asks for "too early"
    assert block.header.timestamp == GENESIS_TIMESTAMP + 3


# ------------------------------------------------------------------------------------------ coinbase
def test_coinbase_must_be_a_proposer_of_the_sealed_round(ledgers) -> None:
    builder = ledgers("builder")
    raw = encode_block(builder.build_block([], VALIDATORS[2]))  # round-0 proposer of height 1 is VALIDATORS[0]
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}"), builder, raw, VALIDATORS[0], "coinbase")
    # sealed in round 1: still not VALIDATORS[2]'s round (proposers of rounds 0 and 1 are V0 and V1)
    with pytest.raises(InvalidBlock, match="coinbase"):
        ledgers("r1").import_sealed(raw, 1, seals_for(builder, raw, 1, SORTED_KEYS[:3]))
    # sealed in round 2: VALIDATORS[2] proposed it there (or re-proposes a block prepared earlier)
    assert ledgers("r2").import_sealed(raw, 2, seals_for(builder, raw, 2, SORTED_KEYS[:3])).number == 1


# ----------------------------------------------------------------------------------------- gas limit
def test_honest_proposers_steer_the_gas_limit_back_to_the_target(ledgers) -> None:
    byzantine = ledgers("byzantine", target_gas_limit=21_000)  # pushes the limit down as fast as allowed
    honest = ledgers("honest")  # target = genesis gas limit (60 M)
    parent = byzantine.head.gas_limit
    raw1 = encode_block(byzantine.build_block([], VALIDATORS[0], timestamp=GENESIS_TIMESTAMP + 1))
    lowered = decode_block(raw1).header.gas_limit
    assert lowered == parent - (parent // 1024 - 1)
    honest.import_sealed(raw1, 0, seals_for(byzantine, raw1, 0, SORTED_KEYS[:3]))  # a legal step
    block2 = honest.build_block([], VALIDATORS[1], timestamp=GENESIS_TIMESTAMP + 2)
    assert block2.header.gas_limit == min(parent, lowered + (lowered // 1024 - 1))
    assert block2.header.gas_limit > lowered
    steady = ledgers("steady")
    assert steady.build_block([], VALIDATORS[0]).header.gas_limit == steady.head.gas_limit  # at target: unchanged


def test_gas_limit_jump_is_refused_on_both_paths(ledgers) -> None:
    builder = ledgers("builder")
    block = builder.build_block([], VALIDATORS[0])
    raw = encode_block(block.copy(header=block.header.copy(gas_limit=block.header.gas_limit // 2)))
    names = iter(range(100))
    assert_refused_on_both_paths(lambda: ledgers(f"f{next(names)}"), builder, raw, VALIDATORS[0], "gas limit")


# ------------------------------------------------------------------------------ malformed sync responses
@pytest.mark.parametrize("body_kind", [
    "not rlp", "not a list", "item not a list", "item too short", "round not bytes", "seal too short",
    "seals not a list", "block junk", "out of order", "bad seals",
])
def test_malformed_sync_items_are_refused_without_exception_and_peer_penalised(ledgers, body_kind: str) -> None:
    builder = ledgers("builder")
    raws = []
    for k in range(3):
        raw = encode_block(builder.build_block([], next(iter(builder.proposers_for(k + 1, 0))),
                                               timestamp=GENESIS_TIMESTAMP + k + 1))
        builder.commit(raw, 0, seals_for(builder, raw, 0, SORTED_KEYS[:3]))
        raws.append(raw)
    good = [sealed_item(builder, raws[0])]
    bad: Any = {
        "not rlp": None, "not a list": b"\x05", "item not a list": [b"x"], "item too short": [[raws[1], 0]],
        "round not bytes": [[raws[1], [1], []]], "seal too short": [[raws[1], 0, [b"\x01" * 64]]],
        "seals not a list": [[raws[1], 0, b"x"]], "block junk": [[b"\x01\x02", 0, []]],
        "out of order": [sealed_item(builder, raws[2])], "bad seals": [[raws[1], 0, [b"\x00" * 65] * 3]],
    }[body_kind]
    body = b"\xff\x00garbage" if bad is None else rlp.encode(good + bad if isinstance(bad, list) else bad)
    follower = ledgers("follower")
    sync, _, imported, dropped = make_sync(follower)
    sync.request(PEER)
    count = sync.import_response(PEER, body)  # must not raise
    if isinstance(bad, list):
        assert count == 1 and follower.height == 1 and imported == [1]  # what came before stays imported
    else:
        assert count == 0 and follower.height == 0
    assert not sync.usable(PEER) and dropped
    # while penalised, the peer is neither heard nor asked
    sync.request(force=True)
    assert sync.import_response(PEER, rlp.encode([sealed_item(builder, raws[1])])) == 0
    assert "sync response from penalised peer" in dropped
    sync.clock = lambda: time.monotonic() + PENALTY_S + 1
    assert sync.usable(PEER)


def test_an_exception_inside_import_never_escapes(ledgers, monkeypatch) -> None:
    builder = ledgers("builder")
    raw = encode_block(builder.build_block([], VALIDATORS[0]))
    builder.commit(raw, 0, seals_for(builder, raw, 0, SORTED_KEYS[:3]))
    follower = ledgers("follower")
    sync, _, _, dropped = make_sync(follower)

    def explode(*args: Any) -> None:
        raise RuntimeError("py-evm surprise")

    monkeypatch.setattr(follower, "import_sealed", explode)
    sync.request(PEER)
    assert sync.import_response(PEER, rlp.encode([sealed_item(builder, raw)])) == 0
    assert not sync.usable(PEER) and "bad synced block" in dropped


def test_unsolicited_sync_response_is_dropped(ledgers) -> None:
    builder = ledgers("builder")
    raw = encode_block(builder.build_block([], VALIDATORS[0]))
    builder.commit(raw, 0, seals_for(builder, raw, 0, SORTED_KEYS[:3]))
    follower = ledgers("follower")
    sync, transport, imported, dropped = make_sync(follower)
    assert sync.import_response(PEER, rlp.encode([sealed_item(builder, raw)])) == 0
    assert dropped == ["unsolicited sync response"] and follower.height == 0
    sync.request(PEER)
    assert transport.sent and transport.sent[-1][1] == KIND_REQ
    assert sync.import_response(PEER, rlp.encode([sealed_item(builder, raw)])) == 1 and imported == [1]


# --------------------------------------------------------------------- permissioning through the registry
def _call_data(signature: str, types: list[str], args: list[Any]) -> bytes:
    from eth_abi import encode
    from eth_utils import keccak

    return keccak(text=signature)[:4] + encode(types, args)


def test_registry_permission_is_read_at_the_parent_state_and_follows_revocation(ledgers) -> None:
    """EnterpriseRegistry deployed by a genesis account: a registered enterprise may send from the next
    block on; once deactivated its transactions are refused from the following block (no stale cache);
    a block that deactivates it may still carry its transaction (permitted at that block's parent)."""
    from eth_abi import encode

    from contracts import load_artifact
    from ledger.node import contract_address

    registry = contract_address(FUNDED, 0)
    artifact = load_artifact("EnterpriseRegistry")
    deploy = bytes.fromhex(artifact["bytecode"].removeprefix("0x")) + encode(["address[]"], [[FUNDED]])
    builder = ledgers("builder", registry=registry)
    follower = ledgers("follower", registry=registry)
    ts = iter(range(GENESIS_TIMESTAMP + 1, GENESIS_TIMESTAMP + 100))
    proposers = iter([VALIDATORS[(h - 1) % 4] for h in range(1, 20)])

    def block_of(txs: list[Any]) -> bytes:
        return encode_block(builder.build_block(txs, next(proposers), timestamp=next(ts)))

    def commit_both(raw: bytes) -> None:
        seals = seals_for(builder, raw, 0, SORTED_KEYS[:3])
        builder.commit(raw, 0, seals)
        follower.import_sealed(raw, 0, seals)

    commit_both(block_of([sign_tx(FUNDED_KEY, 0, to=None, data=deploy, gas=8_000_000, value=0)]))
    assert builder.chain.get_vm(builder.head).state.get_code(registry)
    register = _call_data("registerEnterprise(address,string,uint32,string)", ["address", "string", "uint32", "string"],
                          [STRANGER, "Stranger Steel", 1, "88.101.9"])
    commit_both(block_of([sign_tx(FUNDED_KEY, 1, to=registry, data=register, gas=1_000_000, value=0),
                          sign_tx(FUNDED_KEY, 2, to=STRANGER, value=10**18)]))
    assert follower.is_permitted_sender(STRANGER)
    commit_both(block_of([sign_tx(STRANGER_KEY, 0, value=1)]))  # a permitted enterprise account
    deactivate = _call_data("setActive(address,bool)", ["address", "bool"], [STRANGER, False])
    # same block: the deactivation and the enterprise's transaction (permitted at the parent state)
    commit_both(block_of([sign_tx(FUNDED_KEY, 3, to=registry, data=deactivate, gas=200_000, value=0),
                          sign_tx(STRANGER_KEY, 1, value=1)]))
    assert not follower.is_permitted_sender(STRANGER)
    raw = block_of([sign_tx(STRANGER_KEY, 2, value=1)])
    with pytest.raises(InvalidBlock, match="not permitted"):
        follower.validate_block(follower.height + 1, decode_block(raw).header.coinbase, raw)
