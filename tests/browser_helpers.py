"""A real headless Chromium driven over the Chrome DevTools Protocol (CDP), for testing HTML pages.

``Browser`` starts ``/usr/bin/chromium`` (the OS package; ``make setup-browser`` installs it) with a fresh
profile and no network services, opens one page, and records console errors, uncaught exceptions, failed
loads and every URL the page requests. The client is websocket-client plus the CDP's JSON messages.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
]


def chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


class Browser:
    """``with Browser(width=1280) as b: b.open(path); b.eval(js); b.screenshot(png)``."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.width, self.height, self.timeout = width, height, timeout
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._id = 0

    def __enter__(self):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="octo-chromium-")
        self.proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + self.timeout
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if time.time() > deadline or self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        targets = json.loads(_http_get(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        return self

    def __exit__(self, *exc):
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------------ protocol
    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(
                "exception: " + details.get("exception", {}).get("description", details["text"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            self.errors.append(f"load failed: {params.get('errorText')}")

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def wait_for(self, method: str) -> dict:
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            message = json.loads(self.ws.recv())
            self._event(message)
            if message.get("method") == method:
                return message["params"]
        raise TimeoutError(method)

    # ------------------------------------------------------------------ page
    def open(self, path: str | Path) -> None:
        self.call("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.eval("document.fonts ? document.fonts.ready.then(() => true) : true")

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            height = self.eval("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)


def _http_get(url: str) -> str:
    from urllib.request import ProxyHandler, build_opener

    # the browser's own debugging endpoint on localhost: never through a proxy
    with build_opener(ProxyHandler({})).open(url, timeout=10) as response:
        return response.read().decode()
