"""Shared fixtures for the contract tests: the compile script, an eth-tester chain, deployments."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType

import eth_abi
import pytest
from eth.vm.forks import ShanghaiVM
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError

ROOT = Path(__file__).resolve().parents[2]
_MODULE_NAME = "traceledger_compile_contracts"


def _load_compile_module() -> ModuleType:
    import contracts.compile

    return contracts.compile


@pytest.fixture(scope="session")
def compiler() -> ModuleType:
    return _load_compile_module()


# --------------------------------------------------------------------------- reverts


def _revert_data(exc: Exception) -> bytes:
    """Raw revert data carried by a TransactionFailed / ContractLogicError."""
    if exc.args and isinstance(exc.args[0], bytes | bytearray):
        return bytes(exc.args[0])
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    message = str(exc.args[0]) if exc.args else str(exc)
    # eth-tester: "execution reverted: b'\x17\xa8BB...'"
    match = re.search(r"(b(['\"]).*\2)\s*$", message, re.S)
    if match:
        return ast.literal_eval(match.group(1))
    match = re.search(r"0x[0-9a-fA-F]{8,}", message)
    if match:
        return bytes.fromhex(match.group(0)[2:])
    raise AssertionError(f"cannot extract revert data from {exc!r}")


def _error_abi(abi: list[dict], name: str) -> dict:
    for item in abi:
        if item.get("type") == "error" and item["name"] == name:
            return item
    raise AssertionError(f"no custom error {name!r} in ABI")


def _error_types(item: dict) -> list[str]:
    return [inp["type"] for inp in item["inputs"]]


def error_selector(abi: list[dict], name: str) -> bytes:
    item = _error_abi(abi, name)
    return keccak(text=f"{name}({','.join(_error_types(item))})")[:4]


def _raw_revert_data(fn, tx: dict) -> bytes:
    """Revert data straight from eth-tester.

    web3's EthereumTesterProvider turns revert data into a message by ABI-decoding it as a
    string after the 4-byte selector, which loses the selector of custom errors whose first
    argument is a string; asking the tester directly keeps the raw bytes.
    """
    tester = fn.w3.provider.ethereum_tester
    data = fn.build_transaction({"from": tx["from"], "gas": 10_000_000})["data"]
    call = {"from": tx["from"], "to": fn.address, "data": data, "gas": 10_000_000}
    with pytest.raises(TransactionFailed) as info:
        tester.call(call)
    return _revert_data(info.value)


def assert_reverts(fn, tx: dict, contract, error: str, args: tuple | None = None) -> None:
    """Transacting ``fn`` must revert with custom error ``error`` (and ``args``, if given)."""
    with pytest.raises((TransactionFailed, ContractLogicError)):
        fn.transact(tx)
    data = _raw_revert_data(fn, tx)
    expected = error_selector(contract.abi, error)
    assert data[:4] == expected, f"expected {error} ({expected.hex()}), reverted with 0x{data.hex()}"
    if args is not None:
        types = _error_types(_error_abi(contract.abi, error))
        decoded = tuple(
            to_checksum_address(value) if kind == "address" else value
            for kind, value in zip(types, eth_abi.decode(types, data[4:]), strict=True)
        )
        assert decoded == tuple(args)


# --------------------------------------------------------------------------- chain


@pytest.fixture(params=["shanghai", "eth-tester-default"])
def w3(request: pytest.FixtureRequest) -> Web3:
    """A fresh eth-tester chain: py-evm's Shanghai VM (what the validators run) and the
    eth-tester default fork (newer), so the artifacts are known to work on both."""
    if request.param == "shanghai":
        backend = PyEVMBackend(vm_configuration=((0, ShanghaiVM),))
    else:
        backend = PyEVMBackend()
    return Web3(Web3.EthereumTesterProvider(EthereumTester(backend)))


@pytest.fixture()
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


def _deploy(w3: Web3, artifact: dict, sender: str, *args):
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": sender}))
    assert receipt.status == 1
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


@pytest.fixture()
def admins(accounts: list[str]) -> list[str]:
    return accounts[:2]


@pytest.fixture()
def registry(w3: Web3, compiler: ModuleType, admins: list[str]):
    return _deploy(w3, compiler.load_artifact("EnterpriseRegistry"), admins[0], admins)


@pytest.fixture()
def anchors(w3: Web3, compiler: ModuleType, registry, admins: list[str]):
    return _deploy(w3, compiler.load_artifact("AnchorRegistry"), admins[0], registry.address)
