"""Pure domain layer of the traceability ledger: canonical record digests, RFC 9162 Merkle proofs,
EN 10168 mill test certificates, EIP-712 enterprise signatures and Handle-style identifiers.

Nothing in this package performs I/O (apart from reading its own sample certificates through
:mod:`importlib.resources`) or imports the ``ledger`` or ``api`` packages; every function is a
deterministic transformation that the chain nodes, the API and offline verifiers share.

:mod:`provenance.errors` — the exception tree rooted at :class:`ProvenanceError`:
:class:`InvalidProof` / :class:`RootMismatch` for rejected Merkle proofs, :class:`InvalidIdentifier`,
:class:`InvalidSignature` and :class:`DocumentInvalid` (``CertificateInvalid``, ``EpcisInvalid``,
``TicketInvalid``) carrying ``.issues``: a list of :class:`Issue` ``(field, rule, message, event_index)``,
the one validation-problem type of the project.

:mod:`provenance.canonical` — RFC 8785 JSON Canonicalization Scheme bytes of a record and its
32-byte SHA-256 *record digest*, the value that is anchored on chain.

:mod:`provenance.merkle` — RFC 9162 §2.1 Merkle tree hash, audit paths (inclusion proofs) and
consistency proofs with their verifiers. A record's leaf entry is its record digest, so its leaf
hash is ``hash_leaf(record_digest(record))``; batches of leaves are anchored by their root.

:mod:`provenance.en10168` — our own structural rules for EN 10168 inspection documents in JSON
(groups A commercial transaction, B product description, C inspection, D other tests,
Z validation) reporting :class:`Issue` items with paths such as
``Certificate.Inspection[0].TensileTest.C11.Value``.

:mod:`provenance.certificate` — EN 10204 3.1/3.2 mill test certificates as domain objects:
structural plus metallurgical checks (yield ≤ tensile strength, elongation 0–100 %, chemistry
0–100 mass-%, units, piece count, coil number B07, document type A02), the coil suffix
``H<heat>-C<coil>`` for identifiers, and a flat summary for listings.

:mod:`provenance.signing` — EIP-712 typed data ``Record(string identifier,string kind,bytes32 digest)``
in the domain ``TraceLedger`` v1 of a chain id; signing with and recovering an enterprise's
secp256k1 key (65-byte r‖s‖v signatures).

:mod:`provenance.identifiers` — identifiers ``88.<industry>.<enterprise>/<suffix>``: parsing,
construction and validation of prefixes and suffixes.

:mod:`provenance.samples` — three sample certificates of the fictitious mill "Nordstahl Walzwerk
GmbH" (package data) for demos and tests.
"""

from provenance.canonical import canonicalize, digest_hex, record_digest
from provenance.certificate import (
    CertificateIssue,
    check_certificate,
    coil_suffix,
    heat_number,
    summarize_certificate,
    validate_certificate,
)
from provenance.errors import (
    CanonicalizationError,
    CertificateInvalid,
    DocumentInvalid,
    InvalidIdentifier,
    InvalidProof,
    InvalidSignature,
    Issue,
    ProvenanceError,
    RootMismatch,
)
from provenance.identifiers import (
    Identifier,
    is_valid_prefix,
    make_identifier,
    parse_identifier,
    parse_prefix,
)
from provenance.merkle import (
    consistency_proof,
    hash_children,
    hash_empty,
    hash_leaf,
    inclusion_proof,
    record_leaf_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from provenance.signing import record_typed_data, recover_record_signer, sign_record

__all__ = [
    "CanonicalizationError",
    "CertificateInvalid",
    "CertificateIssue",
    "DocumentInvalid",
    "Identifier",
    "InvalidIdentifier",
    "InvalidProof",
    "InvalidSignature",
    "Issue",
    "ProvenanceError",
    "RootMismatch",
    "canonicalize",
    "check_certificate",
    "coil_suffix",
    "consistency_proof",
    "digest_hex",
    "hash_children",
    "hash_empty",
    "hash_leaf",
    "heat_number",
    "inclusion_proof",
    "is_valid_prefix",
    "make_identifier",
    "parse_identifier",
    "parse_prefix",
    "record_digest",
    "record_leaf_hash",
    "record_typed_data",
    "recover_record_signer",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "sign_record",
    "summarize_certificate",
    "validate_certificate",
    "verify_consistency",
    "verify_inclusion",
]
