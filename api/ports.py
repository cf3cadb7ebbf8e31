"""Pre-flight checks of ``traceledger network up``: free TCP ports and one launcher per data directory.

Both run before any process starts, so a busy port or a second launcher ends in one line that names
the cause, within a second, instead of a deployment to someone else's chain or a restart loop.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path


class PortInUse(RuntimeError):
    """A port the stack needs is taken; ``str(exc)`` is the one line to print."""

    def __init__(self, port: int, purpose: str, holder: str | None, hint: str = "") -> None:
        who = f" by {holder}" if holder else ""
        super().__init__(f"port {port} ({purpose}) is already in use{who}; {hint or 'free it or choose another port'}")
        self.port = port
        self.purpose = purpose
        self.holder = holder


class DataDirBusy(RuntimeError):
    """Another ``network up`` holds the data directory's lock; ``str(exc)`` is the one line to print."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listening socket could be bound to ``host:port`` now (``SO_REUSEADDR`` like uvicorn:
    sockets in TIME_WAIT do not count, a listener on ``0.0.0.0`` or ``host`` does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str | None:
    """``"pid N (command line)"`` of the process listening on TCP ``port``, when visible.

    Reads ``/proc/net/tcp{,6}`` (state 0A = LISTEN) and the ``/proc/<pid>/fd`` links of the processes
    this user may inspect (Linux); None when the holder is not visible (another user, another OS).
    """
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {entry.name} ({cmd[:80]})"
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class PortNeed:
    """One port the stack will listen on: number, what it is for, and how to choose another."""

    port: int
    purpose: str
    hint: str


def stack_port_needs(api_port: int, nodes: list[tuple[int, int, int]]) -> list[PortNeed]:
    """The ports of a stack: the API's and, per validator ``(index, rpc_port, p2p_port)``, its JSON-RPC and p2p."""
    needs = [PortNeed(api_port, "the API", "choose another: make up API_PORT=… (network up --api-port …)")]
    for index, rpc_port, p2p_port in nodes:
        needs.append(PortNeed(rpc_port, f"JSON-RPC of validator {index}", "choose another: make up RPC_PORT=… "
                              "(network up --rpc-port …) with a new DATA_DIR, or stop that process"))
        needs.append(PortNeed(p2p_port, f"p2p of validator {index}", "choose another: make up P2P_PORT=… "
                              "(network up --p2p-port …) with a new DATA_DIR, or stop that process"))
    return needs


def launch_port_needs(data_dir: Path, *, validators: int, api_port: int, rpc_port: int, p2p_port: int
                      ) -> list[PortNeed]:
    """Ports ``network up`` will use, known before anything is imported or written: those fixed in
    ``<data_dir>/network.json`` when the network exists (a restart keeps its ports), else the flags'
    (validator i: ``rpc_port + i - 1``, ``p2p_port + i - 1``)."""
    manifest = Path(data_dir) / "network.json"
    if manifest.exists():
        raw = json.loads(manifest.read_text())
        nodes = [(int(v["index"]), int(v["rpc_url"].rsplit(":", 1)[1].split("/")[0]), int(v["p2p_port"]))
                 for v in raw["validators"]]
    else:
        nodes = [(i + 1, rpc_port + i, p2p_port + i) for i in range(validators)]
    return stack_port_needs(api_port, nodes)


def check_ports(needs: list[PortNeed], host: str = "127.0.0.1") -> None:
    """Raise :class:`PortInUse` for the first port in ``needs`` that is taken (naming its holder)."""
    for need in needs:
        if not port_is_free(need.port, host):
            raise PortInUse(need.port, need.purpose, port_holder(need.port), need.hint)


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/network.lock`` holding the launcher's pid.

    The kernel drops the lock when the holder exits, however it exits (even ``kill -9``), so a stale
    file never blocks a start. :meth:`acquire` raises :class:`DataDirBusy` naming the running pid.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "network.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(
                f"a network is already running on {self.path.parent} (pid {pid}, {self.path.name}); stop it "
                f"(Ctrl-C in its terminal, or kill {pid}) or use another --data-dir / make up DATA_DIR=…") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
