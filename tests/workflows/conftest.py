"""The workflow tests run on the session's shared network (``shared_stack`` in tests/conftest.py): four QBFT
validator processes, all five contracts, the API process.

The test modules share one chain (startup costs tens of seconds on a loaded machine). The
helpers send web3.py transactions with explicit nonces so that independent transactions land in
the same block (block period 1 s), and read refusals (custom errors) through ``eth_call``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from api.chain import decode_revert, revert_data_of
from api.devnet import Stack
from contracts import load_artifact
from provenance.work_tickets import person_registration_typed_data, sign_typed

pytestmark = pytest.mark.integration

GAS = 3_000_000
MAX_FEE = 50 * 10**9
TIP = 10**9


@pytest.fixture(scope="package")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared network; every workflow test registers its own enterprises and accounts."""
    return shared_stack


@pytest.fixture(scope="package")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url(), timeout=120) as client:
        yield client


class Chain:
    """web3.py over the validator's JSON-RPC with batching helpers."""

    def __init__(self, stack: Stack) -> None:
        assert stack.spec is not None
        self.spec = stack.spec
        self.w3 = Web3(Web3.HTTPProvider(stack.spec.rpc_urls[0], request_kwargs={"timeout": 30}))
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.admin = Account.from_key(stack.spec.admin_key())
        self.nonces: dict[str, int] = {}
        self.registry = self.contract("EnterpriseRegistry", stack.spec.enterprise_registry)
        self.tickets = self.contract("WorkTicket", stack.spec.work_ticket)
        self.receivables = self.contract("ReceivableToken", stack.spec.receivable_token)

    def contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=load_artifact(name)["abi"])

    def _nonce(self, address: str) -> int:
        """The next nonce of ``address``: one past the last one this object used, or the node's pending count when
        that is higher (the API process sends from the admin account too, e.g. when it registers an enterprise)."""
        n = max(self.nonces.get(address, 0), self.w3.eth.get_transaction_count(address, "pending"))
        self.nonces[address] = n + 1
        return n

    def submit(self, account: Any, fn: Any = None, **tx: Any) -> bytes:
        """Sign and send without waiting; returns the tx hash."""
        base = {"from": account.address, "nonce": self._nonce(account.address), "gas": GAS,
                "maxFeePerGas": MAX_FEE, "maxPriorityFeePerGas": TIP, "chainId": self.spec.chain_id}
        if fn is not None:
            built = fn.build_transaction({**base, **tx})
        else:
            built = {**base, "gas": 21_000, **tx}
            built.pop("from")
        signed = account.sign_transaction(built)
        try:
            return self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception:
            self.nonces.pop(account.address, None)
            raise

    def wait(self, *hashes: bytes, timeout: float = 60) -> list[Any]:
        receipts = [self.w3.eth.wait_for_transaction_receipt(h, timeout=timeout, poll_latency=0.1) for h in hashes]
        for r in receipts:
            assert r.status == 1, f"transaction {r.transactionHash.hex()} reverted"
        return receipts

    def do(self, account: Any, fn: Any) -> Any:
        """Send one transaction and wait for its receipt."""
        return self.wait(self.submit(account, fn))[0]

    def new_accounts(self, n: int, fund_wei: int = 100 * 10**18) -> list[Any]:
        accounts = [Account.create() for _ in range(n)]
        self.wait(*[self.submit(self.admin, to=a.address, value=fund_wei) for a in accounts])
        return accounts

    def refused(self, fn: Any, sender: str, error: str) -> str:
        """``fn`` called from ``sender`` must revert with custom error ``error``; returns the decoded text."""
        try:
            fn.call({"from": sender})
        except Exception as exc:  # noqa: BLE001 - ContractCustomError / ContractLogicError / Web3RPCError
            name, text = decode_revert(revert_data_of(exc))
            assert name == error, f"expected {error}, got {text} ({exc!r})"
            return text
        raise AssertionError(f"call did not revert (expected {error})")

    def register_person(self, enterprise: Any, person: Any, roles: int, qualification: str) -> Any:
        """``registerPerson`` call with ``person``'s EIP-712 proof-of-possession signature (valid 1 h)."""
        deadline = self.block_time() + 3600
        typed = person_registration_typed_data(
            chain_id=self.spec.chain_id, contract=self.registry.address, enterprise=enterprise.address,
            person=person.address, roles=roles, qualification=qualification, deadline=deadline)
        return self.registry.functions.registerPerson(enterprise.address, person.address, roles, qualification,
                                                      deadline, sign_typed(person.key, typed))

    def block_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def wait_block_time(self, timestamp: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.block_time() < timestamp:
            assert time.monotonic() < deadline, f"chain time did not reach {timestamp}"
            time.sleep(0.3)


@pytest.fixture(scope="package")
def chain(stack: Stack) -> Chain:
    return Chain(stack)


def gov(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def auth(ent: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ent['api_key']}"}
