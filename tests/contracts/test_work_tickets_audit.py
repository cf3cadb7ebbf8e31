"""WorkTicket time window, bounded extension, abort exit, equipment ownership and relayer membership (issue 13)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from provenance.work_tickets import sign_typed, step_typed_data

from .world import CREW, ISSUER, LEADER, MANUFACTURER, PERMITTER, World

HOUR = 3600
GRACE = 15 * 60


@pytest.fixture()
def w() -> World:
    world = World()
    world.enterprise("grid", MANUFACTURER, "88.7.1")
    world.enterprise("other", MANUFACTURER, "88.7.2")
    for name, roles in (("issuer", ISSUER), ("permitter", PERMITTER), ("permitter2", PERMITTER),
                        ("leader", LEADER), ("crew1", CREW)):
        world.person("grid", name, roles, name)
    world.person("other", "foreign-officer", PERMITTER)
    return world


def _req(w: World, start: int, end: int, equipment: str = "88.7.1/XZ-110kV-T1") -> tuple:
    return (equipment, keccak(text=f"doc {start}"), w.acct["permitter"], w.acct["leader"], [w.acct["crew1"]],
            start, end)


def _issue(w: World, start: int, end: int) -> int:
    w.do(w.acct["issuer"], w.wt.functions.issue(_req(w, start, end)))
    return int(w.wt.functions.ticketCount().call())


def _at(w: World, t: int) -> None:
    w.travel(t)
    w.w3.provider.ethereum_tester.mine_blocks(1)


def test_tickets_only_on_the_issuers_own_equipment(w: World) -> None:
    now = w.now()
    for equipment in ("88.7.2/XZ-110kV-T1", "XZ-110kV-T1", "88.7.1", "88.7.1/", "88.7.10/T1"):
        w.refused(w.wt.functions.issue(_req(w, now, now + HOUR, equipment)), w.acct["issuer"], "EquipmentNotOwned")


def test_no_backdating_and_bounded_windows(w: World) -> None:
    now = w.now()
    w.refused(w.wt.functions.issue(_req(w, now - HOUR, now + HOUR)), w.acct["issuer"], "WindowInPast")
    w.refused(w.wt.functions.issue(_req(w, now - 3 * HOUR, now - HOUR)), w.acct["issuer"], "WindowInPast")
    w.refused(w.wt.functions.issue(_req(w, now, now + 8 * 24 * HOUR)), w.acct["issuer"], "WindowTooLong")


def test_steps_only_inside_the_window(w: World) -> None:
    f = w.wt.functions
    start = w.now() + 2 * HOUR
    tid = _issue(w, start, start + 4 * HOUR)
    w.refused(f.permit(tid), w.acct["permitter"], "OutsideWindow")  # two hours early
    _at(w, start - GRACE + 5)
    w.do(w.acct["permitter"], f.permit(tid))
    w.do(w.acct["leader"], f.brief(tid))
    _at(w, start + 4 * HOUR + 1)  # the planned end passed, no extension
    w.refused(f.acknowledge(tid), w.acct["crew1"], "OutsideWindow")
    w.refused(f.extend(tid, start + 5 * HOUR), w.acct["permitter"], "OutsideWindow")  # no revival after expiry
    # the only exit: an abort by the permitting officer, with a reason
    w.refused(f.abort(tid, ""), w.acct["permitter"], "EmptyReason")
    w.refused(f.abort(tid, "overran"), w.acct["leader"], "MissingRole")
    w.do(w.acct["permitter"], f.abort(tid, "work overran the planned end; site made safe"))
    assert f.getTicket(tid).call()[8] == 7  # Aborted
    assert f.abortReason(tid).call() == "work overran the planned end; site made safe"
    w.refused(f.abort(tid, "again"), w.acct["permitter"], "WrongStatus")


def test_extension_is_bounded(w: World) -> None:
    f = w.wt.functions
    start = w.now()
    tid = _issue(w, start, start + 4 * HOUR)
    w.do(w.acct["permitter"], f.permit(tid))
    w.refused(f.extend(tid, start + 4 * HOUR + 24 * HOUR + 1), w.acct["permitter"], "InvalidExtension")
    w.do(w.acct["permitter"], f.extend(tid, start + 6 * HOUR))
    logs = w.wt.events.TicketWindow().get_logs(from_block=0)
    assert [(e.args.plannedEnd, e.args.extended) for e in logs] == [(start + 4 * HOUR, False), (start + 6 * HOUR, True)]
    w.do(w.acct["leader"], f.brief(tid))
    w.do(w.acct["crew1"], f.acknowledge(tid))
    _at(w, start + 6 * HOUR + GRACE - 5)  # within the grace after the (extended) end
    w.do(w.acct["leader"], f.endWork(tid))


def test_a_stuck_ticket_can_be_aborted_by_another_officer_of_the_issuer(w: World) -> None:
    f = w.wt.functions
    start = w.now()
    tid = _issue(w, start, start + 4 * HOUR)
    w.do(w.acct["permitter"], f.permit(tid))
    # the named permitting officer leaves: nobody could terminate or cancel the ticket any more
    w.do(w.admin, w.reg.functions.updatePerson(w.acct["permitter"], PERMITTER, "left", False))
    w.refused(f.abort(tid, "officer left"), w.acct["permitter"], "MissingRole")
    w.refused(f.abort(tid, "not mine"), w.acct["foreign-officer"], "NotNamedPerson")
    w.do(w.acct["permitter2"], f.abort(tid, "named permitting officer left the company"))
    steps = f.getSteps(tid).call()
    assert steps[-1][0] == 8 and steps[-1][1] == w.acct["permitter2"]  # Abort by the stand-in


def test_relayer_must_be_a_member(w: World) -> None:
    f = w.wt.functions
    start = w.now()
    tid = _issue(w, start, start + 4 * HOUR)
    deadline = w.now() + HOUR
    typed = step_typed_data(chain_id=w.w3.eth.chain_id, contract=w.wt.address, ticket_id=tid, action="permit",
                            planned_end=0, nonce=f.nonces(w.acct["permitter"]).call(), deadline=deadline)
    sig = sign_typed(w.keys["permitter"], typed)
    stranger = w.account("stranger")
    w.refused(f.stepBySig(tid, 1, 0, w.acct["permitter"], deadline, sig), stranger, "NotPermittedRelayer")
    w.do(w.acct["other"], f.stepBySig(tid, 1, 0, w.acct["permitter"], deadline, sig))  # a member relays
    assert f.getTicket(tid).call()[8] == 2
