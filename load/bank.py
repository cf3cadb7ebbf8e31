"""Bank suite: checks receivable tokens before financing (``GET /v1/receivables/{id}/check``) and warehouse
receipts pledged to the bank (``GET /v1/warehouse-receipts/{id}/check``, when the load configuration has them).

Run by hand::

    .venv/bin/locust -f load/bank.py --headless -u 8 -r 4 -t 30s --host http://127.0.0.1:8000 \\
        --csv bench/bank --only-summary

Skips cleanly — every bank user stops at once with the reason logged and recorded as one failure
named ``bank suite skipped`` — when the load configuration has no bank key or no receivable tokens, or
when the API has no receivables check route (404 with FastAPI's ``Not Found`` detail: the receivables
feature has not landed on that server).
"""

from __future__ import annotations

import logging
import random

from loadcommon import check, config, think_time
from locust import FastHttpUser, tag, task
from locust.exception import StopUser

log = logging.getLogger(__name__)
_skip_reported: set[str] = set()


class BankUser(FastHttpUser):
    """A bank's credit officer checking receivables offered for financing."""

    wait_time = think_time()
    weight = 1

    def _skip(self, reason: str) -> None:
        if reason not in _skip_reported:
            _skip_reported.add(reason)
            log.warning("bank suite skipped: %s", reason)
            self.environment.events.request.fire(request_type="SKIP", name="bank suite skipped", response_time=0,
                                                 response_length=0, exception=RuntimeError(reason), context={})
        raise StopUser()

    def on_start(self) -> None:
        bank = config().get("bank") or {}
        self.tokens = [int(t) for t in bank.get("receivables") or []]
        self.receipts = [int(r) for r in bank.get("warehouse_receipts") or []]
        self.headers = {"Authorization": f"Bearer {bank.get('api_key', '')}"}
        if not bank.get("api_key") or not self.tokens:
            self._skip("no bank API key or receivable tokens in the load configuration")

    @tag("receivable")
    @task
    def check_receivable(self) -> None:
        token = random.choice(self.tokens)
        missing = False
        with self.client.get(f"/v1/receivables/{token}/check", headers=self.headers,
                             name="GET /v1/receivables/[id]/check", catch_response=True) as resp:
            if resp.status_code == 404 and _route_missing(resp):
                missing = True
                resp.success()  # not a failure of the API under test: the feature is absent
            else:
                check(resp, 200)
        if missing:
            self._skip("the API has no GET /v1/receivables/{id}/check route (receivables not deployed)")


    @tag("warehouse_receipt")
    @task
    def check_warehouse_receipt(self) -> None:
        if not self.receipts:
            return  # no warehouse receipts on this server or in the configuration: receivables only
        receipt = random.choice(self.receipts)
        with self.client.get(f"/v1/warehouse-receipts/{receipt}/check", headers=self.headers,
                             name="GET /v1/warehouse-receipts/[id]/check", catch_response=True) as resp:
            check(resp, 200)
            if resp.status_code == 200 and not resp.json().get("pledged_to_you"):
                resp.failure("the receipt is not pledged to this bank")


def _route_missing(resp: object) -> bool:
    try:
        return resp.json().get("detail") == "Not Found"  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return True
