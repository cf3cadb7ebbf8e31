"""Deterministic keys, genesis, signed transactions and seals shared by the ledger tests."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from eth.abc import SignedTransactionAPI
from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from ledger.chain import GenesisConfig, Ledger, encode_block

CHAIN_ID = 1337
GENESIS_TIMESTAMP = 1_700_000_000
GWEI = 10**9

VALIDATOR_KEYS = [keys.PrivateKey(keccak(b"v%d" % i)) for i in range(4)]
VALIDATORS = tuple(sorted(k.public_key.to_canonical_address() for k in VALIDATOR_KEYS))
KEY_BY_ADDRESS = {k.public_key.to_canonical_address(): k for k in VALIDATOR_KEYS}
#: validator keys in the sorted order of their addresses
SORTED_KEYS = [KEY_BY_ADDRESS[a] for a in VALIDATORS]

FUNDED_KEY = keys.PrivateKey(keccak(b"funded"))
FUNDED = FUNDED_KEY.public_key.to_canonical_address()
FUNDED_BALANCE = 10**24
POOR_KEY = keys.PrivateKey(keccak(b"poor"))
POOR = POOR_KEY.public_key.to_canonical_address()
POOR_BALANCE = 1_000
STRANGER_KEY = keys.PrivateKey(keccak(b"stranger"))
STRANGER = STRANGER_KEY.public_key.to_canonical_address()
RECIPIENT = bytes.fromhex("11" * 20)


def make_genesis(chain_id: int = CHAIN_ID, **overrides) -> GenesisConfig:
    params = dict(
        chain_id=chain_id, validators=VALIDATORS, alloc={FUNDED: FUNDED_BALANCE, POOR: POOR_BALANCE},
        timestamp=GENESIS_TIMESTAMP,
    )
    params.update(overrides)
    return GenesisConfig(**params)


def sign_raw(
    key: keys.PrivateKey, nonce: int, to: bytes | None = RECIPIENT, value: int = 1, gas: int = 21_000,
    data: bytes = b"", chain_id: int = CHAIN_ID, max_fee: int = 2 * GWEI, tip: int = 0,
) -> bytes:
    """Raw bytes of a signed EIP-1559 transaction (eth_account)."""
    tx = {
        "type": 2, "chainId": chain_id, "nonce": nonce, "value": value, "gas": gas, "data": data,
        "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(tx, key.to_bytes()).raw_transaction)


def sign_tx(key: keys.PrivateKey, nonce: int, **kwargs) -> SignedTransactionAPI:
    """A signed EIP-1559 transaction decoded by py-evm."""
    return ShanghaiTransactionBuilder.decode(sign_raw(key, nonce, **kwargs))


def seal(key: keys.PrivateKey, digest: bytes) -> bytes:
    """65-byte commit seal r || s || v (v in {0, 1})."""
    return key.sign_msg_hash(digest).to_bytes()


def seals_for(ledger: Ledger, block_raw: bytes, round_: int, signers: Sequence[keys.PrivateKey]) -> list[bytes]:
    digest = ledger.seal_hash(block_raw, round_)
    return [seal(k, digest) for k in signers]


def build_and_commit(
    ledger: Ledger, txs: Sequence[SignedTransactionAPI], round_: int = 0, proposer: bytes = VALIDATORS[0],
) -> bytes:
    """Build a block on ``ledger``, commit it with 3 of 4 seals, return its RLP bytes."""
    block = ledger.build_block(list(txs), proposer)
    raw = encode_block(block)
    ledger.commit(raw, round_, seals_for(ledger, raw, round_, SORTED_KEYS[:3]))
    return raw


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
