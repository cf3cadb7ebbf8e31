"""One verifier, pure: every provenance check as a function over data, returning a typed :class:`Verdict`.

The online verifier (``api/verification.py``, data fetched from the database and JSON-RPC) and the offline
bundle verifier (:mod:`provenance.bundle`, data read from the bundle) call these very functions, so the two
cannot drift. Nothing here does I/O: callers fetch, these functions decide.

Checks, in the order a record is proven:

* :func:`check_hash_alg` — the hash a proof or bundle declares (``hash_alg``) is the one of the network the
  caller trusts (its crypto profile, :mod:`provenance.crypto_profile`); the other checks then use it;
* :func:`check_record_digest` — SHA-256 (or SM3 under the ``sm`` profile) of the exact canonical document
  (RFC 8785) equals the record digest;
* :func:`check_event_hash` — the GS1 event hash ID recomputed from an EPCIS event equals the claimed one and
  the identifier's ``ev-``/``ed-`` suffix;
* :func:`check_record_signature` — the EIP-712 ``Record(identifier, kind, digest)`` signature recovers to an
  address the caller has *proven* to own the identifier's prefix;
* :func:`check_record_signature_sm2` — under the ``sm`` profile: the SM2 signature (GB/T 32918.2, SM3, default
  user ID) of the record statement verifies under a public key the caller has proven for the prefix;
* :func:`check_inclusion` — RFC 9162 §2.1.3.2 audit path from ``hash_leaf(digest)`` to the batch root;
* :func:`check_anchor_state` — ``AnchorRegistry.getAnchor(root)`` names the block, a non-zero submitter and the
  tree size of the proof (online path);
* :func:`check_anchor_call` — the transaction is ``AnchorRegistry.anchor(root, size, metadataDigest)`` sent to
  the registry address the auditor holds (offline path);
* :func:`check_receipts` / :func:`check_anchor_receipt` — the block's receipts reproduce ``receiptsRoot``
  (Yellow Paper §4.3.1), the anchor transaction succeeded (status 1) and emitted ``Anchored(root, submitter,
  size, metadataDigest, blockNumber)`` from the registry;
* :func:`check_block_header` — the QBFT block hash recomputes from the header fields (round 0, no seals);
* :func:`check_transactions` — each transaction hash recomputes from its fields and the list reproduces
  ``transactionsRoot``;
* :func:`check_commit_seals` — the commit seals recover to at least :func:`quorum` distinct validators of the
  set the caller trusts, none outside it, none twice.

A failing verdict carries a :class:`Reason` (the typed cause, like :class:`provenance.errors.RootMismatch` for
proofs) and a detail naming the values compared; callers prefix the place (``records[3].signature``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address

from provenance.crypto_profile import HASH_SHA256, UnknownProfile, hash_function, verify_record_sm2
from provenance.errors import InvalidProof, InvalidSignature
from provenance.merkle import hash_leaf, verify_inclusion
from provenance.qbft_header import (
    block_hash_from_rpc_block,
    header_fields_from_rpc_block,
    quorum,
    recover_seal_signers_from_rpc_block,
)
from provenance.signing import recover_record_signer

__all__ = [
    "ANCHOR_SELECTOR", "ANCHORED_TOPIC", "Reason", "Verdict", "quorum", "raw_transaction", "transactions_root",
    "encode_receipt", "receipts_root", "check_record_digest", "check_event_hash", "check_record_signature",
    "check_inclusion", "check_anchor_state", "check_anchor_call", "check_receipts", "check_anchor_receipt",
    "check_block_header", "check_transactions", "check_commit_seals", "hex_bytes", "hex_int", "qty",
    "FINALITY_QBFT", "parse_finality_model", "check_confirmations", "check_hash_alg", "check_record_signature_sm2",
]

ANCHOR_SELECTOR = keccak(text="anchor(bytes32,uint64,bytes32)")[:4]
"""4-byte selector of ``AnchorRegistry.anchor(bytes32 root, uint64 size, bytes32 metadataDigest)``."""

ANCHORED_TOPIC = keccak(text="Anchored(bytes32,address,uint64,bytes32,uint256)")
"""topic0 of ``event Anchored(bytes32 indexed root, address indexed submitter, uint64 size,
bytes32 metadataDigest, uint256 blockNumber)`` (32 bytes)."""


class Reason(enum.Enum):
    """Why a check failed (the typed cause of a failing :class:`Verdict`)."""

    MALFORMED = "malformed"
    """A field is missing or not of its type / byte length."""
    DIGEST_MISMATCH = "digest_mismatch"
    """The document does not hash to the record digest."""
    EVENT_HASH_MISMATCH = "event_hash_mismatch"
    """The GS1 event hash ID recomputes differently, or the identifier does not end with it."""
    BAD_SIGNATURE = "bad_signature"
    """The signature is malformed or recovers no key."""
    WRONG_SIGNER = "wrong_signer"
    """The signature recovers to an address that is not the proven owner."""
    OWNER_UNPROVEN = "owner_unproven"
    """No proven owner for the identifier's prefix (the bundle's own claim is not evidence)."""
    PROOF_INVALID = "proof_invalid"
    """The inclusion proof is malformed or does not reproduce the root."""
    NOT_ANCHORED = "not_anchored"
    """The root has no anchor, or the anchor names another block, size or a zero submitter."""
    WRONG_CALL = "wrong_call"
    """The transaction is not ``anchor(root, size, metadataDigest)`` to the trusted registry."""
    NO_REGISTRY = "no_registry"
    """The auditor supplied no AnchorRegistry address."""
    RECEIPT_INVALID = "receipt_invalid"
    """Receipts do not reproduce ``receiptsRoot``, the transaction failed, or no ``Anchored`` log."""
    HEADER_MISMATCH = "header_mismatch"
    """The header fields do not hash to the block hash."""
    TRANSACTIONS_MISMATCH = "transactions_mismatch"
    """A transaction hash or the transactions root does not recompute."""
    SEALS_INSUFFICIENT = "seals_insufficient"
    """Commit seals from outsiders, duplicated, or fewer than the quorum."""
    WRONG_ALGORITHM = "wrong_algorithm"
    """The declared ``hash_alg`` is unknown or not the one of the network the verifier trusts."""


@dataclass(frozen=True)
class Verdict:
    """Outcome of one check.

    Attributes:
        check: the check's name (``record_digest``, ``signature``, ``inclusion_proof``, ``anchored_on_chain``,
            ``anchor_call``, ``receipts``, ``anchor_receipt``, ``header``, ``transactions``, ``commit_seals``…).
        ok: True iff the check holds.
        detail: one line naming the values compared.
        reason: the typed cause when ``ok`` is False, else None.
        facts: values proven by the check (e.g. ``signer``, ``signers``, ``submitter``) for the caller.
    """

    check: str
    ok: bool
    detail: str
    reason: Reason | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


_verify_sm2 = lru_cache(maxsize=65536)(verify_record_sm2)
""":func:`provenance.crypto_profile.verify_record_sm2` memoised: a pure function of its arguments; a failure raises,
and raised errors are not cached."""

_recover_signer = lru_cache(maxsize=65536)(recover_record_signer)
""":func:`recover_record_signer` memoised (a pure function of its arguments; errors are not cached)."""


def _pass(check: str, detail: str, **facts: Any) -> Verdict:
    return Verdict(check, True, detail, None, facts)


def _fail(check: str, reason: Reason, detail: str, **facts: Any) -> Verdict:
    return Verdict(check, False, detail, reason, facts)


# --------------------------------------------------------------------------- field parsing
def hex_bytes(value: Any, what: str = "value", size: int | None = None) -> bytes:
    """Bytes of a ``0x``-hex string (or bytes); ``size`` checks the byte length.

    Raises:
        ValueError: not a hex string, or not ``size`` bytes (the message names ``what``).
    """
    if isinstance(value, bytes | bytearray):
        out = bytes(value)
    elif isinstance(value, str):
        try:
            out = bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
        except ValueError as exc:
            raise ValueError(f"{what} is not hex: {value[:20]!r}") from exc
    else:
        raise ValueError(f"{what} must be a hex string, got {type(value).__name__}")
    if size is not None and len(out) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(out)}")
    return out


def hex_int(value: Any, what: str = "value") -> int:
    """Integer of a JSON-RPC quantity (``0x``-hex string) or a JSON integer (booleans refused).

    Raises:
        ValueError: neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    raise ValueError(f"{what} must be an integer or 0x quantity, got {value!r}"[:120])


def qty(value: Any, what: str = "value") -> int:
    """Integer of a JSON-RPC quantity: a ``0x``-hex string only (Ethereum JSON-RPC encoding of QUANTITY).

    Raises:
        ValueError: anything else (a JSON integer included: the same value spelled otherwise is refused).
    """
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise ValueError(f"{what} must be a 0x quantity, got {value!r}"[:120])
    return int(value, 16)


def _addr(value: Any, what: str) -> str:
    return to_checksum_address(hex_bytes(value, what, 20))


# --------------------------------------------------------------------------- encodings
def raw_transaction(tx: Mapping[str, Any]) -> bytes:
    """Signed transaction bytes (legacy, EIP-2930 ``0x01`` or EIP-1559 ``0x02`` envelope) from its JSON-RPC
    fields (EIP-2718). Raises KeyError / ValueError on a missing or malformed field."""
    to = hex_bytes(tx["to"], "to", 20) if tx.get("to") else b""
    t = qty(tx["type"], "type")
    access = [[hex_bytes(a["address"], "accessList.address", 20), [hex_bytes(k, "storageKey", 32)
                                                                    for k in a["storageKeys"]]]
              for a in (tx["accessList"] if t else [])]
    n = qty
    if t and "yParity" in tx and "v" in tx and n(tx["yParity"]) != n(tx["v"]):
        raise ValueError("yParity and v differ")
    if t == 2:
        fields = [n(tx["chainId"]), n(tx["nonce"]), n(tx["maxPriorityFeePerGas"]), n(tx["maxFeePerGas"]),
                  n(tx["gas"]), to, n(tx["value"]), hex_bytes(tx["input"]), access, n(tx.get("yParity", tx["v"])),
                  n(tx["r"]), n(tx["s"])]
        return b"\x02" + rlp.encode(fields)
    if t == 1:
        fields = [n(tx["chainId"]), n(tx["nonce"]), n(tx["gasPrice"]), n(tx["gas"]), to, n(tx["value"]),
                  hex_bytes(tx["input"]), access, n(tx.get("yParity", tx["v"])), n(tx["r"]), n(tx["s"])]
        return b"\x01" + rlp.encode(fields)
    if t != 0:
        raise ValueError(f"unsupported transaction type {t}")
    return rlp.encode([n(tx["nonce"]), n(tx["gasPrice"]), n(tx["gas"]), to, n(tx["value"]), hex_bytes(tx["input"]),
                       n(tx["v"]), n(tx["r"]), n(tx["s"])])


def _ordered_trie_root(items: Sequence[bytes]) -> bytes:
    from trie import HexaryTrie

    t = HexaryTrie({})
    for i, item in enumerate(items):
        t[rlp.encode(i)] = item
    return bytes(t.root_hash)


def transactions_root(raws: Sequence[bytes]) -> bytes:
    """Root (32 bytes) of the Merkle-Patricia trie ``rlp(index) → raw transaction`` (Yellow Paper §4.3)."""
    return _ordered_trie_root(raws)


def encode_receipt(receipt: Mapping[str, Any]) -> bytes:
    """Consensus encoding of a post-Byzantium receipt from its JSON-RPC fields (Yellow Paper §4.3.1,
    EIP-658 status, EIP-2718 envelope): ``[type ‖] RLP([status, cumulativeGasUsed, logsBloom, logs])``, each
    log ``[address, [topics], data]``. Raises KeyError / ValueError on a missing or malformed field."""
    status = qty(receipt["status"], "status")
    if status not in (0, 1):
        raise ValueError(f"status must be 0 or 1, got {status}")
    logs = [[hex_bytes(lg["address"], "log.address", 20), [hex_bytes(t, "log.topic", 32) for t in lg["topics"]],
             hex_bytes(lg["data"], "log.data")] for lg in receipt["logs"]]
    body = rlp.encode([b"\x01" if status else b"", qty(receipt["cumulativeGasUsed"], "cumulativeGasUsed"),
                       hex_bytes(receipt["logsBloom"], "logsBloom", 256), logs])
    t = qty(receipt["type"], "type")
    return body if t == 0 else bytes([t]) + body


def receipts_root(receipts: Sequence[Mapping[str, Any]]) -> bytes:
    """Root (32 bytes) of the trie ``rlp(index) → encoded receipt`` (the header's ``receiptsRoot``)."""
    return _ordered_trie_root([encode_receipt(r) for r in receipts])


# --------------------------------------------------------------------------- record checks
_HASH_NAMES = {HASH_SHA256: "SHA-256", "sm3": "SM3"}


def check_hash_alg(declared: Any, network: str, *, where: str = "proof") -> Verdict:
    """The ``hash_alg`` a proof, record or bundle declares equals ``network``'s, the hash of the crypto profile of
    the network the caller trusts (``network.json``'s ``crypto_profile``; never the bundle's own say).

    ``declared`` None means the field is absent: only documents written before profiles existed lack it, and
    those are SHA-256 (the standard profile), so None is read as ``"sha-256"`` — a rule, not a guess; an SM3
    network therefore refuses a proof that does not say ``sm3``. ``facts['hash_alg']`` is the agreed name.
    """
    name = HASH_SHA256 if declared is None else declared
    try:
        hash_function(network)
    except UnknownProfile as exc:
        return _fail("hash_alg", Reason.WRONG_ALGORITHM, f"the trusted network names no known hash: {exc}")
    if not isinstance(name, str) or name not in _HASH_NAMES:
        return _fail("hash_alg", Reason.WRONG_ALGORITHM, f"{where} declares unknown hash_alg {str(name)[:40]!r}")
    if name != network:
        return _fail("hash_alg", Reason.WRONG_ALGORITHM,
                     f"{where} declares hash_alg {name}, the network's crypto profile hashes with {network}")
    return _pass("hash_alg", f"{where} and network agree on {_HASH_NAMES[name]}", hash_alg=name)


def check_record_digest(document: str, record_digest: Any, hash_alg: str = HASH_SHA256) -> Verdict:
    """SHA-256 (``hash_alg="sm3"``: SM3) of the UTF-8 ``document`` (the exact canonical JSON) equals
    ``record_digest`` (32 bytes, hex).

    ``facts['digest']`` is the recomputed 32-byte digest.
    """
    if not isinstance(document, str):
        return _fail("record_digest", Reason.MALFORMED, "document must be the canonical JSON string")
    try:
        digest = hash_function(hash_alg)(document.encode("utf-8"))
    except UnknownProfile as exc:
        return _fail("record_digest", Reason.WRONG_ALGORITHM, str(exc))
    try:
        claimed = hex_bytes(record_digest, "record_digest", 32)
    except ValueError as exc:
        return _fail("record_digest", Reason.MALFORMED, str(exc), digest=digest)
    if claimed != digest:
        return _fail("record_digest", Reason.DIGEST_MISMATCH,
                     f"document hashes to 0x{digest.hex()}, stored digest is 0x{claimed.hex()}", digest=digest)
    return _pass("record_digest", f"{_HASH_NAMES[hash_alg]} of the canonical document matches", digest=digest)


@lru_cache(maxsize=4096)
def check_event_hash(document: str, identifier: str) -> Verdict:
    """An EPCIS event record (``{"event", "eventHashID", "@context"?}``): the GS1 event hash ID recomputed from
    the event (CBV 2.0 algorithm) equals ``eventHashID`` and ``identifier`` ends with ``-<hex>`` of it.

    The recomputation is :func:`provenance.epcis.event_hash_id_candidates`: the native hash (today's IDs) and,
    for an event that touches one of the native path's documented deviations from the reference package, the
    package's ID too, so events captured before the native path keep verifying. Memoised: a pure function of
    its two strings."""
    from provenance.epcis import EpcisInvalid, event_hash_id_candidates

    try:
        doc = json.loads(document)
        if not isinstance(doc, dict) or not isinstance(doc.get("event"), dict):
            raise ValueError("an event record is a JSON object with an 'event' object")
        candidates = event_hash_id_candidates(doc["event"], doc.get("@context"))
    except (EpcisInvalid, ValueError, TypeError) as exc:
        return _fail("event_hash", Reason.MALFORMED, f"cannot recompute the event hash ID: {exc}")
    claimed = doc.get("eventHashID")
    hexpart = str(claimed).split(";", 1)[-1].split("?", 1)[0]
    if claimed not in candidates or not identifier.endswith("-" + hexpart):
        return _fail("event_hash", Reason.EVENT_HASH_MISMATCH,
                     f"event hashes to {' or '.join(candidates)}, the record claims {claimed} / {identifier}")
    return _pass("event_hash", f"event hash ID {claimed} recomputed", event_hash_id=claimed)


def check_record_signature(signature: Any, identifier: str, kind: str, digest: bytes, chain_id: Any, *,
                           owners: Sequence[str] | None) -> Verdict:
    """The EIP-712 ``Record(identifier, kind, digest)`` signature (65 bytes ``r‖s‖v``, domain
    ``TraceLedger``/``1``/``chain_id``) recovers to one of ``owners``.

    ``owners`` are the addresses the caller has proven to sign for the identifier's prefix (the enterprise
    account, its persons); None means no owner is proven and the verdict fails with
    :attr:`Reason.OWNER_UNPROVEN`. ``facts['signer']`` is the recovered checksum address.
    """
    try:
        signer = _recover_signer(hex_bytes(signature, "signature"), identifier, kind, bytes(digest),
                                       hex_int(chain_id, "chain_id"))
    except (InvalidSignature, ValueError, TypeError) as exc:
        return _fail("signature", Reason.BAD_SIGNATURE, f"invalid signature: {exc}")
    if owners is None:
        return _fail("signature", Reason.OWNER_UNPROVEN,
                     f"signature recovers to {signer}, but no owner of {identifier.partition('/')[0]} is proven",
                     signer=signer)
    if signer.lower() not in {o.lower() for o in owners}:
        return _fail("signature", Reason.WRONG_SIGNER,
                     f"signature recovers to {signer}, owner is {', '.join(owners) or 'nobody'}", signer=signer)
    return _pass("signature", f"EIP-712 signature by owner {signer}", signer=signer)


def check_record_signature_sm2(signature: Any, identifier: str, kind: str, digest: bytes, chain_id: Any, *,
                               owner_keys: Sequence[Any] | None) -> Verdict:
    """The SM2 signature (DER, GB/T 32918.2 over SM3 with ``Z`` and the default user ID, GM/T 0009) of
    :func:`provenance.crypto_profile.sm2_record_statement` verifies under one of ``owner_keys`` (65-byte
    ``04‖x‖y`` public keys, hex or bytes) that the caller has proven for the identifier's prefix.

    None means no key is proven (:attr:`Reason.OWNER_UNPROVEN`). ``facts['signer_key']`` is the ``0x``-hex key
    that verified. SM2 has no public-key recovery, so each proven key is tried (an enterprise holds few).
    """
    try:
        sig = hex_bytes(signature, "signature")
        cid = hex_int(chain_id, "chain_id")
        keys = [hex_bytes(k, "owner key") for k in (owner_keys or [])]
    except (ValueError, TypeError) as exc:
        return _fail("signature", Reason.BAD_SIGNATURE, f"invalid SM2 signature: {exc}")
    if owner_keys is None:
        return _fail("signature", Reason.OWNER_UNPROVEN,
                     f"no SM2 key of the owner of {identifier.partition('/')[0]} is proven")
    last = "the owner has no SM2 key"
    for key in keys:
        try:
            _verify_sm2(key, sig, identifier, kind, bytes(digest), cid)
        except InvalidSignature as exc:
            last = str(exc)
            continue
        except ValueError as exc:
            return _fail("signature", Reason.BAD_SIGNATURE, f"invalid SM2 signature: {exc}")
        return _pass("signature", f"SM2 signature by owner key 0x{key.hex()[:18]}…", signer_key="0x" + key.hex())
    return _fail("signature", Reason.WRONG_SIGNER, f"SM2 signature verifies under none of the owner's "
                                                   f"{len(keys)} key(s): {last}")


def check_inclusion(digest: bytes, leaf_index: Any, tree_size: Any, path: Sequence[Any], root: Any,
                    hash_alg: str = HASH_SHA256) -> Verdict:
    """RFC 9162 §2.1.3.2: the audit ``path`` (bottom-up, 32-byte hashes) from ``hash_leaf(digest)`` at
    ``leaf_index`` of a tree of ``tree_size`` leaves reproduces ``root`` (32 bytes); the tree hashes with
    ``hash_alg`` (the one :func:`check_hash_alg` agreed)."""
    try:
        index, size = hex_int(leaf_index, "leaf_index"), hex_int(tree_size, "tree_size")
        if not isinstance(path, list | tuple):
            raise ValueError("path must be a list of hashes")
        nodes = [hex_bytes(p, "path node", 32) for p in path]
        root_b = hex_bytes(root, "root", 32)
        verify_inclusion(hash_leaf(bytes(digest), hash_alg), index, size, nodes, root_b, hash_alg=hash_alg)
    except (InvalidProof, ValueError, TypeError) as exc:
        return _fail("inclusion_proof", Reason.PROOF_INVALID, f"{type(exc).__name__}: {exc}")
    return _pass("inclusion_proof", f"leaf {index} of {size} reproduces root 0x{root_b.hex()} (RFC 9162 §2.1.3.2)")


# --------------------------------------------------------------------------- anchor checks
def check_anchor_state(*, anchored_block: int | None, submitter: str | None, anchored_size: int | None,
                       block_number: int | None, tree_size: int) -> Verdict:
    """``AnchorRegistry.getAnchor(root)`` as read from state: anchored (block ≠ 0) in ``block_number``, by a
    non-zero submitter, with the size of the proof's tree (``tree_size``)."""
    if not anchored_block:
        return _fail("anchored_on_chain", Reason.NOT_ANCHORED, "root is not anchored on chain")
    if anchored_block != block_number:
        return _fail("anchored_on_chain", Reason.NOT_ANCHORED,
                     f"root anchored in block {anchored_block}, stored block is {block_number}")
    if not submitter or int(submitter, 16) == 0:
        return _fail("anchored_on_chain", Reason.NOT_ANCHORED, "anchor has a zero submitter")
    if anchored_size != tree_size:
        return _fail("anchored_on_chain", Reason.NOT_ANCHORED,
                     f"anchored size {anchored_size}, batch size {tree_size}")
    return _pass("anchored_on_chain", f"root anchored in block {anchored_block} by {submitter}", submitter=submitter)


def check_anchor_call(tx: Mapping[str, Any], *, root: Any, size: Any, metadata_digest: Any,
                      registry: str | None) -> Verdict:
    """The transaction ``tx`` (JSON-RPC fields) calls ``anchor(root, size, metadataDigest)`` on ``registry``
    (the AnchorRegistry address the auditor holds; None is refused with :attr:`Reason.NO_REGISTRY`)."""
    if not registry:
        return _fail("anchor_call", Reason.NO_REGISTRY,
                     "no AnchorRegistry address from the auditor (pass the network file holding 'contracts')")
    try:
        data = hex_bytes(tx["input"], "input")
        expect = (ANCHOR_SELECTOR + hex_bytes(root, "root", 32) + hex_int(size, "size").to_bytes(32, "big")
                  + hex_bytes(metadata_digest, "metadata_digest", 32))
        to = _addr(tx.get("to"), "to") if tx.get("to") else None
        want = _addr(registry, "registry")
    except (KeyError, ValueError, OverflowError) as exc:
        return _fail("anchor_call", Reason.MALFORMED, f"{type(exc).__name__}: {exc}")
    if data != expect:
        return _fail("anchor_call", Reason.WRONG_CALL, "transaction input is not anchor(root, size, metadataDigest) "
                                                       "of this anchor")
    if to != want:
        return _fail("anchor_call", Reason.WRONG_CALL, f"transaction goes to {to}, not AnchorRegistry {want}")
    return _pass("anchor_call", f"anchor(root, {hex_int(size)}, metadataDigest) sent to {want}")


def check_receipts(block: Mapping[str, Any], receipts: Sequence[Mapping[str, Any]]) -> Verdict:
    """The block's receipts, one per transaction in order, reproduce its ``receiptsRoot`` and name its
    transactions (``transactionHash``, ``transactionIndex``)."""
    try:
        txs = block.get("transactions") or []
        if not isinstance(receipts, list | tuple) or len(receipts) != len(txs):
            raise ValueError(f"{len(receipts) if isinstance(receipts, list | tuple) else 'no'} receipts for "
                             f"{len(txs)} transactions")
        for i, (tx, rc) in enumerate(zip(txs, receipts, strict=True)):
            if str(rc.get("transactionHash", "")).lower() != str(tx.get("hash", "")).lower() \
                    or qty(rc.get("transactionIndex"), "transactionIndex") != i:
                raise ValueError(f"receipts[{i}] names transaction {rc.get('transactionHash')}, block has "
                                 f"{tx.get('hash')} at {i}")
        root = receipts_root(receipts)
        header = hex_bytes(block["receiptsRoot"], "receiptsRoot", 32)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        return _fail("receipts", Reason.RECEIPT_INVALID, f"{type(exc).__name__}: {exc}")
    if root != header:
        return _fail("receipts", Reason.RECEIPT_INVALID, f"receipts trie root 0x{root.hex()} ≠ header 0x{header.hex()}")
    return _pass("receipts", f"{len(receipts)} receipts reproduce receiptsRoot")


def check_anchor_receipt(receipt: Mapping[str, Any], *, registry: str | None, root: Any, size: Any,
                         metadata_digest: Any, block_number: int) -> Verdict:
    """The anchor transaction's receipt (already bound to ``receiptsRoot`` by :func:`check_receipts`) has
    status 1 and a log ``Anchored(root, submitter, size, metadataDigest, blockNumber)`` emitted by
    ``registry``. ``facts['submitter']`` is the anchoring account named by the log."""
    if not registry:
        return _fail("anchor_receipt", Reason.NO_REGISTRY, "no AnchorRegistry address from the auditor")
    try:
        if qty(receipt["status"], "status") != 1:
            return _fail("anchor_receipt", Reason.RECEIPT_INVALID,
                         f"anchor transaction {receipt.get('transactionHash')} failed (status 0, reverted)")
        want_root = hex_bytes(root, "root", 32)
        want_data = (hex_int(size, "size").to_bytes(32, "big") + hex_bytes(metadata_digest, "metadata_digest", 32)
                     + block_number.to_bytes(32, "big"))
        want = _addr(registry, "registry")
        for lg in receipt["logs"]:
            topics = [hex_bytes(t, "topic", 32) for t in lg["topics"]]
            if (_addr(lg["address"], "log.address") == want and len(topics) == 3 and topics[0] == ANCHORED_TOPIC
                    and topics[1] == want_root and hex_bytes(lg["data"], "log.data") == want_data):
                submitter = to_checksum_address(topics[2][12:])
                return _pass("anchor_receipt", f"status 1, Anchored(root, {submitter}, {hex_int(size)}) logged by "
                                               f"{want}", submitter=submitter)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        return _fail("anchor_receipt", Reason.MALFORMED, f"{type(exc).__name__}: {exc}")
    return _fail("anchor_receipt", Reason.RECEIPT_INVALID,
                 f"no Anchored(root, size, metadataDigest, {block_number}) log from {want} in the receipt")


# --------------------------------------------------------------------------- block checks
def check_block_header(block: Mapping[str, Any], expected_hash: Any = None, *, bft: bool = True) -> Verdict:
    """The block hash recomputes to the block's ``hash`` (and to ``expected_hash`` when given).

    ``bft``: the QBFT block hash (keccak of the RLP header, extraData with round 0 and no seals); else the plain
    Ethereum block hash (keccak of the RLP header as served), for chains without QBFT headers (finality model
    ``confirmations:N``). Headers of any fork are read (:func:`provenance.qbft_header.header_fields_from_rpc_block`).
    """
    kind = "QBFT" if bft else "Ethereum"
    try:
        number = hex_int(block["number"], "number")
        if bft:
            recomputed = "0x" + block_hash_from_rpc_block(block).hex()
        else:
            recomputed = "0x" + keccak(rlp.encode(header_fields_from_rpc_block(block))).hex()
    except (KeyError, ValueError, TypeError) as exc:
        return _fail("header", Reason.MALFORMED, f"not a {kind} block header: {exc}")
    reported = str(block.get("hash", "")).lower()
    if expected_hash is not None and reported != str(expected_hash).lower():
        return _fail("header", Reason.HEADER_MISMATCH, f"block {number} has hash {reported}, expected {expected_hash}")
    if recomputed != reported:
        return _fail("header", Reason.HEADER_MISMATCH,
                     f"block {number}: header fields hash to {recomputed}, the block says {reported}")
    how = "QBFT, round 0, no seals" if bft else "plain header"
    return _pass("header", f"block {number} hash {recomputed} recomputed ({how})", number=number)


# ---------------------------------------------------------------------------------------- finality model
FINALITY_QBFT = "qbft"
"""Finality model of a QBFT / IBFT chain: a block is final once a quorum of validators sealed it."""


def parse_finality_model(text: str) -> tuple[str, int]:
    """``"qbft"`` → ``("qbft", 0)``; ``"confirmations:N"`` (N ≥ 1) → ``("confirmations", N)``.

    ``confirmations:N`` is for chains without commit seals (ganache, a public L2): a block counts as final once
    ``N`` blocks, itself included, are on the canonical chain (``head - number + 1 >= N``). Raises ValueError.
    """
    if text == FINALITY_QBFT:
        return FINALITY_QBFT, 0
    name, _, count = text.partition(":")
    if name == "confirmations" and count.isascii() and count.isdigit() and 1 <= int(count) <= 1_000_000:
        return "confirmations", int(count)
    raise ValueError(f"finality model must be 'qbft' or 'confirmations:N' (1 <= N <= 1000000), got {text!r}")


def check_confirmations(block_number: int, block_hash: str, canonical_hash: str | None, head: int,
                        required: int) -> Verdict:
    """Finality under ``confirmations:required``: the canonical block at ``block_number`` is ``block_hash`` and
    ``head - block_number + 1 >= required``. ``canonical_hash`` and ``head`` come from the chain the caller
    trusts (its JSON-RPC endpoint): without seals nothing else can say which block is canonical."""
    if canonical_hash is None or str(canonical_hash).lower() != str(block_hash).lower():
        return _fail("finality_confirmations", Reason.NOT_ANCHORED,
                     f"block {block_number} is {canonical_hash} on the canonical chain, the anchor names {block_hash}")
    confirmations = head - block_number + 1
    if confirmations < required:
        return _fail("finality_confirmations", Reason.NOT_ANCHORED,
                     f"block {block_number} has {confirmations} of the {required} confirmations required")
    return _pass("finality_confirmations", f"block {block_number} has {confirmations} confirmations "
                                           f"(>= {required}; finality model confirmations:{required})",
                 confirmations=confirmations)


def check_transactions(block: Mapping[str, Any]) -> Verdict:
    """Every transaction's hash recomputes from its fields (keccak of the EIP-2718 encoding) and the list
    reproduces the header's ``transactionsRoot``. ``facts['hashes']`` lists the proven hashes."""
    try:
        raws, hashes = [], []
        for j, tx in enumerate(block.get("transactions") or []):
            if not isinstance(tx, Mapping):
                raise ValueError(f"transactions[{j}] is not a full transaction object")
            raw = raw_transaction(tx)
            h = "0x" + keccak(raw).hex()
            if h != str(tx.get("hash", "")).lower():
                return _fail("transactions", Reason.TRANSACTIONS_MISMATCH,
                             f"transactions[{j}] fields hash to {h}, not {tx.get('hash')}")
            raws.append(raw)
            hashes.append(h)
        root = transactions_root(raws)
        header = hex_bytes(block["transactionsRoot"], "transactionsRoot", 32)
    except (KeyError, ValueError, TypeError, rlp.exceptions.RLPException) as exc:
        return _fail("transactions", Reason.MALFORMED, f"{type(exc).__name__}: {exc}")
    if root != header:
        return _fail("transactions", Reason.TRANSACTIONS_MISMATCH,
                     f"transactions trie root 0x{root.hex()} ≠ header 0x{header.hex()}")
    return _pass("transactions", f"{len(raws)} transactions reproduce transactionsRoot", hashes=tuple(hashes))


_SEALED_FIELDS = ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
                  "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
                  "baseFeePerGas", "withdrawalsRoot")


@lru_cache(maxsize=1024)
def _seal_signers(fields: tuple[tuple[str, Any], ...]) -> tuple[str, ...]:
    """Seal signers of a header given as hashable ``(name, value)`` pairs (memoised: ecrecover per seal)."""
    return tuple(recover_seal_signers_from_rpc_block(dict(fields)))


def check_commit_seals(block: Mapping[str, Any], validators: Sequence[str]) -> Verdict:
    """The commit seals in the block's extraData (65-byte secp256k1 signatures over the header with round,
    without seals) recover to at least ``quorum(len(validators))`` distinct members of ``validators``, none
    from outside the set, none twice. ``facts``: ``signers`` (recovered, in seal order), ``good`` (distinct
    trusted signers), ``validators``."""
    try:
        signers = list(_seal_signers(tuple((k, block[k]) for k in _SEALED_FIELDS)))
    except (KeyError, ValueError, TypeError) as exc:
        return _fail("commit_seals", Reason.MALFORMED, f"not a QBFT block header: {exc}")
    valid = {to_checksum_address(v) for v in validators}
    distinct = set(signers)
    good = len(distinct & valid)
    facts = {"signers": tuple(signers), "good": good, "validators": tuple(validators)}
    if not valid:
        return _fail("commit_seals", Reason.SEALS_INSUFFICIENT, "no trusted validator set", **facts)
    need = quorum(len(valid))
    outsiders = sorted(distinct - valid)
    if outsiders:
        return _fail("commit_seals", Reason.SEALS_INSUFFICIENT, f"seals from non-validators: {', '.join(outsiders)}",
                     **facts)
    if len(distinct) != len(signers):
        return _fail("commit_seals", Reason.SEALS_INSUFFICIENT, "duplicate commit seals from the same validator",
                     **facts)
    if good < need:
        return _fail("commit_seals", Reason.SEALS_INSUFFICIENT,
                     f"{good} distinct seals, quorum is {need} of {len(valid)}", **facts)
    return _pass("commit_seals", f"{good} of {len(valid)} validators sealed (quorum {need})", **facts)
