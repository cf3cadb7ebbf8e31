"""AnchorRegistry: a root is bound to the enterprise that anchored it (front-running, issue 13)."""

from __future__ import annotations

from eth_utils import keccak

from .world import MANUFACTURER, World

ROOT = keccak(text="batch of mill A")
META = keccak(text="metadata of mill A")


def test_a_front_runner_neither_blocks_nor_replaces_the_builders_anchor() -> None:
    w = World()
    mill = w.enterprise("mill", MANUFACTURER, "88.1.1")
    thief = w.enterprise("thief", MANUFACTURER, "88.1.2")
    f = w.anchors.functions
    # the thief copies the pending root from the mempool and anchors it first, with a wrong size
    w.do(thief, f.anchor(ROOT, 1, keccak(text="bogus")))
    # the mill's own anchor still goes through and is what a verifier asks for
    receipt = w.do(mill, f.anchor(ROOT, 3, META))
    block_mill = receipt.blockNumber
    assert f.getAnchorOf(mill, ROOT).call() == [block_mill, mill, 3, META, w.w3.eth.get_block(block_mill).timestamp]
    assert f.getAnchorOf(thief, ROOT).call()[2] == 1
    assert f.anchorersOf(ROOT).call() == [thief, mill]
    assert f.isAnchoredBy(mill, ROOT).call() and f.isAnchored(ROOT).call()
    assert f.getAnchor(ROOT).call()[1] == thief  # compatibility view: the first anchor by anyone
    (event,) = w.anchors.events.AnchoredFor().process_receipt(receipt)
    assert (event.args.enterprise, event.args.submitter) == (mill, mill)
    # once per enterprise: its dedicated anchoring account counts as the enterprise
    w.refused(f.anchor(ROOT, 3, META), mill, "RootAlreadyAnchored")
    anchorer = w.account("mill-anchorer")
    w.do(w.admin, w.reg.functions.addAnchoringAccount(mill, anchorer))
    w.refused(f.anchor(ROOT, 3, META), anchorer, "RootAlreadyAnchored")
    assert f.anchorCount().call() == 2
