"""Signatures (issue 12): high-s (EIP-2) refused, reposts checked like first posts, device keys proven.

Before: the malleable high-s twin of a valid record signature recovered the same signer and was
accepted; an identical certificate reposted with a *wrong* ``X-Record-Signature`` answered 200; a
person could be registered with any address, without proof that the enterprise's device holds its key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from provenance.canonical import canonicalize
from provenance.errors import InvalidSignature
from provenance.signing import (
    recover_record_signer,
    sign_record,
)
from tests.api.conftest import auth, sample
from tests.api.test_certificates import _enterprise_key

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
URL = "/v1/coils/certificates"
IDENT = "88.1.1/HK52791-CNW24-118734"


def high_s(sig: bytes) -> bytes:
    """The malleable twin (r, n − s, v flipped): recovers the same key unless refused."""
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])  # 27 <-> 28


def test_high_s_twin_is_refused() -> None:
    key = Account.create()
    digest = bytes(range(32))
    sig = sign_record(bytes(key.key), "88.1.1/x", "coil_certificate", digest, 1337)
    assert recover_record_signer(sig, "88.1.1/x", "coil_certificate", digest, 1337) == key.address
    with pytest.raises(InvalidSignature, match="EIP-2"):
        recover_record_signer(high_s(sig), "88.1.1/x", "coil_certificate", digest, 1337)


def test_high_s_certificate_signature_refused(client: TestClient, settings: Any,
                                              manufacturer: dict[str, Any]) -> None:
    doc = sample()
    digest = hashlib.sha256(canonicalize(doc)).digest()
    sig = sign_record(_enterprise_key(settings, manufacturer["id"]), IDENT, "coil_certificate", digest, 1337)
    h = auth(manufacturer["api_key"])
    r = client.post(URL, json=doc, headers={**h, "X-Record-Signature": "0x" + high_s(sig).hex()})
    assert r.status_code == 422 and "EIP-2" in r.json()["detail"][0]["message"]
    assert client.post(URL, json=doc, headers={**h, "X-Record-Signature": "0x" + sig.hex()}).status_code == 201


def test_repost_with_wrong_signature_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    doc = sample()
    h = auth(manufacturer["api_key"])
    assert client.post(URL, json=doc, headers=h).status_code == 201
    digest = hashlib.sha256(canonicalize(doc)).digest()
    wrong = sign_record(bytes(Account.create().key), IDENT, "coil_certificate", digest, 1337)
    r = client.post(URL, json=doc, headers={**h, "X-Record-Signature": "0x" + wrong.hex()})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "header.X-Record-Signature"
    assert client.post(URL, json=doc, headers=h).status_code == 200  # an unsigned repost stays idempotent


def test_device_person_needs_proof_of_possession(client: TestClient, manufacturer: dict[str, Any]) -> None:
    """A device-held person address is registered only with that key's EIP-712 PersonRegistration signature
    (checked on chain by EnterpriseRegistry.registerPerson); without one the API refuses before any work."""
    h = auth(manufacturer["api_key"])
    body = {"name": "Crew Zhao", "roles": ["crew_member"], "address": Account.create().address}
    r = client.post("/v1/persons", headers=h, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "signature"  # before the (absent) chain
    r = client.post("/v1/persons", headers=h, json={**body, "signature": "0x1234", "deadline": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.signature"
