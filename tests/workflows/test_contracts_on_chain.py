"""WorkTicket, ReceivableToken and person permissioning with web3.py against our own QBFT chain.

Every transition is a mined transaction; every refusal is checked by its custom error (eth_call at
the head, which is what the transaction would execute against).
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_utils import keccak
from web3.logs import DISCARD

from provenance.receivables import decode_slot, discount_price, encode_slot
from provenance.work_tickets import (
    ACTIONS,
    TicketParties,
    issue_typed_data,
    replay_steps,
    sign_typed,
    step_typed_data,
)

from .conftest import Chain

pytestmark = pytest.mark.integration

MANUFACTURER, SUPPLIER, CORE, BANK = 1, 2, 4, 8
ISSUER, PERMITTER, LEADER, CREW = 1, 2, 4, 8
CNY = b"CNY"
YUAN = 100  # fen


# --------------------------------------------------------------------------- permissioning + persons


@pytest.fixture(scope="module")
def grid(chain: Chain) -> dict:
    """A power company with seven named people (registered by the company itself)."""
    ent, *people = chain.new_accounts(9)
    reg = chain.registry.functions
    chain.do(chain.admin, reg.registerEnterprise(ent.address, "State Grid Xinzhuang", MANUFACTURER, "88.7.1"))
    names = ["issuer", "permitter", "leader", "crew1", "crew2", "crew3", "both", "outsider"]
    roles = [ISSUER, PERMITTER, LEADER, CREW, CREW, CREW, ISSUER | PERMITTER]
    p = dict(zip(names, people, strict=True))
    # a funded person that is not registered yet may not transact (-32007)
    with pytest.raises(Exception, match="32007|not permitted"):
        chain.submit(p["issuer"], to=p["issuer"].address, value=0)
    chain.wait(*[chain.submit(ent, chain.register_person(ent, p[n], r, f"{n}: 110 kV Xinzhuang"))
                 for n, r in zip(names, roles, strict=False)])
    return {"enterprise": ent, **p}


def test_person_registry_and_permissioning(chain: Chain, grid: dict) -> None:
    reg = chain.registry.functions
    assert reg.getPerson(grid["issuer"].address).call() == [grid["enterprise"].address, ISSUER,
                                                            "issuer: 110 kV Xinzhuang", True]
    assert reg.isPermittedSender(grid["crew1"].address).call()
    assert not reg.isPermittedSender(grid["outsider"].address).call()
    assert not reg.isActiveAnchorer(grid["crew1"].address).call()  # persons do not anchor
    assert reg.hasPersonRole(grid["both"].address, ISSUER | PERMITTER).call()
    # only the enterprise itself or an admin registers its people; no double registration
    chain.refused(chain.register_person(grid["enterprise"], grid["outsider"], CREW, "x"),
                  grid["crew1"].address, "NotAdminOrEnterprise")
    chain.refused(chain.register_person(grid["enterprise"], grid["crew1"], CREW, "x"),
                  grid["enterprise"].address, "PersonExists")
    chain.refused(chain.register_person(grid["enterprise"], grid["outsider"], 16, "x"),
                  grid["enterprise"].address, "InvalidPersonRoles")
    # proof of possession: a registration the person did not sign is refused (no squatting)
    squat = chain.register_person(grid["enterprise"], grid["outsider"], CREW, "x")
    forged = chain.registry.functions.registerPerson(grid["enterprise"].address, grid["outsider"].address, CREW,
                                                     "y", *squat.args[4:])
    chain.refused(forged, grid["enterprise"].address, "WrongSigner")
    # a registered person's transaction is accepted by the validator
    chain.wait(chain.submit(grid["crew1"], to=grid["crew1"].address, value=0))


# --------------------------------------------------------------------------- work tickets


def _request(grid: dict, equipment: str = "88.7.1/XZ-110kV-T1", crew: tuple[str, ...] = ("crew1", "crew2", "crew3"),
             permitter: str = "permitter", leader: str = "leader") -> tuple:
    now = int(time.time())
    return (equipment, keccak(text=f"ticket document {equipment} {now}"), grid[permitter].address,
            grid[leader].address, [grid[c].address for c in crew], now, now + 8 * 3600)


def test_work_ticket_full_life_and_refusals(chain: Chain, grid: dict) -> None:
    wt = chain.tickets.functions
    issuer, permitter, leader = grid["issuer"], grid["permitter"], grid["leader"]
    crew = [grid["crew1"], grid["crew2"], grid["crew3"]]
    req = _request(grid)

    # issue-time refusals
    chain.refused(wt.issue(_request(grid, permitter="both")), grid["both"].address, "SamePerson")
    chain.refused(wt.issue(_request(grid, permitter="leader")), issuer.address, "SamePerson")
    chain.refused(wt.issue(req), crew[0].address, "MissingRole")  # a crew member cannot issue
    chain.refused(wt.issue(_request(grid, permitter="crew1", crew=("crew2",))), issuer.address, "MissingRole")
    chain.refused(wt.issue(_request(grid, crew=("crew1", "crew1"))), issuer.address, "SamePerson")
    chain.refused(wt.issue(_request(grid, crew=())), issuer.address, "InvalidCrewSize")
    chain.refused(wt.issue(_request(grid, equipment="")), issuer.address, "EmptyEquipment")

    receipt = chain.do(issuer, wt.issue(req))
    (event,) = chain.tickets.events.TicketIssued().process_receipt(receipt, errors=DISCARD)
    tid = event.args.ticketId

    # out of order and wrong person
    chain.refused(wt.brief(tid), leader.address, "WrongStatus")
    chain.refused(wt.permit(tid), leader.address, "NotNamedPerson")
    chain.refused(wt.permit(999), permitter.address, "UnknownTicket")
    chain.do(permitter, wt.permit(tid))
    chain.refused(wt.permit(tid), permitter.address, "WrongStatus")
    chain.refused(wt.acknowledge(tid), crew[0].address, "WrongStatus")  # before the briefing
    chain.refused(wt.cancel(tid), issuer.address, "WrongStatus")  # cancel only before the permit
    chain.do(leader, wt.brief(tid))
    chain.refused(wt.endWork(tid), leader.address, "CrewNotAcknowledged")
    chain.refused(wt.acknowledge(tid), grid["both"].address, "NotCrewMember")
    chain.wait(*[chain.submit(c, wt.acknowledge(tid)) for c in crew[:2]],
               chain.submit(permitter, wt.extend(tid, req[6] + 3600)))
    chain.refused(wt.acknowledge(tid), crew[0].address, "AlreadyAcknowledged")
    chain.refused(wt.endWork(tid), leader.address, "CrewNotAcknowledged")
    chain.refused(wt.extend(tid, req[6] + 7200), permitter.address, "ExtensionAlreadyUsed")
    chain.refused(wt.extend(tid, req[6] + 7200), leader.address, "NotNamedPerson")
    chain.do(crew[2], wt.acknowledge(tid))
    chain.refused(wt.endWork(tid), crew[2].address, "NotNamedPerson")
    chain.refused(wt.terminate(tid), permitter.address, "WrongStatus")
    chain.do(leader, wt.endWork(tid))
    chain.refused(wt.terminate(tid), leader.address, "NotNamedPerson")
    chain.do(permitter, wt.terminate(tid))
    chain.refused(wt.terminate(tid), permitter.address, "WrongStatus")

    ticket = wt.getTicket(tid).call()
    assert ticket[0] == req[0] and ticket[1] == req[1] and ticket[8] == 5  # Terminated
    assert ticket[7] == req[6] + 3600 and ticket[9] == 3 and ticket[10] is True
    steps = wt.getSteps(tid).call()
    actions = [ACTIONS[s[0]] for s in steps]
    assert actions[:3] == ["issue", "permit", "brief"] and actions[-3:] == ["acknowledge", "end_work", "terminate"]
    assert sorted(actions[3:6]) == ["acknowledge", "acknowledge", "extend"]  # same block, any order
    assert steps[0][1] == issuer.address and steps[-1][1] == permitter.address
    assert all(s[3] > 0 and s[4] > 0 for s in steps)  # timestamp and block number of every step
    assert [s[4] for s in steps] == sorted(s[4] for s in steps)
    # the pure mirror of the state machine agrees with the chain
    parties = TicketParties(issuer.address, permitter.address, leader.address, tuple(c.address for c in crew),
                            planned_end=req[6])
    assert replay_steps(parties, [(ACTIONS[s[0]], s[1], s[5]) for s in steps]) == "terminated"

    # cancel path: only the issuer, only before the permit
    receipt = chain.do(issuer, wt.issue(_request(grid)))
    tid2 = chain.tickets.events.TicketIssued().process_receipt(receipt, errors=DISCARD)[0].args.ticketId
    chain.refused(wt.cancel(tid2), permitter.address, "NotNamedPerson")
    chain.do(issuer, wt.cancel(tid2))
    assert wt.getTicket(tid2).call()[8] == 6  # Cancelled
    chain.refused(wt.permit(tid2), permitter.address, "WrongStatus")
    assert wt.ticketsForEquipment("88.7.1/XZ-110kV-T1").call()[-2:] == [tid, tid2]


def test_work_ticket_relayed_eip712_signatures(chain: Chain, grid: dict) -> None:
    """A person signs on a device; the enterprise relays; the contract recovers the signer (ecrecover)."""
    wt = chain.tickets.functions
    chain_id = chain.spec.chain_id
    address = chain.tickets.address
    req = _request(grid, equipment="88.7.1/XZ-10kV-F3", crew=("crew1",))
    deadline = int(time.time()) + 600
    nonce = wt.nonces(grid["issuer"].address).call()
    typed = issue_typed_data(chain_id=chain_id, contract=address, equipment=req[0], digest=req[1], permitter=req[2],
                             leader=req[3], crew=req[4], planned_start=req[5], planned_end=req[6], nonce=nonce,
                             deadline=deadline)
    signature = sign_typed(grid["issuer"].key, typed)
    relayer = grid["enterprise"]
    # signed by someone else / for another ticket / expired: refused
    chain.refused(wt.issueBySig(req, grid["issuer"].address, deadline, sign_typed(grid["crew1"].key, typed)),
                  relayer.address, "WrongSigner")
    chain.refused(wt.issueBySig(req, grid["issuer"].address, deadline - 1, signature), relayer.address, "WrongSigner")
    chain.refused(wt.issueBySig(req, grid["issuer"].address, 1, signature), relayer.address, "SignatureExpired")
    receipt = chain.do(relayer, wt.issueBySig(req, grid["issuer"].address, deadline, signature))
    tid = chain.tickets.events.TicketIssued().process_receipt(receipt, errors=DISCARD)[0].args.ticketId
    # replaying the same signature fails: the nonce moved on
    chain.refused(wt.issueBySig(req, grid["issuer"].address, deadline, signature), relayer.address, "WrongSigner")

    def step_sig(person: str, action: str) -> bytes:
        n = wt.nonces(grid[person].address).call()
        return sign_typed(grid[person].key, step_typed_data(chain_id=chain_id, contract=address, ticket_id=tid,
                                                            action=action, planned_end=0, nonce=n, deadline=deadline))

    permit_by_leader = step_sig("leader", "permit")
    chain.refused(wt.stepBySig(tid, 1, 0, grid["leader"].address, deadline, permit_by_leader), relayer.address,
                  "NotNamedPerson")
    chain.do(relayer, wt.stepBySig(tid, 1, 0, grid["permitter"].address, deadline, step_sig("permitter", "permit")))
    steps = wt.getSteps(tid).call()
    assert steps[0][1] == grid["issuer"].address and steps[0][2] == relayer.address  # actor vs submitter
    assert steps[1][1] == grid["permitter"].address and wt.getTicket(tid).call()[8] == 2


# --------------------------------------------------------------------------- receivables


@pytest.fixture(scope="module")
def members(chain: Chain) -> dict:
    names = ["core", "tier1", "tier2", "mill", "bank", "bank2", "outsider"]
    accts = dict(zip(names, chain.new_accounts(len(names)), strict=True))
    reg = chain.registry.functions
    roles = {"core": CORE, "tier1": SUPPLIER, "tier2": SUPPLIER, "mill": MANUFACTURER, "bank": BANK, "bank2": BANK}
    chain.wait(*[chain.submit(chain.admin, reg.registerEnterprise(accts[n].address, n, r, f"88.9.{i + 1}"))
                 for i, (n, r) in enumerate(roles.items())])
    return accts


def test_receivable_token_lifecycle_and_refusals(chain: Chain, members: dict) -> None:
    rt = chain.receivables.functions
    m = members
    transfer_to = chain.receivables.get_function_by_signature("transferFrom(uint256,address,uint256)")
    transfer_tt = chain.receivables.get_function_by_signature("transferFrom(uint256,uint256,uint256)")
    transfer_nft = chain.receivables.get_function_by_signature("transferFrom(address,address,uint256)")
    approve_value = chain.receivables.get_function_by_signature("approve(uint256,address,uint256)")
    balance = chain.receivables.get_function_by_signature("balanceOf(uint256)")

    assert rt.supportsInterface(bytes.fromhex("d5358140")).call()  # ERC-3525
    assert rt.supportsInterface(bytes.fromhex("80ac58cd")).call()  # ERC-721
    assert rt.supportsInterface(bytes.fromhex("01ffc9a7")).call()  # ERC-165
    assert not rt.supportsInterface(bytes.fromhex("ffffffff")).call()
    assert rt.valueDecimals().call() == 2

    maturity = chain.block_time() + 40
    invoice = keccak(text=f"INV-2026-0001 {maturity}")
    face = 1_000_000 * YUAN
    # issue refusals
    chain.refused(rt.issue(m["tier1"].address, CNY, maturity, face, invoice), m["tier1"].address, "NotCoreEnterprise")
    chain.refused(rt.issue(m["outsider"].address, CNY, maturity, face, invoice), m["core"].address, "NotMember")
    chain.refused(rt.issue(m["tier1"].address, b"cny", maturity, face, invoice), m["core"].address, "InvalidCurrency")
    chain.refused(rt.issue(m["tier1"].address, CNY, 1000, face, invoice), m["core"].address, "MaturityInPast")
    chain.refused(rt.issue(m["tier1"].address, CNY, maturity, 0, invoice), m["core"].address, "ZeroValue")

    receipt = chain.do(m["core"], rt.issue(m["tier1"].address, CNY, maturity, face, invoice))
    root = chain.receivables.events.Issued().process_receipt(receipt, errors=DISCARD)[0].args.tokenId
    slot = rt.slotOf(root).call()
    assert slot == encode_slot(m["core"].address, "CNY", maturity)
    assert decode_slot(slot).issuer == m["core"].address and decode_slot(slot).maturity == maturity
    assert balance(root).call() == face and rt.ownerOf(root).call() == m["tier1"].address
    chain.refused(rt.issue(m["tier2"].address, CNY, maturity, 5 * YUAN, invoice), m["core"].address,
                  "InvoiceAlreadyIssued")

    # split: tier-1 -> tier-2 400,000.00; refusals first
    chain.refused(transfer_to(root, m["outsider"].address, 1), m["tier1"].address, "NotMember")
    chain.refused(transfer_to(root, m["tier2"].address, face + 1), m["tier1"].address, "InsufficientBalance")
    chain.refused(transfer_to(root, m["tier2"].address, 1), m["tier2"].address, "NotHolder")
    r = chain.do(m["tier1"], transfer_to(root, m["tier2"].address, 400_000 * YUAN))
    t2 = chain.receivables.events.Split().process_receipt(r, errors=DISCARD)[0].args.toTokenId
    r = chain.do(m["tier2"], transfer_to(t2, m["mill"].address, 150_000 * YUAN))
    t3 = chain.receivables.events.Split().process_receipt(r, errors=DISCARD)[0].args.toTokenId
    assert rt.chainOf(t3).call() == [t3, t2, root]
    assert rt.slotOf(t3).call() == slot
    # token-to-token value move inside the same payable; whole-token transfer (ERC-721)
    chain.do(m["tier1"], transfer_tt(root, t2, 1))
    assert balance(t2).call() == 250_000 * YUAN + 1
    chain.do(m["tier2"], transfer_nft(m["tier2"].address, m["tier1"].address, t2))
    assert rt.ownerOf(t2).call() == m["tier1"].address
    chain.refused(transfer_nft(m["tier1"].address, m["outsider"].address, t2), m["tier1"].address, "NotMember")

    # discount: the mill asks the bank to finance its 150,000.00
    chain.refused(rt.discount(t3, 150_000 * YUAN, 350, "PAY-1"), m["bank"].address, "NotAuthorized")
    chain.refused(approve_value(t3, m["bank"].address, 150_000 * YUAN), m["mill"].address, "OperatorsUnsupported")
    chain.do(m["mill"], rt.offerFinancing(t3, m["bank"].address, 150_000 * YUAN, 9000, maturity))
    assert rt.allowance(t3, m["bank"].address).call() == 150_000 * YUAN
    chain.refused(rt.discount(t3, 150_000 * YUAN, 350, "PAY-1"), m["tier2"].address, "NotBank")
    chain.refused(rt.discount(t3, 150_000 * YUAN, 10_001, "PAY-1"), m["bank"].address, "InvalidRate")
    chain.refused(rt.discount(t3, 150_000 * YUAN, 350, ""), m["bank"].address, "EmptyPaymentReference")
    r = chain.do(m["bank"], rt.discount(t3, 150_000 * YUAN, 9000, "CNAPS-2026-0001"))
    ev = chain.receivables.events.Discounted().process_receipt(r, errors=DISCARD)[0].args
    financed = ev.tokenId
    block_ts = chain.w3.eth.get_block(r.blockNumber)["timestamp"]
    assert ev.price == discount_price(150_000 * YUAN, 9000, maturity - block_ts) < 150_000 * YUAN
    assert ev.rateBps == 9000 and ev.holder == m["mill"].address
    assert rt.getDiscount(financed).call()[6] == "CNAPS-2026-0001"
    assert balance(t3).call() == 0 and balance(financed).call() == 150_000 * YUAN
    assert rt.getToken(financed).call()[8] is True  # financed
    # no second discount of the same value: the financed token cannot be discounted again …
    chain.refused(rt.offerFinancing(financed, m["bank2"].address, 150_000 * YUAN, 300, maturity), m["bank"].address,
                  "AlreadyDiscounted")
    chain.refused(rt.discount(financed, 150_000 * YUAN, 300, "PAY-2"), m["bank2"].address, "AlreadyDiscounted")
    # … nor mixed into unfinanced value, nor discounted from the emptied source, nor with a used reference
    chain.refused(transfer_tt(financed, t3, 1), m["bank"].address, "SlotMismatch")
    chain.refused(rt.discount(t3, 1, 300, "PAY-3"), m["bank"].address, "InsufficientBalance")
    chain.do(m["tier1"], rt.offerFinancing(root, m["bank"].address, 10 * YUAN, 300, maturity))
    chain.refused(rt.discount(root, 10 * YUAN, 300, "CNAPS-2026-0001"), m["bank"].address, "PaymentReferenceUsed")
    chain.refused(rt.discount(root, 11 * YUAN, 300, "PAY-4"), m["bank"].address, "InsufficientAllowance")
    chain.refused(rt.discount(root, 10 * YUAN, 301, "PAY-4"), m["bank"].address, "RateAboveOffer")

    # settle at maturity
    chain.refused(rt.settle(root, "SET-0"), m["core"].address, "NotMatured")
    chain.wait_block_time(maturity)
    chain.refused(transfer_to(root, m["tier2"].address, 1), m["tier1"].address, "Matured")
    chain.refused(rt.discount(root, YUAN, 300, "PAY-5"), m["bank2"].address, "Matured")
    chain.refused(rt.settle(root, "SET-0"), m["tier1"].address, "NotIssuer")
    chain.refused(rt.settle(t3, "SET-0"), m["core"].address, "NothingToSettle")
    family = rt.tokensOfPayable(root).call()
    assert family == [root, t2, t3, financed]
    holders = [(tid, balance(tid).call()) for tid in family if balance(tid).call() > 0]
    chain.wait(*[chain.submit(m["core"], rt.settle(tid, f"SET-{tid}")) for tid, _ in holders])
    assert rt.getPayable(root).call()[4] == 0  # marked, not redeemed: the holders confirm
    chain.refused(rt.confirmSettlement(financed), m["core"].address, "NotHolder")
    owners = {m[n].address: m[n] for n in ("tier1", "tier2", "bank")}
    chain.wait(*[chain.submit(owners[rt.ownerOf(tid).call()], rt.confirmSettlement(tid)) for tid, _ in holders])
    settled = {tid: rt.getSettlement(tid).call() for tid, _ in holders}
    assert sum(s[1] for s in settled.values()) == face
    assert settled[financed][0] == m["bank"].address and settled[financed][1] == 150_000 * YUAN
    assert settled[root][1] == 600_000 * YUAN - 1 and settled[t2][1] == 250_000 * YUAN + 1
    assert rt.getPayable(root).call()[4] == face  # settledValue
    assert all(balance(tid).call() == 0 for tid in family)
    chain.refused(rt.settle(root, "SET-again"), m["core"].address, "Redeemed")
    chain.refused(transfer_to(root, m["tier2"].address, 1), m["tier1"].address, "Redeemed")
    chain.refused(rt.discount(financed, 1, 300, "PAY-6"), m["bank2"].address, "Redeemed")


def test_unknown_sender_is_refused_at_submission(chain: Chain) -> None:
    stranger = Account.create()
    chain.wait(chain.submit(chain.admin, to=stranger.address, value=10**18))
    with pytest.raises(Exception, match="32007|not permitted"):
        chain.submit(stranger, chain.receivables.functions.setApprovalForAll(chain.admin.address, True))
