"""Background loops of the API process: one daemon thread each, started and stopped by the application.

:class:`BackgroundLoop` holds the lifecycle the anchoring worker (:class:`api.anchoring.worker.AnchoringWorker`)
and the chain indexer (:class:`api.chain_index.indexer.ChainIndexer`) share: ``start()`` runs the subclass's
``_loop`` in a named daemon thread (a no-op while it runs), ``stop()`` sets the stop event the loop waits on
and joins the thread (bounded by ``timeout_s`` seconds), ``alive`` says whether the thread runs. What a loop
does each round, how it backs off after an error and what else ``stop()`` must do stay in the subclass.
"""

from __future__ import annotations

import threading
from typing import ClassVar


class BackgroundLoop:
    """A daemon thread running :meth:`_loop` until :meth:`stop` sets ``self._stop``.

    Subclasses set :attr:`thread_name`, call ``super().__init__()`` and implement :meth:`_loop`, which must
    return soon after ``self._stop`` is set (wait on it, e.g. ``while not self._stop.wait(poll_s): ...``).
    A stopped loop can be started again: :meth:`start` clears the event first.
    """

    #: name of the thread (seen in py-spy dumps and ``threading.enumerate()``)
    thread_name: ClassVar[str] = "background-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """True while the loop's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the daemon thread (no-op if running)."""
        if self.alive:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to stop and wait up to ``timeout_s`` seconds for its thread (the current round finishes
        first; a thread still running after the timeout is left to end on its own, it is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        """One thread's work until ``self._stop`` is set; implemented by the subclass."""
        raise NotImplementedError
