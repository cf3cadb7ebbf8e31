from __future__ import annotations

import json

import pytest
from eth_account import Account

from provenance.canonical import record_digest
from provenance.errors import InvalidSignature, ProvenanceError
from provenance.signing import record_typed_data, recover_record_signer, sign_record

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
IDENT = "88.123.4567/HK52791-CNW24-118734"
DIGEST = record_digest({"coil": "NW24-118734", "heat": "K52791"})
CHAIN = 31337


def test_typed_data_shape_is_json_serialisable() -> None:
    data = record_typed_data(IDENT, "en10168-certificate", DIGEST, CHAIN)
    assert data["primaryType"] == "Record"
    assert data["domain"] == {"name": "TraceLedger", "version": "1", "chainId": CHAIN}
    assert [f["name"] for f in data["types"]["EIP712Domain"]] == ["name", "version", "chainId"]
    assert data["types"]["Record"] == [
        {"name": "identifier", "type": "string"},
        {"name": "kind", "type": "string"},
        {"name": "digest", "type": "bytes32"},
    ]
    assert data["message"]["digest"] == "0x" + DIGEST.hex()
    json.dumps(data)


def test_sign_and_recover_roundtrip() -> None:
    sig = sign_record(KEY, IDENT, "en10168-certificate", DIGEST, CHAIN)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert recover_record_signer(sig, IDENT, "en10168-certificate", DIGEST, CHAIN) == ADDRESS


def test_v_as_recovery_id_is_accepted() -> None:
    sig = sign_record(KEY, IDENT, "en10168-certificate", DIGEST, CHAIN)
    raw_v = sig[:64] + bytes([sig[64] - 27])
    assert recover_record_signer(raw_v, IDENT, "en10168-certificate", DIGEST, CHAIN) == ADDRESS


@pytest.mark.parametrize(
    "field",
    ["digest", "identifier", "kind", "chain"],
)
def test_tampering_recovers_a_different_address(field: str) -> None:
    sig = sign_record(KEY, IDENT, "en10168-certificate", DIGEST, CHAIN)
    args = {"identifier": IDENT, "kind": "en10168-certificate", "digest": DIGEST, "chain_id": CHAIN}
    if field == "digest":
        args["digest"] = bytes([DIGEST[0] ^ 1]) + DIGEST[1:]
    elif field == "identifier":
        args["identifier"] = IDENT + "X"
    elif field == "kind":
        args["kind"] = "work-ticket"
    else:
        args["chain_id"] = CHAIN + 1
    assert recover_record_signer(sig, **args) != ADDRESS  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01" * 64, b"\x01" * 66, b"\x01" * 64 + b"\x05", b"\x00" * 65, b"\xff" * 64 + b"\x1b"],
    ids=["empty", "64-bytes", "66-bytes", "bad-v", "zero-r-s", "s-above-order"],
)
def test_malformed_signature_raises(bad: bytes) -> None:
    with pytest.raises(InvalidSignature) as info:
        recover_record_signer(bad, IDENT, "en10168-certificate", DIGEST, CHAIN)
    assert isinstance(info.value, ProvenanceError)


def test_bad_digest_or_chain_rejected() -> None:
    with pytest.raises(ValueError):
        record_typed_data(IDENT, "k", b"\x00" * 31, CHAIN)
    with pytest.raises(ValueError):
        record_typed_data(IDENT, "k", DIGEST, 0)


def test_fast_signing_hash_matches_eth_account_eip712() -> None:
    """The direct EIP-712 hash equals eth-account's encode_typed_data, and signatures agree with eth-account."""
    from eth_account import Account
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    from provenance.signing import record_signing_hash

    for ident, kind, chain in ((IDENT, "en10168-certificate", CHAIN), ("88.1.1/ev-ü€", "epcis_event", 7)):
        msg = encode_typed_data(full_message=record_typed_data(ident, kind, DIGEST, chain))
        assert record_signing_hash(ident, kind, DIGEST, chain) == _hash_eip191_message(msg)
        expected = bytes(Account.sign_message(msg, private_key=KEY).signature)
        assert sign_record(KEY, ident, kind, DIGEST, chain) == expected
