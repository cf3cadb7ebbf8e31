"""Shared helpers of the locust suites: the load configuration, payloads and failure reasons.

The suites read ``TRACELEDGER_LOAD_CONFIG`` (default ``bench/load-config.json``), a JSON file written
by ``python -m api.cli.load_setup`` (or by ``traceledger bench``)::

    {"api": "http://127.0.0.1:8000",
     "factory": {"api_key": "tlk_…", "prefix": "88.1.1"},
     "identifiers": ["88.1.1/HK…", …],            # anchored coil certificates (resolve, QR, verify)
     "lineage_parts": ["urn:epc:id:sgtin:…"],      # parts with ~50 upstream records (lineage verify)
     "bank": {"api_key": "tlk_…", "receivables": [12, 13]} | null}

Optional environment: ``TRACELEDGER_LOAD_RATE`` (requests/s per simulated user, or ``max`` for no wait;
unset: machines post without waiting, people think 0.5–2 s between requests),
``TRACELEDGER_LOAD_EPCIS_EVENTS`` (events per bulk EPCIS document, default 2000),
``TRACELEDGER_LOAD_BATCH`` (certificates per batch POST, default 200).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from locust import between, constant, constant_throughput

ROOT = Path(__file__).resolve().parents[1]
CONFIG_ENV = "TRACELEDGER_LOAD_CONFIG"
DEFAULT_CONFIG = ROOT / "bench" / "load-config.json"

_lock = threading.Lock()
_config: dict[str, Any] | None = None
_counter = itertools.count()
RUN_ID = uuid.uuid4().hex[:6].upper()


def config() -> dict[str, Any]:
    """The load configuration (cached). Raises RuntimeError naming the file when it is missing."""
    global _config
    with _lock:
        if _config is None:
            path = Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
            if not path.is_file():
                raise RuntimeError(f"load configuration {path} not found: run `python -m api.cli.load_setup --api URL "
                                   f"--admin-token TOKEN` first (or set {CONFIG_ENV})")
            _config = json.loads(path.read_text())
        return _config


def _rate() -> str:
    return (os.environ.get("TRACELEDGER_LOAD_RATE") or "").strip().lower()


def wait_time() -> Any:
    """Machine clients (factories): ``constant_throughput(rate)`` when ``TRACELEDGER_LOAD_RATE`` is a number
    (a bounded rate per user), else no wait (``max`` or unset)."""
    rate = _rate()
    return constant_throughput(float(rate)) if rate not in ("", "max") and float(rate) > 0 else constant(0)


def think_time() -> Any:
    """People (auditors, banks): 0.5–2 s between clicks unless ``TRACELEDGER_LOAD_RATE`` is a number (that rate
    per user) or ``max`` (no wait: what ``traceledger bench`` uses to find the ceiling)."""
    rate = _rate()
    if rate == "max":
        return constant(0)
    return constant_throughput(float(rate)) if rate and float(rate) > 0 else between(0.5, 2.0)


def path_of(identifier: str) -> str:
    """Identifier/EPC/URI for a URL path: ``88.x.y/suffix`` keeps its slash, EPC URNs and URIs are fully quoted."""
    return quote(identifier, safe="/") if identifier[:1].isdigit() else quote(identifier, safe="")


def unique() -> str:
    """A process-unique token for coil numbers and serials (run id + counter)."""
    return f"{RUN_ID}{next(_counter):07d}"


_SAMPLES: list[dict[str, Any]] | None = None


def certificate() -> dict[str, Any]:
    """A new valid EN 10168 certificate: a bundled sample with a fresh coil number (B07)."""
    global _SAMPLES
    if _SAMPLES is None:
        from provenance.samples import load_samples

        _SAMPLES = [doc for _, doc in load_samples()]
    n = next(_counter)
    doc = copy.deepcopy(_SAMPLES[n % len(_SAMPLES)])
    doc["Certificate"]["ProductDescription"]["B07"] = f"L{RUN_ID}{n:07d}"
    return doc


def epcis_document(events: int, *, mill_prefix: str) -> dict[str, Any]:
    """A new EPCIS document of about ``events`` events from the supply-chain generator (unique heats)."""
    from provenance.supply_chain import generate

    seed = next(_counter)
    chain = generate(target_events=events, mill_prefix=mill_prefix, seed=seed)
    evs = [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]]
    tag = unique()
    for ev in evs:  # unique per document: distinct GS1 event hashes on every post
        ev["readPoint"] = {"id": f"urn:epc:id:sgln:4012345.00001.{tag}"}
    doc = copy.deepcopy(chain.documents[0][1])
    doc["epcisBody"] = {"eventList": evs[:events]}
    return doc


def failure_reason(resp: Any) -> str:
    """``<status>: <first error>`` from an API answer, for locust's failure table."""
    try:
        body = resp.json()
        detail = body.get("detail") if isinstance(body, dict) else body
        if isinstance(detail, list) and detail:
            first = detail[0]
            detail = f"{first.get('field')}: {first.get('message')}" if isinstance(first, dict) else first
        return f"{resp.status_code}: {str(detail)[:200]}"
    except Exception:  # noqa: BLE001 - not JSON
        return f"{resp.status_code}: {str(getattr(resp, 'text', '') or '')[:200]}"


def check(resp: Any, *expected: int) -> None:
    """Mark a ``catch_response`` answer failed with its reason unless its status is one of ``expected``."""
    if resp.status_code in expected:
        resp.success()
    else:
        resp.failure(failure_reason(resp))
