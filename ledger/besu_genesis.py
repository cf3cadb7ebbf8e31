"""Our genesis as Hyperledger Besu reads it (``traceledger network export-genesis``).

Mapping (Besu's genesis file reference, ``config.qbft``):

=======================================  ==========================================================
TraceLedger                              Besu genesis JSON
=======================================  ==========================================================
``GenesisConfig.chain_id``               ``config.chainId``
node ``block_period_s`` (seconds)        ``config.qbft.blockperiodseconds`` (integer seconds, >= 1)
node ``request_timeout_s`` (seconds)     ``config.qbft.requesttimeoutseconds`` (integer, >= 1)
``GenesisConfig.epoch_length`` (blocks)  ``config.qbft.epochlength``
Shanghai VM from block 0                 every milestone through ``londonBlock`` at 0, ``shanghaiTime`` 0
``GenesisConfig.validators``             ``extraData`` = RLP([32 zero bytes, validators, [], 0, []])
``alloc`` (wei)                          ``alloc`` (``{"balance": "0x…"}``)
``timestamp``, ``gas_limit``,            ``timestamp``, ``gasLimit``, ``baseFeePerGas`` (hex)
``base_fee``
(constant)                               ``mixHash`` = the BFT mix hash, ``nonce`` 0, ``coinbase`` 0,
                                         ``difficulty`` 1 (Besu's QBFT headers carry 1)
=======================================  ==========================================================

The exported file starts a Besu QBFT network with the same chain id, validators, allocations and
timing. It does not reproduce our genesis *hash*: our headers carry difficulty 0 (py-evm's rule from
Paris on) where Besu's carry 1, so a Besu node cannot join our running chain; contracts deployed
after genesis are redeployed (their addresses follow from the admin's nonces 0…3 on either chain).
"""

from __future__ import annotations

import math
from typing import Any

from ledger.chain import GenesisConfig
from provenance.qbft_header import BFT_MIX_HASH, ExtraData, encode_extra_data

#: Milestones Besu activates at block 0 for a chain that runs the Shanghai rules from genesis.
_BLOCK_MILESTONES = (
    "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock", "constantinopleBlock",
    "petersburgBlock", "istanbulBlock", "muirGlacierBlock", "berlinBlock", "londonBlock",
)


def besu_genesis(genesis: GenesisConfig, *, block_period_s: float, request_timeout_s: float) -> dict[str, Any]:
    """A Besu-loadable QBFT genesis document (a JSON-able dict) for ``genesis``.

    Besu's QBFT timings are whole seconds: ``block_period_s`` and ``request_timeout_s`` are rounded
    up (a 0.5 s period becomes 1 s). Raises ``ValueError`` for a non-positive period or timeout.
    """
    if block_period_s <= 0 or request_timeout_s <= 0:
        raise ValueError("block period and request timeout must be positive (seconds)")
    config: dict[str, Any] = {"chainId": genesis.chain_id}
    config.update({name: 0 for name in _BLOCK_MILESTONES})
    config["shanghaiTime"] = 0
    config["qbft"] = {
        "blockperiodseconds": max(1, math.ceil(block_period_s)),
        "epochlength": genesis.epoch_length,
        "requesttimeoutseconds": max(1, math.ceil(request_timeout_s)),
    }
    extra = encode_extra_data(ExtraData(validators=tuple(sorted(genesis.validators))))
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(genesis.timestamp),
        "gasLimit": hex(genesis.gas_limit),
        "difficulty": "0x1",
        "baseFeePerGas": hex(genesis.base_fee),
        "mixHash": "0x" + BFT_MIX_HASH.hex(),
        "coinbase": "0x" + "00" * 20,
        "extraData": "0x" + extra.hex(),
        "alloc": {a.hex(): {"balance": hex(wei)} for a, wei in sorted(genesis.alloc.items())},
    }
