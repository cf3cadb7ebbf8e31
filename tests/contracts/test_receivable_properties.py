"""Stateful property test of ReceivableToken's invariants on eth-tester (Hypothesis ``RuleBasedStateMachine``).

Random members split, move and transfer value, offer it to banks, banks discount (and try to take
what was not offered), strangers try to move other people's value, time passes maturity, the issuer
marks payments and holders confirm. After every step, on chain:

* **conservation** -- per payable, the balances of all its tokens plus the settled value equal the
  face value;
* **financed once** -- per payable, the value of all discounts equals the value held (or redeemed) in
  financed tokens, and never exceeds the face value; a financed token is never discounted again;
* **frozen after maturity / redemption** -- no move succeeds once the maturity has passed, and a
  redeemed token never changes again.

Bounded and derandomized: 5 examples × 20 steps, one in-process chain per example (about 12 s of
CPU; longer on a loaded machine).
"""

from __future__ import annotations

from typing import Any

from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3.exceptions import ContractLogicError, Web3RPCError

from .world import BANK, CNY, CORE, SUPPLIER, World

MEMBERS = ("s1", "s2", "s3")
BANKS = ("bank1", "bank2")
DAY = 86_400
FACE = 1_000_000


def _attempt(w: World, sender: str, fn: Any) -> Any:
    """Send ``fn`` from ``sender``; the receipt, or None when the chain refused it."""
    try:
        receipt = w.w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": 3_000_000}))
    except (TransactionFailed, ContractLogicError, Web3RPCError, ValueError):
        return None
    return receipt if receipt.status == 1 else None


class ReceivableMachine(RuleBasedStateMachine):
    """Random business on two payables, checked against the on-chain invariants."""

    @initialize()
    def setup(self) -> None:
        self.w = w = World()
        w.enterprise("core", CORE, "88.9.1")
        for i, name in enumerate(MEMBERS):
            w.enterprise(name, SUPPLIER, f"88.9.{i + 2}")
        for i, name in enumerate(BANKS):
            w.enterprise(name, BANK, f"88.9.{i + 10}")
        self.maturity = w.now() + 30 * DAY
        self.roots = []
        for i in range(2):
            w.do(w.acct["core"], w.rt.functions.issue(w.acct["s1"], CNY, self.maturity, FACE, keccak(text=f"I{i}")))
            self.roots.append(i + 1)
        self.redeemed: dict[int, tuple] = {}
        self.discounted_sources: set[int] = set()

    # ------------------------------------------------------------------ helpers
    def _tokens(self) -> list[int]:
        return list(range(1, self.w.rt.functions.tokenCount().call() + 1))

    def _token(self, tid: int) -> list[Any]:
        return self.w.rt.functions.getToken(tid).call()

    def _name(self, address: str) -> str:
        return next(n for n, a in self.w.acct.items() if a == address)

    def _matured(self) -> bool:
        return self.w.now() >= self.maturity

    def _split_fn(self) -> Any:
        return self.w.rt.get_function_by_signature("transferFrom(uint256,address,uint256)")

    # ------------------------------------------------------------------ rules
    @rule(pick=st.integers(0, 10**6), to=st.sampled_from(MEMBERS + BANKS), frac=st.floats(0.01, 1.0))
    def split(self, pick: int, to: str, frac: float) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        tok = self._token(tid)
        value = max(1, int(tok[1] * frac))
        r = _attempt(self.w, tok[2], self._split_fn()(tid, self.w.acct[to], value))
        if self._matured() or tok[9]:
            assert r is None, "value moved after maturity or redemption"

    @rule(pick=st.integers(0, 10**6), to=st.sampled_from(MEMBERS + BANKS))
    def transfer_whole(self, pick: int, to: str) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        tok = self._token(tid)
        fn = self.w.rt.get_function_by_signature("transferFrom(address,address,uint256)")(tok[2], self.w.acct[to], tid)
        r = _attempt(self.w, tok[2], fn)
        if self._matured() or tok[9]:
            assert r is None, "token moved after maturity or redemption"

    @rule(a=st.integers(0, 10**6), b=st.integers(0, 10**6), frac=st.floats(0.01, 1.0))
    def move_value(self, a: int, b: int, frac: float) -> None:
        tokens = self._tokens()
        src, dst = tokens[a % len(tokens)], tokens[b % len(tokens)]
        tok = self._token(src)
        fn = self.w.rt.get_function_by_signature("transferFrom(uint256,uint256,uint256)")(
            src, dst, max(1, int(tok[1] * frac)))
        r = _attempt(self.w, tok[2], fn)
        if r is not None:
            assert self._token(src)[8] == self._token(dst)[8], "financed and unfinanced value mixed"

    @rule(pick=st.integers(0, 10**6), thief=st.sampled_from(MEMBERS + BANKS), frac=st.floats(0.01, 1.0))
    def stranger_moves(self, pick: int, thief: str, frac: float) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        tok = self._token(tid)
        if self.w.acct[thief] == tok[2]:
            return
        value = max(1, int(tok[1] * frac))
        assert _attempt(self.w, self.w.acct[thief], self._split_fn()(tid, self.w.acct[thief], value)) is None
        fn = self.w.rt.get_function_by_signature("transferFrom(address,address,uint256)")(
            tok[2], self.w.acct[thief], tid)
        assert _attempt(self.w, self.w.acct[thief], fn) is None

    @rule(pick=st.integers(0, 10**6), bank=st.sampled_from(BANKS), frac=st.floats(0.01, 1.0),
          max_rate=st.integers(0, 10_000))
    def offer(self, pick: int, bank: str, frac: float, max_rate: int) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        tok = self._token(tid)
        value = max(1, int(tok[1] * frac))
        expiry = min(self.maturity, self.w.now() + 10 * DAY)
        r = _attempt(self.w, tok[2], self.w.rt.functions.offerFinancing(tid, self.w.acct[bank], value, max_rate,
                                                                         expiry))
        if tok[8]:
            assert r is None, "financed value was offered again"

    @rule(pick=st.integers(0, 10**6), bank=st.sampled_from(BANKS), frac=st.floats(0.01, 1.5),
          rate=st.integers(0, 10_000), ref=st.integers(0, 5))
    def discount(self, pick: int, bank: str, frac: float, rate: int, ref: int) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        tok = self._token(tid)
        offered = self.w.rt.functions.allowance(tid, self.w.acct[bank]).call()
        value = max(1, int(tok[1] * frac))
        r = _attempt(self.w, self.w.acct[bank], self.w.rt.functions.discount(tid, value, rate, f"REF-{ref}"))
        if r is not None:
            assert not tok[8], "financed value discounted twice"
            assert value <= offered, "a bank took more than the holder offered"
            self.discounted_sources.add(tid)

    @rule(days=st.integers(1, 40))
    def time_passes(self, days: int) -> None:
        self.w.travel(self.w.now() + days * DAY)
        self.w.w3.provider.ethereum_tester.mine_blocks(1)

    @precondition(lambda self: self._matured())
    @rule(pick=st.integers(0, 10**6), ref=st.integers(0, 3))
    def settle_and_confirm(self, pick: int, ref: int) -> None:
        tokens = self._tokens()
        tid = tokens[pick % len(tokens)]
        w = self.w
        _attempt(w, w.acct["core"], w.rt.functions.settle(tid, f"PAY-{tid}-{ref}"))
        tok = self._token(tid)
        # the issuer alone never redeems
        assert _attempt(w, w.acct["core"], w.rt.functions.confirmSettlement(tid)) is None or tok[2] == w.acct["core"]
        if _attempt(w, tok[2], w.rt.functions.confirmSettlement(tid)) is not None:
            self.redeemed[tid] = tuple(self._token(tid))

    # ------------------------------------------------------------------ invariants
    @invariant()
    def value_is_conserved_and_financed_once(self) -> None:
        if not hasattr(self, "w"):
            return
        f = self.w.rt.functions
        for root in self.roots:
            family = f.tokensOfPayable(root).call()
            payable = f.getPayable(root).call()
            balances = sum(self._token(t)[1] for t in family)
            assert balances + payable[4] == payable[3] == FACE, "value of the payable not conserved"
            discounted = sum(f.getDiscount(t).call()[3] for t in family)
            held_financed = 0
            for t in family:
                tok = self._token(t)
                if tok[8]:
                    held_financed += tok[1] + (f.getSettlement(t).call()[1] if tok[9] else 0)
            assert discounted == held_financed, "financed value created or lost outside discount"
            assert discounted <= FACE

    @invariant()
    def redeemed_tokens_never_change(self) -> None:
        for tid, snapshot in getattr(self, "redeemed", {}).items():
            assert tuple(self._token(tid)) == snapshot, f"redeemed token {tid} changed"


ReceivableMachine.TestCase.settings = settings(
    max_examples=5, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], derandomize=True,
)
test_receivable_invariants = ReceivableMachine.TestCase
