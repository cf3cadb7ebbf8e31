"""Start and stop the whole stack: n validator processes, the contracts, and the API process.

Used by ``traceledger network up``, ``traceledger demo`` and the integration tests, so all three
start the system the same way. Every component is a separate OS process; the API reaches the chain
only through JSON-RPC (``TRACELEDGER_RPC_URL``), exactly as it would reach any other EVM network.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api import lifeline
from api.ports import DataDirLock, PortNeed, check_ports, stack_port_needs
from ledger.network import (
    NetworkSpec,
    free_port,
    init_network,
    record_contracts,
    rpc,
    stop_processes,
    wait_for_rpc,
)


def _spawn(module: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    """``python -m module args`` in its own session, logging to ``log_path``, dying with this process
    (PR_SET_PDEATHSIG when started from the main thread, and the :mod:`api.lifeline` watchdog)."""
    import threading

    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    parent = os.getpid()
    return subprocess.Popen(
        lifeline.command(parent, module, args), env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lifeline.preexec(parent, pdeathsig=threading.current_thread() is threading.main_thread()),
    )


@dataclass
class Stack:
    """A running (or startable) network + API under ``data_dir``.

    ``api_port``/``rpc_base_port``/``p2p_base_port`` of ``None`` pick free ports. ``database_url``
    ``None`` means the embedded SQLite file ``<data_dir>/api/api.db``.
    """

    data_dir: Path
    validators: int = 4
    api_host: str = "127.0.0.1"
    api_port: int | None = 8000
    rpc_base_port: int | None = 8545
    p2p_base_port: int | None = 30303
    database_url: str | None = None
    admin_token: str | None = None
    block_period_s: float = 1.0
    api_workers: int = 1
    #: crypto profile of a new network (``standard`` / ``sm``); None: ``standard`` for a new network, the recorded one
    #: for an existing data dir. Asking an existing network for another profile raises ValueError in :meth:`init`.
    crypto_profile: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    spec: NetworkSpec | None = None
    validator_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_proc: subprocess.Popen[bytes] | None = None
    #: run the anchoring worker as its own process (``python -m api.anchoring.service``), not in the API
    anchoring_process: bool = False
    anchor_proc: subprocess.Popen[bytes] | None = None
    #: ``<data_dir>/network.lock`` held while this launcher runs (:meth:`preflight`); released by :meth:`stop`
    data_dir_lock: DataDirLock | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------------ network
    def init(self) -> NetworkSpec:
        self.data_dir = Path(self.data_dir).resolve()
        self.spec = init_network(
            self.data_dir, validators=self.validators, rpc_base_port=self.rpc_base_port,
            p2p_base_port=self.p2p_base_port, block_period_s=self.block_period_s,
            crypto_profile=self.crypto_profile or "standard",
        )
        if self.crypto_profile is not None and self.spec.crypto_profile != self.crypto_profile:
            raise ValueError(f"{self.data_dir} holds a network created with crypto profile "
                             f"{self.spec.crypto_profile!r}; a network's profile is fixed when it is created "
                             f"(use another --data-dir for {self.crypto_profile!r})")
        token_file = self.data_dir / "admin-token"
        if self.admin_token is None:
            self.admin_token = os.environ.get("TRACELEDGER_ADMIN_TOKEN")
        if self.admin_token is None:
            if token_file.exists():
                self.admin_token = token_file.read_text().strip()
            else:
                self.admin_token = secrets.token_urlsafe(24)
        token_file.write_text(self.admin_token + "\n")
        os.chmod(token_file, 0o600)
        if self.api_port is None:
            self.api_port = free_port(self.api_host)
        return self.spec

    def start_validators(self, timeout: float = 60.0) -> None:
        spec = self.spec or self.init()
        for v in spec.validators:
            self.start_validator(v.index)
        for v in spec.validators:
            wait_for_rpc(v.rpc_url, timeout)

    def start_validator(self, index: int) -> subprocess.Popen[bytes]:
        assert self.spec is not None
        v = self.spec.validators[index - 1]
        proc = _spawn("ledger.node", ["--config", str(v.config_path), "--log-level", "INFO"], v.log_path)
        self.validator_procs[index] = proc
        return proc

    def kill_validator(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: a crash) to validator ``index`` (1-based) and reap it."""
        proc = self.validator_procs.pop(index)
        proc.send_signal(sig)
        proc.wait(10)

    def deploy_contracts(self) -> dict[str, str]:
        """Deploy EnterpriseRegistry, AnchorRegistry, WorkTicket, ReceivableToken, WarehouseReceipt and PriceIndex on
        first start (admin nonces 0, 1, … in ``CONTRACT_NAMES`` order; a chain that has only the registries gets
        the workflow contracts added)."""
        from api.chain import deploy_contracts

        assert self.spec is not None
        recorded = {"WorkTicket": self.spec.work_ticket, "ReceivableToken": self.spec.receivable_token,
                    "WarehouseReceipt": self.spec.warehouse_receipt, "PriceIndex": self.spec.price_index}
        codes = [rpc(self.spec.rpc_urls[0], "eth_getCode", [a, "latest"]) for a in recorded.values()]
        if all(code not in ("0x", "0x0", "") for code in codes):
            return {"EnterpriseRegistry": self.spec.enterprise_registry, "AnchorRegistry": self.spec.anchor_registry,
                    **recorded}
        deployed = deploy_contracts(self.spec.rpc_urls[0], self.spec.admin_key(), known=recorded)
        if (deployed["EnterpriseRegistry"].lower() != self.spec.enterprise_registry.lower()
                or deployed["AnchorRegistry"].lower() != self.spec.anchor_registry.lower()):
            raise RuntimeError(f"contracts deployed at unexpected addresses {deployed}: the admin account "
                               "must make no transaction before the deployment")
        moved = {name: deployed[name] for name, a in recorded.items() if deployed[name].lower() != a.lower()}
        if moved:  # added to an older network after the admin's nonce moved on: network.json keeps the address
            self.spec = record_contracts(self.spec.data_dir, moved)
        return deployed

    def port_needs(self) -> list[PortNeed]:
        """Every TCP port this stack will listen on (after :meth:`init`), with how to pick another."""
        assert self.spec is not None
        return stack_port_needs(int(self.api_port or 0), [
            (v.index, int(v.rpc_url.rsplit(":", 1)[1].split("/")[0]), v.p2p_port) for v in self.spec.validators])

    def preflight(self) -> None:
        """Before anything starts: take the data directory's lock, then check every port.

        Raises :class:`api.ports.DataDirBusy` (another launcher runs on this data dir) or
        :class:`api.ports.PortInUse` (one line naming the port and, where visible, the holding process).
        Call after :meth:`init`; the lock is released by :meth:`stop` (or by the kernel at exit).
        """
        self.data_dir_lock = DataDirLock(self.data_dir)
        self.data_dir_lock.acquire()
        try:
            check_ports(self.port_needs(), self.api_host)
        except Exception:
            self.data_dir_lock.release()
            raise

    # ------------------------------------------------------------------ API
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def public_base_url(self) -> str:
        """``TRACELEDGER_PUBLIC_BASE_URL`` (or the old ``PUBLIC_BASE_URL``) from the environment, else the API URL."""
        return (os.environ.get("TRACELEDGER_PUBLIC_BASE_URL") or os.environ.get("PUBLIC_BASE_URL")
                or self.api_url())

    def api_env(self) -> dict[str, str]:
        assert self.spec is not None and self.admin_token is not None
        api_dir = self.data_dir / "api"
        api_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        public_base_url = self.public_base_url()
        env.update({
            "TRACELEDGER_DATA_DIR": str(api_dir),
            "TRACELEDGER_RPC_URL": self.spec.rpc_urls[0],
            "TRACELEDGER_RPC_URLS": ",".join(self.spec.rpc_urls),
            "TRACELEDGER_ADMIN_TOKEN": self.admin_token,
            "TRACELEDGER_ADMIN_KEY": self.spec.admin_key(),
            "TRACELEDGER_ENTERPRISE_REGISTRY": self.spec.enterprise_registry,
            "TRACELEDGER_ANCHOR_REGISTRY": self.spec.anchor_registry,
            "TRACELEDGER_WORK_TICKET": self.spec.work_ticket,
            "TRACELEDGER_RECEIVABLE_TOKEN": self.spec.receivable_token,
            "TRACELEDGER_WAREHOUSE_RECEIPT": self.spec.warehouse_receipt,
            "TRACELEDGER_PRICE_INDEX": self.spec.price_index,
            "TRACELEDGER_CHAIN_ID": str(self.spec.chain_id),
            "TRACELEDGER_CRYPTO_PROFILE": self.spec.crypto_profile,
            "TRACELEDGER_PUBLIC_BASE_URL": public_base_url,
            "PUBLIC_BASE_URL": public_base_url,  # the old name, for APIs of older versions
        })
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        else:
            env.pop("DATABASE_URL", None)
        if self.anchoring_process:
            env["TRACELEDGER_ANCHORING_ENABLED"] = "false"  # api.anchoring.service anchors instead
        env.update(self.extra_env)
        return env

    def start_api(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        args = ["api.main:app", "--host", self.api_host, "--port", str(self.api_port),
                "--log-level", "warning", "--workers", str(self.api_workers)]
        self.api_proc = _spawn("uvicorn", args, self.data_dir / "api.log", self.api_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api_proc.poll() is not None:
                raise RuntimeError(
                    f"the API exited with code {self.api_proc.returncode}; see {self.data_dir / 'api.log'}")
            try:
                if httpx.get(self.api_url() + "/healthz", timeout=2).status_code < 500:
                    return self.api_proc
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the API did not answer /healthz within {timeout:.0f} s; see {self.data_dir / 'api.log'}")

    def start_anchoring(self) -> subprocess.Popen[bytes]:
        """Start the stand-alone anchoring process (log: ``<data_dir>/anchoring.log``)."""
        env = self.api_env()
        env["TRACELEDGER_ANCHORING_ENABLED"] = "true"
        self.anchor_proc = _spawn("api.anchoring.service", [], self.data_dir / "anchoring.log", env)
        return self.anchor_proc

    def stop_anchoring(self) -> None:
        if self.anchor_proc is not None:
            stop_processes([self.anchor_proc])
            self.anchor_proc = None

    def stop_api(self, sig: int = signal.SIGTERM) -> None:
        if self.api_proc is not None:
            if sig == signal.SIGTERM:
                stop_processes([self.api_proc])
            else:
                self.api_proc.send_signal(sig)
                self.api_proc.wait(10)
            self.api_proc = None

    # ------------------------------------------------------------------ whole stack
    def start(self) -> Stack:
        self.init()
        self.start_validators()
        self.deploy_contracts()
        self.start_api()
        if self.anchoring_process:
            self.start_anchoring()
        return self

    def stop(self) -> None:
        self.stop_anchoring()
        self.stop_api()
        stop_processes(list(self.validator_procs.values()))
        self.validator_procs.clear()
        if self.data_dir_lock is not None:
            self.data_dir_lock.release()
            self.data_dir_lock = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
