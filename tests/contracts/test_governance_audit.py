"""EnterpriseRegistry governance and persons as an auditor attacks them (issue 13), on eth-tester."""

from __future__ import annotations

import pytest

from .world import CREW, MANUFACTURER, SUPPLIER, World

SET_ACTIVE, ADD_ADMIN, REMOVE_ADMIN, SET_ROLES, SET_THRESHOLD = 3, 0, 1, 2, 4
DAY = 86_400


@pytest.fixture()
def w() -> World:
    world = World()
    world.enterprise("grid", MANUFACTURER, "88.7.1")
    return world


def _mine(w: World) -> None:
    w.w3.provider.ethereum_tester.mine_blocks(1)


def _proposal_id(w: World, receipt) -> int:
    return int(w.reg.events.Proposed().process_receipt(receipt)[0].args.id)


def test_one_key_cannot_govern_once_a_quorum_is_set(w: World) -> None:
    f = w.reg.functions
    admin2, admin3 = w.account("admin2"), w.account("admin3")
    w.do(w.admin, f.addAdmin(admin2))  # bootstrap: a one-admin network adds its first peers directly
    w.do(w.admin, f.addAdmin(admin3))
    # 2-of-3 with a one-day delay, by proposal
    pid = _proposal_id(w, w.do(w.admin, f.propose(SET_THRESHOLD, w.admin, 2 | (DAY << 128))))
    w.do(w.admin, f.executeProposal(pid))  # threshold is still 1, delay 0
    assert (f.threshold().call(), f.governanceDelay().call()) == (2, DAY)
    # now no single admin adds, removes, grants or deactivates
    grid = w.acct["grid"]
    for fn in (f.addAdmin(w.account("rogue")), f.removeAdmin(admin2), f.setActive(grid, False),
               f.setRoles(grid, 63)):
        w.refused(fn, w.admin, "QuorumRequired")
    pid = _proposal_id(w, w.do(w.admin, f.propose(SET_ACTIVE, grid, 0)))
    w.refused(f.executeProposal(pid), w.admin, "QuorumNotReached")
    w.refused(f.approveProposal(pid), w.admin, "AlreadyApproved")
    w.refused(f.approveProposal(pid), w.acct["grid"], "NotAdmin")
    w.do(admin2, f.approveProposal(pid))
    w.refused(f.executeProposal(pid), w.admin, "DelayNotElapsed")
    w.travel(w.now() + DAY + 1)
    _mine(w)
    w.do(admin3, f.executeProposal(pid))
    assert not f.isActive(grid).call()
    w.refused(f.executeProposal(pid), w.admin, "AlreadyExecuted")
    # a quorum cannot be left unreachable
    pid = _proposal_id(w, w.do(w.admin, f.propose(SET_THRESHOLD, w.admin, 4)))
    w.do(admin2, f.approveProposal(pid))
    w.travel(w.now() + DAY + 1)
    _mine(w)
    w.refused(f.executeProposal(pid), w.admin, "InvalidThreshold")


def test_admin_key_rotation_works(w: World) -> None:
    """An admin added later used to be no permitted sender: the validators refused its transactions."""
    f = w.reg.functions
    new_admin = w.account("new-admin")
    assert not f.isPermittedSender(new_admin).call()
    w.do(w.admin, f.addAdmin(new_admin))
    assert f.isPermittedSender(new_admin).call()
    w.do(new_admin, f.removeAdmin(w.admin))  # the old key retires; the new one governs
    assert not f.isAdmin(w.admin).call() and f.isPermittedSender(new_admin).call()
    assert not f.isPermittedSender(w.admin).call()


def test_person_registration_needs_the_persons_signature(w: World) -> None:
    """Squatting: an enterprise claimed any address as its person, so it could never become an enterprise."""
    f = w.reg.functions
    victim = w.account("victim")
    w.refused(w.person_call("grid", "victim", CREW, signer="grid"), w.acct["grid"], "WrongSigner")
    w.refused(w.person_call("grid", "victim", CREW, deadline=w.now() - 1), w.acct["grid"], "SignatureExpired")
    bad = w.person_call("grid", "victim", CREW)
    tampered = f.registerPerson(w.acct["grid"], victim, CREW | 1, "", *bad.args[4:])  # roles not what was signed
    w.refused(tampered, w.acct["grid"], "WrongSigner")
    # the victim stays free to become an enterprise
    w.do(w.admin, f.registerEnterprise(victim, "Victim Co.", SUPPLIER, "88.7.2"))
    assert f.isActive(victim).call()


def test_admin_deactivation_sticks_and_persons_retire(w: World) -> None:
    f = w.reg.functions
    crew = w.person("grid", "crew", CREW, "crew")
    w.do(w.admin, f.updatePerson(crew, CREW, "suspended: safety breach", False))
    # the enterprise cannot undo the admin's deactivation
    w.refused(f.updatePerson(crew, CREW, "reinstated", True), w.acct["grid"], "DeactivatedByAdmin")
    assert not f.isActivePerson(crew).call() and f.personStatus(crew).call() == [True, False]
    w.do(w.admin, f.updatePerson(crew, CREW, "reinstated by governance", True))
    assert f.isActivePerson(crew).call()
    # retirement is final, for the enterprise and the admins alike
    w.do(w.acct["grid"], f.retirePerson(crew))
    assert not f.isPermittedSender(crew).call()
    w.refused(f.updatePerson(crew, CREW, "back", True), w.admin, "PersonIsRetired")
    w.refused(f.retirePerson(crew), w.acct["grid"], "PersonIsRetired")
    w.refused(w.person_call("grid", "crew", CREW), w.acct["grid"], "PersonExists")


def test_an_expelled_enterprise_cannot_manage_persons(w: World) -> None:
    f = w.reg.functions
    crew = w.person("grid", "crew", CREW)
    w.do(w.admin, f.setActive(w.acct["grid"], False))
    w.refused(w.person_call("grid", "crew2", CREW), w.acct["grid"], "InactiveEnterprise")
    w.refused(f.updatePerson(crew, CREW, "x", True), w.acct["grid"], "InactiveEnterprise")
    assert not f.isPermittedSender(crew).call()  # its persons lose their permission with it


def test_look_alike_prefixes_are_one_prefix(w: World) -> None:
    """Handle prefixes are case-insensitive: "88.AB.1" cannot be registered beside "88.ab.1"."""
    f = w.reg.functions
    mill = w.account("mill")
    w.do(w.admin, f.registerEnterprise(mill, "Mill", MANUFACTURER, "88.ab.1"))
    w.refused(f.registerEnterprise(w.account("copycat"), "Copycat", MANUFACTURER, "88.AB.1"), w.admin, "PrefixTaken")
    assert f.enterpriseByPrefix("88.Ab.1").call() == mill
