"""The API freezes its start-up heap for the cyclic GC while it runs (full collections during bulk ingest do not
walk it) and unfreezes it at shutdown (apps created one after another in a process can be collected)."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings


def test_start_up_heap_is_frozen_while_the_app_runs(settings: Settings) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
