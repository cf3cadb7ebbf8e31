"""The pure verifier (provenance/verify.py): each check's verdict, and each dishonest party's attack on it."""

from __future__ import annotations

import hashlib

import pytest
import rlp
from eth.rlp.logs import Log
from eth.rlp.receipts import Receipt
from eth_utils import keccak, to_checksum_address

from provenance.merkle import hash_leaf, inclusion_proof, root_from_leaf_hashes
from provenance.qbft_header import ExtraData, seal_hash_from_header_fields
from provenance.signing import sign_record
from provenance.verify import (
    ANCHOR_SELECTOR,
    ANCHORED_TOPIC,
    Reason,
    check_anchor_call,
    check_anchor_receipt,
    check_anchor_state,
    check_block_header,
    check_commit_seals,
    check_inclusion,
    check_receipts,
    check_record_digest,
    check_record_signature,
    encode_receipt,
    receipts_root,
)
from tests.ledger.helpers import SORTED_KEYS, VALIDATORS, seal
from tests.provenance.test_qbft_header import header_fields, rpc_json

KEY = bytes.fromhex("11" * 32)
OTHER = bytes.fromhex("22" * 32)
IDENT = "88.1.1/HK52791-CNW24-118734"
DOC = '{"a":1}'
DIGEST = hashlib.sha256(DOC.encode()).digest()
REGISTRY = "0x" + "ab" * 20
ROOT = b"\x07" * 32
META = b"\x09" * 32


def address_of(key: bytes) -> str:
    from eth_keys import keys

    return keys.PrivateKey(key).public_key.to_checksum_address()


# ------------------------------------------------------------------ record
def test_record_digest_ok_tampered_and_malformed() -> None:
    assert check_record_digest(DOC, "0x" + DIGEST.hex()).ok
    bad = check_record_digest(DOC + " ", "0x" + DIGEST.hex())
    assert not bad.ok and bad.reason is Reason.DIGEST_MISMATCH and "stored digest" in bad.detail
    assert check_record_digest(DOC, "0x1234").reason is Reason.MALFORMED
    assert check_record_digest(123, "0x" + DIGEST.hex()).reason is Reason.MALFORMED  # type: ignore[arg-type]


def test_signature_only_by_a_proven_owner() -> None:
    sig = sign_record(KEY, IDENT, "coil_certificate", DIGEST, 1337)
    ok = check_record_signature(sig.hex(), IDENT, "coil_certificate", DIGEST, 1337, owners=[address_of(KEY)])
    assert ok.ok and ok.facts["signer"] == address_of(KEY)
    # another member re-signs: recovers fine, but to someone who is not the owner
    forged = sign_record(OTHER, IDENT, "coil_certificate", DIGEST, 1337)
    v = check_record_signature(forged, IDENT, "coil_certificate", DIGEST, 1337, owners=[address_of(KEY)])
    assert v.reason is Reason.WRONG_SIGNER and address_of(OTHER) in v.detail
    # no owner proven (e.g. the bundle's own claim only): refused, whoever signed
    v = check_record_signature(sig, IDENT, "coil_certificate", DIGEST, 1337, owners=None)
    assert v.reason is Reason.OWNER_UNPROVEN
    # the signature binds identifier, kind, digest and chain id
    for args in ((IDENT + "x", "coil_certificate", DIGEST, 1337), (IDENT, "epcis_event", DIGEST, 1337),
                 (IDENT, "coil_certificate", b"\x00" * 32, 1337), (IDENT, "coil_certificate", DIGEST, 1)):
        assert check_record_signature(sig, *args, owners=[address_of(KEY)]).reason is Reason.WRONG_SIGNER
    assert check_record_signature("0x00", IDENT, "coil_certificate", DIGEST, 1337,
                                  owners=[address_of(KEY)]).reason is Reason.BAD_SIGNATURE


def test_inclusion_proof_and_typed_failures() -> None:
    leaves = [hash_leaf(bytes([i]) * 32) for i in range(5)]
    leaves[3] = hash_leaf(DIGEST)
    root = root_from_leaf_hashes(leaves)
    path = ["0x" + p.hex() for p in inclusion_proof(leaves, 3)]
    assert check_inclusion(DIGEST, 3, 5, path, "0x" + root.hex()).ok
    assert check_inclusion(DIGEST, 2, 5, path, root).reason is Reason.PROOF_INVALID
    # the same path also "proves" leaf 3 of a 6-leaf tree (RFC 9162 paths do not pin the size): this is why the
    # bundle verifier compares tree_size with the size anchored on chain
    assert check_inclusion(DIGEST, 3, 6, path, root).ok
    assert check_inclusion(DIGEST, 3, 9, path, root).reason is Reason.PROOF_INVALID
    assert check_inclusion(DIGEST, 3, 5, path[:-1], root).reason is Reason.PROOF_INVALID
    assert check_inclusion(DIGEST, 3, 5, "not a list", root).reason is Reason.PROOF_INVALID  # type: ignore[arg-type]
    assert check_inclusion(DIGEST, True, 5, path, root).reason is Reason.PROOF_INVALID


def test_anchor_state_names_block_submitter_and_size() -> None:
    sub = "0x" + "12" * 20
    assert check_anchor_state(anchored_block=9, submitter=sub, anchored_size=3, block_number=9, tree_size=3).ok
    for kwargs in ({"anchored_block": None}, {"anchored_block": 8}, {"submitter": "0x" + "00" * 20},
                   {"anchored_size": 4}):
        base = {"anchored_block": 9, "submitter": sub, "anchored_size": 3, "block_number": 9, "tree_size": 3}
        v = check_anchor_state(**(base | kwargs))
        assert v.reason is Reason.NOT_ANCHORED


# ------------------------------------------------------------------ anchor call and receipt
def anchor_tx(to: str = REGISTRY, size: int = 3) -> dict:
    return {"to": to, "input": "0x" + (ANCHOR_SELECTOR + ROOT + size.to_bytes(32, "big") + META).hex()}


def test_anchor_call_needs_the_auditors_registry() -> None:
    kw = {"root": ROOT, "size": 3, "metadata_digest": META}
    assert check_anchor_call(anchor_tx(), registry=REGISTRY, **kw).ok
    assert check_anchor_call(anchor_tx(), registry=None, **kw).reason is Reason.NO_REGISTRY
    assert check_anchor_call(anchor_tx(to="0x" + "cd" * 20), registry=REGISTRY, **kw).reason is Reason.WRONG_CALL
    assert check_anchor_call(anchor_tx(size=4), registry=REGISTRY, **kw).reason is Reason.WRONG_CALL


def anchored_log(address: str = REGISTRY, root: bytes = ROOT, size: int = 3, block: int = 9) -> dict:
    topics = ["0x" + ANCHORED_TOPIC.hex(), "0x" + root.hex(), "0x" + "00" * 12 + "12" * 20]
    return {"address": address, "topics": topics,
            "data": "0x" + (size.to_bytes(32, "big") + META + block.to_bytes(32, "big")).hex()}


def receipt(status: int = 1, logs: list | None = None, tx_hash: str = "0x" + "aa" * 32, index: int = 0,
            typ: int = 2) -> dict:
    return {"transactionHash": tx_hash, "transactionIndex": hex(index), "status": hex(status),
            "cumulativeGasUsed": hex(50_000), "logsBloom": "0x" + "00" * 256, "type": hex(typ),
            "logs": [anchored_log()] if logs is None else logs}


def test_anchor_receipt_status_log_and_emitter() -> None:
    kw = {"registry": REGISTRY, "root": ROOT, "size": 3, "metadata_digest": META, "block_number": 9}
    ok = check_anchor_receipt(receipt(), **kw)
    assert ok.ok and ok.facts["submitter"] == to_checksum_address("0x" + "12" * 20)
    reverted = check_anchor_receipt(receipt(status=0, logs=[]), **kw)
    assert reverted.reason is Reason.RECEIPT_INVALID and "status 0" in reverted.detail
    # a look-alike log from another contract, for another root, size or block
    for log in (anchored_log(address="0x" + "cd" * 20), anchored_log(root=b"\x08" * 32), anchored_log(size=4),
                anchored_log(block=10)):
        assert check_anchor_receipt(receipt(logs=[log]), **kw).reason is Reason.RECEIPT_INVALID
    assert check_anchor_receipt(receipt(), **(kw | {"registry": None})).reason is Reason.NO_REGISTRY


def test_receipt_encoding_matches_py_evm() -> None:
    for status, typ in ((1, 0), (0, 0), (1, 2)):
        rc = receipt(status=status, typ=typ)
        ours = encode_receipt(rc)
        log = rc["logs"][0]
        evm = Receipt(state_root=b"\x01" if status else b"", gas_used=50_000, bloom=0, logs=[
            Log(bytes.fromhex(log["address"][2:]), [int(t, 16) for t in log["topics"]],
                bytes.fromhex(log["data"][2:]))])
        expect = rlp.encode(evm)
        assert ours == (expect if typ == 0 else bytes([typ]) + expect)


def test_receipts_bind_to_receipts_root() -> None:
    txs = [{"hash": "0x" + "aa" * 32}, {"hash": "0x" + "bb" * 32}]
    rcs = [receipt(), receipt(status=0, logs=[], tx_hash="0x" + "bb" * 32, index=1)]
    block = {"transactions": txs, "receiptsRoot": "0x" + receipts_root(rcs).hex()}
    assert check_receipts(block, rcs).ok
    # the operator flips the failed anchor's status to 1: the root no longer matches
    flipped = [rcs[0], receipt(status=1, logs=[], tx_hash="0x" + "bb" * 32, index=1)]
    assert check_receipts(block, flipped).reason is Reason.RECEIPT_INVALID
    assert check_receipts(block, rcs[:1]).reason is Reason.RECEIPT_INVALID  # one receipt left out
    assert check_receipts(block, rcs[::-1]).reason is Reason.RECEIPT_INVALID  # reordered
    assert check_receipts(block, [rcs[0], {**rcs[1], "transactionHash": "0x" + "cc" * 32}]).reason \
        is Reason.RECEIPT_INVALID


# ------------------------------------------------------------------ header and seals
def sealed_block(signers: list[bytes], round_: int = 0) -> dict:
    fields = header_fields(ExtraData(validators=tuple(VALIDATORS), round=round_))
    digest = seal_hash_from_header_fields(fields)
    seals = tuple(seal(k, digest) for k in signers)
    fields[12] = rlp.encode([b"\x00" * 32, list(VALIDATORS), [], round_, list(seals)])
    return rpc_json(fields)


def test_commit_seals_quorum_outsiders_duplicates() -> None:
    trusted = [to_checksum_address(v) for v in VALIDATORS]
    assert check_commit_seals(sealed_block(SORTED_KEYS[:3]), trusted).ok
    v = check_commit_seals(sealed_block(SORTED_KEYS[:2]), trusted)
    assert v.reason is Reason.SEALS_INSUFFICIENT and "quorum is 3" in v.detail
    v = check_commit_seals(sealed_block([SORTED_KEYS[0]] * 3), trusted)
    assert v.reason is Reason.SEALS_INSUFFICIENT and "duplicate" in v.detail
    v = check_commit_seals(sealed_block(SORTED_KEYS[:3]), trusted[:2])
    assert v.reason is Reason.SEALS_INSUFFICIENT and "non-validators" in v.detail
    assert check_commit_seals(sealed_block(SORTED_KEYS[:3]), []).reason is Reason.SEALS_INSUFFICIENT


def test_block_header_hash_and_expected_hash() -> None:
    block = sealed_block(SORTED_KEYS[:3])
    assert check_block_header(block).ok
    assert check_block_header(block, expected_hash="0x" + "00" * 32).reason is Reason.HEADER_MISMATCH
    assert check_block_header({**block, "stateRoot": "0x" + "00" * 32}).reason is Reason.HEADER_MISMATCH
    assert check_block_header({**block, "number": None}).reason is Reason.MALFORMED
    assert keccak(b"") != bytes.fromhex(block["hash"][2:])


@pytest.mark.parametrize("value", ["0xzz", 12, None])
def test_malformed_anchor_fields_are_verdicts_not_crashes(value: object) -> None:
    v = check_anchor_call({"to": REGISTRY, "input": value}, root=ROOT, size=3, metadata_digest=META, registry=REGISTRY)
    assert not v.ok and v.reason is Reason.MALFORMED
