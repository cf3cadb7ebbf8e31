"""An eth-tester (py-evm Shanghai) chain with the shipped contracts deployed as on the network.

The admin deploys every contract of ``CONTRACT_NAMES`` (EnterpriseRegistry, AnchorRegistry, WorkTicket,
ReceivableToken, PriceIndex, …) with its nonces 0, 1, … (the addresses the validators and the API expect),
from the committed artifacts
(``contracts/build``). Named accounts have known private keys (for EIP-712 signatures) and are
funded by the tester's first account. Reverts are read as raw custom-error data.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth.vm.forks import ShanghaiVM
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from api.chain import decode_revert
from contracts import CONTRACT_NAMES, load_artifact
from ledger.node import contract_address

from .conftest import _revert_data

MANUFACTURER, SUPPLIER, CORE, BANK, AUDITOR, REGULATOR = 1, 2, 4, 8, 16, 32
WAREHOUSE, PRICE_PUBLISHER = 64, 128
ISSUER, PERMITTER, LEADER, CREW = 1, 2, 4, 8
CNY = b"CNY"
YUAN = 100
GAS = 8_000_000


class World:
    """Contracts, named accounts and helpers on one eth-tester chain."""

    def __init__(self) -> None:
        self.tester = EthereumTester(PyEVMBackend(vm_configuration=((0, ShanghaiVM),)))
        self.w3 = Web3(Web3.EthereumTesterProvider(self.tester))
        self.funder = self.w3.eth.accounts[0]
        self.keys: dict[str, bytes] = {}
        self.acct: dict[str, str] = {}
        self.admin = self.account("admin")
        self.c: dict[str, Any] = {}
        for nonce, name in enumerate(CONTRACT_NAMES):
            art = load_artifact(name)
            factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
            args = ([self.admin],) if name == "EnterpriseRegistry" else (self.c["EnterpriseRegistry"].address,)
            receipt = self.do(self.admin, factory.constructor(*args))
            expected = to_checksum_address(contract_address(bytes.fromhex(self.admin[2:]), nonce))
            assert receipt.contractAddress == expected, f"{name} not at the admin's nonce-{nonce} address"
            self.c[name] = self.w3.eth.contract(address=receipt.contractAddress, abi=art["abi"])
        self.reg = self.c["EnterpriseRegistry"]
        self.anchors = self.c["AnchorRegistry"]
        self.wt = self.c["WorkTicket"]
        self.rt = self.c["ReceivableToken"]
        self.wr = self.c["WarehouseReceipt"]
        self.wr = self.c["WarehouseReceipt"]
        self.pi = self.c["PriceIndex"]

    # ------------------------------------------------------------------ accounts
    def account(self, name: str) -> str:
        """A funded account with a deterministic private key (keccak of the name)."""
        if name in self.acct:
            return self.acct[name]
        key = keccak(text=f"traceledger-test:{name}")
        address = self.tester.add_account("0x" + key.hex())
        self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_transaction({"from": self.funder, "to": address, "value": 10**21}))
        self.keys[name] = key
        self.acct[name] = to_checksum_address(address)
        return self.acct[name]

    def enterprise(self, name: str, roles: int, prefix: str) -> str:
        """Register ``name`` as an active enterprise (admin transaction)."""
        a = self.account(name)
        self.do(self.admin, self.reg.functions.registerEnterprise(a, name, roles, prefix))
        return a

    def person_call(self, enterprise: str, person: str, roles: int, qualification: str = "",
                    signer: str | None = None, deadline: int | None = None) -> Any:
        """``registerPerson`` call for accounts ``enterprise`` / ``person`` (names), signed by ``signer``
        (default: the person itself, i.e. a valid proof of possession)."""
        from provenance.work_tickets import person_registration_typed_data, sign_typed

        deadline = deadline if deadline is not None else self.now() + 3600
        typed = person_registration_typed_data(
            chain_id=self.w3.eth.chain_id, contract=self.reg.address, enterprise=self.acct[enterprise],
            person=self.account(person), roles=roles, qualification=qualification, deadline=deadline)
        signature = sign_typed(self.keys[signer or person], typed)
        return self.reg.functions.registerPerson(self.acct[enterprise], self.acct[person], roles, qualification,
                                                 deadline, signature)

    def person(self, enterprise: str, person: str, roles: int, qualification: str = "") -> str:
        """Register ``person`` under ``enterprise`` (sent by the enterprise, signed by the person)."""
        self.do(self.acct[enterprise], self.person_call(enterprise, person, roles, qualification))
        return self.acct[person]

    # ------------------------------------------------------------------ transactions
    def do(self, sender: str, fn: Any) -> Any:
        """Transact ``fn`` from ``sender``; assert success; return the receipt."""
        tx_hash = fn.transact({"from": sender, "gas": GAS})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt.status == 1
        return receipt

    def refused(self, fn: Any, sender: str, error: str) -> str:
        """``fn`` from ``sender`` must revert with custom error ``error`` (never a Panic); returns its text."""
        data = fn.build_transaction({"from": sender, "gas": GAS})["data"]
        with pytest.raises(TransactionFailed) as info:
            self.tester.call({"from": sender, "to": fn.address, "data": data, "gas": GAS})
        name, text = decode_revert(_revert_data(info.value))
        assert name == error, f"expected {error}, reverted with {text}"
        return text

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, timestamp: int) -> None:
        """Make the next block's timestamp ``timestamp`` (unix seconds)."""
        self.tester.time_travel(timestamp)

    def key_of(self, address: str) -> bytes:
        for name, a in self.acct.items():
            if a == address:
                return self.keys[name]
        raise KeyError(address)


def sign_as(world: World, name: str, digest: bytes) -> bytes:
    """65-byte r||s||v signature of a 32-byte digest by account ``name``."""
    signed = Account._sign_hash(digest, world.keys[name])  # noqa: SLF001 - raw digest signing for EIP-712 tests
    return bytes(signed.signature)
