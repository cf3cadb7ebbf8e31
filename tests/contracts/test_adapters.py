"""Typed contract adapters (api.workflows.adapters) against the shipped artifacts on eth-tester."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_utils import keccak

from api.workflows.adapters import (
    EnterpriseRole,
    PersonRole,
    ReceivableReader,
    RegistryReader,
    TicketRecord,
    WorkTicketReader,
    decode_struct,
)

from .world import BANK, CNY, CORE, CREW, ISSUER, LEADER, PERMITTER, SUPPLIER, YUAN, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_role_flags_match_the_registry(world: World) -> None:
    f = world.reg.functions
    for role in EnterpriseRole:
        assert getattr(f, role.name)().call() == role.value
    for role in PersonRole:
        assert getattr(f, role.name)().call() == role.value


def test_ticket_and_steps_decode_by_name(world: World) -> None:
    grid = world.enterprise("grid", SUPPLIER, "88.7.1")
    people = {n: world.account(n) for n in ("issuer", "permitter", "leader", "crew1")}
    assert grid == world.acct["grid"]
    for n, r in (("issuer", ISSUER), ("permitter", PERMITTER), ("leader", LEADER), ("crew1", CREW)):
        world.person("grid", n, r, n)
    now = world.now()
    req = ("88.7.1/XFMR-1", keccak(text="doc"), people["permitter"], people["leader"], [people["crew1"]],
           now + 60, now + 3600)
    world.do(people["issuer"], world.wt.functions.issue(req))
    world.do(people["permitter"], world.wt.functions.permit(1))
    reader = WorkTicketReader(world.wt)
    t = reader.ticket(1)
    assert isinstance(t, TicketRecord)
    assert (t.equipment, t.issuer, t.permitter, t.leader, t.crew) == (
        "88.7.1/XFMR-1", people["issuer"], people["permitter"], people["leader"], (people["crew1"],))
    assert t.digest == keccak(text="doc") and t.plannedEnd == now + 3600 and t.status_name == "permitted"
    steps = reader.steps(1)
    assert [s.action_name for s in steps] == ["issue", "permit"]
    assert steps[1].actor == people["permitter"] and not steps[1].relayed
    registry = RegistryReader(world.reg)
    assert registry.has_person_role(people["crew1"], PersonRole.CREW_MEMBER)
    assert not registry.has_person_role(people["crew1"], PersonRole.TICKET_ISSUER)


def test_receivable_records_decode_by_name(world: World) -> None:
    core = world.enterprise("core", CORE, "88.9.1")
    supplier = world.enterprise("supplier", SUPPLIER, "88.9.2")
    world.enterprise("bank", BANK, "88.9.3")
    maturity = world.now() + 86_400
    world.do(core, world.rt.functions.issue(supplier, CNY, maturity, 1000 * YUAN, keccak(text="INV-1")))
    rt = ReceivableReader(world.rt)
    tok = rt.token(1)
    assert (tok.owner, tok.balance, tok.root, tok.parent, tok.financed) == (supplier, 1000 * YUAN, 1, 0, False)
    pay = rt.payable(1)
    assert (pay.issuer, pay.beneficiary, pay.faceValue, pay.invoiceDigest) == (
        core, supplier, 1000 * YUAN, keccak(text="INV-1"))
    assert not rt.discount(1).exists and not rt.settlement(1).exists
    world.do(supplier, world.rt.functions.offerFinancing(1, world.acct["bank"], 500 * YUAN, 350, maturity))
    offer = rt.offer(1, world.acct["bank"])
    assert (offer.holder, offer.value, offer.maxRateBps, offer.expiry) == (supplier, 500 * YUAN, 350, maturity)
    assert RegistryReader(world.reg).has_role(core, EnterpriseRole.CORE_ENTERPRISE)
    assert not RegistryReader(world.reg).has_role(supplier, EnterpriseRole.BANK)


def test_decode_struct_refuses_a_missing_component() -> None:
    @dataclass(frozen=True)
    class Two:
        a: int
        b: int

    assert decode_struct(Two, ["b", "a"], (2, 1)) == Two(a=1, b=2)  # by name, not by position
    with pytest.raises(KeyError, match="'b'"):
        decode_struct(Two, ["a", "c"], (1, 3))
