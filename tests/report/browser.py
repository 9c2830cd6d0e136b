"""A minimal headless-Chromium driver over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no
websocket library, no browser download, no network. Used by the browser test and by ``tools/docs.py``
(screenshots in docs/).

    with Chromium(exe) as browser:
        page = browser.open(url, width=420, height=900)
        page.evaluate("document.title"); page.screenshot(path); page.errors
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# The flags that work in containers and CI: no sandbox (no user namespaces), no GPU, nothing on the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _above_nine(fd: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """One browser process; messages are JSON terminated by NUL on fds 3 (to it) and 4 (from it)."""

    def __init__(self, exe: str, timeout: float = 60.0):
        self.exe, self.timeout = exe, timeout

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="gapdiag-chromium-")
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        # the browser's ends go on fds 3 and 4, where Chromium expects them; moved above 9 first so that
        # neither is already 3 or 4. Python opens every other fd non-inheritable (PEP 446): nothing leaks.
        to_child, from_child = (_above_nine(fd) for fd in (to_child, from_child))

        def onto_3_and_4() -> None:
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self._proc = subprocess.Popen(
            [self.exe, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe"],
            preexec_fn=onto_3_and_4,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.events = b"", 0, []
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(Exception):  # the browser may be gone already
            self.send("Browser.close")
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        for fd in (self._r, self._w):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _recv(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._recv()
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, event: str) -> dict[str, Any]:
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._recv())

    def open(self, url: str, *, width: int, height: int) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        return Page(self, session, width, height)


class Page:
    def __init__(self, browser: Chromium, session: str, width: int, height: int):
        self.browser, self.session, self.width, self.height = browser, session, width, height

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for e in self.browser.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(
                    "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                )
            elif method == "Runtime.exceptionThrown":
                out.append("exception: " + str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.append("log: " + str(params["entry"].get("text")))
            elif method == "Network.loadingFailed":
                out.append("load failed: " + str(params.get("errorText")))
        return out

    def screenshot(self, path: str | Path, *, scale: float = 1.0, full_page: bool = False) -> Path:
        height = self.evaluate("document.documentElement.scrollHeight") if full_page else self.height
        clip = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": scale}
        params = {"format": "png", "clip": clip, "captureBeyondViewport": full_page}
        data = self.browser.send("Page.captureScreenshot", params, session=self.session)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
