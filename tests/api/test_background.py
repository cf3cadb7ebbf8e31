"""The background-loop lifecycle (:mod:`api.background`) shared by the anchoring worker and the chain indexer:
start is a no-op while running, stop ends the thread, a stopped loop starts again."""

from __future__ import annotations

import threading

from api.anchoring.worker import AnchoringWorker
from api.background import BackgroundLoop
from api.chain_index.indexer import ChainIndexer


class _Ticker(BackgroundLoop):
    thread_name = "test-ticker"

    def __init__(self) -> None:
        super().__init__()
        self.rounds = 0
        self.started = threading.Event()

    def _loop(self) -> None:
        self.started.set()
        while not self._stop.wait(0.005):
            self.rounds += 1


def test_start_stop_restart() -> None:
    loop = _Ticker()
    assert not loop.alive
    loop.start()
    assert loop.started.wait(5) and loop.alive
    thread = loop._thread  # noqa: SLF001
    loop.start()  # no-op while running: still the same thread
    assert loop._thread is thread and thread is not None  # noqa: SLF001
    assert thread.name == "test-ticker" and thread.daemon
    loop.stop(timeout_s=5)
    assert not loop.alive and not thread.is_alive()
    loop.started.clear()
    loop.start()  # the stop event is cleared: the loop runs again
    assert loop.started.wait(5) and loop.alive
    loop.stop(timeout_s=5)
    assert not loop.alive


def test_stop_before_start_is_harmless() -> None:
    loop = _Ticker()
    loop.stop(timeout_s=0.1)
    assert not loop.alive


def test_worker_and_indexer_share_the_lifecycle() -> None:
    assert issubclass(AnchoringWorker, BackgroundLoop) and issubclass(ChainIndexer, BackgroundLoop)
    assert AnchoringWorker.thread_name == "anchoring-worker" and ChainIndexer.thread_name == "chain-indexer"
