"""Pure domain logic of the two on-chain workflows: receivable slots/amounts/discounts, work-ticket rules."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from provenance.receivables import (
    decode_slot,
    discount_price,
    encode_slot,
    format_amount,
    invoice_digest,
    parse_amount,
)
from provenance.work_tickets import (
    TicketInvalid,
    TicketParties,
    TicketStepRefused,
    bits_to_roles,
    recover_typed_signer,
    replay_steps,
    roles_to_bits,
    sign_typed,
    signature_hex,
    step_typed_data,
    ticket_digest,
    validate_ticket_document,
)

ISSUER = "0x" + "11" * 20
PERMITTER = "0x" + "22" * 20
LEADER = "0x" + "33" * 20
CREW = ("0x" + "44" * 20, "0x" + "55" * 20, "0x" + "66" * 20)
PARTIES = TicketParties(ISSUER, PERMITTER, LEADER, CREW, planned_end=1_000)
FULL_LIFE = [("issue", ISSUER, 0), ("permit", PERMITTER, 0), ("brief", LEADER, 0),
             *[("acknowledge", c, 0) for c in CREW], ("end_work", LEADER, 0), ("terminate", PERMITTER, 0)]


# ------------------------------------------------------------------ receivables
def test_slot_round_trip_packs_issuer_currency_maturity() -> None:
    slot = encode_slot(ISSUER, "CNY", 1_800_000_000)
    assert slot >> 96 == int(ISSUER, 16)
    decoded = decode_slot(slot)
    assert (decoded.issuer.lower(), decoded.currency, decoded.maturity) == (ISSUER, "CNY", 1_800_000_000)
    assert encode_slot(ISSUER, "EUR", 1_800_000_000) != slot
    assert encode_slot(ISSUER, "CNY", 1_800_000_001) != slot


@pytest.mark.parametrize(("currency", "maturity", "match"), [("cny", 1, "currency"), ("CN", 1, "currency"),
                                                              ("CNY", 0, "maturity"), ("CNY", 2**64, "maturity")])
def test_slot_refuses_bad_arguments(currency: str, maturity: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_slot(ISSUER, currency, maturity)


def test_amounts_are_fen() -> None:
    assert parse_amount("1000000.00") == 100_000_000
    assert parse_amount("400000") == 40_000_000
    assert parse_amount("0.5") == 50
    assert format_amount(15_000_000) == "150000.00"
    for bad in ("-1", "1.234", "abc", "0", ""):
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_discount_price_follows_the_contract_formula() -> None:
    year = 365 * 24 * 3600
    # 150,000.00 at 3.65 % a year for 100 days: interest = value * 365 * 100 days / (10_000 * 365 days)
    value = 15_000_000
    assert discount_price(value, 365, 100 * 24 * 3600) == value - value * 365 * 100 * 24 * 3600 // (10_000 * year)
    assert discount_price(value, 0, year) == value
    assert discount_price(value, 10_000, year) == 0
    assert discount_price(value, 500, 0) == value
    with pytest.raises(ValueError, match="rate_bps"):
        discount_price(value, 10_001, 1)


def test_invoice_digest_is_canonical() -> None:
    a = invoice_digest({"number": "INV-1", "amount": "1000000.00", "currency": "CNY"})
    b = invoice_digest({"currency": "CNY", "amount": "1000000.00", "number": "INV-1"})
    assert a == b and len(a) == 32
    assert invoice_digest({"number": "INV-2", "amount": "1000000.00", "currency": "CNY"}) != a
    with pytest.raises(ValueError):
        invoice_digest({})


# ------------------------------------------------------------------ work tickets
def ticket(**changes: object) -> dict:
    doc = {"equipment": "88.2.7/XZ-110kV-T1", "work_content": "Replace bushing of main transformer T1",
           "safety_measures": ["Open breaker 101", "Earth both sides"], "isolation_points": ["Breaker 101"],
           "planned_start": "2026-05-01T08:00:00+08:00", "planned_end": "2026-05-01T18:00:00+08:00"}
    doc.update(changes)
    return doc


def test_ticket_document_is_validated_and_hashed() -> None:
    parsed = validate_ticket_document(ticket())
    assert parsed.planned_end - parsed.planned_start == 10 * 3600
    assert ticket_digest(ticket()) == ticket_digest(dict(reversed(list(ticket().items()))))
    assert ticket_digest(ticket(work_content="other")) != ticket_digest(ticket())


def test_ticket_document_errors_name_every_field() -> None:
    with pytest.raises(TicketInvalid) as info:
        validate_ticket_document(
            ticket(equipment="not-an-id", safety_measures=[], planned_end="2026-05-01T07:00:00+08:00"))
    fields = {i["field"] for i in info.value.issues}
    assert {"document.equipment", "document.safety_measures", "document.planned_end"} <= fields


def test_roles_bits_round_trip() -> None:
    bits = roles_to_bits(["ticket_issuer", "crew_member"])
    assert bits_to_roles(bits) == ["ticket_issuer", "crew_member"]
    with pytest.raises(ValueError, match="unknown person role"):
        roles_to_bits(["boss"])


def test_full_ticket_life_replays_to_terminated() -> None:
    assert replay_steps(PARTIES, FULL_LIFE) == "terminated"


@pytest.mark.parametrize(("steps", "error"), [
    ([("issue", ISSUER, 0), ("brief", LEADER, 0)], "WrongStatus"),                       # brief before permit
    ([("issue", ISSUER, 0), ("permit", LEADER, 0)], "NotNamedPerson"),                   # wrong person
    ([("issue", PERMITTER, 0)], "NotNamedPerson"),
    (FULL_LIFE[:5] + [("end_work", LEADER, 0)], "CrewNotAcknowledged"),                  # one crew member missing
    (FULL_LIFE[:4] + [("acknowledge", CREW[0], 0)], "AlreadyAcknowledged"),
    (FULL_LIFE[:3] + [("acknowledge", ISSUER, 0)], "NotCrewMember"),
    ([("issue", ISSUER, 0), ("permit", PERMITTER, 0), ("extend", PERMITTER, 500)], "InvalidExtension"),
    ([("issue", ISSUER, 0), ("permit", PERMITTER, 0), ("extend", PERMITTER, 2000), ("extend", PERMITTER, 3000)],
     "ExtensionAlreadyUsed"),
])
def test_refused_steps_name_the_contract_error(steps: list, error: str) -> None:
    with pytest.raises(TicketStepRefused) as info:
        replay_steps(PARTIES, steps)
    assert error in str(info.value.args[0]) or error in str(info.value)


def test_issuer_cannot_be_permitting_officer() -> None:
    with pytest.raises(TicketStepRefused, match="SamePerson|cannot be"):
        replay_steps(TicketParties(ISSUER, ISSUER, LEADER, CREW), FULL_LIFE)


def test_step_signature_recovers_the_person() -> None:
    person = Account.from_key(keccak(b"crew-member"))
    typed = step_typed_data(chain_id=881088, contract="0x" + "ab" * 20, ticket_id=7, action="acknowledge",
                            planned_end=0, nonce=0, deadline=2_000_000_000)
    signature = sign_typed(person.key, typed)
    assert recover_typed_signer(signature, typed) == person.address
    typed["message"]["ticketId"] = 8
    assert recover_typed_signer(signature, typed) != person.address
    with pytest.raises(ValueError):
        step_typed_data(chain_id=1, contract="0x" + "ab" * 20, ticket_id=1, action="issue", planned_end=0,
                        nonce=0, deadline=1)


def test_signature_hex_takes_65_bytes_of_hex() -> None:
    """The one form persons, tickets and steps take a device signature in (api/routes/persons.py, work_tickets.py)."""
    signature = sign_typed(keccak(b"crew-member"), step_typed_data(
        chain_id=881088, contract="0x" + "ab" * 20, ticket_id=7, action="acknowledge", planned_end=0, nonce=0,
        deadline=2_000_000_000))
    assert signature_hex(signature.hex().upper()) == signature_hex("0x" + signature.hex()) == "0x" + signature.hex()
    for bad in ("0x" + "ab" * 64, "0x" + "ab" * 66, "0x" + "zz" * 65, ""):
        with pytest.raises(ValueError, match="65 bytes r"):
            signature_hex(bad)
