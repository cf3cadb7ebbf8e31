"""EnterpriseRegistry entries proven from sealed state: EIP-1186 account and storage proofs, pure.

A bundle carries, per (sealed block, identifier prefix), the ``eth_getProof`` answer of the EnterpriseRegistry
account with the storage slots the verifier needs. :func:`check_enterprise_state` recomputes every slot from the
prefix (so a proof of another entry cannot be passed off), verifies the account proof against the block's
``stateRoot`` and each storage proof against the account's ``storageHash`` (Merkle-Patricia proofs, Yellow Paper
Appendix D; ``trie.HexaryTrie.get_from_proof``), and decodes the entry.

Storage layout of ``contracts/EnterpriseRegistry.sol`` (Solidity storage layout rules: a mapping's value for key
``k`` at ``keccak256(pad32(k) ‖ pad32(slot))``; strings under 32 bytes inline with ``2·len`` in the low byte,
longer ones ``2·len + 1`` with the bytes from ``keccak256(pad32(slot))`` on)::

    0 isAdmin  1 adminCount  2 _enterprises (address => Enterprise{name, prefix, roles|active|exists})
    3 _enterpriseList  4 _prefixOwner (bytes32 keccak(prefix) => address)  5 _anchorerEnterprise …

``tests/workflows`` / ``tests/provenance/test_registry_state.py`` check these slots against the deployed contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address

from provenance.verify import Reason, Verdict, hex_bytes, qty

ENTERPRISES_SLOT = 8
"""Slot of ``mapping(address => Enterprise) _enterprises`` (after ``isAdmin``, ``adminCount``, ``threshold``,
``governanceDelay``, ``proposalCount`` and the three proposal mappings of the m-of-n governance)."""
PREFIX_OWNER_SLOT = 10
"""Slot of ``mapping(bytes32 => address) _prefixOwner`` (key ``keccak256`` of the ASCII-lowercased prefix:
Handle prefixes are case-insensitive, so ``88.AB.1`` and ``88.ab.1`` are one prefix)."""
SM2_PUBLIC_KEYS_SLOT = 16
"""Slot of ``mapping(address => bytes32[2]) _sm2PublicKeys`` (the last state variable: x at the entry's slot, y at
+1; after ``_anchorerEnterprise``, ``_anchorers``, ``_anchorerIndex``, ``_persons``, ``_personsOf``)."""
MAX_NAME_SLOTS = 8
"""Longest enterprise name proven: 8 data slots (256 bytes); the API accepts at most 200 characters."""


class StateProofError(ValueError):
    """An EIP-1186 proof does not verify against its root, or names another account / slot."""


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def prefix_owner_slot(prefix: str) -> int:
    """Slot of ``_prefixOwner[keccak256(lowercase(prefix))]`` (ASCII letters only lowered, as the contract does)."""
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in prefix)
    return int.from_bytes(keccak(keccak(text=lowered) + _word(PREFIX_OWNER_SLOT)), "big")


def enterprise_slot(account: str) -> int:
    """First slot of ``_enterprises[account]`` (``name``; ``prefix`` is +1, ``roles|active|exists`` +2)."""
    return int.from_bytes(keccak(_word(int(account, 16)) + _word(ENTERPRISES_SLOT)), "big")


def sm2_key_slots(account: str) -> list[int]:
    """The two slots (x, y) of ``_sm2PublicKeys[account]``."""
    base = int.from_bytes(keccak(_word(int(account, 16)) + _word(SM2_PUBLIC_KEYS_SLOT)), "big")
    return [base, base + 1]


def string_data_slots(slot: int, head: int) -> list[int]:
    """Data slots of a long string whose head slot ``slot`` holds ``head`` (``2·len + 1``); [] for a short one.

    Raises:
        StateProofError: longer than :data:`MAX_NAME_SLOTS` slots.
    """
    if not head & 1:
        return []
    n = (head // 2 + 31) // 32
    if n > MAX_NAME_SLOTS:
        raise StateProofError(f"string of {head // 2} bytes is longer than {MAX_NAME_SLOTS * 32}")
    first = int.from_bytes(keccak(_word(slot)), "big")
    return [first + i for i in range(n)]


def decode_string(head: int, data: Sequence[int]) -> str:
    """A Solidity ``string`` from its head slot value and (for a long one) its data slot values (UTF-8)."""
    if head & 1:
        raw = b"".join(_word(v) for v in data)[: head // 2]
    else:
        raw = _word(head)[: (head & 0xFF) // 2]
    return raw.decode("utf-8", errors="replace")


def _nodes(proof: Any, what: str) -> list[Any]:
    if not isinstance(proof, list):
        raise StateProofError(f"{what} must be a list of RLP nodes")
    return [rlp.decode(hex_bytes(n, f"{what} node")) for n in proof]


def _get(root: bytes, key: bytes, proof: Any, what: str) -> bytes:
    if not isinstance(proof, list) or not all(isinstance(n, str) for n in proof):
        raise StateProofError(f"{what} must be a list of 0x-hex RLP nodes")
    return _get_cached(root, key, tuple(proof), what)


@lru_cache(maxsize=8192)
def _get_cached(root: bytes, key: bytes, proof: tuple[str, ...], what: str) -> bytes:
    """Value at ``key`` of the trie with ``root`` proven by ``proof`` (memoised: a pure function of its inputs)."""
    from trie import HexaryTrie
    from trie.exceptions import BadTrieProof

    try:
        return bytes(HexaryTrie.get_from_proof(root, key, _nodes(list(proof), what)))
    except (BadTrieProof, rlp.exceptions.RLPException, ValueError, KeyError, TypeError, IndexError) as exc:
        raise StateProofError(f"{what} does not verify: {type(exc).__name__}: {exc}") from exc


def verify_account_proof(state_root: bytes, address: str, proof: Any) -> tuple[int, int, bytes, bytes]:
    """``(nonce, balance, storageRoot, codeHash)`` of ``address`` proven by ``proof`` (EIP-1186 ``accountProof``)
    against the 32-byte ``state_root``; raises :class:`StateProofError` (an absent account proves nothing)."""
    raw = _get(state_root, keccak(hex_bytes(address, "address", 20)), proof, "accountProof")
    if not raw:
        raise StateProofError(f"account {address} is absent from the state")
    fields = rlp.decode(raw)
    if not isinstance(fields, list) or len(fields) != 4:
        raise StateProofError("account leaf is not [nonce, balance, storageRoot, codeHash]")
    nonce, balance, storage_root, code_hash = fields
    return int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), bytes(storage_root), bytes(code_hash)


def verify_storage_proof(storage_root: bytes, slot: int, proof: Any) -> int:
    """The value of ``slot`` proven by ``proof`` against ``storage_root`` (0 for a proven absence)."""
    raw = _get(storage_root, keccak(_word(slot)), proof, f"storageProof of slot {hex(slot)}")
    return int.from_bytes(rlp.decode(raw), "big") if raw else 0


def check_enterprise_state(state_root: Any, registry: str, answer: Mapping[str, Any], prefix: str) -> Verdict:
    """Prove from an ``eth_getProof`` ``answer`` for the EnterpriseRegistry at a sealed block (``state_root``) which
    account owns ``prefix``, whether it is active, its roles and name.

    The slots are recomputed here; the answer's ``value`` fields are not trusted (each is re-derived from its
    proof). ``facts``: ``owner``, ``name``, ``active``, ``roles``. Failing verdicts: MALFORMED (not a proof of
    the registry, or a slot missing), OWNER_UNPROVEN (no owner, or the owner is inactive / unknown).
    When the answer also proves the owner's :func:`sm2_key_slots` (bundles of ``sm`` networks), ``facts`` holds
    ``sm2_public_key``: ``0x04‖x‖y`` bound at that block, or None when none is bound; without those proofs the
    fact is absent (no key proven).
    """
    check = "enterprise_state"
    try:
        root = hex_bytes(state_root, "stateRoot", 32)
        if to_checksum_address(str(answer["address"])) != to_checksum_address(registry):
            raise StateProofError(f"proof of account {answer['address']}, not EnterpriseRegistry {registry}")
        _, _, storage_root, _ = verify_account_proof(root, registry, answer["accountProof"])
        proofs: dict[int, Any] = {}
        for item in answer["storageProof"]:
            proofs[qty(item["key"], "storageProof.key")] = item["proof"]

        def slot(n: int) -> int:
            if n not in proofs:
                raise StateProofError(f"no storage proof of slot {hex(n)}")
            return verify_storage_proof(storage_root, n, proofs[n])

        owner_word = slot(prefix_owner_slot(prefix))
        if owner_word == 0 or owner_word >= 2**160:
            return Verdict(check, False, f"prefix {prefix} has no owner in the registry state",
                           Reason.OWNER_UNPROVEN)
        owner = to_checksum_address(owner_word.to_bytes(20, "big"))
        base = enterprise_slot(owner)
        flags = slot(base + 2)
        roles, active, exists = flags & 0xFFFFFFFF, bool(flags >> 32 & 0xFF), bool(flags >> 40 & 0xFF)
        head = slot(base)
        name = decode_string(head, [slot(s) for s in string_data_slots(base, head)])
        stored_prefix = slot(base + 1)
        if stored_prefix & 1 or decode_string(stored_prefix, []) != prefix:
            raise StateProofError(f"the entry of {owner} holds another prefix than {prefix}")
    except (StateProofError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Verdict(check, False, f"{type(exc).__name__}: {exc}", Reason.MALFORMED)
    facts: dict[str, Any] = {"owner": owner, "name": name, "active": active and exists, "roles": roles}
    sx, sy = sm2_key_slots(owner)
    if sx in proofs and sy in proofs:
        try:
            x = verify_storage_proof(storage_root, sx, proofs[sx])
            y = verify_storage_proof(storage_root, sy, proofs[sy])
        except (StateProofError, ValueError) as exc:
            return Verdict(check, False, f"{type(exc).__name__}: {exc}", Reason.MALFORMED)
        facts["sm2_public_key"] = None if x == 0 else "0x04" + x.to_bytes(32, "big").hex() + y.to_bytes(32, "big").hex()
    if not exists:
        return Verdict(check, False, f"prefix {prefix} names {owner}, not a registered enterprise",
                       Reason.OWNER_UNPROVEN, facts)
    if not active:
        return Verdict(check, False, f"prefix {prefix} is owned by {owner} ({name!r}), inactive at this block",
                       Reason.OWNER_UNPROVEN, facts)
    return Verdict(check, True, f"prefix {prefix} owned by {owner} ({name!r}), active (EIP-1186 proof)",
                   None, facts)


def enterprise_proof_slots(prefix: str, owner: str | None, name_head: int | None = None, *,
                           sm2: bool = False) -> list[int]:
    """The storage slots a bundle builder asks ``eth_getProof`` for: the prefix's owner, then (owner known)
    name, prefix and flags of the entry (and, ``sm2`` for an ``sm`` network, the owner's SM2 key slots), then
    (``name_head`` known) a long name's data slots."""
    out = [prefix_owner_slot(prefix)]
    if owner:
        base = enterprise_slot(owner)
        out += [base, base + 1, base + 2]
        if sm2:
            out += sm2_key_slots(owner)
        if name_head is not None:
            out += string_data_slots(base, name_head)
    return out
