"""Measure a page's layout in headless Chromium as a phone shows it (Chrome DevTools Protocol over a pipe).

``--remote-debugging-pipe`` makes Chromium read CDP commands from fd 3 and write answers to fd 4
(NUL-terminated JSON), so no port and no WebSocket library is needed. Tests skip when Chromium is absent.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
"""A 390 CSS px wide phone (iPhone 12–15 class)."""

_MEASURE = ("JSON.stringify({scrollWidth: document.documentElement.scrollWidth, "
            "clientWidth: document.documentElement.clientWidth, innerWidth: window.innerWidth, "
            "widest: Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().left + "
            "e.scrollWidth > document.documentElement.clientWidth + 0.5).slice(-5).map(e => e.tagName + "
            "(e.className ? '.' + e.className : '') + ' ' + Math.round(e.getBoundingClientRect().left + e.scrollWidth))"
            "})")


class _Cdp:
    def __init__(self, proc: subprocess.Popen[bytes], cmd_w: int, evt_r: int, timeout_s: float) -> None:
        self.proc, self.cmd_w, self.evt_r = proc, cmd_w, evt_r
        self.deadline = time.monotonic() + timeout_s
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.evt_r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.evt_r, 65536)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return dict(json.loads(msg))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            got = self._read()
            if got.get("id") == self.next_id:
                if "error" in got:
                    raise RuntimeError(f"{method}: {got['error']}")
                return dict(got.get("result") or {})
            self.events.append(got)

    def wait_event(self, method: str, session: str) -> None:
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    del self.events[i]
                    return
            self.events.append(self._read())


def phone_layout(url: str, profile_dir: Path, *, timeout_s: float = 60.0) -> dict[str, Any]:
    """Load ``url`` in headless Chromium emulating a 390 px phone; returns ``{scrollWidth, clientWidth,
    innerWidth, widest}`` (CSS px; ``widest`` names up to 5 elements reaching past the viewport).

    Raises:
        RuntimeError / TimeoutError: Chromium failed or did not load the page within ``timeout_s``.
    """
    assert CHROMIUM is not None
    cmd_r, cmd_w = os.pipe()
    evt_r, evt_w = os.pipe()

    def child_fds() -> None:  # Chromium expects the command pipe on fd 3 and the answer pipe on fd 4
        os.dup2(cmd_r, 3)
        os.dup2(evt_w, 4)

    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "about:blank"],
        preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(cmd_r)
    os.close(evt_w)
    cdp = _Cdp(proc, cmd_w, evt_r, timeout_s)
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        cdp.call("Emulation.setDeviceMetricsOverride", PHONE, session)
        cdp.call("Page.enable", {}, session)
        cdp.call("Page.navigate", {"url": url}, session)
        cdp.wait_event("Page.loadEventFired", session)
        value = cdp.call("Runtime.evaluate", {"expression": _MEASURE, "returnByValue": True}, session)
        return dict(json.loads(value["result"]["value"]))
    finally:
        try:
            cdp.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        os.close(cmd_w)
        os.close(evt_r)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
