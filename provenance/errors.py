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
    └── DocumentInvalid                     a document failed validation (``.issues``: list of Issue)
        ├── CertificateInvalid              EN 10168 certificate (provenance.certificate)
        ├── EpcisInvalid(ValueError)        EPCIS 2.0 document or EPC (provenance.epcis)
        └── TicketInvalid(ValueError)       GB 26860 work ticket (provenance.work_tickets)

Every validation problem the domain reports is one :class:`Issue` ``(field, rule, message,
event_index)``; the API serialises it unchanged as one entry of a 422 ``detail`` list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One validation problem, the single issue type of the project.

    Attributes:
        field: path of the offending value: dots for keys, ``[i]`` for list items, e.g.
            ``Certificate.Inspection[0].TensileTest.C11.Value`` (EN 10168 box C11),
            ``epcisBody.eventList[3].eventTime`` or, as the API adds, ``header.X-Record-Signature``,
            ``query.supersedes``, ``certificates[2].document.…``.
        rule: machine-readable rule id, e.g. ``schema.required``, ``yield-exceeds-tensile``, ``signer``.
        message: human-readable explanation (English).
        event_index: 0-based index of the event in an EPCIS document, None elsewhere (then left out
            of :meth:`as_dict`).
    """

    field: str
    rule: str
    message: str
    event_index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form ``{field, rule, message}`` plus ``event_index`` when set (one 422 ``detail`` item)."""
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "message": self.message}
        if self.event_index is not None:
            out["event_index"] = self.event_index
        return out

    def at(self, prefix: str) -> Issue:
        """The same issue with ``prefix`` put in front of ``field`` (``prefix + field``, no separator added)."""
        return replace(self, field=prefix + self.field)

    @classmethod
    def coerce(cls, value: Issue | Mapping[str, Any]) -> Issue:
        """An :class:`Issue` from itself or from a ``{field, rule, message[, event_index]}`` mapping.

        Raises:
            KeyError: the mapping lacks ``field``, ``rule`` or ``message``.
        """
        if isinstance(value, Issue):
            return value
        index = value.get("event_index")
        return cls(str(value["field"]), str(value["rule"]), str(value["message"]),
                   int(index) if index is not None else None)

    def __getitem__(self, key: str) -> Any:
        """Read access by key (``issue["field"]``), as for the ``{field, rule, message}`` dicts it replaces.

        Raises:
            KeyError: ``key`` is not one of ``field``, ``rule``, ``message``, ``event_index``.
        """
        if key not in ("field", "rule", "message", "event_index"):
            raise KeyError(key)
        return getattr(self, key)


def summarize_issues(issues: Iterable[Issue], limit: int = 5) -> str:
    """``"field: message; …"`` of the first ``limit`` issues, with ``(+N more)`` when there are more."""
    items = list(issues)
    head = "; ".join(f"{i.field}: {i.message}" for i in items[:limit])
    return head + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


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


class DocumentInvalid(ProvenanceError):
    """A document failed validation; ``issues`` lists every problem found, in document order.

    Attributes:
        issues: list of :class:`Issue` (mappings ``{field, rule, message[, event_index]}`` given to the
            constructor are converted).
    """

    def __init__(self, issues: Iterable[Issue | Mapping[str, Any]], message: str | None = None) -> None:
        self.issues: list[Issue] = [Issue.coerce(i) for i in issues]
        super().__init__(message if message is not None else summarize_issues(self.issues))


class CertificateInvalid(DocumentInvalid):
    """An EN 10168 mill test certificate failed structural or domain validation.

    Attributes:
        issues: every :class:`Issue` found, in document order.
    """

    def __init__(self, issues: Iterable[Issue | Mapping[str, Any]], message: str | None = None) -> None:
        found = [Issue.coerce(i) for i in issues]
        if message is None:
            message = f"certificate invalid, {len(found)} issue(s): {summarize_issues(found)}"
        super().__init__(found, message)
