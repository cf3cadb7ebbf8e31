from __future__ import annotations

import pytest

from provenance.errors import InvalidIdentifier, ProvenanceError
from provenance.identifiers import (
    Identifier,
    is_valid_identifier,
    is_valid_prefix,
    make_identifier,
    parse_identifier,
    parse_prefix,
)


def test_parse_and_format_roundtrip() -> None:
    ident = parse_identifier("88.123.4567/HK52791-CNW24-118734")
    assert ident == Identifier("123", "4567", "HK52791-CNW24-118734")
    assert ident.prefix == "88.123.4567"
    assert str(ident) == "88.123.4567/HK52791-CNW24-118734"
    assert make_identifier("88.123.4567", "HK52791-CNW24-118734") == ident


def test_identifier_is_frozen() -> None:
    ident = parse_identifier("88.1.2/a")
    with pytest.raises(AttributeError):
        ident.suffix = "b"  # type: ignore[misc]


def test_parse_prefix() -> None:
    assert parse_prefix("88.999999.1") == ("999999", "1")
    assert is_valid_prefix("88.1.2")
    assert not is_valid_prefix("88.1")
    assert not is_valid_prefix(12)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("88.123.4567", "no '/'"),
        ("89.123.4567/x", "root"),
        ("88.123/x", "form"),
        ("88.1.2.3/x", "form"),
        ("88..4567/x", "industry code is empty"),
        ("88.1234567.1/x", "industry code '1234567' has 7 digits"),
        ("88.12a.1/x", "industry code '12a' is not a decimal"),
        ("88.1.0042/x", "enterprise code '0042' has a leading zero"),
        ("88.1.٣/x", "not a decimal"),
        ("88.1.2/", "suffix is empty"),
        ("88.1.2/" + "a" * 129, "129 characters"),
        ("88.1.2/coil 42", "outside"),
        ("88.1.2/a/b", "outside"),
        ("88.1.2/ä", "outside"),
    ],
)
def test_invalid_identifiers_name_the_problem(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as info:
        parse_identifier(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ProvenanceError)
    assert not is_valid_identifier(text)


def test_suffix_limits() -> None:
    assert parse_identifier("88.1.2/" + "A" * 128).suffix == "A" * 128
    assert parse_identifier("88.1.2/a.b_c-D9").suffix == "a.b_c-D9"
    with pytest.raises(InvalidIdentifier):
        make_identifier("88.1.2", "bad suffix")
    with pytest.raises(InvalidIdentifier):
        Identifier("01", "2", "x")
