"""Typed exception tree of the :mod:`provenance` package.

Every error raised on purpose by this package derives from :class:`ProvenanceError`, so callers
(ledger, API) can catch the whole family with one ``except`` clause, or a precise subclass when
they need to map errors to HTTP status codes or retry policies.

Hierarchy::

    ProvenanceError(Exception)
    ├── CanonicalizationError(ValueError)   value not representable in RFC 8785 JCS
    ├── InvalidProof                        RFC 9162 §2.1.3.2 / §2.1.4.2 proof rejected
    │   └── RootMismatch                    proof well formed, recomputed root differs
    ├── InvalidIdentifier(ValueError)       malformed ``88.<industry>.<enterprise>/<suffix>``
    ├── InvalidSignature                    malformed or unrecoverable EIP-712 signature
    └── CertificateInvalid                  EN 10168 certificate failed validation (``.issues``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - import only for type checkers
    from provenance.en10168 import CertificateIssue


class ProvenanceError(Exception):
    """Base class of every error raised deliberately by the ``provenance`` package."""


class CanonicalizationError(ProvenanceError, ValueError):
    """A value cannot be serialised with RFC 8785 (JCS), e.g. NaN, infinity or an integer
    outside the IEEE 754 double range of ±2**53."""


class InvalidProof(ProvenanceError):
    """A Merkle inclusion or consistency proof is rejected (RFC 9162 §2.1.3.2, §2.1.4.2).

    Raised for structural problems: index outside the tree, wrong number of proof nodes
    (message such as ``"wrong proof size 3, want 4"``), proof node not 32 bytes, sizes out of
    order. The subclass :class:`RootMismatch` signals a well-formed proof whose recomputed root
    differs from the expected one.
    """


class RootMismatch(InvalidProof):
    """The root recomputed from a proof differs from the expected root.

    Attributes:
        expected: the root the caller trusts (bytes, normally 32 bytes).
        computed: the root recomputed from the leaf/old root and the proof (32 bytes).
    """

    def __init__(self, expected: bytes, computed: bytes, what: str = "root") -> None:
        self.expected = bytes(expected)
        self.computed = bytes(computed)
        super().__init__(
            f"{what} mismatch: computed 0x{self.computed.hex()}, expected 0x{self.expected.hex()}"
        )


class InvalidIdentifier(ProvenanceError, ValueError):
    """A Handle-style identifier or prefix (``88.<industry>.<enterprise>/<suffix>``) is malformed.

    The message names the offending part (prefix, industry, enterprise or suffix) and why.
    """


class InvalidSignature(ProvenanceError):
    """An EIP-712 record signature is malformed (not 65 bytes r‖s‖v, bad v, s out of range)
    or no signer public key can be recovered from it."""


class CertificateInvalid(ProvenanceError):
    """An EN 10168 mill test certificate failed structural or domain validation.

    Attributes:
        issues: every :class:`provenance.en10168.CertificateIssue` found, in document order.
    """

    def __init__(self, issues: list[CertificateIssue], message: str | None = None) -> None:
        self.issues: list[CertificateIssue] = list(issues)
        if message is None:
            head = "; ".join(f"{i.field}: {i.message}" for i in self.issues[:5])
            more = f" (+{len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
            message = f"certificate invalid, {len(self.issues)} issue(s): {head}{more}"
        super().__init__(message)
