"""Child processes that die with the process that started them.

``traceledger network up`` starts every validator and the API as its own OS process in its own
session (so a Ctrl-C in the terminal reaches only the launcher, which then stops them in order). A
``kill -9`` of the launcher used to leave them running, holding the ports and the data directory.
Two independent guards prevent that:

1. :func:`preexec` (a ``subprocess.Popen`` ``preexec_fn``, Linux only) asks the kernel to send the
   child SIGTERM when its parent dies: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` (prctl(2)). The kernel
   sends it when the *thread* that forked the child exits, so it is set only for children started
   from the main thread.
2. The child runs under :func:`main` (``python -m api.lifeline --parent-pid PID -m MODULE ARGS…``),
   which starts a watchdog thread in the child itself and then runs ``MODULE`` as ``__main__`` in the
   same process (no extra process). The watchdog polls ``os.getppid()`` every
   :data:`POLL_S` seconds; once it differs from ``PID`` (the parent died and the child was re-parented)
   it sends the child SIGTERM, and ends the process :data:`GRACE_S` seconds later if it is still alive.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable

#: prctl(2) option number of PR_SET_PDEATHSIG (linux/prctl.h)
PR_SET_PDEATHSIG = 1
#: seconds between two looks at the parent pid
POLL_S = 0.5
#: seconds between the watchdog's SIGTERM and its hard exit
GRACE_S = 8.0


def preexec(parent_pid: int, *, pdeathsig: bool = True) -> Callable[[], None]:
    """A ``preexec_fn`` that sets ``PR_SET_PDEATHSIG`` to SIGTERM (Linux; a no-op elsewhere).

    ``parent_pid`` is the launcher's pid: if it already died between fork and prctl, the child
    exits at once (prctl only covers deaths after the call).
    """

    def _preexec() -> None:
        if pdeathsig and sys.platform.startswith("linux"):
            try:
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            except (OSError, AttributeError):  # no libc prctl: the watchdog still covers it
                pass
        if os.getppid() != parent_pid:
            os._exit(1)

    return _preexec


def command(parent_pid: int, module: str, args: list[str]) -> list[str]:
    """argv running ``python -m module args…`` under the parent-pid watchdog of :func:`main`."""
    return [sys.executable, "-m", "api.lifeline", "--parent-pid", str(parent_pid), "-m", module, *args]


def watch_parent(parent_pid: int, *, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> threading.Thread:
    """Start a daemon thread that SIGTERMs this process once its parent is no longer ``parent_pid``."""

    def _watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=_watch, name="lifeline", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    """``python -m api.lifeline --parent-pid PID -m MODULE [ARGS…]``: watchdog, then run MODULE as ``__main__``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--parent-pid" or args[2] != "-m":
        raise SystemExit("usage: python -m api.lifeline --parent-pid PID -m MODULE [ARGS…]")
    parent_pid, module, rest = int(args[1]), args[3], args[4:]
    if os.getppid() != parent_pid:
        raise SystemExit(f"parent {parent_pid} is gone")
    watch_parent(parent_pid)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
