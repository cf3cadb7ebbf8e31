"""Behaviour of EnterpriseRegistry and AnchorRegistry on eth-tester (py-evm backend)."""

from __future__ import annotations

import pytest
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractLogicError

from .conftest import assert_reverts

MANUFACTURER, SUPPLIER, CORE_ENTERPRISE, BANK, AUDITOR, REGULATOR = 1, 2, 4, 8, 16, 32
ZERO = "0x" + "00" * 20

ROOT_A = keccak(text="batch-a")
ROOT_B = keccak(text="batch-b")
DIGEST = keccak(text="metadata")


def _mine(w3, fn, sender):
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))
    assert receipt.status == 1
    return receipt


def _register(w3, registry, admin, account, name="Baosteel Coil", roles=MANUFACTURER, prefix="88.101.1"):
    return _mine(w3, registry.functions.registerEnterprise(account, name, roles, prefix), admin)


# --------------------------------------------------------------------------- EnterpriseRegistry


def test_role_constants(registry) -> None:
    f = registry.functions
    assert f.MANUFACTURER().call() == MANUFACTURER
    assert f.SUPPLIER().call() == SUPPLIER
    assert f.CORE_ENTERPRISE().call() == CORE_ENTERPRISE
    assert f.BANK().call() == BANK
    assert f.AUDITOR().call() == AUDITOR
    assert f.REGULATOR().call() == REGULATOR


def test_constructor_admins(registry, admins, accounts) -> None:
    assert all(registry.functions.isAdmin(a).call() for a in admins)
    assert not registry.functions.isAdmin(accounts[5]).call()
    assert registry.functions.adminCount().call() == len(admins)


def test_admin_registers_enterprise(w3, registry, admins, accounts) -> None:
    ent = accounts[3]
    receipt = _register(w3, registry, admins[0], ent, roles=MANUFACTURER | SUPPLIER)
    (event,) = registry.events.EnterpriseRegistered().process_receipt(receipt)
    assert event.args.account == ent
    assert event.args.name == "Baosteel Coil"
    assert event.args.roles == MANUFACTURER | SUPPLIER
    assert event.args.prefix == "88.101.1"

    assert registry.functions.getEnterprise(ent).call() == ["Baosteel Coil", 3, "88.101.1", True, True]
    assert registry.functions.isActive(ent).call()
    assert registry.functions.isMember(ent).call()
    assert registry.functions.isActiveAnchorer(ent).call()
    assert registry.functions.enterpriseOfAnchorer(ent).call() == ent
    assert registry.functions.enterpriseCount().call() == 1
    assert registry.functions.enterpriseAt(0).call() == ent
    assert registry.functions.enterpriseByPrefix("88.101.1").call() == ent
    assert registry.functions.hasRole(ent, SUPPLIER).call()
    assert not registry.functions.hasRole(ent, BANK).call()


def test_unknown_enterprise_views(registry, accounts) -> None:
    assert registry.functions.getEnterprise(accounts[7]).call() == ["", 0, "", False, False]
    assert not registry.functions.isActive(accounts[7]).call()
    assert not registry.functions.isActiveAnchorer(accounts[7]).call()
    assert registry.functions.enterpriseOfAnchorer(accounts[7]).call() == ZERO
    assert registry.functions.enterpriseCount().call() == 0


def test_non_admin_cannot_register(registry, accounts) -> None:
    outsider = accounts[5]
    fn = registry.functions.registerEnterprise(accounts[3], "X", MANUFACTURER, "88.101.1")
    assert_reverts(fn, {"from": outsider}, registry, "NotAdmin", (outsider,))


def test_duplicate_prefix_refused(w3, registry, admins, accounts) -> None:
    _register(w3, registry, admins[0], accounts[3], prefix="88.101.1")
    fn = registry.functions.registerEnterprise(accounts[4], "Other", SUPPLIER, "88.101.1")
    assert_reverts(fn, {"from": admins[1]}, registry, "PrefixTaken", ("88.101.1", accounts[3]))
    # same account twice is refused too
    fn = registry.functions.registerEnterprise(accounts[3], "Again", SUPPLIER, "88.101.2")
    assert_reverts(fn, {"from": admins[0]}, registry, "EnterpriseExists", (accounts[3],))


def test_invalid_registration_arguments(registry, admins, accounts) -> None:
    f, tx = registry.functions, {"from": admins[0]}
    for prefix in ["", "88", "88.1", "89.1.2", "88..2", "88.1.", "88.1.2.3", "88.1 .2", "88.1/2"]:
        assert_reverts(
            f.registerEnterprise(accounts[3], "X", 1, prefix), tx, registry, "InvalidPrefix", (prefix,)
        )
    assert_reverts(f.registerEnterprise(accounts[3], "X", 0, "88.1.2"), tx, registry, "InvalidRoles", (0,))
    assert_reverts(f.registerEnterprise(accounts[3], "X", 256, "88.1.2"), tx, registry, "InvalidRoles", (256,))
    assert_reverts(f.registerEnterprise(accounts[3], "", 1, "88.1.2"), tx, registry, "EmptyName")
    assert_reverts(f.registerEnterprise(ZERO, "X", 1, "88.1.2"), tx, registry, "ZeroAddress")


def test_set_active_and_roles(w3, registry, admins, accounts) -> None:
    ent = accounts[3]
    _register(w3, registry, admins[0], ent)
    receipt = _mine(w3, registry.functions.setActive(ent, False), admins[1])
    (event,) = registry.events.EnterpriseUpdated().process_receipt(receipt)
    assert (event.args.account, event.args.roles, event.args.active) == (ent, MANUFACTURER, False)
    assert not registry.functions.isActive(ent).call()
    assert not registry.functions.isMember(ent).call()
    assert not registry.functions.isActiveAnchorer(ent).call()

    receipt = _mine(w3, registry.functions.setRoles(ent, BANK | AUDITOR), admins[0])
    (event,) = registry.events.EnterpriseUpdated().process_receipt(receipt)
    assert (event.args.roles, event.args.active) == (BANK | AUDITOR, False)
    assert registry.functions.getEnterprise(ent).call()[1] == BANK | AUDITOR

    assert_reverts(registry.functions.setActive(ent, True), {"from": ent}, registry, "NotAdmin", (ent,))
    assert_reverts(
        registry.functions.setActive(accounts[6], True), {"from": admins[0]}, registry, "UnknownEnterprise"
    )
    assert_reverts(registry.functions.setRoles(ent, 0), {"from": admins[0]}, registry, "InvalidRoles")


def test_admin_management(w3, registry, admins, accounts) -> None:
    new = accounts[6]
    receipt = _mine(w3, registry.functions.addAdmin(new), admins[0])
    (event,) = registry.events.AdminAdded().process_receipt(receipt)
    assert (event.args.admin, event.args.by) == (new, admins[0])
    assert registry.functions.isAdmin(new).call()
    assert_reverts(registry.functions.addAdmin(new), {"from": admins[0]}, registry, "AlreadyAdmin", (new,))

    receipt = _mine(w3, registry.functions.removeAdmin(admins[0]), new)
    (event,) = registry.events.AdminRemoved().process_receipt(receipt)
    assert (event.args.admin, event.args.by) == (admins[0], new)
    assert_reverts(registry.functions.addAdmin(accounts[7]), {"from": admins[0]}, registry, "NotAdmin")

    _mine(w3, registry.functions.removeAdmin(admins[1]), new)
    assert registry.functions.adminCount().call() == 1
    assert_reverts(registry.functions.removeAdmin(new), {"from": new}, registry, "LastAdmin", (new,))


# --------------------------------------------------------------------------- AnchorRegistry


def test_active_enterprise_anchors(w3, registry, anchors, admins, accounts) -> None:
    ent = accounts[3]
    _register(w3, registry, admins[0], ent)
    assert anchors.functions.enterpriseRegistry().call() == registry.address
    assert not anchors.functions.isAnchored(ROOT_A).call()
    assert anchors.functions.getAnchor(ROOT_A).call() == [0, ZERO, 0, b"\x00" * 32, 0]

    receipt = _mine(w3, anchors.functions.anchor(ROOT_A, 128, DIGEST), ent)
    (event,) = anchors.events.Anchored().process_receipt(receipt)
    assert event.args.root == ROOT_A
    assert event.args.submitter == ent
    assert event.args.size == 128
    assert event.args.metadataDigest == DIGEST
    assert event.args.blockNumber == receipt.blockNumber

    block = w3.eth.get_block(receipt.blockNumber)
    assert anchors.functions.getAnchor(ROOT_A).call() == [
        receipt.blockNumber,
        ent,
        128,
        DIGEST,
        block.timestamp,
    ]
    assert anchors.functions.isAnchored(ROOT_A).call()
    assert anchors.functions.anchorCount().call() == 1


def test_duplicate_root_refused(w3, registry, anchors, admins, accounts) -> None:
    ent = accounts[3]
    _register(w3, registry, admins[0], ent)
    _mine(w3, anchors.functions.anchor(ROOT_A, 1, DIGEST), ent)
    fn = anchors.functions.anchor(ROOT_A, 2, DIGEST)
    assert_reverts(fn, {"from": ent}, anchors, "RootAlreadyAnchored", (ROOT_A,))
    assert anchors.functions.anchorCount().call() == 1


def test_inactive_enterprise_refused(w3, registry, anchors, admins, accounts) -> None:
    ent = accounts[3]
    _register(w3, registry, admins[0], ent)
    _mine(w3, registry.functions.setActive(ent, False), admins[0])
    fn = anchors.functions.anchor(ROOT_A, 1, DIGEST)
    assert_reverts(fn, {"from": ent}, anchors, "NotActiveAnchorer", (ent,))
    _mine(w3, registry.functions.setActive(ent, True), admins[0])
    _mine(w3, anchors.functions.anchor(ROOT_A, 1, DIGEST), ent)


def test_non_member_refused(anchors, accounts, admins) -> None:
    for who in (accounts[8], admins[0]):  # admins are not members either
        fn = anchors.functions.anchor(ROOT_A, 1, DIGEST)
        assert_reverts(fn, {"from": who}, anchors, "NotActiveAnchorer", (who,))


def test_anchoring_account_may_anchor_until_removed(w3, registry, anchors, admins, accounts) -> None:
    ent, anchorer = accounts[3], accounts[4]
    _register(w3, registry, admins[0], ent)
    assert not registry.functions.isActiveAnchorer(anchorer).call()

    receipt = _mine(w3, registry.functions.addAnchoringAccount(ent, anchorer), admins[0])
    (event,) = registry.events.AnchoringAccountAdded().process_receipt(receipt)
    assert (event.args.enterprise, event.args.anchorer) == (ent, anchorer)
    assert registry.functions.isActiveAnchorer(anchorer).call()
    assert registry.functions.enterpriseOfAnchorer(anchorer).call() == ent
    assert registry.functions.anchoringAccounts(ent).call() == [anchorer]
    assert not registry.functions.isMember(anchorer).call()

    receipt = _mine(w3, anchors.functions.anchor(ROOT_A, 10, DIGEST), anchorer)
    (event,) = anchors.events.Anchored().process_receipt(receipt)
    assert event.args.submitter == anchorer
    assert anchors.functions.getAnchor(ROOT_A).call()[1] == anchorer

    # deactivating the enterprise also stops its anchoring accounts
    _mine(w3, registry.functions.setActive(ent, False), admins[0])
    assert_reverts(
        anchors.functions.anchor(ROOT_B, 1, DIGEST), {"from": anchorer}, anchors, "NotActiveAnchorer"
    )
    _mine(w3, registry.functions.setActive(ent, True), admins[0])

    receipt = _mine(w3, registry.functions.removeAnchoringAccount(ent, anchorer), admins[1])
    (event,) = registry.events.AnchoringAccountRemoved().process_receipt(receipt)
    assert (event.args.enterprise, event.args.anchorer) == (ent, anchorer)
    assert not registry.functions.isActiveAnchorer(anchorer).call()
    assert registry.functions.enterpriseOfAnchorer(anchorer).call() == ZERO
    assert registry.functions.anchoringAccounts(ent).call() == []
    fn = anchors.functions.anchor(ROOT_B, 1, DIGEST)
    assert_reverts(fn, {"from": anchorer}, anchors, "NotActiveAnchorer", (anchorer,))
    # the enterprise account itself still anchors
    _mine(w3, anchors.functions.anchor(ROOT_B, 1, DIGEST), ent)


def test_anchoring_account_constraints(w3, registry, admins, accounts) -> None:
    ent, other, a1, a2, a3 = accounts[3], accounts[4], accounts[5], accounts[6], accounts[7]
    _register(w3, registry, admins[0], ent, prefix="88.101.1")
    _register(w3, registry, admins[0], other, prefix="88.101.2")
    f, tx = registry.functions, {"from": admins[0]}
    for a in (a1, a2, a3):
        _mine(w3, f.addAnchoringAccount(ent, a), admins[0])
    assert_reverts(f.addAnchoringAccount(other, a1), tx, registry, "AnchorerAlreadyAssigned", (a1, ent))
    assert_reverts(f.addAnchoringAccount(ent, other), tx, registry, "AnchorerIsEnterprise", (other,))
    assert_reverts(f.addAnchoringAccount(accounts[8], a1), tx, registry, "UnknownEnterprise")
    assert_reverts(f.addAnchoringAccount(ent, a1), {"from": ent}, registry, "NotAdmin")
    assert_reverts(f.removeAnchoringAccount(other, a1), tx, registry, "NotAnchoringAccount", (other, a1))
    assert_reverts(f.registerEnterprise(a1, "X", 1, "88.101.3"), tx, registry, "AccountIsAnchorer", (a1, ent))
    # swap-and-pop removal keeps the list consistent
    _mine(w3, f.removeAnchoringAccount(ent, a1), admins[0])
    assert sorted(f.anchoringAccounts(ent).call()) == sorted([a2, a3])
    _mine(w3, f.removeAnchoringAccount(ent, a3), admins[0])
    assert f.anchoringAccounts(ent).call() == [a2]
    # a released account can be bound to another enterprise
    _mine(w3, f.addAnchoringAccount(other, a1), admins[0])
    assert f.enterpriseOfAnchorer(a1).call() == other


def test_size_zero_refused(w3, registry, anchors, admins, accounts) -> None:
    ent = accounts[3]
    _register(w3, registry, admins[0], ent)
    assert_reverts(anchors.functions.anchor(ROOT_A, 0, DIGEST), {"from": ent}, anchors, "EmptyBatch")
    assert_reverts(anchors.functions.anchor(b"\x00" * 32, 1, DIGEST), {"from": ent}, anchors, "ZeroRoot")
    assert not anchors.functions.isAnchored(ROOT_A).call()
    assert anchors.functions.anchorCount().call() == 0


def test_enterprise_at_out_of_range(registry) -> None:
    with pytest.raises((TransactionFailed, ContractLogicError)):
        registry.functions.enterpriseAt(0).call()
