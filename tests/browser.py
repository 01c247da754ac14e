"""Headless Chromium driven over the DevTools protocol (a local websocket): load a page, read console
errors, uncaught exceptions and network requests, evaluate JavaScript, take screenshots.

Used by tests/test_report_browser.py, benchmarks/bench_report.py and docs/make_screenshot.py. Chromium
is Debian's `chromium` package (`.ci/run` installs it); it runs with a fresh empty profile and every
background service off, and talks only to this process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """The Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, executable: str | None = None, *, width: int = 1400, height: int = 900) -> None:
        self.executable = executable or chromium_path()
        if self.executable is None:
            raise BrowserError("no chromium on PATH (apt-get install -y chromium)")
        self.width, self.height = width, height
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._profile = Path(tempfile.mkdtemp(prefix="squad-chromium-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.session = ""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Browser:
        log = (self._profile / "chromium.log").open("wb")
        self._proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile / 'profile'}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        port_file = self._profile / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserError(f"chromium did not start: {self.log()[-2000:]}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        # Entered as a context manager (websockets >= 17.1 warns on a bare connect()); left in close().
        self._ws = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30))
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=None)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=None)[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable")
        self.resize(self.width, self.height)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):  # already gone: the process is handled below either way
                self.call("Browser.close", session=None, timeout=10)
            self._stack.close()
            self._ws = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        shutil.rmtree(self._profile, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self._profile / "chromium.log").read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ protocol

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = "", timeout: float = 60
    ) -> dict[str, Any]:
        """Send one command (to the page's session unless `session` is None) and return its result."""
        assert self._ws is not None
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session or self.session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        """The next event `method` (already received ones first)."""
        assert self._ws is not None
        for i, ev in enumerate(self.events):
            if ev["method"] == method and not ev.get("_seen"):
                ev["_seen"] = True
                return self.events[i]
        deadline = time.monotonic() + timeout
        while True:
            ev = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if "method" in ev:
                self.events.append(ev)
                if ev["method"] == method:
                    ev["_seen"] = True
                    return ev

    # ------------------------------------------------------------------ page

    def resize(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def open(self, url: str, *, ready: str = "document.readyState === 'complete'", timeout: float = 60) -> float:
        """Navigate, wait for the load event and then for `ready` to be true; returns seconds taken."""
        started = time.monotonic()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired", timeout)
        deadline = started + timeout
        while not self.evaluate(f"!!({ready})"):
            if time.monotonic() > deadline:
                raise BrowserError(f"page not ready ({ready}) within {timeout}s; errors: {self.errors()}")
            time.sleep(0.02)
        return time.monotonic() - started

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON-serialisable results only)."""
        out = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in out:
            raise BrowserError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out.get("result", {}).get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations among them) so far."""
        found = []
        for ev in self.events:
            params = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif ev["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif ev["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def requests(self) -> list[str]:
        """URLs the page requested so far."""
        return [ev["params"]["request"]["url"] for ev in self.events if ev["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """Write a PNG of the page (the whole page when `full_page`)."""
        if full_page:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
            self.resize(self.width, height)
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        if full_page:
            self.resize(self.width, self.height)
