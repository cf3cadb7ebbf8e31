"""A bundle never silently lacks an owner's registry state proof: transient eth_getProof failures are retried,
persistent ones refuse the bundle (503) instead of handing out one that cannot verify offline."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from api.chain import ChainError, ChainUnavailable
from api.epcis import bundle as bundle_module

OWNER = "0x" + "ab" * 20


class FlakyChain:
    """The chain client's edge: ``rpc("eth_getProof", …)`` fails ``failures`` times, then answers."""

    def __init__(self, failures: int, error: type[Exception] = ChainError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.enterprise_registry = SimpleNamespace(address="0x" + "11" * 20)

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        assert method == "eth_getProof"
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error("busy (-32005)")
        return {"storageProof": [{"value": "0x" + OWNER[2:].rjust(64, "0")}, {"value": "0x10"}]}


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_module.time, "sleep", lambda s: None)


@pytest.mark.parametrize("error", [ChainError, ChainUnavailable])
def test_transient_failures_are_retried_and_the_proof_is_in_the_bundle(error: type[Exception]) -> None:
    chain = FlakyChain(failures=bundle_module.PROOF_ATTEMPTS - 1, error=error)
    out = bundle_module._registry_proofs(chain, {("88.1.7", 22)})  # type: ignore[arg-type]
    assert [(p["prefix"], p["block_number"]) for p in out] == [("88.1.7", 22)]


def test_persistent_failure_refuses_the_bundle_instead_of_omitting_the_proof() -> None:
    chain = FlakyChain(failures=100)
    with pytest.raises(ChainUnavailable, match="state proof"):
        bundle_module._registry_proofs(chain, {("88.1.7", 22)})  # type: ignore[arg-type]
    assert chain.calls == bundle_module.PROOF_ATTEMPTS
