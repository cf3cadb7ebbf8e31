"""Handle-style identifiers of traced objects: ``88.<industry>.<enterprise>/<suffix>``.

Structure (industrial-internet identifier resolution, Handle System syntax ``prefix/suffix``):

* ``88`` — the fixed root of the national industrial-internet identifier namespace;
* ``<industry>`` — industry code, decimal, 1–6 digits, no leading zero;
* ``<enterprise>`` — enterprise code within the industry, decimal, 1–6 digits, no leading zero;
* ``<suffix>`` — object identifier chosen by the enterprise, 1–128 characters of
  ``[A-Za-z0-9._-]`` (URL-safe, needs no percent-encoding).

Leading zeros are rejected so every identifier has exactly one spelling (``88.12.3`` and
``88.012.003`` would otherwise name the same enterprise). Example: ``88.123.4567/H175508-C7282841``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provenance.errors import InvalidIdentifier

__all__ = [
    "ROOT",
    "Identifier",
    "parse_identifier",
    "parse_prefix",
    "make_identifier",
    "is_valid_prefix",
    "is_valid_identifier",
]

ROOT = "88"
_CODE = re.compile(r"(?:0|[1-9][0-9]{0,5})")
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _check_code(value: str, what: str) -> str:
    if not value:
        raise InvalidIdentifier(f"{what} code is empty")
    if not value.isascii() or not value.isdigit():
        raise InvalidIdentifier(f"{what} code {value!r} is not a decimal number")
    if len(value) > 6:
        raise InvalidIdentifier(f"{what} code {value!r} has {len(value)} digits, at most 6 allowed")
    if not _CODE.fullmatch(value):
        raise InvalidIdentifier(f"{what} code {value!r} has a leading zero")
    return value


def _check_suffix(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier("suffix is empty")
    if len(value) > 128:
        raise InvalidIdentifier(f"suffix has {len(value)} characters, at most 128 allowed")
    if not _SUFFIX.fullmatch(value):
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
        raise InvalidIdentifier(f"suffix contains characters outside [A-Za-z0-9._-]: {''.join(bad)!r}")
    return value


@dataclass(frozen=True)
class Identifier:
    """A parsed identifier ``88.<industry>.<enterprise>/<suffix>``.

    Attributes:
        industry: industry code, 1–6 decimal digits (str, canonical, no leading zero).
        enterprise: enterprise code, 1–6 decimal digits (str, canonical).
        suffix: 1–128 characters of ``[A-Za-z0-9._-]``.

    Construct with :func:`parse_identifier` or :func:`make_identifier`; the constructor
    validates too and raises :class:`InvalidIdentifier`.
    """

    industry: str
    enterprise: str
    suffix: str

    def __post_init__(self) -> None:
        _check_code(self.industry, "industry")
        _check_code(self.enterprise, "enterprise")
        _check_suffix(self.suffix)

    @property
    def prefix(self) -> str:
        """The enterprise prefix ``88.<industry>.<enterprise>``."""
        return f"{ROOT}.{self.industry}.{self.enterprise}"

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"


def parse_prefix(s: str) -> tuple[str, str]:
    """Parse an enterprise prefix ``88.<industry>.<enterprise>``.

    Returns:
        ``(industry, enterprise)`` as canonical digit strings.

    Raises:
        InvalidIdentifier: not a string, wrong root, wrong number of dot-separated parts,
            or a code that is empty, non-decimal, longer than 6 digits or zero-padded.
    """
    if not isinstance(s, str):
        raise InvalidIdentifier(f"prefix must be a string, got {type(s).__name__}")
    parts = s.split(".")
    if len(parts) != 3:
        raise InvalidIdentifier(f"prefix {s!r} must have the form 88.<industry>.<enterprise>")
    if parts[0] != ROOT:
        raise InvalidIdentifier(f"prefix {s!r} must start with root {ROOT!r}, got {parts[0]!r}")
    return _check_code(parts[1], "industry"), _check_code(parts[2], "enterprise")


def is_valid_prefix(s: str) -> bool:
    """True when ``s`` is a well-formed prefix ``88.<industry>.<enterprise>``; never raises."""
    try:
        parse_prefix(s)
    except InvalidIdentifier:
        return False
    return True


def parse_identifier(s: str) -> Identifier:
    """Parse ``88.<industry>.<enterprise>/<suffix>``.

    Raises:
        InvalidIdentifier: no ``/`` separator, malformed prefix (see :func:`parse_prefix`) or
            malformed suffix (empty, > 128 characters, characters outside ``[A-Za-z0-9._-]``).
    """
    if not isinstance(s, str):
        raise InvalidIdentifier(f"identifier must be a string, got {type(s).__name__}")
    prefix, sep, suffix = s.partition("/")
    if not sep:
        raise InvalidIdentifier(f"identifier {s!r} has no '/' between prefix and suffix")
    industry, enterprise = parse_prefix(prefix)
    return Identifier(industry, enterprise, _check_suffix(suffix))


def is_valid_identifier(s: str) -> bool:
    """True when ``s`` parses with :func:`parse_identifier`; never raises."""
    try:
        parse_identifier(s)
    except InvalidIdentifier:
        return False
    return True


def make_identifier(prefix: str, suffix: str) -> Identifier:
    """Build an identifier from an enterprise prefix and an object suffix.

    Raises:
        InvalidIdentifier: malformed prefix or suffix.
    """
    industry, enterprise = parse_prefix(prefix)
    return Identifier(industry, enterprise, _check_suffix(suffix))
